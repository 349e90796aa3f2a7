/* teq.h — TEQ, the trainable equivalent transformation (DESIGN.md §2), as
 * quept trains it: block-wise, on the reconstruction loss, jointly with the
 * block's other parameters, one set of scales shared by every bit width.
 *
 * A positive scale per input channel of each group of linears sharing an
 * input (QBlockParams.teq, layout teq_off / teq_len). With s_a (ATTN, dim),
 * s_m (MLP, dim), t (O, n_kv_heads*head_dim) and u (DOWN, hidden), the
 * transformed block is
 *   attn_norm' = attn_norm / s_a        Wq' = Wq diag(s_a)   Wk' = Wk diag(s_a)
 *   Wv' = diag(1/t) Wv diag(s_a)        bv' = bv / t
 *   Wo' = Wo diag(t~),  t~[h*hd + d] = t[kv(h)*hd + d]  (query head h reads
 *                       kv head kv(h) = h / (n_heads/n_kv_heads))
 *   mlp_norm' = mlp_norm / s_m          Wgate' = Wgate diag(s_m)
 *   Wup' = diag(1/u) Wup diag(s_m)      Wdown' = Wdown diag(u)
 * (an absent group is 1). Without quantization it computes the same
 * function: rmsnorm(x)·(norm/s) = (rmsnorm(x)·norm)·diag(1/s) cancels the
 * columns' s; v's rows carry 1/t through the attention (linear in v) into
 * o's columns, up's rows 1/u through SwiGLU (linear in up) into down's.
 * Fake quantization sees the transformed weights W'; so do the clipping
 * logits and the adapters, which is why folding W' and norm' into the base
 * weights at the end (teq_fold) leaves every trained parameter valid and
 * inference exactly as expensive as before.
 *
 * Gradients. Every transformed tensor is either proportional to a scale
 * (columns of W') or to its inverse (norm', rows of Wv' / Wup', bv'), so
 *   dL/ds_i = (1/s_i) [ sum over the s-proportional entries e of dL/de · e
 *                       - sum over the 1/s-proportional entries e of dL/de · e ]
 * The step accumulates the bracket (the "log-scale gradient" G) from the
 * quantizer's input gradients dL/dW' (fq_backward_w) and the norm / bias
 * gradients, then adds G/s to the scales' gradient. */
#ifndef QUEPT_TEQ_H
#define QUEPT_TEQ_H

#include "qblock.h"

/* Smallest scale (DESIGN.md §2): teq_clip enforces it after every step. */
#define TEQ_SCALE_MIN 1e-5f

/* tw = the transformed block of w under p's scales. tw is allocated like w
 * (block_weights_alloc) or is w itself (in place). Element by element, so
 * the in-place result is bitwise the out-of-place one. */
void teq_transform(const QBlockParams *p, const ModelConfig *c, const BlockWeights *w, BlockWeights *tw);

/* The groups whose scale multiplies linear l's columns / divides its rows
 * (-1: none, or the group is not transformed). */
int teq_col_group(const QBlockParams *p, int l);
int teq_row_group(const QBlockParams *p, int l);

/* G += linear l's share of the log-scale gradient from rows [o0, o0+m):
 * Wp (m, in) the transformed weight's rows, dWp (m, in) dL/dW' of them:
 *   column group: G[col(i)] += sum_o dWp[o][i] Wp[o][i]
 *   row group:    G[o0 + o] -= sum_i dWp[o][i] Wp[o][i] */
void teq_grad_linear(const QBlockParams *p, const ModelConfig *c, int l, int o0, int m, const float *Wp,
                     const float *dWp, float *G);

/* G[group g] -= v' · dv' for a vector divided by g's scales (norm' or bv'). */
void teq_grad_divided(const QBlockParams *p, int g, const float *v, const float *dv, float *G);

/* g += G / s (the scales' gradient from the bracket above). */
void teq_grad_finish(const QBlockParams *p, const float *G, float *g);

/* s = max(s, TEQ_SCALE_MIN). */
void teq_clip(QBlockParams *p);

/* Folds the scales into w (w becomes teq_transform's result, bitwise) and
 * drops them from p (n_teq = 0), so nothing applies them twice. */
void teq_fold(QBlockParams *p, const ModelConfig *c, BlockWeights *w);

#endif
