/* local_workers.c — `quept calibrate --workers N`: the coordinator's own
 * worker processes on this machine. Each is `quept worker` exec'd from our
 * binary, connected over ipc:// in the coordinator's private directory,
 * with the kernel told to kill it if the coordinator dies (no orphans even
 * after a SIGKILL), respawned if it dies while the job runs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/numeric.h"
#include "coord_internal.h"

#define LOCAL_MAX_RESTARTS 3

int local_spawn(Coord *c, int slot, QErr *err) {
    const CoordOpts *o = c->o;
    LocalSlot *ls = &c->local[slot];
    char threads[16], hb[32], lost[32];
    snprintf(ls->name, sizeof ls->name, ls->incarnation ? "local-%d.%d" : "local-%d", slot, ls->incarnation);
    snprintf(threads, sizeof threads, "%d", o->local_threads > 0 ? o->local_threads : 1);
    snprintf(hb, sizeof hb, "%g", o->heartbeat_s);
    /* a worker that loses us for this long exits by itself too */
    snprintf(lost, sizeof lost, "%g", o->liveness * o->heartbeat_s * 3 + 5);
    const char *argv[20];
    int n = 0;
    argv[n++] = o->self_exe;
    argv[n++] = "worker";
    argv[n++] = "--connect", argv[n++] = c->work_ep;
    argv[n++] = "--threads", argv[n++] = threads;
    argv[n++] = "--name", argv[n++] = ls->name;
    argv[n++] = "--heartbeat", argv[n++] = hb;
    argv[n++] = "--max-lost", argv[n++] = lost;
    if (o->curve) argv[n++] = "--curve-keys", argv[n++] = o->curve_dir;
    if (o->quiet) argv[n++] = "--quiet";
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return qerr_set(err, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* child: die with the coordinator, whatever kills it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        signal(SIGINT, SIG_IGN); /* Ctrl-C is the coordinator's to handle: it stops us */
        execv(o->self_exe, (char *const *)argv);
        fprintf(stderr, "quept: exec %s: %s\n", o->self_exe, strerror(errno));
        _exit(127);
    }
    ls->pid = pid;
    ls->incarnation++;
    log_info("coordinator: started local worker %s (pid %d)", ls->name, (int)pid);
    return 0;
}

void local_reap(Coord *c, int respawn) {
    for (int i = 0; i < c->o->local_workers; i++) {
        LocalSlot *ls = &c->local[i];
        if (ls->pid <= 0) continue;
        int status;
        pid_t r = waitpid(ls->pid, &status, WNOHANG);
        if (r != ls->pid) continue;
        ls->pid = 0;
        if (!respawn) continue;
        if (WIFSIGNALED(status))
            log_warn("coordinator: local worker %d died (signal %d)", i, WTERMSIG(status));
        else
            log_warn("coordinator: local worker %d exited with status %d", i, WEXITSTATUS(status));
        /* its registration goes with it: the shard is reassigned now, not after the heartbeat timeout */
        for (int w = 0; w < COORD_MAX_WORKERS; w++)
            if (c->workers[w].used && strcmp(c->workers[w].name, ls->name) == 0) {
                c->workers[w].last_seen = -1e9; /* the next heartbeat pass drops it */
                c->t_last_hb = 0;
            }
        if (ls->restarts >= LOCAL_MAX_RESTARTS) {
            log_warn("coordinator: local worker %d restarted %d times; not again", i, ls->restarts);
            continue;
        }
        ls->restarts++;
        QErr err;
        if (local_spawn(c, i, &err) != 0) log_warn("coordinator: respawn worker %d: %s", i, err.msg);
    }
}

void local_stop_all(Coord *c, double grace_s) {
    double until = now_seconds() + grace_s;
    for (;;) {
        int alive = 0;
        for (int i = 0; i < c->o->local_workers; i++) {
            LocalSlot *ls = &c->local[i];
            if (ls->pid <= 0) continue;
            if (waitpid(ls->pid, NULL, WNOHANG) == ls->pid)
                ls->pid = 0;
            else
                alive++;
        }
        if (!alive) return;
        if (now_seconds() >= until) break;
        sleep_seconds(0.02);
    }
    for (int i = 0; i < c->o->local_workers; i++) {
        LocalSlot *ls = &c->local[i];
        if (ls->pid <= 0) continue;
        kill(ls->pid, SIGKILL);
        waitpid(ls->pid, NULL, 0);
        ls->pid = 0;
    }
}
