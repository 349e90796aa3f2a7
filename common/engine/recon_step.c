/* recon_step.c — one bit's training step (see recon_step.h).
 *
 * The step runs the block's forward and backward itself, composed from the
 * layers (common/nn/layers.h) in exactly the order and with exactly the
 * arithmetic of block_forward / block_backward (block.c), so its
 * results are the same; what differs is where
 * things live, to keep the step's memory near the analytic minimum
 * (weights + trainables + optimizer state + one forward's activations):
 *
 *   - One weight buffer S (the largest linear's wq slot) holds the
 *     fake-quantized weight of ONE linear at a time: the forward builds each
 *     linear's weight just before its matmul; the backward rebuilds the
 *     weights of gate, up and o for their input gradients (down's is still
 *     in S after the forward; q, k, v need none, see below). fq_forward is
 *     deterministic, so the rebuilt weight is bitwise the forward's.
 *   - Each weight gradient dW is computed in slices of SLICE_ROWS output
 *     rows into b->work and consumed by fq_backward of that slice right away
 *     (the rest of b->work is its work buffer), so there are no seven dW
 *     buffers and no memsets of them (the gradient sgemms write with beta = 0
 *     instead of accumulating into zeroed buffers). The quantizer is
 *     row-separable, so the forward quantizes in the same slices, and the
 *     saved grid (b->fqs[l]) is laid out slice by slice.
 *   - Activation gradients overwrite activations that are dead by then:
 *     dout and dh1 live in a->tmp, dswi in a->swi (after dW_down), dgate and
 *     dup in a->gate and a->up, dln2 in a->ln2 (after dW_gate, dW_up), datty
 *     in a->atty (after dW_o), dq / dk / dv in a->gate / a->up when they fit
 *     (else in bscratch). b->out keeps the block output.
 *   - The gradient of the block input is not computed (nothing uses it):
 *     this skips the dX products of q, k, v and the first rmsnorm backward.
 *     block_backward (which does compute dx) is unchanged.
 * The remaining wq slots are allocated for the callers that build all seven
 * weights at once (recon.c's token merge); the step itself never touches
 * them.
 *
 * With activation quantization (the width's p->act_bits, nn/actquant.h) the
 * forward quantizes each linear's input into a->aq (block_linear_input)
 * just before its matmul; the backward quantizes it again there for the
 * weight gradient (bitwise the same) and writes the linear's input gradient
 * into a->aq too (the unquantized input is still needed by
 * actquant_backward, which maps the gradient in place): dswi, dln2 and
 * datty live in a->aq instead of a->swi, a->ln2 and a->atty. Without it
 * the step's arithmetic is exactly the weight-only one.
 *
 * With w->down_had (a rotated block) swi is transformed online as in
 * block_forward, and dswi mapped back as in block_backward.
 *
 * With TEQ (teq.h) the step runs on the transformed block and also needs the
 * quantizer's input gradient of each linear (a third slice of b->work, from
 * fq_backward_w, reduced into the scales' bracket at once), the attention
 * norm's weight gradient — so dln1 = dq Wq + dk Wk + dv Wv after all (three
 * more products, in the dead a->ln2) — and the MLP norm's. */
#include "recon_step.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/actquant.h"
#include "teq.h"

/* Output rows per slice of a weight gradient. Every call of the quantizer
 * in the step (forward, rebuild, backward) uses the same slices, so the X
 * that fq_backward recomputes is bitwise the forward's. */
#define SLICE_ROWS 512

/* The linear whose wq slot is the step's one weight buffer (the largest). */
static int weight_slot(const QBlockParams *p) {
    int big = 0;
    for (int l = 1; l < N_LIN; l++)
        if ((size_t)p->lin[l].out * p->lin[l].in > (size_t)p->lin[big].out * p->lin[big].in) big = l;
    return big;
}

/* Whether dq fits in a->gate and dk, dv in a->up (all (N, H)). */
static int attn_grads_fit(const ModelConfig *c) {
    return c->n_heads * c->head_dim <= c->hidden_dim && 2 * c->n_kv_heads * c->head_dim <= c->hidden_dim;
}

