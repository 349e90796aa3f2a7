/* hadamard.c — Hadamard bases built by construction (Sylvester, Paley I,
 * Paley II, Williamson via the Goethals-Seidel array), the dense Kronecker
 * matrix for tests, and the fast normalised transform (hadamard.h). */
#include "hadamard.h"

#include <cblas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fwht(float *x, int n) {
    for (int h = 1; h < n; h *= 2)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

/* Williamson sequences: four symmetric +-1 sequences of length w (element 0
 * first, x[i] = x[w - i]) whose periodic autocorrelations sum to 0 at every
 * nonzero shift. Found by tools/gs_search.c, run as noted on each line (the
 * argument after w is the order of the multiplier subgroup the sequences are
 * constant on; each run took under a second), not copied from anywhere; the
 * tests check H H^T = 4w I for each. */
static const struct {
    int w;
    const char *seq[4];
} williamson[] = {
    /* gs_search 13 2 */
    {13, {"+-+++----+++-", "++-++----++-+", "+--+-++++-+--", "-+++-++++-+++"}},
    /* gs_search 23 2 */
    {23,
     {"+++-++---+-++-+---++-++", "+-+-+--++-++++-++--+-+-", "---++-++++-++-++++-++--",
      "++-++++---++++---++++-+"}},
    /* gs_search 29 2 */
    {29,
     {"++-+-++++--+------+--++++-+-+", "--+-+--++++-++--++-++++--+-+-", "+-+--+-+++++--++--+++++-+--+-",
      "++-++-+++---++++++---+++-++-+"}},
    /* gs_search 43 6: order 172 (stories260K's FFN, LLaMA-2-7B's 11008 = 172 * 64) */
    {43,
     {"-++---++-++++-+-++--+--+--++-+-++++-++---++", "++++-++++---+++---+--++--+---+++---++++-+++",
      "+-+-++--+-+-++++++-+----+-++++++-+-+--++-+-", "+-+++----+-++-++--++++++++--++-++-+----+++-"}},
};
#define N_WILLIAMSON ((int)(sizeof williamson / sizeof williamson[0]))

static int is_prime(int q) {
    if (q < 2) return 0;
    for (int d = 2; d * d <= q; d++)
        if (q % d == 0) return 0;
    return 1;
}

static int is_pow2(int m) { return m >= 1 && (m & (m - 1)) == 0; }

/* the prime q of a Paley I base of order m = q + 1, else 0 */
static int paley1_q(int m) {
    int q = m - 1;
    return is_prime(q) && q % 4 == 3 ? q : 0;
}

/* the prime q of a Paley II base of order m = 2(q + 1), else 0 */
static int paley2_q(int m) {
    int q = m / 2 - 1;
    return m % 2 == 0 && is_prime(q) && q % 4 == 1 ? q : 0;
}

static int williamson_index(int m) {
    for (int i = 0; i < N_WILLIAMSON; i++)
        if (4 * williamson[i].w == m) return i;
    return -1;
}

int hadamard_base_known(int m) {
    if (m < 1 || m > HADAMARD_MAX_M) return 0;
    return is_pow2(m) || paley1_q(m) || paley2_q(m) || williamson_index(m) >= 0;
}

/* chi (q): the quadratic character mod q (1 on nonzero squares, -1 on the
 * other nonzero residues, 0 at 0); NULL when out of memory */
static int8_t *legendre(int q) {
    int8_t *chi = malloc((size_t)q);
    if (!chi) return NULL;
    for (int x = 0; x < q; x++) chi[x] = -1;
    for (int x = 1; x < q; x++) chi[(int)((long)x * x % q)] = 1;
    chi[0] = 0;
    return chi;
}

/* Paley I, order q + 1: H = I + S with S = [0 1^T; -1 Q], Q_ij = chi(j - i).
 * q = 3 mod 4 makes chi(-1) = -1, so S is skew and S S^T = q I (Q Q^T =
 * q I - J, Q 1 = 0); then H H^T = I + S S^T = (q + 1) I. */
static void paley1(int q, const int8_t *chi, int8_t *H) {
    const int m = q + 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            H[(size_t)i * m + j] = i == 0 ? 1 : j == 0 ? -1 : (int8_t)(chi[(j - i + q) % q] + (i == j));
}

