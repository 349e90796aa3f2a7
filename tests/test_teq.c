/* test_teq.c — TEQ (common/engine/teq.h): the trainable equivalent
 * transformation of a decoder block, its gradients, and folding it into the
 * artifact's base weights.
 *
 * 1. Equivalence. For random positive scales (log-normal, sigma 0.5) and
 *    both placements, on a block with grouped-query heads and q/k/v biases:
 *    the full-precision block on the transformed weights (teq_transform)
 *    equals the original block, ||out' - out|| / ||out|| <= 1e-5 (float32
 *    rounding of one multiply and one divide per weight, then the block;
 *    measured ~1e-7), and so does the training step's own forward with fake
 *    quantization bypassed (ReconStep.no_quant). A wrong head mapping of o's
 *    columns, a missing bias division or a norm multiplied instead of
 *    divided gives O(1) errors.
 * 2. Gradients against PyTorch. tests/ref/teq_golden.py (autograd, float64)
 *    → tests/data/teq_golden.bin: per case the loss, the block output and
 *    the gradients of the TEQ scales, of every clipping logit and of every
 *    adapter, from recon_step_bit on the transformed block. Cases: norm and
 *    wide placement, adapter modes 0 and 1, rank 0 (the rtn / gptq path's
 *    grid), biases, RoPE pairs and halves, L1 and L2. Tolerances as in
 *    test_qblock_grad.c (the generator keeps every quantizer input off its
 *    discontinuities): loss 1e-5, output 1e-5, every gradient array 1e-4 in
 *    relative norm and max error / max |ref|.
 *    Finite differences. A block's loss with quantization off does not
 *    depend on the scales at all (that is the equivalence), so its exact
 *    gradient is 0 and a central difference must find ~0; the analytic
 *    gradient must cancel to the same: every |dL/ds_i| <= 1e-4 times the
 *    largest single term of its bracket (teq.h) — a missing or mis-signed
 *    term (norm, bias, v's or up's rows, o's head mapping) leaves O(1).
 *    With quantization (the STE gradient) a finite difference measures
 *    something else (the codes are piecewise constant), so the golden is
 *    the reference there.
 * 3. Folding. calibrate with TEQ (quept wide, rtn norm, gptq norm) on a tiny
 *    random model: the artifact records "teq"; its base weights differ from
 *    the model's (the scales moved) but the full-precision artifact model
 *    gives the model's logits (rel 1e-5); and the artifact evaluates what
 *    training measured: block 0's calibration loss at every width, recorded
 *    in the artifact, equals the loss of the switched artifact's block 0
 *    recomputed from scratch on the same inputs (rel 1e-6).
 * 4. Bad input: an unknown --teq-placement is refused with exit status 2
 *    and a message naming the option and the valid names. */
#include <stdint.h>
#include <string.h>

#include "artifact/elastic.h"
#include "base/mapfile.h"
#include "base/rng.h"
#include "check.h"
#include "data/tokens.h"
#include "pipeline/calibrate.h"
#include "engine/qblock.h"
#include "engine/recon_step.h"
#include "engine/recon.h"
#include "engine/streams.h"
#include "engine/teq.h"
#include "fixtures.h"
#include "golden.h"
#include "model/pad.h"
#include "model/stress.h"
#include "nn/forward.h"

#define TOL_LOSS_REL    1e-5
#define TOL_OUT_RELNORM 1e-5
#define TOL_G_RELNORM   1e-4
#define TOL_G_MAXREL    1e-4
#define TOL_EQUIV       1e-5
#define TOL_CANCEL      1e-4

static double worst_grad = 0.0;

