/* recon.c — block-wise multi-bit reconstruction (see recon.h). */
#include "recon.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "../base/numeric.h"
#include "../base/rng.h"
#include "../nn/block.h"
#include "gptq_round.h"
#include "optim.h"
#include "teq.h"
#include "tome.h"

/* Pushes the quantized streams through the trained block, batch by batch in
 * place: every per-bit or per-group stream at its own bit (a group's bit
 * drawn per batch); the merged stream by MB-ToMe over one random bit per
 * group (a batch's merge only reads that batch's outputs, so it is stored
 * back at once). */
static int advance_streams(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                           const BlockWeights *w, ReconStep *b, Streams *st, int block, QErr *err) {
    if (qc->stream == STREAM_FP) return 0;
    int n_seq = st->n_seq, T = st->T, C = c->dim, B = qc->batch;
    size_t stride = (size_t)T * C;
    int gb[QN_GROUPS][2], gn[QN_GROUPS];
    recon_group_bits(qc, gb, gn);
    float *outs[QN_GROUPS] = {0}, *sim = NULL;
    int *idx = NULL, rc = 0;
    if (qc->stream == STREAM_MERGED) {
        sim = malloc(sizeof(float) * T);
        idx = malloc(sizeof(int) * T);
        int ok = sim && idx;
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
                float *x = streams_edit(st, bi, s0, nb, b->xin);
                qblock_build(p, w, bi, p->lwc, p->adapter, b->wq, NULL, &view);
                block_forward(c, &view, &b->acts, x, x); /* forward-only: in place is safe */
                streams_store(st, bi, s0, nb, x);
            }
            continue;
        }
        Rng rng;
        rng_seed(&rng, rng_mix(qc->seed, (uint64_t)block, 0x544f4d45 /* "TOME" */, (uint64_t)s0));
        for (int g = 0; g < QN_GROUPS; g++) {
            if (!gn[g]) continue;
            int bi = gb[g][rng_int(&rng, gn[g])];
            int slot = streams_slot(qc, qc->bits[bi]);
            float *x = streams_edit(st, slot, s0, nb, b->xin);
            qblock_build(p, w, bi, p->lwc, p->adapter, b->wq, NULL, &view);
            block_forward(c, &view, &b->acts, x, qc->stream == STREAM_PER_GROUP ? x : outs[g]);
            if (qc->stream == STREAM_PER_GROUP) streams_store(st, slot, s0, nb, x);
        }
        if (qc->stream == STREAM_MERGED) {
            const float *present[QN_GROUPS];
            int np = 0;
            for (int g = 0; g < QN_GROUPS; g++) /* groups run from the highest bits down */
                if (gn[g]) present[np++] = outs[g];
            float *next = streams_wbuf(st, 0, s0, b->xin); /* the batch's input is consumed */
            for (int k = 0; k < nb; k++) {
                const float *seq_outs[QN_GROUPS];
                for (int i = 0; i < np; i++) seq_outs[i] = present[i] + k * stride;
                tome_merge(next + k * stride, seq_outs, np, T, C, qc->merge_keep, sim, idx);
            }
            streams_store(st, 0, s0, nb, next);
        }
    }
    b->acts.B = B;
    for (int g = 0; g < QN_GROUPS; g++) free(outs[g]);
    free(sim);
    free(idx);
    return rc;
}

/* target = the full-precision block on the full-precision stream, in
 * batches of the job's batch size (the same calls in recon_block and in a
 * replay, so both give the same bits). */
static void compute_targets(const ModelConfig *c, const QuantConfig *qc, const BlockWeights *w, ReconStep *b,
                            const Streams *st, float *target, double *absmean) {
    int B = qc->batch, C = c->dim;
    size_t stride = (size_t)st->T * C;
    if (absmean) memset(absmean, 0, 2 * (size_t)C * sizeof(double));
    for (int s0 = 0; s0 < st->n_seq; s0 += B) {
        int nb = st->n_seq - s0 < B ? st->n_seq - s0 : B;
        b->acts.B = nb;
        block_forward(c, w, &b->acts, streams_load(st, STREAMS_FP, s0, nb, b->xin), target + s0 * stride);
        /* absmean (2C): sum over tokens of |ln1| (attention norm output), then of |ln2| */
        for (size_t n = 0; absmean && n < (size_t)nb * st->T; n++)
            for (int i = 0; i < C; i++) {
                absmean[i] += fabsf(b->acts.ln1[n * C + i]);
                absmean[C + i] += fabsf(b->acts.ln2[n * C + i]);
            }
    }
    b->acts.B = B;
}

