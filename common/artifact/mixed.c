/* mixed.c — per-block bit assignment under an average bit budget (mixed.h). */
#include "mixed.h"

#include "../quant/ggml_quant.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

long mixed_block_params(const ModelConfig *c, int j) {
    (void)j; /* every block of a Llama has the same shapes; kept per block for the API */
    long n = 0;
    for (int l = 0; l < N_LIN; l++) {
        int o, in;
        qblock_linear_shape(c, l, &o, &in);
        n += (long)o * in;
    }
    return n;
}

static long gcd_l(long a, long b) {
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int mixed_solve(const double *cost, const long *n, int L, const int *bit_list, int n_bits, double avg_bits,
                int *bits_out, double *achieved_avg, QErr *err) {
    if (L < 1 || n_bits < 1) return qerr_set(err, "mixed precision: no blocks or no bit widths");
    int bmin = bit_list[0], bmax = bit_list[n_bits - 1];
    if (!(avg_bits >= bmin && avg_bits <= bmax))
        return qerr_set(err, "average of %g bits is outside the artifact's range [%d, %d]", avg_bits, bmin,
                        bmax);
    long g = 0;
    for (int j = 0; j < L; j++) {
        if (n[j] <= 0) return qerr_set(err, "mixed precision: block %d has no quantized weights", j);
        g = gcd_l(g, n[j]);
    }
    long M = 0;
    for (int j = 0; j < L; j++) M += n[j] / g;
    long S = (long)bmax * M; /* largest total */
    if ((double)L * (double)(S + 1) > (double)MIXED_MAX_STATES)
        return qerr_set(err, "mixed precision: block sizes too irregular for the exact budget DP (%ld units)",
                        S);
    /* target: the largest integer total <= avg_bits * M (tolerating rounding in avg_bits) */
    long target = (long)floor(avg_bits * (double)M + 1e-9 * (double)M);
    if (target > S) target = S;
    size_t W = (size_t)S + 1;
    double *prev = malloc(sizeof(double) * W), *cur = malloc(sizeof(double) * W);
    int8_t *pick = malloc((size_t)L * W);
    if (!prev || !cur || !pick) {
        free(prev);
        free(cur);
        free(pick);
        return qerr_set(err, "out of memory");
    }
    /* prev[s]: least cost of blocks 0..j-1 with total s (INFINITY unreachable) */
    for (size_t s = 0; s < W; s++) prev[s] = INFINITY;
    prev[0] = 0.0;
    for (int j = 0; j < L; j++) {
        long mj = n[j] / g;
        for (size_t s = 0; s < W; s++) cur[s] = INFINITY;
        memset(pick + (size_t)j * W, -1, W);
        for (size_t s = 0; s < W; s++) {
            if (!isfinite(prev[s])) continue;
            for (int bi = 0; bi < n_bits; bi++) {
                size_t t = s + (size_t)(mj * bit_list[bi]);
                if (t >= W) break;
                double cj = cost[(size_t)bi * L + j];
                if (!isfinite(cj)) cj = 1e300;
                double v = prev[s] + cj;
                if (v < cur[t]) {
                    cur[t] = v;
                    pick[(size_t)j * W + t] = (int8_t)bi;
                }
            }
        }
        double *tmp = prev;
        prev = cur;
        cur = tmp;
    }
    long best = target;
    while (best >= 0 && !isfinite(prev[best])) best--;
    int rc = 0;
    if (best < 0) rc = qerr_set(err, "no assignment reaches an average of %g bits or less", avg_bits);
    if (rc == 0) {
        long s = best, num = 0, den = 0;
        for (int j = L - 1; j >= 0; j--) {
            int bi = pick[(size_t)j * W + (size_t)s];
            bits_out[j] = bit_list[bi];
            s -= (n[j] / g) * bit_list[bi];
        }
        for (int j = 0; j < L; j++) {
            num += (n[j] / g) * bits_out[j];
            den += n[j] / g;
        }
        if (achieved_avg) *achieved_avg = (double)num / (double)den;
    }
    free(prev);
    free(cur);
    free(pick);
    return rc;
}

/* GGUF artifacts: the budget is the file's own size — bits per weight of
 * the linears' ggml blocks (rows that fall back counted in their type) —
 * so the same DP runs on each width's bytes per block (every block of a
 * Llama has the same shapes) in units of `base` bytes, made distinct per
 * width (units * NB + bi) so the chosen width reads back from the total. */
static int gguf_assign(const ElasticModel *em, const double *cost, double avg_bpw, int *bits_out,
                       double *achieved, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    const int L = c->n_layers, NB = q->n_bits;
    const double P = (double)mixed_block_params(c, 0);
    double bytes[QMAX_NBITS], bmax = 0.0;
    for (int bi = 0; bi < NB; bi++) {
        bytes[bi] = 0.0;
        for (int l = 0; l < N_LIN; l++) {
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            bytes[bi] += (double)o * (double)gq_row_bytes(quant_gtype(q, q->bits[bi], in), in);
        }
        bmax = bytes[bi] > bmax ? bytes[bi] : bmax;
    }
    const double lo = bytes[0] * 8.0 / P, hi = bytes[NB - 1] * 8.0 / P;
    if (!(avg_bpw >= lo - 1e-9 && avg_bpw <= hi + 1e-9))
        return qerr_set(
            err,
            "average of %g bits per weight is outside the GGUF artifact's range [%.4f, %.4f] (the "
            "linears' ggml blocks at %d and %d bits)",
            avg_bpw, lo, hi, q->bits[0], q->bits[NB - 1]);
    double per = (double)MIXED_MAX_STATES / ((double)L * (double)L) / (double)NB / 2.0;
    if (per > 100000.0) per = 100000.0;
    const double base = ceil(bmax / per);
    int units[QMAX_NBITS];
    long n1[64];
    long *n = L <= 64 ? n1 : malloc(sizeof(long) * (size_t)L);
    if (!n) return qerr_set(err, "out of memory");
    for (int j = 0; j < L; j++) n[j] = 1;
    for (int bi = 0; bi < NB; bi++) units[bi] = (int)ceil(bytes[bi] / base) * NB + bi;
    const double budget = floor(avg_bpw * P / 8.0 / base + 1e-9) * NB + (NB - 1);
    double ach_units;
    int rc =
        mixed_solve(cost, n, L, units, NB, budget < units[0] ? units[0] : budget, bits_out, &ach_units, err);
    if (n != n1) free(n);
    if (rc != 0) return rc;
    double total = 0.0;
    for (int j = 0; j < L; j++) {
        const int bi = bits_out[j] % NB;
        bits_out[j] = q->bits[bi];
        total += bytes[bi];
    }
    if (achieved) *achieved = total * 8.0 / (P * L);
    return 0;
}

int mixed_assign_bits(const ElasticModel *em, double avg_bits, int use_proxy, int *bits_out,
                      double *achieved_avg, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    int L = c->n_layers, NB = q->n_bits;
    double *cost = malloc(sizeof(double) * (size_t)NB * L);
    long *n = malloc(sizeof(long) * (size_t)L);
    if (!cost || !n) {
        free(cost);
        free(n);
        return qerr_set(err, "out of memory");
    }
    for (int j = 0; j < L; j++) n[j] = mixed_block_params(c, j);
    for (int bi = 0; bi < NB; bi++)
        for (int j = 0; j < L; j++)
            cost[(size_t)bi * L + j] =
                (!use_proxy && em->sens) ? em->sens[(size_t)bi * L + j] : em->stats[j].loss_final[bi];
    int rc = q->format == QFORMAT_GGUF
                 ? gguf_assign(em, cost, avg_bits, bits_out, achieved_avg, err)
                 : mixed_solve(cost, n, L, q->bits, NB, avg_bits, bits_out, achieved_avg, err);
    free(cost);
    free(n);
    return rc;
}

double true_bits_per_weight(const ElasticModel *em, const int *bits) {
    const ModelConfig *c = &em->cfg;
    double num = 0.0, den = 0.0;
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            int gs = quant_group(&em->qc, bits[j], in);
            double ng = (double)o * ((in + gs - 1) / gs);
            if (em->qc.format == QFORMAT_GGUF) /* the ggml blocks, as the file holds them */
                num += 8.0 * o * (double)gq_row_bytes(quant_gtype(&em->qc, bits[j], in), in);
            else
                num += (double)bits[j] * o * in + (em->qc.format == QFORMAT_POT ? 16.0 : 32.0) * ng;
            den += (double)o * in;
        }
    return den > 0 ? num / den : 0.0;
}
