/* qconfig.h — the calibration job's quantization configuration, with the
 * reference weight-only defaults of DESIGN.md §1. Everything here is part of
 * the artifact's provenance: the same config gives the same bytes. */
#ifndef QUEPT_QCONFIG_H
#define QUEPT_QCONFIG_H

#include <stdint.h>

#include "../base/err.h"

#define QBITS_MIN  2
#define QBITS_MAX  8
#define QMAX_NBITS 7

typedef enum { METHOD_QUEPT = 0, METHOD_RTN = 1, METHOD_GPTQ = 2 } QuantMethod;

/* Which quantized input stream block j trains on:
 *   MERGED     one stream, MB-ToMe merge of the bit groups (the reference)
 *   PER_GROUP  one stream per bit group, each advanced at a random bit of it
 *   PER_BIT    one stream per bit width, each advanced at its own bit
 *   FP         the full-precision stream (no quantized stream at all) */
typedef enum { STREAM_MERGED = 0, STREAM_PER_GROUP = 1, STREAM_FP = 2, STREAM_PER_BIT = 3 } StreamMode;

/* Weight code format (values equal fakequant.h's FQ_FORMAT_*):
 *   INT  asymmetric integer codes, W = (code - zero)·scale (QuEPT's grid)
 *   POT  sign + exponent codes, W = ±scale·2^E (PoTPTQ; bits 2..5, pot.h) */
/*   GGUF ggml's block types, one per width (gguf_type[b]; ggml_quant.h): the
 *        grid, its sub-blocks and quantized scales are the type's own */
typedef enum { QFORMAT_INT = 0, QFORMAT_POT = 1, QFORMAT_GGUF = 2 } WeightFormat;
/* TEQ (trainable equivalent transformation, DESIGN.md §2): which groups of
 * linears sharing an input get a trained per-input-channel scale.
 *   NORM  q/k/v (after the attention norm) and gate/up (after the MLP
 *         norm), folded into the RMSNorm weights (the published placement)
 *   WIDE  also o (folded into v's rows) and down (folded into up's rows) */
typedef enum { TEQ_OFF = 0, TEQ_NORM = 1, TEQ_WIDE = 2 } TeqPlacement;
/* Rotation of the model before calibration (docs/rotation.md):
 *   NONE      the model as it is
 *   HADAMARD  QuaRot / QuEPT's --pre_rotate + --down_online_had: the norms
 *             folded, the residual stream rotated by a seeded +-1-diagonal
 *             Hadamard matrix (rotate_seed), W_down folded with the FFN
 *             Hadamard and its input transformed online at run time */
typedef enum { ROTATE_NONE = 0, ROTATE_HADAMARD = 1 } RotateKind;

/* The four bit groups of the multi-bit objective. */
#define QN_GROUPS 4
extern const int QGROUP_LO[QN_GROUPS], QGROUP_HI[QN_GROUPS]; /* {7,8} {5,6} {3,4} {2} */

