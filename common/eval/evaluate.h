/* evaluate.h — runs a model (and optionally a reference) over a token set. */
#ifndef QUEPT_EVALUATE_H
#define QUEPT_EVALUATE_H

#include "../data/tokens.h"
#include "../model/model.h"
#include "metrics.h"

/* How positions are scored.
 *   EVAL_SCORE_ALL    every next-token prediction of every sequence (T-1 per
 *                     sequence): quept's own figures.
 *   EVAL_SCORE_LLAMA  as llama.cpp's llama-perplexity: each sequence is one
 *                     chunk whose first token is replaced by BOS for the
 *                     forward pass, and only the second half is scored (the
 *                     predictions of tokens T/2+1 .. T-1), so the model
 *                     always has context; the numbers sit beside
 *                     llama-perplexity's on the same chunks. */
typedef enum { EVAL_SCORE_ALL = 0, EVAL_SCORE_LLAMA = 1 } EvalScoring;

typedef struct {
    EvalScoring scoring;
    int bos_id; /* EVAL_SCORE_LLAMA: the BOS id (llama2.c and Llama 2: 1) */
} EvalOptions;

/* Evaluates m on ts in batches of `batch` sequences; with ref, also KLD and
 * top-1 agreement. Token ids are checked against both vocabularies.
 * opt NULL = EVAL_SCORE_ALL. */
int evaluate_model(const Model *m, const Model *ref, const TokenSet *ts, int batch, const EvalOptions *opt,
                   EvalResult *out, QErr *err);

/* The token ids of sequences [s0, s0+nb) as the forward pass sees them under
 * opt: a copy with each first token replaced by BOS for EVAL_SCORE_LLAMA,
 * else the ids themselves. tmp holds nb * T ints. */
const int *eval_forward_tokens(const TokenSet *ts, int s0, int nb, const EvalOptions *opt, int *tmp);

#endif
