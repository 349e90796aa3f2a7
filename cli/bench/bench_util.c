#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ModelConfig bench_1b_config(int n_layers, int vocab_size, int rope_halves) {
    ModelConfig c = {.dim = 2048,
                     .hidden_dim = 5632,
                     .n_layers = n_layers,
                     .n_heads = 32,
                     .n_kv_heads = 4,
                     .head_dim = 64,
                     .vocab_size = vocab_size,
                     .seq_len = 2048,
                     .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f,
                     .rope_halves = rope_halves,
                     .tied_classifier = 1};
    return c;
}

double bench_sgemm_gflops(int M, int N, int K, double min_seconds) {
    float *a = malloc(sizeof(float) * (size_t)M * K);
    float *b = malloc(sizeof(float) * (size_t)K * N);
    float *c = malloc(sizeof(float) * (size_t)M * N);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0.0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 5) * 0.01f;
    /* warm-up, then timed repetitions; the same layout as our linears (B^T) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
    int reps = 0;
    double t0 = now_seconds(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        reps++;
        t = now_seconds() - t0;
    } while (t < min_seconds);
    free(a), free(b), free(c);
    return 2.0 * M * N * K * reps / t / 1e9;
}

double block_forward_flops(const ModelConfig *c, int B, int T) {
    double C = c->dim, H = c->hidden_dim;
    double QD = (double)c->n_heads * c->head_dim, KVD = (double)c->n_kv_heads * c->head_dim;
    double per_tok = 2.0 * (C * QD + 2.0 * C * KVD + QD * C + 3.0 * C * H);
    /* QK^T and PV over the causal triangle: T(T+1)/2 pairs per head */
    double attn = 2.0 * 2.0 * c->n_heads * c->head_dim * (double)T * (T + 1) / 2.0;
    return B * (T * per_tok + attn);
}

double head_forward_flops(const ModelConfig *c, int N) { return 2.0 * (double)N * c->dim * c->vocab_size; }

long peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}
