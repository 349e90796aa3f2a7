/* model.c — opens a checkpoint of any supported format and loads it. */
#include "model.h"

#include "../base/numeric.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ModelSource {
    ModelConfig cfg;
    ModelFormat fmt;
    char path[1024];
    void *impl;
    const ModelBackend *be;
};

int model_config_validate(const ModelConfig *c, const char *what, QErr *err) {
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->vocab_size <= 0 || c->seq_len <= 0 || c->head_dim <= 0)
        return qerr_set(err,
                        "%s: invalid model dims (dim=%d hidden=%d layers=%d heads=%d kv_heads=%d "
                        "head_dim=%d vocab=%d seq_len=%d): all must be positive",
                        what, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                        c->vocab_size, c->seq_len);
    /* every token file starts with BOS = 1 and sampling stops at EOS = 2 */
    if (c->vocab_size < 3)
        return qerr_set(err, "%s: vocab_size %d cannot hold BOS (1) and EOS (2): need at least 3", what,
                        c->vocab_size);
    if (c->n_heads % c->n_kv_heads != 0)
        return qerr_set(err, "%s: n_heads (%d) is not a multiple of n_kv_heads (%d)", what, c->n_heads,
                        c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return qerr_set(err, "%s: head_dim %d must be even for RoPE", what, c->head_dim);
    /* guard size arithmetic against absurd headers (a corrupt file) */
    if (c->dim > (1 << 16) || c->hidden_dim > (1 << 18) || c->n_layers > 4096 || c->vocab_size > (1 << 22) ||
        c->n_heads > 4096 || c->seq_len > (1 << 24) || (long)c->n_heads * c->head_dim > (1 << 17))
        return qerr_set(err, "%s: model dims out of the supported range (corrupt header?)", what);
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f))
        return qerr_set(err, "%s: rms_norm_eps and rope_theta must be positive", what);
    return 0;
}

int model_source_open(ModelSource **out, const char *path, QErr *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return qerr_set(err, "%s: model not found", path);
    ModelSource *src = calloc(1, sizeof *src);
    if (!src) return qerr_set(err, "out of memory");
    snprintf(src->path, sizeof src->path, "%s", path);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        src->fmt = MODEL_FMT_HF;
        rc = hf_open(path, &src->cfg, &src->impl, &src->be, err);
    } else {
        rc = llama2c_open(path, &src->cfg, &src->fmt, &src->impl, &src->be, err);
    }
    if (rc == 0) rc = model_config_validate(&src->cfg, path, err);
    if (rc != 0) {
        if (src->be && src->impl) src->be->close(src->impl);
        free(src);
        return -1;
    }
    *out = src;
    return 0;
}

void model_source_close(ModelSource *src) {
    if (!src) return;
    if (src->be) src->be->close(src->impl);
    free(src);
}

const ModelConfig *model_source_config(const ModelSource *src) { return &src->cfg; }
ModelFormat model_source_format(const ModelSource *src) { return src->fmt; }
const char *model_source_path(const ModelSource *src) { return src->path; }

int model_source_load_block(ModelSource *src, int j, BlockWeights *bw, QErr *err) {
    if (j < 0 || j >= src->cfg.n_layers)
        return qerr_set(err, "%s: block %d out of range [0, %d)", src->path, j, src->cfg.n_layers);
    return src->be->load_block(src->impl, &src->cfg, j, bw, err);
}

int model_source_load_embeddings(ModelSource *src, float **tok_emb, float **final_norm, float **classifier,
                                 QErr *err) {
    return src->be->load_embeddings(src->impl, &src->cfg, tok_emb, final_norm, classifier, err);
}

/* A block's tensors in their order in its one allocation (attn_norm, mlp_norm,
 * wq, wk, wv, wo, w_gate, w_up, w_down, then bq, bk, bv): their sizes into n;
 * returns how many there are (9, or 12 with the q/k/v biases). */
static int block_layout(const ModelConfig *c, size_t n[12]) {
    size_t C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    const size_t all[12] = {C, C, QD * C, KVD * C, KVD * C, C * QD, H * C, H * C, C * H, QD, KVD, KVD};
    memcpy(n, all, sizeof all);
    return c->has_qkv_bias ? 12 : 9;
}

size_t block_weights_numel(const ModelConfig *c) {
    size_t n[12], total = 0;
    int k = block_layout(c, n);
    for (int i = 0; i < k; i++) total += n[i];
    return total;
}

