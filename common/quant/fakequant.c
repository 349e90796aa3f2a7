/* fakequant.c — LWC fake quantization with MB-CLoRA adapters, forward and
 * backward. The math and its gradients are spelled out in fakequant.h.
 *
 * Layout of the work: the weight is processed in chunks of whole rows
 * (chunk_rows: ~2 MB of floats), so that the adapter product of a chunk
 * (cblas_sgemm), the per-group loops over it (min/max, quantize, gradient)
 * and, in the backward, the two adapter-gradient sgemms that read it all
 * find it in cache. The forward and the backward use the same chunks, so the
 * backward's recomputed X is bitwise the forward's. Rows are independent
 * everywhere except in dBu += Bd^T dA, which sums over rows: chunking only
 * changes the order of that sum.
 *
 * The per-group kernels are written once and shared by forward, backward,
 * codes and RTN, so all of them use the same grid bit for bit. On x86-64
 * CPUs with AVX2 (checked at run time; the build targets x86-64-v2) the
 * mode-0 kernels run as 8-wide AVX2 code doing exactly the scalar code's
 * per-element operations (IEEE division, round-to-nearest-even, the same
 * compare/select order, no FMA contraction), so What, the codes, the scales
 * and zero points, and dX are bitwise those of the scalar code; only the
 * per-group sum of the scale gradient is added in a different order. */
#include "fakequant.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "fakequant_rows.h"
#include "ggml_quant.h"
#include "pot.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define FQ_X86 1
#include <immintrin.h>
#endif

#define FQ_SCALE_MIN 1e-5f
/* A chunk is ~FQ_CHUNK_FLOATS floats of whole rows, at least FQ_CHUNK_MIN_ROWS
 * rows (smaller sgemms lose efficiency). */
#define FQ_CHUNK_FLOATS   (1 << 19)
#define FQ_CHUNK_MIN_ROWS 128

int fq_spec_check(const FqSpec *s, QErr *err) {
    if (!s) return qerr_set(err, "fakequant: spec is NULL");
    if (s->out <= 0 || s->in <= 0)
        return qerr_set(err, "fakequant: shape (%d, %d): both must be > 0", s->out, s->in);
    if ((long long)s->out * s->in > INT_MAX)
        return qerr_set(err, "fakequant: shape (%d, %d) has more than INT_MAX elements", s->out, s->in);
    if (s->bits < 1 || s->bits > 8) return qerr_set(err, "fakequant: bits %d: expected 1..8", s->bits);
    if (s->group < 1 || s->group > s->in)
        return qerr_set(err, "fakequant: group %d: expected 1..in (%d)", s->group, s->in);
    if (s->R < 0 || s->rank < 0 || s->rank > s->R)
        return qerr_set(err, "fakequant: rank %d of R %d: expected 0 <= rank <= R", s->rank, s->R);
    if ((long long)s->R * (s->out > s->in ? s->out : s->in) > INT_MAX)
        return qerr_set(err, "fakequant: adapter rank %d too large for shape (%d, %d)", s->R, s->out, s->in);
    if (s->mode != FQ_ADAPTER_BEFORE_QUANT && s->mode != FQ_ADAPTER_AFTER_SCALE)
        return qerr_set(err,
                        "fakequant: mode %d: expected 0 (adapter before quant) or 1 "
                        "(adapter after scaling)",
                        s->mode);
    if (s->lwc != 0 && s->lwc != 1) return qerr_set(err, "fakequant: lwc %d: expected 0 or 1", s->lwc);
    if (s->format != FQ_FORMAT_INT && s->format != FQ_FORMAT_POT && s->format != FQ_FORMAT_GGUF)
        return qerr_set(err, "fakequant: format %d: expected 0 (int), 1 (pot) or 2 (gguf)", s->format);
    if (s->format == FQ_FORMAT_GGUF) return fq_gguf_spec_check(s, err);
    if (s->format == FQ_FORMAT_POT && (s->bits < POT_BITS_MIN || s->bits > POT_BITS_MAX))
        return qerr_set(err, "fakequant: power-of-two codes at %d bits: expected %d..%d", s->bits,
                        POT_BITS_MIN, POT_BITS_MAX);
    if (s->format == FQ_FORMAT_POT && s->mode != FQ_ADAPTER_BEFORE_QUANT)
        return qerr_set(err, "fakequant: power-of-two codes need adapter mode 0 (the scale never "
                             "depends on the adapter, so mode 1 would be the same quantizer)");
    return 0;
}

int fq_ngroups(const FqSpec *s) { return (s->in + s->group - 1) / s->group; }

