/* cmd_bench.c — `quept bench <what>`: figures measured against this machine's
 * own OpenBLAS sgemm in the same run (ratios, never thresholds). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "bench_switch.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "nn/forward.h"

static const char *HELP = "usage: quept bench forward [--model M] [--json] [--seconds S]\n"
                          "       quept bench recon [--json] [--steps N] [--seconds S]\n"
                          "       quept bench switch [--json] (see quept bench switch --help)\n"
                          "       quept bench distributed [--json] (see quept bench distributed --help)\n"
                          "       quept bench pot [--json] (see quept bench pot --help)\n"
                          "\n"
                          "forward: tokens/s and achieved GFLOP/s of the full-precision forward pass on\n"
                          "  model M (default ../shared/models/stories260K.bin, B=8 x T=256) and on a\n"
                          "  synthetic stack of two 1B-class blocks (hidden 2048, FFN 5632, 32 heads,\n"
                          "  4 KV heads, T=512), next to OpenBLAS sgemm GFLOP/s measured in this run.\n"
                          "  --seconds S: minimum time per measurement (default 2)\n"
                          "recon: seconds per QuEPT training step (bits 2,4,6,8, forward + backward of\n"
                          "  each, two AdamW steps) on a synthetic 1B-class block (B=2 x T=512), its\n"
                          "  GFLOP/s and ratio to OpenBLAS sgemm measured in this run, the OpenBLAS\n"
                          "  thread count, and peak RSS next to the analytic minimum.\n"
                          "  --steps N: timed steps after one warm-up (default 3)\n";

typedef struct {
    const char *name;
    int B, T;
    double seconds_per_pass, tokens_per_s, gflops;
} FwdFigure;

/* Times full-model forward passes for at least min_s seconds. */
static void time_model_forward(const Model *m, int B, int T, double min_s, FwdFigure *f, QErr *err, int *rc) {
    ForwardState fs;
    *rc = forward_state_init(&fs, &m->cfg, B, T, err);
    if (*rc) return;
    int *tok = malloc(sizeof(int) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (i * 7919 + 13) % m->cfg.vocab_size;
    model_forward(m, &fs, tok); /* warm-up */
    int reps = 0;
    double t0 = now_seconds(), t;
    do {
        model_forward(m, &fs, tok);
        reps++;
        t = now_seconds() - t0;
    } while (t < min_s);
    double flops = m->cfg.n_layers * block_forward_flops(&m->cfg, B, T) + head_forward_flops(&m->cfg, B * T);
    f->B = B;
    f->T = T;
    f->seconds_per_pass = t / reps;
    f->tokens_per_s = (double)B * T / f->seconds_per_pass;
    f->gflops = flops / f->seconds_per_pass / 1e9;
    free(tok);
    forward_state_free(&fs);
}

/* Two 1B-class blocks (no embedding / head: the blocks are what we quantize). */
static int time_synthetic_blocks(double min_s, FwdFigure *f, QErr *err) {
    ModelConfig c = bench_1b_config(2, 32, 1);
    Model m;
    if (model_init_random(&m, &c, 42, err) != 0) return -1;
    int B = 1, T = 512;
    BlockActs a;
    if (block_acts_init(&a, &c, B, T, 0, err) != 0) {
        model_free(&m);
        return -1;
    }
    float *x = malloc(sizeof(float) * (size_t)B * T * c.dim);
    float *y = malloc(sizeof(float) * (size_t)B * T * c.dim);
    for (size_t i = 0; i < (size_t)B * T * c.dim; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    block_forward(&c, &m.blocks[0], &a, x, y);
    int reps = 0;
    double t0 = now_seconds(), t;
    do {
        block_forward(&c, &m.blocks[0], &a, x, y);
        block_forward(&c, &m.blocks[1], &a, y, x);
        reps++;
        t = now_seconds() - t0;
    } while (t < min_s);
    f->name = "synthetic-1B-2blocks";
    f->B = B;
    f->T = T;
    f->seconds_per_pass = t / reps;
    f->tokens_per_s = (double)B * T / f->seconds_per_pass;
    f->gflops = 2 * block_forward_flops(&c, B, T) / f->seconds_per_pass / 1e9;
    free(x);
    free(y);
    block_acts_free(&a);
    model_free(&m);
    return 0;
}

static int bench_forward(int argc, char **argv) {
    CliOpt o[] = {{"model", 1, 0}, {"json", 0, 0}, {"seconds", 1, 0}};
    int no = 3, npos;
    const char *pos[1];
    QErr err = {{0}};
    double secs;
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_float(o, no, "seconds", 2.0, 0.01, 600.0, &secs, &err)) {
        log_error("bench forward: %s", err.msg);
        return 2;
    }
    int json = cli_get(o, no, "json") != NULL;
    const char *model_path = cli_get(o, no, "model");
    char def[1024];
    if (!model_path) {
        snprintf(def, sizeof def, "%s", "../shared/models/stories260K.bin");
        model_path = def;
    }
    FwdFigure figs[2];
    int nf = 0;
    if (!json) fprintf(stderr, "measuring OpenBLAS sgemm (512x2048x2048)...\n");
    double sgemm = bench_sgemm_gflops(512, 2048, 2048, secs);
    if (access(model_path, R_OK) == 0) {
        Model m;
        int rc;
        if (model_load(&m, model_path, &err) != 0) {
            log_error("bench forward: %s", err.msg);
            return 1;
        }
        figs[nf].name = model_path;
        time_model_forward(&m, 8, m.cfg.seq_len < 256 ? m.cfg.seq_len : 256, secs, &figs[nf], &err, &rc);
        model_free(&m);
        if (rc) {
            log_error("bench forward: %s", err.msg);
            return 1;
        }
        nf++;
    } else {
        log_warn("bench forward: %s not found, skipping the real-model figure", model_path);
    }
    if (time_synthetic_blocks(secs, &figs[nf], &err) != 0) {
        log_error("bench forward: %s", err.msg);
        return 1;
    }
    nf++;
    if (json) {
        printf("{\"sgemm_gflops\": %.3f, \"runs\": [", sgemm);
        for (int i = 0; i < nf; i++)
            printf("%s{\"name\": \"%s\", \"B\": %d, \"T\": %d, \"seconds_per_pass\": %.6f, "
                   "\"tokens_per_s\": %.1f, \"gflops\": %.3f, \"ratio_to_sgemm\": %.4f}",
                   i ? ", " : "", figs[i].name, figs[i].B, figs[i].T, figs[i].seconds_per_pass,
                   figs[i].tokens_per_s, figs[i].gflops, figs[i].gflops / sgemm);
        printf("]}\n");
    } else {
        printf("OpenBLAS sgemm (512x2048x2048): %.1f GFLOP/s\n", sgemm);
        printf("%-40s %6s %6s %12s %10s %8s\n", "forward", "B", "T", "tokens/s", "GFLOP/s", "ratio");
        for (int i = 0; i < nf; i++)
            printf("%-40s %6d %6d %12.0f %10.2f %8.3f\n", figs[i].name, figs[i].B, figs[i].T,
                   figs[i].tokens_per_s, figs[i].gflops, figs[i].gflops / sgemm);
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(HELP, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (strcmp(argv[0], "forward") == 0) {
        if (cli_wants_help(argc - 1, argv + 1)) {
            fputs(HELP, stdout);
            return 0;
        }
        return bench_forward(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "recon") == 0) {
        if (cli_wants_help(argc - 1, argv + 1)) {
            fputs(HELP, stdout);
            return 0;
        }
        return bench_recon(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "switch") == 0) return bench_switch_main(argc - 1, argv + 1);
    if (strcmp(argv[0], "distributed") == 0) return bench_distributed(argc - 1, argv + 1);
    if (strcmp(argv[0], "pot") == 0) return bench_pot(argc - 1, argv + 1);
    log_error("bench: unknown benchmark '%s' (forward, recon, switch, distributed, pot)", argv[0]);
    return 2;
}
