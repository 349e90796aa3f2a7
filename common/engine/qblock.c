#include "qblock.h"

#include "../quant/ggml_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/rng.h"

const char *const LIN_NAMES[N_LIN] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

void qblock_linear_shape(const ModelConfig *c, int l, int *out, int *in) {
    int C = c->dim, H = c->hidden_dim;
    int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    switch (l) {
    case LIN_Q: *out = QD, *in = C; break;
    case LIN_K:
    case LIN_V: *out = KVD, *in = C; break;
    case LIN_O: *out = C, *in = QD; break;
    case LIN_GATE:
    case LIN_UP: *out = H, *in = C; break;
    default: *out = C, *in = H; break;
    }
}

float **qblock_linear_slot(BlockWeights *w, int l) {
    switch (l) {
    case LIN_Q: return &w->wq;
    case LIN_K: return &w->wk;
    case LIN_V: return &w->wv;
    case LIN_O: return &w->wo;
    case LIN_GATE: return &w->w_gate;
    case LIN_UP: return &w->w_up;
    default: return &w->w_down;
    }
}

const float *qblock_linear_weight(const BlockWeights *w, int l) {
    const float *const ptrs[N_LIN] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
    return ptrs[l];
}

int qblock_params_init(QBlockParams *p, const ModelConfig *c, const QuantConfig *qc, int block, QErr *err) {
    memset(p, 0, sizeof *p);
    p->n_bits = qc->n_bits;
    memcpy(p->bits, qc->bits, sizeof p->bits);
    memcpy(p->act_bits, qc->act_bits, sizeof p->act_bits);
    size_t nl = 0, na = 0;
    for (int l = 0; l < N_LIN; l++) {
        QLinear *q = &p->lin[l];
        qblock_linear_shape(c, l, &q->out, &q->in);
        q->R = 0;
        for (int bi = 0; bi < qc->n_bits; bi++) {
            int r = quant_rank(qc, qc->bits[bi], q->out, q->in);
            if (r > q->R) q->R = r;
        }
        q->off_Bd = na;
        na += (size_t)q->out * q->R;
        q->off_Bu = na;
        na += (size_t)q->R * q->in;
        for (int bi = 0; bi < qc->n_bits; bi++) {
            int b = qc->bits[bi];
            FqSpec *s = &q->spec[bi];
            s->out = q->out;
            s->in = q->in;
            s->bits = b;
            s->group = quant_group(qc, b, q->in);
            s->rank = quant_rank(qc, b, q->out, q->in);
            s->R = q->R;
            s->mode = qc->adapter_mode;
            s->lwc = qc->lwc && qc->method == METHOD_QUEPT;
            s->format = (int)qc->format;
            s->gtype = quant_gtype(qc, b, q->in);
            if (fq_spec_check(s, err) != 0) return qerr_wrap(err, "block %d %s", block, LIN_NAMES[l]);
            size_t ng = (size_t)q->out * fq_ngroups(s);
            q->off_gamma[bi] = nl;
            nl += ng;
            q->off_beta[bi] = nl;
            nl += ng;
        }
    }
    p->n_lwc = nl;
    p->n_adapter = na;
    if (qc->teq != TEQ_OFF) {
        const int len[TEQ_NGROUPS] = {c->dim, c->dim, c->n_kv_heads * c->head_dim, c->hidden_dim};
        for (int g = 0; g < TEQ_NGROUPS; g++) {
            p->teq_len[g] = (g == TEQ_ATTN || g == TEQ_MLP || qc->teq == TEQ_WIDE) ? len[g] : 0;
            p->teq_off[g] = p->n_teq;
            p->n_teq += (size_t)p->teq_len[g];
        }
        p->teq = malloc(p->n_teq * sizeof(float));
        if (!p->teq) {
            qblock_params_free(p);
            return qerr_set(err, "out of memory for block %d TEQ scales", block);
        }
        for (size_t i = 0; i < p->n_teq; i++) p->teq[i] = 1.0f;
    }
    p->lwc = malloc((nl ? nl : 1) * sizeof(float));
    p->adapter = calloc(na ? na : 1, sizeof(float));
    if (!p->lwc || !p->adapter) {
        qblock_params_free(p);
        return qerr_set(err, "out of memory for block %d parameters", block);
    }
    for (int l = 0; l < N_LIN; l++)
        for (int bi = 0; bi < qc->n_bits; bi++) {
            const QLinear *q = &p->lin[l];
            size_t ng = (size_t)q->out * fq_ngroups(&q->spec[bi]);
            /* PoT: gamma is the refinement Γ (0), beta the data-free scale
             * (qblock_params_init_scales; 1 until then) */
            float init = qc->format == QFORMAT_POT ? 0.0f : qc->lwc_init[qc->bits[bi]];
            for (size_t i = 0; i < ng; i++) p->lwc[q->off_gamma[bi] + i] = p->lwc[q->off_beta[bi] + i] = init;
            if (qc->format == QFORMAT_POT)
                for (size_t i = 0; i < ng; i++) p->lwc[q->off_beta[bi] + i] = 1.0f;
        }
    Rng rng;
    rng_seed(&rng, rng_mix(qc->seed, 0x494e4954 /* "INIT" */, (uint64_t)block, 0));
    for (int l = 0; l < N_LIN; l++) {
        QLinear *q = &p->lin[l];
        /* Xavier-uniform for Bu (R, in): fan_in = in, fan_out = R */
        float bound = q->R > 0 ? sqrtf(6.0f / (float)(q->in + q->R)) : 0.0f;
        float *bu = p->adapter + q->off_Bu;
        for (size_t i = 0; i < (size_t)q->R * q->in; i++) bu[i] = bound * (2.0f * rng_uniform(&rng) - 1.0f);
    }
    return 0;
}

