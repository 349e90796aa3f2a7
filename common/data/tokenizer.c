/* tokenizer.c — llama2.c tokenizer: load, encode (BPE merges), decode. */
#include "tokenizer.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"

typedef struct {
    const char *str;
    int len;
    int id;
} TokenIndex;

struct Tokenizer {
    int vocab_size;
    int max_token_length; /* as declared by the file */
    int longest;          /* longest token actually present */
    char *arena;          /* all token strings, each NUL-terminated */
    char **vocab;         /* vocab[i] points into arena */
    int *len;             /* strlen(vocab[i]) */
    float *scores;
    TokenIndex *sorted;    /* sorted by (string, id) for binary search */
    char byte_pieces[512]; /* byte b as a 1-char string at 2*b */
};

/* ---------------------------------------------------------------- loading */

static int32_t read_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static float read_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* strcmp order on the bytes, then shorter first: the same as strcmp for
 * strings without NULs, but works on a (pointer, length) key. */
static int cmp_bytes(const char *a, int alen, const char *b, int blen) {
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    if (c != 0) return c;
    return (alen > blen) - (alen < blen);
}

static int cmp_index(const void *pa, const void *pb) {
    const TokenIndex *a = pa, *b = pb;
    int c = cmp_bytes(a->str, a->len, b->str, b->len);
    if (c != 0) return c;
    return (a->id > b->id) - (a->id < b->id);
}

/* Id of the vocab string equal to s[0..n), lowest id if duplicated, or -1. */
static int lookup(const Tokenizer *t, const char *s, int n) {
    int lo = 0, hi = t->vocab_size; /* first entry >= key */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cmp_bytes(t->sorted[mid].str, t->sorted[mid].len, s, n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->vocab_size && cmp_bytes(t->sorted[lo].str, t->sorted[lo].len, s, n) == 0)
        return t->sorted[lo].id;
    return -1;
}

/* "token 5", or "token 5 of 32000" when the count is known. */
static const char *token_at(char *buf, size_t n, int i, int want) {
    if (want > 0)
        snprintf(buf, n, "token %d of %d", i, want);
    else
        snprintf(buf, n, "token %d", i);
    return buf;
}

/* Walks the records once: checks every field and counts tokens and bytes.
 * want > 0: exactly that many tokens; 0: until the end of the file. */
static int scan_records(const MappedFile *mf, int max_len, int want, int *count, size_t *bytes,
                        QErr *err) {
    size_t off = 4, total = 0;
    int i = 0;
    char at[64];
    while (want > 0 ? i < want : off < mf->size) {
        size_t left = mf->size - off;
        if (left < 8)
            return qerr_set(err,
                            "%s: truncated at %s (offset %zu): need 8 bytes for score and "
                            "length, %zu left",
                            mf->path, token_at(at, sizeof at, i, want), off, left);
        int32_t len = read_i32(mf->data + off + 4);
        if (len < 0)
            return qerr_set(err, "%s: %s (offset %zu): negative length %d", mf->path,
                            token_at(at, sizeof at, i, want), off + 4, (int)len);
        if (len > max_len)
            return qerr_set(err, "%s: %s (offset %zu): length %d exceeds max_token_length %d",
                            mf->path, token_at(at, sizeof at, i, want), off + 4, (int)len, max_len);
        if ((size_t)len > left - 8)
            return qerr_set(err,
                            "%s: truncated at %s (offset %zu): length %d but only %zu bytes "
                            "left",
                            mf->path, token_at(at, sizeof at, i, want), off + 4, (int)len,
                            left - 8);
        off += 8 + (size_t)len;
        total += (size_t)len;
        if (i == INT_MAX) return qerr_set(err, "%s: too many tokens", mf->path);
        i++;
    }
    if (off < mf->size)
        return qerr_set(err,
                        "%s: %zu bytes after token %d: the file holds more tokens than the "
                        "expected vocab_size %d",
                        mf->path, mf->size - off, want - 1, want);
    if (i == 0) return qerr_set(err, "%s: no tokens after the header", mf->path);
    *count = i;
    *bytes = total;
    return 0;
}

