/* test_gptq.c — common/quant/gptq.c against the PyTorch float64 reference
 * (tests/ref/gptq_ref.py → tests/data/gptq_golden.bin), plus properties that
 * need no reference.
 *
 * Tolerances (the golden is the float64 math of float32 inputs; we run in
 * float32):
 *  - U (upper Cholesky factor of the damped H^-1): ||U - Uref||_F/||Uref||_F
 *    <= 1e-4. float32 Cholesky/inverse/Cholesky error is ~cond * eps; with
 *    1% damping cond(H) <= ~100*in, observed ~1e-6 (printed).
 *  - What: an element matches when |c - ref| <= 1e-4 (weights are O(1)).
 *    A non-flipped element differs by the float32 error of its scale
 *    (~1e-7 relative); a code that flips between float32 and float64 at a
 *    rounding boundary moves the rest of its row (GPTQ feeds the error
 *    forward along the row). The generator keeps the float64 run >= 1e-3
 *    grid steps from every boundary, so flips are not expected; we require
 *    >= 99% matching elements over all golden cases, which still allows one
 *    late flip propagating through part of a row, and report the measured
 *    fraction (1.0 at the time of writing).
 *  - layer output error ||X What^T - X W^T||_F within 1% (relative) of the
 *    reference's; RTN's (fq_rtn) within 1e-5 of the reference's RTN.
 *  - GPTQ's output error below RTN's on every golden case and on larger
 *    random cases (64 x 256, groups 128 and 32, bits 2..4, correlated X).
 *  - scales within 1e-4 relative and zeros equal, when no code flipped (the
 *    grid comes from the float32-updated weights' min/max: observed ~1e-5).
 *  - codes: fq_dequantize(codes, scales, zeros) == What bitwise.
 *  - H = diagonal (no correlations): GPTQ has nothing to feed forward, and
 *    What == fq_rtn(W) bitwise. */
#include <stdint.h>
#include <string.h>

#include "base/mapfile.h"
#include "base/rng.h"
#include "check.h"
#include "golden.h"
#include "quant/fakequant.h"
#include "quant/gptq.h"

#define TOL_U_RELNORM  1e-4
#define TOL_MATCH_ABS  1e-4
#define TOL_MATCH_FRAC 0.99
#define TOL_OUTERR_REL 0.01
#define TOL_RTN_REL    1e-5
#define TOL_SCALE_REL  1e-4

static void fill_normal(Rng *g, float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * rng_normal(g);
}

/* ||X What^T - X W^T||_F in double; X (N, in), W/What (out, in). */
static double out_err(const float *X, int N, const float *What, const float *W, int out, int in) {
    double sum = 0.0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int i = 0; i < in; i++)
                acc += (double)X[(size_t)n * in + i] *
                       ((double)What[(size_t)o * in + i] - (double)W[(size_t)o * in + i]);
            sum += acc * acc;
        }
    return sqrt(sum);
}

static double rtn_err(const float *X, int N, const float *W, int out, int in, int bits, int group) {
    FqSpec fs = {out, in, bits, group, 0, 0, FQ_ADAPTER_BEFORE_QUANT, 0, FQ_FORMAT_INT, 0};
    float *Wr = zalloc((size_t)out * in);
    fq_rtn(&fs, W, Wr);
    double e = out_err(X, N, Wr, W, out, in);
    free(Wr);
    return e;
}

static float *make_h(const float *X, int N, int in) {
    float *H = zalloc((size_t)in * in);
    gptq_accumulate_h(H, X, N, in);
    return H;
}

/* max |U^T U (H_damped) - I| in double; H_damped from H's upper triangle
 * with dead diagonals 1 and damp_abs on the diagonal. */
