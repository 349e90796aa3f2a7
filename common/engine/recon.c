/* recon.c — block-wise multi-bit reconstruction (see recon.h). */
#include "recon.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "../base/numeric.h"
#include "../base/rng.h"
#include "../nn/block.h"
#include "optim.h"
#include "tome.h"

/* The stream slot bit b uses, or -1 for the full-precision stream. */
static int stream_slot(const QuantConfig *qc, int bit) {
    switch (qc->stream) {
    case STREAM_MERGED: return 0;
    case STREAM_PER_GROUP: return quant_bit_group(bit);
    case STREAM_PER_BIT: return quant_bit_index(qc, bit);
    default: return -1;
    }
}

int streams_init(Streams *s, const QuantConfig *qc, int n_seq, int T, int C, QErr *err) {
    memset(s, 0, sizeof *s);
    s->n_seq = n_seq;
    s->T = T;
    s->C = C;
    size_t n = (size_t)n_seq * T * C;
    s->fp = malloc(n * sizeof(float));
    int ok = s->fp != NULL;
    for (int i = 0; i < qc->n_bits && ok; i++) {
        int k = stream_slot(qc, qc->bits[i]);
        if (k >= 0 && !s->q[k]) ok = (s->q[k] = malloc(n * sizeof(float))) != NULL;
    }
    if (!ok) {
        streams_free(s);
        return qerr_set(err, "out of memory for the activation streams (%d x %d x %d)", n_seq, T, C);
    }
    return 0;
}

void streams_free(Streams *s) {
    free(s->fp);
    for (int k = 0; k < QMAX_NBITS; k++) free(s->q[k]);
    memset(s, 0, sizeof *s);
}

void streams_reset_q(Streams *s) {
    size_t n = (size_t)s->n_seq * s->T * s->C;
    for (int k = 0; k < QMAX_NBITS; k++)
        if (s->q[k]) memcpy(s->q[k], s->fp, n * sizeof(float));
}

float *streams_for_bit(Streams *s, const QuantConfig *qc, int bit) {
    int k = stream_slot(qc, bit);
    return k < 0 ? s->fp : s->q[k];
}

/* Pushes the quantized streams through the trained block: every per-bit or
 * per-group stream at its own bit (a group's bit drawn per batch); the merged
 * stream by MB-ToMe over one random bit per group. */
static int advance_streams(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                           const BlockWeights *w, ReconStep *b, Streams *st, int block, QErr *err) {
    if (qc->stream == STREAM_FP) return 0;
    int n_seq = st->n_seq, T = st->T, C = c->dim, B = qc->batch;
    size_t stride = (size_t)T * C;
    int gb[QN_GROUPS][2], gn[QN_GROUPS];
    recon_group_bits(qc, gb, gn);
    float *outs[QN_GROUPS] = {0}, *next = NULL, *sim = NULL;
    int *idx = NULL, rc = 0;
    if (qc->stream == STREAM_MERGED) {
        next = malloc((size_t)n_seq * stride * sizeof(float));
        sim = malloc(sizeof(float) * T);
        idx = malloc(sizeof(int) * T);
        int ok = next && sim && idx;
        for (int g = 0; g < QN_GROUPS && ok; g++)
            if (gn[g]) ok = (outs[g] = malloc(stride * B * sizeof(float))) != NULL;
        if (!ok) rc = qerr_set(err, "out of memory for the token merge of block %d", block);
    }
    BlockWeights view;
    for (int s0 = 0; rc == 0 && s0 < n_seq; s0 += B) {
        int nb = n_seq - s0 < B ? n_seq - s0 : B;
        b->acts.B = nb;
        if (qc->stream == STREAM_PER_BIT) {
            for (int bi = 0; bi < qc->n_bits; bi++) {
                float *x = st->q[bi] + s0 * stride;
                qblock_build(p, w, bi, p->lwc, p->adapter, b->wq, NULL, &view);
                block_forward(c, &view, &b->acts, x, x); /* forward-only: in place is safe */
            }
            continue;
        }
        Rng rng;
        rng_seed(&rng, rng_mix(qc->seed, (uint64_t)block, 0x544f4d45 /* "TOME" */, (uint64_t)s0));
        for (int g = 0; g < QN_GROUPS; g++) {
            if (!gn[g]) continue;
            int bi = gb[g][rng_int(&rng, gn[g])];
            float *x = streams_for_bit(st, qc, qc->bits[bi]) + s0 * stride;
            qblock_build(p, w, bi, p->lwc, p->adapter, b->wq, NULL, &view);
            block_forward(c, &view, &b->acts, x, qc->stream == STREAM_PER_GROUP ? x : outs[g]);
        }
        if (qc->stream == STREAM_MERGED) {
            const float *present[QN_GROUPS];
            int np = 0;
            for (int g = 0; g < QN_GROUPS; g++) /* groups run from the highest bits down */
                if (gn[g]) present[np++] = outs[g];
            for (int k = 0; k < nb; k++) {
                const float *seq_outs[QN_GROUPS];
                for (int i = 0; i < np; i++) seq_outs[i] = present[i] + k * stride;
                tome_merge(next + (s0 + k) * stride, seq_outs, np, T, C, qc->merge_keep, sim, idx);
            }
        }
    }
    b->acts.B = B;
    if (rc == 0 && qc->stream == STREAM_MERGED) memcpy(st->q[0], next, (size_t)n_seq * stride * sizeof(float));
    for (int g = 0; g < QN_GROUPS; g++) free(outs[g]);
    free(next);
    free(sim);
    free(idx);
    return rc;
}

