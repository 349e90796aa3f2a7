/* test_ggml_quant.c — common/quant/ggml_quant.{h,c} (GGUF's block types as
 * fake quantizers) against independent references:
 *
 *  1. layout: gq_dequantize_row of random packed blocks of every type
 *     against llama.cpp's own Python reference, gguf-py's numpy
 *     dequantizers (tests/ref/gen_ggml_quant.py ->
 *     tests/data/ggml_quant_golden.bin): BITWISE equal floats, F16 words
 *     with subnormals, -0 and the largest finite half included;
 *  2. round trip: gq_quantize_row's y == gq_dequantize_row(its packed blocks)
 *     bitwise, for every type, rows of several magnitudes with outliers,
 *     all-zero / all-positive / all-negative / constant / tiny sub-blocks and
 *     tied extremes, factors NULL, 1 and random in (0.5, 1): export writes
 *     exactly the codes calibration trained on;
 *     2b. the same packed rows through llama.cpp's real compiled
 *     dequantize_row_* (node-llama-cpp's libggml-base.so, when installed);
 *     2c. ties by hand: codes round to even, IQ4_NL to the upper level;
 *  3. quality: the relative RMS error of y against Gaussian x (factors 1)
 *     within +-10% of the uniform-noise model, falling with the bits;
 *  4. gradients: gq_backward_row against a PyTorch autograd reference of
 *     the header's math with straight-through rounding (same golden file),
 *     every type, y bitwise and dL/dx, dL/dfg, dL/dfb within TOL_GRAD;
 *  5. the type table: gq_type_parse, gq_row_type's fallbacks, sizes.
 *
 * Tolerance of 4: the reference's y comes from a float32 forward with the
 * C's operation order (same codes and scales, so y must match bitwise); its
 * gradients from a float64 pass with those decisions held. The C sums in
 * float32 with u = x/s' rounded to float32, an error of ~|u|·6e-8 per term
 * (|u| <= 127 for Q8_0 / IQ4_NL): max |c - ref| <= TOL_GRAD · max |ref|
 * per array (TOL_GRAD 1e-5; observed <= 7e-7, printed per type). A wrong
 * term (a lost arg-max gradient, a wrong clamp mask, the K-quant min rule,
 * the first-vs-last arg-max) moves these by 4e-3 or more. Where the
 * reference is exactly 0 (dfb of the symmetric types) the C must be exactly
 * 0. */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "base/rng.h"
#include "check.h"
#include "golden.h"
#include "quant/ggml_quant.h"

#define TOL_GRAD 1e-5

static const int ALL_TYPES[] = {GQ_Q4_0, GQ_Q4_1, GQ_Q5_0, GQ_Q5_1, GQ_Q8_0,  GQ_Q2_K,
                                GQ_Q3_K, GQ_Q4_K, GQ_Q5_K, GQ_Q6_K, GQ_IQ4_NL};
#define N_ALL ((int)(sizeof ALL_TYPES / sizeof ALL_TYPES[0]))

static int type_index(int t) {
    for (int i = 0; i < N_ALL; i++)
        if (ALL_TYPES[i] == t) return i;
    return -1;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* number of elements whose bits differ; the first few printed */
static size_t bit_mismatches(const char *ctx, const float *c, const float *ref, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (f32_bits(c[i]) != f32_bits(ref[i])) {
            if (bad < 4)
                fprintf(stderr, "%s: [%zu] = %.9g (0x%08x), ref %.9g (0x%08x)\n", ctx, i, c[i],
                        f32_bits(c[i]), ref[i], f32_bits(ref[i]));
            bad++;
        }
    return bad;
}

/* max |c - ref| / max |ref| (absolute when ref is all zero) */
static double max_rel(const float *c, const float *ref, size_t n) {
    double mx = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)c[i] - ref[i]);
        if (d > mx) mx = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? mx / mr : mx;
}

/* ------------------------------------------------------------------------ */
/* 1 + 4: the golden file */

static int deq_seen[N_ALL], grad_seen[N_ALL];

