/* llama2c.c — karpathy/llama2.c checkpoints: the legacy format (7 x int32
 * header, fp32 weights grouped by tensor kind across layers, negative vocab =
 * unshared classifier) and version 1 (magic "ak42", 256-byte header). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define AK42_MAGIC      0x616b3432u
#define V1_HEADER_BYTES 256

typedef struct {
    MappedFile mf;
    int version; /* 0 legacy, 1 ak42 */
    /* float offsets (from the file start, in floats after the header) */
    size_t off_attn_norm, off_mlp_norm, off_final_norm, off_tok_emb;
    size_t off_wq, off_wk, off_wv, off_wo, off_w1, off_w2, off_w3, off_cls;
    const float *base; /* first float after the header */
} L2c;

static void copy_floats(float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof(float)); }

static int l2c_load_block(void *impl, const ModelConfig *c, int j, BlockWeights *bw, QErr *err) {
    L2c *f = impl;
    if (block_weights_alloc(bw, c, err) != 0) return -1;
    size_t C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    const float *b = f->base;
    copy_floats(bw->attn_norm, b + f->off_attn_norm + j * C, C);
    copy_floats(bw->mlp_norm, b + f->off_mlp_norm + j * C, C);
    copy_floats(bw->wq, b + f->off_wq + j * QD * C, QD * C);
    copy_floats(bw->wk, b + f->off_wk + j * KVD * C, KVD * C);
    copy_floats(bw->wv, b + f->off_wv + j * KVD * C, KVD * C);
    copy_floats(bw->wo, b + f->off_wo + j * C * QD, C * QD);
    copy_floats(bw->w_gate, b + f->off_w1 + j * H * C, H * C);
    copy_floats(bw->w_down, b + f->off_w2 + j * C * H, C * H);
    copy_floats(bw->w_up, b + f->off_w3 + j * H * C, H * C);
    return 0;
}

static int l2c_load_embeddings(void *impl, const ModelConfig *c, float **tok_emb, float **final_norm,
                               float **classifier, QErr *err) {
    L2c *f = impl;
    size_t VC = (size_t)c->vocab_size * c->dim;
    *tok_emb = malloc(VC * sizeof(float));
    *final_norm = malloc((size_t)c->dim * sizeof(float));
    *classifier = c->tied_classifier ? *tok_emb : malloc(VC * sizeof(float));
    if (!*tok_emb || !*final_norm || !*classifier) {
        if (*classifier != *tok_emb) free(*classifier);
        free(*tok_emb);
        free(*final_norm);
        *tok_emb = *final_norm = *classifier = NULL;
        return qerr_set(err, "%s: out of memory loading embeddings", f->mf.path);
    }
    copy_floats(*tok_emb, f->base + f->off_tok_emb, VC);
    copy_floats(*final_norm, f->base + f->off_final_norm, c->dim);
    if (!c->tied_classifier) copy_floats(*classifier, f->base + f->off_cls, VC);
    return 0;
}

static void l2c_close(void *impl) {
    L2c *f = impl;
    mapfile_close(&f->mf);
    free(f);
}

static const ModelBackend l2c_backend = {l2c_load_block, l2c_load_embeddings, l2c_close};

/* The sections of a llama2.c file: each one tensor kind across all layers. */
enum {
    S_TOK_EMB,
    S_ATTN_NORM,
    S_WQ,
    S_WK,
    S_WV,
    S_WO,
    S_MLP_NORM,
    S_W1,
    S_W2,
    S_W3,
    S_FINAL_NORM,
    S_FREQ_CIS,
    N_SECTIONS
};

/* Their order in a legacy file (freq_cis_real + freq_cis_imag last: unused)
 * and in a v1 file (the norms first, no freq_cis); the classifier follows
 * both when it is not tied. */
