/* ggml_quant.c — GGUF block types as fake quantizers (see ggml_quant.h).
 *
 * The block layouts are ggml's (ggml-common.h): the element -> byte/bit
 * mapping of each type is written out once, in pack_block / unpack_block,
 * from ggml's dequantize_row_* loops. */
#include "ggml_quant.h"

#include <math.h>
#include <string.h>

#include "../base/f16.h"

#define QK_K 256

/* ggml's kvalues_iq4nl: IQ4_NL's 16 levels */
static const int8_t IQ4NL_LEVELS[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};

typedef struct {
    int t;
    const char *name;
    int block, bytes, sub, bits;
    int sym;    /* 1: value = s'·c, 0: value = s'·q + m' */
    int kquant; /* sub-block scales quantized against a super-block d */
    float D;    /* sym: s = fg·M / D (Q8_0: ±127 by M's sign) */
    int cmin, cmax;
} TypeInfo;

static const TypeInfo TYPES[] = {
    {GQ_F32, "F32", 1, 4, 0, 32, 0, 0, 0, 0, 0},
    {GQ_F16, "F16", 1, 2, 0, 16, 0, 0, 0, 0, 0},
    {GQ_Q4_0, "Q4_0", 32, 18, 32, 4, 1, 0, -8.0f, -8, 7},
    {GQ_Q4_1, "Q4_1", 32, 20, 32, 4, 0, 0, 0, 0, 15},
    {GQ_Q5_0, "Q5_0", 32, 22, 32, 5, 1, 0, -16.0f, -16, 15},
    {GQ_Q5_1, "Q5_1", 32, 24, 32, 5, 0, 0, 0, 0, 31},
    {GQ_Q8_0, "Q8_0", 32, 34, 32, 8, 1, 0, 127.0f, -127, 127},
    {GQ_Q2_K, "Q2_K", QK_K, 84, 16, 2, 0, 1, 0, 0, 3},
    {GQ_Q3_K, "Q3_K", QK_K, 110, 16, 3, 1, 1, -4.0f, -4, 3},
    {GQ_Q4_K, "Q4_K", QK_K, 144, 32, 4, 0, 1, 0, 0, 15},
    {GQ_Q5_K, "Q5_K", QK_K, 176, 32, 5, 0, 1, 0, 0, 31},
    {GQ_Q6_K, "Q6_K", QK_K, 210, 16, 6, 1, 1, -32.0f, -32, 31},
    {GQ_IQ4_NL, "IQ4_NL", 32, 18, 32, 4, 1, 0, -127.0f, 0, 15},
};
#define N_TYPES ((int)(sizeof TYPES / sizeof TYPES[0]))

static const TypeInfo *info(int t) {
    for (int i = 0; i < N_TYPES; i++)
        if (TYPES[i].t == t) return &TYPES[i];
    return NULL;
}

int gq_is_block_type(int t) { return info(t) && t != GQ_F32 && t != GQ_F16; }
int gq_block_elems(int t) { return info(t) ? info(t)->block : 0; }
int gq_block_bytes(int t) { return info(t) ? info(t)->bytes : 0; }
int gq_sub_elems(int t) { return info(t) ? info(t)->sub : 0; }
int gq_code_bits(int t) { return info(t) ? info(t)->bits : 0; }
const char *gq_type_name(int t) { return info(t) ? info(t)->name : NULL; }

size_t gq_row_bytes(int t, int n) {
    const TypeInfo *ti = info(t);
    return ti ? (size_t)n / (size_t)ti->block * (size_t)ti->bytes : 0;
}

int gq_type_parse(const char *s, int allow_float) {
    for (int i = 0; i < N_TYPES; i++) {
        const char *a = TYPES[i].name, *b = s;
        while (*a && *b && (*a == *b || (*a >= 'A' && *a <= 'Z' && *a - 'A' + 'a' == *b))) a++, b++;
        if (*a == '\0' && *b == '\0')
            return (TYPES[i].t == GQ_F32 || TYPES[i].t == GQ_F16) && !allow_float ? -1 : TYPES[i].t;
    }
    return -1;
}

