/* cmd_calibrate.c — `quept calibrate`: one elastic artifact for every bit width. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/paths.h"
#include "cli.h"
#include "data/text_data.h"
#include "model/model.h"
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
                          "  --data F            QTOK calibration sequences (quept sample or tokenize make\n"
                          "                      them), or UTF-8 text / JSONL (told by content; then\n"
                          "                      --seq-len and --n-seq): K seeded random windows are\n"
                          "                      written to A.calib.qtok and calibrated on\n"
                          "  --tokenizer T       text data: tokenizer.json or tokenizer.bin (default: the\n"
                          "                      tokenizer.json of a Hugging Face --model directory)\n"
                          "  --seq-len N         text data: tokens per window\n"
                          "  --n-seq K           text data: number of random windows\n"
                          "  --text-seed S       text data: seed of the window starts (default 0)\n"
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

/* Text data: K seeded random windows of the text, written to qtok (the
 * artifact path + ".calib.qtok"), which becomes the job's data file (its
 * hash is the provenance; --workers and eval can reuse it). */
static int text_to_qtok(const CliOpt *o, int no, const char *model, const char *text, const char *out,
                        char *qtok, size_t cap, QErr *err) {
    int seq_len, n_seq, seed;
    if (cli_get_int(o, no, "seq-len", 0, 2, 1 << 24, &seq_len, err) ||
        cli_get_int(o, no, "n-seq", 0, 1, 1 << 24, &n_seq, err) ||
        cli_get_int(o, no, "text-seed", 0, 0, 0x7fffffff, &seed, err))
        return -1;
    if (seq_len == 0 || n_seq == 0)
        return qerr_setc(err, QERR_USAGE,
                         "--data %s is text: --seq-len and --n-seq are needed to cut it into windows", text);
    if ((size_t)snprintf(qtok, cap, "%s.calib.qtok", out) >= cap)
        return qerr_setc(err, QERR_USAGE, "--out: too long");
    const char *tok_path = cli_get(o, no, "tokenizer");
    PathArg in[] = {{"--model", model}, {"--data", text}, {"--tokenizer", tok_path}};
    if (paths_check_output((PathArg){"the windows file", qtok}, 0, in, 3, err) != 0) return -1;
    ModelSource *src = NULL;
    if (model_source_open(&src, model, err) != 0) return -1;
    int vocab = model_source_config(src)->vocab_size;
    model_source_close(src);
    TextTokenizer *tok = NULL;
    if (ttok_open_for_model(&tok, model, tok_path, err) != 0) return -1;
    WindowSpec w = {seq_len, n_seq, 1, (uint64_t)seed};
    TokenSet ts = {0};
    int rc = text_load_tokens(text, TEXT_AUTO, tok, &w, &ts, err);
    ttok_free(tok);
    if (rc == 0)
        rc =
            tokens_check_vocab(&ts, vocab, "the tokenized text (does the tokenizer belong to --model?)", err);
    ts.vocab_size = vocab;
    if (rc == 0) rc = tokens_write(qtok, &ts, err);
    if (rc == 0)
        log_info("%d random windows of %d tokens of %s written to %s", ts.n_seq, ts.seq_len, text, qtok);
    tokens_free(&ts);
    return rc;
}

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
        {"model", 1, 0},           {"data", 1, 0},       {"out", 1, 0},     {"quiet", 0, 0},
        {"workers", 1, 0},         {"checkpoint", 1, 0}, {"shards", 1, 0},  {"threads-per-worker", 1, 0},
        {"keep-checkpoint", 0, 0}, {"tokenizer", 1, 0},  {"seq-len", 1, 0}, {"n-seq", 1, 0},
        {"text-seed", 1, 0}};
    int no = calib_opts_add(o, 13), npos;
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
    int q = tokens_is_qtok(job.data_path, &err);
    if (q < 0) {
        log_error("calibrate: --data: %s", err.msg);
        return 1;
    }
    char qtok[4096];
    if (q == 0) { /* text: cut into windows, which become the data */
        if (cli_check_job_paths(job.model_path, job.data_path, job.out_path, NULL, &err) != 0 ||
            text_to_qtok(o, no, job.model_path, job.data_path, job.out_path, qtok, sizeof qtok, &err) != 0) {
            log_error("calibrate: %s", err.msg);
            return err.code == QERR_USAGE ? 2 : 1;
        }
        job.data_path = qtok;
        for (int i = 0; i < no; i++)
            if (strcmp(o[i].name, "data") == 0) o[i].value = qtok; /* --workers reads it from the options */
    } else if (cli_get(o, no, "tokenizer") || cli_get(o, no, "seq-len") || cli_get(o, no, "n-seq") ||
               cli_get(o, no, "text-seed")) {
        log_error(
            "calibrate: --tokenizer, --seq-len, --n-seq and --text-seed are for text data; %s is a QTOK file",
            job.data_path);
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
    char widths[64];
    for (int bi = 0, n = 0; bi < qc.n_bits; bi++)
        n += snprintf(widths + n, sizeof widths - (size_t)n, "%s%d", bi ? "," : "", qc.bits[bi]);
    log_info("wrote %s (%s%s%s, %s codes, bits %s)", job.out_path, quant_method_name(qc.method),
             qc.teq ? " + TEQ " : "", qc.teq ? quant_teq_name(qc.teq) : "", quant_format_name(qc.format),
             widths);
    return 0;
}
