/* qconfig_table.h — every calibration setting declared once (the table in
 * qconfig_table.c): its command-line flag(s), the QuantConfig field, range,
 * help text and key in the "quant" map. The table drives the flags of
 * `quept calibrate`, `quept coordinator` and `quept submit` (parse, range
 * checks, --help), the Markdown reference docs/calibration-flags.md, and the
 * msgpack codec of the QuantConfig shared by the artifact, the wire protocol
 * and the checkpoint journal. */
#ifndef QUEPT_QCONFIG_TABLE_H
#define QUEPT_QCONFIG_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "../base/cli_opts.h"
#include "../base/err.h"
#include "../base/msgpack_util.h"
#include "qconfig.h"

/* The map's "elastic_version" (artifact/elastic.h's ELASTIC_VERSION). */
#define QCONFIG_ELASTIC_VERSION 1

typedef enum {
    QS_BOOL,       /* int 0/1: --flag sets it, --no-flag clears it (and wins) */
    QS_INT,        /* int, command line in [lo, hi] */
    QS_FLOAT,      /* float, command line in [lo, hi]; packed as a double */
    QS_SEED,       /* uint64_t, command line in [lo, hi]; the map holds [0, 2^32) */
    QS_ENUM,       /* an enum (int-sized) by name: names[value] */
    QS_BITS,       /* the bit widths (bits, n_bits): "2-8", "2,3,4" */
    QS_INTS,       /* int[QBITS_MAX + 1] by bit; --flag sets bits bit_lo..bit_hi */
    QS_FLOATS,     /* float[QBITS_MAX + 1] by bit, likewise */
    QS_CONST,      /* no field: the key always holds lo (elastic_version) */
    QS_PRESET,     /* no field, no key: --flag runs preset (--reference-method) */
    QS_ACT_BITS,   /* int[QMAX_NBITS] paired with bits (act_bits): --flag pairs its list with
                    --bits'; the map holds n_bits entries, 16 for none */
    QS_GGUF_TYPES, /* int[QBITS_MAX + 1] of ggml types by bit (gguf_type): --flag takes
                      "4=q4_0,5=q5_1"; the map holds the type numbers; QS_IF_SET: packed
                      when any is set */
} QSetType;

/* How a key travels in the map (QSetting.codec). */
enum {
    QS_OPTIONAL = 1, /* may be absent when read: then quant_config_reference's value */
    QS_IF_SET = 2,   /* packed only when the field is non-zero, so configs without
                        it keep their bytes (and readers that predate it still read them) */
    QS_LAX = 4,      /* enum: an unknown name reads as names[0] (as "loss" always did) */
};

typedef struct {
    const char *flag;    /* --flag, without the dashes; NULL: none */
    const char *arg;     /* its value's name in the help ("N", "X"); NULL: a bare flag */
    const char *no_flag; /* QS_BOOL: --no-flag clears the field */
    QSetType type;
    size_t off;               /* offsetof(QuantConfig, field) */
    double lo, hi;            /* command-line range (QS_INT, QS_FLOAT, QS_SEED, QS_INTS, QS_FLOATS) */
    int bit_lo, bit_hi;       /* QS_INTS, QS_FLOATS: the widths --flag sets */
    const char *const *names; /* QS_ENUM: names[value], n_names of them */
    int n_names;
    int on;                          /* QS_ENUM with a bare --flag: the value it stores (--teq: norm) */
    const char *key;                 /* map key; NULL: not in the map (a second flag of a field, a preset) */
    int codec;                       /* QS_OPTIONAL | QS_IF_SET | QS_LAX */
    const char *with;                /* packed and read only along with this key (lr_teq with teq) */
    void (*preset)(QuantConfig *qc); /* rows with one apply first, in table order */
    const char *help;
} QSetting;

extern const QSetting QCONFIG_TABLE[];
extern const int QCONFIG_TABLE_N;

/* ---- the "quant" map ---- */

/* Packs qc as a msgpack map: the keys in table order. */
void qconfig_pack(msgpack_packer *pk, const QuantConfig *qc);
/* Reads a map packed by qconfig_pack (or an older one: optional keys fall
 * back to quant_config_reference) and validates it; errors name the key. */
int qconfig_unpack(const msgpack_object *m, QuantConfig *qc, QErr *err);

/* ---- the command line ---- */

/* Fills o with one option per flag of the table (room for max); returns the
 * count, or -1 when max is too small. */
int qconfig_cli_opts(CliOpt *o, int max);
/* The QuantConfig the parsed options o (as qconfig_cli_opts made them, among
 * others) ask for: quant_config_default, then the presets (--reference-method,
 * --format pot), then every other flag. Errors name the flag. */
int qconfig_cli_parse(const CliOpt *o, int no, QuantConfig *qc, QErr *err);

/* The flags' --help lines (two-space indent, text in column 23). */
void qconfig_print_help(FILE *f);
/* The flags as a Markdown table (docs/calibration-flags.md). */
void qconfig_print_markdown(FILE *f);

#endif
