/* bench_switch.c — `quept bench switch`: how fast an elastic artifact switches
 * to integer codes (elastic_switch_codes), as seconds per switch and achieved
 * GB/s next to this machine's memcpy GB/s measured in the same run.
 *
 * Byte accounting per switch (switch_bytes): read = fp32 base weights of the
 * seven linears of every block + the adapter prefixes used at the target
 * width (Bd[:, :r] and Bu[:r, :], fp32) + the clipping logits (gamma, beta);
 * written = one byte per code + fp32 scale and zero per group. Scratch traffic
 * (the W + A rows the group pass reads back) is not counted: it is the cost
 * of the method, not useful bytes. memcpy GB/s counts read + write (2 x size),
 * the same convention. The adapter product is one sgemm per linear (OpenBLAS,
 * its own threads); the group pass is single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact/switch.h"
#include "base/log.h"
#include "base/numeric.h"
#include "bench_switch.h"
#include "bench_util.h"
#include "cli/cli.h"

static const char *HELP = "usage: quept bench switch [--artifact A | --model M] [--from B] [--to B]\n"
                          "                          [--blocks N] [--seconds S] [--no-1b] [--json]\n"
                          "\n"
                          "Switching latency of an elastic artifact to integer codes (quept method):\n"
                          "  1. the artifact A, or a synthetic artifact (random adapters and clipping,\n"
                          "     no calibration) on model M (default ../shared/models/stories260K.bin);\n"
                          "  2. a synthetic 1B-class artifact: dim 2048, FFN 5632, 32 heads, 4 KV\n"
                          "     heads, N blocks (default 2), adapter ranks 96/64/32 for bits 2-4/5-6/7-8.\n"
                          "Reports seconds per switch (--from -> --to and back, default 4 -> 3), GB/s\n"
                          "(see bench_switch.c for the byte accounting) and the ratio to memcpy GB/s.\n";

typedef struct {
    const char *name;
    double params, sec_to, sec_back, fp32_sec, rd, wr, gbps, flops;
    /* with elastic_switch_cache: build time, its memory, then per switch */
    double cache_sec, cache_bytes, sec_cached, rd_cached, gbps_cached;
} SwFig;

static double memcpy_gbps(double min_seconds) {
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 0, t0 = now_seconds();
    do {
        double t = now_seconds();
        memcpy(b, a, n);
        t = now_seconds() - t;
        a[(size_t)t % n]++; /* keep the copy observable */
        double g = 2.0 * n / t / 1e9;
        if (g > best) best = g;
    } while (now_seconds() - t0 < min_seconds);
    volatile char sink = b[n / 2];
    (void)sink;
    free(a);
    free(b);
    return best;
}

