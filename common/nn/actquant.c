/* actquant.c — per-token activation fake quantization (actquant.h). */
#include "actquant.h"

#include <math.h>
#include <stddef.h>

/* The row's scale s (clamped) and the first index of its abs-max. */
static float row_scale(const float *x, int C, float qmax, int *argmax) {
    float m = 0.0f;
    int a = 0;
    for (int i = 0; i < C; i++) {
        float ax = fabsf(x[i]);
        if (ax > m) m = ax, a = i;
    }
    *argmax = a;
    float s = m / qmax;
    return s < ACTQ_SCALE_MIN ? ACTQ_SCALE_MIN : s > ACTQ_SCALE_MAX ? ACTQ_SCALE_MAX : s;
}

void actquant_forward(float *out, const float *inp, int N, int C, int bits) {
    const float qmax = (float)((1 << (bits - 1)) - 1), lo = -qmax - 1.0f;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        int a;
        const float s = row_scale(x, C, qmax, &a), inv = 1.0f / s;
        for (int i = 0; i < C; i++) {
            float r = nearbyintf(x[i] * inv);
            y[i] = (r < lo ? lo : r > qmax ? qmax : r) * s;
        }
    }
}

void actquant_backward(float *dinp, const float *dout, const float *inp, int N, int C, int bits) {
    const float qmax = (float)((1 << (bits - 1)) - 1), lo = -qmax - 1.0f;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        int a;
        const float s = row_scale(x, C, qmax, &a), inv = 1.0f / s;
        /* d out_i / d s: r_i - u_i where the code is r_i, the code where clamped */
        float ds = 0.0f;
        for (int i = 0; i < C; i++) {
            float u = x[i] * inv, r = nearbyintf(u);
            float c = r < lo ? lo : r > qmax ? qmax : r;
            ds += g[i] * (c == r ? r - u : c);
        }
        const float sa = x[a] > 0.0f ? 1.0f : x[a] < 0.0f ? -1.0f : 0.0f; /* before dx overwrites x */
        for (int i = 0; i < C; i++) {
            float r = nearbyintf(x[i] * inv);
            dx[i] = (r >= lo && r <= qmax) ? g[i] : 0.0f;
        }
        dx[a] += sa / qmax * ds;
    }
}
