/* test_layers_grad.c — every layer backward (common/nn/layers.c) and the
 * whole block_backward (common/nn/block.c) against central
 * finite differences, for EVERY input and weight element.
 *
 * Method: L = sum(out * R) for a fixed random R (the sum in double), so the
 * upstream gradient is R. The numerical gradient is
 * (L(p + eps) - L(p - eps)) / h, h the step actually representable in
 * float32 ((float)(p+eps) - (float)(p-eps)).
 *
 * Tolerance, every element: |analytic - numeric| <= 1e-3 + 1e-2 * |numeric|.
 * Step: eps = 1e-3 for the single layers; 4e-3 for the whole block. The
 * layers run in float32, so L carries ~1e-7 relative rounding noise per
 * output, which the difference amplifies by 1/eps; through a whole block
 * that noise reaches ~3e-3 at eps = 1e-3 (measured: the error falls as 1/eps,
 * 3e-3 → 7e-4 → 2e-4 at eps 1e-3, 4e-3, 1e-2 — noise, not a wrong gradient),
 * while the O(eps^2) truncation error stays ~1e-5 at 4e-3. Over 100 seeds
 * (QUEPT_TEST_SEED) the largest fraction of the tolerance used is 0.56.
 * A wrong term (a missing softmax row-sum, the rms normaliser's r^3 term, a
 * missed GQA accumulation, a RoPE sign, a dropped residual) moves gradients by
 * O(0.1..1), far outside the tolerance (checked by breaking terms by hand).
 * Each check prints its max abs error, max relative error (over elements with
 * |numeric| >= 0.05) and the largest fraction of the tolerance used.
 *
 * Also: backward accumulates (calling it twice gives 2x, |g2 - 2 g1| <= 1e-5
 * relative — sgemm's beta=1 may fuse differently), RoPE backward inverts
 * forward, block_backward reads neither a->tmp nor stale scratch (both are
 * poisoned with NaN), and NULL weight-gradient entries / gw = NULL give the
 * same dx and the same remaining gradients. */
#include <stdint.h>
#include <string.h>

#include "base/rng.h"
#include "check.h"
#include "fixtures.h"
#include "nn/block.h"
#include "nn/layers.h"

#define FD_EPS       1e-3f
#define FD_EPS_BLOCK 4e-3f
#define TOL_ABS      1e-3
#define TOL_REL      1e-2
#define REL_FLOOR    0.05
#define TOL_ACC      1e-5

static Rng rng;

static float *randn(size_t n, float scale, float shift) {
    float *p = malloc(n * sizeof(float));
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = shift + scale * rng_normal(&rng);
    return p;
}

static float *zeros(size_t n) {
    float *p = calloc(n, sizeof(float));
    if (!p) abort();
    return p;
}

static float *copy_of(const float *src, size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) abort();
    memcpy(p, src, n * sizeof(float));
    return p;
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* The worst numbers of one layer (over all its checked tensors). */
typedef struct {
    const char *name;
    size_t n;
    float eps; /* FD_EPS, or FD_EPS_BLOCK */
    double max_abs, max_rel, max_use;
} Stats;

static void stats_print(const Stats *s) {
    printf("%-28s %4zu elems  eps %.0e  max|a-n| %.2e  max rel %.2e  tol use %.3f\n", s->name, s->n,
           (double)s->eps, s->max_abs, s->max_rel, s->max_use);
}

typedef double (*LossFn)(void *ctx);

/* Compares g (n) with the central difference of f over p (n). */
static void fd_check(const char *what, LossFn f, void *ctx, float *p, const float *g, size_t n, Stats *st) {
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        float save = p[i];
        float hi = save + st->eps, lo = save - st->eps;
        p[i] = hi;
        double lp = f(ctx);
        p[i] = lo;
        double lm = f(ctx);
        p[i] = save;
        double num = (lp - lm) / ((double)hi - (double)lo);
        double err = fabs((double)g[i] - num);
        double tol = TOL_ABS + TOL_REL * fabs(num);
        if (err > st->max_abs) st->max_abs = err;
        if (fabs(num) >= REL_FLOOR && err / fabs(num) > st->max_rel) st->max_rel = err / fabs(num);
        if (err / tol > st->max_use) st->max_use = err / tol;
        if (!(err <= tol)) {
            if (shown++ < 5)
                fprintf(stderr, "%s: %s[%zu]: analytic %.6g vs numeric %.6g\n", st->name, what, i,
                        (double)g[i], num);
            check_failures++;
        }
    }
    st->n += n;
}

