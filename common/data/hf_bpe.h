/* hf_bpe.h — the BPE model of a Hugging Face tokenizer.json ("model":
 * {"type": "BPE", ...}): the vocab, the merges by rank, and the encoding of
 * one pre-tokenized word. Internal to common/data (hf_tokenizer.c uses it).
 *
 * A word is encoded as in the tokenizers crate: one symbol per UTF-8
 * character (its vocab id; else, with byte_fallback, one "<0xHH>" symbol per
 * byte; else the unk token, fused with a preceding unk when fuse_unk), then
 * the adjacent pair of lowest merge rank is merged, leftmost first, until no
 * pair has a merge. With ignore_merges a word that is itself in the vocab is
 * that one token. */
#ifndef QUEPT_HF_BPE_H
#define QUEPT_HF_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"

typedef struct {
    /* vocab: id -> bytes (NULL for an id the file does not define) */
    int n_ids;       /* 1 + the largest id */
    int n_entries;   /* ids that have a string */
    int cap_ids;     /* room in str and len */
    char **str;      /* n_ids entries, NUL-terminated, malloc'd each */
    int *len;        /* n_ids */
    int *slots;      /* open-addressing table of ids by string, -1 empty */
    uint32_t mask;   /* slots size - 1 */
    uint64_t *mkeys; /* merges: key (left id << 32 | right id), 0 = empty slot */
    int *mrank, *mnew;
    uint32_t mmask;
    int n_merges;
    int byte_fallback, fuse_unk, ignore_merges;
    int unk_id;       /* -1: none */
    int byte_id[256]; /* id of "<0xHH>", -1 if absent */
} HfBpe;

/* Id of the vocab entry equal to s[0..n), or -1. */
int hf_bpe_lookup(const HfBpe *b, const char *s, size_t n);

/* Adds (or checks) a vocab entry; grows the id range. Ids must be unique
 * per string and strings unique per id. what names the source in errors. */
int hf_bpe_add(HfBpe *b, const char *s, size_t n, int id, const char *what, QErr *err);

/* Builds the lookup table once all entries are added (hf_bpe_add keeps the
 * table current; this sizes it for n entries up front). */
int hf_bpe_reserve(HfBpe *b, int n_entries, QErr *err);

/* Adds merge (left, right) with the next rank; the concatenation must be in
 * the vocab. A repeated pair keeps its first (lowest) rank. */
int hf_bpe_add_merge(HfBpe *b, const char *l, size_t ln, const char *r, size_t rn, QErr *err);

/* Appends the ids of word w[0..n) (valid UTF-8) to *ids (capacity *cap,
 * realloc'd). Fails when a character has no token (no byte fallback, no
 * unk), naming the character's byte offset off + its offset in w. */
int hf_bpe_word(const HfBpe *b, const char *w, size_t n, size_t off, int **ids, size_t *n_ids, size_t *cap,
                QErr *err);

/* The merges in rank order: left[i] + right[i] -> merged[i], ids (each array
 * holds hf_bpe_merge_count(b) entries). A pair the file repeats is listed
 * once, at its first rank. Returns the count written, or -1. */
int hf_bpe_merge_count(const HfBpe *b);
int hf_bpe_merges(const HfBpe *b, int *left, int *right, int *merged, QErr *err);

void hf_bpe_free(HfBpe *b);

#endif