void recon_step_free(ReconStep *b) {
    block_acts_free(&b->acts);
    free(b->out);
    free(b->xin);
    free(b->dout);
    free(b->bscratch);
    free(b->work);
    for (int l = 0; l < N_LIN; l++) {
        free(b->wq[l]);
        free(b->fqs[l]);
    }
    free(b->g_lwc);
    free(b->g_adapter);
    free(b->g_adapter_bit);
    free(b->g_teq);
    free(b->teq_G);
    free(b->teq_dvec);
}

int recon_step_init(ReconStep *b, const ModelConfig *c, const QBlockParams *p, int B, int T, QErr *err) {
    memset(b, 0, sizeof *b);
    if (block_acts_init(&b->acts, c, B, T, 1, err) != 0) return -1;
    size_t N = (size_t)B * T, NC = N * c->dim, maxw = 0, maxa = 0;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    for (int bi = 0; bi < p->n_bits; bi++)
        if (p->act_bits[bi] && !b->acts.aq && block_acts_init_aq(&b->acts, c, err) != 0) {
            recon_step_free(b);
            return -1;
        }
    b->out = malloc(NC * sizeof(float)); /* the block output */
    b->xin = malloc(NC * sizeof(float)); /* only touched with bf16 streams */
    /* datt (T,T) of attention_backward, then dq, dk, dv if they do not fit
     * in the dead MLP activations */
    size_t nbs = (size_t)T * T + (attn_grads_fit(c) ? 0 : N * (QD + 2 * KVD));
    b->bscratch = malloc(nbs * sizeof(float));
    int ok = b->out && b->xin && b->bscratch;
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        size_t n = (size_t)q->out * q->in, ns = 0;
        for (int bi = 0; bi < p->n_bits; bi++) {
            size_t s = fq_scratch_floats(&q->spec[bi]);
            if (s > ns) ns = s;
        }
        if ((size_t)SLICE_ROWS * q->in > maxw) maxw = (size_t)SLICE_ROWS * q->in;
        size_t na = (size_t)q->R * (q->out + q->in);
        if (na > maxa) maxa = na;
        b->wq[l] = malloc(n * sizeof(float));
        b->fqs[l] = malloc((ns ? ns : 1) * sizeof(float));
        ok = ok && b->wq[l] && b->fqs[l];
    }
    /* one slice of a weight gradient, then fq_backward's work for it, then
     * (TEQ) the slice's quantizer-input gradient */
    b->work = malloc((p->n_teq ? 3 : 2) * maxw * sizeof(float));
    if (p->n_teq) {
        size_t nv = (size_t)c->dim > KVD ? (size_t)c->dim : KVD;
        b->g_teq = malloc(p->n_teq * sizeof(float));
        b->teq_G = malloc(p->n_teq * sizeof(float));
        b->teq_dvec = malloc(nv * sizeof(float));
        ok = ok && b->g_teq && b->teq_G && b->teq_dvec;
    }
    b->g_lwc = malloc((p->n_lwc ? p->n_lwc : 1) * sizeof(float));
    b->g_adapter = malloc((p->n_adapter ? p->n_adapter : 1) * sizeof(float));
    /* one linear's adapter gradient at a time (prefix_grad_stop) */
    b->g_adapter_bit = malloc((maxa ? maxa : 1) * sizeof(float));
    ok = ok && b->work && b->g_lwc && b->g_adapter && b->g_adapter_bit;
    if (!ok) {
        recon_step_free(b);
        return qerr_set(err, "out of memory for the reconstruction buffers (B=%d, T=%d)", B, T);
    }
    return 0;
}

/* Where the step's fake-quantized weights come from: bit index bi of p on
 * w, trained (fq_forward; a QB_GPTQ bit's stored codes) or round-to-nearest
 * (fq_rtn). */
typedef struct {
    const QBlockParams *p;
    const BlockWeights *w;
    int bi, rtn, no_quant; /* no_quant: W as it is (ReconStep.no_quant) */
    int ab;                /* activation width (0: none, and always with no_quant) */
} WeightSrc;

static WeightSrc weight_src(const QBlockParams *p, const BlockWeights *w, int bi, int rtn, int no_quant) {
    WeightSrc s = {p, w, bi, rtn, no_quant, no_quant ? 0 : p->act_bits[bi]};
    return s;
}

