/* shard_task.h — what a worker computes for one assignment: a contiguous
 * shard of blocks [block_begin, block_end) from the shard's input
 * activations (DESIGN.md §3):
 *
 *   1. if asked (send_fp_out): the full-precision pass through the shard,
 *      sending X(block_end) on for the next shard;
 *   2. the blocks [block_begin, block_start) already in the coordinator's
 *      journal are replayed from their parameters (streams rebuilt bit for
 *      bit, recon_replay_block);
 *   3. every block [block_start, block_end) is calibrated by recon_block,
 *      unchanged, with a progress message per epoch and a result per block.
 *
 * Runs on the worker's compute thread; every outgoing message is encoded
 * and sent on `pipe` (an inproc PAIR to the worker's I/O thread). */
#ifndef QUEPT_WORKER_SHARD_TASK_H
#define QUEPT_WORKER_SHARD_TASK_H

#include <stdatomic.h>

#include "proto/msg.h"

typedef struct {
    Msg assign;    /* the decoded ASSIGN (no tensors) */
    Streams input; /* its full-precision stream (n_seq, T, dim): the shard's
                             input, stored as the job's streams are (fp32 or bf16) */
    unsigned char *seq_seen;
    int seqs_received;
    QBlockParams *replay; /* [block_start - block_begin] journaled parameters */
    unsigned char *replay_seen;
    int replay_received;
    int compress; /* LZ4 on outgoing tensors */
    /* test hook: raise SIGKILL when block `die_block` reaches epoch `die_epoch` */
    int die_block, die_epoch;
    /* test hook: report an error (not a crash) when block `fail_block` starts */
    int fail_block;
} ShardTask;

/* A task for an ASSIGN (inputs still to arrive). */
int shard_task_new(const Msg *assign, ShardTask **out, QErr *err);
void shard_task_free(ShardTask *t);
/* Takes one ACTIVATIONS or PARAMS message for this task. Returns 0 if
 * taken, -1 if it does not fit the assignment (err says why). */
int shard_task_add(ShardTask *t, const Msg *m, QErr *err);
int shard_task_ready(const ShardTask *t);

/* Runs the task (compute thread). cancel is polled between epochs and
 * blocks. Returns 0, or -1 with err (a cancel is an error "cancelled"). */
int shard_task_run(ShardTask *t, void *pipe, atomic_int *cancel, QErr *err);

#endif
