/* tokens.c — QTOK token-sequence files, and text -> token sequences. */
#include "tokens.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"
#include "text_data.h"
#include "tokenizer.h"

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int tokens_check_vocab(const TokenSet *ts, int vocab_size, const char *what, QErr *err) {
    if (!what) what = "tokens";
    size_t n = (size_t)ts->n_seq * (size_t)ts->seq_len;
    for (size_t i = 0; i < n; i++) {
        int id = ts->tokens[i];
        if (id < 0 || id >= vocab_size)
            return qerr_set(err,
                            "%s: token id %d at sequence %zu position %zu is outside the vocab "
                            "of %d (expected 0 <= id < %d)",
                            what, id, i / (size_t)ts->seq_len, i % (size_t)ts->seq_len, vocab_size,
                            vocab_size);
    }
    return 0;
}

int tokens_write(const char *path, const TokenSet *ts, QErr *err) {
    if (ts->n_seq <= 0 || ts->seq_len <= 0)
        return qerr_set(err, "%s: cannot write n_seq %d x seq_len %d: both must be >= 1", path, ts->n_seq,
                        ts->seq_len);
    if (ts->vocab_size < 0)
        return qerr_set(err, "%s: vocab_size %d must be >= 0 (0 = unknown)", path, ts->vocab_size);
    if (!ts->tokens) return qerr_set(err, "%s: token set has no tokens array", path);
    size_t n = (size_t)ts->n_seq * (size_t)ts->seq_len;
    if (n > (SIZE_MAX - QTOK_HEADER_BYTES) / 4 || n > UINT32_MAX)
        return qerr_set(err, "%s: %zu tokens are too many for one file", path, n);
    /* ids must fit the declared vocab, or at least be non-negative */
    int limit = ts->vocab_size > 0 ? ts->vocab_size : INT_MAX;
    if (tokens_check_vocab(ts, limit, path, err) != 0) return -1;

    size_t bytes = QTOK_HEADER_BYTES + 4 * n;
    uint8_t *buf = malloc(bytes);
    if (!buf) return qerr_set(err, "%s: out of memory for %zu bytes", path, bytes);
    memcpy(buf, "QTOK", 4);
    put_u32(buf + 4, QTOK_VERSION);
    put_u32(buf + 8, (uint32_t)ts->n_seq);
    put_u32(buf + 12, (uint32_t)ts->seq_len);
    put_u32(buf + 16, (uint32_t)ts->vocab_size);
    put_u32(buf + 20, 0);
    for (size_t i = 0; i < n; i++) put_u32(buf + QTOK_HEADER_BYTES + 4 * i, (uint32_t)ts->tokens[i]);
    int rc = file_write_all(path, buf, bytes, err);
    free(buf);
    return rc;
}

/* Checks the header of a mapped QTOK file and the file size it implies. */
static int check_header(const MappedFile *mf, uint32_t *n_seq, uint32_t *seq_len, uint32_t *vocab,
                        QErr *err) {
    const char *path = mf->path;
    const uint8_t *h = mf->data;
    if (mf->size < QTOK_HEADER_BYTES)
        return qerr_set(err, "%s: %zu bytes, too short for the %d-byte QTOK header", path, mf->size,
                        QTOK_HEADER_BYTES);
    if (memcmp(h, "QTOK", 4) != 0)
        return qerr_set(err, "%s: bad magic %02x %02x %02x %02x, expected \"QTOK\"", path, h[0], h[1], h[2],
                        h[3]);
    uint32_t version = get_u32(h + 4);
    if (version != QTOK_VERSION)
        return qerr_set(err, "%s: QTOK version %u is not supported (this build reads version %d)", path,
                        version, QTOK_VERSION);
    *n_seq = get_u32(h + 8);
    *seq_len = get_u32(h + 12);
    *vocab = get_u32(h + 16);
    uint32_t reserved = get_u32(h + 20);
    if (*n_seq == 0 || *n_seq > INT_MAX)
        return qerr_set(err, "%s: header n_seq is %u, expected 1..%d", path, *n_seq, INT_MAX);
    if (*seq_len == 0 || *seq_len > INT_MAX)
        return qerr_set(err, "%s: header seq_len is %u, expected 1..%d", path, *seq_len, INT_MAX);
    if (*vocab > INT_MAX)
        return qerr_set(err, "%s: header vocab_size is %u, expected 0..%d", path, *vocab, INT_MAX);
    if (reserved != 0) return qerr_set(err, "%s: header reserved field is %u, expected 0", path, reserved);
    uint64_t n = (uint64_t)*n_seq * *seq_len; /* < 2^62: no overflow */
    if (n > (SIZE_MAX - QTOK_HEADER_BYTES) / 4)
        return qerr_set(err, "%s: n_seq %u x seq_len %u is too large", path, *n_seq, *seq_len);
    size_t want = QTOK_HEADER_BYTES + 4 * (size_t)n;
    if (mf->size < want)
        return qerr_set(err,
                        "%s: truncated: n_seq %u x seq_len %u needs %zu bytes (24-byte header + "
                        "4 per token), file has %zu",
                        path, *n_seq, *seq_len, want, mf->size);
    if (mf->size > want)
        return qerr_set(err,
                        "%s: %zu trailing bytes: n_seq %u x seq_len %u needs %zu bytes, file has "
                        "%zu",
                        path, mf->size - want, *n_seq, *seq_len, want, mf->size);
    return 0;
}