/* AWQ-style start of the TEQ scales (qc->teq_init): per norm group,
 * s_c = (a_c / geometric mean of a)^alpha with a_c the mean |x_c| of the
 * normed full-precision activations (channels below 1e-6 of the largest
 * are dead: s_c = 1, outside the mean) (absmean, 2C: attention norm, MLP norm),
 * alpha from {0, 1/4, 1/2, 3/4, 1}: the one with the lowest round-to-nearest
 * loss on the first sequences (at most 8, whole batches), summed over the
 * widths, each relative to its loss at alpha = 0 (so every width counts
 * alike). Leaves tw transformed by the chosen scales. */
static void teq_init_awq(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p, const BlockWeights *w,
                         BlockWeights *tw, ReconStep *b, const Streams *st, const float *target,
                         double *absmean) {
    int C = c->dim, B = qc->batch;
    int n_eval = st->n_seq < 8 ? st->n_seq : 8;
    n_eval = n_eval / B * B;
    if (n_eval < B) n_eval = B;
    double *logs = absmean; /* turned into log(a_c) - mean log(a), in place */
    int groups[2] = {TEQ_ATTN, TEQ_MLP};
    for (int k = 0; k < 2; k++) {
        /* a dead channel (no activation: zero padding, pruned weights) keeps
         * scale 1 and stays out of the mean; with it in, log(0) would pull
         * the mean down and blow the live channels' scales up */
        double *a = logs + k * C, amax = 0.0, gm = 0.0;
        for (int i = 0; i < C; i++) amax = a[i] > amax ? a[i] : amax;
        const double dead = 1e-6 * amax;
        int live = 0;
        for (int i = 0; i < C; i++)
            if (a[i] > dead) gm += log(a[i] + 1e-30), live++;
        gm = live ? gm / live : 0.0;
        for (int i = 0; i < C; i++) a[i] = a[i] > dead ? log(a[i] + 1e-30) - gm : 0.0;
    }
    double ref[QMAX_NBITS], best = INFINITY;
    float best_alpha = 0.0f;
    for (int a = 0; a <= 4; a++) {
        float alpha = 0.25f * a;
        for (int k = 0; k < 2; k++) {
            float *s = p->teq + p->teq_off[groups[k]];
            for (int i = 0; i < C; i++) s[i] = expf(alpha * (float)logs[k * C + i]);
        }
        teq_clip(p);
        teq_transform(p, c, w, tw);
        double sum = 0.0;
        for (int bi = 0; bi < qc->n_bits; bi++) {
            double l = recon_eval_loss_streams(c, qc, p, tw, b, bi, 1, st, streams_slot(qc, qc->bits[bi]), 0,
                                               target, n_eval);
            if (a == 0) ref[bi] = l > 0.0 ? l : 1.0;
            sum += l / ref[bi];
        }
        if (sum < best) best = sum, best_alpha = alpha;
    }
    for (int k = 0; k < 2; k++) {
        float *s = p->teq + p->teq_off[groups[k]];
        for (int i = 0; i < C; i++) s[i] = expf(best_alpha * (float)logs[k * C + i]);
    }
    teq_clip(p);
    teq_transform(p, c, w, tw);
}

static int check_finite(const float *x, size_t n, int block, const char *what, QErr *err) {
    char w[128];
    snprintf(w, sizeof w, "block %d: %s", block, what);
    return floats_check_finite(x, n, w, err);
}

/* Held-out loss at bit index bi with the bit's adapters switched off
 * (ranks restored afterwards). */
static double loss_without_adapter(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p,
                                   const BlockWeights *w, ReconStep *b, int bi, const Streams *st, int slot,
                                   int s0, const float *target, int n) {
    int saved[N_LIN];
    for (int l = 0; l < N_LIN; l++) {
        saved[l] = p->lin[l].spec[bi].rank;
        p->lin[l].spec[bi].rank = 0;
    }
    double loss = recon_eval_loss_streams(c, qc, p, w, b, bi, 0, st, slot, s0, target, n);
    for (int l = 0; l < N_LIN; l++) p->lin[l].spec[bi].rank = saved[l];
    return loss;
}

