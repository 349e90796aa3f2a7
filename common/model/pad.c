/* pad.c — function-preserving zero padding of a model's widths (pad.h). */
#include "pad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* dst (rows2, cols2) = src (rows, cols) in the top-left corner, zeros elsewhere */
static void copy_padded(float *dst, int rows2, int cols2, const float *src, int rows, int cols) {
    memset(dst, 0, sizeof(float) * (size_t)rows2 * cols2);
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * cols2, src + (size_t)r * cols, sizeof(float) * cols);
}

static void copy_norm(float *dst, int C2, const float *src, int C, float scale) {
    for (int i = 0; i < C2; i++) dst[i] = i < C ? src[i] * scale : 0.0f;
}

int model_pad(Model *m, int dim_to, int hidden_to, QErr *err) {
    const ModelConfig *c = &m->cfg;
    const int C = c->dim, H = c->hidden_dim;
    const int C2 = dim_to ? dim_to : C, H2 = hidden_to ? hidden_to : H;
    if (C2 < C) return qerr_setc(err, QERR_USAGE, "--pad-dim %d: less than the model's dim %d", C2, C);
    if (H2 < H) return qerr_setc(err, QERR_USAGE, "--pad-ffn %d: less than the model's FFN width %d", H2, H);
    if (C2 == C && H2 == H) return 0;
    ModelConfig c2 = *c;
    c2.dim = C2, c2.hidden_dim = H2;
    c2.norm_eps = (float)((double)c->norm_eps * C / C2);
    if (model_config_validate(&c2, "the padded model", err) != 0) return -1;
    const float s = (float)sqrt((double)C / C2);
    const int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim, V = c->vocab_size;

    Model p = {0};
    p.cfg = c2;
    p.blocks = calloc((size_t)c->n_layers, sizeof *p.blocks);
    p.tok_emb = malloc(sizeof(float) * (size_t)V * C2);
    p.final_norm = malloc(sizeof(float) * C2);
    p.classifier = c->tied_classifier ? p.tok_emb : malloc(sizeof(float) * (size_t)V * C2);
    if (!p.blocks || !p.tok_emb || !p.final_norm || !p.classifier) {
        model_free(&p);
        return qerr_set(err, "out of memory for the padded model");
    }
    copy_padded(p.tok_emb, V, C2, m->tok_emb, V, C);
    if (!c->tied_classifier) copy_padded(p.classifier, V, C2, m->classifier, V, C);
    copy_norm(p.final_norm, C2, m->final_norm, C, s);
    for (int j = 0; j < c->n_layers; j++) {
        BlockWeights *a = &m->blocks[j], *b = &p.blocks[j];
        if (block_weights_alloc(b, &c2, err) != 0) {
            model_free(&p);
            return -1;
        }
        copy_norm(b->attn_norm, C2, a->attn_norm, C, s);
        copy_norm(b->mlp_norm, C2, a->mlp_norm, C, s);
        copy_padded(b->wq, QD, C2, a->wq, QD, C);
        copy_padded(b->wk, KVD, C2, a->wk, KVD, C);
        copy_padded(b->wv, KVD, C2, a->wv, KVD, C);
        copy_padded(b->wo, C2, QD, a->wo, C, QD);
        copy_padded(b->w_gate, H2, C2, a->w_gate, H, C);
        copy_padded(b->w_up, H2, C2, a->w_up, H, C);
        copy_padded(b->w_down, C2, H2, a->w_down, C, H);
        if (c->has_qkv_bias) {
            memcpy(b->bq, a->bq, sizeof(float) * QD);
            memcpy(b->bk, a->bk, sizeof(float) * KVD);
            memcpy(b->bv, a->bv, sizeof(float) * KVD);
        }
    }
    model_free(m);
    *m = p;
    return 0;
}