size_t fq_scratch_floats(const FqSpec *s) { return 4 * (size_t)s->out * (size_t)fq_ngroups(s); }

size_t fq_work_floats(const FqSpec *s) { return s->rank > 0 ? (size_t)s->out * (size_t)s->in : 0; }

/* ------------------------------------------------------------------------ */
/* Per-group kernels. n = group length, x contiguous.                        */

static void grp_minmax(const float *x, int n, float *xmax, float *xmin) {
    float mx = x[0], mn = x[0];
    for (int j = 1; j < n; j++) {
        mx = x[j] > mx ? x[j] : mx;
        mn = x[j] < mn ? x[j] : mn;
    }
    *xmax = mx;
    *xmin = mn;
}

/* The group's grid from its (unclipped) max/min and clip factors. */
static void grp_grid(float xmax, float xmin, float fg, float fb, float qmax, float *s, float *z) {
    float hi = fg * xmax, lo = fb * xmin;
    float sc = (hi - lo) / qmax;
    sc = sc < FQ_SCALE_MIN ? FQ_SCALE_MIN : sc;
    *s = sc;
    *z = -nearbyintf(lo / sc);
}

/* The code of u (= x/s): clamp(round(u) + z, 0, qmax). */
static inline float grid_code(float u, float z, float qmax) {
    float t = nearbyintf(u) + z;
    t = t < 0.0f ? 0.0f : t;
    return t > qmax ? qmax : t;
}

/* out[j] = (code(x[j]/s) - z) * s. out may equal x. */
static void grp_quant_x(const float *x, int n, float s, float z, float qmax, float *out) {
    for (int j = 0; j < n; j++) out[j] = (grid_code(x[j] / s, z, qmax) - z) * s;
}

/* Mode 1: u = w/s + a/s. out may equal a. */
static void grp_quant_wa(const float *w, const float *a, int n, float s, float z, float qmax, float *out) {
    for (int j = 0; j < n; j++) out[j] = (grid_code(w[j] / s + a[j] / s, z, qmax) - z) * s;
}

static void grp_codes_x(const float *x, int n, float s, float z, float qmax, uint8_t *codes) {
    for (int j = 0; j < n; j++) codes[j] = (uint8_t)grid_code(x[j] / s, z, qmax);
}

static void grp_codes_wa(const float *w, const float *a, int n, float s, float z, float qmax,
                         uint8_t *codes) {
    for (int j = 0; j < n; j++) codes[j] = (uint8_t)grid_code(w[j] / s + a[j] / s, z, qmax);
}

/* Gradient of the group's loss w.r.t. s through What = (q - z)*s and
 * u = x/s, with dq/du = 1 (STE) inside the clamp range and 0 outside:
 *   ds = sum_j dy_j * ((q_j - z) - in_j * u_j)
 * For in-range elements (q - z) - u = round(u) - u, computed that way (exact
 * in float32, no cancellation). */
static float grp_dscale_x(const float *x, const float *dy, int n, float s, float z, float qmax) {
    float ds = 0.0f;
    for (int j = 0; j < n; j++) {
        float u = x[j] / s;
        float r = nearbyintf(u);
        float t = r + z;
        float e = t < 0.0f ? -z : (t > qmax ? qmax - z : r - u);
        ds += dy[j] * e;
    }
    return ds;
}

static float grp_dscale_wa(const float *w, const float *a, const float *dy, int n, float s, float z,
                           float qmax) {
    float ds = 0.0f;
    for (int j = 0; j < n; j++) {
        float u = w[j] / s + a[j] / s;
        float r = nearbyintf(u);
        float t = r + z;
        float e = t < 0.0f ? -z : (t > qmax ? qmax - z : r - u);
        ds += dy[j] * e;
    }
    return ds;
}

/* Mode 1: da[j] = dy[j] * [round(u_j) + z in [0, qmax]] (STE through round,
 * clamp mask), u = w/s + a/s. da may equal a. */
static void grp_dx_wa(const float *w, const float *a, const float *dy, int n, float s, float z, float qmax,
                      float *dx) {
    for (int j = 0; j < n; j++) {
        float t = nearbyintf(w[j] / s + a[j] / s) + z;
        dx[j] = (t >= 0.0f && t <= qmax) ? dy[j] : 0.0f;
    }
}

/* Mode 0: the number of elements equal to xmax and to xmin. */
static void grp_ties(const float *x, int n, float xmax, float xmin, int *cmax, int *cmin) {
    int a = 0, b = 0;
    for (int j = 0; j < n; j++) {
        a += x[j] == xmax;
        b += x[j] == xmin;
    }
    *cmax = a;
    *cmin = b;
}