static int build(Tokenizer *t, const MappedFile *mf, size_t bytes, QErr *err) {
    int n = t->vocab_size;
    t->arena = malloc(bytes + (size_t)n);
    t->vocab = malloc((size_t)n * sizeof *t->vocab);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    t->sorted = malloc((size_t)n * sizeof *t->sorted);
    if (!t->arena || !t->vocab || !t->len || !t->scores || !t->sorted)
        return qerr_set(err, "%s: out of memory for %d tokens", mf->path, n);
    size_t off = 4;
    char *dst = t->arena;
    for (int i = 0; i < n; i++) {
        int32_t len = read_i32(mf->data + off + 4);
        t->scores[i] = read_f32(mf->data + off);
        memcpy(dst, mf->data + off + 8, (size_t)len);
        dst[len] = '\0';
        t->vocab[i] = dst;
        t->len[i] = (int)strlen(dst); /* an embedded NUL ends it, as in llama2.c */
        if (t->len[i] > t->longest) t->longest = t->len[i];
        t->sorted[i] = (TokenIndex){dst, t->len[i], i};
        dst += len + 1;
        off += 8 + (size_t)len;
    }
    qsort(t->sorted, (size_t)n, sizeof *t->sorted, cmp_index);
    return 0;
}

int tokenizer_load(Tokenizer **out, const char *path, int vocab_size, QErr *err) {
    *out = NULL;
    if (vocab_size < 0)
        return qerr_set(err, "%s: expected vocab_size %d must be >= 0", path, vocab_size);
    MappedFile mf;
    if (mapfile_open(&mf, path, err) != 0) return -1;
    if (mf.size < 4) {
        qerr_set(err, "%s: %zu bytes, too short for the int32 max_token_length header", path,
                 mf.size);
        mapfile_close(&mf);
        return -1;
    }
    int32_t max_len = read_i32(mf.data);
    if (max_len <= 0) {
        qerr_set(err, "%s: max_token_length is %d, expected > 0 (not a llama2.c tokenizer?)", path,
                 (int)max_len);
        mapfile_close(&mf);
        return -1;
    }
    int count = 0;
    size_t bytes = 0;
    if (scan_records(&mf, max_len, vocab_size, &count, &bytes, err) != 0) {
        mapfile_close(&mf);
        return -1;
    }
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        mapfile_close(&mf);
        return qerr_set(err, "%s: out of memory", path);
    }
    t->vocab_size = count;
    t->max_token_length = max_len;
    for (int b = 0; b < 256; b++) t->byte_pieces[2 * b] = (char)(unsigned char)b;
    int rc = build(t, &mf, bytes, err);
    mapfile_close(&mf);
    if (rc != 0) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->vocab);
    free(t->len);
    free(t->scores);
    free(t->sorted);
    free(t);
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int tokenizer_max_token_length(const Tokenizer *t) { return t->max_token_length; }

const char *tokenizer_vocab_str(const Tokenizer *t, int token) {
    return token >= 0 && token < t->vocab_size ? t->vocab[token] : NULL;
}

float tokenizer_score(const Tokenizer *t, int token) {
    return token >= 0 && token < t->vocab_size ? t->scores[token] : 0.0f;
}

int tokenizer_lookup(const Tokenizer *t, const char *str) {
    size_t n = strlen(str);
    return n > (size_t)INT_MAX ? -1 : lookup(t, str, (int)n);
}

/* --------------------------------------------------------------- encoding */

/* One candidate merge of adjacent nodes left/right into id. The versions
 * say which state of the two nodes it was computed for: a merge bumps the
 * version of both nodes, which makes every older entry about them stale. */
typedef struct {
    float score;
    int left, right, id;
    unsigned vl, vr;
} Pair;

/* Max-heap: best score first, and on equal scores the leftmost pair, which
 * is what llama2.c's left-to-right scan with a strict '>' picks. Node
 * indices keep the text order, so "leftmost" is the smaller left index. */
