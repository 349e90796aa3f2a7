/* hf_bpe.c — see hf_bpe.h. */
#include "hf_bpe.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

int hf_bpe_lookup(const HfBpe *b, const char *s, size_t n) {
    if (!b->slots) return -1;
    for (uint32_t i = hash_bytes(s, n) & b->mask;; i = (i + 1) & b->mask) {
        int id = b->slots[i];
        if (id < 0) return -1;
        if ((size_t)b->len[id] == n && memcmp(b->str[id], s, n) == 0) return id;
    }
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t p = 64;
    while (p < n) p <<= 1;
    return p;
}

int hf_bpe_reserve(HfBpe *b, int n_entries, QErr *err) {
    if (n_entries < 0 || n_entries > (1 << 26))
        return qerr_set(err, "tokenizer.json: %d vocab entries is out of range", n_entries);
    uint32_t size = pow2_at_least((size_t)n_entries * 2 + 2);
    if (b->slots && size <= b->mask + 1) return 0;
    int *slots = malloc((size_t)size * sizeof *slots);
    if (!slots) return qerr_set(err, "tokenizer.json: out of memory for the vocab table");
    for (uint32_t i = 0; i < size; i++) slots[i] = -1;
    free(b->slots);
    b->slots = slots;
    b->mask = size - 1;
    for (int id = 0; id < b->n_ids; id++) { /* re-insert what is there */
        if (!b->str[id]) continue;
        uint32_t i = hash_bytes(b->str[id], (size_t)b->len[id]) & b->mask;
        while (b->slots[i] >= 0) i = (i + 1) & b->mask;
        b->slots[i] = id;
    }
    return 0;
}

int hf_bpe_add(HfBpe *b, const char *s, size_t n, int id, const char *what, QErr *err) {
    if (id < 0 || id >= (1 << 26))
        return qerr_set(err, "tokenizer.json: %s: id %d is out of range", what, id);
    int have = hf_bpe_lookup(b, s, n);
    if (have == id) return 0;
    if (have >= 0)
        return qerr_set(err, "tokenizer.json: %s: token \"%.*s\" has id %d and id %d", what,
                        (int)(n > 64 ? 64 : n), s, have, id);
    if (id < b->n_ids && b->str[id])
        return qerr_set(err, "tokenizer.json: %s: id %d is both \"%s\" and \"%.*s\"", what, id, b->str[id],
                        (int)(n > 64 ? 64 : n), s);
    if (id >= b->cap_ids) { /* geometric growth: ids arrive one by one */
        int nc = b->cap_ids ? b->cap_ids : 1024;
        while (nc <= id) nc *= 2;
        char **str = realloc(b->str, (size_t)nc * sizeof *str);
        if (!str) return qerr_set(err, "tokenizer.json: out of memory for the vocab");
        b->str = str;
        int *len = realloc(b->len, (size_t)nc * sizeof *len);
        if (!len) return qerr_set(err, "tokenizer.json: out of memory for the vocab");
        b->len = len;
        b->cap_ids = nc;
    }
    if (id >= b->n_ids) {
        for (int i = b->n_ids; i <= id; i++) b->str[i] = NULL, b->len[i] = 0;
        b->n_ids = id + 1;
    }
    char *copy = malloc(n + 1);
    if (!copy) return qerr_set(err, "tokenizer.json: out of memory for the vocab");
    memcpy(copy, s, n);
    copy[n] = 0;
    b->str[id] = copy;
    b->len[id] = (int)n;
    b->n_entries++;
    /* keep the table at most half full */
    if (!b->slots || (size_t)b->n_entries * 2 > (size_t)b->mask + 1)
        return hf_bpe_reserve(b, b->n_entries * 2, err);
    uint32_t i = hash_bytes(s, n) & b->mask;
    while (b->slots[i] >= 0) i = (i + 1) & b->mask;
    b->slots[i] = id;
    return 0;
}

static int merge_find(const HfBpe *b, int l, int r, int *rank, int *new_id) {
    if (!b->mkeys) return 0;
    uint64_t k = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1; /* + 1: 0 marks an empty slot */
    for (uint32_t i = hash_u64(k) & b->mmask;; i = (i + 1) & b->mmask) {
        if (b->mkeys[i] == 0) return 0;
        if (b->mkeys[i] == k) {
            *rank = b->mrank[i];
            *new_id = b->mnew[i];
            return 1;
        }
    }
}

