/* layers_backward.c — backward passes of the decoder-block layers.
 *
 * Every function ACCUMULATES (+=) into its d-inputs (layers.h); NULL
 * d-pointers are skipped (frozen weights, or an input whose gradient nobody
 * needs). The heavy math is in sgemm; the per-element loops are plain
 * and vectorisable. */
#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "layers.h"
#include "rope_internal.h"

#include "layers_internal.h"

/* out_i = x_i * r * w_i with r = (mean(x^2) + eps)^-1/2, so
 *   dx_j = r * w_j * dout_j - (r^3 / C) * x_j * sum_i dout_i * w_i * x_i
 *   dw_i = sum_n dout_i * x_i * r */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *g = dout + (size_t)n * C;
        float r = rstd[n];
        if (dinp) {
            float *dx = dinp + (size_t)n * C;
            double dot = 0.0; /* double, like the forward's sum of squares */
            for (int i = 0; i < C; i++) dot += (double)g[i] * weight[i] * x[i];
            float k = (float)(dot * r * r * r / C);
            for (int i = 0; i < C; i++) dx[i] += r * weight[i] * g[i] - k * x[i];
        }
        if (dweight) {
            for (int i = 0; i < C; i++) dweight[i] += g[i] * x[i] * r;
        }
    }
}

/* out (N,OC) = inp (N,IC) @ W (OC,IC)^T + bias:
 *   dinp (N,IC) += dout (N,OC) @ W (OC,IC)
 *   dW (OC,IC)  += dout^T (OC,N) @ inp (N,IC)
 *   dbias (OC)  += column sums of dout */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int IC, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight,
                    IC, 1.0f, dinp, IC);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC,
                    1.0f, dweight, IC);
    if (dbias) {
        for (int n = 0; n < N; n++) {
            const float *g = dout + (size_t)n * OC;
            for (int i = 0; i < OC; i++) dbias[i] += g[i];
        }
    }
}

/* The rotation is orthogonal: its transpose is the rotation by -angle. In
 * place (dx holds d/d(rotated x) on entry, d/d(x) on return). */
void rope_backward(float *dx, const RopeTable *rt, int B, int T, int n_heads) {
    rope_rotate(dx, rt, B, T, n_heads, -1.0f);
}

/* Per (b, h), with S = scale * Q_h K_h^T (causal), P = softmax(S), O = P V_h:
 *   dP  = dO V_h^T                 dV_h += P^T dO
 *   dS  = P * (dP - rowsum(dP * P))
 *   dQ_h += scale * dS K_h         dK_h += scale * dS^T Q_h
 * Query heads h of one group share kv head h / group, so dK/dV accumulate
 * over the group. Strides are those of attention_forward. The products run
 * on row tiles of ATT_TILE queries [t0, t1), which only involve keys
 * [0, t1): the blocks above the diagonal (P = dS = 0 there) are skipped.
 * The (b, kv head) pairs run in parallel (layers_parallel_for: each owns its
 * dK/dV rows; threads other than the caller get their own datt). */
#define ATT_TILE 128

typedef struct {
    float *dq, *dk, *dv, *datt, *datt_extra;
    const float *dout, *q, *k, *v, *att;
    int T, NH, NKV, hd;
} AttBwd;

static void attention_backward_group(void *ctx, int i, int tid) {
    const AttBwd *a = ctx;
    int T = a->T, NH = a->NH, NKV = a->NKV, hd = a->hd, group = NH / NKV;
    int b = i / NKV, kvh = i % NKV, QD = NH * hd, KVD = NKV * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *datt = tid == 0 ? a->datt : a->datt_extra + (size_t)(tid - 1) * T * T;
    size_t kvoff = (size_t)b * T * KVD + (size_t)kvh * hd;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        size_t qoff = (size_t)b * T * QD + (size_t)h * hd;
        const float *P = a->att + ((size_t)b * NH + h) * T * T;
        const float *doh = a->dout + qoff;
        for (int t0 = 0; t0 < T; t0 += ATT_TILE) {
            int t1 = t0 + ATT_TILE < T ? t0 + ATT_TILE : T, m = t1 - t0;
            const float *Pt = P + (size_t)t0 * T;
            const float *dot0 = doh + (size_t)t0 * QD;
            float *dSt = datt + (size_t)t0 * T;
            /* dP[t0:t1, 0:t1] = dO_h[t0:t1] V_h[0:t1]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, t1, hd, 1.0f, dot0, QD,
                        a->v + kvoff, KVD, 0.0f, dSt, T);
            /* dV_h[0:t1] += P[t0:t1, 0:t1]^T dO_h[t0:t1] */
            if (a->dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, hd, m, 1.0f, Pt, T, dot0,
                            QD, 1.0f, a->dv + kvoff, KVD);
            /* softmax backward, in place on the tile's rows of datt */
            for (int t = t0; t < t1; t++) {
                const float *p = P + (size_t)t * T;
                float *d = datt + (size_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s <= t; s++) dot += d[s] * p[s];
                for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot);
                for (int s = t + 1; s < t1; s++) d[s] = 0.0f;
            }
            /* dQ_h[t0:t1] += scale * dS[t0:t1, 0:t1] K_h[0:t1] */
            if (a->dq)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, t1, scale, dSt, T,
                            a->k + kvoff, KVD, 1.0f, a->dq + qoff + (size_t)t0 * QD, QD);
            /* dK_h[0:t1] += scale * dS[t0:t1, 0:t1]^T Q_h[t0:t1] */
            if (a->dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, hd, m, scale, dSt, T,
                            a->q + qoff + (size_t)t0 * QD, QD, 1.0f, a->dk + kvoff, KVD);
        }
    }
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                        const float *q, const float *k, const float *v, const float *att,
                        int B, int T, int NH, int NKV, int hd) {
    int nt = layers_attention_threads();
    if (nt > B * NKV) nt = B * NKV;
    float *extra = NULL;
    if (nt > 1) {
        extra = malloc((size_t)(nt - 1) * T * T * sizeof(float));
        if (!extra) nt = 1; /* no scratch for more threads: run in turn */
    }
    AttBwd a = {dq, dk, dv, datt, extra, dout, q, k, v, att, T, NH, NKV, hd};
    layers_parallel_for(B * NKV, nt, attention_backward_group, &a);
    free(extra);
}

/* out = silu(g) * u, silu(g) = g * sig(g):
 *   dg += dout * u * sig(g) * (1 + g * (1 - sig(g)))     du += dout * silu(g)
 * In chunks: one vectorized exp per element for both gradients. */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n) {
    enum { CH = 1024 };
    float e[CH];
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        size_t m = n - i0 < CH ? n - i0 : CH;
        const float *g = gate + i0, *d = dout + i0;
        for (size_t i = 0; i < m; i++) e[i] = -g[i];
        layers_vexpf(e, e, m);
        for (size_t i = 0; i < m; i++) e[i] += 1.0f; /* 1 + e^-g */
        if (dgate) {
            const float *u = up + i0;
            float *dg = dgate + i0;
            for (size_t i = 0; i < m; i++) {
                float sg = 1.0f / e[i];
                dg[i] += d[i] * u[i] * (sg + g[i] * sg * (1.0f - sg));
            }
        }
        if (dup) {
            float *du = dup + i0;
            for (size_t i = 0; i < m; i++) du[i] += d[i] * g[i] / e[i];
        }
    }
}
