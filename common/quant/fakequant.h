/* fakequant.h — the quantized linear layer's weight path: fake quantization
 * with learnable weight clipping (LWC) and cascaded low-rank adapters
 * (MB-CLoRA), forward and backward (DESIGN.md §1).
 *
 * Shapes (all row-major float32):
 *   W      (out, in)      frozen full-precision weight
 *   Bd     (out, R)       adapter "down" factor; bit b uses columns [0, rank)
 *   Bu     (R, in)        adapter "up" factor;   bit b uses rows    [0, rank)
 *   gamma  (out, ng)      LWC logit of the upper bound, per group
 *   beta   (out, ng)      LWC logit of the lower bound, per group
 *   What   (out, in)      fake-quantized weight
 * Groups run along the input dimension: row o, group k covers columns
 * [k*group, min((k+1)*group, in)); ng = ceil(in/group). When in % group != 0
 * the last group of each row is shorter and its min/max are taken over its
 * real elements only (no zero padding — the reference pads with zeros, which
 * forces 0 into that group's range; we do not).
 *
 * With A = Bd[:, :rank] @ Bu[:rank, :], qmax = 2^bits - 1, and per group
 * fg = sigmoid(gamma), fb = sigmoid(beta) (both 1 when lwc == 0):
 *   mode FQ_ADAPTER_BEFORE_QUANT (0):  X = W + A, the grid comes from X
 *       xmax' = fg*max(X_grp), xmin' = fb*min(X_grp)
 *       s = max((xmax' - xmin')/qmax, 1e-5), z = -round(xmin'/s)
 *       q = clamp(round(X/s) + z, 0, qmax), What = (q - z)*s
 *   mode FQ_ADAPTER_AFTER_SCALE (1): the grid (s, z) comes from W alone,
 *       q = clamp(round(W/s + A/s) + z, 0, qmax), What = (q - z)*s
 * round is round-half-to-even (nearbyintf, like torch.round). z is never
 * clamped (the reference clamps xmin'/s to ±1e4, a float16 guard that only
 * bites for groups of one sign with a range < 1e-4 of their offset).
 *
 * Gradients are exactly PyTorch autograd's for this definition: straight-
 * through round; the max(., 1e-5) on s passes the gradient unconditionally;
 * the clamp on q zeroes it where round(.)+z lies outside [0, qmax] (bounds
 * inclusive, as torch.clamp); z carries none; in mode 0 the gradient of
 * max/min goes to the arg-max/arg-min element(s) of X, split evenly between
 * exact ties (as torch.amax/amin). W never receives a gradient.
 *
 * Use in a training step for one bit width b:
 *   fq_forward(&spec, W, Bd, Bu, gamma, beta, What, scratch);   // no data
 *   ... What in the block's matmuls, their backward gives dWhat ...
 *   fq_backward(&spec, W, Bd, Bu, gamma, beta, scratch, dWhat,
 *               dgamma, dbeta, dBd, dBu, work);                 // += grads
 * The parameters must be unchanged between the two calls. The backward
 * recomputes A with the same sgemm call (bitwise the same result), so the
 * saved state is only a few floats per group.
 *
 * Power-of-two format (format == FQ_FORMAT_POT, pot.h): the same calls
 * quantize X = W + A (mode 0 only) to sign + exponent codes, value
 * ±s·2^E, with one scale per group
 *   s = beta · max(1 + gamma, 0.01)      (gamma = 0 when lwc == 0)
 * i.e. beta holds the group's data-free scale s0 (fq_pot_init_scales; it is
 * never trained: fq_backward leaves dbeta alone) and gamma the learned
 * refinement Γ of PoTPTQ. Gradients (straight-through, pot.h):
 *   dgamma += s0 · sum_j dy_j·(pot(u_j) - in_j·u_j),   dX = in·dy
 * (the floor on 1 + Γ passes the gradient). The scales never depend on X,
 * so nothing flows through a max/min; zeros are 0 in fq_quantize_codes.
 *
 * GGUF block types (format == FQ_FORMAT_GGUF, ggml_quant.h): the same calls
 * quantize X = W + A (mode 0 only) row by row with the ggml type gtype, the
 * clipping factors sigmoid(gamma), sigmoid(beta) per sub-block (the group);
 * scratch holds GQ_STATE floats per group (the same 4). fq_quantize_codes
 * and fq_dequantize do not apply: fq_quantize_packed gives the ggml blocks.
 *
 * Cost per call: forward one (out x rank x in) sgemm + O(out*in);
 * backward three such sgemms + O(out*in). Nothing allocates. */