static double check_grad(int ci, const char *what, const float *c, const float *ref, size_t n) {
    double rn, mr;
    rel_err(c, ref, n, &rn, &mr);
    CHECK_MSG(rn <= TOL_G_RELNORM, "case %d %s: relnorm %.3g > %g", ci, what, rn, TOL_G_RELNORM);
    CHECK_MSG(mr <= TOL_G_MAXREL, "case %d %s: max err / max|ref| %.3g > %g", ci, what, mr, TOL_G_MAXREL);
    double ref2 = 0;
    for (size_t i = 0; i < n; i++) ref2 += (double)ref[i] * ref[i];
    CHECK_MSG(ref2 > 0, "case %d %s: the reference gradient is all zero", ci, what);
    double e = rn > mr ? rn : mr;
    if (e > worst_grad) worst_grad = e;
    return e;
}

/* ---------------------------------------------------------------- golden */

static int run_golden_case(Reader *r, const GoldenModel *m, int ci) {
    int32_t h[8];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    const int halves = h[0], bias = h[1], l2 = h[2], mode = h[3], placement = h[4], n_bits = h[5], bi = h[6],
              lwc = h[7];
    if (lwc != 1) return -1;
    int32_t bits[QMAX_NBITS], group[QMAX_NBITS], rank[QMAX_NBITS], sizes[3];
    QuantConfig qc;
    if (golden_read_widths(r, n_bits, bi, bits, group, rank, &qc) != 0 || rd_bytes(r, sizes, sizeof sizes))
        return -1;
    const ModelConfig c = golden_block_config(m, halves, bias);
    const int B = m->B;
    qc.adapter_mode = mode;
    qc.loss_l2 = l2;
    qc.prefix_grad_stop = 0;
    qc.teq = placement == 2 ? TEQ_WIDE : TEQ_NORM;
    /* the block: biases only where the case uses them */
    BlockWeights w, tw;
    QBlockParams p;
    if (golden_block_init(m, &c, &qc, ci, &w, &p) != 0) return -1;
    QErr err;
    if (block_weights_alloc(&tw, &c, &err) != 0) {
        fprintf(stderr, "case %d: %s\n", ci, err.msg);
        qblock_params_free(&p);
        block_weights_free(&w);
        return -1;
    }
    const size_t C = c.dim;
    CHECK_MSG((size_t)sizes[0] == p.n_teq && (size_t)sizes[1] == p.n_lwc && (size_t)sizes[2] == p.n_adapter,
              "case %d: layout sizes teq %d lwc %d adapter %d vs C %zu %zu %zu", ci, sizes[0], sizes[1],
              sizes[2], p.n_teq, p.n_lwc, p.n_adapter);
    int ok = (size_t)sizes[0] == p.n_teq && (size_t)sizes[1] == p.n_lwc && (size_t)sizes[2] == p.n_adapter;
    size_t NC = (size_t)B * c.seq_len * C;
    GoldenIO io = {0};
    float *gt = NULL, *gl = NULL, *ga = NULL;
    ok = ok && rd_bytes(r, p.teq, p.n_teq * 4) == 0 && rd_bytes(r, p.lwc, p.n_lwc * 4) == 0 &&
         rd_bytes(r, p.adapter, p.n_adapter * 4) == 0;
    ok = ok && golden_read_io(r, NC, &io) == 0 && (gt = rd_floats(r, p.n_teq)) &&
         (gl = rd_floats(r, p.n_lwc)) && (ga = rd_floats(r, p.n_adapter));
    ReconStep st;
    if (ok && recon_step_init(&st, &c, &p, B, c.seq_len, &err) != 0) ok = 0;
    if (ok) {
        teq_transform(&p, &c, &w, &tw);
        memset(st.g_lwc, 0, p.n_lwc * 4);
        memset(st.g_adapter, 0, p.n_adapter * 4);
        memset(st.g_teq, 0, p.n_teq * 4);
        double loss = recon_step_bit(&c, &qc, &p, &tw, &st, bi, io.x, io.target, 1.0f), le, oe;
        char case_name[32];
        snprintf(case_name, sizeof case_name, "case %d", ci);
        golden_check_step(case_name, loss, st.out, &io, NC, TOL_LOSS_REL, TOL_OUT_RELNORM, &le, &oe);
        double et = check_grad(ci, "d teq", st.g_teq, gt, p.n_teq);
        double el = check_grad(ci, "d lwc", st.g_lwc, gl, p.n_lwc);
        double ea = p.n_adapter ? check_grad(ci, "d adapter", st.g_adapter, ga, p.n_adapter) : 0.0;
        /* per scale group too: a wrong group must not hide behind a larger one */
        for (int g = 0; g < TEQ_NGROUPS; g++)
            if (p.teq_len[g]) {
                static const char *gn[TEQ_NGROUPS] = {"d teq attn", "d teq mlp", "d teq o", "d teq down"};
                check_grad(ci, gn[g], st.g_teq + p.teq_off[g], gt + p.teq_off[g], (size_t)p.teq_len[g]);
            }
        printf("case %d: %s, bit %d, mode %d, rank %d%s %s: loss rel %.2g, out %.2g, d teq %.2g, "
               "d lwc %.2g, d adapter %.2g\n",
               ci, quant_teq_name(qc.teq), bits[bi], mode, p.lin[LIN_Q].spec[bi].rank,
               bias ? " qkv-bias" : "", l2 ? "L2" : "L1", le, oe, et, el, ea);
        recon_step_free(&st);
    }
    golden_free_io(&io);
    free(gt);
    free(gl);
    free(ga);
    qblock_params_free(&p);
    block_weights_free(&w);
    block_weights_free(&tw);
    return ok ? 0 : -1;
}

