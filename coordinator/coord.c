/* coord.c — the coordinator's event loop: plan, assign, relay, journal,
 * reassign, merge. */
#include "coord_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "base/log.h"
#include "base/mapfile.h"
#include "base/numeric.h"

void coord_opts_default(CoordOpts *o) {
    memset(o, 0, sizeof *o);
    o->expect_workers = 1;
    o->heartbeat_s = 1.0;
    o->liveness = 3;
    o->shard_retries = 3;
}

/* SIGINT / SIGTERM end the loop (the journal keeps what was done). The
 * only global: a signal handler can reach nothing else. */
static volatile sig_atomic_t g_interrupted = 0;
static void on_signal(int sig) { g_interrupted = sig; }

/* ---- setup ---- */

/* A journal write or the merge that failed on I/O — typically no
 * descriptor left while a flood of connections waits out its handshake
 * timeout (WIRE_HANDSHAKE_MS) — is retried for up to IO_RETRY_S before the
 * job fails: a flood must not end a job. Used as
 *     for (int a = 0; (rc = step(...)) != 0 && coord_retry_io(a, err); a++) {}
 * Returns 1 to try again. */
#define IO_RETRY_S 60.0
int coord_retry_io(int attempt, QErr *err) {
    if (err->code != QERR_IO || attempt * 0.5 >= IO_RETRY_S || g_interrupted) return 0;
    if (attempt == 0) log_warn("coordinator: %s; retrying for up to %.0fs", err->msg, IO_RETRY_S);
    nanosleep(&(struct timespec){0, 500000000}, NULL);
    return 1;
}

/* The trust boundary: plain TCP only where nobody but this machine can
 * connect. Beyond loopback, an unauthenticated peer could register as a
 * worker, receive the calibration activations and return poisoned results,
 * or read the status report (paths, pid, worker names). */
static int check_exposure(const CoordOpts *o, const char *ep, const char *flag, QErr *err) {
    if (o->curve || o->insecure || wire_endpoint_is_local(ep)) return 0;
    return qerr_setc(err, QERR_USAGE,
                     "%s %s listens beyond this machine without authentication: give --curve-keys DIR "
                     "(quept keygen DIR; workers and status clients use the same DIR), bind to 127.0.0.1, "
                     "or --insecure if every host that can reach the port is trusted",
                     flag, ep);
}

/* Removes the private ipc:// directories of local runs whose coordinator
 * is gone (a SIGKILL leaves no chance to clean up): /tmp/quept-PID-XXXXXX
 * of ours whose PID no longer exists. */
static void remove_private_dir(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/work", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/status", dir);
    unlink(p);
    rmdir(dir);
}

static void sweep_stale_private_dirs(void) {
    DIR *d = opendir("/tmp");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid, used = 0;
        if (sscanf(e->d_name, "quept-%d-%*6[A-Za-z0-9]%n", &pid, &used) != 1 || used == 0 ||
            e->d_name[used] != '\0' || pid <= 0)
            continue;
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "/tmp/%s", e->d_name);
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        remove_private_dir(path);
    }
    closedir(d);
}