/* After training: per bit, keep whichever of trained / adapter-free / RTN
 * has the lowest loss on the held-out sequences [n_train, n_seq). */
static void choose_fallbacks(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p,
                             const BlockWeights *w, ReconStep *b, const Streams *st, const float *target,
                             int n_train, int n_hold, int T, ReconStats *stats) {
    size_t off = (size_t)n_train * T * c->dim;
    for (int bi = 0; bi < qc->n_bits; bi++) {
        int slot = streams_slot(qc, qc->bits[bi]);
        double l_tr = recon_eval_loss_streams(c, qc, p, w, b, bi, 0, st, slot, n_train, target + off, n_hold);
        double l_na = loss_without_adapter(c, qc, p, w, b, bi, st, slot, n_train, target + off, n_hold);
        double l_rtn =
            recon_eval_loss_streams(c, qc, p, w, b, bi, 1, st, slot, n_train, target + off, n_hold);
        int choice = QB_TRAINED;
        double best = l_tr;
        if (l_na < best) choice = QB_NO_ADAPTER, best = l_na;
        if (l_rtn < best) choice = QB_RTN, best = l_rtn;
        qblock_set_choice(p, bi, choice);
        stats->choice[bi] = choice;
        stats->hold_rtn[bi] = l_rtn;
        /* measured again with the choice applied: what the artifact will hold */
        stats->hold_final[bi] =
            recon_eval_loss_streams(c, qc, p, w, b, bi, 0, st, slot, n_train, target + off, n_hold);
    }
}

int recon_epochs(const QuantConfig *qc, long steps_per_epoch) {
    if (qc->epochs <= 0 || qc->min_steps <= 0 || steps_per_epoch <= 0) return qc->epochs;
    long need = (qc->min_steps + steps_per_epoch - 1) / steps_per_epoch;
    return need > qc->epochs ? (int)need : qc->epochs;
}

/* One AdamW step of the TEQ scales p->teq (n_teq) from their gradient g_s:
 * on the scales themselves, or (qc->teq_log) on their logarithm theta,
 * whose gradient is g_s * s; theta is kept in `theta` between steps. */
static void teq_update(const QuantConfig *qc, QBlockParams *p, AdamW *opt, float *theta, float *g_s,
                       float lr) {
    if (!qc->teq_log) {
        adamw_step(opt, p->teq, g_s, lr);
        teq_clip(p);
        return;
    }
    for (size_t i = 0; i < p->n_teq; i++) g_s[i] *= p->teq[i];
    adamw_step(opt, theta, g_s, lr);
    for (size_t i = 0; i < p->n_teq; i++) p->teq[i] = expf(theta[i]);
    teq_clip(p);
}

