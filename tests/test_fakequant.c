/* test_fakequant.c — common/quant/fakequant.c against the PyTorch autograd
 * reference (tests/ref/fakequant_ref.py → tests/data/fakequant_golden.bin),
 * plus properties that need no reference.
 *
 * Tolerances (the golden is the float64 math of float32 inputs; we run in
 * float32):
 *  - What: an element matches when |c - ref| <= 1e-5*|ref| + 1e-5*s (s = the
 *    group's step); the float32 error is a few ulp of s times |q - z|.
 *    An element off by one step (| |c - ref| - s | <= 1e-3 s) is a rounding
 *    flip between float32 and float64; the generator keeps every rounding
 *    input >= 2e-3 away from a .5 boundary (float32 error in u is < 1e-4
 *    here), so flips are not expected: we allow at most n/1000 of them, and
 *    any other mismatch fails.
 *  - scales: relative 1e-5; zeros: equal (they are integers).
 *  - dgamma, dbeta, dBd, dBu: relative norm ||c - ref|| / ||ref|| <= 1e-4
 *    and max |c - ref| <= 1e-4 * max |ref|. The float32 error comes from
 *    summing ~group terms of dWhat * (round(u) - u) (exact per term) and
 *    the sgemms (~in or out terms): ~1e-6; observed max is printed per case.
 *    A wrong term (a missing arg-max gradient, the clamp mask, the sigmoid
 *    derivative) moves these by 1e-2 or more.
 *  - Parts that must be untouched (dBd columns >= rank, dBu rows >= rank,
 *    dgamma/dbeta with lwc = 0) must be exactly 0.
 *  - codes: dequantize(codes, scales, zeros) == fq_forward's What bitwise. */
#include <stdint.h>
#include <string.h>

#include "base/mapfile.h"
#include "base/rng.h"
#include "check.h"
#include "golden.h"
#include "quant/fakequant.h"

#define TOL_W_REL     1e-5
#define TOL_W_STEP    1e-5
#define TOL_FLIP_FRAC 1e-3
#define TOL_S_REL     1e-5
#define TOL_G_RELNORM 1e-4
#define TOL_G_MAXREL  1e-4

static void check_grad(const char *name, int ci, const float *c, const float *ref, size_t n, double *worst) {
    double rn, mr;
    rel_err(c, ref, n, &rn, &mr);
    CHECK_MSG(rn <= TOL_G_RELNORM, "case %d %s: relnorm %.3g > %g", ci, name, rn, TOL_G_RELNORM);
    CHECK_MSG(mr <= TOL_G_MAXREL, "case %d %s: max err / max|ref| %.3g > %g", ci, name, mr, TOL_G_MAXREL);
    if (rn > *worst) *worst = rn;
    if (mr > *worst) *worst = mr;
}

