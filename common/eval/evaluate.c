#include "evaluate.h"

#include "../nn/forward.h"

#include <stdlib.h>
#include <string.h>

const int *eval_forward_tokens(const TokenSet *ts, int s0, int nb, const EvalOptions *opt, int *tmp) {
    const int T = ts->seq_len;
    const int *tok = ts->tokens + (size_t)s0 * T;
    if (!opt || opt->scoring != EVAL_SCORE_LLAMA) return tok;
    memcpy(tmp, tok, sizeof(int) * (size_t)nb * T);
    for (int b = 0; b < nb; b++) tmp[(size_t)b * T] = opt->bos_id;
    return tmp;
}

int evaluate_model(const Model *m, const Model *ref, const TokenSet *ts, int batch, const EvalOptions *opt,
                   EvalResult *out, QErr *err) {
    if (ts->n_seq <= 0 || ts->seq_len < 2)
        return qerr_set(err, "evaluation data has %d sequences of %d tokens: need >= 1 of >= 2", ts->n_seq,
                        ts->seq_len);
    if (ts->seq_len > m->cfg.seq_len)
        return qerr_set(err, "evaluation sequences have %d tokens but the model allows %d", ts->seq_len,
                        m->cfg.seq_len);
    if (tokens_check_vocab(ts, m->cfg.vocab_size, "evaluation data", err) != 0) return -1;
    const int llama = opt && opt->scoring == EVAL_SCORE_LLAMA;
    if (llama && (ts->seq_len < 4 || opt->bos_id < 0 || opt->bos_id >= m->cfg.vocab_size))
        return qerr_set(err,
                        "llama-perplexity scoring needs chunks of >= 4 tokens (have %d) and a BOS id in the "
                        "vocabulary (have %d, vocab %d)",
                        ts->seq_len, opt->bos_id, m->cfg.vocab_size);
    if (ref) {
        if (ref->cfg.vocab_size != m->cfg.vocab_size)
            return qerr_set(err, "reference vocab %d differs from the model's %d", ref->cfg.vocab_size,
                            m->cfg.vocab_size);
        if (ts->seq_len > ref->cfg.seq_len)
            return qerr_set(err, "evaluation sequences have %d tokens but the reference allows %d",
                            ts->seq_len, ref->cfg.seq_len);
    }
    if (batch < 1) batch = 1;
    if (batch > ts->n_seq) batch = ts->n_seq;
    int T = ts->seq_len, V = m->cfg.vocab_size;
    ForwardState fm, fr;
    if (forward_state_init(&fm, &m->cfg, batch, T, err) != 0) return -1;
    if (ref && forward_state_init(&fr, &ref->cfg, batch, T, err) != 0) {
        forward_state_free(&fm);
        return -1;
    }
    int *tmp = llama ? malloc(sizeof(int) * (size_t)batch * T) : NULL;
    if (llama && !tmp) {
        forward_state_free(&fm);
        if (ref) forward_state_free(&fr);
        return qerr_set(err, "out of memory");
    }
    EvalAccum acc;
    eval_accum_init(&acc);
    acc.first = llama ? T / 2 : 0;
    for (int s0 = 0; s0 < ts->n_seq; s0 += batch) {
        int nb = ts->n_seq - s0 < batch ? ts->n_seq - s0 : batch;
        const int *tok = eval_forward_tokens(ts, s0, nb, opt, tmp);
        const int *target = ts->tokens + (size_t)s0 * T; /* scored against the real ids */
        /* the last batch may be short: run it as a full batch of its own size */
        fm.B = nb;
        fm.acts.B = nb;
        model_forward(m, &fm, tok);
        if (ref) {
            fr.B = nb;
            fr.acts.B = nb;
            model_forward(ref, &fr, tok);
        }
        for (int b = 0; b < nb; b++)
            eval_accum_sequence(&acc, fm.logits + (size_t)b * T * V,
                                ref ? fr.logits + (size_t)b * T * V : NULL, target + (size_t)b * T, T, V);
    }
    int rc = eval_accum_result(&acc, out, err);
    eval_accum_free(&acc);
    free(tmp);
    forward_state_free(&fm);
    if (ref) forward_state_free(&fr);
    return rc;
}
