/* f16.h — IEEE binary16 (F16) <-> fp32, the one implementation (safetensors,
 * GGUF export, ggml's block scales): plain bit manipulation, fp32 -> f16
 * rounds to nearest, ties to even. */
#ifndef QUEPT_F16_H
#define QUEPT_F16_H

#include <stdint.h>

uint16_t float_to_f16(float f); /* overflow → ±inf, NaN stays (quiet) NaN */
float f16_to_float(uint16_t h); /* exact, incl. subnormals, inf, NaN */

#endif