int tokens_read(const char *path, TokenSet *ts, QErr *err) {
    memset(ts, 0, sizeof *ts);
    MappedFile mf;
    if (mapfile_open(&mf, path, err) != 0) return -1;
    uint32_t n_seq = 0, seq_len = 0, vocab = 0;
    if (check_header(&mf, &n_seq, &seq_len, &vocab, err) != 0) {
        mapfile_close(&mf);
        return -1;
    }
    size_t n = (size_t)n_seq * seq_len;
    int *tokens = malloc(n * sizeof *tokens);
    if (!tokens) {
        mapfile_close(&mf);
        return qerr_set(err, "%s: out of memory for %zu tokens", path, n);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t id = get_u32(mf.data + QTOK_HEADER_BYTES + 4 * i);
        if (id > INT_MAX) {
            qerr_set(err, "%s: token id %u at sequence %zu position %zu does not fit an int32", path, id,
                     i / seq_len, i % seq_len);
            free(tokens);
            mapfile_close(&mf);
            return -1;
        }
        tokens[i] = (int)id;
    }
    mapfile_close(&mf);
    TokenSet t = {(int)n_seq, (int)seq_len, (int)vocab, tokens};
    if (vocab > 0 && tokens_check_vocab(&t, (int)vocab, path, err) != 0) {
        free(tokens);
        return -1;
    }
    *ts = t;
    return 0;
}

int tokens_is_qtok(const char *path, QErr *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return qerr_set(err, "%s: cannot open: %s", path, strerror(errno));
    char magic[4];
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && memcmp(magic, "QTOK", 4) == 0;
}

/* Text (or JSONL) encoded with either tokenizer format, BOS first, cut into
 * consecutive windows (text_data.h). */
static int load_text(const char *path, const char *tokenizer_path, int seq_len, int max_seqs, TokenSet *ts,
                     QErr *err) {
    TextTokenizer *tok = NULL;
    if (ttok_open(&tok, tokenizer_path, err) != 0) return -1;
    WindowSpec w = {seq_len, max_seqs, 0, 0};
    int rc = text_load_tokens(path, TEXT_AUTO, tok, &w, ts, err);
    ttok_free(tok);
    return rc;
}

int tokens_load_any(const char *path, const char *tokenizer_path, int seq_len, int max_seqs, TokenSet *ts,
                    QErr *err) {
    memset(ts, 0, sizeof *ts);
    if (seq_len < 0) return qerr_set(err, "%s: seq_len %d must be >= 0", path, seq_len);
    if (max_seqs < 0) return qerr_set(err, "%s: max_seqs %d must be >= 0", path, max_seqs);
    int q = tokens_is_qtok(path, err);
    if (q < 0) return -1;
    if (q) {
        if (tokens_read(path, ts, err) != 0) return -1;
        if (seq_len > 0 && ts->seq_len != seq_len) {
            qerr_set(err, "%s: holds sequences of %d tokens, but seq_len %d was asked for", path, ts->seq_len,
                     seq_len);
            tokens_free(ts);
            return -1;
        }
        if (max_seqs > 0 && ts->n_seq > max_seqs) ts->n_seq = max_seqs;
        return 0;
    }
    if (!tokenizer_path)
        return qerr_set(err,
                        "%s: not a QTOK token file (no \"QTOK\" magic); to read it as text, "
                        "pass the tokenizer with --tokenizer",
                        path);
    if (seq_len <= 0)
        return qerr_set(err, "%s: text input needs a sequence length >= 1, got %d", path, seq_len);
    return load_text(path, tokenizer_path, seq_len, max_seqs, ts, err);
}

void tokens_free(TokenSet *ts) {
    if (!ts) return;
    free(ts->tokens);
    memset(ts, 0, sizeof *ts);
}
