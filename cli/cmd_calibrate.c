/* cmd_calibrate.c — `quept calibrate`: one elastic artifact for every bit width. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli.h"
#include "calib_flags.h"
#include "dist_cmds.h"
#include "pipeline/calibrate.h"

static const char *HELP = "usage: quept calibrate --model M --data F --out A [options]\n"
                          "\n"
                          "Calibrates one elastic artifact A for every bit width in --bits, block by\n"
                          "block (QuEPT: learnable clipping per bit, cascaded low-rank adapters,\n"
                          "multi-bit objective), or a baseline with the same grid and groups.\n"
                          "\n"
                          "  --model M           llama2.c checkpoint or Hugging Face directory\n"
                          "  --data F            QTOK calibration sequences (quept sample makes them)\n"
                          "  --out A             artifact path (written to a temp file, fsynced, renamed)\n"
                          "  --workers N         local multi-process mode: a coordinator and N worker\n"
                          "                      processes on this machine (quept method); the cores\n"
                          "                      are split between them; resumable from --checkpoint\n"
                          "  --checkpoint DIR    journal of a --workers run (default: A.ckpt)\n"
                          "  --shards K          contiguous block shards (default: one per worker)\n"
                          "  --threads-per-worker T  OpenBLAS threads per worker (default: cores / N)\n"
                          "  --keep-checkpoint   keep the journal's inputs and blocks after success\n"
                          "  --help-markdown     print the calibration flags as a Markdown table (how\n"
                          "                      docs/calibration-flags.md is made)\n"
                          "\n"
                          "calibration flags:\n";

int cmd_calibrate(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help-markdown") == 0) {
            calib_flags_markdown(stdout);
            return 0;
        }
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        calib_flags_help(stdout);
        return 0;
    }
    CliOpt o[16 + CALIB_MAX_OPTS] = {
        {"model", 1, 0},          {"data", 1, 0},       {"out", 1, 0},    {"quiet", 0, 0},
        {"workers", 1, 0},        {"checkpoint", 1, 0}, {"shards", 1, 0}, {"threads-per-worker", 1, 0},
        {"keep-checkpoint", 0, 0}};
    int no = calib_opts_add(o, 9), npos;
    const char *pos[1];
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) != 0) {
        log_error("calibrate: %s", err.msg);
        return 2;
    }
    QuantConfig qc;
    int max_seqs = 0, workers = 0;
    if (calib_opts_config(o, no, &qc, &max_seqs, &err) != 0 ||
        cli_get_int(o, no, "workers", 0, 1, COORD_MAX_LOCAL, &workers, &err) != 0) {
        log_error("calibrate: %s", err.msg);
        return 2;
    }
    CalibJob job = {cli_get(o, no, "model"), cli_get(o, no, "data"), cli_get(o, no, "out"), max_seqs,
                    cli_get(o, no, "quiet") != NULL};
    if (!job.model_path || !job.data_path || !job.out_path) {
        log_error("calibrate: --model, --data and --out are required (see --help)");
        return 2;
    }
    if (workers > 0) return calibrate_local(o, no, &qc, max_seqs, workers);
    if (cli_check_job_paths(job.model_path, job.data_path, job.out_path, NULL, &err) != 0) {
        log_error("calibrate: %s", err.msg);
        return 2;
    }
    if (calibrate_run(&job, &qc, &err) != 0) {
        log_error("calibrate: %s", err.msg);
        return 1;
    }
    log_info("wrote %s (%s%s%s, bits %d-%d)", job.out_path, quant_method_name(qc.method),
             qc.teq ? " + TEQ " : "", qc.teq ? quant_teq_name(qc.teq) : "", qc.bits[0],
             qc.bits[qc.n_bits - 1]);
    return 0;
}