void qblock_set_choice(QBlockParams *p, int bi, int choice) {
    p->choice[bi] = choice;
    if (choice == QB_GPTQ) return;
    for (int l = 0; l < N_LIN && choice != QB_TRAINED; l++) {
        QLinear *q = &p->lin[l];
        q->spec[bi].rank = 0;
        if (choice == QB_RTN) {
            size_t ng = (size_t)q->out * fq_ngroups(&q->spec[bi]);
            if (q->spec[bi].format == FQ_FORMAT_POT) /* Γ = 0: the data-free scales */
                for (size_t i = 0; i < ng; i++) p->lwc[q->off_gamma[bi] + i] = 0.0f;
            else
                for (size_t i = 0; i < ng; i++)
                    p->lwc[q->off_gamma[bi] + i] = p->lwc[q->off_beta[bi] + i] = 20.0f;
        }
    }
}

static size_t lin_groups(const QLinear *q, int bi) { return (size_t)q->out * fq_ngroups(&q->spec[bi]); }

int qblock_rounded_alloc(QBlockParams *p, int bi, QErr *err) {
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        GptqLinear *g = &p->rounded[l][bi];
        if (g->codes) continue;
        g->codes = calloc((size_t)q->out * q->in, 1);
        g->scales = calloc(lin_groups(q, bi), sizeof(float));
        g->zeros = calloc(lin_groups(q, bi), sizeof(float));
        if (!g->codes || !g->scales || !g->zeros) {
            qblock_rounded_free(p, bi);
            return qerr_set(err, "out of memory for the stored codes of %d bits", p->bits[bi]);
        }
    }
    return 0;
}

void qblock_rounded_free(QBlockParams *p, int bi) {
    for (int l = 0; l < N_LIN; l++) {
        GptqLinear *g = &p->rounded[l][bi];
        free(g->codes);
        free(g->scales);
        free(g->zeros);
        g->codes = NULL, g->scales = g->zeros = NULL;
    }
}

void qblock_rounded_sizes(const QBlockParams *p, const int *choice, size_t *n_codes, size_t *n_grid) {
    *n_codes = *n_grid = 0;
    for (int bi = 0; bi < p->n_bits; bi++)
        for (int l = 0; l < N_LIN && choice[bi] == QB_GPTQ; l++) {
            *n_codes += (size_t)p->lin[l].out * p->lin[l].in;
            *n_grid += 2 * lin_groups(&p->lin[l], bi);
        }
}

void qblock_rounded_pack(const QBlockParams *p, uint8_t *codes, float *grid) {
    for (int bi = 0; bi < p->n_bits; bi++)
        for (int l = 0; l < N_LIN && p->choice[bi] == QB_GPTQ; l++) {
            const QLinear *q = &p->lin[l];
            const GptqLinear *g = &p->rounded[l][bi];
            size_t nc = (size_t)q->out * q->in, ng = lin_groups(q, bi);
            memcpy(codes, g->codes, nc);
            memcpy(grid, g->scales, ng * sizeof(float));
            memcpy(grid + ng, g->zeros, ng * sizeof(float));
            codes += nc, grid += 2 * ng;
        }
}

