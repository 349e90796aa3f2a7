/* cmd_worker.c — `quept worker`: its options, then worker_run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cli_opts.h"
#include "base/log.h"
#include "worker.h"

static const char *WORKER_HELP =
    "usage: quept worker --connect EP [options]\n"
    "\n"
    "Registers with a coordinator and calibrates the block shards it assigns.\n"
    "Exits 0 when the coordinator says the job is over; reconnects (with\n"
    "back-off) when it goes away; gives up after --max-lost seconds.\n"
    "\n"
    "  --connect EP       the coordinator's work socket, e.g. tcp://host:5555\n"
    "  --threads T        OpenBLAS threads for the calibration (default 1)\n"
    "  --name NAME        shown in quept status (default: host-pid)\n"
    "  --curve-keys DIR   CURVE on: DIR/server.pub and DIR/client.key\n"
    "  --max-lost S       seconds without a coordinator before giving up (default 300)\n"
    "  --heartbeat S      heartbeat interval in seconds (default 1)\n"
    "  --compress         LZ4 on tensor frames sent\n"
    "  --quiet            warnings and errors only\n";

/* A test hook "NAME:A:B" from environment variable var, when it is meant
 * for this worker: NAME is its name, or "*" for every first-incarnation
 * worker (a respawned one, "local-1.1", is spared). 1 and A, B if so. */
static int test_hook_for(const char *var, const char *name, int *a, int *b) {
    const char *v = getenv(var);
    char nm[64] = "";
    if (!v || sscanf(v, "%63[^:]:%d:%d", nm, a, b) != 3) return 0;
    return strcmp(nm, name) == 0 || (strcmp(nm, "*") == 0 && !strchr(name, '.'));
}

int cmd_worker(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(WORKER_HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"connect", 1, 0},  {"threads", 1, 0},   {"name", 1, 0},     {"curve-keys", 1, 0},
                  {"max-lost", 1, 0}, {"heartbeat", 1, 0}, {"compress", 0, 0}, {"quiet", 0, 0}};
    int no = sizeof o / sizeof o[0], npos;
    QErr err = {{0}};
    WorkerOpts wo;
    worker_opts_default(&wo);
    double lost, hb;
    if (cli_parse(argc, argv, o, no, NULL, 0, &npos, &err) != 0 ||
        cli_get_int(o, no, "threads", 1, 1, 1024, &wo.threads, &err) != 0 ||
        cli_get_float(o, no, "max-lost", 300, 1, 1e7, &lost, &err) != 0 ||
        cli_get_float(o, no, "heartbeat", 1.0, 0.05, 60, &hb, &err) != 0) {
        log_error("worker: %s", err.msg);
        return 2;
    }
    wo.max_lost_s = lost, wo.heartbeat_s = hb;
    wo.connect = cli_get(o, no, "connect");
    wo.compress = cli_get(o, no, "compress") != NULL;
    if (cli_get(o, no, "quiet")) log_set_level(LOG_WARN);
    if (!wo.connect) {
        log_error("worker: --connect is required (see --help)");
        return 2;
    }
    if (cli_get(o, no, "name")) {
        snprintf(wo.name, sizeof wo.name, "%s", cli_get(o, no, "name"));
    } else {
        char host[48] = "worker";
        gethostname(host, sizeof host - 1);
        snprintf(wo.name, sizeof wo.name, "%s-%d", host, (int)getpid());
    }
    const char *kd = cli_get(o, no, "curve-keys");
    if (kd) {
        char path[4096];
        snprintf(path, sizeof path, "%s/server.pub", kd);
        if (curve_read_public(path, wo.server_pub, &err) != 0) {
            log_error("worker: --curve-keys: %s", err.msg);
            return 2;
        }
        snprintf(path, sizeof path, "%s/client.key", kd);
        if (curve_read_pair(path, &wo.client, &err) != 0) {
            log_error("worker: --curve-keys: %s", err.msg);
            return 2;
        }
        wo.curve = 1;
    }
    /* test hooks (docs/testing.md): QUEPT_TEST_WORKER_DIE=name:block:epoch,
     * QUEPT_TEST_WORKER_FAIL=name:block:times */
    int a, b;
    if (test_hook_for("QUEPT_TEST_WORKER_DIE", wo.name, &a, &b)) wo.die_block = a, wo.die_epoch = b;
    if (test_hook_for("QUEPT_TEST_WORKER_FAIL", wo.name, &a, &b)) wo.fail_block = a, wo.fail_times = b;
    if (worker_run(&wo, &err) != 0) {
        log_error("worker %s: %s", wo.name, err.msg);
        return 1;
    }
    return 0;
}