/* Mode 0: dx[j] = masked dy[j] (STE, clamp mask) plus amax / amin at the
 * elements equal to gmax / gmin. dx may equal x. */
static void grp_dx_x(const float *x, const float *dy, int n, float s, float z, float qmax, float gmax,
                     float gmin, float amax, float amin, float *dx) {
    for (int j = 0; j < n; j++) {
        float xv = x[j];
        float t = nearbyintf(xv / s) + z;
        float d = (t >= 0.0f && t <= qmax) ? dy[j] : 0.0f;
        d += xv == gmax ? amax : 0.0f;
        d += xv == gmin ? amin : 0.0f;
        dx[j] = d;
    }
}

/* ------------------------------------------------------------------------ */
/* AVX2 versions of the mode-0 kernels: the same per-element operations as
 * the scalar ones above, 8 lanes at a time, scalar code for the tail.
 * select(c, a, b) = c ? a : b is _mm256_blendv_ps(b, a, c); the clamps
 * t < 0 ? 0 : t and t > qmax ? qmax : t are max(0, t) and min(qmax, t) with
 * the constant first (MAXPS/MINPS return the second operand unless the
 * first compares greater / less), which keeps -0 and NaN as the scalar
 * code does. */
#ifdef FQ_X86
#define FQ_AVX2 __attribute__((target("avx2")))
#define FQ_RND  (_MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC)

FQ_AVX2 static void grp_minmax_avx2(const float *x, int n, float *xmax, float *xmin) {
    if (n < 16) {
        grp_minmax(x, n, xmax, xmin);
        return;
    }
    __m256 mx = _mm256_set1_ps(x[0]), mn = mx;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        mx = _mm256_max_ps(v, mx); /* v > mx ? v : mx */
        mn = _mm256_min_ps(v, mn); /* v < mn ? v : mn */
    }
    float a[8], b[8];
    _mm256_storeu_ps(a, mx);
    _mm256_storeu_ps(b, mn);
    float m0 = a[0], m1 = b[0];
    for (int l = 1; l < 8; l++) {
        m0 = a[l] > m0 ? a[l] : m0;
        m1 = b[l] < m1 ? b[l] : m1;
    }
    for (; j < n; j++) {
        m0 = x[j] > m0 ? x[j] : m0;
        m1 = x[j] < m1 ? x[j] : m1;
    }
    /* The scalar scan keeps the first of equal values; only +0 and -0 are
     * equal but distinguishable: take the first zero's sign. */
    if (m0 == 0.0f || m1 == 0.0f)
        for (j = 0; j < n; j++)
            if (x[j] == 0.0f) {
                if (m0 == 0.0f) m0 = x[j];
                if (m1 == 0.0f) m1 = x[j];
                break;
            }
    *xmax = m0;
    *xmin = m1;
}

/* grid_code of 8 values x/s at once. */
FQ_AVX2 static inline __m256 grid_code8(const float *x, __m256 vs, __m256 vz, __m256 vq) {
    __m256 t = _mm256_add_ps(_mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x), vs), FQ_RND), vz);
    return _mm256_min_ps(vq, _mm256_max_ps(_mm256_setzero_ps(), t));
}

FQ_AVX2 static void grp_quant_x_avx2(const float *x, int n, float s, float z, float qmax, float *out) {
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), vq = _mm256_set1_ps(qmax);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_sub_ps(grid_code8(x + j, vs, vz, vq), vz), vs));
    if (j < n) grp_quant_x(x + j, n - j, s, z, qmax, out + j);
}

FQ_AVX2 static void grp_codes_x_avx2(const float *x, int n, float s, float z, float qmax, uint8_t *codes) {
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), vq = _mm256_set1_ps(qmax);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 t = grid_code8(x + j, vs, vz, vq);
        float tt[8];
        _mm256_storeu_ps(tt, t);
        for (int l = 0; l < 8; l++) codes[j + l] = (uint8_t)tt[l];
    }
    if (j < n) grp_codes_x(x + j, n - j, s, z, qmax, codes + j);
}

