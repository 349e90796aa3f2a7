/* sensitivity.c — KL-divergence sensitivity table (see sensitivity.h). */
#include "sensitivity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../eval/metrics.h"
#include "../nn/forward.h"

int sens_holdout_count(int n_seq) {
    int n = n_seq / 8;
    if (n > SENS_MAX_SEQS) n = SENS_MAX_SEQS;
    if (n < 1) n = 1;
    if (n > n_seq) n = n_seq;
    return n;
}

int sensitivity_compute(ElasticModel *em, const TokenSet *ts, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    int L = c->n_layers, V = c->vocab_size, T = ts->seq_len, NB = q->n_bits;
    if (ts->n_seq < 1 || T < 2) return qerr_set(err, "sensitivity: no sequences of at least 2 tokens");
    if (T > c->seq_len) return qerr_set(err, "sensitivity: sequences longer than the model's context");
    int n_hold = sens_holdout_count(ts->n_seq), first = ts->n_seq - n_hold;
    free(em->sens);
    em->sens = calloc((size_t)NB * L, sizeof(double));
    int *bits = malloc(sizeof(int) * (size_t)L);
    BlockWeights *view_blocks = malloc(sizeof(BlockWeights) * (size_t)L);
    float *ref_logits = malloc(sizeof(float) * (size_t)T * V);
    double *lp = malloc(sizeof(double) * (size_t)V), *lq = malloc(sizeof(double) * (size_t)V);
    Model qm;
    memset(&qm, 0, sizeof qm);
    ForwardState fs;
    memset(&fs, 0, sizeof fs);
    int rc = 0;
    if (!em->sens || !bits || !view_blocks || !ref_logits || !lp || !lq)
        rc = qerr_set(err, "sensitivity: out of memory");
    if (rc == 0) rc = forward_state_init(&fs, c, 1, T, err);
    Model view = em->base; /* shallow: blocks replaced by view_blocks */
    view.blocks = view_blocks;
    for (int bi = 0; rc == 0 && bi < NB; bi++) {
        for (int j = 0; j < L; j++) bits[j] = q->bits[bi];
        rc = elastic_switch(em, bits, &qm, err);
        /* finite but huge base weights (3e38) can overflow a grid's scale:
         * refuse here, naming width, block and tensor, rather than write an
         * artifact that only evaluates to NaN */
        if (rc == 0 && model_check_finite(&qm, err) != 0)
            rc = qerr_wrap(err,
                           "at %d bits the quantized model is not finite (weights too large for the grid?)",
                           q->bits[bi]);
        for (int s = first; rc == 0 && s < ts->n_seq; s++) {
            const int *tok = ts->tokens + (size_t)s * T;
            model_forward(&em->base, &fs, tok);
            memcpy(ref_logits, fs.logits, sizeof(float) * (size_t)T * V);
            for (int j = 0; j < L; j++) {
                memcpy(view_blocks, em->base.blocks, sizeof(BlockWeights) * (size_t)L);
                view_blocks[j] = qm.blocks[j];
                model_forward(&view, &fs, tok);
                double sum = 0.0;
                for (int t = 0; t + 1 < T; t++) {
                    log_softmax_row(lp, ref_logits + (size_t)t * V, V);
                    log_softmax_row(lq, fs.logits + (size_t)t * V, V);
                    sum += kl_divergence(lp, lq, V); /* >= 0, and NaN stays NaN (checked below) */
                }
                em->sens[(size_t)bi * L + j] += sum / ((double)(T - 1) * n_hold);
            }
        }
    }
    if (rc == 0) {
        for (size_t i = 0; i < (size_t)NB * L; i++)
            if (!isfinite(em->sens[i])) {
                rc = qerr_set(err, "sensitivity: non-finite KL divergence (block %d, %d bits)",
                              (int)(i % (size_t)L), q->bits[i / (size_t)L]);
                break;
            }
    }
    if (rc == 0)
        snprintf(em->sens_measure, sizeof em->sens_measure, "kld");
    else {
        free(em->sens);
        em->sens = NULL;
    }
    /* the switched model shares nothing with the base: free it whole */
    model_free(&qm);
    forward_state_free(&fs);
    free(bits);
    free(view_blocks);
    free(ref_logits);
    free(lp);
    free(lq);
    return rc;
}
