/* gptq.c — GPTQ on the fakequant RTN grid; the math is in gptq.h.
 *
 * Layout: everything is row-major. LAPACK is column-major, and a row-major
 * matrix read as column-major is its transpose. For the symmetric H and
 * H^-1 that changes nothing, and the row-major UPPER triangle is the
 * column-major LOWER one. So every LAPACK call here uses uplo = 'L':
 *   spotrf('L') on H        : H = L L^T           (L in col-major lower)
 *   spotri('L')             : H^-1 in the same triangle
 *   spotrf('L') on H^-1     : H^-1 = L' L'^T
 * and read row-major, that triangle holds U = L'^T, upper triangular with
 * H^-1 = U^T U — the factor torch.linalg.cholesky(Hinv, upper=True) gives.
 *
 * GPTQ rows never mix (U is shared, the error feedback of row o only moves
 * row o), so inside a lazy block each row runs through the block's columns
 * on its own (contiguous in What, in U's rows, in the error block), and the
 * trailing update after the block is one sgemm. What is the working copy of
 * W: column i holds the updated weight until it is quantized in place. */
#include "gptq.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GPTQ_SCALE_MIN 1e-5f /* fakequant's FQ_SCALE_MIN */
#define GPTQ_RETRIES   3

/* LAPACK (Fortran ABI, exported by libopenblas). The trailing size_t is the
 * hidden length of the character argument that gfortran-compiled routines
 * (spotri_ is reference LAPACK inside OpenBLAS) expect; OpenBLAS's own C
 * spotrf_ ignores it. */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);

GptqSpec gptq_spec_make(int out, int in, int bits, int group) {
    GptqSpec s = {out, in, bits, group, 0.01f, 128};
    return s;
}

int gptq_spec_check(const GptqSpec *s, QErr *err) {
    if (!s) return qerr_set(err, "gptq: spec is NULL");
    if (s->out <= 0 || s->in <= 0)
        return qerr_set(err, "gptq: shape (%d, %d): both must be > 0", s->out, s->in);
    if ((long long)s->out * s->in > INT_MAX)
        return qerr_set(err, "gptq: shape (%d, %d) has more than INT_MAX elements", s->out, s->in);
    if (s->bits < 1 || s->bits > 8) return qerr_set(err, "gptq: bits %d: expected 1..8", s->bits);
    if (s->group < 1 || s->group > s->in)
        return qerr_set(err, "gptq: group %d: expected 1..in (%d)", s->group, s->in);
    if (!(s->damp > 0.0f) || !isfinite(s->damp))
        return qerr_set(err, "gptq: damp %g: expected a finite value > 0 (default 0.01)", (double)s->damp);
    if (s->block_size < 1)
        return qerr_set(err, "gptq: block_size %d: expected >= 1 (default 128)", s->block_size);
    return 0;
}

void gptq_accumulate_h(float *H, const float *X, int N, int in) {
    if (N <= 0 || in <= 0) return;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, in, N, 1.0f, X, in, 1.0f, H, in);
}

void gptq_symmetrize_h(float *H, int in) {
    for (size_t i = 0; i < (size_t)in; i++)
        for (size_t j = 0; j < i; j++) H[i * (size_t)in + j] = H[j * (size_t)in + i];
}

/* U = H's upper triangle with dead diagonals set to 1 and dabs added to the
 * diagonal; strict lower triangle 0. */
static void load_damped(const float *H, int in, float dabs, float *U) {
    const size_t n = (size_t)in;
    for (size_t i = 0; i < n; i++) {
        float *u = U + i * n;
        const float *h = H + i * n;
        memset(u, 0, i * sizeof(float));
        memcpy(u + i, h + i, (n - i) * sizeof(float));
        if (u[i] == 0.0f) u[i] = 1.0f;
        u[i] += dabs;
    }
}

/* One try of the factorisation; 0, or the LAPACK info with *stage naming
 * the call that failed. */
static int factor_once(float *U, int in, const char **stage) {
    const char uplo = 'L';
    int info = 0;
    spotrf_(&uplo, &in, U, &in, &info, 1);
    if (info != 0) {
        *stage = "spotrf(H)";
        return info;
    }
    spotri_(&uplo, &in, U, &in, &info, 1);
    if (info != 0) {
        *stage = "spotri";
        return info;
    }
    spotrf_(&uplo, &in, U, &in, &info, 1);
    if (info != 0) {
        *stage = "spotrf(H^-1)";
        return info;
    }
    return 0;
}