/* Paley II, order 2(q + 1): C = [0 1^T; 1 Q] (symmetric as chi(-1) = 1, C^2
 * = q I), each 0 of C replaced by [1 -1; -1 -1] and each +-1 by +-[1 1; 1 -1]. */
static void paley2(int q, const int8_t *chi, int8_t *H) {
    const int c = q + 1, m = 2 * c;
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) {
            int v = i == 0 && j == 0 ? 0 : i == 0 || j == 0 ? 1 : chi[(j - i + q) % q];
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    H[(size_t)(2 * i + a) * m + 2 * j + b] =
                        (int8_t)(v == 0 ? (a == 0 && b == 0 ? 1 : -1) : v * (a == 1 && b == 1 ? -1 : 1));
        }
}

/* The Goethals-Seidel array of four circulants A, B, C, D (X_ij = x[j - i])
 * with A A^T + B B^T + C C^T + D D^T = 4w I; R the back-diagonal identity:
 *    A     BR    CR    DR
 *   -BR    A     D^TR -C^TR
 *   -CR   -D^TR  A     B^TR
 *   -DR    C^TR -B^TR  A
 * (X R)_ij = x[w - 1 - i - j], (X^T R)_ij = x[i + j + 1], indices mod w. */
static void goethals_seidel(int w, const char *const seq[4], int8_t *H) {
    /* per block: the sequence, its form (0: X, 1: X R, 2: X^T R), the sign */
    static const signed char blk[4][4][3] = {{{0, 0, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}},
                                             {{1, 1, -1}, {0, 0, 1}, {3, 2, 1}, {2, 2, -1}},
                                             {{2, 1, -1}, {3, 2, -1}, {0, 0, 1}, {1, 2, 1}},
                                             {{3, 1, -1}, {2, 2, 1}, {1, 2, -1}, {0, 0, 1}}};
    const int m = 4 * w;
    for (int P = 0; P < 4; P++)
        for (int Q = 0; Q < 4; Q++) {
            const signed char *b = blk[P][Q];
            for (int i = 0; i < w; i++)
                for (int j = 0; j < w; j++) {
                    int x = b[1] == 0 ? j - i : b[1] == 1 ? w - 1 - i - j : i + j + 1;
                    x = ((x % w) + w) % w;
                    int v = seq[(int)b[0]][x] == '+' ? 1 : -1;
                    H[(size_t)(P * w + i) * m + Q * w + j] = (int8_t)(b[2] * v);
                }
        }
}

int hadamard_base(int m, int8_t *H, QErr *err) {
    if (!hadamard_base_known(m))
        return qerr_set(err, "Hadamard base of order %d: no construction here (see hadamard.h)", m);
    if (is_pow2(m)) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) H[(size_t)i * m + j] = __builtin_popcount(i & j) & 1 ? -1 : 1;
        return 0;
    }
    int q = paley1_q(m) ? paley1_q(m) : paley2_q(m);
    if (!q) {
        int w = williamson_index(m);
        goethals_seidel(williamson[w].w, williamson[w].seq, H);
        return 0;
    }
    int8_t *chi = legendre(q);
    if (!chi) return qerr_set(err, "out of memory for a Hadamard base of order %d", m);
    if (paley1_q(m))
        paley1(q, chi, H);
    else
        paley2(q, chi, H);
    free(chi);
    return 0;
}

int hadamard_supported(int n, int *m, int *k) {
    if (n < 1) return 0;
    int odd = n, a = 0;
    while (odd % 2 == 0) odd /= 2, a++;
    for (int j = 0; j <= a && ((long)odd << j) <= HADAMARD_MAX_M; j++) {
        int mm = odd << j;
        if (!hadamard_base_known(mm)) continue; /* odd = 1 stops at j = 0: all FWHT */
        if (m) *m = mm;
        if (k) *k = a - j;
        return 1;
    }
    return 0;
}

/* the refusal: n, its odd part, the rule and the smallest base of each odd
 * part up to 63 */
