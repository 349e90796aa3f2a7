/* test_llama_cpp.c — real llama.cpp runs quept's GGUF exports and agrees with
 * quept on the same switched weights.
 *
 * stories260K is calibrated (2 epochs, 16 x 64 tokens), then for every width
 * 2..8 the artifact is exported with `quept export --format gguf` (the auto
 * type: Q4_1 up to 4 bits, Q5_1 at 5, Q8_0 at 6-7, F16 at 8; ffn_down,
 * whose 172-wide rows fit no 32-block, stays F16). llama.cpp — node-llama-cpp
 * 3.22.1's prebuilt CPU build, through tests/llama_check/logits.mjs — loads
 * each file and returns its logits on held-out QTOK token ids fed as ids.
 * quept's logits come from elastic_switch at the same width. Per width:
 *   KLD(quept || llama.cpp), mean over all positions;
 *   top-1 agreement;
 *   perplexity of each (next-token NLL over positions 0..T-2).
 * Tolerances, from what llama.cpp's CPU kernels do: an F16 weight meets
 * F16-rounded activations, a Q4_1/Q5_1/Q8_0 weight activations quantized to
 * 8 bits (Q8_0/Q8_1 blocks of 32) — the codes themselves are exact (test_export
 * dequantizes every GGUF block back to the switched weights bitwise), so the
 * two differ by activation rounding only. Measured on 2026-12-06 (this seed,
 * the defaults of issue 13: TEQ and the fallback's GPTQ candidate on):
 *   bits  type   KLD(quept||llama.cpp)  PPL quept  PPL llama.cpp
 *     8   F16    5.9e-05                22.591     22.613
 *     7   Q8_0   0.0099                 23.122     23.198
 *     6   Q8_0   0.0108                 27.567     27.640
 *     5   Q5_1   0.0120                 46.717     48.106
 *     4   Q4_1   0.0122                 153.18     152.36
 *     3   Q4_1   0.0147                 620.17     635.71
 *     2   Q4_1   0.0384                 12369      12312
 * A rotated artifact (--rotate hadamard) goes out as F16 only, its online
 * down_proj transform folded into the weights: llama.cpp runs it with no
 * transform at all and agrees with quept's switched model, which applies
 * it online (RTN W4: KLD 8.4e-05, PPL 179.39 vs 179.39; same tolerance as F16).
 * Checked at 1.5-8x the worst of these: F16 mean KLD <= 5e-4 and PPL
 * within 0.2 %; the block types mean KLD <= 0.06 and PPL within 8 % (a
 * small logit shift moves the perplexity of a poor model a lot; the KLD is
 * the measure). File
 * sizes never grow as the width drops (2, 3 and 4 bits are all Q4_1 today:
 * the same size, issue 14's K-quants are what would shrink them).
 * Skips (77) with a message when node or tests/llama_check/node_modules is
 * missing (`npm install --prefix tests/llama_check`, run by deploy/test.sh),
 * or when ../shared's model is absent. */
#include <string.h>
#include <sys/stat.h>

#include "artifact/elastic.h"
#include "artifact/switch.h"
#include "check.h"
#include "eval/metrics.h"
#include "fixtures.h"

#define N_EVAL 4
#define T_EVAL 64

/* A llama2.c tokenizer.bin of n tokens (tests/llama_check/id_vocab.pl):
 * llama.cpp needs a vocabulary to load the file; the test feeds ids, so the
 * pieces themselves do not matter. */
static int write_id_tokenizer(const char *path, int n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "perl %s/../llama_check/id_vocab.pl tokenizer %d %s", QUEPT_TEST_DATA, n, path);
    return system(cmd) == 0 ? 0 : -1;
}

static float *read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *x = malloc(n * sizeof(float));
    size_t got = x ? fread(x, sizeof(float), n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) {
        free(x);
        return NULL;
    }
    return x;
}

typedef struct {
    double kld_mean, top1, ppl_quept, ppl_llama;
} Agreement;

