/* bench_dist.c — `quept bench distributed`: the same calibration job on a
 * synthetic model with 1 worker and with 2 workers (one OpenBLAS thread
 * each, so the total work is the same), in one run: the wall-time speedup
 * and the coordinator's share of the CPU time. This process is the
 * coordinator; the workers are `quept worker` processes it starts. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/proc.h"
#include "base/rng.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "coordinator/coord.h"
#include "data/tokens.h"
#include "cli/dist_cmds.h"

static const char *HELP = "usage: quept bench distributed [--json] [--blocks L] [--epochs E] [--dim D]\n"
                          "\n"
                          "Calibrates a synthetic model of L blocks (default 8, width D = 192; E\n"
                          "epochs, default 15 as in calibrate; 16 x 128 tokens) with\n"
                          "local workers: 1 worker, then 2 workers, one OpenBLAS thread each (the\n"
                          "same total work), and prints both wall times, the speedup, and the\n"
                          "coordinator's share of all CPU time, for the calibration phase and for\n"
                          "the whole job (the merge: loading the model, the sensitivity table and\n"
                          "writing the artifact, runs in the coordinator after the workers finish).\n";

typedef struct {
    int workers;
    CoordReport r;
} DistRun;

static int make_inputs(const char *dir, int L, int D, int n_seq, int T, char *model, char *data, QErr *err) {
    ModelConfig c = {.dim = D,
                     .hidden_dim = D * 8 / 3 / 32 * 32,
                     .n_layers = L,
                     .n_heads = D / 32,
                     .n_kv_heads = D / 32,
                     .head_dim = 32,
                     .vocab_size = 512,
                     .seq_len = T,
                     .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f,
                     .tied_classifier = 1};
    Model m;
    if (model_init_random(&m, &c, 11, err) != 0) return -1;
    snprintf(model, 4096, "%s/model.bin", dir);
    int rc = llama2c_write_legacy(model, &m, err);
    model_free(&m);
    if (rc != 0) return -1;
    TokenSet ts = {n_seq, T, c.vocab_size, malloc(sizeof(int) * (size_t)n_seq * T)};
    if (!ts.tokens) return qerr_set(err, "out of memory");
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < n_seq * T; i++) ts.tokens[i] = i % T == 0 ? 1 : rng_int(&rng, c.vocab_size);
    snprintf(data, 4096, "%s/cal.qtok", dir);
    rc = tokens_write(data, &ts, err);
    free(ts.tokens);
    return rc;
}

int bench_distributed(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"json", 0, 0}, {"blocks", 1, 0}, {"epochs", 1, 0}, {"dim", 1, 0}};
    int no = 4, npos, L, E, D;
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, no, NULL, 0, &npos, &err) ||
        cli_get_int(o, no, "blocks", 8, 2, 256, &L, &err) ||
        cli_get_int(o, no, "epochs", 15, 1, 1000, &E, &err) ||
        cli_get_int(o, no, "dim", 192, 64, 4096, &D, &err)) {
        log_error("bench distributed: %s", err.msg);
        return 2;
    }
    if (D % 32) {
        log_error("bench distributed: --dim must be a multiple of 32");
        return 2;
    }
    int json = cli_get(o, no, "json") != NULL;
    char dir[] = "/tmp/quept-bench-dist-XXXXXX", model[4096], data[4096], exe[PATH_MAX];
    if (!mkdtemp(dir)) {
        log_error("bench distributed: mkdtemp failed");
        return 1;
    }
    if (proc_self_exe(exe, sizeof exe, &err) != 0) {
        log_error("bench distributed: %s", err.msg);
        return 1;
    }
    const int n_seq = 16, T = 128;
    int rc = make_inputs(dir, L, D, n_seq, T, model, data, &err);
    DistRun runs[2];
    memset(runs, 0, sizeof runs);
    runs[0].workers = 1, runs[1].workers = 2;
    LogLevel saved = log_get_level();
    for (int i = 0; i < 2 && rc == 0; i++) {
        char out[4200], ckpt[4200];
        snprintf(out, sizeof out, "%s/w%d.qept", dir, runs[i].workers);
        snprintf(ckpt, sizeof ckpt, "%s/w%d.ckpt", dir, runs[i].workers);
        CoordOpts co;
        coord_opts_default(&co);
        quant_config_default(&co.qc);
        co.qc.epochs = E, co.qc.min_steps = 0;
        co.model_path = model, co.data_path = data, co.out_path = out, co.ckpt_dir = ckpt;
        co.local_workers = co.expect_workers = runs[i].workers;
        co.local_threads = 1;
        co.self_exe = exe;
        co.quiet = 1;
        co.report = &runs[i].r;
        if (!json)
            fprintf(stderr,
                    "calibrating %d blocks (width %d, %d x %d tokens, %d epochs) with %d worker%s...\n", L, D,
                    n_seq, T, E, runs[i].workers, runs[i].workers > 1 ? "s" : "");
        log_set_level(LOG_WARN);
        rc = coordinator_run(&co, &err);
        log_set_level(saved);
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) log_warn("bench distributed: could not remove %s", dir);
    if (rc != 0) {
        log_error("bench distributed: %s", err.msg);
        return 1;
    }
    const CoordReport *a = &runs[0].r, *b = &runs[1].r;
    double sp_calib = a->calib_wall_s / b->calib_wall_s, sp_total = a->wall_s / b->wall_s;
    double share_calib = b->cpu_coord_calib_s / (b->cpu_coord_calib_s + b->cpu_workers_s);
    double share_total = b->cpu_coord_s / (b->cpu_coord_s + b->cpu_workers_s);
    if (json) {
        printf("{\"blocks\": %d, \"dim\": %d, \"epochs\": %d, \"runs\": [", L, D, E);
        for (int i = 0; i < 2; i++) {
            const CoordReport *r = &runs[i].r;
            printf("%s{\"workers\": %d, \"wall_s\": %.3f, \"calib_wall_s\": %.3f, \"merge_wall_s\": %.3f, "
                   "\"cpu_coordinator_s\": %.3f, \"cpu_coordinator_calib_s\": %.3f, \"cpu_workers_s\": %.3f}",
                   i ? ", " : "", runs[i].workers, r->wall_s, r->calib_wall_s, r->merge_wall_s,
                   r->cpu_coord_s, r->cpu_coord_calib_s, r->cpu_workers_s);
        }
        printf("], \"speedup_calibration\": %.3f, \"speedup_total\": %.3f, "
               "\"coordinator_cpu_share_calibration\": %.4f, "
               "\"coordinator_cpu_share_total\": %.4f}\n",
               sp_calib, sp_total, share_calib, share_total);
    } else {
        printf("%-8s %10s %12s %10s %14s %12s\n", "workers", "wall s", "calib wall s", "merge s",
               "coordinator CPU", "workers CPU");
        for (int i = 0; i < 2; i++) {
            const CoordReport *r = &runs[i].r;
            printf("%-8d %10.2f %12.2f %10.2f %14.2f %12.2f\n", runs[i].workers, r->wall_s, r->calib_wall_s,
                   r->merge_wall_s, r->cpu_coord_s, r->cpu_workers_s);
        }
        printf("speedup 2 vs 1 worker: %.2fx calibration phase, %.2fx whole job (goal >= 1.8)\n", sp_calib,
               sp_total);
        printf("coordinator share of CPU (2 workers): %.2f%% calibration phase, %.2f%% whole job with the "
               "merge (goal < 2%%)\n",
               100 * share_calib, 100 * share_total);
    }
    return 0;
}