static void test_golden(void) {
    Reader r;
    uint32_t n;
    if (golden_open(&r, "teq_golden.bin", "TEQG", "teq_golden.py", 4, &n) != 0) return;
    GoldenModel m;
    memset(&m, 0, sizeof m);
    golden_block_cases(&r, &m, n, run_golden_case, "case");
    printf("golden: worst gradient error %.2g (tol %g)\n", worst_grad, TOL_G_RELNORM);
    golden_free_model(&m);
    golden_close(&r);
}

/* ----------------------------------------------------------- equivalence */

static void random_scales(QBlockParams *p, Rng *rng, float sigma) {
    for (size_t i = 0; i < p->n_teq; i++) p->teq[i] = expf(sigma * rng_normal(rng));
}

static void fill(float *x, size_t n, float sd, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = sd * rng_normal(rng);
}

/* Equivalence (1) and the quantization-off gradient (2, finite differences)
 * for one placement. */
static void test_equivalence(TeqPlacement placement, int halves) {
    const int B = 2, T = 7;
    ModelConfig c = small_block_config(T, 1, halves);
    QErr err = {{0}};
    Model m;
    CHECK(model_init_random(&m, &c, 31 + (uint64_t)placement, &err) == 0);
    const BlockWeights *w = &m.blocks[0];
    QuantConfig qc;
    quant_config_default(&qc);
    qc.teq = placement;
    qc.loss_l2 = 1; /* smooth, for the finite differences */
    QBlockParams p;
    CHECK_MSG(qblock_params_init(&p, &c, &qc, 0, &err) == 0, "%s", err.msg);
    Rng rng;
    rng_seed(&rng, 77 + (uint64_t)placement);
    random_scales(&p, &rng, 0.5f);
    BlockWeights tw;
    CHECK(block_weights_alloc(&tw, &c, &err) == 0);
    teq_transform(&p, &c, w, &tw);
    size_t NC = (size_t)B * T * c.dim;
    float *x = malloc(NC * 4), *out0 = malloc(NC * 4), *out1 = malloc(NC * 4), *target = malloc(NC * 4);
    fill(x, NC, 1.0f, &rng);
    BlockActs a;
    CHECK(block_acts_init(&a, &c, B, T, 1, &err) == 0);
    block_forward(&c, w, &a, x, out0);
    block_forward(&c, &tw, &a, x, out1);
    double e_fp, e_step;
    rel_err(out1, out0, NC, &e_fp, NULL);
    CHECK_MSG(e_fp <= TOL_EQUIV, "%s: transformed FP block differs, relnorm %.3g", quant_teq_name(placement),
              e_fp);
    /* the scales really moved the weights */
    double dmax = 0;
    for (size_t i = 0; i < (size_t)c.hidden_dim * c.dim; i++)
        dmax = fmax(dmax, fabs(tw.w_up[i] - w->w_up[i]));
    CHECK(dmax > 1e-3);

    /* the training step's forward with quantization bypassed */
    for (size_t i = 0; i < NC; i++) target[i] = out0[i] + rng_normal(&rng);
    ReconStep st;
    CHECK_MSG(recon_step_init(&st, &c, &p, B, T, &err) == 0, "%s", err.msg);
    st.no_quant = 1;
    memset(st.g_teq, 0, p.n_teq * 4);
    double loss = recon_step_bit(&c, &qc, &p, &tw, &st, 0, x, target, 1.0f);
    rel_err(st.out, out0, NC, &e_step, NULL);
    CHECK_MSG(e_step <= TOL_EQUIV, "%s: step forward (no quantization) differs, relnorm %.3g",
              quant_teq_name(placement), e_step);

    /* gradient with quantization off: the bracket's terms must cancel (the
     * column side equals the norm side exactly in real arithmetic) */
    float *g = malloc(p.n_teq * 4);
    memcpy(g, st.g_teq, p.n_teq * 4);
    double gmax = 0, fdmax = 0, gscale = 0;
    for (size_t i = 0; i < p.n_teq; i++) {
        float s0 = p.teq[i], hstep = 1e-2f * s0;
        p.teq[i] = s0 + hstep;
        teq_transform(&p, &c, w, &tw);
        double lp = recon_eval_loss(&c, &qc, &p, &tw, &st, 0, 0, x, target, B, T);
        p.teq[i] = s0 - hstep;
        teq_transform(&p, &c, w, &tw);
        double lm = recon_eval_loss(&c, &qc, &p, &tw, &st, 0, 0, x, target, B, T);
        p.teq[i] = s0;
        double fd = (lp - lm) / (2.0 * hstep);
        gmax = fmax(gmax, fabs(g[i]));
        fdmax = fmax(fdmax, fabs(fd));
    }
    teq_transform(&p, &c, w, &tw);
    /* The size of the bracket's terms: the column side of s_a and s_m,
     * sum_o dW'[o][i] W'[o][i] over q, k, v (gate, up), from the
     * full-precision block_backward of the same loss on the transformed
     * block (an independent code path). */
    {
        int out_, in_;
        float *gwb[N_LIN];
        for (int l = 0; l < N_LIN; l++) {
            qblock_linear_shape(&c, l, &out_, &in_);
            gwb[l] = calloc((size_t)out_ * in_, sizeof(float));
        }
        BlockWeightGrads gw = {gwb[0], gwb[1], gwb[2], gwb[3], gwb[4], gwb[5], gwb[6]};
        float *dout = malloc(NC * 4), *dx = calloc(NC, 4);
        float *scr = malloc(block_backward_scratch_floats(&c, B, T) * 4);
        block_forward(&c, &tw, &a, x, out1);
        for (size_t i = 0; i < NC; i++) dout[i] = 2.0f * (out1[i] - target[i]) / (float)(B * c.dim);
        block_backward(&c, &tw, &a, x, dout, dx, &gw, scr);
        for (int i = 0; i < c.dim; i++) {
            double ta = 0, tm = 0;
            for (int l = 0; l < N_LIN; l++) {
                if (l == LIN_O || l == LIN_DOWN) continue;
                qblock_linear_shape(&c, l, &out_, &in_);
                const float *W = qblock_linear_weight(&tw, l);
                double t = 0;
                for (int o = 0; o < out_; o++)
                    t += (double)gwb[l][(size_t)o * in_ + i] * W[(size_t)o * in_ + i];
                if (l == LIN_GATE || l == LIN_UP)
                    tm += t;
                else
                    ta += t;
            }
            gscale = fmax(gscale, fmax(fabs(ta), fabs(tm)));
        }
        for (int l = 0; l < N_LIN; l++) free(gwb[l]);
        free(dout);
        free(dx);
        free(scr);
    }
    printf("%s placement, rope %s: FP block relnorm %.2g, step (no quantization) %.2g; loss %.4f, "
           "quantization-off gradient max %.2g, finite differences max %.2g, term scale %.3g\n",
           quant_teq_name(placement), halves ? "halves" : "pairs", e_fp, e_step, loss, gmax, fdmax, gscale);
    CHECK_MSG(gscale > 1e-2, "the bracket's terms are too small to test cancellation (%.3g)", gscale);
    CHECK_MSG(gmax <= TOL_CANCEL * gscale, "%s: quantization-off gradient %.3g does not cancel (terms %.3g)",
              quant_teq_name(placement), gmax, gscale);
    CHECK_MSG(fdmax <= TOL_CANCEL * gscale + 1e-3, "%s: finite differences %.3g not ~0",
              quant_teq_name(placement), fdmax);

    /* with quantization the gradient is not zero (what the golden checks) */
    st.no_quant = 0;
    memset(st.g_teq, 0, p.n_teq * 4);
    recon_step_bit(&c, &qc, &p, &tw, &st, 0, x, target, 1.0f);
    double gq = 0;
    for (size_t i = 0; i < p.n_teq; i++) gq = fmax(gq, fabs(st.g_teq[i]));
    CHECK_MSG(gq > 100 * gmax, "with quantization the scales' gradient (%.3g) should be far from 0", gq);

    /* teq_fold is the transform in place, bitwise, and drops the scales */
    BlockWeights folded;
    CHECK(block_weights_alloc(&folded, &c, &err) == 0);
    memcpy(folded.attn_norm, w->attn_norm, block_weights_numel(&c) * 4);
    teq_fold(&p, &c, &folded);
    CHECK(memcmp(folded.attn_norm, tw.attn_norm, block_weights_numel(&c) * 4) == 0);
    CHECK(p.n_teq == 0 && p.teq == NULL);

    free(g);
    block_weights_free(&folded);
    recon_step_free(&st);
    block_acts_free(&a);
    free(x);
    free(out0);
    free(out1);
    free(target);
    block_weights_free(&tw);
    qblock_params_free(&p);
    model_free(&m);
}

