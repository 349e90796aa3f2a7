/* test_pot.c — power-of-two (PoT) quantization (pot.h; fakequant.h's
 * FQ_FORMAT_POT path; DESIGN.md §2):
 *
 *  1. the quantizer against an independent PyTorch autograd reference
 *     (tests/ref/pot_ref.py → tests/data/pot_golden.bin): values and codes
 *     (exact), scales, and the gradients of the scale refinement Γ and of the
 *     adapters, for bits 2–5, partial groups, r < R, lwc off, a group on the
 *     0.01 floor of 1 + Γ; dequantizing the codes (exponent add) gives the
 *     forward's weights bitwise;
 *  2. a whole block's training step (recon_step_bit with PoT weights, the L2
 *     penalty on Γ included) against the same reference: loss, output,
 *     dΓ, dBd, dBu of every linear;
 *  3. the gradient of the block loss w.r.t. Γ against central finite
 *     differences where the straight-through estimator is the true
 *     derivative: every element saturated (E clamped at 0 or at Emax, so the
 *     weights are ±s·2^E with E fixed and the loss is smooth in Γ);
 *  4. the data-free scale search against a brute-force reference (every
 *     multiplier, every exponent by exhaustive nearest-level search, errors
 *     in double); the kernel's exponent is the nearest level's; hand cases
 *     for the ties (up), the ends of the STE range, -0 and tiny values;
 *  5. switching a PoT artifact gives the documented codes (sign bit b-1,
 *     exponent below it; zeros 0) that decode to elastic_switch's weights
 *     bitwise; the artifact records the format per tensor, reloads as PoT,
 *     and an artifact written before the format field existed
 *     (tests/data/old_int_v1.qept, by the code at commit bf19b61) loads as
 *     integer codes and switches to the old code's weights bitwise.
 *
 * Tolerances as test_fakequant / test_qblock_grad (the generator keeps every
 * |u| >= 1.5e-3 log2 units from a rounding boundary, so float32 and float64
 * take the same branches): values, scales 1e-6 relative; gradients relnorm
 * and max-relative 1e-4; block loss 1e-5, output relnorm 1e-5. */
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "artifact/elastic.h"
#include "artifact/switch.h"
#include "base/mapfile.h"
#include "base/rng.h"
#include "check.h"
#include "engine/qblock.h"
#include "engine/recon_step.h"
#include "fixtures.h"
#include "golden.h"
#include "quant/pot.h"

#define TOL_VAL_REL     1e-6
#define TOL_G           1e-4
#define TOL_LOSS_REL    1e-5
#define TOL_OUT_RELNORM 1e-5

static double worst_grad = 0.0;

static double check_grad(const char *ctx, const char *what, const float *c, const float *ref, size_t n,
                         int must_be_nonzero) {
    double rn, mr;
    rel_err(c, ref, n, &rn, &mr);
    CHECK_MSG(rn <= TOL_G && mr <= TOL_G, "%s %s: relnorm %.3g, max rel %.3g > %g", ctx, what, rn, mr, TOL_G);
    if (must_be_nonzero) {
        double r2 = 0;
        for (size_t i = 0; i < n; i++) r2 += (double)ref[i] * ref[i];
        CHECK_MSG(r2 > 0, "%s %s: the reference gradient is all zero", ctx, what);
    }
    if (rn > worst_grad) worst_grad = rn;
    if (mr > worst_grad) worst_grad = mr;
    return rn > mr ? rn : mr;
}

/* ---- 1. the quantizer ---- */

