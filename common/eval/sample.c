#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/numeric.h"
#include "../nn/forward.h"

int sample_token(const float *logits, int V, float temperature, Rng *rng, float *probs) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return best;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        probs[i] = expf((logits[i] - logits[best]) / temperature);
        sum += probs[i];
    }
    double u = rng_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < V; i++) {
        acc += probs[i];
        if (u < acc) return i;
    }
    return best; /* rounding at the top end */
}

int sample_sequences(const Model *m, int n_seq, int T, uint64_t seed, float temperature, TokenSet *out,
                     void (*progress)(int, int, void *), void *user, QErr *err) {
    memset(out, 0, sizeof *out);
    if (n_seq < 1 || T < 1) return qerr_set(err, "need at least 1 sequence of at least 1 token");
    if (T > m->cfg.seq_len)
        return qerr_set(err, "--len %d exceeds the model's context of %d tokens", T, m->cfg.seq_len);
    int V = m->cfg.vocab_size;
    DecodeState ds;
    if (decode_state_init(&ds, &m->cfg, T, err) != 0) return -1;
    out->tokens = malloc(sizeof(int) * (size_t)n_seq * T);
    float *probs = malloc(sizeof(float) * (size_t)V);
    if (!out->tokens || !probs) {
        free(out->tokens);
        free(probs);
        out->tokens = NULL;
        decode_state_free(&ds);
        return qerr_set(err, "out of memory for %d x %d tokens", n_seq, T);
    }
    out->n_seq = n_seq;
    out->seq_len = T;
    out->vocab_size = V;
    for (int s = 0; s < n_seq; s++) {
        Rng rng;
        rng_seed(&rng, rng_mix(seed, 0x53414d50 /* "SAMP" */, (uint64_t)s, 0));
        int *seq = out->tokens + (size_t)s * T;
        seq[0] = TOKEN_BOS;
        for (int t = 0; t + 1 < T; t++) {
            const float *logits = decode_step(m, &ds, seq[t], t);
            /* finite weights can still overflow: never sample from NaN */
            char what[64];
            snprintf(what, sizeof what, "sequence %d, position %d: the logits", s, t);
            if (floats_check_finite(logits, (size_t)V, what, err) != 0) {
                free(probs);
                decode_state_free(&ds);
                tokens_free(out);
                return -1;
            }
            seq[t + 1] = sample_token(logits, V, temperature, &rng, probs);
        }
        if (progress) progress(s + 1, n_seq, user);
    }
    free(probs);
    decode_state_free(&ds);
    return 0;
}

int sample_to_file(const Model *m, int n_seq, int T, uint64_t seed, float temperature, const char *path,
                   void (*progress)(int, int, void *), void *user, QErr *err) {
    TokenSet ts;
    if (sample_sequences(m, n_seq, T, seed, temperature, &ts, progress, user, err) != 0) return -1;
    int rc = tokens_write(path, &ts, err);
    tokens_free(&ts);
    return rc;
}
