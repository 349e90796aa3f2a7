/* fakequant_gguf.c — fakequant.h's three passes for GGUF block types
 * (FQ_FORMAT_GGUF): X = W + A (mode 0) row chunk by row chunk as the other
 * formats build it, each row quantized block by block with ggml_quant.h,
 * the clipping factors sigmoid(gamma), sigmoid(beta) of the block's
 * sub-blocks computed on the stack (a block has at most 16). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fakequant_rows.h"
#include "ggml_quant.h"

#define GQ_MAX_SUBS 16 /* sub-blocks per block: 256 / 16 */

int fq_gguf_spec_check(const FqSpec *s, QErr *err) {
    const int t = s->gtype;
    if (t != GQ_F16 && !gq_is_block_type(t))
        return qerr_set(err, "fakequant: gguf type %d: not a ggml block type quept quantizes", t);
    if (s->mode != FQ_ADAPTER_BEFORE_QUANT)
        return qerr_set(err, "fakequant: gguf types need adapter mode 0 (the type fixes its own grid)");
    if (t == GQ_F16) {
        if (s->group != s->in)
            return qerr_set(err, "fakequant: F16 row: group %d, expected in (%d)", s->group, s->in);
        return 0;
    }
    if (s->in % gq_block_elems(t))
        return qerr_set(err, "fakequant: %s needs rows of a multiple of %d weights, not %d", gq_type_name(t),
                        gq_block_elems(t), s->in);
    if (s->group != gq_sub_elems(t))
        return qerr_set(err, "fakequant: %s: group %d, expected its sub-block of %d", gq_type_name(t),
                        s->group, gq_sub_elems(t));
    return 0;
}

/* The clipping factors of the sub-blocks of one block (k sub-blocks from
 * group index gi); lwc off: NULL (factors 1). */
static int block_factors(const FqSpec *s, const float *gamma, const float *beta, size_t gi, int k, float *fg,
                         float *fb) {
    if (!s->lwc || !gamma) return 0;
    for (int j = 0; j < k; j++) {
        fg[j] = fq_sigmoid(gamma[gi + j]);
        fb[j] = fq_sigmoid(beta[gi + j]);
    }
    return 1;
}

/* Block geometry of a spec: weights and sub-blocks per block (F16: the row) */
static void geometry(const FqSpec *s, int *bs, int *ns) {
    if (s->gtype == GQ_F16) {
        *bs = s->in, *ns = 1;
        return;
    }
    *bs = gq_block_elems(s->gtype);
    *ns = *bs / gq_sub_elems(s->gtype);
}

/* Forward (What) and/or packed blocks (rows of gq_row_bytes), and/or the
 * grid indices (idx_out), with the codes taken from idx_in when given. */
static void gguf_rows(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                      const float *beta, const uint8_t *idx_in, uint8_t *idx_out, float *What,
                      uint8_t *packed, float *work, float *scratch) {
    const int out = s->out, in = s->in, rc = fq_chunk_rows(s), ng = fq_ngroups(s);
    int bs, ns;
    geometry(s, &bs, &ns);
    const size_t rowbytes = gq_row_bytes(s->gtype, in);
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        float *buf = What ? What + (size_t)o0 * in : work;
        const float *A;
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, buf, &A);
        for (int o = 0; o < m; o++)
            for (int b0 = 0; b0 < in; b0 += bs) {
                const size_t off = (size_t)o * in + (size_t)b0,
                             gi = (size_t)(o0 + o) * ng + (size_t)(b0 / bs * ns);
                const size_t e = (size_t)(o0 + o) * in + (size_t)b0; /* element index in the linear */
                float fg[GQ_MAX_SUBS], fb[GQ_MAX_SUBS], st[GQ_MAX_SUBS * GQ_STATE];
                const int lwc = block_factors(s, gamma, beta, gi, ns, fg, fb);
                uint8_t *pk =
                    packed ? packed + (size_t)(o0 + o) * rowbytes + gq_row_bytes(s->gtype, b0) : NULL;
                gq_quantize_row_idx(s->gtype, X + off, bs, lwc ? fg : NULL, lwc ? fb : NULL,
                                    idx_in ? idx_in + e : NULL, idx_out ? idx_out + e : NULL,
                                    What ? buf + off : NULL, pk, s->gtype == GQ_F16 ? NULL : st);
                if (scratch && s->gtype != GQ_F16)
                    memcpy(scratch + gi * GQ_STATE, st, (size_t)ns * GQ_STATE * sizeof *st);
            }
    }
}

void fq_gguf_forward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                     const float *beta, float *What, float *scratch) {
    gguf_rows(s, W, Bd, Bu, gamma, beta, NULL, NULL, What, NULL, NULL, scratch);
}

void fq_quantize_packed(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                        const float *beta, const uint8_t *idx, uint8_t *packed, float *work) {
    FqSpec r = *s;
    if (!gamma) r.lwc = 0;
    gguf_rows(&r, W, Bd, Bu, gamma, beta, idx, NULL, NULL, packed, work, NULL);
}

void fq_gguf_from_index(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                        const float *beta, const uint8_t *idx, float *What) {
    gguf_rows(s, W, Bd, Bu, gamma, beta, idx, NULL, What, NULL, NULL, NULL);
}

