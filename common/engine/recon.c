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

int streams_init(Streams *s, const QuantConfig *qc, int n_seq, int T, int C, QErr *err) {
    memset(s, 0, sizeof *s);
    s->n_seq = n_seq;
    s->T = T;
    s->C = C;
    size_t n = (size_t)n_seq * T * C;
    int nq = qc->stream == STREAM_MERGED ? 1 : qc->stream == STREAM_PER_GROUP ? QN_GROUPS : 0;
    s->fp = malloc(n * sizeof(float));
    int ok = s->fp != NULL;
    for (int g = 0; g < nq; g++) {
        if (qc->stream == STREAM_PER_GROUP) {
            /* only groups with a bit in the list need a stream */
            int used = 0;
            for (int i = 0; i < qc->n_bits; i++) used |= quant_bit_group(qc->bits[i]) == g;
            if (!used) continue;
        }
        s->q[g] = malloc(n * sizeof(float));
        ok = ok && s->q[g];
    }
    if (!ok) {
        streams_free(s);
        return qerr_set(err, "out of memory for the activation streams (%d x %d x %d)", n_seq, T, C);
    }
    return 0;
}

void streams_free(Streams *s) {
    free(s->fp);
    for (int g = 0; g < QN_GROUPS; g++) free(s->q[g]);
    memset(s, 0, sizeof *s);
}

void streams_reset_q(Streams *s) {
    size_t n = (size_t)s->n_seq * s->T * s->C;
    for (int g = 0; g < QN_GROUPS; g++)
        if (s->q[g]) memcpy(s->q[g], s->fp, n * sizeof(float));
}

float *streams_for_bit(Streams *s, const QuantConfig *qc, int bit) {
    if (qc->stream == STREAM_FP) return s->fp;
    if (qc->stream == STREAM_MERGED) return s->q[0];
    return s->q[quant_bit_group(bit)];
}

/* All buffers of one block's training, laid out once. */
typedef struct {
    BlockActs acts;
    float *out, *dout, *dx, *bscratch, *work;
    float *wq[N_LIN], *fqs[N_LIN], *dW[N_LIN];
    float *g_lwc, *g_adapter, *g_adapter_bit;
} ReconBuffers;

static void recon_buffers_free(ReconBuffers *b) {
    block_acts_free(&b->acts);
    free(b->out);
    free(b->dout);
    free(b->dx);
    free(b->bscratch);
    free(b->work);
    for (int l = 0; l < N_LIN; l++) {
        free(b->wq[l]);
        free(b->fqs[l]);
        free(b->dW[l]);
    }
    free(b->g_lwc);
    free(b->g_adapter);
    free(b->g_adapter_bit);
}

static int recon_buffers_init(ReconBuffers *b, const ModelConfig *c, const QBlockParams *p, int B,
                              int T, QErr *err) {
    memset(b, 0, sizeof *b);
    if (block_acts_init(&b->acts, c, B, T, 1, err) != 0) return -1;
    size_t NC = (size_t)B * T * c->dim, maxw = 0, maxs = 0;
    b->out = malloc(NC * sizeof(float));
    b->dout = malloc(NC * sizeof(float));
    b->dx = malloc(NC * sizeof(float));
    b->bscratch = malloc(block_backward_scratch_floats(c, B, T) * sizeof(float));
    int ok = b->out && b->dout && b->dx && b->bscratch;
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        size_t n = (size_t)q->out * q->in, ns = 0;
        for (int bi = 0; bi < p->n_bits; bi++) {
            size_t s = fq_scratch_floats(&q->spec[bi]);
            if (s > ns) ns = s;
        }
        if (n > maxw) maxw = n;
        if (ns > maxs) maxs = ns;
        b->wq[l] = malloc(n * sizeof(float));
        b->fqs[l] = malloc((ns ? ns : 1) * sizeof(float));
        b->dW[l] = malloc(n * sizeof(float));
        ok = ok && b->wq[l] && b->fqs[l] && b->dW[l];
    }
    b->work = malloc(maxw * sizeof(float));
    b->g_lwc = malloc((p->n_lwc ? p->n_lwc : 1) * sizeof(float));
    b->g_adapter = malloc((p->n_adapter ? p->n_adapter : 1) * sizeof(float));
    b->g_adapter_bit = malloc((p->n_adapter ? p->n_adapter : 1) * sizeof(float));
    ok = ok && b->work && b->g_lwc && b->g_adapter && b->g_adapter_bit;
    if (!ok) {
        recon_buffers_free(b);
        return qerr_set(err, "out of memory for the reconstruction buffers (B=%d, T=%d)", B, T);
    }
    return 0;
}

/* Reconstruction loss of out vs target (N = B*T rows of C) and its gradient:
 * |d| (or d^2) summed over tokens, averaged over batch and hidden. */
