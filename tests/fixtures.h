/* fixtures.h — what several tests build the same way: model configurations
 * with the defaults every test model shares, a random model and the
 * calibration inputs written from it, a scratch directory, a command's
 * output, a model's logits, the bits of a float, and the check the quality
 * runs on stories260K make of an artifact. Each tests/test_*.c is its own
 * executable, so everything here is static inline. */
#ifndef QUEPT_FIXTURES_H
#define QUEPT_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "artifact/elastic.h"
#include "check.h"
#include "eval/sample.h"
#include "model/model.h"
#include "nn/forward.h"
#include "pipeline/calibrate.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* ------------------------------------------------------------ configs */

/* A Llama geometry with what every test model shares: heads of dim / n_heads,
 * RoPE theta 10000 on interleaved pairs (llama2.c), RMSNorm eps 1e-5, no
 * q/k/v biases, the classifier tied to the embeddings. */
static inline ModelConfig llama_config(int dim, int hidden_dim, int n_layers, int n_heads, int n_kv_heads,
                                       int vocab_size, int seq_len) {
    ModelConfig c = {.dim = dim,
                     .hidden_dim = hidden_dim,
                     .n_layers = n_layers,
                     .n_heads = n_heads,
                     .n_kv_heads = n_kv_heads,
                     .head_dim = dim / n_heads,
                     .vocab_size = vocab_size,
                     .seq_len = seq_len,
                     .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f,
                     .tied_classifier = 1};
    return c;
}

/* The tiny model the calibration tests run: dim 32, FFN 48, 4 heads of 8 on
 * 2 KV heads, vocabulary 64, context 32. */
static inline ModelConfig tiny_config(int n_layers) { return llama_config(32, 48, n_layers, 4, 2, 64, 32); }

/* One block with grouped-query heads (4 of 12 on 2), dim 48, FFN 80,
 * vocabulary 16, context T; q/k/v biases and the RoPE convention as asked. */
static inline ModelConfig small_block_config(int T, int bias, int halves) {
    ModelConfig c = llama_config(48, 80, 1, 4, 2, 16, T);
    c.has_qkv_bias = bias;
    c.rope_halves = halves;
    return c;
}

/* The hardening tests' model: dim 32, FFN 64, 2 blocks, 4 heads of 8 on 2,
 * vocabulary 40, context 32, an untied classifier. */
static inline ModelConfig untied_config(void) {
    ModelConfig c = llama_config(32, 64, 2, 4, 2, 40, 32);
    c.tied_classifier = 0;
    return c;
}

/* ------------------------------------------------------------- models */

/* The tiny model of n_layers blocks with random weights from seed
 * (model_free after). */