/* The spec of rows [o0, o0+m) of a linear (the quantizer is row-separable:
 * the rows' groups, logits, Bd rows and saved grid are independent of the
 * other rows'; only dBu sums over rows). */
static FqSpec slice_spec(const FqSpec *s, int m) {
    FqSpec r = *s;
    r.out = m;
    return r;
}

/* Builds linear l's fake-quantized weight into buf (as qblock_build /
 * qblock_build_rtn do, slice by slice); fills scratch (laid out slice by
 * slice) for fq_backward unless NULL. */
static const float *build_weight(const WeightSrc *s, int l, float *buf, float *scratch) {
    const QLinear *q = &s->p->lin[l];
    const FqSpec *sp = &q->spec[s->bi];
    const float *W = qblock_linear_weight(s->w, l);
    const size_t ng = (size_t)fq_ngroups(sp);
    const float *Bd = s->p->adapter + q->off_Bd, *Bu = s->p->adapter + q->off_Bu;
    const float *gam = s->p->lwc + q->off_gamma[s->bi], *bet = s->p->lwc + q->off_beta[s->bi];
    for (int o0 = 0; o0 < q->out; o0 += SLICE_ROWS) {
        const int m = q->out - o0 < SLICE_ROWS ? q->out - o0 : SLICE_ROWS;
        const FqSpec sl = slice_spec(sp, m);
        const size_t wo = (size_t)o0 * q->in, go = (size_t)o0 * ng;
        if (s->no_quant)
            memcpy(buf + wo, W + wo, (size_t)m * q->in * sizeof(float));
        else if (!s->rtn && s->p->choice[s->bi] == QB_GPTQ) { /* stored codes (no backward follows) */
            const GptqLinear *g = &s->p->rounded[l][s->bi];
            if (sp->format == FQ_FORMAT_GGUF) /* the indices on the calibrated GGUF grid */
                fq_gguf_from_index(&sl, W + wo, Bd + (size_t)o0 * q->R, Bu, gam + go, bet + go, g->codes + wo,
                                   buf + wo);
            else
                fq_dequantize(&sl, g->codes + wo, g->scales + go, g->zeros + go, buf + wo);
        } else if (s->rtn && sp->format == FQ_FORMAT_POT) { /* the stored data-free scales, Γ = 0 */
            FqSpec r = sl;
            r.rank = 0;
            r.lwc = 0;
            fq_forward(&r, W + wo, NULL, NULL, NULL, bet + go, buf + wo, NULL);
        } else if (s->rtn)
            fq_rtn(&sl, W + wo, buf + wo);
        else
            fq_forward(&sl, W + wo, Bd + (size_t)o0 * q->R, Bu, gam + go, bet + go, buf + wo,
                       scratch ? scratch + 4 * go : NULL);
    }
    return buf;
}

/* block_forward (block.c) with each linear's weight built into buf just
 * before its matmul; fqs[l] (may be NULL) receive fq_forward's scratch.
 * On return buf holds w_down's weight (and with activation quantization
 * a->aq the quantized swi). */