/* Also counts the ties with xmax / xmin (grp_ties) in the same pass. */
FQ_AVX2 static float grp_dscale_ties_x_avx2(const float *x, const float *dy, int n, float s, float z,
                                            float qmax, float xmax, float xmin, int *cmax, int *cmin) {
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), vq = _mm256_set1_ps(qmax);
    const __m256 v0 = _mm256_setzero_ps(), vnz = _mm256_set1_ps(-z), vqz = _mm256_set1_ps(qmax - z);
    const __m256 vmax = _mm256_set1_ps(xmax), vmin = _mm256_set1_ps(xmin);
    __m256 acc = _mm256_setzero_ps();
    __m256i ca = _mm256_setzero_si256(), cb = _mm256_setzero_si256();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 xv = _mm256_loadu_ps(x + j);
        __m256 u = _mm256_div_ps(xv, vs);
        __m256 r = _mm256_round_ps(u, FQ_RND);
        __m256 t = _mm256_add_ps(r, vz);
        /* e = t < 0 ? -z : (t > qmax ? qmax - z : r - u) */
        __m256 e = _mm256_blendv_ps(_mm256_sub_ps(r, u), vqz, _mm256_cmp_ps(t, vq, _CMP_GT_OQ));
        e = _mm256_blendv_ps(e, vnz, _mm256_cmp_ps(t, v0, _CMP_LT_OQ));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(dy + j), e));
        /* each equal lane is all ones (-1): subtracting counts it */
        ca = _mm256_sub_epi32(ca, _mm256_castps_si256(_mm256_cmp_ps(xv, vmax, _CMP_EQ_OQ)));
        cb = _mm256_sub_epi32(cb, _mm256_castps_si256(_mm256_cmp_ps(xv, vmin, _CMP_EQ_OQ)));
    }
    float a[8];
    int ia[8], ib[8];
    _mm256_storeu_ps(a, acc);
    _mm256_storeu_si256((__m256i *)ia, ca);
    _mm256_storeu_si256((__m256i *)ib, cb);
    float ds = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    int na = 0, nb = 0;
    for (int l = 0; l < 8; l++) {
        na += ia[l];
        nb += ib[l];
    }
    if (j < n) {
        int ta, tb;
        ds += grp_dscale_x(x + j, dy + j, n - j, s, z, qmax);
        grp_ties(x + j, n - j, xmax, xmin, &ta, &tb);
        na += ta;
        nb += tb;
    }
    *cmax = na;
    *cmin = nb;
    return ds;
}

FQ_AVX2 static void grp_dx_x_avx2(const float *x, const float *dy, int n, float s, float z, float qmax,
                                  float gmax, float gmin, float amax, float amin, float *dx) {
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), vq = _mm256_set1_ps(qmax);
    const __m256 v0 = _mm256_setzero_ps();
    const __m256 vgmax = _mm256_set1_ps(gmax), vgmin = _mm256_set1_ps(gmin);
    const __m256 vamax = _mm256_set1_ps(amax), vamin = _mm256_set1_ps(amin);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 xv = _mm256_loadu_ps(x + j);
        __m256 t = _mm256_add_ps(_mm256_round_ps(_mm256_div_ps(xv, vs), FQ_RND), vz);
        __m256 in = _mm256_and_ps(_mm256_cmp_ps(t, v0, _CMP_GE_OQ), _mm256_cmp_ps(t, vq, _CMP_LE_OQ));
        __m256 d = _mm256_blendv_ps(v0, _mm256_loadu_ps(dy + j), in);
        d = _mm256_add_ps(d, _mm256_blendv_ps(v0, vamax, _mm256_cmp_ps(xv, vgmax, _CMP_EQ_OQ)));
        d = _mm256_add_ps(d, _mm256_blendv_ps(v0, vamin, _mm256_cmp_ps(xv, vgmin, _CMP_EQ_OQ)));
        _mm256_storeu_ps(dx + j, d);
    }
    if (j < n) grp_dx_x(x + j, dy + j, n - j, s, z, qmax, gmax, gmin, amax, amin, dx + j);
}

/* (libgcc fills in the CPU model in a constructor, before any of this runs) */
static int fq_use_avx2(void) { return __builtin_cpu_supports("avx2") ? 1 : 0; }
#else
static int fq_use_avx2(void) { return 0; }
#define grp_minmax_avx2  grp_minmax
#define grp_quant_x_avx2 grp_quant_x
#define grp_codes_x_avx2 grp_codes_x
#define grp_dx_x_avx2    grp_dx_x
static float grp_dscale_ties_x_avx2(const float *x, const float *dy, int n, float s, float z, float qmax,
                                    float xmax, float xmin, int *cmax, int *cmin) {
    grp_ties(x, n, xmax, xmin, cmax, cmin);
    return grp_dscale_x(x, dy, n, s, z, qmax);
}
#endif

/* ------------------------------------------------------------------------ */

/* Rows per chunk (see the top of the file). */
int fq_chunk_rows(const FqSpec *s) {
    int r = FQ_CHUNK_FLOATS / s->in;
    if (r < FQ_CHUNK_MIN_ROWS) r = FQ_CHUNK_MIN_ROWS;
    return r < s->out ? r : s->out;
}