int gptq_hinv_upper(const float *H, int in, float damp, float *U, GptqInfo *info, QErr *err) {
    if (!H || !U) return qerr_set(err, "gptq: H or U is NULL");
    if (in <= 0) return qerr_set(err, "gptq: H size %d: expected > 0", in);
    if (!(damp > 0.0f) || !isfinite(damp))
        return qerr_set(err, "gptq: damp %g: expected a finite value > 0", (double)damp);
    const size_t n = (size_t)in;
    int n_dead = 0;
    double diag_sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i; j < n; j++)
            if (!isfinite(H[i * n + j]))
                return qerr_set(err, "gptq: H (%d x %d) has a non-finite value %g at (%zu, %zu)", in, in,
                                (double)H[i * n + j], i, j);
        float d = H[i * n + i];
        if (d == 0.0f) {
            n_dead++;
            d = 1.0f;
        }
        diag_sum += d;
    }
    const double mean_diag = diag_sum / (double)in;

    double dmp = damp;
    int rc = 0;
    const char *stage = "";
    int t;
    for (t = 0; t <= GPTQ_RETRIES; t++, dmp *= 10.0) {
        load_damped(H, in, (float)(dmp * mean_diag), U);
        rc = factor_once(U, in, &stage);
        if (rc == 0) break;
    }
    if (rc != 0)
        return qerr_set(err,
                        "gptq: H (%d x %d) is not positive definite after damping: %s failed with "
                        "info %d at every relative damping %g .. %g (x10, %d retries; mean "
                        "diag %g, %d dead columns)",
                        in, in, stage, rc, (double)damp, dmp / 10.0, GPTQ_RETRIES, mean_diag, n_dead);
    /* spotrf/spotri leave the other triangle alone; ours was 0 from load. */
    if (info) {
        info->n_dead = n_dead;
        info->retries = t;
        info->damp_used = (float)dmp;
        info->loss = 0.0;
    }
    return 0;
}

static void minmax(const float *x, int n, float *xmax, float *xmin) {
    float mx = x[0], mn = x[0];
    for (int j = 1; j < n; j++) {
        mx = x[j] > mx ? x[j] : mx;
        mn = x[j] < mn ? x[j] : mn;
    }
    *xmax = mx;
    *xmin = mn;
}

/* fixed_grid: scales/zeros are inputs (gptq_quantize_grid), else outputs
 * computed at each group start (gptq_quantize). */
