/* coord_job.c — the coordinator's job, apart from its event loop
 * (coord.c): the model, data and config checks, the finished-job check, the
 * first shard's input, what the journal already holds, and the merge of the
 * journaled blocks into the artifact. */
#include "coord_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/numeric.h"
#include "base/paths.h"
#include "base/sha256.h"
#include "model/rotate.h"
#include "nn/forward.h"
#include "pipeline/pipeline.h"

/* Model, data and config checks as the single-process path makes them. */
int coord_load_job(Coord *c, TokenSet *ts, QErr *err) {
    const CoordOpts *o = c->o;
    if (quant_config_validate(&o->qc, err) != 0) return -1;
    if (o->qc.method != METHOD_QUEPT)
        return qerr_set(
            err,
            "--method %s: distributed calibration runs quept (rtn needs no calibration data; run gptq "
            "without --workers)",
            quant_method_name(o->qc.method));
    ModelSource *src;
    if (model_source_open(&src, o->model_path, err) != 0) return -1;
    ModelConfig mc = *model_source_config(src);
    model_source_close(src);
    JobSpec *s = &c->spec;
    memset(s, 0, sizeof *s);
    CalibJob job = {o->model_path, o->data_path, o->out_path, o->max_seqs, o->quiet};
    if (pipeline_load_job(&job, &o->qc, &mc, ts, s->model_sha256, s->data_sha256, err) != 0) return -1;
    s->n_layers = mc.n_layers, s->dim = mc.dim, s->n_seq = ts->n_seq, s->T = ts->seq_len, s->qc = o->qc;
    int want = o->n_shards ? o->n_shards : (o->local_workers ? o->local_workers : o->expect_workers);
    if (want > mc.n_layers) want = mc.n_layers;
    int rc = journal_plan_shards(s, want, err);
    /* one coordinator per checkpoint: two would journal different jobs' blocks side by side */
    if (rc == 0) rc = journal_lock(o->ckpt_dir, &c->lock_fd, err);
    if (rc == 0) rc = journal_open(o->ckpt_dir, s, o->n_shards == 0, err);
    if (rc != 0) tokens_free(ts);
    return rc;
}

/* A journal that says the job finished is believed only when --out is the
 * artifact it recorded and that file still has the recorded SHA-256; a
 * missing or changed artifact is calibrated again (what the journal still
 * holds is reused), another --out is refused. */
int coord_check_finished(const CoordOpts *o, char *done_path, size_t n, int *already, QErr *err) {
    char sha[65];
    *already = 0;
    if (!journal_is_done(o->ckpt_dir, done_path, n, sha)) return 0;
    if (!paths_same(o->out_path, done_path))
        return qerr_setc(
            err, QERR_USAGE,
            "the checkpoint %s holds a finished job whose artifact is %s, not --out %s: give that "
            "--out, or another --checkpoint for a new job",
            o->ckpt_dir, done_path, o->out_path);
    char now[65] = "";
    QErr e;
    if (access(o->out_path, F_OK) != 0) {
        log_warn("coordinator: the finished job's artifact %s is missing: calibrating again", done_path);
    } else if (sha256_path_hex(o->out_path, now, &e) != 0 || strcmp(now, sha) != 0) {
        log_warn("coordinator: %s is not the artifact the job wrote (SHA-256 %.12s..., now %.12s...): "
                 "calibrating again",
                 done_path, sha[0] ? sha : "unrecorded", now[0] ? now : "unreadable");
    } else {
        *already = 1;
        return 0;
    }
    journal_clear_done(o->ckpt_dir);
    return 0;
}

/* Shard 0's input: the token embeddings of the calibration sequences. */
int coord_write_embeddings(Coord *c, const TokenSet *ts, QErr *err) {
    ModelSource *src;
    if (model_source_open(&src, c->o->model_path, err) != 0) return -1;
    float *emb = NULL, *norm = NULL, *cls = NULL;
    int rc = model_source_load_embeddings(src, &emb, &norm, &cls, err);
    size_t n = (size_t)ts->n_seq * ts->seq_len * c->spec.dim;
    float *x = rc == 0 ? malloc(n * sizeof(float)) : NULL;
    if (rc == 0 && !x) rc = qerr_set(err, "out of memory for the embeddings");
    if (rc == 0 && c->spec.qc.rotate == ROTATE_HADAMARD) { /* the embeddings model_rotate_full makes */
        RotatePlan rp;
        const ModelConfig *mc = model_source_config(src);
        rc = rotate_plan_init(&rp, mc, c->spec.qc.rotate_seed, err);
        if (rc == 0) rotate_embeddings(&rp, mc, emb);
        rotate_plan_free(&rp);
    }
    if (rc == 0) {
        embed_forward(x, emb, ts->tokens, ts->n_seq * ts->seq_len, c->spec.dim);
        for (int a = 0;
             (rc = journal_write_input(c->o->ckpt_dir, 0, x, &c->spec, err)) != 0 && coord_retry_io(a, err);
             a++) {}
    }
    free(x);
    if (cls != emb) free(cls);
    free(emb);
    free(norm);
    model_source_close(src);
    return rc;
}

