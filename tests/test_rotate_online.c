/* test_rotate_online.c — the online Hadamard of the down_proj input in the
 * engine (BlockWeights.down_had, part of issue 15; docs/rotation.md).
 * A model folded by model_fold_down_hadamard (W_down <- W_down H / sqrt(h),
 * down_had set) against the same model unfolded, on widths whose FFN base
 * is not symmetric (172: Williamson; 92 too), so a transform used where its
 * transpose belongs fails:
 *   1. block_forward: outputs within 1e-5 (relative to the largest |y|);
 *   2. block_backward: the input gradient within 1e-4 of the unrotated one,
 *      every weight gradient but W_down's within 1e-4, W_down's equal to the
 *      unrotated one times H / sqrt(h) (dL/dW1 = dL/dW0 Hh) within 1e-4;
 *      and the rotated block's input gradient against central finite
 *      differences of <dout, block(x)> (float, step 1e-2: rel 2e-2);
 *   3. the training step (recon_step_bit) on the rotated block at W4 and
 *      W4A4: its block output equals block_forward on the quantized view
 *      bitwise, its loss that of the view (1e-6), its clipping and adapter
 *      gradients those fq_backward gives from block_backward's weight
 *      gradients on the view (1e-4 relative to the largest) — the gate/up
 *      gradients run through the online transform's backward;
 *   5. whole models: model_rotate_hadamard + model_fold_down_hadamard keeps
 *      the logits (mean KLD < 1e-9), and decode_step on the rotated model
 *      agrees with model_forward (1e-4 relative);
 *   6. calibrate --rotate hadamard (rtn, gptq, quept at W4A4 / W8A8 on a
 *      tiny model): the artifact records rotate and its seed, its base is
 *      the rotated model (KLD to the original < 1e-9), switching carries the
 *      online transform (W8A8 KLD < 0.05); no rotate key without it;
 *   7. its exports: safetensors-fp16 folds the transform back into W_down
 *      (KLD to the switched weights < 1e-4), safetensors-int and gguf are
 *      refused, naming why. */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "check.h"
#include "engine/qblock.h"
#include "engine/recon_step.h"
#include "eval/metrics.h"
#include "export/export.h"
#include "fixtures.h"
#include "model/rotate.h"
#include "nn/forward.h"

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* max |a - b| / (1e-30 + max |b|) */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d / (1e-30 + max_abs(b, n));
}

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r) * scale;
}

