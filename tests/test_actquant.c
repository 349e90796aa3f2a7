/* test_actquant.c — activation quantization (nn/actquant.h) and the
 * weight-activation pairs in the quantized block.
 *
 * 1. actquant_forward on hand-made rows: round half to even, the codes'
 *    signed range, the scale's clamp at both ends, a row of zeros, in place.
 * 2. The straight-through rule of actquant_backward, checked two ways:
 *    against the rule's Jacobian written out in double (every element but
 *    the abs-max's must be bitwise g or 0; the abs-max's within float
 *    summation error of the double sum), and by central finite differences
 *    of the STE surrogate F(x) = x + c·s(x), c = round(u) - u frozen at x0,
 *    s(x) = max|x|/qmax — the function whose true gradient the STE rule is.
 *    In place (dinp aliasing dout, or inp) gives the same bits.
 * 3. The PyTorch golden (tests/ref/actquant_ref.py -> actquant_golden.bin):
 *    a block's training step at W4A4, W8A8, W4A8, W4A4 with TEQ norm, W6A6
 *    with TEQ wide: loss, block output, d teq, d lwc, d adapters from
 *    recon_step_bit, and the block input's gradient from block_forward /
 *    block_backward on the qblock view. The step's output must equal the
 *    view's block_forward bitwise.
 * 4. A width paired with 16 (none) in a list with activation widths computes
 *    exactly the weight-only step; forward-only in-place quantization gives
 *    the bits of the buffered one; decode_step agrees with model_forward.
 * 5. End to end on a tiny model: the artifact records the pairs and
 *    switching carries them; --act-bits 16,16 writes the weight-only
 *    artifact's bytes; quept eval evaluates the calibrated pair, evaluates
 *    --act-bits 16, and refuses a pair the artifact was not calibrated for
 *    (and any --act-bits on a weight-only artifact but 16); GPTQ and mixed
 *    precision run with pairs.
 *
 * Tolerances (3): as test_qblock_grad.c and test_teq.c, whose reasoning
 * carries over: the golden is the float64 math of float32 inputs, the
 * generator keeps every weight and activation quantizer input away from its
 * rounding boundaries and abs-max ties and checks that float32 torch gives
 * the same codes, so C takes the same branches and differs by float32
 * rounding only (observed, OpenBLAS: loss <= 1e-7, output <= 2e-7,
 * gradients and dx <= 1.4e-6 relative). We require loss and output <= 1e-5,
 * every gradient and dx <= 1e-4 in relative norm and in max error / max
 * |ref|, and exact zeros where the reference has them. Checked by mutation
 * (in a scratch copy): detaching the scale (no abs-max term) moves dx and
 * the gradients of case 0 by 7-14%, skipping the quantizer's backward on
 * dln2 in recon_step by up to 34%; the STE checks of 2 fail on the first by
 * 0.25 and 1.2. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "engine/qblock.h"
#include "fixtures.h"
#include "engine/recon_step.h"
#include "engine/teq.h"
#include "golden.h"
#include "nn/actquant.h"
#include "nn/block.h"
#include "nn/forward.h"

#define TOL_LOSS_REL    1e-5
#define TOL_OUT_RELNORM 1e-5
#define TOL_G           1e-4

/* ---- 1. forward values ---- */