static double inv_residual(const float *U, const float *H, int in, double damp_rel) {
    const size_t n = (size_t)in;
    double *Hd = calloc(n * n, sizeof(double)), *Hi = calloc(n * n, sizeof(double));
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += H[i * n + i] == 0.0f ? 1.0 : H[i * n + i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++) {
            double v = H[i * n + j];
            if (i == j) v = (v == 0.0 ? 1.0 : v) + damp_rel * mean;
            Hd[i * n + j] = Hd[j * n + i] = v;
        }
    for (size_t i = 0; i < n; i++) /* Hi = U^T U */
        for (size_t j = 0; j < n; j++) {
            double a = 0;
            for (size_t k = 0; k < n; k++) a += (double)U[k * n + i] * U[k * n + j];
            Hi[i * n + j] = a;
        }
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double a = 0;
            for (size_t k = 0; k < n; k++) a += Hi[i * n + k] * Hd[k * n + j];
            double d = fabs(a - (i == j ? 1.0 : 0.0));
            worst = d > worst ? d : worst;
        }
    free(Hd);
    free(Hi);
    return worst;
}

/* Totals over all golden cases. */
static size_t g_match, g_total;

static int run_case(Reader *r, int pi, int out, int in, int N, float damp, const float *W, const float *X,
                    const float *H) {
    int32_t hdr[3];
    if (rd_bytes(r, hdr, sizeof hdr) != 0) return -1;
    const int bits = hdr[0], group = hdr[1], bs = hdr[2];
    if (bits < 1 || bits > 8 || group < 1 || group > in || bs < 1) return -1;
    const int ng = (in + group - 1) / group;
    const size_t nw = (size_t)out * in, ns = (size_t)out * ng;
    float *Qref = rd_floats(r, nw), *Sref = rd_floats(r, ns), *Zref = rd_floats(r, ns);
    double errs[2];
    if (!Qref || !Sref || !Zref || rd_bytes(r, errs, sizeof errs) != 0) {
        free(Qref);
        free(Sref);
        free(Zref);
        return -1;
    }
    GptqSpec s = gptq_spec_make(out, in, bits, group);
    s.damp = damp;
    s.block_size = bs;
    float *Q = zalloc(nw), *S = zalloc(ns), *Z = zalloc(ns), *D = zalloc(nw);
    uint8_t *codes = calloc(nw, 1);
    QErr err = {{0}};
    GptqInfo info;
    int rc = gptq_quantize(&s, W, H, Q, codes, S, Z, &info, &err);
    CHECK_MSG(rc == 0, "problem %d bits %d: %s", pi, bits, err.msg);
    if (rc == 0) {
        size_t match = 0, zmatch = 0;
        double maxd = 0, maxs = 0;
        for (size_t k = 0; k < nw; k++) {
            double d = fabs((double)Q[k] - Qref[k]);
            match += d <= TOL_MATCH_ABS;
            maxd = d > maxd ? d : maxd;
        }
        for (size_t k = 0; k < ns; k++) {
            double d = fabs((double)S[k] - Sref[k]) / fabs(Sref[k]);
            maxs = d > maxs ? d : maxs;
            zmatch += Z[k] == Zref[k];
        }
        g_match += match;
        g_total += nw;
        double eg = out_err(X, N, Q, W, out, in), er = rtn_err(X, N, W, out, in, bits, group);
        printf("problem %d (%dx%d) bits %d group %2d block %3d: match %zu/%zu (max |d| %.2g), "
               "zeros equal %zu/%zu, scales max rel %.2g; out err GPTQ %.6g (ref %.6g, rel %.2g) "
               "RTN %.6g (ref %.6g) GPTQ/RTN %.3f; dead %d retries %d loss %.4g\n",
               pi, out, in, bits, group, bs, match, nw, maxd, zmatch, ns, maxs, eg, errs[0],
               fabs(eg - errs[0]) / errs[0], er, errs[1], eg / er, info.n_dead, info.retries, info.loss);
        /* Not flipped codes mean the same grid: zeros equal, scales to the
         * float32 error of the updated weights' min/max. */
        if (match == nw) {
            CHECK_MSG(zmatch == ns, "problem %d bits %d: %zu/%zu zeros differ", pi, bits, ns - zmatch, ns);
            CHECK_MSG(maxs <= TOL_SCALE_REL, "problem %d bits %d: scales max rel %.3g", pi, bits, maxs);
        }
        CHECK_MSG(fabs(eg - errs[0]) <= TOL_OUTERR_REL * errs[0],
                  "problem %d bits %d group %d: out err %.6g vs ref %.6g", pi, bits, group, eg, errs[0]);
        CHECK_CLOSE(er, errs[1], 0, TOL_RTN_REL);
        CHECK_MSG(eg < er, "problem %d bits %d: GPTQ out err %.6g not below RTN %.6g", pi, bits, eg, er);
        CHECK(info.retries == 0 && info.damp_used == damp);
        FqSpec fs = {out, in, bits, group, 0, 0, FQ_ADAPTER_BEFORE_QUANT, 0, FQ_FORMAT_INT, 0};
        fq_dequantize(&fs, codes, S, Z, D);
        CHECK_MSG(memcmp(D, Q, nw * sizeof(float)) == 0,
                  "problem %d bits %d: dequantized codes "
                  "differ from What",
                  pi, bits);

        /* Block size does not change the result beyond float32 noise. */
        const int other[] = {1, 7, in};
        for (int b = 0; b < 3; b++) {
            GptqSpec s2 = s;
            s2.block_size = other[b];
            rc = gptq_quantize(&s2, W, H, D, NULL, NULL, NULL, NULL, &err);
            CHECK_MSG(rc == 0, "%s", err.msg);
            size_t m2 = 0;
            for (size_t k = 0; k < nw; k++) m2 += fabs((double)D[k] - Q[k]) <= TOL_MATCH_ABS;
            CHECK_MSG(m2 == nw, "problem %d bits %d block %d vs %d: %zu/%zu match", pi, bits, other[b], bs,
                      m2, nw);
        }
    }
    free(Qref);
    free(Sref);
    free(Zref);
    free(Q);
    free(S);
    free(Z);
    free(D);
    free(codes);
    return 0;
}

