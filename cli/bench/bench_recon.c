/* bench_recon.c — `quept bench recon`: the speed and memory of one QuEPT
 * training step on a synthetic 1B-class block, measured against this
 * machine's own OpenBLAS sgemm in the same run (a ratio, never a threshold).
 *
 * The step is exactly the one the block loop (common/engine/recon.c) runs:
 * for each of the four bit groups one drawn bit (here 2, 4, 6, 8: one per
 * group), recon_step_bit (fake-quantize the seven linears, block forward, L1
 * loss against the full-precision output, backward through the block and
 * the quantizers), then two AdamW steps (clipping logits, adapters).
 *
 * Shape: hidden 2048, FFN 5632, 32 heads, 4 KV heads, head_dim 64, batch
 * 2 x T 512; adapter rank 192 at 2-4 bits, 128 at 5-6, 64 at 7-8; group 128
 * at 2-4 bits, per output channel above; adapter mode 0; LWC on; the rest of
 * quept's default config (prefix gradient stop on; the stream choice does
 * not enter a step). Threads: OpenBLAS's count (OPENBLAS_NUM_THREADS, all
 * cores when unset), which the attention's per-head work also uses.
 *
 * FLOPs counted per drawn bit (N = B*T tokens; a multiply-add is 2 FLOPs):
 *   linear layers   forward 2*N*in*out each; backward 2*N*in*out for dW of
 *                   each, plus 2*N*in*out for dX of each linear whose input
 *                   gradient is computed (recon_step_flops_dx says which:
 *                   the block input's gradient feeds nothing, so dX of
 *                   q/k/v is counted only when the step computes it)
 *   attention       causal half: QK^T and PV forward, 2*2*NH*hd*T(T+1)/2
 *                   per sequence; backward four such products (dP, dV, dQ, dK)
 *                   (the tiled kernels compute ~5/8 of the full square at
 *                   T = 512; the extra is not counted)
 *   adapters        forward A = Bd[:, :r] Bu[:r, :], 2*out*r*in per linear;
 *                   backward dBd and dBu, 2 more such products
 * Not counted: recomputations (the adapter product in the quantizer's
 * backward, and the rebuild of the gate/up/o weights for their input
 * gradients: about 80 GFLOP per step here), norms, RoPE, softmax, SwiGLU,
 * the loss, the fake-quant elementwise work and AdamW — all O(N*C) or
 * O(out*in) without a factor of N or r.
 *
 * Memory: peak resident set (VmHWM, the whole process) next to an analytic
 * minimum = frozen block weights + trainables (clipping logits + adapters)
 * + AdamW state (two moments per trainable) + the activations one forward
 * must save for the backward (ln1, q, k, v, the causal triangle of the
 * attention probabilities, attention output, h1, ln2, gate, up, SwiGLU
 * output, two rms factors). Not in the minimum but resident: the input
 * batch and target, the block output, one fake-quantized weight, one slice
 * of a weight gradient, the gradients, the quantizer's saved grid and
 * OpenBLAS's buffers. ReconStep also allocates the six other fake-quantized
 * weight slots for callers that build all seven at once (recon.c's stream
 * advance); the step never touches them, so they are not resident here. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/rng.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "engine/optim.h"
#include "engine/qblock.h"
#include "engine/recon_step.h"

/* Whether recon_step_bit computes the gradient of the block input (and so
 * the dX products of q/k/v): it does not — nothing uses it. */
static const int recon_step_flops_dx = 0;

typedef struct {
    double linear, attention, adapter; /* FLOPs per step */
} StepFlops;

static void step_flops(const ModelConfig *c, const QBlockParams *p, const int *bis, int nb, int B, int T,
                       StepFlops *f) {
    double N = (double)B * T;
    memset(f, 0, sizeof *f);
    double attn_fwd = 2.0 * 2.0 * c->n_heads * c->head_dim * (double)T * (T + 1) / 2.0 * B;
    for (int i = 0; i < nb; i++) {
        for (int l = 0; l < N_LIN; l++) {
            const QLinear *q = &p->lin[l];
            double io = (double)q->in * q->out;
            int dx = recon_step_flops_dx || !(l == LIN_Q || l == LIN_K || l == LIN_V);
            f->linear += 2.0 * N * io * (dx ? 3.0 : 2.0);
            f->adapter += 3.0 * 2.0 * io * q->spec[bis[i]].rank;
        }
        f->attention += 3.0 * attn_fwd;
    }
}

/* Analytic minimum of resident bytes for a training step (see the top),
 * by part: frozen weights, trainables, AdamW state, saved activations. */
typedef struct {
    double weights, trainables, optimizer, activations, total;
} MinBytes;