/* the two models: m0 as it is, m1 folded (down_had on every block) */
static int two_models(const ModelConfig *cfg, uint64_t seed, Model *m0, Model *m1) {
    QErr err = {{0}};
    int rc = model_init_random(m0, cfg, seed, &err) || model_init_random(m1, cfg, seed, &err) ||
             model_fold_down_hadamard(m1, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    for (int j = 0; rc == 0 && j < cfg->n_layers; j++)
        CHECK(m1->blocks[j].down_had && !m0->blocks[j].down_had);
    return rc ? -1 : 0;
}

/* 1 and 2: forward, backward, finite differences on block 0 */
static void check_block(const char *what, const ModelConfig *c) {
    Model m0, m1;
    if (two_models(c, 31, &m0, &m1) != 0) return;
    const int B = 2, T = 8, N = B * T, C = c->dim, H = c->hidden_dim;
    const size_t NC = (size_t)N * C;
    QErr err = {{0}};
    BlockActs a0, a1;
    CHECK_MSG(block_acts_init(&a0, c, B, T, 1, &err) == 0 && block_acts_init(&a1, c, B, T, 1, &err) == 0,
              "%s", err.msg);
    float *x = malloc(NC * 4), *y0 = malloc(NC * 4), *y1 = malloc(NC * 4), *dout = malloc(NC * 4);
    float *dx0 = calloc(NC, 4), *dx1 = calloc(NC, 4);
    float *s0 = malloc(block_backward_scratch_floats(c, B, T) * 4),
          *s1 = malloc(block_backward_scratch_floats(c, B, T) * 4);
    fill(x, NC, 7, 1.0f);
    fill(dout, NC, 8, 1.0f);
    block_forward(c, &m0.blocks[0], &a0, x, y0);
    block_forward(c, &m1.blocks[0], &a1, x, y1);
    double ef = rel_diff(y1, y0, NC);
    /* gradients */
    BlockWeightGrads g[2];
    float *gbuf[2][N_LIN];
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < N_LIN; l++) {
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            gbuf[k][l] = calloc((size_t)o * in, 4);
        }
    for (int k = 0; k < 2; k++)
        g[k] = (BlockWeightGrads){gbuf[k][LIN_Q],    gbuf[k][LIN_K],  gbuf[k][LIN_V],   gbuf[k][LIN_O],
                                  gbuf[k][LIN_GATE], gbuf[k][LIN_UP], gbuf[k][LIN_DOWN]};
    block_backward(c, &m0.blocks[0], &a0, x, dout, dx0, &g[0], s0);
    block_backward(c, &m1.blocks[0], &a1, x, dout, dx1, &g[1], s1);
    double edx = rel_diff(dx1, dx0, NC), ew = 0;
    /* dL/dW1_down = dL/dW0_down Hh: row by row, H^T row / sqrt(h) */
    float *work = malloc((size_t)H * 4);
    for (int r = 0; r < C; r++) hadamard_transform_t(gbuf[0][LIN_DOWN] + (size_t)r * H, &a0.had, work);
    for (int l = 0; l < N_LIN; l++) {
        int o, in;
        qblock_linear_shape(c, l, &o, &in);
        ew = fmax(ew, rel_diff(gbuf[1][l], gbuf[0][l], (size_t)o * in));
    }
    /* finite differences of <dout, block1(x)> at a few inputs */
    double efd = 0;
    float *xp = malloc(NC * 4);
    for (int t = 0; t < 6; t++) {
        size_t i = ((size_t)t * 977 + 13) % NC;
        double f[2];
        for (int sg = 0; sg < 2; sg++) {
            memcpy(xp, x, NC * 4);
            xp[i] += sg ? -1e-2f : 1e-2f;
            block_forward(c, &m1.blocks[0], &a1, xp, y1);
            double v = 0;
            for (size_t k = 0; k < NC; k++) v += (double)dout[k] * y1[k];
            f[sg] = v;
        }
        double fd = (f[0] - f[1]) / 2e-2;
        efd = fmax(efd, fabs(fd - dx1[i]) / (fabs(fd) + 0.1));
    }
    printf("%s: folded + online vs unrotated block: forward %.2g (tol 1e-5), dx %.2g (tol 1e-4), weight "
           "grads %.2g (tol 1e-4); dx vs finite differences %.2g (tol 2e-2)\n",
           what, ef, edx, ew, efd);
    CHECK(ef <= 1e-5);
    CHECK(edx <= 1e-4);
    CHECK(ew <= 1e-4);
    CHECK(efd <= 2e-2);
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < N_LIN; l++) free(gbuf[k][l]);
    free(x), free(y0), free(y1), free(dout), free(dx0), free(dx1), free(s0), free(s1), free(work), free(xp);
    block_acts_free(&a0);
    block_acts_free(&a1);
    model_free(&m0);
    model_free(&m1);
}

/* 3 and 4: the training step on the rotated block at W4 (ab = 0) or W4A4:
 * its clipping and adapter gradients against fq_backward of the weight
 * gradients block_backward gives on the quantized view, and its block output
 * against block_forward on the view */
