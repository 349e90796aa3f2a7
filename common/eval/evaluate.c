#include "evaluate.h"

#include "../nn/forward.h"

int evaluate_model(const Model *m, const Model *ref, const TokenSet *ts, int batch, EvalResult *out,
                   QErr *err) {
    if (ts->n_seq <= 0 || ts->seq_len < 2)
        return qerr_set(err, "evaluation data has %d sequences of %d tokens: need >= 1 of >= 2", ts->n_seq,
                        ts->seq_len);
    if (ts->seq_len > m->cfg.seq_len)
        return qerr_set(err, "evaluation sequences have %d tokens but the model allows %d", ts->seq_len,
                        m->cfg.seq_len);
    if (tokens_check_vocab(ts, m->cfg.vocab_size, "evaluation data", err) != 0) return -1;
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
    EvalAccum acc;
    eval_accum_init(&acc);
    for (int s0 = 0; s0 < ts->n_seq; s0 += batch) {
        int nb = ts->n_seq - s0 < batch ? ts->n_seq - s0 : batch;
        const int *tok = ts->tokens + (size_t)s0 * T;
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
                                ref ? fr.logits + (size_t)b * T * V : NULL, tok + (size_t)b * T, T, V);
    }
    int rc = eval_accum_result(&acc, out, err);
    eval_accum_free(&acc);
    forward_state_free(&fm);
    if (ref) forward_state_free(&fr);
    return rc;
}