static int run_problem(Reader *r, int pi) {
    int32_t hdr[3];
    float damp;
    uint32_t nc;
    if (rd_bytes(r, hdr, sizeof hdr) != 0 || rd_bytes(r, &damp, 4) != 0) return -1;
    const int out = hdr[0], in = hdr[1], N = hdr[2];
    if (out <= 0 || in <= 0 || N <= 0 || out > 4096 || in > 4096 || N > 65536) return -1;
    float *W = rd_floats(r, (size_t)out * in), *X = rd_floats(r, (size_t)N * in);
    float *Uref = rd_floats(r, (size_t)in * in);
    int rc = -1;
    float *H = NULL, *U = NULL;
    if (!W || !X || !Uref || rd_bytes(r, &nc, 4) != 0) goto done;
    H = make_h(X, N, in);
    U = zalloc((size_t)in * in);
    QErr err = {{0}};
    GptqInfo info;
    CHECK_MSG(gptq_hinv_upper(H, in, damp, U, &info, &err) == 0, "%s", err.msg);
    double num = 0, den = 0;
    int lower_zero = 1;
    for (size_t i = 0; i < (size_t)in; i++)
        for (size_t j = 0; j < (size_t)in; j++) {
            double d = (double)U[i * in + j] - Uref[i * in + j];
            num += d * d;
            den += (double)Uref[i * in + j] * Uref[i * in + j];
            if (j < i && U[i * in + j] != 0.0f) lower_zero = 0;
        }
    double res = inv_residual(U, H, in, damp);
    printf("problem %d: U vs ref relnorm %.3g, max|U^T U H_damped - I| %.3g, dead %d\n", pi, sqrt(num / den),
           res, info.n_dead);
    CHECK_MSG(sqrt(num / den) <= TOL_U_RELNORM, "problem %d: U relnorm %.3g", pi, sqrt(num / den));
    CHECK(lower_zero);
    CHECK(res < 1e-3);
    CHECK(info.n_dead == 1 && info.retries == 0);
    rc = 0;
    for (uint32_t c = 0; c < nc && rc == 0; c++) rc = run_case(r, pi, out, in, N, damp, W, X, H);

    /* Only H's upper triangle is read: a full symmetric H, or garbage below
     * the diagonal, give bitwise the same result. */
    if (rc == 0) {
        GptqSpec s = gptq_spec_make(out, in, 3, in < 16 ? in : 16);
        s.damp = damp;
        float *Q1 = zalloc((size_t)out * in), *Q2 = zalloc((size_t)out * in);
        CHECK(gptq_quantize(&s, W, H, Q1, NULL, NULL, NULL, NULL, &err) == 0);
        gptq_symmetrize_h(H, in);
        CHECK(gptq_quantize(&s, W, H, Q2, NULL, NULL, NULL, NULL, &err) == 0);
        CHECK(memcmp(Q1, Q2, (size_t)out * in * sizeof(float)) == 0);
        for (size_t i = 0; i < (size_t)in; i++)
            for (size_t j = 0; j < i; j++) H[i * in + j] = NAN;
        CHECK(gptq_quantize(&s, W, H, Q2, NULL, NULL, NULL, NULL, &err) == 0);
        CHECK(memcmp(Q1, Q2, (size_t)out * in * sizeof(float)) == 0);
        free(Q1);
        free(Q2);
    }
done:
    free(W);
    free(X);
    free(Uref);
    free(H);
    free(U);
    return rc;
}

