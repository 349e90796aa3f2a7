/* pot.c — power-of-two quantization kernels (see pot.h). The loops work on
 * the float's bits with integer shifts, adds and selects and have no
 * data-dependent branch; gcc vectorises the quantize, codes and dequantize
 * loops at -O3 (-fopt-info-vec). The loops that sum floats (the backward's
 * scale gradient, the search's errors) stay scalar: without -ffast-math the
 * compiler may not reorder the sum. */
#include "pot.h"

#include <string.h>

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Unclamped exponent of the power of two nearest to |u| (bits of |u| in a):
 * the exponent field plus the top mantissa bit (mantissa >= 1.5 rounds up). */
static inline int pot_eraw(uint32_t a) { return (int)(a >> 23) - 127 + (int)((a >> 22) & 1u); }

static inline int pot_clampe(int e, int emax) { return e < 0 ? 0 : (e > emax ? emax : e); }

/* ±2^E as a float: sign bit of u, exponent field E + 127. */
static inline float pot_level(uint32_t ubits, int e) {
    return u2f((ubits & 0x80000000u) | ((uint32_t)(e + 127) << 23));
}

void pot_group_quant(const float *x, int n, float s, int emax, float *out) {
    for (int j = 0; j < n; j++) {
        uint32_t ub = f2u(x[j] / s);
        int e = pot_clampe(pot_eraw(ub & 0x7fffffffu), emax);
        out[j] = pot_level(ub, e) * s;
    }
}

void pot_group_codes(const float *x, int n, float s, int bits, uint8_t *codes) {
    const int emax = pot_emax(bits);
    for (int j = 0; j < n; j++) {
        uint32_t ub = f2u(x[j] / s);
        int e = pot_clampe(pot_eraw(ub & 0x7fffffffu), emax);
        codes[j] = (uint8_t)(((ub >> 31) << (bits - 1)) | (uint32_t)e);
    }
}

float pot_group_backward(const float *x, const float *dy, int n, float s, int emax, float *dx) {
    float ds = 0.0f;
    for (int j = 0; j < n; j++) {
        float u = x[j] / s;
        uint32_t ub = f2u(u);
        int er = pot_eraw(ub & 0x7fffffffu);
        int in = er >= 0 && er <= emax;
        float q = pot_level(ub, pot_clampe(er, emax));
        ds += dy[j] * (in ? q - u : q);
    }
    if (dx) /* after the sum: dx may equal x */
        for (int j = 0; j < n; j++) {
            int er = pot_eraw(f2u(x[j] / s) & 0x7fffffffu);
            dx[j] = (er >= 0 && er <= emax) ? dy[j] : 0.0f;
        }
    return ds;
}

float pot_group_sse(const float *x, int n, float s, int emax) {
    float e2 = 0.0f;
    for (int j = 0; j < n; j++) {
        uint32_t ub = f2u(x[j] / s);
        int e = pot_clampe(pot_eraw(ub & 0x7fffffffu), emax);
        float d = x[j] - pot_level(ub, e) * s;
        e2 += d * d;
    }
    return e2;
}

float pot_search_scale(const float *x, int n, int bits) {
    const int emax = pot_emax(bits);
    float m = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = x[j] < 0.0f ? -x[j] : x[j];
        m = a > m ? a : m;
    }
    if (!(m > 0.0f)) return POT_ZERO_GROUP_SCALE;
    const float start = m / (float)(1u << (emax - 1 > 0 ? emax - 1 : 0));
    float best_s = start, best_e = -1.0f;
    for (int k = 1; k <= POT_SEARCH_STEPS; k++) {
        float s = start * ((float)k / 100.0f);
        float e = pot_group_sse(x, n, s, emax);
        if (best_e < 0.0f || e < best_e) {
            best_e = e;
            best_s = s;
        }
    }
    return best_s;
}

void pot_group_dequant(const uint8_t *codes, int n, float s, int bits, float *out) {
    const int emax = pot_emax(bits);
    const uint32_t sb = f2u(s), se = (sb >> 23) & 0xffu;
    const uint32_t smask = 1u << (bits - 1), emask = smask - 1u;
    if (se >= 1u && se + (uint32_t)emax < 255u) { /* s and s·2^Emax normal: exponent add */
        for (int j = 0; j < n; j++) {
            uint32_t c = codes[j];
            out[j] = u2f((sb + ((c & emask) << 23)) ^ ((c & smask) << (32 - bits)));
        }
        return;
    }
    for (int j = 0; j < n; j++) {
        uint32_t c = codes[j];
        float v = pot_level((c & smask) << (32 - bits), (int)(c & emask)) * s;
        out[j] = v;
    }
}
