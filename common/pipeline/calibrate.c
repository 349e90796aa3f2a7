#include "calibrate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/numeric.h"
#include "../nn/forward.h"
#include "../engine/gptq_round.h"
#include "../quant/gptq.h"

typedef struct {
    int n_layers, quiet;
    double t_start;
    int blocks_done;
} ProgressState;

static int on_epoch(int block, int epoch, int epochs, const double gl[QN_GROUPS], double tps, void *user) {
    ProgressState *ps = user;
    if (ps->quiet) return 0;
    double elapsed = now_seconds() - ps->t_start;
    double done = ps->blocks_done + (double)epoch / epochs;
    double eta = done > 0 ? elapsed / done * (ps->n_layers - done) : 0.0;
    char buf[256];
    int n = 0;
    static const char *names[QN_GROUPS] = {"{7,8}", "{5,6}", "{3,4}", "{2}"};
    for (int g = 0; g < QN_GROUPS; g++)
        if (!isnan(gl[g])) n += snprintf(buf + n, sizeof buf - (size_t)n, " %s %.4f", names[g], gl[g]);
    fprintf(stderr, "block %d/%d epoch %2d/%d  loss%s  %.0f tok/s  ETA %.0fs\n", block + 1, ps->n_layers,
            epoch, epochs, buf, tps, eta);
    return 0;
}

/* GPTQ for every bit: one quantized stream per bit, Hessians from the FP
 * block run on that stream (all linears of the block at once). */
static int gptq_block(ElasticModel *em, int j, float *const *streams_q, int n_seq, int T, QErr *err);

int calibrate_run(const CalibJob *job, const QuantConfig *qc, QErr *err) {
    if (quant_config_validate(qc, err) != 0) return -1;
    Model m;
    if (model_load(&m, job->model_path, err) != 0) return -1;
    if (model_check_finite(&m, err) != 0 || pipeline_rotate(&m, qc, err) != 0) {
        qerr_wrap(err, "%s", job->model_path);
        model_free(&m);
        return -1;
    }
    const ModelConfig *c = &m.cfg;
    TokenSet ts;
    char model_sha256[65], data_sha256[65];
    if (pipeline_load_job(job, qc, c, &ts, model_sha256, data_sha256, err) != 0) {
        model_free(&m);
        return -1;
    }
    ElasticModel em;
    memset(&em, 0, sizeof em);
    Streams st;
    memset(&st, 0, sizeof st);
    int rc = elastic_alloc(&em, c, qc, err);
    int T = ts.seq_len, n_seq = ts.n_seq;
    QuantConfig sq = *qc;
    if (qc->method == METHOD_GPTQ) sq.stream = STREAM_FP; /* GPTQ keeps its own per-bit streams */
    /* RTN needs no activations at all (unless TEQ trains its scales) */
    if (rc == 0 && (qc->method != METHOD_RTN || qc->teq)) rc = streams_init(&st, &sq, n_seq, T, c->dim, err);
    float *gq[QMAX_NBITS] = {0};
    if (rc == 0 && qc->method == METHOD_GPTQ)
        for (int bi = 0; bi < qc->n_bits && rc == 0; bi++)
            if (!(gq[bi] = malloc(sizeof(float) * (size_t)n_seq * T * c->dim)))
                rc = qerr_set(err, "out of memory for GPTQ streams");
    if (rc == 0 && st.fp) {
        /* the embeddings, a batch at a time (stored as the streams store them) */
        float *scratch = st.bf16 ? malloc(sizeof(float) * (size_t)qc->batch * T * c->dim) : NULL;
        if (st.bf16 && !scratch) rc = qerr_set(err, "out of memory for the embeddings");
        for (int s0 = 0; rc == 0 && s0 < n_seq; s0 += qc->batch) {
            int nb = n_seq - s0 < qc->batch ? n_seq - s0 : qc->batch;
            float *x = streams_wbuf(&st, STREAMS_FP, s0, scratch);
            embed_forward(x, m.tok_emb, ts.tokens + (size_t)s0 * T, nb * T, c->dim);
            streams_store(&st, STREAMS_FP, s0, nb, x);
        }
        free(scratch);
        streams_reset_q(&st);
    }
    /* GPTQ's own per-bit streams: fp32 always */
    for (int bi = 0; rc == 0 && bi < qc->n_bits && gq[bi]; bi++)
        embed_forward(gq[bi], m.tok_emb, ts.tokens, n_seq * T, c->dim);
    ProgressState ps = {c->n_layers, job->quiet, now_seconds(), 0};
    for (int j = 0; rc == 0 && j < c->n_layers; j++) {
        double t0 = now_seconds();
        /* QuEPT, and TEQ for every method: the block's parameters, trained
         * (gptq: its scales on the full-precision stream, through RTN) */
        if (qc->method == METHOD_QUEPT || qc->teq)
            rc = recon_block(c, &sq, j, &m.blocks[j], &st, &em.params[j], &em.stats[j], on_epoch, &ps, err);
        /* folded before GPTQ below quantizes the block's base weights */
        if (rc == 0) pipeline_fold_teq(&em.params[j], c, &m.blocks[j], j, job->quiet);
        if (rc == 0 && qc->method == METHOD_GPTQ) {
            em.base = m; /* borrowed for the duration of the call */
            rc = gptq_block(&em, j, gq, n_seq, T, err);
            memset(&em.base, 0, sizeof em.base);
        }
        ps.blocks_done = j + 1;
        if (rc == 0 && !job->quiet && (qc->method != METHOD_RTN || qc->teq)) {
            fprintf(stderr, "block %d/%d done in %.1fs; loss per bit (rtn -> final):", j + 1, c->n_layers,
                    now_seconds() - t0);
            static const char *mark[4] = {"", "(no adapter)", "(rtn)", "(gptq)"};
            for (int bi = 0; bi < qc->n_bits; bi++)
                fprintf(stderr, " %d:%.4f->%.4f%s", qc->bits[bi], em.stats[j].loss_rtn[bi],
                        em.stats[j].loss_final[bi], mark[em.stats[j].choice[bi]]);
            fputc('\n', stderr);
        }
    }
    if (rc == 0) {
        log_info("calibration took %.1fs", now_seconds() - ps.t_start);
        rc = pipeline_finish(&em, &m, model_sha256, data_sha256, &ts, job->out_path, job->quiet, err);
    }
    for (int bi = 0; bi < QMAX_NBITS; bi++) free(gq[bi]);
    streams_free(&st);
    elastic_free(&em);
    model_free(&m);
    tokens_free(&ts);
    return rc;
}

