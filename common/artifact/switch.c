/* switch.c — elastic artifact → integer codes (see switch.h). */
#include "switch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/rng.h"
#include "../quant/ggml_quant.h"

void switched_free(SwitchedModel *s) {
    if (s->lin)
        for (int j = 0; j < s->n_layers; j++)
            for (int l = 0; l < N_LIN; l++) {
                free(s->lin[j][l].codes);
                free(s->lin[j][l].scales);
                free(s->lin[j][l].zeros);
                free(s->lin[j][l].packed);
            }
    if (s->merged)
        for (int j = 0; j < s->n_layers; j++)
            for (int l = 0; l < N_LIN; l++)
                for (int bi = 0; bi < QMAX_NBITS; bi++) {
                    float *m = s->merged[j][l][bi];
                    if (!m) continue;
                    for (int k = bi; k < QMAX_NBITS; k++) /* shared by the bits of one rank */
                        if (s->merged[j][l][k] == m) s->merged[j][l][k] = NULL;
                    free(m);
                }
    free(s->merged);
    free(s->lin);
    free(s->bits);
    if (s->work)
        for (int t = 0; t < s->n_threads; t++) free(s->work[t]);
    free(s->work);
    memset(s, 0, sizeof *s);
}

/* Largest group count of a (., in) linear over the artifact's widths. */
static int max_groups(const QuantConfig *q, int in) {
    int m = 1;
    for (int bi = 0; bi < q->n_bits; bi++) {
        int g = quant_group(q, q->bits[bi], in);
        int ng = (in + g - 1) / g;
        if (ng > m) m = ng;
    }
    return m;
}

static int switched_alloc(const ElasticModel *em, SwitchedModel *s, QErr *err) {
    const ModelConfig *c = &em->cfg;
    memset(s, 0, sizeof *s);
    s->cfg = *c;
    s->n_layers = c->n_layers;
    s->bits = calloc((size_t)c->n_layers, sizeof *s->bits);
    s->lin = calloc((size_t)c->n_layers, sizeof *s->lin);
    if (!s->bits || !s->lin) goto oom;
    size_t work = 0;
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            SwitchedLinear *sl = &s->lin[j][l];
            qblock_linear_shape(c, l, &sl->out, &sl->in);
            size_t ng = (size_t)sl->out * (size_t)max_groups(&em->qc, sl->in);
            sl->codes = malloc((size_t)sl->out * (size_t)sl->in);
            sl->scales = malloc(ng * sizeof(float));
            sl->zeros = malloc(ng * sizeof(float));
            if (!sl->codes || !sl->scales || !sl->zeros) goto oom;
            if (em->qc.format == QFORMAT_GGUF) { /* the widest row of ggml blocks */
                size_t rb = 0;
                for (int bi = 0; bi < em->qc.n_bits; bi++) {
                    int b = em->qc.bits[bi];
                    size_t r = gq_row_bytes(quant_gtype(&em->qc, b, sl->in), sl->in);
                    if (r > rb) rb = r;
                }
                if (!(sl->packed = malloc((size_t)sl->out * rb))) goto oom;
            }
            if (em->qc.method == METHOD_QUEPT)
                for (int bi = 0; bi < em->qc.n_bits; bi++) {
                    size_t w = fq_work_floats(&em->params[j].lin[l].spec[bi]);
                    if (w > work) work = w;
                }
        }
    const char *env = getenv("QUEPT_SWITCH_THREADS");
    long nt = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (nt < 1) nt = 1;
    if (nt > 8) nt = 8;
    s->n_threads = (int)nt;
    s->work = calloc((size_t)nt, sizeof *s->work);
    if (!s->work) goto oom;
    for (int t = 0; work && t < s->n_threads; t++)
        if (!(s->work[t] = malloc(work * sizeof(float)))) goto oom;
    s->work_floats = work;
    return 0;
oom:
    switched_free(s);
    return qerr_set(err, "switch: out of memory");
}

/* Stored codes (gptq, or a quept QB_GPTQ bit): a copy; sl's group is set. */
static void copy_codes(SwitchedLinear *sl, const GptqLinear *g) {
    size_t ng = (size_t)sl->out * (size_t)sl->ng;
    memcpy(sl->codes, g->codes, (size_t)sl->out * (size_t)sl->in);
    memcpy(sl->scales, g->scales, ng * sizeof(float));
    memcpy(sl->zeros, g->zeros, ng * sizeof(float));
}

