/* Switching to integer codes and `quept export`:
 *  - elastic_switch_codes dequantizes bitwise to elastic_switch's weights
 *    (quept with partial groups, rtn, gptq; uniform and per-block widths),
 *    reuses its buffers on a re-switch, refuses widths not in the artifact;
 *  - safetensors-fp16 loads back (our HF loader) with the logits of the
 *    switched model rounded to F16;
 *  - safetensors-int unpacks (GPTQ v2 layout, HF q/k order) to the switched
 *    weights up to the F16 rounding of the scales;
 *  - gguf parses with an independent reader (@huggingface/gguf, via node;
 *    skipped with a message when absent), has llama.cpp's metadata, names,
 *    shapes and types, and its Q4_1 / Q5_1 blocks decode to the switched
 *    weights up to F16 rounding of d and m;
 *  - bad input: unknown format, widths not in the artifact, widths the int
 *    packing does not support, Q4_1 requested where the grid does not map;
 *  - a power-of-two artifact exports to safetensors-fp16 (logits as above)
 *    and safetensors-int / gguf refuse it, naming the cause. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifact/switch.h"
#include "check.h"
#include "model/safetensors.h"
#include "nn/forward.h"

static char tmpdir[256];

static char *run(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, len = 0, r;
    char *buf = malloc(cap);
    while ((r = fread(buf + len, 1, cap - 1 - len, p)) > 0) len += r;
    buf[len] = 0;
    *status = pclose(p);
    return buf;
}

static int run_status(const char *cmd) {
    int st;
    free(run(cmd, &st));
    return st;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static ModelConfig small_cfg(int layers) {
    ModelConfig c = {.dim = 64, .hidden_dim = 128, .n_layers = layers, .n_heads = 4, .n_kv_heads = 2,
                     .head_dim = 16, .vocab_size = 96, .seq_len = 32, .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f, .tied_classifier = 1};
    return c;
}

/* bits {2,3,4,5,6,8}: 7 is deliberately absent */
static void small_qc(QuantConfig *qc, QuantMethod method) {
    quant_config_default(qc);
    qc->method = method;
    int b[6] = {2, 3, 4, 5, 6, 8};
    qc->n_bits = 6;
    memcpy(qc->bits, b, sizeof b);
    qc->rank_ref_width = 0;
    for (int k = 2; k <= 8; k++) qc->rank[k] = k <= 4 ? 8 : k <= 6 ? 4 : 2;
}

static void build(ElasticModel *em, const ModelConfig *c, const QuantConfig *qc, uint64_t seed) {
    Model m;
    QErr err = {{0}};
    CHECK_MSG(model_init_random(&m, c, seed, &err) == 0, "%s", err.msg);
    CHECK_MSG(elastic_build_synthetic(em, &m, qc, seed, &err) == 0, "%s", err.msg);
}

/* codes dequantized == elastic_switch, bitwise, for every linear */
static void check_switch_equal(const ElasticModel *em, const int *bits, SwitchedModel *sw, Model *q,
                               const char *what) {
    QErr err = {{0}};
    CHECK_MSG(elastic_switch_codes(em, bits, sw, &err) == 0, "%s", err.msg);
    CHECK_MSG(elastic_switch(em, bits, q, &err) == 0, "%s", err.msg);
    for (int j = 0; j < em->cfg.n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const SwitchedLinear *sl = &sw->lin[j][l];
            size_t n = (size_t)sl->out * sl->in;
            float *w = malloc(n * sizeof(float));
            switched_dequantize(sl, w);
            CHECK_MSG(memcmp(w, qblock_linear_weight(&q->blocks[j], l), n * sizeof(float)) == 0,
                      "%s: block %d %s at %d bits: dequantized codes differ from elastic_switch", what,
                      j, LIN_NAMES[l], bits[j]);
            int qmax = (1 << bits[j]) - 1, bad = 0;
            for (size_t i = 0; i < n; i++) bad += sl->codes[i] > qmax;
            CHECK_MSG(bad == 0, "%s: codes above %d", what, qmax);
            CHECK(sl->bits == bits[j]);
            free(w);
        }
}

