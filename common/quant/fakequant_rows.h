/* fakequant_rows.h — the row chunking fakequant.c's formats share (internal
 * to common/quant: fakequant.c, fakequant_gguf.c). */
#ifndef QUEPT_FAKEQUANT_ROWS_H
#define QUEPT_FAKEQUANT_ROWS_H

#include <math.h>

#include "fakequant.h"

/* The clipping factor of a logit. */
static inline float fq_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Rows per chunk: ~2 MB of floats, at least 128 rows (or all). */
int fq_chunk_rows(const FqSpec *s);

/* Rows [o0, o0+m): fills buf (m, in) with X = W + A (mode 0) or A (mode 1)
 * when rank > 0; returns the rows the grid statistics come from (X in buf,
 * or W's rows) and sets *adapter to A's rows in mode 1 (NULL otherwise).
 * The same call in forward and backward gives bitwise the same X. */
const float *fq_prepare_rows(const FqSpec *s, const float *W, const float *Bd, const float *Bu, int o0, int m,
                             float *buf, const float **adapter);

/* FQ_FORMAT_GGUF (fakequant_gguf.c): the spec check and the three passes */
int fq_gguf_spec_check(const FqSpec *s, QErr *err);
void fq_gguf_forward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                     const float *beta, float *What, float *scratch);
void fq_gguf_backward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                      const float *beta, const float *scratch, const float *dWhat, float *dgamma,
                      float *dbeta, float *dBd, float *dBu, float *dW, float *work);

#endif