/* One linear of one block at the block's current width. */
static void switch_linear(const ElasticModel *em, SwitchedModel *out, int j, int l, float *work) {
    const QuantConfig *q = &em->qc;
    const int b = out->bits[j], bi = quant_bit_index(q, b);
    SwitchedLinear *sl = &out->lin[j][l];
    const float *W = qblock_linear_weight(&em->base.blocks[j], l);
    sl->bits = b;
    if (q->method == METHOD_QUEPT) {
        const QBlockParams *p = &em->params[j];
        const QLinear *ql = &p->lin[l];
        const FqSpec *sp = &ql->spec[bi];
        sl->format = sp->format;
        sl->group = sp->group;
        sl->ng = fq_ngroups(sp);
        if (sp->format == FQ_FORMAT_GGUF) {
            sl->gtype = sp->gtype;
            sl->row_bytes = gq_row_bytes(sp->gtype, sl->in);
            fq_quantize_packed(sp, W, p->adapter + ql->off_Bd, p->adapter + ql->off_Bu,
                               p->lwc + ql->off_gamma[bi], p->lwc + ql->off_beta[bi],
                               p->choice[bi] == QB_GPTQ ? p->rounded[l][bi].codes : NULL, sl->packed, work);
            return;
        }
        if (p->choice[bi] == QB_GPTQ) { /* stored codes */
            copy_codes(sl, &p->rounded[l][bi]);
            return;
        }
        const float *Wm = out->merged ? out->merged[j][l][bi] : NULL;
        if (Wm) { /* the adapted weight is cached: only the group pass is left */
            FqSpec s0 = *sp;
            s0.rank = 0;
            fq_quantize_codes(&s0, Wm, NULL, NULL, p->lwc + ql->off_gamma[bi], p->lwc + ql->off_beta[bi],
                              sl->codes, sl->scales, sl->zeros, work);
            return;
        }
        fq_quantize_codes(sp, W, p->adapter + ql->off_Bd, p->adapter + ql->off_Bu, p->lwc + ql->off_gamma[bi],
                          p->lwc + ql->off_beta[bi], sl->codes, sl->scales, sl->zeros, work);
        return;
    }
    FqSpec sp = {.out = sl->out,
                 .in = sl->in,
                 .bits = b,
                 .group = quant_group(q, b, sl->in),
                 .format = (int)q->format,
                 .gtype = quant_gtype(q, b, sl->in)};
    sl->format = sp.format;
    sl->group = sp.group;
    sl->ng = fq_ngroups(&sp);
    if (sp.format == FQ_FORMAT_GGUF) { /* rtn: factors 1, no adapter */
        sl->gtype = sp.gtype;
        sl->row_bytes = gq_row_bytes(sp.gtype, sl->in);
        fq_quantize_packed(&sp, W, NULL, NULL, NULL, NULL, NULL, sl->packed, NULL);
        return;
    }
    if (q->method == METHOD_RTN) {
        fq_quantize_codes(&sp, W, NULL, NULL, NULL, NULL, sl->codes, sl->scales, sl->zeros, NULL);
    } else {
        copy_codes(sl, &em->gptq[j][l][bi]);
    }
}

typedef struct {
    const ElasticModel *em;
    SwitchedModel *out;
    int n_tasks, next;
    pthread_mutex_t mu;
} SwitchJobs;

typedef struct {
    SwitchJobs *jobs;
    float *work;
} SwitchWorker;

/* Tasks are taken largest first (linear index order within a block is by
 * size class: gate/up/down, then q/o, then k/v). */
static const int LIN_ORDER[N_LIN] = {LIN_GATE, LIN_UP, LIN_DOWN, LIN_Q, LIN_O, LIN_K, LIN_V};

static void *switch_worker(void *arg) {
    SwitchWorker *w = arg;
    SwitchJobs *J = w->jobs;
    const int L = J->em->cfg.n_layers;
    for (;;) {
        pthread_mutex_lock(&J->mu);
        int t = J->next++;
        pthread_mutex_unlock(&J->mu);
        if (t >= J->n_tasks) break;
        int cls = t / L, j = t % L; /* all big linears of every block first */
        switch_linear(J->em, J->out, j, LIN_ORDER[cls], w->work);
    }
    return NULL;
}