static int bind_sockets(Coord *c, QErr *err) {
    const CoordOpts *o = c->o;
    c->ctx = zmq_ctx_new();
    if (o->bind) {
        snprintf(c->work_ep, sizeof c->work_ep, "%s", o->bind);
        snprintf(c->status_ep, sizeof c->status_ep, "%s",
                 o->status_bind ? o->status_bind : "tcp://127.0.0.1:5556");
        if (check_exposure(o, c->work_ep, "--bind", err) != 0 ||
            check_exposure(o, c->status_ep, "--status-bind", err) != 0)
            return -1;
    } else {
        /* local mode: ipc:// in a private directory only we can enter */
        sweep_stale_private_dirs();
        snprintf(c->private_dir, sizeof c->private_dir, "/tmp/quept-%d-XXXXXX", (int)getpid());
        if (!mkdtemp(c->private_dir)) return qerr_set(err, "mkdtemp: %s", strerror(errno));
        snprintf(c->work_ep, sizeof c->work_ep, "ipc://%s/work", c->private_dir);
        snprintf(c->status_ep, sizeof c->status_ep, "ipc://%s/status", c->private_dir);
    }
    if (o->curve) {
        c->zap = zap_open(c->ctx, err);
        if (!c->zap) return -1;
    }
    c->router = zmq_socket(c->ctx, ZMQ_ROUTER);
    c->status = zmq_socket(c->ctx, ZMQ_ROUTER);
    int one = 1;
    if (!c->router || !c->status || wire_socket_limits(c->router, (int64_t)PROTO_MAX_FRAME, err) != 0 ||
        wire_socket_limits(c->status, 4096, err) != 0)
        return qerr_set(err, "sockets: %s", zmq_strerror(zmq_errno()));
    /* a reply to a vanished peer is an error we want to see, not silence */
    zmq_setsockopt(c->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* the status socket is authenticated like the work socket (its 4 KiB
     * message limit leaves room for CURVE's handshake): the report
     * names paths, the pid and the workers */
    if (o->curve && (curve_setup_server(c->router, &o->server, err) != 0 ||
                     curve_setup_server(c->status, &o->server, err) != 0))
        return -1;
    if (zmq_bind(c->router, c->work_ep) != 0)
        return qerr_set(err, "bind %s: %s", c->work_ep, zmq_strerror(zmq_errno()));
    if (zmq_bind(c->status, c->status_ep) != 0)
        return qerr_set(err, "bind %s (status): %s", c->status_ep, zmq_strerror(zmq_errno()));
    /* what a status client on this machine connects to */
    char last[512];
    size_t ll = sizeof last;
    if (zmq_getsockopt(c->status, ZMQ_LAST_ENDPOINT, last, &ll) == 0) {
        char *z = strstr(last, "0.0.0.0");
        if (z) {
            char fixed[512];
            snprintf(fixed, sizeof fixed, "%.*s127.0.0.1%s", (int)(z - last), last, z + 7);
            snprintf(c->status_ep, sizeof c->status_ep, "%s", fixed);
        } else {
            snprintf(c->status_ep, sizeof c->status_ep, "%s", last);
        }
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    return journal_record_coordinator(o->ckpt_dir, host, c->status_ep, c->work_ep, err);
}

/* ---- talking to workers ---- */

static int send_to(Coord *c, int wi, Msg *m) {
    WorkerRec *w = &c->workers[wi];
    m->session = c->session;
    QErr err;
    if (wire_send(c->router, w->id, w->id_len, m, c->o->compress, &err) != 0) {
        log_warn("coordinator: send %s to %s: %s", msg_type_name(m->type), w->name, err.msg);
        return -1;
    }
    return 0;
}

static void release_worker(Coord *c, int wi, const char *why) {
    WorkerRec *w = &c->workers[wi];
    if (w->shard >= 0) {
        ShardRec *sh = &c->shards[w->shard];
        log_warn("coordinator: worker %s %s; shard %d (blocks %d-%d) goes back to the queue from block %d",
                 w->name, why, w->shard, sh->begin, sh->end - 1, sh->next);
        sh->worker = -1;
        sh->assign = 0;
        free(sh->fp_out);
        free(sh->fp_seen);
        sh->fp_out = NULL, sh->fp_seen = NULL, sh->fp_received = 0;
        w->shard = -1;
    }
}

static void drop_worker(Coord *c, int wi, const char *why) {
    /* release_worker says it, with the shard, when there is one */
    if (c->workers[wi].used && c->workers[wi].shard < 0)
        log_warn("coordinator: worker %s %s", c->workers[wi].name, why);
    release_worker(c, wi, why);
    memset(&c->workers[wi], 0, sizeof c->workers[wi]);
}

static int shard_complete(const Coord *c, int k) {
    const ShardRec *sh = &c->shards[k];
    return sh->next == sh->end && (k + 1 == c->spec.n_shards || c->shards[k + 1].input_ready);
}

/* Hands shard k to worker wi: assign, the input in chunks, the journaled
 * blocks' parameters (read first: a journal entry lost since the scan moves
 * the shard's start back instead). Returns 1 if the input is missing. */
static int assign_shard(Coord *c, int k, int wi, QErr *err) {
    const CoordOpts *o = c->o;
    ShardRec *sh = &c->shards[k];
    const JobSpec *s = &c->spec;
    int n_rep = sh->next - sh->begin, rc = 0;
    QBlockParams *raw = calloc((size_t)n_rep + 1, sizeof *raw);
    ReconStats *st = calloc((size_t)n_rep + 1, sizeof *st);
    if (!raw || !st) rc = qerr_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < n_rep; i++) {
        QErr e;
        if (journal_read_block(o->ckpt_dir, sh->begin + i, s, &raw[i], &st[i], &e) != 0) {
            for (int j = sh->begin + i; j < sh->next; j++) c->blocks[j].done = 0;
            sh->next = sh->begin + i;
            n_rep = i;
        }
    }
    ArtReader *r = NULL;
    const float *x = NULL;
    if (rc == 0 && journal_open_input(o->ckpt_dir, k, s, &r, &x, err) != 0) {
        sh->input_ready = 0;
        rc = 1;
    }
    Msg m;
    msg_init(&m, MSG_ASSIGN);
    m.assign = ++c->next_assign;
    m.shard = k, m.block_begin = sh->begin, m.block_end = sh->end, m.block_start = sh->next;
    m.send_fp_out = k + 1 < s->n_shards && !c->shards[k + 1].input_ready;
    m.n_seq = s->n_seq, m.T = s->T, m.dim = s->dim, m.n_layers = s->n_layers;
    m.qc = s->qc; /* its act_bf16: how the worker stores the shard's activations */
    snprintf(m.model_path, sizeof m.model_path, "%s", o->model_path);
    int sent = 0;
    if (rc == 0) sent = send_to(c, wi, &m) == 0;
    size_t seq = (size_t)s->T * s->dim;
    int per = (int)(PROTO_CHUNK_BYTES / (seq * sizeof(float)));
    if (per < 1) per = 1;
    for (int s0 = 0; sent && s0 < s->n_seq; s0 += per) {
        Msg a;
        msg_init(&a, MSG_ACTIVATIONS);
        a.assign = m.assign, a.block = sh->begin, a.seq0 = s0;
        int64_t shape[3] = {s->n_seq - s0 < per ? s->n_seq - s0 : per, s->T, s->dim};
        sent = msg_add_tensor(&a, "x", MSG_F32, 3, shape, x + (size_t)s0 * seq, err) == 0 &&
               send_to(c, wi, &a) == 0;
    }
    for (int i = 0; sent && i < n_rep; i++) {
        Msg p;
        msg_init(&p, MSG_PARAMS);
        p.assign = m.assign, p.block = sh->begin + i, p.n_bits = s->qc.n_bits, p.stats = st[i];
        sent = msg_add_params(&p, &raw[i], err) == 0 && send_to(c, wi, &p) == 0;
    }
    art_close(r);
    for (int i = 0; raw && i <= n_rep; i++) qblock_params_free(&raw[i]);
    free(raw);
    free(st);
    if (rc != 0) return rc;
    if (!sent) {
        drop_worker(c, wi, "could not be sent its assignment");
        return 0;
    }
    sh->worker = wi, sh->assign = m.assign, sh->assigned_at = now_seconds();
    c->workers[wi].shard = k;
    log_info("coordinator: shard %d (blocks %d-%d, from %d%s) -> worker %s", k, sh->begin, sh->end - 1,
             sh->next, m.send_fp_out ? ", FP pass first" : "", c->workers[wi].name);
    return 0;
}

static int schedule(Coord *c, const TokenSet *ts, QErr *err) {
    for (int k = 0; k < c->spec.n_shards; k++) {
        ShardRec *sh = &c->shards[k];
        if (sh->worker >= 0 || !sh->input_ready || shard_complete(c, k)) continue;
        int wi = -1;
        for (int i = 0; i < COORD_MAX_WORKERS && wi < 0; i++)
            if (c->workers[i].used && c->workers[i].shard < 0) wi = i;
        if (wi < 0) return 0;
        int rc = assign_shard(c, k, wi, err);
        if (rc < 0) return -1;
        if (rc == 1 &&
            k == 0) { /* shard 0's input was lost: rebuild it (later shards: their predecessor's FP pass) */
            if (coord_write_embeddings(c, ts, err) != 0) return -1;
            sh->input_ready = 1;
        }
    }
    return 0;
}

/* ---- messages from workers ---- */

static int find_worker(const Coord *c, const uint8_t *id, size_t n) {
    for (int i = 0; i < COORD_MAX_WORKERS; i++)
        if (c->workers[i].used && c->workers[i].id_len == n && memcmp(c->workers[i].id, id, n) == 0) return i;
    return -1;
}

static void on_register(Coord *c, const uint8_t *id, size_t idn, const Msg *m) {
    int wi = find_worker(c, id, idn);
    if (wi >= 0) {
        release_worker(c, wi, "registered again");
    } else {
        for (int i = 0; i < COORD_MAX_WORKERS && wi < 0; i++)
            if (!c->workers[i].used) wi = i;
        if (wi < 0) {
            log_warn("coordinator: more than %d workers; %s refused", COORD_MAX_WORKERS, m->name);
            return;
        }
    }
    WorkerRec *w = &c->workers[wi];
    memset(w, 0, sizeof *w);
    w->used = 1;
    memcpy(w->id, id, idn);
    w->id_len = idn;
    snprintf(w->name, sizeof w->name, "%s", m->name);
    w->threads = m->threads;
    w->registered_at = w->last_seen = now_seconds();
    w->shard = -1;
    log_info("coordinator: worker %s registered (%d threads)", w->name, w->threads);
    Msg hb;
    msg_init(&hb, MSG_HEARTBEAT);
    send_to(c, wi, &hb);
}

/* The shard a message belongs to, if it is the live assignment of its sender. */
static int current_shard(const Coord *c, int wi, const Msg *m) {
    if (m->session != c->session) return -1;
    int k = c->workers[wi].shard;
    if (k < 0 || c->shards[k].assign != m->assign) return -1;
    return k;
}

static void maybe_free_worker(Coord *c, int k) {
    ShardRec *sh = &c->shards[k];
    if (sh->worker >= 0 && shard_complete(c, k)) {
        c->workers[sh->worker].shard = -1;
        sh->worker = -1;
        sh->assign = 0;
    }
}

static int on_fp_out(Coord *c, int k, const Msg *m, QErr *err) {
    ShardRec *sh = &c->shards[k];
    const JobSpec *s = &c->spec;
    const MsgTensor *x = msg_tensor(m, "x");
    if (k + 1 >= s->n_shards || c->shards[k + 1].input_ready || m->block != sh->end) return 0;
    if (x->dtype != MSG_F32 || x->shape[1] != s->T || x->shape[2] != s->dim ||
        m->seq0 + x->shape[0] > s->n_seq) {
        log_warn("coordinator: shard %d output of a wrong shape ignored", k);
        return 0;
    }
    size_t seq = (size_t)s->T * s->dim;
    if (!sh->fp_out) {
        sh->fp_out = malloc((size_t)s->n_seq * seq * sizeof(float));
        sh->fp_seen = calloc((size_t)s->n_seq, 1);
        if (!sh->fp_out || !sh->fp_seen) return qerr_set(err, "out of memory for shard %d's output", k);
    }
    memcpy(sh->fp_out + (size_t)m->seq0 * seq, x->data, x->nbytes);
    for (int i = m->seq0; i < m->seq0 + (int)x->shape[0]; i++)
        if (!sh->fp_seen[i]) sh->fp_seen[i] = 1, sh->fp_received++;
    if (sh->fp_received < s->n_seq) return 0;
    int rc;
    for (int a = 0;
         (rc = journal_write_input(c->o->ckpt_dir, k + 1, sh->fp_out, s, err)) != 0 && coord_retry_io(a, err);
         a++) {}
    free(sh->fp_out);
    free(sh->fp_seen);
    sh->fp_out = NULL, sh->fp_seen = NULL, sh->fp_received = 0;
    if (rc != 0) return -1;
    c->shards[k + 1].input_ready = 1;
    log_info("coordinator: shard %d's input (block %d) journaled", k + 1, sh->end);
    maybe_free_worker(c, k);
    return 0;
}

static int on_result(Coord *c, int k, const Msg *m, QErr *err) {
    ShardRec *sh = &c->shards[k];
    const MsgTensor *lwc = msg_tensor(m, "lwc"), *ad = msg_tensor(m, "adapter"), *teq = msg_tensor(m, "teq");
    size_t nt = teq ? teq->nbytes / sizeof(float) : 0;
    if (m->block != sh->next || m->n_bits != c->spec.qc.n_bits || lwc->nbytes != c->n_lwc * sizeof(float) ||
        ad->nbytes != c->n_adapter * sizeof(float) || lwc->dtype != MSG_F32 || ad->dtype != MSG_F32 ||
        nt != c->n_teq || (teq && teq->dtype != MSG_F32)) {
        log_warn("coordinator: result for block %d does not fit (expected block %d with %zu+%zu parameters); "
                 "ignored",
                 m->block, sh->next, c->n_lwc, c->n_adapter);
        return 0;
    }
    QErr e;
    if (floats_check_finite(lwc->data, c->n_lwc, "clipping", &e) ||
        floats_check_finite(ad->data, c->n_adapter, "adapters", &e) ||
        (teq && floats_check_finite(teq->data, nt, "TEQ scales", &e))) {
        log_warn("coordinator: result for block %d has %s; ignored", m->block, e.msg);
        return 0;
    }
    /* the block's arrays as the journal stores them (the codes joined from
     * their pieces), which must be what the choices need, and decodable */
    QBlockParams raw, check;
    memset(&raw, 0, sizeof raw);
    if (msg_take_params(m, &raw, &e) != 0 ||
        qblock_params_restore_raw(&check, &c->mcfg, &c->spec.qc, m->block, &raw, m->stats.choice, &e) != 0) {
        log_warn("coordinator: result for block %d: %s; ignored", m->block, e.msg);
        qblock_params_free(&raw);
        return 0;
    }
    qblock_params_free(&check);
    int rc;
    for (int a = 0;
         (rc = journal_write_block(c->o->ckpt_dir, &c->spec, m->block, &raw, &m->stats, err)) != 0 &&
         coord_retry_io(a, err);
         a++) {}
    qblock_params_free(&raw);
    if (rc != 0) return -1;
    BlockRec *b = &c->blocks[m->block];
    b->done = 1;
    memcpy(b->loss_final, m->stats.loss_final, sizeof b->loss_final);
    b->seconds = m->stats.seconds;
    sh->next++;
    c->blocks_journaled_now++;
    if (!c->o->quiet) {
        char buf[256];
        int n = 0;
        for (int bi = 0; bi < c->spec.qc.n_bits && n < (int)sizeof buf - 24; bi++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, " %d:%.4f", c->spec.qc.bits[bi],
                          m->stats.loss_final[bi]);
        log_info("coordinator: block %d journaled (%.1fs on %s); loss per bit%s", m->block, m->stats.seconds,
                 c->workers[sh->worker].name, buf);
    }
    if (c->o->die_after_blocks > 0 && c->blocks_journaled_now >= c->o->die_after_blocks) {
        log_warn("test hook: coordinator killing itself after %d journaled blocks", c->blocks_journaled_now);
        raise(SIGKILL);
    }
    maybe_free_worker(c, k);
    return 0;
}

/* A worker could not compute its shard: the shard goes back to the queue
 * (the journal keeps its finished blocks) until its errors reach the retry
 * budget; only then does the job fail, naming the last cause. */
static int on_error(Coord *c, int wi, int k, const Msg *m, QErr *err) {
    WorkerRec *w = &c->workers[wi];
    if (k < 0) {
        log_warn("coordinator: stale error from %s ignored: %s", w->name, m->text);
        return 0;
    }
    ShardRec *sh = &c->shards[k];
    if (++sh->errors >= c->o->shard_retries)
        return qerr_set(err, "shard %d failed %d times (the retry budget); last, worker %s: %s", k,
                        sh->errors, w->name, m->text);
    char why[600];
    snprintf(why, sizeof why, "reported an error (%d of %d allowed): %.500s", sh->errors,
             c->o->shard_retries - 1, m->text);
    release_worker(c, wi, why);
    return 0;
}

static int on_worker_message(Coord *c, const uint8_t *id, size_t idn, Msg *m, QErr *err) {
    if (m->type == MSG_REGISTER) {
        on_register(c, id, idn, m);
        return 0;
    }
    int wi = find_worker(c, id, idn);
    if (wi < 0) {
        /* a worker of a previous coordinator run: a session it does not know
         * (0, which tells a stranger nothing) makes it register again */
        Msg hb;
        msg_init(&hb, MSG_HEARTBEAT);
        hb.session = 0;
        QErr e;
        wire_send(c->router, id, idn, &hb, 0, &e);
        return 0;
    }
    WorkerRec *w = &c->workers[wi];
    w->last_seen = now_seconds();
    int k = current_shard(c, wi, m);
    switch (m->type) {
    case MSG_PROGRESS:
        if (k >= 0 && m->block >= c->shards[k].begin && m->block < c->shards[k].end) {
            BlockRec *b = &c->blocks[m->block];
            b->epoch = m->epoch, b->epochs = m->epochs, b->tokens_per_s = m->tokens_per_s;
            memcpy(b->group_loss, m->group_loss, sizeof b->group_loss);
        }
        return 0;
    case MSG_ACTIVATIONS: return k >= 0 ? on_fp_out(c, k, m, err) : 0;
    case MSG_RESULT: return k >= 0 ? on_result(c, k, m, err) : 0;
    case MSG_ERROR: return on_error(c, wi, k, m, err);
    default: return 0;
    }
}

/* ---- heartbeats, status ---- */

static void heartbeat(Coord *c) {
    double now = now_seconds();
    for (int i = 0; i < COORD_MAX_WORKERS; i++) {
        if (!c->workers[i].used) continue;
        if (now - c->workers[i].last_seen > c->o->liveness * c->o->heartbeat_s) {
            char why[96];
            snprintf(why, sizeof why, "silent for %.1fs: declared dead", now - c->workers[i].last_seen);
            drop_worker(c, i, why);
            continue;
        }
        Msg hb;
        msg_init(&hb, MSG_HEARTBEAT);
        send_to(c, i, &hb);
    }
    c->t_last_hb = now;
}

static void serve_status(Coord *c) {
    for (;;) {
        zmq_msg_t idm, req;
        zmq_msg_init(&idm);
        if (zmq_msg_recv(&idm, c->status, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&idm);
            return;
        }
        int more = zmq_msg_more(&idm), parts = 0;
        while (more) { /* whatever the request says, it gets the report */
            zmq_msg_init(&req);
            if (zmq_msg_recv(&req, c->status, 0) < 0) break;
            more = zmq_msg_more(&req);
            parts++;
            zmq_msg_close(&req);
        }
        if (parts >= 1) {
            char *json = coord_status_json(c);
            if (json) {
                zmq_send(c->status, zmq_msg_data(&idm), zmq_msg_size(&idm), ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(c->status, json, strlen(json), ZMQ_DONTWAIT);
                free(json);
            }
        }
        zmq_msg_close(&idm);
    }
}

/* ---- merge ---- */

/* ---- the loop ---- */

static double cpu_seconds(int who) {
    struct rusage r;
    getrusage(who, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static void shutdown_workers(Coord *c, const char *text) {
    for (int i = 0; i < COORD_MAX_WORKERS; i++) {
        if (!c->workers[i].used) continue;
        Msg m;
        msg_init(&m, MSG_SHUTDOWN);
        snprintf(m.text, sizeof m.text, "%s", text);
        send_to(c, i, &m);
        memset(&c->workers[i], 0, sizeof c->workers[i]); /* gone once told */
    }
}

/* Answers every worker that shows up with shutdown, for a little while
 * (workers reconnecting when the job ends, or a restart of a finished job). */
static void linger_shutdown(Coord *c, const char *text, double seconds) {
    double until = now_seconds() + seconds;
    while (now_seconds() < until && !g_interrupted) {
        zmq_pollitem_t it[2] = {{c->router, 0, ZMQ_POLLIN, 0}, {c->zap, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, c->zap ? 2 : 1, 100) <= 0) {
            if (c->o->local_workers) {
                local_reap(c, 0);
                int alive = 0;
                for (int i = 0; i < c->o->local_workers; i++) alive += c->local[i].pid > 0;
                if (!alive) return;
            }
            continue;
        }
        if (c->zap && (it[1].revents & ZMQ_POLLIN)) zap_handle(c->zap, &c->o->auth);
        uint8_t id[WIRE_MAX_ID];
        size_t idn;
        Msg m;
        QErr e;
        int r;
        while ((r = wire_recv(c->router, 1, id, &idn, &m, 1, &e)) != 1 && r != -2) {
            if (r == 0) msg_free(&m);
            Msg s;
            msg_init(&s, MSG_SHUTDOWN);
            s.session = c->session;
            snprintf(s.text, sizeof s.text, "%s", text);
            wire_send(c->router, id, idn, &s, 0, &e);
        }
    }
}

static int run_loop(Coord *c, const TokenSet *ts, QErr *err) {
    const CoordOpts *o = c->o;
    int rc = 0;
    c->state = JOB_RUNNING;
    while (rc == 0) {
        int all = 1;
        for (int j = 0; j < c->spec.n_layers; j++) all &= c->blocks[j].done;
        if (all) break;
        if (g_interrupted) {
            rc = qerr_setc(
                err, QERR_INTERRUPTED, "interrupted by signal %d; the journal in %s keeps %d finished blocks",
                (int)g_interrupted, o->ckpt_dir, c->blocks_done_at_start + c->blocks_journaled_now);
            break;
        }
        if ((rc = schedule(c, ts, err)) != 0) break;
        zmq_pollitem_t it[3] = {
            {c->router, 0, ZMQ_POLLIN, 0}, {c->status, 0, ZMQ_POLLIN, 0}, {c->zap, 0, ZMQ_POLLIN, 0}};
        long timeout = (long)(o->heartbeat_s * 1000.0 / 4);
        int np = zmq_poll(it, c->zap ? 3 : 2, timeout);
        if (np < 0 && zmq_errno() != EINTR) {
            rc = qerr_set(err, "poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (np > 0 && c->zap && (it[2].revents & ZMQ_POLLIN))
            if (zap_handle(c->zap, &o->auth) == 1)
                log_warn("coordinator: a worker with an unauthorised CURVE key was refused");
        if (np > 0 && (it[0].revents & ZMQ_POLLIN)) {
            for (int budget = 0; budget < 64 && rc == 0; budget++) {
                uint8_t id[WIRE_MAX_ID];
                size_t idn = 0;
                Msg m;
                QErr e;
                int r = wire_recv(c->router, 1, id, &idn, &m, 1, &e);
                if (r == 1 || r == -2) break;
                if (r == -1) {
                    /* bad input never stops the job: log it, drop it */
                    log_warn("coordinator: dropped a %s", e.msg);
                    continue;
                }
                rc = on_worker_message(c, id, idn, &m, err);
                msg_free(&m);
            }
        }
        if (np > 0 && (it[1].revents & ZMQ_POLLIN)) serve_status(c);
        if (o->local_workers) local_reap(c, 1);
        if (now_seconds() - c->t_last_hb >= o->heartbeat_s) heartbeat(c);
    }
    return rc;
}

int coordinator_run(const CoordOpts *o, QErr *err) {
    Coord *c = calloc(1, sizeof *c);
    if (!c) return qerr_set(err, "out of memory");
    c->o = o;
    c->lock_fd = -1;
    c->t_start = now_seconds();
    double cpu_self0 = cpu_seconds(RUSAGE_SELF), cpu_kids0 = cpu_seconds(RUSAGE_CHILDREN);
    c->state = JOB_STARTING;
    /* a session id that differs between runs: workers recognise a restart */
    c->session = ((uint64_t)getpid() << 32) ^ (uint64_t)(now_seconds() * 1e6);
    if (c->session == 0) c->session = 1;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);
    /* every connection takes a descriptor: as many as the hard limit allows */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    TokenSet ts;
    memset(&ts, 0, sizeof ts);
    int rc = coord_load_job(c, &ts, err);
    if (rc == 0) c->blocks = calloc((size_t)c->spec.n_layers, sizeof *c->blocks);
    if (rc == 0 && !c->blocks) rc = qerr_set(err, "out of memory");
    char done_path[4096];
    int already = 0;
    if (rc == 0) rc = coord_check_finished(o, done_path, sizeof done_path, &already, err);
    if (rc == 0 && !already) rc = coord_param_sizes(c, err);
    if (rc == 0 && !already) coord_scan_journal(c);
    if (rc == 0 && !already && !c->shards[0].input_ready) {
        rc = coord_write_embeddings(c, &ts, err);
        c->shards[0].input_ready = rc == 0;
    }
    if (rc == 0) rc = bind_sockets(c, err);
    if (rc == 0 && !already) {
        log_info("coordinator: %d blocks in %d shards, %d journaled already; work %s, status %s",
                 c->spec.n_layers, c->spec.n_shards, c->blocks_done_at_start, c->work_ep, c->status_ep);
        for (int i = 0; rc == 0 && i < o->local_workers; i++) rc = local_spawn(c, i, err);
    }
    if (rc == 0 && already) {
        log_info("coordinator: the journal in %s says the job is complete (%s)", o->ckpt_dir, done_path);
        c->state = JOB_DONE;
        linger_shutdown(c, "job complete", o->liveness * o->heartbeat_s + 1.0);
    } else if (rc == 0) {
        double t0 = now_seconds(), cpu0 = cpu_seconds(RUSAGE_SELF);
        rc = run_loop(c, &ts, err);
        double t1 = now_seconds(), cpu1 = cpu_seconds(RUSAGE_SELF);
        if (rc == 0) {
            shutdown_workers(c, "calibration done; merging");
            for (int a = 0; (rc = coord_merge(c, &ts, err)) != 0 && coord_retry_io(a, err); a++) {}
        }
        if (o->report) {
            o->report->calib_wall_s = t1 - t0;
            o->report->cpu_coord_calib_s = cpu1 - cpu0;
            o->report->merge_wall_s = now_seconds() - t1;
        }
        c->state = rc == 0 ? JOB_DONE : JOB_FAILED;
        if (rc != 0) snprintf(c->fail_msg, sizeof c->fail_msg, "%.500s", err->msg);
        shutdown_workers(c, rc == 0 ? "job complete" : "job failed");
        if (o->local_workers)
            local_stop_all(c, 3.0);
        else if (rc == 0)
            linger_shutdown(c, "job complete", 2.0 * o->heartbeat_s);
    }
    if (o->local_workers) local_stop_all(c, 0.5);
    if (c->ctx) {
        double cs = cpu_seconds(RUSAGE_SELF) - cpu_self0, ks = cpu_seconds(RUSAGE_CHILDREN) - cpu_kids0;
        if (!o->quiet)
            log_info("coordinator: %.1fs wall; CPU: coordinator %.2fs, local workers %.2fs",
                     now_seconds() - c->t_start, cs, ks);
        if (o->report) {
            o->report->wall_s = now_seconds() - c->t_start;
            o->report->cpu_coord_s = cs;
            o->report->cpu_workers_s = ks;
        }
    }
    for (int k = 0; k < c->spec.n_shards; k++) {
        free(c->shards[k].fp_out);
        free(c->shards[k].fp_seen);
    }
    if (c->router) zmq_close(c->router);
    if (c->status) zmq_close(c->status);
    if (c->zap) zmq_close(c->zap);
    if (c->ctx) zmq_ctx_term(c->ctx);
    if (c->private_dir[0]) remove_private_dir(c->private_dir);
    if (c->ctx) {
        char path[4096];
        journal_path(path, sizeof path, o->ckpt_dir, "coordinator.json");
        unlink(path);
    }
    free(c->blocks);
    tokens_free(&ts);
    journal_unlock(c->lock_fd);
    free(c);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
