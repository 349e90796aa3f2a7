/* worker.c — the worker's I/O thread and compute thread. */
#include "worker.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "base/log.h"
#include "base/numeric.h"
#include "shard_task.h"

#define PIPE_ENDPOINT "inproc://quept-compute"
static const char DONE_MARK[4] = {'D', 'O', 'N', 'E'};

void worker_opts_default(WorkerOpts *o) {
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->heartbeat_s = 1.0;
    o->liveness = 3;
    o->max_lost_s = 300.0;
    o->die_block = o->die_epoch = o->fail_block = -1;
}

/* SIGTERM / SIGINT: finish the loop and exit cleanly. Signal-safe flag. */
static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ---- compute thread ---- */

typedef struct {
    void *ctx;
    int threads;
    atomic_int cancel;
} ComputeShared;

static void *compute_main(void *arg) {
    ComputeShared *cs = arg;
    void *pipe = zmq_socket(cs->ctx, ZMQ_PAIR);
    int zero = 0;
    if (pipe) zmq_setsockopt(pipe, ZMQ_LINGER, &zero, sizeof zero);
    if (!pipe || zmq_connect(pipe, PIPE_ENDPOINT) != 0) {
        log_error("worker: compute pipe: %s", zmq_strerror(zmq_errno()));
        if (pipe) zmq_close(pipe);
        return NULL;
    }
    openblas_set_num_threads(cs->threads);
    for (;;) {
        ShardTask *t = NULL;
        int n = zmq_recv(pipe, &t, sizeof t, 0);
        if (n != (int)sizeof t || !t) break; /* NULL task: exit */
        QErr err = {{0}};
        double t0 = now_seconds();
        int rc = shard_task_run(t, pipe, &cs->cancel, &err);
        if (rc != 0 && !atomic_load(&cs->cancel)) {
            /* a real failure (not a cancel): the coordinator fails the job with it */
            log_error("worker: shard %d: %s", t->assign.shard, err.msg);
            Msg m;
            msg_init(&m, MSG_ERROR);
            m.session = t->assign.session, m.assign = t->assign.assign;
            snprintf(m.text, sizeof m.text, "shard %d: %.480s", t->assign.shard, err.msg);
            QErr e2;
            wire_send(pipe, NULL, 0, &m, 0, &e2);
        } else if (rc == 0) {
            log_info("worker: shard %d (blocks %d-%d) done in %.1fs", t->assign.shard, t->assign.block_start,
                     t->assign.block_end - 1, now_seconds() - t0);
        }
        shard_task_free(t);
        zmq_send(pipe, DONE_MARK, sizeof DONE_MARK, 0);
    }
    zmq_close(pipe);
    return NULL;
}

/* ---- I/O thread ---- */

typedef struct {
    const WorkerOpts *o;
    void *ctx, *dealer, *pipe;
    uint64_t session;      /* 0 until the coordinator answers */
    int registered_wanted; /* register as soon as the compute thread is idle */
    int busy;              /* the compute thread holds a task */
    ShardTask *pending;    /* an assignment whose inputs are still arriving */
    int fail_left;         /* the fail test hook's remaining failures */
    double last_heard, next_hb, lost_since;
    double backoff;
    ComputeShared *cs;
} Worker;

/* Hands a complete pending assignment to the compute thread once it is
 * idle. The coordinator assigns the next shard as soon as it has journaled
 * the last block of the previous one, which can be before the compute
 * thread's DONE reaches us: the assignment waits here instead of being
 * refused (that refusal failed ordinary local jobs). */
static void maybe_start(Worker *w) {
    if (!w->pending || w->busy || !shard_task_ready(w->pending)) return;
    ShardTask *t = w->pending;
    w->pending = NULL;
    atomic_store(&w->cs->cancel, 0);
    zmq_send(w->pipe, &t, sizeof t, 0);
    w->busy = 1;
}

/* Takes everything the compute thread has sent: its DONE marks the thread
 * idle; protocol messages go on to the coordinator when forward is set
 * and a connection exists, and are dropped otherwise (a cancelled task's). */
static void drain_pipe(Worker *w, int forward) {
    MsgFrames f;
    QErr e;
    while (wire_recv_frames(w->pipe, &f, 1, &e) == 0) {
        if (f.n == 1 && f.len[0] == sizeof DONE_MARK && memcmp(f.data[0], DONE_MARK, sizeof DONE_MARK) == 0) {
            w->busy = 0;
            msg_frames_free(&f);
            maybe_start(w);
        } else if (forward && w->dealer) {
            if (wire_send_frames(w->dealer, NULL, 0, &f, &e) != 0) log_warn("worker: relay: %s", e.msg);
        } else {
            msg_frames_free(&f);
        }
    }
}

