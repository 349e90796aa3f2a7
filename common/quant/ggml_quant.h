/* ggml_quant.h — GGUF's weight block types (ggml's Q4_0 … Q6_K) as fake
 * quantizers with learnable clipping: one function gives both the
 * dequantized row the calibration trains on and the ggml blocks export
 * writes, so a file holds exactly the codes calibration saw (--format gguf,
 * docs/formats.md#gguf-grids).
 *
 * A row of n weights (n a multiple of the type's block) is cut into
 * sub-blocks of gq_sub_elems(t) weights; each has one pair of clipping
 * factors fg, fb in (0, 1] (sigmoid of the learned logits; 1 = min/max).
 *
 * Asymmetric types (value = s'·q + m', q in [0, 2^b-1]):
 *   Q4_1, Q5_1       block 32:  d, m F16 per block
 *   Q2_K             block 256, sub-blocks of 16: 4-bit scale and min each,
 *                    super-block d, dmin F16
 *   Q4_K, Q5_K       block 256, sub-blocks of 32: 6-bit scale and min each
 *   per sub-block: hi = fg·max(x), lo = fb·min(x) (K-quants: lo = min(lo, 0),
 *   as ggml stores -min >= 0), s = (hi - lo)/qmax, m = lo.
 * Symmetric types (value = s'·c, c in [cmin, cmax]):
 *   Q4_0 (c -8..7), Q5_0 (-16..15), Q8_0 (-127..127), IQ4_NL (c indexes
 *   ggml's 16 non-uniform levels -127 … 113)   block 32, d F16
 *   Q3_K (c -4..3, 16 sub-blocks of 16, 6-bit signed scales), Q6_K (c -32..31,
 *   16 sub-blocks of 16, int8 scales)             block 256, d F16
 *   per sub-block: M = the element of largest |x| (signed), s = fg·M / D with
 *   D = -8, -16, -127, -4, -32 (the extreme maps to the type's most negative
 *   level, as ggml does) and D = ±127 (sign of M) for Q8_0.
 * The format then rounds s (and m) exactly as ggml stores them: legacy types
 * s' = f16(s), m' = f16(m); K-quants quantize the sub-block scales (and
 * mins) against the super-block maximum as ggml's reference quantizer does
 * (ls = nearest(s·63/max s), d = f16(max s/63), s' = d·ls; Q2_K with 15;
 * Q3_K / Q6_K signed with -32 / -128). Codes are then
 *   q = clamp(round((x - m')/s'), 0, qmax)  or  c = clamp(round(x/s'), cmin, cmax)
 * (IQ4_NL: the nearest level of x/s'); round is ties-to-even, as ggml's
 * nearest_int. The dequantized value is computed with ggml's own expression
 * and operation order, so it equals llama.cpp's dequantization bitwise.
 *
 * Gradients (gq_backward_row) are straight-through: round passes the
 * gradient; clamped elements pass none to x; the format's rounding of the
 * scales and mins passes the gradient unchanged (ds'/ds = dm'/dm = 1); the
 * max/min/abs-max pass theirs to the first arg-max/arg-min element.
 *
 * GQ_F16 is the fallback a row that fits no block type gets (llama-quantize
 * writes F16 there too): value = f16(x), gradient 1, no clipping. */
#ifndef QUEPT_GGML_QUANT_H
#define QUEPT_GGML_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml's own type numbers (ggml.h enum ggml_type), as GGUF stores them */
typedef enum {
    GQ_F32 = 0,
    GQ_F16 = 1,
    GQ_Q4_0 = 2,
    GQ_Q4_1 = 3,
    GQ_Q5_0 = 6,
    GQ_Q5_1 = 7,
    GQ_Q8_0 = 8,
    GQ_Q2_K = 10,
    GQ_Q3_K = 11,
    GQ_Q4_K = 12,
    GQ_Q5_K = 13,
    GQ_Q6_K = 14,
    GQ_IQ4_NL = 20,
} GgmlType;

/* Floats of backward state per sub-block (gq_quantize_row's state). */
#define GQ_STATE 4

/* 1 for the types above that quantize (not F32/F16), else 0. */
int gq_is_block_type(int t);
/* Weights per block (32 or 256; F16/F32: 1). */
int gq_block_elems(int t);
/* Bytes per block (F16: 2, F32: 4). */
int gq_block_bytes(int t);
/* Weights per sub-block, i.e. per clipping pair (16 or 32; F16/F32: 0 —
 * the caller uses one unused group per row). */
int gq_sub_elems(int t);
/* Bits per code (Q2_K 2 … Q8_0 8; IQ4_NL 4; F16 16). */
int gq_code_bits(int t);
/* Bytes of a row of n weights (n a multiple of the block). */
size_t gq_row_bytes(int t, int n);
/* "Q4_K", "IQ4_NL", "F16"; NULL for an unknown number. */
const char *gq_type_name(int t);
/* "q4_k" / "Q4_K" … -> the type; -1 when unknown (F32 / F16 included
 * only with allow_float). */
int gq_type_parse(const char *s, int allow_float);
/* The type a row of n weights is stored in when `want` is asked for: want
 * if n fits its block, else llama-quantize's fallback (Q2_K, Q3_K -> IQ4_NL;
 * Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0), and F16 when n fits no
 * 32-block either. */
int gq_row_type(int want, int n);

/* One row x (n weights, n a multiple of gq_block_elems(t)) with clipping
 * factors fg, fb (n / gq_sub_elems(t) each; fb is unused by the symmetric
 * types; both may be NULL for factors 1). Writes, where not NULL: y (n)
 * the dequantized values, packed (gq_row_bytes) the ggml blocks, state
 * (GQ_STATE per sub-block) what gq_backward_row needs. t may be GQ_F16. */
void gq_quantize_row(int t, const float *x, int n, const float *fg, const float *fb, float *y,
                     uint8_t *packed, float *state);

/* Grid indices, the form GPTQ's error feedback rounds on: per weight
 * IQ4_NL's level index, c - cmin (symmetric types: Q8_0 0..254) or q
 * (asymmetric). The largest index of type t (0 for F16). */
int gq_index_max(int t);
/* 1 for the symmetric types (value s'·c), 0 for the asymmetric ones. */
int gq_type_symmetric(int t);
/* Symmetric types: -cmin, the index of code 0 (Q4_0 8, Q8_0 127 …). */
int gq_sym_cmin_neg(int t);
/* gq_quantize_row, with the indices written to idx_out (n; may be NULL)
 * and, when idx_in is not NULL, the codes taken from idx_in instead of the
 * nearest ones (clamped to the type's range): the grid (scales, mins, F16
 * words) is still the one x and the factors give, so the blocks hold the
 * given indices on the calibrated grid. F16 rows ignore both. */
void gq_quantize_row_idx(int t, const float *x, int n, const float *fg, const float *fb,
                         const uint8_t *idx_in, uint8_t *idx_out, float *y, uint8_t *packed, float *state);

/* Given dy (n), OVERWRITES dx (n) with dL/dx and ADDS dL/dfg, dL/dfb (per
 * sub-block; NULL: not computed) — straight-through, see the top. x, fg, fb
 * and state as gq_quantize_row saw and left them. */
void gq_backward_row(int t, const float *x, int n, const float *fg, const float *fb, const float *state,
                     const float *dy, float *dx, float *dfg, float *dfb);

/* ggml's dequantization of one row of packed blocks into y (n). */
void gq_dequantize_row(int t, const uint8_t *packed, int n, float *y);

#endif
