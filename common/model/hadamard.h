/* hadamard.h — Hadamard matrices of order n = m * 2^k and the normalised
 * transform x <- H x / sqrt(n) with H = H_m (x) H_{2^k} (Kronecker product),
 * the rotations of QuaRot for widths that are not powers of two (issue 15;
 * docs/rotation.md).
 *
 * H_{2^k} is Sylvester's ((-1)^popcount(i & j)), applied by the fast
 * Walsh-Hadamard transform. H_m, the "base", is built here, never read from
 * a table of matrices:
 *   m = 1;
 *   Paley I:   m = q + 1, q a prime = 3 (mod 4) (not symmetric);
 *   Paley II:  m = 2(q + 1), q a prime = 1 (mod 4) (symmetric);
 *   Williamson: m = 4w for w = 13, 23, 29, 43, by the Goethals-Seidel array
 *     from four symmetric +-1 sequences of length w that tools/gs_search.c
 *     found (43 gives 172, the FFN width of stories260K and the odd part of
 *     LLaMA-2-7B's 11008 = 172 * 64), not symmetric as a whole.
 * A width n is supported when n = m * 2^k for such an m <= HADAMARD_MAX_M;
 * the smallest m is used (the dense part costs m multiply-adds per element).
 * Sylvester doubling (H_2m = H_2 (x) H_m) is what the 2^k factor adds. */
#ifndef QUEPT_HADAMARD_H
#define QUEPT_HADAMARD_H

#include <stdint.h>

#include "../base/err.h"

/* the largest base order (its dense matrix is m^2 floats, twice) */
#define HADAMARD_MAX_M 1024

/* In-place fast Walsh-Hadamard transform of x (n a power of two), unscaled:
 * applying it twice multiplies by n. */
void fwht(float *x, int n);

/* 1 when a base of order m is built here (m = 1, a power of two, Paley I,
 * Paley II or the Williamson orders), m <= HADAMARD_MAX_M; else 0. */
int hadamard_base_known(int m);

/* The base of order m (hadamard_base_known), row-major +-1 entries into
 * H (m, m): Sylvester for a power of two, else Paley I, Paley II, Williamson
 * in that order of preference. */
int hadamard_base(int m, int8_t *H, QErr *err);

/* 1 when n = m * 2^k with hadamard_base_known(m), m the smallest such (1 for
 * a power of two), filling *m and *k (either may be NULL); else 0. */
int hadamard_supported(int n, int *m, int *k);

/* The whole (n, n) matrix H_m (x) H_{2^k} of a supported n (tests, small n):
 * H[i][j] = H_m[i / 2^k][j / 2^k] * (-1)^popcount((i % 2^k) & (j % 2^k)). */
int hadamard_dense(int n, int8_t *H, QErr *err);

/* A transform of size n: the base as floats, and its transpose. Read-only
 * after hadamard_init, so threads may share one. */
typedef struct {
    int n, m, k;
    float *Hm, *Hmt; /* (m, m) the base and its transpose; NULL when m == 1 */
} Hadamard;

/* Fails for an unsupported n with a message naming n and the supported m. */
int hadamard_init(Hadamard *h, int n, QErr *err);
void hadamard_free(Hadamard *h);

/* x (n) <- H x / sqrt(n): the FWHT on each of the m contiguous blocks of
 * 2^k, then the dense H_m across blocks. work holds n floats (may be NULL
 * when m == 1). */
void hadamard_transform(float *x, const Hadamard *h, float *work);
/* x (n) <- H^T x / sqrt(n), the inverse of hadamard_transform. */
void hadamard_transform_t(float *x, const Hadamard *h, float *work);
/* Each of the N rows of x (N, n): hadamard_transform_t (transpose = 1) or
 * hadamard_transform (0). */
void hadamard_transform_rows(float *x, int N, const Hadamard *h, int transpose, float *work);

#endif