static void step_forward(const ModelConfig *c, const WeightSrc *src, BlockActs *a, const float *x, float *out,
                         float *buf, float *const *fqs) {
    const BlockWeights *w = src->w;
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->hidden_dim;
    int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    size_t NC = (size_t)N * C;
    const int ab = src->ab;
    const float *in;
#define W_(l) build_weight(src, (l), buf, fqs ? fqs[(l)] : NULL)
    rmsnorm_forward(a->ln1, a->ln1_rstd, x, w->attn_norm, N, C, c->norm_eps);
    in = block_linear_input(a, a->ln1, N, C, ab);
    matmul_forward(a->q, in, W_(LIN_Q), w->bq, N, C, QD);
    matmul_forward(a->k, in, W_(LIN_K), w->bk, N, C, KVD);
    matmul_forward(a->v, in, W_(LIN_V), w->bv, N, C, KVD);
    rope_forward(a->q, &a->rope, B, T, c->n_heads);
    rope_forward(a->k, &a->rope, B, T, c->n_kv_heads);
    attention_forward(a->atty, a->att, a->q, a->k, a->v, B, T, c->n_heads, c->n_kv_heads, c->head_dim,
                      a->save_att);
    matmul_forward(a->tmp, block_linear_input(a, a->atty, N, QD, ab), W_(LIN_O), NULL, N, QD, C);
    residual_forward(a->h1, x, a->tmp, NC);

    rmsnorm_forward(a->ln2, a->ln2_rstd, a->h1, w->mlp_norm, N, C, c->norm_eps);
    in = block_linear_input(a, a->ln2, N, C, ab);
    matmul_forward(a->gate, in, W_(LIN_GATE), NULL, N, C, H);
    matmul_forward(a->up, in, W_(LIN_UP), NULL, N, C, H);
    swiglu_forward(a->swi, a->gate, a->up, (size_t)N * H);
    if (w->down_had) block_down_had(a, a->swi, N, 1); /* online Hadamard, before the quantization */
    matmul_forward(a->tmp, block_linear_input(a, a->swi, N, H, ab), W_(LIN_DOWN), NULL, N, H, C);
    residual_forward(out, a->h1, a->tmp, NC);
#undef W_
}

/* Reconstruction loss of out vs target (N = B*T rows of C) and its gradient:
 * |d| (or d^2) summed over tokens, averaged over batch and hidden. dout may
 * alias out (each element is read before it is written). */