int fq_gguf_gptq_grid(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                      const float *beta, float *X, uint8_t *idx, float *scales, float *zeros, uint8_t *flip) {
    const int t = s->gtype;
    if (t == GQ_F16 || t == GQ_IQ4_NL || !gq_is_block_type(t)) { /* no uniform grid: nearest indices */
        if (idx) gguf_rows(s, W, Bd, Bu, gamma, beta, NULL, idx, X, NULL, NULL, NULL);
        return 0;
    }
    const int ng = fq_ngroups(s), g = s->group, sym = gq_type_symmetric(t), imax = gq_index_max(t);
    const size_t ngt = (size_t)s->out * (size_t)ng;
    float *state = malloc(ngt * GQ_STATE * sizeof *state);
    if (!state) return -1;
    /* What (into X) with the backward state: s' and m' of every group */
    gguf_rows(s, W, Bd, Bu, gamma, beta, NULL, idx, X, NULL, NULL, state);
    fq_merge_adapter(s, W, Bd, Bu, X); /* X = W + A: what GPTQ rounds */
    for (size_t gi = 0; gi < ngt; gi++) {
        const float sp = state[gi * GQ_STATE], mp = state[gi * GQ_STATE + 1];
        float *xg = X + gi / (size_t)ng * (size_t)s->in + gi % (size_t)ng * (size_t)g;
        flip[gi] = 0;
        if (!sym) { /* value s'·q + m': GPTQ on X - m' with zero 0 */
            for (int k = 0; k < g; k++) xg[k] -= mp;
            scales[gi] = sp > 0.0f ? sp : 1e-30f, zeros[gi] = 0.0f;
        } else if (sp >= 0.0f) { /* value s'·(idx + cmin): zero -cmin */
            scales[gi] = sp > 0.0f ? sp : 1e-30f, zeros[gi] = (float)gq_sym_cmin_neg(t);
        } else { /* s' < 0: the same grid mirrored, idx = imax - q */
            scales[gi] = -sp, zeros[gi] = (float)(imax - gq_sym_cmin_neg(t));
            flip[gi] = 1;
        }
    }
    free(state);
    return 0;
}

void fq_gguf_gptq_index(const FqSpec *s, const uint8_t *codes, const uint8_t *flip, uint8_t *idx) {
    const int ng = fq_ngroups(s), g = s->group, imax = gq_index_max(s->gtype);
    for (size_t e = 0; e < (size_t)s->out * (size_t)s->in; e++) {
        const size_t gi = e / (size_t)s->in * (size_t)ng + e % (size_t)s->in / (size_t)g;
        int q = codes[e] > imax ? imax : codes[e];
        idx[e] = (uint8_t)(flip[gi] ? imax - q : q);
    }
}

void fq_gguf_backward(const FqSpec *s, const float *W, const float *Bd, const float *Bu, const float *gamma,
                      const float *beta, const float *scratch, const float *dWhat, float *dgamma,
                      float *dbeta, float *dBd, float *dBu, float *dW, float *work) {
    const int out = s->out, in = s->in, rc = fq_chunk_rows(s), ng = fq_ngroups(s);
    int bs, ns;
    geometry(s, &bs, &ns);
    float dxb[256];
    for (int o0 = 0; o0 < out; o0 += rc) {
        const int m = out - o0 < rc ? out - o0 : rc;
        const float *A;
        /* X bitwise as the forward built it (rank > 0: in work, then
         * overwritten block by block with dX) */
        const float *X = fq_prepare_rows(s, W, Bd, Bu, o0, m, work, &A);
        for (int o = 0; o < m; o++) {
            if (s->rank == 0 && !dW && !(s->lwc && (dgamma || dbeta))) break;
            for (int b0 = 0; b0 < in; b0 += bs) {
                const size_t off = (size_t)o * in + (size_t)b0,
                             gi = (size_t)(o0 + o) * ng + (size_t)(b0 / bs * ns);
                const float *dy = dWhat + (size_t)(o0 + o) * in + (size_t)b0;
                float *dWr = dW ? dW + (size_t)(o0 + o) * in + (size_t)b0 : NULL;
                if (s->gtype == GQ_F16) { /* value f16(x): gradient 1 */
                    if (s->rank > 0) memcpy(work + off, dy, (size_t)bs * sizeof *dy);
                    if (dWr) memcpy(dWr, dy, (size_t)bs * sizeof *dy);
                    continue;
                }
                float fg[GQ_MAX_SUBS], fb[GQ_MAX_SUBS], dfg[GQ_MAX_SUBS] = {0}, dfb[GQ_MAX_SUBS] = {0};
                const int lwc = block_factors(s, gamma, beta, gi, ns, fg, fb);
                gq_backward_row(s->gtype, X + off, bs, lwc ? fg : NULL, lwc ? fb : NULL,
                                scratch + gi * GQ_STATE, dy, dxb, lwc ? dfg : NULL, lwc ? dfb : NULL);
                for (int j = 0; lwc && j < ns; j++) {
                    if (dgamma) dgamma[gi + j] += dfg[j] * fg[j] * (1.0f - fg[j]);
                    if (dbeta) dbeta[gi + j] += dfb[j] * fb[j] * (1.0f - fb[j]);
                }
                if (s->rank > 0) memcpy(work + off, dxb, (size_t)bs * sizeof *dxb);
                if (dWr) memcpy(dWr, dxb, (size_t)bs * sizeof *dxb);
            }
        }
        if (s->rank == 0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, s->rank, in, 1.0f, work, in, Bu, in, 1.0f,
                    dBd + (size_t)o0 * s->R, s->R); /* dBd[rows, :r] += dX @ Bu[:r, :]^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->rank, in, m, 1.0f, Bd + (size_t)o0 * s->R,
                    s->R, work, in, 1.0f, dBu, in); /* dBu[:r, :] += Bd[rows, :r]^T @ dX */
    }
}