static int quant_case(Reader *r, int ci) {
    int32_t h[7];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    FqSpec sp = golden_spec(h);
    sp.mode = FQ_ADAPTER_BEFORE_QUANT;
    sp.lwc = h[6];
    sp.format = FQ_FORMAT_POT;
    QErr err;
    if (fq_spec_check(&sp, &err) != 0) {
        fprintf(stderr, "quant case %d: %s\n", ci, err.msg);
        return -1;
    }
    const size_t n = (size_t)sp.out * sp.in, ng = (size_t)sp.out * fq_ngroups(&sp);
    const size_t nbd = (size_t)sp.out * sp.R, nbu = (size_t)sp.R * sp.in;
    float *W = rd_floats(r, n), *Bd = rd_floats(r, nbd), *Bu = rd_floats(r, nbu);
    float *gam = rd_floats(r, ng), *s0 = rd_floats(r, ng), *dW = rd_floats(r, n);
    float *v_ref = rd_floats(r, n), *c_ref = rd_floats(r, n), *s_ref = rd_floats(r, ng);
    float *dg_ref = rd_floats(r, ng), *dBd_ref = rd_floats(r, nbd), *dBu_ref = rd_floats(r, nbu);
    if (!dBu_ref) return -1; /* read in order: the last one failing covers all */

    float *v = zalloc(n), *scr = zalloc(fq_scratch_floats(&sp)), *work = zalloc(fq_work_floats(&sp) + n);
    float *dg = zalloc(ng), *db = zalloc(ng), *dBd = zalloc(nbd), *dBu = zalloc(nbu);
    float *sc = zalloc(ng), *zs = zalloc(ng), *deq = zalloc(n);
    uint8_t *codes = malloc(n);
    CHECK(v && scr && work && dg && db && dBd && dBu && sc && zs && deq && codes);
    fq_forward(&sp, W, Bd, Bu, gam, s0, v, scr);
    double rn, mr;
    rel_err(v, v_ref, n, &rn, &mr);
    CHECK_MSG(mr <= TOL_VAL_REL, "quant case %d: values max rel err %.3g", ci, mr);
    fq_quantize_codes(&sp, W, Bd, Bu, gam, s0, codes, sc, zs, work);
    size_t bad_codes = 0, bad_zero = 0, bad_deq = 0;
    for (size_t i = 0; i < n; i++) bad_codes += (float)codes[i] != c_ref[i];
    for (size_t i = 0; i < ng; i++) bad_zero += zs[i] != 0.0f;
    CHECK_MSG(bad_codes == 0, "quant case %d: %zu codes differ from the reference", ci, bad_codes);
    CHECK_MSG(bad_zero == 0, "quant case %d: PoT zero points must be 0", ci);
    double srn, smr;
    rel_err(sc, s_ref, ng, &srn, &smr);
    CHECK_MSG(smr <= TOL_VAL_REL, "quant case %d: scales max rel err %.3g", ci, smr);
    fq_dequantize(&sp, codes, sc, zs, deq);
    for (size_t i = 0; i < n; i++) bad_deq += memcmp(&deq[i], &v[i], sizeof(float)) != 0;
    CHECK_MSG(bad_deq == 0, "quant case %d: %zu dequantized codes differ bitwise from the forward", ci,
              bad_deq);

    fq_backward(&sp, W, Bd, Bu, gam, s0, scr, dW, dg, db, sp.rank ? dBd : NULL, sp.rank ? dBu : NULL, work);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "quant case %d", ci);
    double e0 = check_grad(ctx, "dgamma", dg, dg_ref, ng, sp.lwc);
    double e1 = sp.R ? check_grad(ctx, "dBd", dBd, dBd_ref, nbd, sp.rank > 0) : 0.0;
    double e2 = sp.R ? check_grad(ctx, "dBu", dBu, dBu_ref, nbu, sp.rank > 0) : 0.0;
    size_t dbeta_nz = 0;
    for (size_t i = 0; i < ng; i++) dbeta_nz += db[i] != 0.0f;
    CHECK_MSG(dbeta_nz == 0, "quant case %d: the data-free scale (beta) received a gradient", ci);
    printf("quant case %d: (%d x %d) bits %d group %d rank %d/%d lwc %d: values %.2g, codes exact, "
           "dgamma %.2g dBd %.2g dBu %.2g\n",
           ci, sp.out, sp.in, sp.bits, sp.group, sp.rank, sp.R, sp.lwc, mr, e0, e1, e2);
    float *all[] = {W,       Bd, Bu,  gam,  s0, dW, v_ref, c_ref, s_ref, dg_ref, dBd_ref,
                    dBu_ref, v,  scr, work, dg, db, dBd,   dBu,   sc,    zs,     deq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(codes);
    return 0;
}