double recon_loss(const float *out, const float *target, float *dout, int B, int T, int C, int l2,
                  float grad_scale) {
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

/* The loss of one batch x (b->acts.B sequences) against target. */
static double eval_batch(const ModelConfig *c, const QuantConfig *qc, const WeightSrc *src, ReconStep *b,
                         const float *x, const float *target, int T) {
    step_forward(c, src, &b->acts, x, b->out, b->wq[weight_slot(src->p)], NULL);
    return recon_loss(b->out, target, NULL, b->acts.B, T, c->dim, qc->loss_l2, 1.0f);
}

/* Mean loss over all batches of `in` against target at bit index bi
 * (rtn=1: round-to-nearest weights). */
double recon_eval_loss(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                       const BlockWeights *w, ReconStep *b, int bi, int rtn, const float *in,
                       const float *target, int n_seq, int T) {
    WeightSrc src = weight_src(p, w, bi, rtn, b->no_quant);
    int B = b->acts.B;
    size_t stride = (size_t)T * c->dim;
    double sum = 0.0;
    int nb = 0;
    for (int s0 = 0; s0 + B <= n_seq; s0 += B, nb++)
        sum += eval_batch(c, qc, &src, b, in + s0 * stride, target + s0 * stride, T);
    return nb ? sum / nb : 0.0;
}

double recon_eval_loss_streams(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                               const BlockWeights *w, ReconStep *b, int bi, int rtn, const Streams *st,
                               int slot, int s0, const float *target, int n_seq) {
    WeightSrc src = weight_src(p, w, bi, rtn, b->no_quant);
    int B = b->acts.B, T = st->T;
    size_t stride = (size_t)T * c->dim;
    double sum = 0.0;
    int nb = 0;
    for (int s = 0; s + B <= n_seq; s += B, nb++)
        sum += eval_batch(c, qc, &src, b, streams_load(st, slot, s0 + s, B, b->xin), target + s * stride, T);
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

/* The weight gradient of linear l, dW = dY^T X (dY (N, out), X (N, in)),
 * slice by slice into b->work, each slice consumed by fq_backward at bit
 * index bi (whose work buffer is the second half of b->work). With
 * prefix_grad_stop, the adapter
 * gradient goes through b->g_adapter_bit and only the ranks above the higher
 * groups' reach g_adapter. */
static void linear_backward(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                            const BlockWeights *w, ReconStep *b, int bi, int l, const float *dY,
                            const float *X, int N) {
    const QLinear *q = &p->lin[l];
    const FqSpec *s = &q->spec[bi];
    const size_t ng = (size_t)fq_ngroups(s);
    const float *W = qblock_linear_weight(w, l);
    const float *Bd = p->adapter + q->off_Bd, *Bu = p->adapter + q->off_Bu;
    const float *gam = p->lwc + q->off_gamma[bi], *bet = p->lwc + q->off_beta[bi];
    float *dgam = b->g_lwc + q->off_gamma[bi], *dbet = b->g_lwc + q->off_beta[bi];
    float *gBd = b->g_adapter + q->off_Bd, *gBu = b->g_adapter + q->off_Bu;
    float *dW = b->work, *work = b->work + (size_t)SLICE_ROWS * q->in;
    /* TEQ: the quantizer's input gradient of the slice, for the scales */
    const int teq = b->teq_G && (teq_col_group(p, l) >= 0 || teq_row_group(p, l) >= 0);
    float *dWin = teq ? work + (size_t)SLICE_ROWS * q->in : NULL;
    if (b->no_quant) { /* What = W: dL/dW is dW itself, nothing else learns */
        for (int o0 = 0; teq && o0 < q->out; o0 += SLICE_ROWS) {
            const int m = q->out - o0 < SLICE_ROWS ? q->out - o0 : SLICE_ROWS;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, q->in, N, 1.0f, dY + o0, q->out, X, q->in,
                        0.0f, dW, q->in);
            teq_grad_linear(p, c, l, o0, m, W + (size_t)o0 * q->in, dW, b->teq_G);
        }
        return;
    }
    int r0 = qc->prefix_grad_stop && s->rank > 0 ? higher_groups_rank(p, qc, l, bi) : 0;
    if (r0 > 0) { /* this linear's adapter gradient alone, zeroed */
        gBd = b->g_adapter_bit;
        gBu = gBd + (size_t)q->out * q->R;
        memset(gBd, 0, (size_t)q->R * (q->out + q->in) * sizeof(float));
    }
    for (int o0 = 0; o0 < q->out; o0 += SLICE_ROWS) {
        const int m = q->out - o0 < SLICE_ROWS ? q->out - o0 : SLICE_ROWS;
        const FqSpec sl = slice_spec(s, m);
        const size_t go = (size_t)o0 * ng, bo = (size_t)o0 * q->R;
        /* dW[rows] (m, in) = dY[:, rows]^T X */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, q->in, N, 1.0f, dY + o0, q->out, X, q->in,
                    0.0f, dW, q->in);
        if (!teq) {
            fq_backward(&sl, W + (size_t)o0 * q->in, Bd + bo, Bu, gam + go, bet + go, b->fqs[l] + 4 * go, dW,
                        dgam + go, dbet + go, s->rank ? gBd + bo : NULL, s->rank ? gBu : NULL, work);
            continue;
        }
        fq_backward_w(&sl, W + (size_t)o0 * q->in, Bd + bo, Bu, gam + go, bet + go, b->fqs[l] + 4 * go, dW,
                      dgam + go, dbet + go, s->rank ? gBd + bo : NULL, s->rank ? gBu : NULL, dWin, work);
        teq_grad_linear(p, c, l, o0, m, W + (size_t)o0 * q->in, dWin, b->teq_G);
    }
    if (r0 > 0) {
        for (int o = 0; o < q->out; o++)
            for (int k = r0; k < s->rank; k++)
                b->g_adapter[q->off_Bd + (size_t)o * q->R + k] += gBd[(size_t)o * q->R + k];
        for (size_t i = (size_t)r0 * q->in; i < (size_t)s->rank * q->in; i++)
            b->g_adapter[q->off_Bu + i] += gBu[i];
    }
}

/* PoT: the gradient of the L2 penalty pot_l2·ΣΓ² on bit index bi's scale
 * refinements of every linear, times grad_scale (the penalty is part of the
 * step's objective but not of the reconstruction loss it returns). */
static void pot_penalty_grad(const QuantConfig *qc, const QBlockParams *p, ReconStep *b, int bi,
                             float grad_scale) {
    if (qc->pot_l2 <= 0.0f) return;
    const float k = 2.0f * qc->pot_l2 * grad_scale;
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        const FqSpec *s = &q->spec[bi];
        if (s->format != FQ_FORMAT_POT || !s->lwc) continue;
        const size_t n = (size_t)q->out * (size_t)fq_ngroups(s);
        const float *gam = p->lwc + q->off_gamma[bi];
        float *dgam = b->g_lwc + q->off_gamma[bi];
        for (size_t i = 0; i < n; i++) dgam[i] += k * gam[i];
    }
}

