/* gptq.h — the GPTQ baseline (Frantar et al. 2022) on the same grid and
 * groups as fakequant's RTN (fq_rtn: lwc off, no adapter), so that
 * `--method gptq` is a like-for-like baseline.
 *
 * Shapes (row-major float32):
 *   W     (out, in)    full-precision weight (not modified)
 *   H     (in, in)     Hessian proxy: any positive multiple of sum_n x_n x_n^T
 *                      over the layer's calibration inputs x_n (in-vectors).
 *                      The result does not depend on the multiple (damping is
 *                      relative to mean(diag H), and the error feedback is
 *                      scale-free), so pass X^T X as gptq_accumulate_h builds
 *                      it, or the reference code's 2/n * X^T X. Only the
 *                      UPPER triangle (H[i][j], j >= i) is read; not modified.
 *   What  (out, in)    quantized weight, on the grid below
 *   codes (out, in)    integer codes in [0, qmax]
 *   scales, zeros (out, ng), ng = ceil(in/group)
 *
 * Grid (fakequant.h, clip factors 1), per row and group of columns
 * [k*group, min((k+1)*group, in)) — partial last group from its real elements:
 *   s = max((xmax - xmin)/qmax, 1e-5), z = -round(xmin/s),
 *   q = clamp(round(w/s) + z, 0, qmax), What = (q - z)*s,  round half-even,
 * and What[o][j] == ((float)codes[o][j] - zeros[o][k]) * scales[o][k]
 * bitwise (fq_dequantize gives back What exactly).
 *
 * Algorithm — the GPTQ reference code (fasterquant) with act-order off and
 * static groups off:
 *   dead columns (H_ii == 0): H_ii = 1 and W[:, i] = 0 (What[:, i] is 0);
 *   H += damp * mean(diag H) * I;
 *   U = upper Cholesky factor of H^-1 (Hinv = U^T U), by LAPACK spotrf/
 *       spotri/spotrf (OpenBLAS);
 *   for columns i in order, in lazy blocks of block_size columns:
 *     at a group start (i % group == 0) the group's (s, z) per row come from
 *     the CURRENT weights of its columns (every update from columns < i
 *     applied, including pending lazy ones);
 *     q = Q(w_i); err = (w_i - q)/U[i][i]; w_j -= err * U[i][j] for j > i
 *     (inside the block at once, past the block by one sgemm per block).
 *   The result does not depend on block_size (up to float32 rounding).
 *   One difference from the reference code: it takes a group's grid from the
 *   weights as they stood at the start of the current lazy block, which
 *   differs from the above when group != block_size (identical for the
 *   128/128 default); the grid here always sees the updates of every earlier
 *   column, so it is independent of block_size.
 * If the Cholesky factorisations fail (H not positive definite after
 * damping), damp is multiplied by 10 and everything retried, up to 3 times
 * (damp, 10 damp, 100 damp, 1000 damp); only when all fail is an error set,
 * naming the matrix size, the last damping and LAPACK's info.
 *
 * Cost: O(in^3/3) for the factorisations, out*in*in flops for the updates
 * (most of them in sgemm), out*in*block_size/2 in the in-block updates.
 * Memory: gptq_quantize allocates in*in + out*block_size floats (+ group per
 * row); What doubles as the working copy of W. */
#ifndef QUEPT_GPTQ_H
#define QUEPT_GPTQ_H

#include <stdint.h>

#include "../base/err.h"

typedef struct {
    int out, in;    /* W is (out, in), both > 0 */
    int bits;       /* 1..8 */
    int group;      /* 1..in, as fakequant (per output channel: group = in) */
    float damp;     /* relative damping (percdamp), > 0 and finite; default 0.01 */
    int block_size; /* lazy-batch width, >= 1; default 128 */
} GptqSpec;

/* Defaults: damp 0.01, block_size 128. */
GptqSpec gptq_spec_make(int out, int in, int bits, int group);

/* Validates a spec (ranges above, out*in fits in int). */
int gptq_spec_check(const GptqSpec *s, QErr *err);

/* What gptq_quantize reports about a run (all optional for the caller). */
typedef struct {
    int n_dead;      /* columns with H_ii == 0 */
    int retries;     /* Cholesky retries with 10x damping; 0 = the first try worked */
    float damp_used; /* relative damping of the successful try: damp * 10^retries */
    double loss;     /* the reference code's loss: sum over all elements of
                          (w - q)^2 / U_ii^2 / 2, with w the updated weight */
} GptqInfo;

/* H (in, in) += X^T X for X (N, in) row-major, by cblas_ssyrk: only the
 * UPPER triangle of H (H[i][j], j >= i) is updated; the strict lower triangle
 * is left as it is (gptq_quantize never reads it). Start from H = 0 and call
 * once per batch of N rows. N <= 0 is a no-op. */
void gptq_accumulate_h(float *H, const float *X, int N, int in);

/* Copies H's upper triangle into its strict lower triangle (for callers who
 * want the full symmetric matrix after gptq_accumulate_h). */
void gptq_symmetrize_h(float *H, int in);

/* The factor GPTQ works with: from H's upper triangle, with the dead-column
 * fix and relative damping `damp` (retried x10 up to 3 times as above),
 * U (in, in) row-major, upper triangular (strict lower triangle set to 0),
 * with U^T U = (H_fixed + damp' * mean(diag H_fixed) * I)^-1.
 * U must not alias H. info may be NULL (loss is set to 0). */
int gptq_hinv_upper(const float *H, int in, float damp, float *U, GptqInfo *info, QErr *err);

/* GPTQ-quantizes W into What (and, each when non-NULL, codes, scales,
 * zeros) as described above. What must not alias W or H. info may be NULL.
 * Returns 0, or -1 with err set (bad spec, non-finite W or H, allocation
 * failure, or every Cholesky retry failed); What is then unspecified. */
int gptq_quantize(const GptqSpec *s, const float *W, const float *H, float *What, uint8_t *codes,
                  float *scales, float *zeros, GptqInfo *info, QErr *err);

/* GPTQ's error feedback on a FIXED grid: scales and zeros (out, ng) are
 * given (e.g. QuEPT's learned clipping grid of the adapted weight) and
 * only read; every column is rounded on its group's given (s, z) instead of
 * a grid taken from the current weights. Otherwise as gptq_quantize:
 *   q = clamp(round(w/s) + z, 0, qmax), What = (q - z)*s.
 * With H diagonal there is no feedback and the result is round-to-nearest
 * on the grid. A scale that is not finite and > 0 is an error. */
int gptq_quantize_grid(const GptqSpec *s, const float *W, const float *H, const float *scales,
                       const float *zeros, float *What, uint8_t *codes, GptqInfo *info, QErr *err);

#endif