#ifndef QUEPT_FAKEQUANT_H
#define QUEPT_FAKEQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"

enum { FQ_ADAPTER_BEFORE_QUANT = 0, FQ_ADAPTER_AFTER_SCALE = 1 };
enum { FQ_FORMAT_INT = 0, FQ_FORMAT_POT = 1, FQ_FORMAT_GGUF = 2 };

typedef struct {
    int out, in; /* W is (out, in) */
    int bits;    /* 1..8 (codes fit in uint8) */
    int group;   /* group size along in, 1..in (per output channel: group = in) */
    int rank;    /* r: adapter ranks used at this bit width, 0..R (0: no adapter) */
    int R;       /* full adapter rank: row stride of Bd, rows of Bu (>= 0) */
    int mode;    /* FQ_ADAPTER_BEFORE_QUANT or FQ_ADAPTER_AFTER_SCALE */
    int lwc;     /* 1: clip factors sigmoid(gamma), sigmoid(beta);
                    0: factors 1 (plain min/max grid), gamma/beta unused
                    (PoT: 1 = refinement gamma used, 0 = gamma ignored) */
    int format;  /* FQ_FORMAT_INT (0, default), FQ_FORMAT_POT (bits 2..5, mode 0) or
                    FQ_FORMAT_GGUF (mode 0; ggml_quant.h) */
    int gtype;   /* FQ_FORMAT_GGUF: the row's ggml type (GgmlType; GQ_F16 for a row
                    that fits no block type); group = its sub-block (F16: in) */
} FqSpec;

/* Validates a spec (ranges above, products fit in int). The functions below
 * assume a valid spec and do not re-check it. */
int fq_spec_check(const FqSpec *s, QErr *err);

/* Groups per row: ceil(in / group). gamma, beta, scales, zeros are (out, ng). */
int fq_ngroups(const FqSpec *s);

/* Floats of state fq_forward saves for fq_backward: 4 per group
 * (layout: s[out*ng], z[out*ng], xmax[out*ng], xmin[out*ng]; xmax/xmin are
 * the unclipped group max/min of X (mode 0) or W (mode 1)). */
size_t fq_scratch_floats(const FqSpec *s);

/* Floats of the work buffer fq_backward and fq_quantize_codes need:
 * out*in when rank > 0, else 0 (work may then be NULL). */
size_t fq_work_floats(const FqSpec *s);

/* What = Q_b(...) as above. Bd/Bu may be NULL when rank == 0, gamma/beta
 * when lwc == 0. scratch (fq_scratch_floats) may be NULL if no backward
 * follows. */
void fq_forward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                const float *beta, float *What, float *scratch);

/* Given dWhat (out, in), ACCUMULATES (+=) dgamma, dbeta (out, ng) and
 * dBd (out, R; only columns [0, rank) touched), dBu (R, in; only rows
 * [0, rank) touched). scratch is what fq_forward filled for the same inputs.
 * work: fq_work_floats floats, clobbered. dgamma/dbeta may be NULL (their
 * gradient is then not computed; they are unused when lwc == 0); dBd/dBu
 * may be NULL when rank == 0. */
void fq_backward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                 const float *beta, const float *scratch, const float *dWhat, float *dgamma, float *dbeta,
                 float *dBd, float *dBu, float *work);