int gq_row_type(int want, int n) {
    if (!gq_is_block_type(want)) return GQ_F16;
    if (n % gq_block_elems(want) == 0) return want;
    int fb = want;
    switch (want) {
    case GQ_Q2_K:
    case GQ_Q3_K: fb = GQ_IQ4_NL; break;
    case GQ_Q4_K: fb = GQ_Q5_0; break;
    case GQ_Q5_K: fb = GQ_Q5_1; break;
    case GQ_Q6_K: fb = GQ_Q8_0; break;
    default: break;
    }
    return n % gq_block_elems(fb) == 0 ? fb : GQ_F16;
}

/* ------------------------------------------------------------------------ */
/* Block packing: L[e] is element e's stored code (unsigned, as the bits
 * hold it; Q8_0: the int8's byte), sc[j] / mn[j] sub-block j's stored scale
 * and min fields, d / dm the F16 words. */

static void put_f16(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }
static uint16_t get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* Q4_K / Q5_K: 8 pairs of 6-bit (scale, min) in 12 bytes (ggml's
 * get_scale_min_k4 layout) */
static void pack_k4_scales(const uint8_t *sc, const uint8_t *mn, uint8_t *q) {
    memset(q, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = sc[j];
            q[j + 4] = mn[j];
        } else {
            q[j + 4] = (uint8_t)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
            q[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            q[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}
static void unpack_k4_scales(const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            mn[j] = q[j + 4] & 63;
        } else {
            sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }
}
/* Q3_K: 16 6-bit scales in 12 bytes (low nibbles in 0..7, high 2 bits in 8..11) */
static void pack_q3_scales(const uint8_t *sc, uint8_t *q) {
    memset(q, 0, 12);
    for (int j = 0; j < 16; j++) {
        if (j < 8)
            q[j] = sc[j] & 0xF;
        else
            q[j - 8] |= (uint8_t)((sc[j] & 0xF) << 4);
        q[j % 4 + 8] |= (uint8_t)((sc[j] >> 4) << (2 * (j / 4)));
    }
}
static void unpack_q3_scales(const uint8_t *q, uint8_t *sc) {
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? q[j] & 0xF : q[j - 8] >> 4;
        sc[j] = (uint8_t)(lo | (((q[8 + j % 4] >> (2 * (j / 4))) & 3) << 4));
    }
}

static void pack_block(int t, const uint8_t *L, const uint8_t *sc, const uint8_t *mn, uint16_t d, uint16_t dm,
                       uint8_t *p) {
    switch (t) {
    case GQ_Q4_0:
    case GQ_IQ4_NL:
        put_f16(p, d);
        for (int j = 0; j < 16; j++) p[2 + j] = (uint8_t)(L[j] | L[j + 16] << 4);
        break;
    case GQ_Q4_1:
        put_f16(p, d), put_f16(p + 2, dm);
        for (int j = 0; j < 16; j++) p[4 + j] = (uint8_t)(L[j] | L[j + 16] << 4);
        break;
    case GQ_Q5_0:
    case GQ_Q5_1: {
        uint8_t *h = p + (t == GQ_Q5_0 ? 2 : 4);
        put_f16(p, d);
        if (t == GQ_Q5_1) put_f16(p + 2, dm);
        uint32_t qh = 0;
        for (int j = 0; j < 32; j++) qh |= (uint32_t)((L[j] >> 4) & 1) << j;
        memcpy(h, &qh, 4);
        for (int j = 0; j < 16; j++) h[4 + j] = (uint8_t)((L[j] & 15) | (L[j + 16] & 15) << 4);
        break;
    }
    case GQ_Q8_0:
        put_f16(p, d);
        memcpy(p + 2, L, 32);
        break;
    case GQ_Q2_K: { /* scales[16], qs[64], d, dmin */
        for (int j = 0; j < 16; j++) p[j] = (uint8_t)(sc[j] | mn[j] << 4);
        uint8_t *qs = p + 16;
        memset(qs, 0, 64);
        for (int e = 0; e < QK_K; e++)
            qs[(e / 128) * 32 + e % 32] |= (uint8_t)(L[e] << (2 * ((e % 128) / 32)));
        put_f16(p + 80, d), put_f16(p + 82, dm);
        break;
    }
    case GQ_Q3_K: { /* hmask[32], qs[64], scales[12], d */
        uint8_t *hm = p, *qs = p + 32;
        memset(p, 0, 96);
        for (int e = 0; e < QK_K; e++) {
            const int n = e / 128, j = (e % 128) / 32, l = e % 32;
            qs[n * 32 + l] |= (uint8_t)((L[e] & 3) << (2 * j));
            if (L[e] & 4) hm[l] |= (uint8_t)(1 << (4 * n + j));
        }
        pack_q3_scales(sc, p + 96);
        put_f16(p + 108, d);
        break;
    }
    case GQ_Q4_K:
    case GQ_Q5_K: { /* d, dmin, scales[12], (Q5_K: qh[32]), qs[128] */
        put_f16(p, d), put_f16(p + 2, dm);
        pack_k4_scales(sc, mn, p + 4);
        uint8_t *qh = t == GQ_Q5_K ? p + 16 : NULL, *qs = p + (t == GQ_Q5_K ? 48 : 16);
        memset(p + 16, 0, t == GQ_Q5_K ? 160 : 128);
        for (int e = 0; e < QK_K; e++) {
            const int c = e / 64, half = (e % 64) / 32, l = e % 32;
            qs[32 * c + l] |= (uint8_t)((L[e] & 15) << (4 * half));
            if (qh && (L[e] & 16)) qh[l] |= (uint8_t)(1 << (2 * c + half));
        }
        break;
    }
    case GQ_Q6_K: { /* ql[128], qh[64], scales[16] (int8), d */
        uint8_t *ql = p, *qh = p + 128;
        memset(p, 0, 192);
        for (int e = 0; e < QK_K; e++) {
            const int n = e / 128, k = (e % 128) / 32, l = e % 32;
            ql[64 * n + l + 32 * (k & 1)] |= (uint8_t)((L[e] & 15) << (4 * (k >> 1)));
            qh[32 * n + l] |= (uint8_t)(((L[e] >> 4) & 3) << (2 * k));
        }
        memcpy(p + 192, sc, 16);
        put_f16(p + 208, d);
        break;
    }
    default: break;
    }
}

/* ggml's dequantize_row_* for one block, same expressions and order */
static void unpack_block(int t, const uint8_t *p, float *y) {
    switch (t) {
    case GQ_Q4_0:
    case GQ_IQ4_NL: {
        const float d = f16_to_float(get_f16(p));
        for (int j = 0; j < 16; j++) {
            const int a = p[2 + j] & 0xF, b = p[2 + j] >> 4;
            if (t == GQ_Q4_0) {
                y[j] = (float)(a - 8) * d;
                y[j + 16] = (float)(b - 8) * d;
            } else {
                y[j] = d * (float)IQ4NL_LEVELS[a];
                y[j + 16] = d * (float)IQ4NL_LEVELS[b];
            }
        }
        break;
    }
    case GQ_Q4_1: {
        const float d = f16_to_float(get_f16(p)), m = f16_to_float(get_f16(p + 2));
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(p[4 + j] & 0xF) * d + m;
            y[j + 16] = (float)(p[4 + j] >> 4) * d + m;
        }
        break;
    }
    case GQ_Q5_0:
    case GQ_Q5_1: {
        const uint8_t *h = p + (t == GQ_Q5_0 ? 2 : 4);
        const float d = f16_to_float(get_f16(p)), m = t == GQ_Q5_1 ? f16_to_float(get_f16(p + 2)) : 0.0f;
        uint32_t qh;
        memcpy(&qh, h, 4);
        for (int j = 0; j < 16; j++) {
            const int a = (h[4 + j] & 0xF) | (int)(((qh >> j) << 4) & 0x10);
            const int b = (h[4 + j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            if (t == GQ_Q5_0) {
                y[j] = (float)(a - 16) * d;
                y[j + 16] = (float)(b - 16) * d;
            } else {
                y[j] = (float)a * d + m;
                y[j + 16] = (float)b * d + m;
            }
        }
        break;
    }
    case GQ_Q8_0: {
        const float d = f16_to_float(get_f16(p));
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
        break;
    }
    case GQ_Q2_K: {
        const float d = f16_to_float(get_f16(p + 80)), mn = f16_to_float(get_f16(p + 82));
        for (int e = 0; e < QK_K; e++) {
            const uint8_t s = p[e / 16];
            const float dl = d * (float)(s & 0xF), ml = mn * (float)(s >> 4);
            const int q = (p[16 + (e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            y[e] = dl * (float)q - ml;
        }
        break;
    }
    case GQ_Q3_K: {
        uint8_t sc[16];
        unpack_q3_scales(p + 96, sc);
        const float d = f16_to_float(get_f16(p + 108));
        for (int e = 0; e < QK_K; e++) {
            const int n = e / 128, j = (e % 128) / 32, l = e % 32;
            const float dl = d * (float)((int)sc[e / 16] - 32);
            const int q = ((p[32 + n * 32 + l] >> (2 * j)) & 3) - ((p[l] >> (4 * n + j)) & 1 ? 0 : 4);
            y[e] = dl * (float)q;
        }
        break;
    }
    case GQ_Q4_K:
    case GQ_Q5_K: {
        uint8_t sc[8], mn[8];
        unpack_k4_scales(p + 4, sc, mn);
        const float d = f16_to_float(get_f16(p)), dmin = f16_to_float(get_f16(p + 2));
        const uint8_t *qh = t == GQ_Q5_K ? p + 16 : NULL, *qs = p + (t == GQ_Q5_K ? 48 : 16);
        for (int e = 0; e < QK_K; e++) {
            const int c = e / 64, half = (e % 64) / 32, l = e % 32;
            const float d1 = d * (float)sc[e / 32], m1 = dmin * (float)mn[e / 32];
            int q = (qs[32 * c + l] >> (4 * half)) & 15;
            if (qh && (qh[l] >> (2 * c + half) & 1)) q += 16;
            y[e] = d1 * (float)q - m1;
        }
        break;
    }
    case GQ_Q6_K: {
        const float d = f16_to_float(get_f16(p + 208));
        const int8_t *sc = (const int8_t *)(p + 192);
        for (int e = 0; e < QK_K; e++) {
            const int n = e / 128, k = (e % 128) / 32, l = e % 32;
            const int lo = (p[64 * n + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 15;
            const int hi = (p[128 + 32 * n + l] >> (2 * k)) & 3;
            y[e] = d * (float)sc[e / 16] * (float)((lo | hi << 4) - 32);
        }
        break;
    }
    default: break;
    }
}

/* ------------------------------------------------------------------------ */

static inline float nearest(float x) { return nearbyintf(x); }

/* The nearest IQ4_NL level to u (ties to the upper one, as ggml) */
static int iq4nl_index(float u) {
    if (u <= IQ4NL_LEVELS[0]) return 0;
    if (u >= IQ4NL_LEVELS[15]) return 15;
    int k = 0;
    while (k < 15 && IQ4NL_LEVELS[k + 1] < u) k++;
    return u - IQ4NL_LEVELS[k] < IQ4NL_LEVELS[k + 1] - u ? k : k + 1;
}

/* Sub-block statistics: arg-max and arg-min (first), or arg-abs-max */
static void sub_extremes(const float *x, int n, int *imax, int *imin) {
    int a = 0, b = 0;
    for (int i = 1; i < n; i++) {
        if (x[i] > x[a]) a = i;
        if (x[i] < x[b]) b = i;
    }
    *imax = a, *imin = b;
}
static int sub_absmax(const float *x, int n) {
    int a = 0;
    for (int i = 1; i < n; i++)
        if (fabsf(x[i]) > fabsf(x[a])) a = i;
    return a;
}

static float f16_round(float x) {
    if (x > 65504.0f) x = 65504.0f;
    if (x < -65504.0f) x = -65504.0f;
    return f16_to_float(float_to_f16(x));
}

/* One block of ti->block weights at x (row offset base). */
static void quantize_block(const TypeInfo *ti, const float *x, int base, const float *fg, const float *fb,
                           const uint8_t *idx_in, uint8_t *idx_out, float *y, uint8_t *packed, float *state) {
    const int bs = ti->block, sub = ti->sub, ns = bs / sub;
    float s[16], m[16], sq[16], mq[16]; /* raw and format-rounded per sub-block */
    int imax[16], imin[16];
    uint8_t L[QK_K], scf[16] = {0}, mnf[16] = {0};
    uint16_t d16 = 0, dm16 = 0;
    for (int j = 0; j < ns; j++) {
        const float *xs = x + j * sub;
        const float g = fg ? fg[j] : 1.0f, b = fb ? fb[j] : 1.0f;
        if (ti->sym) {
            const int a = sub_absmax(xs, sub);
            const float M = xs[a];
            const float D = ti->t == GQ_Q8_0 ? (M >= 0 ? ti->D : -ti->D) : ti->D;
            s[j] = g * M / D;
            m[j] = 0.0f;
            imax[j] = base + j * sub + a, imin[j] = -1;
        } else {
            int a, c;
            sub_extremes(xs, sub, &a, &c);
            const float hi = g * xs[a];
            float lo = b * xs[c];
            imax[j] = base + j * sub + a, imin[j] = base + j * sub + c;
            if (ti->kquant && lo > 0.0f) lo = 0.0f, imin[j] = -1; /* ggml: min <= 0 */
            float sc = (hi - lo) / (float)ti->cmax;
            if (!(sc > 0.0f)) sc = 0.0f;
            s[j] = sc;
            m[j] = lo;
        }
    }
    /* the format's rounding of the scales (and mins) */
    if (!ti->kquant) {
        d16 = float_to_f16(f16_round(s[0]));
        sq[0] = f16_to_float(d16);
        if (!ti->sym) {
            dm16 = float_to_f16(f16_round(m[0]));
            mq[0] = f16_to_float(dm16);
        } else {
            mq[0] = 0.0f;
        }
    } else if (ti->sym) { /* Q3_K, Q6_K: signed scales against the largest */
        const float lim = ti->t == GQ_Q3_K ? -32.0f : -128.0f;
        float amax = 0.0f, max_scale = 0.0f;
        for (int j = 0; j < ns; j++)
            if (fabsf(s[j]) > amax) amax = fabsf(s[j]), max_scale = s[j];
        const float iscale = max_scale != 0.0f ? lim / max_scale : 0.0f;
        d16 = max_scale != 0.0f ? float_to_f16(f16_round(1.0f / iscale)) : 0;
        const float d = f16_to_float(d16);
        for (int j = 0; j < ns; j++) {
            int l = (int)nearest(iscale * s[j]);
            if (ti->t == GQ_Q3_K) {
                l = l < -32 ? -32 : l > 31 ? 31 : l;
                scf[j] = (uint8_t)(l + 32);
            } else {
                l = l < -128 ? -128 : l > 127 ? 127 : l;
                scf[j] = (uint8_t)(int8_t)l;
            }
            sq[j] = d * (float)l;
            mq[j] = 0.0f;
        }
    } else { /* Q2_K, Q4_K, Q5_K: unsigned scales and mins against their maxima */
        const float q = ti->t == GQ_Q2_K ? 15.0f : 63.0f;
        float max_s = 0.0f, max_m = 0.0f;
        for (int j = 0; j < ns; j++) {
            if (s[j] > max_s) max_s = s[j];
            if (-m[j] > max_m) max_m = -m[j];
        }
        const float is = max_s > 0 ? q / max_s : 0.0f, im = max_m > 0 ? q / max_m : 0.0f;
        d16 = float_to_f16(f16_round(max_s / q));
        dm16 = float_to_f16(f16_round(max_m / q));
        const float d = f16_to_float(d16), dmin = f16_to_float(dm16);
        for (int j = 0; j < ns; j++) {
            int ls = (int)nearest(is * s[j]), lm = (int)nearest(im * -m[j]);
            ls = ls > (int)q ? (int)q : ls < 0 ? 0 : ls;
            lm = lm > (int)q ? (int)q : lm < 0 ? 0 : lm;
            scf[j] = (uint8_t)ls, mnf[j] = (uint8_t)lm;
            sq[j] = d * (float)ls;
            mq[j] = -(dmin * (float)lm);
        }
    }
    /* codes and values, with ggml's dequantization expressions */
    for (int j = 0; j < ns; j++) {
        const float sp = sq[ti->kquant ? j : 0], mp = mq[ti->kquant ? j : 0];
        for (int i = j * sub; i < (j + 1) * sub; i++) {
            float v;
            int idx; /* the grid index: IQ4_NL's level, c - cmin, or q */
            if (ti->t == GQ_IQ4_NL) {
                const int k = idx_in       ? (idx_in[i] > 15 ? 15 : idx_in[i])
                              : sp != 0.0f ? iq4nl_index(x[i] / sp)
                                           : 8;
                L[i] = (uint8_t)k;
                v = sp * (float)IQ4NL_LEVELS[k];
                idx = k;
            } else if (ti->sym) {
                int c = idx_in ? idx_in[i] + ti->cmin : sp != 0.0f ? (int)nearest(x[i] / sp) : 0;
                c = c < ti->cmin ? ti->cmin : c > ti->cmax ? ti->cmax : c;
                L[i] = ti->t == GQ_Q8_0 ? (uint8_t)(int8_t)c : (uint8_t)(c - ti->cmin);
                v = ti->t == GQ_Q6_K || ti->t == GQ_Q3_K ? sp * (float)c : (float)c * sp;
                idx = c - ti->cmin;
            } else {
                int q = idx_in ? idx_in[i] : sp != 0.0f ? (int)nearest((x[i] - mp) / sp) : 0;
                q = q < 0 ? 0 : q > ti->cmax ? ti->cmax : q;
                L[i] = (uint8_t)q;
                v = ti->kquant ? sp * (float)q + mp : (float)q * sp + mp;
                idx = q;
            }
            if (y) y[i] = v;
            if (idx_out) idx_out[i] = (uint8_t)idx;
        }
        if (state) {
            float *st = state + (size_t)(base / sub + j) * GQ_STATE;
            st[0] = sp, st[1] = mp, st[2] = (float)imax[j], st[3] = (float)imin[j];
        }
    }
    if (packed) pack_block(ti->t, L, scf, mnf, d16, dm16, packed);
}

void gq_quantize_row(int t, const float *x, int n, const float *fg, const float *fb, float *y,
                     uint8_t *packed, float *state) {
    gq_quantize_row_idx(t, x, n, fg, fb, NULL, NULL, y, packed, state);
}

int gq_index_max(int t) {
    const TypeInfo *ti = info(t);
    if (!ti || !gq_is_block_type(t)) return 0;
    return ti->t == GQ_IQ4_NL ? 15 : ti->cmax - ti->cmin;
}

int gq_type_symmetric(int t) { return info(t) ? info(t)->sym : 0; }
int gq_sym_cmin_neg(int t) { return info(t) && info(t)->sym && t != GQ_IQ4_NL ? -info(t)->cmin : 0; }

void gq_quantize_row_idx(int t, const float *x, int n, const float *fg, const float *fb,
                         const uint8_t *idx_in, uint8_t *idx_out, float *y, uint8_t *packed, float *state) {
    const TypeInfo *ti = info(t);
    if (!ti) return;
    if (!gq_is_block_type(t)) { /* F16 (or F32): the value as the file stores it */
        if (idx_out) memset(idx_out, 0, (size_t)n);
        for (int i = 0; i < n; i++) {
            const float v = t == GQ_F16 ? f16_round(x[i]) : x[i];
            if (y) y[i] = v;
            if (packed && t == GQ_F16) put_f16(packed + 2 * (size_t)i, float_to_f16(v));
            if (packed && t == GQ_F32) memcpy(packed + 4 * (size_t)i, &v, 4);
        }
        return;
    }
    const int bs = ti->block;
    for (int b0 = 0; b0 < n; b0 += bs) {
        const int j0 = b0 / ti->sub;
        quantize_block(ti, x + b0, b0, fg ? fg + j0 : NULL, fb ? fb + j0 : NULL, idx_in ? idx_in + b0 : NULL,
                       idx_out ? idx_out + b0 : NULL, y ? y + b0 : NULL,
                       packed ? packed + (size_t)(b0 / bs) * (size_t)ti->bytes : NULL, state);
    }
}

void gq_backward_row(int t, const float *x, int n, const float *fg, const float *fb, const float *state,
                     const float *dy, float *dx, float *dfg, float *dfb) {
    const TypeInfo *ti = info(t);
    if (!ti) return;
    if (!gq_is_block_type(t)) {
        memcpy(dx, dy, (size_t)n * sizeof *dx);
        return;
    }
    const int sub = ti->sub, ns = n / sub;
    for (int j = 0; j < ns; j++) {
        const float *st = state + (size_t)j * GQ_STATE;
        const float sp = st[0], mp = st[1];
        const int imax = (int)st[2], imin = (int)st[3];
        const float g = fg ? fg[j] : 1.0f, b = fb ? fb[j] : 1.0f;
        float ds = 0.0f, dm = 0.0f;
        for (int i = j * sub; i < (j + 1) * sub; i++) {
            if (sp == 0.0f) { /* all codes 0 (IQ4_NL: level index 8): value s'·level + m' */
                dx[i] = 0.0f;
                dm += dy[i];
                if (ti->t == GQ_IQ4_NL) ds += dy[i] * (float)IQ4NL_LEVELS[8];
                continue;
            }
            int clamped;
            float v, u;
            if (ti->t == GQ_IQ4_NL) {
                u = x[i] / sp;
                const int k = iq4nl_index(u);
                v = (float)IQ4NL_LEVELS[k];
                clamped = u < IQ4NL_LEVELS[0] || u > IQ4NL_LEVELS[15];
            } else if (ti->sym) {
                u = x[i] / sp;
                const float c = nearest(u);
                clamped = c < (float)ti->cmin || c > (float)ti->cmax;
                v = c < (float)ti->cmin ? (float)ti->cmin : c > (float)ti->cmax ? (float)ti->cmax : c;
            } else {
                u = (x[i] - mp) / sp;
                const float q = nearest(u);
                clamped = q < 0.0f || q > (float)ti->cmax;
                v = q < 0.0f ? 0.0f : q > (float)ti->cmax ? (float)ti->cmax : q;
            }
            if (clamped) {
                dx[i] = 0.0f;
                ds += dy[i] * v;
                if (!ti->sym) dm += dy[i];
            } else {
                dx[i] = dy[i];
                ds += dy[i] * (v - u);
            }
        }
        if (ti->sym) { /* s = g·M/D */
            if (imax < 0) continue;
            const float M = x[imax];
            const float D = ti->t == GQ_Q8_0 ? (M >= 0 ? ti->D : -ti->D) : ti->D;
            if (dfg) dfg[j] += ds * M / D;
            dx[imax] += ds * g / D;
        } else { /* s = (g·xmax - b·xmin)/qmax, m = b·xmin */
            const float qmax = (float)ti->cmax;
            const float dhi = sp > 0.0f ? ds / qmax : 0.0f;
            const float dlo = (sp > 0.0f ? -ds / qmax : 0.0f) + dm;
            if (imax >= 0) {
                if (dfg) dfg[j] += dhi * x[imax];
                dx[imax] += dhi * g;
            }
            if (imin >= 0) {
                if (dfb) dfb[j] += dlo * x[imin];
                dx[imin] += dlo * b;
            }
        }
    }
}

void gq_dequantize_row(int t, const uint8_t *packed, int n, float *y) {
    const TypeInfo *ti = info(t);
    if (!ti) return;
    if (t == GQ_F16) {
        for (int i = 0; i < n; i++) y[i] = f16_to_float(get_f16(packed + 2 * (size_t)i));
        return;
    }
    if (t == GQ_F32) {
        memcpy(y, packed, (size_t)n * 4);
        return;
    }
    for (int b0 = 0; b0 < n; b0 += ti->block)
        unpack_block(t, packed + (size_t)(b0 / ti->block) * (size_t)ti->bytes, y + b0);
}
