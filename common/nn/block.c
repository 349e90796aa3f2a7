/* block.c — one decoder block (block.h): forward, then backward, each
 * composed from the layers of layers.c.
 *
 * The backward runs the layer backwards in the reverse order of
 * block_forward. It reads only the activations block_forward keeps (never
 * a->tmp, which forward overwrites twice); q and k are saved after RoPE, so
 * their gradients are rotated back before the Wq/Wk backward.
 *
 * Activation quantization (w->act_bits, actquant.h): the forward quantizes
 * each linear's input just before its matmul; the backward quantizes it
 * again for the weight gradient (bitwise the forward's) and maps the input
 * gradient through actquant_backward. */
#include "block.h"

#include "actquant.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

size_t block_acts_bytes(const ModelConfig *c, int B, int T, int save_att) {
    size_t N = (size_t)B * T, C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    size_t att = save_att ? (size_t)B * c->n_heads * T * T : (size_t)T * T;
    size_t floats = N * C * 4 + 2 * N + N * QD * 2 + N * KVD * 2 + att + N * H * 3;
    return floats * sizeof(float);
}

int block_acts_init(BlockActs *a, const ModelConfig *c, int B, int T, int save_att, QErr *err) {
    memset(a, 0, sizeof *a);
    a->B = B;
    a->T = T;
    a->save_att = save_att;
    size_t N = (size_t)B * T, C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    size_t att = save_att ? (size_t)B * c->n_heads * T * T : (size_t)T * T;
    a->ln1 = malloc(N * C * sizeof(float));
    a->ln1_rstd = malloc(N * sizeof(float));
    a->q = malloc(N * QD * sizeof(float));
    a->k = malloc(N * KVD * sizeof(float));
    a->v = malloc(N * KVD * sizeof(float));
    a->att = malloc(att * sizeof(float));
    a->atty = malloc(N * QD * sizeof(float));
    a->h1 = malloc(N * C * sizeof(float));
    a->ln2 = malloc(N * C * sizeof(float));
    a->ln2_rstd = malloc(N * sizeof(float));
    a->gate = malloc(N * H * sizeof(float));
    a->up = malloc(N * H * sizeof(float));
    a->swi = malloc(N * H * sizeof(float));
    a->tmp = malloc(N * C * sizeof(float));
    int rc = rope_table_init(&a->rope, T, c->head_dim, c->rope_theta, c->rope_halves);
    if (rc == 0 && hadamard_supported(c->hidden_dim, NULL, NULL)) {
        rc = hadamard_init(&a->had, c->hidden_dim, err);
        a->had_work = malloc(H * sizeof(float));
        if (!a->had_work) rc = -1;
    }
    if (rc != 0 || !a->ln1 || !a->ln1_rstd || !a->q || !a->k || !a->v || !a->att || !a->atty || !a->h1 ||
        !a->ln2 || !a->ln2_rstd || !a->gate || !a->up || !a->swi || !a->tmp) {
        block_acts_free(a);
        return qerr_set(err, "out of memory allocating block activations (B=%d, T=%d, %.1f MB)", B, T,
                        block_acts_bytes(c, B, T, save_att) / 1e6);
    }
    return 0;
}

int block_acts_init_aq(BlockActs *a, const ModelConfig *c, QErr *err) {
    size_t N = (size_t)a->B * a->T, w = (size_t)c->dim;
    size_t QD = (size_t)c->n_heads * c->head_dim;
    if (QD > w) w = QD;
    if ((size_t)c->hidden_dim > w) w = (size_t)c->hidden_dim;
    free(a->aq);
    a->aq = malloc(N * w * sizeof(float));
    if (!a->aq)
        return qerr_set(err, "out of memory for the activation quantization buffer (%.1f MB)", N * w * 4e-6);
    return 0;
}

void block_acts_free(BlockActs *a) {
    free(a->aq);
    free(a->ln1);
    free(a->ln1_rstd);
    free(a->q);
    free(a->k);
    free(a->v);
    free(a->att);
    free(a->atty);
    free(a->h1);
    free(a->ln2);
    free(a->ln2_rstd);
    free(a->gate);
    free(a->up);
    free(a->swi);
    free(a->tmp);
    free(a->had_work);
    hadamard_free(&a->had);
    rope_table_free(&a->rope);
    memset(a, 0, sizeof *a);
}

const float *block_linear_input(BlockActs *a, float *inp, int N, int C, int bits) {
    if (!bits) return inp;
    float *q = a->aq ? a->aq : inp;
    actquant_forward(q, inp, N, C, bits);
    return q;
}

