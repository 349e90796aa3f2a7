#include "rotate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/rng.h"

void fwht(float *x, int n) {
    for (int h = 1; h < n; h *= 2)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

/* W (rows, dim) -> W diag(g): each column scaled by the norm weight it reads */
static void fold_norm(float *W, int rows, int dim, const float *g) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < dim; i++) W[(size_t)r * dim + i] *= g[i];
}

/* W (rows, dim) -> W Q = (W diag(s)) H / sqrt(dim), row by row */
static void rotate_inputs(float *W, int rows, int dim, const float *s) {
    const float scale = 1.0f / sqrtf((float)dim);
    for (int r = 0; r < rows; r++) {
        float *w = W + (size_t)r * dim;
        for (int i = 0; i < dim; i++) w[i] *= s[i];
        fwht(w, dim);
        for (int i = 0; i < dim; i++) w[i] *= scale;
    }
}

/* W (dim, cols) -> Q^T W = H diag(s) W / sqrt(dim), column by column
 * (col holds one column) */
static void rotate_outputs(float *W, int dim, int cols, const float *s, float *col) {
    const float scale = 1.0f / sqrtf((float)dim);
    for (int c = 0; c < cols; c++) {
        for (int i = 0; i < dim; i++) col[i] = W[(size_t)i * cols + c] * s[i];
        fwht(col, dim);
        for (int i = 0; i < dim; i++) W[(size_t)i * cols + c] = col[i] * scale;
    }
}

int model_rotate_hadamard(Model *m, uint64_t seed, QErr *err) {
    const ModelConfig *c = &m->cfg;
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    if (d < 2 || (d & (d - 1)) != 0)
        return qerr_setc(err, QERR_USAGE,
                         "Hadamard rotation: the model width is %d, not a power of two (sizes with a known "
                         "Hadamard factor, e.g. 12 * 2^k, are not supported yet)",
                         d);
    float *s = malloc(sizeof(float) * d), *col = malloc(sizeof(float) * d);
    float *cls = c->tied_classifier ? malloc(sizeof(float) * (size_t)c->vocab_size * d) : NULL;
    if (!s || !col || (c->tied_classifier && !cls)) {
        free(s), free(col), free(cls);
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
        rotate_inputs(b->wq, qd, d, s);
        rotate_inputs(b->wk, kvd, d, s);
        rotate_inputs(b->wv, kvd, d, s);
        rotate_inputs(b->w_gate, c->hidden_dim, d, s);
        rotate_inputs(b->w_up, c->hidden_dim, d, s);
        rotate_outputs(b->wo, d, qd, s, col);
        rotate_outputs(b->w_down, d, c->hidden_dim, s, col);
    }
    fold_norm(m->classifier, c->vocab_size, d, m->final_norm);
    for (int i = 0; i < d; i++) m->final_norm[i] = 1.0f;
    rotate_inputs(m->classifier, c->vocab_size, d, s);
    rotate_inputs(m->tok_emb, c->vocab_size, d, s);
    free(s);
    free(col);
    return 0;
}