/* --------------------------------------------------------------- folding */

static char tmpdir[256];

static void test_fold(QuantMethod method, TeqPlacement placement, const char *model, const char *data,
                      const Model *orig) {
    char art[600];
    snprintf(art, sizeof art, "%s/teq_%s.qept", tmpdir, quant_method_name(method));
    QuantConfig qc;
    quant_config_default(&qc);
    qc.method = method;
    qc.teq = placement;
    qc.lr_teq = 2e-2f; /* a few epochs must move the scales visibly */
    qc.epochs = 3, qc.min_steps = 0;
    qc.bits[0] = 2, qc.bits[1] = 4, qc.bits[2] = 8, qc.n_bits = 3;
    qc.group[2] = qc.group[4] = 16;
    qc.seed = 3;
    ElasticModel em;
    if (calibrate_and_load(model, data, art, &qc, &em) != 0) return;
    QErr err = {{0}};
    const ModelConfig *c = &em.cfg;
    CHECK_MSG(em.qc.teq == placement, "artifact records teq %d, expected %d", em.qc.teq, placement);
    CHECK(em.qc.lr_teq == qc.lr_teq);
    /* base weights changed, the FP function did not */
    double dmax = 0;
    for (int l = 0; l < N_LIN; l++) {
        int o, in;
        qblock_linear_shape(c, l, &o, &in);
        const float *a = qblock_linear_weight(&em.base.blocks[0], l),
                    *b = qblock_linear_weight(&orig->blocks[0], l);
        for (size_t i = 0; i < (size_t)o * in; i++)
            dmax = fmax(dmax, fabs(a[i] - b[i]) / (fabs(b[i]) + 1e-3));
    }
    CHECK_MSG(dmax > 1e-3, "%s: TEQ left the base weights unchanged (max rel change %.3g)",
              quant_method_name(method), dmax);
    TokenSet ts;
    CHECK(tokens_load_any(data, NULL, 0, 0, &ts, &err) == 0);
    int T = ts.seq_len, n = ts.n_seq;
    ForwardState f0, f1;
    CHECK(forward_state_init(&f0, c, 2, T, &err) == 0 && forward_state_init(&f1, c, 2, T, &err) == 0);
    model_forward(orig, &f0, ts.tokens);
    model_forward(&em.base, &f1, ts.tokens);
    double le;
    rel_err(f1.logits, f0.logits, (size_t)2 * T * c->vocab_size, &le, NULL);
    CHECK_MSG(le <= TOL_EQUIV, "%s: folded FP model logits differ, relnorm %.3g", quant_method_name(method),
              le);

    /* block 0's recorded losses, recomputed on the switched artifact: the
     * input of block 0 is the embedding for every stream, the target the
     * ORIGINAL block on it */
    size_t NC = (size_t)n * T * c->dim;
    float *x = malloc(NC * 4), *target = malloc(NC * 4);
    embed_forward(x, orig->tok_emb, ts.tokens, n * T, c->dim);
    BlockActs a;
    CHECK(block_acts_init(&a, c, qc.batch, T, 1, &err) == 0);
    for (int s0 = 0; s0 < n; s0 += qc.batch)
        block_forward(c, &orig->blocks[0], &a, x + (size_t)s0 * T * c->dim, target + (size_t)s0 * T * c->dim);
    QBlockParams pr;
    const QBlockParams *p = &em.params[0];
    if (method != METHOD_QUEPT) { /* rtn: the parameter layout only (round to nearest) */
        CHECK(qblock_params_init(&pr, c, &em.qc, 0, &err) == 0);
        p = &pr;
    }
    ReconStep st;
    CHECK(recon_step_init(&st, c, p, qc.batch, T, &err) == 0);
    double worst = 0;
    for (int bi = 0; bi < em.qc.n_bits && method != METHOD_GPTQ; bi++) {
        double l = recon_eval_loss(c, &em.qc, p, &em.base.blocks[0], &st, bi, method != METHOD_QUEPT, x,
                                   target, n, T);
        double rec = em.stats[0].loss_final[bi], e = fabs(l - rec) / rec;
        worst = fmax(worst, e);
        CHECK_MSG(e <= 1e-6, "%s %d bits: the artifact's block 0 loss %.7f, recorded %.7f",
                  quant_method_name(method), em.qc.bits[bi], l, rec);
    }
    if (method == METHOD_GPTQ) { /* GPTQ ran on the folded weights: its codes are of W' */
        int bits4[8];
        for (int j = 0; j < c->n_layers; j++) bits4[j] = 4;
        Model q = {0};
        CHECK(elastic_switch(&em, bits4, &q, &err) == 0);
        double eq = 0, er = 0;
        for (size_t i = 0; i < (size_t)c->hidden_dim * c->dim; i++) {
            eq += fabs(q.blocks[0].w_up[i] - em.base.blocks[0].w_up[i]);
            er += fabs(q.blocks[0].w_up[i] - orig->blocks[0].w_up[i]);
        }
        CHECK_MSG(eq < er, "gptq: 4-bit weights are not a quantization of the folded base (%.3g vs %.3g)", eq,
                  er);
        model_free(&q);
    }
    printf("%s + TEQ %s: base rel change %.3g, FP logits relnorm %.2g, block-0 loss rel err %.2g\n",
           quant_method_name(method), quant_teq_name(placement), dmax, le, worst);
    if (p == &pr) qblock_params_free(&pr);
    recon_step_free(&st);
    block_acts_free(&a);
    forward_state_free(&f0);
    forward_state_free(&f1);
    free(x);
    free(target);
    tokens_free(&ts);
    elastic_free(&em);
}