static int run_deq_case(Reader *r, int ci) {
    int32_t h[2];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    const int t = h[0], nb = h[1];
    if (type_index(t) < 0 || nb < 1 || nb > 64) return -1;
    const int n = nb * gq_block_elems(t);
    const size_t nbytes = gq_row_bytes(t, n);
    uint8_t *packed = malloc(nbytes);
    float *ref = NULL;
    int rc = -1;
    if (packed && rd_bytes(r, packed, nbytes) == 0 && (ref = rd_floats(r, (size_t)n)) != NULL) {
        float *y = zalloc((size_t)n);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "dequantize %s", gq_type_name(t));
        gq_dequantize_row(t, packed, n, y);
        size_t bad = bit_mismatches(ctx, y, ref, (size_t)n);
        CHECK_MSG(bad == 0, "case %d %s: %zu of %d values differ from gguf-py's", ci, gq_type_name(t), bad,
                  n);
        printf("  dequantize %-6s %2d blocks: %s\n", gq_type_name(t), nb, bad ? "DIFFERS" : "bitwise equal");
        deq_seen[type_index(t)]++;
        free(y);
        rc = 0;
    }
    free(packed);
    free(ref);
    return rc;
}

static double worst_grad[N_ALL];

static void check_grad(const char *ctx, const char *what, const float *c, const float *ref, size_t n,
                       double *worst) {
    int ref_zero = 1;
    for (size_t i = 0; i < n; i++) ref_zero &= ref[i] == 0.0f;
    if (ref_zero) {
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) nz += c[i] != 0.0f;
        CHECK_MSG(nz == 0, "%s %s: reference all zero, C has %zu nonzero", ctx, what, nz);
        return;
    }
    double e = max_rel(c, ref, n);
    CHECK_MSG(e <= TOL_GRAD, "%s %s: max err / max|ref| %.3g > %g", ctx, what, e, TOL_GRAD);
    if (e > *worst) *worst = e;
}

static int run_grad_case(Reader *r, int ci) {
    int32_t h[2];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    const int t = h[0], n = h[1];
    if (type_index(t) < 0 || n < 1 || n > 4096 || n % gq_block_elems(t) != 0) return -1;
    const size_t N = (size_t)n, ns = N / (size_t)gq_sub_elems(t);
    float *x = rd_floats(r, N), *fg = rd_floats(r, ns), *fb = rd_floats(r, ns), *G = rd_floats(r, N);
    float *y_ref = rd_floats(r, N), *dx_ref = rd_floats(r, N), *dfg_ref = rd_floats(r, ns);
    float *dfb_ref = rd_floats(r, ns);
    int rc = -1;
    if (dfb_ref) { /* read in order: the last one failing covers all */
        float *y = zalloc(N), *st = zalloc(ns * GQ_STATE), *dx = zalloc(N), *dfg = zalloc(ns),
              *dfb = zalloc(ns);
        char ctx[64];
        int ones = 1;
        for (size_t j = 0; j < ns; j++) ones &= fg[j] == 1.0f && fb[j] == 1.0f;
        snprintf(ctx, sizeof ctx, "grad case %d %s n=%d%s", ci, gq_type_name(t), n, ones ? " factors 1" : "");
        gq_quantize_row(t, x, n, fg, fb, y, NULL, st);
        size_t bad = bit_mismatches(ctx, y, y_ref, N);
        CHECK_MSG(bad == 0, "%s: %zu of %d y values differ from torch's", ctx, bad, n);
        gq_backward_row(t, x, n, fg, fb, st, G, dx, dfg, dfb);
        double *w = &worst_grad[type_index(t)];
        check_grad(ctx, "dx", dx, dx_ref, N, w);
        check_grad(ctx, "dfg", dfg, dfg_ref, ns, w);
        check_grad(ctx, "dfb", dfb, dfb_ref, ns, w);
        if (ones) { /* NULL factors are factors 1: the same y and dx */
            float *y2 = zalloc(N), *dx2 = zalloc(N);
            gq_quantize_row(t, x, n, NULL, NULL, y2, NULL, st);
            gq_backward_row(t, x, n, NULL, NULL, st, G, dx2, NULL, NULL);
            CHECK_MSG(memcmp(y, y2, N * sizeof *y) == 0, "%s: NULL factors change y", ctx);
            CHECK_MSG(memcmp(dx, dx2, N * sizeof *dx) == 0, "%s: NULL factors change dx", ctx);
            free(y2);
            free(dx2);
        }
        grad_seen[type_index(t)]++;
        free(y), free(st), free(dx), free(dfg), free(dfb);
        rc = 0;
    }
    free(x), free(fg), free(fb), free(G), free(y_ref), free(dx_ref), free(dfg_ref), free(dfb_ref);
    return rc;
}