static int gptq_block(ElasticModel *em, int j, float *const *streams_q, int n_seq, int T, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *qc = &em->qc;
    BlockWeights *w = &em->base.blocks[j];
    int B = qc->batch;
    size_t stride = (size_t)T * c->dim;
    BlockActs a;
    if (block_acts_init(&a, c, B, T, 0, err) != 0) return -1;
    float *H[N_LIN] = {0}, *out = malloc(sizeof(float) * stride * B);
    float *wq[N_LIN] = {0};
    int rc = out ? 0 : qerr_set(err, "out of memory");
    for (int l = 0; l < N_LIN && rc == 0; l++) {
        int o, in;
        qblock_linear_shape(c, l, &o, &in);
        H[l] = malloc(sizeof(float) * (size_t)in * in);
        wq[l] = malloc(sizeof(float) * (size_t)o * in);
        if (!H[l] || !wq[l]) rc = qerr_set(err, "out of memory for GPTQ Hessians");
    }
    for (int bi = 0; bi < qc->n_bits && rc == 0; bi++) {
        for (int l = 0; l < N_LIN; l++) {
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            memset(H[l], 0, sizeof(float) * (size_t)in * in);
        }
        /* Hessians: inputs of each linear when the FP block runs on this bit's stream */
        for (int s0 = 0; s0 < n_seq; s0 += B) {
            int nb = n_seq - s0 < B ? n_seq - s0 : B, N = nb * T;
            a.B = nb;
            block_forward(c, w, &a, streams_q[bi] + s0 * stride, out);
            block_hessians_accumulate(c, &a, N, H);
        }
        BlockWeights view = *w;
        view.act_bits = quant_act_bits(qc, bi); /* the stream sees the width's activation quantization */
        for (int l = 0; l < N_LIN && rc == 0; l++) {
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            const float *Hl = H[block_hessian_of(l)];
            int gs = quant_group(qc, qc->bits[bi], in);
            size_t ng = (size_t)o * ((in + gs - 1) / gs);
            GptqLinear *g = &em->gptq[j][l][bi];
            g->codes = malloc((size_t)o * in);
            g->scales = malloc(ng * sizeof(float));
            g->zeros = malloc(ng * sizeof(float));
            if (!g->codes || !g->scales || !g->zeros) {
                rc = qerr_set(err, "out of memory");
                break;
            }
            GptqSpec spec = {.out = o,
                             .in = in,
                             .bits = qc->bits[bi],
                             .group = gs,
                             .damp = qc->gptq_damp,
                             .block_size = 128};
            rc = gptq_quantize(&spec, qblock_linear_weight(w, l), Hl, wq[l], g->codes, g->scales, g->zeros,
                               NULL, err);
            if (rc) qerr_wrap(err, "block %d %s %d bits", j, LIN_NAMES[l], qc->bits[bi]);
            *qblock_linear_slot(&view, l) = wq[l];
        }
        /* advance this bit's stream through the quantized block */
        for (int s0 = 0; s0 < n_seq && rc == 0; s0 += B) {
            int nb = n_seq - s0 < B ? n_seq - s0 : B;
            a.B = nb;
            block_forward(c, &view, &a, streams_q[bi] + s0 * stride, streams_q[bi] + s0 * stride);
        }
    }
    for (int l = 0; l < N_LIN; l++) {
        free(H[l]);
        free(wq[l]);
    }
    free(out);
    block_acts_free(&a);
    return rc;
}