static void check_step(const char *what, const ModelConfig *c, int ab) {
    Model m0, m1;
    if (two_models(c, 33, &m0, &m1) != 0) return;
    const int B = 2, T = 8, N = B * T, C = c->dim;
    const size_t NC = (size_t)N * C;
    QErr err = {{0}};
    QuantConfig qc;
    quant_config_default(&qc);
    qc.teq = TEQ_OFF;
    CHECK_MSG(quant_parse_bits(&qc, "4", &err) == 0, "%s", err.msg);
    if (ab) CHECK_MSG(quant_parse_act_bits(&qc, NULL, "4", &err) == 0, "%s", err.msg);
    QBlockParams p;
    ReconStep st;
    BlockActs a;
    CHECK_MSG(qblock_params_init(&p, c, &qc, 0, &err) == 0 && recon_step_init(&st, c, &p, B, T, &err) == 0 &&
                  block_acts_init(&a, c, B, T, 1, &err) == 0 && block_acts_init_aq(&a, c, &err) == 0,
              "%s", err.msg);
    float *x = malloc(NC * 4), *target = malloc(NC * 4), *y = malloc(NC * 4), *dout = malloc(NC * 4);
    float *dx = calloc(NC, 4), *sc = malloc(block_backward_scratch_floats(c, B, T) * 4);
    float *glwc = calloc(p.n_lwc, 4), *gad = calloc(p.n_adapter, 4);
    fill(x, NC, 9, 1.0f);
    fill(target, NC, 10, 1.0f);
    memset(st.g_lwc, 0, p.n_lwc * 4);
    memset(st.g_adapter, 0, p.n_adapter * 4);
    double loss = recon_step_bit(c, &qc, &p, &m1.blocks[0], &st, 0, x, target, 1.0f);
    /* the reference: the view's forward and backward, then each quantizer's backward */
    float *wq[N_LIN], *fqs[N_LIN], *gw[N_LIN], *work[N_LIN];
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p.lin[l];
        size_t nw = fq_work_floats(&q->spec[0]);
        wq[l] = malloc((size_t)q->out * q->in * 4);
        gw[l] = calloc((size_t)q->out * q->in, 4);
        fqs[l] = malloc(fq_scratch_floats(&q->spec[0]) * 4);
        work[l] = malloc((nw ? nw : 1) * 4);
    }
    BlockWeights view;
    qblock_build(&p, &m1.blocks[0], 0, p.lwc, p.adapter, wq, fqs, &view);
    CHECK(view.down_had == 1 && view.act_bits == ab);
    block_forward(c, &view, &a, x, y);
    CHECK_MSG(memcmp(y, st.out, NC * 4) == 0, "%s: the step's output differs from the view's block_forward",
              what);
    double lref = recon_loss(y, target, dout, B, T, C, qc.loss_l2, 1.0f);
    BlockWeightGrads g = {gw[LIN_Q], gw[LIN_K], gw[LIN_V], gw[LIN_O], gw[LIN_GATE], gw[LIN_UP], gw[LIN_DOWN]};
    block_backward(c, &view, &a, x, dout, dx, &g, sc);
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p.lin[l];
        const FqSpec *s = &q->spec[0];
        fq_backward(s, qblock_linear_weight(&m1.blocks[0], l), p.adapter + q->off_Bd, p.adapter + q->off_Bu,
                    p.lwc + q->off_gamma[0], p.lwc + q->off_beta[0], fqs[l], gw[l], glwc + q->off_gamma[0],
                    glwc + q->off_beta[0], s->rank ? gad + q->off_Bd : NULL, s->rank ? gad + q->off_Bu : NULL,
                    work[l]);
    }
    double el = rel_diff(st.g_lwc, glwc, p.n_lwc),
           ea = p.n_adapter ? rel_diff(st.g_adapter, gad, p.n_adapter) : 0;
    printf("%s, W4A%d, rotated: training step vs the view's block_backward: loss %.6g vs %.6g, clipping "
           "gradient %.2g, adapter gradient %.2g (tol 1e-4)\n",
           what, ab ? ab : 16, loss, lref, el, ea);
    CHECK_CLOSE(loss, lref, 0, 1e-6);
    CHECK(el <= 1e-4 && max_abs(glwc, p.n_lwc) > 0);
    CHECK(ea <= 1e-4);
    for (int l = 0; l < N_LIN; l++) free(wq[l]), free(gw[l]), free(fqs[l]), free(work[l]);
    free(x), free(target), free(y), free(dout), free(dx), free(sc), free(glwc), free(gad);
    block_acts_free(&a);
    recon_step_free(&st);
    qblock_params_free(&p);
    model_free(&m0);
    model_free(&m1);
}

