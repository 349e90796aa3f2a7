/* gptq_layout.c — see gptq_layout.h. */
#include "gptq_layout.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *const FORMAT_NAMES[] = {[GPTQ_V1] = "gptq", [GPTQ_V2] = "gptq_v2", [GPTQ_P] = "gptq_p"};

const char *gptq_format_name(GptqFormat f) { return f >= GPTQ_V1 && f <= GPTQ_P ? FORMAT_NAMES[f] : "?"; }

int gptq_format_parse(const char *name, GptqFormat *f, QErr *err) {
    for (int i = GPTQ_V1; i <= GPTQ_P; i++)
        if (name && strcmp(name, FORMAT_NAMES[i]) == 0) {
            *f = (GptqFormat)i;
            return 0;
        }
    return qerr_set(err, "unknown GPTQ checkpoint format '%s' (gptq, gptq_v2 or gptq_p)", name ? name : "");
}

/* Plane widths of the planar layout, low bits first (0 ends the list); a
 * plane's bit offset in the code and its first word in a block of 32 codes
 * are both the sum of the widths before it. */
static const int PLANE_W[9][4] = {
    [2] = {2}, [3] = {2, 1}, [4] = {4}, [5] = {4, 1}, [6] = {4, 2}, [7] = {4, 2, 1}, [8] = {8}};

GptqLayout gptq_layout(GptqFormat f, int bits) {
    GptqLayout L = {.format = f, .bits = bits, .zero_offset = f == GPTQ_V1};
    L.planar = (bits >= 5 && bits <= 7) || (f == GPTQ_P && bits == 3);
    return L;
}

/* Word (relative to the block's first) and shift of code m of a block of 32
 * in the plane of width w at offset off. */
static size_t plane_word(int off, int w, int m) { return (size_t)off + (size_t)(m / (32 / w)); }
static int plane_shift(int w, int m) { return (m % (32 / w)) * w; }

void gptq_put(const GptqLayout *L, uint32_t *words, size_t stride, size_t k, uint32_t v) {
    const int b = L->bits;
    if (!L->planar) {
        size_t pos = k * (size_t)b, n = pos / 32;
        int sh = (int)(pos % 32);
        words[n * stride] |= v << sh;
        if (sh + b > 32) words[(n + 1) * stride] |= v >> (32 - sh);
        return;
    }
    const size_t base = k / 32 * (size_t)b;
    const int m = (int)(k % 32);
    for (int p = 0, off = 0; PLANE_W[b][p]; off += PLANE_W[b][p++]) {
        const int w = PLANE_W[b][p];
        words[(base + plane_word(off, w, m)) * stride] |= ((v >> off) & ((1u << w) - 1u))
                                                          << plane_shift(w, m);
    }
}

