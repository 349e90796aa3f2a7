/* test_hf_tokenizer.c — tokenizer.json in C on small hand-written files
 * (exact ids: merge order, both merge forms, byte fallback, added tokens,
 * the post-processor's BOS, decoding; malformed and unsupported files
 * refused with messages naming the field), the one tokenizer interface,
 * text windows, and `quept tokenize` end to end. The real Llama 2 / Llama 3
 * / Qwen3 files are checked against an independent implementation by the
 * ctest tokenizer_check (tests/tokenizer_check). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/hf_tokenizer.h"
#include "data/text_data.h"
#include "data/text_tokenizer.h"
#include "fixtures.h"

/* SentencePiece style, as Llama 2's tokenizer.json: "▁" prepended and for
 * spaces, byte fallback, "<s>" a special added token and the BOS. */
static const char *SP_JSON =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":"
    "false,"
    "\"normalized\":false,\"special\":true},{\"id\":1,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":"
    "false,"
    "\"rstrip\":false,\"normalized\":false,\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
    "\"\xe2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\","
    "\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\","
    "\"ids\":[1],"
    "\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
    "\"\xe2\x96\x81\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" "
    "\","
    "\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
    "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</"
    "s>\":2,\"<0x0A>\":3,\"<0xC3>\":4,\"<0xA9>\":5,\"\xe2\x96\x81\":6,\"h\":7,"
    "\"i\":8,\"\xe2\x96\x81h\":9,\"hi\":10,\"\xe2\x96\x81hi\":11},"
    "\"merges\":[\"\xe2\x96\x81 h\",\"\xe2\x96\x81h i\",\"h i\"]}}";

/* Byte-level, as Llama 3 / Qwen2: a Split regex, then ByteLevel. The
 * merges are filled in by byte_json (both forms). */
static char *byte_json(const char *merges, const char *extra_pre) {
    static const char *fmt =
        "{\"added_tokens\":[{\"id\":9,\"content\":\"<|end|>\",\"special\":true,\"lstrip\":false,\"rstrip\":"
        "false,"
        "\"normalized\":false,\"single_word\":false},{\"id\":100,\"content\":\"<|big|>\",\"special\":true}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[%s{\"type\":"
        "\"Split\","
        "\"pattern\":{\"Regex\":\" "
        "?\\\\p{L}+|\\\\p{N}{1,3}|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},"
        "\"post_processor\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5,"
        "\"\xc4\xa0\":6,"
        "\"1\":7,\"\xc4\xa0"
        "a\":8},\"merges\":%s}}";
    char *s = malloc(strlen(fmt) + strlen(merges) + strlen(extra_pre) + 1);
    sprintf(s, fmt, extra_pre, merges);
    return s;
}

static HfTokenizer *parse(const char *json, QErr *err) {
    HfTokenizer *t = NULL;
    if (hf_tokenizer_parse(&t, json, strlen(json), "test.json", err) != 0) return NULL;
    return t;
}

#define CHECK_IDS(t, text, special, ...)                                                \
    do {                                                                                \
        int want_[] = {__VA_ARGS__};                                                    \
        size_t nw_ = sizeof want_ / sizeof want_[0], n_ = 0;                            \
        int *ids_ = NULL;                                                               \
        QErr e_ = {{0}};                                                                \
        int rc_ = hf_tokenizer_encode(t, text, strlen(text), special, &ids_, &n_, &e_); \
        CHECK_MSG(rc_ == 0, "%s", e_.msg);                                              \
        int same_ = rc_ == 0 && n_ == nw_;                                              \
        for (size_t i_ = 0; same_ && i_ < n_; i_++) same_ = ids_[i_] == want_[i_];      \
        if (!same_) {                                                                   \
            fprintf(stderr, "  \"%s\" gave", text);                                     \
            for (size_t i_ = 0; i_ < n_; i_++) fprintf(stderr, " %d", ids_[i_]);        \
            fputc('\n', stderr);                                                        \
        }                                                                               \
        CHECK_MSG(same_, "ids of \"%s\"", text);                                        \
        free(ids_);                                                                     \
    } while (0)