/* 5: whole models, prefill and decode */
static void check_model(const char *what, Model *m) {
    const int B = 2, T = 10, V = m->cfg.vocab_size;
    int tok[20];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 5 + 1) % V;
    float *z0 = logits_of(m, tok, B, T);
    QErr err = {{0}};
    CHECK_MSG(model_rotate_hadamard(m, 3, &err) == 0 && model_fold_down_hadamard(m, &err) == 0, "%s",
              err.msg);
    float *z1 = logits_of(m, tok, B, T);
    double *lp = malloc(sizeof(double) * V), *lq = malloc(sizeof(double) * V), kld = 0, ed = 0;
    for (int r = 0; r < B * T; r++) {
        log_softmax_row(lp, z0 + (size_t)r * V, V);
        log_softmax_row(lq, z1 + (size_t)r * V, V);
        kld += kl_divergence(lp, lq, V) / (B * T);
    }
    DecodeState ds;
    CHECK_MSG(decode_state_init(&ds, &m->cfg, T, &err) == 0, "%s", err.msg);
    for (int t = 0; t < T; t++) {
        const float *z = decode_step(m, &ds, tok[t], t);
        ed = fmax(ed, rel_diff(z, z1 + (size_t)t * V, (size_t)V));
    }
    printf("%s: rotated + folded model vs original: mean KLD %.3g (tol 1e-9); decode vs prefill %.2g (tol "
           "1e-4)\n",
           what, kld, ed);
    CHECK(kld < 1e-9);
    CHECK(ed <= 1e-4);
    decode_state_free(&ds);
    free(lp), free(lq), free(z0), free(z1);
}

/* mean KLD of b's next-token distributions to a's on B sequences of T */
static double mean_kld(const Model *a, const Model *b, int B, int T) {
    const int V = a->cfg.vocab_size;
    int tok[64];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 5 + 2) % V;
    float *z0 = logits_of(a, tok, B, T), *z1 = logits_of(b, tok, B, T);
    double *lp = malloc(sizeof(double) * V), *lq = malloc(sizeof(double) * V), kld = 0;
    for (int r = 0; r < B * T; r++) {
        log_softmax_row(lp, z0 + (size_t)r * V, V);
        log_softmax_row(lq, z1 + (size_t)r * V, V);
        kld += kl_divergence(lp, lq, V) / (B * T);
    }
    free(lp), free(lq), free(z0), free(z1);
    return kld;
}

/* 7: exports of a rotated artifact switched to bits: safetensors-fp16 folds
 * the online transform back (the HF model computes the switched weights'
 * function without it: KLD < 1e-4, fp16 rounding), safetensors-int and gguf
 * are refused with the reason; q is the switched model (activation
 * quantization is cleared here: no export carries it) */
static void check_exports(const ElasticModel *em, Model *q, int *bits, const char *dir) {
    char out[160];
    snprintf(out, sizeof out, "%s/hf", dir);
    QErr err = {{0}};
    Model e = {0};
    CHECK_MSG(export_fp16(em, bits, out, &err) == 0 && model_load(&e, out, &err) == 0, "%s", err.msg);
    for (int j = 0; j < q->cfg.n_layers; j++) {
        q->blocks[j].act_bits = 0;
        CHECK(e.blocks && e.blocks[j].down_had == 0);
    }
    double k = e.blocks ? mean_kld(q, &e, 2, 16) : 1;
    printf("safetensors-fp16 of the rotated W8 artifact (down_proj transform folded back) vs the switched "
           "weights: KLD %.3g (tol 1e-4)\n",
           k);
    CHECK(k < 1e-4);
    model_free(&e);
    SwitchedModel sw = {0};
    CHECK_MSG(elastic_switch_codes(em, bits, &sw, &err) == 0, "%s", err.msg);
    snprintf(out, sizeof out, "%s/int", dir);
    CHECK(export_int(em, &sw, NULL, out, &err) != 0 && strstr(err.msg, "safetensors-int") &&
          strstr(err.msg, "--rotate hadamard") && strstr(err.msg, "safetensors-fp16"));
    printf("refused: %s\n", err.msg);
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    GgufOptions go = {0};
    CHECK(export_gguf(em, &sw, out, &go, &err) != 0 && strstr(err.msg, "gguf") &&
          strstr(err.msg, "--rotate hadamard"));
    CHECK(access(out, F_OK) != 0);
    switched_free(&sw);
}

