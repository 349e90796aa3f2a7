/* coord.h — the coordinator of a distributed calibration (DESIGN.md §3).
 *
 * It plans contiguous block shards, keeps the journal (journal.h), hands
 * shards to registered workers over a ROUTER socket with the inputs they
 * need (the shard's stored full-precision input, and the parameters of
 * blocks already journaled, which the worker replays), relays each shard's
 * full-precision output to the next shard, journals every block result,
 * reassigns the work of workers that go silent, serves `quept status` on a
 * second socket, and finally merges the journal into the artifact with the
 * single-process writer (same bytes for the same job and thread count).
 *
 * Conversation per assignment:  coordinator -> worker: assign, activations
 * (chunks of the shard input), params (journaled blocks); worker ->
 * coordinator: activations (the shard's FP output, if asked), progress
 * (per epoch), result (per block). Every message carries the coordinator's
 * session and the assignment id: anything stale is dropped. */
#ifndef QUEPT_COORD_H
#define QUEPT_COORD_H

#include "proto/transport.h"

/* Workers one coordinator admits at once (quept submit --workers and
 * --expect-workers are capped by it, so a job never plans for more). */
#define COORD_MAX_WORKERS 256

/* What a run cost (filled at the end when CoordOpts.report is set). CPU
 * seconds of the coordinator process itself, and of its local workers. */
typedef struct {
    double wall_s, calib_wall_s, merge_wall_s;
    double cpu_coord_s, cpu_coord_calib_s, cpu_workers_s;
} CoordReport;

typedef struct {
    const char *model_path, *data_path, *out_path, *ckpt_dir;
    const char *bind, *status_bind; /* endpoints; NULL = local mode's private ipc:// */
    int n_shards;                   /* 0 = one per expected worker (or the journal's plan) */
    int expect_workers;
    int max_seqs, quiet, compress;
    QuantConfig qc;
    int curve;    /* CURVE on the work and status sockets */
    int insecure; /* allow plain TCP beyond loopback (anyone who reaches the port can join) */
    CurveKeyPair server;
    CurveAuthorized auth;
    const char *curve_dir; /* passed on to local workers */
    double heartbeat_s;
    int liveness;
    /* a shard whose workers report this many errors fails the job; fewer
     * send it back to the queue (default 3) */
    int shard_retries;
    /* local mode: spawn this many `quept worker` processes (self_exe), each
     * with local_threads OpenBLAS threads, respawned if they die */
    int local_workers, local_threads;
    const char *self_exe;
    int die_after_blocks; /* test hook: SIGKILL ourselves after journaling this many blocks */
    CoordReport *report;  /* optional */
} CoordOpts;

void coord_opts_default(CoordOpts *o);

/* Runs the job to the artifact. 0 on success; -1 with err otherwise
 * (interrupted by SIGINT/SIGTERM: err says so, the journal keeps what was
 * done). */
int coordinator_run(const CoordOpts *o, QErr *err);

#endif
