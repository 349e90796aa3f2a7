/* cmd_coordinator.c — `quept coordinator`, `quept keygen`, `quept calibrate
 * --workers N`. (`quept status` is in cmd_status.c, `quept worker` in
 * worker/cmd_worker.c.) */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "base/proc.h"
#include "calib_flags.h"
#include "cli.h"
#include "coordinator/coord.h"
#include "dist_cmds.h"
#include "coordinator/journal.h"

/* ---- shared by coordinator and calibrate --workers ---- */

static int load_curve_server(CoordOpts *co, const char *dir, QErr *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/server.key", dir);
    if (curve_read_pair(path, &co->server, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/authorized", dir);
    if (curve_read_authorized(path, &co->auth, err) != 0) return -1;
    co->curve = 1;
    co->curve_dir = dir;
    return 0;
}

/* Test hooks, read once at start (documented in docs/testing.md). */
static void read_test_hooks(CoordOpts *co) {
    const char *s = getenv("QUEPT_TEST_COORD_DIE_AFTER");
    if (s) co->die_after_blocks = atoi(s);
}

static int finish(const CoordOpts *co, int keep, int rc, const QErr *err, const char *cmd) {
    if (rc != 0) {
        log_error("%s: %s", cmd, err->msg);
        return qerr_exit_status(err->code);
    }
    if (!keep) journal_cleanup(co->ckpt_dir);
    log_info("wrote %s", co->out_path);
    return 0;
}

/* ---- quept calibrate --workers N ---- */

int calibrate_local(const CliOpt *o, int no, const QuantConfig *qc, int max_seqs, int workers) {
    QErr err = {{0}};
    CoordOpts co;
    coord_opts_default(&co);
    co.model_path = cli_get(o, no, "model");
    co.data_path = cli_get(o, no, "data");
    co.out_path = cli_get(o, no, "out");
    co.qc = *qc;
    co.max_seqs = max_seqs;
    co.quiet = cli_get(o, no, "quiet") != NULL;
    co.local_workers = workers;
    co.expect_workers = workers;
    char ckpt[4096], exe[PATH_MAX];
    const char *c = cli_get(o, no, "checkpoint");
    if (!c) {
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", co.out_path);
        c = ckpt;
    }
    co.ckpt_dir = c;
    if (cli_check_job_paths(co.model_path, co.data_path, co.out_path, co.ckpt_dir, &err) != 0) {
        log_error("calibrate: %s", err.msg);
        return 2;
    }
    /* the cores split between the workers; OPENBLAS_NUM_THREADS caps the total */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (env && atoi(env) > 0) cores = atoi(env);
    int per = (int)(cores / workers);
    if (cli_get_int(o, no, "threads-per-worker", per > 0 ? per : 1, 1, 1024, &co.local_threads, &err) != 0 ||
        cli_get_int(o, no, "shards", 0, 1, JOURNAL_MAX_SHARDS, &co.n_shards, &err) != 0) {
        log_error("calibrate: %s", err.msg);
        return 2;
    }
    if (proc_self_exe(exe, sizeof exe, &err) != 0) {
        log_error("calibrate: %s (to start workers)", err.msg);
        return 1;
    }
    co.self_exe = exe;
    read_test_hooks(&co);
    log_info("calibrate: %d local workers, %d OpenBLAS thread%s each; checkpoint %s", workers,
             co.local_threads, co.local_threads > 1 ? "s" : "", co.ckpt_dir);
    int rc = coordinator_run(&co, &err);
    return finish(&co, cli_get(o, no, "keep-checkpoint") != NULL, rc, &err, "calibrate");
}

/* ---- quept coordinator ---- */

static const char *COORD_HELP =
    "usage: quept coordinator --model M --data F --out A --checkpoint DIR [options]\n"
    "\n"
    "Runs a distributed calibration: plans contiguous block shards, hands them\n"
    "to the workers that register (quept worker --connect ...), journals every\n"
    "finished block in DIR and merges them into the artifact A. Restarted with\n"
    "the same DIR, it carries on from the journal (and exits at once when the\n"
    "journal says the job is complete).\n"
    "\n"
    "  --model M            model path, the same on every worker's machine\n"
    "  --data F             QTOK calibration sequences\n"
    "  --out A              artifact path\n"
    "  --checkpoint DIR     journal directory (created if missing)\n"
    "  --bind EP            work socket (default tcp://127.0.0.1:5555: this machine\n"
    "                       only; tcp://*:5555 for workers elsewhere, with CURVE)\n"
    "  --status-bind EP     status socket for quept status (default\n"
    "                       tcp://127.0.0.1:5556)\n"
    "  --expect-workers N   plan one shard per worker (default 1)\n"
    "  --shards K           contiguous block shards (default N; on resume: the\n"
    "                       checkpoint's plan)\n"
    "  --curve-keys DIR     CURVE on both sockets: DIR/server.key, DIR/authorized\n"
    "                       (quept keygen); required to listen beyond loopback\n"
    "  --insecure           listen beyond loopback without CURVE: anyone who can\n"
    "                       reach the ports can join as a worker, read the\n"
    "                       calibration activations, send results into the\n"
    "                       artifact and read the status report; only on a\n"
    "                       network where every host is trusted\n"
    "  --heartbeat S        heartbeat interval in seconds (default 1); a worker\n"
    "                       silent for 3 intervals is declared dead\n"
    "  --compress           LZ4 on tensor frames (activations compress little)\n"
    "  --keep-checkpoint    keep the journal's inputs and blocks after success\n"
    "\n"
    "calibration flags (as quept calibrate; --method quept only):\n";

int cmd_coordinator(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(COORD_HELP, stdout);
        calib_flags_help(stdout);
        return 0;
    }
    CliOpt o[16 + CALIB_MAX_OPTS] = {{"model", 1, 0},          {"data", 1, 0},     {"out", 1, 0},
                                     {"checkpoint", 1, 0},     {"bind", 1, 0},     {"status-bind", 1, 0},
                                     {"expect-workers", 1, 0}, {"shards", 1, 0},   {"curve-keys", 1, 0},
                                     {"heartbeat", 1, 0},      {"compress", 0, 0}, {"keep-checkpoint", 0, 0},
                                     {"quiet", 0, 0},          {"insecure", 0, 0}};
    int no = calib_opts_add(o, 14), npos;
    QErr err = {{0}};
    CoordOpts co;
    coord_opts_default(&co);
    double hb;
    if (cli_parse(argc, argv, o, no, NULL, 0, &npos, &err) != 0 ||
        calib_opts_config(o, no, &co.qc, &co.max_seqs, &err) != 0 ||
        cli_get_int(o, no, "expect-workers", 1, 1, COORD_MAX_WORKERS, &co.expect_workers, &err) != 0 ||
        cli_get_int(o, no, "shards", 0, 1, JOURNAL_MAX_SHARDS, &co.n_shards, &err) != 0 ||
        cli_get_float(o, no, "heartbeat", 1.0, 0.05, 60, &hb, &err) != 0) {
        log_error("coordinator: %s", err.msg);
        return 2;
    }
    co.heartbeat_s = hb;
    co.model_path = cli_get(o, no, "model");
    co.data_path = cli_get(o, no, "data");
    co.out_path = cli_get(o, no, "out");
    co.ckpt_dir = cli_get(o, no, "checkpoint");
    co.bind = cli_get(o, no, "bind") ? cli_get(o, no, "bind") : "tcp://127.0.0.1:5555";
    co.status_bind = cli_get(o, no, "status-bind") ? cli_get(o, no, "status-bind") : "tcp://127.0.0.1:5556";
    co.insecure = cli_get(o, no, "insecure") != NULL;
    co.compress = cli_get(o, no, "compress") != NULL;
    co.quiet = cli_get(o, no, "quiet") != NULL;
    if (!co.model_path || !co.data_path || !co.out_path || !co.ckpt_dir) {
        log_error("coordinator: --model, --data, --out and --checkpoint are required (see --help)");
        return 2;
    }
    if (cli_check_job_paths(co.model_path, co.data_path, co.out_path, co.ckpt_dir, &err) != 0) {
        log_error("coordinator: %s", err.msg);
        return 2;
    }
    const char *kd = cli_get(o, no, "curve-keys");
    if (kd && load_curve_server(&co, kd, &err) != 0) {
        log_error("coordinator: --curve-keys: %s", err.msg);
        return 2;
    }
    read_test_hooks(&co);
    int rc = coordinator_run(&co, &err);
    curve_authorized_free(&co.auth);
    return finish(&co, cli_get(o, no, "keep-checkpoint") != NULL, rc, &err, "coordinator");
}

/* ---- quept keygen ---- */

int cmd_keygen(int argc, char **argv) {
    if (cli_wants_help(argc, argv) || argc != 1) {
        fputs("usage: quept keygen DIR\n"
              "\n"
              "Writes CURVE keys for a distributed job: DIR/server.key (the coordinator's\n"
              "pair), DIR/server.pub (its public key, all a worker needs of it),\n"
              "DIR/client.key (the workers' pair) and DIR/authorized (the worker\n"
              "public keys the coordinator admits, one per line; add more with other\n"
              "pairs). Pass --curve-keys DIR to the coordinator and to every worker.\n",
              argc == 1 ? stdout : stderr);
        return argc == 1 ? 0 : 2;
    }
    QErr err = {{0}};
    if (curve_keygen_dir(argv[0], &err) != 0) {
        log_error("keygen: %s", err.msg);
        return 1;
    }
    log_info("wrote %s/server.key, server.pub, client.key, authorized", argv[0]);
    return 0;
}