static void test_golden(void) {
    Reader r;
    uint32_t n_deq = 0, n_grad = 0;
    if (golden_open(&r, "ggml_quant_golden.bin", "QGGQ", "gen_ggml_quant.py", N_ALL, &n_deq) != 0) return;
    int ok = 1;
    printf("dequantization against gguf-py:\n");
    for (uint32_t i = 0; ok && i < n_deq; i++) {
        ok = run_deq_case(&r, (int)i) == 0;
        CHECK_MSG(ok, "dequantization case %u: truncated or invalid golden file", i);
    }
    if (ok) {
        ok = rd_bytes(&r, &n_grad, 4) == 0 && n_grad >= (uint32_t)N_ALL;
        CHECK_MSG(ok, "gradient case count missing or too small");
    }
    for (uint32_t i = 0; ok && i < n_grad && check_failures < 50; i++) {
        ok = run_grad_case(&r, (int)i) == 0;
        CHECK_MSG(ok, "gradient case %u: truncated or invalid golden file", i);
    }
    if (ok) CHECK_MSG(r.pos == r.len, "golden file has %zu trailing bytes", r.len - r.pos);
    for (int i = 0; i < N_ALL; i++) {
        CHECK_MSG(deq_seen[i] > 0, "no dequantization case for %s", gq_type_name(ALL_TYPES[i]));
        CHECK_MSG(grad_seen[i] > 0, "no gradient case for %s", gq_type_name(ALL_TYPES[i]));
    }
    printf("gradients against torch (worst max err / max|ref|, tolerance %g):\n", TOL_GRAD);
    for (int i = 0; i < N_ALL; i++)
        printf("  %-6s %d case(s): %.2e\n", gq_type_name(ALL_TYPES[i]), grad_seen[i], worst_grad[i]);
    golden_close(&r);
}

/* ------------------------------------------------------------------------ */
/* 2. round trip */

/* A row of n: Gaussian with std `scale` and outliers; sub-blocks (of sub)
 * cycle through the kinds of the generator's make_row: normal, all
 * positive, all zero, constant, all negative, duplicated extremes, tiny
 * (1e-4), |max| twice with opposite signs. */
static void make_row(Rng *g, float *x, int n, int sub, float scale) {
    for (int i = 0; i < n; i++) x[i] = scale * rng_normal(g);
    for (int k = 0; k < n / 64 + 1; k++) x[rng_int(g, n)] *= 4.0f + 4.0f * rng_uniform(g);
    for (int j = 0; j < n / sub; j++) {
        float *xs = x + j * sub, A = 0.0f;
        for (int i = 0; i < sub; i++) A = fmaxf(A, 1.1f * fabsf(xs[i]));
        switch (j % 8) {
        case 1:
            for (int i = 0; i < sub; i++) xs[i] = fabsf(xs[i]) + 0.05f * scale;
            break;
        case 2:
            for (int i = 0; i < sub; i++) xs[i] = 0.0f;
            break;
        case 3:
            for (int i = 0; i < sub; i++) xs[i] = -0.7f * scale;
            break;
        case 4:
            for (int i = 0; i < sub; i++) xs[i] = -fabsf(xs[i]) - 0.05f * scale;
            break;
        case 5: xs[3] = xs[sub - 4] = A, xs[1] = xs[sub - 2] = -0.8f * A; break;
        case 6:
            for (int i = 0; i < sub; i++) xs[i] *= 1e-4f;
            break;
        case 7: xs[2] = -A, xs[sub - 3] = A; break;
        default: break;
        }
    }
}

