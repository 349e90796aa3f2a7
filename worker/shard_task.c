/* shard_task.c — one assignment on the worker's compute thread. */
#include "shard_task.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/recon.h"
#include "base/numeric.h"
#include "model/rotate.h"
#include "nn/block.h"
#include "proto/transport.h"

int shard_task_new(const Msg *assign, ShardTask **out, QErr *err) {
    ShardTask *t = calloc(1, sizeof *t);
    if (!t) return qerr_set(err, "out of memory");
    t->assign = *assign;
    t->assign.n_tensors = 0;
    const Msg *a = assign;
    size_t n = (size_t)a->n_seq * a->T * a->dim;
    int n_replay = a->block_start - a->block_begin;
    /* the input is one full-precision stream, stored as the job's streams are
     * (qc.act_bf16: fp32 or bf16) */
    QuantConfig fp_only = a->qc;
    fp_only.stream = STREAM_FP;
    int in_ok = streams_init(&t->input, &fp_only, a->n_seq, a->T, a->dim, err) == 0;
    t->seq_seen = calloc((size_t)a->n_seq, 1);
    t->replay = calloc((size_t)(n_replay > 0 ? n_replay : 1), sizeof *t->replay);
    t->replay_seen = calloc((size_t)(n_replay > 0 ? n_replay : 1), 1);
    t->die_block = t->die_epoch = t->fail_block = -1;
    if (!in_ok || !t->seq_seen || !t->replay || !t->replay_seen) {
        shard_task_free(t);
        return qerr_set(err, "out of memory for the shard's %zu input activations", n);
    }
    *out = t;
    return 0;
}

void shard_task_free(ShardTask *t) {
    if (!t) return;
    int n_replay = t->assign.block_start - t->assign.block_begin;
    for (int i = 0; t->replay && i < n_replay; i++) qblock_params_free(&t->replay[i]);
    free(t->replay);
    free(t->replay_seen);
    streams_free(&t->input);
    free(t->seq_seen);
    free(t);
}

int shard_task_ready(const ShardTask *t) {
    return t->seqs_received == t->assign.n_seq &&
           t->replay_received == t->assign.block_start - t->assign.block_begin;
}

int shard_task_add(ShardTask *t, const Msg *m, QErr *err) {
    const Msg *a = &t->assign;
    if (m->type == MSG_ACTIVATIONS) {
        const MsgTensor *x = msg_tensor(m, "x");
        if (m->block != a->block_begin)
            return qerr_set(err, "activations for block %d, the shard starts at %d", m->block,
                            a->block_begin);
        if (x->dtype != MSG_F32 || x->shape[1] != a->T || x->shape[2] != a->dim || x->shape[0] < 1 ||
            m->seq0 + x->shape[0] > a->n_seq)
            return qerr_set(err,
                            "activations of shape (%lld, %lld, %lld) at sequence %d do not fit (%d, %d, %d)",
                            (long long)x->shape[0], (long long)x->shape[1], (long long)x->shape[2], m->seq0,
                            a->n_seq, a->T, a->dim);
        streams_store(&t->input, STREAMS_FP, m->seq0, (int)x->shape[0], x->data);
        for (int s = m->seq0; s < m->seq0 + (int)x->shape[0]; s++)
            if (!t->seq_seen[s]) t->seq_seen[s] = 1, t->seqs_received++;
        return 0;
    }
    if (m->type == MSG_PARAMS) {
        int k = m->block - a->block_begin;
        if (m->block < a->block_begin || m->block >= a->block_start)
            return qerr_set(err, "parameters for block %d, replay covers [%d, %d)", m->block, a->block_begin,
                            a->block_start);
        if (m->n_bits != a->qc.n_bits)
            return qerr_set(err, "parameters for %d bit widths, the job has %d", m->n_bits, a->qc.n_bits);
        if (t->replay_seen[k]) return qerr_set(err, "parameters for block %d sent twice", m->block);
        /* the layout needs the model config: kept raw until the compute thread builds it */
        QBlockParams *p = &t->replay[k];
        if (msg_take_params(m, p, err) != 0) return -1;
        memcpy(p->choice, m->stats.choice, sizeof p->choice);
        t->replay_seen[k] = 1;
        t->replay_received++;
        return 0;
    }
    return qerr_set(err, "unexpected %s message for an assignment", msg_type_name(m->type));
}

