/* golden.h — what the tests that check against PyTorch-generated references
 * (golden files tests/data/<name>_golden.bin, written by the scripts in
 * tests/ref) share: a bounds-checked cursor over a file's bytes, the file's
 * header, the block model section of qblock_ref.py / pot_ref.py, and the
 * relative error of a result against its reference. The formats are the
 * writers' (see each script's top). */
#ifndef QUEPT_GOLDEN_H
#define QUEPT_GOLDEN_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "check.h"
#include "model/model.h"
#include "quant/fakequant.h"
#include "quant/qconfig.h"

typedef struct {
    char *buf;
    size_t len, pos;
} Reader;

static inline int rd_bytes(Reader *r, void *dst, size_t n) {
    if (r->len - r->pos < n) return -1;
    memcpy(dst, r->buf + r->pos, n);
    r->pos += n;
    return 0;
}

/* n floats into a fresh buffer, or NULL when the file is too short. */
static inline float *rd_floats(Reader *r, size_t n) {
    float *p = malloc(n ? n * sizeof(float) : 1);
    if (!p || rd_bytes(r, p, n * sizeof(float)) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static inline float *zalloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* Reads QUEPT_TEST_DATA/name whole into r and checks its header, as every
 * writer lays it: char[4] magic; uint32 version (1); uint32 count (>= min,
 * into *count). A header that does not match is a failed CHECK; a file that
 * cannot be read is a failed CHECK naming its writer (tests/ref/script) and
 * returns -1. Else 0, r just past the header; golden_close(r) after. */
static inline int golden_open(Reader *r, const char *name, const char *magic_want, const char *script,
                              uint32_t min, uint32_t *count) {
    char path[1024];
    QErr err;
    memset(r, 0, sizeof *r);
    snprintf(path, sizeof path, "%s/%s", QUEPT_TEST_DATA, name);
    if (file_read_all(path, &r->buf, &r->len, &err) != 0) {
        CHECK_MSG(0, "%s (regenerate with /usr/bin/python3 tests/ref/%s)", err.msg, script);
        return -1;
    }
    char magic[4] = {0};
    uint32_t ver = 0;
    *count = 0;
    CHECK(rd_bytes(r, magic, 4) == 0 && memcmp(magic, magic_want, 4) == 0);
    CHECK(rd_bytes(r, &ver, 4) == 0 && ver == 1);
    CHECK(rd_bytes(r, count, 4) == 0 && *count >= min);
    return 0;
}

static inline void golden_close(Reader *r) {
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* The one block of qblock_ref.py / pot_ref.py (model_bytes): int32 C, H,
 * NH, NKV, hd, B, T; float32 theta, eps; then float32 attn_norm (C),
 * wq (QD,C), wk (KVD,C), wv (KVD,C), wo (C,QD), bq (QD), bk (KVD), bv (KVD),
 * mlp_norm (C), w_gate (H,C), w_up (H,C), w_down (C,H). */
typedef struct {
    int C, H, NH, NKV, hd, B, T;
    float theta, eps;
    float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *mlp_norm, *w_gate, *w_up, *w_down;
} GoldenModel;

/* Zero m before the call: golden_free_model(m) is right after a failure too. */
static inline int golden_read_model(Reader *r, GoldenModel *m) {
    int32_t h[7];
    float f[2];
    if (rd_bytes(r, h, sizeof h) != 0 || rd_bytes(r, f, sizeof f) != 0) return -1;
    m->C = h[0], m->H = h[1], m->NH = h[2], m->NKV = h[3], m->hd = h[4], m->B = h[5], m->T = h[6];
    m->theta = f[0], m->eps = f[1];
    if (m->C < 1 || m->C > 4096 || m->H < 1 || m->H > 4096 || m->NH < 1 || m->NKV < 1 ||
        m->NH % m->NKV != 0 || m->hd < 2 || m->hd % 2 != 0 || m->hd > 1024 || m->B < 1 || m->B > 64 ||
        m->T < 1 || m->T > 1024)
        return -1;
    size_t C = m->C, H = m->H, QD = (size_t)m->NH * m->hd, KVD = (size_t)m->NKV * m->hd;
    m->attn_norm = rd_floats(r, C);
    m->wq = rd_floats(r, QD * C);
    m->wk = rd_floats(r, KVD * C);
    m->wv = rd_floats(r, KVD * C);
    m->wo = rd_floats(r, C * QD);
    m->bq = rd_floats(r, QD);
    m->bk = rd_floats(r, KVD);
    m->bv = rd_floats(r, KVD);
    m->mlp_norm = rd_floats(r, C);
    m->w_gate = rd_floats(r, H * C);
    m->w_up = rd_floats(r, H * C);
    m->w_down = rd_floats(r, C * H);
    return m->w_down ? 0 : -1; /* read in order: the last one failing covers all */
}

static inline void golden_free_model(GoldenModel *m) {
    float *all[] = {m->attn_norm, m->wq, m->wk,       m->wv,     m->wo,   m->bq,
                    m->bk,        m->bv, m->mlp_norm, m->w_gate, m->w_up, m->w_down};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* Copies the model's weights into w (allocated for its shapes); the q/k/v
 * biases only when bias is set. */
static inline void golden_model_weights(BlockWeights *w, const GoldenModel *m, int bias) {
    size_t C = m->C, H = m->H, QD = (size_t)m->NH * m->hd, KVD = (size_t)m->NKV * m->hd;
    memcpy(w->attn_norm, m->attn_norm, C * sizeof(float));
    memcpy(w->mlp_norm, m->mlp_norm, C * sizeof(float));
    memcpy(w->wq, m->wq, QD * C * sizeof(float));
    memcpy(w->wk, m->wk, KVD * C * sizeof(float));
    memcpy(w->wv, m->wv, KVD * C * sizeof(float));
    memcpy(w->wo, m->wo, C * QD * sizeof(float));
    memcpy(w->w_gate, m->w_gate, H * C * sizeof(float));
    memcpy(w->w_up, m->w_up, H * C * sizeof(float));
    memcpy(w->w_down, m->w_down, C * H * sizeof(float));
    if (bias) {
        memcpy(w->bq, m->bq, QD * sizeof(float));
        memcpy(w->bk, m->bk, KVD * sizeof(float));
        memcpy(w->bv, m->bv, KVD * sizeof(float));
    }
}

/* The one-block config of the model section, with a case's RoPE convention
 * and q/k/v biases. */
static inline ModelConfig golden_block_config(const GoldenModel *m, int halves, int bias) {
    ModelConfig c = {.dim = m->C,
                     .hidden_dim = m->H,
                     .n_layers = 1,
                     .n_heads = m->NH,
                     .n_kv_heads = m->NKV,
                     .head_dim = m->hd,
                     .vocab_size = 1,
                     .seq_len = m->T,
                     .rope_theta = m->theta,
                     .norm_eps = m->eps,
                     .rope_halves = halves,
                     .has_qkv_bias = bias};
    return c;
}

/* A block case's widths, as every writer lays them: int32[n_bits] bits,
 * group, rank (QuantConfig's group and rank of each width). Sets qc to
 * quant_config_reference with those widths; -1 when the file is short or a
 * width is outside QBITS_MIN..QBITS_MAX. */
static inline int golden_read_widths(Reader *r, int n_bits, int32_t *bits, int32_t *group, int32_t *rank,
                                     QuantConfig *qc) {
    if (rd_bytes(r, bits, 4 * (size_t)n_bits) || rd_bytes(r, group, 4 * (size_t)n_bits) ||
        rd_bytes(r, rank, 4 * (size_t)n_bits))
        return -1;
    quant_config_reference(qc);
    qc->n_bits = n_bits;
    for (int j = 0; j < n_bits; j++) {
        if (bits[j] < QBITS_MIN || bits[j] > QBITS_MAX) return -1;
        qc->bits[j] = bits[j];
        qc->group[bits[j]] = group[j];
        qc->rank[bits[j]] = rank[j];
    }
    return 0;
}

/* The quantizer geometry a fake-quantizer case starts with, as both writers
 * (fakequant_ref.py, pot_ref.py) lay it: int32 out, in, bits, group, rank, R.
 * The rest of the spec is the caller's. */
static inline FqSpec golden_spec(const int32_t h[6]) {
    FqSpec sp = {.out = h[0], .in = h[1], .bits = h[2], .group = h[3], .rank = h[4], .R = h[5]};
    return sp;
}

/* ||c - ref|| / ||ref|| and max|c - ref| / max|ref| (each absolute when ref
 * is all zero, so both are 0 when c == ref == 0); maxrel may be NULL. */
static inline void rel_err(const float *c, const float *ref, size_t n, double *relnorm, double *maxrel) {
    double num = 0, den = 0, mx = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)c[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > mx) mx = fabs(d);
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    *relnorm = den > 0 ? sqrt(num / den) : sqrt(num);
    if (maxrel) *maxrel = mr > 0 ? mx / mr : mx;
}

#endif
