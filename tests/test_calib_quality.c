/* QuEPT on the real stories260K model, shortened (64 sampled calibration
 * sequences of 256 tokens, 8 epochs, no step floor): with the default configuration, every
 * block's reconstruction loss at every bit width ends strictly below its
 * round-to-nearest start, except where the held-out fallback chose RTN itself
 * (then equal) — allowed for at most 2 of the 35 block-widths; and its
 * mean KLD on 16 held-out samples is below GPTQ's (same data) at every
 * width. (The full 15-epoch, 128-sequence quality table is what the quick
 * start prints; see docs/results.md.)
 * The same shortened run on the activation-outlier variant of the model
 * (quept stress --channels 4 --alpha 32: the same function, 4 channels per
 * norm and layer 32 times larger): its mean KLD on 16 held-out samples is
 * below RTN's at every width (the defaults before issue 13 were worse than
 * RTN at 4 bits on this variant).
 * Runs in the Release build only: under ASan it would take minutes and the
 * sanitizers already cover these code paths through test_recon. */
#include <stdlib.h>
#include <string.h>

#include "artifact/elastic.h"
#include "eval/evaluate.h"
#include "model/stress.h"
#include "check.h"
#include "data/tokens.h"
#include "fixtures.h"
#include "pipeline/calibrate.h"

/* Mean KLD against ref at every width of the artifact at path into kld[]. */
static void kld_per_width(const char *path, const Model *ref, const TokenSet *ts, double *kld) {
    QErr err = {{0}};
    ElasticModel em;
    if (elastic_load(&em, path, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    Model q = {0};
    int bits[64];
    for (int bi = 0; bi < em.qc.n_bits; bi++) {
        for (int j = 0; j < em.cfg.n_layers; j++) bits[j] = em.qc.bits[bi];
        CHECK(elastic_switch(&em, bits, &q, &err) == 0);
        q.tok_emb = em.base.tok_emb, q.final_norm = em.base.final_norm, q.classifier = em.base.classifier;
        EvalResult r;
        CHECK_MSG(evaluate_model(&q, ref, ts, 8, NULL, &r, &err) == 0, "%s", err.msg);
        kld[bi] = r.kld_mean;
    }
    q.tok_emb = q.final_norm = q.classifier = NULL;
    model_free(&q);
    elastic_free(&em);
}

static void stress_variant(const QualityRun *q) {
    char act[600], art[600], art_rtn[600];
    snprintf(act, sizeof act, "%s/act.bin", q->dir);
    snprintf(art, sizeof art, "%s/act_quept.qept", q->dir);
    snprintf(art_rtn, sizeof art_rtn, "%s/act_rtn.qept", q->dir);
    QErr err = {{0}};
    StressConfig sc;
    stress_config_default(&sc);
    sc.channels = 4, sc.alpha = 32.0f;
    CHECK_MSG(stress_write_model(q->model, act, &sc, NULL, &err) == 0, "%s", err.msg);
    Model ref;
    if (model_load(&ref, act, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    TokenSet ts;
    CHECK(sample_sequences(&ref, 16, 256, 2, 1.0f, &ts, NULL, NULL, &err) == 0);
    QuantConfig qc;
    quant_config_default(&qc);
    qc.epochs = 8, qc.min_steps = 0;
    CalibJob job = {.model_path = act, .data_path = q->data, .out_path = art, .quiet = 1};
    CHECK_MSG(calibrate_run(&job, &qc, &err) == 0, "%s", err.msg);
    quant_config_default(&qc);
    qc.method = METHOD_RTN, qc.teq = TEQ_OFF;
    CalibJob jr = {.model_path = act, .data_path = q->data, .out_path = art_rtn, .quiet = 1};
    CHECK_MSG(calibrate_run(&jr, &qc, &err) == 0, "%s", err.msg);
    double kq[QMAX_NBITS] = {0}, kr[QMAX_NBITS] = {0};
    kld_per_width(art, &ref, &ts, kq);
    kld_per_width(art_rtn, &ref, &ts, kr);
    for (int bi = 0; bi < qc.n_bits; bi++) {
        printf("activation outliers, %d bits: mean KLD quept %.4f, rtn %.4f\n", qc.bits[bi], kq[bi], kr[bi]);
        CHECK_MSG(kq[bi] < kr[bi], "activation outliers, %d bits: quept %.4f is not below rtn %.4f",
                  qc.bits[bi], kq[bi], kr[bi]);
    }
    tokens_free(&ts);
    model_free(&ref);
}

/* The shortened run against GPTQ on the same data: mean KLD on 16
 * held-out samples (seed 2) below GPTQ's at every width 2-8 (issue 13's
 * goal; measured with one thread: 5.92 / 3.56 / 1.73 / 0.635 / 0.200 /
 * 0.0494 / 0.0128 against 6.37 / 3.95 / 1.94 / 0.733 / 0.229 / 0.0575 /
 * 0.0154 — margins 7-17 %; without the fallback's GPTQ candidate GPTQ
 * won 5-8 bits). */
static void below_gptq(const QualityRun *q, const char *art) {
    char art_gptq[600];
    snprintf(art_gptq, sizeof art_gptq, "%s/gptq.qept", q->dir);
    QErr err = {{0}};
    QuantConfig qc;
    quant_config_default(&qc);
    qc.method = METHOD_GPTQ, qc.teq = TEQ_OFF;
    CalibJob jg = {.model_path = q->model, .data_path = q->data, .out_path = art_gptq, .quiet = 1};
    CHECK_MSG(calibrate_run(&jg, &qc, &err) == 0, "%s", err.msg);
    Model ref;
    if (model_load(&ref, q->model, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    TokenSet ts;
    CHECK(sample_sequences(&ref, 16, 256, 2, 1.0f, &ts, NULL, NULL, &err) == 0);
    double kq[QMAX_NBITS] = {0}, kg[QMAX_NBITS] = {0};
    kld_per_width(art, &ref, &ts, kq);
    kld_per_width(art_gptq, &ref, &ts, kg);
    for (int bi = 0; bi < qc.n_bits; bi++) {
        printf("stories260K, %d bits: mean KLD quept %.4f, gptq %.4f\n", qc.bits[bi], kq[bi], kg[bi]);
        CHECK_MSG(kq[bi] < kg[bi], "%d bits: quept %.4f is not below gptq %.4f", qc.bits[bi], kq[bi], kg[bi]);
    }
    tokens_free(&ts);
    model_free(&ref);
}

int main(void) {
    QualityRun q;
    quality_run_begin(&q, "quality", 64, 256);
    char art[600];
    snprintf(art, sizeof art, "%s/quept.qept", q.dir);

    QuantConfig qc;
    quant_config_default(&qc);
    qc.epochs = 8, qc.min_steps = 0;
    ElasticModel em;
    if (calibrate_and_load(q.model, q.data, art, &qc, &em) == 0) {
        /* trained parameters must beat rounding; where the held-out
         * fallback chose RTN the block holds exactly RTN; the fallback is a
         * safety net, not the method: at most 2 of 35 */
        check_trained_below_start(&em, "RTN", 2);
        elastic_free(&em);
        below_gptq(&q, art);
    }
    stress_variant(&q);
    scratch_remove(q.dir);
    CHECK_DONE();
}
