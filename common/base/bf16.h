/* bf16.h — bfloat16 <-> fp32, the one implementation (safetensors, the wire
 * protocol and the bf16 activation streams all use it).
 *
 * fp32 -> bf16 rounds to nearest, ties to even, on the upper 16 bits:
 * overflow lands on ±inf, ±inf and ±0 stay, denormals round like any other
 * value (bf16 has fp32's exponent range, so they stay denormal or become
 * ±0 / the smallest normal), a NaN stays a NaN (quieted: it never rounds
 * to inf). bf16 -> fp32 is exact. */
#ifndef QUEPT_BF16_H
#define QUEPT_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t rounded = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    uint16_t quiet_nan = (uint16_t)((u >> 16) | 0x0040u);
    return (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* n values at a time (branch-free loops the compiler vectorises). */
void bf16_from_f32_n(const float *x, uint16_t *y, size_t n);
void bf16_to_f32_n(const uint16_t *x, float *y, size_t n);

#endif
