/* pad.h — a function-preserving zero padding of a model's widths (issue 14:
 * rows that fit GGUF's 256-weight super-blocks).
 *
 * FFN width H -> H2 >= H: w_gate and w_up get zero rows, w_down zero
 * columns. The extra gate/up outputs are 0, SwiGLU(0, 0) = 0, and w_down's
 * zero columns ignore them: exact.
 *
 * Model width C -> C2 >= C (the head size stays; the attention width
 * n_heads * head_dim is unchanged, so C2 needs formats with an explicit head
 * size): embeddings, classifier and the linears reading the residual (wq, wk,
 * wv, w_gate, w_up) get zero columns, the linears writing it (wo, w_down)
 * zero rows, so the extra channels of the residual stay 0. RMSNorm then
 * averages over C2 channels: mean2 = mean * C / C2. Scaling every norm
 * weight by sqrt(C / C2) and eps by C / C2 gives
 *   x / sqrt(mean2 + eps2) * w2 = x / (sqrt(C/C2) sqrt(mean + eps)) * w sqrt(C/C2)
 * = the original, exactly in real arithmetic (in floats the longer sums of
 * the matrix products round in another order: KLD ~1e-11 on stories260K). */
#ifndef QUEPT_PAD_H
#define QUEPT_PAD_H

#include "model.h"

/* Pads m in place to dim_to (0: keep) and hidden_to (0: keep); each must be
 * at least the current width. On failure m is unchanged. */
int model_pad(Model *m, int dim_to, int hidden_to, QErr *err);

#endif
