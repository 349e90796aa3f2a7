/* gptq_round.c — GPTQ inside a block (see gptq_round.h). */
#include "gptq_round.h"

#include <stdlib.h>
#include <string.h>

#include "../quant/ggml_quant.h"
#include "../quant/gptq.h"

int block_hessian_of(int l) { return l == LIN_K || l == LIN_V ? HESS_ATTN : l == LIN_UP ? HESS_MLP : l; }

void block_hessians_accumulate(const ModelConfig *c, const BlockActs *a, int N, float *const H[N_LIN]) {
    gptq_accumulate_h(H[HESS_ATTN], a->ln1, N, c->dim);
    gptq_accumulate_h(H[HESS_O], a->atty, N, c->n_heads * c->head_dim);
    gptq_accumulate_h(H[HESS_MLP], a->ln2, N, c->dim);
    gptq_accumulate_h(H[HESS_DOWN], a->swi, N, c->hidden_dim);
}

/* The Hessians of bit index bi: sequences [0, n_train) of its stream slot
 * through the full-precision block w. */
static void bit_hessians(const ModelConfig *c, const QuantConfig *qc, const BlockWeights *w, ReconStep *b,
                         const Streams *st, int slot, int n_train, float *const H[N_LIN]) {
    const int T = st->T, B = qc->batch;
    for (int l = 0; l < N_LIN; l++) {
        if (block_hessian_of(l) != l) continue;
        int o, in;
        qblock_linear_shape(c, l, &o, &in);
        memset(H[l], 0, sizeof(float) * (size_t)in * in);
    }
    for (int s0 = 0; s0 < n_train; s0 += B) {
        int nb = n_train - s0 < B ? n_train - s0 : B;
        b->acts.B = nb;
        block_forward(c, w, &b->acts, streams_load(st, slot, s0, nb, b->xin), b->out);
        block_hessians_accumulate(c, &b->acts, nb * T, H);
    }
    b->acts.B = B;
}

/* The candidates: GPTQ on the grid the bit's current choice quantizes to
 * (the learned clipping) or on its own min/max grid taken as it goes,
 * rounding the choice's weight W (+ Bd·Bu); and plain GPTQ of W alone (the
 * adapters were trained to offset round-to-nearest's error, which GPTQ's
 * feedback now does itself). */
enum { GRID_CHOSEN = 0, GRID_OWN = 1, GRID_OWN_PLAIN = 2, N_GRIDS };

/* A GGUF linear's candidate (the chosen grid only): GPTQ on the equivalent
 * integer grid of the calibrated GGUF grid (fq_gguf_gptq_grid), its codes
 * turned back into grid indices and stored; the grid itself is recomputed
 * from the parameters wherever the codes are used, so the stored scales
 * and zeros are 1 and 0. IQ4_NL and F16 linears keep the nearest indices. */
static int round_gguf(const QuantConfig *qc, QBlockParams *p, int l, int bi, const float *W, const float *Hl,
                      float *X, float *What, int block, QErr *err) {
    const QLinear *q = &p->lin[l];
    const FqSpec *s = &q->spec[bi];
    GptqLinear *g = &p->rounded[l][bi];
    const size_t ng = (size_t)q->out * (size_t)fq_ngroups(s);
    uint8_t *flip = malloc(ng);
    int rc =
        flip ? 0 : qerr_set(err, "block %d %s: out of memory for the GPTQ candidate", block, LIN_NAMES[l]);
    if (rc == 0 &&
        fq_gguf_gptq_grid(s, W, p->adapter + q->off_Bd, p->adapter + q->off_Bu, p->lwc + q->off_gamma[bi],
                          p->lwc + q->off_beta[bi], X, g->codes, g->scales, g->zeros, flip) != 0)
        rc = qerr_set(err, "block %d %s: out of memory for the GPTQ candidate", block, LIN_NAMES[l]);
    if (rc == 0 && s->gtype != GQ_F16 && s->gtype != GQ_IQ4_NL) {
        GptqSpec gs = gptq_spec_make(q->out, q->in, gq_code_bits(s->gtype), s->group);
        gs.damp = qc->gptq_damp;
        rc = gptq_quantize_grid(&gs, X, Hl, g->scales, g->zeros, What, g->codes, NULL, err);
        if (rc == 0) fq_gguf_gptq_index(s, g->codes, flip, g->codes);
        if (rc != 0) qerr_wrap(err, "block %d %s %d bits: GPTQ candidate", block, LIN_NAMES[l], s->bits);
    }
    for (size_t k = 0; rc == 0 && k < ng; k++) g->scales[k] = 1.0f, g->zeros[k] = 0.0f;
    free(flip);
    return rc;
}

/* Stored codes of every linear at bit index bi by candidate `grid`. X,
 * What: (out, in) scratch; work: fq_work_floats of the largest linear. */