static void test_switch_codes(void) {
    QuantMethod ms[3] = {METHOD_QUEPT, METHOD_RTN, METHOD_GPTQ};
    for (int mi = 0; mi < 3; mi++) {
        ModelConfig c = small_cfg(2);
        c.dim = 48; /* with group 32 at 2-4 bits: a short last group in dim-wide rows */
        c.head_dim = 12;
        QuantConfig qc;
        small_qc(&qc, ms[mi]);
        for (int b = 2; b <= 4; b++) qc.group[b] = 32;
        ElasticModel em;
        build(&em, &c, &qc, 11 + mi);
        SwitchedModel sw = {0};
        Model q = {0};
        for (int bi = 0; bi < qc.n_bits; bi++) {
            int bits[2] = {qc.bits[bi], qc.bits[bi]};
            check_switch_equal(&em, bits, &sw, &q, quant_method_name(ms[mi]));
        }
        uint8_t *codes0 = sw.lin[1][LIN_DOWN].codes;
        float *sc0 = sw.lin[1][LIN_DOWN].scales;
        int mixed[2] = {2, 5};
        check_switch_equal(&em, mixed, &sw, &q, "mixed");
        CHECK(sw.lin[1][LIN_DOWN].codes == codes0 && sw.lin[1][LIN_DOWN].scales == sc0);
        CHECK(sw.lin[0][LIN_Q].bits == 2 && sw.lin[1][LIN_Q].bits == 5);
        /* a width not in the artifact: refused, output unchanged */
        int bad[2] = {7, 7};
        QErr err = {{0}};
        CHECK(elastic_switch_codes(&em, bad, &sw, &err) != 0);
        CHECK_MSG(strstr(err.msg, "7 bits is not in the artifact") != NULL, "%s", err.msg);
        CHECK(sw.bits[0] == 2 && sw.bits[1] == 5);
        switched_free(&sw);
        model_free(&q);
        elastic_free(&em);
    }
}

/* ---------------- CLI export ---------------- */

static float *logits_of(const Model *m, const int *tok, int B, int T) {
    QErr err;
    ForwardState fs;
    if (forward_state_init(&fs, &m->cfg, B, T, &err) != 0) return NULL;
    model_forward(m, &fs, tok);
    size_t n = (size_t)B * T * m->cfg.vocab_size;
    float *out = malloc(n * sizeof(float));
    memcpy(out, fs.logits, n * sizeof(float));
    forward_state_free(&fs);
    return out;
}

static float r16(float x) { return f16_to_float(float_to_f16(x)); }

