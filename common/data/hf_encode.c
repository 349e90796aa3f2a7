/* hf_encode.c — tokenizer.json encoding: added tokens split out of the raw
 * text, then per remaining segment the normalizers, the pre-tokenizers and
 * the BPE model; the post-processor's special tokens around. See
 * hf_tokenizer.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uninorm.h>

#include "hf_internal.h"
#include "utf8.h"

/* A growable byte string. */
typedef struct {
    char *p;
    size_t n, cap;
} Str;

static int str_add(Str *s, const char *p, size_t n) {
    if (n > (SIZE_MAX >> 2) || s->n > (SIZE_MAX >> 2)) return -1;
    if (s->n + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 256;
        while (c < s->n + n + 1) c *= 2;
        char *q = realloc(s->p, c);
        if (!q) return -1;
        s->p = q, s->cap = c;
    }
    if (n) memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = 0;
    return 0;
}

/* Pieces of the current text: [start, end) byte ranges into one buffer. */
typedef struct {
    size_t *at; /* 2 per piece */
    size_t n, cap;
} Pieces;

static int piece_add(Pieces *ps, size_t a, size_t b) {
    if (a == b) return 0;
    if (ps->n == ps->cap) {
        size_t c = ps->cap ? ps->cap * 2 : 64;
        size_t *q = realloc(ps->at, c * 2 * sizeof *q);
        if (!q) return -1;
        ps->at = q, ps->cap = c;
    }
    ps->at[2 * ps->n] = a, ps->at[2 * ps->n + 1] = b;
    ps->n++;
    return 0;
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    for (size_t i = 0; nn <= hn && i <= hn - nn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

/* Replaces every a in s by b. */
static int replace_all(Str *s, const char *a, const char *b, QErr *err) {
    size_t la = strlen(a), lb = strlen(b);
    if (!find_bytes(s->p, s->n, a, la)) return 0;
    Str o = {0};
    const char *p = s->p, *end = s->p + s->n;
    for (;;) {
        const char *hit = find_bytes(p, (size_t)(end - p), a, la);
        if (!hit) break;
        if (str_add(&o, p, (size_t)(hit - p)) || str_add(&o, b, lb)) goto oom;
        p = hit + la;
    }
    if (str_add(&o, p, (size_t)(end - p))) goto oom;
    free(s->p);
    *s = o;
    return 0;
oom:
    free(o.p);
    return qerr_set(err, "tokenizer: out of memory");
}

static int normalize(const HfTokenizer *t, Str *s, QErr *err) {
    for (int i = 0; i < t->n_norm; i++) {
        const HfNorm *nm = &t->norm[i];
        if (nm->kind == NORM_NFC) {
            size_t k = 0;
            while (k < s->n && (unsigned char)s->p[k] < 0x80) k++;
            if (k == s->n) continue; /* ASCII is already NFC */
            size_t ol = 0;
            uint8_t *o = u8_normalize(UNINORM_NFC, (const uint8_t *)s->p, s->n, NULL, &ol);
            if (!o) return qerr_set(err, "tokenizer: NFC normalization failed");
            Str ns = {0};
            int rc = str_add(&ns, (const char *)o, ol);
            free(o);
            if (rc) return qerr_set(err, "tokenizer: out of memory");
            free(s->p);
            *s = ns;
        } else if (nm->kind == NORM_PREPEND) {
            if (s->n == 0) continue; /* as the tokenizers crate: nothing to prepend to */
            Str ns = {0};
            if (str_add(&ns, nm->a, strlen(nm->a)) || str_add(&ns, s->p, s->n)) {
                free(ns.p);
                return qerr_set(err, "tokenizer: out of memory");
            }
            free(s->p);
            *s = ns;
        } else if (replace_all(s, nm->a, nm->b, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Splits every piece by re (behavior Isolated: matches and the gaps between
 * them are pieces). */
static int split_regex(const pcre2_code *re, const Str *s, Pieces *ps, QErr *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return qerr_set(err, "tokenizer: out of memory");
    Pieces out = {0};
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < ps->n; k++) {
        size_t a = ps->at[2 * k], b = ps->at[2 * k + 1], pos = a, prev = a;
        while (pos < b) {
            int m = pcre2_match(re, (PCRE2_SPTR)s->p + a, b - a, pos - a, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m == PCRE2_ERROR_NOMATCH) break;
            if (m < 0) {
                PCRE2_UCHAR msg[200];
                pcre2_get_error_message(m, msg, sizeof msg);
                rc = qerr_set(err, "tokenizer: pre-tokenizer regex failed at byte %zu: %s", pos,
                              (const char *)msg);
                break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = a + ov[0], me = a + ov[1];
            if (piece_add(&out, prev, ms) || piece_add(&out, ms, me))
                rc = qerr_set(err, "tokenizer: out of memory");
            prev = me;
            /* an empty match moves on by one character */
            pos = me > ms ? me : me + (size_t)utf8_seq_len((unsigned char)s->p[me]);
        }
        if (rc == 0 && prev < b && piece_add(&out, prev, b)) rc = qerr_set(err, "tokenizer: out of memory");
    }
    pcre2_match_data_free(md);
    free(ps->at);
    *ps = out;
    return rc;
}

/* ByteLevel: every piece's bytes become their characters (a new buffer). */
static int byte_level(const HfTokenizer *t, const HfPre *p, Str *s, Pieces *ps, QErr *err) {
    if (p->add_prefix_space) { /* a space before a first piece that has none */
        if (ps->n > 0 && s->p[ps->at[0]] != ' ') {
            Str ns = {0};
            if (str_add(&ns, " ", 1) || str_add(&ns, s->p, s->n)) {
                free(ns.p);
                return qerr_set(err, "tokenizer: out of memory");
            }
            free(s->p);
            *s = ns;
            for (size_t k = 0; k < 2 * ps->n; k++) ps->at[k] += 1;
            ps->at[0] -= 1;
        }
    }
    if (p->re && split_regex(p->re, s, ps, err) != 0) return -1;
    Str o = {0};
    for (size_t k = 0; k < ps->n; k++) {
        size_t a = ps->at[2 * k], b = ps->at[2 * k + 1];
        ps->at[2 * k] = o.n;
        for (size_t i = a; i < b; i++) {
            const char *c = t->byte_char[(unsigned char)s->p[i]];
            if (str_add(&o, c, strlen(c))) {
                free(o.p);
                return qerr_set(err, "tokenizer: out of memory");
            }
        }
        ps->at[2 * k + 1] = o.n;
    }
    free(s->p);
    *s = o;
    if (!s->p) return str_add(s, "", 0) ? qerr_set(err, "tokenizer: out of memory") : 0;
    return 0;
}

/* Metaspace: spaces become the replacement, which is prepended (scheme) and
 * starts a new piece (split). */
static int metaspace(const HfPre *p, int first, Str *s, Pieces *ps, QErr *err) {
    Str o = {0};
    Pieces out = {0};
    size_t rl = strlen(p->repl);
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < ps->n; k++) {
        size_t a = ps->at[2 * k], b = ps->at[2 * k + 1], start = o.n;
        int pre = p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && first && k == 0);
        if (pre && strncmp(s->p + a, p->repl, rl) != 0 && str_add(&o, p->repl, rl)) rc = -1;
        for (size_t i = a; rc == 0 && i < b; i++)
            rc = s->p[i] == ' ' ? str_add(&o, p->repl, rl) : str_add(&o, s->p + i, 1);
        if (rc) break;
        if (!p->split) {
            rc = piece_add(&out, start, o.n);
            continue;
        }
        size_t prev = start;
        for (size_t i = start + 1; rc == 0 && i + rl <= o.n; i++)
            if (memcmp(o.p + i, p->repl, rl) == 0) rc = piece_add(&out, prev, i), prev = i;
        if (rc == 0) rc = piece_add(&out, prev, o.n);
    }
    if (rc == 0 && !o.p) rc = str_add(&o, "", 0);
    free(s->p), free(ps->at);
    *s = o, *ps = out;
    return rc ? qerr_set(err, "tokenizer: out of memory") : 0;
}

typedef struct {
    int *ids;
    size_t n, cap;
} Ids;

/* One segment between added tokens: normalize, pre-tokenize, BPE. */
static int encode_segment(const HfTokenizer *t, const char *text, size_t len, size_t off, int first, Ids *out,
                          QErr *err) {
    if (len == 0) return 0;
    Str s = {0};
    Pieces ps = {0};
    int rc = str_add(&s, text, len) ? qerr_set(err, "tokenizer: out of memory") : 0;
    if (rc == 0) rc = normalize(t, &s, err);
    if (rc == 0 && piece_add(&ps, 0, s.n)) rc = qerr_set(err, "tokenizer: out of memory");
    for (int i = 0; rc == 0 && i < t->n_pre; i++) {
        const HfPre *p = &t->pre[i];
        if (p->kind == PRE_SPLIT)
            rc = split_regex(p->re, &s, &ps, err);
        else if (p->kind == PRE_BYTELEVEL)
            rc = byte_level(t, p, &s, &ps, err);
        else
            rc = metaspace(p, first, &s, &ps, err);
    }
    /* offsets in errors are approximate after normalization: the segment's start */
    for (size_t k = 0; rc == 0 && k < ps.n; k++)
        rc = hf_bpe_word(&t->bpe, s.p + ps.at[2 * k], ps.at[2 * k + 1] - ps.at[2 * k], off, &out->ids,
                         &out->n, &out->cap, err);
    free(s.p), free(ps.at);
    return rc;
}

/* The leftmost-longest added token at or after from: its index, or -1. */
static int next_added(const HfTokenizer *t, const char *text, size_t len, size_t from, size_t *at) {
    for (size_t i = from; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        for (int j = t->added_first[c]; j < t->added_first[c + 1]; j++) {
            const HfAdded *a = &t->added[j];
            if ((size_t)a->len <= len - i && memcmp(text + i, a->content, (size_t)a->len) == 0) {
                *at = i;
                return j; /* longest first within a first byte */
            }
        }
    }
    return -1;
}

static int ids_add(Ids *o, int id) {
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 256;
        int *q = realloc(o->ids, c * sizeof *q);
        if (!q) return -1;
        o->ids = q, o->cap = c;
    }
    o->ids[o->n++] = id;
    return 0;
}

int hf_tokenizer_encode(const HfTokenizer *t, const char *text, size_t len, int add_special, int **ids,
                        size_t *n, QErr *err) {
    *ids = NULL, *n = 0;
    size_t bad;
    if (!utf8_valid(text, len, &bad))
        return qerr_setc(err, QERR_CORRUPT, "invalid UTF-8 at byte offset %zu (byte 0x%02X): refused", bad,
                         (unsigned char)text[bad]);
    Ids o = {0};
    int rc = ids_add(&o, 0) ? qerr_set(err, "tokenizer: out of memory") : 0; /* *ids is never NULL */
    o.n = 0;
    for (int i = 0; rc == 0 && add_special && i < t->n_prefix; i++)
        if (ids_add(&o, t->prefix[i])) rc = qerr_set(err, "tokenizer: out of memory");
    size_t pos = 0;
    while (rc == 0 && pos <= len) {
        size_t at = len;
        int j = next_added(t, text, len, pos, &at);
        rc = encode_segment(t, text + pos, at - pos, pos, pos == 0, &o, err);
        if (rc || j < 0) break;
        if (ids_add(&o, t->added[j].id)) rc = qerr_set(err, "tokenizer: out of memory");
        pos = at + (size_t)t->added[j].len;
    }
    for (int i = 0; rc == 0 && add_special && i < t->n_suffix; i++)
        if (ids_add(&o, t->suffix[i])) rc = qerr_set(err, "tokenizer: out of memory");
    if (rc != 0) {
        free(o.ids);
        return -1;
    }
    *ids = o.ids, *n = o.n;
    return 0;
}