void block_down_had(BlockActs *a, float *x, int N, int transpose) {
    assert(a->had.n > 0 && "down_had on a FFN width without a Hadamard matrix");
    hadamard_transform_rows(x, N, &a->had, transpose, a->had_work);
}

void block_forward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x, float *out) {
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->hidden_dim;
    int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    size_t NC = (size_t)N * C;
    const int ab = w->act_bits;
    const float *in;

    rmsnorm_forward(a->ln1, a->ln1_rstd, x, w->attn_norm, N, C, c->norm_eps);
    in = block_linear_input(a, a->ln1, N, C, ab);
    matmul_forward(a->q, in, w->wq, w->bq, N, C, QD);
    matmul_forward(a->k, in, w->wk, w->bk, N, C, KVD);
    matmul_forward(a->v, in, w->wv, w->bv, N, C, KVD);
    rope_forward(a->q, &a->rope, B, T, c->n_heads);
    rope_forward(a->k, &a->rope, B, T, c->n_kv_heads);
    attention_forward(a->atty, a->att, a->q, a->k, a->v, B, T, c->n_heads, c->n_kv_heads, c->head_dim,
                      a->save_att);
    matmul_forward(a->tmp, block_linear_input(a, a->atty, N, QD, ab), w->wo, NULL, N, QD, C);
    residual_forward(a->h1, x, a->tmp, NC);

    rmsnorm_forward(a->ln2, a->ln2_rstd, a->h1, w->mlp_norm, N, C, c->norm_eps);
    in = block_linear_input(a, a->ln2, N, C, ab);
    matmul_forward(a->gate, in, w->w_gate, NULL, N, C, H);
    matmul_forward(a->up, in, w->w_up, NULL, N, C, H);
    swiglu_forward(a->swi, a->gate, a->up, (size_t)N * H);
    if (w->down_had) block_down_had(a, a->swi, N, 1); /* online Hadamard, before the quantization */
    matmul_forward(a->tmp, block_linear_input(a, a->swi, N, H, ab), w->w_down, NULL, N, H, C);
    residual_forward(out, a->h1, a->tmp, NC);
}

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
    const int ab = w->act_bits;
    assert((!ab || a->aq) && "block_backward with activation quantization needs block_acts_init_aq");
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
    /* with activation quantization: each linear's quantized input again
     * (block_linear_input into a->aq) for its weight gradient, and the input
     * gradient through the quantizer (in place) */
    const float *in;
    memcpy(dh1, dout, NC * sizeof(float));
    matmul_backward(dswi, g->w_down, NULL, dout, block_linear_input(a, a->swi, N, H, ab), w->w_down, N, H, C);
    if (ab) actquant_backward(dswi, dswi, a->swi, N, H, ab);
    if (w->down_had) block_down_had(a, dswi, N, 0); /* the online Hadamard's backward */
    swiglu_backward(dgate, dup, dswi, a->gate, a->up, NHid);
    in = block_linear_input(a, a->ln2, N, C, ab);
    matmul_backward(dln2, g->w_gate, NULL, dgate, in, w->w_gate, N, C, H);
    matmul_backward(dln2, g->w_up, NULL, dup, in, w->w_up, N, C, H);
    if (ab) actquant_backward(dln2, dln2, a->ln2, N, C, ab);
    rmsnorm_backward(dh1, NULL, dln2, a->h1, w->mlp_norm, a->ln2_rstd, N, C);

    /* h1 = x + W_o attention(rope(W_q ln1), rope(W_k ln1), W_v ln1), ln1 = rmsnorm(x) */
    for (size_t i = 0; i < NC; i++) dx[i] += dh1[i];
    matmul_backward(datty, g->wo, NULL, dh1, block_linear_input(a, a->atty, N, QD, ab), w->wo, N, QD, C);
    if (ab) actquant_backward(datty, datty, a->atty, N, QD, ab);
    attention_backward(dq, dk, dv, datt, datty, a->q, a->k, a->v, a->att, B, T, NH, NKV, hd);
    rope_backward(dq, &a->rope, B, T, NH);
    rope_backward(dk, &a->rope, B, T, NKV);
    in = block_linear_input(a, a->ln1, N, C, ab);
    matmul_backward(dln1, g->wq, NULL, dq, in, w->wq, N, C, QD);
    matmul_backward(dln1, g->wk, NULL, dk, in, w->wk, N, C, KVD);
    matmul_backward(dln1, g->wv, NULL, dv, in, w->wv, N, C, KVD);
    if (ab) actquant_backward(dln1, dln1, a->ln1, N, C, ab);
    rmsnorm_backward(dx, NULL, dln1, x, w->attn_norm, a->ln1_rstd, N, C);
}