/* g2 (after two backward calls from zero) == 2 * g1 (after one). */
static void check_twice(const char *what, const float *g1, const float *g2, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 2.0 * g1[i];
        if (!(fabs(g2[i] - want) <= TOL_ACC * (fabs(want) + 1e-3))) bad++;
    }
    CHECK_MSG(bad == 0, "%s: %d element(s) not accumulated (+=)", what, bad);
}

/* ---- rmsnorm ---------------------------------------------------------- */

typedef struct {
    int N, C;
    float *inp, *w, *out, *rstd, *R;
} RmsCtx;

static double rms_loss(void *p) {
    RmsCtx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f);
    return dot_d(c->out, c->R, (size_t)c->N * c->C);
}

static void test_rmsnorm(void) {
    RmsCtx c = {.N = 6, .C = 8};
    size_t nc = (size_t)c.N * c.C;
    c.inp = randn(nc, 1.0f, 0.0f);
    c.w = randn(c.C, 0.3f, 1.0f);
    c.out = zeros(nc);
    c.rstd = zeros(c.N);
    c.R = randn(nc, 1.0f, 0.0f);
    float *dinp = zeros(nc), *dw = zeros(c.C);
    rms_loss(&c);
    rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C);
    Stats st = {.name = "rmsnorm (dinp, dweight)", .eps = FD_EPS};
    fd_check("dinp", rms_loss, &c, c.inp, dinp, nc, &st);
    fd_check("dweight", rms_loss, &c, c.w, dw, c.C, &st);
    stats_print(&st);

    float *dinp1 = copy_of(dinp, nc), *dw1 = copy_of(dw, c.C);
    rms_loss(&c);
    rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C);
    check_twice("rmsnorm dinp", dinp1, dinp, nc);
    check_twice("rmsnorm dweight", dw1, dw, c.C);
    free(dinp1), free(dw1), free(dinp), free(dw);
    free(c.inp), free(c.w), free(c.out), free(c.rstd), free(c.R);
}

/* ---- matmul ----------------------------------------------------------- */

typedef struct {
    int N, IC, OC;
    float *inp, *w, *b, *out, *R;
} MmCtx;

static double mm_loss(void *p) {
    MmCtx *c = p;
    matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->IC, c->OC);
    return dot_d(c->out, c->R, (size_t)c->N * c->OC);
}

static void test_matmul(void) {
    MmCtx c = {.N = 6, .IC = 8, .OC = 12};
    size_t ni = (size_t)c.N * c.IC, nw = (size_t)c.OC * c.IC, no = (size_t)c.N * c.OC;
    c.inp = randn(ni, 1.0f, 0.0f);
    c.w = randn(nw, 0.35f, 0.0f);
    c.b = randn(c.OC, 0.5f, 0.0f);
    c.out = zeros(no);
    c.R = randn(no, 1.0f, 0.0f);
    float *dinp = zeros(ni), *dw = zeros(nw), *db = zeros(c.OC);
    matmul_backward(dinp, dw, db, c.R, c.inp, c.w, c.N, c.IC, c.OC);
    Stats st = {.name = "matmul (dinp, dweight, dbias)", .eps = FD_EPS};
    fd_check("dinp", mm_loss, &c, c.inp, dinp, ni, &st);
    fd_check("dweight", mm_loss, &c, c.w, dw, nw, &st);
    fd_check("dbias", mm_loss, &c, c.b, db, c.OC, &st);
    stats_print(&st);

    float *dinp1 = copy_of(dinp, ni), *dw1 = copy_of(dw, nw), *db1 = copy_of(db, c.OC);
    matmul_backward(dinp, dw, db, c.R, c.inp, c.w, c.N, c.IC, c.OC);
    check_twice("matmul dinp", dinp1, dinp, ni);
    check_twice("matmul dweight", dw1, dw, nw);
    check_twice("matmul dbias", db1, db, c.OC);
    /* NULL d-pointers are skipped and do not change the others */
    float *dinp2 = zeros(ni);
    matmul_backward(dinp2, NULL, NULL, c.R, c.inp, c.w, c.N, c.IC, c.OC);
    CHECK(memcmp(dinp2, dinp1, ni * sizeof(float)) == 0);
    free(dinp2), free(dinp1), free(dw1), free(db1), free(dinp), free(dw), free(db);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.R);
}

/* ---- rope ------------------------------------------------------------- */

