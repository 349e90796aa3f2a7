/* export_gguf_vocab.c — the tokenizer of a GGUF export: what llama.cpp's own
 * converters write as tokenizer.ggml.* keys, built from the tokenizer file
 * the user passes (see export.h, GgufVocab; docs/formats.md, "GGUF tokenizer
 * keys").
 *
 * llama2.c tokenizer.bin, as llama.cpp's convert-llama2c-to-ggml writes it:
 *   model "llama"; pieces with ' ' turned back into U+2581 ("▁"); ids 0, 1, 2
 *   named "<unk>", "<s>", "</s>" (llama2.c stores BOS/EOS as "\n<s>\n",
 *   "\n</s>\n"); the file's scores; types 2 UNKNOWN (id 0), 3 CONTROL (ids 1,
 *   2 and empty pieces), 6 BYTE ("<0xHH>"), 1 NORMAL; BOS 1, EOS 2, UNK 0.
 *
 * tokenizer.json, SentencePiece style (Llama 2 / Mistral: byte_fallback, a
 * Metaspace pre-tokenizer or a " " -> "▁" normalizer): model "llama" (llama.cpp's
 * SPM tokenizer), the vocab strings as the file has them. That tokenizer
 * merges, among adjacent pairs whose concatenation is a token, the one whose
 * token has the highest score; BPE merges the pair of lowest rank. A token
 * made by merge rank r therefore scores -r, and a token no merge makes (single
 * characters, bytes, added tokens) -1e9, so it is only formed when nothing
 * else is. Types: BYTE, UNKNOWN (the unk token), CONTROL (special added
 * tokens), USER_DEFINED (other added tokens), NORMAL.
 *
 * tokenizer.json, byte-level (Llama 3, Qwen2/3: a ByteLevel pre-tokenizer):
 * model "gpt2", the vocab strings (GPT-2 byte characters) and the merges as
 * "left right" strings in rank order, and tokenizer.ggml.pre naming the
 * pre-tokenizer llama.cpp applies. llama.cpp knows pre-tokenizers by name
 * only, so the Split regex must be one it implements: Llama 3's ("llama-bpe")
 * or Qwen2's ("qwen2"); any other is refused, naming the regex, because
 * llama.cpp would split the text differently. Types: CONTROL (special added
 * tokens), USER_DEFINED (other added tokens), NORMAL. add_bos_token follows
 * the post-processor; a file with no BOS gets EOS as BOS (as llama.cpp's
 * converter does for Qwen2), never added.
 *
 * Ids the tokenizer leaves out, up to the model's vocab_size (Qwen's
 * embedding has 151936 rows for 151669 tokens), become "[PADn]" tokens of
 * type UNUSED, as llama.cpp's converter writes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "data/hf_tokenizer.h"
#include "data/text_tokenizer.h"
#include "data/tokenizer.h"
#include "export.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* The Split regexes llama.cpp implements under a pre-tokenizer name, as the
 * tokenizer.json files of those models write them. */
