/* Metrics: hand-computed values, and `quept eval` end to end — a model
 * against itself gives KLD 0 and top-1 agreement 1; a perturbed copy gives
 * KLD > 0; bad token ids are refused with a clear message. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "check.h"
#include "data/tokens.h"
#include "eval/metrics.h"
#include "fixtures.h"
#include "model/model.h"

static char tmpdir[256];

static double json_num(cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_metrics_by_hand(void) {
    /* V=2, T=3: logits chosen so the probabilities are simple */
    float lm[6] = {0.0f, 0.0f, (float)log(3.0), 0.0f, 5.0f, 5.0f};          /* model */
    float lr[6] = {(float)log(3.0), 0.0f, (float)log(3.0), 0.0f, 0.f, 0.f}; /* reference */
    int tok[3] = {0, 1, 0};
    EvalAccum a;
    eval_accum_init(&a);
    eval_accum_sequence(&a, lm, lr, tok, 3, 2);
    EvalResult r;
    QErr err;
    CHECK(eval_accum_result(&a, &r, &err) == 0);
    /* predictions: pos0 -> token1 with p=0.5, pos1 -> token0 with p=0.75 */
    double nll = (-log(0.5) - log(0.75)) / 2.0;
    CHECK_CLOSE(r.nll_mean, nll, 1e-6, 0);
    CHECK_CLOSE(r.ppl, exp(nll), 1e-6, 0);
    CHECK(r.tokens == 2);
    /* KL(ref || model): pos0 ref (.75,.25) vs (.5,.5); pos1 identical */
    double kl0 = 0.75 * log(0.75 / 0.5) + 0.25 * log(0.25 / 0.5);
    CHECK_CLOSE(r.kld_mean, kl0 / 2.0, 1e-6, 0);
    CHECK_CLOSE(r.kld_p99, kl0, 1e-6, 0);
    /* pos0: model argmax 0 (tie -> first), ref argmax 0; pos1: both 0 */
    CHECK_CLOSE(r.top1_agree, 1.0, 1e-12, 0);
    eval_accum_free(&a);

    /* nearest-rank p99 over 200 values 1..200 is 198 */
    EvalAccum b;
    eval_accum_init(&b);
    b.kld = malloc(200 * sizeof(double));
    b.cap_kld = b.n_kld = 200;
    for (int i = 0; i < 200; i++) b.kld[i] = 200 - i;
    b.n_pred = 200;
    CHECK(eval_accum_result(&b, &r, &err) == 0);
    CHECK_CLOSE(r.kld_p99, 198.0, 0, 0);
    CHECK_CLOSE(r.kld_mean, 100.5, 1e-9, 0);
    eval_accum_free(&b);
}

int main(void) {
    test_metrics_by_hand();
    char mpath[512];
    shared_path_or_skip("models/stories260K.bin", mpath, sizeof mpath);
    scratch_dir(tmpdir, sizeof tmpdir, "eval");
    char cmd[2048], data[512], pert[512], bad[512];
    snprintf(data, sizeof data, "%s/eval.qtok", tmpdir);
    snprintf(pert, sizeof pert, "%s/perturbed.bin", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.qtok", tmpdir);
    int st;
    snprintf(cmd, sizeof cmd, "%s sample --model %s --n 4 --len 64 --seed 3 --out %s 2>/dev/null", QUEPT_BIN,
             mpath, data);
    free(run_capture(cmd, &st));
    CHECK(st == 0);

    /* a perturbed copy of the model */
    QErr err = {{0}};
    Model m;
    CHECK(model_load(&m, mpath, &err) == 0);
    Rng r;
    rng_seed(&r, 5);
    size_t n = (size_t)m.cfg.hidden_dim * m.cfg.dim;
    for (size_t i = 0; i < n; i++) m.blocks[2].w_up[i] += 0.05f * rng_normal(&r);
    CHECK_MSG(llama2c_write_legacy(pert, &m, &err) == 0, "%s", err.msg);
    model_free(&m);

    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --reference %s --json", QUEPT_BIN, mpath, data,
             mpath);
    char *out = run_capture(cmd, &st);
    CHECK(st == 0);
    cJSON *j = cJSON_Parse(out);
    CHECK_MSG(j != NULL, "eval --json printed '%s'", out);
    if (j) {
        CHECK_CLOSE(json_num(j, "kld_mean"), 0.0, 1e-12, 0);
        CHECK_CLOSE(json_num(j, "kld_p99"), 0.0, 1e-12, 0);
        CHECK_CLOSE(json_num(j, "top1_agree"), 1.0, 0, 0);
        CHECK_CLOSE(json_num(j, "tokens"), 4 * 63, 0, 0);
        double ppl = json_num(j, "ppl");
        CHECK_MSG(ppl > 1.0 && ppl < 512.0, "ppl %g", ppl);
        cJSON_Delete(j);
    }
    free(out);

    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --reference %s --json", QUEPT_BIN, pert, data,
             mpath);
    out = run_capture(cmd, &st);
    CHECK(st == 0);
    j = cJSON_Parse(out);
    CHECK(j != NULL);
    if (j) {
        double kld = json_num(j, "kld_mean"), p99 = json_num(j, "kld_p99");
        printf("perturbed copy: kld_mean %.5f p99 %.5f top1 %.3f\n", kld, p99, json_num(j, "top1_agree"));
        CHECK(kld > 1e-4);
        CHECK(p99 >= kld);
        CHECK(json_num(j, "top1_agree") < 1.0);
        cJSON_Delete(j);
    }
    free(out);

    /* token ids >= vocab: refused, naming the position */
    TokenSet ts = {.n_seq = 1, .seq_len = 8, .vocab_size = 0};
    int ids[8] = {1, 5, 9, 700, 3, 4, 5, 6};
    ts.tokens = ids;
    CHECK(tokens_write(bad, &ts, &err) == 0);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s 2>&1", QUEPT_BIN, mpath, bad);
    out = run_capture(cmd, &st);
    CHECK(st != 0);
    CHECK_MSG(strstr(out, "700") != NULL, "message should name the bad id: %s", out);
    free(out);
    /* sequences longer than the model allows */
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/x.qtok 2>&1", QUEPT_BIN, mpath, tmpdir);
    out = run_capture(cmd, &st);
    CHECK(st != 0);
    free(out);
    scratch_remove(tmpdir);
    CHECK_DONE();
}
