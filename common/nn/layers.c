/* layers.c — the decoder-block layers (layers.h), each layer's forward
 * followed by its backward.
 *
 * Every backward ACCUMULATES (+=) into its d-inputs (layers.h); NULL
 * d-pointers are skipped (frozen weights, or an input whose gradient nobody
 * needs). The heavy math is in sgemm; the per-element loops are plain
 * and vectorisable. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define LAYERS_X86 1
#endif

/* y[i] = e^x[i] (y may equal x). On CPUs with AVX2+FMA (checked at run
 * time; the build targets x86-64-v2) 8 lanes at a time with the Cephes
 * single-precision polynomial (max error ~1 ulp against expf's ~0.5); a
 * vector holding any x outside [-87, 88] (or NaN) goes through expf, so
 * underflow to subnormals / 0, overflow to inf and NaN behave exactly as
 * expf. */
#ifdef LAYERS_X86
__attribute__((target("avx2,fma"))) static void vexpf_avx2(const float *x, float *y, size_t n) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 p0 = _mm256_set1_ps(1.9875691500e-4f), p1 = _mm256_set1_ps(1.3981999507e-3f);
    const __m256 p2 = _mm256_set1_ps(8.3334519073e-3f), p3 = _mm256_set1_ps(4.1665795894e-2f);
    const __m256 p4 = _mm256_set1_ps(1.6666665459e-1f), p5 = _mm256_set1_ps(5.0000001201e-1f);
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 ok = _mm256_and_ps(_mm256_cmp_ps(v, lo, _CMP_GE_OQ), _mm256_cmp_ps(v, hi, _CMP_LE_OQ));
        if (_mm256_movemask_ps(ok) != 0xff) {
            for (int l = 0; l < 8; l++) y[i + l] = expf(x[i + l]);
            continue;
        }
        __m256 fn = _mm256_round_ps(_mm256_mul_ps(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fnmadd_ps(fn, ln2_hi, v);
        r = _mm256_fnmadd_ps(fn, ln2_lo, r);
        __m256 r2 = _mm256_mul_ps(r, r);
        __m256 p = _mm256_fmadd_ps(p0, r, p1);
        p = _mm256_fmadd_ps(p, r, p2);
        p = _mm256_fmadd_ps(p, r, p3);
        p = _mm256_fmadd_ps(p, r, p4);
        p = _mm256_fmadd_ps(p, r, p5);
        p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, one));
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fn), _mm256_set1_epi32(127)), 23);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
    }
    for (; i < n; i++) y[i] = expf(x[i]);
}

/* (libgcc fills in the CPU model in a constructor, before any of this runs) */
static int layers_use_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