static void test_round_trip(void) {
    const int n = 512;
    const float scales[] = {1e-3f, 1.0f, 100.0f};
    Rng g;
    rng_seed(&g, 20240613);
    float *x = zalloc(n), *y = zalloc(n), *y2 = zalloc(n), *deq = zalloc(n), *fg = zalloc(n), *fb = zalloc(n);
    float *st = zalloc((size_t)n * GQ_STATE);
    uint8_t *packed = malloc(gq_row_bytes(GQ_F16, n)), *packed2 = malloc(gq_row_bytes(GQ_F16, n));
    int rows = 0;
    for (int ti = 0; ti <= N_ALL; ti++) {
        const int t = ti < N_ALL ? ALL_TYPES[ti] : GQ_F16;
        const int sub = t == GQ_F16 ? 32 : gq_sub_elems(t), ns = n / sub;
        for (int si = 0; si < 3; si++)
            for (int fmode = 0; fmode < 3; fmode++) { /* factors NULL, 1, random in (0.5, 1) */
                make_row(&g, x, n, sub, scales[si]);
                for (int j = 0; j < ns; j++) {
                    fg[j] = fmode == 2 ? 0.5f + 0.5f * rng_uniform(&g) : 1.0f;
                    fb[j] = fmode == 2 ? 0.5f + 0.5f * rng_uniform(&g) : 1.0f;
                    if (fg[j] <= 0.5f) fg[j] = 0.75f;
                    if (fb[j] <= 0.5f) fb[j] = 0.75f;
                }
                const float *pg = fmode ? fg : NULL, *pb = fmode ? fb : NULL;
                const size_t nbytes = gq_row_bytes(t, n);
                memset(packed, 0xA5, nbytes);
                gq_quantize_row(t, x, n, pg, pb, y, packed, st);
                gq_dequantize_row(t, packed, n, deq);
                char ctx[64];
                snprintf(ctx, sizeof ctx, "round trip %s scale %g factors %d", gq_type_name(t), scales[si],
                         fmode);
                size_t bad = bit_mismatches(ctx, deq, y, (size_t)n);
                CHECK_MSG(bad == 0, "%s: %zu of %d dequantized values differ from y", ctx, bad, n);
                size_t nonfinite = 0;
                for (int i = 0; i < n; i++) nonfinite += !isfinite(y[i]);
                CHECK_MSG(nonfinite == 0, "%s: %zu non-finite values", ctx, nonfinite);
                /* each output alone is the same as all together */
                memset(packed2, 0x5A, nbytes);
                gq_quantize_row(t, x, n, pg, pb, NULL, packed2, NULL);
                CHECK_MSG(memcmp(packed, packed2, nbytes) == 0, "%s: packed differs without y/state", ctx);
                gq_quantize_row(t, x, n, pg, pb, y2, NULL, NULL);
                CHECK_MSG(memcmp(y, y2, (size_t)n * sizeof *y) == 0, "%s: y differs without packed/state",
                          ctx);
                rows++;
            }
    }
    printf("round trip: %d rows, y == dequantize(packed) bitwise\n", rows);
    free(x), free(y), free(y2), free(deq), free(fg), free(fb), free(st), free(packed), free(packed2);
}

/* 2b. llama.cpp itself: the prebuilt libggml-base.so that node-llama-cpp
 * ships (tests/llama_check, npm ci'd by deploy/test.sh) dequantizes the
 * blocks gq_quantize_row packs to its y, bitwise. The library is llama.cpp's
 * real ggml-quants.c; without it (another platform, no npm) this part is
 * skipped with a message, the rest of the test still runs. */
typedef void (*GgmlDeqFn)(const void *blocks, float *y, int64_t k);

