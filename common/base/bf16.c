/* bf16.c — see bf16.h. */
#include "bf16.h"

void bf16_from_f32_n(const float *restrict x, uint16_t *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = bf16_from_f32(x[i]);
}

void bf16_to_f32_n(const uint16_t *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = bf16_to_f32(x[i]);
}