/* 6: calibrate --rotate hadamard (rtn, GPTQ and QuEPT at W4A4/W8A8) records
 * the rotation, stores the rotated base (its function the original's) and
 * switches with the online transform; without --rotate the quant map has no
 * rotate key (older artifacts read as none) */
static void check_calibrate(void) {
    char dir[64], model[128], data[128], art[128];
    scratch_dir(dir, sizeof dir, "rotate_online");
    snprintf(model, sizeof model, "%s/m.bin", dir);
    snprintf(data, sizeof data, "%s/d.qtok", dir);
    snprintf(art, sizeof art, "%s/a.qept", dir);
    write_tiny(model, data, 2, 8, 16);
    Model m0;
    QErr err = {{0}};
    CHECK_MSG(model_load(&m0, model, &err) == 0, "%s", err.msg);
    const QuantMethod methods[3] = {METHOD_RTN, METHOD_GPTQ, METHOD_QUEPT};
    for (int k = 0; k < 3; k++) {
        QuantConfig qc;
        tiny_quant_config(&qc, 1);
        qc.method = methods[k];
        if (qc.method != METHOD_QUEPT) qc.teq = TEQ_OFF;
        CHECK(quant_parse_bits(&qc, "4,8", &err) == 0 && quant_parse_act_bits(&qc, NULL, "4,8", &err) == 0);
        qc.rotate = ROTATE_HADAMARD;
        qc.rotate_seed = 6;
        ElasticModel em;
        if (calibrate_and_load(model, data, art, &qc, &em) != 0) continue;
        CHECK(em.qc.rotate == ROTATE_HADAMARD && em.qc.rotate_seed == 6);
        for (int j = 0; j < em.cfg.n_layers; j++) CHECK(em.base.blocks[j].down_had == 1);
        double kb = mean_kld(&m0, &em.base, 2, 16);
        Model q = {0};
        int bits[2] = {8, 8};
        CHECK_MSG(elastic_switch(&em, bits, &q, &err) == 0, "%s", err.msg);
        q.tok_emb = em.base.tok_emb, q.final_norm = em.base.final_norm, q.classifier = em.base.classifier;
        CHECK(q.blocks[0].down_had == 1 && q.blocks[1].act_bits == 8);
        double k8 = mean_kld(&m0, &q, 2, 16);
        printf("calibrate --method %s --rotate hadamard: rotated base vs original KLD %.3g (tol 1e-9), W8A8 "
               "%.3g\n",
               quant_method_name(qc.method), kb, k8);
        CHECK(kb < 1e-9);
        CHECK(k8 < 0.05);
        if (qc.method == METHOD_RTN) check_exports(&em, &q, bits, dir);
        q.tok_emb = q.final_norm = q.classifier = NULL;
        model_free(&q);
        elastic_free(&em);
    }
    QuantConfig qc;
    tiny_quant_config(&qc, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qconfig_pack(&pk, &qc);
    CHECK(memmem(sb.data, sb.size, "rotate", 6) == NULL);
    msgpack_sbuffer_destroy(&sb);
    model_free(&m0);
    scratch_remove(dir);
}

int main(void) {
    check_calibrate();
    ModelConfig c1 = llama_config(48, 172, 2, 4, 2, 64, 32); /* FFN 172: Williamson, not symmetric */
    ModelConfig c2 = llama_config(72, 92, 2, 4, 2, 50, 32);  /* FFN 92: Williamson; dim 72 Paley II */
    check_block("dim 48, FFN 172", &c1);
    check_block("dim 72, FFN 92", &c2);
    for (int ab = 0; ab <= 4; ab += 4) {
        check_step("dim 48, FFN 172", &c1, ab);
        check_step("dim 72, FFN 92", &c2, ab);
    }
    Model m;
    QErr err = {{0}};
    if (model_init_random(&m, &c1, 41, &err) == 0) {
        check_model("dim 48, FFN 172", &m);
        model_free(&m);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", QUEPT_SHARED_DIR);
    if (access(path, R_OK) == 0) {
        CHECK_MSG(model_load(&m, path, &err) == 0, "%s", err.msg);
        check_model("stories260K", &m);
        model_free(&m);
    } else
        printf("NOTE: stories260K not found: its rotation is not checked\n");
    return check_failures ? 1 : 0;
}
