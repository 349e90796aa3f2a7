/* cmd_eval.c — `quept eval`: perplexity, and KLD / top-1 vs a reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "cli.h"
#include "eval/evaluate.h"

static const char *HELP =
    "usage: quept eval --model M --data F [--reference R] [--json] [options]\n"
    "\n"
    "Perplexity of model M on the token sequences in F; with a reference model R,\n"
    "also the per-token KL divergence KL(R || M) of the next-token distributions\n"
    "(mean and 99th percentile) and the share of positions with the same top-1.\n"
    "\n"
    "  --model M        llama2.c checkpoint (.bin) or Hugging Face directory\n"
    "  --data F         QTOK token file, or a text file with --tokenizer\n"
    "  --reference R    reference model (same vocabulary)\n"
    "  --tokenizer TOK  llama2.c tokenizer.bin, to evaluate a text file\n"
    "  --seq-len T      sequence length when tokenizing text (default 256);\n"
    "                   for a token file it must match the file's\n"
    "  --max-seqs N     evaluate at most N sequences (default: all)\n"
    "  --batch B        sequences per forward pass (default 8)\n"
    "  --json           print one JSON object: ppl, nll, kld_mean, kld_p99,\n"
    "                   top1_agree (a fraction), tokens\n";

static void json_num(FILE *f, const char *key, double v, int last) {
    if (isfinite(v)) fprintf(f, "\"%s\": %.9g%s", key, v, last ? "" : ", ");
    else fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

void print_eval_result(const EvalResult *r, int json) {
    if (json) {
        printf("{");
        json_num(stdout, "ppl", r->ppl, 0);
        json_num(stdout, "nll", r->nll_mean, 0);
        json_num(stdout, "kld_mean", r->kld_mean, 0);
        json_num(stdout, "kld_p99", r->kld_p99, 0);
        json_num(stdout, "top1_agree", r->top1_agree, 0);
        printf("\"tokens\": %ld}\n", r->tokens);
        return;
    }
    printf("tokens      %ld\n", r->tokens);
    printf("ppl         %.4f\n", r->ppl);
    if (isfinite(r->kld_mean)) {
        printf("kld_mean    %.6f\n", r->kld_mean);
        printf("kld_p99     %.6f\n", r->kld_p99);
        printf("top1_agree  %.4f\n", r->top1_agree);
    }
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"model", 1, 0},   {"data", 1, 0},     {"reference", 1, 0},
                  {"tokenizer", 1, 0}, {"seq-len", 1, 0}, {"max-seqs", 1, 0},
                  {"batch", 1, 0},   {"json", 0, 0}};
    int no = sizeof o / sizeof o[0], npos;
    const char *pos[1];
    QErr err = {{0}};
    int seq_len, max_seqs, batch;
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "seq-len", 0, 2, 1 << 20, &seq_len, &err) ||
        cli_get_int(o, no, "max-seqs", 0, 0, 1 << 30, &max_seqs, &err) ||
        cli_get_int(o, no, "batch", 8, 1, 4096, &batch, &err)) {
        log_error("eval: %s", err.msg);
        return 2;
    }
    const char *model_path = cli_get(o, no, "model"), *data = cli_get(o, no, "data");
    const char *ref_path = cli_get(o, no, "reference");
    if (!model_path || !data) {
        log_error("eval: --model and --data are required (see --help)");
        return 2;
    }
    /* a token file carries its own sequence length; text is cut into 256 by default */
    if (seq_len == 0 && cli_get(o, no, "tokenizer")) seq_len = 256;
    TokenSet ts;
    if (tokens_load_any(data, cli_get(o, no, "tokenizer"), seq_len, max_seqs, &ts, &err) != 0) {
        log_error("eval: %s", err.msg);
        return 1;
    }
    Model m = {0}, ref = {0}; /* model_free is safe on a zeroed or failed model */
    int rc = model_load(&m, model_path, &err);
    if (rc == 0 && ref_path) rc = model_load(&ref, ref_path, &err);
    int have_ref = rc == 0 && ref_path;
    EvalResult r;
    if (rc == 0) rc = evaluate_model(&m, have_ref ? &ref : NULL, &ts, batch, &r, &err);
    if (rc == 0) print_eval_result(&r, cli_get(o, no, "json") != NULL);
    else log_error("eval: %s", err.msg);
    model_free(&ref);
    model_free(&m);
    tokens_free(&ts);
    return rc == 0 ? 0 : 1;
}