int elastic_switch_codes(const ElasticModel *em, const int *bits, SwitchedModel *out, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    for (int j = 0; j < c->n_layers; j++)
        if (quant_bit_index(q, bits[j]) < 0)
            return qerr_set(err, "block %d: %d bits is not in the artifact's bit list", j, bits[j]);
    if (!out->lin && switched_alloc(em, out, err) != 0) return -1;
    if (out->n_layers != c->n_layers) return qerr_set(err, "switch: output belongs to another model");
    for (int j = 0; j < c->n_layers; j++) out->bits[j] = bits[j];
    SwitchJobs J = {.em = em, .out = out, .n_tasks = c->n_layers * N_LIN, .next = 0};
    int nt = out->n_threads < J.n_tasks ? out->n_threads : J.n_tasks;
    SwitchWorker w[8];
    pthread_t th[8];
    int started = 0;
    pthread_mutex_init(&J.mu, NULL);
    for (int t = 0; t < nt; t++) {
        w[t].jobs = &J;
        w[t].work = out->work ? out->work[t] : NULL;
    }
    for (int t = 1; t < nt; t++)
        if (pthread_create(&th[t], NULL, switch_worker, &w[t]) == 0)
            started = t;
        else
            break;
    switch_worker(&w[0]); /* this thread works too; it finishes every task if no thread started */
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&J.mu);
    return 0;
}

int elastic_switch_cache(const ElasticModel *em, SwitchedModel *out, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    if (q->method != METHOD_QUEPT || q->adapter_mode != 0 || q->format != QFORMAT_INT)
        return 0; /* gguf: not yet */
    if (!out->lin && switched_alloc(em, out, err) != 0) return -1;
    if (out->merged) return 0;
    out->merged = calloc((size_t)c->n_layers, sizeof *out->merged);
    if (!out->merged) return qerr_set(err, "switch cache: out of memory");
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const QBlockParams *p = &em->params[j];
            const QLinear *ql = &p->lin[l];
            const float *W = qblock_linear_weight(&em->base.blocks[j], l);
            for (int bi = 0; bi < q->n_bits; bi++) {
                const FqSpec *sp = &ql->spec[bi];
                if (sp->rank == 0 || p->choice[bi] == QB_GPTQ) continue; /* W itself, or stored codes */
                int same = -1;
                for (int k = 0; k < bi && same < 0; k++)
                    if (ql->spec[k].rank == sp->rank && out->merged[j][l][k]) same = k;
                if (same >= 0) {
                    out->merged[j][l][bi] = out->merged[j][l][same];
                    continue;
                }
                size_t n = (size_t)ql->out * (size_t)ql->in;
                float *X = malloc(n * sizeof(float));
                if (!X) {
                    switched_free(out);
                    return qerr_set(err, "switch cache: out of memory (%zu MB so far)",
                                    out->merged_bytes >> 20);
                }
                fq_merge_adapter(sp, W, p->adapter + ql->off_Bd, p->adapter + ql->off_Bu, X);
                out->merged[j][l][bi] = X;
                out->merged_bytes += n * sizeof(float);
            }
        }
    return 0;
}

void switched_dequantize(const SwitchedLinear *l, float *W) {
    if (l->format == FQ_FORMAT_GGUF) {
        for (int o = 0; o < l->out; o++)
            gq_dequantize_row(l->gtype, l->packed + (size_t)o * l->row_bytes, l->in, W + (size_t)o * l->in);
        return;
    }
    FqSpec s = {.out = l->out, .in = l->in, .bits = l->bits, .group = l->group, .format = l->format};
    fq_dequantize(&s, l->codes, l->scales, l->zeros, W);
}

