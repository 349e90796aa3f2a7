/* qblock.h — the learned parameters of one decoder block, and building the
 * block's fake-quantized weights at one bit width from them.
 *
 * Per linear layer l (q, k, v, o, gate, up, down) of shape (out, in):
 *   Bd (out, R_l), Bu (R_l, in)     cascaded adapters, R_l = max rank over bits
 *   gamma_b, beta_b (out, ng_b)     clipping logits for each bit b
 * PoT format (QuantConfig.format): gamma_b is the scale refinement Γ
 * (init 0) and beta_b the group's data-free scale s0 (set from the weights
 * by qblock_params_init_scales, never trained).
 * All logits live in one array (`lwc`), all adapters in another (`adapter`),
 * so gradients and optimizer state are two arrays of the same layout — the
 * two AdamW parameter groups. */
#ifndef QUEPT_QBLOCK_H
#define QUEPT_QBLOCK_H

#include "../model/model.h"
#include "../quant/fakequant.h"
#include "../quant/qconfig.h"

enum { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, N_LIN };
extern const char *const LIN_NAMES[N_LIN];

typedef struct {
    int out, in, R;
    size_t off_Bd, off_Bu;                              /* into adapter */
    size_t off_gamma[QMAX_NBITS], off_beta[QMAX_NBITS]; /* into lwc, per bit index */
    FqSpec spec[QMAX_NBITS];                            /* per bit index */
} QLinear;

/* What block j uses at a bit, chosen after training (QuantConfig.fallback).
 * QB_GPTQ: stored codes (QBlockParams.rounded) — GPTQ's error feedback on
 * the grid of the configuration chosen before it (QuantConfig.fallback_gptq). */
enum { QB_TRAINED = 0, QB_NO_ADAPTER = 1, QB_RTN = 2, QB_GPTQ = 3 };

/* Stored integer weights of one linear at one width: codes (out, in), one
 * per byte; scales, zeros (out, ng); W = (codes - zeros) * scales. The
 * GPTQ method's per-bit result, and QuEPT's QB_GPTQ choice. */
typedef struct {
    uint8_t *codes;
    float *scales, *zeros;
} GptqLinear;

/* Checks stored codes from outside (artifact, journal, wire) before they are
 * used: every code <= 2^bits - 1, every scale finite and > 0, every zero a
 * whole number within 2^24 — so a corrupt or hostile file is refused instead
 * of switching to wrong weights or leaking into a neighbouring nibble of a
 * packed export. n_codes = out*in, ng = out*groups; what names them in the
 * error. */
/* The range of a linear's stored codes at spec s: its width, or for a
 * GGUF row the bits of its type's grid indices (gq_index_max; F16: 8). */
int qblock_code_bits(const FqSpec *s);
int gptq_linear_check(const GptqLinear *g, size_t n_codes, size_t ng, int bits, const char *what, QErr *err);

/* TEQ scale vectors (QuantConfig.teq), one per group of linears sharing an
 * input: ATTN (dim) for q/k/v, MLP (dim) for gate/up, O (n_kv_heads*head_dim,
 * one per row of v) for o, DOWN (hidden) for down. See teq.h. */
enum { TEQ_ATTN, TEQ_MLP, TEQ_O, TEQ_DOWN, TEQ_NGROUPS };

typedef struct {
    int n_bits, bits[QMAX_NBITS];
    int act_bits[QMAX_NBITS]; /* activation width paired with each bit index (0: none;
                                 QuantConfig.act_bits); the views qblock_build makes carry it */
    int choice[QMAX_NBITS];   /* QB_* per bit index */
    QLinear lin[N_LIN];
    size_t n_lwc, n_adapter;
    float *lwc, *adapter;
    /* TEQ: a third parameter group, shared by all bit widths; teq_len[g] = 0
     * for a group not transformed (n_teq = 0: TEQ off, or already folded
     * into the base weights by teq_fold) */
    int teq_len[TEQ_NGROUPS];
    size_t teq_off[TEQ_NGROUPS], n_teq;
    float *teq;
    /* QB_GPTQ: the stored codes of every linear at bit index bi (allocated
     * only for the bits with that choice; freed by qblock_params_free) */
    GptqLinear rounded[N_LIN][QMAX_NBITS];
    /* the same codes flattened (qblock_rounded_pack), only in a QBlockParams
     * that carries raw arrays between the wire, the journal and
     * qblock_params_restore (as lwc/adapter/teq are then raw); freed by
     * qblock_params_free */
    uint8_t *flat_codes;
    float *flat_grid;
    size_t n_flat_codes, n_flat_grid;
} QBlockParams;