/* dst (M,N) = op(A) @ B with beta = 0: a layer's gradient product written
 * in place of accumulating into a zeroed buffer (the same values). */
static void gemm0(int transA, int M, int N, int K, const float *A, int lda, const float *Bm, int ldb,
                  float beta, float *dst, int ldd) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, Bm,
                ldb, beta, dst, ldd);
}

/* swiglu_backward in place: gate <- dgate, up <- dup (from dout = dswi),
 * through the layer function on small zeroed chunks. */
static void swiglu_backward_inplace(float *gate, float *up, const float *dswi, size_t n) {
    enum { CH = 2048 };
    float dg[CH], du[CH];
    for (size_t i = 0; i < n; i += CH) {
        size_t m = n - i < CH ? n - i : CH;
        memset(dg, 0, m * sizeof(float));
        memset(du, 0, m * sizeof(float));
        swiglu_backward(dg, du, dswi + i, gate + i, up + i, m);
        memcpy(gate + i, dg, m * sizeof(float));
        memcpy(up + i, du, m * sizeof(float));
    }
}

/* One training step's work for bit index bi: forward, loss, backward into
 * b->g_lwc / b->g_adapter. Returns the (unnormalised) loss. The order and
 * arithmetic are block_backward's (block.c), minus the block-input
 * gradient; see the top of this file for where each tensor lives. */