/* Rows [o0, o0+m) of the adapter product, Bd[o0:o0+m, :r] @ Bu[:r, :],
 * added to buf (beta = 1) or written (beta = 0); buf is (m, in). */
static void adapter_rows(const FqSpec *s, const float *Bd, const float *Bu, int o0, int m, float beta,
                         float *buf) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, s->in, s->rank, 1.0f, Bd + (size_t)o0 * s->R,
                s->R, Bu, s->in, beta, buf, s->in);
}

/* Rows [o0, o0+m): fills buf (m, in) with X = W + A (mode 0) or A (mode 1)
 * when rank > 0; returns the rows the grid statistics come from (X in buf,
 * or W's rows) and sets *adapter to A's rows in mode 1 (NULL otherwise). */
const float *fq_prepare_rows(const FqSpec *s, const float *W, const float *Bd, const float *Bu, int o0, int m,
                             float *buf, const float **adapter) {
    const float *Wr = W + (size_t)o0 * s->in;
    *adapter = NULL;
    if (s->rank == 0) return Wr;
    if (s->mode == FQ_ADAPTER_BEFORE_QUANT) {
        memcpy(buf, Wr, (size_t)m * (size_t)s->in * sizeof(float));
        adapter_rows(s, Bd, Bu, o0, m, 1.0f, buf);
        return buf;
    }
    adapter_rows(s, Bd, Bu, o0, m, 0.0f, buf);
    *adapter = buf;
    return Wr;
}

void fq_merge_adapter(const FqSpec *s, const float *W, const float *Bd, const float *Bu, float *X) {
    const int rc = fq_chunk_rows(s);
    for (int o0 = 0; o0 < s->out; o0 += rc) {
        const int m = s->out - o0 < rc ? s->out - o0 : rc;
        float *buf = X + (size_t)o0 * s->in;
        memcpy(buf, W + (size_t)o0 * s->in, (size_t)m * (size_t)s->in * sizeof(float));
        if (s->rank > 0) adapter_rows(s, Bd, Bu, o0, m, 1.0f, buf);
    }
}

/* Grid of one group (n floats at row, logits at gamma/beta[gi]): s, z, and
 * the unclipped xmax, xmin. */
static void group_grid(const FqSpec *s, const float *row, int n, const float *gamma, const float *beta,
                       size_t gi, float qmax, int avx2, float *sc, float *z, float *xmax, float *xmin) {
    float fg = 1.0f, fb = 1.0f;
    if (s->lwc) {
        fg = fq_sigmoid(gamma[gi]);
        fb = fq_sigmoid(beta[gi]);
    }
    if (avx2)
        grp_minmax_avx2(row, n, xmax, xmin);
    else
        grp_minmax(row, n, xmax, xmin);
    grp_grid(*xmax, *xmin, fg, fb, qmax, sc, z);
}

/* ------------------------------------------------------------------------ */
/* Power-of-two format (pot.h): the group scale is beta * max(1 + gamma,
 * POT_FACTOR_MIN) (gamma ignored when lwc == 0); the rows are prepared as in
 * mode 0 (X = W + A in the output / work buffer). */

static float pot_scale(const FqSpec *s, const float *gamma, const float *beta, size_t gi) {
    float f = s->lwc ? 1.0f + gamma[gi] : 1.0f;
    return beta[gi] * (f < POT_FACTOR_MIN ? POT_FACTOR_MIN : f);
}

static void pot_forward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                        const float *beta, float *What, float *scratch) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s), rc = fq_chunk_rows(s);
    const size_t ngt = (size_t)out * (size_t)ng;
    const int emax = pot_emax(s->bits);
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        float *Wh = What + (size_t)o0 * in;
        const float *A;
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, Wh, &A);
        for (int o = 0; o < m; o++)
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)(o0 + o) * ng + k;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                const float sc = pot_scale(s, gamma, beta, gi);
                pot_group_quant(X + off, n, sc, emax, Wh + off);
                if (scratch) {
                    scratch[gi] = sc;
                    scratch[ngt + gi] = beta[gi];
                    scratch[2 * ngt + gi] = scratch[3 * ngt + gi] = 0.0f;
                }
            }
    }
}

