/* tokens.h — datasets of fixed-length token sequences (calibration, eval).
 *
 * QTOK file format, all fields little endian:
 *   offset  0  4 bytes  magic "QTOK"
 *   offset  4  u32      version = 1
 *   offset  8  u32      n_seq       (>= 1)
 *   offset 12  u32      seq_len     (>= 1)
 *   offset 16  u32      vocab_size  (0 = unknown; else every id is < it)
 *   offset 20  u32      reserved = 0
 *   offset 24  u32      tokens[n_seq][seq_len]
 * The file is exactly 24 + 4 * n_seq * seq_len bytes. A format change bumps
 * the version; readers refuse versions they do not know. */
#ifndef QUEPT_TOKENS_H
#define QUEPT_TOKENS_H

#include "../base/err.h"

#define QTOK_VERSION      1
#define QTOK_HEADER_BYTES 24

typedef struct {
    int n_seq, seq_len, vocab_size; /* vocab_size 0 = unknown */
    int *tokens;                    /* n_seq * seq_len, sequence-major */
} TokenSet;

/* Writes ts atomically (file_write_all). Ids must be >= 0, and < vocab_size
 * when it is set. */
int tokens_write(const char *path, const TokenSet *ts, QErr *err);

/* Reads a QTOK file: checks magic, version, header fields, the file size
 * against n_seq * seq_len, and ids against the header's vocab_size. */
int tokens_read(const char *path, TokenSet *ts, QErr *err);

/* Loads a token set from either kind of file:
 *  - a QTOK file (recognised by its magic); tokenizer_path is not used.
 *    seq_len 0 accepts the file's, otherwise it must match;
 *  - otherwise, with tokenizer_path (tokenizer.bin, tokenizer.json, or a
 *    directory holding tokenizer.json), UTF-8 text or JSONL (text_data.h):
 *    encoded as one text with BOS at the start, then cut into consecutive
 *    non-overlapping sequences of seq_len (> 0) tokens; the tail shorter
 *    than seq_len is dropped.
 * max_seqs > 0 keeps only the first max_seqs sequences (0 = all). */
int tokens_load_any(const char *path, const char *tokenizer_path, int seq_len, int max_seqs, TokenSet *ts,
                    QErr *err);

/* 1 if the file starts with the QTOK magic, 0 if not, -1 (err set) if it
 * cannot be opened. */
int tokens_is_qtok(const char *path, QErr *err);

/* Fails on the first id < 0 or >= vocab_size, naming what (a file name or a
 * description), the sequence, the position, the id and the vocab size. */
int tokens_check_vocab(const TokenSet *ts, int vocab_size, const char *what, QErr *err);

void tokens_free(TokenSet *ts);

#endif