static const int LEGACY_ORDER[] = {S_TOK_EMB,  S_ATTN_NORM, S_WQ, S_WK, S_WV,         S_WO,
                                   S_MLP_NORM, S_W1,        S_W2, S_W3, S_FINAL_NORM, S_FREQ_CIS};
static const int V1_ORDER[] = {S_ATTN_NORM, S_MLP_NORM, S_FINAL_NORM, S_TOK_EMB, S_WQ, S_WK,
                               S_WV,        S_WO,       S_W1,         S_W2,      S_W3};

/* Lays out the float offsets; returns the total number of floats. */
static size_t l2c_layout(L2c *f, const ModelConfig *c) {
    size_t L = c->n_layers, C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    size_t off_freq_cis;
    size_t *const off[N_SECTIONS] = {&f->off_tok_emb, &f->off_attn_norm, &f->off_wq,         &f->off_wk,
                                     &f->off_wv,      &f->off_wo,        &f->off_mlp_norm,   &f->off_w1,
                                     &f->off_w2,      &f->off_w3,        &f->off_final_norm, &off_freq_cis};
    const size_t n[N_SECTIONS] = {V * C,       L * C,      L * QD * C, L * KVD * C,
                                  L * KVD * C, L * C * QD, L * C,      L * H * C,
                                  L * C * H,   L * H * C,  C,          (size_t)c->seq_len * c->head_dim};
    const int *order = f->version == 0 ? LEGACY_ORDER : V1_ORDER;
    size_t n_order =
        f->version == 0 ? sizeof LEGACY_ORDER / sizeof *LEGACY_ORDER : sizeof V1_ORDER / sizeof *V1_ORDER;
    size_t o = 0;
    for (size_t i = 0; i < n_order; i++) {
        *off[order[i]] = o;
        o += n[order[i]];
    }
    f->off_cls = o;
    if (!c->tied_classifier) o += V * C;
    return o;
}

int llama2c_open(const char *path, ModelConfig *cfg, ModelFormat *fmt, void **impl, const ModelBackend **be,
                 QErr *err) {
    L2c *f = calloc(1, sizeof *f);
    if (!f) return qerr_set(err, "out of memory");
    if (mapfile_open(&f->mf, path, err) != 0) {
        free(f);
        return -1;
    }
    const uint8_t *d = f->mf.data;
    size_t size = f->mf.size;
    int32_t h[7];
    size_t header_bytes;
    uint32_t magic = 0;
    if (size >= 4) memcpy(&magic, d, 4);
    if (magic == AK42_MAGIC) {
        if (size < V1_HEADER_BYTES) {
            l2c_close(f);
            return qerr_set(err, "%s: truncated llama2.c v1 header (%zu of %d bytes)", path, size,
                            V1_HEADER_BYTES);
        }
        int32_t version;
        memcpy(&version, d + 4, 4);
        if (version != 1) {
            l2c_close(f);
            return qerr_set(err,
                            "%s: llama2.c checkpoint version %d is not supported (only version 1 "
                            "fp32; version 2 is int8-quantized)",
                            path, version);
        }
        memcpy(h, d + 8, sizeof h);
        f->version = 1;
        header_bytes = V1_HEADER_BYTES;
        memset(cfg, 0, sizeof *cfg);
        cfg->tied_classifier = d[8 + sizeof h] != 0;
        *fmt = MODEL_FMT_LLAMA2C_V1;
    } else {
        if (size < sizeof h) {
            l2c_close(f);
            return qerr_set(err, "%s: truncated llama2.c header (%zu of 28 bytes)", path, size);
        }
        memcpy(h, d, sizeof h);
        f->version = 0;
        header_bytes = sizeof h;
        memset(cfg, 0, sizeof *cfg);
        cfg->tied_classifier = h[5] > 0;
        if (h[5] < 0) h[5] = -h[5];
        *fmt = MODEL_FMT_LLAMA2C_LEGACY;
    }
    cfg->dim = h[0];
    cfg->hidden_dim = h[1];
    cfg->n_layers = h[2];
    cfg->n_heads = h[3];
    cfg->n_kv_heads = h[4];
    cfg->vocab_size = h[5];
    cfg->seq_len = h[6];
    cfg->head_dim = cfg->n_heads > 0 ? cfg->dim / cfg->n_heads : 0;
    cfg->rope_theta = 10000.0f;
    cfg->norm_eps = 1e-5f;
    cfg->rope_halves = 0;
    if (model_config_validate(cfg, path, err) != 0) {
        l2c_close(f);
        return -1;
    }
    if (cfg->head_dim * cfg->n_heads != cfg->dim) {
        l2c_close(f);
        return qerr_set(err, "%s: dim %d is not a multiple of n_heads %d", path, cfg->dim, cfg->n_heads);
    }
    size_t expect = header_bytes + l2c_layout(f, cfg) * sizeof(float);
    if (size != expect) {
        l2c_close(f);
        return qerr_set(err,
                        "%s: header dims (dim=%d hidden=%d layers=%d heads=%d kv=%d vocab=%d "
                        "seq=%d) need %zu bytes but the file has %zu (truncated or not a "
                        "llama2.c checkpoint)",
                        path, cfg->dim, cfg->hidden_dim, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads,
                        cfg->vocab_size, cfg->seq_len, expect, size);
    }
    f->base = (const float *)(d + header_bytes);
    *impl = f;
    *be = &l2c_backend;
    return 0;
}

