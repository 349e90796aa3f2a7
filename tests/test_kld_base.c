/* test_kld_base.c — llama-perplexity's KL-divergence base file (eval/kld_base)
 * and its scoring (EVAL_SCORE_LLAMA), without llama.cpp (the ctest
 * llama_perplexity checks the files against the real llama-perplexity):
 *  - the written file has the layout of the header comment: size, header,
 *    tokens, and each stored row decodes to the model's log-softmax (first
 *    token replaced by BOS) within half a quantization step;
 *  - a model against its own base: KLD < 1e-6, the two perplexities and
 *    evaluate_model's llama scoring agree;
 *  - a perturbed model: the file's KLD equals KL(P_orig || P_pert) computed
 *    in double precision from the two models' logits (metrics.c), within
 *    the file's quantization;
 *  - refused with a message naming the problem: truncated file, wrong magic,
 *    another vocabulary, chunks longer than the model allows, an id outside
 *    the vocabulary, a model with NaN weights; on the command line an output
 *    that is an input, and --data with --kld-base. */
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "eval/kld_base.h"
#include "fixtures.h"

#define NCHUNK 3
#define T      16

static char dir[256];

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static long fsize(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void copy_prefix(const char *src, const char *dst, long n) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    for (long i = 0; a && b && i < n; i++) {
        int c = fgetc(a);
        if (c == EOF) break;
        fputc(c, b);
    }
    if (a) fclose(a);
    if (b) fclose(b);
}

static void patch_i32(const char *path, long off, int32_t v) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, off, SEEK_SET);
    fwrite(&v, 4, 1, f);
    fclose(f);
}

static void expect_refusal(const char *path, const Model *m, const char *needle) {
    QErr err = {{0}};
    KldBaseResult r;
    int rc = kld_base_compare(path, m, 4, 1, &r, &err);
    CHECK_MSG(rc != 0 && strstr(err.msg, needle), "expected an error with '%s', got rc %d: %s", needle, rc,
              err.msg);
}

