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

/* Every row w of W_down -> w Hh (fold: flag set, the forward then
 * transforms the down input online) or back -> w Hh^T (unfold: the flagged
 * blocks only, flag cleared). */
static int down_rows_hadamard(Model *m, int fold, QErr *err) {
    const int d = m->cfg.dim, hd = m->cfg.hidden_dim;
    int any = 0;
    for (int j = 0; j < m->cfg.n_layers; j++) any |= fold || m->blocks[j].down_had;
    if (!any) return 0;
    Hadamard h;
    if (hadamard_init(&h, hd, err) != 0) return qerr_wrap(err, "down_proj Hadamard of the FFN width %d", hd);
    float *work = malloc(sizeof(float) * hd);
    if (!work) {
        hadamard_free(&h);
        return qerr_set(err, "out of memory");
    }
    for (int j = 0; j < m->cfg.n_layers; j++) {
        BlockWeights *b = &m->blocks[j];
        if (!fold && !b->down_had) continue;
        for (int r = 0; r < d; r++) { /* w Hh = (Hh^T w^T)^T */
            float *row = b->w_down + (size_t)r * hd;
            if (fold)
                hadamard_transform_t(row, &h, work);
            else
                hadamard_transform(row, &h, work);
        }
        b->down_had = fold;
    }
    free(work);
    hadamard_free(&h);
    return 0;
}

int model_fold_down_hadamard(Model *m, QErr *err) { return down_rows_hadamard(m, 1, err); }

int model_unfold_down_hadamard(Model *m, QErr *err) { return down_rows_hadamard(m, 0, err); }

/* ---- the calibration's rotation, block by block (rotate.h) ---- */

/* with_down: also the FFN width's transform (rotate_block's down_proj fold) */
static int plan_init(RotatePlan *rp, const ModelConfig *c, uint64_t seed, int with_down, QErr *err) {
    memset(rp, 0, sizeof *rp);
    if (hadamard_init(&rp->hd, c->dim, err) != 0)
        return qerr_wrap(err, "Hadamard rotation of the model width %d", c->dim);
    if (with_down && hadamard_init(&rp->hh, c->hidden_dim, err) != 0) {
        hadamard_free(&rp->hd);
        return qerr_wrap(err, "down_proj Hadamard of the FFN width %d", c->hidden_dim);
    }
    rp->s = malloc(sizeof(float) * c->dim);
    rp->col = malloc(sizeof(float) * c->dim);
    rp->work = malloc(sizeof(float) * c->dim);
    rp->hw = with_down ? malloc(sizeof(float) * c->hidden_dim) : NULL;
    if (!rp->s || !rp->col || !rp->work || (with_down && !rp->hw)) {
        rotate_plan_free(rp);
        return qerr_set(err, "out of memory");
    }
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < c->dim; i++) rp->s[i] = rng_uniform(&rng) < 0.5f ? -1.0f : 1.0f;
    return 0;
}

int rotate_plan_init(RotatePlan *rp, const ModelConfig *c, uint64_t seed, QErr *err) {
    return plan_init(rp, c, seed, 1, err);
}

void rotate_plan_free(RotatePlan *rp) {
    hadamard_free(&rp->hd);
    hadamard_free(&rp->hh);
    free(rp->s), free(rp->col), free(rp->work), free(rp->hw);
    memset(rp, 0, sizeof *rp);
}

/* Norms folded into the linears reading them (norms 1), and the residual
 * rotation of every linear that reads or writes the residual stream. */
static void rotate_block_residual(RotatePlan *rp, const ModelConfig *c, BlockWeights *b) {
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    fold_norm(b->wq, qd, d, b->attn_norm);
    fold_norm(b->wk, kvd, d, b->attn_norm);
    fold_norm(b->wv, kvd, d, b->attn_norm);
    fold_norm(b->w_gate, c->hidden_dim, d, b->mlp_norm);
    fold_norm(b->w_up, c->hidden_dim, d, b->mlp_norm);
    for (int i = 0; i < d; i++) b->attn_norm[i] = b->mlp_norm[i] = 1.0f;
    rotate_inputs(b->wq, qd, &rp->hd, rp->s, rp->work);
    rotate_inputs(b->wk, kvd, &rp->hd, rp->s, rp->work);
    rotate_inputs(b->wv, kvd, &rp->hd, rp->s, rp->work);
    rotate_inputs(b->w_gate, c->hidden_dim, &rp->hd, rp->s, rp->work);
    rotate_inputs(b->w_up, c->hidden_dim, &rp->hd, rp->s, rp->work);
    rotate_outputs(b->wo, qd, &rp->hd, rp->s, rp->col, rp->work);
    rotate_outputs(b->w_down, c->hidden_dim, &rp->hd, rp->s, rp->col, rp->work);
}

void rotate_block(RotatePlan *rp, const ModelConfig *c, BlockWeights *b) {
    rotate_block_residual(rp, c, b);
    for (int r = 0; r < c->dim; r++)
        hadamard_transform_t(b->w_down + (size_t)r * c->hidden_dim, &rp->hh, rp->hw);
    b->down_had = 1;
}

void rotate_embeddings(RotatePlan *rp, const ModelConfig *c, float *tok_emb) {
    rotate_inputs(tok_emb, c->vocab_size, &rp->hd, rp->s, rp->work);
}

void rotate_head(RotatePlan *rp, const ModelConfig *c, float *final_norm, float *classifier) {
    fold_norm(classifier, c->vocab_size, c->dim, final_norm);
    for (int i = 0; i < c->dim; i++) final_norm[i] = 1.0f;
    rotate_inputs(classifier, c->vocab_size, &rp->hd, rp->s, rp->work);
}

/* The whole model: untied, every block (with_down: rotate_block, else the
 * residual rotation alone), head, embeddings. */
static int rotate_model(Model *m, uint64_t seed, int with_down, QErr *err) {
    ModelConfig *c = &m->cfg;
    RotatePlan rp;
    if (plan_init(&rp, c, seed, with_down, err) != 0) return -1;
    if (c->tied_classifier) { /* untie: the classifier gets the final norm folded in, the embeddings do not */
        float *cls = malloc(sizeof(float) * (size_t)c->vocab_size * c->dim);
        if (!cls) {
            rotate_plan_free(&rp);
            return qerr_set(err, "out of memory");
        }
        memcpy(cls, m->tok_emb, sizeof(float) * (size_t)c->vocab_size * c->dim);
        m->classifier = cls;
        c->tied_classifier = 0;
    }
    for (int j = 0; j < c->n_layers; j++) {
        if (with_down)
            rotate_block(&rp, c, &m->blocks[j]);
        else
            rotate_block_residual(&rp, c, &m->blocks[j]);
    }
    rotate_head(&rp, c, m->final_norm, m->classifier);
    rotate_embeddings(&rp, c, m->tok_emb);
    rotate_plan_free(&rp);
    return 0;
}

int model_rotate_hadamard(Model *m, uint64_t seed, QErr *err) { return rotate_model(m, seed, 0, err); }

int model_rotate_full(Model *m, uint64_t seed, QErr *err) { return rotate_model(m, seed, 1, err); }
