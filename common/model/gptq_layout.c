/* gptq_layout.c — see gptq_layout.h. */
#include "gptq_layout.h"

#include <stdlib.h>
#include <string.h>

/* The b-bit value at bit pos of a little-endian stream whose word k is
 * words[k * stride] (the inverse of the export's stream_put). */
static uint32_t stream_get(const uint32_t *words, size_t stride, size_t pos, int b) {
    size_t k = pos / 32;
    int sh = (int)(pos % 32);
    uint64_t v = words[k * stride] >> sh;
    if (sh + b > 32) v |= (uint64_t)words[(k + 1) * stride] << (32 - sh);
    return (uint32_t)(v & ((1u << b) - 1u));
}

/* A raw int32 tensor of exactly the shape given, copied out (malloc'd). */
static uint32_t *read_i32(const char *name, const char *part, const StRef *r, int ndim, int64_t d0,
                          int64_t d1, QErr *err) {
    if (r->t->dtype != ST_I32)
        return qerr_set(err, "%s.%s: expected I32, got %s", name, part, st_dtype_name(r->t->dtype)), NULL;
    int64_t shape[2] = {d0, d1};
    if (st_check_shape(r->st, r->t, ndim, shape, err) != 0) return NULL;
    size_t n = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    uint32_t *v = malloc(n * 4 + 4);
    if (!v) return qerr_set(err, "%s.%s: out of memory", name, part), NULL;
    memcpy(v, r->st->data + r->t->begin, n * 4); /* little-endian hosts, as the writer */
    return v;
}

int gptq_dequantize(const char *name, const StRef *qweight, const StRef *qzeros, const StRef *scales,
                    const StRef *g_idx, int out, int in, float *w, QErr *err) {
    if (qweight->t->ndim != 2 || qweight->t->shape[1] != out || in <= 0 || (qweight->t->shape[0] * 32) % in)
        return qerr_set(err, "%s.qweight: shape does not give a bit width for (%d, %d)", name, out, in);
    const int b = (int)(qweight->t->shape[0] * 32 / in);
    if (b < 2 || b > 8 || ((size_t)out * b) % 32)
        return qerr_set(err, "%s.qweight: %d bits for (%d, %d): expected 2 to 8 bits filling whole words",
                        name, b, out, in);
    if (scales->t->ndim != 2 || scales->t->shape[1] != out || scales->t->shape[0] < 1 ||
        scales->t->shape[0] > in)
        return qerr_set(err, "%s.scales: expected (groups, %d)", name, out);
    const int ng = (int)scales->t->shape[0];
    const size_t zcols = (size_t)out * b / 32;
    uint32_t *qw = read_i32(name, "qweight", qweight, 2, (int64_t)in * b / 32, out, err);
    uint32_t *qz = qw ? read_i32(name, "qzeros", qzeros, 2, ng, (int64_t)zcols, err) : NULL;
    uint32_t *gi = qz ? read_i32(name, "g_idx", g_idx, 1, in, 0, err) : NULL;
    float *sc = gi ? malloc((size_t)ng * out * sizeof(float)) : NULL;
    int rc = sc ? 0 : -1;
    if (gi && !sc) qerr_set(err, "%s: out of memory", name);
    if (rc == 0) rc = st_read_f32(scales->st, scales->t, sc, (size_t)ng * out, err);
    for (int i = 0; rc == 0 && i < in; i++)
        if ((int32_t)gi[i] < 0 || (int32_t)gi[i] >= ng)
            rc = qerr_set(err, "%s.g_idx: column %d names group %d of %d", name, i, (int32_t)gi[i], ng);
    for (int o = 0; rc == 0 && o < out; o++)
        for (int i = 0; i < in; i++) {
            const int g = (int)gi[i];
            const float q = (float)stream_get(qw + o, (size_t)out, (size_t)i * b, b);
            const float z = (float)stream_get(qz + (size_t)g * zcols, 1, (size_t)o * b, b);
            w[(size_t)o * in + i] = (q - z) * sc[(size_t)g * out + o];
        }
    free(qw);
    free(qz);
    free(gi);
    free(sc);
    return rc;
}