static int pair_before(const Pair *a, const Pair *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

typedef struct {
    Pair *p;
    size_t n, cap;
} Heap;

static int heap_push(Heap *h, Pair x) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 1024;
        Pair *np = realloc(h->p, cap * sizeof *np);
        if (!np) return -1;
        h->p = np;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&x, &h->p[up])) break;
        h->p[i] = h->p[up];
        i = up;
    }
    h->p[i] = x;
    return 0;
}

static Pair heap_pop(Heap *h) {
    Pair top = h->p[0], x = h->p[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->p[c + 1], &h->p[c])) c++;
        if (!pair_before(&h->p[c], &x)) break;
        h->p[i] = h->p[c];
        i = c;
    }
    if (h->n > 0) h->p[i] = x;
    return top;
}

typedef struct {
    const Tokenizer *t;
    int *tok, *prev, *next; /* a doubly linked list over the tokens */
    unsigned *ver;
    char *buf; /* room for two concatenated tokens */
    Heap heap;
} Merger;

/* Queues the merge of nodes a and b if their concatenation is in the vocab.
 * Only scores above -1e10 count: llama2.c starts its search from that. */
static int consider(Merger *m, int a, int b) {
    if (a < 0 || b < 0) return 0;
    const Tokenizer *t = m->t;
    int la = t->len[m->tok[a]], lb = t->len[m->tok[b]];
    memcpy(m->buf, t->vocab[m->tok[a]], (size_t)la);
    memcpy(m->buf + la, t->vocab[m->tok[b]], (size_t)lb);
    int id = lookup(t, m->buf, la + lb);
    if (id < 0 || !(t->scores[id] > -1e10f)) return 0;
    Pair p = {t->scores[id], a, b, id, m->ver[a], m->ver[b]};
    return heap_push(&m->heap, p);
}

/* Greedy BPE over tok[0..n): returns the new count, or -1 on out of memory. */
static int merge_all(Merger *m, int n) {
    for (int i = 0; i < n; i++) {
        m->prev[i] = i - 1;
        m->next[i] = i + 1 < n ? i + 1 : -1;
        m->ver[i] = 0;
    }
    for (int i = 0; i + 1 < n; i++)
        if (consider(m, i, i + 1) != 0) return -1;
    while (m->heap.n > 0) {
        Pair p = heap_pop(&m->heap);
        if (m->ver[p.left] != p.vl || m->ver[p.right] != p.vr) continue; /* stale */
        int a = p.left, b = p.right;
        m->tok[a] = p.id;
        m->ver[a]++;
        m->ver[b]++; /* b is gone */
        m->next[a] = m->next[b];
        if (m->next[b] >= 0) m->prev[m->next[b]] = a;
        if (consider(m, m->prev[a], a) != 0 || consider(m, a, m->next[a]) != 0) return -1;
    }
    /* compact the surviving nodes, in order, to the front */
    int k = 0;
    for (int i = n > 0 ? 0 : -1; i >= 0; i = m->next[i]) m->tok[k++] = m->tok[i];
    return k;
}

