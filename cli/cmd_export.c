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
#include "export/export.h"
#include "model/gptq_layout.h"

static const char *HELP =
    "usage: quept export ARTIFACT (--bits B|LIST | --avg-bits X) --format F --out PATH [options]\n"
    "       quept export --model M --format gguf --out FILE [--tokenizer TOK]\n"
    "\n"
    "Switches the elastic artifact to B bits (or one width per block, comma-\n"
    "separated) and writes it for other tools. With --model instead, writes the\n"
    "full-precision model M as GGUF with F16 linears (what llama-quantize takes).\n"
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
    "                   q5_1, q8_0; an artifact calibrated with --rotate hadamard\n"
    "                   takes f16 only (dequantized, its online down_proj\n"
    "                   transform folded into the weights)\n"
    "  --force          with an explicit --gguf-type, store linears it cannot\n"
    "                   hold exactly as F16 instead of failing\n"
    "  --checkpoint-format F  safetensors-int: auto (default: gptq_v2 at 2/3/4/8\n"
    "                   bits for GPTQModel and transformers, gptq_p at 5/6/7 for\n"
    "                   GPTQModel), gptq (v1, zero points minus one, for AutoGPTQ:\n"
    "                   2/3/4/8 bits, in/out multiples of 32, no zero point 0,\n"
    "                   none above 15 at 8 bits), gptq_v2, gptq_p (planar; not\n"
    "                   at 3 bits)\n"
    "  --tokenizer TOK  gguf: the model's tokenizer.json (or its HF directory) or\n"
    "                   llama2.c tokenizer.bin, written as the tokenizer.ggml.*\n"
    "                   keys llama.cpp needs to run the file (Llama 2 style as\n"
    "                   \"llama\", Llama 3 / Qwen2/3 byte-level BPE as \"gpt2\" with\n"
    "                   pre \"llama-bpe\" / \"qwen2\"; other pre-tokenizers are\n"
    "                   refused);\n"
    "                   safetensors-*: the source Hugging Face model directory\n"
    "                   (or its tokenizer.json): its tokenizer.json, tokenizer_\n"
    "                   config.json, special_tokens_map.json, tokenizer.model,\n"
    "                   added_tokens.json and generation_config.json, those\n"
    "                   present, are copied into the export\n"
    "  --artifact A     the artifact (instead of the positional argument)\n"
    "  --model M        no artifact: the full-precision llama2.c / HF model M\n";

/* quept export --model M --format gguf: the full-precision model as F16 */
static int export_full_precision(const CliOpt *o, int no, const char *art, const char *fmt, const char *out) {
    const char *model = cli_get(o, no, "model"), *tok_path = cli_get(o, no, "tokenizer");
    QErr err = {{0}};
    if (art || cli_get(o, no, "bits") || cli_get(o, no, "avg-bits")) {
        log_error("export: --model exports the full-precision model: no artifact, --bits or --avg-bits");
        return 2;
    }
    if (!fmt || strcmp(fmt, "gguf") != 0 || !out) {
        log_error("export: --model needs --format gguf and --out (an HF directory is written by quept stress "
                  "or read as it is)");
        return 2;
    }
    PathArg inputs[] = {{"--model", model}, {"--tokenizer", tok_path}};
    if (paths_check_output((PathArg){"--out", out}, 0, inputs, 2, &err) != 0) {
        log_error("export: %s", err.msg);
        return 2;
    }
    ElasticModel em;
    memset(&em, 0, sizeof em);
    GgufVocab vocab = {0};
    int rc = model_load(&em.base, model, &err);
    if (rc == 0) em.cfg = em.base.cfg;
    if (rc == 0 && tok_path) rc = gguf_vocab_load(&vocab, tok_path, em.cfg.vocab_size, &err);
    GgufOptions go = {
        .type = cli_get(o, no, "gguf-type"), .vocab = tok_path ? &vocab : NULL, .tok_path = tok_path};
    if (rc == 0) rc = export_gguf(&em, NULL, out, &go, &err);
    if (rc)
        log_error("export: %s", err.msg);
    else
        log_info("export: wrote %s (full precision, F16 linears)", out);
    gguf_vocab_free(&vocab);
    model_free(&em.base);
    return rc == 0 ? 0 : 1;
}

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"artifact", 1, 0},  {"bits", 1, 0},  {"format", 1, 0},           {"out", 1, 0},
                  {"gguf-type", 1, 0}, {"force", 0, 0}, {"avg-bits", 1, 0},         {"proxy", 0, 0},
                  {"tokenizer", 1, 0}, {"model", 1, 0}, {"checkpoint-format", 1, 0}};
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
    if (cli_get(o, no, "model")) return export_full_precision(o, no, art, fmt, out);
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
    if (em.qc.format == QFORMAT_GGUF && kind == 1) {
        log_error("export: %s holds GGUF block types (calibrated with --format gguf); safetensors-int "
                  "stores GPTQ's integer grids, which cannot hold them: use --format gguf (the codes as "
                  "calibrated) or safetensors-fp16",
                  art);
        elastic_free(&em);
        return 1;
    }
    if (quant_has_act(&em.qc))
        log_warn("export: %s was calibrated with activation quantization (quept calibrate --act-bits); the "
                 "exported weights carry none of it: a runtime that keeps activations in full precision runs "
                 "them as weight-only",
                 art);
    int *bits = calloc((size_t)em.cfg.n_layers, sizeof(int));
    SwitchedModel sw = {0};
    GgufVocab vocab = {0};
    const char *tok_path = cli_get(o, no, "tokenizer");
    int rc = !bits ? qerr_set(&err, "out of memory") : 0;
    const int made_dir = kind != 2 && access(out, F_OK) != 0;
    /* a wrong tokenizer fails before anything is written */
    if (rc == 0 && tok_path && kind == 2) rc = gguf_vocab_load(&vocab, tok_path, em.cfg.vocab_size, &err);
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
    /* a rotated artifact reaches GGUF dequantized, the online transform folded (F16 only) */
    const int gguf_dq = kind == 2 && em.qc.rotate != ROTATE_NONE;
    if (rc == 0 && !gguf_dq)
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
                          .vocab = tok_path ? &vocab : NULL,
                          .tok_path = tok_path};
        rc = gguf_dq ? export_gguf_rotated_f16(&em, bits, out, &go, &err)
                     : export_gguf(&em, &sw, out, &go, &err);
    }
    if (rc)
        log_error("export: %s", err.msg);
    else
        log_info("export: wrote %s (%s)", out, fmt);
    switched_free(&sw);
    gguf_vocab_free(&vocab);
    free(bits);
    elastic_free(&em);
    return rc == 0 ? 0 : 1;
}