typedef struct {
    int B, T, NH;
    RopeTable rt;
    float *x, *y, *R;
} RopeCtx;

static double rope_loss(void *p) {
    RopeCtx *c = p;
    size_t n = (size_t)c->B * c->T * c->NH * c->rt.head_dim;
    memcpy(c->y, c->x, n * sizeof(float));
    rope_forward(c->y, &c->rt, c->B, c->T, c->NH);
    return dot_d(c->y, c->R, n);
}

static void test_rope(int halves) {
    RopeCtx c = {.B = 2, .T = 3, .NH = 4};
    int hd = 4;
    /* theta 100: both pairs of hd=4 rotate visibly (freqs 1 and 0.1) */
    CHECK(rope_table_init(&c.rt, c.T, hd, 100.0f, halves) == 0);
    size_t n = (size_t)c.B * c.T * c.NH * hd;
    c.x = randn(n, 1.0f, 0.0f);
    c.y = zeros(n);
    c.R = randn(n, 1.0f, 0.0f);
    float *dx = copy_of(c.R, n);
    rope_backward(dx, &c.rt, c.B, c.T, c.NH);
    Stats st = {.name = halves ? "rope halves=1 (dx)" : "rope halves=0 (dx)", .eps = FD_EPS};
    fd_check("dx", rope_loss, &c, c.x, dx, n, &st);
    stats_print(&st);

    /* backward is the inverse rotation: backward(forward(x)) == x */
    float *y = copy_of(c.x, n);
    rope_forward(y, &c.rt, c.B, c.T, c.NH);
    double moved = 0.0, back = 0.0;
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(y[i] - c.x[i]));
    rope_backward(y, &c.rt, c.B, c.T, c.NH);
    for (size_t i = 0; i < n; i++) back = fmax(back, fabs(y[i] - c.x[i]));
    CHECK(moved > 0.1);
    CHECK_CLOSE(back, 0.0, 1e-6, 0.0);
    free(y), free(dx), free(c.x), free(c.y), free(c.R);
    rope_table_free(&c.rt);
}

/* ---- attention -------------------------------------------------------- */

typedef struct {
    int B, T, NH, NKV, hd;
    float *q, *k, *v, *att, *out, *R;
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    attention_forward(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->hd, 1);
    return dot_d(c->out, c->R, (size_t)c->B * c->T * c->NH * c->hd);
}

static void test_attention(void) {
    AttCtx c = {.B = 2, .T = 4, .NH = 4, .NKV = 2, .hd = 4};
    size_t nq = (size_t)c.B * c.T * c.NH * c.hd, nkv = (size_t)c.B * c.T * c.NKV * c.hd;
    c.q = randn(nq, 1.0f, 0.0f);
    c.k = randn(nkv, 1.0f, 0.0f);
    c.v = randn(nkv, 1.0f, 0.0f);
    c.att = zeros((size_t)c.B * c.NH * c.T * c.T);
    c.out = zeros(nq);
    c.R = randn(nq, 1.0f, 0.0f);
    float *dq = zeros(nq), *dk = zeros(nkv), *dv = zeros(nkv), *datt = zeros((size_t)c.T * c.T);
    att_loss(&c);
    attention_backward(dq, dk, dv, datt, c.R, c.q, c.k, c.v, c.att, c.B, c.T, c.NH, c.NKV, c.hd);
    Stats st = {.name = "attention GQA (dq, dk, dv)", .eps = FD_EPS};
    fd_check("dq", att_loss, &c, c.q, dq, nq, &st);
    fd_check("dk", att_loss, &c, c.k, dk, nkv, &st);
    fd_check("dv", att_loss, &c, c.v, dv, nkv, &st);
    stats_print(&st);

    float *dq1 = copy_of(dq, nq), *dk1 = copy_of(dk, nkv), *dv1 = copy_of(dv, nkv);
    att_loss(&c);
    for (int i = 0; i < c.T * c.T; i++) datt[i] = NAN; /* datt is scratch only */
    attention_backward(dq, dk, dv, datt, c.R, c.q, c.k, c.v, c.att, c.B, c.T, c.NH, c.NKV, c.hd);
    check_twice("attention dq", dq1, dq, nq);
    check_twice("attention dk", dk1, dk, nkv);
    check_twice("attention dv", dv1, dv, nkv);
    free(dq1), free(dk1), free(dv1), free(dq), free(dk), free(dv), free(datt);
    free(c.q), free(c.k), free(c.v), free(c.att), free(c.out), free(c.R);
}

