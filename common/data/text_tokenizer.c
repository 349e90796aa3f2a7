/* text_tokenizer.c — see text_tokenizer.h. */
#include "text_tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_tokenizer.h"
#include "tokenizer.h"
#include "utf8.h"

struct TextTokenizer {
    Tokenizer *bin;
    HfTokenizer *hf;
};

/* 1: starts (after blanks) with '{', 0: does not, -1: unreadable. */
static int looks_json(const char *path, QErr *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return qerr_setc(err, QERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\n' || c == '\r') {}
    fclose(f);
    return c == '{';
}

int ttok_open(TextTokenizer **out, const char *path, QErr *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return qerr_setc(err, QERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char buf[PATH_MAX];
    if (S_ISDIR(st.st_mode)) {
        if (snprintf(buf, sizeof buf, "%s/tokenizer.json", path) >= (int)sizeof buf)
            return qerr_set(err, "%s: path too long", path);
        if (stat(buf, &st) != 0)
            return qerr_setc(err, QERR_IO, "%s: directory has no tokenizer.json; pass --tokenizer FILE",
                             path);
        path = buf;
    }
    TextTokenizer *t = calloc(1, sizeof *t);
    if (!t) return qerr_set(err, "out of memory");
    int json = looks_json(path, err);
    int rc = json < 0 ? -1
             : json   ? hf_tokenizer_load(&t->hf, path, err)
                      : tokenizer_load(&t->bin, path, 0, err);
    if (rc != 0) {
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int ttok_open_for_model(TextTokenizer **out, const char *model_path, const char *tokenizer_path, QErr *err) {
    if (tokenizer_path) return ttok_open(out, tokenizer_path, err);
    struct stat st;
    if (!model_path || stat(model_path, &st) != 0 || !S_ISDIR(st.st_mode))
        return qerr_setc(
            err, QERR_USAGE,
            "%s is not a Hugging Face directory, so it has no tokenizer.json: pass --tokenizer FILE",
            model_path ? model_path : "(no --model)");
    return ttok_open(out, model_path, err);
}

void ttok_free(TextTokenizer *t) {
    if (!t) return;
    tokenizer_free(t->bin);
    hf_tokenizer_free(t->hf);
    free(t);
}

int ttok_vocab_size(const TextTokenizer *t) {
    return t->hf ? hf_tokenizer_vocab_size(t->hf) : tokenizer_vocab_size(t->bin);
}
int ttok_bos(const TextTokenizer *t) { return t->hf ? hf_tokenizer_bos(t->hf) : TOKEN_BOS; }
int ttok_eos(const TextTokenizer *t) { return t->hf ? hf_tokenizer_eos(t->hf) : TOKEN_EOS; }
const char *ttok_format(const TextTokenizer *t) { return t->hf ? "tokenizer.json" : "tokenizer.bin"; }

int ttok_encode(const TextTokenizer *t, const char *text, size_t len, int add_special, int **ids, size_t *n,
                QErr *err) {
    *ids = NULL, *n = 0;
    if (t->hf) return hf_tokenizer_encode(t->hf, text, len, add_special, ids, n, err);
    size_t bad;
    if (!utf8_valid(text, len, &bad))
        return qerr_setc(err, QERR_CORRUPT, "invalid UTF-8 at byte offset %zu (byte 0x%02X): refused", bad,
                         (unsigned char)text[bad]);
    if (memchr(text, 0, len))
        return qerr_set(err, "NUL byte at offset %zu: refused",
                        (size_t)((const char *)memchr(text, 0, len) - text));
    if (len > INT_MAX) return qerr_set(err, "text of %zu bytes is too long for tokenizer.bin", len);
    char *z = malloc(len + 1);
    if (!z) return qerr_set(err, "out of memory for %zu bytes of text", len);
    memcpy(z, text, len);
    z[len] = 0;
    int *v = NULL, nv = 0;
    int rc = tokenizer_encode(t->bin, z, add_special, 0, &v, &nv, err);
    free(z);
    if (rc != 0) return -1;
    *ids = v, *n = (size_t)nv;
    return 0;
}

int ttok_decode(const TextTokenizer *t, const int *ids, size_t n, int skip_special, char **text, size_t *len,
                QErr *err) {
    if (t->hf) return hf_tokenizer_decode(t->hf, ids, n, skip_special, text, len, err);
    (void)skip_special; /* tokenizer.bin: BOS and EOS never give text */
    if (n > INT_MAX) return qerr_set(err, "decode: %zu ids is too many", n);
    if (tokenizer_decode(t->bin, ids, (int)n, text, err) != 0) return -1;
    *len = strlen(*text);
    return 0;
}

const Tokenizer *ttok_bin(const TextTokenizer *t) { return t->bin; }
const HfTokenizer *ttok_hf(const TextTokenizer *t) { return t->hf; }