static int time_case(const ElasticModel *em, int from, int to, double secs, SwFig *f, QErr *err) {
    int L = em->cfg.n_layers, rc = 0;
    int *bf = malloc(sizeof(int) * L), *bt = malloc(sizeof(int) * L);
    if (!bf || !bt) {
        free(bf);
        free(bt);
        return qerr_set(err, "out of memory");
    }
    for (int j = 0; j < L; j++) bf[j] = from, bt[j] = to;
    SwitchedModel sw = {0};
    rc = elastic_switch_codes(em, bf, &sw, err); /* allocates; not timed */
    double tt = 0, tb = 0;
    int n = 0;
    double t0 = now_seconds();
    while (rc == 0 && (n < 3 || now_seconds() - t0 < secs)) {
        double t = now_seconds();
        rc = elastic_switch_codes(em, bt, &sw, err);
        tt += now_seconds() - t;
        t = now_seconds();
        rc = rc || elastic_switch_codes(em, bf, &sw, err);
        tb += now_seconds() - t;
        n++;
    }
    if (rc == 0) {
        f->sec_to = tt / n;
        f->sec_back = tb / n;
        switch_bytes(em, NULL, bt, &f->rd, &f->wr);
    }
    /* the same switches with the adapted weights cached (opt-in) */
    f->cache_sec = f->cache_bytes = f->sec_cached = f->gbps_cached = 0;
    if (rc == 0) {
        double t = now_seconds();
        rc = elastic_switch_cache(em, &sw, err);
        f->cache_sec = now_seconds() - t;
        f->cache_bytes = (double)sw.merged_bytes;
    }
    if (rc == 0 && sw.merged) {
        double tc = 0;
        int m = 0;
        t0 = now_seconds();
        while (rc == 0 && (m < 3 || now_seconds() - t0 < secs)) {
            double t = now_seconds();
            rc = elastic_switch_codes(em, bt, &sw, err);
            tc += now_seconds() - t;
            rc = rc || elastic_switch_codes(em, bf, &sw, err);
            m++;
        }
        double wr;
        f->sec_cached = tc / m;
        switch_bytes(em, &sw, bt, &f->rd_cached, &wr);
        f->gbps_cached = (f->rd_cached + wr) / f->sec_cached / 1e9;
    }
    switched_free(&sw);
    if (rc == 0) {
        f->flops = 0; /* adapter products Bd[:, :r] Bu[:r, :] */
        if (em->qc.method == METHOD_QUEPT)
            for (int j = 0; j < L; j++)
                for (int l = 0; l < N_LIN; l++) {
                    const FqSpec *sp = &em->params[j].lin[l].spec[quant_bit_index(&em->qc, to)];
                    f->flops += 2.0 * sp->out * (double)sp->in * sp->rank;
                }
        f->gbps = (f->rd + f->wr) / f->sec_to / 1e9;
        /* the fp32 switch (elastic_switch) for comparison */
        Model q = {0};
        rc = elastic_switch(em, bf, &q, err);
        double t = now_seconds();
        int k = 0;
        while (rc == 0 && (k < 2 || now_seconds() - t < secs / 2)) {
            rc = elastic_switch(em, (k & 1) ? bf : bt, &q, err);
            k++;
        }
        f->fp32_sec = (now_seconds() - t) / k;
        model_free(&q);
    }
    f->params = 0;
    for (int l = 0; l < N_LIN; l++) {
        int o, in;
        qblock_linear_shape(&em->cfg, l, &o, &in);
        f->params += (double)o * in * L;
    }
    free(bf);
    free(bt);
    return rc;
}

static void quant_1b(QuantConfig *qc) {
    quant_config_default(qc);
    qc->method = METHOD_QUEPT;
    qc->rank_ref_width = 0;
    qc->rank_cap = 1.0f;
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) qc->rank[b] = b <= 4 ? 96 : b <= 6 ? 64 : 32;
}

