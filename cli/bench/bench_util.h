/* bench_util.h — timing and the machine's own reference figures, measured in
 * the same run as the thing being benchmarked. */
#ifndef QUEPT_BENCH_UTIL_H
#define QUEPT_BENCH_UTIL_H

#include "base/numeric.h"
#include "model/model.h"

/* The blocks of a 1B-class Llama (TinyLlama-1.1B's shapes: dim 2048, FFN
 * 5632, 32 heads of 64 on 4 KV heads, context 2048), n_layers of them, with
 * the vocabulary and RoPE convention given: what the benchmarks time. */
ModelConfig bench_1b_config(int n_layers, int vocab_size, int rope_halves);

/* Achieved GFLOP/s of cblas_sgemm on an (M,K) x (K,N) product, repeated for at
 * least min_seconds. */
double bench_sgemm_gflops(int M, int N, int K, double min_seconds);
/* FLOPs of one block's forward on B sequences of T tokens (causal attention
 * counted for the lower triangle only). */
double block_forward_flops(const ModelConfig *c, int B, int T);
/* FLOPs of the classifier head on N positions. */
double head_forward_flops(const ModelConfig *c, int N);
/* Peak resident set size of this process in bytes (VmHWM). */
long peak_rss_bytes(void);

/* `quept bench recon` (bench_recon.c). */
int bench_recon(int argc, char **argv);
/* `quept bench distributed` (bench_dist.c). */
int bench_distributed(int argc, char **argv);
/* `quept bench pot` (bench_pot.c). */
int bench_pot(int argc, char **argv);

#endif