/* ---- compute ---- */

typedef struct {
    ShardTask *t;
    void *pipe;
    atomic_int *cancel;
    QErr *err;
    int hook_failed; /* the fail_block test hook stopped recon_block */
} RunCtx;

static int send_msg(RunCtx *r, Msg *m) {
    m->session = r->t->assign.session;
    m->assign = r->t->assign.assign;
    return wire_send(r->pipe, NULL, 0, m, r->t->compress, r->err);
}

static int on_epoch(int block, int epoch, int epochs, const double gl[QN_GROUPS], double tps, void *user) {
    RunCtx *r = user;
    if (block == r->t->die_block && epoch == r->t->die_epoch) {
        log_warn("test hook: worker killing itself at block %d epoch %d", block, epoch);
        raise(SIGKILL);
    }
    if (block == r->t->fail_block) {
        r->hook_failed = 1;
        return 1;
    }
    Msg m;
    msg_init(&m, MSG_PROGRESS);
    m.block = block, m.epoch = epoch, m.epochs = epochs, m.tokens_per_s = tps;
    memcpy(m.group_loss, gl, sizeof m.group_loss);
    if (send_msg(r, &m) != 0) return 1;
    return atomic_load(r->cancel);
}

/* Sends X (n_seq, T, dim, fp32 on the wire) as activations of `block` in
 * chunks of whole sequences. */
static int send_activations(RunCtx *r, const Streams *x, int block) {
    const Msg *a = &r->t->assign;
    size_t seq_floats = (size_t)a->T * a->dim;
    int per = (int)(PROTO_CHUNK_BYTES / (seq_floats * sizeof(float)));
    if (per < 1) per = 1;
    if (per > a->n_seq) per = a->n_seq;
    float *chunk = x->bf16 ? malloc((size_t)per * seq_floats * sizeof(float)) : NULL;
    if (x->bf16 && !chunk) return qerr_set(r->err, "out of memory");
    int rc = 0;
    for (int s0 = 0; rc == 0 && s0 < a->n_seq; s0 += per) {
        int n = a->n_seq - s0 < per ? a->n_seq - s0 : per;
        Msg m;
        msg_init(&m, MSG_ACTIVATIONS);
        m.block = block, m.seq0 = s0;
        int64_t shape[3] = {n, a->T, a->dim};
        if (msg_add_tensor(&m, "x", MSG_F32, 3, shape, streams_load(x, STREAMS_FP, s0, n, chunk), r->err) !=
                0 ||
            send_msg(r, &m) != 0)
            rc = -1;
    }
    free(chunk);
    return rc;
}

static int send_result(RunCtx *r, int block, const QBlockParams *p, const ReconStats *st) {
    Msg m;
    msg_init(&m, MSG_RESULT);
    m.block = block;
    m.stats = *st;
    m.n_bits = r->t->assign.qc.n_bits;
    QBlockParams flat = *p; /* the stored codes, flattened for the wire (freed below) */
    flat.flat_codes = NULL, flat.flat_grid = NULL;
    if (qblock_rounded_flatten(&flat, r->err) != 0) {
        free(flat.flat_codes);
        free(flat.flat_grid);
        return -1;
    }
    int rc = msg_add_params(&m, &flat, r->err);
    if (rc == 0) rc = send_msg(r, &m);
    free(flat.flat_codes);
    free(flat.flat_grid);
    return rc;
}

/* The full-precision pass through the shard on a copy of its input: the
 * next shard's input (same batches as the engine's targets, and stored
 * after every block as the engine stores its full-precision stream, so
 * the next shard starts from the bits a single process would hold). */