static void check_decode(const HfTokenizer *t, const char *text, int skip, const char *want) {
    int *ids = NULL;
    size_t n = 0, len = 0;
    char *out = NULL;
    QErr err = {{0}};
    CHECK_MSG(hf_tokenizer_encode(t, text, strlen(text), 1, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK_MSG(hf_tokenizer_decode(t, ids, n, skip, &out, &len, &err) == 0, "%s", err.msg);
    CHECK_MSG(out && strcmp(out, want) == 0 && len == strlen(want), "decode of \"%s\": \"%s\", want \"%s\"",
              text, out ? out : "(null)", want);
    free(ids), free(out);
}

static void expect_refused(const char *json, const char *needle) {
    QErr err = {{0}};
    HfTokenizer *t = parse(json, &err);
    CHECK_MSG(t == NULL, "accepted a file that should name \"%s\"", needle);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "message \"%s\" does not name \"%s\"", err.msg, needle);
    hf_tokenizer_free(t);
}

/* json with the first occurrence of from replaced by to (malloc'd). */
static char *edit(const char *json, const char *from, const char *to) {
    const char *at = strstr(json, from);
    CHECK_MSG(at != NULL, "fixture has no \"%s\"", from);
    if (!at) at = json;
    char *s = malloc(strlen(json) + strlen(to) + 1);
    size_t pre = (size_t)(at - json);
    memcpy(s, json, pre);
    strcpy(s + pre, to);
    strcat(s, at + strlen(from));
    return s;
}

static void test_sentencepiece(void) {
    QErr err = {{0}};
    HfTokenizer *t = parse(SP_JSON, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (!t) return;
    CHECK(hf_tokenizer_vocab_size(t) == 12 && hf_tokenizer_bos(t) == 1);
    /* "▁" prepended; merges "▁ h" then "▁h i"; "\n" and "é" by byte fallback */
    CHECK_IDS(t, "hi\n\xc3\xa9", 0, 11, 3, 4, 5);
    CHECK_IDS(t, "hi\n\xc3\xa9", 1, 1, 11, 3, 4, 5);
    /* a space becomes "▁": "hi hi" -> ▁hi ▁hi */
    CHECK_IDS(t, "hi hi", 0, 11, 11);
    /* the added token is split out first; each side is normalized on its own */
    CHECK_IDS(t, "hi<s>hi", 0, 11, 1, 11);
    /* look-alikes are plain text: "<" has no token and no byte token: unk, fused */
    CHECK_IDS(t, "<s >", 0, 6, 0, 6, 0);
    CHECK_IDS(t, "", 1, 1); /* nothing but the BOS (and no "▁" prepended to nothing) */
    int *none = NULL;
    size_t n_none = 9;
    CHECK(hf_tokenizer_encode(t, "", 0, 0, &none, &n_none, &err) == 0 && n_none == 0 && none != NULL);
    free(none);
    check_decode(t, "hi\n\xc3\xa9 hi", 1, "hi\n\xc3\xa9 hi");
    check_decode(t, "hi<s>hi", 0, "<s> hi<s> hi"); /* as the tokenizers crate: "▁" before each hi */
    check_decode(t, "hi<s>hi", 1, "hi hi");
    /* a byte token run that is not UTF-8 decodes to U+FFFD per byte */
    int lone[] = {4, 7};
    char *out = NULL;
    size_t len = 0;
    CHECK(hf_tokenizer_decode(t, lone, 2, 0, &out, &len, &err) == 0 && strcmp(out, "\xef\xbf\xbdh") == 0);
    free(out);
    int bad_id[] = {12};
    CHECK(hf_tokenizer_decode(t, bad_id, 1, 0, &out, &len, &err) == -1 && strstr(err.msg, "id 12"));
    /* invalid UTF-8 is refused, naming the offset */
    int *ids = NULL;
    size_t n = 0;
    CHECK(hf_tokenizer_encode(t, "hi\xff", 3, 0, &ids, &n, &err) == -1);
    CHECK_MSG(strstr(err.msg, "invalid UTF-8 at byte offset 2"), "%s", err.msg);
    CHECK(hf_tokenizer_encode(t, "ab\xed\xa0\x80", 5, 0, &ids, &n, &err) == -1 &&
          strstr(err.msg, "offset 2"));
    hf_tokenizer_free(t);
}

static void test_byte_level(void) {
    QErr err = {{0}};
    /* rank order decides: "b c" first leaves a + bc, "a b" first reaches abc */
    const char *forms[][2] = {{"[\"b c\",\"a b\",\"ab c\",\"\xc4\xa0 a\"]",
                               "[[\"b\",\"c\"],[\"a\",\"b\"],[\"ab\",\"c\"],[\"\xc4\xa0\",\"a\"]]"},
                              {"[\"a b\",\"b c\",\"ab c\",\"\xc4\xa0 a\"]",
                               "[[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"],[\"\xc4\xa0\",\"a\"]]"}};
    for (int order = 0; order < 2; order++)
        for (int form = 0; form < 2; form++) {
            char *js = byte_json(forms[order][form], "");
            HfTokenizer *t = parse(js, &err);
            CHECK_MSG(t != NULL, "%s", err.msg);
            free(js);
            if (!t) continue;
            if (order == 0)
                CHECK_IDS(t, "abc", 0, 0, 4);
            else
                CHECK_IDS(t, "abc", 0, 5);
            /* " a" is one Split piece: the space becomes "Ġ" and merges with a */
            CHECK_IDS(t, "c a", 0, 2, 8);
            CHECK_IDS(t, "ab<|end|>1111", 0, 3, 9, 7, 7, 7, 7);
            CHECK(hf_tokenizer_vocab_size(t) == 101 && hf_tokenizer_bos(t) == -1);
            check_decode(t, "c a<|end|>11", 0, "c a<|end|>11");
            check_decode(t, "c a<|end|>11", 1, "c a11");
            /* a character with no token, no byte fallback and no unk: refused, never dropped */
            int *ids = NULL;
            size_t n = 0;
            CHECK(hf_tokenizer_encode(t, "ab d", 4, 0, &ids, &n, &err) == -1);
            CHECK_MSG(strstr(err.msg, "no token"), "%s", err.msg);
            hf_tokenizer_free(t);
        }
}

static void test_refused(void) {
    char *base = byte_json("[\"a b\"]", "");
    QErr err = {{0}};
    HfTokenizer *t = parse(base, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    hf_tokenizer_free(t);
    /* truncated file, not JSON, not an object */
    char *cut = strdup(base);
    cut[strlen(cut) / 2] = 0;
    expect_refused(cut, "not valid JSON");
    free(cut);
    expect_refused("[1,2]", "not a JSON object");
    /* missing and malformed fields */
    char *s = edit(base, "\"vocab\"", "\"vocab_\"");
    expect_refused(s, "model.vocab: missing");
    free(s);
    s = edit(base, "\"merges\":[\"a b\"]", "\"merges\":[\"a b c\"]");
    expect_refused(s, "model.merges[0]");
    free(s);
    s = edit(base, "\"merges\":[\"a b\"]", "\"merges\":[\"a x\"]");
    expect_refused(s, "\"x\" is not in the vocab");
    free(s);
    s = edit(base, "\"merges\":[\"a b\"]", "\"merges\":[\"c a\"]");
    expect_refused(s, "is not in the vocab");
    free(s);
    s = edit(base, "\"b\":1", "\"b\":0");
    expect_refused(s, "id 0 is both");
    free(s);
    /* unsupported features are refused by name and value */
    s = edit(base, "\"type\":\"BPE\"", "\"type\":\"WordPiece\"");
    expect_refused(s, "model type \"WordPiece\"");
    free(s);
    s = edit(base, "\"normalizer\":null", "\"normalizer\":{\"type\":\"Lowercase\"}");
    expect_refused(s, "normalizer type \"Lowercase\"");
    free(s);
    s = edit(base, "\"Isolated\"", "\"Removed\"");
    expect_refused(s, "Split behavior \"Removed\"");
    free(s);
    s = edit(base, "\"add_prefix_space\":false", "\"add_prefix_space\":true");
    expect_refused(s, "add_prefix_space true after another pre-tokenizer");
    free(s);
    s = edit(base, "\"invert\":false", "\"invert\":true");
    expect_refused(s, "invert true");
    free(s);
    s = edit(base, "\"lstrip\":false", "\"lstrip\":true");
    expect_refused(s, "added_tokens[0]: \"<|end|>\" with lstrip true");
    free(s);
    s = edit(base, "\"decoder\":{\"type\":\"ByteLevel\"}", "\"decoder\":{\"type\":\"WordPiece\"}");
    expect_refused(s, "decoder type \"WordPiece\"");
    free(s);
    s = edit(base, "\"post_processor\":{\"type\":\"ByteLevel\"}",
             "\"post_processor\":{\"type\":\"BertProcessing\"}");
    expect_refused(s, "post-processor type \"BertProcessing\"");
    free(s);
    s = edit(base, "\"normalizer\":null", "\"normalizer\":null,\"truncation\":{\"max_length\":8}");
    expect_refused(s, "truncation");
    free(s);
    s = edit(base, "\"pretokenizers\":[", "\"pretokenizers\":[{\"type\":\"Digits\"},");
    expect_refused(s, "pre-tokenizer type \"Digits\"");
    free(s);
    s = edit(base, "\\\\p{N}{1,3}", "\\\\p{N}{1,3");
    t = parse(s, &err); /* PCRE2 reads "{1,3" as a literal: still compiles */
    hf_tokenizer_free(t);
    free(s);
    s = edit(base, "\\\\p{N}{1,3}", "(\\\\p{N}");
    expect_refused(s, "does not compile");
    free(s);
    s = edit(base, "\"type\":\"BPE\"", "\"type\":\"BPE\",\"dropout\":0.1");
    expect_refused(s, "dropout");
    free(s);
    free(base);
}

static void write_file(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(s, 1, n, f) == n);
    fclose(f);
}

static int run(const char *cmd) {
    int st;
    char *out = run_capture(cmd, &st);
    free(out);
    return exit_code(st);
}

static char *slurp(const char *path, size_t *n) {
    char *s = NULL;
    QErr err = {{0}};
    CHECK_MSG(file_read_all(path, &s, n, &err) == 0, "%s", err.msg);
    return s;
}

/* The windows: random ones deterministic under a seed and each a slice of
 * the encoded text; consecutive ones tile it from the start. */
static void test_windows(const char *dir) {
    char tok[4400], txt[4200], jsonl[4200], a[4200], b[4200], c[4200], cmd[20000];
    char tok_dir[4096];
    snprintf(tok_dir, sizeof tok_dir, "%s/tok", dir);
    CHECK(dir_make_all(tok_dir, NULL) == 0);
    snprintf(tok, sizeof tok, "%s/tokenizer.json", tok_dir);
    snprintf(txt, sizeof txt, "%s/text.txt", dir);
    snprintf(jsonl, sizeof jsonl, "%s/text.jsonl", dir);
    write_file(tok, SP_JSON, strlen(SP_JSON));
    char text[4096] = "";
    for (int i = 0; i < 60; i++) strcat(text, i % 7 == 3 ? "hi\n" : i % 5 == 1 ? "h\xc3\xa9 " : "hi hi ");
    write_file(txt, text, strlen(text));
    /* the same text as two JSONL records, joined with "\n\n" */
    char rec[8192];
    snprintf(rec, sizeof rec, "{\"text\": \"hi hi\"}\n\n{\"text\": \"h\\u00e9 hi\", \"meta\": 1}\n");
    write_file(jsonl, rec, strlen(rec));

    QErr err = {{0}};
    TextTokenizer *tt = NULL;
    CHECK_MSG(ttok_open(&tt, tok_dir, &err) == 0, "%s", err.msg); /* a directory: its tokenizer.json */
    if (!tt) return;
    CHECK(strcmp(ttok_format(tt), "tokenizer.json") == 0 && ttok_bos(tt) == 1);
    int *ids = NULL;
    size_t n = 0;
    CHECK_MSG(ttok_encode(tt, text, strlen(text), 1, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK(n > 40 && ids[0] == 1);

    snprintf(
        cmd, sizeof cmd,
        "%s tokenize --tokenizer %s --text %s --seq-len 5 --n-seq 6 --seed 7 --out %s/a.qtok 2>/dev/null",
        QUEPT_BIN, tok, txt, dir);
    CHECK(run(cmd) == 0);
    snprintf(
        cmd, sizeof cmd,
        "%s tokenize --tokenizer %s --text %s --seq-len 5 --n-seq 6 --seed 7 --out %s/b.qtok 2>/dev/null",
        QUEPT_BIN, tok_dir, txt, dir);
    CHECK(run(cmd) == 0);
    snprintf(a, sizeof a, "%s/a.qtok", dir);
    snprintf(b, sizeof b, "%s/b.qtok", dir);
    size_t na, nb;
    char *fa = slurp(a, &na), *fb = slurp(b, &nb);
    CHECK(fa && fb && na == nb && memcmp(fa, fb, na) == 0); /* same seed, same bytes */
    free(fa), free(fb);
    TokenSet ts = {0};
    CHECK_MSG(tokens_read(a, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == 6 && ts.seq_len == 5 && ts.vocab_size == 12);
    int distinct_starts = 0;
    for (int s = 0; s < ts.n_seq; s++) { /* every window is a slice of the encoded text */
        int found = 0;
        for (size_t k = 0; !found && k + 5 <= n; k++)
            found = memcmp(ids + k, ts.tokens + 5 * s, 5 * sizeof(int)) == 0;
        CHECK_MSG(found, "window %d is not a slice of the text's ids", s);
        distinct_starts += s > 0 && memcmp(ts.tokens, ts.tokens + 5 * s, 5 * sizeof(int)) != 0;
    }
    CHECK(distinct_starts > 0);
    tokens_free(&ts);
    snprintf(
        cmd, sizeof cmd,
        "%s tokenize --tokenizer %s --text %s --seq-len 5 --n-seq 6 --seed 8 --out %s/c.qtok 2>/dev/null",
        QUEPT_BIN, tok, txt, dir);
    CHECK(run(cmd) == 0);
    snprintf(c, sizeof c, "%s/c.qtok", dir);
    size_t nc;
    fa = slurp(a, &na);
    char *fc = slurp(c, &nc);
    CHECK(fa && fc && na == nc && memcmp(fa, fc, na) != 0); /* another seed, other windows */
    free(fa), free(fc);

    /* consecutive windows tile the encoded text from the start, tail dropped */
    snprintf(
        cmd, sizeof cmd,
        "%s tokenize --tokenizer %s --text %s --seq-len 7 --windows consecutive --out %s/d.qtok 2>/dev/null",
        QUEPT_BIN, tok, txt, dir);
    CHECK(run(cmd) == 0);
    snprintf(c, sizeof c, "%s/d.qtok", dir);
    CHECK_MSG(tokens_read(c, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == (int)(n / 7) && ts.seq_len == 7);
    CHECK(ts.tokens && memcmp(ts.tokens, ids, (size_t)ts.n_seq * 7 * sizeof(int)) == 0);
    tokens_free(&ts);
    /* the same through tokens_load_any (what eval reads text with) */
    CHECK_MSG(tokens_load_any(txt, tok, 7, 0, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == (int)(n / 7) && memcmp(ts.tokens, ids, (size_t)ts.n_seq * 7 * sizeof(int)) == 0);
    tokens_free(&ts);
    free(ids);

    /* JSONL: records joined with "\n\n" */
    CHECK_MSG(ttok_encode(tt, "hi hi\n\nh\xc3\xa9 hi", 13, 1, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK_MSG(tokens_load_any(jsonl, tok, (int)n, 0, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == 1 && memcmp(ts.tokens, ids, n * sizeof(int)) == 0);
    tokens_free(&ts);
    free(ids);
    ttok_free(tt);

    /* bad inputs */
    snprintf(cmd, sizeof cmd,
             "%s tokenize --tokenizer %s --text %s --seq-len 5 --n-seq 2 --out %s 2>/dev/null", QUEPT_BIN,
             tok, txt, txt);
    CHECK(run(cmd) == 2); /* --out names an input */
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --text %s --seq-len 5 --out %s/e.qtok 2>/dev/null",
             QUEPT_BIN, tok, txt, dir);
    CHECK(run(cmd) == 2); /* neither --n-seq nor --windows consecutive */
    snprintf(cmd, sizeof cmd,
             "%s tokenize --tokenizer %s --text %s --seq-len 5000 --n-seq 2 --out %s/e.qtok 2>/dev/null",
             QUEPT_BIN, tok, txt, dir);
    CHECK(run(cmd) == 1); /* longer than the text */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad.txt", dir);
    write_file(bad, "hi hi \xc3(", 8);
    snprintf(cmd, sizeof cmd,
             "%s tokenize --tokenizer %s --text %s --seq-len 1 --n-seq 1 --out %s/e.qtok 2>&1", QUEPT_BIN,
             tok, bad, dir);
    int st;
    char *out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "invalid UTF-8 at byte offset 6"), "%s",
              out ? out : "");
    free(out);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    write_file(bad, "{\"text\": \"hi\"}\n{\"txt\": \"hi\"}\n", 29);
    snprintf(cmd, sizeof cmd,
             "%s tokenize --tokenizer %s --text %s --seq-len 1 --n-seq 1 --out %s/e.qtok 2>&1", QUEPT_BIN,
             tok, bad, dir);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "line 2 has no \"text\""), "%s", out ? out : "");
    free(out);

    write_file(bad, "{\"text\": \"hi\"}\n{\"text\": \"ab\xff\"}\n", 31);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "line 2: invalid UTF-8 at byte offset 2"), "%s",
              out ? out : "");
    free(out);

    /* ids beyond the model's vocab are refused: the tiny model has 64, the
     * byte-level fixture's <|big|> is 100 */
    char model[4200], hf_dir[4200];
    snprintf(model, sizeof model, "%s/tiny.bin", dir);
    write_tiny(model, NULL, 1, 0, 0);
    char *bj = byte_json("[\"a b\"]", "");
    snprintf(tok, sizeof tok, "%s/byte.json", dir);
    write_file(tok, bj, strlen(bj));
    free(bj);
    write_file(txt, "ab ab<|big|>ab", 14);
    snprintf(cmd, sizeof cmd,
             "%s tokenize --model %s --tokenizer %s --text %s --seq-len 2 --n-seq 2 --out %s/e.qtok 2>&1",
             QUEPT_BIN, model, tok, txt, dir);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "id 100") && strstr(out, "64"), "%s", out ? out : "");
    free(out);
    /* a llama2.c checkpoint has no tokenizer.json: --tokenizer is asked for */
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --text %s --seq-len 2 --n-seq 2 --out %s/e.qtok 2>&1",
             QUEPT_BIN, model, txt, dir);
    out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 2 && out && strstr(out, "--tokenizer"), "%s", out ? out : "");
    free(out);
    /* a Hugging Face directory: its own tokenizer.json is found */
    Model m;
    if (tiny_model(&m, 1, 11) == 0) {
        snprintf(hf_dir, sizeof hf_dir, "%s/hf", dir);
        CHECK_MSG(hf_write_dir(hf_dir, &m, 0, &err) == 0, "%s", err.msg);
        model_free(&m);
        snprintf(cmd, sizeof cmd, "cp %s %s/tokenizer.json", tok, hf_dir);
        CHECK(system(cmd) == 0);
        write_file(txt, "ab ab ab ab c", 13);
        snprintf(
            cmd, sizeof cmd,
            "%s tokenize --model %s --text %s --seq-len 3 --windows consecutive --out %s/f.qtok 2>/dev/null",
            QUEPT_BIN, hf_dir, txt, dir);
        CHECK(run(cmd) == 0);
        snprintf(c, sizeof c, "%s/f.qtok", dir);
        CHECK_MSG(tokens_read(c, &ts, &err) == 0, "%s", err.msg);
        /* "ab", " ab" x3 (Ġ a, b: no Ġ-a-b token), " c": 0? ids as the fixture's merges give */
        CHECK(ts.n_seq >= 1 && ts.vocab_size == 64 && ts.tokens[0] == 3);
        tokens_free(&ts);

        /* eval and calibrate take the text with the directory's tokenizer */
        char body[2048] = "";
        for (int i = 0; i < 40; i++) strcat(body, i % 3 ? "ab abc 1 " : "c a bc 11 ");
        write_file(txt, body, strlen(body));
        snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --seq-len 8 --json 2>&1", QUEPT_BIN, hf_dir,
                 txt);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0 && out && strstr(out, "ppl"), "%s", out ? out : "");
        free(out);
        snprintf(
            cmd, sizeof cmd,
            "%s calibrate --model %s --data %s --seq-len 8 --n-seq 4 --text-seed 3 --method rtn --batch 2 "
            "--out %s/a.art --quiet 2>&1",
            QUEPT_BIN, hf_dir, txt, dir);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "%s", out ? out : "");
        free(out);
        snprintf(c, sizeof c, "%s/a.art.calib.qtok", dir);
        CHECK_MSG(tokens_read(c, &ts, &err) == 0, "%s", err.msg);
        CHECK(ts.n_seq == 4 && ts.seq_len == 8 && ts.vocab_size == 64);
        tokens_free(&ts);
        snprintf(cmd, sizeof cmd,
                 "%s calibrate --model %s --data %s --seq-len 8 --method rtn --out %s/b.art 2>&1", QUEPT_BIN,
                 hf_dir, txt, dir);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 2 && out && strstr(out, "--n-seq"), "%s",
                  out ? out : ""); /* text needs windows */
        free(out);
    }
}

int main(void) {
    test_sentencepiece();
    test_byte_level();
    test_refused();
    char dir[4096];
    scratch_dir(dir, sizeof dir, "hftok");
    test_windows(dir);
    scratch_remove(dir);
    if (check_failures) return 1;
    printf("ok\n");
    return 0;
}