/* What the journal already holds: shard inputs and finished blocks. */
void coord_scan_journal(Coord *c) {
    const JobSpec *s = &c->spec;
    int done = 0;
    for (int k = 0; k < s->n_shards; k++) {
        ShardRec *sh = &c->shards[k];
        memset(sh, 0, sizeof *sh);
        sh->begin = s->shard_begin[k], sh->end = s->shard_end[k], sh->worker = -1;
        ArtReader *r;
        const float *x;
        QErr e;
        int rc = journal_open_input(c->o->ckpt_dir, k, s, &r, &x, &e);
        sh->input_ready = rc == 0;
        art_close(r);
        /* a shard resumes after its last block journaled without a gap */
        sh->next = sh->begin;
        for (int j = sh->begin; j < sh->end; j++) {
            QBlockParams raw;
            ReconStats st;
            int b = journal_read_block(c->o->ckpt_dir, j, s, &raw, &st, &e);
            int fits = raw.n_lwc == c->n_lwc && raw.n_adapter == c->n_adapter && raw.n_teq == c->n_teq;
            QBlockParams check; /* and its stored codes are what its choices need */
            if (b == 0 && fits &&
                qblock_params_restore_raw(&check, &c->mcfg, &s->qc, j, &raw, st.choice, &e) != 0)
                fits = 0;
            else if (b == 0 && fits)
                qblock_params_free(&check);
            qblock_params_free(&raw);
            if (b != 0 || !fits) {
                if (b == 0) log_warn("journal: block %d has parameters of the wrong size; recomputing", j);
                break;
            }
            c->blocks[j].done = 1;
            memcpy(c->blocks[j].loss_final, st.loss_final, sizeof st.loss_final);
            c->blocks[j].seconds = st.seconds;
            sh->next = j + 1;
            done++;
        }
    }
    c->blocks_done_at_start = done;
}

/* The sizes every block's parameters have (same shapes in every block). */
int coord_param_sizes(Coord *c, QErr *err) {
    ModelSource *src;
    if (model_source_open(&src, c->o->model_path, err) != 0) return -1;
    ModelConfig mc = *model_source_config(src);
    model_source_close(src);
    QBlockParams p;
    if (qblock_params_init(&p, &mc, &c->spec.qc, 0, err) != 0) return -1;
    c->n_lwc = p.n_lwc, c->n_adapter = p.n_adapter, c->n_teq = p.n_teq;
    c->mcfg = mc;
    qblock_params_free(&p);
    return 0;
}

int coord_merge(Coord *c, const TokenSet *ts, QErr *err) {
    const CoordOpts *o = c->o;
    c->state = JOB_MERGING;
    double t0 = now_seconds();
    Model m;
    if (model_load(&m, o->model_path, err) != 0) return -1;
    if (pipeline_rotate(&m, &c->spec.qc, err) != 0) { /* as the workers rotated their blocks */
        model_free(&m);
        return -1;
    }
    ElasticModel em;
    int rc = elastic_alloc(&em, &m.cfg, &c->spec.qc, err);
    if (rc != 0) {
        model_free(&m);
        return -1;
    }
    for (int j = 0; rc == 0 && j < m.cfg.n_layers; j++) {
        QBlockParams raw;
        int r = journal_read_block(o->ckpt_dir, j, &c->spec, &raw, &em.stats[j], err);
        if (r != 0) {
            rc = qerr_set(
                err, "block %d vanished from the journal before the merge (run again to recompute it)", j);
            break;
        }
        rc = qblock_params_restore_raw(&em.params[j], &m.cfg, &c->spec.qc, j, &raw, em.stats[j].choice, err);
        qblock_params_free(&raw);
        if (rc == 0) pipeline_fold_teq(&em.params[j], &m.cfg, &m.blocks[j], j, 1);
    }
    /* the merge's time is logged below, not each step's */
    if (rc == 0)
        rc = pipeline_finish(&em, &m, c->spec.model_sha256, c->spec.data_sha256, ts, o->out_path, 1, err);
    else
        model_free(&m);
    elastic_free(&em);
    char sha[65];
    if (rc == 0) rc = sha256_path_hex(o->out_path, sha, err);
    char out_abs[4096];
    if (rc == 0) rc = paths_resolve(o->out_path, out_abs, sizeof out_abs, err);
    /* an I/O failure here is retried with the whole merge (coordinator_run) */
    if (rc == 0) rc = journal_mark_done(o->ckpt_dir, out_abs, sha, err);
    if (rc == 0)
        log_info("coordinator: merged %d blocks into %s in %.1fs", c->spec.n_layers, o->out_path,
                 now_seconds() - t0);
    return rc;
}
