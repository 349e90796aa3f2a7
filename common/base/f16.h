/* f16.h — IEEE binary16 (F16) <-> fp32, the one implementation (safetensors,
 * GGUF export, ggml's block scales): plain bit manipulation, fp32 -> f16
 * rounds to nearest, ties to even. */
#ifndef QUEPT_F16_H
#define QUEPT_F16_H

#include <stdint.h>
#include <string.h>

/* the bits of a float and back (memcpy: no aliasing) */
static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t float_to_f16(float f); /* overflow → ±inf, NaN stays (quiet) NaN */
float f16_to_float(uint16_t h); /* exact, incl. subnormals, inf, NaN */

#endif
