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
 *
 * With w->act_bits (activation quantization, actquant.h) the four inputs of
 * the linears are fake-quantized per token just before their matmuls: ln1
 * (once, for Wq, Wk, Wv), atty (Wo), ln2 (once, for Wgate, Wup) and swi
 * (Wdown). act_bits 0 runs exactly the weight-only arithmetic.
 *
 * With w->down_had (a block rotated by model/rotate.h) swi is transformed
 * online per token, swi <- H^T swi / sqrt(H) (hadamard_transform_t), right
 * after SwiGLU and before its quantization and Wdown; a->swi keeps the
 * transformed rows. The backward maps the gradient back by H / sqrt(H)
 * (the map is orthogonal). down_had 0 runs exactly the unrotated arithmetic.
 */
#ifndef QUEPT_BLOCK_H
#define QUEPT_BLOCK_H

#include "../model/hadamard.h"
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
    float *aq;              /* (N, max(C,QD,H)) or NULL: the quantized input of the current
                               linear(s) with activation quantization (block_acts_init_aq);
                               NULL quantizes ln1/atty/ln2/swi in place (forward only) */
    RopeTable rope;
    Hadamard had;    /* the down input's transform (had.n == hidden_dim when the
                        FFN width has a Hadamard matrix, else had.n == 0) */
    float *had_work; /* (hidden_dim) its scratch */
} BlockActs;

/* Allocates activations for batches of B sequences of T tokens.
 * save_att=0 keeps one (T,T) attention scratch (inference only). The down
 * input's Hadamard plan is built when hidden_dim is supported
 * (hadamard_supported), so a block with down_had can run on any BlockActs. */
int block_acts_init(BlockActs *a, const ModelConfig *c, int B, int T, int save_att, QErr *err);
/* Lays out a->aq, which a block_backward after a block_forward with
 * activation quantization needs (the forward keeps the unquantized inputs). */
int block_acts_init_aq(BlockActs *a, const ModelConfig *c, QErr *err);
void block_acts_free(BlockActs *a);
size_t block_acts_bytes(const ModelConfig *c, int B, int T, int save_att);

/* What a linear reads: inp (N,C) itself (bits 0), or its rows
 * fake-quantized at `bits` (actquant_forward), into a->aq when laid out,
 * else in place. */
const float *block_linear_input(BlockActs *a, float *inp, int N, int C, int bits);

/* The down input's online transform on x (N, hidden) in place:
 * H^T x / sqrt(hidden) per row (transpose = 1, the forward), or H x /
 * sqrt(hidden) (0, the backward). a->had must be built. */
void block_down_had(BlockActs *a, float *x, int N, int transpose);

/* out (N,C) = block(x). out must not alias x (backward needs x). With
 * w->act_bits and no a->aq, ln1/atty/ln2/swi are left quantized: no
 * block_backward may follow. */
void block_forward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x, float *out);

/* Gradients of the block's linear weights (NULL entries are skipped). */
typedef struct {
    float *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down;
} BlockWeightGrads;

/* dx (N,C) += d/dx; gw (may be NULL) += weight gradients. Uses the
 * activations of the last block_forward on a (save_att must be 1; with
 * w->act_bits, a->aq must be laid out: the weight gradients are those of
 * the quantized inputs, re-quantized into a->aq).
 * scratch: block_backward_scratch_floats() floats. */
size_t block_backward_scratch_floats(const ModelConfig *c, int B, int T);
void block_backward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x,
                    const float *dout, float *dx, BlockWeightGrads *gw, float *scratch);

#endif
