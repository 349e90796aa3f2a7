/* rotate.h — the offline rotation of QuaRot / QuEPT's --pre_rotate: the
 * model's function unchanged, its residual stream spun by a randomised
 * Hadamard matrix so no channel carries outliers (part of issue 15;
 * docs/rotation.md).
 *
 * Two steps, each exact in real arithmetic:
 *  1. fold every RMSNorm weight into the linears that read its output:
 *     wq, wk, wv (x) attn_norm and w_gate, w_up (x) mlp_norm column-wise, the
 *     classifier (x) final_norm; the norms become 1. An RMSNorm with unit
 *     weight commutes with any orthogonal map of the residual.
 *  2. Q = diag(s) H^T / sqrt(dim), s a seeded random +-1 vector, H the
 *     Hadamard matrix of hadamard.h (dim = m * 2^k with a known base of order
 *     m; Sylvester's for a power of two): the residual x (a row) becomes
 *     x Q, i.e. H (s .* x) / sqrt(dim) as a column. So the embeddings
 *     E -> E Q, every linear reading the residual W -> W Q (wq, wk, wv,
 *     w_gate, w_up, classifier), every linear writing it W -> Q^T W (wo,
 *     w_down). The classifier is untied from the embeddings (they now differ
 *     by the folded final norm).
 * Each row or column costs one fast transform (hadamard_transform). */
#ifndef QUEPT_ROTATE_H
#define QUEPT_ROTATE_H

#include <stdint.h>

#include "hadamard.h"
#include "model.h"

/* Folds the norms and rotates m in place (see above). Fails, changing
 * nothing, when dim has no Hadamard matrix here (hadamard_supported). */
int model_rotate_hadamard(Model *m, uint64_t seed, QErr *err);

/* QuaRot's online rotation of the down_proj input, its weight half: in every
 * block W_down (dim, hidden) -> W_down Hh, Hh = H / sqrt(hidden) the
 * normalised Hadamard matrix of the FFN width. Since Hh Hh^T = I,
 * W_down h = (W_down Hh)(Hh^T h): the forward then transforms the
 * down_proj input online, h -> Hh^T h (hadamard_transform_t), before the
 * (quantized) matmul. Sets BlockWeights.down_had on every block, which makes
 * block_forward, the training step and decode_step do that, so the folded
 * model computes the original function. Fails, changing nothing, when
 * hidden_dim has no Hadamard matrix here. */
int model_fold_down_hadamard(Model *m, QErr *err);

/* The fold undone for a plain runtime: in every block with down_had,
 * W_down <- W_down Hh^T (row w -> H w / sqrt(hidden), hadamard_transform),
 * so the block computes its function without the online transform;
 * down_had cleared. The residual rotation stays (it is in the weights). On
 * a quantized W_down the result is dense: no longer on the code grid. */
int model_unfold_down_hadamard(Model *m, QErr *err);

/* --- the calibration's rotation (QuantConfig.rotate), block by block ---
 * Both steps above at once: the residual rotation with seed, then the
 * down_proj fold with down_had set. The same arithmetic whether a whole
 * model is rotated (model_rotate_full) or a worker rotates the blocks it
 * loads and the coordinator the embeddings (rotate_block,
 * rotate_embeddings, rotate_head), so both give the same bytes. */
typedef struct {
    Hadamard hd, hh;        /* the model width's and the FFN width's transforms */
    float *s;               /* (dim) the seeded +-1 signs */
    float *col, *work, *hw; /* scratch: (dim), (dim), (hidden) */
} RotatePlan;

/* Fails when dim or hidden_dim has no Hadamard matrix here. */
int rotate_plan_init(RotatePlan *rp, const ModelConfig *c, uint64_t seed, QErr *err);
void rotate_plan_free(RotatePlan *rp);
/* One block: norms folded into the linears reading them (norms 1), the
 * residual rotation, the down_proj fold; sets b->down_had. */
void rotate_block(RotatePlan *rp, const ModelConfig *c, BlockWeights *b);
/* tok_emb (vocab, dim) <- tok_emb Q. */
void rotate_embeddings(RotatePlan *rp, const ModelConfig *c, float *tok_emb);
/* classifier (vocab, dim) <- classifier diag(final_norm) Q, final_norm <- 1.
 * The classifier must not alias the embeddings (untie first). */
void rotate_head(RotatePlan *rp, const ModelConfig *c, float *final_norm, float *classifier);
/* The whole model: untied, every block, head, embeddings. Fails, changing
 * nothing, as rotate_plan_init. */
int model_rotate_full(Model *m, uint64_t seed, QErr *err);

#endif
