/* cmd_eval.c — `quept eval`: perplexity, and KLD / top-1 vs a reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/paths.h"
#include "cli.h"
#include "artifact/elastic.h"
#include "artifact/mixed.h"
#include "eval/evaluate.h"
#include "eval/kld_base.h"

static const char *HELP = "usage: quept eval --model M --data F [--reference R] [--json] [options]\n"
                          "       quept eval --artifact A --bits B|all --data F --reference R [--json]\n"
                          "       quept eval --artifact A --avg-bits X --data F --reference R [--json]\n"
                          "\n"
                          "Perplexity of model M on the token sequences in F; with a reference model R,\n"
                          "also the per-token KL divergence KL(R || M) of the next-token distributions\n"
                          "(mean and 99th percentile) and the share of positions with the same top-1.\n"
                          "\n"
                          "  --model M        llama2.c checkpoint (.bin) or Hugging Face directory\n"
                          "  --data F         QTOK token file, or UTF-8 text / JSONL (told by content; a\n"
                          "                   .jsonl name is JSONL): tokenized with BOS and cut into\n"
                          "                   consecutive non-overlapping windows of --seq-len tokens\n"
                          "  --reference R    reference model (same vocabulary)\n"
                          "  --artifact A     evaluate an elastic artifact switched to --bits\n"
                          "  --bits B         one width for every block (2..8), a comma list with one\n"
                          "                   width per block, or 'all' (one row per width)\n"
                          "  --act-bits A     the activation width the artifact pairs with --bits\n"
                          "                   (calibrate --act-bits): a width it was not calibrated\n"
                          "                   for is refused; 16 evaluates the weights alone, without\n"
                          "                   activation quantization. Default: the artifact's pairs\n"
                          "                   (none for a weight-only artifact)\n"
                          "  --avg-bits X     mixed precision: one width per block from the artifact's\n"
                          "                   bit list, least total sensitivity (the artifact's KLD\n"
                          "                   table; the calibration-loss proxy if it has none) with a\n"
                          "                   parameter-weighted average of exactly X bits (else the\n"
                          "                   closest below); X in [min bit, max bit]. Prints the\n"
                          "                   widths, the average and the true bits per weight (fp16\n"
                          "                   scale + zero per group included), then the metrics\n"
                          "  --proxy          with --avg-bits: use the calibration-loss proxy even if\n"
                          "                   the artifact has a sensitivity table\n"
                          "  --tokenizer TOK  text data: tokenizer.json or llama2.c tokenizer.bin (told\n"
                          "                   by content); default: the tokenizer.json of a Hugging\n"
                          "                   Face --model directory\n"
                          "  --seq-len T      sequence length when tokenizing text (default 256);\n"
                          "                   for a token file it must match the file's\n"
                          "  --max-seqs N     evaluate at most N sequences (default: all)\n"
                          "  --batch B        sequences per forward pass (default 8)\n"
                          "  --json           print one JSON object: ppl, nll, kld_mean, kld_p99,\n"
                          "                   top1_agree (a fraction), tokens; with --avg-bits also\n"
                          "                   bits (array), avg_bits, bits_per_weight, cost_measure\n"
                          "\n"
                          "Side by side with llama.cpp's llama-perplexity (each sequence one chunk):\n"
                          "  --score llama    score as llama-perplexity does: the first token of each\n"
                          "                   sequence replaced by BOS, only the second half scored\n"
                          "                   (default: all, every next-token prediction)\n"
                          "  --bos-id N       the BOS id for --score llama and the base files\n"
                          "                   (default 1, llama2.c and Llama 2)\n"
                          "  --kld-base-out F write the model's log probabilities on --data as\n"
                          "                   llama-perplexity's KL-divergence base file (read it with\n"
                          "                   llama-perplexity --kl-divergence --kl-divergence-base F);\n"
                          "                   with --artifact, one --bits width\n"
                          "  --kld-base F     compare with a base file (llama-perplexity\n"
                          "                   --kl-divergence-base F, or --kld-base-out): on the\n"
                          "                   file's own tokens (no --data), prints ppl, ppl_base,\n"
                          "                   KL(base || model) mean and p99, top-1 agreement and the\n"
                          "                   RMS of p(next) - p_base(next), as llama-perplexity does\n";

/* The llama-perplexity side of eval: scoring, BOS, base files. */
typedef struct {
    EvalOptions eo;
    const char *kld_base, *kld_base_out;
} EvalLlama;