static void test_forward_values(void) {
    /* s = 1.75/7 = 0.25 exactly: u = 2.5, -7, 1.5, 3.5, -0.5, 0 */
    const float x[6] = {0.625f, -1.75f, 0.375f, 0.875f, -0.125f, 0.0f};
    const float want[6] = {0.5f, -1.75f, 0.5f, 1.0f, -0.0f, 0.0f};
    float y[6], z[6];
    actquant_forward(y, x, 1, 6, 4);
    for (int i = 0; i < 6; i++) CHECK_MSG(y[i] == want[i], "A4 [%d]: %g, want %g", i, y[i], want[i]);
    memcpy(z, x, sizeof z);
    actquant_forward(z, z, 1, 6, 4);
    CHECK(memcmp(y, z, sizeof y) == 0);
    /* a row of zeros; a tiny row (scale clamped at 1e-4: codes 0, not the
     * reference's rescaled ones); a huge row (scale clamped at 1e4: codes
     * clamped to 7 and -8, the 4-bit signed range) */
    const float rows[3][2] = {{0.0f, 0.0f}, {1e-6f, -2e-6f}, {1e6f, -3e6f}};
    const float wants[3][2] = {{0.0f, 0.0f}, {0.0f, -0.0f}, {7e4f, -8e4f}};
    for (int r = 0; r < 3; r++) {
        actquant_forward(y, rows[r], 1, 2, r == 1 ? 8 : 4);
        CHECK_MSG(y[0] == wants[r][0] && y[1] == wants[r][1], "row %d: %g %g", r, y[0], y[1]);
    }
    /* 2 bits: qmax 1, codes -1..1 from abs-max (-2 needs a clamped scale) */
    const float x2[3] = {0.4f, -1.0f, 0.6f};
    actquant_forward(y, x2, 1, 3, 2);
    CHECK(y[0] == 0.0f && y[1] == -1.0f && y[2] == 1.0f);
    printf("forward values: round half to even, signed range, both scale clamps, zeros, in place: ok\n");
}

/* ---- 2. the STE rule ---- */

static uint64_t lcg = 88172645463325252ULL;
static float frand(void) { /* uniform in [-1, 1) */
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* The rule of actquant.h for one row, in double from the forward's own
 * float s and codes: dinp = J^T g with J_ij = [i==j][in range]
 * + [j==a] sign(x_a)/qmax (in range ? r_i - u_i : code_i). */
static void rule_row(const float *x, const float *g, int C, int bits, double *d) {
    const float qmax = (float)((1 << (bits - 1)) - 1), lo = -qmax - 1.0f;
    float m = 0.0f;
    int a = 0;
    for (int i = 0; i < C; i++)
        if (fabsf(x[i]) > m) m = fabsf(x[i]), a = i;
    float s = m / qmax;
    s = s < ACTQ_SCALE_MIN ? ACTQ_SCALE_MIN : s > ACTQ_SCALE_MAX ? ACTQ_SCALE_MAX : s;
    const float inv = 1.0f / s;
    double ds = 0.0;
    for (int i = 0; i < C; i++) {
        float u = x[i] * inv, r = nearbyintf(u), c = r < lo ? lo : r > qmax ? qmax : r;
        d[i] = c == r ? g[i] : 0.0;
        ds += (double)g[i] * (c == r ? (double)r - u : c);
    }
    d[a] += (x[a] > 0 ? 1.0 : x[a] < 0 ? -1.0 : 0.0) / qmax * ds;
}

static void test_ste_rule(void) {
    enum { N = 24, C = 37 };
    static float x[N * C], g[N * C], d[N * C], d2[N * C], x2[N * C];
    double ref[C], worst = 0.0;
    const int bits_list[3] = {2, 4, 8};
    for (int k = 0; k < 3; k++) {
        const int bits = bits_list[k];
        for (int i = 0; i < N * C; i++) x[i] = frand(), g[i] = frand();
        for (int i = 0; i < C; i++) x[2 * C + i] *= 1e-6f, x[3 * C + i] *= 1e7f; /* both clamps */
        for (int i = 0; i < C; i++) x[4 * C + i] = 0.0f;                         /* zeros */
        actquant_backward(d, g, x, N, C, bits);
        size_t mism = 0;
        for (int n = 0; n < N; n++) {
            rule_row(x + n * C, g + n * C, C, bits, ref);
            double sum = 0.0;
            for (int i = 0; i < C; i++) sum += fabs(g[n * C + i]);
            for (int i = 0; i < C; i++) {
                double e = fabs(d[n * C + i] - ref[i]);
                /* bitwise off the abs-max: the reference's value is g or 0 */
                if (ref[i] == g[n * C + i] || ref[i] == 0.0) mism += e != 0.0;
                if (e / (sum + 1e-30) > worst) worst = e / (sum + 1e-30);
            }
        }
        CHECK_MSG(mism == 0, "A%d: %zu elements differ from the pass-through rule", bits, mism);
        /* in place: on dout, and on inp */
        memcpy(d2, g, sizeof d2);
        actquant_backward(d2, d2, x, N, C, bits);
        CHECK(memcmp(d, d2, sizeof d) == 0);
        memcpy(x2, x, sizeof x2);
        actquant_backward(x2, g, x2, N, C, bits);
        CHECK(memcmp(d, x2, sizeof d) == 0);
    }
    printf("STE rule vs its Jacobian in double: worst |err| / sum|g| %.2g (tol 1e-6)\n", worst);
    CHECK(worst <= 1e-6);
}

/* Central differences of g·F for F(x) = x + c·s(x) (c frozen at x0, s =
 * max|x|/qmax, not clamped), on rows with a clear abs-max. */
static void test_ste_fd(void) {
    enum { C = 29 };
    double worst = 0.0;
    for (int bits = 3; bits <= 8; bits += 5) {
        const double qmax = (double)((1 << (bits - 1)) - 1);
        for (int trial = 0; trial < 8; trial++) {
            float x[C], g[C], d[C];
            for (int i = 0; i < C; i++) x[i] = 0.8f * frand(), g[i] = frand();
            x[trial] = trial % 2 ? 1.5f : -1.5f; /* the abs-max, by a margin */
            actquant_backward(d, g, x, 1, C, bits);
            float s0 = 1.5f / (float)qmax, inv = 1.0f / s0;
            double c[C];
            for (int i = 0; i < C; i++) c[i] = (double)nearbyintf(x[i] * inv) - (double)(x[i] * inv);
            for (int j = 0; j < C; j++) {
                double h = 1e-4, f[2];
                for (int sg = 0; sg < 2; sg++) {
                    double xp[C], m = 0.0, v = 0.0;
                    for (int i = 0; i < C; i++) xp[i] = x[i];
                    xp[j] += sg ? -h : h;
                    for (int i = 0; i < C; i++) m = fabs(xp[i]) > m ? fabs(xp[i]) : m;
                    for (int i = 0; i < C; i++) v += g[i] * (xp[i] + c[i] * m / qmax);
                    f[sg] = v;
                }
                double fd = (f[0] - f[1]) / (2 * h), e = fabs(fd - d[j]) / (fabs(fd) + 1e-3);
                if (e > worst) worst = e;
            }
        }
    }
    printf("STE rule vs finite differences of its surrogate: worst rel err %.2g (tol 1e-4)\n", worst);
    CHECK(worst <= 1e-4);
}

/* ---- 3. the golden block cases ---- */

static double worst_loss = 0, worst_out = 0, worst_g = 0;

static double check_arr(int ci, const char *what, const float *c, const float *ref, size_t n) {
    double rn, mr;
    rel_err(c, ref, n, &rn, &mr);
    CHECK_MSG(rn <= TOL_G && mr <= TOL_G, "case %d %s: relnorm %.3g, max err / max|ref| %.3g", ci, what, rn,
              mr);
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) nz += ref[i] == 0.0f && c[i] != 0.0f;
    CHECK_MSG(nz == 0, "case %d %s: %zu entries nonzero where the reference is exactly 0", ci, what, nz);
    double e = rn > mr ? rn : mr;
    if (e > worst_g) worst_g = e;
    return e;
}

