/* bench_pot.c — `quept bench pot`: CPU dequantization throughput of
 * power-of-two codes against integer codes on the seven linears of one
 * 1B-class block (dim 2048, FFN 5632, 32 heads, 4 KV heads: q, o 2048x2048,
 * k, v 256x2048, gate, up 5632x2048, down 2048x5632; 44.0 M weights), group
 * 128, to fp32, in the same run:
 *
 *   pot      fq_dequantize, FQ_FORMAT_POT (pot_group_dequant): per weight an
 *            integer add into the exponent field of the group's fp32 scale and
 *            an XOR of the sign bit, W = ±s·2^E — no multiply;
 *   int      fq_dequantize, FQ_FORMAT_INT: W = (code - zero)·scale, the form
 *            every quept export is checked against;
 *   int-fma  W = code·scale + m with m = -zero·scale precomputed per group
 *            (GGUF Q4_1's d·q + m), one multiply-add per weight.
 *
 * All three read one byte per code (the in-memory form of a switch, unpacked)
 * and fp32 group parameters (pot: a scale; int: a scale and a zero / a scale
 * and a minimum) and write fp32 weights, single-threaded; they are the
 * library's own loops, compiled for the build's baseline ISA (x86-64-v2:
 * 4-wide SSE). Each repeat dequantizes the whole block once per variant, the
 * variants interleaved; figures are the median over the repeats. Two
 * passes are measured: "to memory" writes the whole block's fp32 weights
 * (176 MB: bound by the memory bandwidth, whatever the arithmetic), and "in
 * cache" dequantizes the same codes tile by tile (TILE_ROWS rows at a time
 * into one reused buffer of at most 180 KB, as a fused dequantize + matmul
 * kernel consumes them) — there the arithmetic per weight shows. Bytes per
 * pass = codes (1 B/weight) + group parameters + output (4 B/weight). The
 * codes are random 4-bit codes (PoT: sign + 3-bit exponent), the scales
 * random normal floats (PoT's are kept normal with the exponent add exact).
 * No timing threshold anywhere: the ratio is the figure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/numeric.h"
#include "base/rng.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "quant/fakequant.h"

static const char *HELP = "usage: quept bench pot [--repeats N] [--bits B] [--json]\n"
                          "\n"
                          "Dequantization throughput (to fp32, one thread) of power-of-two codes\n"
                          "(exponent add + sign XOR) against integer codes ((code - zero)*scale, and\n"
                          "code*scale + min) on one 1B-class block's seven linears (44 M weights,\n"
                          "group 128), in the same run: Gweights/s, GB/s and the ratio pot / int,\n"
                          "writing the whole block (memory-bound) and tile by tile into a reused\n"
                          "8-row buffer (in cache, as a fused kernel would).\n"
                          "  --repeats N   passes per variant, median reported (default 9)\n"
                          "  --bits B      code width, 2..5 (default 4)\n";

enum { N_SHAPES = 7, N_VAR = 3, TILE_ROWS = 8 };
static const int SHAPES[N_SHAPES][2] = {{2048, 2048}, {256, 2048},  {256, 2048}, {2048, 2048},
                                        {5632, 2048}, {5632, 2048}, {2048, 5632}};
static const char *VAR_NAMES[N_VAR] = {"pot", "int", "int-fma"};

/* W = code·scale + m per group (m = -zero·scale): the multiply-add form. */
static void dequant_fma(const FqSpec *s, const uint8_t *codes, const float *scales, const float *mins,
                        float *W) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < ng; k++) {
            const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)o * ng + k;
            const int n = (k + 1) * g <= in ? g : in - k * g;
            const float sc = scales[gi], m = mins[gi];
            const uint8_t *c = codes + off;
            float *w = W + off;
            for (int j = 0; j < n; j++) w[j] = (float)c[j] * sc + m;
        }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_pot(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"repeats", 1, 0}, {"bits", 1, 0}, {"json", 0, 0}};
    int no = 3, npos, reps, bits;
    const char *pos[1];
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "repeats", 9, 1, 1000, &reps, &err) ||
        cli_get_int(o, no, "bits", 4, 2, 5, &bits, &err)) {
        log_error("bench pot: %s", err.msg);
        return 2;
    }
    int json = cli_get(o, no, "json") != NULL;
    const int group = 128;
    size_t nw = 0, ngt = 0, maxw = 0;
    for (int l = 0; l < N_SHAPES; l++) {
        size_t n = (size_t)SHAPES[l][0] * SHAPES[l][1];
        nw += n;
        ngt += (size_t)SHAPES[l][0] * (size_t)((SHAPES[l][1] + group - 1) / group);
        if (n > maxw) maxw = n;
    }
    uint8_t *codes_int = malloc(nw), *codes_pot = malloc(nw);
    float *scales = malloc(ngt * sizeof(float)), *zeros = malloc(ngt * sizeof(float));
    float *mins = malloc(ngt * sizeof(float)), *W = malloc(nw * sizeof(float));
    double *t[N_VAR];
    for (int v = 0; v < N_VAR; v++) t[v] = malloc((size_t)reps * sizeof(double));
    if (!codes_int || !codes_pot || !scales || !zeros || !mins || !W || !t[0] || !t[1] || !t[2]) {
        log_error("bench pot: out of memory");
        return 1;
    }
    Rng rng;
    rng_seed(&rng, 0x504f54);
    const int qmax = (1 << bits) - 1;
    for (size_t i = 0; i < nw; i++) {
        codes_int[i] = (uint8_t)rng_int(&rng, qmax + 1);
        codes_pot[i] = (uint8_t)rng_int(&rng, qmax + 1); /* sign bit b-1, exponent below */
    }
    for (size_t i = 0; i < ngt; i++) {
        scales[i] = 1e-3f * (1.0f + 0.5f * fabsf(rng_normal(&rng)));
        zeros[i] = (float)rng_int(&rng, qmax + 1);
        mins[i] = -zeros[i] * scales[i];
    }
    if (!json)
        fprintf(stderr, "dequantizing %.1f M weights (%d-bit codes, group %d) x %d repeats x 3 variants...\n",
                nw / 1e6, bits, group, reps);
    double checksum[N_VAR] = {0};
    float *tile = malloc((size_t)TILE_ROWS * 5632 * sizeof(float));
    double *tt[N_VAR];
    for (int v = 0; v < N_VAR; v++) tt[v] = malloc((size_t)reps * sizeof(double));
    if (!tile || !tt[0] || !tt[1] || !tt[2]) {
        log_error("bench pot: out of memory");
        return 1;
    }
    for (int pass = 0; pass < 2; pass++)  /* 0: to memory, 1: in cache (tiles) */
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up, not timed */
            for (int v = 0; v < N_VAR; v++) {
                size_t wo = 0, go = 0;
                double t0 = now_seconds();
                for (int l = 0; l < N_SHAPES; l++) {
                    const int out = SHAPES[l][0], in = SHAPES[l][1], ng = (in + group - 1) / group;
                    const int step = pass ? TILE_ROWS : out;
                    for (int o0 = 0; o0 < out; o0 += step) {
                        FqSpec s = {.out = step,
                                    .in = in,
                                    .bits = bits,
                                    .group = group,
                                    .format = v == 0 ? FQ_FORMAT_POT : FQ_FORMAT_INT};
                        const size_t cw = wo + (size_t)o0 * in, cg = go + (size_t)o0 * ng;
                        float *dst = pass ? tile : W + cw;
                        if (v == 0)
                            fq_dequantize(&s, codes_pot + cw, scales + cg, zeros + cg, dst);
                        else if (v == 1)
                            fq_dequantize(&s, codes_int + cw, scales + cg, zeros + cg, dst);
                        else
                            dequant_fma(&s, codes_int + cw, scales + cg, mins + cg, dst);
                        if (pass) checksum[v] += tile[(size_t)o0 % ((size_t)step * in)];
                    }
                    wo += (size_t)out * in;
                    go += (size_t)out * ng;
                }
                double dt = now_seconds() - t0;
                if (r >= 0) (pass ? tt : t)[v][r] = dt;
                if (!pass) checksum[v] += W[(size_t)(r + 1) * 7919u % nw]; /* keep the output observable */
            }
        }
    double med[N_VAR], gws[N_VAR], gbs[N_VAR], tmed[N_VAR], tgws[N_VAR];
    const double bytes[N_VAR] = {nw * 5.0 + ngt * 4.0, nw * 5.0 + ngt * 8.0, nw * 5.0 + ngt * 8.0};
    for (int v = 0; v < N_VAR; v++) {
        qsort(t[v], (size_t)reps, sizeof(double), cmp_double);
        qsort(tt[v], (size_t)reps, sizeof(double), cmp_double);
        med[v] = t[v][reps / 2];
        gws[v] = nw / med[v] / 1e9;
        gbs[v] = bytes[v] / med[v] / 1e9;
        tmed[v] = tt[v][reps / 2];
        tgws[v] = nw / tmed[v] / 1e9;
    }
    if (json) {
        printf("{\"weights\": %zu, \"bits\": %d, \"group\": %d, \"repeats\": %d, \"threads\": 1, "
               "\"variants\": [",
               nw, bits, group, reps);
        for (int v = 0; v < N_VAR; v++)
            printf("%s{\"name\": \"%s\", \"seconds\": %.6f, \"gweights_per_s\": %.4f, \"gb_per_s\": %.4f, "
                   "\"in_cache_seconds\": %.6f, \"in_cache_gweights_per_s\": %.4f}",
                   v ? ", " : "", VAR_NAMES[v], med[v], gws[v], gbs[v], tmed[v], tgws[v]);
        printf("], \"ratio_pot_to_int\": %.4f, \"ratio_pot_to_int_fma\": %.4f, "
               "\"in_cache_ratio_pot_to_int\": %.4f, \"in_cache_ratio_pot_to_int_fma\": %.4f, \"checksum\": "
               "%.6g}\n",
               med[1] / med[0], med[2] / med[0], tmed[1] / tmed[0], tmed[2] / tmed[0],
               checksum[0] + checksum[1] + checksum[2]);
    } else {
        printf("one 1B-class block (dim 2048, FFN 5632, 32/4 heads), %.1f M weights, %d-bit codes, "
               "group %d, to fp32, 1 thread, median of %d:\n",
               nw / 1e6, bits, group, reps);
        printf("%-10s %22s %10s %12s   %22s %12s\n", "", "to memory: Gweights/s", "GB/s", "pot speedup",
               "in cache: Gweights/s", "pot speedup");
        for (int v = 0; v < N_VAR; v++)
            printf("%-10s %22.3f %10.2f %12.3f   %22.3f %12.3f\n", VAR_NAMES[v], gws[v], gbs[v],
                   med[v] / med[0], tgws[v], tmed[v] / tmed[0]);
    }
    free(codes_int);
    free(codes_pot);
    free(scales);
    free(zeros);
    free(mins);
    free(W);
    free(tile);
    for (int v = 0; v < N_VAR; v++) {
        free(t[v]);
        free(tt[v]);
    }
    return 0;
}
