/* synthetic.c — random models for tests and benchmarks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/rng.h"
#include "model.h"

static void fill_normal(float *x, size_t n, float std, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(r);
}

static void fill_norm_weight(float *x, size_t n, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = 1.0f + 0.1f * rng_normal(r);
}

int model_init_random(Model *m, const ModelConfig *cfg, uint64_t seed, QErr *err) {
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, "synthetic model", err) != 0) return -1;
    m->cfg = *cfg;
    const ModelConfig *c = &m->cfg;
    size_t C = c->dim, H = c->hidden_dim, VC = (size_t)c->vocab_size * C;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    Rng r;
    rng_seed(&r, seed);
    m->blocks = calloc((size_t)c->n_layers, sizeof(BlockWeights));
    m->tok_emb = malloc(VC * sizeof(float));
    m->final_norm = malloc(C * sizeof(float));
    m->classifier = c->tied_classifier ? m->tok_emb : malloc(VC * sizeof(float));
    if (!m->blocks || !m->tok_emb || !m->final_norm || !m->classifier) {
        model_free(m);
        return qerr_set(err, "out of memory for a synthetic model");
    }
    fill_normal(m->tok_emb, VC, 1.0f, &r);
    fill_norm_weight(m->final_norm, C, &r);
    if (!c->tied_classifier) fill_normal(m->classifier, VC, 1.0f / sqrtf((float)C), &r);
    float sc = 1.0f / sqrtf((float)C), sh = 1.0f / sqrtf((float)H);
    for (int j = 0; j < c->n_layers; j++) {
        BlockWeights *w = &m->blocks[j];
        if (block_weights_alloc(w, c, err) != 0) {
            model_free(m);
            return -1;
        }
        fill_norm_weight(w->attn_norm, C, &r);
        fill_norm_weight(w->mlp_norm, C, &r);
        fill_normal(w->wq, QD * C, sc, &r);
        fill_normal(w->wk, KVD * C, sc, &r);
        fill_normal(w->wv, KVD * C, sc, &r);
        fill_normal(w->wo, C * QD, 1.0f / sqrtf((float)QD), &r);
        fill_normal(w->w_gate, H * C, sc, &r);
        fill_normal(w->w_up, H * C, sc, &r);
        fill_normal(w->w_down, C * H, sh, &r);
        if (c->has_qkv_bias) {
            fill_normal(w->bq, QD, 0.1f, &r);
            fill_normal(w->bk, KVD, 0.1f, &r);
            fill_normal(w->bv, KVD, 0.1f, &r);
        }
    }
    return 0;
}
