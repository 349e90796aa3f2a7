/* fakequant.c — LWC fake quantization with MB-CLoRA adapters, forward and
 * backward. The math and its gradients are spelled out in fakequant.h.
 *
 * Layout of the work: the adapter product goes through cblas_sgemm; every
 * other step is a per-group loop over contiguous floats (min/max, quantize,
 * gradient) that the compiler vectorises. The per-group kernels are written
 * once and shared by forward, backward, codes and RTN, so all of them use the
 * same grid bit for bit. */
#include "fakequant.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#define FQ_SCALE_MIN 1e-5f

int fq_spec_check(const FqSpec *s, QErr *err) {
    if (!s) return qerr_set(err, "fakequant: spec is NULL");
    if (s->out <= 0 || s->in <= 0)
        return qerr_set(err, "fakequant: shape (%d, %d): both must be > 0", s->out, s->in);
    if ((long long)s->out * s->in > INT_MAX)
        return qerr_set(err, "fakequant: shape (%d, %d) has more than INT_MAX elements", s->out,
                        s->in);
    if (s->bits < 1 || s->bits > 8)
        return qerr_set(err, "fakequant: bits %d: expected 1..8", s->bits);
    if (s->group < 1 || s->group > s->in)
        return qerr_set(err, "fakequant: group %d: expected 1..in (%d)", s->group, s->in);
    if (s->R < 0 || s->rank < 0 || s->rank > s->R)
        return qerr_set(err, "fakequant: rank %d of R %d: expected 0 <= rank <= R", s->rank, s->R);
    if ((long long)s->R * (s->out > s->in ? s->out : s->in) > INT_MAX)
        return qerr_set(err, "fakequant: adapter rank %d too large for shape (%d, %d)", s->R,
                        s->out, s->in);
    if (s->mode != FQ_ADAPTER_BEFORE_QUANT && s->mode != FQ_ADAPTER_AFTER_SCALE)
        return qerr_set(err, "fakequant: mode %d: expected 0 (adapter before quant) or 1 "
                             "(adapter after scaling)", s->mode);
    if (s->lwc != 0 && s->lwc != 1) return qerr_set(err, "fakequant: lwc %d: expected 0 or 1", s->lwc);
    return 0;
}

int fq_ngroups(const FqSpec *s) { return (s->in + s->group - 1) / s->group; }

size_t fq_scratch_floats(const FqSpec *s) { return 4 * (size_t)s->out * (size_t)fq_ngroups(s); }

size_t fq_work_floats(const FqSpec *s) { return s->rank > 0 ? (size_t)s->out * (size_t)s->in : 0; }

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

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

/* out[j] = (clamp(round(x[j]/s) + z, 0, qmax) - z) * s. out may equal x. */
static void grp_quant_x(const float *x, int n, float s, float z, float qmax, float *out) {
    for (int j = 0; j < n; j++) {
        float t = nearbyintf(x[j] / s) + z;
        t = t < 0.0f ? 0.0f : t;
        t = t > qmax ? qmax : t;
        out[j] = (t - z) * s;
    }
}

/* Mode 1: u = w/s + a/s. out may equal a. */
static void grp_quant_wa(const float *w, const float *a, int n, float s, float z, float qmax,
                         float *out) {
    for (int j = 0; j < n; j++) {
        float t = nearbyintf(w[j] / s + a[j] / s) + z;
        t = t < 0.0f ? 0.0f : t;
        t = t > qmax ? qmax : t;
        out[j] = (t - z) * s;
    }
}

static void grp_codes_x(const float *x, int n, float s, float z, float qmax, uint8_t *codes) {
    for (int j = 0; j < n; j++) {
        float t = nearbyintf(x[j] / s) + z;
        t = t < 0.0f ? 0.0f : t;
        t = t > qmax ? qmax : t;
        codes[j] = (uint8_t)t;
    }
}