/* ---- 2./3. the block step ---- */

/* Objective of the step at bit index bi: recon loss + pot_l2·ΣΓ² (double). */
static double objective(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                        const BlockWeights *w, ReconStep *st, int bi, const float *x, const float *target,
                        int T) {
    double l = recon_eval_loss(c, qc, p, w, st, bi, 0, x, target, st->acts.B, T), pen = 0;
    for (int k = 0; k < N_LIN; k++) {
        const QLinear *q = &p->lin[k];
        size_t n = (size_t)q->out * fq_ngroups(&q->spec[bi]);
        for (size_t i = 0; i < n; i++)
            pen += (double)p->lwc[q->off_gamma[bi] + i] * p->lwc[q->off_gamma[bi] + i];
    }
    return l + qc->pot_l2 * pen;
}

/* 3. Central finite differences of the objective in Γ, with every weight
 * saturated (sat >= 1: s0 = sat·max|w| of the group, with |Γ| <= 0.15 and
 * sat = 1.6 every |u| < 0.75, E = 0; sat = 1/2^20: s0 scaled down so every
 * |u| > 1.5·2^Emax, E = Emax), L2 loss, no adapters:
 * there the STE gradient is the true derivative. */
static void fd_check(const ModelConfig *c, QuantConfig qc, const BlockWeights *w, const float *x,
                     const float *target, int B, int T, float sat) {
    QErr err;
    qc.loss_l2 = 1;
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) qc.rank[b] = 0;
    QBlockParams p;
    ReconStep st;
    if (qblock_params_init(&p, c, &qc, 0, &err) != 0 || recon_step_init(&st, c, &p, B, T, &err) != 0) {
        CHECK_MSG(0, "fd setup: %s", err.msg);
        return;
    }
    qblock_params_init_scales(&p, w);
    const int bi = 0;
    Rng rng;
    rng_seed(&rng, 99);
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p.lin[l];
        size_t n = (size_t)q->out * fq_ngroups(&q->spec[bi]);
        const FqSpec *sp = &q->spec[bi];
        const int ng = fq_ngroups(sp);
        const float *W = qblock_linear_weight(w, l);
        for (size_t i = 0; i < n; i++) {
            float gm = 0.1f * rng_normal(&rng);
            gm = gm > 0.15f ? 0.15f : gm < -0.15f ? -0.15f : gm;
            p.lwc[q->off_gamma[bi] + i] = gm;
            if (sat < 1.0f) {
                p.lwc[q->off_beta[bi] + i] *= sat;
            } else { /* s0 = sat·max|w| of the group: s >= 1.36 max, every |u| < 0.75 */
                const int o = (int)(i / (size_t)ng), k = (int)(i % (size_t)ng);
                const int len = (k + 1) * sp->group <= sp->in ? sp->group : sp->in - k * sp->group;
                float mx = 0;
                for (int j = 0; j < len; j++) {
                    float a = fabsf(W[(size_t)o * sp->in + (size_t)k * sp->group + j]);
                    mx = a > mx ? a : mx;
                }
                p.lwc[q->off_beta[bi] + i] = sat * mx;
            }
        }
    }
    memset(st.g_lwc, 0, p.n_lwc * sizeof(float));
    memset(st.g_adapter, 0, p.n_adapter * sizeof(float));
    recon_step_bit(c, &qc, &p, w, &st, bi, x, target, 1.0f);
    double worst = 0;
    int checked = 0;
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p.lin[l];
        size_t n = (size_t)q->out * fq_ngroups(&q->spec[bi]);
        for (size_t t = 0; t < 3; t++) {
            size_t i = (t * 7919u + (size_t)l * 31u) % n;
            float *g = &p.lwc[q->off_gamma[bi] + i], g0 = *g;
            const float hstep = 1e-2f;
            *g = g0 + hstep;
            double lp = objective(c, &qc, &p, w, &st, bi, x, target, T);
            *g = g0 - hstep;
            double lm = objective(c, &qc, &p, w, &st, bi, x, target, T);
            *g = g0;
            double fd = (lp - lm) / (2.0 * hstep), an = st.g_lwc[q->off_gamma[bi] + i];
            double e = fabs(an - fd) / (1e-5 + fabs(fd));
            CHECK_MSG(fabs(an - fd) <= 1e-5 + 1e-2 * fabs(fd),
                      "fd (saturation %g) %s group %zu: analytic %.7g vs numeric %.7g", (double)sat,
                      LIN_NAMES[l], i, an, fd);
            CHECK_MSG(fabs(fd) > 1e-6, "fd (saturation %g) %s group %zu: zero derivative, no check",
                      (double)sat, LIN_NAMES[l], i);
            if (e > worst) worst = e;
            checked++;
        }
    }
    printf("finite differences, every weight saturated (sat %g, %d bits): %d entries, worst rel %.2g\n",
           (double)sat, qc.bits[bi], checked, worst);
    recon_step_free(&st);
    qblock_params_free(&p);
}