static double recon_loss(const float *out, const float *target, float *dout, int B, int T, int C,
                         int l2, float grad_scale) {
    size_t n = (size_t)B * T * C;
    double sum = 0.0;
    float norm = 1.0f / (float)(B * C);
    for (size_t i = 0; i < n; i++) {
        float d = out[i] - target[i];
        if (l2) {
            sum += (double)d * d;
            if (dout) dout[i] = 2.0f * d * norm * grad_scale;
        } else {
            sum += fabsf(d);
            if (dout) dout[i] = (d > 0.0f ? 1.0f : d < 0.0f ? -1.0f : 0.0f) * norm * grad_scale;
        }
    }
    return sum / (double)(B * C);
}

/* Mean loss over all batches of `in` against target at bit index bi
 * (rtn=1: round-to-nearest weights). */
static double eval_loss(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                        const BlockWeights *w, ReconBuffers *b, int bi, int rtn, const float *in,
                        const float *target, int n_seq, int T) {
    BlockWeights view;
    if (rtn) qblock_build_rtn(p, w, bi, b->wq, &view);
    else qblock_build(p, w, bi, p->lwc, p->adapter, b->wq, NULL, &view);
    int B = b->acts.B;
    size_t stride = (size_t)T * c->dim;
    double sum = 0.0;
    int nb = 0;
    for (int s0 = 0; s0 + B <= n_seq; s0 += B, nb++) {
        block_forward(c, &view, &b->acts, in + s0 * stride, b->out);
        sum += recon_loss(b->out, target + s0 * stride, NULL, B, T, c->dim, qc->loss_l2, 1.0f);
    }
    return nb ? sum / nb : 0.0;
}

/* Per group, the bits of the list in it (count 0 = group absent). */
static void group_bits(const QuantConfig *qc, int gb[QN_GROUPS][2], int gn[QN_GROUPS]) {
    for (int g = 0; g < QN_GROUPS; g++) gn[g] = 0;
    for (int i = 0; i < qc->n_bits; i++) {
        int g = quant_bit_group(qc->bits[i]);
        gb[g][gn[g]++] = i;
    }
}

/* Highest rank used by any bit in a group strictly above bit index bi's:
 * with prefix_grad_stop, bit bi does not train those adapter ranks. */
static int higher_groups_rank(const QBlockParams *p, const QuantConfig *qc, int l, int bi) {
    int g = quant_bit_group(qc->bits[bi]), r = 0;
    for (int i = 0; i < qc->n_bits; i++)
        if (quant_bit_group(qc->bits[i]) < g && p->lin[l].spec[i].rank > r) r = p->lin[l].spec[i].rank;
    return r;
}

/* One training step's work for bit index bi: forward, loss, backward into
 * b->g_lwc / b->g_adapter. Returns the (unnormalised) loss. */
static double train_bit(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                        const BlockWeights *w, ReconBuffers *b, int bi, const float *x,
                        const float *target, float grad_scale) {
    BlockWeights view;
    qblock_build(p, w, bi, p->lwc, p->adapter, b->wq, b->fqs, &view);
    int B = b->acts.B, T = b->acts.T;
    size_t NC = (size_t)B * T * c->dim;
    block_forward(c, &view, &b->acts, x, b->out);
    double loss = recon_loss(b->out, target, b->dout, B, T, c->dim, qc->loss_l2, grad_scale);
    BlockWeightGrads gw = {b->dW[LIN_Q], b->dW[LIN_K], b->dW[LIN_V], b->dW[LIN_O],
                           b->dW[LIN_GATE], b->dW[LIN_UP], b->dW[LIN_DOWN]};
    for (int l = 0; l < N_LIN; l++)
        memset(b->dW[l], 0, sizeof(float) * (size_t)p->lin[l].out * p->lin[l].in);
    memset(b->dx, 0, NC * sizeof(float));
    block_backward(c, &view, &b->acts, x, b->dout, b->dx, &gw, b->bscratch);
    float *gad = qc->prefix_grad_stop ? b->g_adapter_bit : b->g_adapter;
    if (qc->prefix_grad_stop) memset(gad, 0, p->n_adapter * sizeof(float));
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        const FqSpec *s = &q->spec[bi];
        fq_backward(s, qblock_linear_weight(w, l), p->adapter + q->off_Bd, p->adapter + q->off_Bu,
                    p->lwc + q->off_gamma[bi], p->lwc + q->off_beta[bi], b->fqs[l], b->dW[l],
                    b->g_lwc + q->off_gamma[bi], b->g_lwc + q->off_beta[bi],
                    s->rank ? gad + q->off_Bd : NULL, s->rank ? gad + q->off_Bu : NULL, b->work);
        if (qc->prefix_grad_stop && s->rank > 0) {
            int r0 = higher_groups_rank(p, qc, l, bi);
            for (int o = 0; o < q->out; o++)
                for (int k = r0; k < s->rank; k++)
                    b->g_adapter[q->off_Bd + (size_t)o * q->R + k] += gad[q->off_Bd + (size_t)o * q->R + k];
            for (size_t i = (size_t)r0 * q->in; i < (size_t)s->rank * q->in; i++)
                b->g_adapter[q->off_Bu + i] += gad[q->off_Bu + i];
        }
    }
    return loss;
}