static void grp_codes_wa(const float *w, const float *a, int n, float s, float z, float qmax,
                         uint8_t *codes) {
    for (int j = 0; j < n; j++) {
        float t = nearbyintf(w[j] / s + a[j] / s) + z;
        t = t < 0.0f ? 0.0f : t;
        t = t > qmax ? qmax : t;
        codes[j] = (uint8_t)t;
    }
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

static float grp_dscale_wa(const float *w, const float *a, const float *dy, int n, float s,
                           float z, float qmax) {
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
static void grp_dx_wa(const float *w, const float *a, const float *dy, int n, float s, float z,
                      float qmax, float *dx) {
    for (int j = 0; j < n; j++) {
        float t = nearbyintf(w[j] / s + a[j] / s) + z;
        dx[j] = (t >= 0.0f && t <= qmax) ? dy[j] : 0.0f;
    }
}

/* ------------------------------------------------------------------------ */

/* dst (out, in) = Bd[:, :r] @ Bu[:r, :] + beta*dst. */
static void adapter_product(const FqSpec *s, const float *Bd, const float *Bu, float beta,
                            float *dst) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out, s->in, s->rank, 1.0f, Bd, s->R,
                Bu, s->in, beta, dst, s->in);
}

/* Fills buf with X = W + A (mode 0) or A (mode 1) when rank > 0; returns the
 * pointer the grid statistics come from (X, or W) and sets *adapter to A in
 * mode 1 (NULL otherwise). */
static const float *prepare_x(const FqSpec *s, const float *W, const float *Bd, const float *Bu,
                              float *buf, const float **adapter) {
    *adapter = NULL;
    if (s->rank == 0) return W;
    if (s->mode == FQ_ADAPTER_BEFORE_QUANT) {
        memcpy(buf, W, (size_t)s->out * (size_t)s->in * sizeof(float));
        adapter_product(s, Bd, Bu, 1.0f, buf);
        return buf;
    }
    adapter_product(s, Bd, Bu, 0.0f, buf);
    *adapter = buf;
    return W;
}

/* Grid of one group (n floats at row, logits at gamma/beta[gi]): s, z, and
 * the unclipped xmax, xmin. */
static void group_grid(const FqSpec *s, const float *row, int n, const float *gamma,
                       const float *beta, size_t gi, float qmax, float *sc, float *z, float *xmax,
                       float *xmin) {
    float fg = 1.0f, fb = 1.0f;
    if (s->lwc) {
        fg = sigmoidf(gamma[gi]);
        fb = sigmoidf(beta[gi]);
    }
    grp_minmax(row, n, xmax, xmin);
    grp_grid(*xmax, *xmin, fg, fb, qmax, sc, z);
}

void fq_forward(const FqSpec *s, const float *W, const float *Bd, const float *Bu,
                const float *gamma, const float *beta, float *What, float *scratch) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    const size_t ngt = (size_t)out * (size_t)ng;
    const float qmax = (float)((1 << s->bits) - 1);
    const float *A;
    /* X (mode 0) or A (mode 1) is built in What and quantized in place. */
    const float *X = prepare_x(s, W, Bd, Bu, What, &A);
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < ng; k++) {
            const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)o * ng + k;
            const int n = (k + 1) * g <= in ? g : in - k * g;
            float sc, z, xmax, xmin;
            group_grid(s, X + off, n, gamma, beta, gi, qmax, &sc, &z, &xmax, &xmin);
            if (A)
                grp_quant_wa(W + off, A + off, n, sc, z, qmax, What + off);
            else
                grp_quant_x(X + off, n, sc, z, qmax, What + off);
            if (scratch) {
                scratch[gi] = sc;
                scratch[ngt + gi] = z;
                scratch[2 * ngt + gi] = xmax;
                scratch[3 * ngt + gi] = xmin;
            }
        }
    }
}