static int run_case(Reader *r, const GoldenModel *m, int ci) {
    int32_t h[7], act[QMAX_NBITS], sz[3];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    const int halves = h[0], bias = h[1], l2 = h[2], mode = h[3], placement = h[4], n_bits = h[5], bi = h[6];
    int32_t bits[QMAX_NBITS], group[QMAX_NBITS], rank[QMAX_NBITS];
    QuantConfig qc;
    if (golden_read_widths(r, n_bits, bi, bits, group, rank, &qc) != 0) return -1;
    if (rd_bytes(r, act, 4 * (size_t)n_bits) != 0 || rd_bytes(r, sz, sizeof sz) != 0) return -1;
    if (placement < 0 || placement > 2) return -1;
    ModelConfig c = golden_block_config(m, halves, bias);
    qc.adapter_mode = mode;
    qc.lwc = 1;
    qc.loss_l2 = l2;
    qc.prefix_grad_stop = 0;
    qc.teq = (TeqPlacement)placement;
    for (int j = 0; j < n_bits; j++) qc.act_bits[j] = act[j] == 16 ? 0 : act[j];
    BlockWeights w, tw = {0};
    QBlockParams p;
    if (golden_block_init(m, &c, &qc, ci, &w, &p) != 0) return -1;
    int ok = (size_t)sz[0] == p.n_teq && (size_t)sz[1] == p.n_lwc && (size_t)sz[2] == p.n_adapter;
    CHECK_MSG(ok, "case %d: the file's layout sizes differ from qblock's", ci);
    const size_t NC = (size_t)m->B * m->T * m->C;
    float *dx_ref = NULL, *dteq = NULL, *dlwc = NULL, *dad = NULL;
    GoldenIO io = {0};
    ok = ok && (!p.n_teq || rd_bytes(r, p.teq, p.n_teq * sizeof(float)) == 0) &&
         rd_bytes(r, p.lwc, p.n_lwc * sizeof(float)) == 0 &&
         rd_bytes(r, p.adapter, p.n_adapter * sizeof(float)) == 0 && golden_read_io(r, NC, &io) == 0;
    ok = ok && (dx_ref = rd_floats(r, NC)) && (dteq = rd_floats(r, p.n_teq)) &&
         (dlwc = rd_floats(r, p.n_lwc)) && (dad = rd_floats(r, p.n_adapter));
    const BlockWeights *wt = &w;
    QErr err;
    if (ok && p.n_teq) {
        ok = block_weights_alloc(&tw, &c, &err) == 0;
        if (ok) teq_transform(&p, &c, &w, &tw), wt = &tw;
    }
    ReconStep st;
    if (ok && recon_step_init(&st, &c, &p, m->B, m->T, &err) != 0) {
        fprintf(stderr, "case %d: %s\n", ci, err.msg);
        ok = 0;
    }
    if (ok) {
        memset(st.g_lwc, 0, p.n_lwc * sizeof(float));
        memset(st.g_adapter, 0, p.n_adapter * sizeof(float));
        if (p.n_teq) memset(st.g_teq, 0, p.n_teq * sizeof(float));
        double loss = recon_step_bit(&c, &qc, &p, wt, &st, bi, io.x, io.target, 1.0f), le, oe;
        char name[32];
        snprintf(name, sizeof name, "case %d", ci);
        golden_check_step(name, loss, st.out, &io, NC, TOL_LOSS_REL, TOL_OUT_RELNORM, &le, &oe);
        worst_loss = le > worst_loss ? le : worst_loss;
        worst_out = oe > worst_out ? oe : worst_out;
        double eg[3] = {0, 0, 0};
        if (p.n_teq) eg[0] = check_arr(ci, "d teq", st.g_teq, dteq, p.n_teq);
        eg[1] = check_arr(ci, "d lwc", st.g_lwc, dlwc, p.n_lwc);
        eg[2] = check_arr(ci, "d adapter", st.g_adapter, dad, p.n_adapter);

        /* the input gradient: block_forward / block_backward on the view */
        float *wq[N_LIN], *out = zalloc(NC), *dout = zalloc(NC), *dx = zalloc(NC);
        for (int l = 0; l < N_LIN; l++) wq[l] = zalloc((size_t)p.lin[l].out * p.lin[l].in);
        BlockWeights view;
        qblock_build(&p, wt, bi, p.lwc, p.adapter, wq, NULL, &view);
        CHECK(view.act_bits == qc.act_bits[bi]);
        BlockActs a;
        CHECK(block_acts_init(&a, &c, m->B, m->T, 1, &err) == 0 && block_acts_init_aq(&a, &c, &err) == 0);
        float *scr = zalloc(block_backward_scratch_floats(&c, m->B, m->T));
        block_forward(&c, &view, &a, io.x, out);
        CHECK_MSG(memcmp(out, st.out, NC * sizeof(float)) == 0,
                  "case %d: block_forward on the view differs from the step's forward", ci);
        recon_loss(out, io.target, dout, m->B, m->T, m->C, l2, 1.0f);
        block_backward(&c, &view, &a, io.x, dout, dx, NULL, scr);
        double edx = check_arr(ci, "dx", dx, dx_ref, NC);
        printf("case %d: W%dA%d teq %s mode %d rope %s%s %s: loss %.6f rel err %.2g, out %.2g, dx %.2g, "
               "d teq %.2g, d lwc %.2g, d adapter %.2g\n",
               ci, bits[bi], act[bi],
               placement == 2 ? "wide"
               : placement    ? "norm"
                              : "off",
               mode, halves ? "halves" : "pairs", bias ? " qkv-bias" : "", l2 ? "L2" : "L1", loss, le, oe,
               edx, eg[0], eg[1], eg[2]);
        free(scr);
        block_acts_free(&a);
        for (int l = 0; l < N_LIN; l++) free(wq[l]);
        free(out);
        free(dout);
        free(dx);
        recon_step_free(&st);
    }
    free(dx_ref);
    free(dteq);
    free(dlwc);
    free(dad);
    golden_free_io(&io);
    block_weights_free(&tw);
    qblock_params_free(&p);
    block_weights_free(&w);
    return ok ? 0 : -1;
}