static Agreement compare(const float *zq, const float *zl, const int *tok, int B, int T, int V) {
    Agreement a = {0};
    double *lq = malloc(sizeof(double) * V), *ll = malloc(sizeof(double) * V);
    double nll_q = 0, nll_l = 0;
    int n = 0, agree = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = ((size_t)b * T + t) * V;
            log_softmax_row(lq, zq + row, V);
            log_softmax_row(ll, zl + row, V);
            int aq = 0, al = 0;
            for (int i = 0; i < V; i++) {
                if (lq[i] > lq[aq]) aq = i;
                if (ll[i] > ll[al]) al = i;
            }
            a.kld_mean += kl_divergence(lq, ll, V);
            agree += aq == al;
            n++;
            if (t + 1 < T) {
                int next = tok[b * T + t + 1];
                nll_q -= lq[next];
                nll_l -= ll[next];
            }
        }
    a.kld_mean /= n;
    a.top1 = (double)agree / n;
    a.ppl_quept = exp(nll_q / (B * (T - 1)));
    a.ppl_llama = exp(nll_l / (B * (T - 1)));
    free(lq);
    free(ll);
    return a;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

int main(void) {
    char script[1024];
    llama_script_or_skip("logits.mjs", script, sizeof script);
    int st;
    char model[1024];
    shared_path_or_skip("models/stories260K.bin", model, sizeof model);

    char dir[256], calib[512], eval[512], art[512], tokbin[512], cmd[8192];
    scratch_dir(dir, sizeof dir, "llama_cpp");
    snprintf(calib, sizeof calib, "%s/calib.qtok", dir);
    snprintf(eval, sizeof eval, "%s/eval.qtok", dir);
    snprintf(art, sizeof art, "%s/a.qept", dir);
    snprintf(tokbin, sizeof tokbin, "%s/tok512.bin", dir);

    QErr err = {{0}};
    Model m;
    CHECK_MSG(model_load(&m, model, &err) == 0, "%s", err.msg);
    const int V = m.cfg.vocab_size;
    CHECK(write_id_tokenizer(tokbin, V) == 0);
    CHECK(sample_to_file(&m, 16, 64, 1, 1.0f, calib, NULL, NULL, &err) == 0);
    CHECK(sample_to_file(&m, N_EVAL, T_EVAL, 9, 1.0f, eval, NULL, NULL, &err) ==
          0); /* held out: another seed */
    model_free(&m);
    TokenSet ts;
    CHECK_MSG(tokens_read(eval, &ts, &err) == 0, "%s", err.msg);

    QuantConfig qc;
    quant_config_default(&qc);
    qc.epochs = 2;
    qc.min_steps = 0; /* exactly 2 epochs: the agreement does not need a good calibration */
    ElasticModel em;
    if (check_failures || calibrate_and_load(model, calib, art, &qc, &em) != 0) {
        scratch_remove(dir);
        return 1;
    }

    printf("llama.cpp (node-llama-cpp 3.22.1, CPU) vs quept on the same switched weights, stories260K, "
           "%d x %d held-out tokens\n",
           N_EVAL, T_EVAL);
    printf("bits  file bytes  KLD(quept||llama.cpp)  top-1   PPL quept  PPL llama.cpp  types\n");
    long prev_size = -1;
    Model q = {0}; /* allocated by the first switch, reused by the next */
    for (int bits = 8; bits >= 2; bits--) {
        char gguf[600], lg[600];
        snprintf(gguf, sizeof gguf, "%s/b%d.gguf", dir, bits);
        snprintf(lg, sizeof lg, "%s/b%d.f32", dir, bits);
        snprintf(cmd, sizeof cmd, "%s export %s --bits %d --format gguf --tokenizer %s --out %s 2>&1",
                 QUEPT_BIN, art, bits, tokbin, gguf);
        char *out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "export at %d bits: %s", bits, out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd, "node %s %s %s %s 2>&1", script, gguf, eval, lg);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "llama.cpp on the %d-bit file: %s", bits, out ? out : "");
        char types[128] = "?";
        const char *tt = out ? strstr(out, "\"tensor_types\":") : NULL;
        if (tt) snprintf(types, sizeof types, "%.*s", (int)strcspn(tt + 15, "}"), tt + 15);
        free(out);
        float *zl = read_floats(lg, (size_t)N_EVAL * T_EVAL * V);
        CHECK_MSG(zl != NULL, "%s: not %d x %d x %d floats", lg, N_EVAL, T_EVAL, V);

        int bl[64];
        for (int j = 0; j < em.cfg.n_layers; j++) bl[j] = bits;
        CHECK_MSG(elastic_switch(&em, bl, &q, &err) == 0, "%s", err.msg);
        /* embeddings, final norm and head are the base's (not quantized) */
        q.tok_emb = em.base.tok_emb, q.final_norm = em.base.final_norm, q.classifier = em.base.classifier;
        float *zq = logits_of(&q, ts.tokens, N_EVAL, T_EVAL);
        if (!zl || !zq) {
            free(zl);
            free(zq);
            continue;
        }
        Agreement a = compare(zq, zl, ts.tokens, N_EVAL, T_EVAL, V);
        long size = file_size(gguf);
        printf("%4d  %10ld  %21.3g  %5.3f  %9.3f  %13.3f  %s\n", bits, size, a.kld_mean, a.top1, a.ppl_quept,
               a.ppl_llama, types);
        double rel = fabs(a.ppl_llama - a.ppl_quept) / a.ppl_quept;
        const int f16 = bits == 8; /* the auto type at 8 bits is F16 throughout */
        CHECK_MSG(isfinite(a.kld_mean) && a.kld_mean <= (f16 ? 5e-4 : 0.06), "%d bits: mean KLD %g", bits,
                  a.kld_mean);
        CHECK_MSG(rel <= (f16 ? 2e-3 : 8e-2), "%d bits: PPL %.4f (quept) vs %.4f (llama.cpp)", bits,
                  a.ppl_quept, a.ppl_llama);
        CHECK_MSG(prev_size < 0 || size <= prev_size, "%d bits: %ld bytes, more than the wider file's %ld",
                  bits, size, prev_size);
        prev_size = size;
        free(zl);
        free(zq);
    }
    /* the full-precision model (quept export --model): F16 linears, what
     * llama-quantize takes; llama.cpp's logits against quept's fp32 ones */
    {
        char fp[600], lg[600];
        snprintf(fp, sizeof fp, "%s/fp.gguf", dir);
        snprintf(lg, sizeof lg, "%s/fp.f32", dir);
        snprintf(cmd, sizeof cmd, "%s export --model %s --format gguf --tokenizer %s --out %s 2>&1",
                 QUEPT_BIN, model, tokbin, fp);
        char *out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "export --model: %s", out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd, "node %s %s %s %s 2>&1", script, fp, eval, lg);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0 && out && strstr(out, "\"tensor_types\":[0,1]"),
                  "llama.cpp on the full-precision file (F32 norms, F16 rest): %s", out ? out : "");
        free(out);
        float *zl = read_floats(lg, (size_t)N_EVAL * T_EVAL * V),
              *zq = logits_of(&em.base, ts.tokens, N_EVAL, T_EVAL);
        if (zl && zq) {
            Agreement a = compare(zq, zl, ts.tokens, N_EVAL, T_EVAL, V);
            printf("full precision (export --model): %ld bytes, KLD %.3g, PPL %.3f vs %.3f\n", file_size(fp),
                   a.kld_mean, a.ppl_quept, a.ppl_llama);
            CHECK_MSG(a.kld_mean <= 5e-4, "full precision: mean KLD %g", a.kld_mean);
        }
        free(zl);
        free(zq);
        /* no widths, no quantized types for a plain model */
        snprintf(cmd, sizeof cmd, "%s export --model %s --bits 4 --format gguf --out %s/x.gguf 2>&1",
                 QUEPT_BIN, model, dir);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 2, "export --model --bits: exit %d: %s", exit_code(st), out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd, "%s export --model %s --gguf-type q4_1 --format gguf --out %s/x.gguf 2>&1",
                 QUEPT_BIN, model, dir);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "full-precision weights only"),
                  "export --model --gguf-type q4_1: exit %d: %s", exit_code(st), out ? out : "");
        free(out);
    }
    /* a rotated artifact (--rotate hadamard, RTN at 4 bits): only F16, the
     * weights dequantized and the online down_proj transform folded back;
     * llama.cpp runs it without any transform and agrees with quept's
     * switched model, which applies the transform online */
    {
        char rot[600], gg[600], lg[600];
        snprintf(rot, sizeof rot, "%s/rot.qept", dir);
        snprintf(gg, sizeof gg, "%s/rot4.gguf", dir);
        snprintf(lg, sizeof lg, "%s/rot4.f32", dir);
        snprintf(cmd, sizeof cmd,
                 "%s calibrate --model %s --data %s --out %s --method rtn --rotate hadamard --bits 4,8 "
                 "--quiet 2>&1 "
                 "&& %s export %s --bits 4 --format gguf --tokenizer %s --out %s 2>&1",
                 QUEPT_BIN, model, calib, rot, QUEPT_BIN, rot, tokbin, gg);
        char *out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "--gguf-type f16") && access(gg, F_OK) != 0,
                  "rotated artifact, auto GGUF type: exit %d: %s", exit_code(st), out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd,
                 "%s export %s --bits 4 --format gguf --gguf-type f16 --tokenizer %s --out %s 2>&1 && node "
                 "%s %s %s %s "
                 "2>&1",
                 QUEPT_BIN, rot, tokbin, gg, script, gg, eval, lg);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "rotated artifact as F16 GGUF in llama.cpp: %s", out ? out : "");
        free(out);
        ElasticModel er;
        Model qr = {0};
        int b4[64];
        for (int j = 0; j < 64; j++) b4[j] = 4;
        float *zl = read_floats(lg, (size_t)N_EVAL * T_EVAL * V), *zq = NULL;
        if (elastic_load(&er, rot, &err) == 0) {
            if (elastic_switch(&er, b4, &qr, &err) == 0) {
                qr.tok_emb = er.base.tok_emb, qr.final_norm = er.base.final_norm,
                qr.classifier = er.base.classifier;
                zq = logits_of(&qr, ts.tokens, N_EVAL, T_EVAL);
                qr.tok_emb = qr.final_norm = qr.classifier = NULL;
            }
            model_free(&qr);
            elastic_free(&er);
        }
        CHECK_MSG(zl && zq, "rotated: logits missing (%s)", err.msg);
        if (zl && zq) {
            Agreement a = compare(zq, zl, ts.tokens, N_EVAL, T_EVAL, V);
            printf(
                "rotated RTN W4 as F16 GGUF (transform folded) vs quept (transform online): %ld bytes, KLD "
                "%.3g, PPL %.3f vs %.3f\n",
                file_size(gg), a.kld_mean, a.ppl_quept, a.ppl_llama);
            CHECK_MSG(a.kld_mean <= 5e-4, "rotated F16: mean KLD %g", a.kld_mean);
        }
        free(zl);
        free(zq);
    }
    /* a truncated file: llama.cpp refuses it, the script says so and fails */
    char cut[600];
    snprintf(cut, sizeof cut, "%s/cut.gguf", dir);
    snprintf(cmd, sizeof cmd, "head -c 100000 %s/b8.gguf > %s && node %s %s %s %s/cut.f32 2>&1", dir, cut,
             script, cut, eval, dir);
    char *out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "could not load"), "truncated GGUF: exit %d: %s",
              exit_code(st), out ? out : "");
    free(out);

    q.tok_emb = q.final_norm = q.classifier = NULL; /* the base's: not ours to free */
    model_free(&q);
    elastic_free(&em);
    free(ts.tokens);
    scratch_remove(dir);
    return check_failures ? 1 : 0;
}