uint32_t gptq_get(const GptqLayout *L, const uint32_t *words, size_t stride, size_t k) {
    const int b = L->bits;
    if (!L->planar) {
        size_t pos = k * (size_t)b, n = pos / 32;
        int sh = (int)(pos % 32);
        uint64_t v = words[n * stride] >> sh;
        if (sh + b > 32) v |= (uint64_t)words[(n + 1) * stride] << (32 - sh);
        return (uint32_t)(v & ((1u << b) - 1u));
    }
    const size_t base = k / 32 * (size_t)b;
    const int m = (int)(k % 32);
    uint32_t v = 0;
    for (int p = 0, off = 0; PLANE_W[b][p]; off += PLANE_W[b][p++]) {
        const int w = PLANE_W[b][p];
        uint32_t word = words[(base + plane_word(off, w, m)) * stride];
        v |= ((word >> plane_shift(w, m)) & ((1u << w) - 1u)) << off;
    }
    return v;
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

/* The dimension n packs into whole words (and, planar, whole 32-code blocks). */
static int packs_whole(const GptqLayout *L, int n) {
    return L->planar ? n % 32 == 0 : ((size_t)n * (size_t)L->bits) % 32 == 0;
}

int gptq_dequantize(const char *name, const GptqLayout *L, const StRef *qweight, const StRef *qzeros,
                    const StRef *scales, const StRef *g_idx, int out, int in, float *w, QErr *err) {
    const int b = L->bits;
    if (b < 2 || b > 8) return qerr_set(err, "%s: %d bits: expected 2 to 8", name, b);
    if (out <= 0 || in <= 0 || !packs_whole(L, in) || !packs_whole(L, out))
        return qerr_set(err, "%s: shape (%d, %d) does not pack into whole %s words at %d bits", name, out, in,
                        L->planar ? "planar (32-code block)" : "int32", b);
    if (scales->t->ndim != 2 || scales->t->shape[1] != out || scales->t->shape[0] < 1 ||
        scales->t->shape[0] > in)
        return qerr_set(err, "%s.scales: expected (groups, %d)", name, out);
    const int ng = (int)scales->t->shape[0];
    const size_t zcols = (size_t)out * b / 32;
    uint32_t *qw = read_i32(name, "qweight", qweight, 2, (int64_t)in * b / 32, out, err);
    uint32_t *qz = qw ? read_i32(name, "qzeros", qzeros, 2, ng, (int64_t)zcols, err) : NULL;
    uint32_t *gi = qz ? read_i32(name, "g_idx", g_idx, 1, in, 0, err) : NULL;
    float *sc = gi ? malloc((size_t)ng * out * sizeof(float)) : NULL;
    float *zf = sc ? malloc((size_t)ng * out * sizeof(float)) : NULL;
    int rc = zf ? 0 : -1;
    if (gi && !zf) qerr_set(err, "%s: out of memory", name);
    if (rc == 0) rc = st_read_f32(scales->st, scales->t, sc, (size_t)ng * out, err);
    for (int i = 0; rc == 0 && i < in; i++)
        if ((int32_t)gi[i] < 0 || (int32_t)gi[i] >= ng)
            rc = qerr_set(err, "%s.g_idx: column %d names group %d of %d", name, i, (int32_t)gi[i], ng);
    const uint32_t maxq = (1u << b) - 1u;
    for (int g = 0; rc == 0 && g < ng; g++)
        for (int o = 0; rc == 0 && o < out; o++) {
            uint32_t z = gptq_get(L, qz + (size_t)g * zcols, 1, (size_t)o);
            /* v1 cannot store zero point 0: its field would wrap to maxq,
             * which loaders read as 0 or as 2^b depending on the kernel */
            if (L->zero_offset && z == maxq)
                rc = qerr_set(err,
                              "%s.qzeros: group %d column %d holds %u, a wrapped zero point 0 that "
                              "format gptq (v1, zero - 1) cannot store",
                              name, g, o, (unsigned)z);
            zf[(size_t)g * out + o] = (float)(z + (uint32_t)L->zero_offset);
        }
    for (int o = 0; rc == 0 && o < out; o++)
        for (int i = 0; i < in; i++) {
            const size_t gk = (size_t)gi[i] * out + (size_t)o;
            const float q = (float)gptq_get(L, qw + o, (size_t)out, (size_t)i);
            w[(size_t)o * in + i] = (q - zf[gk]) * sc[gk];
        }
    free(qw);
    free(qz);
    free(gi);
    free(sc);
    free(zf);
    return rc;
}

int gptq_layout_from_config(const struct cJSON *qcfg, const char *path, GptqLayout *L, QErr *err) {
    if (!cJSON_IsObject(qcfg)) return qerr_set(err, "%s: 'quantization_config' must be an object", path);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(qcfg, "quant_method");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, "gptq") != 0)
        return qerr_set(err, "%s: quantization_config.quant_method must be \"gptq\" for GPTQ-packed linears",
                        path);
    const cJSON *bj = cJSON_GetObjectItemCaseSensitive(qcfg, "bits");
    if (!cJSON_IsNumber(bj) || bj->valuedouble != (double)(int)bj->valuedouble || bj->valueint < 2 ||
        bj->valueint > 8)
        return qerr_set(err, "%s: quantization_config.bits must be an integer from 2 to 8", path);
    const int bits = bj->valueint;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(qcfg, "format");
    const char *key = "format";
    if (!f || cJSON_IsNull(f)) f = cJSON_GetObjectItemCaseSensitive(qcfg, key = "checkpoint_format");
    GptqFormat fmt = GPTQ_V1;
    if (f && !cJSON_IsNull(f)) {
        if (!cJSON_IsString(f) || gptq_format_parse(f->valuestring, &fmt, err) != 0)
            return qerr_set(err, "%s: quantization_config.%s must be \"gptq\", \"gptq_v2\" or \"gptq_p\"",
                            path, key);
    }
    if (cJSON_GetObjectItemCaseSensitive(qcfg, "quept_packing") && (bits == 5 || bits == 6))
        return qerr_set(err,
                        "%s: a %d-bit export of an earlier quept (one bit stream per column, which GPTQModel "
                        "reads as its planar gptq_p layout): export the artifact again",
                        path, bits);
    *L = gptq_layout(fmt, bits);
    return 0;
}