/* fq_backward plus the gradient of the quantizer's input W (TEQ trains a
 * scale of W, so W is not frozen there): dW (out, in) is OVERWRITTEN with
 * dL/dW — the STE-masked dWhat, plus in mode 0 (or at rank 0) the arg-max /
 * arg-min terms of X = W + A, and in mode 1 dA plus the arg-max / arg-min
 * terms of W, whose grid it is (ties split evenly, as torch.amax/amin).
 * work: as fq_backward (unused at rank 0). */
void fq_backward_w(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                   const float *beta, const float *scratch, const float *dWhat, float *dgamma, float *dbeta,
                   float *dBd, float *dBu, float *dW, float *work);

/* Round-to-nearest baseline on the same grid: no adapter, clip factors 1.
 * Uses out, in, bits, group, format of the spec; ignores rank, R, mode, lwc.
 * PoT: the data-free scales (fq_pot_init_scales), searched on the fly. */
void fq_rtn(const FqSpec *s, const float *W, float *What);

/* X (out, in) = W + Bd[:, :rank] @ Bu[:rank, :] (mode 0's adapted weight),
 * chunk by chunk with exactly the calls fq_forward / fq_quantize_codes make,
 * so quantizing X with rank 0 gives their result bitwise. X = W for rank 0. */
void fq_merge_adapter(const FqSpec *s, const float *W, const float *Bd, const float *Bu, float *X);

/* The integer form of fq_forward's result, for export: codes (out, in) in
 * [0, qmax], scales and zeros (out, ng) with
 *   What[o][j] == ((float)codes[o][j] - zeros[o][k]) * scales[o][k]
 * bitwise equal to fq_forward's What (k = j / group). zeros are integers
 * (possibly outside [0, qmax]). work: fq_work_floats floats, clobbered. */
void fq_quantize_codes(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                       const float *beta, uint8_t *codes, float *scales, float *zeros, float *work);

/* What = (codes - zeros) * scales, group-wise (inverse of the above).
 * Uses out, in, group, format of the spec (PoT: ±scales·2^E by an exponent
 * add, zeros unused). */
void fq_dequantize(const FqSpec *s, const uint8_t *codes, const float *scales, const float *zeros,
                   float *What);

/* FQ_FORMAT_GGUF: the ggml blocks of fq_forward's result, rows in order
 * (out * gq_row_bytes(gtype, in) bytes), whose ggml dequantization is
 * fq_forward's What bitwise. gamma/beta NULL: factors 1 (RTN). work: as
 * fq_quantize_codes. */
void fq_quantize_packed(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                        const float *beta, const uint8_t *idx, uint8_t *packed, float *work);
/* idx (out, in) NULL: the nearest codes; else the grid indices
 * (gq_quantize_row_idx) to hold on the calibrated grid — a QB_GPTQ width's
 * stored codes. fq_gguf_from_index: What (out, in) of those blocks,
 * bitwise their ggml dequantization (no scratch, no work: X is built in
 * What). */
void fq_gguf_from_index(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                        const float *beta, const uint8_t *idx, float *What);
/* GPTQ on a GGUF grid (the fallback's candidate): fills X (out, in) with
 * what GPTQ rounds — W + A, minus each group's minimum m' for the
 * asymmetric types — and scales / zeros (out, ng) of the equivalent integer
 * grid q = clamp(round(x/s) + z, 0, 2^bits - 1) (s > 0, z whole; a group
 * with a negative symmetric scale is mirrored: flip[g] = 1), idx (out, in)
 * the nearest indices. IQ4_NL and F16 linears have no such grid: X gets
 * What, idx the nearest indices, and scales/zeros/flip are untouched.
 * fq_gguf_gptq_index turns GPTQ's codes back into grid indices. Returns -1
 * when out of memory. */
int fq_gguf_gptq_grid(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                      const float *beta, float *X, uint8_t *idx, float *scales, float *zeros, uint8_t *flip);
void fq_gguf_gptq_index(const FqSpec *s, const uint8_t *codes, const uint8_t *flip, uint8_t *idx);

/* PoT: the data-free scale of every group of W (out, in) into s0 (out, ng)
 * (pot_search_scale per group). */
void fq_pot_init_scales(const FqSpec *s, const float *W, float *s0);

#endif