void switch_bytes(const ElasticModel *em, const SwitchedModel *s, const int *bits, double *bytes_read,
                  double *bytes_written) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    double rd = 0, wr = 0;
    for (int j = 0; j < c->n_layers; j++) {
        int bi = quant_bit_index(q, bits[j]);
        if (bi < 0) continue;
        for (int l = 0; l < N_LIN; l++) {
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            int g = quant_group(q, bits[j], in);
            double n = (double)o * in, ng = (double)o * ((in + g - 1) / g);
            if (q->format == QFORMAT_GGUF)
                wr += (double)o * (double)gq_row_bytes(quant_gtype(q, bits[j], in), in); /* ggml blocks */
            else
                wr += n + 8.0 * ng; /* codes (1 byte) + scales + zeros */
            if (q->method == METHOD_GPTQ ||
                (q->method == METHOD_QUEPT && em->params[j].choice[bi] == QB_GPTQ)) {
                rd += n + 8.0 * ng;
                continue;
            }
            rd += 4.0 * n; /* base weight, or the cached merged weight */
            if (q->method == METHOD_QUEPT) {
                const FqSpec *sp = &em->params[j].lin[l].spec[bi];
                int cached = s && s->merged && s->merged[j][l][bi];
                if (!cached) rd += 4.0 * sp->rank * ((double)o + in); /* Bd[:, :r], Bu[:r, :] */
                if (sp->lwc) rd += 8.0 * ng;                          /* gamma, beta */
            }
        }
    }
    *bytes_read = rd;
    *bytes_written = wr;
}

int elastic_build_synthetic(ElasticModel *em, Model *base, const QuantConfig *qc, uint64_t seed, QErr *err) {
    const ModelConfig c = base->cfg;
    if (elastic_alloc(em, &c, qc, err) != 0) return -1;
    em->base = *base;
    memset(base, 0, sizeof *base);
    Rng r;
    rng_seed(&r, rng_mix(seed, 0x5717c4, 0, 0));
    for (int j = 0; j < c.n_layers; j++) {
        if (qc->method == METHOD_QUEPT) {
            QBlockParams *p = &em->params[j];
            if (qblock_params_init(p, &c, qc, j, err) != 0) goto fail;
            for (int l = 0; l < N_LIN; l++) {
                const QLinear *ql = &p->lin[l];
                float *Bd = p->adapter + ql->off_Bd;
                for (size_t i = 0; i < (size_t)ql->out * ql->R; i++) Bd[i] = 0.02f * rng_normal(&r);
            }
            if (qc->format == QFORMAT_POT) { /* data-free scales, refinements Γ ~ N(0, 0.1^2) */
                qblock_params_init_scales(p, &em->base.blocks[j]);
                for (int l = 0; l < N_LIN; l++)
                    for (int bi = 0; bi < qc->n_bits; bi++) {
                        const QLinear *ql = &p->lin[l];
                        size_t ng = (size_t)ql->out * fq_ngroups(&ql->spec[bi]);
                        for (size_t i = 0; i < ng; i++) p->lwc[ql->off_gamma[bi] + i] = 0.1f * rng_normal(&r);
                    }
            } else {
                for (size_t i = 0; i < p->n_lwc; i++) p->lwc[i] += 0.5f * rng_normal(&r);
            }
        } else if (qc->method == METHOD_GPTQ) {
            for (int l = 0; l < N_LIN; l++) {
                int o, in;
                qblock_linear_shape(&c, l, &o, &in);
                for (int bi = 0; bi < qc->n_bits; bi++) {
                    GptqLinear *g = &em->gptq[j][l][bi];
                    FqSpec s = {
                        .out = o, .in = in, .bits = qc->bits[bi], .group = quant_group(qc, qc->bits[bi], in)};
                    size_t ng = (size_t)o * fq_ngroups(&s);
                    g->codes = malloc((size_t)o * in);
                    g->scales = malloc(ng * sizeof(float));
                    g->zeros = malloc(ng * sizeof(float));
                    if (!g->codes || !g->scales || !g->zeros) {
                        qerr_set(err, "out of memory");
                        goto fail;
                    }
                    fq_quantize_codes(&s, qblock_linear_weight(&em->base.blocks[j], l), NULL, NULL, NULL,
                                      NULL, g->codes, g->scales, g->zeros, NULL);
                    int qmax = (1 << s.bits) - 1;
                    for (size_t i = 0; i < (size_t)o * in; i++) {
                        int u = rng_int(&r, 8);
                        if (u == 0 && g->codes[i] < qmax)
                            g->codes[i]++;
                        else if (u == 1 && g->codes[i] > 0)
                            g->codes[i]--;
                    }
                }
            }
        }
    }
    return 0;
fail:
    elastic_free(em);
    return -1;
}
