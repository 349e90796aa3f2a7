/* block_backward.c — backward of one decoder block (block.h), composed from
 * the layer backwards (layers_backward.c), in the reverse order of
 * block_forward. It reads only the activations block_forward keeps (never
 * a->tmp, which forward overwrites twice); q and k are saved after RoPE, so
 * their gradients are rotated back before the Wq/Wk backward. */
#include <assert.h>
#include <string.h>

#include "block.h"

/* Scratch layout, in order (N = B*T):
 *   dh1 (N,C)  dln2 (N,C)  dgate (N,H)  dup (N,H)  dswi (N,H)
 *   datty (N,QD)  dq (N,QD)  dk (N,KVD)  dv (N,KVD)  dln1 (N,C)  datt (T,T)
 * Everything from dln2 to dln1 is zeroed per call (the layers accumulate);
 * dh1 starts as a copy of dout; datt is overwritten per head. */
size_t block_backward_scratch_floats(const ModelConfig *c, int B, int T) {
    size_t N = (size_t)B * T, C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    return N * (3 * C + 3 * H + 2 * QD + 2 * KVD) + (size_t)T * T;
}

void block_backward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x,
                    const float *dout, float *dx, BlockWeightGrads *gw, float *scratch) {
    assert(a->save_att && "block_backward needs block_forward with save_att=1");
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->hidden_dim;
    int NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim;
    int QD = NH * hd, KVD = NKV * hd;
    size_t NC = (size_t)N * C, NHid = (size_t)N * H, NQD = (size_t)N * QD, NKVD = (size_t)N * KVD;

    float *dh1 = scratch;
    float *dln2 = dh1 + NC;
    float *dgate = dln2 + NC;
    float *dup = dgate + NHid;
    float *dswi = dup + NHid;
    float *datty = dswi + NHid;
    float *dq = datty + NQD;
    float *dk = dq + NQD;
    float *dv = dk + NKVD;
    float *dln1 = dv + NKVD;
    float *datt = dln1 + NC;
    memset(dln2, 0, (size_t)(datt - dln2) * sizeof(float));

    BlockWeightGrads none = {0};
    const BlockWeightGrads *g = gw ? gw : &none;

    /* out = h1 + W_down swiglu(W_gate ln2, W_up ln2), ln2 = rmsnorm(h1) */
    memcpy(dh1, dout, NC * sizeof(float));
    matmul_backward(dswi, g->w_down, NULL, dout, a->swi, w->w_down, N, H, C);
    swiglu_backward(dgate, dup, dswi, a->gate, a->up, NHid);
    matmul_backward(dln2, g->w_gate, NULL, dgate, a->ln2, w->w_gate, N, C, H);
    matmul_backward(dln2, g->w_up, NULL, dup, a->ln2, w->w_up, N, C, H);
    rmsnorm_backward(dh1, NULL, dln2, a->h1, w->mlp_norm, a->ln2_rstd, N, C);

    /* h1 = x + W_o attention(rope(W_q ln1), rope(W_k ln1), W_v ln1), ln1 = rmsnorm(x) */
    for (size_t i = 0; i < NC; i++) dx[i] += dh1[i];
    matmul_backward(datty, g->wo, NULL, dh1, a->atty, w->wo, N, QD, C);
    attention_backward(dq, dk, dv, datt, datty, a->q, a->k, a->v, a->att, B, T, NH, NKV, hd);
    rope_backward(dq, &a->rope, B, T, NH);
    rope_backward(dk, &a->rope, B, T, NKV);
    matmul_backward(dln1, g->wq, NULL, dq, a->ln1, w->wq, N, C, QD);
    matmul_backward(dln1, g->wk, NULL, dk, a->ln1, w->wk, N, C, KVD);
    matmul_backward(dln1, g->wv, NULL, dv, a->ln1, w->wv, N, C, KVD);
    rmsnorm_backward(dx, NULL, dln1, x, w->attn_norm, a->ln1_rstd, N, C);
}
