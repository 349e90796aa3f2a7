/* Numbers never lie: NaN or Inf anywhere — in a model's weights, an
 * artifact's tensors, GPTQ codes/scales/zeros out of range, logits that
 * overflow — is an error naming where, never a metric of 0 or an all-zero
 * sample. Each case was a finding of the hardening review (issue 12). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "artifact/elastic.h"
#include "check.h"
#include "data/tokens.h"
#include "eval/metrics.h"
#include "fixtures.h"
#include "model/model.h"
#include "pipeline/calibrate.h"

static char tmpdir[256];

static void test_metrics_refuse_nonfinite(void) {
    float good[6] = {0.0f, 1.0f, 0.5f, 0.2f, 0.1f, 0.3f}; /* T=3, V=2 */
    float bad[6] = {0.0f, 1.0f, NAN, 0.2f, 0.1f, 0.3f};
    int tok[3] = {1, 0, 1};
    EvalResult r;
    QErr err = {{0}};
    /* NaN in the model: an error naming the model, never kld 0 */
    EvalAccum a;
    eval_accum_init(&a);
    eval_accum_sequence(&a, bad, good, tok, 3, 2);
    CHECK(eval_accum_result(&a, &r, &err) != 0);
    CHECK_MSG(strstr(err.msg, "model's logits") && strstr(err.msg, "1 of 2 positions"), "%s", err.msg);
    eval_accum_free(&a);
    /* NaN in the reference: named as the reference */
    eval_accum_init(&a);
    eval_accum_sequence(&a, good, bad, tok, 3, 2);
    CHECK(eval_accum_result(&a, &r, &err) != 0);
    CHECK_MSG(strstr(err.msg, "reference's logits"), "%s", err.msg);
    eval_accum_free(&a);
    /* +Inf alone (no NaN) is caught too */
    float inf[6] = {0.0f, INFINITY, 0.5f, 0.2f, 0.1f, 0.3f};
    eval_accum_init(&a);
    eval_accum_sequence(&a, inf, NULL, tok, 3, 2);
    CHECK(eval_accum_result(&a, &r, &err) != 0);
    eval_accum_free(&a);
    /* finite rows still give numbers */
    eval_accum_init(&a);
    eval_accum_sequence(&a, good, good, tok, 3, 2);
    CHECK(eval_accum_result(&a, &r, &err) == 0);
    CHECK_CLOSE(r.kld_mean, 0.0, 1e-12, 0);
    eval_accum_free(&a);
    /* kl_divergence keeps NaN (it used to clamp NaN to 0) */
    double lp[2] = {log(0.5), log(0.5)}, lq[2] = {NAN, log(0.5)};
    CHECK(isnan(kl_divergence(lp, lq, 2)));
}

static void test_models_refused_at_open(void) {
    QErr err = {{0}};
    ModelConfig c = untied_config();
    Model m;
    char path[512];
    /* one NaN weight: model_load names the block and tensor */
    CHECK(model_init_random(&m, &c, 3, &err) == 0);
    m.blocks[1].w_down[7] = NAN;
    snprintf(path, sizeof path, "%s/nan.bin", tmpdir);
    CHECK(llama2c_write_legacy(path, &m, &err) == 0);
    model_free(&m);
    Model l;
    CHECK(model_load(&l, path, &err) != 0);
    CHECK_MSG(strstr(err.msg, "block 1 tensor w_down") && strstr(err.msg, "index 7"), "%s", err.msg);
    /* and `quept eval` exits non-zero and prints no number for it */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/ok.qtok", tmpdir);
    int ids[16];
    for (int i = 0; i < 16; i++) ids[i] = i == 0 ? TOKEN_BOS : 3 + i;
    TokenSet ts = {.tokens = ids, .n_seq = 2, .seq_len = 8, .vocab_size = 40};
    CHECK(tokens_write(cmd, &ts, &err) == 0);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/ok.qtok --reference %s --json 2>&1", QUEPT_BIN,
             path, tmpdir, path);
    int st;
    char *out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) != 0 && out && !strstr(out, "\"kld_mean\""), "exit %d: %s", exit_code(st),
              out ? out : "");
    free(out);
    /* a vocabulary that cannot hold BOS (1) and EOS (2) */
    CHECK(model_init_random(&m, &c, 4, &err) == 0);
    m.cfg.vocab_size = 1;
    snprintf(path, sizeof path, "%s/v1.bin", tmpdir);
    CHECK(llama2c_write_legacy(path, &m, &err) == 0);
    m.cfg.vocab_size = 40;
    model_free(&m);
    CHECK(model_load(&l, path, &err) != 0);
    CHECK_MSG(strstr(err.msg, "vocab_size 1"), "%s", err.msg);
}