int main(void) {
    scratch_dir(dir, sizeof dir, "kld_base");
    char base[512], mpath[512], data[512];
    path_in(base, sizeof base, "base.kld");
    path_in(mpath, sizeof mpath, "m.bin");
    path_in(data, sizeof data, "d.qtok");
    /* the tiny random model is nearly deterministic (logits tens apart): a
     * smaller final norm gives it spread-out distributions worth comparing */
    Model m;
    if (tiny_model(&m, 2, 11) != 0) return 1;
    for (int i = 0; i < m.cfg.dim; i++) m.final_norm[i] *= 0.05f;
    const int V = m.cfg.vocab_size, nv = 2 * ((V + 1) / 2) + 4, R = T - 1 - T / 2;
    write_calib_inputs(&m, mpath, data, NCHUNK, T, 3);
    QErr err = {{0}};
    TokenSet ts;
    CHECK_MSG(tokens_read(data, &ts, &err) == 0, "%s", err.msg);

    /* ---- the file ---- */
    CHECK_MSG(kld_base_write(base, &m, &ts, 2, 1, &err) == 0, "%s", err.msg);
    long want = 20 + 4L * NCHUNK * T + 2L * NCHUNK * R * nv;
    CHECK_MSG(fsize(base) == want, "%ld bytes, expected %ld", fsize(base), want);
    TokenSet back = {0};
    CHECK_MSG(kld_base_read_tokens(base, &back, &err) == 0, "%s", err.msg);
    CHECK(back.n_seq == NCHUNK && back.seq_len == T && back.tokens &&
          memcmp(back.tokens, ts.tokens, sizeof(int) * NCHUNK * T) == 0);
    free(back.tokens);

    /* every stored row decodes to the log-softmax of the BOS-first forward */
    {
        int tok[NCHUNK * T];
        memcpy(tok, ts.tokens, sizeof tok);
        for (int c = 0; c < NCHUNK; c++) tok[c * T] = 1;
        float *z = logits_of(&m, tok, NCHUNK, T);
        FILE *f = fopen(base, "rb");
        uint16_t *row = malloc(sizeof(uint16_t) * nv);
        double *lp = malloc(sizeof(double) * V), worst = 0.0;
        fseek(f, 20 + 4L * NCHUNK * T, SEEK_SET);
        for (int c = 0; c < NCHUNK; c++)
            for (int r = 0; r < R; r++) {
                CHECK(fread(row, sizeof(uint16_t), nv, f) == (size_t)nv);
                float hdr[2];
                memcpy(hdr, row, sizeof hdr);
                log_softmax_row(lp, z + ((size_t)c * T + T / 2 + r) * V, V);
                for (int i = 0; i < V; i++) {
                    if (lp[i] <= hdr[1] + 1e-4) continue; /* at the floor: stored as 0 */
                    double d = fabs(hdr[0] * row[4 + i] + hdr[1] - lp[i]);
                    worst = d > worst ? d : worst;
                    CHECK_MSG(d <= 0.5 * hdr[0] + 1e-5, "chunk %d pos %d token %d: stored %.7f, log p %.7f",
                              c, T / 2 + r, i, hdr[0] * row[4 + i] + hdr[1], lp[i]);
                }
            }
        printf("stored log p: worst error %.3g (half a step is at most %.3g)\n", worst, 0.5 * 16.0 / 65535);
        fclose(f);
        free(row);
        free(lp);
        free(z);
    }

    /* ---- against itself ---- */
    KldBaseResult r;
    CHECK_MSG(kld_base_compare(base, &m, 2, 1, &r, &err) == 0, "%s", err.msg);
    EvalOptions llama = {.scoring = EVAL_SCORE_LLAMA, .bos_id = 1};
    EvalResult er;
    CHECK_MSG(evaluate_model(&m, NULL, &ts, 2, &llama, &er, &err) == 0, "%s", err.msg);
    printf("self: kld %.3g, ppl %.6f, ppl_base %.6f, eval llama %.6f (%ld positions)\n", r.kld_mean, r.ppl,
           r.ppl_base, er.ppl, r.positions);
    CHECK(r.positions == (long)NCHUNK * R && er.tokens == r.positions);
    CHECK(r.kld_mean > -1e-9 && r.kld_mean < 1e-6); /* llama.cpp's sum is not clamped at 0 */
    CHECK(r.top1_agree == 1.0);
    CHECK_CLOSE(r.ppl, er.ppl, 0, 1e-5);
    CHECK_CLOSE(r.ppl_base, er.ppl, 0, 1e-4);

    /* ---- a perturbed model: the file's KLD = KL in double from both models ---- */
    Model p;
    if (tiny_model(&p, 2, 11) != 0) return 1;
    for (int i = 0; i < p.cfg.dim; i++) p.final_norm[i] *= 0.05f;
    for (int j = 0; j < p.cfg.n_layers; j++)
        for (int i = 0; i < p.cfg.dim * p.cfg.hidden_dim; i++)
            p.blocks[j].w_up[i] *= 1.0f + 1.6f * (float)((i * 2654435761u % 1000) / 1000.0 - 0.5);
    CHECK_MSG(kld_base_compare(base, &p, 2, 1, &r, &err) == 0, "%s", err.msg);
    CHECK_MSG(evaluate_model(&p, &m, &ts, 2, &llama, &er, &err) == 0, "%s", err.msg);
    printf("perturbed: file kld %.6f, double-precision kld %.6f; ppl %.4f vs %.4f\n", r.kld_mean, er.kld_mean,
           r.ppl, er.ppl);
    CHECK(er.kld_mean > 1e-4);
    CHECK_CLOSE(r.kld_mean, er.kld_mean, 1e-5, 1e-3);
    CHECK_CLOSE(r.ppl, er.ppl, 0, 1e-5);
    CHECK_CLOSE(r.top1_agree, er.top1_agree, 1e-9, 0);

    /* ---- refusals ---- */
    char bad[512];
    path_in(bad, sizeof bad, "bad.kld");
    copy_prefix(base, bad, want - 7);
    expect_refusal(bad, &m, "bytes");
    copy_prefix(base, bad, 12);
    expect_refusal(bad, &m, "header");
    copy_prefix(base, bad, want);
    patch_i32(bad, 0, 0x676f6c5f); /* "_log" kept, then "its_" broken below */
    patch_i32(bad, 4, 0x5f5f5f5f);
    expect_refusal(bad, &m, "_logits_");
    copy_prefix(base, bad, want);
    patch_i32(bad, 20 + 4 * 5, V + 3);
    expect_refusal(bad, &m, "outside the vocabulary");
    {
        ModelConfig c = m.cfg;
        c.vocab_size = V + 1;
        Model o;
        CHECK(model_init_random(&o, &c, 1, &err) == 0);
        expect_refusal(base, &o, "vocabulary");
        model_free(&o);
        c = m.cfg;
        c.seq_len = T / 2;
        CHECK(model_init_random(&o, &c, 1, &err) == 0);
        expect_refusal(base, &o, "allows");
        model_free(&o);
    }
    p.blocks[1].w_down[5] = NAN;
    expect_refusal(base, &p, "NaN");
    char other[512];
    path_in(other, sizeof other, "nan.kld");
    CHECK(kld_base_write(other, &p, &ts, 2, 1, &err) != 0 && strstr(err.msg, "NaN"));
    CHECK_MSG(access(other, F_OK) != 0, "a refused base file was left behind");

    /* ---- the command line ---- */
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --kld-base-out %s 2>&1", QUEPT_BIN, mpath, data,
             data);
    char *out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 2 && out && strstr(out, "--kld-base-out"), "output = input: %s",
              out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --kld-base %s 2>&1", QUEPT_BIN, mpath, data,
             base);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 2 && out && strstr(out, "own tokens"), "--data with --kld-base: %s",
              out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --kld-base %s --json", QUEPT_BIN, mpath, base);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 0 && out && strstr(out, "\"ppl_base\"") && strstr(out, "\"top1_agree\": 1,"),
              "eval --kld-base --json: %s", out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --score sideways 2>&1", QUEPT_BIN, mpath, data);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 2 && out && strstr(out, "--score"), "--score sideways: %s", out ? out : "");
    free(out);

    model_free(&p);
    model_free(&m);
    tokens_free(&ts);
    scratch_remove(dir);
    return check_failures ? 1 : 0;
}