static int check_finite(const float *x, size_t n, int block, const char *what, QErr *err) {
    char w[128];
    snprintf(w, sizeof w, "block %d: %s", block, what);
    return floats_check_finite(x, n, w, err);
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
    ReconBuffers b;
    if (recon_buffers_init(&b, c, p, B, T, err) != 0) {
        qblock_params_free(p);
        return -1;
    }
    float *target = malloc(total * sizeof(float));
    float *next = malloc(total * sizeof(float));
    AdamW opt_lwc, opt_ad;
    int have_opt = adamw_init(&opt_lwc, p->n_lwc, qc->weight_decay) == 0;
    have_opt = (adamw_init(&opt_ad, p->n_adapter, qc->weight_decay) == 0) && have_opt;
    int rc = 0;
    if (!target || !next || !have_opt) {
        rc = qerr_set(err, "out of memory for block %d targets", block);
        goto done;
    }
    double t0 = now_seconds();
    /* targets: the full-precision block on the full-precision stream */
    for (int s0 = 0; s0 < n_seq; s0 += B) {
        int nb = n_seq - s0 < B ? n_seq - s0 : B;
        b.acts.B = nb;
        block_forward(c, w, &b.acts, st->fp + s0 * stride, target + s0 * stride);
    }
    b.acts.B = B;
    if (check_finite(target, total, block, "the full-precision block output", err) != 0) {
        rc = -1;
        goto done;
    }
    for (int bi = 0; bi < qc->n_bits; bi++) {
        const float *in = streams_for_bit(st, qc, qc->bits[bi]);
        stats->loss_rtn[bi] = eval_loss(c, qc, p, w, &b, bi, 1, in, target, n_seq, T);
        stats->loss_init[bi] = eval_loss(c, qc, p, w, &b, bi, 0, in, target, n_seq, T);
    }
    int gb[QN_GROUPS][2], gn[QN_GROUPS];
    group_bits(qc, gb, gn);
    long steps_per_epoch = n_seq / B, total_steps = steps_per_epoch * qc->epochs, step = 0;
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
                gl[g] += train_bit(c, qc, p, w, &b, bi, x, target + (size_t)s * B * stride, scale);
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
        if (progress)
            progress(block, e + 1, qc->epochs, gl,
                     dt > 0 ? (double)steps_per_epoch * B * T / dt : 0.0, user);
    }
    for (int bi = 0; bi < qc->n_bits; bi++) {
        const float *in = streams_for_bit(st, qc, qc->bits[bi]);
        stats->loss_final[bi] = qc->method == METHOD_QUEPT
                                    ? eval_loss(c, qc, p, w, &b, bi, 0, in, target, n_seq, T)
                                    : stats->loss_rtn[bi];
    }
    /* next block's quantized streams */
    if (qc->stream != STREAM_FP) {
        float *outs[QN_GROUPS] = {0};
        float *sim = malloc(sizeof(float) * T);
        int *idx = malloc(sizeof(int) * T);
        int ok = sim && idx;
        for (int g = 0; g < QN_GROUPS && ok; g++)
            if (gn[g]) ok = (outs[g] = malloc(stride * B * sizeof(float))) != NULL;
        if (!ok) rc = qerr_set(err, "out of memory for the token merge of block %d", block);
        for (int s0 = 0; rc == 0 && s0 < n_seq; s0 += B) {
            int nb = n_seq - s0 < B ? n_seq - s0 : B;
            b.acts.B = nb;
            Rng rng;
            rng_seed(&rng, rng_mix(qc->seed, (uint64_t)block, 0x544f4d45 /* "TOME" */, (uint64_t)s0));
            for (int g = 0; g < QN_GROUPS; g++) {
                if (!gn[g]) continue;
                int bi = gb[g][rng_int(&rng, gn[g])];
                BlockWeights view;
                qblock_build(p, w, bi, p->lwc, p->adapter, b.wq, NULL, &view);
                const float *in = streams_for_bit(st, qc, qc->bits[bi]) + s0 * stride;
                if (qc->stream == STREAM_PER_GROUP) block_forward(c, &view, &b.acts, in, st->q[g] + s0 * stride);
                else block_forward(c, &view, &b.acts, in, outs[g]);
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
        b.acts.B = B;
        if (rc == 0 && qc->stream == STREAM_MERGED) memcpy(st->q[0], next, total * sizeof(float));
        for (int g = 0; g < QN_GROUPS; g++) free(outs[g]);
        free(sim);
        free(idx);
    }
    if (rc == 0) {
        memcpy(st->fp, target, total * sizeof(float));
        stats->seconds = now_seconds() - t0;
        stats->tokens_per_s = total_steps > 0 ? (double)total_steps * B * T / stats->seconds : 0.0;
    }
done:
    free(target);
    free(next);
    adamw_free(&opt_lwc);
    adamw_free(&opt_ad);
    recon_buffers_free(&b);
    if (rc != 0) qblock_params_free(p);
    return rc;
}
