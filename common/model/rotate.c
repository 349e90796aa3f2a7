#include "rotate.h"

#include <stdlib.h>
#include <string.h>

#include "../base/rng.h"

/* W (rows, dim) -> W diag(g): each column scaled by the norm weight it reads */
static void fold_norm(float *W, int rows, int dim, const float *g) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < dim; i++) W[(size_t)r * dim + i] *= g[i];
}

/* W (rows, dim) -> W Q, Q = diag(s) H^T / sqrt(dim): row w -> H (s .* w) / sqrt(dim) */
static void rotate_inputs(float *W, int rows, const Hadamard *h, const float *s, float *work) {
    const int dim = h->n;
    for (int r = 0; r < rows; r++) {
        float *w = W + (size_t)r * dim;
        for (int i = 0; i < dim; i++) w[i] *= s[i];
        hadamard_transform(w, h, work);
    }
}

/* W (dim, cols) -> Q^T W = H diag(s) W / sqrt(dim), column by column
 * (col holds one column) */
static void rotate_outputs(float *W, int cols, const Hadamard *h, const float *s, float *col, float *work) {
    const int dim = h->n;
    for (int c = 0; c < cols; c++) {
        for (int i = 0; i < dim; i++) col[i] = W[(size_t)i * cols + c] * s[i];
        hadamard_transform(col, h, work);
        for (int i = 0; i < dim; i++) W[(size_t)i * cols + c] = col[i];
    }
}

int model_rotate_hadamard(Model *m, uint64_t seed, QErr *err) {
    const ModelConfig *c = &m->cfg;
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    Hadamard h;
    if (hadamard_init(&h, d, err) != 0) return qerr_wrap(err, "Hadamard rotation of the model width %d", d);
    float *s = malloc(sizeof(float) * d), *col = malloc(sizeof(float) * d), *work = malloc(sizeof(float) * d);
    float *cls = c->tied_classifier ? malloc(sizeof(float) * (size_t)c->vocab_size * d) : NULL;
    if (!s || !col || !work || (c->tied_classifier && !cls)) {
        free(s), free(col), free(work), free(cls);
        hadamard_free(&h);
        return qerr_set(err, "out of memory");
    }
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < d; i++) s[i] = rng_uniform(&rng) < 0.5f ? -1.0f : 1.0f;
    if (cls) { /* untie: the classifier gets the final norm folded in, the embeddings do not */
        memcpy(cls, m->tok_emb, sizeof(float) * (size_t)c->vocab_size * d);
        m->classifier = cls;
        m->cfg.tied_classifier = 0;
    }
    for (int j = 0; j < c->n_layers; j++) {
        BlockWeights *b = &m->blocks[j];
        fold_norm(b->wq, qd, d, b->attn_norm);
        fold_norm(b->wk, kvd, d, b->attn_norm);
        fold_norm(b->wv, kvd, d, b->attn_norm);
        fold_norm(b->w_gate, c->hidden_dim, d, b->mlp_norm);
        fold_norm(b->w_up, c->hidden_dim, d, b->mlp_norm);
        for (int i = 0; i < d; i++) b->attn_norm[i] = b->mlp_norm[i] = 1.0f;
        rotate_inputs(b->wq, qd, &h, s, work);
        rotate_inputs(b->wk, kvd, &h, s, work);
        rotate_inputs(b->wv, kvd, &h, s, work);
        rotate_inputs(b->w_gate, c->hidden_dim, &h, s, work);
        rotate_inputs(b->w_up, c->hidden_dim, &h, s, work);
        rotate_outputs(b->wo, qd, &h, s, col, work);
        rotate_outputs(b->w_down, c->hidden_dim, &h, s, col, work);
    }
    fold_norm(m->classifier, c->vocab_size, d, m->final_norm);
    for (int i = 0; i < d; i++) m->final_norm[i] = 1.0f;
    rotate_inputs(m->classifier, c->vocab_size, &h, s, work);
    rotate_inputs(m->tok_emb, c->vocab_size, &h, s, work);
    free(s), free(col), free(work);
    hadamard_free(&h);
    return 0;
}

int model_fold_down_hadamard(Model *m, QErr *err) {
    const int d = m->cfg.dim, hd = m->cfg.hidden_dim;
    Hadamard h;
    if (hadamard_init(&h, hd, err) != 0) return qerr_wrap(err, "down_proj Hadamard of the FFN width %d", hd);
    float *work = malloc(sizeof(float) * hd);
    if (!work) {
        hadamard_free(&h);
        return qerr_set(err, "out of memory");
    }
    /* row w of W_down -> w Hh = (Hh^T w^T)^T */
    for (int j = 0; j < m->cfg.n_layers; j++) {
        for (int r = 0; r < d; r++) hadamard_transform_t(m->blocks[j].w_down + (size_t)r * hd, &h, work);
        m->blocks[j].down_had = 1; /* the forward transforms the down input online */
    }
    free(work);
    hadamard_free(&h);
    return 0;
}