int bench_switch_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"artifact", 1, 0}, {"model", 1, 0},   {"from", 1, 0},  {"to", 1, 0},
                  {"blocks", 1, 0},   {"seconds", 1, 0}, {"no-1b", 0, 0}, {"json", 0, 0}};
    int no = sizeof o / sizeof o[0], npos, from, to, blocks;
    const char *pos[1];
    double secs;
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "from", 4, QBITS_MIN, QBITS_MAX, &from, &err) ||
        cli_get_int(o, no, "to", 3, QBITS_MIN, QBITS_MAX, &to, &err) ||
        cli_get_int(o, no, "blocks", 2, 1, 64, &blocks, &err) ||
        cli_get_float(o, no, "seconds", 1.0, 0.0, 600.0, &secs, &err)) {
        log_error("bench switch: %s", err.msg);
        return 2;
    }
    int json = cli_get(o, no, "json") != NULL;
    SwFig figs[2];
    int nf = 0, rc = 0;
    if (!json) fprintf(stderr, "measuring memcpy (256 MiB)...\n");
    double mc = memcpy_gbps(secs < 0.5 ? 0.5 : secs);
    if (!json) fprintf(stderr, "measuring OpenBLAS sgemm (5632x2048x96, the adapter product's shape)...\n");
    double sg = bench_sgemm_gflops(5632, 2048, 96, secs < 0.5 ? 0.5 : secs);

    /* 1: the artifact, or a synthetic one on the small model */
    const char *art = cli_get(o, no, "artifact"), *mp = cli_get(o, no, "model");
    if (!mp) mp = "../shared/models/stories260K.bin";
    ElasticModel em;
    int have = 0;
    if (art) {
        rc = elastic_load(&em, art, &err);
        have = rc == 0;
        figs[nf].name = art;
    } else if (access(mp, R_OK) == 0) {
        Model m;
        QuantConfig qc;
        quant_config_default(&qc);
        qc.method = METHOD_QUEPT;
        rc = model_load(&m, mp, &err);
        if (rc == 0) rc = elastic_build_synthetic(&em, &m, &qc, 1, &err);
        have = rc == 0;
        figs[nf].name = mp;
    } else {
        log_warn("bench switch: %s not found, skipping the small-model figure", mp);
    }
    if (have) {
        if (quant_bit_index(&em.qc, from) < 0 || quant_bit_index(&em.qc, to) < 0)
            rc = qerr_set(&err, "--from/--to: %d or %d bits is not in the artifact", from, to);
        if (rc == 0) rc = time_case(&em, from, to, secs, &figs[nf], &err);
        elastic_free(&em);
        nf += rc == 0;
    }
    /* 2: synthetic 1B-class blocks */
    if (rc == 0 && !cli_get(o, no, "no-1b")) {
        ModelConfig c = bench_1b_config(blocks, 256, 0);
        QuantConfig qc;
        quant_1b(&qc);
        Model m;
        if (!json) fprintf(stderr, "building a synthetic 1B-class artifact (%d blocks)...\n", blocks);
        rc = model_init_random(&m, &c, 7, &err);
        if (rc == 0) rc = elastic_build_synthetic(&em, &m, &qc, 2, &err);
        if (rc == 0) {
            figs[nf].name = "synthetic-1B-class";
            rc = time_case(&em, from, to, secs, &figs[nf], &err);
            elastic_free(&em);
            nf += rc == 0;
        }
    }
    if (rc) {
        log_error("bench switch: %s", err.msg);
        return 1;
    }
    if (json) {
        printf("{\"memcpy_gbps\": %.4g, \"sgemm_gflops\": %.4g, \"from\": %d, \"to\": %d, \"cases\": [", mc,
               sg, from, to);
        for (int i = 0; i < nf; i++)
            printf("%s{\"name\": \"%s\", \"params\": %.0f, \"seconds_per_switch\": %.6g, "
                   "\"seconds_per_switch_back\": %.6g, \"bytes_read\": %.0f, \"bytes_written\": %.0f, "
                   "\"gbps\": %.4g, \"ratio_memcpy\": %.4g, \"fp32_switch_seconds\": %.6g, "
                   "\"adapter_gflop\": %.4g, \"sgemm_floor_seconds\": %.6g, \"cache_build_seconds\": %.6g, "
                   "\"cache_bytes\": %.0f, \"cached_seconds_per_switch\": %.6g, \"cached_gbps\": %.4g, "
                   "\"cached_ratio_memcpy\": %.4g}",
                   i ? ", " : "", figs[i].name, figs[i].params, figs[i].sec_to, figs[i].sec_back, figs[i].rd,
                   figs[i].wr, figs[i].gbps, figs[i].gbps / mc, figs[i].fp32_sec, figs[i].flops / 1e9,
                   figs[i].flops / (sg * 1e9), figs[i].cache_sec, figs[i].cache_bytes, figs[i].sec_cached,
                   figs[i].gbps_cached, figs[i].gbps_cached / mc);
        printf("]}\n");
    } else {
        printf("memcpy: %.2f GB/s (read + write); sgemm: %.1f GFLOP/s\n", mc, sg);
        printf("%-36s %8s %10s %10s %8s %7s %10s %9s %10s\n", "artifact", "Mparams", "s/switch", "s/back",
               "GB/s", "ratio", "fp32 s/sw", "adpGFLOP", "sgemm s");
        for (int i = 0; i < nf; i++)
            printf("%-36s %8.2f %10.6f %10.6f %8.2f %7.3f %10.6f %9.3f %10.6f\n", figs[i].name,
                   figs[i].params / 1e6, figs[i].sec_to, figs[i].sec_back, figs[i].gbps, figs[i].gbps / mc,
                   figs[i].fp32_sec, figs[i].flops / 1e9, figs[i].flops / (sg * 1e9));
        printf("(%d -> %d bits; GB/s = (base + adapter prefix + clipping read, codes + scales +\n"
               " zeros written) / s; memcpy counts read + write; 'sgemm s' = the adapter products\n"
               " alone at the measured sgemm rate, a floor for this algorithm)\n",
               from, to);
        printf("\nwith the adapted weights cached (elastic_switch_cache; W + Bd.Bu per distinct rank):\n");
        printf("%-36s %10s %10s %10s %8s %7s\n", "artifact", "build s", "cache MB", "s/switch", "GB/s",
               "ratio");
        for (int i = 0; i < nf; i++)
            printf("%-36s %10.4f %10.1f %10.6f %8.2f %7.3f\n", figs[i].name, figs[i].cache_sec,
                   figs[i].cache_bytes / 1e6, figs[i].sec_cached, figs[i].gbps_cached,
                   figs[i].gbps_cached / mc);
    }
    return 0;
}