static int round_bit(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p, const BlockWeights *w,
                     int bi, int grid, float *const H[N_LIN], float *X, float *What, float *work, int block,
                     QErr *err) {
    if (qblock_rounded_alloc(p, bi, err) != 0) return -1;
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        FqSpec s_plain = q->spec[bi];
        s_plain.rank = 0;
        const FqSpec *s = grid == GRID_OWN_PLAIN ? &s_plain : &q->spec[bi];
        GptqLinear *g = &p->rounded[l][bi];
        const float *W = qblock_linear_weight(w, l), *Bd = p->adapter + q->off_Bd,
                    *Bu = p->adapter + q->off_Bu;
        if (s->format == FQ_FORMAT_GGUF) {
            if (round_gguf(qc, p, l, bi, W, H[block_hessian_of(l)], X, What, block, err) != 0) {
                qblock_rounded_free(p, bi);
                return -1;
            }
            continue;
        }
        /* the choice's grid (codes overwritten below), and the weight it rounds */
        fq_quantize_codes(s, W, Bd, Bu, p->lwc + q->off_gamma[bi], p->lwc + q->off_beta[bi], g->codes,
                          g->scales, g->zeros, work);
        fq_merge_adapter(s, W, Bd, Bu, X);
        GptqSpec gs = gptq_spec_make(q->out, q->in, s->bits, s->group);
        gs.damp = qc->gptq_damp;
        const float *Hl = H[block_hessian_of(l)];
        int rc = grid == GRID_CHOSEN
                     ? gptq_quantize_grid(&gs, X, Hl, g->scales, g->zeros, What, g->codes, NULL, err)
                     : gptq_quantize(&gs, X, Hl, What, g->codes, g->scales, g->zeros, NULL, err);
        if (rc != 0) {
            qblock_rounded_free(p, bi);
            return qerr_wrap(err, "block %d %s %d bits: GPTQ candidate", block, LIN_NAMES[l], s->bits);
        }
    }
    return 0;
}

int gptq_round_candidates(const ModelConfig *c, const QuantConfig *qc, QBlockParams *p, const BlockWeights *w,
                          ReconStep *b, const Streams *st, int n_train, int s_hold, int n_hold,
                          const float *target, ReconStats *stats, int block, QErr *err) {
    if (qc->format == QFORMAT_POT || n_train < 1) return 0;
    float *H[N_LIN] = {0};
    size_t max_w = 0;
    int rc = 0;
    for (int l = 0; l < N_LIN; l++) {
        int o, in;
        qblock_linear_shape(c, l, &o, &in);
        max_w = (size_t)o * in > max_w ? (size_t)o * in : max_w;
        if (block_hessian_of(l) == l && !(H[l] = malloc(sizeof(float) * (size_t)in * in)))
            rc = qerr_set(err, "block %d: out of memory for the GPTQ candidate's Hessians (%d x %d)", block,
                          in, in);
    }
    float *X = malloc(sizeof(float) * max_w), *What = malloc(sizeof(float) * max_w);
    float *work = malloc(sizeof(float) * max_w);
    if (rc == 0 && (!X || !What || !work))
        rc = qerr_set(err, "block %d: out of memory for the GPTQ candidate", block);
    for (int bi = 0; rc == 0 && bi < qc->n_bits; bi++) {
        int slot = streams_slot(qc, qc->bits[bi]);
        bit_hessians(c, qc, w, b, st, slot, n_train, H);
        const int before = p->choice[bi];
        /* a GGUF grid is recomputed from the parameters wherever the codes
         * are used, with the spec a stored-codes width loads with: the
         * trained one (dropping adapters or falling back to RTN changes the
         * spec and the logits, which the codes alone do not record) */
        if (qc->format == QFORMAT_GGUF && before != QB_TRAINED) continue;
        double best = stats->hold_final[bi];
        int best_grid = -1;
        GptqLinear kept[N_LIN] = {{0}}; /* the best candidate's codes so far (swapped out of p) */
        int ranked = 0;                 /* does the first choice use adapters at all? */
        for (int l = 0; l < N_LIN; l++) ranked |= p->lin[l].spec[bi].rank > 0;
        for (int grid = 0; rc == 0 && grid < N_GRIDS; grid++) {
            if (grid == GRID_OWN_PLAIN && !ranked) continue;                 /* GRID_OWN already was */
            if (grid != GRID_CHOSEN && qc->format == QFORMAT_GGUF) continue; /* the type fixes the grid */
            p->choice[bi] = before; /* the candidate rounds the first choice's weight */
            if ((rc = round_bit(c, qc, p, w, bi, grid, H, X, What, work, block, err)) != 0) break;
            p->choice[bi] = QB_GPTQ;
            double loss = recon_eval_loss_streams(c, qc, p, w, b, bi, 0, st, slot, s_hold, target, n_hold);
            if (loss < best) {
                best = loss, best_grid = grid;
                for (int l = 0; l < N_LIN;
                     l++) { /* keep these codes; the next candidate gets the old buffers */
                    GptqLinear t = kept[l];
                    kept[l] = p->rounded[l][bi], p->rounded[l][bi] = t;
                }
            }
        }
        qblock_rounded_free(p, bi); /* the last losing candidate's buffers */
        for (int l = 0; l < N_LIN; l++) p->rounded[l][bi] = kept[l];
        if (rc == 0 && best_grid >= 0) {
            p->choice[bi] = QB_GPTQ;
            stats->choice[bi] = QB_GPTQ;
            stats->hold_final[bi] = best;
        } else {
            p->choice[bi] = before;
            qblock_rounded_free(p, bi);
        }
    }
    for (int l = 0; l < N_LIN; l++) free(H[l]);
    free(X);
    free(What);
    free(work);
    return rc;
}
