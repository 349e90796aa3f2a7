/* cmd_export.c — `quept export`: an elastic artifact switched to one width
 * (or one width per block), written as a file other tools load.
 *
 * This file parses the command line, picks the widths (--bits, or
 * --avg-bits through mixed_assign_bits) and switches the artifact; the
 * writers and their layouts are in export.h (export_safetensors.c,
 * export_gguf.c) and docs/formats.md ("Export"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact/elastic.h"
#include "artifact/mixed.h"
#include "artifact/switch.h"
#include "base/log.h"
#include "base/paths.h"
#include "cli.h"
#include "data/tokenizer.h"
#include "export/export.h"
#include "model/gptq_layout.h"

static const char *HELP =
    "usage: quept export ARTIFACT (--bits B|LIST | --avg-bits X) --format F --out PATH [options]\n"
    "\n"
    "Switches the elastic artifact to B bits (or one width per block, comma-\n"
    "separated) and writes it for other tools.\n"
    "\n"
    "  --format F       safetensors-fp16  HF Llama dir, dequantized F16 weights\n"
    "                                     (the only one for power-of-two artifacts)\n"
    "                   safetensors-int   HF dir, GPTQ packed int32 codes, F16\n"
    "                                     scales, qzeros, g_idx (2-8 bits: gptq_v2\n"
    "                                     at 2/3/4/8, GPTQModel's planar gptq_p\n"
    "                                     at 5/6/7)\n"
    "                   gguf              GGUF v3 for llama.cpp (llama arch;\n"
    "                                     qwen2 for a model with q/k/v biases)\n"
    "  --out PATH       output directory (safetensors-*) or file (gguf)\n"
    "  --avg-bits X     one width per block chosen for a parameter-weighted\n"
    "                   average of X bits (mixed_assign_bits; see quept eval)\n"
    "  --proxy          with --avg-bits: cost = calibration loss, not sensitivity\n"
    "  --gguf-type T    auto (default: Q4_1 for <=4 bits, Q5_1 for 5, Q8_0 for\n"
    "                   6-8 where the grid maps exactly, else F16), f16, q4_1,\n"
    "                   q5_1, q8_0\n"
    "  --force          with an explicit --gguf-type, store linears it cannot\n"
    "                   hold exactly as F16 instead of failing\n"
    "  --checkpoint-format F  safetensors-int: auto (default: gptq_v2 at 2/3/4/8\n"
    "                   bits for GPTQModel and transformers, gptq_p at 5/6/7 for\n"
    "                   GPTQModel), gptq (v1, zero points minus one, for AutoGPTQ:\n"
    "                   2/3/4/8 bits, in/out multiples of 32, no zero point 0,\n"
    "                   none above 15 at 8 bits), gptq_v2, gptq_p (planar; not\n"
    "                   at 3 bits)\n"
    "  --tokenizer TOK  gguf: the model's llama2.c tokenizer.bin (its token count\n"
    "                   must equal the model's vocab_size), written as the\n"
    "                   tokenizer.ggml.* keys llama.cpp needs to run the file;\n"
    "                   safetensors-*: the source Hugging Face model directory\n"
    "                   (or its tokenizer.json): its tokenizer.json, tokenizer_\n"
    "                   config.json, special_tokens_map.json, tokenizer.model,\n"
    "                   added_tokens.json and generation_config.json, those\n"
    "                   present, are copied into the export\n"
    "  --artifact A     the artifact (instead of the positional argument)\n";

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"artifact", 1, 0},  {"bits", 1, 0},
                  {"format", 1, 0},    {"out", 1, 0},
                  {"gguf-type", 1, 0}, {"force", 0, 0},
                  {"avg-bits", 1, 0},  {"proxy", 0, 0},
                  {"tokenizer", 1, 0}, {"checkpoint-format", 1, 0}};
    int no = sizeof o / sizeof o[0], npos = 0;
    const char *pos[1];
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, no, pos, 1, &npos, &err)) {
        log_error("export: %s", err.msg);
        return 2;
    }
    const char *art = cli_get(o, no, "artifact");
    if (!art && npos == 1) art = pos[0];
    const char *fmt = cli_get(o, no, "format"), *out = cli_get(o, no, "out");
    if (!art || !fmt || !out) {
        log_error("export: an artifact, --format and --out are required (see --help)");
        return 2;
    }
    int kind = strcmp(fmt, "safetensors-fp16") == 0  ? 0
               : strcmp(fmt, "safetensors-int") == 0 ? 1
               : strcmp(fmt, "gguf") == 0            ? 2
                                                     : -1;
    if (kind < 0) {
        log_error("export: unknown --format '%s' (safetensors-fp16, safetensors-int, gguf)", fmt);
        return 2;
    }
    double avg = 0;
    const char *avg_s = cli_get(o, no, "avg-bits");
    if (avg_s && cli_get(o, no, "bits")) {
        log_error("export: --bits and --avg-bits exclude each other");
        return 2;
    }
    if (avg_s && cli_get_float(o, no, "avg-bits", 0, QBITS_MIN, QBITS_MAX, &avg, &err)) {
        log_error("export: %s", err.msg);
        return 2;
    }
    if (cli_get(o, no, "gguf-type") && kind != 2) {
        log_error("export: --gguf-type applies to --format gguf only");
        return 2;
    }
    const char *ckpt = cli_get(o, no, "checkpoint-format");
    if (ckpt && kind != 1) {
        log_error("export: --checkpoint-format applies to --format safetensors-int only");
        return 2;
    }
    GptqFormat ckpt_f;
    if (ckpt && strcmp(ckpt, "auto") != 0 && gptq_format_parse(ckpt, &ckpt_f, &err) != 0) {
        log_error("export: --checkpoint-format '%s' (auto, gptq, gptq_v2 or gptq_p)", ckpt);
        return 2;
    }
    PathArg inputs[] = {{"the artifact", art}, {"--tokenizer", cli_get(o, no, "tokenizer")}};
    if (paths_check_output((PathArg){"--out", out}, kind != 2, inputs, 2, &err) != 0) {
        log_error("export: %s", err.msg);
        return 2;
    }
    ElasticModel em;
    if (elastic_load(&em, art, &err) != 0) {
        log_error("export: %s", err.msg);
        return 1;
    }
    if (em.qc.format == QFORMAT_POT && kind != 0) {
        log_error("export: %s holds power-of-two codes (sign + exponent, W = ±s·2^E); %s stores "
                  "integer grids (W = (q - z)·s) that cannot represent them: use --format "
                  "safetensors-fp16 (the switched weights, dequantized)",
                  art, fmt);
        elastic_free(&em);
        return 1;
    }
    int *bits = calloc((size_t)em.cfg.n_layers, sizeof(int));
    SwitchedModel sw = {0};
    Tokenizer *tok = NULL;
    const char *tok_path = cli_get(o, no, "tokenizer");
    int rc = !bits ? qerr_set(&err, "out of memory") : 0;
    const int made_dir = kind != 2 && access(out, F_OK) != 0;
    /* a wrong tokenizer fails before anything is written */
    if (rc == 0 && tok_path && kind == 2) rc = export_gguf_tokenizer(tok_path, em.cfg.vocab_size, &tok, &err);
    if (rc == 0 && tok_path && kind != 2) rc = export_hf_tokenizer_check(tok_path, em.cfg.vocab_size, &err);
    if (rc == 0 && avg_s) {
        double achieved = 0;
        rc = mixed_assign_bits(&em, avg, cli_get(o, no, "proxy") != NULL, bits, &achieved, &err);
        if (rc == 0) {
            char list[1024];
            size_t n = 0;
            for (int j = 0; j < em.cfg.n_layers && n + 8 < sizeof list; j++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", j ? "," : "", bits[j]);
            log_info("export: --avg-bits %g -> widths %s (average %.4f)", avg, list, achieved);
        }
    } else if (rc == 0) {
        rc = cli_parse_block_bits(cli_get(o, no, "bits"), em.cfg.n_layers, bits, &err);
    }
    if (rc == 0)
        rc = kind == 0 ? export_fp16(&em, bits, out, &err) : elastic_switch_codes(&em, bits, &sw, &err);
    if (rc == 0 && kind == 1) rc = export_int(&em, &sw, ckpt, out, &err);
    if (rc == 0 && kind != 2 && tok_path) {
        int copied = 0;
        rc = export_hf_tokenizer_copy(tok_path, out, &copied, &err);
        if (rc == 0)
            log_info("export: copied %d tokenizer files from %s", copied, tok_path);
        else
            export_remove_debris(out, made_dir);
    }
    if (rc == 0 && kind == 2) {
        GgufOptions go = {.type = cli_get(o, no, "gguf-type"),
                          .force = cli_get(o, no, "force") != NULL,
                          .tok = tok,
                          .tok_path = tok_path};
        rc = export_gguf(&em, &sw, out, &go, &err);
    }
    if (rc)
        log_error("export: %s", err.msg);
    else
        log_info("export: wrote %s (%s)", out, fmt);
    switched_free(&sw);
    tokenizer_free(tok);
    free(bits);
    elastic_free(&em);
    return rc == 0 ? 0 : 1;
}