/* The tiny model with activation outliers (quept stress: 2 channels per
 * norm x 32): the AWQ-style start finds them (their scales start well above
 * the others'), and the log-scale training moves the scales further up where
 * linear steps of the same learning rate cannot: after 3 epochs at lr 0.05
 * the largest scale with --teq-log is above the largest with linear steps. */
static float max_outlier_scale(const Model *m, const TokenSet *ts, const int *outlier, int init,
                               int log_scale, int epochs, float *median_other) {
    const ModelConfig c = m->cfg;
    QErr err = {{0}};
    QuantConfig qc;
    quant_config_default(&qc);
    qc.epochs = epochs, qc.min_steps = 0, qc.group[2] = qc.group[3] = qc.group[4] = 16;
    qc.teq = TEQ_NORM, qc.teq_init = init, qc.teq_log = log_scale, qc.lr_teq = 0.05f;
    Streams st;
    CHECK(streams_init(&st, &qc, ts->n_seq, ts->seq_len, c.dim, &err) == 0);
    embed_forward(st.fp, m->tok_emb, ts->tokens, ts->n_seq * ts->seq_len, c.dim);
    streams_reset_q(&st);
    QBlockParams p;
    ReconStats rs;
    float mx = 0.0f;
    int rc = recon_block(&c, &qc, 0, &m->blocks[0], &st, &p, &rs, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        const float *s = p.teq + p.teq_off[TEQ_ATTN];
        float other[64];
        int n = 0;
        for (int i = 0; i < c.dim; i++)
            if (outlier[i])
                mx = s[i] > mx ? s[i] : mx;
            else if (n < 64)
                other[n++] = s[i];
        for (int i = 1; i < n; i++) /* insertion sort for the median */
            for (int j = i; j > 0 && other[j] < other[j - 1]; j--) {
                float t = other[j];
                other[j] = other[j - 1], other[j - 1] = t;
            }
        *median_other = other[n / 2];
        qblock_params_free(&p);
    }
    streams_free(&st);
    return mx;
}

