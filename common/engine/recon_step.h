/* recon_step.h — one training step's work for one bit width on one batch:
 * build the fake-quantized block, forward, reconstruction loss, backward
 * through the block and the quantizers. All buffers are laid out once
 * (ReconStep) and reused for every step of a block. The block loop
 * (recon.c), the tests and `quept bench recon` all call this. */
#ifndef QUEPT_RECON_STEP_H
#define QUEPT_RECON_STEP_H

#include "../nn/block.h"
#include "../quant/qconfig.h"
#include "qblock.h"
#include "streams.h"

typedef struct {
    BlockActs acts;
    float *out, *dout, *bscratch, *work;
    float *xin; /* one batch (B,T,C) of a stream read as fp32 when the
                                  streams are stored in bf16 (streams.h) */
    float *wq[N_LIN], *fqs[N_LIN];
    float *g_lwc, *g_adapter; /* gradients, same layout as p->lwc, p->adapter */
    float *g_adapter_bit;     /* one linear's adapter gradient for the current bit
                                  (prefix_grad_stop routes it rank by rank) */
    /* TEQ (p->n_teq > 0 at init; else NULL): */
    float *g_teq;            /* the scales' gradient, layout of p->teq */
    float *teq_G, *teq_dvec; /* one call's log-scale gradient (teq.h); a norm's or
                                  bias's gradient */
    int no_quant;            /* 1: the linears use their weights as they are, no
                                  fake quantization (tests of the transformation
                                  alone: equivalence, finite differences); 0 after init */
} ReconStep;

int recon_step_init(ReconStep *b, const ModelConfig *c, const QBlockParams *p, int B, int T, QErr *err);
void recon_step_free(ReconStep *b);

/* Reconstruction loss of out vs target (B*T rows of C): |d| (L1) or d^2
 * (L2) summed over tokens, averaged over batch and hidden; with dout, its
 * gradient times grad_scale. */
double recon_loss(const float *out, const float *target, float *dout, int B, int T, int C, int l2,
                  float grad_scale);

/* Forward + loss + backward at bit index bi on x (B,T,C) against target,
 * with the width's activation quantization (p->act_bits[bi]; recon_step_init
 * lays out acts.aq when any width has one);
 * ACCUMULATES the gradients into b->g_lwc and b->g_adapter, and with TEQ
 * into b->g_teq (zero them per step). With TEQ, w must be the transformed
 * block (teq_transform of the base under p's scales). Returns the loss
 * (before grad_scale). */
double recon_step_bit(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                      const BlockWeights *w, ReconStep *b, int bi, const float *x, const float *target,
                      float grad_scale);

/* Mean loss over all full batches of `in` (n_seq,T,C) against target at bit
 * index bi, with the current parameters (rtn=1: round-to-nearest). */
double recon_eval_loss(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                       const BlockWeights *w, ReconStep *b, int bi, int rtn, const float *in,
                       const float *target, int n_seq, int T);

/* The same over sequences [s0, s0 + n) of a stream slot (streams.h), read
 * batch by batch (through b->xin when stored in bf16); target holds those n
 * sequences. With fp32 storage it is recon_eval_loss on the slot's memory. */
double recon_eval_loss_streams(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                               const BlockWeights *w, ReconStep *b, int bi, int rtn, const Streams *st,
                               int slot, int s0, const float *target, int n_seq);

/* Per bit group g, the bit indices of the list in it (gn[g] = count). */
void recon_group_bits(const QuantConfig *qc, int gb[QN_GROUPS][2], int gn[QN_GROUPS]);

#endif
