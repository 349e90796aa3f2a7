/* recon.h — the reconstruction engine: QuEPT block-wise multi-bit
 * calibration of ONE block. The distributed pipeline calls this unchanged,
 * block by block: inputs are the block's weights, its input streams and the
 * job config; outputs are the learned parameters, per-bit losses, and the
 * next block's input streams (updated in place).
 *
 * Streams (streams.h): the full-precision stream (targets come from it) and
 * the quantized stream(s), fp32 or bf16 storage; the engine reads and
 * writes them one batch at a time and computes in fp32 either way.
 *
 * Every random draw comes from rng_mix(seed, block, epoch, step), so a
 * block's result depends only on its inputs and the config.
 *
 * TEQ (qc->teq): the block trains on its transformed weights (teq.h) but w
 * is not modified; the trained scales come back in params->teq, part of the
 * block's self-contained result. Whoever merges the result into an artifact
 * folds them into the block's base weights (teq_fold), as calibrate_run
 * does, before anything else uses those weights. */
#ifndef QUEPT_RECON_H
#define QUEPT_RECON_H

#include "../quant/qconfig.h"
#include "qblock.h"
#include "recon_step.h"
#include "streams.h"

typedef struct {
    double loss_rtn[QMAX_NBITS];                         /* round-to-nearest, per bit index */
    double loss_init[QMAX_NBITS];                        /* initial parameters (clipping 4.0, Bd = 0) */
    double loss_final[QMAX_NBITS];                       /* after training (and the fallback choice) */
    int choice[QMAX_NBITS];                              /* QB_* per bit index (fallback) */
    double hold_rtn[QMAX_NBITS], hold_final[QMAX_NBITS]; /* held-out losses behind the choice */
    double seconds, tokens_per_s;
} ReconStats;

/* Called after every epoch: group losses are the mean loss of the bit drawn
 * from each group in that epoch (NAN for a group not in the bit list).
 * A nonzero return cancels: recon_block returns -1 with "cancelled". */
typedef int (*ReconProgress)(int block, int epoch, int epochs, const double group_loss[QN_GROUPS],
                             double tokens_per_s, void *user);

/* Epochs a block trains with steps_per_epoch steps each: qc->epochs, raised
 * to ceil(qc->min_steps / steps_per_epoch) when that is more (never when
 * qc->epochs is 0: no training stays no training). */
int recon_epochs(const QuantConfig *qc, long steps_per_epoch);

int recon_block(const ModelConfig *c, const QuantConfig *qc, int block, const BlockWeights *w, Streams *st,
                QBlockParams *params, ReconStats *stats, ReconProgress progress, void *user, QErr *err);

/* Replays a block calibrated before (params as recon_block left them, with
 * its choices applied): the same targets and the same stream updates as
 * recon_block, without training — how a resumed shard rebuilds its streams
 * from its stored input and the journaled parameters, bit for bit. */
int recon_replay_block(const ModelConfig *c, const QuantConfig *qc, int block, const BlockWeights *w,
                       Streams *st, const QBlockParams *params, QErr *err);

#endif