typedef struct {
    QuantMethod method;
    int n_bits;
    int bits[QMAX_NBITS];          /* ascending, unique, in [2, 8] */
    int group[QBITS_MAX + 1];      /* group size per bit; 0 = per output channel */
    int rank[QBITS_MAX + 1];       /* adapter rank schedule per bit (reference: for 4096-wide layers) */
    int rank_ref_width;            /* >0: ranks scale by min(in,out)/rank_ref_width; 0: absolute */
    float rank_cap;                /* rank <= rank_cap * min(in,out) */
    int adapter_mode;              /* 0: adapter before quantization, 1: after scaling */
    int lwc;                       /* learnable clipping on */
    float lwc_init[QBITS_MAX + 1]; /* initial clipping logits per bit (reference: 4.0) */
    int epochs, batch;
    int min_steps; /* training budget floor: a block trains max(epochs, ceil(min_steps /
                      steps per epoch)) epochs (0: epochs alone; --epochs 0 still trains nothing) */
    float lr_lwc, lr_adapter, weight_decay;
    int loss_l2;      /* 0: L1 (reference), 1: L2 */
    float merge_keep; /* MB-ToMe: share of tokens kept from the highest bit */
    StreamMode stream;
    int normalize_loss;   /* divide each bit's loss by its starting loss */
    int prefix_grad_stop; /* lower bit groups do not train higher groups' adapter ranks */
    float holdout;        /* share of calibration sequences held out of training for the fallback */
    int fallback;         /* per block and bit: keep the adapters, drop them, or fall back to
                                   RTN — whichever has the lowest held-out loss */
    int fallback_gptq;    /* with fallback: also try GPTQ's error feedback on the chosen grid
                             (stored codes, QB_GPTQ) and keep it where it is lower */
    float gptq_damp;
    uint64_t seed;
    WeightFormat format;          /* int (default) | pot; the lwc array holds PoT's
                                   refinement Γ (gamma) and data-free scale (beta) */
    float pot_l2;                 /* PoT: L2 penalty pot_l2·ΣΓ² per linear and bit */
    int gguf_type[QBITS_MAX + 1]; /* format gguf: the ggml type (GgmlType) of width b, whose
                                     codes have b bits; 0 elsewhere */
    TeqPlacement teq;             /* TEQ scales, trained with the block, folded at the end */
    float lr_teq;                 /* their AdamW learning rate */
    int teq_init;                 /* 0: every scale starts at 1; 1: AWQ-style, s = (mean|x_c| / their
                                   geometric mean)^a with a from a grid, per block (recon.c) */
    int teq_log;                  /* 1: AdamW steps the scales' logarithm (a step moves a scale by a
                                   ratio, so it can reach large ratios); 0: the scales themselves */
    int act_bf16;                 /* the activation streams (engine/streams.h) are stored
                                   in bf16, computed on in fp32 (0: fp32 storage) */
    int act_bits[QMAX_NBITS];     /* activation quantization paired with bits[i]: the
                                   inputs of every linear fake-quantized per token at
                                   act_bits[i] bits (nn/actquant.h) whenever the weights
                                   are at bits[i]; 0 = none (weight-only), in [2, 8]
                                   otherwise; 0 past n_bits */
    RotateKind rotate;            /* the model is rotated before calibration; the artifact
                                   stores the rotated base and runs the online transform */
    uint64_t rotate_seed;         /* the rotation's random signs (0 by default, not --seed:
                                   calibrations with different seeds share one rotation) */
} QuantConfig;

/* The reference weight-only defaults (faithful QuEPT). */
void quant_config_reference(QuantConfig *qc);
/* quept's default: the reference plus the fixes documented in docs/defaults.md. */
void quant_config_default(QuantConfig *qc);
int quant_config_validate(const QuantConfig *qc, QErr *err);
/* Parses "2,3,4" or "2-8" into qc->bits. */
int quant_parse_bits(QuantConfig *qc, const char *s, QErr *err);
/* --act-bits: act (a list like --bits, in the same order, widths may repeat;
 * 16 = none) paired one to one with the widths of bits_arg (the --bits
 * text as given, NULL: qc->bits ascending) into qc->act_bits. */
int quant_parse_act_bits(QuantConfig *qc, const char *bits_arg, const char *act, QErr *err);
/* The activation width paired with bit index bi (0: none). */
int quant_act_bits(const QuantConfig *qc, int bi);
/* Whether any width quantizes activations. */
int quant_has_act(const QuantConfig *qc);

/* Group size at bit b for a row of `in` elements (capped at in); format
 * gguf: the sub-block of the row's type (quant_gtype; F16: in). */
int quant_group(const QuantConfig *qc, int bit, int in);
/* Format gguf: the ggml type a row of `in` weights is stored in at bit b
 * (gguf_type[b], or llama-quantize's fallback when the row does not fit its
 * block: gq_row_type); 0 for the other formats. */
int quant_gtype(const QuantConfig *qc, int bit, int in);
/* Switches qc to GGUF's block types: bits 2,3,4,5,6,8 as Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K, Q8_0. */
void quant_config_set_gguf(QuantConfig *qc);
/* Adapter rank at bit b for an (out, in) layer (0 for rtn/gptq). */
int quant_rank(const QuantConfig *qc, int bit, int out, int in);
/* Index of bit b in qc->bits, or -1. */
int quant_bit_index(const QuantConfig *qc, int bit);
/* Group (0..3) of bit b. */
int quant_bit_group(int bit);
const char *quant_method_name(QuantMethod m);
const char *quant_stream_name(StreamMode s);
const char *quant_format_name(WeightFormat f);
/* Switches qc to power-of-two codes with their defaults: bits 2-5, one
 * scale per group of 128 at every width, learning rate of the scale
 * refinements 3e-4 (docs/results.md, "PoT on stories260K"); later flags still apply. */
void quant_config_set_pot(QuantConfig *qc);
/* "int" / "pot" -> *f; -1 (and err) otherwise. */
int quant_parse_format(const char *s, WeightFormat *f, QErr *err);
/* "off", "norm", "wide"; quant_parse_teq is its inverse (error names the value). */
const char *quant_teq_name(TeqPlacement t);
int quant_parse_teq(const char *s, TeqPlacement *t, QErr *err);

#endif