static void layers_vexpf(const float *x, float *y, size_t n) {
#ifdef LAYERS_X86
    if (layers_use_avx2()) {
        vexpf_avx2(x, y, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

/* Runs fn(ctx, i, tid) for every i in [0, n) on nt threads (the caller is
 * tid 0, tids 1..nt-1 are pthreads; a thread that cannot be started just
 * leaves its share to the others).
 *
 * For the attention's many small per-head products: OpenBLAS does not
 * scale on them (two threads are slower than one here), so each task calls
 * single-threaded sgemm and the tasks run side by side. OpenBLAS is set to
 * one thread for the duration and restored after, which assumes no other
 * thread of the process calls BLAS meanwhile (true of quept: the only
 * other multi-threaded BLAS user, the artifact switch, never runs during a
 * forward). Results do not depend on the schedule: each task is computed
 * by one thread in a fixed order. */
enum { LAYERS_MAX_THREADS = 64 };

typedef struct {
    void (*fn)(void *, int, int);
    void *ctx;
    int n;
    atomic_int next;
} ParJob;

typedef struct {
    ParJob *job;
    int tid;
} ParArg;

static void *par_worker(void *p) {
    ParArg *a = p;
    int i;
    while ((i = atomic_fetch_add(&a->job->next, 1)) < a->job->n) a->job->fn(a->job->ctx, i, a->tid);
    return NULL;
}

static void layers_parallel_for(int n, int nt, void (*fn)(void *ctx, int i, int tid), void *ctx) {
    if (nt > n) nt = n;
    if (nt > LAYERS_MAX_THREADS) nt = LAYERS_MAX_THREADS;
    if (nt <= 1) {
        for (int i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    int blas_nt = openblas_get_num_threads();
    openblas_set_num_threads(1);
    ParJob job = {fn, ctx, n, 0};
    ParArg args[LAYERS_MAX_THREADS];
    pthread_t th[LAYERS_MAX_THREADS];
    int started[LAYERS_MAX_THREADS] = {0};
    for (int t = 0; t < nt; t++) args[t] = (ParArg){&job, t};
    for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, par_worker, &args[t]) == 0;
    par_worker(&args[0]);
    for (int t = 1; t < nt; t++)
        if (started[t]) pthread_join(th[t], NULL);
    openblas_set_num_threads(blas_nt);
}

/* Threads for the per-head attention work: OpenBLAS's thread count. */
static int layers_attention_threads(void) { return openblas_get_num_threads(); }

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                     float eps) {
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

/* out_i = x_i * r * w_i with r = (mean(x^2) + eps)^-1/2, so
 *   dx_j = r * w_j * dout_j - (r^3 / C) * x_j * sum_i dout_i * w_i * x_i
 *   dw_i = sum_n dout_i * x_i * r */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
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

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IC,
                    int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC);
    if (bias) {
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int i = 0; i < OC; i++) o[i] += bias[i];
        }
    }
}

/* out (N,OC) = inp (N,IC) @ W (OC,IC)^T + bias:
 *   dinp (N,IC) += dout (N,OC) @ W (OC,IC)
 *   dW (OC,IC)  += dout^T (OC,N) @ inp (N,IC)
 *   dbias (OC)  += column sums of dout */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int IC, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight, IC, 1.0f,
                    dinp, IC);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f,
                    dweight, IC);
    if (dbias) {
        for (int n = 0; n < N; n++) {
            const float *g = dout + (size_t)n * OC;
            for (int i = 0; i < OC; i++) dbias[i] += g[i];
        }
    }
}

/* The one RoPE rotation of rope_forward and rope_backward: rotates every
 * head of x (B,T,n_heads,head_dim) in place by +angle (sign=+1, forward)
 * or -angle (sign=-1: the inverse = transpose, backward). */
static inline void rope_rotate(float *x, const RopeTable *rt, int B, int T, int n_heads, float sign) {
    int hd = rt->head_dim, half = hd / 2;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *ct = rt->cos_t + (size_t)t * half;
            const float *st = rt->sin_t + (size_t)t * half;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (((size_t)b * T + t) * n_heads + h) * hd;
                for (int i = 0; i < half; i++) {
                    int i0 = rt->halves ? i : 2 * i;
                    int i1 = rt->halves ? i + half : 2 * i + 1;
                    float c = ct[i], s = sign * st[i];
                    float a0 = v[i0], a1 = v[i1];
                    v[i0] = a0 * c - a1 * s;
                    v[i1] = a0 * s + a1 * c;
                }
            }
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

/* The rotation is orthogonal: its transpose is the rotation by -angle. In
 * place (dx holds d/d(rotated x) on entry, d/d(x) on return). */
void rope_backward(float *dx, const RopeTable *rt, int B, int T, int n_heads) {
    rope_rotate(dx, rt, B, T, n_heads, -1.0f);
}

/* Causal attention works on row tiles of ATT_TILE queries: tile [t0, t1)
 * only needs keys [0, t1), so the products skip the blocks above the
 * diagonal (about 3/8 of the full T x T work at T = 512). With saved
 * probabilities (one (T,T) slice per head) the heads run in parallel
 * (layers_parallel_for); with the single scratch they run in turn. */
#define ATT_TILE 128

typedef struct {
    float *out, *att;
    const float *q, *k, *v;
    int T, NH, NKV, hd, save_att;
} AttFwd;