static void test_golden(void) {
    Reader r;
    uint32_t n;
    if (golden_open(&r, "actquant_golden.bin", "AQBK", "actquant_ref.py", 5, &n) != 0) return;
    GoldenModel m;
    memset(&m, 0, sizeof m);
    golden_block_cases(&r, &m, n, run_case, "case");
    printf("golden worst: loss rel %.2g (tol %g), output relnorm %.2g (tol %g), gradients and dx %.2g (tol "
           "%g)\n",
           worst_loss, TOL_LOSS_REL, worst_out, TOL_OUT_RELNORM, worst_g, TOL_G);
    golden_free_model(&m);
    golden_close(&r);
}

/* ---- 4. paths ---- */

static const ModelConfig SMALL = {.dim = 32,
                                  .hidden_dim = 48,
                                  .n_layers = 2,
                                  .n_heads = 4,
                                  .n_kv_heads = 2,
                                  .head_dim = 8,
                                  .vocab_size = 40,
                                  .seq_len = 8,
                                  .rope_theta = 10000.0f,
                                  .norm_eps = 1e-5f};

/* a width paired with 16 computes the weight-only step, bit for bit */
static void test_pair_isolation(void) {
    Model m;
    QErr err;
    CHECK_MSG(model_init_random(&m, &SMALL, 5, &err) == 0, "%s", err.msg);
    const int B = 2, T = 6;
    size_t NC = (size_t)B * T * SMALL.dim;
    float *x = zalloc(NC), *target = zalloc(NC);
    for (size_t i = 0; i < NC; i++) x[i] = frand(), target[i] = frand();
    double loss[2];
    float *g[2];
    for (int k = 0; k < 2; k++) {
        QuantConfig qc;
        quant_config_reference(&qc);
        qc.n_bits = 2, qc.bits[0] = 4, qc.bits[1] = 8;
        qc.act_bits[1] = k ? 8 : 0; /* bit index 0 (W4) is weight-only in both */
        QBlockParams p;
        ReconStep st;
        CHECK(qblock_params_init(&p, &SMALL, &qc, 0, &err) == 0);
        CHECK(recon_step_init(&st, &SMALL, &p, B, T, &err) == 0);
        CHECK((st.acts.aq != NULL) == k); /* the buffer only when some width needs it */
        memset(st.g_lwc, 0, p.n_lwc * sizeof(float));
        memset(st.g_adapter, 0, p.n_adapter * sizeof(float));
        loss[k] = recon_step_bit(&SMALL, &qc, &p, &m.blocks[0], &st, 0, x, target, 1.0f);
        g[k] = zalloc(p.n_adapter + p.n_lwc);
        memcpy(g[k], st.g_adapter, p.n_adapter * sizeof(float));
        memcpy(g[k] + p.n_adapter, st.g_lwc, p.n_lwc * sizeof(float));
        if (k) CHECK(memcmp(g[0], g[1], (p.n_adapter + p.n_lwc) * sizeof(float)) == 0);
        recon_step_free(&st);
        qblock_params_free(&p);
    }
    CHECK(loss[0] == loss[1]);
    printf("a width paired with 16 in a list with activation widths: the weight-only step, bitwise\n");
    free(g[0]);
    free(g[1]);
    free(x);
    free(target);
    model_free(&m);
}