static const struct {
    const char *name, *regex;
} KNOWN_PRE[] = {
    {"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
              "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

/* 1 for a byte-fallback piece, exactly "<0xHH>" */
static int is_byte_piece(const char *s) {
    static const char hex[] = "0123456789abcdefABCDEF";
    return strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>' && strchr(hex, s[3]) &&
           strchr(hex, s[4]);
}

void gguf_vocab_free(GgufVocab *v) {
    for (int i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    for (int i = 0; v->merges && i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens), free(v->scores), free(v->types), free(v->merges);
    memset(v, 0, sizeof *v);
}

static int vocab_alloc(GgufVocab *v, int n, int scores, QErr *err) {
    v->n = n;
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->types = calloc((size_t)n, sizeof *v->types);
    v->scores = scores ? calloc((size_t)n, sizeof *v->scores) : NULL;
    if (!v->tokens || !v->types || (scores && !v->scores))
        return qerr_set(err, "out of memory for %d tokens", n);
    return 0;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

static int from_bin(GgufVocab *v, const Tokenizer *t, QErr *err) {
    const int n = tokenizer_vocab_size(t);
    if (vocab_alloc(v, n, 1, err) != 0) return -1;
    snprintf(v->model, sizeof v->model, "llama");
    v->bos = TOKEN_BOS, v->eos = TOKEN_EOS, v->unk = 0, v->add_bos = -1;
    for (int i = 0; i < n; i++) {
        static const char *const special[3] = {"<unk>", "<s>", "</s>"};
        const char *s = i < 3 ? special[i] : tokenizer_vocab_str(t, i);
        size_t spaces = 0, len = strlen(s);
        for (size_t k = 0; k < len; k++) spaces += s[k] == ' ';
        char *p = malloc(len + 2 * spaces + 1);
        if (!(v->tokens[i] = p)) return qerr_set(err, "out of memory");
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ')
                memcpy(p, "\xe2\x96\x81", 3), p += 3; /* U+2581, sentencepiece's space */
            else
                *p++ = s[k];
        }
        *p = 0;
        v->scores[i] = tokenizer_score(t, i);
        const char *raw = tokenizer_vocab_str(t, i);
        v->types[i] = i == 0               ? TT_UNKNOWN
                      : i <= 2 || !*raw    ? TT_CONTROL
                      : is_byte_piece(raw) ? TT_BYTE
                                           : TT_NORMAL;
    }
    return 0;
}

/* "left right" for every merge, in rank order */
static int hf_merges(GgufVocab *v, const HfTokenizer *t, QErr *err) {
    HfMerges hm;
    if (hf_tokenizer_merge_list(t, &hm, err) != 0) return -1;
    v->merges = calloc((size_t)hm.n + 1, sizeof *v->merges);
    int rc = v->merges ? 0 : qerr_set(err, "out of memory for %d merges", hm.n);
    for (int i = 0; rc == 0 && i < hm.n; i++) {
        int ln, rn;
        const char *a = hf_tokenizer_token(t, hm.left[i], &ln), *b = hf_tokenizer_token(t, hm.right[i], &rn);
        char *m = malloc((size_t)ln + (size_t)rn + 2);
        if (!m) {
            rc = qerr_set(err, "out of memory for the merges");
            break;
        }
        memcpy(m, a, (size_t)ln), m[ln] = ' ', memcpy(m + ln + 1, b, (size_t)rn), m[ln + 1 + rn] = 0;
        v->merges[v->n_merges++] = m;
    }
    hf_merges_free(&hm);
    return rc;
}

/* SentencePiece style: score -rank for the tokens merges make (see the top) */
static int hf_scores(GgufVocab *v, const HfTokenizer *t, QErr *err) {
    HfMerges hm;
    if (hf_tokenizer_merge_list(t, &hm, err) != 0) return -1;
    for (int i = 0; i < v->n; i++) v->scores[i] = -1e9f;
    for (int i = hm.n - 1; i >= 0; i--) /* downwards: a token made by several merges keeps the lowest rank */
        if (hm.merged[i] < v->n) v->scores[hm.merged[i]] = -(float)i;
    hf_merges_free(&hm);
    return 0;
}

static int from_hf(GgufVocab *v, const HfTokenizer *t, int vocab_size, const char *path, QErr *err) {
    const HfStyle style = hf_tokenizer_style(t);
    if (style == HF_STYLE_OTHER)
        return qerr_set(
            err,
            "--tokenizer %s: neither byte-level BPE (Llama 3, Qwen) nor SentencePiece-style BPE with "
            "byte fallback (Llama 2): no llama.cpp tokenizer matches it",
            path);
    if (style == HF_STYLE_BYTE_LEVEL) {
        const char *re = hf_tokenizer_split_regex(t);
        for (size_t i = 0; re && i < sizeof KNOWN_PRE / sizeof KNOWN_PRE[0]; i++)
            if (strcmp(re, KNOWN_PRE[i].regex) == 0) v->pre = KNOWN_PRE[i].name;
        if (!v->pre)
            return qerr_set(err,
                            "--tokenizer %s: pre-tokenizer regex \"%.300s\" is not one llama.cpp implements "
                            "(Llama 3's \"llama-bpe\" or Qwen2's \"qwen2\"); llama.cpp would split text "
                            "differently",
                            path, re ? re : "(none: ByteLevel's GPT-2 pattern)");
    }
    const int sp = style == HF_STYLE_SENTENCEPIECE;
    if (vocab_alloc(v, vocab_size, sp, err) != 0) return -1;
    snprintf(v->model, sizeof v->model, "%s", sp ? "llama" : "gpt2");
    int unk = hf_tokenizer_unk(t);
    for (int i = 0; i < vocab_size; i++) {
        int len = 0;
        const char *s = hf_tokenizer_token(t, i, &len);
        char pad[32];
        if (!s) {
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            s = pad, len = (int)strlen(pad);
            v->n_pad++;
        }
        if (!(v->tokens[i] = dup_bytes(s, (size_t)len))) return qerr_set(err, "out of memory");
        int added = hf_tokenizer_added(t, i);
        v->types[i] = s == pad                 ? TT_UNUSED
                      : added == 2             ? TT_CONTROL
                      : added == 1             ? TT_USER
                      : i == unk               ? TT_UNKNOWN
                      : sp && is_byte_piece(s) ? TT_BYTE
                                               : TT_NORMAL;
    }
    if ((sp ? hf_scores(v, t, err) : hf_merges(v, t, err)) != 0) return -1;
    v->bos = hf_tokenizer_bos(t), v->eos = hf_tokenizer_eos(t), v->unk = unk;
    v->add_bos = hf_tokenizer_adds_bos(t);
    if (v->bos < 0) v->bos = v->eos; /* never added (add_bos 0): llama.cpp wants an id */
    if (hf_tokenizer_normalizes(t))
        log_warn("export: %s normalizes text to NFC; llama.cpp's tokenizer does not, so text in other "
                 "Unicode forms tokenizes differently there",
                 path);
    return 0;
}

int gguf_vocab_load(GgufVocab *v, const char *path, int vocab_size, QErr *err) {
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = v->add_bos = -1;
    TextTokenizer *tt = NULL;
    if (ttok_open(&tt, path, err) != 0) return qerr_wrap(err, "--tokenizer");
    const int n = ttok_vocab_size(tt);
    int rc = 0;
    if (ttok_bin(tt) && n != vocab_size)
        rc = qerr_set(err,
                      "--tokenizer %s: %d tokens, but the model's vocab_size is %d; pass the tokenizer the "
                      "model was trained with",
                      path, n, vocab_size);
    else if (ttok_hf(tt) && n > vocab_size)
        rc = qerr_set(err, "--tokenizer %s: %d tokens, more than the model's vocab_size %d", path, n,
                      vocab_size);
    else if (n < 3)
        rc = qerr_set(err, "--tokenizer %s: %d tokens, expected at least <unk>, <s>, </s>", path, n);
    if (rc == 0)
        rc = ttok_bin(tt) ? from_bin(v, ttok_bin(tt), err) : from_hf(v, ttok_hf(tt), vocab_size, path, err);
    ttok_free(tt);
    if (rc != 0) {
        gguf_vocab_free(v);
        return -1;
    }
    return 0;
}
