/* cmd_tokenize.c — `quept tokenize`: a text or JSONL file to QTOK windows
 * with a model's tokenizer (tokenizer.json or llama2.c tokenizer.bin). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/paths.h"
#include "cli.h"
#include "data/text_data.h"
#include "model/model.h"

static const char *HELP =
    "usage: quept tokenize (--model M | --tokenizer T) --text F --seq-len N\n"
    "                      (--n-seq K [--seed S] | --windows consecutive [--n-seq K]) --out Q.qtok\n"
    "       quept tokenize (--model M | --tokenizer T) --text F --print-ids [--special]\n"
    "\n"
    "Tokenizes a text file (or JSONL, one {\"text\": ...} per line, joined with\n"
    "\"\\n\\n\") as one text, with the tokenizer's BOS at the start, and writes\n"
    "fixed-length windows as a QTOK token file (docs/formats.md, 'Token files').\n"
    "\n"
    "  --model M          Hugging Face directory (its tokenizer.json is used) or\n"
    "                     llama2.c checkpoint (then --tokenizer is needed); ids are\n"
    "                     checked against M's vocab size\n"
    "  --tokenizer T      tokenizer.json or llama2.c tokenizer.bin (told by content),\n"
    "                     or a directory holding tokenizer.json\n"
    "  --text F           UTF-8 text, or JSONL (by the .jsonl extension or --format)\n"
    "  --format X         auto (default), text or jsonl\n"
    "  --seq-len N        tokens per window\n"
    "  --n-seq K          random windows: K windows with seeded random starts (the\n"
    "                     reference's calibration loaders); consecutive: at most K\n"
    "  --seed S           seed of the random starts (default 0)\n"
    "  --windows W        random (default with --n-seq) or consecutive:\n"
    "                     non-overlapping windows from the start (evaluation)\n"
    "  --out Q            output QTOK file (written atomically)\n"
    "  --print-ids        instead: one JSON line per document on stdout,\n"
    "                     {\"ids\": [...], \"decoded\": \"...\"} (no special tokens\n"
    "                     unless --special)\n";

/* One JSON line per document: its ids and their decoding. */
static int print_ids(const TextTokenizer *tok, const char *path, TextFormat f, int special, QErr *err) {
    char **docs;
    size_t *lens, nd;
    if (text_read_docs(path, f, &docs, &lens, &nd, err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nd; i++) {
        int *ids = NULL;
        size_t n = 0;
        char *dec = NULL;
        size_t dl = 0;
        rc = ttok_encode(tok, docs[i], lens[i], special, &ids, &n, err);
        if (rc == 0) rc = ttok_decode(tok, ids, n, 0, &dec, &dl, err);
        if (rc != 0) qerr_wrap(err, "%s: document %zu", path, i + 1);
        cJSON *o = rc == 0 ? cJSON_CreateObject() : NULL;
        cJSON *arr = o ? cJSON_AddArrayToObject(o, "ids") : NULL;
        for (size_t k = 0; arr && k < n; k++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[k]));
        if (o) cJSON_AddStringToObject(o, "decoded", dec);
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        if (rc == 0 && !s) rc = qerr_set(err, "out of memory");
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        free(ids), free(dec);
    }
    text_docs_free(docs, lens, nd);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"model", 1, 0},   {"tokenizer", 1, 0}, {"text", 1, 0},   {"format", 1, 0},
                  {"seq-len", 1, 0}, {"n-seq", 1, 0},     {"seed", 1, 0},   {"windows", 1, 0},
                  {"out", 1, 0},     {"print-ids", 0, 0}, {"special", 0, 0}};
    int no = sizeof o / sizeof o[0], npos;
    const char *pos[1];
    QErr err = {{0}};
    int seq_len, n_seq, seed;
    TextFormat fmt;
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "seq-len", 0, 1, 1 << 24, &seq_len, &err) ||
        cli_get_int(o, no, "n-seq", 0, 1, 1 << 24, &n_seq, &err) ||
        cli_get_int(o, no, "seed", 0, 0, 0x7fffffff, &seed, &err) ||
        text_format_parse(cli_get(o, no, "format"), &fmt, &err)) {
        log_error("tokenize: %s", err.msg);
        return 2;
    }
    const char *model = cli_get(o, no, "model"), *tok_path = cli_get(o, no, "tokenizer");
    const char *text = cli_get(o, no, "text"), *out = cli_get(o, no, "out"), *win = cli_get(o, no, "windows");
    int print = cli_get(o, no, "print-ids") != NULL;
    if ((!model && !tok_path) || !text) {
        log_error("tokenize: --text and --model or --tokenizer are required (see --help)");
        return 2;
    }
    int random = 1;
    if (win && strcmp(win, "consecutive") == 0)
        random = 0;
    else if (win && strcmp(win, "random") != 0) {
        log_error("tokenize: --windows: \"%s\" is not random or consecutive", win);
        return 2;
    }
    if (!print && (!out || seq_len == 0 || (random && n_seq == 0))) {
        log_error(
            "tokenize: --out, --seq-len and --n-seq (random windows) or --windows consecutive are required "
            "(see --help)");
        return 2;
    }
    if (print && (out || seq_len || n_seq || win)) {
        log_error("tokenize: --print-ids writes no windows: drop --out, --seq-len, --n-seq and --windows");
        return 2;
    }
    if (out) {
        PathArg in[] = {{"--model", model}, {"--tokenizer", tok_path}, {"--text", text}};
        if (paths_check_output((PathArg){"--out", out}, 0, in, 3, &err) != 0) {
            log_error("tokenize: %s", err.msg);
            return 2;
        }
    }
    int vocab = 0;
    if (model) { /* the model's vocab size, from its config only */
        ModelSource *src = NULL;
        if (model_source_open(&src, model, &err) != 0) {
            log_error("tokenize: %s", err.msg);
            return 1;
        }
        vocab = model_source_config(src)->vocab_size;
        model_source_close(src);
    }
    TextTokenizer *tok = NULL;
    if (ttok_open_for_model(&tok, model, tok_path, &err) != 0) {
        log_error("tokenize: %s", err.msg);
        return err.code == QERR_USAGE ? 2 : 1;
    }
    int rc;
    if (print) {
        rc = print_ids(tok, text, fmt, cli_get(o, no, "special") != NULL, &err);
    } else {
        WindowSpec w = {seq_len, n_seq, random, (uint64_t)seed};
        TokenSet ts = {0};
        rc = text_load_tokens(text, fmt, tok, &w, &ts, &err);
        if (rc == 0 && vocab > 0) {
            rc = tokens_check_vocab(&ts, vocab, "the tokenized text (does the tokenizer belong to --model?)",
                                    &err);
            ts.vocab_size = vocab;
        }
        if (rc == 0) rc = tokens_write(out, &ts, &err);
        if (rc == 0)
            log_info("wrote %d x %d tokens (%s windows, %s) to %s", ts.n_seq, ts.seq_len,
                     random ? "random" : "consecutive", ttok_format(tok), out);
        tokens_free(&ts);
    }
    ttok_free(tok);
    if (rc != 0) log_error("tokenize: %s", err.msg);
    return rc == 0 ? 0 : 1;
}
