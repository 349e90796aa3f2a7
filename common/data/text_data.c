/* text_data.c — see text_data.h. */
#include "text_data.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"
#include "../base/rng.h"
#include "utf8.h"

int text_format_parse(const char *s, TextFormat *f, QErr *err) {
    if (!s || strcmp(s, "auto") == 0)
        *f = TEXT_AUTO;
    else if (strcmp(s, "text") == 0)
        *f = TEXT_PLAIN;
    else if (strcmp(s, "jsonl") == 0)
        *f = TEXT_JSONL;
    else
        return qerr_setc(err, QERR_USAGE, "--format: \"%s\" is not text, jsonl or auto", s);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void text_docs_free(char **docs, size_t *lens, size_t n) {
    for (size_t i = 0; docs && i < n; i++) free(docs[i]);
    free(docs), free(lens);
}

static int push_doc(char ***docs, size_t **lens, size_t *n, size_t *cap, const char *s, size_t len) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **d = realloc(*docs, c * sizeof *d);
        if (!d) return -1;
        *docs = d;
        size_t *l = realloc(*lens, c * sizeof *l);
        if (!l) return -1;
        *lens = l, *cap = c;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, s, len);
    copy[len] = 0;
    (*docs)[*n] = copy, (*lens)[*n] = len, (*n)++;
    return 0;
}

/* cJSON ends a string at an escaped NUL: such a text would be cut short. */
static int has_nul_escape(const char *p, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++)
        if (p[i] == '\\' && p[i + 1] == 'u' && memcmp(p + i + 2, "0000", 4) == 0) {
            size_t b = 0; /* an escaped backslash before it makes it plain text */
            while (b < i && p[i - 1 - b] == '\\') b++;
            if (b % 2 == 0) return 1;
        }
    return 0;
}

int text_read_docs(const char *path, TextFormat f, char ***docs, size_t **lens, size_t *n, QErr *err) {
    *docs = NULL, *lens = NULL, *n = 0;
    if (f == TEXT_AUTO) f = ends_with(path, ".jsonl") ? TEXT_JSONL : TEXT_PLAIN;
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (file_read_all(path, &text, &len, err) != 0) return -1;
    const char *nul = memchr(text, 0, len);
    if (nul) {
        qerr_setc(err, QERR_CORRUPT, "%s: NUL byte at offset %zu: not a text file", path,
                  (size_t)(nul - text));
        free(text);
        return -1;
    }
    int rc = 0;
    if (f == TEXT_PLAIN) {
        if (push_doc(docs, lens, n, &cap, text, len)) rc = qerr_set(err, "%s: out of memory", path);
    } else {
        size_t line = 0, bad = 0;
        for (char *p = text; rc == 0 && p < text + len; line++) {
            char *e = memchr(p, '\n', (size_t)(text + len - p));
            size_t ll = e ? (size_t)(e - p) : (size_t)(text + len - p);
            size_t k = 0;
            while (k < ll && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
            if (k < ll && has_nul_escape(p, ll)) {
                rc =
                    qerr_setc(err, QERR_CORRUPT,
                              "%s: line %zu: a NUL character (\\u0000) in a text is refused", path, line + 1);
            } else if (k < ll) {
                cJSON *o = cJSON_ParseWithLength(p, ll);
                const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
                if (!o)
                    rc = qerr_setc(err, QERR_CORRUPT, "%s: line %zu is not valid JSON", path, line + 1);
                else if (!cJSON_IsString(t))
                    rc = qerr_setc(err, QERR_CORRUPT, "%s: line %zu has no \"text\" string field", path,
                                   line + 1);
                else if (!utf8_valid(t->valuestring, strlen(t->valuestring), &bad))
                    rc = qerr_setc(err, QERR_CORRUPT,
                                   "%s: line %zu: invalid UTF-8 at byte offset %zu of its text: refused",
                                   path, line + 1, bad);
                else if (push_doc(docs, lens, n, &cap, t->valuestring, strlen(t->valuestring)))
                    rc = qerr_set(err, "%s: out of memory", path);
                cJSON_Delete(o);
            }
            p += ll + 1;
        }
        if (rc == 0 && *n == 0) rc = qerr_setc(err, QERR_CORRUPT, "%s: no JSONL records", path);
    }
    free(text);
    if (rc != 0) {
        text_docs_free(*docs, *lens, *n);
        *docs = NULL, *lens = NULL, *n = 0;
    }
    return rc;
}

int text_windows(const int *ids, size_t n, const WindowSpec *w, TokenSet *ts, QErr *err) {
    memset(ts, 0, sizeof *ts);
    if (w->seq_len < 1) return qerr_setc(err, QERR_USAGE, "sequence length %d must be >= 1", w->seq_len);
    if (n < (size_t)w->seq_len)
        return qerr_set(err, "the text encodes to %zu tokens, fewer than one sequence of %d", n, w->seq_len);
    size_t span = n - (size_t)w->seq_len + 1; /* possible starts */
    if (w->random && (w->n_seq < 1 || span > INT_MAX))
        return qerr_set(err, "random windows need n_seq >= 1 and at most %d starts", INT_MAX);
    size_t n_seq = w->random ? (size_t)w->n_seq : n / (size_t)w->seq_len;
    if (!w->random && w->n_seq > 0 && n_seq > (size_t)w->n_seq) n_seq = (size_t)w->n_seq;
    if (n_seq > INT_MAX / (size_t)w->seq_len) return qerr_set(err, "%zu sequences is too many", n_seq);
    int *out = malloc(n_seq * (size_t)w->seq_len * sizeof *out);
    if (!out) return qerr_set(err, "out of memory for %zu sequences", n_seq);
    Rng r;
    rng_seed(&r, w->seed);
    for (size_t i = 0; i < n_seq; i++) {
        size_t start = w->random ? (size_t)rng_int(&r, (int)span) : i * (size_t)w->seq_len;
        memcpy(out + i * (size_t)w->seq_len, ids + start, (size_t)w->seq_len * sizeof *out);
    }
    ts->tokens = out, ts->n_seq = (int)n_seq, ts->seq_len = w->seq_len;
    return 0;
}

int text_load_tokens(const char *path, TextFormat f, const TextTokenizer *tok, const WindowSpec *w,
                     TokenSet *ts, QErr *err) {
    memset(ts, 0, sizeof *ts);
    char **docs;
    size_t *lens, nd;
    if (text_read_docs(path, f, &docs, &lens, &nd, err) != 0) return -1;
    size_t tot = 0;
    for (size_t i = 0; i < nd; i++) tot += lens[i] + (i ? 2 : 0);
    char *all = malloc(tot + 1);
    if (!all) {
        text_docs_free(docs, lens, nd);
        return qerr_set(err, "%s: out of memory", path);
    }
    size_t o = 0;
    for (size_t i = 0; i < nd; i++) {
        if (i) memcpy(all + o, "\n\n", 2), o += 2;
        memcpy(all + o, docs[i], lens[i]), o += lens[i];
    }
    all[o] = 0;
    text_docs_free(docs, lens, nd);
    int *ids = NULL;
    size_t n = 0;
    int rc = ttok_encode(tok, all, tot, 1, &ids, &n, err);
    free(all);
    if (rc == 0) rc = text_windows(ids, n, w, ts, err);
    free(ids);
    if (rc != 0) return qerr_wrap(err, "%s", path);
    ts->vocab_size = ttok_vocab_size(tok);
    return 0;
}
