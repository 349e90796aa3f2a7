/* f16.c — IEEE half <-> fp32 (see f16.h). */
#include "f16.h"

#include <string.h>

uint16_t float_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { /* inf or NaN */
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* quiet NaN, keep payload top */
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520: rounds to inf */
    if (ax < 0x38800000u) {                       /* below 2^-14: subnormal half or zero */
        if (ax <= 0x33000000u) return sign;       /* <= 2^-25 (tie goes to even 0) */
        uint32_t e = ax >> 23;                    /* 102..112 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++; /* may carry into the smallest normal */
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((((ax >> 23) - 127u + 15u)) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* carry may bump the exponent */
    return (uint16_t)(sign | h);
}

float f16_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    if (e == 0x1fu) return bits_f32(sign | 0x7f800000u | (m << 13)); /* inf / NaN */
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        int32_t ex = -14; /* value = m/1024 * 2^-14; normalise */
        while (!(m & 0x400u)) {
            m <<= 1;
            ex--;
        }
        m &= 0x3ffu;
        return bits_f32(sign | ((uint32_t)(ex + 127) << 23) | (m << 13));
    }
    return bits_f32(sign | ((e - 15u + 127u) << 23) | (m << 13));
}