/* target = the full-precision block on the full-precision stream, in
 * batches of the job's batch size (the same calls in recon_block and in a
 * replay, so both give the same bits). */
static void compute_targets(const ModelConfig *c, const QuantConfig *qc, const BlockWeights *w, ReconStep *b,
                            const Streams *st, float *target) {
    int B = qc->batch;
    size_t stride = (size_t)st->T * c->dim;
    for (int s0 = 0; s0 < st->n_seq; s0 += B) {
        int nb = st->n_seq - s0 < B ? st->n_seq - s0 : B;
        b->acts.B = nb;
        block_forward(c, w, &b->acts, st->fp + s0 * stride, target + s0 * stride);
    }
    b->acts.B = B;
}

static int check_finite(const float *x, size_t n, int block, const char *what, QErr *err) {
    char w[128];
    snprintf(w, sizeof w, "block %d: %s", block, what);
    return floats_check_finite(x, n, w, err);
}

/* Held-out loss at bit index bi with the bit's adapters switched off
 * (ranks restored afterwards). */
static double loss_without_adapter(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p,
                                   const BlockWeights *w, ReconStep *b, int bi, const float *in,
                                   const float *target, int n, int T) {
    int saved[N_LIN];
    for (int l = 0; l < N_LIN; l++) {
        saved[l] = p->lin[l].spec[bi].rank;
        p->lin[l].spec[bi].rank = 0;
    }
    double loss = recon_eval_loss(c, qc, p, w, b, bi, 0, in, target, n, T);
    for (int l = 0; l < N_LIN; l++) p->lin[l].spec[bi].rank = saved[l];
    return loss;
}

/* After training: per bit, keep whichever of trained / adapter-free / RTN
 * has the lowest loss on the held-out sequences [n_train, n_seq). */
static void choose_fallbacks(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p,
                             const BlockWeights *w, ReconStep *b, Streams *st, const float *target,
                             int n_train, int n_hold, int T, ReconStats *stats) {
    size_t off = (size_t)n_train * T * c->dim;
    for (int bi = 0; bi < qc->n_bits; bi++) {
        const float *in = streams_for_bit(st, qc, qc->bits[bi]) + off;
        double l_tr = recon_eval_loss(c, qc, p, w, b, bi, 0, in, target + off, n_hold, T);
        double l_na = loss_without_adapter(c, qc, p, w, b, bi, in, target + off, n_hold, T);
        double l_rtn = recon_eval_loss(c, qc, p, w, b, bi, 1, in, target + off, n_hold, T);
        int choice = QB_TRAINED;
        double best = l_tr;
        if (l_na < best) choice = QB_NO_ADAPTER, best = l_na;
        if (l_rtn < best) choice = QB_RTN, best = l_rtn;
        qblock_set_choice(p, bi, choice);
        stats->choice[bi] = choice;
        stats->hold_rtn[bi] = l_rtn;
        /* measured again with the choice applied: what the artifact will hold */
        stats->hold_final[bi] = recon_eval_loss(c, qc, p, w, b, bi, 0, in, target + off, n_hold, T);
    }
}