static void test_real_ggml(void) {
    static const char *const FN[N_ALL] = {
        "dequantize_row_q4_0", "dequantize_row_q4_1", "dequantize_row_q5_0",  "dequantize_row_q5_1",
        "dequantize_row_q8_0", "dequantize_row_q2_K", "dequantize_row_q3_K",  "dequantize_row_q4_K",
        "dequantize_row_q5_K", "dequantize_row_q6_K", "dequantize_row_iq4_nl"};
    char path[1024];
    snprintf(path, sizeof path,
             "%s/../llama_check/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
             QUEPT_TEST_DATA);
    if (access(path, R_OK) != 0) {
        printf("llama.cpp's libggml-base.so: skipped, %s absent (npm ci --prefix tests/llama_check)\n", path);
        return;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("llama.cpp's libggml-base.so: skipped, cannot load: %s\n", dlerror());
        return;
    }
    const int n = 1024;
    Rng g;
    rng_seed(&g, 20240614);
    float *x = zalloc(n), *y = zalloc(n), *deq = zalloc(n), *fg = zalloc(n), *fb = zalloc(n);
    uint8_t *packed = malloc(gq_row_bytes(GQ_Q8_0, n));
    int rows = 0;
    for (int ti = 0; ti < N_ALL; ti++) {
        const int t = ALL_TYPES[ti], sub = gq_sub_elems(t);
        GgmlDeqFn fn;
        *(void **)&fn = dlsym(lib, FN[ti]);
        CHECK_MSG(fn != NULL, "%s not in %s", FN[ti], path);
        if (!fn) continue;
        for (int k = 0; k < 6; k++) {
            make_row(&g, x, n, sub, powf(10.0f, -3.0f + (float)k));
            for (int j = 0; j < n / sub; j++)
                fg[j] = 0.5f + 0.5f * rng_uniform(&g), fb[j] = 0.5f + 0.5f * rng_uniform(&g);
            gq_quantize_row(t, x, n, k % 2 ? fg : NULL, k % 2 ? fb : NULL, y, packed, NULL);
            memset(deq, 0, (size_t)n * sizeof *deq);
            fn(packed, deq, n);
            char ctx[64];
            snprintf(ctx, sizeof ctx, "libggml-base %s row %d", FN[ti], k);
            size_t bad = bit_mismatches(ctx, deq, y, (size_t)n);
            CHECK_MSG(bad == 0, "%s: %zu of %d values differ from gq_quantize_row's y", ctx, bad, n);
            rows++;
        }
    }
    printf("llama.cpp's libggml-base.so dequantizes %d packed rows to y bitwise\n", rows);
    free(x), free(y), free(deq), free(fg), free(fb), free(packed);
    dlclose(lib);
}

/* 2c. Ties, by hand: a block whose extreme makes s' exactly 1, so u = x. The
 * header's rules: codes round ties to even (ggml's nearest_int); IQ4_NL takes
 * the upper of two equally near levels (ggml's best_index_int8: "x -
 * val[mu-1] < val[mu] - x ? mu-1 : mu"). */