static int write_floats(AtomicFile *af, const float *x, size_t n, QErr *err) {
    return atomic_write(af, x, n * sizeof(float), err);
}

/* Writes the legacy format (tests build fixtures with it). Requires the
 * interleaved RoPE convention, as llama2.c itself uses. */
int llama2c_write_legacy(const char *path, const Model *m, QErr *err) {
    const ModelConfig *c = &m->cfg;
    if (c->rope_halves || c->has_qkv_bias)
        return qerr_set(err, "%s: llama2.c format needs interleaved RoPE and no q/k/v biases", path);
    if (c->head_dim * c->n_heads != c->dim)
        return qerr_set(err, "%s: llama2.c format needs head_dim * n_heads == dim", path);
    AtomicFile *af = atomic_open(path, err);
    if (!af) return -1;
    int32_t h[7] = {c->dim,     c->hidden_dim, c->n_layers,
                    c->n_heads, c->n_kv_heads, c->tied_classifier ? c->vocab_size : -c->vocab_size,
                    c->seq_len};
    size_t L = c->n_layers, C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    int rc = atomic_write(af, h, sizeof h, err);
    rc = rc || write_floats(af, m->tok_emb, V * C, err);
#define EACH_LAYER(field, n) \
    for (size_t j = 0; rc == 0 && j < L; j++) rc = write_floats(af, m->blocks[j].field, n, err)
    EACH_LAYER(attn_norm, C);
    EACH_LAYER(wq, QD * C);
    EACH_LAYER(wk, KVD * C);
    EACH_LAYER(wv, KVD * C);
    EACH_LAYER(wo, C * QD);
    EACH_LAYER(mlp_norm, C);
    EACH_LAYER(w_gate, H * C);
    EACH_LAYER(w_down, C * H);
    EACH_LAYER(w_up, H * C);
#undef EACH_LAYER
    rc = rc || write_floats(af, m->final_norm, C, err);
    if (rc == 0) {
        /* legacy freq_cis tables: unused by loaders, zeros keep the layout */
        size_t nf = (size_t)c->seq_len * c->head_dim;
        float *z = calloc(nf ? nf : 1, sizeof(float));
        rc = z ? write_floats(af, z, nf, err) : qerr_set(err, "out of memory");
        free(z);
    }
    if (rc == 0 && !c->tied_classifier) rc = write_floats(af, m->classifier, V * C, err);
    if (rc != 0) {
        atomic_abort(af);
        return -1;
    }
    return atomic_commit(af, err);
}