static void test_awq_and_log(void) {
    Model m;
    if (tiny_model(&m, 1, 21) != 0) return;
    Model orig;
    CHECK(tiny_model(&orig, 1, 21) == 0);
    QErr err = {{0}};
    StressConfig sc;
    stress_config_default(&sc);
    sc.channels = 2, sc.alpha = 32.0f, sc.seed = 4;
    CHECK(stress_apply(&m, &sc, NULL, &err) == 0);
    int outlier[64] = {0};
    for (int i = 0; i < m.cfg.dim; i++) outlier[i] = m.blocks[0].attn_norm[i] != orig.blocks[0].attn_norm[i];
    TokenSet ts;
    CHECK(sample_sequences(&m, 8, 16, 9, 1.0f, &ts, NULL, NULL, &err) == 0);
    float med_awq, med_lin, med_log;
    float s_awq = max_outlier_scale(&m, &ts, outlier, 1, 0, 0, &med_awq);
    float s_lin = max_outlier_scale(&m, &ts, outlier, 0, 0, 3, &med_lin);
    float s_log = max_outlier_scale(&m, &ts, outlier, 0, 1, 3, &med_log);
    printf("outlier channels' largest TEQ scale / median of the others: awq start %.3g / %.3g, "
           "3 epochs linear %.3g / %.3g, 3 epochs log %.3g / %.3g\n",
           s_awq, med_awq, s_lin, med_lin, s_log, med_log);
    CHECK_MSG(s_awq > 4.0f * med_awq, "AWQ start: outlier scale %.3g, median %.3g", s_awq, med_awq);
    CHECK_MSG(s_log > s_lin, "log-scale steps: outlier scale %.3g, linear %.3g", s_log, s_lin);
    tokens_free(&ts);
    model_free(&m);
    model_free(&orig);
}