int recon_block(const ModelConfig *c, const QuantConfig *qc, int block, const BlockWeights *w,
                Streams *st, QBlockParams *p, ReconStats *stats, ReconProgress progress,
                void *user, QErr *err) {
    memset(stats, 0, sizeof *stats);
    int n_seq = st->n_seq, T = st->T, C = c->dim, B = qc->batch;
    if (n_seq < B)
        return qerr_set(err, "block %d: %d calibration sequences are fewer than the batch size %d",
                        block, n_seq, B);
    size_t stride = (size_t)T * C, total = (size_t)n_seq * stride;
    if (block_weights_check_finite(w, c, block, err) != 0) return -1;
    if (check_finite(st->fp, total, block, "the full-precision input activations", err) != 0) return -1;
    if (qblock_params_init(p, c, qc, block, err) != 0) return -1;
    ReconStep b;
    if (recon_step_init(&b, c, p, B, T, err) != 0) {
        qblock_params_free(p);
        return -1;
    }
    float *target = malloc(total * sizeof(float));
    AdamW opt_lwc, opt_ad;
    int have_opt = adamw_init(&opt_lwc, p->n_lwc, qc->weight_decay) == 0;
    have_opt = (adamw_init(&opt_ad, p->n_adapter, qc->weight_decay) == 0) && have_opt;
    int rc = 0;
    if (!target || !have_opt) {
        rc = qerr_set(err, "out of memory for block %d targets", block);
        goto done;
    }
    double t0 = now_seconds();
    compute_targets(c, qc, w, &b, st, target);
    if (check_finite(target, total, block, "the full-precision block output", err) != 0) {
        rc = -1;
        goto done;
    }
    for (int bi = 0; bi < qc->n_bits; bi++) {
        const float *in = streams_for_bit(st, qc, qc->bits[bi]);
        stats->loss_rtn[bi] = recon_eval_loss(c, qc, p, w, &b, bi, 1, in, target, n_seq, T);
        stats->loss_init[bi] = recon_eval_loss(c, qc, p, w, &b, bi, 0, in, target, n_seq, T);
    }
    int gb[QN_GROUPS][2], gn[QN_GROUPS];
    recon_group_bits(qc, gb, gn);
    /* sequences [n_train, n_seq) are held out of training to judge the fallback */
    int n_hold = qc->fallback ? (int)(qc->holdout * n_seq) / B * B : 0;
    if (n_seq - n_hold < B) n_hold = 0;
    int n_train = n_seq - n_hold;
    long steps_per_epoch = n_train / B, total_steps = steps_per_epoch * qc->epochs, step = 0;
    for (int e = 0; e < qc->epochs && qc->method == METHOD_QUEPT; e++) {
        double gl[QN_GROUPS] = {0};
        double te = now_seconds();
        for (long s = 0; s < steps_per_epoch; s++, step++) {
            Rng rng;
            rng_seed(&rng, rng_mix(qc->seed, (uint64_t)block, (uint64_t)e, (uint64_t)s));
            memset(b.g_lwc, 0, p->n_lwc * sizeof(float));
            memset(b.g_adapter, 0, p->n_adapter * sizeof(float));
            for (int g = 0; g < QN_GROUPS; g++) {
                if (!gn[g]) continue;
                int bi = gb[g][rng_int(&rng, gn[g])];
                const float *x = streams_for_bit(st, qc, qc->bits[bi]) + (size_t)s * B * stride;
                float scale = 1.0f;
                if (qc->normalize_loss && stats->loss_init[bi] > 0.0)
                    scale = (float)(1.0 / stats->loss_init[bi]);
                gl[g] += recon_step_bit(c, qc, p, w, &b, bi, x, target + (size_t)s * B * stride, scale);
            }
            adamw_step(&opt_lwc, p->lwc, b.g_lwc, cosine_lr(qc->lr_lwc, step, total_steps));
            adamw_step(&opt_ad, p->adapter, b.g_adapter, cosine_lr(qc->lr_adapter, step, total_steps));
        }
        double dt = now_seconds() - te;
        for (int g = 0; g < QN_GROUPS; g++) gl[g] = gn[g] ? gl[g] / steps_per_epoch : NAN;
        if (check_finite(p->lwc, p->n_lwc, block, "the clipping logits (training diverged)", err) ||
            check_finite(p->adapter, p->n_adapter, block, "the adapters (training diverged)", err)) {
            rc = -1;
            goto done;
        }
        if (progress &&
            progress(block, e + 1, qc->epochs, gl, dt > 0 ? (double)steps_per_epoch * B * T / dt : 0.0, user)) {
            rc = qerr_set(err, "block %d: cancelled", block);
            goto done;
        }
    }
    if (qc->fallback && qc->method == METHOD_QUEPT)
        choose_fallbacks(c, qc, p, w, &b, st, target, n_hold ? n_train : 0, n_hold ? n_hold : n_seq, T,
                         stats);
    for (int bi = 0; bi < qc->n_bits; bi++) {
        const float *in = streams_for_bit(st, qc, qc->bits[bi]);
        stats->loss_final[bi] = qc->method == METHOD_QUEPT
                                    ? recon_eval_loss(c, qc, p, w, &b, bi, 0, in, target, n_seq, T)
                                    : stats->loss_rtn[bi];
    }
    /* next block's quantized streams */
    if (rc == 0) rc = advance_streams(c, qc, p, w, &b, st, block, err);
    if (rc == 0) {
        memcpy(st->fp, target, total * sizeof(float));
        stats->seconds = now_seconds() - t0;
        stats->tokens_per_s = total_steps > 0 ? (double)total_steps * B * T / stats->seconds : 0.0;
    }
done:
    free(target);
    adamw_free(&opt_lwc);
    adamw_free(&opt_ad);
    recon_step_free(&b);
    if (rc != 0) qblock_params_free(p);
    return rc;
}

int recon_replay_block(const ModelConfig *c, const QuantConfig *qc, int block, const BlockWeights *w,
                       Streams *st, const QBlockParams *p, QErr *err) {
    size_t total = (size_t)st->n_seq * st->T * c->dim;
    ReconStep b;
    if (recon_step_init(&b, c, p, qc->batch, st->T, err) != 0) return -1;
    float *target = malloc(total * sizeof(float));
    int rc = target ? 0 : qerr_set(err, "out of memory for block %d targets", block);
    if (rc == 0) {
        compute_targets(c, qc, w, &b, st, target);
        rc = check_finite(target, total, block, "the full-precision block output", err);
    }
    if (rc == 0) rc = advance_streams(c, qc, p, w, &b, st, block, err);
    if (rc == 0) memcpy(st->fp, target, total * sizeof(float));
    free(target);
    recon_step_free(&b);
    return rc;
}
