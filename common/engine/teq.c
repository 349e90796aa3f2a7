/* teq.c — TEQ transform, gradients and folding (see teq.h). */
#include "teq.h"

#include <stdlib.h>
#include <string.h>

int teq_col_group(const QBlockParams *p, int l) {
    int g = l == LIN_Q || l == LIN_K || l == LIN_V ? TEQ_ATTN
            : l == LIN_GATE || l == LIN_UP         ? TEQ_MLP
            : l == LIN_O                           ? TEQ_O
                                                   : TEQ_DOWN;
    return p->teq_len[g] > 0 ? g : -1;
}

int teq_row_group(const QBlockParams *p, int l) {
    int g = l == LIN_V ? TEQ_O : l == LIN_UP ? TEQ_DOWN : -1;
    return g >= 0 && p->teq_len[g] > 0 ? g : -1;
}

/* Index into the column group's scales of column i of linear l: o's column
 * h*hd + d reads t[kv(h)*hd + d]; every other linear's column i reads i. */
static int col_index(const ModelConfig *c, int l, int i) {
    if (l != LIN_O) return i;
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    return (i / hd / group) * hd + i % hd;
}

/* dst (out, in) = diag(1/row) src diag(col) (either may be NULL = 1);
 * dst may equal src. */
static void scale_linear(const ModelConfig *c, int l, const float *src, float *dst, int out, int in,
                         const float *col, const float *row) {
    for (int o = 0; o < out; o++) {
        const float *a = src + (size_t)o * in;
        float *b = dst + (size_t)o * in;
        for (int i = 0; i < in; i++) {
            float v = a[i];
            if (col) v *= col[col_index(c, l, i)];
            if (row) v /= row[o];
            b[i] = v;
        }
    }
}

/* dst (n) = src / s (s NULL: a copy); dst may equal src. */
static void divide_vec(const float *src, float *dst, int n, const float *s) {
    for (int i = 0; i < n; i++) dst[i] = s ? src[i] / s[i] : src[i];
}

static const float *group_scales(const QBlockParams *p, int g) {
    return g >= 0 && p->teq_len[g] > 0 ? p->teq + p->teq_off[g] : NULL;
}

void teq_transform(const QBlockParams *p, const ModelConfig *c, const BlockWeights *w, BlockWeights *tw) {
    int C = c->dim, QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    divide_vec(w->attn_norm, tw->attn_norm, C, group_scales(p, TEQ_ATTN));
    divide_vec(w->mlp_norm, tw->mlp_norm, C, group_scales(p, TEQ_MLP));
    if (c->has_qkv_bias) {
        divide_vec(w->bq, tw->bq, QD, NULL);
        divide_vec(w->bk, tw->bk, KVD, NULL);
        divide_vec(w->bv, tw->bv, KVD, group_scales(p, TEQ_O));
    }
    BlockWeights *dst = tw;
    tw->down_had = w->down_had; /* the online rotation is part of the block's structure */
    for (int l = 0; l < N_LIN; l++) {
        int out, in;
        qblock_linear_shape(c, l, &out, &in);
        scale_linear(c, l, qblock_linear_weight(w, l), *qblock_linear_slot(dst, l), out, in,
                     group_scales(p, teq_col_group(p, l)), group_scales(p, teq_row_group(p, l)));
    }
}

void teq_grad_linear(const QBlockParams *p, const ModelConfig *c, int l, int o0, int m, const float *Wp,
                     const float *dWp, float *G) {
    int gc = teq_col_group(p, l), gr = teq_row_group(p, l);
    int in = p->lin[l].in;
    float *Gc = gc >= 0 ? G + p->teq_off[gc] : NULL, *Gr = gr >= 0 ? G + p->teq_off[gr] : NULL;
    for (int o = 0; o < m; o++) {
        const float *a = Wp + (size_t)o * in, *d = dWp + (size_t)o * in;
        double rsum = 0.0;
        for (int i = 0; i < in; i++) {
            float e = a[i] * d[i];
            if (Gc) Gc[col_index(c, l, i)] += e;
            rsum += e;
        }
        if (Gr) Gr[o0 + o] -= (float)rsum;
    }
}

void teq_grad_divided(const QBlockParams *p, int g, const float *v, const float *dv, float *G) {
    if (g < 0 || p->teq_len[g] == 0) return;
    float *Gg = G + p->teq_off[g];
    for (int i = 0; i < p->teq_len[g]; i++) Gg[i] -= v[i] * dv[i];
}

void teq_grad_finish(const QBlockParams *p, const float *G, float *g) {
    for (size_t i = 0; i < p->n_teq; i++) g[i] += G[i] / p->teq[i];
}

void teq_clip(QBlockParams *p) {
    for (size_t i = 0; i < p->n_teq; i++)
        if (p->teq[i] < TEQ_SCALE_MIN) p->teq[i] = TEQ_SCALE_MIN; /* NaN stays: the finite check reports it */
}

void teq_fold(QBlockParams *p, const ModelConfig *c, BlockWeights *w) {
    if (p->n_teq == 0) return;
    teq_transform(p, c, w, w);
    free(p->teq);
    p->teq = NULL;
    p->n_teq = 0;
    for (int g = 0; g < TEQ_NGROUPS; g++) p->teq_len[g] = 0;
}