/* Appends the token for one codepoint s[0..n), or its bytes as byte tokens. */
static int push_piece(const Tokenizer *t, const char *s, int n, size_t at, int *tok, int *len,
                      QErr *err) {
    int id = lookup(t, s, n);
    if (id >= 0) {
        tok[(*len)++] = id;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int b = (unsigned char)s[i];
        if (b + 3 >= t->vocab_size)
            return qerr_set(err,
                            "tokenizer_encode: byte 0x%02X at text offset %zu is not in the vocab "
                            "and its byte token %d is outside the vocab of %d",
                            b, at + (size_t)i, b + 3, t->vocab_size);
        tok[(*len)++] = b + 3;
    }
    return 0;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int **tokens,
                     int *n_tokens, QErr *err) {
    *tokens = NULL;
    *n_tokens = 0;
    if (!text) return qerr_set(err, "tokenizer_encode: text is NULL");
    if ((bos || eos) && t->vocab_size <= TOKEN_EOS)
        return qerr_set(err, "tokenizer_encode: BOS/EOS need a vocab of at least 3, have %d",
                        t->vocab_size);
    size_t n_text = strlen(text);
    if (n_text > (size_t)INT_MAX / 2 - 4)
        return qerr_set(err, "tokenizer_encode: text of %zu bytes is too long", n_text);
    size_t cap = n_text + 3; /* BOS + dummy prefix + one per byte + EOS */
    Merger m = {.t = t};
    m.tok = malloc(cap * sizeof *m.tok);
    m.prev = malloc(cap * sizeof *m.prev);
    m.next = malloc(cap * sizeof *m.next);
    m.ver = malloc(cap * sizeof *m.ver);
    m.buf = malloc(2 * (size_t)t->longest + 1);
    int n = 0, rc = -1;
    if (!m.tok || !m.prev || !m.next || !m.ver || !m.buf) {
        qerr_set(err, "tokenizer_encode: out of memory for %zu bytes of text", n_text);
        goto done;
    }
    if (bos) m.tok[n++] = TOKEN_BOS;
    if (text[0] != '\0' && push_piece(t, " ", 1, 0, m.tok, &n, err) != 0) goto done;
    /* One piece per UTF-8 codepoint: a byte plus its continuation bytes, at
     * most 4 in all (llama2.c groups exactly like this, even for bad UTF-8). */
    for (size_t i = 0; i < n_text;) {
        size_t j = i + 1;
        while (j < n_text && ((unsigned char)text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        if (push_piece(t, text + i, (int)(j - i), i, m.tok, &n, err) != 0) goto done;
        i = j;
    }
    n = merge_all(&m, n);
    if (n < 0) {
        qerr_set(err, "tokenizer_encode: out of memory while merging");
        goto done;
    }
    if (eos) m.tok[n++] = TOKEN_EOS;
    rc = 0;
done:
    free(m.prev);
    free(m.next);
    free(m.ver);
    free(m.buf);
    free(m.heap.p);
    if (rc != 0) {
        free(m.tok);
        return -1;
    }
    *tokens = m.tok;
    *n_tokens = n;
    return 0;
}

/* --------------------------------------------------------------- decoding */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xHH>" -> byte value, else -1. */
static int byte_token_value(const char *s) {
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

const char *tokenizer_piece(const Tokenizer *t, int prev_token, int token) {
    if (token < 0 || token >= t->vocab_size) return NULL;
    const char *piece = t->vocab[token];
    /* after BOS, sentencepiece drops the leading space (llama2.c PR #89) */
    if (prev_token == TOKEN_BOS && piece[0] == ' ') piece++;
    int b = byte_token_value(piece);
    if (b >= 0) piece = t->byte_pieces + 2 * b;
    return piece;
}

int tokenizer_decode(const Tokenizer *t, const int *tokens, int n, char **text, QErr *err) {
    *text = NULL;
    if (n < 0) return qerr_set(err, "tokenizer_decode: negative token count %d", n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= t->vocab_size)
            return qerr_set(err,
                            "tokenizer_decode: token %d at position %d is outside the vocab "
                            "of %d",
                            tokens[i], i, t->vocab_size);
        if (tokens[i] == TOKEN_BOS || tokens[i] == TOKEN_EOS) continue;
        total += strlen(tokenizer_piece(t, i > 0 ? tokens[i - 1] : -1, tokens[i]));
    }
    char *s = malloc(total + 1);
    if (!s) return qerr_set(err, "tokenizer_decode: out of memory for %zu bytes", total);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (tokens[i] == TOKEN_BOS || tokens[i] == TOKEN_EOS) continue;
        const char *p = tokenizer_piece(t, i > 0 ? tokens[i - 1] : -1, tokens[i]);
        size_t l = strlen(p);
        memcpy(s + k, p, l);
        k += l;
    }
    s[k] = '\0';
    *text = s;
    return 0;
}
