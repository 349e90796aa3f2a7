/* block.h — one Llama decoder block, forward and backward, on buffers laid
 * out once (BlockActs) and reused for every call of the same (B,T).
 *
 *   x (N,C) ─ rmsnorm ─ ln1 ─┬─ Wq ─ rope ─ q ┐
 *                            ├─ Wk ─ rope ─ k ├─ attention ─ atty ─ Wo ─┐
 *                            └─ Wv ─────── v ┘                          │
 *   h1 = x + attn_out  ◄──────────────────────────────────────────────┘
 *   h1 ─ rmsnorm ─ ln2 ─┬─ Wgate ─ gate ┐
 *                       └─ Wup ─── up ──┴─ swiglu ─ swi ─ Wdown ─┐
 *   out = h1 + mlp_out  ◄─────────────────────────────────────────┘
 */
#ifndef QUEPT_BLOCK_H
#define QUEPT_BLOCK_H

#include "../model/model.h"
#include "layers.h"

typedef struct {
    int B, T, save_att;
    float *ln1, *ln1_rstd;  /* (N,C) (N) */
    float *q, *k, *v;       /* (N,QD) (N,KVD) (N,KVD), after RoPE */
    float *att;             /* (B,NH,T,T) when save_att, else (T,T) */
    float *atty;            /* (N,QD) attention output before Wo */
    float *h1;              /* (N,C) residual after attention */
    float *ln2, *ln2_rstd;  /* (N,C) (N) */
    float *gate, *up, *swi; /* (N,H) */
    float *tmp;             /* (N,C) projection outputs before the residual add */
    RopeTable rope;
} BlockActs;

/* Allocates activations for batches of B sequences of T tokens.
 * save_att=0 keeps one (T,T) attention scratch (inference only). */
int block_acts_init(BlockActs *a, const ModelConfig *c, int B, int T, int save_att, QErr *err);
void block_acts_free(BlockActs *a);
size_t block_acts_bytes(const ModelConfig *c, int B, int T, int save_att);

/* out (N,C) = block(x). out must not alias x (backward needs x). */
void block_forward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x, float *out);

/* Gradients of the block's linear weights (NULL entries are skipped). */
typedef struct {
    float *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down;
} BlockWeightGrads;

/* dx (N,C) += d/dx; gw (may be NULL) += weight gradients. Uses the
 * activations of the last block_forward on a (save_att must be 1).
 * scratch: block_backward_scratch_floats() floats. */
size_t block_backward_scratch_floats(const ModelConfig *c, int B, int T);
void block_backward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x,
                    const float *dout, float *dx, BlockWeightGrads *gw, float *scratch);

#endif