/* ---- swiglu ----------------------------------------------------------- */

typedef struct {
    size_t n;
    float *gate, *up, *out, *R;
} SwiCtx;

static double swi_loss(void *p) {
    SwiCtx *c = p;
    swiglu_forward(c->out, c->gate, c->up, c->n);
    return dot_d(c->out, c->R, c->n);
}

static void test_swiglu(void) {
    SwiCtx c = {.n = 6 * 12};
    c.gate = randn(c.n, 2.0f, 0.0f); /* through both tails of the sigmoid */
    c.up = randn(c.n, 1.0f, 0.0f);
    c.out = zeros(c.n);
    c.R = randn(c.n, 1.0f, 0.0f);
    float *dg = zeros(c.n), *du = zeros(c.n);
    swiglu_backward(dg, du, c.R, c.gate, c.up, c.n);
    Stats st = {.name = "swiglu (dgate, dup)", .eps = FD_EPS};
    fd_check("dgate", swi_loss, &c, c.gate, dg, c.n, &st);
    fd_check("dup", swi_loss, &c, c.up, du, c.n, &st);
    stats_print(&st);

    float *dg1 = copy_of(dg, c.n), *du1 = copy_of(du, c.n);
    swiglu_backward(dg, du, c.R, c.gate, c.up, c.n);
    check_twice("swiglu dgate", dg1, dg, c.n);
    check_twice("swiglu dup", du1, du, c.n);
    free(dg1), free(du1), free(dg), free(du);
    free(c.gate), free(c.up), free(c.out), free(c.R);
}

/* ---- whole block ------------------------------------------------------ */

typedef struct {
    ModelConfig cfg;
    BlockWeights w;
    BlockActs a;
    float *x, *out, *R;
    size_t nc;
} BlkCtx;

static double blk_loss(void *p) {
    BlkCtx *c = p;
    block_forward(&c->cfg, &c->w, &c->a, c->x, c->out);
    return dot_d(c->out, c->R, c->nc);
}

static void fill(float *p, size_t n, float scale, float shift) {
    for (size_t i = 0; i < n; i++) p[i] = shift + scale * rng_normal(&rng);
}