static int merges_grow(HfBpe *b, QErr *err) {
    uint32_t size = b->mkeys ? (b->mmask + 1) * 2 : 1024;
    uint64_t *keys = calloc(size, sizeof *keys);
    int *rank = malloc((size_t)size * sizeof *rank), *nw = malloc((size_t)size * sizeof *nw);
    if (!keys || !rank || !nw) {
        free(keys), free(rank), free(nw);
        return qerr_set(err, "tokenizer.json: out of memory for the merges");
    }
    for (uint32_t j = 0; b->mkeys && j <= b->mmask; j++) {
        if (!b->mkeys[j]) continue;
        uint32_t i = hash_u64(b->mkeys[j]) & (size - 1);
        while (keys[i]) i = (i + 1) & (size - 1);
        keys[i] = b->mkeys[j], rank[i] = b->mrank[j], nw[i] = b->mnew[j];
    }
    free(b->mkeys), free(b->mrank), free(b->mnew);
    b->mkeys = keys, b->mrank = rank, b->mnew = nw, b->mmask = size - 1;
    return 0;
}

int hf_bpe_add_merge(HfBpe *b, const char *l, size_t ln, const char *r, size_t rn, QErr *err) {
    int rank = b->n_merges;
    int li = hf_bpe_lookup(b, l, ln), ri = hf_bpe_lookup(b, r, rn);
    if (li < 0 || ri < 0)
        return qerr_set(err, "tokenizer.json: model.merges[%d]: \"%.*s\" is not in the vocab", rank,
                        (int)(li < 0 ? ln : rn), li < 0 ? l : r);
    char *cat = malloc(ln + rn + 1);
    if (!cat) return qerr_set(err, "tokenizer.json: out of memory for the merges");
    memcpy(cat, l, ln);
    memcpy(cat + ln, r, rn);
    int ni = hf_bpe_lookup(b, cat, ln + rn);
    free(cat);
    if (ni < 0)
        return qerr_set(
            err, "tokenizer.json: model.merges[%d]: the merge of \"%.*s\" and \"%.*s\" is not in the vocab",
            rank, (int)ln, l, (int)rn, r);
    b->n_merges++;
    int orank, onew;
    if (merge_find(b, li, ri, &orank, &onew)) return 0; /* first rank wins, as in the tokenizers crate */
    if (!b->mkeys || (uint64_t)b->n_merges * 2 > (uint64_t)b->mmask + 1)
        if (merges_grow(b, err) != 0) return -1;
    uint64_t k = ((uint64_t)(uint32_t)li << 32 | (uint32_t)ri) + 1;
    uint32_t i = hash_u64(k) & b->mmask;
    while (b->mkeys[i]) i = (i + 1) & b->mmask;
    b->mkeys[i] = k, b->mrank[i] = rank, b->mnew[i] = ni;
    return 0;
}

int hf_bpe_merge_count(const HfBpe *b) {
    int n = 0;
    for (uint32_t j = 0; b->mkeys && j <= b->mmask; j++) n += b->mkeys[j] != 0;
    return n;
}

int hf_bpe_merges(const HfBpe *b, int *left, int *right, int *merged, QErr *err) {
    /* ranks are < n_merges (the file's count, repeats included): place each
     * pair at its rank, then close the gaps repeats left */
    int *at = malloc(((size_t)b->n_merges + 1) * sizeof *at);
    if (!at) return qerr_set(err, "out of memory for %d merges", b->n_merges);
    for (int r = 0; r < b->n_merges; r++) at[r] = -1;
    for (uint32_t j = 0; b->mkeys && j <= b->mmask; j++)
        if (b->mkeys[j]) at[b->mrank[j]] = (int)j;
    int n = 0;
    for (int r = 0; r < b->n_merges; r++) {
        if (at[r] < 0) continue;
        uint64_t k = b->mkeys[at[r]] - 1;
        left[n] = (int)(uint32_t)(k >> 32), right[n] = (int)(uint32_t)k, merged[n] = b->mnew[at[r]];
        n++;
    }
    free(at);
    return n;
}

/* ------------------------------------------------------------- one word */

typedef struct {
    int id, prev, next, alive;
} Sym;

typedef struct {
    int rank, pos, new_id;
} Cand;

