/* gptq_round.h — GPTQ inside a block: the Hessians of the seven linears'
 * inputs, and QuEPT's GPTQ candidate of the held-out fallback.
 *
 * The candidate (QuantConfig.fallback_gptq): after training and the
 * fallback's first choice at bit index bi, each linear's weight as that
 * choice quantizes it (X = W + Bd·Bu at the bit's rank, X = W without
 * adapters) is rounded by GPTQ's error feedback instead of to nearest, in
 * two variants: on the choice's own grid (the learned clipping's scales and
 * zeros, gptq_quantize_grid), and on GPTQ's min/max grid taken as it goes
 * (gptq_quantize: plain GPTQ of the adapted, TEQ-transformed weight). The
 * Hessians are those of the linears' inputs when the
 * full-precision block runs on the bit's quantized stream — the GPTQ
 * baseline's convention (calibrate.c) — over the training sequences only,
 * so the held-out loss that judges the candidate is on data GPTQ never saw.
 * The variant with the lower held-out loss is kept (choice QB_GPTQ, codes
 * stored in p->rounded) only where that loss is lower than the first
 * choice's. */
#ifndef QUEPT_GPTQ_ROUND_H
#define QUEPT_GPTQ_ROUND_H

#include "../nn/block.h"
#include "qblock.h"
#include "recon.h"
#include "recon_step.h"

/* The four Hessians a block's linears share (q/k/v read ln1, gate/up ln2):
 * indices into an array of N_LIN, the rest unused. */
enum { HESS_ATTN = LIN_Q, HESS_O = LIN_O, HESS_MLP = LIN_GATE, HESS_DOWN = LIN_DOWN };

/* The Hessian linear l uses (HESS_*). */
int block_hessian_of(int l);

/* After a block_forward on N = B*T tokens: H[HESS_*] += X^T X (upper
 * triangles) of the inputs of the block's linears, as acts holds them. */
void block_hessians_accumulate(const ModelConfig *c, const BlockActs *a, int N, float *const H[N_LIN]);

/* The candidate for every bit of p (int codes only; a no-op otherwise):
 * Hessians from sequences [0, n_train) of each bit's stream slot through w
 * (the block as trained: TEQ-transformed), judged on [s_hold, s_hold +
 * n_hold) against target (which holds those sequences). Updates p
 * (choice, rounded) and stats (choice, hold_final) where it wins. */
int gptq_round_candidates(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p, const BlockWeights *w,
                          ReconStep *b, const Streams *st, int n_train, int s_hold, int n_hold,
                          const float *target, ReconStats *stats, int block, QErr *err);

#endif