/* Waits up to seconds for the compute thread's messages, without forwarding. */
static void drain_pipe_for(Worker *w, double seconds, int until_idle) {
    double until = now_seconds() + seconds;
    while (!g_stop && now_seconds() < until && !(until_idle && !w->busy)) {
        zmq_pollitem_t pi = {w->pipe, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 100) > 0) drain_pipe(w, 0);
    }
}

static int connect_dealer(Worker *w, QErr *err) {
    w->dealer = zmq_socket(w->ctx, ZMQ_DEALER);
    if (!w->dealer) return qerr_set(err, "socket: %s", zmq_strerror(zmq_errno()));
    if (wire_socket_limits(w->dealer, (int64_t)PROTO_MAX_FRAME, err) != 0) return -1;
    if (w->o->curve && curve_setup_client(w->dealer, w->o->server_pub, &w->o->client, err) != 0) return -1;
    if (zmq_connect(w->dealer, w->o->connect) != 0)
        return qerr_set(err, "connect %s: %s", w->o->connect, zmq_strerror(zmq_errno()));
    w->session = 0;
    w->registered_wanted = 1;
    w->last_heard = now_seconds();
    return 0;
}

static void send_simple(Worker *w, MsgType type) {
    Msg m;
    msg_init(&m, type);
    m.session = w->session;
    if (type == MSG_REGISTER) {
        snprintf(m.name, sizeof m.name, "%s", w->o->name);
        m.threads = w->o->threads;
    }
    QErr err;
    if (wire_send(w->dealer, NULL, 0, &m, 0, &err) != 0)
        log_warn("worker: send %s: %s", msg_type_name(type), err.msg);
}

static void maybe_register(Worker *w) {
    if (w->registered_wanted && !w->busy && w->dealer) {
        send_simple(w, MSG_REGISTER);
        w->registered_wanted = 0;
        log_info("worker %s: registering with %s", w->o->name, w->o->connect);
    }
}

/* Drops whatever we were doing for the coordinator (it is gone or new). */
static void abandon_work(Worker *w) {
    if (w->busy) atomic_store(&w->cs->cancel, 1);
    shard_task_free(w->pending);
    w->pending = NULL;
}

static void send_error(Worker *w, uint64_t assign, const char *text) {
    Msg m;
    msg_init(&m, MSG_ERROR);
    m.session = w->session, m.assign = assign;
    snprintf(m.text, sizeof m.text, "%.500s", text);
    QErr err;
    wire_send(w->dealer, NULL, 0, &m, 0, &err);
}

/* One message from the coordinator. Returns 1 on shutdown. */
static int on_coordinator(Worker *w, Msg *m) {
    w->last_heard = now_seconds();
    w->lost_since = 0;
    w->backoff = w->o->heartbeat_s;
    if (w->session == 0) {
        w->session = m->session;
    } else if (m->session != w->session) {
        log_warn("worker %s: the coordinator restarted; dropping the current shard and registering again",
                 w->o->name);
        abandon_work(w);
        w->session = m->session;
        w->registered_wanted = 1;
        maybe_register(w);
        if (m->type != MSG_SHUTDOWN) return 0;
    }
    QErr err = {{0}};
    switch (m->type) {
    case MSG_SHUTDOWN:
        log_info("worker %s: coordinator says: %s", w->o->name, m->text[0] ? m->text : "shutdown");
        abandon_work(w);
        return 1;
    case MSG_ASSIGN:
        if (w->pending) {
            log_warn("worker %s: assignment %llu while another is pending; refused", w->o->name,
                     (unsigned long long)m->assign);
            send_error(w, m->assign, "assignment while another is pending");
            return 0;
        }
        if (shard_task_new(m, &w->pending, &err) != 0) {
            send_error(w, m->assign, err.msg);
            return 0;
        }
        w->pending->assign.session = m->session;
        w->pending->compress = w->o->compress;
        w->pending->die_block = w->o->die_block, w->pending->die_epoch = w->o->die_epoch;
        if (w->fail_left > 0 && m->block_start <= w->o->fail_block && w->o->fail_block < m->block_end) {
            w->pending->fail_block = w->o->fail_block;
            w->fail_left--;
        }
        log_info("worker %s: shard %d, blocks %d-%d (from %d)", w->o->name, m->shard, m->block_begin,
                 m->block_end - 1, m->block_start);
        break;
    case MSG_ACTIVATIONS:
    case MSG_PARAMS:
        if (!w->pending || m->assign != w->pending->assign.assign) return 0; /* stale */
        if (shard_task_add(w->pending, m, &err) != 0) {
            log_warn("worker %s: %s", w->o->name, err.msg);
            send_error(w, m->assign, err.msg);
            abandon_work(w);
            return 0;
        }
        break;
    default: break;
    }
    maybe_start(w);
    return 0;
}