int qblock_rounded_flatten(QBlockParams *p, QErr *err) {
    free(p->flat_codes);
    free(p->flat_grid);
    qblock_rounded_sizes(p, p->choice, &p->n_flat_codes, &p->n_flat_grid);
    p->flat_codes = malloc(p->n_flat_codes ? p->n_flat_codes : 1);
    p->flat_grid = malloc((p->n_flat_grid ? p->n_flat_grid : 1) * sizeof(float));
    if (!p->flat_codes || !p->flat_grid) return qerr_set(err, "out of memory for the stored codes");
    qblock_rounded_pack(p, p->flat_codes, p->flat_grid);
    return 0;
}

int qblock_code_bits(const FqSpec *s) {
    if (s->format != FQ_FORMAT_GGUF) return s->bits;
    return s->gtype == GQ_F16 ? 8 : gq_code_bits(s->gtype);
}

int gptq_linear_check(const GptqLinear *g, size_t n_codes, size_t ng, int bits, const char *what, QErr *err) {
    const unsigned qmax = (1u << bits) - 1u;
    for (size_t i = 0; i < n_codes; i++)
        if (g->codes[i] > qmax)
            return qerr_set(err, "%s: code %u at index %zu exceeds %u (%d bits)", what, g->codes[i], i, qmax,
                            bits);
    for (size_t i = 0; i < ng; i++) {
        if (!(g->scales[i] > 0.0f))
            return qerr_set(err, "%s: scale %g at group %zu is not positive", what, (double)g->scales[i], i);
        if (!isfinite(g->scales[i]))
            return qerr_set(err, "%s: scale %g at group %zu is non-finite", what, (double)g->scales[i], i);
        if (g->zeros[i] != nearbyintf(g->zeros[i]) || fabsf(g->zeros[i]) > 16777216.0f)
            return qerr_set(err, "%s: zero point %g at group %zu is not a whole number within 2^24", what,
                            (double)g->zeros[i], i);
    }
    return 0;
}

/* Fills the QB_GPTQ bits' codes from the flattened arrays, checking them. */
static int rounded_unpack(QBlockParams *p, int block, const uint8_t *codes, const float *grid, QErr *err) {
    for (int bi = 0; bi < p->n_bits; bi++) {
        if (p->choice[bi] != QB_GPTQ) continue;
        if (qblock_rounded_alloc(p, bi, err) != 0) return -1;
        for (int l = 0; l < N_LIN; l++) {
            const QLinear *q = &p->lin[l];
            GptqLinear *g = &p->rounded[l][bi];
            size_t nc = (size_t)q->out * q->in, ng = lin_groups(q, bi);
            memcpy(g->codes, codes, nc);
            memcpy(g->scales, grid, ng * sizeof(float));
            memcpy(g->zeros, grid + ng, ng * sizeof(float));
            char what[96];
            snprintf(what, sizeof what, "block %d %s %d bits: stored codes", block, LIN_NAMES[l],
                     p->bits[bi]);
            if (gptq_linear_check(g, nc, ng, qblock_code_bits(&q->spec[bi]), what, err) != 0) return -1;
            codes += nc, grid += 2 * ng;
        }
    }
    return 0;
}

