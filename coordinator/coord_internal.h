/* coord_internal.h — the coordinator's state, shared by its loop
 * (coord.c), its status report (coord_status.c) and its local worker
 * processes (local_workers.c). */
#ifndef QUEPT_COORD_INTERNAL_H
#define QUEPT_COORD_INTERNAL_H

#include <sys/types.h>

#include "coord.h"
#include "data/tokens.h"
#include "journal.h"
#include "status.h"

typedef struct {
    int used;
    uint8_t id[WIRE_MAX_ID];
    size_t id_len;
    char name[64];
    int threads;
    double registered_at, last_seen;
    int shard; /* -1 idle */
} WorkerRec;

typedef struct {
    int begin, end, next; /* next: first block of the shard not journaled */
    int input_ready;
    int worker; /* index into workers, -1 none */
    uint64_t assign;
    double assigned_at;
    float *fp_out; /* the next shard's input, while it arrives */
    unsigned char *fp_seen;
    int fp_received;
    int errors; /* errors workers reported on this shard (CoordOpts.shard_retries) */
} ShardRec;

typedef struct {
    int done;
    int epoch, epochs;
    double group_loss[QN_GROUPS], tokens_per_s;
    double loss_final[QMAX_NBITS], seconds;
} BlockRec;

typedef struct {
    pid_t pid;
    int incarnation, restarts;
    char name[64]; /* of the process now in the slot: local-K, then local-K.1, ... */
} LocalSlot;

typedef enum { JOB_STARTING, JOB_RUNNING, JOB_MERGING, JOB_DONE, JOB_FAILED } JobState;

typedef struct {
    const CoordOpts *o;
    JobSpec spec;
    JobState state;
    char fail_msg[512];
    uint64_t session, next_assign;
    void *ctx, *router, *status, *zap;
    char work_ep[512], status_ep[512], private_dir[256];
    WorkerRec workers[COORD_MAX_WORKERS];
    ShardRec shards[JOURNAL_MAX_SHARDS];
    BlockRec *blocks;               /* [n_layers] */
    size_t n_lwc, n_adapter, n_teq; /* parameter sizes of every block */
    ModelConfig mcfg;               /* the model's (coord_param_sizes): checks a result's stored codes */
    double t_start, t_last_hb;
    int blocks_done_at_start, blocks_journaled_now;
    long tokens_per_block;
    LocalSlot local[COORD_MAX_WORKERS];
    int lock_fd; /* the checkpoint's lock (journal_lock), -1 none */
} Coord;

/* coord.c: 1 to retry an I/O failure once more (for up to a minute, unless
 * interrupted), 0 to give up */
int coord_retry_io(int attempt, QErr *err);

/* coord_job.c */
int coord_load_job(Coord *c, TokenSet *ts, QErr *err); /* model, data, config, journal */
int coord_check_finished(const CoordOpts *o, char *done_path, size_t n, int *already, QErr *err);
int coord_write_embeddings(Coord *c, const TokenSet *ts, QErr *err); /* shard 0's input */
void coord_scan_journal(Coord *c);                                   /* inputs and blocks already journaled */
int coord_param_sizes(Coord *c, QErr *err);
int coord_merge(Coord *c, const TokenSet *ts, QErr *err); /* the artifact from the journal */

/* coord_status.c */
char *coord_status_json(const Coord *c); /* malloc'd; journal_status_json: status.h */

/* local_workers.c */
int local_spawn(Coord *c, int slot, QErr *err);
/* Reaps exited workers; respawns a slot that died while the job runs
 * (at most 3 times). */
void local_reap(Coord *c, int respawn);
/* Ends every local worker: waits up to grace_s, then SIGKILL. */
void local_stop_all(Coord *c, double grace_s);

#endif
