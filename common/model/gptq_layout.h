/* gptq_layout.h — the GPTQ checkpoint layouts: how b-bit codes and zero
 * points sit in int32 words, and reading a linear stored that way (so quept
 * reads its own `quept export --format safetensors-int` back: quept eval
 * --model DIR). docs/formats.md ("safetensors-int packing") has the rules
 * and where each loader's convention comes from.
 *
 * Per linear (out, in) with ng groups along in:
 *   qweight int32 (in*b/32, out)  the codes of output column o, in input
 *                                 order, packed down column o
 *   qzeros  int32 (ng, out*b/32)  the zero points of group g, in output
 *                                 order, packed along row g
 *   scales  (ng, out) f16 or f32; g_idx int32 (in), the group of each input
 *   W[o][i] = (q - z) * s,  z = stored zero + 1 for format gptq (v1), as
 *                           stored for gptq_v2 and gptq_p.
 * Word layouts of a packed sequence (code k, words one stride apart):
 *   classic  code k at bits [k*b, k*b+b) of one little-endian bit stream,
 *            stream bit p = bit p%32 of word p/32. At 2/4/8 bits this is
 *            32/b codes per word; at 3 bits AutoGPTQ's 10 + split + 10 +
 *            split + 10 pack. Formats gptq and gptq_v2 at 2, 3, 4, 8 bits.
 *   planar   GPTQModel's gptq_p: each block of 32 codes takes b words, one
 *            plane after another (low bits first): a plane of width w
 *            (2+1 planes at 3 bits, 4+1 at 5, 4+2 at 6, 4+2+1 at 7, one
 *            plane at 2/4/8) holds bits [off, off+w) of the codes in w
 *            words, 32/w codes per word, code m of the block at shift
 *            (m % (32/w))*w of the plane's word m / (32/w). GPTQModel uses
 *            it at 5/6/7 bits under any gptq format, and at 3 bits under
 *            gptq_p; at 2/4/8 bits it equals classic. */
#ifndef QUEPT_GPTQ_LAYOUT_H
#define QUEPT_GPTQ_LAYOUT_H

#include <stdint.h>

#include "safetensors.h"

/* A tensor and the file it is in. */
typedef struct {
    const SafeTensors *st;
    const StTensor *t;
} StRef;

typedef enum {
    GPTQ_V1 = 1, /* "gptq": zero points stored minus one (AutoGPTQ) */
    GPTQ_V2,     /* "gptq_v2": zero points as they are (GPTQModel) */
    GPTQ_P,      /* "gptq_p": GPTQModel's planar words, zero points as they are */
} GptqFormat;

typedef struct {
    GptqFormat format;
    int bits;        /* 2..8 */
    int planar;      /* 1: planar words, 0: classic */
    int zero_offset; /* 1 for v1: stored = zero - 1 */
} GptqLayout;

/* "gptq", "gptq_v2", "gptq_p" */
const char *gptq_format_name(GptqFormat f);
/* 0 and *f set, or -1 for any other name (err names the choices). */
int gptq_format_parse(const char *name, GptqFormat *f, QErr *err);

/* The layout GPTQModel reads for format f at bits (2..8): planar at 5/6/7
 * bits whatever f says, and at 3 bits under gptq_p. */
GptqLayout gptq_layout(GptqFormat f, int bits);

/* The layout a config.json's "quantization_config" object names (path for
 * messages): quant_method "gptq", bits 2..8, the format from "format"
 * (GPTQModel's key) or else "checkpoint_format" (AutoGPTQ's), "gptq" when
 * both are absent (as both libraries default). A 5/6-bit export of an
 * earlier quept (its "quept_packing" key: a bit stream GPTQModel would read
 * as planar) is refused. */
struct cJSON;
int gptq_layout_from_config(const struct cJSON *qcfg, const char *path, GptqLayout *L, QErr *err);

/* ORs value v into code slot k of a packed sequence whose word n is
 * words[n * stride] (the words start zeroed). */
void gptq_put(const GptqLayout *L, uint32_t *words, size_t stride, size_t k, uint32_t v);
/* The code in slot k (the inverse of gptq_put). */
uint32_t gptq_get(const GptqLayout *L, const uint32_t *words, size_t stride, size_t k);

/* Dequantizes the (out, in) linear `name` into w (row-major, out x in) under
 * layout L. Every shape, dtype, group index and stored zero point is
 * checked; errors name the tensor. */
int gptq_dequantize(const char *name, const GptqLayout *L, const StRef *qweight, const StRef *qzeros,
                    const StRef *scales, const StRef *g_idx, int out, int in, float *w, QErr *err);

#endif
