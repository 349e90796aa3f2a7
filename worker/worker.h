/* worker.h — `quept worker`: connects a DEALER to the coordinator,
 * registers, and calibrates whatever shard it is assigned.
 *
 * Two threads: the I/O thread (worker_run) owns the coordinator socket —
 * heartbeats, reconnects, assembling an assignment's inputs — so it always
 * answers, however long a block takes; the compute thread runs one
 * ShardTask at a time and hands its messages back over an inproc pipe.
 *
 * Heartbeats follow the ZeroMQ guide's Paranoid Pirate: both sides send one
 * every heartbeat_s; `liveness` silent periods mean the peer is gone. A
 * worker that loses its coordinator cancels its task, reconnects with a
 * growing back-off and registers again; after max_lost_s without a
 * coordinator it gives up (exit status 1). A coordinator that restarted is
 * recognised by its new session id in any message: same treatment. */
#ifndef QUEPT_WORKER_H
#define QUEPT_WORKER_H

#include "proto/transport.h"

typedef struct {
    const char *connect; /* endpoint, e.g. tcp://coord:5555 or ipc:///tmp/x/work.sock */
    char name[64];       /* shown in status */
    int threads;         /* OpenBLAS threads of the compute thread */
    int curve;           /* CURVE on: server_pub + client pair */
    char server_pub[41];
    CurveKeyPair client;
    double heartbeat_s;         /* default 1.0 */
    int liveness;               /* default 3 */
    double max_lost_s;          /* default 300 */
    int compress;               /* LZ4 on tensors sent */
    int die_block, die_epoch;   /* test hook (QUEPT_TEST_WORKER_DIE=name:block:epoch), -1 = off */
    int fail_block, fail_times; /* test hook (QUEPT_TEST_WORKER_FAIL=name:block:times): report an
                                   error at that block's first epoch, the first `times` times */
} WorkerOpts;

void worker_opts_default(WorkerOpts *o);
/* Returns 0 when the coordinator sent shutdown (or on SIGTERM/SIGINT), -1
 * with err when the coordinator stayed away longer than max_lost_s or
 * something local failed. */
int worker_run(const WorkerOpts *o, QErr *err);

/* `quept worker ARGS`: parses the options (cmd_worker.c) and runs the worker;
 * returns the exit status. */
int cmd_worker(int argc, char **argv);

#endif
