/* forward.h — whole-model passes: batched prefill producing logits for every
 * position, and one-token decoding with a KV cache (for sampling). */
#ifndef QUEPT_FORWARD_H
#define QUEPT_FORWARD_H

#include "block.h"

typedef struct {
    int B, T;
    BlockActs acts;
    float *x, *y;  /* (N,C) residual stream, ping-pong */
    float *xn;     /* (N,C) final norm output */
    float *logits; /* (N,V) */
} ForwardState;

int forward_state_init(ForwardState *fs, const ModelConfig *c, int B, int T, QErr *err);
void forward_state_free(ForwardState *fs);

/* Embeds tokens (B,T) into x (B*T, C); ids must already be checked < vocab. */
void embed_forward(float *x, const float *tok_emb, const int *tokens, int N, int C);
/* Final norm + classifier: logits (N,V). */
void head_forward(const Model *m, const float *x, float *xn, float *logits, int N);

/* logits for every position of tokens (B,T) -> fs->logits (B*T, V). */
void model_forward(const Model *m, ForwardState *fs, const int *tokens);

/* One-token decoding with a KV cache, for sampling. */
typedef struct {
    int max_T;
    float *k_cache, *v_cache; /* (L, max_T, KVD) */
    float *x, *xb, *q, *k, *v, *att, *atty, *h1, *gate, *up, *tmp, *logits;
    RopeTable rope;
    Hadamard had; /* the down input's online transform (BlockWeights.down_had);
                     had.n == 0 when hidden_dim has no Hadamard matrix */
} DecodeState;

int decode_state_init(DecodeState *ds, const ModelConfig *c, int max_T, QErr *err);
void decode_state_free(DecodeState *ds);
/* Runs token at position pos (0-based, < max_T); returns logits (V). */
const float *decode_step(const Model *m, DecodeState *ds, int token, int pos);

#endif