static void test_golden(void) {
    Reader r;
    uint32_t n;
    if (golden_open(&r, "gptq_golden.bin", "QGPQ", "gptq_ref.py", 2, &n) != 0) return;
    for (uint32_t i = 0; i < n && check_failures < 50; i++)
        CHECK_MSG(run_problem(&r, (int)i) == 0, "problem %u: truncated or invalid golden file", i);
    CHECK_MSG(r.pos == r.len, "golden file has %zu trailing bytes", r.len - r.pos);
    double frac = g_total ? (double)g_match / (double)g_total : 0.0;
    printf("golden: %zu/%zu elements match within %g (%.4f)\n", g_match, g_total, TOL_MATCH_ABS, frac);
    CHECK_MSG(frac >= TOL_MATCH_FRAC, "match fraction %.4f < %.2f", frac, TOL_MATCH_FRAC);
    golden_close(&r);
}

/* Correlated inputs: a shared component, AR(1) chains along the channels,
 * per-channel scales with a few outlier channels. */
static void make_x(Rng *g, float *X, int N, int in) {
    float *scale = zalloc((size_t)in);
    for (int i = 0; i < in; i++) scale[i] = (i % 37 == 5) ? 8.0f : 0.3f + 2.0f * rng_uniform(g);
    for (int n = 0; n < N; n++) {
        float common = rng_normal(g), prev = 0.0f;
        for (int i = 0; i < in; i++) {
            float v = 0.8f * prev + 0.6f * rng_normal(g);
            prev = v;
            X[(size_t)n * in + i] = scale[i] * (v + 0.5f * common);
        }
    }
    free(scale);
}

