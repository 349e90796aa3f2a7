/* rotate.h — the offline rotation of QuaRot / QuEPT's --pre_rotate: the
 * model's function unchanged, its residual stream spun by a randomised
 * Hadamard matrix so no channel carries outliers (part of issue 15).
 *
 * Two steps, each exact in real arithmetic:
 *  1. fold every RMSNorm weight into the linears that read its output:
 *     wq, wk, wv (x) attn_norm and w_gate, w_up (x) mlp_norm column-wise, the
 *     classifier (x) final_norm; the norms become 1. An RMSNorm with unit
 *     weight commutes with any orthogonal map of the residual.
 *  2. Q = diag(s) H / sqrt(dim), s a seeded random +-1 vector, H the
 *     Sylvester Hadamard matrix (dim a power of two; other sizes need a known
 *     Hadamard factor, not here yet): the residual x becomes x Q. So the
 *     embeddings E -> E Q, every linear reading the residual W -> W Q
 *     (wq, wk, wv, w_gate, w_up, classifier), every linear writing it
 *     W -> Q^T W (wo, w_down). The classifier is untied from the embeddings
 *     (they now differ by the folded final norm).
 * Applied with the fast Walsh-Hadamard transform, O(dim log dim) per row. */
#ifndef QUEPT_ROTATE_H
#define QUEPT_ROTATE_H

#include <stdint.h>

#include "model.h"

/* In-place fast Walsh-Hadamard transform of x (n a power of two), unscaled:
 * applying it twice multiplies by n. */
void fwht(float *x, int n);

/* Folds the norms and rotates m in place (see above). Fails, changing
 * nothing, when dim is not a power of two. */
int model_rotate_hadamard(Model *m, uint64_t seed, QErr *err);

#endif
