/* tokenizer.c — llama2.c tokenizer: load, encode (BPE merges), decode. */
#include "tokenizer.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"

#define MAX_VOCAB (1 << 28) /* keeps the hash table size within uint32 */

typedef struct {
    const char *str;
    int len;
    int id;
} TokenIndex;

struct Tokenizer {
    int vocab_size;
    int max_token_length; /* as declared by the file */
    char *arena;          /* all token strings, each NUL-terminated */
    char **vocab;         /* vocab[i] points into arena */
    int *len;             /* strlen(vocab[i]) */
    float *scores;
    int *slots;            /* open-addressing hash table of ids, -1 = empty */
    uint32_t mask;         /* table size - 1 (a power of two) */
    unsigned char *inert;  /* 1: can never take part in a merge (see find_inert) */
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

#define HASH_START 2166136261u /* FNV-1a */

static uint32_t hash_bytes(uint32_t h, const char *s, int n) {
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Id of the vocab string equal to a[0..la) followed by b[0..lb), or -1.
 * Taking the key in two parts saves copying when we look up a pair. */
static int lookup2(const Tokenizer *t, const char *a, int la, const char *b, int lb) {
    uint32_t h = hash_bytes(hash_bytes(HASH_START, a, la), b, lb);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        int id = t->slots[i];
        if (id < 0) return -1;
        const char *v = t->vocab[id];
        if (t->len[id] == la + lb && memcmp(v, a, (size_t)la) == 0 &&
            (lb == 0 || memcmp(v + la, b, (size_t)lb) == 0))
            return id;
    }
}

static int lookup(const Tokenizer *t, const char *s, int n) { return lookup2(t, s, n, "", 0); }

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
static int scan_records(const MappedFile *mf, int max_len, int want, int *count, size_t *bytes, QErr *err) {
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
            return qerr_set(err, "%s: %s (offset %zu): length %d exceeds max_token_length %d", mf->path,
                            token_at(at, sizeof at, i, want), off + 4, (int)len, max_len);
        if ((size_t)len > left - 8)
            return qerr_set(err,
                            "%s: truncated at %s (offset %zu): length %d but only %zu bytes "
                            "left",
                            mf->path, token_at(at, sizeof at, i, want), off + 4, (int)len, left - 8);
        off += 8 + (size_t)len;
        total += (size_t)len;
        if (i == MAX_VOCAB) return qerr_set(err, "%s: more than %d tokens", mf->path, MAX_VOCAB);
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

/* Marks in `mark` every string in the sorted list that is a proper prefix
 * of another one. The strings that start with x sort right after x. */
static void mark_prefixes(const TokenIndex *sorted, int n, unsigned char *mark) {
    for (int k = 0; k < n; k++) {
        const TokenIndex *x = &sorted[k];
        int j = k + 1;
        while (j < n && cmp_bytes(sorted[j].str, sorted[j].len, x->str, x->len) == 0) j++;
        if (j < n && sorted[j].len > x->len && memcmp(sorted[j].str, x->str, (size_t)x->len) == 0)
            mark[x->id] = 1;
    }
}

/* A token is inert when no vocab string starts or ends with it (other than
 * itself): then no concatenation with a neighbour is ever in the vocab, so
 * it never merges, and the greedy merges on its two sides never interact.
 * Encoding uses that to merge long texts in short independent segments
 * (mostly split at byte tokens such as "<0x0A>"), with the exact same result.
 * An empty vocab string would make x + "" == x a merge: then nothing is. */
static int find_inert(Tokenizer *t, size_t bytes, const char *path, QErr *err) {
    int n = t->vocab_size;
    unsigned char *mark = calloc((size_t)n, 1);
    char *rev = malloc(bytes + 1);
    TokenIndex *idx = malloc((size_t)n * sizeof *idx);
    if (!mark || !rev || !idx) {
        free(mark);
        free(rev);
        free(idx);
        return qerr_set(err, "%s: out of memory for %d tokens", path, n);
    }
    int any_empty = 0;
    for (int pass = 0; pass < 2; pass++) { /* prefixes, then suffixes */
        char *dst = rev;
        for (int i = 0; i < n; i++) {
            int l = t->len[i];
            if (l == 0) any_empty = 1;
            if (pass == 0) {
                idx[i] = (TokenIndex){t->vocab[i], l, i};
            } else { /* suffixes are the prefixes of the reversed strings */
                for (int c = 0; c < l; c++) dst[c] = t->vocab[i][l - 1 - c];
                idx[i] = (TokenIndex){dst, l, i};
                dst += l;
            }
        }
        qsort(idx, (size_t)n, sizeof *idx, cmp_index);
        mark_prefixes(idx, n, mark);
    }
    for (int i = 0; i < n; i++) mark[i] = !any_empty && !mark[i];
    free(rev);
    free(idx);
    t->inert = mark;
    return 0;
}

/* The hash table for lookup: at most half full, so probes stay short. The
 * lowest id wins for duplicated strings (llama2.c's bsearch picks any). */
static int build_table(Tokenizer *t, const char *path, QErr *err) {
    uint32_t size = 1024;
    while (size < 2u * (uint32_t)t->vocab_size) size *= 2;
    t->slots = malloc(size * sizeof *t->slots);
    if (!t->slots) return qerr_set(err, "%s: out of memory for the vocab table", path);
    t->mask = size - 1;
    for (uint32_t i = 0; i < size; i++) t->slots[i] = -1;
    for (int id = 0; id < t->vocab_size; id++) {
        if (lookup(t, t->vocab[id], t->len[id]) >= 0) continue; /* duplicate */
        uint32_t i = hash_bytes(HASH_START, t->vocab[id], t->len[id]) & t->mask;
        while (t->slots[i] >= 0) i = (i + 1) & t->mask;
        t->slots[i] = id;
    }
    return 0;
}

static int build(Tokenizer *t, const MappedFile *mf, size_t bytes, QErr *err) {
    int n = t->vocab_size;
    t->arena = malloc(bytes + (size_t)n);
    t->vocab = malloc((size_t)n * sizeof *t->vocab);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    if (!t->arena || !t->vocab || !t->len || !t->scores)
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
        dst += len + 1;
        off += 8 + (size_t)len;
    }
    if (build_table(t, mf->path, err) != 0) return -1;
    return find_inert(t, bytes, mf->path, err);
}

int tokenizer_load(Tokenizer **out, const char *path, int vocab_size, QErr *err) {
    *out = NULL;
    if (vocab_size < 0 || vocab_size > MAX_VOCAB)
        return qerr_set(err, "%s: expected vocab_size %d must be in 0..%d", path, vocab_size, MAX_VOCAB);
    MappedFile mf;
    if (mapfile_open(&mf, path, err) != 0) return -1;
    if (mf.size < 4) {
        qerr_set(err, "%s: %zu bytes, too short for the int32 max_token_length header", path, mf.size);
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
    free(t->slots);
    free(t->inert);
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
    int *tok;         /* the segment being merged */
    int *prev, *next; /* a doubly linked list over it */
    unsigned *ver;
    Heap heap;
} Merger;

/* Queues the merge of nodes a and b if their concatenation is in the vocab.
 * Only scores above -1e10 count: llama2.c starts its search from that. */
static int consider(Merger *m, int a, int b) {
    if (a < 0 || b < 0) return 0;
    const Tokenizer *t = m->t;
    int ta = m->tok[a], tb = m->tok[b];
    int id = lookup2(t, t->vocab[ta], t->len[ta], t->vocab[tb], t->len[tb]);
    if (id < 0 || !(t->scores[id] > -1e10f)) return 0;
    Pair p = {t->scores[id], a, b, id, m->ver[a], m->ver[b]};
    return heap_push(&m->heap, p);
}

/* Greedy BPE over tok[0..n): returns the new count, or -1 on out of memory. */
static int merge_segment(Merger *m, int *tok, int n) {
    m->tok = tok;
    m->heap.n = 0;
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
        tok[a] = p.id;
        m->ver[a]++;
        m->ver[b]++; /* b is gone */
        m->next[a] = m->next[b];
        if (m->next[b] >= 0) m->prev[m->next[b]] = a;
        if (consider(m, m->prev[a], a) != 0 || consider(m, a, m->next[a]) != 0) return -1;
    }
    /* compact the surviving nodes, in order, to the front */
    int k = 0;
    for (int i = n > 0 ? 0 : -1; i >= 0; i = m->next[i]) tok[k++] = tok[i];
    return k;
}

/* Merges tok[0..n) segment by segment between inert tokens (see find_inert)
 * and packs the results to the front: returns the new count, or -1. */
static int merge_all(Merger *m, int *tok, int n) {
    int out = 0;
    for (int s = 0; s < n;) {
        int e = s;
        while (e < n && !m->t->inert[tok[e]]) e++;
        int k = merge_segment(m, tok + s, e - s);
        if (k < 0) return -1;
        memmove(tok + out, tok + s, (size_t)k * sizeof *tok);
        out += k;
        for (; e < n && m->t->inert[tok[e]]; e++) tok[out++] = tok[e];
        s = e;
    }
    return out;
}

/* Appends the token for one codepoint s[0..n), or its bytes as byte tokens. */
static int push_piece(const Tokenizer *t, const char *s, int n, size_t at, int *tok, int *len, QErr *err) {
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

int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int **tokens, int *n_tokens,
                     QErr *err) {
    *tokens = NULL;
    *n_tokens = 0;
    if (!text) return qerr_set(err, "tokenizer_encode: text is NULL");
    if ((bos || eos) && t->vocab_size <= TOKEN_EOS)
        return qerr_set(err, "tokenizer_encode: BOS/EOS need a vocab of at least 3, have %d", t->vocab_size);
    size_t n_text = strlen(text);
    if (n_text > (size_t)INT_MAX / 2 - 4)
        return qerr_set(err, "tokenizer_encode: text of %zu bytes is too long", n_text);
    size_t cap = n_text + 3; /* BOS + dummy prefix + one per byte + EOS */
    int *tok = malloc(cap * sizeof *tok);
    Merger m = {.t = t};
    m.prev = malloc(cap * sizeof *m.prev);
    m.next = malloc(cap * sizeof *m.next);
    m.ver = malloc(cap * sizeof *m.ver);
    int n = 0, rc = -1;
    if (!tok || !m.prev || !m.next || !m.ver) {
        qerr_set(err, "tokenizer_encode: out of memory for %zu bytes of text", n_text);
        goto done;
    }
    if (bos) tok[n++] = TOKEN_BOS;
    if (text[0] != '\0' && push_piece(t, " ", 1, 0, tok, &n, err) != 0) goto done;
    /* One piece per UTF-8 codepoint: a byte plus its continuation bytes, at
     * most 4 in all (llama2.c groups exactly like this, even for bad UTF-8). */
    for (size_t i = 0; i < n_text;) {
        size_t j = i + 1;
        while (j < n_text && ((unsigned char)text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        if (push_piece(t, text + i, (int)(j - i), i, tok, &n, err) != 0) goto done;
        i = j;
    }
    n = merge_all(&m, tok, n);
    if (n < 0) {
        qerr_set(err, "tokenizer_encode: out of memory while merging");
        goto done;
    }
    if (eos) tok[n++] = TOKEN_EOS;
    rc = 0;
done:
    free(m.prev);
    free(m.next);
    free(m.ver);
    free(m.heap.p);
    if (rc != 0) {
        free(tok);
        return -1;
    }
    *tokens = tok;
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
