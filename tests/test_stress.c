/* quept stress (model/stress.h):
 *  - activation outliers are function-preserving: on stories260K, alpha = 32
 *    (a power of two: every product is exact) gives bit-identical logits; a
 *    non-power-of-two alpha (3.7) gives mean KLD < 1e-6 to the original and
 *    the same perplexity (relative difference < 1e-5) on 8 sampled sequences;
 *    the norm weights hold exactly K channels x alpha per norm and layer, and
 *    wq/wk/wv (w1/w3) the matching columns / alpha, nothing else changed;
 *  - weight outliers: each chosen linear holds exactly round(FRAC x entries)
 *    entries x F, the other tensors are bitwise unchanged;
 *  - padding is function-preserving: dim 32 -> 128 / 48 and FFN 48 -> 64 /
 *    48 on an HF model with biases, and stories260K padded to 256/256
 *    (written as an HF directory), each mean KLD < 1e-9 to the original (not
 *    bitwise: sgemm sums a longer inner dimension in another order; measured
 *    3e-14 to 1.4e-11); the padded entries are zero and the norms scaled by
 *    sqrt(C / C2) exactly; narrowing is refused;
 *  - the HF format round-trips (a random model as an HF directory in, an HF
 *    directory out, the same function);
 *  - bad arguments are refused by the command (usage errors exit 2; an
 *    output naming the input exits non-zero and leaves the input as it was). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "eval/evaluate.h"
#include "eval/sample.h"
#include "fixtures.h"
#include "model/stress.h"

/* Mean KL(P_a || P_b) over rows of V logits. */
static double mean_kld(const float *a, const float *b, size_t rows, int V) {
    double sum = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *x = a + r * V, *y = b + r * V;
        double mx = x[0], my = y[0], zx = 0.0, zy = 0.0;
        for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx, my = y[v] > my ? y[v] : my;
        for (int v = 0; v < V; v++) zx += exp(x[v] - mx), zy += exp(y[v] - my);
        double kl = 0.0;
        for (int v = 0; v < V; v++) {
            double lp = x[v] - mx - log(zx), lq = y[v] - my - log(zy);
            kl += exp(lp) * (lp - lq);
        }
        sum += kl;
    }
    return sum / (double)rows;
}

/* Entries of n floats where a and b differ (bitwise). */
static long n_diff(const float *a, const float *b, size_t n) {
    long k = 0;
    for (size_t i = 0; i < n; i++) k += bitsf(a[i]) != bitsf(b[i]);
    return k;
}

/* Logits of a and b on ts: mean KL(a || b) into *kld, the number of logits
 * that differ bitwise into *nd (of *n). 0, or -1 when out of memory. */
static int compare_logits(const Model *a, const Model *b, const TokenSet *ts, double *kld, long *nd,
                          size_t *n) {
    const int B = ts->n_seq, T = ts->seq_len, V = a->cfg.vocab_size;
    float *la = logits_of(a, ts->tokens, B, T), *lb = logits_of(b, ts->tokens, B, T);
    int rc = la && lb ? 0 : -1;
    if (rc == 0) {
        *n = (size_t)B * T * V;
        *kld = mean_kld(la, lb, (size_t)B * T, V);
        *nd = n_diff(la, lb, *n);
    }
    free(la);
    free(lb);
    return rc;
}

/* The activation-outlier variant of the model at path, written to out and
 * compared with the original: logits on ts, and every tensor's change. */
