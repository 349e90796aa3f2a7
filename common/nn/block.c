/* block.c — decoder block forward/backward composed from layers.c. */
#include "block.h"

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
    if (rc != 0 || !a->ln1 || !a->ln1_rstd || !a->q || !a->k || !a->v || !a->att || !a->atty ||
        !a->h1 || !a->ln2 || !a->ln2_rstd || !a->gate || !a->up || !a->swi || !a->tmp) {
        block_acts_free(a);
        return qerr_set(err, "out of memory allocating block activations (B=%d, T=%d, %.1f MB)", B,
                        T, block_acts_bytes(c, B, T, save_att) / 1e6);
    }
    return 0;
}

void block_acts_free(BlockActs *a) {
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
    rope_table_free(&a->rope);
    memset(a, 0, sizeof *a);
}

void block_forward(const ModelConfig *c, const BlockWeights *w, BlockActs *a, const float *x,
                   float *out) {
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->hidden_dim;
    int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    size_t NC = (size_t)N * C;

    rmsnorm_forward(a->ln1, a->ln1_rstd, x, w->attn_norm, N, C, c->norm_eps);
    matmul_forward(a->q, a->ln1, w->wq, w->bq, N, C, QD);
    matmul_forward(a->k, a->ln1, w->wk, w->bk, N, C, KVD);
    matmul_forward(a->v, a->ln1, w->wv, w->bv, N, C, KVD);
    rope_forward(a->q, &a->rope, B, T, c->n_heads);
    rope_forward(a->k, &a->rope, B, T, c->n_kv_heads);
    attention_forward(a->atty, a->att, a->q, a->k, a->v, B, T, c->n_heads, c->n_kv_heads,
                      c->head_dim, a->save_att);
    matmul_forward(a->tmp, a->atty, w->wo, NULL, N, QD, C);
    residual_forward(a->h1, x, a->tmp, NC);

    rmsnorm_forward(a->ln2, a->ln2_rstd, a->h1, w->mlp_norm, N, C, c->norm_eps);
    matmul_forward(a->gate, a->ln2, w->w_gate, NULL, N, C, H);
    matmul_forward(a->up, a->ln2, w->w_up, NULL, N, C, H);
    swiglu_forward(a->swi, a->gate, a->up, (size_t)N * H);
    matmul_forward(a->tmp, a->swi, w->w_down, NULL, N, H, C);
    residual_forward(out, a->h1, a->tmp, NC);
}