static void pot_backward(const FqSpec *s, const float *W, const float *Bd, const float *Bu,
                         const float *scratch, const float *dWhat, float *dgamma, float *dBd, float *dBu,
                         float *work) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s), rc = fq_chunk_rows(s);
    const size_t ngt = (size_t)out * (size_t)ng;
    const int emax = pot_emax(s->bits);
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        const float *A;
        /* X = W + A bitwise as the forward built it (rank > 0: in work, then
         * overwritten group by group with dX) */
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, work, &A);
        for (int o = 0; o < m; o++)
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)(o0 + o) * ng + k;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                const float *dy = dWhat + (size_t)(o0 + o) * in + (size_t)k * g;
                float ds =
                    pot_group_backward(X + off, dy, n, scratch[gi], emax, s->rank > 0 ? work + off : NULL);
                if (s->lwc && dgamma) dgamma[gi] += ds * scratch[ngt + gi];
            }
        if (s->rank == 0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, s->rank, in, 1.0f, work, in, Bu, in, 1.0f,
                    dBd + (size_t)o0 * s->R, s->R); /* dBd[rows, :r] += dX @ Bu[:r, :]^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->rank, in, m, 1.0f, Bd + (size_t)o0 * s->R,
                    s->R, work, in, 1.0f, dBu, in); /* dBu[:r, :] += Bd[rows, :r]^T @ dX */
    }
}

static void pot_codes(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                      const float *beta, uint8_t *codes, float *scales, float *zeros, float *work) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s), rc = fq_chunk_rows(s);
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        const float *A;
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, work, &A);
        uint8_t *cr = codes + (size_t)o0 * in;
        for (int o = 0; o < m; o++)
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)(o0 + o) * ng + k;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                const float sc = pot_scale(s, gamma, beta, gi);
                pot_group_codes(X + off, n, sc, s->bits, cr + off);
                scales[gi] = sc;
                zeros[gi] = 0.0f;
            }
    }
}

void fq_pot_init_scales(const FqSpec *s, const float *W, float *s0) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < ng; k++) {
            const int n = (k + 1) * g <= in ? g : in - k * g;
            s0[(size_t)o * ng + k] = pot_search_scale(W + (size_t)o * in + (size_t)k * g, n, s->bits);
        }
}

/* The integer grid, row chunk by row chunk: per group its scale and zero
 * point (group_grid), then either the fake-quantized values into What
 * (codes NULL: X or A is built in What's own rows and quantized in place) or
 * the codes into codes (X or A built in work). Per group gi, where not NULL:
 * the scale to scales[gi], the zero point to zeros[gi], the unclipped
 * extremes to extremes[gi] (max) and extremes[out * ngroups + gi] (min). */
static void int_groups(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                       const float *beta, float *What, uint8_t *codes, float *work, float *scales,
                       float *zeros, float *extremes) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s), rc = fq_chunk_rows(s);
    const size_t ngt = (size_t)out * (size_t)ng;
    const float qmax = (float)((1 << s->bits) - 1);
    const int avx2 = fq_use_avx2();
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        float *Wh = codes ? NULL : What + (size_t)o0 * in;
        uint8_t *cr = codes ? codes + (size_t)o0 * in : NULL;
        const float *A;
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, codes ? work : Wh, &A);
        const float *Wr = W + (size_t)o0 * in;
        for (int o = 0; o < m; o++) {
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)(o0 + o) * ng + k;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                float sc, z, xmax, xmin;
                group_grid(s, X + off, n, gamma, beta, gi, qmax, avx2, &sc, &z, &xmax, &xmin);
                if (codes) {
                    if (A)
                        grp_codes_wa(Wr + off, A + off, n, sc, z, qmax, cr + off);
                    else if (avx2)
                        grp_codes_x_avx2(X + off, n, sc, z, qmax, cr + off);
                    else
                        grp_codes_x(X + off, n, sc, z, qmax, cr + off);
                } else if (A) {
                    grp_quant_wa(Wr + off, A + off, n, sc, z, qmax, Wh + off);
                } else if (avx2) {
                    grp_quant_x_avx2(X + off, n, sc, z, qmax, Wh + off);
                } else {
                    grp_quant_x(X + off, n, sc, z, qmax, Wh + off);
                }
                if (scales) scales[gi] = sc;
                if (zeros) zeros[gi] = z;
                if (extremes) {
                    extremes[gi] = xmax;
                    extremes[ngt + gi] = xmin;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */

void fq_forward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                const float *beta, float *What, float *scratch) {
    if (s->format == FQ_FORMAT_POT) {
        pot_forward(s, W, Bd, Bu, gamma, beta, What, scratch);
        return;
    }
    if (s->format == FQ_FORMAT_GGUF) {
        fq_gguf_forward(s, W, Bd, Bu, gamma, beta, What, scratch);
        return;
    }
    const size_t ngt = (size_t)s->out * (size_t)fq_ngroups(s);
    if (scratch)
        int_groups(s, W, Bd, Bu, gamma, beta, What, NULL, NULL, scratch, scratch + ngt, scratch + 2 * ngt);
    else
        int_groups(s, W, Bd, Bu, gamma, beta, What, NULL, NULL, NULL, NULL, NULL);
}