static void check_act_variant(const char *path, const char *out, float alpha, int K, int exact) {
    QErr err = {{0}};
    StressConfig sc;
    stress_config_default(&sc);
    sc.channels = K;
    sc.alpha = alpha;
    sc.seed = 7;
    StressReport rep;
    int rc = stress_write_model(path, out, &sc, &rep, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return;
    Model a, b;
    CHECK(model_load(&a, path, &err) == 0);
    CHECK_MSG(model_load(&b, out, &err) == 0, "%s", err.msg);
    const ModelConfig *c = &a.cfg;
    CHECK(rep.channels_scaled == 2L * K * c->n_layers);
    size_t C = c->dim, H = c->hidden_dim, QD = (size_t)c->n_heads * c->head_dim,
           KVD = (size_t)c->n_kv_heads * c->head_dim;
    for (int j = 0; j < c->n_layers; j++) {
        const BlockWeights *x = &a.blocks[j], *y = &b.blocks[j];
        /* norms: K channels, each exactly alpha times; readers: those columns only */
        int n_attn = 0, n_mlp = 0;
        for (size_t i = 0; i < C; i++) {
            if (bitsf(x->attn_norm[i]) != bitsf(y->attn_norm[i])) {
                n_attn++;
                CHECK(y->attn_norm[i] == x->attn_norm[i] * alpha);
                for (size_t o = 0; o < QD; o++) CHECK(y->wq[o * C + i] == x->wq[o * C + i] / alpha);
            }
            if (bitsf(x->mlp_norm[i]) != bitsf(y->mlp_norm[i])) {
                n_mlp++;
                for (size_t o = 0; o < H; o++) CHECK(y->w_up[o * C + i] == x->w_up[o * C + i] / alpha);
            }
        }
        CHECK_MSG(n_attn == K && n_mlp == K, "layer %d: %d / %d channels changed, expected %d", j, n_attn,
                  n_mlp, K);
        /* every column changed belongs to a chosen channel: K columns' worth at most */
        CHECK(n_diff(x->wq, y->wq, QD * C) <= (long)(K * QD));
        CHECK(n_diff(x->wk, y->wk, KVD * C) <= (long)(K * KVD));
        CHECK(n_diff(x->wv, y->wv, KVD * C) <= (long)(K * KVD));
        CHECK(n_diff(x->w_gate, y->w_gate, H * C) <= (long)(K * H));
        CHECK(n_diff(x->w_up, y->w_up, H * C) <= (long)(K * H));
        CHECK(n_diff(x->wo, y->wo, C * QD) == 0);
        CHECK(n_diff(x->w_down, y->w_down, C * H) == 0);
    }
    /* the same function */
    TokenSet ts;
    int B = 8, T = c->seq_len < 128 ? c->seq_len : 128;
    CHECK(sample_sequences(&a, B, T, 5, 1.0f, &ts, NULL, NULL, &err) == 0);
    double kld;
    long nd;
    size_t n;
    const int ok = compare_logits(&a, &b, &ts, &kld, &nd, &n) == 0;
    CHECK(ok);
    if (ok) {
        printf("alpha %g, %d channels: mean KLD %.3g, %ld of %zu logits differ\n", (double)alpha, K, kld, nd,
               n);
        CHECK_MSG(kld < 1e-6, "mean KLD %.3g to the original", kld);
        if (exact) CHECK_MSG(nd == 0, "alpha %g is a power of two, yet %ld logits differ", (double)alpha, nd);
        EvalResult ra, rb;
        CHECK(evaluate_model(&a, NULL, &ts, 4, NULL, &ra, &err) == 0);
        CHECK(evaluate_model(&b, &a, &ts, 4, NULL, &rb, &err) == 0);
        CHECK_MSG(fabs(ra.ppl - rb.ppl) <= 1e-5 * ra.ppl, "PPL %.6f vs %.6f", ra.ppl, rb.ppl);
        CHECK_MSG(rb.kld_mean < 1e-6, "evaluate: mean KLD %.3g", rb.kld_mean);
    }
    tokens_free(&ts);
    model_free(&a);
    model_free(&b);
}

static void check_weight_outliers(const char *path, const char *out) {
    QErr err = {{0}};
    StressConfig sc;
    stress_config_default(&sc);
    sc.wo_frac = 0.01;
    sc.wo_factor = 20.0f;
    CHECK(stress_parse_linears("w2,wq", &sc.wo_linears, &err) == 0);
    StressReport rep;
    int rc = stress_write_model(path, out, &sc, &rep, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return;
    Model a, b;
    CHECK(model_load(&a, path, &err) == 0);
    CHECK(model_load(&b, out, &err) == 0);
    const ModelConfig *c = &a.cfg;
    size_t C = c->dim, H = c->hidden_dim, QD = (size_t)c->n_heads * c->head_dim,
           KVD = (size_t)c->n_kv_heads * c->head_dim;
    long want_down = lround(0.01 * (double)(C * H)), want_q = lround(0.01 * (double)(QD * C));
    CHECK(rep.entries_scaled == (want_down + want_q) * c->n_layers);
    for (int j = 0; j < c->n_layers; j++) {
        const BlockWeights *x = &a.blocks[j], *y = &b.blocks[j];
        long nd = 0, nq = 0;
        for (size_t i = 0; i < C * H; i++)
            if (bitsf(x->w_down[i]) != bitsf(y->w_down[i])) {
                nd++;
                CHECK(y->w_down[i] == x->w_down[i] * 20.0f);
            }
        for (size_t i = 0; i < QD * C; i++) nq += bitsf(x->wq[i]) != bitsf(y->wq[i]);
        CHECK_MSG(nd == want_down && nq == want_q, "layer %d: %ld / %ld entries changed, expected %ld / %ld",
                  j, nd, nq, want_down, want_q);
        CHECK(n_diff(x->wk, y->wk, KVD * C) == 0 && n_diff(x->wv, y->wv, KVD * C) == 0);
        CHECK(n_diff(x->wo, y->wo, C * QD) == 0 && n_diff(x->w_up, y->w_up, H * C) == 0);
        CHECK(n_diff(x->w_gate, y->w_gate, H * C) == 0);
        CHECK(n_diff(x->attn_norm, y->attn_norm, C) == 0 && n_diff(x->mlp_norm, y->mlp_norm, C) == 0);
    }
    CHECK(n_diff(a.tok_emb, b.tok_emb, (size_t)c->vocab_size * C) == 0);
    model_free(&a);
    model_free(&b);
}

/* model at path padded to (dim_to, ffn_to) via out: the same logits, zero
 * padding, scaled norms. */
static void check_pad(const char *path, const char *out, int dim_to, int ffn_to) {
    QErr err = {{0}};
    StressConfig sc;
    stress_config_default(&sc);
    sc.pad_dim = dim_to, sc.pad_ffn = ffn_to;
    int rc = stress_write_model(path, out, &sc, NULL, &err);
    CHECK_MSG(rc == 0, "pad %d/%d: %s", dim_to, ffn_to, err.msg);
    if (rc != 0) return;
    Model a, b;
    CHECK(model_load(&a, path, &err) == 0);
    CHECK_MSG(model_load(&b, out, &err) == 0, "%s", err.msg);
    const ModelConfig *c = &a.cfg;
    CHECK(b.cfg.dim == dim_to && b.cfg.hidden_dim == ffn_to && b.cfg.head_dim == c->head_dim);
    const int C = c->dim, C2 = dim_to, H = c->hidden_dim, H2 = ffn_to;
    const float s = (float)sqrt((double)C / C2);
    long bad = 0;
    for (int j = 0; j < c->n_layers; j++) {
        const BlockWeights *x = &a.blocks[j], *y = &b.blocks[j];
        for (int i = 0; i < C2; i++) bad += y->attn_norm[i] != (i < C ? x->attn_norm[i] * s : 0.0f);
        for (int o = 0; o < H2; o++) /* up: (H2, C2), zero outside (H, C) */
            for (int i = 0; i < C2; i++)
                bad += y->w_up[(size_t)o * C2 + i] != (o < H && i < C ? x->w_up[(size_t)o * C + i] : 0.0f);
        for (int o = 0; o < C2; o++) /* down: (C2, H2) */
            for (int i = 0; i < H2; i++)
                bad +=
                    y->w_down[(size_t)o * H2 + i] != (o < C && i < H ? x->w_down[(size_t)o * H + i] : 0.0f);
    }
    CHECK_MSG(bad == 0, "pad %d/%d: %ld entries are not the original's, zero or the scaled norm", C2, H2,
              bad);
    TokenSet ts;
    int B = 4, T = c->seq_len < 64 ? c->seq_len : 64;
    CHECK(sample_sequences(&a, B, T, 5, 1.0f, &ts, NULL, NULL, &err) == 0);
    double kld;
    long nd;
    size_t n;
    const int ok = compare_logits(&a, &b, &ts, &kld, &nd, &n) == 0;
    CHECK(ok);
    if (ok) {
        printf("padded %dx%d -> %dx%d: mean KLD %.3g, %ld of %zu logits differ\n", C, H, C2, H2, kld, nd, n);
        CHECK_MSG(kld < 1e-9, "padded: mean KLD %.3g to the original", kld);
    }
    tokens_free(&ts);
    model_free(&a);
    model_free(&b);
}

/* Runs `quept stress ARGS` and returns its exit code. */
static int stress_cmd(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s stress %s 2>&1", QUEPT_BIN, args);
    int st;
    char *o = run_capture(cmd, &st);
    printf("$ quept stress %s\n%s", args, o ? o : "");
    free(o);
    return exit_code(st);
}

static void check_cli(const char *model, const char *dir) {
    char a[4096], out[600], copy[600];
    snprintf(out, sizeof out, "%s/cli.bin", dir);
    snprintf(copy, sizeof copy, "%s/copy.bin", dir);
    /* a copy of the model stands for the input that must survive */
    snprintf(a, sizeof a, "cp %s %s", model, copy);
    CHECK(system(a) == 0);
    struct stat s0, s1;
    CHECK(stat(copy, &s0) == 0);
    snprintf(a, sizeof a, "--model %s --out %s --channels 4 --alpha 32", copy, copy);
    CHECK(stress_cmd(a) != 0);
    CHECK(stat(copy, &s1) == 0 && s1.st_mtime == s0.st_mtime && s1.st_size == s0.st_size);
    const char *bad[] = {
        "--channels 4 --alpha 32",                         /* no --model / --out */
        "--channels 4",                                    /* --alpha missing */
        "--channels 100000 --alpha 2",                     /* more channels than dim */
        "--channels 4 --alpha 0",                          /* alpha must be > 0 */
        "--weight-outliers 0.01",                          /* --factor missing */
        "--weight-outliers 1.5 --factor 20",               /* not a fraction */
        "--weight-outliers 0.01 --factor 20 --linears w9", /* unknown linear */
        "",                                                /* nothing to do */
        "--channels 4 --alpha 32 --bogus 1",               /* unknown option */
        "--pad-dim 16",                                    /* narrower than dim 64 */
        "--pad-ffn 100",                                   /* narrower than FFN 172 */
        "--pad-dim 0",                                     /* not a width */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (i == 0)
            snprintf(a, sizeof a, "%s", bad[i]);
        else
            snprintf(a, sizeof a, "--model %s --out %s %s", copy, out, bad[i]);
        int rc = stress_cmd(a);
        CHECK_MSG(rc == 2, "'%s': exit %d, expected 2 (usage)", bad[i], rc);
        CHECK_MSG(access(out, F_OK) != 0, "'%s' wrote %s", bad[i], out);
    }
    snprintf(a, sizeof a, "--help");
    CHECK(stress_cmd(a) == 0);
    snprintf(a, sizeof a, "--model %s --out %s --channels 4 --alpha 32 --weight-outliers 0.001 --factor 20",
             copy, out);
    CHECK(stress_cmd(a) == 0 && access(out, F_OK) == 0);
}

int main(void) {
    char dir[256], out[700], hf_in[400], hf_out[400], model[512];
    scratch_dir(dir, sizeof dir, "stress");
    QErr err = {{0}};

    /* HF in, HF out: a random GQA model with q/k/v biases and half-rotation RoPE */
    Model m;
    ModelConfig c = llama_config(32, 48, 2, 4, 2, 64, 32);
    c.has_qkv_bias = 1;
    c.rope_halves = 1;
    c.tied_classifier = 0;
    CHECK(model_init_random(&m, &c, 3, &err) == 0);
    snprintf(hf_in, sizeof hf_in, "%s/hf_in", dir);
    snprintf(hf_out, sizeof hf_out, "%s/hf_out", dir);
    CHECK_MSG(hf_write_dir(hf_in, &m, 0, &err) == 0, "%s", err.msg);
    model_free(&m);
    check_act_variant(hf_in, hf_out, 16.0f, 3, 1);
    /* an HF output inside the HF input is refused */
    StressConfig sc;
    stress_config_default(&sc);
    sc.channels = 1;
    sc.alpha = 2.0f;
    snprintf(out, sizeof out, "%s/inside", hf_in);
    CHECK(stress_write_model(hf_in, out, &sc, NULL, &err) != 0);
    printf("refused: %s\n", err.msg);
    snprintf(out, sizeof out, "%s/pad128", dir);
    check_pad(hf_in, out, 128, 64);
    snprintf(out, sizeof out, "%s/pad48", dir);
    check_pad(hf_in, out, 48, 48);

    /* stories260K (llama2.c) */
    shared_path_or_skip("models/stories260K.bin", model, sizeof model);
    snprintf(out, sizeof out, "%s/act32.bin", dir);
    check_act_variant(model, out, 32.0f, 4, 1);
    snprintf(out, sizeof out, "%s/act3.bin", dir);
    check_act_variant(model, out, 3.7f, 8, 0);
    snprintf(out, sizeof out, "%s/wo.bin", dir);
    check_weight_outliers(model, out);
    snprintf(out, sizeof out, "%s/pad256", dir);
    check_pad(model, out, 256, 256);
    check_cli(model, dir);
    scratch_remove(dir);
    CHECK_DONE();
}
