/* layers_forward.c — forward passes of the decoder-block layers. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "rope_internal.h"

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0.0; /* double: C is up to a few thousand */
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int i = 0; i < C; i++) o[i] = x[i] * r * weight[i];
        if (rstd) rstd[n] = r;
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC,
                0.0f, out, OC);
    if (bias) {
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int i = 0; i < OC; i++) o[i] += bias[i];
        }
    }
}

int rope_table_init(RopeTable *rt, int T, int head_dim, float theta, int halves) {
    int half = head_dim / 2;
    rt->T = T;
    rt->head_dim = head_dim;
    rt->halves = halves;
    rt->cos_t = malloc(sizeof(float) * (size_t)T * half);
    rt->sin_t = malloc(sizeof(float) * (size_t)T * half);
    if (!rt->cos_t || !rt->sin_t) {
        rope_table_free(rt);
        return -1;
    }
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            /* the same frequency for pair i in both conventions */
            double freq = pow((double)theta, -(2.0 * i) / head_dim);
            double a = t * freq;
            rt->cos_t[(size_t)t * half + i] = (float)cos(a);
            rt->sin_t[(size_t)t * half + i] = (float)sin(a);
        }
    }
    return 0;
}

void rope_table_free(RopeTable *rt) {
    free(rt->cos_t);
    free(rt->sin_t);
    rt->cos_t = rt->sin_t = NULL;
}

void rope_forward(float *x, const RopeTable *rt, int B, int T, int n_heads) {
    rope_rotate(x, rt, B, T, n_heads, 1.0f);
}

/* Causal attention works on row tiles of ATT_TILE queries: tile [t0, t1)
 * only needs keys [0, t1), so the products skip the blocks above the
 * diagonal (about 3/8 of the full T x T work at T = 512). */
#define ATT_TILE 128

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int NH, int NKV, int hd, int save_att) {
    int QD = NH * hd, KVD = NKV * hd, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            const float *qh = q + (size_t)b * T * QD + (size_t)h * hd;
            const float *kh = k + (size_t)b * T * KVD + (size_t)kvh * hd;
            const float *vh = v + (size_t)b * T * KVD + (size_t)kvh * hd;
            float *P = save_att ? att + ((size_t)b * NH + h) * T * T : att;
            float *oh = out + (size_t)b * T * QD + (size_t)h * hd;
            for (int t0 = 0; t0 < T; t0 += ATT_TILE) {
                int t1 = t0 + ATT_TILE < T ? t0 + ATT_TILE : T, m = t1 - t0;
                float *Pt = P + (size_t)t0 * T;
                /* scores (m, t1) = scale * Q_h[t0:t1] K_h[0:t1]^T; only s <= t is used */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, t1, hd, scale,
                            qh + (size_t)t0 * QD, QD, kh, KVD, 0.0f, Pt, T);
                for (int t = t0; t < t1; t++) {
                    float *row = P + (size_t)t * T;
                    float mx = row[0];
                    for (int s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                    float sum = 0.0f;
                    for (int s = 0; s <= t; s++) {
                        row[s] = expf(row[s] - mx);
                        sum += row[s];
                    }
                    float inv = 1.0f / sum;
                    for (int s = 0; s <= t; s++) row[s] *= inv;
                    for (int s = t + 1; s < T; s++) row[s] = 0.0f;
                }
                /* out_h[t0:t1] (m, hd) = P[t0:t1, 0:t1] V_h[0:t1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, t1, 1.0f, Pt, T, vh,
                            KVD, 0.0f, oh + (size_t)t0 * QD, QD);
            }
        }
    }
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
