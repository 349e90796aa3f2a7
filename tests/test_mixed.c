/* Mixed precision and inspection: the bit-assignment DP against brute force
 * on small random tables (non-uniform block sizes), exact averages when
 * reachable and the closest below when not, true bits per weight by hand;
 * a tiny calibration stores a KLD sensitivity table that loads back; an
 * artifact without one falls back to the loss proxy; `quept inspect` passes
 * on a good artifact and names the tensor of a flipped byte. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "artifact/elastic.h"
#include "artifact/mixed.h"
#include "base/mapfile.h"
#include "base/rng.h"
#include "check.h"
#include "data/tokens.h"
#include "fixtures.h"
#include "pipeline/calibrate.h"

static char tmpdir[256];

/* Every assignment: the largest total sum n_j b_j <= X * sum n_j, least cost there. */
static void brute(const double *cost, const long *n, int L, const int *bl, int nb, double X,
                  double *best_cost, double *best_avg) {
    long N = 0, total_pow = 1;
    for (int j = 0; j < L; j++) N += n[j], total_pow *= nb;
    long best_tot = -1;
    *best_cost = INFINITY;
    for (long code = 0; code < total_pow; code++) {
        long c2 = code, tot = 0;
        double cs = 0;
        for (int j = 0; j < L; j++) {
            int bi = (int)(c2 % nb);
            c2 /= nb;
            tot += n[j] * bl[bi];
            cs += cost[bi * L + j];
        }
        if ((double)tot > X * (double)N + 1e-9) continue;
        if (tot > best_tot || (tot == best_tot && cs < *best_cost)) {
            best_tot = tot;
            *best_cost = cs;
        }
    }
    *best_avg = (double)best_tot / (double)N;
}

static void test_dp_brute(void) {
    Rng rng;
    rng_seed(&rng, 42);
    QErr err = {{0}};
    for (int trial = 0; trial < 300; trial++) {
        int L = 1 + rng_int(&rng, 5), nb = 0, bl[7];
        while (nb < 2) { /* a random ascending subset of 2..8 with at least two widths */
            nb = 0;
            for (int b = 2; b <= 8; b++)
                if (rng_int(&rng, 2)) bl[nb++] = b;
        }
        long n[5];
        static const long sizes[] = {2, 3, 4, 6, 9, 10};
        for (int j = 0; j < L; j++) n[j] = sizes[rng_int(&rng, 6)] * 100;
        double cost[7 * 5];
        for (int i = 0; i < nb * L; i++) cost[i] = rng_uniform(&rng);
        double X;
        long N = 0;
        for (int j = 0; j < L; j++) N += n[j];
        if (trial % 2 == 0) {
            /* a reachable average: the DP must hit it exactly */
            long tot = 0;
            for (int j = 0; j < L; j++) tot += n[j] * bl[rng_int(&rng, nb)];
            X = (double)tot / (double)N;
        } else {
            X = bl[0] + (bl[nb - 1] - bl[0]) * rng_uniform(&rng);
        }
        int bits[5];
        double avg, bc, ba;
        CHECK_MSG(mixed_solve(cost, n, L, bl, nb, X, bits, &avg, &err) == 0, "%s", err.msg);
        brute(cost, n, L, bl, nb, X, &bc, &ba);
        double c = 0, tot = 0;
        for (int j = 0; j < L; j++) {
            int bi = 0;
            while (bi < nb && bl[bi] != bits[j]) bi++;
            CHECK_MSG(bi < nb, "trial %d: width %d not in the list", trial, bits[j]);
            if (bi < nb) c += cost[bi * L + j];
            tot += (double)n[j] * bits[j];
        }
        CHECK_CLOSE(avg, tot / (double)N, 1e-12, 0);
        CHECK_CLOSE(avg, ba, 1e-12, 0);
        CHECK_CLOSE(c, bc, 1e-9, 0);
        CHECK(avg <= X + 1e-9);
        if (trial % 2 == 0) CHECK_CLOSE(avg, X, 1e-12, 0);
    }
}