static void test_large_random(void) {
    Rng g;
    rng_seed(&g, 2024);
    const int out = 64, in = 256, N = 512;
    float *X = zalloc((size_t)N * in), *W = zalloc((size_t)out * in);
    float *Q = zalloc((size_t)out * in), *D = zalloc((size_t)out * in);
    make_x(&g, X, N, in);
    fill_normal(&g, W, (size_t)out * in, 0.02f);
    /* H from two batches must equal H from one. */
    float *H = make_h(X, N, in), *H2 = zalloc((size_t)in * in);
    gptq_accumulate_h(H2, X, N / 2, in);
    gptq_accumulate_h(H2, X + (size_t)(N / 2) * in, N - N / 2, in);
    double hd = 0, hm = 0;
    for (size_t i = 0; i < (size_t)in; i++)
        for (size_t j = i; j < (size_t)in; j++) {
            double ref = 0;
            for (int n = 0; n < N; n++) ref += (double)X[(size_t)n * in + i] * X[(size_t)n * in + j];
            hd = fmax(hd, fmax(fabs(H[i * in + j] - ref), fabs(H2[i * in + j] - ref)));
            hm = fmax(hm, fabs(ref));
        }
    CHECK_MSG(hd <= 1e-5 * hm, "accumulate_h: max err %.3g of max %.3g", hd, hm);
    int lower_untouched = 1;
    for (size_t i = 0; i < (size_t)in; i++)
        for (size_t j = 0; j < i; j++) lower_untouched &= H[i * in + j] == 0.0f;
    CHECK(lower_untouched);

    const int groups[] = {128, 32};
    for (int gi = 0; gi < 2; gi++)
        for (int bits = 2; bits <= 4; bits++) {
            GptqSpec s = gptq_spec_make(out, in, bits, groups[gi]);
            QErr err = {{0}};
            GptqInfo info;
            CHECK_MSG(gptq_quantize(&s, W, H, Q, NULL, NULL, NULL, &info, &err) == 0, "%s", err.msg);
            double eg = out_err(X, N, Q, W, out, in);
            double er = rtn_err(X, N, W, out, in, bits, groups[gi]);
            printf("random %dx%d N %d bits %d group %3d: out err GPTQ %.5g RTN %.5g "
                   "GPTQ/RTN %.3f\n",
                   out, in, N, bits, groups[gi], eg, er, eg / er);
            CHECK_MSG(eg < 0.9 * er, "bits %d group %d: GPTQ %.5g not well below RTN %.5g", bits, groups[gi],
                      eg, er);
        }
    free(X);
    free(W);
    free(Q);
    free(D);
    free(H);
    free(H2);
}

/* A diagonal H has no correlations to exploit: U is diagonal, no error is
 * fed forward, and GPTQ is RTN bit for bit. */
