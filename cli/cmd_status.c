/* cmd_status.c — `quept status`: a running job's progress from its
 * coordinator's status socket, or what a checkpoint's journal holds. The
 * status socket only ever answers reports: a client cannot disturb the job. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "base/log.h"
#include "base/numeric.h"
#include "coordinator/journal.h"
#include "coordinator/status.h"
#include "dist_cmds.h"
#include "proto/transport.h"

static const char *HELP =
    "usage: quept status (--connect EP | --checkpoint DIR) [--watch [S]] [--json] [--curve-keys DIR]\n"
    "\n"
    "Job state, per-shard and per-block progress, current per-bit-group\n"
    "losses, tokens/s, ETA, each worker's liveness and last heartbeat, and\n"
    "what the journal holds.\n"
    "\n"
    "  --connect EP       the coordinator's status socket (tcp://host:5556)\n"
    "  --checkpoint DIR   find the coordinator from DIR/coordinator.json; with\n"
    "                     none running, report the journal in DIR\n"
    "  --watch [S]        redraw every S seconds (default 2) until the job ends\n"
    "  --json             one JSON document per report (for scripts)\n"
    "  --timeout S        seconds to wait for the coordinator (default 2)\n"
    "  --curve-keys DIR   a coordinator with CURVE answers only authorised\n"
    "                     clients: DIR/server.pub and DIR/client.key (the\n"
    "                     worker's keys from quept keygen)\n";

/* CURVE client keys for the status socket (keys_dir NULL: none). */
typedef struct {
    int on;
    char server_pub[41];
    CurveKeyPair client;
} StatusKeys;

static int read_keys(const char *dir, StatusKeys *k, QErr *err) {
    char path[4096];
    memset(k, 0, sizeof *k);
    if (!dir) return 0;
    snprintf(path, sizeof path, "%s/server.pub", dir);
    if (curve_read_public(path, k->server_pub, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/client.key", dir);
    if (curve_read_pair(path, &k->client, err) != 0) return -1;
    k->on = 1;
    return 0;
}

/* One report from a status endpoint, or NULL (err) if nobody answered. */
static char *ask(const char *ep, const StatusKeys *keys, double timeout_s, QErr *err) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (keys->on && curve_setup_client(s, keys->server_pub, &keys->client, err) != 0) {
        zmq_close(s);
        zmq_ctx_term(ctx);
        return NULL;
    }
    int linger = 0;
    int64_t maxmsg = 64 << 20;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    char *out = NULL;
    if (zmq_connect(s, ep) != 0) {
        qerr_set(err, "connect %s: %s", ep, zmq_strerror(zmq_errno()));
    } else if (zmq_send(s, "status", 6, ZMQ_DONTWAIT) < 0) {
        qerr_set(err, "%s: no coordinator answers", ep);
    } else {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)(timeout_s * 1000)) == 1) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) >= 0) {
                size_t n = zmq_msg_size(&m);
                out = malloc(n + 1);
                if (out) {
                    memcpy(out, zmq_msg_data(&m), n);
                    out[n] = 0;
                }
            }
            zmq_msg_close(&m);
        }
        if (!out) qerr_set(err, "%s: no coordinator answered within %.0fs", ep, timeout_s);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return out;
}

static double num(const cJSON *o, const char *k, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}
static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void bar(char *buf, int width, double frac) {
    if (!(frac >= 0)) frac = 0;
    if (frac > 1) frac = 1;
    int n = (int)(frac * width + 0.5);
    for (int i = 0; i < width; i++) buf[i] = i < n ? '#' : '.';
    buf[width] = 0;
}