/* fq_backward and fq_backward_w: dW == NULL skips the input gradient (TEQ
 * needs it; PoT codes have no weight gradient here: TEQ with PoT is refused
 * by quant_config_validate). */
static void backward_impl(const FqSpec *s, const float *W, const float *Bd, const float *Bu,
                          const float *gamma, const float *beta, const float *scratch, const float *dWhat,
                          float *dgamma, float *dbeta, float *dBd, float *dBu, float *dW, float *work) {
    if (s->format == FQ_FORMAT_POT) {
        pot_backward(s, W, Bd, Bu, scratch, dWhat, dgamma, dBd, dBu, work);
        return;
    }
    if (s->format == FQ_FORMAT_GGUF) {
        fq_gguf_backward(s, W, Bd, Bu, gamma, beta, scratch, dWhat, dgamma, dbeta, dBd, dBu, dW, work);
        return;
    }
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s), rc = fq_chunk_rows(s);
    const size_t ngt = (size_t)out * (size_t)ng;
    const float qmax = (float)((1 << s->bits) - 1);
    const int mode0 = s->mode == FQ_ADAPTER_BEFORE_QUANT;
    const int avx2 = fq_use_avx2();
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        const float *A;
        /* The forward's chunk and sgemm: work holds X (mode 0) or A (mode 1)
         * bitwise as the forward saw it; it is overwritten group by group
         * with dX / dA. */
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, work, &A);
        const float *Wr = W + (size_t)o0 * in;
        for (int o = 0; o < m; o++) {
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)(o0 + o) * ng + k;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                const float sc = scratch[gi], z = scratch[ngt + gi];
                const float xmax = scratch[2 * ngt + gi], xmin = scratch[3 * ngt + gi];
                const float *dy = dWhat + (size_t)(o0 + o) * in + (size_t)k * g;
                float fg = 1.0f, fb = 1.0f;
                if (s->lwc) {
                    fg = fq_sigmoid(gamma[gi]);
                    fb = fq_sigmoid(beta[gi]);
                }
                /* ds flows unchanged through max(., 1e-5) into the range:
                 * s = (fg*xmax - fb*xmin)/qmax. In mode 0 with an adapter,
                 * the ties with xmax / xmin are counted in the same pass. */
                int cmax = 0, cmin = 0;
                float ds;
                if (A)
                    ds = grp_dscale_wa(Wr + off, A + off, dy, n, sc, z, qmax);
                else if (s->rank > 0 && avx2)
                    ds = grp_dscale_ties_x_avx2(X + off, dy, n, sc, z, qmax, xmax, xmin, &cmax, &cmin);
                else {
                    ds = grp_dscale_x(X + off, dy, n, sc, z, qmax);
                    if (s->rank > 0) grp_ties(X + off, n, xmax, xmin, &cmax, &cmin);
                }
                float dr = ds / qmax;
                if (s->lwc) {
                    if (dgamma) dgamma[gi] += dr * xmax * fg * (1.0f - fg);
                    if (dbeta) dbeta[gi] += -dr * xmin * fb * (1.0f - fb);
                }
                /* X = W (or A = 0) and W frozen: nothing else learns */
                if (s->rank == 0 && !dW) continue;
                const float dmax = dr * fg, dmin = -dr * fb;
                float *dWg = dW ? dW + (size_t)(o0 + o) * in + (size_t)k * g : NULL;
                if (!mode0 && s->rank > 0) {
                    /* mode 1: xmax/xmin come from W; dA = STE-masked dy. */
                    grp_dx_wa(Wr + off, work + off, dy, n, sc, z, qmax, work + off);
                    if (dWg) { /* dW = dA + the grid's max/min terms at W's extremes */
                        grp_ties(Wr + off, n, xmax, xmin, &cmax, &cmin);
                        const float am = dmax / (float)cmax, an = dmin / (float)cmin;
                        for (int j = 0; j < n; j++)
                            dWg[j] = work[off + j] + (Wr[off + j] == xmax ? am : 0.0f) +
                                     (Wr[off + j] == xmin ? an : 0.0f);
                    }
                    continue;
                }
                /* mode 0 (or rank 0, where X = W): dX = masked dy, plus d max /
                 * d min at the arg-max / arg-min element(s), split evenly
                 * between exact ties. At rank 0 X is W's rows (read-only) and
                 * dX goes straight to dW. */
                const float *xg = X + off;
                float *dxg = s->rank > 0 ? work + off : dWg;
                float gmax = xmax, gmin = xmin;
                if (cmax == 0 || cmin == 0) {
                    /* Only if the recomputed X differs from the forward's (it
                     * does not with a deterministic sgemm): use this X's own
                     * extremes so the gradient is never lost. */
                    grp_minmax(xg, n, &gmax, &gmin);
                    grp_ties(xg, n, gmax, gmin, &cmax, &cmin);
                }
                const float amax = dmax / (float)cmax, amin = dmin / (float)cmin;
                if (avx2)
                    grp_dx_x_avx2(xg, dy, n, sc, z, qmax, gmax, gmin, amax, amin, dxg);
                else
                    grp_dx_x(xg, dy, n, sc, z, qmax, gmax, gmin, amax, amin, dxg);
                if (dWg && s->rank > 0) memcpy(dWg, dxg, (size_t)n * sizeof(float));
            }
        }
        if (s->rank == 0) continue;
        /* work now holds this chunk's dX = dA (m, in). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, s->rank, in, 1.0f, work, in, Bu, in, 1.0f,
                    dBd + (size_t)o0 * s->R, s->R); /* dBd[rows, :r] += dA @ Bu[:r, :]^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->rank, in, m, 1.0f, Bd + (size_t)o0 * s->R,
                    s->R, work, in, 1.0f, dBu, in); /* dBu[:r, :] += Bd[rows, :r]^T @ dA */
    }
}