double recon_step_bit(const ModelConfig *c, const QuantConfig *qc, const QBlockParams *p,
                      const BlockWeights *w, ReconStep *b, int bi, const float *x, const float *target,
                      float grad_scale) {
    BlockActs *a = &b->acts;
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->hidden_dim;
    int NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim;
    int QD = NH * hd, KVD = NKV * hd;
    float *S = b->wq[weight_slot(p)];
    WeightSrc src = weight_src(p, w, bi, 0, b->no_quant);
    const int ab = src.ab;
    float *G = b->teq_G; /* TEQ's log-scale gradient of this call (NULL: no TEQ) */
    if (G) memset(G, 0, p->n_teq * sizeof(float));

    step_forward(c, &src, a, x, b->out, S, b->fqs);
    float *dh1 = a->tmp; /* dout, then dh1 */
    double loss = recon_loss(b->out, target, dh1, B, T, C, qc->loss_l2, grad_scale);

    /* out = h1 + W_down swiglu(W_gate ln2, W_up ln2), ln2 = rmsnorm(h1);
     * S still holds W_down's fake-quantized weight, a->aq (activation
     * quantization) the quantized swi */
    const float *in = ab ? a->aq : a->swi;
    linear_backward(c, qc, p, w, b, bi, LIN_DOWN, dh1, in, N); /* dW_down = dout^T swi */
    float *dswi = ab ? a->aq : a->swi;
    gemm0(0, N, H, C, dh1, C, S, H, 0.0f, dswi, H); /* dswi = dout W_down */
    if (ab) actquant_backward(dswi, dswi, a->swi, N, H, ab);
    if (w->down_had) block_down_had(a, dswi, N, 0); /* the online Hadamard's backward */
    swiglu_backward_inplace(a->gate, a->up, dswi, (size_t)N * H);
    in = block_linear_input(a, a->ln2, N, C, ab);
    linear_backward(c, qc, p, w, b, bi, LIN_GATE, a->gate, in, N); /* dW_gate = dgate^T ln2 */
    linear_backward(c, qc, p, w, b, bi, LIN_UP, a->up, in, N);     /* dW_up = dup^T ln2 */
    float *dln2 = ab ? a->aq : a->ln2;                             /* ln2 is dead now (without act quant) */
    build_weight(&src, LIN_GATE, S, NULL);
    gemm0(0, N, C, H, a->gate, H, S, C, 0.0f, dln2, C); /* dln2 = dgate W_gate */
    build_weight(&src, LIN_UP, S, NULL);
    gemm0(0, N, C, H, a->up, H, S, C, 1.0f, dln2, C); /* dln2 += dup W_up */
    if (ab) actquant_backward(dln2, dln2, a->ln2, N, C, ab);
    float *dnorm = G && p->teq_len[TEQ_MLP] ? b->teq_dvec : NULL; /* TEQ: d mlp_norm' */
    if (dnorm) memset(dnorm, 0, (size_t)C * sizeof(float));
    rmsnorm_backward(dh1, dnorm, dln2, a->h1, w->mlp_norm, a->ln2_rstd, N, C);
    if (dnorm) teq_grad_divided(p, TEQ_MLP, w->mlp_norm, dnorm, G);

    /* h1 = x + W_o attention(rope(W_q ln1), rope(W_k ln1), W_v ln1) */
    linear_backward(c, qc, p, w, b, bi, LIN_O, dh1, block_linear_input(a, a->atty, N, QD, ab),
                    N); /* dW_o = dh1^T atty */
    build_weight(&src, LIN_O, S, NULL);
    float *datty = ab ? a->aq : a->atty;
    gemm0(0, N, QD, C, dh1, C, S, QD, 0.0f, datty, QD); /* datty = dh1 W_o */
    if (ab) actquant_backward(datty, datty, a->atty, N, QD, ab);
    float *datt = b->bscratch, *dq, *dk, *dv;
    if (attn_grads_fit(c)) {
        dq = a->gate;
        dk = a->up;
    } else {
        dq = datt + (size_t)T * T;
        dk = dq + (size_t)N * QD;
    }
    dv = dk + (size_t)N * KVD;
    memset(dq, 0, (size_t)N * QD * sizeof(float));
    memset(dk, 0, 2 * (size_t)N * KVD * sizeof(float));
    attention_backward(dq, dk, dv, datt, datty, a->q, a->k, a->v, a->att, B, T, NH, NKV, hd);
    rope_backward(dq, &a->rope, B, T, NH);
    rope_backward(dk, &a->rope, B, T, NKV);
    in = block_linear_input(a, a->ln1, N, C, ab);
    linear_backward(c, qc, p, w, b, bi, LIN_Q, dq, in, N); /* dW_q = dq^T ln1 */
    linear_backward(c, qc, p, w, b, bi, LIN_K, dk, in, N); /* dW_k = dk^T ln1 */
    linear_backward(c, qc, p, w, b, bi, LIN_V, dv, in, N); /* dW_v = dv^T ln1 */
    pot_penalty_grad(qc, p, b, bi, grad_scale);
    if (G) {
        if (p->teq_len[TEQ_ATTN]) { /* attn_norm' = attn_norm / s_a: needs dln1 after all */
            float *dln1 = a->ln2;   /* ln2 is dead (and dln2 consumed) by now */
            gemm0(0, N, C, QD, dq, QD, build_weight(&src, LIN_Q, S, NULL), C, 0.0f, dln1, C);
            gemm0(0, N, C, KVD, dk, KVD, build_weight(&src, LIN_K, S, NULL), C, 1.0f, dln1, C);
            gemm0(0, N, C, KVD, dv, KVD, build_weight(&src, LIN_V, S, NULL), C, 1.0f, dln1, C);
            if (ab) actquant_backward(dln1, dln1, a->ln1, N, C, ab);
            memset(b->teq_dvec, 0, (size_t)C * sizeof(float));
            rmsnorm_backward(NULL, b->teq_dvec, dln1, x, w->attn_norm, a->ln1_rstd, N, C);
            teq_grad_divided(p, TEQ_ATTN, w->attn_norm, b->teq_dvec, G);
        }
        if (p->teq_len[TEQ_O] && c->has_qkv_bias) { /* bv' = bv / t */
            float *dbv = b->teq_dvec;
            memset(dbv, 0, (size_t)KVD * sizeof(float));
            for (int n = 0; n < N; n++)
                for (int r = 0; r < KVD; r++) dbv[r] += dv[(size_t)n * KVD + r];
            teq_grad_divided(p, TEQ_O, w->bv, dbv, G);
        }
        teq_grad_finish(p, G, b->g_teq);
    }
    return loss;
}