int worker_run(const WorkerOpts *o, QErr *err) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    Worker w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.fail_left = o->fail_times;
    w.ctx = zmq_ctx_new();
    ComputeShared cs = {w.ctx, o->threads, 0};
    w.cs = &cs;
    w.pipe = zmq_socket(w.ctx, ZMQ_PAIR);
    int zero = 0;
    if (w.pipe) zmq_setsockopt(w.pipe, ZMQ_LINGER, &zero, sizeof zero);
    if (!w.pipe || zmq_bind(w.pipe, PIPE_ENDPOINT) != 0) {
        zmq_ctx_term(w.ctx);
        return qerr_set(err, "compute pipe: %s", zmq_strerror(zmq_errno()));
    }
    pthread_t th;
    if (pthread_create(&th, NULL, compute_main, &cs) != 0) {
        zmq_close(w.pipe);
        zmq_ctx_term(w.ctx);
        return qerr_set(err, "cannot start the compute thread");
    }
    int rc = connect_dealer(&w, err), done = 0;
    w.backoff = o->heartbeat_s;
    w.next_hb = now_seconds();
    while (rc == 0 && !done && !g_stop) {
        maybe_register(&w);
        double now = now_seconds();
        long timeout = (long)((w.next_hb - now) * 1000.0);
        if (timeout < 0) timeout = 0;
        zmq_pollitem_t items[2] = {{w.pipe, 0, ZMQ_POLLIN, 0}, {w.dealer, 0, ZMQ_POLLIN, 0}};
        int np = zmq_poll(items, w.dealer ? 2 : 1, timeout);
        if (np < 0 && zmq_errno() != EINTR) {
            rc = qerr_set(err, "poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (np > 0 && (items[0].revents & ZMQ_POLLIN)) drain_pipe(&w, 1);
        if (np > 0 && w.dealer && (items[1].revents & ZMQ_POLLIN)) {
            for (;;) {
                Msg m;
                QErr e;
                int r = wire_recv(w.dealer, 0, NULL, NULL, &m, 1, &e);
                if (r == 1 || r == -2) break;
                if (r == -1) {
                    log_warn("worker %s: ignored a %s", o->name, e.msg);
                    continue;
                }
                done = on_coordinator(&w, &m);
                msg_free(&m);
                if (done) break;
            }
        }
        now = now_seconds();
        if (now >= w.next_hb && w.dealer) {
            send_simple(&w, MSG_HEARTBEAT);
            w.next_hb = now + o->heartbeat_s;
        }
        if (!done && now - w.last_heard > o->liveness * o->heartbeat_s) {
            if (w.lost_since == 0) w.lost_since = w.last_heard;
            if (now - w.lost_since > o->max_lost_s) {
                rc = qerr_set(err, "no coordinator at %s for %.0fs; giving up", o->connect,
                              now - w.lost_since);
                break;
            }
            log_warn("worker %s: coordinator silent for %.1fs; reconnecting in %.1fs", o->name,
                     now - w.last_heard, w.backoff);
            abandon_work(&w);
            zmq_close(w.dealer);
            w.dealer = NULL;
            /* back-off, still draining the compute pipe so a cancelled task can finish */
            drain_pipe_for(&w, w.backoff, 0);
            if (w.backoff < 32.0) w.backoff *= 2;
            rc = connect_dealer(&w, err);
            w.next_hb = now_seconds();
        }
    }
    /* stop the compute thread: cancel, then wait for its DONE (a cancel
     * lands at the next epoch); a thread still busy after that is left to
     * die with the process */
    abandon_work(&w);
    int joined = 0, by_signal = g_stop;
    if (w.busy) {
        g_stop = 0; /* the wait below must not end at once on a signal already seen */
        drain_pipe_for(&w, 5.0, 1);
    }
    if (!w.busy) {
        ShardTask *nil = NULL;
        zmq_send(w.pipe, &nil, sizeof nil, 0);
        pthread_join(th, NULL);
        joined = 1;
    }
    if (w.dealer) zmq_close(w.dealer);
    zmq_close(w.pipe);
    if (joined) zmq_ctx_term(w.ctx);
    if (rc == 0 && by_signal) log_info("worker %s: stopped by signal", o->name);
    return rc;
}
