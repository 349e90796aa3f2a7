/* journal.h — the coordinator's checkpoint directory.
 *
 *   DIR/job.qckp          what this job is: model and data SHA-256, sizes,
 *                         the quant config, the shard plan (refused if a new
 *                         run's job differs, naming the field)
 *   DIR/input-K.qckp      shard K's full-precision input X(a_K), (n_seq, T, dim)
 *   DIR/block-J.qckp      block J's learned parameters and losses, once done
 *   DIR/coordinator.json  the running coordinator: pid, host, endpoints
 *   DIR/done.json         the job is complete: artifact path and SHA-256
 *
 * Every .qckp file is a quept container (docs/artifact-format.md): CRC-32
 * per section, written to a temp file, fsynced and renamed, so a crash never
 * leaves half an entry; a file that fails its checksums is deleted and
 * recomputed, never used. */
#ifndef QUEPT_JOURNAL_H
#define QUEPT_JOURNAL_H

#include "artifact/container.h"
#include "engine/recon.h"

#define JOURNAL_MAX_SHARDS 256

typedef struct {
    char model_sha256[65], data_sha256[65];
    int n_layers, dim, n_seq, T;
    QuantConfig qc;
    int n_shards;
    int shard_begin[JOURNAL_MAX_SHARDS], shard_end[JOURNAL_MAX_SHARDS];
    /* SHA-256 of the job as job.qckp stores it (set by journal_open): every
     * input and block entry carries it, and an entry of another job is refused */
    char fingerprint[65];
} JobSpec;

/* Contiguous, balanced shards: shard k = [k*L/K, (k+1)*L/K). */
int journal_plan_shards(JobSpec *spec, int n_shards, QErr *err);

/* Takes the checkpoint's advisory lock (DIR/lock, flock): one coordinator
 * per checkpoint. A second one is refused, naming the holder's pid. The
 * lock lasts until journal_unlock or the process's end (also a SIGKILL). */
int journal_lock(const char *dir, int *fd, QErr *err);
void journal_unlock(int fd);

/* Creates dir (and job.qckp) or checks that the job there is this job.
 * With adopt_shards, a journal's shard plan replaces spec's (a resumed job
 * keeps its plan when the user did not ask for one). */
int journal_open(const char *dir, JobSpec *spec, int adopt_shards, QErr *err);

void journal_path(char *buf, size_t n, const char *dir, const char *name);

int journal_write_input(const char *dir, int shard, const float *x, const JobSpec *spec, QErr *err);
/* Opens shard's input and checks it whole: *x points into the mapping (valid
 * until art_close(*r)). Returns 1 if absent, -1 if corrupt (deleted). */
int journal_open_input(const char *dir, int shard, const JobSpec *spec, ArtReader **r, const float **x,
                       QErr *err);

int journal_write_block(const char *dir, const JobSpec *spec, int block, const QBlockParams *p,
                        const ReconStats *st, QErr *err);
/* Block j's journaled parameter arrays (malloc'd into p->lwc, p->adapter,
 * p->teq with their sizes; the layout is the caller's business:
 * qblock_params_restore) and its stats; 1 if absent, -1 if corrupt
 * (deleted; err says why). Free with qblock_params_free. */
int journal_read_block(const char *dir, int block, const JobSpec *spec, QBlockParams *p, ReconStats *st,
                       QErr *err);

/* DIR/coordinator.json: who runs the job and where its sockets are. */
int journal_record_coordinator(const char *dir, const char *host, const char *status_ep, const char *work_ep,
                               QErr *err);
/* 1 and the status endpoint coordinator.json records (a coordinator runs, or
 * was killed before it could remove the file). */
int journal_coordinator_endpoint(const char *dir, char *ep, size_t n);
int journal_mark_done(const char *dir, const char *artifact, const char *sha256, QErr *err);
/* 1 and the artifact path if the journal says the job is complete; sha256
 * (may be NULL) gets the SHA-256 recorded for it ("" if none). */
int journal_is_done(const char *dir, char *artifact, size_t n, char sha256[65]);
/* Forgets that the job completed (its artifact is gone or changed). */
void journal_clear_done(const char *dir);
/* After success: removes the inputs and block entries (job.qckp and
 * done.json stay, so a restart knows the job is complete). */
void journal_cleanup(const char *dir);

#endif
