/* stress.h — stress variants of a model (`quept stress`, issue 13).
 *
 * Two kinds, applied in this order to a Model held in memory:
 *
 *  (a) activation outliers, function-preserving: in every layer, K input
 *      channels (a seeded choice, drawn separately for the attention norm and
 *      the FFN norm of each layer) of the RMSNorm weight are multiplied by
 *      alpha and the matching input columns of the linears reading that norm
 *      (wq, wk, wv resp. w1/gate, w3/up) are divided by alpha. The normed
 *      activation of those channels grows alpha times — the activation
 *      outliers of real LLMs — while every linear's output is unchanged up to
 *      float rounding (exact when alpha is a power of two).
 *
 *  (b) weight outliers, NOT function-preserving: in each chosen linear of
 *      every layer, round(frac · numel) distinct entries (a seeded choice)
 *      are multiplied by factor. The model changes; it is a new model with
 *      heavy-tailed weights, to be compared against itself in full precision.
 *
 *  (c) padding, function-preserving (pad.h): the model width and/or the FFN
 *      width zero-padded (e.g. to multiples of GGUF's 256-weight
 *      super-blocks), applied after (a) and (b).
 *
 * Every draw comes from rng_mix(seed, layer, kind, tensor), so a variant
 * depends only on (model, config). */
#ifndef QUEPT_STRESS_H
#define QUEPT_STRESS_H

#include <stdint.h>

#include "model.h"

/* Linears of a block, as bits of StressConfig.wo_linears. */
enum {
    STRESS_WQ = 1 << 0,
    STRESS_WK = 1 << 1,
    STRESS_WV = 1 << 2,
    STRESS_WO = 1 << 3,
    STRESS_W1 = 1 << 4, /* gate */
    STRESS_W2 = 1 << 5, /* down */
    STRESS_W3 = 1 << 6, /* up */
    STRESS_ALL = (1 << 7) - 1
};

typedef struct {
    int channels;         /* (a) channels per norm and layer; 0: off */
    float alpha;          /* (a) the factor, > 0 */
    double wo_frac;       /* (b) share of entries per chosen linear; 0: off */
    float wo_factor;      /* (b) the factor */
    unsigned wo_linears;  /* (b) STRESS_* bits */
    int pad_dim, pad_ffn; /* (c) pad.h: zero-pad dim / FFN width to these; 0: off */
    uint64_t seed;
} StressConfig;

/* What stress_apply changed (for the command's report and the tests). */
typedef struct {
    int64_t channels_scaled; /* norm channels multiplied by alpha, all layers */
    int64_t entries_scaled;  /* weight entries multiplied by factor, all layers */
} StressReport;

/* Off: no channels, no weight outliers, alpha 1, factor 1, linears w2, seed 1. */
void stress_config_default(StressConfig *sc);
/* Checks ranges (channels <= dim, alpha/factor finite and > 0, frac in [0, 1]). */
int stress_config_validate(const StressConfig *sc, const ModelConfig *mc, QErr *err);
/* "w2" / "wq,wk,wv" / "all" -> bits; names: wq wk wv wo w1 w2 w3 (also gate down up). */
int stress_parse_linears(const char *s, unsigned *mask, QErr *err);

/* Applies (a) then (b) in place; rep may be NULL. */
int stress_apply(Model *m, const StressConfig *sc, StressReport *rep, QErr *err);

/* Loads in_path (llama2.c .bin or HF directory), applies sc and writes the
 * variant to out_path in the input's format (llama2.c: the legacy layout;
 * HF: an F32 safetensors directory). out_path must not be the input nor lie
 * inside it (paths_check_output). */
int stress_write_model(const char *in_path, const char *out_path, const StressConfig *sc, StressReport *rep,
                       QErr *err);

#endif