static void test_sample_refuses_overflow(void) {
    /* finite but huge weights: the logits overflow; sampling used to write tokens anyway */
    QErr err = {{0}};
    ModelConfig c = untied_config();
    Model m;
    CHECK(model_init_random(&m, &c, 5, &err) == 0);
    for (int i = 0; i < c.dim; i++) m.final_norm[i] = 3e38f;
    TokenSet ts;
    CHECK(sample_sequences(&m, 2, 8, 1, 1.0f, &ts, NULL, NULL, &err) != 0);
    CHECK_MSG(strstr(err.msg, "logits") && strstr(err.msg, "non-finite"), "%s", err.msg);
    CHECK(ts.tokens == NULL);
    model_free(&m);
}

/* Calibrates a GPTQ artifact of the tiny model, then tampers with it. */
static void test_artifacts_refused_at_load(void) {
    QErr err = {{0}};
    ModelConfig c = untied_config();
    Model m;
    char model[512], data[512], art[512], bad[512];
    snprintf(model, sizeof model, "%s/m.bin", tmpdir);
    snprintf(data, sizeof data, "%s/d.qtok", tmpdir);
    snprintf(art, sizeof art, "%s/g.qept", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.qept", tmpdir);
    CHECK(model_init_random(&m, &c, 6, &err) == 0);
    write_calib_inputs(&m, model, data, 8, 16, 2);
    model_free(&m);
    QuantConfig qc;
    quant_config_default(&qc);
    qc.method = METHOD_GPTQ, qc.teq = TEQ_OFF; /* as --method gptq gives it */
    CHECK(quant_parse_bits(&qc, "2,4", &err) == 0);
    ElasticModel em;
    if (calibrate_and_load(model, data, art, &qc, &em) != 0) return;
    struct {
        const char *what, *expect;
    } cases[] = {{"code", "exceeds 3"},
                 {"scale", "not positive"},
                 {"zero", "zero point"},
                 {"nan-base", "non-finite"},
                 {"inf-scale", "non-finite"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ElasticModel t;
        CHECK(elastic_load(&t, art, &err) == 0);
        GptqLinear *g = &t.gptq[1][2][1];                                   /* block 1, wv, 4 bits */
        if (!strcmp(cases[k].what, "code")) t.gptq[1][2][0].codes[5] = 200; /* 2 bits: max 3 */
        if (!strcmp(cases[k].what, "scale")) g->scales[3] = -0.5f;
        if (!strcmp(cases[k].what, "zero")) g->zeros[3] = 1e9f;
        if (!strcmp(cases[k].what, "nan-base")) t.base.blocks[0].wq[11] = NAN;
        if (!strcmp(cases[k].what, "inf-scale")) g->scales[0] = INFINITY;
        CHECK_MSG(elastic_write(&t, bad, &err) == 0, "%s", err.msg);
        elastic_free(&t);
        ElasticModel l;
        int rc = elastic_load(&l, bad, &err);
        CHECK_MSG(rc != 0 && strstr(err.msg, cases[k].expect), "%s: rc %d, %s", cases[k].what, rc, err.msg);
        if (rc == 0) elastic_free(&l);
    }
    elastic_free(&em);
}

/* RTN on finite but huge weights (3e38 and -3e38 in one group: the grid's
 * range overflows float) used to write an artifact that evaluated to NaN:
 * calibration now refuses, naming width, block and tensor. */
static void test_calibration_refuses_overflow(void) {
    QErr err = {{0}};
    ModelConfig c = untied_config();
    Model m;
    char model[512], data[512], art[512];
    snprintf(model, sizeof model, "%s/huge.bin", tmpdir);
    snprintf(data, sizeof data, "%s/huge.qtok", tmpdir);
    snprintf(art, sizeof art, "%s/huge.qept", tmpdir);
    CHECK(model_init_random(&m, &c, 8, &err) == 0);
    CHECK(sample_to_file(&m, 8, 16, 2, 1.0f, data, NULL, NULL, &err) == 0);
    m.blocks[1].w_up[0] = 3e38f;
    m.blocks[1].w_up[1] = -3e38f;
    CHECK(llama2c_write_legacy(model, &m, &err) == 0);
    model_free(&m);
    QuantConfig qc;
    quant_config_default(&qc);
    qc.method = METHOD_RTN, qc.teq = TEQ_OFF; /* as --method rtn gives it */
    CalibJob job = {.model_path = model, .data_path = data, .out_path = art, .quiet = 1};
    CHECK(calibrate_run(&job, &qc, &err) != 0);
    CHECK_MSG(strstr(err.msg, "bits the quantized model is not finite") &&
                  strstr(err.msg, "block 1 tensor w_up"),
              "%s", err.msg);
    CHECK(access(art, F_OK) != 0); /* nothing written */
}

int main(void) {
    scratch_dir(tmpdir, sizeof tmpdir, "numbers");
    test_metrics_refuse_nonfinite();
    test_models_refused_at_open();
    test_sample_refuses_overflow();
    test_artifacts_refused_at_load();
    test_calibration_refuses_overflow();
    scratch_remove(tmpdir);
    CHECK_DONE();
}