static void test_diagonal_is_rtn(void) {
    Rng g;
    rng_seed(&g, 11);
    const int out = 12, in = 70;
    float *W = zalloc((size_t)out * in), *H = zalloc((size_t)in * in);
    float *Q = zalloc((size_t)out * in), *R = zalloc((size_t)out * in);
    fill_normal(&g, W, (size_t)out * in, 1.0f);
    for (int i = 0; i < in; i++) H[(size_t)i * in + i] = 0.5f + rng_uniform(&g);
    for (int bits = 1; bits <= 8; bits++) {
        const int group = bits % 2 ? 16 : in;
        GptqSpec s = gptq_spec_make(out, in, bits, group);
        s.block_size = 32;
        QErr err = {{0}};
        CHECK_MSG(gptq_quantize(&s, W, H, Q, NULL, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
        FqSpec fs = {out, in, bits, group, 0, 0, FQ_ADAPTER_BEFORE_QUANT, 0, FQ_FORMAT_INT, 0};
        fq_rtn(&fs, W, R);
        CHECK_MSG(memcmp(Q, R, (size_t)out * in * sizeof(float)) == 0,
                  "bits %d: GPTQ with diagonal H differs from RTN", bits);
    }
    free(W);
    free(H);
    free(Q);
    free(R);
}

/* All-zero X: H = 0, every column dead, What = 0; and some dead columns in
 * an otherwise normal H give What = 0 there. */
static void test_dead(void) {
    Rng g;
    rng_seed(&g, 5);
    const int out = 8, in = 48, N = 32;
    float *W = zalloc((size_t)out * in), *X = zalloc((size_t)N * in);
    float *Q = zalloc((size_t)out * in), *S = zalloc((size_t)out * 3), *Z = zalloc((size_t)out * 3);
    uint8_t *codes = calloc((size_t)out * in, 1);
    fill_normal(&g, W, (size_t)out * in, 1.0f);
    float *H = make_h(X, N, in);
    GptqSpec s = gptq_spec_make(out, in, 4, 16);
    QErr err = {{0}};
    GptqInfo info;
    CHECK_MSG(gptq_quantize(&s, W, H, Q, codes, S, Z, &info, &err) == 0, "%s", err.msg);
    int allzero = 1;
    for (size_t k = 0; k < (size_t)out * in; k++) allzero &= Q[k] == 0.0f;
    CHECK(allzero);
    CHECK(info.n_dead == in && info.retries == 0);
    free(H);

    make_x(&g, X, N, in);
    const int dead[] = {0, 15, 16, 47};
    for (int d = 0; d < 4; d++)
        for (int n = 0; n < N; n++) X[(size_t)n * in + dead[d]] = 0.0f;
    H = make_h(X, N, in);
    CHECK_MSG(gptq_quantize(&s, W, H, Q, codes, S, Z, &info, &err) == 0, "%s", err.msg);
    CHECK(info.n_dead == 4);
    int deadzero = 1;
    for (int o = 0; o < out; o++)
        for (int d = 0; d < 4; d++) deadzero &= Q[(size_t)o * in + dead[d]] == 0.0f;
    CHECK(deadzero);
    double eg = out_err(X, N, Q, W, out, in), er = rtn_err(X, N, W, out, in, 4, 16);
    CHECK_MSG(eg < er, "dead columns: GPTQ %.5g RTN %.5g", eg, er);
    free(W);
    free(X);
    free(Q);
    free(S);
    free(Z);
    free(codes);
    free(H);
}

/* Not positive definite: retried with 10x damping, error only when all fail. */
static void test_retry(void) {
    float W[2 * 2] = {0.3f, -0.7f, 1.1f, 0.2f}, Q[4], U[4];
    /* eigenvalues -1, 3, mean diag 1: fails at +0.01, +0.1, +1 (singular),
     * works at +10 */
    float H1[4] = {1.0f, 2.0f, 2.0f, 1.0f};
    GptqSpec s = gptq_spec_make(2, 2, 4, 2);
    QErr err = {{0}};
    GptqInfo info;
    CHECK_MSG(gptq_quantize(&s, W, H1, Q, NULL, NULL, NULL, &info, &err) == 0, "%s", err.msg);
    CHECK(info.retries == 3);
    CHECK_CLOSE(info.damp_used, 10.0, 0, 1e-6);
    CHECK(gptq_hinv_upper(H1, 2, 0.01f, U, &info, &err) == 0 && info.retries == 3);
    /* eigenvalue -99: fails even at +10 */
    float H2[4] = {1.0f, 100.0f, 100.0f, 1.0f};
    err.msg[0] = 0;
    CHECK(gptq_quantize(&s, W, H2, Q, NULL, NULL, NULL, &info, &err) == -1);
    printf("expected error: %s\n", err.msg);
    CHECK(strstr(err.msg, "2 x 2") && strstr(err.msg, "info") && strstr(err.msg, "positive"));
    /* negative diagonal */
    float H3[4] = {-1.0f, 0.0f, 0.0f, 1.0f};
    CHECK(gptq_hinv_upper(H3, 2, 0.01f, U, NULL, &err) == -1);
}

static void test_spec_check(void) {
    const int out = 4, in = 8;
    float W[4 * 8] = {0}, H[8 * 8] = {0}, Q[4 * 8];
    for (int i = 0; i < in; i++) H[i * in + i] = 1.0f;
    QErr err;
    GptqSpec ok = gptq_spec_make(out, in, 3, 4);
    CHECK(ok.damp == 0.01f && ok.block_size == 128);
    CHECK(gptq_spec_check(&ok, &err) == 0);
    CHECK(gptq_quantize(&ok, W, H, Q, NULL, NULL, NULL, NULL, &err) == 0);
    struct {
        GptqSpec s;
        const char *what;
    } bad[] = {
        {{0, in, 3, 4, 0.01f, 128}, "shape"},      {{out, 0, 3, 4, 0.01f, 128}, "shape"},
        {{out, in, 0, 4, 0.01f, 128}, "bits"},     {{out, in, 9, 4, 0.01f, 128}, "bits"},
        {{out, in, 3, 0, 0.01f, 128}, "group"},    {{out, in, 3, 9, 0.01f, 128}, "group"},
        {{out, in, 3, 4, 0.0f, 128}, "damp"},      {{out, in, 3, 4, -1.0f, 128}, "damp"},
        {{out, in, 3, 4, NAN, 128}, "damp"},       {{out, in, 3, 4, INFINITY, 128}, "damp"},
        {{out, in, 3, 4, 0.01f, 0}, "block_size"}, {{65536, 65536, 3, 4, 0.01f, 128}, "INT_MAX"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err.msg[0] = 0;
        CHECK_MSG(gptq_spec_check(&bad[k].s, &err) == -1, "bad spec %zu accepted", k);
        CHECK_MSG(strstr(err.msg, bad[k].what) != NULL, "spec %zu: '%s' lacks '%s'", k, err.msg, bad[k].what);
        CHECK(gptq_quantize(&bad[k].s, W, H, Q, NULL, NULL, NULL, NULL, &err) == -1);
    }
    CHECK(gptq_spec_check(NULL, &err) == -1);
    CHECK(gptq_quantize(&ok, NULL, H, Q, NULL, NULL, NULL, NULL, &err) == -1);
    CHECK(gptq_quantize(&ok, W, NULL, Q, NULL, NULL, NULL, NULL, &err) == -1);
    CHECK(gptq_quantize(&ok, W, H, NULL, NULL, NULL, NULL, NULL, &err) == -1);
    CHECK(gptq_quantize(&ok, W, H, W, NULL, NULL, NULL, NULL, &err) == -1);
    W[5] = NAN;
    CHECK(gptq_quantize(&ok, W, H, Q, NULL, NULL, NULL, NULL, &err) == -1 && strstr(err.msg, "non-finite"));
    W[5] = 0.0f;
    H[1 * in + 3] = INFINITY;
    CHECK(gptq_quantize(&ok, W, H, Q, NULL, NULL, NULL, NULL, &err) == -1 && strstr(err.msg, "non-finite"));
    H[1 * in + 3] = 0.0f;
    H[3 * in + 1] = INFINITY; /* below the diagonal: never read */
    CHECK(gptq_quantize(&ok, W, H, Q, NULL, NULL, NULL, NULL, &err) == 0);
}

/* The fixed-grid entry point (QuEPT's GPTQ candidate):
 *  - fed the grids plain GPTQ chose, it is plain GPTQ bit for bit (the same
 *    column loop; plain GPTQ is checked against the PyTorch golden above);
 *  - with a diagonal H it is round-to-nearest on the given grid: the codes
 *    fakequant gives with learned clipping (sigmoid logits < 1);
 *  - on correlated inputs it lowers the output error of that clipped grid's
 *    rounding, at every width;
 *  - a scale that is not finite and > 0 is refused, naming the group. */
static void test_fixed_grid(void) {
    Rng g;
    rng_seed(&g, 77);
    const int out = 24, in = 96, N = 256, group = 32, ng = in / group;
    float *X = zalloc((size_t)N * in), *W = zalloc((size_t)out * in);
    float *Q = zalloc((size_t)out * in), *Q2 = zalloc((size_t)out * in), *R = zalloc((size_t)out * in);
    float *S = zalloc((size_t)out * ng), *Z = zalloc((size_t)out * ng);
    float *gam = zalloc((size_t)out * ng), *bet = zalloc((size_t)out * ng);
    uint8_t *c1 = calloc((size_t)out * in, 1), *c2 = calloc((size_t)out * in, 1);
    make_x(&g, X, N, in);
    fill_normal(&g, W, (size_t)out * in, 0.05f);
    float *H = make_h(X, N, in);
    QErr err = {{0}};
    for (int bits = 2; bits <= 8; bits++) {
        GptqSpec s = gptq_spec_make(out, in, bits, group);
        s.block_size = 40; /* groups reach past lazy blocks */
        CHECK_MSG(gptq_quantize(&s, W, H, Q, c1, S, Z, NULL, &err) == 0, "%s", err.msg);
        CHECK_MSG(gptq_quantize_grid(&s, W, H, S, Z, Q2, c2, NULL, &err) == 0, "%s", err.msg);
        CHECK_MSG(memcmp(c1, c2, (size_t)out * in) == 0 && memcmp(Q, Q2, sizeof(float) * out * in) == 0,
                  "bits %d: fixed grid fed plain GPTQ's grids differs from plain GPTQ", bits);

        /* a clipped grid (logits 1.5 .. 3.5) */
        for (size_t k = 0; k < (size_t)out * ng; k++) {
            gam[k] = 1.5f + 2.0f * rng_uniform(&g);
            bet[k] = 1.5f + 2.0f * rng_uniform(&g);
        }
        FqSpec fs = {out, in, bits, group, 0, 0, FQ_ADAPTER_BEFORE_QUANT, 1, FQ_FORMAT_INT, 0};
        fq_quantize_codes(&fs, W, NULL, NULL, gam, bet, c1, S, Z, NULL);
        fq_forward(&fs, W, NULL, NULL, gam, bet, R, NULL);
        float *Hd = zalloc((size_t)in * in);
        for (int i = 0; i < in; i++) Hd[(size_t)i * in + i] = H[(size_t)i * in + i];
        CHECK_MSG(gptq_quantize_grid(&s, W, Hd, S, Z, Q2, c2, NULL, &err) == 0, "%s", err.msg);
        CHECK_MSG(memcmp(c1, c2, (size_t)out * in) == 0 && memcmp(R, Q2, sizeof(float) * out * in) == 0,
                  "bits %d: fixed grid with diagonal H is not the clipped grid's rounding", bits);
        free(Hd);
        CHECK_MSG(gptq_quantize_grid(&s, W, H, S, Z, Q2, c2, NULL, &err) == 0, "%s", err.msg);
        double eg = out_err(X, N, Q2, W, out, in), er = out_err(X, N, R, W, out, in);
        printf("fixed clipped grid %d bits: out err GPTQ %.5g nearest %.5g (%.3f)\n", bits, eg, er, eg / er);
        CHECK_MSG(eg < 0.95 * er, "bits %d: GPTQ on the fixed grid %.5g not below its rounding %.5g", bits,
                  eg, er);
    }
    GptqSpec s = gptq_spec_make(out, in, 4, group);
    S[5] = 0.0f;
    CHECK(gptq_quantize_grid(&s, W, H, S, Z, Q2, c2, NULL, &err) == -1 && strstr(err.msg, "group 5"));
    S[5] = NAN;
    CHECK(gptq_quantize_grid(&s, W, H, S, Z, Q2, c2, NULL, &err) == -1 && strstr(err.msg, "scale"));
    S[5] = 0.1f;
    Z[3] = INFINITY;
    CHECK(gptq_quantize_grid(&s, W, H, S, Z, Q2, c2, NULL, &err) == -1 && strstr(err.msg, "zero"));
    CHECK(gptq_quantize_grid(&s, W, H, NULL, Z, Q2, c2, NULL, &err) == -1);
    free(X);
    free(W);
    free(Q);
    free(Q2);
    free(R);
    free(S);
    free(Z);
    free(gam);
    free(bet);
    free(c1);
    free(c2);
    free(H);
}

int main(void) {
    test_spec_check();
    test_golden();
    test_diagonal_is_rtn();
    test_fixed_grid();
    test_dead();
    test_retry();
    test_large_random();
    CHECK_DONE();
}