static void json_num(FILE *f, const char *key, double v, int last) {
    if (isfinite(v))
        fprintf(f, "\"%s\": %.9g%s", key, v, last ? "" : ", ");
    else
        fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
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

static void print_kld_base_result(const KldBaseResult *r, int json) {
    if (json) {
        printf("{");
        json_num(stdout, "ppl", r->ppl, 0);
        json_num(stdout, "ppl_base", r->ppl_base, 0);
        json_num(stdout, "kld_mean", r->kld_mean, 0);
        json_num(stdout, "kld_p99", r->kld_p99, 0);
        json_num(stdout, "top1_agree", r->top1_agree, 0);
        json_num(stdout, "p_diff_rms", r->p_diff_rms, 0);
        printf("\"positions\": %ld}\n", r->positions);
        return;
    }
    printf("positions   %ld (%d chunks of %d, second halves)\n", r->positions, r->n_chunk, r->n_ctx);
    printf("ppl         %.4f\n", r->ppl);
    printf("ppl_base    %.4f\n", r->ppl_base);
    printf("kld_mean    %.6f\n", r->kld_mean);
    printf("kld_p99     %.6f\n", r->kld_p99);
    printf("top1_agree  %.4f\n", r->top1_agree);
    printf("rms_dp      %.4f\n", r->p_diff_rms);
}

/* One model against the llama-perplexity side: compare with a base file, or
 * write one (then the llama-scored perplexity too). 0 or -1 with err. */
static int eval_llama_side(const Model *m, const EvalLlama *el, const TokenSet *ts, int batch, int json,
                           QErr *err) {
    if (el->kld_base) {
        KldBaseResult r;
        if (kld_base_compare(el->kld_base, m, batch, el->eo.bos_id, &r, err) != 0) return -1;
        print_kld_base_result(&r, json);
        return 0;
    }
    if (kld_base_write(el->kld_base_out, m, ts, batch, el->eo.bos_id, err) != 0) return -1;
    EvalResult r;
    if (evaluate_model(m, NULL, ts, batch, &el->eo, &r, err) != 0) return -1;
    log_info("eval: wrote %s (%d chunks of %d tokens)", el->kld_base_out, ts->n_seq, ts->seq_len);
    print_eval_result(&r, json);
    return 0;
}

/* --avg-bits: the DP's assignment, printed before the metrics. */
static int assign_mixed(const ElasticModel *em, double avg, int proxy, int *bits, int json, QErr *err) {
    int use_proxy = proxy || !em->sens;
    if (!em->sens && !proxy)
        log_warn("eval: the artifact has no sensitivity table: assigning bits by the calibration-loss proxy");
    double achieved;
    if (mixed_assign_bits(em, avg, use_proxy, bits, &achieved, err) != 0) return -1;
    double bpw = true_bits_per_weight(em, bits);
    int L = em->cfg.n_layers;
    const char *measure = use_proxy ? "proxy" : em->sens_measure;
    if (json) {
        printf("{\"bits\": [");
        for (int j = 0; j < L; j++) printf("%s%d", j ? ", " : "", bits[j]);
        printf("], \"avg_bits\": %.9g, \"bits_per_weight\": %.9g, \"cost_measure\": \"%s\", ", achieved, bpw,
               measure);
        return 0;
    }
    printf("target      %g bits (cost: %s)\n", avg, use_proxy ? "calibration-loss proxy" : measure);
    printf("bits       ");
    for (int j = 0; j < L; j++) printf(" %d", bits[j]);
    printf("\n");
    if (achieved < avg - 1e-9)
        printf("avg_bits    %.4f (%g is not reachable: closest below)\n", achieved, avg);
    else
        printf("avg_bits    %.4f\n", achieved);
    printf("bits/weight %.4f (%s)\n", bpw,
           em->qc.format == QFORMAT_GGUF ? "the GGUF blocks of the linears, as the file stores them"
                                         : "with an fp16 scale + zero per group");
    return 0;
}

/* "W4A4", "W8A16" ... for the widths of bits (one per block; a range of
 * blocks at one pair reads as that pair) */
static void pair_str(const ElasticModel *em, const Model *q, const int *bits, char *buf, size_t n) {
    int L = em->cfg.n_layers, uniform = 1, len = 0;
    for (int j = 1; j < L; j++)
        uniform = uniform && bits[j] == bits[0] && q->blocks[j].act_bits == q->blocks[0].act_bits;
    for (int j = 0; j < (uniform ? 1 : L) && len < (int)n; j++)
        len += snprintf(buf + len, n - (size_t)len, "%sW%dA%d", j ? " " : "", bits[j],
                        q->blocks[j].act_bits ? q->blocks[j].act_bits : 16);
}

/* --act-bits on a switched model: the artifact's pair must be act (16:
 * drop activation quantization, always possible). */
static int apply_act_bits(const ElasticModel *em, Model *q, const int *bits, int act, QErr *err) {
    const QuantConfig *qc = &em->qc;
    for (int j = 0; j < em->cfg.n_layers; j++) {
        if (act == 16) {
            q->blocks[j].act_bits = 0;
            continue;
        }
        if (q->blocks[j].act_bits == act) continue;
        char pairs[160];
        int len = 0;
        for (int bi = 0; bi < qc->n_bits && len < (int)sizeof pairs; bi++)
            len += snprintf(pairs + len, sizeof pairs - (size_t)len, "%sW%dA%d", bi ? ", " : "", qc->bits[bi],
                            qc->act_bits[bi] ? qc->act_bits[bi] : 16);
        if (!quant_has_act(qc))
            return qerr_set(err,
                            "--act-bits %d: the artifact was calibrated weight-only (no activation widths; "
                            "calibrate with --act-bits); --act-bits 16 or none evaluates it",
                            act);
        char had[32];
        if (q->blocks[j].act_bits)
            snprintf(had, sizeof had, "%d-bit", q->blocks[j].act_bits);
        else
            snprintf(had, sizeof had, "full-precision");
        return qerr_set(
            err,
            "--act-bits %d: the artifact was not calibrated for it: block %d's %d-bit weights were "
            "calibrated with %s activations (its pairs: %s; 16 evaluates without activation "
            "quantization)",
            act, j, bits[j], had, pairs);
    }
    return 0;
}

static int eval_artifact(const char *art, const char *bits_arg, int act_arg, double avg_bits, int proxy,
                         const char *data, const char *tok, const char *ref_path, int seq_len, int max_seqs,
                         int batch, int json, const EvalLlama *el) {
    const EvalOptions eo = el->eo;
    const int llama_side = el->kld_base || el->kld_base_out;
    QErr err = {{0}};
    ElasticModel em;
    if (elastic_load(&em, art, &err) != 0) {
        log_error("eval: %s", err.msg);
        return 1;
    }
    int L = em.cfg.n_layers, all;
    int *bits = calloc((size_t)L, sizeof(int));
    TokenSet ts = {0};
    Model ref = {0}, q = {0};
    int rc = bits ? 0 : qerr_set(&err, "out of memory");
    int mixed = avg_bits >= 0.0;
    all = !mixed && (!bits_arg || strcmp(bits_arg, "all") == 0);
    if (rc == 0 && !mixed && !all) rc = cli_parse_block_bits(bits_arg, em.cfg.n_layers, bits, &err);
    if (rc == 0 && data) rc = tokens_load_any(data, tok, seq_len, max_seqs, &ts, &err);
    if (rc == 0 && ref_path) rc = model_load(&ref, ref_path, &err);
    if (rc == 0 && mixed) rc = assign_mixed(&em, avg_bits, proxy, bits, json, &err);
    int n_rows = all ? em.qc.n_bits : 1;
    if (json && all && rc == 0) printf("[");
    for (int row = 0; rc == 0 && row < n_rows; row++) {
        if (all)
            for (int j = 0; j < L; j++) bits[j] = em.qc.bits[row];
        rc = elastic_switch(&em, bits, &q, &err);
        if (rc == 0 && act_arg) rc = apply_act_bits(&em, &q, bits, act_arg, &err);
        if (rc) break;
        if (quant_has_act(&em.qc) || act_arg) {
            char pairs[512];
            pair_str(&em, &q, bits, pairs, sizeof pairs);
            log_info("eval: %s (activations quantized per token where A < 16)", pairs);
        }
        /* embeddings and head are shared with the artifact's base (not quantized) */
        q.tok_emb = em.base.tok_emb;
        q.final_norm = em.base.final_norm;
        q.classifier = em.base.classifier;
        if (llama_side) {
            if (all && !json) printf("%sbits %d\n", row ? "\n" : "", bits[0]);
            rc = eval_llama_side(&q, el, &ts, batch, json, &err);
            continue;
        }
        EvalResult r;
        rc = evaluate_model(&q, ref_path ? &ref : NULL, &ts, batch, &eo, &r, &err);
        if (rc) break;
        if (all && !json) {
            /* one table row per bit width */
            if (row == 0)
                printf("%-6s %5s %10s %10s %10s %8s\n", "method", "bits", "ppl", "kld_mean", "kld_p99",
                       "top1");
            printf("%-6s %5d %10.3f %10.4f %10.3f %8.4f\n", quant_method_name(em.qc.method), bits[0], r.ppl,
                   r.kld_mean, r.kld_p99, r.top1_agree);
            continue;
        }
        if (json && all) {
            printf("%s{\"bits\": %d, \"method\": \"%s\", \"result\": ", row ? ", " : "", bits[0],
                   quant_method_name(em.qc.method));
            fflush(stdout);
        }
        if (mixed && json) {
            /* the object opened by assign_mixed: continue it with the metrics */
            json_num(stdout, "ppl", r.ppl, 0);
            json_num(stdout, "nll", r.nll_mean, 0);
            json_num(stdout, "kld_mean", r.kld_mean, 0);
            json_num(stdout, "kld_p99", r.kld_p99, 0);
            json_num(stdout, "top1_agree", r.top1_agree, 0);
            printf("\"tokens\": %ld}\n", r.tokens);
            continue;
        }
        print_eval_result(&r, json);
        if (json && all) printf("}");
    }
    if (json && all && rc == 0) printf("]\n");
    if (rc) log_error("eval: %s", err.msg);
    q.tok_emb = q.final_norm = q.classifier = NULL;
    model_free(&q);
    model_free(&ref);
    tokens_free(&ts);
    free(bits);
    elastic_free(&em);
    return rc == 0 ? 0 : 1;
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"model", 1, 0},    {"data", 1, 0},     {"reference", 1, 0}, {"tokenizer", 1, 0},
                  {"seq-len", 1, 0},  {"max-seqs", 1, 0}, {"batch", 1, 0},     {"json", 0, 0},
                  {"artifact", 1, 0}, {"bits", 1, 0},     {"avg-bits", 1, 0},  {"proxy", 0, 0},
                  {"score", 1, 0},    {"bos-id", 1, 0},   {"kld-base", 1, 0},  {"kld-base-out", 1, 0},
                  {"act-bits", 1, 0}};
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
    const char *art = cli_get(o, no, "artifact");
    EvalLlama el = {.eo = {.scoring = EVAL_SCORE_ALL},
                    .kld_base = cli_get(o, no, "kld-base"),
                    .kld_base_out = cli_get(o, no, "kld-base-out")};
    const char *score = cli_get(o, no, "score");
    if (cli_get_int(o, no, "bos-id", 1, 0, 1 << 30, &el.eo.bos_id, &err) != 0) {
        log_error("eval: %s", err.msg);
        return 2;
    }
    if (score && strcmp(score, "llama") == 0)
        el.eo.scoring = EVAL_SCORE_LLAMA;
    else if (score && strcmp(score, "all") != 0) {
        log_error("eval: --score must be all or llama, not '%s'", score);
        return 2;
    }
    if ((!model_path && !art) || (model_path && art) || (!data && !el.kld_base)) {
        log_error("eval: --data and exactly one of --model / --artifact are required (see --help)");
        return 2;
    }
    if (el.kld_base && (data || ref_path || el.kld_base_out || score)) {
        log_error("eval: --kld-base compares on the file's own tokens with llama-perplexity's scoring: drop "
                  "--data, --reference, --kld-base-out and --score");
        return 2;
    }
    if ((el.kld_base || el.kld_base_out) && cli_get(o, no, "avg-bits") && cli_get(o, no, "json")) {
        log_error("eval: --json with --avg-bits and a base file is not supported: drop --json");
        return 2;
    }
    if (el.kld_base_out) {
        if (ref_path || (score && el.eo.scoring != EVAL_SCORE_LLAMA)) {
            log_error(
                "eval: --kld-base-out writes the model's own log probabilities, scored as llama-perplexity "
                "does: drop --reference and --score");
            return 2;
        }
        if (art && (!cli_get(o, no, "bits") || strcmp(cli_get(o, no, "bits"), "all") == 0)) {
            log_error("eval: --kld-base-out with --artifact needs one --bits width (or a list per block)");
            return 2;
        }
        PathArg inputs[] = {{"--model", model_path}, {"--artifact", art}, {"--data", data}};
        if (paths_check_output((PathArg){"--kld-base-out", el.kld_base_out}, 0, inputs, 3, &err) != 0) {
            log_error("eval: %s", err.msg);
            return 2;
        }
        el.eo.scoring = EVAL_SCORE_LLAMA;
    }
    int act_bits = 0;
    if (cli_get(o, no, "act-bits")) {
        const char *a = cli_get(o, no, "act-bits");
        if (!art) {
            log_error("eval: --act-bits needs --artifact (a model evaluates as it is)");
            return 2;
        }
        if (cli_get_int(o, no, "act-bits", 0, QBITS_MIN, 16, &act_bits, &err) != 0 ||
            (act_bits > QBITS_MAX && act_bits != 16)) {
            log_error("eval: --act-bits: expected one width in 2..8, or 16 for none, got '%s'", a);
            return 2;
        }
    }
    double avg_bits = -1.0;
    if (cli_get(o, no, "avg-bits")) {
        if (!art || cli_get(o, no, "bits")) {
            log_error("eval: --avg-bits needs --artifact and excludes --bits");
            return 2;
        }
        if (cli_get_float(o, no, "avg-bits", -1.0, QBITS_MIN, QBITS_MAX, &avg_bits, &err)) {
            log_error("eval: %s", err.msg);
            return 2;
        }
    } else if (cli_get(o, no, "proxy")) {
        log_error("eval: --proxy only goes with --avg-bits");
        return 2;
    }
    /* text data: --tokenizer, else the model directory's tokenizer.json */
    const char *tok = cli_get(o, no, "tokenizer");
    struct stat st;
    if (!tok && model_path && stat(model_path, &st) == 0 && S_ISDIR(st.st_mode)) tok = model_path;
    /* a token file carries its own sequence length; text is cut into 256 by default */
    if (seq_len == 0 && tok && data && tokens_is_qtok(data, &err) == 0) seq_len = 256;
    if (art)
        return eval_artifact(art, cli_get(o, no, "bits"), act_bits, avg_bits, cli_get(o, no, "proxy") != NULL,
                             data, tok, ref_path, seq_len, max_seqs, batch, cli_get(o, no, "json") != NULL,
                             &el);
    TokenSet ts = {0};
    if (data && tokens_load_any(data, tok, seq_len, max_seqs, &ts, &err) != 0) {
        log_error("eval: %s", err.msg);
        return 1;
    }
    Model m = {0}, ref = {0}; /* model_free is safe on a zeroed or failed model */
    int rc = model_load(&m, model_path, &err);
    if (rc == 0 && ref_path) rc = model_load(&ref, ref_path, &err);
    int have_ref = rc == 0 && ref_path;
    EvalResult r;
    const int json = cli_get(o, no, "json") != NULL;
    if (rc == 0 && (el.kld_base || el.kld_base_out))
        rc = eval_llama_side(&m, &el, &ts, batch, json, &err);
    else if (rc == 0)
        rc = evaluate_model(&m, have_ref ? &ref : NULL, &ts, batch, &el.eo, &r, &err);
    if (rc == 0 && !el.kld_base && !el.kld_base_out) print_eval_result(&r, json);
    if (rc) log_error("eval: %s", err.msg);
    model_free(&ref);
    model_free(&m);
    tokens_free(&ts);
    return rc == 0 ? 0 : 1;
}