static int block_case(Reader *r, const GoldenModel *m, int ci) {
    int32_t h[6];
    float pot_l2;
    if (rd_bytes(r, h, sizeof h) != 0 || rd_bytes(r, &pot_l2, 4) != 0) return -1;
    const int halves = h[0], bias = h[1], l2 = h[2], lwc = h[3], n_bits = h[4], bi = h[5];
    int32_t bits[QMAX_NBITS], group[QMAX_NBITS], rank[QMAX_NBITS];
    QuantConfig qc;
    if (golden_read_widths(r, n_bits, bi, bits, group, rank, &qc) != 0) return -1;
    ModelConfig c = golden_block_config(m, halves, bias);
    qc.format = QFORMAT_POT;
    qc.teq = TEQ_OFF; /* not implemented for PoT */
    qc.pot_l2 = pot_l2;
    qc.lwc = lwc;
    qc.loss_l2 = l2;
    qc.prefix_grad_stop = 0;
    BlockWeights w;
    QBlockParams p;
    if (golden_block_init(m, &c, &qc, ci, &w, &p) != 0) return -1;
    int ok = 1;
    for (int l = 0; l < N_LIN; l++) ok = ok && p.lin[l].spec[bi].format == FQ_FORMAT_POT;
    size_t NC = (size_t)m->B * m->T * m->C;
    GoldenIO io = {0};
    ok = ok && golden_read_params(r, &p, n_bits) == 0 && golden_read_io(r, NC, &io) == 0;
    GoldenGrads ref = {0};
    ok = ok && golden_read_grads(r, &p, bi, 0, &ref) == 0;
    ReconStep st;
    QErr err;
    if (ok && recon_step_init(&st, &c, &p, m->B, m->T, &err) != 0) ok = 0;
    if (ok) {
        memset(st.g_lwc, 0, p.n_lwc * sizeof(float));
        memset(st.g_adapter, 0, p.n_adapter * sizeof(float));
        double loss = recon_step_bit(&c, &qc, &p, &w, &st, bi, io.x, io.target, 1.0f), le, oe;
        char case_name[32];
        snprintf(case_name, sizeof case_name, "block case %d", ci);
        golden_check_step(case_name, loss, st.out, &io, NC, TOL_LOSS_REL, TOL_OUT_RELNORM, &le, &oe);
        printf("block case %d: bit %d, %s, pot_l2 %g: loss rel err %.2g, out %.2g\n", ci, bits[bi],
               l2 ? "L2" : "L1", (double)pot_l2, le, oe);
        size_t stray = 0;
        for (int l = 0; l < N_LIN; l++) {
            const QLinear *q = &p.lin[l];
            const int rk = q->spec[bi].rank;
            char ctx[64];
            snprintf(ctx, sizeof ctx, "block case %d %s", ci, LIN_NAMES[l]);
            double e0 = check_grad(ctx, "dgamma", st.g_lwc + q->off_gamma[bi], ref.dg[l],
                                   (size_t)q->out * fq_ngroups(&q->spec[bi]), 1);
            double e1 =
                check_grad(ctx, "dBd", st.g_adapter + q->off_Bd, ref.dBd[l], (size_t)q->out * q->R, rk > 0);
            double e2 =
                check_grad(ctx, "dBu", st.g_adapter + q->off_Bu, ref.dBu[l], (size_t)q->R * q->in, rk > 0);
            printf("    %-6s rank %d/%d  dgamma %.2g  dBd %.2g  dBu %.2g\n", LIN_NAMES[l], rk, q->R, e0, e1,
                   e2);
            for (int j = 0; j < n_bits; j++) { /* other bits' Γ and every s0 never learn here */
                size_t n = (size_t)q->out * fq_ngroups(&q->spec[j]);
                for (size_t i = 0; i < n; i++)
                    stray += (j != bi && st.g_lwc[q->off_gamma[j] + i] != 0.0f) +
                             (st.g_lwc[q->off_beta[j] + i] != 0.0f);
            }
        }
        CHECK_MSG(stray == 0, "block case %d: %zu gradients on other bits' Γ or on s0", ci, stray);
        if (ci == 0) {
            fd_check(&c, qc, &w, io.x, io.target, m->B, m->T, 1.6f);
            fd_check(&c, qc, &w, io.x, io.target, m->B, m->T, 1.0f / (float)(1 << 20));
        }
        recon_step_free(&st);
    }
    golden_free_grads(&ref);
    golden_free_io(&io);
    qblock_params_free(&p);
    block_weights_free(&w);
    return ok ? 0 : -1;
}