/* in place (forward only) == buffered; decode_step == model_forward */
static void test_forward_paths(void) {
    Model m;
    QErr err;
    CHECK_MSG(model_init_random(&m, &SMALL, 9, &err) == 0, "%s", err.msg);
    const int T = 8, V = SMALL.vocab_size;
    int tok[8];
    for (int t = 0; t < T; t++) tok[t] = (t * 7 + 3) % V;
    size_t NC = (size_t)T * SMALL.dim;
    float *x = zalloc(NC), *y1 = zalloc(NC), *y2 = zalloc(NC);
    for (size_t i = 0; i < NC; i++) x[i] = frand();
    BlockActs a0, a1;
    CHECK(block_acts_init(&a0, &SMALL, 1, T, 0, &err) == 0);
    CHECK(block_acts_init(&a1, &SMALL, 1, T, 1, &err) == 0 && block_acts_init_aq(&a1, &SMALL, &err) == 0);
    for (int ab = 2; ab <= 8; ab += 2) {
        m.blocks[0].act_bits = ab;
        block_forward(&SMALL, &m.blocks[0], &a0, x, y1);
        block_forward(&SMALL, &m.blocks[0], &a1, x, y2);
        CHECK_MSG(memcmp(y1, y2, NC * sizeof(float)) == 0, "A%d: in place differs from buffered", ab);
    }
    block_acts_free(&a0);
    block_acts_free(&a1);
    /* KV-cache decoding quantizes the same rows (one token at a time) */
    double worst = 0.0, span = 0.0;
    for (int ab = 4; ab <= 8; ab += 4) {
        for (int j = 0; j < SMALL.n_layers; j++) m.blocks[j].act_bits = ab;
        ForwardState fs;
        DecodeState ds;
        CHECK(forward_state_init(&fs, &SMALL, 1, T, &err) == 0 &&
              decode_state_init(&ds, &SMALL, T, &err) == 0);
        model_forward(&m, &fs, tok);
        for (int t = 0; t < T; t++) {
            const float *lg = decode_step(&m, &ds, tok[t], t);
            for (int v = 0; v < V; v++) {
                double d = fabs((double)lg[v] - fs.logits[(size_t)t * V + v]);
                worst = d > worst ? d : worst;
                span = fabs(fs.logits[(size_t)t * V + v]) > span ? fabs(fs.logits[(size_t)t * V + v]) : span;
            }
        }
        forward_state_free(&fs);
        decode_state_free(&ds);
    }
    printf("activation quantization: in place == buffered (A2..A8); decode vs prefill max |logit diff| %.2g "
           "(max |logit| %.2g)\n",
           worst, span);
    CHECK(worst <= 1e-4 * (span > 1 ? span : 1));
    free(x);
    free(y1);
    free(y2);
    model_free(&m);
}

