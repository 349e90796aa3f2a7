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
#include "engine/qblock.h"
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
 * group, rank (QuantConfig's group and rank of each width; the arrays hold
 * QMAX_NBITS). Sets qc to quant_config_reference with those widths; -1 when
 * n_bits or the case's width index bi is out of range, the file is short or
 * a width is outside QBITS_MIN..QBITS_MAX. */
static inline int golden_read_widths(Reader *r, int n_bits, int bi, int32_t *bits, int32_t *group,
                                     int32_t *rank, QuantConfig *qc) {
    if (n_bits < 1 || n_bits > QMAX_NBITS || bi < 0 || bi >= n_bits) return -1;
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

/* The model section, then n block cases, each read and run by run_case (0,
 * or -1 when the case is short or invalid: the loop stops there, and after
 * 50 failed checks); then the file must be at its end. what names a case in
 * the messages. 0 when every case was read. */
static inline int golden_block_cases(Reader *r, GoldenModel *m, uint32_t n,
                                     int (*run_case)(Reader *, const GoldenModel *, int), const char *what) {
    int ok = golden_read_model(r, m) == 0;
    CHECK_MSG(ok, "truncated or invalid model section");
    for (uint32_t i = 0; ok && i < n && check_failures < 50; i++) {
        ok = run_case(r, m, (int)i) == 0;
        CHECK_MSG(ok, "%s %u: truncated or invalid golden file", what, i);
    }
    if (ok) CHECK_MSG(r->pos == r->len, "golden file has %zu trailing bytes", r->len - r->pos);
    return ok ? 0 : -1;
}

/* A block case's block: w, the model section's weights (the q/k/v biases
 * where c has them), and p, qblock's parameters for c and qc (validated).
 * 0, or -1 with nothing held, the error printed for case ci. */
static inline int golden_block_init(const GoldenModel *m, const ModelConfig *c, const QuantConfig *qc, int ci,
                                    BlockWeights *w, QBlockParams *p) {
    QErr err;
    if (quant_config_validate(qc, &err) != 0 || block_weights_alloc(w, c, &err) != 0) {
        fprintf(stderr, "case %d: %s\n", ci, err.msg);
        return -1;
    }
    golden_model_weights(w, m, c->has_qkv_bias);
    if (qblock_params_init(p, c, qc, 0, &err) != 0) {
        fprintf(stderr, "case %d: %s\n", ci, err.msg);
        block_weights_free(w);
        return -1;
    }
    return 0;
}

/* Every linear's parameters as qblock_ref.py and pot_ref.py lay them, over
 * what qblock_params_init set: Bd (out x R), Bu (R x in), then each width's
 * clipping logits gamma and beta (out x groups). 0, or -1 when short. */
static inline int golden_read_params(Reader *r, QBlockParams *p, int n_bits) {
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        if (rd_bytes(r, p->adapter + q->off_Bd, sizeof(float) * (size_t)q->out * q->R) != 0 ||
            rd_bytes(r, p->adapter + q->off_Bu, sizeof(float) * (size_t)q->R * q->in) != 0)
            return -1;
        for (int j = 0; j < n_bits; j++) {
            size_t n = (size_t)q->out * fq_ngroups(&q->spec[j]);
            if (rd_bytes(r, p->lwc + q->off_gamma[j], n * sizeof(float)) != 0 ||
                rd_bytes(r, p->lwc + q->off_beta[j], n * sizeof(float)) != 0)
                return -1;
        }
    }
    return 0;
}

/* What a block case's training step takes and must give: the input and
 * target streams (B*T*C floats each), the reference loss and block output. */
typedef struct {
    float *x, *target, *out;
    float loss;
} GoldenIO;

/* Reads io, n = B*T*C; 0, or -1 when the file is short (golden_free_io after, either way). */
static inline int golden_read_io(Reader *r, size_t n, GoldenIO *io) {
    memset(io, 0, sizeof *io);
    io->x = rd_floats(r, n);
    io->target = io->x ? rd_floats(r, n) : NULL;
    io->out = io->target && rd_bytes(r, &io->loss, 4) == 0 ? rd_floats(r, n) : NULL;
    return io->out ? 0 : -1;
}

static inline void golden_free_io(GoldenIO *io) {
    free(io->x);
    free(io->target);
    free(io->out);
    memset(io, 0, sizeof *io);
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

/* A block case's reference gradients at its width bi, per linear as the
 * writers lay them: dgamma and dbeta (out x groups; dbeta only where the
 * writer has it: qblock_ref.py, not pot_ref.py), dBd (out x R), dBu (R x in). */
typedef struct {
    float *dg[N_LIN], *db[N_LIN], *dBd[N_LIN], *dBu[N_LIN];
} GoldenGrads;

/* 0, or -1 when the file is short (golden_free_grads after, either way). */
static inline int golden_read_grads(Reader *r, const QBlockParams *p, int bi, int with_dbeta,
                                    GoldenGrads *g) {
    memset(g, 0, sizeof *g);
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        size_t n = (size_t)q->out * fq_ngroups(&q->spec[bi]);
        g->dg[l] = rd_floats(r, n);
        if (with_dbeta) g->db[l] = rd_floats(r, n);
        g->dBd[l] = rd_floats(r, (size_t)q->out * q->R);
        g->dBu[l] = rd_floats(r, (size_t)q->R * q->in);
        if (!g->dBu[l]) return -1; /* read in order: the last one failing covers all */
    }
    return 0;
}

static inline void golden_free_grads(GoldenGrads *g) {
    for (int l = 0; l < N_LIN; l++) {
        free(g->dg[l]);
        free(g->db[l]);
        free(g->dBd[l]);
        free(g->dBu[l]);
    }
    memset(g, 0, sizeof *g);
}

/* A step's loss and block output (n floats) against the case's: the
 * relative loss error into *le and the output's relative norm error into
 * *oe, each a failed CHECK (named ctx) above its tolerance. */
static inline void golden_check_step(const char *ctx, double loss, const float *out, const GoldenIO *io,
                                     size_t n, double tol_loss, double tol_out, double *le, double *oe) {
    *le = fabs(loss - io->loss) / fabs(io->loss);
    rel_err(out, io->out, n, oe, NULL);
    CHECK_MSG(*le <= tol_loss, "%s: loss %.9g vs ref %.9g (rel %.3g)", ctx, loss, io->loss, *le);
    CHECK_MSG(*oe <= tol_out, "%s: block output relnorm %.3g", ctx, *oe);
}

#endif