int qblock_params_restore(QBlockParams *p, const ModelConfig *c, const QuantConfig *qc, int block,
                          const float *lwc, size_t n_lwc, const float *adapter, size_t n_adapter,
                          const float *teq, size_t n_teq, const int *choice, const uint8_t *codes,
                          size_t n_codes, const float *grid, size_t n_grid, QErr *err) {
    if (qblock_params_init(p, c, qc, block, err) != 0) return -1;
    if (n_lwc != p->n_lwc || n_adapter != p->n_adapter || n_teq != p->n_teq) {
        qerr_set(err,
                 "block %d: %zu clipping, %zu adapter and %zu TEQ values, the config needs %zu, %zu and %zu",
                 block, n_lwc, n_adapter, n_teq, p->n_lwc, p->n_adapter, p->n_teq);
        qblock_params_free(p);
        return -1;
    }
    for (int bi = 0; bi < qc->n_bits; bi++)
        if (choice[bi] < QB_TRAINED || choice[bi] > QB_GPTQ ||
            (choice[bi] == QB_GPTQ && qc->format == QFORMAT_POT)) {
            qblock_params_free(p);
            return qerr_set(err, "block %d: choice %d is not 0, 1, 2 or 3 (3: integer and GGUF codes only)",
                            block, choice[bi]);
        }
    size_t need_codes, need_grid;
    qblock_rounded_sizes(p, choice, &need_codes, &need_grid);
    if (n_codes != need_codes || n_grid != need_grid) {
        qblock_params_free(p);
        return qerr_set(err, "block %d: %zu stored codes and %zu grid values, the choices need %zu and %zu",
                        block, n_codes, n_grid, need_codes, need_grid);
    }
    if (n_lwc) memcpy(p->lwc, lwc, n_lwc * sizeof(float));
    if (n_adapter) memcpy(p->adapter, adapter, n_adapter * sizeof(float));
    if (n_teq) memcpy(p->teq, teq, n_teq * sizeof(float));
    /* after the copy: an RTN choice rewrites its logits to the same 20.0 */
    for (int bi = 0; bi < qc->n_bits; bi++) qblock_set_choice(p, bi, choice[bi]);
    if (rounded_unpack(p, block, codes, grid, err) != 0) {
        qblock_params_free(p);
        return -1;
    }
    return 0;
}

int qblock_params_restore_raw(QBlockParams *p, const ModelConfig *c, const QuantConfig *qc, int block,
                              const QBlockParams *raw, const int *choice, QErr *err) {
    return qblock_params_restore(p, c, qc, block, raw->lwc, raw->n_lwc, raw->adapter, raw->n_adapter,
                                 raw->teq, raw->n_teq, choice, raw->flat_codes, raw->n_flat_codes,
                                 raw->flat_grid, raw->n_flat_grid, err);
}

void qblock_params_init_scales(QBlockParams *p, const BlockWeights *w) {
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        for (int bi = 0; bi < p->n_bits; bi++)
            if (q->spec[bi].format == FQ_FORMAT_POT)
                fq_pot_init_scales(&q->spec[bi], qblock_linear_weight(w, l), p->lwc + q->off_beta[bi]);
    }
}

void qblock_params_free(QBlockParams *p) {
    for (int bi = 0; bi < QMAX_NBITS; bi++) qblock_rounded_free(p, bi);
    free(p->flat_codes);
    free(p->flat_grid);
    p->flat_codes = NULL, p->flat_grid = NULL, p->n_flat_codes = p->n_flat_grid = 0;
    free(p->lwc);
    free(p->adapter);
    free(p->teq);
    p->lwc = p->adapter = p->teq = NULL;
    p->n_teq = 0;
    for (int g = 0; g < TEQ_NGROUPS; g++) p->teq_len[g] = 0;
}

void qblock_build(const QBlockParams *p, const BlockWeights *base, int bi, const float *lwc,
                  const float *adapter, float *const wq[N_LIN], float *const scratch[N_LIN],
                  BlockWeights *view) {
    *view = *base;
    view->act_bits = p->act_bits[bi];
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p->lin[l];
        const FqSpec *s = &q->spec[bi];
        const float *W = qblock_linear_weight(base, l);
        if (p->choice[bi] == QB_GPTQ) {
            const GptqLinear *g = &p->rounded[l][bi];
            if (s->format == FQ_FORMAT_GGUF) /* the indices on the calibrated GGUF grid */
                fq_gguf_from_index(s, W, adapter + q->off_Bd, adapter + q->off_Bu, lwc + q->off_gamma[bi],
                                   lwc + q->off_beta[bi], g->codes, wq[l]);
            else
                fq_dequantize(s, g->codes, g->scales, g->zeros, wq[l]);
            *qblock_linear_slot(view, l) = wq[l];
            continue;
        }
        fq_forward(s, W, adapter + q->off_Bd, adapter + q->off_Bu, lwc + q->off_gamma[bi],
                   lwc + q->off_beta[bi], wq[l], scratch ? scratch[l] : NULL);
        *qblock_linear_slot(view, l) = wq[l];
    }
}

void qblock_build_rtn(const QBlockParams *p, const BlockWeights *base, int bi, float *const wq[N_LIN],
                      BlockWeights *view) {
    *view = *base;
    view->act_bits = p->act_bits[bi];
    for (int l = 0; l < N_LIN; l++) {
        fq_rtn(&p->lin[l].spec[bi], qblock_linear_weight(base, l), wq[l]);
        *qblock_linear_slot(view, l) = wq[l];
    }
}