static void test_fp16(const ElasticModel *em, const char *art) {
    char dir[512], cmd[2048];
    snprintf(dir, sizeof dir, "%s/fp16", tmpdir);
    snprintf(cmd, sizeof cmd, "%s export %s --bits 3 --format safetensors-fp16 --out %s 2>&1", QUEPT_BIN, art, dir);
    CHECK_MSG(run_status(cmd) == 0, "%s", cmd);
    QErr err = {{0}};
    Model ld = {0}, q = {0};
    CHECK_MSG(model_load(&ld, dir, &err) == 0, "%s", err.msg);
    int bits[2] = {3, 3};
    CHECK(elastic_switch(em, bits, &q, &err) == 0);
    const ModelConfig *c = &em->cfg;
    /* the switched model rounded to F16 (own copies of the shared tensors) */
    size_t ne = (size_t)c->vocab_size * c->dim;
    float *emb = malloc(ne * sizeof(float)), *fn = malloc((size_t)c->dim * sizeof(float));
    for (size_t i = 0; i < ne; i++) emb[i] = r16(em->base.tok_emb[i]);
    for (int i = 0; i < c->dim; i++) fn[i] = r16(em->base.final_norm[i]);
    q.tok_emb = q.classifier = emb;
    q.final_norm = fn;
    for (int j = 0; j < c->n_layers; j++) {
        float *a = q.blocks[j].attn_norm;
        for (size_t i = 0; i < block_weights_numel(c); i++) a[i] = r16(a[i]);
    }
    int T = 16, tok[16];
    for (int t = 0; t < T; t++) tok[t] = (t * 7 + 3) % c->vocab_size;
    float *a = ld.blocks ? logits_of(&ld, tok, 1, T) : NULL, *b = logits_of(&q, tok, 1, T);
    double d = 0;
    for (size_t i = 0; a && i < (size_t)T * c->vocab_size; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    CHECK_MSG(a && d < 1e-4, "F16 export vs switched model rounded to F16: max |logit diff| = %g", d);
    free(a);
    free(b);
    model_free(&q); /* frees emb (tok_emb) and fn */
    model_free(&ld);
}

/* HF row r of a q/k linear ← our (interleaved) row */
static int hf_src(const ModelConfig *c, int l, int r) {
    if (l != LIN_Q && l != LIN_K) return r;
    int hd = c->head_dim, h = hd / 2, i = r % hd;
    return r / hd * hd + (i < h ? 2 * i : 2 * (i - h) + 1);
}

static void test_int(const ElasticModel *em, const char *art) {
    char dir[512], cmd[2048], path[600];
    snprintf(dir, sizeof dir, "%s/int4", tmpdir);
    snprintf(cmd, sizeof cmd, "%s export %s --bits 4 --format safetensors-int --out %s 2>&1", QUEPT_BIN, art, dir);
    CHECK_MSG(run_status(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    char *cj = slurp(path, &n);
    cJSON *root = cj ? cJSON_Parse(cj) : NULL;
    cJSON *qcfg = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    CHECK_MSG(qcfg != NULL, "config.json has no quantization_config");
    cJSON *bits_j = cJSON_GetObjectItemCaseSensitive(qcfg, "bits");
    CHECK(cJSON_IsNumber(bits_j) && bits_j->valueint == 4);
    cJSON_Delete(root);
    free(cj);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensors st;
    QErr err = {{0}};
    if (st_open(&st, path, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    SwitchedModel sw = {0};
    int bits[2] = {4, 4};
    CHECK(elastic_switch_codes(em, bits, &sw, &err) == 0);
    static const char *hf[N_LIN] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                    "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    const int pf = 8;
    for (int j = 0; j < em->cfg.n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const SwitchedLinear *sl = &sw.lin[j][l];
            char nm[200];
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qweight", j, hf[l]);
            const StTensor *tw = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qzeros", j, hf[l]);
            const StTensor *tz = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.scales", j, hf[l]);
            const StTensor *ts = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.g_idx", j, hf[l]);
            const StTensor *tg = st_find(&st, nm);
            CHECK_MSG(tw && tz && ts && tg, "block %d %s: missing tensors", j, hf[l]);
            if (!tw || !tz || !ts || !tg) continue;
            CHECK(tw->dtype == ST_I32 && tw->shape[0] == sl->in / pf && tw->shape[1] == sl->out);
            CHECK(tz->dtype == ST_I32 && tz->shape[0] == sl->ng && tz->shape[1] == sl->out / pf);
            CHECK(ts->dtype == ST_F16 && ts->shape[0] == sl->ng && ts->shape[1] == sl->out);
            const uint32_t *qw = (const uint32_t *)(st.data + tw->begin);
            const uint32_t *qz = (const uint32_t *)(st.data + tz->begin);
            const uint16_t *sc = (const uint16_t *)(st.data + ts->begin);
            const int32_t *gi = (const int32_t *)(st.data + tg->begin);
            int bad = 0;
            for (int r = 0; r < sl->out; r++) {
                int o = hf_src(&em->cfg, l, r);
                for (int i = 0; i < sl->in; i++) {
                    int g = gi[i];
                    uint32_t code = (qw[(size_t)(i / pf) * sl->out + r] >> (4 * (i % pf))) & 15;
                    uint32_t z = (qz[(size_t)g * (sl->out / pf) + r / pf] >> (4 * (r % pf))) & 15;
                    float s = f16_to_float(sc[(size_t)g * sl->out + r]);
                    float v = ((float)code - (float)z) * s;
                    size_t gk = (size_t)o * sl->ng + i / sl->group;
                    float expect = ((float)sl->codes[(size_t)o * sl->in + i] - sl->zeros[gk]) * r16(sl->scales[gk]);
                    bad += g != i / sl->group || v != expect;
                }
            }
            CHECK_MSG(bad == 0, "block %d %s: %d weights differ after unpacking", j, hf[l], bad);
        }
    switched_free(&sw);
    st_close(&st);
}

static cJSON *find_tensor(cJSON *tensors, const char *name) {
    cJSON *t;
    cJSON_ArrayForEach(t, tensors) {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return t;
    }
    return NULL;
}

/* Decodes one Q4_1 / Q5_1 linear from the file and compares with the switch. */
static void check_gguf_linear(const char *file_bytes, size_t data_off, cJSON *t, const SwitchedLinear *sl,
                              const char *name) {
    const char *type = cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring;
    size_t off = data_off + (size_t)cJSON_GetObjectItemCaseSensitive(t, "offset")->valuedouble;
    int q5 = strcmp(type, "Q5_1") == 0;
    const uint8_t *p = (const uint8_t *)file_bytes + off;
    int bad = 0;
    if (strcmp(type, "Q8_0") == 0) { /* d, then 32 int8 q = code - zero */
        for (int o = 0; o < sl->out; o++)
            for (int k = 0; k < sl->in / 32; k++, p += 34) {
                uint16_t dh;
                memcpy(&dh, p, 2);
                for (int i = 0; i < 32; i++) {
                    int col = 32 * k + i;
                    size_t gk = (size_t)o * sl->ng + col / sl->group;
                    int q = (int)(int8_t)p[2 + i];
                    float w = ((float)sl->codes[(size_t)o * sl->in + col] - sl->zeros[gk]) * sl->scales[gk];
                    float v = (float)q * f16_to_float(dh);
                    bad += q != (int)sl->codes[(size_t)o * sl->in + col] - (int)sl->zeros[gk] ||
                           v != (float)q * r16(sl->scales[gk]) || fabsf(v - w) > 1e-3f * fabsf(w) + 1e-7f;
                }
            }
        CHECK_MSG(bad == 0, "%s (Q8_0): %d weights differ", name, bad);
        return;
    }
    for (int o = 0; o < sl->out; o++)
        for (int k = 0; k < sl->in / 32; k++) {
            uint16_t dh, mh;
            memcpy(&dh, p, 2);
            memcpy(&mh, p + 2, 2);
            float d = f16_to_float(dh), m = f16_to_float(mh);
            uint32_t qh = 0;
            if (q5) memcpy(&qh, p + 4, 4);
            const uint8_t *qs = p + (q5 ? 8 : 4);
            for (int i = 0; i < 32; i++) {
                int q = i < 16 ? qs[i] & 15 : qs[i - 16] >> 4;
                if (q5) q |= (int)((qh >> i) & 1) << 4;
                int col = 32 * k + i;
                size_t gk = (size_t)o * sl->ng + col / sl->group;
                float w = ((float)sl->codes[(size_t)o * sl->in + col] - sl->zeros[gk]) * sl->scales[gk];
                float v = q * d + m;
                bad += q != sl->codes[(size_t)o * sl->in + col] ||
                       fabsf(v - w) > 2e-3f * (fabsf(sl->scales[gk]) * (1 << sl->bits) + fabsf(w));
            }
            p += q5 ? 24 : 20;
        }
    CHECK_MSG(bad == 0, "%s (%s): %d weights differ", name, type, bad);
}

static void test_gguf(const ElasticModel *em, const char *art, int b0, int b1, const char *t0,
                      const char *t1) {
    char out[512], cmd[4096];
    snprintf(out, sizeof out, "%s/m%d%d.gguf", tmpdir, b0, b1);
    snprintf(cmd, sizeof cmd, "%s export %s --bits %d,%d --format gguf --out %s 2>&1", QUEPT_BIN, art,
             b0, b1, out);
    CHECK_MSG(run_status(cmd) == 0, "%s", cmd);
    char check[512];
    snprintf(check, sizeof check, "%s/gguf_check/check.mjs", QUEPT_TEST_DATA "/..");
    char mod[600];
    snprintf(mod, sizeof mod, "%s/gguf_check/node_modules/@huggingface/gguf/package.json", QUEPT_TEST_DATA "/..");
    if (run_status("node --version > /dev/null 2>&1") != 0 || access(mod, R_OK) != 0) {
        fprintf(stderr, "NOTE: independent GGUF check skipped: node or @huggingface/gguf missing "
                        "(npm install --prefix tests/gguf_check)\n");
        return;
    }
    snprintf(cmd, sizeof cmd, "node %s %s", check, out);
    int st;
    char *js = run(cmd, &st);
    CHECK_MSG(st == 0, "%s failed", cmd);
    cJSON *root = cJSON_Parse(js);
    free(js);
    CHECK_MSG(root != NULL, "check.mjs printed no JSON");
    if (!root) return;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const ModelConfig *c = &em->cfg;
    struct { const char *k; double v; } want[] = {
        {"llama.context_length", c->seq_len}, {"llama.embedding_length", c->dim},
        {"llama.block_count", c->n_layers}, {"llama.feed_forward_length", c->hidden_dim},
        {"llama.attention.head_count", c->n_heads}, {"llama.attention.head_count_kv", c->n_kv_heads},
        {"llama.rope.freq_base", c->rope_theta}, {"llama.attention.layer_norm_rms_epsilon", c->norm_eps},
        {"version", 3}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(md, want[i].k);
        CHECK_MSG(cJSON_IsNumber(v) && fabs(v->valuedouble - want[i].v) <= 1e-6 * fabs(want[i].v),
                  "metadata %s", want[i].k);
    }
    cJSON *arch = cJSON_GetObjectItemCaseSensitive(md, "general.architecture");
    CHECK(cJSON_IsString(arch) && strcmp(arch->valuestring, "llama") == 0);
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    CHECK(cJSON_GetArraySize(tensors) == 2 + c->n_layers * 9);
    size_t fsz;
    char *bytes = slurp(out, &fsz);
    size_t data_off = (size_t)cJSON_GetObjectItemCaseSensitive(root, "tensor_data_offset")->valuedouble;
    CHECK(data_off % 32 == 0);
    cJSON *te = find_tensor(tensors, "token_embd.weight");
    CHECK(te && strcmp(cJSON_GetObjectItemCaseSensitive(te, "type")->valuestring, "F16") == 0);
    CHECK(find_tensor(tensors, "output_norm.weight") != NULL);
    SwitchedModel sw = {0};
    int bits[2] = {b0, b1};
    QErr err = {{0}};
    CHECK(elastic_switch_codes(em, bits, &sw, &err) == 0);
    static const char *gl[N_LIN] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            char nm[96];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", j, gl[l]);
            cJSON *t = find_tensor(tensors, nm);
            CHECK_MSG(t != NULL, "missing %s", nm);
            if (!t) continue;
            const char *type = cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring;
            CHECK_MSG(strcmp(type, j == 0 ? t0 : t1) == 0, "%s is %s", nm, type);
            cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
            CHECK(cJSON_GetArrayItem(shape, 0)->valueint == sw.lin[j][l].in &&
                  cJSON_GetArrayItem(shape, 1)->valueint == sw.lin[j][l].out);
            /* llama.cpp's q/k order is interleaved, which this (llama2.c-style) model already has */
            check_gguf_linear(bytes, data_off, t, &sw.lin[j][l], nm);
        }
    switched_free(&sw);
    free(bytes);
    cJSON_Delete(root);
}

static void expect_fail(const char *args, const char *needle) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s export %s 2>&1", QUEPT_BIN, args);
    int st;
    char *o = run(cmd, &st);
    CHECK_MSG(st != 0, "'%s' should fail", cmd);
    CHECK_MSG(o && strstr(o, needle), "'%s': expected '%s' in: %s", cmd, needle, o ? o : "");
    free(o);
}

int main(void) {
    test_switch_codes();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/quept_export_XXXXXX");
    if (!mkdtemp(tmpdir)) SKIP("no temp dir");
    ModelConfig c = small_cfg(2);
    QuantConfig qc;
    small_qc(&qc, METHOD_QUEPT);
    ElasticModel em;
    build(&em, &c, &qc, 5);
    char art[512];
    snprintf(art, sizeof art, "%s/a.qept", tmpdir);
    QErr err = {{0}};
    CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
    test_fp16(&em, art);
    test_int(&em, art);
    test_gguf(&em, art, 4, 5, "Q4_1", "Q5_1");
    test_gguf(&em, art, 6, 2, "Q8_0", "Q4_1");
    char a[4096], o[600];
    snprintf(o, sizeof o, "%s/x", tmpdir);
    snprintf(a, sizeof a, "%s --bits 4 --format onnx --out %s", art, o);
    expect_fail(a, "unknown --format 'onnx'");
    snprintf(a, sizeof a, "%s --bits 7 --format gguf --out %s", art, o);
    expect_fail(a, "7 bits is not in the artifact");
    snprintf(a, sizeof a, "%s --bits 3 --format safetensors-int --out %s", art, o);
    expect_fail(a, "3 bits is not supported");
    snprintf(a, sizeof a, "%s --bits 2,4 --format safetensors-int --out %s", art, o);
    expect_fail(a, "one width for every block");
    snprintf(a, sizeof a, "%s --bits 6 --format gguf --gguf-type q4_1 --out %s", art, o);
    expect_fail(a, "cannot be stored as Q4_1 exactly");
    snprintf(a, sizeof a, "%s --bits 2,2,2 --format gguf --out %s", art, o);
    expect_fail(a, "more widths than the 2 blocks");
    snprintf(a, sizeof a, "%s/x.gguf", tmpdir);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s export %s --bits 6 --format gguf --gguf-type q4_1 --force --out %s 2>&1",
             QUEPT_BIN, art, a);
    CHECK_MSG(run_status(cmd) == 0, "--force should store unmappable linears as F16: %s", cmd);
    /* mixed precision: one width per block from --avg-bits */
    snprintf(cmd, sizeof cmd, "%s export %s --avg-bits 3.5 --proxy --format gguf --out %s 2>&1", QUEPT_BIN, art, a);
    int st;
    char *outp = run(cmd, &st);
    CHECK_MSG(st == 0 && outp && strstr(outp, "average 3.5"), "--avg-bits export: %s", outp ? outp : "");
    free(outp);
    snprintf(a, sizeof a, "%s --avg-bits 3.5 --bits 3 --format gguf --out %s", art, o);
    expect_fail(a, "exclude each other");
    elastic_free(&em);

    /* power-of-two artifact: the F16 export carries the switched (±s·2^E)
     * weights; the integer formats refuse it, naming the cause */
    QuantConfig pq;
    small_qc(&pq, METHOD_QUEPT);
    pq.format = QFORMAT_POT;
    CHECK(quant_parse_bits(&pq, "2-5", &err) == 0);
    build(&em, &c, &pq, 6);
    snprintf(art, sizeof art, "%s/pot.qept", tmpdir);
    CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
    test_fp16(&em, art);
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-int --out %s", art, o);
    expect_fail(a, "holds power-of-two codes");
    snprintf(a, sizeof a, "%s --bits 4 --format gguf --out %s", art, o);
    expect_fail(a, "use --format safetensors-fp16");
    elastic_free(&em);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    CHECK_DONE();
}
