/* kld_base.h — llama-perplexity's KL-divergence base file, read and written,
 * so quept's and llama.cpp's numbers sit side by side on the same tokens.
 *
 * The file (`llama-perplexity --kl-divergence-base F`, written by a plain
 * perplexity run and read back by `--kl-divergence`), native little endian:
 *   char[8]   "_logits_"
 *   u32       n_ctx     (tokens per chunk)
 *   i32       n_vocab
 *   i32       n_chunk
 *   i32       tokens[n_chunk][n_ctx]   (the chunks as tokenized, first token
 *                                       included: the forward pass replaces it
 *                                       by BOS)
 *   then per chunk, per scored position t = n_ctx/2 .. n_ctx-2 (the
 *   prediction of token t+1), one row of nv = 2*((n_vocab+1)/2) + 4 u16:
 *     f32 scale, f32 min_log_prob     (the first 4 u16)
 *     u16 q[n_vocab]                  log p(i) = scale * q[i] + min_log_prob,
 *                                     q = 0 at or below the floor
 *     (padding to nv)
 *   with max/min over the row's logits, min clamped to max - 16:
 *   scale = (max - min) / 65535, min_log_prob = min - max - log sum exp(l - max),
 *   q[i] = round((l_i - min) / scale) when l_i > min. So a stored log
 *   probability is good to scale/2 and the tail below e^-16 is cut.
 *
 * The comparison follows llama.cpp's: per position, KL(base || model) summed
 * over the tokens whose base log probability is above -16, the model's NLL
 * and the base's NLL of the actual next token, and whether both argmax
 * tokens agree. */
#ifndef QUEPT_KLD_BASE_H
#define QUEPT_KLD_BASE_H

#include "../data/tokens.h"
#include "../model/model.h"
#include "evaluate.h"

typedef struct {
    long positions;              /* scored positions */
    double ppl, ppl_base;        /* the model's and the base file's */
    double kld_mean, kld_p99;    /* KL(base || model), llama.cpp's sum */
    double top1_agree;           /* share of positions with the same argmax */
    double p_diff_rms;           /* RMS of p(next) - p_base(next), as llama.cpp prints "RMS Δp" */
    int n_ctx, n_vocab, n_chunk; /* the file's */
} KldBaseResult;

/* Writes the base file of model m on the chunks of ts (one chunk per
 * sequence; BOS id opt->bos_id replaces each first token in the forward
 * pass), atomically (temp file, fsync, rename). */
int kld_base_write(const char *path, const Model *m, const TokenSet *ts, int batch, int bos_id, QErr *err);

/* Reads the header and tokens of a base file into ts (malloc'd ids) and
 * checks the file's size against them. */
int kld_base_read_tokens(const char *path, TokenSet *ts, QErr *err);

/* Compares model m with the base file at path on the file's own tokens. */
int kld_base_compare(const char *path, const Model *m, int batch, int bos_id, KldBaseResult *out, QErr *err);

#endif