/* Dead channels (the tiny model zero-padded to twice its width: half the
 * normed activations are 0) keep scale 1 at the AWQ start, and the live
 * ones stay where the unpadded model puts them: before, log(0) in the
 * geometric mean drove them to the clip limit, the TEQ-folded weights to
 * ~1e5 and their F16 export to infinity. */
static void test_awq_dead_channels(void) {
    Model m;
    if (tiny_model(&m, 1, 21) != 0) return;
    QErr err = {{0}};
    TokenSet ts;
    CHECK(sample_sequences(&m, 8, 16, 9, 1.0f, &ts, NULL, NULL, &err) == 0);
    const int C = m.cfg.dim;
    int none[64] = {0};
    float med_orig, med_pad;
    max_outlier_scale(&m, &ts, none, 1, 0, 0, &med_orig);
    CHECK(model_pad(&m, 2 * C, 0, &err) == 0);
    int dead[128] = {0};
    for (int i = C; i < 2 * C; i++) dead[i] = 1;
    float s_dead = max_outlier_scale(&m, &ts, dead, 1, 0, 0, &med_pad);
    printf("AWQ start, padded model: dead channels' largest scale %.3g, median live %.3g (unpadded %.3g)\n",
           s_dead, med_pad, med_orig);
    CHECK_MSG(s_dead == 1.0f, "dead channels start at scale %g, expected 1", s_dead);
    CHECK_MSG(med_pad < 4.0f * med_orig && med_pad > 0.25f * med_orig,
              "live channels' median scale %g, unpadded %g", med_pad, med_orig);
    tokens_free(&ts);
    model_free(&m);
}