static void poison(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* The 7 linear weights, their element counts, names. */
static void weight_list(const ModelConfig *cfg, const BlockWeights *w, float *p[7], size_t n[7]) {
    size_t C = cfg->dim, H = cfg->hidden_dim;
    size_t QD = (size_t)cfg->n_heads * cfg->head_dim, KVD = (size_t)cfg->n_kv_heads * cfg->head_dim;
    float *pp[7] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
    size_t nn[7] = {QD * C, KVD * C, KVD * C, C * QD, H * C, H * C, C * H};
    memcpy(p, pp, sizeof pp);
    memcpy(n, nn, sizeof nn);
}
static const char *const WNAMES[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

static BlockWeightGrads grads_from(float *g[7]) {
    BlockWeightGrads gw = {g[0], g[1], g[2], g[3], g[4], g[5], g[6]};
    return gw;
}

static void test_block(int head_dim, int halves, int bias) {
    BlkCtx c;
    memset(&c, 0, sizeof c);
    c.cfg = llama_config(8, 12, 1, 4, 2, 16, 3);
    c.cfg.head_dim = head_dim; /* 4: heads wider than dim / n_heads */
    c.cfg.rope_halves = halves;
    c.cfg.has_qkv_bias = bias;
    const ModelConfig *cfg = &c.cfg;
    int B = 2, T = 3, N = B * T, C = cfg->dim;
    QErr err;
    CHECK(block_weights_alloc(&c.w, cfg, &err) == 0);
    CHECK(block_acts_init(&c.a, cfg, B, T, 1, &err) == 0);
    float *wp[7];
    size_t wn[7];
    weight_list(cfg, &c.w, wp, wn);
    /* N(0, 1/fan_in) weights as in model_init_random, norm weights near 1 */
    fill(c.w.attn_norm, C, 0.2f, 1.0f);
    fill(c.w.mlp_norm, C, 0.2f, 1.0f);
    for (int j = 0; j < 7; j++) {
        int fan_in = j == 3 ? cfg->n_heads * cfg->head_dim : j == 6 ? cfg->hidden_dim : C;
        fill(wp[j], wn[j], 1.0f / sqrtf((float)fan_in), 0.0f);
    }
    if (bias) {
        fill(c.w.bq, (size_t)cfg->n_heads * cfg->head_dim, 0.3f, 0.0f);
        fill(c.w.bk, (size_t)cfg->n_kv_heads * cfg->head_dim, 0.3f, 0.0f);
        fill(c.w.bv, (size_t)cfg->n_kv_heads * cfg->head_dim, 0.3f, 0.0f);
    }
    c.nc = (size_t)N * C;
    c.x = randn(c.nc, 1.0f, 0.0f);
    c.out = zeros(c.nc);
    c.R = randn(c.nc, 1.0f, 0.0f);

    size_t ns = block_backward_scratch_floats(cfg, B, T);
    float *scratch = malloc(ns * sizeof(float));
    float *dx = zeros(c.nc), *g[7];
    for (int j = 0; j < 7; j++) g[j] = zeros(wn[j]);
    BlockWeightGrads gw = grads_from(g);

    blk_loss(&c);
    poison(c.a.tmp, c.nc); /* backward must not need tmp */
    poison(scratch, ns);   /* nor anything left in scratch */
    block_backward(cfg, &c.w, &c.a, c.x, c.R, dx, &gw, scratch);

    char name[64];
    snprintf(name, sizeof name, "block hd=%d halves=%d bias=%d", head_dim, halves, bias);
    Stats st = {.name = name, .eps = FD_EPS_BLOCK};
    fd_check("dx", blk_loss, &c, c.x, dx, c.nc, &st);
    for (int j = 0; j < 7; j++) fd_check(WNAMES[j], blk_loss, &c, wp[j], g[j], wn[j], &st);
    stats_print(&st);

    /* accumulation: a second call doubles dx and every weight gradient */
    float *dx1 = copy_of(dx, c.nc), *g1[7];
    for (int j = 0; j < 7; j++) g1[j] = copy_of(g[j], wn[j]);
    blk_loss(&c);
    poison(c.a.tmp, c.nc);
    poison(scratch, ns);
    block_backward(cfg, &c.w, &c.a, c.x, c.R, dx, &gw, scratch);
    check_twice("block dx", dx1, dx, c.nc);
    for (int j = 0; j < 7; j++) check_twice(WNAMES[j], g1[j], g[j], wn[j]);

    /* gw = NULL and a partial gw: same dx, the kept gradients unchanged */
    float *dx2 = zeros(c.nc);
    poison(scratch, ns);
    block_backward(cfg, &c.w, &c.a, c.x, c.R, dx2, NULL, scratch);
    CHECK(memcmp(dx2, dx1, c.nc * sizeof(float)) == 0);
    memset(dx2, 0, c.nc * sizeof(float));
    float *gq = zeros(wn[0]), *gdown = zeros(wn[6]);
    BlockWeightGrads part = {.wq = gq, .w_down = gdown};
    poison(scratch, ns);
    block_backward(cfg, &c.w, &c.a, c.x, c.R, dx2, &part, scratch);
    CHECK(memcmp(dx2, dx1, c.nc * sizeof(float)) == 0);
    CHECK(memcmp(gq, g1[0], wn[0] * sizeof(float)) == 0);
    CHECK(memcmp(gdown, g1[6], wn[6] * sizeof(float)) == 0);

    free(gq), free(gdown), free(dx2), free(dx1), free(dx), free(scratch);
    for (int j = 0; j < 7; j++) free(g[j]), free(g1[j]);
    free(c.x), free(c.out), free(c.R);
    block_acts_free(&c.a);
    block_weights_free(&c.w);
}

int main(void) {
    const char *seed = getenv("QUEPT_TEST_SEED"); /* to explore other draws */
    rng_seed(&rng, seed ? strtoull(seed, NULL, 10) : 20240607);
    printf("tolerance |a-n| <= %g + %g*|n|; eps %g (block %g); max rel over |n| >= %g\n", TOL_ABS, TOL_REL,
           (double)FD_EPS, (double)FD_EPS_BLOCK, REL_FLOOR);
    test_rmsnorm();
    test_matmul();
    test_rope(0);
    test_rope(1);
    test_attention();
    test_swiglu();
    /* head_dim 2 (dim / n_heads): one RoPE pair, so both conventions coincide;
     * head_dim 4 (QD = 16 != dim) tells them apart */
    test_block(2, 0, 0);
    test_block(2, 1, 1);
    test_block(4, 0, 0);
    test_block(4, 1, 0);
    test_block(4, 1, 1);
    CHECK_DONE();
}