static int fp_pass(RunCtx *r, const ModelConfig *c, BlockWeights *w, Streams *x) {
    const Msg *a = &r->t->assign;
    int B = a->qc.batch;
    BlockActs acts;
    if (block_acts_init(&acts, c, B, a->T, 0, r->err) != 0) return -1;
    float *scratch = x->bf16 ? malloc((size_t)B * a->T * c->dim * sizeof(float)) : NULL;
    if (x->bf16 && !scratch) {
        block_acts_free(&acts);
        return qerr_set(r->err, "out of memory");
    }
    for (int j = a->block_begin; j < a->block_end && !atomic_load(r->cancel); j++)
        for (int s0 = 0; s0 < a->n_seq; s0 += B) {
            acts.B = a->n_seq - s0 < B ? a->n_seq - s0 : B;
            float *xb = streams_edit(x, STREAMS_FP, s0, acts.B, scratch);
            block_forward(c, &w[j - a->block_begin], &acts, xb, xb);
            streams_store(x, STREAMS_FP, s0, acts.B, xb);
        }
    free(scratch);
    block_acts_free(&acts);
    if (atomic_load(r->cancel)) return qerr_setc(r->err, QERR_CANCELLED, "cancelled");
    return streams_check_finite(x, STREAMS_FP, "the shard's full-precision output", r->err);
}

int shard_task_run(ShardTask *t, void *pipe, atomic_int *cancel, QErr *err) {
    const Msg *a = &t->assign;
    const QuantConfig *qc = &a->qc;
    RunCtx r = {t, pipe, cancel, err, 0};
    ModelSource *src = NULL;
    if (model_source_open(&src, a->model_path, err) != 0) return -1;
    ModelConfig c = *model_source_config(src);
    int nb = a->block_end - a->block_begin, rc = 0;
    if (c.n_layers != a->n_layers || c.dim != a->dim)
        rc = qerr_set(err, "%s: %d blocks of width %d, the coordinator's model has %d of width %d",
                      a->model_path, c.n_layers, c.dim, a->n_layers, a->dim);
    BlockWeights *w = calloc((size_t)nb, sizeof *w);
    if (rc == 0 && !w) rc = qerr_set(err, "out of memory");
    /* only this shard's blocks are ever read */
    for (int j = a->block_begin; rc == 0 && j < a->block_end; j++)
        rc = model_source_load_block(src, j, &w[j - a->block_begin], err);
    if (rc == 0 && qc->rotate == ROTATE_HADAMARD) { /* the blocks model_rotate_full makes */
        RotatePlan rp;
        rc = rotate_plan_init(&rp, &c, qc->rotate_seed, err);
        for (int j = a->block_begin; rc == 0 && j < a->block_end; j++)
            rotate_block(&rp, &c, &w[j - a->block_begin]);
        rotate_plan_free(&rp);
    }
    Streams st;
    memset(&st, 0, sizeof st);
    if (rc == 0) rc = streams_init(&st, qc, a->n_seq, a->T, c.dim, err);
    if (rc == 0 && a->send_fp_out) {
        /* FP pass first: the next shard can start while this one calibrates */
        Streams x;
        memset(&x, 0, sizeof x);
        QuantConfig fp_only = *qc;
        fp_only.stream = STREAM_FP;
        rc = streams_init(&x, &fp_only, a->n_seq, a->T, c.dim, err);
        if (rc == 0) {
            streams_copy_fp(&x, &t->input);
            rc = fp_pass(&r, &c, w, &x);
        }
        if (rc == 0) rc = send_activations(&r, &x, a->block_end);
        streams_free(&x);
    }
    if (rc == 0) {
        streams_copy_fp(&st, &t->input);
        streams_reset_q(&st);
    }
    for (int j = a->block_begin; rc == 0 && j < a->block_start; j++) {
        QBlockParams *raw = &t->replay[j - a->block_begin], p;
        rc = qblock_params_restore_raw(&p, &c, qc, j, raw, raw->choice, err);
        if (rc == 0) {
            rc = recon_replay_block(&c, qc, j, &w[j - a->block_begin], &st, &p, err);
            qblock_params_free(&p);
        }
        if (rc == 0 && atomic_load(cancel)) rc = qerr_setc(err, QERR_CANCELLED, "cancelled");
    }
    for (int j = a->block_start; rc == 0 && j < a->block_end; j++) {
        QBlockParams p;
        ReconStats s;
        rc = recon_block(&c, qc, j, &w[j - a->block_begin], &st, &p, &s, on_epoch, &r, err);
        if (rc != 0 && r.hook_failed) qerr_set(err, "test hook: failing at block %d", j);
        if (rc == 0) {
            rc = send_result(&r, j, &p, &s);
            qblock_params_free(&p);
        }
    }
    streams_free(&st);
    for (int i = 0; w && i < nb; i++) block_weights_free(&w[i]);
    free(w);
    model_source_close(src);
    return rc;
}