/* The report as text. Returns 1 if the job is over (done/failed/stopped). */
static int print_text(const char *json, FILE *f) {
    cJSON *r = cJSON_Parse(json);
    if (!r) {
        fprintf(f, "unreadable status report\n");
        return 1;
    }
    const char *state = str(r, "state");
    int running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "coordinator_running"));
    double total = num(r, "blocks_total", 0), done = num(r, "blocks_done", 0), eta = num(r, "eta_s", NAN);
    char b[64];
    bar(b, 30, total > 0 ? done / total : 0);
    fprintf(f, "job %s%s  [%s] %g/%g blocks", state, running ? "" : " (no coordinator running)", b, done,
            total);
    if (running) fprintf(f, "  %.0f tok/s", num(r, "tokens_per_s", 0));
    if (isfinite(eta)) fprintf(f, "  ETA %.0fs", eta);
    if (running) fprintf(f, "  elapsed %.0fs", num(r, "elapsed_s", 0));
    fputc('\n', f);
    if (*str(r, "error")) fprintf(f, "error: %s\n", str(r, "error"));
    if (*str(r, "artifact") && strcmp(state, "done") == 0) fprintf(f, "artifact: %s\n", str(r, "artifact"));
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "shards")) {
        double a = num(it, "begin", 0), e = num(it, "end", 0), d = num(it, "blocks_done", 0);
        bar(b, 20, e > a ? d / (e - a) : 0);
        fprintf(f, "  shard %-3g blocks %3g-%-3g [%s] %g/%g  %s\n", num(it, "index", 0), a, e - 1, b, d,
                e - a, *str(it, "worker") ? str(it, "worker") : "-");
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "blocks")) {
        const char *bs = str(it, "state");
        if (strcmp(bs, "training") != 0) continue;
        double ep = num(it, "epoch", 0), eps = num(it, "epochs", 1);
        bar(b, 20, eps > 0 ? ep / eps : 0);
        fprintf(f, "  block %-4g epoch %g/%g [%s]", num(it, "index", 0), ep, eps, b);
        const cJSON *g;
        cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(it, "group_loss")) if (cJSON_IsNumber(g))
            fprintf(f, " {%s} %.4f", g->string, g->valuedouble);
        fprintf(f, "  %.0f tok/s\n", num(it, "tokens_per_s", 0));
    }
    int nj = 0;
    char list[512] = "";
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "blocks")) {
        if (strcmp(str(it, "state"), "journaled") != 0) continue;
        size_t l = strlen(list);
        if (l < sizeof list - 16)
            snprintf(list + l, sizeof list - l, "%s%g", nj ? "," : "", num(it, "index", 0));
        nj++;
    }
    fprintf(f, "  journal: %d block%s done%s%s\n", nj, nj == 1 ? "" : "s", nj ? ": " : "", list);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "workers")) {
        double sh = num(it, "shard", -1);
        fprintf(f, "  worker %-16s %s  threads %g  last heartbeat %.1fs ago  ", str(it, "name"),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "alive")) ? "alive" : "SILENT",
                num(it, "threads", 0), num(it, "last_heartbeat_s", 0));
        if (sh >= 0)
            fprintf(f, "shard %g\n", sh);
        else
            fprintf(f, "idle\n");
    }
    int over = !running || strcmp(state, "done") == 0 || strcmp(state, "failed") == 0;
    cJSON_Delete(r);
    return over;
}

int cmd_status(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    /* --watch takes an optional number */
    double every = 0;
    char *args[64];
    int n = 0;
    for (int i = 0; i < argc && n < 63; i++) {
        if (strcmp(argv[i], "--watch") == 0) {
            every = 2.0;
            if (i + 1 < argc && argv[i + 1][0] != '-') every = atof(argv[++i]);
            if (!(every > 0)) every = 2.0;
            continue;
        }
        args[n++] = argv[i];
    }
    CliOpt o[] = {
        {"connect", 1, 0}, {"checkpoint", 1, 0}, {"json", 0, 0}, {"timeout", 1, 0}, {"curve-keys", 1, 0}};
    int no = sizeof o / sizeof o[0], npos;
    QErr err = {{0}};
    double timeout;
    StatusKeys keys;
    if (cli_parse(n, args, o, no, NULL, 0, &npos, &err) != 0 ||
        cli_get_float(o, no, "timeout", 2.0, 0.1, 3600, &timeout, &err) != 0 ||
        read_keys(cli_get(o, no, "curve-keys"), &keys, &err) != 0) {
        log_error("status: %s", err.msg);
        return 2;
    }
    const char *ep = cli_get(o, no, "connect"), *dir = cli_get(o, no, "checkpoint");
    int json = cli_get(o, no, "json") != NULL;
    if (!ep == !dir) {
        log_error("status: give exactly one of --connect EP or --checkpoint DIR (see --help)");
        return 2;
    }
    int tty = isatty(1);
    for (;;) {
        char rec[512], *report = NULL;
        const char *target = ep;
        if (dir && journal_coordinator_endpoint(dir, rec, sizeof rec)) target = rec;
        if (target) report = ask(target, &keys, timeout, &err);
        if (!report && dir) report = journal_status_json(dir, &err);
        if (!report) {
            log_error("status: %s", err.msg);
            return 1;
        }
        if (every > 0 && tty && !json) fputs("\033[H\033[2J", stdout);
        int over;
        if (json) {
            puts(report);
            cJSON *r = cJSON_Parse(report);
            const char *st = str(r, "state");
            over = !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "coordinator_running")) ||
                   strcmp(st, "done") == 0 || strcmp(st, "failed") == 0;
            cJSON_Delete(r);
        } else {
            over = print_text(report, stdout);
        }
        fflush(stdout);
        free(report);
        if (every <= 0 || over) return 0;
        sleep_seconds(every);
    }
}
