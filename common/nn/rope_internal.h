/* rope_internal.h — the one RoPE rotation shared by rope_forward and
 * rope_backward (layers_forward.c, layers_backward.c). Not a public API. */
#ifndef QUEPT_ROPE_INTERNAL_H
#define QUEPT_ROPE_INTERNAL_H

#include <stddef.h>

#include "layers.h"

/* Rotates every head of x (B,T,n_heads,head_dim) in place by +angle
 * (sign=+1, forward) or -angle (sign=-1: the inverse = transpose, backward). */
static inline void rope_rotate(float *x, const RopeTable *rt, int B, int T, int n_heads,
                               float sign) {
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

#endif