static inline int tiny_model(Model *m, int n_layers, uint64_t seed) {
    ModelConfig c = tiny_config(n_layers);
    QErr err = {{0}};
    int rc = model_init_random(m, &c, seed, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

/* A calibration's inputs from m: m as a llama2.c checkpoint at model_path
 * and, when data_path is set, n_seq sequences of T tokens sampled from it
 * (temperature 1, seed) as a token file at data_path. */
static inline void write_calib_inputs(const Model *m, const char *model_path, const char *data_path,
                                      int n_seq, int T, uint64_t seed) {
    QErr err = {{0}};
    CHECK_MSG(llama2c_write_legacy(model_path, m, &err) == 0, "%s", err.msg);
    if (data_path)
        CHECK_MSG(sample_to_file(m, n_seq, T, seed, 1.0f, data_path, NULL, NULL, &err) == 0, "%s", err.msg);
}

/* The tiny model (weights seed 11) and n_seq sequences of T tokens sampled
 * from it (seed 3), written for a calibration. */
static inline void write_tiny(const char *model_path, const char *data_path, int n_layers, int n_seq, int T) {
    Model m;
    if (tiny_model(&m, n_layers, 11) != 0) return;
    write_calib_inputs(&m, model_path, data_path, n_seq, T, 3);
    model_free(&m);
}

/* The tiny model's calibration settings: the defaults with groups of 16 at 2,
 * 3 and 4 bits, seed 5, and the given epochs. */
static inline void tiny_quant_config(QuantConfig *qc, int epochs) {
    quant_config_default(qc);
    qc->epochs = epochs;
    qc->min_steps = 0;
    qc->group[2] = qc->group[3] = qc->group[4] = 16;
    qc->seed = 5;
}

/* Calibrates model + data into out with qc (in process, quiet) and loads the
 * artifact into em: 0, or -1 after a failed CHECK naming the error (em then
 * holds nothing). */
static inline int calibrate_and_load(const char *model, const char *data, const char *out,
                                     const QuantConfig *qc, ElasticModel *em) {
    QErr err = {{0}};
    CalibJob job = {.model_path = model, .data_path = data, .out_path = out, .quiet = 1};
    if (calibrate_run(&job, qc, &err) != 0 || elastic_load(em, out, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* Logits of m on B sequences of T tokens (malloc'd; NULL on failure). */
static inline float *logits_of(const Model *m, const int *tok, int B, int T) {
    QErr err;
    ForwardState fs;
    if (forward_state_init(&fs, &m->cfg, B, T, &err) != 0) return NULL;
    model_forward(m, &fs, tok);
    size_t n = (size_t)B * T * m->cfg.vocab_size;
    float *out = malloc(n * sizeof(float));
    if (out) memcpy(out, fs.logits, n * sizeof(float));
    forward_state_free(&fs);
    return out;
}

/* ---------------------------------------------------- files, commands */

/* A fresh directory /tmp/quept_<name>_XXXXXX into dir, or SKIP. */
static inline void scratch_dir(char *dir, size_t n, const char *name) {
    snprintf(dir, n, "/tmp/quept_%s_XXXXXX", name);
    if (!mkdtemp(dir)) SKIP("no temp dir");
}

/* Removes dir and everything below it. */
static inline void scratch_remove(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Runs cmd through the shell: its whole stdout (malloc'd, NUL-terminated; NULL
 * when it could not be started or read), its wait status in *status. */
static inline char *run_capture(const char *cmd, int *status) {
    *status = -1;
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, len = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + len, 1, cap - 1 - len, p)) > 0) {
        len += r;
        if (len + 1 == cap) { /* full: twice the room (the tokenizer's JSON is over 1 MB) */
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    if (buf) buf[len] = 0;
    *status = pclose(p);
    return buf;
}

/* The exit code of a wait status, -1 when the process did not exit. */
static inline int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

/* The path of tests/llama_check/SCRIPT (a node-llama-cpp script) into buf,
 * or SKIP when node or node-llama-cpp is missing (deploy/test.sh installs
 * it). */
static inline void llama_script_or_skip(const char *script, char *buf, size_t n) {
    char mod[1024];
    snprintf(buf, n, "%s/../llama_check/%s", QUEPT_TEST_DATA, script);
    snprintf(mod, sizeof mod, "%s/../llama_check/node_modules/node-llama-cpp/package.json", QUEPT_TEST_DATA);
    int st;
    free(run_capture("node --version > /dev/null 2>&1", &st));
    if (exit_code(st) != 0) SKIP("node not found (apt-get install nodejs npm)");
    if (access(mod, R_OK) != 0)
        SKIP("node-llama-cpp missing: npm install --prefix tests/llama_check (deploy/test.sh)");
}

/* ------------------------------------------------------------ numbers */

/* The float of a bit pattern, and back (the tests' own, not the library's). */
static inline float fbits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t bitsf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ------------------------------------------------ quality on stories260K */

/* A quality run's model (../shared's stories260K.bin), its scratch dir and
 * the calibration data in it. */
typedef struct {
    char model[512], dir[256], data[600];
} QualityRun;

/* SKIPs under ASan (minutes there) or without ../shared; else the scratch dir
 * quept_<name>_* and in it n_seq sequences of T tokens sampled from the model
 * (seed 1). scratch_remove(q->dir) at the end. */
static inline void quality_run_begin(QualityRun *q, const char *name, int n_seq, int T) {
    if (UNDER_ASAN) SKIP("the quality run is Release-only (minutes under ASan)");
    shared_path_or_skip("models/stories260K.bin", q->model, sizeof q->model);
    scratch_dir(q->dir, sizeof q->dir, name);
    snprintf(q->data, sizeof q->data, "%s/calib.qtok", q->dir);
    QErr err = {{0}};
    Model m;
    if (model_load(&m, q->model, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    CHECK(sample_to_file(&m, n_seq, T, 1, 1.0f, q->data, NULL, NULL, &err) == 0);
    model_free(&m);
}

/* Every block's reconstruction loss at every width of em ends strictly below
 * its start (named start: the loss recon starts from), except where the
 * held-out fallback chose the start itself: then equal, and that happens at
 * most max_fallbacks times. With TEQ the fallback's rounding is of the
 * TEQ-transformed block, so there it too must end strictly below the plain
 * start. Prints each, and the number of fallbacks. */
static inline void check_trained_below_start(const ElasticModel *em, const char *start, int max_fallbacks) {
    int n_fallback = 0;
    for (int j = 0; j < em->cfg.n_layers; j++)
        for (int bi = 0; bi < em->qc.n_bits; bi++) {
            const ReconStats *s = &em->stats[j];
            printf("block %d, %d bits: %s %.4f -> %.4f (choice %d)\n", j, em->qc.bits[bi], start,
                   s->loss_rtn[bi], s->loss_final[bi], s->choice[bi]);
            if (s->choice[bi] == QB_RTN && em->qc.teq == TEQ_OFF)
                CHECK(s->loss_final[bi] == s->loss_rtn[bi]);
            else
                CHECK_MSG(s->loss_final[bi] < s->loss_rtn[bi],
                          "block %d, %d bits: final loss %.5f is not below %s %.5f", j, em->qc.bits[bi],
                          s->loss_final[bi], start, s->loss_rtn[bi]);
            n_fallback += s->choice[bi] == QB_RTN;
        }
    printf("%s fallbacks: %d of %d\n", start, n_fallback, em->cfg.n_layers * em->qc.n_bits);
    CHECK_MSG(n_fallback <= max_fallbacks, "%d block-widths fell back to %s", n_fallback, start);
}

#endif