int recon_block(const ModelConfig *c, const QuantConfig *qc, int block, const BlockWeights *w, Streams *st,
                QBlockParams *p, ReconStats *stats, ReconProgress progress, void *user, QErr *err) {
    memset(stats, 0, sizeof *stats);
    int n_seq = st->n_seq, T = st->T, C = c->dim, B = qc->batch;
    if (n_seq < B)
        return qerr_set(err, "block %d: %d calibration sequences are fewer than the batch size %d", block,
                        n_seq, B);
    size_t stride = (size_t)T * C, total = (size_t)n_seq * stride;
    if (block_weights_check_finite(w, c, block, err) != 0) return -1;
    char what[128];
    snprintf(what, sizeof what, "block %d: the full-precision input activations", block);
    if (streams_check_finite(st, STREAMS_FP, what, err) != 0) return -1;
    if (qblock_params_init(p, c, qc, block, err) != 0) return -1;
    qblock_params_init_scales(p, w); /* PoT: data-free scales */
    ReconStep b;
    if (recon_step_init(&b, c, p, B, T, err) != 0) {
        qblock_params_free(p);
        return -1;
    }
    float *target = malloc(total * sizeof(float)), *teq_theta = NULL;
    AdamW opt_lwc, opt_ad, opt_teq;
    memset(&opt_teq, 0, sizeof opt_teq);
    int have_opt = adamw_init(&opt_lwc, p->n_lwc, qc->weight_decay) == 0;
    have_opt = (adamw_init(&opt_ad, p->n_adapter, qc->weight_decay) == 0) && have_opt;
    /* TEQ: every step trains on the transformed block tw (teq.h), rebuilt
     * from w after every update of the scales; wt is what the block is */
    BlockWeights tw;
    memset(&tw, 0, sizeof tw);
    const BlockWeights *wt = w;
    int rc = 0;
    if (p->n_teq) {
        have_opt = (adamw_init(&opt_teq, p->n_teq, qc->weight_decay) == 0) && have_opt;
        if (qc->teq_log) {
            have_opt = (teq_theta = malloc(p->n_teq * sizeof(float))) != NULL && have_opt;
            for (size_t i = 0; teq_theta && i < p->n_teq; i++) teq_theta[i] = logf(p->teq[i]);
        }
        if (block_weights_alloc(&tw, c, err) != 0) {
            rc = -1;
            goto done;
        }
        teq_transform(p, c, w, &tw);
        wt = &tw;
    }
    if (!target || !have_opt) {
        rc = qerr_set(err, "out of memory for block %d targets", block);
        goto done;
    }
    double t0 = now_seconds();
    double *absmean = p->n_teq && qc->teq_init ? malloc(2 * (size_t)C * sizeof(double)) : NULL;
    if (p->n_teq && qc->teq_init && !absmean) {
        rc = qerr_set(err, "out of memory for block %d activation statistics", block);
        goto done;
    }
    compute_targets(c, qc, w, &b, st, target, absmean);
    if (check_finite(target, total, block, "the full-precision block output", err) != 0) {
        free(absmean);
        rc = -1;
        goto done;
    }
    if (absmean) {
        teq_init_awq(c, qc, p, w, &tw, &b, st, target, absmean);
        free(absmean);
        for (size_t i = 0; teq_theta && i < p->n_teq; i++) teq_theta[i] = logf(p->teq[i]);
    }
    for (int bi = 0; bi < qc->n_bits; bi++) {
        int slot = streams_slot(qc, qc->bits[bi]);
        stats->loss_rtn[bi] = recon_eval_loss_streams(c, qc, p, w, &b, bi, 1, st, slot, 0, target, n_seq);
        stats->loss_init[bi] = recon_eval_loss_streams(c, qc, p, w, &b, bi, 0, st, slot, 0, target, n_seq);
    }
    int gb[QN_GROUPS][2], gn[QN_GROUPS];
    recon_group_bits(qc, gb, gn);
    const int quept = qc->method == METHOD_QUEPT;
    /* sequences [n_train, n_seq) are held out of training to judge the fallback */
    int n_hold = qc->fallback && quept ? (int)(qc->holdout * n_seq) / B * B : 0;
    if (n_seq - n_hold < B) n_hold = 0;
    int n_train = n_seq - n_hold;
    long steps_per_epoch = n_train / B;
    const int epochs = recon_epochs(qc, steps_per_epoch);
    long total_steps = steps_per_epoch * epochs, step = 0;
    /* rtn / gptq with TEQ train the scales alone, through the RTN grid */
    for (int e = 0; e < epochs && (quept || p->n_teq); e++) {
        double gl[QN_GROUPS] = {0};
        double te = now_seconds();
        for (long s = 0; s < steps_per_epoch; s++, step++) {
            Rng rng;
            rng_seed(&rng, rng_mix(qc->seed, (uint64_t)block, (uint64_t)e, (uint64_t)s));
            memset(b.g_lwc, 0, p->n_lwc * sizeof(float));
            memset(b.g_adapter, 0, p->n_adapter * sizeof(float));
            if (p->n_teq) memset(b.g_teq, 0, p->n_teq * sizeof(float));
            for (int g = 0; g < QN_GROUPS; g++) {
                if (!gn[g]) continue;
                int bi = gb[g][rng_int(&rng, gn[g])];
                const float *x = streams_load(st, streams_slot(qc, qc->bits[bi]), (int)s * B, B, b.xin);
                float scale = 1.0f;
                if (qc->normalize_loss && stats->loss_init[bi] > 0.0)
                    scale = (float)(1.0 / stats->loss_init[bi]);
                gl[g] += recon_step_bit(c, qc, p, wt, &b, bi, x, target + (size_t)s * B * stride, scale);
            }
            if (quept) {
                adamw_step(&opt_lwc, p->lwc, b.g_lwc, cosine_lr(qc->lr_lwc, step, total_steps));
                adamw_step(&opt_ad, p->adapter, b.g_adapter, cosine_lr(qc->lr_adapter, step, total_steps));
            }
            if (p->n_teq) {
                teq_update(qc, p, &opt_teq, teq_theta, b.g_teq, cosine_lr(qc->lr_teq, step, total_steps));
                teq_transform(p, c, w, &tw);
            }
        }
        double dt = now_seconds() - te;
        for (int g = 0; g < QN_GROUPS; g++) gl[g] = gn[g] ? gl[g] / steps_per_epoch : NAN;
        if (check_finite(p->lwc, p->n_lwc, block, "the clipping logits (training diverged)", err) ||
            check_finite(p->adapter, p->n_adapter, block, "the adapters (training diverged)", err) ||
            (p->n_teq && check_finite(p->teq, p->n_teq, block, "the TEQ scales (training diverged)", err))) {
            rc = -1;
            goto done;
        }
        if (progress &&
            progress(block, e + 1, epochs, gl, dt > 0 ? (double)steps_per_epoch * B * T / dt : 0.0, user)) {
            rc = qerr_setc(err, QERR_CANCELLED, "block %d: cancelled", block);
            goto done;
        }
    }
    if (qc->fallback && quept) {
        int s_hold = n_hold ? n_train : 0, n_judge = n_hold ? n_hold : n_seq;
        choose_fallbacks(c, qc, p, wt, &b, st, target, s_hold, n_judge, T, stats);
        if (qc->fallback_gptq &&
            gptq_round_candidates(c, qc, p, wt, &b, st, n_train, s_hold, n_judge,
                                  target + (size_t)s_hold * stride, stats, block, err) != 0) {
            rc = -1;
            goto done;
        }
    }
    /* rtn / gptq with TEQ: round-to-nearest of the transformed weights (for
     * gptq a proxy: GPTQ itself runs after the scales are folded) */
    for (int bi = 0; bi < qc->n_bits; bi++) {
        int slot = streams_slot(qc, qc->bits[bi]);
        stats->loss_final[bi] = quept || p->n_teq ? recon_eval_loss_streams(c, qc, p, wt, &b, bi, !quept, st,
                                                                            slot, 0, target, n_seq)
                                                  : stats->loss_rtn[bi];
    }
    /* next block's quantized streams */
    if (rc == 0) rc = advance_streams(c, qc, p, wt, &b, st, block, err);
    if (rc == 0) {
        streams_store(st, STREAMS_FP, 0, n_seq, target);
        stats->seconds = now_seconds() - t0;
        stats->tokens_per_s = total_steps > 0 ? (double)total_steps * B * T / stats->seconds : 0.0;
    }
done:
    free(target);
    free(teq_theta);
    adamw_free(&opt_lwc);
    adamw_free(&opt_ad);
    adamw_free(&opt_teq);
    block_weights_free(&tw);
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
        compute_targets(c, qc, w, &b, st, target, NULL);
        rc = check_finite(target, total, block, "the full-precision block output", err);
    }
    /* the quantized streams go through the TEQ-transformed block, as in recon_block */
    BlockWeights tw;
    memset(&tw, 0, sizeof tw);
    const BlockWeights *wt = w;
    if (rc == 0 && p->n_teq) {
        rc = block_weights_alloc(&tw, c, err);
        if (rc == 0) teq_transform(p, c, w, &tw), wt = &tw;
    }
    if (rc == 0) rc = advance_streams(c, qc, p, wt, &b, st, block, err);
    if (rc == 0) streams_store(st, STREAMS_FP, 0, st->n_seq, target);
    if (p->n_teq) block_weights_free(&tw);
    free(target);
    recon_step_free(&b);
    return rc;
}