/* One golden case; returns -1 on a read error. */
static int run_case(Reader *r, int ci) {
    int32_t h[8];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    FqSpec sp = golden_spec(h);
    sp.mode = h[6];
    sp.lwc = h[7];
    QErr err;
    if (fq_spec_check(&sp, &err) != 0) {
        fprintf(stderr, "case %d: %s\n", ci, err.msg);
        return -1;
    }
    const int out = sp.out, in = sp.in, R = sp.R, ng = fq_ngroups(&sp), g = sp.group;
    const size_t nw = (size_t)out * in, ngt = (size_t)out * ng;
    float *W = rd_floats(r, nw), *Bd = rd_floats(r, (size_t)out * R), *Bu = rd_floats(r, (size_t)R * in);
    float *gam = rd_floats(r, ngt), *bet = rd_floats(r, ngt), *dy = rd_floats(r, nw);
    float *What_ref = rd_floats(r, nw), *S_ref = rd_floats(r, ngt), *Z_ref = rd_floats(r, ngt);
    float *dg_ref = rd_floats(r, ngt), *db_ref = rd_floats(r, ngt);
    float *dBd_ref = rd_floats(r, (size_t)out * R), *dBu_ref = rd_floats(r, (size_t)R * in);
    if (!dBu_ref) return -1; /* the file is read in order: the last one failing covers all */

    float *What = zalloc(nw), *scratch = zalloc(fq_scratch_floats(&sp));
    size_t nwork = fq_work_floats(&sp);
    float *work = nwork ? zalloc(nwork) : NULL;
    float *dg = zalloc(ngt), *db = zalloc(ngt), *dBd = zalloc((size_t)out * R);
    float *dBu = zalloc((size_t)R * in), *S = zalloc(ngt), *Z = zalloc(ngt), *deq = zalloc(nw);
    uint8_t *codes = malloc(nw);

    /* forward */
    fq_forward(&sp, W, Bd, Bu, gam, bet, What, scratch);
    size_t flips = 0, bad = 0;
    double worst_w = 0; /* max |c - ref| / s over matching elements */
    for (int o = 0; o < out; o++)
        for (int j = 0; j < in; j++) {
            size_t i = (size_t)o * in + j;
            double s = S_ref[(size_t)o * ng + j / g];
            double d = fabs((double)What[i] - What_ref[i]);
            if (d <= TOL_W_REL * fabs(What_ref[i]) + TOL_W_STEP * s) {
                if (d / s > worst_w) worst_w = d / s;
            } else if (fabs(d - s) <= 1e-3 * s) {
                flips++;
            } else {
                if (bad < 5)
                    fprintf(stderr, "case %d What[%d][%d] = %.9g, ref %.9g (s %.6g)\n", ci, o, j, What[i],
                            What_ref[i], s);
                bad++;
            }
        }
    CHECK_MSG(bad == 0, "case %d: %zu What elements off by more than a rounding flip", ci, bad);
    CHECK_MSG(flips <= (size_t)(TOL_FLIP_FRAC * nw), "case %d: %zu rounding flips", ci, flips);

    /* codes, scales, zeros */
    fq_quantize_codes(&sp, W, Bd, Bu, gam, bet, codes, S, Z, work);
    double worst_s = 0;
    size_t zbad = 0, cbad = 0;
    for (size_t i = 0; i < ngt; i++) {
        double e = fabs((double)S[i] - S_ref[i]) / S_ref[i];
        if (e > worst_s) worst_s = e;
        zbad += Z[i] != Z_ref[i];
    }
    for (size_t i = 0; i < nw; i++) cbad += codes[i] > (1u << sp.bits) - 1;
    CHECK_MSG(worst_s <= TOL_S_REL, "case %d: scale rel err %.3g", ci, worst_s);
    CHECK_MSG(zbad == 0, "case %d: %zu zero points differ", ci, zbad);
    CHECK_MSG(cbad == 0, "case %d: %zu codes above qmax", ci, cbad);
    fq_dequantize(&sp, codes, S, Z, deq);
    CHECK_MSG(memcmp(deq, What, nw * sizeof(float)) == 0, "case %d: dequantize(codes) != fq_forward What",
              ci);
    for (size_t i = 0; i < ngt; i++) { /* the scratch grid is the exported grid */
        CHECK(scratch[i] == S[i]);
        CHECK(scratch[ngt + i] == Z[i]);
    }

    /* backward */
    fq_backward(&sp, W, Bd, Bu, gam, bet, scratch, dy, dg, db, dBd, dBu, work);
    double worst_g = 0;
    check_grad("dgamma", ci, dg, dg_ref, ngt, &worst_g);
    check_grad("dbeta", ci, db, db_ref, ngt, &worst_g);
    check_grad("dBd", ci, dBd, dBd_ref, (size_t)out * R, &worst_g);
    check_grad("dBu", ci, dBu, dBu_ref, (size_t)R * in, &worst_g);
    size_t untouched = 0;
    for (int o = 0; o < out; o++)
        for (int k = sp.rank; k < R; k++) untouched += dBd[(size_t)o * R + k] != 0.0f;
    for (size_t i = (size_t)sp.rank * in; i < (size_t)R * in; i++) untouched += dBu[i] != 0.0f;
    if (!sp.lwc)
        for (size_t i = 0; i < ngt; i++) untouched += (dg[i] != 0.0f) + (db[i] != 0.0f);
    CHECK_MSG(untouched == 0, "case %d: %zu gradient entries outside rank/lwc are nonzero", ci, untouched);

    /* The backward accumulates: a second call doubles every gradient (the
     * doubling is exact in float32 as long as both calls give the same). */
    float *dg1 = zalloc(ngt), *dBu1 = zalloc((size_t)R * in);
    memcpy(dg1, dg, ngt * sizeof(float));
    memcpy(dBu1, dBu, (size_t)R * in * sizeof(float));
    fq_backward(&sp, W, Bd, Bu, gam, bet, scratch, dy, dg, db, dBd, dBu, work);
    size_t nacc = 0;
    for (size_t i = 0; i < ngt; i++) nacc += dg[i] != 2.0f * dg1[i];
    for (size_t i = 0; i < (size_t)R * in; i++)
        nacc += fabsf(dBu[i] - 2.0f * dBu1[i]) > 1e-5f * fabsf(dBu1[i]) + 1e-30f;
    CHECK_MSG(nacc == 0, "case %d: backward does not accumulate (%zu entries)", ci, nacc);
    free(dg1);
    free(dBu1);

    printf("case %2d  (out %d in %d bits %d group %d rank %d/%d mode %d lwc %d)  What max "
           "err %.2g step, flips %zu  scale rel %.2g  grads worst %.2g\n",
           ci, out, in, sp.bits, g, sp.rank, R, sp.mode, sp.lwc, worst_w, flips, worst_s, worst_g);

    float *all[] = {W,       Bd,   Bu,      gam,  bet, dy, What_ref, S_ref, Z_ref, dg_ref, db_ref, dBd_ref,
                    dBu_ref, What, scratch, work, dg,  db, dBd,      dBu,   S,     Z,      deq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(codes);
    return 0;
}

static void test_golden(void) {
    Reader r;
    uint32_t n;
    if (golden_open(&r, "fakequant_golden.bin", "QFQG", "fakequant_ref.py", 10, &n) != 0) return;
    for (uint32_t i = 0; i < n && check_failures < 50; i++)
        CHECK_MSG(run_case(&r, (int)i) == 0, "case %u: truncated or invalid golden file", i);
    CHECK_MSG(r.pos == r.len, "golden file has %zu trailing bytes", r.len - r.pos);
    golden_close(&r);
}

static void fill_normal(Rng *g, float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * rng_normal(g);
}

/* fq_rtn == fq_forward with clip factors 1 (gamma = beta = 20: sigmoid is
 * 1.0f exactly) and no adapter; and RTN's own properties. */
static void test_rtn(void) {
    Rng g;
    rng_seed(&g, 7);
    const int out = 16, in = 200;
    const int groups[] = {200, 64, 7, 1};
    float *W = malloc(sizeof(float) * out * in), *a = malloc(sizeof(float) * out * in);
    float *b = malloc(sizeof(float) * out * in);
    fill_normal(&g, W, (size_t)out * in, 0.05f);
    for (int gi = 0; gi < 4; gi++) {
        for (int bits = 2; bits <= 8; bits += 3) {
            FqSpec sp = {.out = out,
                         .in = in,
                         .bits = bits,
                         .group = groups[gi],
                         .rank = 0,
                         .R = 4,
                         .mode = 0,
                         .lwc = 1};
            int ng = fq_ngroups(&sp);
            float *gam = malloc(sizeof(float) * out * ng);
            for (int i = 0; i < out * ng; i++) gam[i] = 20.0f;
            fq_rtn(&sp, W, a);
            fq_forward(&sp, W, NULL, NULL, gam, gam, b, NULL);
            CHECK_MSG(memcmp(a, b, sizeof(float) * out * in) == 0,
                      "rtn != forward(sigmoid = 1), group %d bits %d", groups[gi], bits);
            sp.mode = 1; /* with no adapter the modes coincide */
            fq_forward(&sp, W, NULL, NULL, gam, gam, b, NULL);
            CHECK(memcmp(a, b, sizeof(float) * out * in) == 0);
            /* unclipped grid: every weight within half a step */
            double worst = 0;
            for (int o = 0; o < out; o++)
                for (int k = 0; k < ng; k++) {
                    int j0 = k * sp.group, j1 = j0 + sp.group < in ? j0 + sp.group : in;
                    float mx = W[o * in + j0], mn = mx;
                    for (int j = j0; j < j1; j++) {
                        mx = fmaxf(mx, W[o * in + j]);
                        mn = fminf(mn, W[o * in + j]);
                    }
                    float s = fmaxf((mx - mn) / (float)((1 << bits) - 1), 1e-5f);
                    for (int j = j0; j < j1; j++) {
                        double e = fabs((double)a[o * in + j] - W[o * in + j]) / s;
                        if (e > worst) worst = e;
                    }
                }
            CHECK_MSG(worst <= 0.5 + 1e-4, "rtn error %.6g steps (group %d bits %d)", worst, groups[gi],
                      bits);
            free(gam);
        }
    }
    free(W);
    free(a);
    free(b);
}

/* A bigger layer: codes reproduce What bitwise in both modes, and NULL
 * dgamma/dbeta leave the adapter gradients unchanged. */
static void test_codes_and_nulls(void) {
    Rng g;
    rng_seed(&g, 11);
    const int out = 48, in = 300, R = 16;
    for (int mode = 0; mode <= 1; mode++) {
        FqSpec sp = {
            .out = out, .in = in, .bits = 3, .group = 128, .rank = 12, .R = R, .mode = mode, .lwc = 1};
        QErr err;
        CHECK(fq_spec_check(&sp, &err) == 0);
        const int ng = fq_ngroups(&sp);
        CHECK(ng == 3);
        size_t nw = (size_t)out * in;
        float *W = zalloc(nw), *Bd = zalloc((size_t)out * R), *Bu = zalloc((size_t)R * in);
        float *gam = zalloc((size_t)out * ng), *bet = zalloc((size_t)out * ng);
        float *What = zalloc(nw), *deq = zalloc(nw), *work = zalloc(fq_work_floats(&sp));
        float *scratch = zalloc(fq_scratch_floats(&sp)), *S = zalloc((size_t)out * ng);
        float *Z = zalloc((size_t)out * ng), *dy = zalloc(nw);
        float *dBd1 = zalloc((size_t)out * R), *dBu1 = zalloc((size_t)R * in);
        float *dBd2 = zalloc((size_t)out * R), *dBu2 = zalloc((size_t)R * in);
        float *dg = zalloc((size_t)out * ng), *db = zalloc((size_t)out * ng);
        uint8_t *codes = malloc(nw);
        fill_normal(&g, W, nw, 0.05f);
        fill_normal(&g, Bd, (size_t)out * R, 0.02f);
        fill_normal(&g, Bu, (size_t)R * in, 0.2f);
        fill_normal(&g, dy, nw, 1.0f);
        for (int i = 0; i < out * ng; i++) {
            gam[i] = 2.0f + rng_normal(&g);
            bet[i] = 2.0f + rng_normal(&g);
        }
        fq_forward(&sp, W, Bd, Bu, gam, bet, What, scratch);
        fq_quantize_codes(&sp, W, Bd, Bu, gam, bet, codes, S, Z, work);
        fq_dequantize(&sp, codes, S, Z, deq);
        CHECK_MSG(memcmp(deq, What, nw * sizeof(float)) == 0, "mode %d: codes do not reproduce What", mode);
        fq_backward(&sp, W, Bd, Bu, gam, bet, scratch, dy, dg, db, dBd1, dBu1, work);
        fq_backward(&sp, W, Bd, Bu, gam, bet, scratch, dy, NULL, NULL, dBd2, dBu2, work);
        CHECK(memcmp(dBd1, dBd2, sizeof(float) * out * R) == 0);
        CHECK(memcmp(dBu1, dBu2, sizeof(float) * R * in) == 0);
        float *all[] = {W, Bd, Bu, gam,  bet,  What, deq,  work, scratch,
                        S, Z,  dy, dBd1, dBu1, dBd2, dBu2, dg,   db};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
        free(codes);
    }
}

/* group = 1 with plain min/max: s clamps to 1e-5 and z = -round(w/s), so
 * What = round(w/1e-5)*1e-5 — within half a step of w. */
static void test_group_one(void) {
    Rng g;
    rng_seed(&g, 3);
    const int out = 4, in = 33;
    float W[4 * 33], What[4 * 33];
    fill_normal(&g, W, out * in, 0.05f);
    FqSpec sp = {.out = out, .in = in, .bits = 2, .group = 1};
    fq_rtn(&sp, W, What);
    double worst = 0;
    for (int i = 0; i < out * in; i++) {
        double e = fabs((double)What[i] - W[i]);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst <= 0.5e-5 * (1 + 1e-3), "group 1: max error %.3g", worst);
}

/* Exact .5 ties round half to even, as torch.round: the golden cannot see
 * this (its generator keeps every input away from .5). Row [0 .. 3] with
 * qmax 3 gives s = 1, z = 0. */
static void test_round_half_even(void) {
    const float W[8] = {0.0f, 0.5f, 1.5f, 2.5f, 3.0f, -0.0f, 1.0f, 2.0f};
    const float want[8] = {0.0f, 0.0f, 2.0f, 2.0f, 3.0f, 0.0f, 1.0f, 2.0f};
    float What[8];
    FqSpec sp = {.out = 1, .in = 8, .bits = 2, .group = 8};
    fq_rtn(&sp, W, What);
    for (int j = 0; j < 8; j++) CHECK_CLOSE(What[j], want[j], 0, 0);
}

static void test_spec_check(void) {
    QErr err;
    FqSpec ok = {.out = 4, .in = 10, .bits = 4, .group = 10, .rank = 2, .R = 4, .mode = 1, .lwc = 1};
    CHECK(fq_spec_check(&ok, &err) == 0);
    CHECK(fq_ngroups(&ok) == 1);
    FqSpec bad[] = {ok, ok, ok, ok, ok, ok, ok};
    bad[0].group = 11;
    bad[1].group = 0;
    bad[2].bits = 9;
    bad[3].rank = 5;
    bad[4].mode = 2;
    bad[5].out = 0;
    bad[6].lwc = 3;
    for (int i = 0; i < 7; i++) {
        CHECK_MSG(fq_spec_check(&bad[i], &err) == -1, "bad spec %d accepted", i);
        CHECK(strstr(err.msg, "fakequant") != NULL);
    }
    FqSpec p = ok;
    p.group = 3;
    CHECK(fq_ngroups(&p) == 4);
    CHECK(fq_scratch_floats(&p) == 4u * 4 * 4);
    CHECK(fq_work_floats(&p) == 40);
    p.rank = 0;
    CHECK(fq_work_floats(&p) == 0);
}

int main(void) {
    test_spec_check();
    test_golden();
    test_rtn();
    test_group_one();
    test_round_half_even();
    test_codes_and_nulls();
    CHECK_DONE();
}
