/* mixed.h — mixed precision from one elastic artifact: one bit width per
 * block chosen from the artifact's bit list to meet an average bit budget.
 *
 * Cost of block j at bit b: the sensitivity table (em->sens, measure "kld",
 * see sensitivity.h), or with use_proxy — or when the artifact has no table —
 * the final calibration loss of the block at that bit (the "losses" proxy).
 *
 * Average: parameter-weighted over the quantized linears,
 *     avg = sum_j n_j b_j / sum_j n_j,  n_j = quantized weights of block j.
 * The dynamic programme works on the exact integer budget in units of
 * g = gcd(n_j): m_j = n_j / g, S = sum_j m_j b_j. It picks the largest
 * reachable S <= avg_bits * sum_j m_j (so exactly avg_bits when that is
 * reachable, else the closest reachable average below it) and, among the
 * assignments with that S, the one of least total cost (ties: the first
 * found scanning bits in ascending order). Exact; needs
 * n_layers * (max_bit * sum_j m_j + 1) <= MIXED_MAX_STATES (always true for a
 * Llama, whose blocks are all equal: m_j = 1). */
#ifndef QUEPT_MIXED_H
#define QUEPT_MIXED_H

#include "elastic.h"

#define MIXED_MAX_STATES 100000000L

/* Quantized weights of block j (sum over its linears of out * in). */
long mixed_block_params(const ModelConfig *c, int j);

/* The generic DP behind mixed_assign_bits: cost[bi * L + j], n[j] > 0,
 * bit_list ascending (n_bits entries). Writes bits_out[L] and the achieved
 * parameter-weighted average. Non-finite costs count as +huge. */
int mixed_solve(const double *cost, const long *n, int L, const int *bit_list, int n_bits, double avg_bits,
                int *bits_out, double *achieved_avg, QErr *err);

/* avg_bits must lie in [min bit, max bit] of the artifact. A GGUF artifact
 * (--format gguf) reads avg_bits as bits per weight of its linears' ggml
 * blocks — the file's size — and picks the least-cost widths whose blocks
 * fit (achieved: in the same bits per weight). */
int mixed_assign_bits(const ElasticModel *em, double avg_bits, int use_proxy, int *bits_out /*[n_layers]*/,
                      double *achieved_avg, QErr *err);

/* Storage cost per quantized weight of the assignment bits[n_layers] as an
 * integer export stores it: b bits per code plus one fp16 scale and one fp16
 * zero point per group (32 bits per group, group size from the artifact's
 * config at that bit):  sum (b * n + 32 * n_groups) / sum n (power-of-two
 * codes have no zero point: 16 bits per group). Embeddings,
 * norms and the head (kept in full precision) are not counted. */
double true_bits_per_weight(const ElasticModel *em, const int *bits);

#endif
