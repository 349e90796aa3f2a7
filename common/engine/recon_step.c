/* recon_step.c — one bit's training step (see recon_step.h). */
#include "recon_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


void recon_step_free(ReconStep *b) {
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

int recon_step_init(ReconStep *b, const ModelConfig *c, const QBlockParams *p, int B,
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
        recon_step_free(b);
        return qerr_set(err, "out of memory for the reconstruction buffers (B=%d, T=%d)", B, T);
    }
    return 0;
}

/* Reconstruction loss of out vs target (N = B*T rows of C) and its gradient:
 * |d| (or d^2) summed over tokens, averaged over batch and hidden. */
double recon_loss(const float *out, const float *target, float *dout, int B, int T, int C,
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
double recon_eval_loss(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                        const BlockWeights *w, ReconStep *b, int bi, int rtn, const float *in,
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
void recon_group_bits(const QuantConfig *qc, int gb[QN_GROUPS][2], int gn[QN_GROUPS]) {
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
double recon_step_bit(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                        const BlockWeights *w, ReconStep *b, int bi, const float *x,
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