static void test_dp_edges(void) {
    QErr err = {{0}};
    int bl[2] = {2, 4}, bits[3];
    long n[2] = {5, 5};
    double cost[4] = {1.0, 2.0, 0.1, 0.1}, avg;
    /* reachable averages 2, 3, 4: 3.5 -> 3 (closest below), 3 exactly */
    CHECK(mixed_solve(cost, n, 2, bl, 2, 3.5, bits, &avg, &err) == 0);
    CHECK_CLOSE(avg, 3.0, 0, 0);
    /* block 1 is the more sensitive one at 2 bits: it gets the 4 */
    CHECK(bits[0] == 2 && bits[1] == 4);
    CHECK(mixed_solve(cost, n, 2, bl, 2, 2.9, bits, &avg, &err) == 0);
    CHECK_CLOSE(avg, 2.0, 0, 0);
    CHECK(mixed_solve(cost, n, 2, bl, 2, 4.0, bits, &avg, &err) == 0 && bits[0] == 4 && bits[1] == 4);
    CHECK(mixed_solve(cost, n, 2, bl, 2, 1.9, bits, &avg, &err) != 0 && strstr(err.msg, "outside"));
    CHECK(mixed_solve(cost, n, 2, bl, 2, 4.5, bits, &avg, &err) != 0 && strstr(err.msg, "outside"));
    /* non-uniform sizes: n = {1, 3} with widths {2, 4}: totals 8, 10, 14, 16 of 4 -> 2, 2.5, 3.5, 4 */
    long n2[2] = {100, 300};
    CHECK(mixed_solve(cost, n2, 2, bl, 2, 3.4, bits, &avg, &err) == 0);
    CHECK_CLOSE(avg, 2.5, 1e-15, 0);
    CHECK(bits[0] == 4 && bits[1] == 2);
}

static void test_bits_per_weight(void) {
    /* dim 32, hidden 48, 4 heads of 8, 2 kv heads: linears (out x in)
     * wq 32x32, wk 16x32, wv 16x32, wo 32x32, gate 48x32, up 48x32, down 32x48
     * -> n = 7680 per block. 2 bits, group 16: groups 64+32+32+64+96+96+96 =
     * 480 -> 2*7680 + 32*480 = 30720 bits. 4 bits per output channel: groups
     * = 224 rows -> 4*7680 + 32*224 = 37888 bits. */
    ElasticModel em;
    memset(&em, 0, sizeof em);
    em.cfg = tiny_config(2);
    quant_config_default(&em.qc);
    em.qc.group[2] = 16;
    em.qc.group[4] = 0;
    CHECK(mixed_block_params(&em.cfg, 0) == 7680);
    int b22[2] = {2, 2}, b24[2] = {2, 4};
    CHECK_CLOSE(true_bits_per_weight(&em, b22), 30720.0 / 7680.0, 1e-12, 0);
    CHECK_CLOSE(true_bits_per_weight(&em, b24), (30720.0 + 37888.0) / 15360.0, 1e-12, 0);
}