static void test_bad_placement(const char *model, const char *data) {
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "%s calibrate --model %s --data %s --out %s/x.qept --teq-placement sideways 2>&1", QUEPT_BIN,
             model, data, tmpdir);
    int st;
    char *out = run_capture(cmd, &st);
    CHECK(out != NULL);
    if (!out) return;
    CHECK_MSG(exit_code(st) == 2, "exit status %d", st);
    CHECK_MSG(strstr(out, "--teq-placement") && strstr(out, "sideways") && strstr(out, "norm") &&
                  strstr(out, "wide"),
              "unclear error: %s", out);
    free(out);
    QErr err;
    TeqPlacement t;
    CHECK(quant_parse_teq("Wide", &t, &err) != 0);
    CHECK(quant_parse_teq("wide", &t, &err) == 0 && t == TEQ_WIDE);
    QuantConfig qc;
    quant_config_default(&qc);
    qc.teq = (TeqPlacement)7;
    CHECK(quant_config_validate(&qc, &err) != 0);
    qc.teq = TEQ_NORM;
    qc.lr_teq = -1.0f;
    CHECK(quant_config_validate(&qc, &err) != 0);
}

int main(void) {
    test_golden();
    test_equivalence(TEQ_NORM, 0);
    test_equivalence(TEQ_WIDE, 1);
    test_awq_and_log();
    test_awq_dead_channels();

    scratch_dir(tmpdir, sizeof tmpdir, "teq");
    char model[600], data[600];
    snprintf(model, sizeof model, "%s/tiny.bin", tmpdir);
    snprintf(data, sizeof data, "%s/calib.qtok", tmpdir);
    Model m;
    if (tiny_model(&m, 2, 11) == 0) write_calib_inputs(&m, model, data, 8, 16, 3);
    if (!check_failures) {
        test_fold(METHOD_QUEPT, TEQ_WIDE, model, data, &m);
        test_fold(METHOD_RTN, TEQ_NORM, model, data, &m);
        test_fold(METHOD_GPTQ, TEQ_NORM, model, data, &m);
        test_bad_placement(model, data);
    }
    model_free(&m);
    scratch_remove(tmpdir);
    CHECK_DONE();
}