/* Shapes (out, in) of the seven linears of a block. */
void qblock_linear_shape(const ModelConfig *c, int l, int *out, int *in);
/* The slot of linear l in w (to redirect a view), and its weight, read-only. */
float **qblock_linear_slot(BlockWeights *w, int l);
const float *qblock_linear_weight(const BlockWeights *w, int l);

/* Lays out and initialises parameters: logits 4.0, Bd = 0, Bu Xavier-uniform
 * from an Rng seeded with (seed, block), TEQ scales 1. For rtn and gptq
 * (ranks 0) the specs have no clipping: the round-to-nearest grid, which
 * TEQ trains through. */
int qblock_params_init(QBlockParams *p, const ModelConfig *c, const QuantConfig *qc, int block, QErr *err);
void qblock_params_free(QBlockParams *p);
/* PoT: the data-free scales (beta) of every PoT bit from the block's
 * weights (fq_pot_init_scales); nothing for integer codes. */
void qblock_params_init_scales(QBlockParams *p, const BlockWeights *w);

/* The stored codes of every QB_GPTQ bit, flattened for the journal and the
 * wire: bits in order, linears in order within a bit; codes (out*in each)
 * in one u8 array, grids (scales then zeros, out*ng each) in one f32 array.
 * Sizes for a choice vector (before any codes exist), then the copy. */
void qblock_rounded_sizes(const QBlockParams *p, const int *choice, size_t *n_codes, size_t *n_grid);
void qblock_rounded_pack(const QBlockParams *p, uint8_t *codes, float *grid);
/* p->flat_codes / flat_grid allocated and packed from p->rounded (the form
 * the wire and the journal carry). */
int qblock_rounded_flatten(QBlockParams *p, QErr *err);

/* Parameters saved before (journal, wire): the layout of qblock_params_init
 * filled from lwc/adapter (sizes must match it), then every bit's choice
 * applied — exactly the state recon_block returned. codes/grid: the
 * QB_GPTQ bits' stored codes as qblock_rounded_pack flattened them (sizes
 * must be what the choices need; every code <= 2^b - 1, every scale finite
 * and > 0, every zero finite). */
int qblock_params_restore(QBlockParams *p, const ModelConfig *c, const QuantConfig *qc, int block,
                          const float *lwc, size_t n_lwc, const float *adapter, size_t n_adapter,
                          const float *teq, size_t n_teq, const int *choice, const uint8_t *codes,
                          size_t n_codes, const float *grid, size_t n_grid, QErr *err);

/* qblock_params_restore from the raw arrays of a QBlockParams (as the
 * journal and the wire fill them: lwc, adapter, teq, flat_codes, flat_grid). */
int qblock_params_restore_raw(QBlockParams *p, const ModelConfig *c, const QuantConfig *qc, int block,
                              const QBlockParams *raw, const int *choice, QErr *err);

/* Allocates bit bi's stored codes (every linear; zeroed). */
int qblock_rounded_alloc(QBlockParams *p, int bi, QErr *err);
void qblock_rounded_free(QBlockParams *p, int bi);

/* Applies a choice at bit index bi: QB_NO_ADAPTER sets the bit's ranks to 0;
 * QB_RTN also sets its clipping logits to 20 (sigmoid(20) == 1.0f: the
 * round-to-nearest grid, exactly); PoT: Γ = 0 (the data-free scales).
 * QB_GPTQ only records the choice: the bit's weights are its stored codes
 * (p->rounded[.][bi], which the caller fills). */
void qblock_set_choice(QBlockParams *p, int bi, int choice);

/* Fake-quantized weights at bit index bi (a QB_GPTQ bit: its stored codes,
 * dequantized; scratch is then not filled — no backward follows a choice). view: a copy of base whose linear
 * pointers are redirected to wq[l] (caller-owned (out,in) buffers), with
 * the width's activation quantization (view->act_bits = p->act_bits[bi]);
 * scratch[l] (fq_scratch_floats) is filled for a following backward, may be NULL. */
void qblock_build(const QBlockParams *p, const BlockWeights *base, int bi, const float *lwc,
                  const float *adapter, float *const wq[N_LIN], float *const scratch[N_LIN],
                  BlockWeights *view);

/* The round-to-nearest weights at bit index bi (same grid, no clipping),
 * with the width's activation quantization as qblock_build. */
void qblock_build_rtn(const QBlockParams *p, const BlockWeights *base, int bi, float *const wq[N_LIN],
                      BlockWeights *view);

#endif