static void test_calibrated(void) {
    char model[512], data[512], a1[512], a2[512], a3[512], cmd[2048];
    snprintf(model, sizeof model, "%s/tiny.bin", tmpdir);
    snprintf(data, sizeof data, "%s/calib.qtok", tmpdir);
    snprintf(a1, sizeof a1, "%s/a1.qept", tmpdir);
    snprintf(a2, sizeof a2, "%s/nosens.qept", tmpdir);
    snprintf(a3, sizeof a3, "%s/flipped.qept", tmpdir);
    write_tiny(model, data, 3, 16, 16);
    QuantConfig qc;
    tiny_quant_config(&qc, 2);
    ElasticModel em;
    if (calibrate_and_load(model, data, a1, &qc, &em) != 0 || check_failures) return;
    QErr err = {{0}};
    CHECK_MSG(em.sens != NULL, "the artifact must store a sensitivity table");
    CHECK(strcmp(em.sens_measure, "kld") == 0);
    int L = em.cfg.n_layers, NB = em.qc.n_bits, dec = 0;
    double mean[QMAX_NBITS] = {0};
    for (int bi = 0; em.sens && bi < NB; bi++) {
        for (int j = 0; j < L; j++) {
            double v = em.sens[bi * L + j];
            CHECK_MSG(v >= 0.0 && isfinite(v), "sens[%d][%d] = %g", bi, j, v);
            mean[bi] += v / L;
        }
        printf("%d bits: mean KLD sensitivity %.6g\n", em.qc.bits[bi], mean[bi]);
        if (bi > 0 && mean[bi] < mean[bi - 1]) dec++;
    }
    CHECK_MSG(mean[0] > mean[NB - 1], "2-bit sensitivity must exceed 8-bit");
    CHECK_MSG(dec * 2 >= NB - 1, "sensitivity must mostly decrease with bits (%d of %d steps)", dec, NB - 1);
    int bits[8];
    double avg;
    CHECK_MSG(mixed_assign_bits(&em, 5.0, 0, bits, &avg, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(avg, 5.0, 1e-12, 0);
    CHECK(mixed_assign_bits(&em, 10.0 / 3.0, 1, bits, &avg, &err) == 0);
    CHECK_CLOSE(avg, 10.0 / 3.0, 1e-12, 0);

    /* an artifact without the table: loads, and mixed precision uses the proxy */
    free(em.sens);
    em.sens = NULL;
    CHECK_MSG(elastic_write(&em, a2, &err) == 0, "%s", err.msg);
    elastic_free(&em);
    CHECK_MSG(elastic_load(&em, a2, &err) == 0, "%s", err.msg);
    CHECK(em.sens == NULL);
    CHECK(mixed_assign_bits(&em, 4.0, 0, bits, &avg, &err) == 0);
    elastic_free(&em);
    int status;
    snprintf(cmd, sizeof cmd, "%s eval --artifact %s --avg-bits 3 --data %s --reference %s --json 2>&1",
             QUEPT_BIN, a2, data, model);
    char *out = run_capture(cmd, &status);
    CHECK_MSG(status == 0 && strstr(out, "proxy"), "eval without a table: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "%s eval --artifact %s --avg-bits 3.5 --data %s --reference %s --json 2>/dev/null", QUEPT_BIN,
             a1, data, model);
    out = run_capture(cmd, &status);
    cJSON *js = cJSON_Parse(out);
    CHECK_MSG(status == 0 && js, "eval --avg-bits --json: %s", out);
    if (js) {
        cJSON *b = cJSON_GetObjectItemCaseSensitive(js, "bits");
        CHECK(cJSON_IsArray(b) && cJSON_GetArraySize(b) == L);
        CHECK_CLOSE(cJSON_GetObjectItemCaseSensitive(js, "avg_bits")->valuedouble,
                    10.0 / 3.0 /* 3 blocks: 10.5 -> 10 of 3 */, 1e-8, 0);
        CHECK(cJSON_GetObjectItemCaseSensitive(js, "bits_per_weight")->valuedouble > 3.0);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(js, "ppl")));
        cJSON_Delete(js);
    }
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --artifact %s --avg-bits 9 --data %s 2>&1", QUEPT_BIN, a1, data);
    out = run_capture(cmd, &status);
    CHECK_MSG(status != 0 && strstr(out, "avg-bits"), "%s", out);
    free(out);

    /* inspect: ok, JSON, then a flipped byte inside one tensor section */
    snprintf(cmd, sizeof cmd, "%s inspect %s 2>&1", QUEPT_BIN, a1);
    out = run_capture(cmd, &status);
    CHECK_MSG(status == 0 && strstr(out, "checksums: ok") && strstr(out, "sensitivity (kld"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s inspect %s --json", QUEPT_BIN, a1);
    out = run_capture(cmd, &status);
    js = cJSON_Parse(out);
    CHECK_MSG(status == 0 && js, "inspect --json: %s", out);
    if (js) {
        cJSON *ck = cJSON_GetObjectItemCaseSensitive(js, "checksums");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ck, "ok")));
        cJSON *se = cJSON_GetObjectItemCaseSensitive(js, "sensitivity");
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(se, "measure")));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(se, "table")) == NB);
        cJSON *sto = cJSON_GetObjectItemCaseSensitive(js, "storage");
        CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sto, "adapters"), "stored")
                  ->valuedouble > 0);
        cJSON_Delete(js);
    }
    free(out);

    ArtReader *r;
    CHECK_MSG(art_open(&r, a1, &err) == 0, "%s", err.msg);
    int ti = art_find(r, "blk.1.w_up");
    CHECK(ti >= 0);
    uint64_t off = art_tensor_info(r, ti)->offset + art_tensor_info(r, ti)->stored_bytes / 2;
    int ti2 = art_find(r, "blk.2.wq"); /* a second bad section: inspect reports both */
    CHECK(ti2 >= 0);
    uint64_t off2 = art_tensor_info(r, ti2)->offset + art_tensor_info(r, ti2)->stored_bytes / 2;
    art_close(r);
    MappedFile mf;
    CHECK(mapfile_open(&mf, a1, &err) == 0);
    uint64_t H;
    memcpy(&H, (const uint8_t *)mf.data + 16, 8); /* little-endian host assumed, as the container */
    uint64_t data_start = (24 + H + 7) / 8 * 8;
    uint8_t *copy = malloc(mf.size);
    memcpy(copy, mf.data, mf.size);
    copy[data_start + off] ^= 0x10;
    copy[data_start + off2] ^= 0x01;
    FILE *f = fopen(a3, "wb");
    CHECK(f && fwrite(copy, 1, mf.size, f) == mf.size);
    if (f) fclose(f);
    free(copy);
    mapfile_close(&mf);
    snprintf(cmd, sizeof cmd, "%s inspect %s 2>&1", QUEPT_BIN, a3);
    out = run_capture(cmd, &status);
    CHECK_MSG(status != 0 && strstr(out, "checksums: FAILED: 2 of ") && strstr(out, "blk.2.wq"), "%s", out);
    free(out);
}

int main(void) {
    test_dp_edges();
    test_dp_brute();
    test_bits_per_weight();
    scratch_dir(tmpdir, sizeof tmpdir, "mixed");
    test_calibrated();
    scratch_remove(tmpdir);
    CHECK_DONE();
}