static int cand_less(const Cand *a, const Cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(Cand *h, int *n, Cand c) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static Cand heap_pop(Cand *h, int *n) {
    Cand top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static int push_id(int **ids, size_t *n, size_t *cap, int id) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        int *p = realloc(*ids, nc * sizeof *p);
        if (!p) return -1;
        *ids = p, *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

int hf_bpe_word(const HfBpe *b, const char *w, size_t n, size_t off, int **ids, size_t *n_ids, size_t *cap,
                QErr *err) {
    if (n == 0) return 0;
    if (b->ignore_merges) {
        int id = hf_bpe_lookup(b, w, n);
        if (id >= 0) {
            if (push_id(ids, n_ids, cap, id) != 0) return qerr_set(err, "tokenizer: out of memory");
            return 0;
        }
    }
    /* at most one symbol per byte */
    Sym *sym = malloc(n * sizeof *sym);
    Cand *heap = malloc(n * 2 * sizeof *heap + sizeof *heap);
    if (!sym || !heap) {
        free(sym), free(heap);
        return qerr_set(err, "tokenizer: out of memory for a word of %zu bytes", n);
    }
    int ns = 0, last_unk = 0;
    for (size_t i = 0; i < n;) {
        int cl = utf8_len((unsigned char)w[i]);
        if ((size_t)cl > n - i) cl = (int)(n - i);
        int id = hf_bpe_lookup(b, w + i, (size_t)cl);
        if (id >= 0) {
            sym[ns++] = (Sym){id, 0, 0, 1};
            last_unk = 0;
        } else {
            int all = b->byte_fallback;
            for (int k = 0; all && k < cl; k++) all = b->byte_id[(unsigned char)w[i + k]] >= 0;
            if (all) {
                for (int k = 0; k < cl; k++) sym[ns++] = (Sym){b->byte_id[(unsigned char)w[i + k]], 0, 0, 1};
                last_unk = 0;
            } else if (b->unk_id >= 0) {
                if (!(b->fuse_unk && last_unk)) sym[ns++] = (Sym){b->unk_id, 0, 0, 1};
                last_unk = 1;
            } else {
                free(sym), free(heap);
                return qerr_set(
                    err,
                    "tokenizer: the character at byte offset %zu (\"%.*s\") has no token, no byte "
                    "fallback and no unk token",
                    off + i, cl, w + i);
            }
        }
        i += (size_t)cl;
    }
    for (int i = 0; i < ns; i++) sym[i].prev = i - 1, sym[i].next = i + 1 < ns ? i + 1 : -1;
    int nh = 0;
    for (int i = 0; i + 1 < ns; i++) {
        int rank, nid;
        if (merge_find(b, sym[i].id, sym[i + 1].id, &rank, &nid)) heap_push(heap, &nh, (Cand){rank, i, nid});
    }
    /* every merge removes a symbol and pushes at most two candidates, so the
     * heap never holds more than 2n entries */
    while (nh > 0) {
        Cand c = heap_pop(heap, &nh);
        Sym *s = &sym[c.pos];
        if (!s->alive || s->next < 0) continue;
        int rank, nid;
        if (!merge_find(b, s->id, sym[s->next].id, &rank, &nid) || nid != c.new_id) continue; /* stale */
        Sym *r = &sym[s->next];
        s->id = nid;
        r->alive = 0;
        s->next = r->next;
        if (r->next >= 0) sym[r->next].prev = c.pos;
        if (s->prev >= 0 && merge_find(b, sym[s->prev].id, s->id, &rank, &nid))
            heap_push(heap, &nh, (Cand){rank, s->prev, nid});
        if (s->next >= 0 && merge_find(b, s->id, sym[s->next].id, &rank, &nid))
            heap_push(heap, &nh, (Cand){rank, c.pos, nid});
    }
    int rc = 0;
    for (int i = ns > 0 ? 0 : -1; i >= 0; i = sym[i].next)
        if (push_id(ids, n_ids, cap, sym[i].id) != 0) {
            rc = qerr_set(err, "tokenizer: out of memory");
            break;
        }
    free(sym), free(heap);
    return rc;
}

void hf_bpe_free(HfBpe *b) {
    if (!b) return;
    for (int i = 0; i < b->n_ids; i++) free(b->str[i]);
    free(b->str), free(b->len), free(b->slots);
    free(b->mkeys), free(b->mrank), free(b->mnew);
    memset(b, 0, sizeof *b);
}
