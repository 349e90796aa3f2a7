/* gptq_layout.h — reading a linear stored as GPTQ (v2) packed integers, in
 * the layout `quept export --format safetensors-int` writes
 * (docs/formats.md): qweight int32 (in*b/32, out), a little-endian bit
 * stream along `in` per output column; qzeros int32 (ng, out*b/32), a bit
 * stream along `out` per group; scales (ng, out) f16 or f32; g_idx int32
 * (in), the group of every input column. W[o][i] = (q - z) * s, the zero
 * point stored as is (v2; v1 stores z - 1). So quept reads its own int
 * export back (quept eval --model DIR). */
#ifndef QUEPT_GPTQ_LAYOUT_H
#define QUEPT_GPTQ_LAYOUT_H

#include "safetensors.h"

typedef struct {
    const SafeTensors *st;
    const StTensor *t;
} StRef;

/* Dequantizes the (out, in) linear `name` into w (row-major, out x in).
 * The bit width comes from qweight's shape; every shape, dtype, group index
 * and code is checked, errors name the tensor. */
int gptq_dequantize(const char *name, const StRef *qweight, const StRef *qzeros, const StRef *scales,
                    const StRef *g_idx, int out, int in, float *w, QErr *err);

#endif
