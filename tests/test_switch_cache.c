/* test_switch_cache.c — elastic_switch_cache: with the adapted weights
 * cached, switching gives the same codes, scales and zeros as without, byte
 * for byte, at every width and for a per-block mix (including a block whose
 * fallback dropped a width's adapters, and a layer wide enough that its rows
 * are prepared in several chunks); one buffer per distinct rank; a no-op
 * where it does not apply (rtn). */
#include <string.h>

#include "artifact/switch.h"
#include "check.h"
#include "fixtures.h"

static int build(ElasticModel *em, int dim, int hidden, int layers, QuantMethod method) {
    ModelConfig c = llama_config(dim, hidden, layers, 4, 2, 64, 16);
    QuantConfig qc;
    quant_config_default(&qc);
    qc.method = method;
    qc.rank_ref_width = 0;
    for (int k = 2; k <= 8; k++) qc.rank[k] = k <= 4 ? 8 : k <= 6 ? 4 : 2;
    Model m;
    QErr err = {{0}};
    if (model_init_random(&m, &c, 3, &err) != 0 || elastic_build_synthetic(em, &m, &qc, 5, &err) != 0) {
        fprintf(stderr, "build: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int same_switch(const SwitchedModel *a, const SwitchedModel *b) {
    for (int j = 0; j < a->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const SwitchedLinear *x = &a->lin[j][l], *y = &b->lin[j][l];
            size_t n = (size_t)x->out * x->in, ng = (size_t)x->out * x->ng;
            if (x->bits != y->bits || x->ng != y->ng || memcmp(x->codes, y->codes, n) ||
                memcmp(x->scales, y->scales, ng * sizeof(float)) ||
                memcmp(x->zeros, y->zeros, ng * sizeof(float)))
                return 0;
        }
    return 1;
}

static void check_artifact(ElasticModel *em, const char *what) {
    QErr err = {{0}};
    int L = em->cfg.n_layers, bits[8];
    SwitchedModel plain, cached;
    memset(&plain, 0, sizeof plain);
    memset(&cached, 0, sizeof cached);
    CHECK_MSG(elastic_switch_cache(em, &cached, &err) == 0, "%s", err.msg);
    CHECK_MSG(cached.merged != NULL, "%s: nothing cached", what);
    /* distinct ranks 8, 4, 2 per linear, minus what the fallback dropped */
    size_t per_layer = 0;
    for (int l = 0; l < N_LIN; l++) {
        int o, in;
        qblock_linear_shape(&em->cfg, l, &o, &in);
        per_layer += (size_t)o * in * sizeof(float);
    }
    size_t want = 0;
    for (int j = 0; j < L; j++) {
        int seen[9] = {0}, distinct = 0;
        for (int bi = 0; bi < em->qc.n_bits; bi++) {
            int r = em->params[j].lin[0].spec[bi].rank;
            if (r > 0 && !seen[r]) seen[r] = 1, distinct++;
        }
        want += (size_t)distinct * per_layer;
    }
    CHECK_MSG(cached.merged_bytes == want, "%s: cache of %zu bytes, expected %zu", what, cached.merged_bytes,
              want);
    for (int bi = 0; bi < em->qc.n_bits; bi++) {
        for (int j = 0; j < L; j++) bits[j] = em->qc.bits[bi];
        CHECK(elastic_switch_codes(em, bits, &plain, &err) == 0);
        CHECK(elastic_switch_codes(em, bits, &cached, &err) == 0);
        CHECK_MSG(same_switch(&plain, &cached), "%s: %d bits differ with the cache", what, bits[0]);
    }
    for (int j = 0; j < L; j++) bits[j] = em->qc.bits[(j * 3 + 1) % em->qc.n_bits]; /* a mix */
    CHECK(elastic_switch_codes(em, bits, &plain, &err) == 0);
    CHECK(elastic_switch_codes(em, bits, &cached, &err) == 0);
    CHECK_MSG(same_switch(&plain, &cached), "%s: the mix differs with the cache", what);
    switched_free(&plain);
    switched_free(&cached);
}

int main(void) {
    ElasticModel em;
    if (build(&em, 64, 160, 3, METHOD_QUEPT) != 0) return 1;
    check_artifact(&em, "small");
    /* block 1 at 3 bits: adapters dropped by the fallback (rank 0: not cached) */
    int bi3 = quant_bit_index(&em.qc, 3);
    qblock_set_choice(&em.params[1], bi3, QB_NO_ADAPTER);
    check_artifact(&em, "with a dropped width");
    elastic_free(&em);
    /* rows of 8192 floats: the row preparation runs in several chunks */
    if (build(&em, 128, 8192, 1, METHOD_QUEPT) != 0) return 1;
    check_artifact(&em, "chunked");
    elastic_free(&em);
    /* rtn: no adapters, nothing to cache */
    if (build(&em, 64, 160, 1, METHOD_RTN) != 0) return 1;
    SwitchedModel s;
    memset(&s, 0, sizeof s);
    QErr err = {{0}};
    CHECK(elastic_switch_cache(&em, &s, &err) == 0 && s.merged == NULL && s.merged_bytes == 0);
    switched_free(&s);
    elastic_free(&em);
    if (check_failures)
        fprintf(stderr, "%d check(s) failed\n", check_failures);
    else
        printf("switch cache: identical codes with and without the cache\n");
    return check_failures ? 1 : 0;
}