/* ---- 5. end to end ---- */

/* quept with args; its exit code, stdout+stderr into *out (free it) */
static int quept_run(char **out, const char *args) {
    char cmd[4096];
    int st;
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", QUEPT_BIN, args);
    *out = run_capture(cmd, &st);
    return exit_code(st);
}

static void test_end_to_end(void) {
    char dir[256], model[600], data[600], art[600], wo[600], wo16[600], args[4096];
    scratch_dir(dir, sizeof dir, "actquant");
    snprintf(model, sizeof model, "%s/tiny.bin", dir);
    snprintf(data, sizeof data, "%s/calib.qtok", dir);
    snprintf(art, sizeof art, "%s/a.qept", dir);
    snprintf(wo, sizeof wo, "%s/w.qept", dir);
    snprintf(wo16, sizeof wo16, "%s/w16.qept", dir);
    write_tiny(model, data, 2, 8, 16);
    QuantConfig qc;
    tiny_quant_config(&qc, 2);
    qc.n_bits = 2, qc.bits[0] = 4, qc.bits[1] = 8;
    qc.act_bits[0] = 4; /* W4A4, W8A16 */
    ElasticModel em;
    QErr err = {{0}};
    if (check_failures || calibrate_and_load(model, data, art, &qc, &em) != 0) {
        scratch_remove(dir);
        return;
    }
    CHECK(em.qc.act_bits[0] == 4 && em.qc.act_bits[1] == 0);
    Model q = {0};
    int bits[2] = {4, 4};
    CHECK(elastic_switch(&em, bits, &q, &err) == 0 && q.blocks[0].act_bits == 4 && q.blocks[1].act_bits == 4);
    bits[0] = bits[1] = 8;
    CHECK(elastic_switch(&em, bits, &q, &err) == 0 && q.blocks[0].act_bits == 0 && q.blocks[1].act_bits == 0);
    for (int j = 0; j < em.cfg.n_layers; j++)
        for (int bi = 0; bi < 2; bi++) CHECK(isfinite(em.stats[j].loss_final[bi]));
    model_free(&q);
    elastic_free(&em);

    /* the weight-only bytes with every width paired with 16 */
    char *out = NULL;
    snprintf(args, sizeof args, "calibrate --model %s --data %s --out %s --bits 4,8 --epochs 1 --quiet",
             model, data, wo);
    CHECK(quept_run(&out, args) == 0);
    free(out);
    snprintf(args, sizeof args,
             "calibrate --model %s --data %s --out %s --bits 4,8 --act-bits 16,16 --epochs 1 --quiet", model,
             data, wo16);
    CHECK(quept_run(&out, args) == 0);
    free(out);
    char *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK(file_read_all(wo, &b1, &n1, &err) == 0 && file_read_all(wo16, &b2, &n2, &err) == 0);
    CHECK_MSG(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "--act-bits 16,16 changed the artifact");
    free(b1);
    free(b2);

    /* quept eval: the pair, 16, refusals */
    const char *ev = "eval --artifact %s --data %s --bits %s --json";
    char *pair = NULL, *none = NULL;
    snprintf(args, sizeof args, ev, art, data, "4");
    CHECK(quept_run(&pair, args) == 0 && pair && strstr(pair, "W4A4"));
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 4 --act-bits 4 --json", art, data);
    CHECK(quept_run(&out, args) == 0 && out && pair && strstr(out, "\"ppl\"") &&
          strcmp(strstr(out, "{"), strstr(pair, "{")) == 0);
    free(out);
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 4 --act-bits 16 --json", art, data);
    CHECK(quept_run(&none, args) == 0 && none && strstr(none, "W4A16"));
    CHECK_MSG(pair && none && strcmp(strstr(pair, "{"), strstr(none, "{")) != 0,
              "activation quantization did not change the evaluation");
    free(pair);
    free(none);
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 4 --act-bits 8", art, data);
    CHECK(quept_run(&out, args) == 1 && out && strstr(out, "not calibrated for it") && strstr(out, "W4A4") &&
          strstr(out, "W8A16"));
    free(out);
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 8 --act-bits 8", art, data);
    CHECK(quept_run(&out, args) == 1 && out && strstr(out, "full-precision"));
    free(out);
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 4 --act-bits 4", wo, data);
    CHECK(quept_run(&out, args) == 1 && out && strstr(out, "weight-only"));
    free(out);
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 4 --act-bits 16", wo, data);
    CHECK(quept_run(&out, args) == 0);
    free(out);
    snprintf(args, sizeof args, "eval --artifact %s --data %s --bits 4 --act-bits 9", art, data);
    CHECK(quept_run(&out, args) == 2 && out && strstr(out, "--act-bits"));
    free(out);
    /* mixed precision on pairs; inspect names them */
    snprintf(args, sizeof args, "eval --artifact %s --data %s --avg-bits 6", art, data);
    CHECK(quept_run(&out, args) == 0);
    free(out);
    snprintf(args, sizeof args, "inspect %s", art);
    CHECK(quept_run(&out, args) == 0 && out && strstr(out, "W4A4 W8A16"));
    free(out);
    /* GPTQ with pairs: its streams advance with the activations quantized */
    qc.method = METHOD_GPTQ, qc.teq = TEQ_OFF;
    snprintf(art, sizeof art, "%s/g.qept", dir);
    if (calibrate_and_load(model, data, art, &qc, &em) == 0) {
        CHECK(em.qc.act_bits[0] == 4);
        elastic_free(&em);
    }
    scratch_remove(dir);
    printf("end to end: the artifact records the pairs; --act-bits 16,16 == weight-only bytes; eval of the "
           "pair, "
           "of 16, refusals; mixed precision; GPTQ: ok\n");
}

int main(void) {
    test_forward_values();
    test_ste_rule();
    test_ste_fd();
    test_golden();
    test_pair_isolation();
    test_forward_paths();
    test_end_to_end();
    CHECK_DONE();
}