/* One allocation per block; the tensor pointers index into it (attn_norm is the base). */
int block_weights_alloc(BlockWeights *bw, const ModelConfig *c, QErr *err) {
    memset(bw, 0, sizeof *bw);
    float *p = calloc(block_weights_numel(c), sizeof(float));
    if (!p) return qerr_set(err, "out of memory allocating block weights");
    float **slot[12] = {&bw->attn_norm, &bw->mlp_norm, &bw->wq,     &bw->wk, &bw->wv, &bw->wo,
                        &bw->w_gate,    &bw->w_up,     &bw->w_down, &bw->bq, &bw->bk, &bw->bv};
    size_t n[12];
    int k = block_layout(c, n);
    for (int i = 0; i < k; i++) {
        *slot[i] = p;
        p += n[i];
    }
    return 0;
}

void block_weights_free(BlockWeights *bw) {
    free(bw->attn_norm);
    memset(bw, 0, sizeof *bw);
}

int model_load(Model *m, const char *path, QErr *err) {
    memset(m, 0, sizeof *m);
    ModelSource *src;
    if (model_source_open(&src, path, err) != 0) return -1;
    m->cfg = src->cfg;
    m->blocks = calloc((size_t)m->cfg.n_layers, sizeof(BlockWeights));
    if (!m->blocks) {
        model_source_close(src);
        return qerr_set(err, "out of memory");
    }
    int rc = model_source_load_embeddings(src, &m->tok_emb, &m->final_norm, &m->classifier, err);
    for (int j = 0; rc == 0 && j < m->cfg.n_layers; j++)
        rc = model_source_load_block(src, j, &m->blocks[j], err);
    model_source_close(src);
    /* NaN/Inf weights would only show up later as NaN metrics or all-zero samples */
    if (rc == 0 && model_check_finite(m, err) != 0) rc = qerr_wrap(err, "%s", path);
    if (rc != 0) {
        model_free(m);
        return -1;
    }
    return 0;
}

void model_free(Model *m) {
    if (m->blocks)
        for (int j = 0; j < m->cfg.n_layers; j++) block_weights_free(&m->blocks[j]);
    free(m->blocks);
    if (m->classifier != m->tok_emb) free(m->classifier);
    free(m->tok_emb);
    free(m->final_norm);
    memset(m, 0, sizeof *m);
}

static int check_finite_array(const float *x, size_t n, const char *block, const char *name, QErr *err) {
    char what[96];
    snprintf(what, sizeof what, "%s tensor %s", block, name);
    return floats_check_finite(x, n, what, err);
}

int block_weights_check_finite(const BlockWeights *w, const ModelConfig *c, int j, QErr *err) {
    char blk[32];
    snprintf(blk, sizeof blk, "block %d", j);
    size_t C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    if (check_finite_array(w->attn_norm, C, blk, "attn_norm", err) ||
        check_finite_array(w->mlp_norm, C, blk, "mlp_norm", err) ||
        check_finite_array(w->wq, QD * C, blk, "wq", err) ||
        check_finite_array(w->wk, KVD * C, blk, "wk", err) ||
        check_finite_array(w->wv, KVD * C, blk, "wv", err) ||
        check_finite_array(w->wo, C * QD, blk, "wo", err) ||
        check_finite_array(w->w_gate, H * C, blk, "w_gate", err) ||
        check_finite_array(w->w_up, H * C, blk, "w_up", err) ||
        check_finite_array(w->w_down, C * H, blk, "w_down", err) ||
        check_finite_array(w->bq, QD, blk, "bq", err) || check_finite_array(w->bk, KVD, blk, "bk", err) ||
        check_finite_array(w->bv, KVD, blk, "bv", err))
        return -1;
    return 0;
}

int model_check_finite(const Model *m, QErr *err) {
    const ModelConfig *c = &m->cfg;
    size_t VC = (size_t)c->vocab_size * c->dim;
    if (check_finite_array(m->tok_emb, VC, "embeddings", "tok_emb", err) ||
        check_finite_array(m->final_norm, c->dim, "final", "norm", err) ||
        check_finite_array(m->classifier, VC, "final", "classifier", err))
        return -1;
    for (int j = 0; j < c->n_layers; j++)
        if (block_weights_check_finite(&m->blocks[j], c, j, err) != 0) return -1;
    return 0;
}
