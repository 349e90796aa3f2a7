/* text_data.h — text datasets straight in: a text file, or JSONL with a
 * "text" field per line, tokenized whole and cut into fixed-length windows.
 *
 * The documents of a JSONL file are joined with "\n\n" into one text (as the
 * reference's WikiText loader joins its rows), which is encoded once with
 * the tokenizer's special tokens (BOS) at the start. Windows:
 *  - random (calibration): n_seq windows of seq_len tokens whose starts are
 *    drawn uniformly from [0, n_tokens - seq_len] by an Rng seeded with
 *    seed, as the reference's C4 / WikiText loaders pick them; windows may
 *    overlap;
 *  - consecutive (evaluation): non-overlapping windows from token 0, the
 *    tail shorter than seq_len dropped; n_seq > 0 keeps the first n_seq. */
#ifndef QUEPT_TEXT_DATA_H
#define QUEPT_TEXT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "text_tokenizer.h"
#include "tokens.h"

typedef enum { TEXT_AUTO = 0, TEXT_PLAIN, TEXT_JSONL } TextFormat;

typedef struct {
    int seq_len; /* >= 1 */
    int n_seq;   /* random: >= 1; consecutive: 0 = all */
    int random;  /* 1: seeded random windows, 0: consecutive */
    uint64_t seed;
} WindowSpec;

/* "text", "jsonl" or NULL/"auto" (by extension: .jsonl is JSONL). */
int text_format_parse(const char *s, TextFormat *f, QErr *err);

/* The documents of a file: one for a text file, one per non-blank line of
 * JSONL. docs[i] is malloc'd (NUL-terminated), lens[i] its length; free
 * with text_docs_free. Text must hold no NUL byte. */
int text_read_docs(const char *path, TextFormat f, char ***docs, size_t **lens, size_t *n, QErr *err);
void text_docs_free(char **docs, size_t *lens, size_t n);

/* Cuts ids[0..n) into windows (see above) into ts (vocab_size set by the caller). */
int text_windows(const int *ids, size_t n, const WindowSpec *w, TokenSet *ts, QErr *err);

/* Reads path, encodes it with tok (special tokens at the start) and cuts it
 * into windows; errors name the file. */
int text_load_tokens(const char *path, TextFormat f, const TextTokenizer *tok, const WindowSpec *w,
                     TokenSet *ts, QErr *err);

#endif
