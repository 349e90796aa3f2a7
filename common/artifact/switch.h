/* switch.h — switching an elastic artifact to INTEGER codes (the form export
 * writes), next to elastic_switch's dequantized fp32 weights.
 *
 * For block j at width b = bits[j] and each of its seven linears (out, in):
 *   codes  (out, in)  uint8, one code per byte, in [0, 2^b - 1]
 *   scales (out, ng)  fp32, ng = ceil(in / group_b) groups along the input dim
 *   zeros  (out, ng)  fp32 holding integers (usually in [0, 2^b - 1]; a group
 *                     whose clipped range does not contain 0 has one outside)
 *   W[o][i] = ((float)codes[o][i] - zeros[o][i/g]) * scales[o][i/g]
 * equals elastic_switch's weight bitwise (switched_dequantize computes it).
 * The last group of a row is shorter when in % group != 0.
 * Power-of-two artifacts (format pot) give PoT codes instead: codes =
 * (sign << (b-1)) | E, W = ±scales·2^E (an exponent add, pot.h), zeros 0.
 * GGUF artifacts (format gguf) give the ggml blocks of each row in packed
 * (fq_quantize_packed), whose ggml dequantization is elastic_switch's
 * weight bitwise; codes/scales/zeros are not filled.
 *
 * Per method: quept runs fq_quantize_codes with the block's parameters at b
 * (adapter prefix + learned clipping, the choice applied at load); rtn runs it
 * with no adapter and no clipping (the plain min/max grid); gptq copies the
 * stored codes, scales and zeros.
 *
 * Codes are NOT bit-packed in memory: one byte per code is what the group pass
 * writes at memory speed; packing is an export step (common/export/export_*.c:
 * GPTQ int32 words, GGUF Q4_1/Q5_1/Q8_0 blocks). The first call allocates every buffer
 * at its largest size over the artifact's widths; switching again reuses them
 * and never touches the artifact file.
 *
 * Linears are switched in parallel, one whole linear per task (each exactly
 * the fq_quantize_codes call fq_forward's chunking mirrors, so the result does
 * not depend on the thread count): QUEPT_SWITCH_THREADS, default the online
 * CPUs (at most 8). */
#ifndef QUEPT_SWITCH_H
#define QUEPT_SWITCH_H

#include <stdint.h>

#include "elastic.h"

typedef struct {
    int format;            /* FQ_FORMAT_INT, or FQ_FORMAT_POT: codes are (sign << (b-1)) | E,
                     W = ±scales·2^E, zeros all 0 (pot.h) */
    int out, in;           /* weight shape */
    int bits;              /* current width */
    int group;             /* current group size along in (1..in) */
    int ng;                /* ceil(in / group) */
    uint8_t *codes;        /* (out, in) */
    float *scales, *zeros; /* (out, ng) */
    int gtype;             /* format gguf: the ggml type of the rows (GQ_F16: none fits),
                              and codes/scales/zeros are unused: */
    uint8_t *packed;       /* (out, row_bytes): the ggml blocks, rows in order */
    size_t row_bytes;      /* gq_row_bytes(gtype, in) */
} SwitchedLinear;

typedef struct {
    ModelConfig cfg;
    int n_layers;
    int *bits;                    /* [n_layers] current width per block */
    SwitchedLinear (*lin)[N_LIN]; /* [n_layers][N_LIN] */
    int n_threads;                /* linears switched in parallel */
    float **work;                 /* [n_threads] fq_quantize_codes work buffers */
    size_t work_floats;
    /* elastic_switch_cache: merged[j][l][bi] = W + Bd·Bu at bit index bi's
     * rank (bits of one rank share one buffer; NULL: not cached) */
    float *(*merged)[N_LIN][QMAX_NBITS];
    size_t merged_bytes;
} SwitchedModel;

/* Materialises codes/scales/zeros at bits[j] for block j into out (zero it
 * before the first call; allocated then, reused after). A width not in the
 * artifact's bit list is an error naming the block, and out is unchanged. */
int elastic_switch_codes(const ElasticModel *em, const int *bits, SwitchedModel *out, QErr *err);
void switched_free(SwitchedModel *s);

/* Opt-in speed for repeated switching: precomputes, for every linear, the
 * adapted weight W + Bd·Bu once per distinct adapter rank among the widths
 * (quept method, adapters before quantization, integer codes), so that a
 * later elastic_switch_codes is only the per-group pass — the same bytes as
 * without the cache. Costs 4 bytes per weight per distinct rank (at most 3
 * with the default schedule: 2–4, 5–6, 7–8 bits; a block whose fallback
 * dropped a width's adapters needs none for it); merged_bytes says how much.
 * Allocates out on first use like elastic_switch_codes. A no-op (0) for an
 * artifact it does not apply to. */
int elastic_switch_cache(const ElasticModel *em, SwitchedModel *out, QErr *err);

/* W = (codes - zeros) * scales for one linear (out*in floats). */
void switched_dequantize(const SwitchedLinear *l, float *W);

/* Bytes the last switch read (base weights, adapter prefixes, clipping
 * logits; gptq: stored codes/scales/zeros) and wrote (codes, scales, zeros)
 * for the given widths — the accounting of `quept bench switch`. With s's
 * cache, a cached linear reads its merged weight instead of W and adapters. */
void switch_bytes(const ElasticModel *em, const SwitchedModel *s, const int *bits, double *bytes_read,
                  double *bytes_written);

/* An artifact without calibration, for tests and `quept bench switch`:
 * takes ownership of base (moved into em->base; base is zeroed), lays out
 * every block's parameters for qc (quept: Bd ~ N(0, 0.02^2) so the adapters
 * are not zero, clipping logits = init + N(0, 0.5^2); gptq: RTN codes with
 * some codes moved by one step, as stored codes). Seeded, deterministic. */
int elastic_build_synthetic(ElasticModel *em, Model *base, const QuantConfig *qc, uint64_t seed, QErr *err);

#endif