static void attention_forward_head(void *ctx, int i, int tid) {
    const AttFwd *a = ctx;
    int T = a->T, NH = a->NH, hd = a->hd, b = i / NH, h = i % NH;
    int QD = NH * hd, KVD = a->NKV * hd, kvh = h / (NH / a->NKV);
    float scale = 1.0f / sqrtf((float)hd);
    const float *qh = a->q + (size_t)b * T * QD + (size_t)h * hd;
    const float *kh = a->k + (size_t)b * T * KVD + (size_t)kvh * hd;
    const float *vh = a->v + (size_t)b * T * KVD + (size_t)kvh * hd;
    float *P = a->save_att ? a->att + ((size_t)b * NH + h) * T * T : a->att;
    float *oh = a->out + (size_t)b * T * QD + (size_t)h * hd;
    for (int t0 = 0; t0 < T; t0 += ATT_TILE) {
        int t1 = t0 + ATT_TILE < T ? t0 + ATT_TILE : T, m = t1 - t0;
        float *Pt = P + (size_t)t0 * T;
        /* scores (m, t1) = scale * Q_h[t0:t1] K_h[0:t1]^T; only s <= t is used */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, t1, hd, scale, qh + (size_t)t0 * QD, QD, kh,
                    KVD, 0.0f, Pt, T);
        for (int t = t0; t < t1; t++) {
            float *row = P + (size_t)t * T;
            float mx = row[0];
            for (int s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
            for (int s = 0; s <= t; s++) row[s] -= mx;
            layers_vexpf(row, row, (size_t)t + 1);
            float sum = 0.0f;
            for (int s = 0; s <= t; s++) sum += row[s];
            float inv = 1.0f / sum;
            for (int s = 0; s <= t; s++) row[s] *= inv;
            for (int s = t + 1; s < T; s++) row[s] = 0.0f;
        }
        /* out_h[t0:t1] (m, hd) = P[t0:t1, 0:t1] V_h[0:t1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, t1, 1.0f, Pt, T, vh, KVD, 0.0f,
                    oh + (size_t)t0 * QD, QD);
    }
    (void)tid;
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T,
                       int NH, int NKV, int hd, int save_att) {
    AttFwd a = {out, att, q, k, v, T, NH, NKV, hd, save_att};
    layers_parallel_for(B * NH, save_att ? layers_attention_threads() : 1, attention_forward_head, &a);
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, t1, hd, 1.0f, dot0, QD, a->v + kvoff, KVD,
                        0.0f, dSt, T);
            /* dV_h[0:t1] += P[t0:t1, 0:t1]^T dO_h[t0:t1] */
            if (a->dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, hd, m, 1.0f, Pt, T, dot0, QD, 1.0f,
                            a->dv + kvoff, KVD);
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
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, t1, scale, dSt, T, a->k + kvoff,
                            KVD, 1.0f, a->dq + qoff + (size_t)t0 * QD, QD);
            /* dK_h[0:t1] += scale * dS[t0:t1, 0:t1]^T Q_h[t0:t1] */
            if (a->dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, hd, m, scale, dSt, T,
                            a->q + qoff + (size_t)t0 * QD, QD, 1.0f, a->dk + kvoff, KVD);
        }
    }
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout, const float *q,
                        const float *k, const float *v, const float *att, int B, int T, int NH, int NKV,
                        int hd) {
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

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    enum { CH = 1024 };
    float e[CH];
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        size_t m = n - i0 < CH ? n - i0 : CH;
        const float *g = gate + i0;
        for (size_t i = 0; i < m; i++) e[i] = -g[i];
        layers_vexpf(e, e, m);
        for (size_t i = 0; i < m; i++) out[i0 + i] = g[i] / (1.0f + e[i]) * up[i0 + i];
    }
}

/* out = silu(g) * u, silu(g) = g * sig(g):
 *   dg += dout * u * sig(g) * (1 + g * (1 - sig(g)))     du += dout * silu(g)
 * In chunks: one vectorized exp per element for both gradients. */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     size_t n) {
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

void residual_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