static void test_ties(void) {
    float x[32], y[32];
    /* Q4_0: M = -8 -> s = -8/-8 = 1 */
    const float q4x[] = {-8.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 6.5f, 7.5f, -7.5f, 1.5f, 4.49f};
    const float q4y[] = {-8.0f, 2.0f, 4.0f, -2.0f, -4.0f, 0.0f, 0.0f, 6.0f, 7.0f, -8.0f, 2.0f, 4.0f};
    const int nq = (int)(sizeof q4x / sizeof q4x[0]);
    for (int i = 0; i < 32; i++) x[i] = i < nq ? q4x[i] : 1.0f;
    gq_quantize_row(GQ_Q4_0, x, 32, NULL, NULL, y, NULL, NULL);
    for (int i = 0; i < nq; i++)
        CHECK_MSG(y[i] == q4y[i], "Q4_0 x = %g: y = %g, want %g", q4x[i], y[i], q4y[i]);
    /* IQ4_NL: M = -127 -> s = 1; each midpoint between two levels goes up,
     * a quarter below it goes down */
    static const int L[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    x[0] = -127.0f;
    for (int k = 0; k < 15; k++) {
        x[1 + 2 * k] = 0.5f * (float)(L[k] + L[k + 1]);
        x[2 + 2 * k] = 0.5f * (float)(L[k] + L[k + 1]) - 0.25f;
    }
    x[31] = 120.0f; /* beyond the top level: clamps to 113 */
    gq_quantize_row(GQ_IQ4_NL, x, 32, NULL, NULL, y, NULL, NULL);
    CHECK(y[0] == -127.0f && y[31] == 113.0f);
    for (int k = 0; k < 15; k++) {
        CHECK_MSG(y[1 + 2 * k] == (float)L[k + 1], "IQ4_NL tie %g: %g, want %d", x[1 + 2 * k], y[1 + 2 * k],
                  L[k + 1]);
        CHECK_MSG(y[2 + 2 * k] == (float)L[k], "IQ4_NL %g: %g, want %d", x[2 + 2 * k], y[2 + 2 * k], L[k]);
    }
    printf("ties: Q4_0 to even, IQ4_NL to the upper level: ok\n");
}

/* ------------------------------------------------------------------------ */
/* 3. quality
 *
 * Bounds from the uniform-noise model: a step D gives an RMS error D/sqrt(12),
 * D = (expected range of the sub-block)/levels; for standard normal x the
 * expected max - min of 32 is 4.14, of 16 3.53; the expected max |x| of 32 is
 * 2.35, of 16 2.08 (sampled). Predicted relative RMS (observed in brackets):
 *   Q8_0   2.35/127/sqrt(12) = 0.00534 (0.00536)  Q6_K  2.08/32 -> 0.0188 (0.0188)
 *   Q5_0   2.35/16 -> 0.0424 (0.0426)   Q5_1, Q5_K  4.14/31 -> 0.0386 (0.0377, 0.0380)
 *   Q4_0   2.35/8  -> 0.0848 (0.0856)   Q4_1, Q4_K  4.14/15 -> 0.0797 (0.0772, 0.0772)
 *   Q3_K   2.08/4  -> 0.150  (0.155)    Q2_K  3.53/3 -> 0.340 (0.327)
 *   IQ4_NL non-uniform 16 levels, no model (0.0795)
 * Each must lie within +-10% of the prediction (IQ4_NL in [0.07, 0.09]), and
 * the error must fall with the bits, about halving per bit. Too small an
 * error would mean y leaks x (codes not applied); too large, a wrong scale,
 * grid or clamp. */
static const struct {
    int t;
    double pred;
} QUALITY[] = {{GQ_Q4_0, 0.0848},  {GQ_Q4_1, 0.0797}, {GQ_Q5_0, 0.0424}, {GQ_Q5_1, 0.0386},
               {GQ_Q8_0, 0.00534}, {GQ_Q2_K, 0.340},  {GQ_Q3_K, 0.150},  {GQ_Q4_K, 0.0797},
               {GQ_Q5_K, 0.0386},  {GQ_Q6_K, 0.0188}, {GQ_IQ4_NL, 0.08}};

static void test_quality(void) {
    const int n = 256 * 64;
    Rng g;
    rng_seed(&g, 7);
    float *x = zalloc(n), *y = zalloc(n);
    for (int i = 0; i < n; i++) x[i] = rng_normal(&g);
    double err[N_ALL];
    printf("relative RMS error, Gaussian rows of %d, factors 1 (bounds):\n", n);
    for (int qi = 0; qi < N_ALL; qi++) {
        const int t = QUALITY[qi].t, ti = type_index(t);
        gq_quantize_row(t, x, n, NULL, NULL, y, NULL, NULL);
        double num = 0, den = 0;
        for (int i = 0; i < n; i++)
            num += ((double)y[i] - x[i]) * ((double)y[i] - x[i]), den += (double)x[i] * x[i];
        err[ti] = sqrt(num / den);
        const double lo = t == GQ_IQ4_NL ? 0.07 : 0.9 * QUALITY[qi].pred;
        const double hi = t == GQ_IQ4_NL ? 0.09 : 1.1 * QUALITY[qi].pred;
        printf("  %-6s %.5f  [%.4f, %.4f]\n", gq_type_name(t), err[ti], lo, hi);
        CHECK_MSG(err[ti] >= lo && err[ti] <= hi, "%s: relative RMS error %.5f outside [%.4f, %.4f]",
                  gq_type_name(t), err[ti], lo, hi);
    }
#define E(t) err[type_index(t)]
    CHECK(E(GQ_Q2_K) > E(GQ_Q3_K) && E(GQ_Q3_K) > E(GQ_Q4_K) && E(GQ_Q4_K) > E(GQ_Q5_K) &&
          E(GQ_Q5_K) > E(GQ_Q6_K) && E(GQ_Q6_K) > E(GQ_Q8_0));
    CHECK(E(GQ_Q4_0) > E(GQ_Q5_0) && E(GQ_Q5_0) > E(GQ_Q8_0));
    CHECK(E(GQ_Q4_1) > E(GQ_Q5_1) && E(GQ_Q5_1) > E(GQ_Q6_K));
    CHECK(E(GQ_Q4_1) < E(GQ_Q4_0) &&
          E(GQ_Q5_1) < E(GQ_Q5_0)); /* the min/max grid fits Gaussian blocks better */
    CHECK(E(GQ_Q8_0) < 0.01);
    /* one more bit: the error about halves */
    const int pairs[][2] = {{GQ_Q2_K, GQ_Q3_K}, {GQ_Q3_K, GQ_Q4_K}, {GQ_Q4_K, GQ_Q5_K},
                            {GQ_Q5_K, GQ_Q6_K}, {GQ_Q4_0, GQ_Q5_0}, {GQ_Q4_1, GQ_Q5_1}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const double ratio = E(pairs[i][0]) / E(pairs[i][1]);
        CHECK_MSG(ratio > 1.6 && ratio < 2.6, "%s / %s = %.3f", gq_type_name(pairs[i][0]),
                  gq_type_name(pairs[i][1]), ratio);
    }
#undef E
    free(x), free(y);
}

/* ------------------------------------------------------------------------ */
/* 5. the type table */

static void test_types(void) {
    const char *bad[] = {"",       "Q4",    "Q4_K_M", "q4_kx", "Q4K", "Q7_0",
                         "IQ4_XS", "q4_k ", " Q4_K",  "BF16",  "F64", "Q8_1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(gq_type_parse(bad[i], 0) == -1, "'%s' parsed", bad[i]);
        CHECK_MSG(gq_type_parse(bad[i], 1) == -1, "'%s' parsed (allow_float)", bad[i]);
    }
    CHECK(gq_type_parse("F16", 0) == -1);
    CHECK(gq_type_parse("f32", 0) == -1);
    CHECK(gq_type_parse("F16", 1) == GQ_F16);
    CHECK(gq_type_parse("f32", 1) == GQ_F32);
    CHECK(gq_type_parse("q4_k", 0) == GQ_Q4_K);
    CHECK(gq_type_parse("Q4_K", 0) == GQ_Q4_K);
    CHECK(gq_type_parse("iq4_nl", 0) == GQ_IQ4_NL);
    for (int i = 0; i < N_ALL; i++) {
        const int t = ALL_TYPES[i];
        CHECK(gq_type_parse(gq_type_name(t), 0) == t);
        CHECK(gq_is_block_type(t));
    }
    CHECK(!gq_is_block_type(GQ_F16) && !gq_is_block_type(GQ_F32) && !gq_is_block_type(99));
    CHECK(gq_type_name(99) == NULL);

    /* llama-quantize's fallbacks */
    CHECK(gq_row_type(GQ_Q2_K, 64) == GQ_IQ4_NL);
    CHECK(gq_row_type(GQ_Q3_K, 64) == GQ_IQ4_NL);
    CHECK(gq_row_type(GQ_Q4_K, 64) == GQ_Q5_0);
    CHECK(gq_row_type(GQ_Q5_K, 64) == GQ_Q5_1);
    CHECK(gq_row_type(GQ_Q6_K, 64) == GQ_Q8_0);
    CHECK(gq_row_type(GQ_Q4_K, 512) == GQ_Q4_K);
    CHECK(gq_row_type(GQ_Q4_0, 64) == GQ_Q4_0);
    for (int i = 0; i < N_ALL; i++)
        CHECK_MSG(gq_row_type(ALL_TYPES[i], 172) == GQ_F16, "%s", gq_type_name(ALL_TYPES[i]));

    /* sizes: ggml's (GGML_QUANT_SIZES) */
    static const int want[N_ALL][3] = {{32, 18, 4},   {32, 20, 4},   {32, 22, 5},   {32, 24, 5},
                                       {32, 34, 8},   {256, 84, 2},  {256, 110, 3}, {256, 144, 4},
                                       {256, 176, 5}, {256, 210, 6}, {32, 18, 4}};
    for (int i = 0; i < N_ALL; i++) {
        const int t = ALL_TYPES[i];
        CHECK_MSG(gq_block_elems(t) == want[i][0] && gq_block_bytes(t) == want[i][1] &&
                      gq_code_bits(t) == want[i][2],
                  "%s", gq_type_name(t));
        CHECK(gq_row_bytes(t, 2 * want[i][0]) == 2 * (size_t)want[i][1]);
    }
    printf("type table: ok\n");
}

int main(void) {
    test_golden();
    test_round_trip();
    test_real_ggml();
    test_ties();
    test_quality();
    test_types();
    CHECK_DONE();
}
