/* stories260K logits against an independent PyTorch reference
 * (tests/ref/llama_ref.py, float64 math, golden file tests/data/
 * stories260K_logits.bin), and one-token decoding against the prefill. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "check.h"
#include "nn/forward.h"

int main(void) {
    char mpath[512];
    shared_path_or_skip("models/stories260K.bin", mpath, sizeof mpath);
    QErr err = {{0}};
    MappedFile g;
    CHECK_MSG(mapfile_open(&g, QUEPT_TEST_DATA "/stories260K_logits.bin", &err) == 0, "%s", err.msg);
    if (check_failures) return 1;
    uint32_t hdr[5];
    memcpy(hdr, g.data, sizeof hdr);
    CHECK(memcmp(g.data, "QLOG", 4) == 0 && hdr[1] == 1);
    int B = (int)hdr[2], T = (int)hdr[3], V = (int)hdr[4];
    size_t need = 20 + (size_t)B * T * 4 + (size_t)B * T * V * 4;
    CHECK(g.size == need);
    if (check_failures) return 1;
    int *tok = malloc(sizeof(int) * (size_t)B * T);
    memcpy(tok, g.data + 20, sizeof(int) * (size_t)B * T);
    float *ref = malloc(sizeof(float) * (size_t)B * T * V);
    memcpy(ref, g.data + 20 + sizeof(int) * (size_t)B * T, sizeof(float) * (size_t)B * T * V);

    Model m;
    CHECK_MSG(model_load(&m, mpath, &err) == 0, "%s", err.msg);
    if (check_failures) return 1;
    CHECK(m.cfg.vocab_size == V);
    ForwardState fs;
    CHECK(forward_state_init(&fs, &m.cfg, B, T, &err) == 0);
    model_forward(&m, &fs, tok);
    /* fp32 forward vs float64 reference: logits span about [-16, 20]; the
     * reference author measured llama2.c's own run.c at 7e-5 from it. */
    double max_d = 0.0;
    for (size_t i = 0; i < (size_t)B * T * V; i++) {
        double d = fabs((double)fs.logits[i] - ref[i]);
        if (d > max_d) max_d = d;
    }
    printf("max |logit - reference| = %.3g\n", max_d);
    CHECK_MSG(max_d < 2e-4, "max abs logit difference %g exceeds 2e-4", max_d);

    /* decoding with a KV cache gives the same logits as the prefill */
    DecodeState ds;
    CHECK(decode_state_init(&ds, &m.cfg, T, &err) == 0);
    double max_dd = 0.0;
    for (int t = 0; t < T; t++) {
        const float *lg = decode_step(&m, &ds, tok[t], t);
        for (int v = 0; v < V; v++) {
            double d = fabs((double)lg[v] - ref[(size_t)t * V + v]);
            if (d > max_dd) max_dd = d;
        }
    }
    printf("decode: max |logit - reference| = %.3g\n", max_dd);
    CHECK_MSG(max_dd < 2e-4, "decode max abs logit difference %g exceeds 2e-4", max_dd);
    decode_state_free(&ds);
    forward_state_free(&fs);
    model_free(&m);
    free(tok);
    free(ref);
    mapfile_close(&g);
    CHECK_DONE();
}