static int unsupported(QErr *err, int n) {
    char list[512];
    size_t len = 0;
    for (int odd = 3; odd < 64; odd += 2)
        for (int mm = 4 * odd; mm <= HADAMARD_MAX_M; mm *= 2)
            if (hadamard_base_known(mm)) {
                if (len < sizeof list)
                    len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", len ? ", " : "", mm);
                break;
            }
    int odd = n > 0 ? n : 1;
    while (odd % 2 == 0) odd /= 2;
    return qerr_setc(
        err, QERR_USAGE,
        "Hadamard transform: no Hadamard matrix of order %d (odd part %d) here: supported are n = m "
        "* 2^k with m = 1 or a base order m <= %d (Paley I: q + 1, q a prime = 3 mod 4; Paley II: "
        "2(q + 1), q a prime = 1 mod 4; Williamson: 52, 92, 116, 172); the smallest base for the "
        "odd parts 3 to 63: %s",
        n, odd, HADAMARD_MAX_M, list);
}

int hadamard_dense(int n, int8_t *H, QErr *err) {
    int m, k;
    if (!hadamard_supported(n, &m, &k)) return unsupported(err, n);
    int8_t *base = malloc((size_t)m * m);
    if (!base) return qerr_set(err, "out of memory for a Hadamard base of order %d", m);
    if (hadamard_base(m, base, err) != 0) {
        free(base);
        return -1;
    }
    const int P = 1 << k;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int s = __builtin_popcount((i % P) & (j % P)) & 1 ? -1 : 1;
            H[(size_t)i * n + j] = (int8_t)(s * base[(size_t)(i / P) * m + j / P]);
        }
    free(base);
    return 0;
}

int hadamard_init(Hadamard *h, int n, QErr *err) {
    memset(h, 0, sizeof *h);
    int m, k;
    if (!hadamard_supported(n, &m, &k)) return unsupported(err, n);
    h->n = n, h->m = m, h->k = k;
    if (m == 1) return 0;
    int8_t *base = malloc((size_t)m * m);
    h->Hm = malloc(sizeof(float) * m * m);
    h->Hmt = malloc(sizeof(float) * m * m);
    if (!base || !h->Hm || !h->Hmt) {
        free(base);
        hadamard_free(h);
        return qerr_set(err, "out of memory for a Hadamard transform of size %d", n);
    }
    if (hadamard_base(m, base, err) != 0) {
        free(base);
        hadamard_free(h);
        return -1;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            h->Hm[(size_t)i * m + j] = base[(size_t)i * m + j];
            h->Hmt[(size_t)j * m + i] = base[(size_t)i * m + j];
        }
    free(base);
    return 0;
}

void hadamard_free(Hadamard *h) {
    free(h->Hm);
    free(h->Hmt);
    h->Hm = h->Hmt = NULL;
}

/* x viewed as X (m, P), P = 2^k: x <- B X H_P / sqrt(n) with B the base or
 * its transpose (H_P is symmetric) */
static void transform(float *x, const Hadamard *h, const float *B, float *work) {
    const int m = h->m, P = 1 << h->k, n = h->n;
    const float scale = 1.0f / sqrtf((float)n);
    for (int a = 0; a < m; a++) fwht(x + (size_t)a * P, P);
    if (m == 1) {
        for (int i = 0; i < n; i++) x[i] *= scale;
        return;
    }
    /* work (m, P) = scale B X: a BLAS product (the dense part dominates
     * for a large odd base: 172^2 multiply-adds per element at P = 1) */
    if (P == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, m, m, scale, B, m, x, 1, 0.0f, work, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, P, m, scale, B, m, x, P, 0.0f, work, P);
    memcpy(x, work, sizeof(float) * n);
}

void hadamard_transform(float *x, const Hadamard *h, float *work) { transform(x, h, h->Hm, work); }

void hadamard_transform_t(float *x, const Hadamard *h, float *work) { transform(x, h, h->Hmt, work); }

void hadamard_transform_rows(float *x, int N, const Hadamard *h, int transpose, float *work) {
    for (int r = 0; r < N; r++) {
        float *row = x + (size_t)r * h->n;
        if (transpose)
            hadamard_transform_t(row, h, work);
        else
            hadamard_transform(row, h, work);
    }
}
