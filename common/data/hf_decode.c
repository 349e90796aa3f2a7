/* hf_decode.c — tokenizer.json decoding: ids to their token strings, then
 * the file's decoders in order, as the tokenizers crate runs them (each
 * decoder maps the list of token strings to a new list). */
#include <stdlib.h>
#include <string.h>

#include "hf_internal.h"
#include "utf8.h"

typedef struct {
    char *p;
    size_t n;
} Tok;

static void toks_free(Tok *v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i].p);
    free(v);
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* s with every a replaced by b (malloc'd). */
static char *replace(const char *s, size_t n, const char *a, const char *b, size_t *out_n) {
    size_t la = strlen(a), lb = strlen(b), cnt = 0;
    for (size_t i = 0; i + la <= n;) {
        if (memcmp(s + i, a, la) == 0)
            cnt++, i += la;
        else
            i++;
    }
    char *d = malloc(n + cnt * lb + 1), *q = d;
    if (!d) return NULL;
    for (size_t i = 0; i < n;) {
        if (i + la <= n && memcmp(s + i, a, la) == 0) {
            memcpy(q, b, lb), q += lb, i += la;
        } else {
            *q++ = s[i++];
        }
    }
    *q = 0;
    *out_n = (size_t)(q - d);
    return d;
}

/* ByteLevel: each character of the byte map back to its byte; other
 * characters (e.g. of added tokens) stay as they are. */
/* The pieces v[0..m) joined into one malloc'd NUL-terminated string. */
static char *join_pieces(const Tok *v, size_t m, size_t *len) {
    size_t tot = 0;
    for (size_t i = 0; i < m; i++) tot += v[i].n;
    char *s = malloc(tot + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < m; i++) memcpy(s + o, v[i].p, v[i].n), o += v[i].n;
    s[o] = 0;
    *len = tot;
    return s;
}

static int dec_byte_level(const HfTokenizer *t, Tok *tk) {
    char *d = malloc(tk->n + 1);
    if (!d) return -1;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)tk->p;
    for (size_t i = 0; i < tk->n;) {
        int l = utf8_seq_len(s[i]);
        unsigned cp = s[i];
        if (l == 2 && i + 1 < tk->n) cp = (unsigned)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
        if ((l == 1 || l == 2) && cp < 324 && t->char_byte[cp] >= 0) {
            d[o++] = (char)t->char_byte[cp];
            i += (size_t)l;
        } else {
            for (int k = 0; k < l && i < tk->n; k++) d[o++] = (char)s[i++];
        }
    }
    d[o] = 0;
    free(tk->p);
    tk->p = d, tk->n = o;
    return 0;
}

static int byte_token(const Tok *tk) {
    if (tk->n != 6 || memcmp(tk->p, "<0x", 3) != 0 || tk->p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = tk->p[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* ByteFallback: a run of "<0xHH>" tokens becomes its bytes when they are
 * valid UTF-8, else one U+FFFD per byte token. In place: the run's first
 * token holds the result, the others become empty. */
static int dec_byte_fallback(Tok *v, size_t n) {
    for (size_t i = 0; i < n;) {
        if (byte_token(&v[i]) < 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && byte_token(&v[j]) >= 0) j++;
        size_t nb = j - i;
        char *buf = malloc(nb + 1);
        if (!buf) return -1;
        for (size_t k = i; k < j; k++) buf[k - i] = (char)byte_token(&v[k]);
        int ok = utf8_valid(buf, nb, NULL);
        char *d = ok ? dup_n(buf, nb) : malloc(3 * nb + 1);
        free(buf);
        if (!d) return -1;
        if (!ok) {
            for (size_t k = 0; k < nb; k++) memcpy(d + 3 * k, "\xEF\xBF\xBD", 3);
            d[3 * nb] = 0;
        }
        for (size_t k = i; k < j; k++) {
            free(v[k].p);
            v[k].p = k == i ? d : dup_n("", 0);
            v[k].n = k == i ? (ok ? nb : 3 * nb) : 0;
            if (!v[k].p) return -1;
        }
        i = j;
    }
    return 0;
}

/* Strip: up to start leading and stop trailing copies of the character c. */
static void dec_strip(Tok *tk, const char *c, int start, int stop) {
    size_t lc = strlen(c), a = 0, b = tk->n;
    for (int k = 0; k < start && a + lc <= b && memcmp(tk->p + a, c, lc) == 0; k++) a += lc;
    for (int k = 0; k < stop && b >= a + lc && memcmp(tk->p + b - lc, c, lc) == 0; k++) b -= lc;
    memmove(tk->p, tk->p + a, b - a);
    tk->n = b - a;
    tk->p[tk->n] = 0;
}

int hf_tokenizer_decode(const HfTokenizer *t, const int *ids, size_t n, int skip_special, char **text,
                        size_t *len, QErr *err) {
    *text = NULL, *len = 0;
    Tok *v = calloc(n + 1, sizeof *v);
    if (!v) return qerr_set(err, "tokenizer: out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->bpe.n_ids || !t->bpe.str[id]) {
            toks_free(v, m);
            return qerr_set(err, "decode: id %d at position %zu is not in the vocab (%d ids)", id, i,
                            t->bpe.n_ids);
        }
        if (skip_special && hf_is_special(t, id)) continue;
        v[m].n = (size_t)t->bpe.len[id];
        if (!(v[m].p = dup_n(t->bpe.str[id], v[m].n))) goto oom;
        m++;
    }
    for (int d = 0; d < t->n_dec; d++) {
        const HfDec *dc = &t->dec[d];
        if (dc->kind == DEC_FUSE) {
            size_t tot;
            char *f = join_pieces(v, m, &tot);
            if (!f) goto oom;
            for (size_t i = 0; i < m; i++) free(v[i].p), v[i].p = NULL;
            v[0].p = f, v[0].n = tot;
            m = 1;
            continue;
        }
        if (dc->kind == DEC_BYTEFALLBACK) {
            if (dec_byte_fallback(v, m) != 0) goto oom;
            continue;
        }
        for (size_t i = 0; i < m; i++) {
            if (dc->kind == DEC_BYTELEVEL) {
                if (dec_byte_level(t, &v[i]) != 0) goto oom;
            } else if (dc->kind == DEC_STRIP) {
                dec_strip(&v[i], dc->a, dc->start, dc->stop);
            } else { /* Replace; Metaspace: the replacement back to spaces, the first prepended one dropped */
                size_t nn;
                char *r = dc->kind == DEC_REPLACE ? replace(v[i].p, v[i].n, dc->a, dc->b, &nn)
                                                  : replace(v[i].p, v[i].n, dc->a, " ", &nn);
                if (!r) goto oom;
                free(v[i].p);
                v[i].p = r, v[i].n = nn;
                if (dc->kind == DEC_METASPACE && i == 0 && dc->prepend != PREPEND_NEVER)
                    dec_strip(&v[i], " ", 1, 0);
            }
        }
    }
    size_t tot;
    char *out = join_pieces(v, m, &tot);
    if (!out) goto oom;
    toks_free(v, m);
    *text = out, *len = tot;
    return 0;
oom:
    toks_free(v, n);
    return qerr_set(err, "tokenizer: out of memory while decoding");
}