void fq_backward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                 const float *beta, const float *scratch, const float *dWhat, float *dgamma, float *dbeta,
                 float *dBd, float *dBu, float *work) {
    backward_impl(s, W, Bd, Bu, gamma, beta, scratch, dWhat, dgamma, dbeta, dBd, dBu, NULL, work);
}

void fq_backward_w(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                   const float *beta, const float *scratch, const float *dWhat, float *dgamma, float *dbeta,
                   float *dBd, float *dBu, float *dW, float *work) {
    backward_impl(s, W, Bd, Bu, gamma, beta, scratch, dWhat, dgamma, dbeta, dBd, dBu, dW, work);
}

void fq_rtn(const FqSpec *s, const float *W, float *What) {
    if (s->format == FQ_FORMAT_POT) { /* data-free scales, searched per group */
        const int in = s->in, g = s->group, ng = fq_ngroups(s), emax = pot_emax(s->bits);
        for (int o = 0; o < s->out; o++)
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                pot_group_quant(W + off, n, pot_search_scale(W + off, n, s->bits), emax, What + off);
            }
        return;
    }
    FqSpec r = *s;
    r.rank = 0;
    r.R = 0;
    r.lwc = 0;
    r.mode = FQ_ADAPTER_BEFORE_QUANT;
    fq_forward(&r, W, NULL, NULL, NULL, NULL, What, NULL);
}

void fq_quantize_codes(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                       const float *beta, uint8_t *codes, float *scales, float *zeros, float *work) {
    if (s->format == FQ_FORMAT_POT) {
        if (!beta) { /* no parameters (rtn): the data-free scales */
            FqSpec r = *s;
            r.rank = 0;
            r.lwc = 0;
            fq_pot_init_scales(&r, W, scales);
            pot_codes(&r, W, NULL, NULL, NULL, scales, codes, scales, zeros, NULL);
            return;
        }
        pot_codes(s, W, Bd, Bu, gamma, beta, codes, scales, zeros, work);
        return;
    }
    int_groups(s, W, Bd, Bu, gamma, beta, NULL, codes, work, scales, zeros, NULL);
}

void fq_dequantize(const FqSpec *s, const uint8_t *codes, const float *scales, const float *zeros,
                   float *What) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    if (s->format == FQ_FORMAT_POT) {
        for (int o = 0; o < out; o++)
            for (int k = 0; k < ng; k++) {
                const size_t off = (size_t)o * in + (size_t)k * g;
                const int n = (k + 1) * g <= in ? g : in - k * g;
                pot_group_dequant(codes + off, n, scales[(size_t)o * ng + k], s->bits, What + off);
            }
        return;
    }
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < ng; k++) {
            const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)o * ng + k;
            const int n = (k + 1) * g <= in ? g : in - k * g;
            const float sc = scales[gi], z = zeros[gi];
            for (int j = 0; j < n; j++) What[off + j] = ((float)codes[off + j] - z) * sc;
        }
    }
}