void fq_backward(const FqSpec *s, const float *W, const float *Bd, const float *Bu,
                 const float *gamma, const float *beta, const float *scratch,
                 const float *dWhat, float *dgamma, float *dbeta, float *dBd, float *dBu,
                 float *work) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    const size_t ngt = (size_t)out * (size_t)ng;
    const float qmax = (float)((1 << s->bits) - 1);
    const int mode0 = s->mode == FQ_ADAPTER_BEFORE_QUANT;
    const float *A;
    /* Same sgemm as the forward: work holds X (mode 0) or A (mode 1) bitwise
     * as the forward saw it; it is overwritten group by group with dX / dA. */
    const float *X = prepare_x(s, W, Bd, Bu, work, &A);
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < ng; k++) {
            const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)o * ng + k;
            const int n = (k + 1) * g <= in ? g : in - k * g;
            const float sc = scratch[gi], z = scratch[ngt + gi];
            const float xmax = scratch[2 * ngt + gi], xmin = scratch[3 * ngt + gi];
            const float *dy = dWhat + off;
            float fg = 1.0f, fb = 1.0f;
            if (s->lwc) {
                fg = sigmoidf(gamma[gi]);
                fb = sigmoidf(beta[gi]);
            }
            /* ds flows unchanged through max(., 1e-5) into the range:
             * s = (fg*xmax - fb*xmin)/qmax. */
            float ds = A ? grp_dscale_wa(W + off, A + off, dy, n, sc, z, qmax)
                         : grp_dscale_x(X + off, dy, n, sc, z, qmax);
            float dr = ds / qmax;
            if (s->lwc) {
                if (dgamma) dgamma[gi] += dr * xmax * fg * (1.0f - fg);
                if (dbeta) dbeta[gi] += -dr * xmin * fb * (1.0f - fb);
            }
            if (s->rank == 0) continue; /* X = W (or A = 0): nothing else learns */
            if (!mode0) {
                /* mode 1: xmax/xmin come from frozen W; dA = STE-masked dy. */
                grp_dx_wa(W + off, work + off, dy, n, sc, z, qmax, work + off);
                continue;
            }
            /* mode 0: dX = masked dy, plus d max / d min at the arg-max /
             * arg-min element(s), split evenly between exact ties. */
            const float dmax = dr * fg, dmin = -dr * fb;
            float *xg = work + off;
            int cmax = 0, cmin = 0;
            for (int j = 0; j < n; j++) {
                cmax += xg[j] == xmax;
                cmin += xg[j] == xmin;
            }
            float gmax = xmax, gmin = xmin;
            if (cmax == 0 || cmin == 0) {
                /* Only if the recomputed X differs from the forward's (it
                 * does not with a deterministic sgemm): use this X's own
                 * extremes so the gradient is never lost. */
                grp_minmax(xg, n, &gmax, &gmin);
                cmax = cmin = 0;
                for (int j = 0; j < n; j++) {
                    cmax += xg[j] == gmax;
                    cmin += xg[j] == gmin;
                }
            }
            const float amax = dmax / (float)cmax, amin = dmin / (float)cmin;
            for (int j = 0; j < n; j++) {
                float x = xg[j];
                float t = nearbyintf(x / sc) + z;
                float d = (t >= 0.0f && t <= qmax) ? dy[j] : 0.0f;
                d += x == gmax ? amax : 0.0f;
                d += x == gmin ? amin : 0.0f;
                xg[j] = d;
            }
        }
    }
    if (s->rank == 0) return;
    /* work now holds dX = dA (out, in). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, out, s->rank, in, 1.0f, work, in, Bu, in,
                1.0f, dBd, s->R); /* dBd[:, :r] += dA @ Bu[:r, :]^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->rank, in, out, 1.0f, Bd, s->R, work, in,
                1.0f, dBu, in); /* dBu[:r, :] += Bd[:, :r]^T @ dA */
}

void fq_rtn(const FqSpec *s, const float *W, float *What) {
    FqSpec r = *s;
    r.rank = 0;
    r.R = 0;
    r.lwc = 0;
    r.mode = FQ_ADAPTER_BEFORE_QUANT;
    fq_forward(&r, W, NULL, NULL, NULL, NULL, What, NULL);
}

void fq_quantize_codes(const FqSpec *s, const float *W, const float *Bd, const float *Bu,
                       const float *gamma, const float *beta, uint8_t *codes, float *scales,
                       float *zeros, float *work) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    const float qmax = (float)((1 << s->bits) - 1);
    const float *A;
    const float *X = prepare_x(s, W, Bd, Bu, work, &A);
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < ng; k++) {
            const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)o * ng + k;
            const int n = (k + 1) * g <= in ? g : in - k * g;
            float sc, z, xmax, xmin;
            group_grid(s, X + off, n, gamma, beta, gi, qmax, &sc, &z, &xmax, &xmin);
            if (A)
                grp_codes_wa(W + off, A + off, n, sc, z, qmax, codes + off);
            else
                grp_codes_x(X + off, n, sc, z, qmax, codes + off);
            scales[gi] = sc;
            zeros[gi] = z;
        }
    }
}

void fq_dequantize(const FqSpec *s, const uint8_t *codes, const float *scales, const float *zeros,
                   float *What) {
    const int out = s->out, in = s->in, g = s->group, ng = fq_ngroups(s);
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < ng; k++) {
            const size_t off = (size_t)o * in + (size_t)k * g, gi = (size_t)o * ng + k;
            const int n = (k + 1) * g <= in ? g : in - k * g;
            const float sc = scales[gi], z = zeros[gi];
            for (int j = 0; j < n; j++) What[off + j] = ((float)codes[off + j] - z) * sc;
        }
    }
}