static int gptq_run(const GptqSpec *s, const float *W, const float *H, float *What, uint8_t *codes,
                    float *scales, float *zeros, int fixed_grid, GptqInfo *info, QErr *err) {
    if (gptq_spec_check(s, err) != 0) return -1;
    if (!W || !H || !What) return qerr_set(err, "gptq: W, H and What must not be NULL");
    if (What == W || What == H) return qerr_set(err, "gptq: What must not alias W or H");
    const int out = s->out, in = s->in, g = s->group;
    const int ng = (in + g - 1) / g;
    const int B = s->block_size < in ? s->block_size : in;
    const size_t n = (size_t)in;
    const float qmax = (float)((1 << s->bits) - 1);

    for (size_t k = 0; k < (size_t)out * n; k++)
        if (!isfinite(W[k]))
            return qerr_set(err, "gptq: W (%d x %d) has a non-finite value %g at (%zu, %zu)", out, in,
                            (double)W[k], k / n, k % n);

    float *U = malloc(n * n * sizeof(float));
    float *E = malloc((size_t)out * (size_t)B * sizeof(float)); /* err of the block */
    float *tmp = malloc((size_t)g * sizeof(float));             /* a group's current weights */
    float *gs = malloc((size_t)out * 2 * sizeof(float));        /* row grid: s, z */
    if (!U || !E || !tmp || !gs) {
        free(U);
        free(E);
        free(tmp);
        free(gs);
        return qerr_set(err, "gptq: out of memory for (%d x %d) (%zu MB for H^-1)", out, in,
                        n * n * sizeof(float) >> 20);
    }
    float *gz = gs + out;

    GptqInfo inf;
    if (gptq_hinv_upper(H, in, s->damp, U, &inf, err) != 0) {
        free(U);
        free(E);
        free(tmp);
        free(gs);
        return qerr_wrap(err, "layer (%d x %d), %d bits, group %d", out, in, s->bits, g);
    }

    memcpy(What, W, (size_t)out * n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        if (H[i * n + i] == 0.0f)
            for (size_t o = 0; o < (size_t)out; o++) What[o * n + i] = 0.0f;

    double loss = 0.0;
    for (int i1 = 0; i1 < in; i1 += B) {
        const int i2 = i1 + B < in ? i1 + B : in;
        const int nb = i2 - i1;
        for (int o = 0; o < out; o++) {
            float *w = What + (size_t)o * n;
            float *e = E + (size_t)o * (size_t)nb;
            uint8_t *cd = codes ? codes + (size_t)o * n : NULL;
            for (int i = i1; i < i2; i++) {
                if (i % g == 0 && fixed_grid) {
                    gs[o] = scales[(size_t)o * (size_t)ng + (size_t)(i / g)];
                    gz[o] = zeros[(size_t)o * (size_t)ng + (size_t)(i / g)];
                } else if (i % g == 0) {
                    /* The group's current weights: columns before i2 are up
                     * to date in w; later ones still lack this block's
                     * updates from columns i1..i-1. */
                    const int ge = i + g < in ? i + g : in;
                    float xmax, xmin;
                    if (ge <= i2) {
                        minmax(w + i, ge - i, &xmax, &xmin);
                    } else {
                        memcpy(tmp, w + i, (size_t)(ge - i) * sizeof(float));
                        for (int k = i1; k < i; k++) {
                            const float ek = e[k - i1];
                            const float *urow = U + (size_t)k * n;
                            for (int c = i2; c < ge; c++) tmp[c - i] -= ek * urow[c];
                        }
                        minmax(tmp, ge - i, &xmax, &xmin);
                    }
                    float sc = (xmax - xmin) / qmax;
                    sc = sc < GPTQ_SCALE_MIN ? GPTQ_SCALE_MIN : sc;
                    gs[o] = sc;
                    gz[o] = -nearbyintf(xmin / sc);
                    if (scales) scales[(size_t)o * (size_t)ng + (size_t)(i / g)] = gs[o];
                    if (zeros) zeros[(size_t)o * (size_t)ng + (size_t)(i / g)] = gz[o];
                }
                const float sc = gs[o], z = gz[o];
                const float x = w[i];
                float t = nearbyintf(x / sc) + z;
                t = t < 0.0f ? 0.0f : t;
                t = t > qmax ? qmax : t;
                const float q = (t - z) * sc;
                if (cd) cd[i] = (uint8_t)t;
                w[i] = q;
                const float *urow = U + (size_t)i * n;
                const float d = urow[i];
                const float er = (x - q) / d;
                e[i - i1] = er;
                loss += 0.5 * (double)er * (double)er;
                for (int c = i + 1; c < i2; c++) w[c] -= er * urow[c];
            }
        }
        if (i2 < in)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in - i2, nb, -1.0f, E, nb,
                        U + (size_t)i1 * n + (size_t)i2, in, 1.0f, What + i2, in);
    }

    free(U);
    free(E);
    free(tmp);
    free(gs);
    if (info) {
        *info = inf;
        info->loss = loss;
    }
    return 0;
}

int gptq_quantize(const GptqSpec *s, const float *W, const float *H, float *What, uint8_t *codes,
                  float *scales, float *zeros, GptqInfo *info, QErr *err) {
    return gptq_run(s, W, H, What, codes, scales, zeros, 0, info, err);
}

int gptq_quantize_grid(const GptqSpec *s, const float *W, const float *H, const float *scales,
                       const float *zeros, float *What, uint8_t *codes, GptqInfo *info, QErr *err) {
    if (gptq_spec_check(s, err) != 0) return -1;
    if (!scales || !zeros) return qerr_set(err, "gptq: the fixed grid's scales and zeros must not be NULL");
    const size_t n = (size_t)s->out * (size_t)((s->in + s->group - 1) / s->group);
    for (size_t k = 0; k < n; k++)
        if (!(scales[k] > 0.0f) || !isfinite(scales[k]) || !isfinite(zeros[k]))
            return qerr_set(err,
                            "gptq: fixed grid group %zu: scale %g, zero %g (expected a finite scale > 0)", k,
                            (double)scales[k], (double)zeros[k]);
    /* the grid is only read: the cast lets one loop serve both entry points */
    return gptq_run(s, W, H, What, codes, (float *)scales, (float *)zeros, 1, info, err);
}