static void min_bytes(const ModelConfig *c, const QBlockParams *p, int B, int T, MinBytes *m) {
    double N = (double)B * T, C = c->dim, H = c->hidden_dim;
    double QD = (double)c->n_heads * c->head_dim, KVD = (double)c->n_kv_heads * c->head_dim;
    double weights = 2.0 * C;
    for (int l = 0; l < N_LIN; l++) weights += (double)p->lin[l].in * p->lin[l].out;
    double train = (double)p->n_lwc + (double)p->n_adapter;
    double acts = N * (3.0 * C + 2.0 * QD + 2.0 * KVD + 3.0 * H + 2.0) +
                  (double)B * c->n_heads * (double)T * (T + 1) / 2.0;
    m->weights = 4.0 * weights;
    m->trainables = 4.0 * train;
    m->optimizer = 8.0 * train;
    m->activations = 4.0 * acts;
    m->total = m->weights + m->trainables + m->optimizer + m->activations;
}

static void fill_normal(float *x, size_t n, float sd, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = sd * rng_normal(r);
}

int bench_recon(int argc, char **argv) {
    CliOpt o[] = {{"json", 0, 0}, {"steps", 1, 0}, {"seconds", 1, 0}};
    int no = 3, npos, steps;
    const char *pos[1];
    QErr err = {{0}};
    double secs;
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "steps", 3, 1, 1000, &steps, &err) ||
        cli_get_float(o, no, "seconds", 2.0, 0.01, 600.0, &secs, &err)) {
        log_error("bench recon: %s", err.msg);
        return 2;
    }
    int json = cli_get(o, no, "json") != NULL;
    ModelConfig c = bench_1b_config(1, 32, 1);
    const int B = 2, T = 512, bits[] = {2, 4, 6, 8}, nb = 4;
    QuantConfig qc;
    quant_config_default(&qc);
    qc.n_bits = nb;
    for (int i = 0; i < nb; i++) qc.bits[i] = bits[i];
    for (int b = 0; b <= QBITS_MAX; b++) {
        qc.group[b] = b <= 4 ? 128 : 0;
        qc.rank[b] = b <= 4 ? 192 : b <= 6 ? 128 : 64;
    }
    qc.rank_ref_width = 0;
    qc.adapter_mode = 0;
    qc.lwc = 1;
    qc.batch = B;
    int threads = openblas_get_num_threads();

    /* the reference figure first (before the step's buffers exist) */
    if (!json)
        fprintf(stderr, "measuring OpenBLAS sgemm (%dx%dx%d, %d thread%s)...\n", B * T, c.dim, c.dim, threads,
                threads == 1 ? "" : "s");
    double sgemm0 = bench_sgemm_gflops(B * T, c.dim, c.dim, secs);

    BlockWeights w;
    QBlockParams p;
    ReconStep rs;
    AdamW opt_lwc, opt_ad;
    memset(&opt_lwc, 0, sizeof opt_lwc);
    memset(&opt_ad, 0, sizeof opt_ad);
    size_t NC = (size_t)B * T * c.dim;
    float *x = NULL, *target = NULL;
    int rc = 1, have_p = 0, have_rs = 0;
    if (block_weights_alloc(&w, &c, &err) != 0) {
        log_error("bench recon: %s", err.msg);
        return 1;
    }
    Rng rng;
    rng_seed(&rng, 42);
    for (int l = 0; l < N_LIN; l++) {
        int out, in;
        qblock_linear_shape(&c, l, &out, &in);
        fill_normal((float *)qblock_linear_weight(&w, l), (size_t)out * in, 1.0f / sqrtf((float)in), &rng);
    }
    for (int i = 0; i < c.dim; i++) {
        w.attn_norm[i] = 1.0f + 0.1f * rng_normal(&rng);
        w.mlp_norm[i] = 1.0f + 0.1f * rng_normal(&rng);
    }
    if (qblock_params_init(&p, &c, &qc, 0, &err) != 0) goto fail;
    have_p = 1;
    /* start from a trained-looking point: nonzero Bd, so the adapter matters */
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p.lin[l];
        fill_normal(p.adapter + q->off_Bd, (size_t)q->out * q->R, 1e-3f, &rng);
    }
    if (recon_step_init(&rs, &c, &p, B, T, &err) != 0) goto fail;
    have_rs = 1;
    x = malloc(NC * sizeof(float));
    target = malloc(NC * sizeof(float));
    if (!x || !target || adamw_init(&opt_lwc, p.n_lwc, 0.0f) != 0 ||
        adamw_init(&opt_ad, p.n_adapter, 0.0f) != 0) {
        qerr_set(&err, "out of memory");
        goto fail;
    }
    fill_normal(x, NC, 1.0f, &rng);
    block_forward(&c, &w, &rs.acts, x, target); /* the full-precision target */

    int gb[QN_GROUPS][2], gn[QN_GROUPS], bis[QN_GROUPS], nbi = 0;
    recon_group_bits(&qc, gb, gn);
    for (int g = 0; g < QN_GROUPS; g++)
        if (gn[g]) bis[nbi++] = gb[g][0];
    StepFlops fl;
    step_flops(&c, &p, bis, nbi, B, T, &fl);
    double flops = fl.linear + fl.attention + fl.adapter;

    if (!json) fprintf(stderr, "running 1 warm-up + %d timed training steps...\n", steps);
    double t_total = 0.0, t_min = 1e30, loss = 0.0;
    for (int s = 0; s <= steps; s++) {
        double t0 = now_seconds();
        memset(rs.g_lwc, 0, p.n_lwc * sizeof(float));
        memset(rs.g_adapter, 0, p.n_adapter * sizeof(float));
        loss = 0.0;
        for (int i = 0; i < nbi; i++) loss += recon_step_bit(&c, &qc, &p, &w, &rs, bis[i], x, target, 1.0f);
        adamw_step(&opt_lwc, p.lwc, rs.g_lwc, qc.lr_lwc);
        adamw_step(&opt_ad, p.adapter, rs.g_adapter, qc.lr_adapter);
        double dt = now_seconds() - t0;
        if (s == 0) continue; /* warm-up */
        t_total += dt;
        if (dt < t_min) t_min = dt;
        if (!json) fprintf(stderr, "  step %d: %.3f s (loss %.5f)\n", s, dt, loss);
    }
    long rss = peak_rss_bytes();
    double sgemm1 = bench_sgemm_gflops(B * T, c.dim, c.dim, secs);
    double sgemm = 0.5 * (sgemm0 + sgemm1);
    double sps = t_total / steps, gflops = flops / sps / 1e9, gflops_best = flops / t_min / 1e9;
    MinBytes mb;
    min_bytes(&c, &p, B, T, &mb);
    double mmin = mb.total;
    if (json) {
        printf("{\"B\": %d, \"T\": %d, \"dim\": %d, \"hidden\": %d, \"heads\": %d, \"kv_heads\": %d, "
               "\"bits\": [2, 4, 6, 8], \"threads\": %d, \"steps\": %d, "
               "\"seconds_per_step\": %.4f, \"seconds_per_step_best\": %.4f, "
               "\"gflop_per_step\": %.3f, \"gflop_linear\": %.3f, \"gflop_attention\": %.3f, "
               "\"gflop_adapter\": %.3f, \"block_input_grad\": %s, "
               "\"gflops\": %.3f, \"gflops_best\": %.3f, "
               "\"sgemm_gflops\": %.3f, \"sgemm_gflops_before\": %.3f, \"sgemm_gflops_after\": %.3f, "
               "\"ratio_to_sgemm\": %.4f, \"ratio_to_sgemm_best\": %.4f, "
               "\"peak_rss_bytes\": %ld, \"min_bytes\": %.0f, \"min_weights_bytes\": %.0f, "
               "\"min_trainables_bytes\": %.0f, \"min_optimizer_bytes\": %.0f, "
               "\"min_activations_bytes\": %.0f, \"rss_over_min\": %.3f, \"loss\": %.6f}\n",
               B, T, c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, threads, steps, sps, t_min, flops / 1e9,
               fl.linear / 1e9, fl.attention / 1e9, fl.adapter / 1e9, recon_step_flops_dx ? "true" : "false",
               gflops, gflops_best, sgemm, sgemm0, sgemm1, gflops / sgemm, gflops_best / sgemm, rss, mmin,
               mb.weights, mb.trainables, mb.optimizer, mb.activations, rss / mmin, loss);
    } else {
        printf("QuEPT training step, synthetic 1B-class block (C %d, FFN %d, %d/%d heads x %d),\n"
               "B %d x T %d, bits 2,4,6,8 (ranks 192/192/128/64, group 128 at 2-4 bits), "
               "OpenBLAS threads %d\n",
               c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, c.head_dim, B, T, threads);
        printf("  seconds per step      %8.3f  (best %.3f, %d steps)\n", sps, t_min, steps);
        printf("  GFLOP per step        %8.1f  (linear %.1f, attention %.1f, adapters %.1f;\n"
               "                                  block-input gradient %s)\n",
               flops / 1e9, fl.linear / 1e9, fl.attention / 1e9, fl.adapter / 1e9,
               recon_step_flops_dx ? "computed and counted" : "not computed, not counted");
        printf("  achieved GFLOP/s      %8.1f  (best %.1f)\n", gflops, gflops_best);
        printf("  OpenBLAS sgemm GFLOP/s%8.1f  (%dx%dx%d; %.1f before, %.1f after the steps)\n", sgemm, B * T,
               c.dim, c.dim, sgemm0, sgemm1);
        printf("  ratio to sgemm        %8.3f  (best %.3f)\n", gflops / sgemm, gflops_best / sgemm);
        printf("  peak RSS              %8.1f MB\n", rss / 1e6);
        printf("  analytic minimum      %8.1f MB  (weights %.1f + trainables %.1f + AdamW moments %.1f\n"
               "                                  + saved activations %.1f); peak / minimum %.2f\n",
               mmin / 1e6, mb.weights / 1e6, mb.trainables / 1e6, mb.optimizer / 1e6, mb.activations / 1e6,
               rss / mmin);
    }
    rc = 0;
fail:
    if (rc) log_error("bench recon: %s", err.msg);
    free(x);
    free(target);
    adamw_free(&opt_lwc);
    adamw_free(&opt_ad);
    if (have_rs) recon_step_free(&rs);
    if (have_p) qblock_params_free(&p);
    block_weights_free(&w);
    return rc;
}
