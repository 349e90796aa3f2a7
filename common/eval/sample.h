/* sample.h — sampling token sequences from a model. Each sequence starts with
 * BOS (token 1) and is drawn with its own Rng seeded from (seed, index), so
 * the result does not depend on how the work is split. */
#ifndef QUEPT_SAMPLE_H
#define QUEPT_SAMPLE_H

#include <stdint.h>

#include "../base/rng.h"
#include "../data/tokens.h"
#include "../model/model.h"

#define TOKEN_BOS 1

/* Picks a token from logits (V): argmax when temperature == 0. */
int sample_token(const float *logits, int V, float temperature, Rng *rng, float *probs_scratch);

/* progress(i, n, user) is called after each sequence (may be NULL). */
int sample_sequences(const Model *m, int n_seq, int T, uint64_t seed, float temperature, TokenSet *out,
                     void (*progress)(int, int, void *), void *user, QErr *err);

/* The same, written as a QTOK file at path (temperature 1 when called from
 * tests; `quept sample` passes its own). */
int sample_to_file(const Model *m, int n_seq, int T, uint64_t seed, float temperature, const char *path,
                   void (*progress)(int, int, void *), void *user, QErr *err);

#endif