/* ---- 4. the data-free search ---- */

/* Nearest representable value of x at scale s (exhaustive, double). */
static double brute_nearest(double x, double s, int emax, int *E) {
    double best = 0, bd = INFINITY;
    for (int e = 0; e <= emax; e++) {
        double v = (signbit(x) ? -1.0 : 1.0) * s * ldexp(1.0, e);
        double d = fabs(x - v);
        if (d < bd) { /* ties: the larger exponent (the kernel rounds ties up) */
            bd = d;
            best = v;
            *E = e;
        } else if (d == bd) {
            best = v;
            *E = e;
        }
    }
    return best;
}

static void check_search(void) {
    Rng rng;
    rng_seed(&rng, 2024);
    int n_groups = 0, worse = 0, e_mismatch = 0;
    double worst_ratio = 1.0;
    for (int t = 0; t < 160; t++) {
        const int bits = POT_BITS_MIN + t % (POT_BITS_MAX - POT_BITS_MIN + 1);
        const int n = 1 + (int)((t * 37) % 128), emax = pot_emax(bits);
        float x[128];
        for (int j = 0; j < n; j++) {
            x[j] = 0.02f * rng_normal(&rng);
            if (rng_int(&rng, 20) == 0) x[j] *= 6.0f; /* outliers */
        }
        float s = pot_search_scale(x, n, bits);
        /* brute force: every multiplier of the documented start, errors in double */
        float m = 0;
        for (int j = 0; j < n; j++) m = fabsf(x[j]) > m ? fabsf(x[j]) : m;
        const float start = m / (float)(1u << (emax - 1));
        double best = INFINITY, got = 0;
        for (int k = 1; k <= POT_SEARCH_STEPS; k++) {
            const float sk = start * ((float)k / 100.0f);
            double e = 0;
            for (int j = 0; j < n; j++) {
                int E;
                double d = x[j] - brute_nearest(x[j], sk, emax, &E);
                e += d * d;
            }
            if (e < best) best = e;
        }
        for (int j = 0; j < n; j++) {
            int E;
            double d = x[j] - brute_nearest(x[j], s, emax, &E);
            got += d * d;
        }
        /* the kernel's level is the nearest one */
        float q[128];
        pot_group_quant(x, n, s, emax, q);
        for (int j = 0; j < n; j++) {
            int E;
            double b = brute_nearest(x[j], s, emax, &E);
            e_mismatch += fabs((double)q[j] - b) > 1e-6 * fabs(b);
        }
        double ratio = best > 0 ? got / best : 1.0;
        if (ratio > worst_ratio) worst_ratio = ratio;
        worse += ratio > 1.0 + 1e-4;
        n_groups++;
    }
    CHECK_MSG(worse == 0, "search: %d of %d groups above the brute-force minimum error (worst x%.6f)", worse,
              n_groups, worst_ratio);
    CHECK_MSG(e_mismatch == 0, "search: %d elements not at the nearest level", e_mismatch);
    printf("data-free search: %d groups (bits 2-5, 1-128 elements), error / brute-force minimum "
           "<= %.6f; every element at its nearest level\n",
           n_groups, worst_ratio);
    /* hand cases at s = 1, 4 bits (Emax 7): ties go up (1.5 -> 2, -3 -> -4),
     * the STE range is 0.75 <= |u| < 1.5·2^7 = 192 (0.75 in, 0.74 out; 191
     * in, 192 out), -0 is negative, no zero code (0.01 -> 1) */
    const float hx[10] = {1.5f, -3.0f, 0.74f, 0.75f, 1.4999999f, 191.0f, 192.0f, 1e6f, -0.0f, 0.01f};
    const float hv[10] = {2, -4, 1, 1, 1, 128, 128, 128, -1, 1};
    const uint8_t hc[10] = {1, 8 | 2, 0, 0, 0, 7, 7, 7, 8 | 0, 0};
    const float hin[10] = {1, 1, 0, 1, 1, 1, 0, 0, 0, 0};
    float hq[10], hdx[10], hdy[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    uint8_t hcodes[10];
    pot_group_quant(hx, 10, 1.0f, 7, hq);
    pot_group_codes(hx, 10, 1.0f, 4, hcodes);
    float hds = pot_group_backward(hx, hdy, 10, 1.0f, 7, hdx), hds_ref = 0;
    for (int j = 0; j < 10; j++) {
        CHECK_MSG(hq[j] == hv[j] && hcodes[j] == hc[j] && hdx[j] == hin[j],
                  "hand case %g: value %g (want %g), code %u (want %u), dx %g (want %g)", (double)hx[j],
                  (double)hq[j], (double)hv[j], hcodes[j], hc[j], (double)hdx[j], (double)hin[j]);
        hds_ref += hv[j] - hin[j] * hx[j];
    }
    CHECK_CLOSE(hds, hds_ref, 1e-3, 1e-6);
    /* an all-zero group and a two-level (2-bit) group with a known answer */
    float z[4] = {0, 0, 0, 0};
    CHECK(pot_search_scale(z, 4, 3) == POT_ZERO_GROUP_SCALE);
    float two[4] = {1.0f, -2.0f, 2.0f, -1.0f}; /* exactly ±s, ±2s at s = 1 = 0.5 * start(2) */
    CHECK_CLOSE(pot_search_scale(two, 4, 2), 1.0f, 0, 1e-6);
}

/* ---- 5. switching, the artifact's format record, old artifacts ---- */

static void check_switch_and_artifact(void) {
    QErr err = {{0}};
    ModelConfig c = tiny_config(2);
    c.vocab_size = 16;
    for (int method = 0; method < 2; method++) {
        Model m;
        CHECK(model_init_random(&m, &c, 5, &err) == 0);
        QuantConfig qc;
        quant_config_default(&qc);
        qc.method = method == 0 ? METHOD_QUEPT : METHOD_RTN;
        qc.format = QFORMAT_POT;
        qc.teq = TEQ_OFF; /* not implemented for PoT */
        quant_parse_bits(&qc, "2-5", &err);
        for (int b = 2; b <= 8; b++) qc.group[b] = b == 3 ? 12 : 16; /* 32 -> 12+12+8: partial */
        qc.rank_ref_width = 0;
        for (int b = 2; b <= 8; b++) qc.rank[b] = b <= 4 ? 4 : 2;
        CHECK_MSG(quant_config_validate(&qc, &err) == 0, "%s", err.msg);
        ElasticModel em;
        if (elastic_build_synthetic(&em, &m, &qc, 9, &err) != 0) {
            CHECK_MSG(0, "%s", err.msg);
            return;
        }
        SwitchedModel sw = {0};
        Model q = {0};
        size_t bad_code = 0, bad_val = 0, bad_zero = 0, n_codes = 0;
        for (int bi = 0; bi < qc.n_bits; bi++) {
            const int b = qc.bits[bi], bits[2] = {b, b}, emax = pot_emax(b);
            CHECK(elastic_switch_codes(&em, bits, &sw, &err) == 0);
            CHECK(elastic_switch(&em, bits, &q, &err) == 0);
            for (int j = 0; j < 2; j++)
                for (int l = 0; l < N_LIN; l++) {
                    const SwitchedLinear *sl = &sw.lin[j][l];
                    const float *Wf = *qblock_linear_slot(&q.blocks[j], l);
                    CHECK(sl->format == FQ_FORMAT_POT && sl->bits == b);
                    for (int o = 0; o < sl->out; o++)
                        for (int i = 0; i < sl->in; i++) {
                            const uint8_t code = sl->codes[(size_t)o * sl->in + i];
                            const float s = sl->scales[(size_t)o * sl->ng + i / sl->group];
                            /* docs/artifact-format.md: sign at bit b-1, exponent below */
                            const int E = code & ((1 << (b - 1)) - 1), neg = (code >> (b - 1)) & 1;
                            bad_code += code >> b != 0 || E > emax;
                            const float v = (neg ? -1.0f : 1.0f) * ldexpf(s, E);
                            bad_val += memcmp(&v, &Wf[(size_t)o * sl->in + i], sizeof v) != 0;
                            n_codes++;
                        }
                    for (int g = 0; g < sl->out * sl->ng; g++) bad_zero += sl->zeros[g] != 0.0f;
                    float *D = zalloc((size_t)sl->out * sl->in);
                    switched_dequantize(sl, D);
                    bad_val += memcmp(D, Wf, sizeof(float) * (size_t)sl->out * sl->in) != 0;
                    free(D);
                }
        }
        CHECK_MSG(bad_code == 0 && bad_val == 0 && bad_zero == 0,
                  "%s: %zu codes out of layout, %zu values differ from elastic_switch, %zu zeros",
                  method ? "rtn" : "quept", bad_code, bad_val, bad_zero);
        printf("switch (%s, pot): %zu codes over bits 2-5 decode (sign bit b-1, exponent below) to "
               "elastic_switch's weights bitwise\n",
               method ? "rtn" : "quept", n_codes);

        /* the artifact records the format per tensor and reloads as PoT */
        char path[256];
        snprintf(path, sizeof path, "/tmp/quept_test_pot_%d_%d.qept", (int)getpid(), method);
        CHECK_MSG(elastic_write(&em, path, &err) == 0, "%s", err.msg);
        ArtReader *r;
        if (art_open(&r, path, &err) == 0) {
            const msgpack_object *wf = mp_map_get(art_meta(r), "weight_format"), *tens = NULL;
            char s[16] = "";
            CHECK(wf && mp_map_str(wf, "default", s, sizeof s, &err) == 0 && strcmp(s, "pot") == 0);
            CHECK(wf && mp_map_map(wf, "tensors", &tens, &err) == 0 && tens->via.map.size == 2 * N_LIN);
            int all_pot = tens != NULL;
            for (uint32_t i = 0; tens && i < tens->via.map.size; i++) {
                const msgpack_object *v = &tens->via.map.ptr[i].val;
                all_pot = all_pot && v->type == MSGPACK_OBJECT_STR && v->via.str.size == 3 &&
                          memcmp(v->via.str.ptr, "pot", 3) == 0;
            }
            CHECK_MSG(all_pot, "weight_format.tensors: every linear must be recorded as pot");
            CHECK(mp_map_str(tens, "blk.1.w_down", s, sizeof s, &err) == 0 && strcmp(s, "pot") == 0);
            art_close(r);
        } else {
            CHECK_MSG(0, "%s", err.msg);
        }
        ElasticModel em2;
        if (elastic_load(&em2, path, &err) == 0) {
            CHECK(em2.qc.format == QFORMAT_POT && em2.qc.pot_l2 == qc.pot_l2);
            Model q2 = {0};
            const int bits[2] = {3, 4};
            CHECK(elastic_switch(&em, bits, &q, &err) == 0 && elastic_switch(&em2, bits, &q2, &err) == 0);
            size_t diff = 0;
            for (int j = 0; j < 2; j++)
                for (int l = 0; l < N_LIN; l++) {
                    int o, in;
                    qblock_linear_shape(&c, l, &o, &in);
                    diff +=
                        memcmp(*qblock_linear_slot(&q.blocks[j], l), *qblock_linear_slot(&q2.blocks[j], l),
                               sizeof(float) * (size_t)o * in) != 0;
                }
            CHECK_MSG(diff == 0, "%zu linears differ after the PoT artifact round trip", diff);
            for (int j = 0; j < 2; j++) block_weights_free(&q2.blocks[j]);
            free(q2.blocks);
            elastic_free(&em2);
        } else {
            CHECK_MSG(0, "%s", err.msg);
        }
        remove(path);
        switched_free(&sw);
        for (int j = 0; j < 2; j++) block_weights_free(&q.blocks[j]);
        free(q.blocks);
        elastic_free(&em);
    }

    /* an artifact from before the format field: integer codes, the old weights */
    char path[1024], wpath[1024], *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/old_int_v1.qept", QUEPT_TEST_DATA);
    snprintf(wpath, sizeof wpath, "%s/old_int_v1_w3.bin", QUEPT_TEST_DATA);
    ElasticModel old;
    if (elastic_load(&old, path, &err) != 0) {
        CHECK_MSG(0, "old artifact: %s", err.msg);
        return;
    }
    ArtReader *r;
    if (art_open(&r, path, &err) == 0) {
        CHECK_MSG(mp_map_get(art_meta(r), "weight_format") == NULL,
                  "the old artifact must not have the weight_format key");
        art_close(r);
    }
    CHECK(old.qc.format == QFORMAT_INT && old.qc.method == METHOD_QUEPT);
    CHECK(file_read_all(wpath, &buf, &len, &err) == 0);
    Model q = {0};
    const int bits[2] = {3, 3};
    CHECK(elastic_switch(&old, bits, &q, &err) == 0);
    size_t off = 0, diff = 0;
    for (int j = 0; j < 2 && buf; j++)
        for (int l = 0; l < N_LIN; l++) {
            int o, in;
            qblock_linear_shape(&old.cfg, l, &o, &in);
            size_t nb = sizeof(float) * (size_t)o * in;
            diff += off + nb > len || memcmp(*qblock_linear_slot(&q.blocks[j], l), buf + off, nb) != 0;
            off += nb;
        }
    CHECK_MSG(buf && diff == 0 && off == len,
              "old artifact: %zu linears differ from the old code's 3-bit switch", diff);
    printf("old artifact (no weight_format): loads as int, 3-bit switch bitwise the old code's\n");
    for (int j = 0; j < 2; j++) block_weights_free(&q.blocks[j]);
    free(q.blocks);
    free(buf);
    elastic_free(&old);
}

int main(void) {
    Reader r;
    uint32_t nq, nb = 0;
    if (golden_open(&r, "pot_golden.bin", "QPOG", "pot_ref.py", 5, &nq) != 0) CHECK_DONE();
    int ok = 1;
    for (uint32_t i = 0; ok && i < nq; i++) {
        ok = quant_case(&r, (int)i) == 0;
        CHECK_MSG(ok, "quant case %u: truncated or invalid golden file", i);
    }
    GoldenModel m;
    memset(&m, 0, sizeof m);
    ok = ok && rd_bytes(&r, &nb, 4) == 0 && nb >= 3;
    CHECK_MSG(ok, "invalid block section");
    if (ok) golden_block_cases(&r, &m, nb, block_case, "block case");
    printf("worst gradient error %.2g (tol %g)\n", worst_grad, TOL_G);
    golden_free_model(&m);
    golden_close(&r);
    check_search();
    check_switch_and_artifact();
    CHECK_DONE();
}
