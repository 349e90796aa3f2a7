/* Switching to integer codes, and the export writers (export.h, called as
 * `quept export` calls them; what only the command line does runs the
 * binary: --format and --bits parsing, --avg-bits, option conflicts, the
 * power-of-two refusal):
 *  - elastic_switch_codes dequantizes bitwise to elastic_switch's weights
 *    (quept with partial groups, rtn, gptq; uniform and per-block widths),
 *    reuses its buffers on a re-switch, refuses widths not in the artifact;
 *  - safetensors-fp16 loads back (our HF loader) with the logits of the
 *    switched model rounded to F16, q/k/v biases included;
 *  - safetensors-int at every width 2..8 unpacks (read independently:
 *    GPTQ's 32/b codes per word for 2/4/8, AutoGPTQ's 3-bit pack transcribed,
 *    GPTQModel's planar gptq_p planes for 5/6/7 and for 3 under gptq_p; v1
 *    zero points plus one) to the switched codes, zero points and F16
 *    scales, q/k rows in HF order; q/k/v biases as F16; config format keys;
 *    quept's reader gives (code - zero) * scale exactly; the checkpoint
 *    formats a loader would misread (gptq / gptq_v2 at 5-7 bits, v1 with a
 *    zero point 0 or dims not multiples of 32, planar with such dims) are
 *    refused, and so are a 5-bit export of an earlier quept and packed
 *    linears without a GPTQ config (tests/test_gptq_loaders.c reads the
 *    exports as the loaders do);
 *  - gguf parses with an independent reader (@huggingface/gguf, via node;
 *    skipped with a message when absent), has llama.cpp's metadata (value
 *    types too), names, shapes and types, and its Q4_1 / Q5_1 / Q8_0 blocks
 *    decode to the switched weights up to F16 rounding of d and m; a model
 *    with biases is arch qwen2 with F32 biases in qwen2's (halves) row order;
 *    without --tokenizer it warns and has no tokenizer keys; with the Llama 2
 *    tokenizer on a vocab-32000 model every token, score and type matches;
 *  - bad input: unknown format, widths not in the artifact, shapes the int
 *    packing does not support, an unknown --checkpoint-format, Q4_1 requested where the grid does not
 *    map, a tokenizer whose size is not the vocab's, --tokenizer off gguf;
 *  - a power-of-two artifact exports to safetensors-fp16 (logits as above)
 *    and safetensors-int / gguf refuse it, naming the cause. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifact/mixed.h"
#include "artifact/switch.h"
#include "check.h"
#include "data/tokenizer.h"
#include "engine/qblock.h"
#include "export/export.h"
#include "fixtures.h"
#include "gguf_json.h"
#include "model/gptq_layout.h"
#include "model/safetensors.h"
#include "nn/forward.h"
#include "quant/ggml_quant.h"

static char tmpdir[256];

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

/* What the process writes to stderr from stderr_begin to stderr_end
 * (malloc'd): the writers' log lines. */
static int stderr_begin(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/stderr.log", tmpdir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved >= 0 && fd >= 0) dup2(fd, 2);
    if (fd >= 0) close(fd);
    return saved;
}
static char *stderr_end(int saved) {
    char path[300];
    snprintf(path, sizeof path, "%s/stderr.log", tmpdir);
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    size_t n;
    return slurp(path, &n);
}

/* `quept export` without its command line: the artifact file art loaded,
 * switched to bits (one width per block) and written by fmt's writer; go:
 * the GGUF options (NULL: none); log (if not NULL): what the writers logged.
 * 0, or -1 with err. */
static int export_art(const char *art, const char *fmt, const int *bits, const char *out,
                      const GgufOptions *go, char **log, QErr *err) {
    ElasticModel em;
    if (elastic_load(&em, art, err) != 0) return -1;
    int saved = log ? stderr_begin() : -1;
    SwitchedModel sw = {0};
    GgufOptions none = {0};
    int rc;
    if (strcmp(fmt, "safetensors-fp16") == 0) {
        rc = export_fp16(&em, bits, out, err);
    } else {
        rc = elastic_switch_codes(&em, bits, &sw, err);
        if (rc == 0)
            rc = strcmp(fmt, "gguf") == 0 ? export_gguf(&em, &sw, out, go ? go : &none, err)
                                          : export_int(&em, &sw, NULL, out, err);
    }
    if (log) *log = stderr_end(saved);
    switched_free(&sw);
    elastic_free(&em);
    return rc;
}

/* safetensors-int in checkpoint format ckpt (NULL: the default). */
static int export_art_fmt(const char *art, const int *bits, const char *ckpt, const char *out, QErr *err) {
    ElasticModel em;
    if (elastic_load(&em, art, err) != 0) return -1;
    SwitchedModel sw = {0};
    int rc = elastic_switch_codes(&em, bits, &sw, err);
    if (rc == 0) rc = export_int(&em, &sw, ckpt, out, err);
    switched_free(&sw);
    elastic_free(&em);
    return rc;
}

static void expect_int_fail(const char *art, const int *bits, const char *ckpt, const char *needle) {
    char out[600];
    snprintf(out, sizeof out, "%s/x", tmpdir);
    QErr err = {{0}};
    CHECK_MSG(export_art_fmt(art, bits, ckpt, out, &err) != 0, "export %s as %s should fail", art,
              ckpt ? ckpt : "default");
    CHECK_MSG(strstr(err.msg, needle), "export %s as %s: expected '%s' in: %s", art, ckpt ? ckpt : "default",
              needle, err.msg);
    CHECK_MSG(access(out, F_OK) != 0, "a refused export (%s) left %s behind", needle, out);
}

static void expect_export_fail(const char *art, const char *fmt, const int *bits, const GgufOptions *go,
                               const char *needle) {
    char out[600];
    snprintf(out, sizeof out, "%s/x", tmpdir);
    QErr err = {{0}};
    int rc = export_art(art, fmt, bits, out, go, NULL, &err);
    CHECK_MSG(rc != 0, "export %s as %s should fail", art, fmt);
    CHECK_MSG(strstr(err.msg, needle), "export %s as %s: expected '%s' in: %s", art, fmt, needle, err.msg);
    CHECK_MSG(access(out, F_OK) != 0, "a refused export (%s) left %s behind", needle, out);
}

static ModelConfig small_cfg(int layers) { return llama_config(64, 128, layers, 4, 2, 96, 32); }

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
                      "%s: block %d %s at %d bits: dequantized codes differ from elastic_switch", what, j,
                      LIN_NAMES[l], bits[j]);
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

/* ---------------- export ---------------- */

static float r16(float x) { return f16_to_float(float_to_f16(x)); }

/* Our row of row r of a q/k linear (or bias) written in HF's halves order
 * (halves = 1) or the interleaved order (halves = 0). */
static int row_src(const ModelConfig *c, int l, int r, int halves) {
    if ((l != LIN_Q && l != LIN_K) || c->rope_halves == halves) return r;
    int hd = c->head_dim, h = hd / 2, i = r % hd;
    if (halves) return r / hd * hd + (i < h ? 2 * i : 2 * (i - h) + 1); /* HF row i <- interleaved */
    return r / hd * hd + (i % 2 ? h + i / 2 : i / 2);                   /* interleaved row i <- HF */
}
static int hf_src(const ModelConfig *c, int l, int r) { return row_src(c, l, r, 1); }

static const float *bias_of(const BlockWeights *bw, int l) {
    return l == LIN_Q ? bw->bq : l == LIN_K ? bw->bk : l == LIN_V ? bw->bv : NULL;
}

static void test_fp16(const ElasticModel *em, const char *art) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fp16", tmpdir);
    int bits[2] = {3, 3};
    QErr err = {{0}};
    CHECK_MSG(export_art(art, "safetensors-fp16", bits, dir, NULL, NULL, &err) == 0, "export %s to %s: %s",
              art, dir, err.msg);
    Model ld = {0}, q = {0};
    CHECK_MSG(model_load(&ld, dir, &err) == 0, "%s", err.msg);
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
    CHECK(ld.cfg.has_qkv_bias == c->has_qkv_bias);
    for (int j = 0; c->has_qkv_bias && ld.blocks && j < c->n_layers; j++)
        for (int l = LIN_Q; l <= LIN_V; l++) {
            const float *got = bias_of(&ld.blocks[j], l), *src = bias_of(&em->base.blocks[j], l);
            int n = (l == LIN_Q ? c->n_heads : c->n_kv_heads) * c->head_dim, bad = 0;
            for (int r = 0; got && r < n; r++) bad += got[r] != r16(src[hf_src(c, l, r)]);
            CHECK_MSG(got && bad == 0, "F16 export: block %d %s bias: %d values differ", j, LIN_NAMES[l],
                      bad);
        }
    free(a);
    free(b);
    model_free(&q); /* frees emb (tok_emb) and fn */
    model_free(&ld);
}

/* Independent readings of the int32 words (docs/formats.md, "safetensors-int packing"):
 * 2/4/8 bits, GPTQ's pf = 32/b codes per word, code k at bits (k % pf)*b */
static uint32_t unpack_pf(const uint32_t *w, size_t stride, int k, int b) {
    int pf = 32 / b;
    return (w[(size_t)(k / pf) * stride] >> (b * (k % pf))) & ((1u << b) - 1);
}
/* 3 bits, AutoGPTQ's pack loop transcribed: 32 codes in 3 words;
 * w0: codes 0..9 at 3m, code 10 bits 0-1 at bits 30-31;
 * w1: code 10 bit 2 at bit 0, codes 11..20 at 3m+1, code 21 bit 0 at bit 31;
 * w2: code 21 bits 1-2 at bits 0-1, codes 22..31 at 3m+2 */
static uint32_t unpack_gptq3(const uint32_t *w, size_t stride, int k) {
    const uint32_t *g = w + (size_t)(k / 32) * 3 * stride;
    uint32_t w0 = g[0], w1 = g[stride], w2 = g[2 * stride];
    int m = k % 32;
    if (m < 10) return (w0 >> (3 * m)) & 7;
    if (m == 10) return (w0 >> 30) | ((w1 & 1) << 2);
    if (m < 21) return (w1 >> (3 * (m - 11) + 1)) & 7;
    if (m == 21) return (w1 >> 31) | ((w2 & 3) << 1);
    return (w2 >> (3 * (m - 22) + 2)) & 7;
}
/* GPTQModel's planar gptq_p words: a block of 32 codes in b words, the
 * planes low bits first, each (width w, bit offset off) in w words starting
 * at word off of the block, 32/w codes per word in code order */
static uint32_t unpack_planar(const uint32_t *w, size_t stride, int k, int b) {
    static const int planes[9][3][2] = {
        [2] = {{2, 0}},         [3] = {{2, 0}, {1, 2}},         [4] = {{4, 0}}, [5] = {{4, 0}, {1, 4}},
        [6] = {{4, 0}, {2, 4}}, [7] = {{4, 0}, {2, 4}, {1, 6}}, [8] = {{8, 0}}};
    const uint32_t *blk = w + (size_t)(k / 32) * b * stride;
    uint32_t v = 0;
    for (int p = 0; p < 3 && planes[b][p][0]; p++) {
        int wd = planes[b][p][0], off = planes[b][p][1], per = 32 / wd, m = k % 32;
        v |= ((blk[(size_t)(off + m / per) * stride] >> (m % per * wd)) & ((1u << wd) - 1)) << off;
    }
    return v;
}
static uint32_t unpack(const uint32_t *w, size_t stride, int k, int b, int planar) {
    return planar   ? unpack_planar(w, stride, k, b)
           : b == 3 ? unpack_gptq3(w, stride, k)
                    : unpack_pf(w, stride, k, b);
}

/* gptq_put / gptq_get against the readings above for every format and
 * width: 128 codes down one column (planar 3 bits included, which quept
 * reads in GPTQModel's files but does not write) */
static void test_layouts(void) {
    for (int f = GPTQ_V1; f <= GPTQ_P; f++)
        for (int b = 2; b <= 8; b++) {
            const GptqLayout L = gptq_layout((GptqFormat)f, b);
            uint32_t w[32] = {0}, codes[128];
            for (int k = 0; k < 128; k++) {
                codes[k] = (uint32_t)(k * 37 + b * 11 + k / 7) % (1u << b);
                gptq_put(&L, w, 1, (size_t)k, codes[k]);
            }
            int bad = 0;
            for (int k = 0; k < 128; k++)
                bad += gptq_get(&L, w, 1, (size_t)k) != codes[k] || unpack(w, 1, k, b, L.planar) != codes[k];
            CHECK_MSG(bad == 0, "%s at %d bits (%s words): %d of 128 codes differ",
                      gptq_format_name(L.format), b, L.planar ? "planar" : "classic", bad);
            CHECK(L.planar == ((b >= 5 && b <= 7) || (b == 3 && f == GPTQ_P)));
        }
}

static const char *const HF_LIN[N_LIN] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};

/* safetensors-int at b bits in checkpoint format fmt (NULL: the default):
 * config, shapes, and every code, zero point and scale unpacked equal to the
 * switch (q/k rows in HF order); biases; quept's reader. The expected
 * format: gptq_v2 at 2/3/4/8 bits, gptq_p at 5/6/7; planar words at 5/6/7
 * and under gptq_p at 3; zero points minus one under gptq (v1). */
static void test_int(const ElasticModel *em, const char *art, int b, const char *fmt) {
    char dir[512], path[600];
    const ModelConfig *c = &em->cfg;
    const char *want_fmt = fmt ? fmt : b >= 5 && b <= 7 ? "gptq_p" : "gptq_v2";
    const int planar = (b >= 5 && b <= 7) || (b == 3 && strcmp(want_fmt, "gptq_p") == 0);
    const int zoff = strcmp(want_fmt, "gptq") == 0;
    snprintf(dir, sizeof dir, "%s/int%d_%d_%s", tmpdir, b, c->has_qkv_bias, want_fmt);
    int *bits = malloc((size_t)c->n_layers * sizeof *bits);
    for (int j = 0; j < c->n_layers; j++) bits[j] = b;
    QErr err = {{0}};
    CHECK_MSG(export_art_fmt(art, bits, fmt, dir, &err) == 0, "export %s to %s: %s", art, dir, err.msg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    char *cj = slurp(path, &n);
    cJSON *root = cj ? cJSON_Parse(cj) : NULL;
    cJSON *qcfg = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    CHECK_MSG(qcfg != NULL, "config.json has no quantization_config");
    cJSON *bits_j = cJSON_GetObjectItemCaseSensitive(qcfg, "bits");
    CHECK(cJSON_IsNumber(bits_j) && bits_j->valueint == b);
    static const char *const FMT_KEYS[2] = {"format", "checkpoint_format"};
    for (int k = 0; k < 2; k++) {
        cJSON *f = cJSON_GetObjectItemCaseSensitive(qcfg, FMT_KEYS[k]);
        CHECK_MSG(cJSON_IsString(f) && strcmp(f->valuestring, want_fmt) == 0, "%d bits: %s should be %s", b,
                  FMT_KEYS[k], want_fmt);
    }
    cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    CHECK(cJSON_IsString(mt) && strcmp(mt->valuestring, c->has_qkv_bias ? "qwen2" : "llama") == 0);
    /* one value of rms_norm_eps in every config.json: the shortest decimal
     * of the float (1e-05), as the fp16 export and hf_write_dir write it,
     * not the float widened to double (9.99999974737875e-06) */
    char six[32];
    snprintf(six, sizeof six, "%.6g", (double)c->norm_eps);
    cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "rms_norm_eps");
    CHECK_MSG(cJSON_IsNumber(eps) && eps->valuedouble == strtod(six, NULL), "rms_norm_eps %.17g, expected %s",
              cJSON_IsNumber(eps) ? eps->valuedouble : -1.0, six);
    cJSON_Delete(root);
    free(cj);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensors st;
    if (st_open(&st, path, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        free(bits);
        return;
    }
    SwitchedModel sw = {0};
    CHECK(elastic_switch_codes(em, bits, &sw, &err) == 0);
    free(bits);
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const SwitchedLinear *sl = &sw.lin[j][l];
            char nm[200];
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qweight", j, HF_LIN[l]);
            const StTensor *tw = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qzeros", j, HF_LIN[l]);
            const StTensor *tz = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.scales", j, HF_LIN[l]);
            const StTensor *ts = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.g_idx", j, HF_LIN[l]);
            const StTensor *tg = st_find(&st, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", j, HF_LIN[l]);
            const StTensor *tb = st_find(&st, nm);
            CHECK_MSG(tw && tz && ts && tg, "block %d %s: missing tensors", j, HF_LIN[l]);
            if (!tw || !tz || !ts || !tg) continue;
            const int64_t qrows = (int64_t)sl->in * b / 32, zcols = (int64_t)sl->out * b / 32;
            CHECK(tw->dtype == ST_I32 && tw->shape[0] == qrows && tw->shape[1] == sl->out);
            CHECK(tz->dtype == ST_I32 && tz->shape[0] == sl->ng && tz->shape[1] == zcols);
            CHECK(ts->dtype == ST_F16 && ts->shape[0] == sl->ng && ts->shape[1] == sl->out);
            const uint32_t *qw = (const uint32_t *)(st.data + tw->begin);
            const uint32_t *qz = (const uint32_t *)(st.data + tz->begin);
            const uint16_t *sc = (const uint16_t *)(st.data + ts->begin);
            const int32_t *gi = (const int32_t *)(st.data + tg->begin);
            int bad = 0;
            for (int r = 0; r < sl->out; r++) {
                int o = hf_src(c, l, r);
                for (int i = 0; i < sl->in; i++) {
                    int g = gi[i];
                    uint32_t code = unpack(qw + r, (size_t)sl->out, i, b, planar);
                    uint32_t z = unpack(qz + (size_t)g * zcols, 1, r, b, planar) + (uint32_t)zoff;
                    float s = f16_to_float(sc[(size_t)g * sl->out + r]);
                    size_t gk = (size_t)o * sl->ng + i / sl->group;
                    bad += g != i / sl->group || code != sl->codes[(size_t)o * sl->in + i] ||
                           (float)z != sl->zeros[gk] || s != r16(sl->scales[gk]);
                }
            }
            CHECK_MSG(bad == 0, "%d bits (%s): block %d %s: %d weights differ after unpacking", b, want_fmt,
                      j, HF_LIN[l], bad);
            const float *bias = bias_of(&em->base.blocks[j], l);
            if (!c->has_qkv_bias || !bias) {
                CHECK_MSG(tb == NULL, "%s: unexpected bias", nm);
                continue;
            }
            CHECK_MSG(tb && tb->dtype == ST_F16 && tb->ndim == 1 && tb->shape[0] == sl->out,
                      "%s: missing or mis-shaped", nm);
            if (!tb) continue;
            const uint16_t *bh = (const uint16_t *)(st.data + tb->begin);
            bad = 0;
            for (int r = 0; r < sl->out; r++) bad += f16_to_float(bh[r]) != r16(bias[hf_src(c, l, r)]);
            CHECK_MSG(bad == 0, "%s: %d values differ", nm, bad);
        }
    /* quept reads its own int export back (eval --model DIR): every linear
     * is (code - zero) * scale with the scale as stored (F16), rows in HF
     * order, exactly */
    Model back;
    int lrc = model_load(&back, dir, &err);
    CHECK_MSG(lrc == 0, "model_load of the int export %s: %s", dir, err.msg);
    for (int j = 0; lrc == 0 && j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const SwitchedLinear *sl = &sw.lin[j][l];
            const float *wl = *qblock_linear_slot(&back.blocks[j], l);
            int bad = 0;
            for (int r = 0; r < sl->out; r++) {
                int o = hf_src(c, l, r);
                for (int i = 0; i < sl->in; i++) {
                    size_t gk = (size_t)o * sl->ng + i / sl->group;
                    float want =
                        ((float)sl->codes[(size_t)o * sl->in + i] - sl->zeros[gk]) * r16(sl->scales[gk]);
                    bad += wl[(size_t)r * sl->in + i] != want;
                }
            }
            CHECK_MSG(bad == 0, "%d bits (%s): block %d %s read back: %d weights differ", b, want_fmt, j,
                      HF_LIN[l], bad);
        }
    if (lrc == 0) model_free(&back);
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

/* Decodes one Q4_1 / Q5_1 / Q8_0 linear from the file and compares with the
 * switch; file row r is our row row_src(c, l, r, halves). */
static void check_gguf_linear(const char *file_bytes, size_t data_off, cJSON *t, const SwitchedLinear *sl,
                              const char *name, const ModelConfig *c, int l, int halves) {
    const char *type = cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring;
    size_t off = data_off + (size_t)cJSON_GetObjectItemCaseSensitive(t, "offset")->valuedouble;
    int q5 = strcmp(type, "Q5_1") == 0;
    const uint8_t *p = (const uint8_t *)file_bytes + off;
    int bad = 0;
    if (strcmp(type, "Q8_0") == 0) { /* d, then 32 int8 q = code - zero */
        for (int r = 0; r < sl->out; r++)
            for (int k = 0, o = row_src(c, l, r, halves); k < sl->in / 32; k++, p += 34) {
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
    for (int r = 0; r < sl->out; r++)
        for (int k = 0, o = row_src(c, l, r, halves); k < sl->in / 32; k++) {
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

/* The GGUF value type of key k as the reader saw it: "UINT32", or
 * "ARRAY/FLOAT32" for arrays. */
static int key_type_is(cJSON *root, const char *k, const char *want) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "types"), k);
    char got[64] = "";
    cJSON *a = cJSON_GetArrayItem(t, 0), *b = cJSON_GetArrayItem(t, 1);
    if (cJSON_IsString(a))
        snprintf(got, sizeof got, "%s%s%s", a->valuestring, b ? "/" : "",
                 cJSON_IsString(b) ? b->valuestring : "");
    CHECK_MSG(strcmp(got, want) == 0, "key %s has type '%s', expected '%s'", k, got, want);
    return strcmp(got, want) == 0;
}

/* llama.cpp's llama_ftype values and the order of the types by width. */
static int ftype_rank(const char *t, int *ftype) {
    static const struct {
        const char *name;
        int ftype;
    } T[] = {{"Q4_1", 3}, {"Q5_1", 9}, {"Q8_0", 7}, {"F16", 1}};
    for (int i = 0; i < 4; i++)
        if (!strcmp(t, T[i].name)) return *ftype = T[i].ftype, i;
    return *ftype = -1, -1;
}

static void test_gguf(const ElasticModel *em, const char *art, int b0, int b1, const char *t0,
                      const char *t1) {
    char out[512];
    const ModelConfig *c = &em->cfg;
    snprintf(out, sizeof out, "%s/m%d%d_%d.gguf", tmpdir, b0, b1, c->has_qkv_bias);
    int bits[2] = {b0, b1};
    QErr err = {{0}};
    char *log = NULL;
    CHECK_MSG(export_art(art, "gguf", bits, out, NULL, &log, &err) == 0, "export %s to %s: %s", art, out,
              err.msg);
    CHECK_MSG(log && strstr(log, "no --tokenizer"), "export without --tokenizer should warn: %s",
              log ? log : "");
    free(log);
    cJSON *root = gguf_read(out);
    if (!root) return;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    /* a model with q/k/v biases is Qwen2: llama.cpp's qwen2 arch, halves rope */
    const char *an = c->has_qkv_bias ? "qwen2" : "llama";
    const int halves = c->has_qkv_bias;
    struct {
        const char *k;
        double v;
    } want[] = {{"context_length", c->seq_len},       {"embedding_length", c->dim},
                {"block_count", c->n_layers},         {"feed_forward_length", c->hidden_dim},
                {"attention.head_count", c->n_heads}, {"attention.head_count_kv", c->n_kv_heads},
                {"rope.freq_base", c->rope_theta},    {"attention.layer_norm_rms_epsilon", c->norm_eps},
                {"vocab_size", c->vocab_size}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char k[128];
        snprintf(k, sizeof k, "%s.%s", an, want[i].k);
        cJSON *v = cJSON_GetObjectItemCaseSensitive(md, k);
        CHECK_MSG(cJSON_IsNumber(v) && fabs(v->valuedouble - want[i].v) <= 1e-6 * fabs(want[i].v),
                  "metadata %s", k);
        key_type_is(root, k, i >= 6 && i <= 7 ? "FLOAT32" : "UINT32");
    }
    cJSON *ver = cJSON_GetObjectItemCaseSensitive(md, "version");
    CHECK(cJSON_IsNumber(ver) && ver->valueint == 3);
    cJSON *arch = cJSON_GetObjectItemCaseSensitive(md, "general.architecture");
    CHECK(cJSON_IsString(arch) && strcmp(arch->valuestring, an) == 0);
    /* general.file_type: the type holding most linear weights; with two
     * equal blocks a tie, which goes to the wider type */
    int f0, f1, want_ft;
    int r0 = ftype_rank(t0, &f0), r1 = ftype_rank(t1, &f1);
    want_ft = r0 > r1 ? f0 : f1;
    CHECK(c->n_layers == 2);
    cJSON *ft = cJSON_GetObjectItemCaseSensitive(md, "general.file_type");
    CHECK_MSG(cJSON_IsNumber(ft) && ft->valueint == want_ft, "general.file_type %d, expected %d",
              cJSON_IsNumber(ft) ? ft->valueint : -1, want_ft);
    key_type_is(root, "general.file_type", "UINT32");
    cJSON *qv = cJSON_GetObjectItemCaseSensitive(md, "general.quantization_version");
    CHECK(cJSON_IsNumber(qv) && qv->valueint == 2);
    CHECK_MSG(cJSON_GetObjectItemCaseSensitive(md, "tokenizer.ggml.model") == NULL,
              "no --tokenizer, no tokenizer keys");
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    CHECK(cJSON_GetArraySize(tensors) == 2 + c->n_layers * (9 + 3 * c->has_qkv_bias));
    size_t fsz;
    char *bytes = slurp(out, &fsz);
    size_t data_off = (size_t)cJSON_GetObjectItemCaseSensitive(root, "tensor_data_offset")->valuedouble;
    CHECK(data_off % 32 == 0);
    cJSON *te = find_tensor(tensors, "token_embd.weight");
    CHECK(te && strcmp(cJSON_GetObjectItemCaseSensitive(te, "type")->valuestring, "F16") == 0);
    CHECK(find_tensor(tensors, "output_norm.weight") != NULL);
    SwitchedModel sw = {0};
    CHECK(elastic_switch_codes(em, bits, &sw, &err) == 0);
    static const char *gl[N_LIN] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                    "ffn_gate", "ffn_up", "ffn_down"};
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
            /* llama: interleaved q/k rows; qwen2: halves (permuted when ours differ) */
            check_gguf_linear(bytes, data_off, t, &sw.lin[j][l], nm, c, l, halves);
            snprintf(nm, sizeof nm, "blk.%d.%s.bias", j, gl[l]);
            cJSON *tb = find_tensor(tensors, nm);
            const float *bias = bias_of(&em->base.blocks[j], l);
            if (!c->has_qkv_bias || !bias) {
                CHECK_MSG(tb == NULL, "unexpected %s", nm);
                continue;
            }
            CHECK_MSG(tb && strcmp(cJSON_GetObjectItemCaseSensitive(tb, "type")->valuestring, "F32") == 0 &&
                          cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(tb, "shape")) == 1 &&
                          cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(tb, "shape"), 0)->valueint ==
                              sw.lin[j][l].out,
                      "%s: missing, not F32 or mis-shaped", nm);
            if (!tb) continue;
            const float *fb =
                (const float *)(bytes + data_off +
                                (size_t)cJSON_GetObjectItemCaseSensitive(tb, "offset")->valuedouble);
            int bad = 0;
            for (int r = 0; r < sw.lin[j][l].out; r++) bad += fb[r] != bias[row_src(c, l, r, halves)];
            CHECK_MSG(bad == 0, "%s: %d values differ", nm, bad);
        }
    switched_free(&sw);
    free(bytes);
    cJSON_Delete(root);
}

/* --tokenizer: a vocab-32000 model (RTN) exported to GGUF with the Llama 2
 * tokenizer; the independent reader must see llama.cpp's tokenizer keys with
 * their GGUF types and every token, score and type as read from the file
 * here (pieces with ' ' as U+2581; ids 0-2 named <unk>, <s>, </s>). */
static void test_tokenizer_keys(void) {
    char tok[600];
    snprintf(tok, sizeof tok, "%s/models/llama2-tokenizer.bin", QUEPT_SHARED_DIR);
    if (access(tok, R_OK) != 0) {
        fprintf(stderr, "NOTE: GGUF tokenizer test skipped: %s not found (../shared is absent)\n", tok);
        return;
    }
    /* the tokenizer file, read here independently of common/data/tokenizer.c */
    size_t fn;
    char *raw = slurp(tok, &fn);
    enum { NV = 32000 };
    char **piece = calloc(NV, sizeof *piece);
    float *score = calloc(NV, sizeof *score);
    size_t at = 4;
    int nv = 0;
    while (raw && at + 8 <= fn && nv < NV) {
        int32_t len;
        memcpy(&score[nv], raw + at, 4);
        memcpy(&len, raw + at + 4, 4);
        at += 8;
        if (len < 0 || at + (size_t)len > fn) break;
        piece[nv] = malloc(3 * (size_t)len + 1); /* ' ' -> U+2581 (3 bytes) */
        char *q = piece[nv];
        for (int i = 0; i < len; i++) {
            if (raw[at + i] == ' ')
                memcpy(q, "\xe2\x96\x81", 3), q += 3;
            else
                *q++ = raw[at + i];
        }
        *q = 0;
        at += (size_t)len;
        nv++;
    }
    CHECK_MSG(nv == NV && at == fn, "%s: read %d tokens (expected %d, the whole file)", tok, nv, NV);
    static const char *special[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3 && nv == NV; i++) strcpy(piece[i], special[i]);

    ModelConfig c = llama_config(32, 64, 1, 2, 1, NV, 64);
    QuantConfig qc;
    small_qc(&qc, METHOD_RTN);
    ElasticModel em;
    build(&em, &c, &qc, 21);
    char art[512], out[512];
    snprintf(art, sizeof art, "%s/v32k.qept", tmpdir);
    snprintf(out, sizeof out, "%s/v32k.gguf", tmpdir);
    QErr err = {{0}};
    CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
    elastic_free(&em);
    GgufVocab tz = {0};
    int rc = gguf_vocab_load(&tz, tok, NV, &err), bits[1] = {4};
    GgufOptions go = {.vocab = &tz, .tok_path = tok};
    char *log = NULL;
    if (rc == 0) rc = export_art(art, "gguf", bits, out, &go, &log, &err);
    CHECK_MSG(rc == 0 && log && !strstr(log, "no --tokenizer"), "export %s with --tokenizer %s: %s %s", art,
              tok, err.msg, log ? log : "");
    free(log);
    gguf_vocab_free(&tz);
    cJSON *root = nv == NV ? gguf_read(out) : NULL;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (root) {
        cJSON *m = cJSON_GetObjectItemCaseSensitive(md, "tokenizer.ggml.model");
        CHECK(cJSON_IsString(m) && strcmp(m->valuestring, "llama") == 0);
        key_type_is(root, "tokenizer.ggml.model", "STRING");
        key_type_is(root, "tokenizer.ggml.tokens", "ARRAY/STRING");
        key_type_is(root, "tokenizer.ggml.scores", "ARRAY/FLOAT32");
        key_type_is(root, "tokenizer.ggml.token_type", "ARRAY/INT32");
        struct {
            const char *k;
            int v;
        } ids[] = {{"tokenizer.ggml.bos_token_id", 1},
                   {"tokenizer.ggml.eos_token_id", 2},
                   {"tokenizer.ggml.unknown_token_id", 0}};
        for (int i = 0; i < 3; i++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(md, ids[i].k);
            CHECK_MSG(cJSON_IsNumber(v) && v->valueint == ids[i].v, "%s", ids[i].k);
            key_type_is(root, ids[i].k, "UINT32");
        }
        cJSON *tk = cJSON_GetObjectItemCaseSensitive(md, "tokenizer.ggml.tokens");
        cJSON *sc = cJSON_GetObjectItemCaseSensitive(md, "tokenizer.ggml.scores");
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(md, "tokenizer.ggml.token_type");
        CHECK_MSG(cJSON_GetArraySize(tk) == NV && cJSON_GetArraySize(sc) == NV &&
                      cJSON_GetArraySize(ty) == NV,
                  "token arrays: %d / %d / %d entries, expected %d", cJSON_GetArraySize(tk),
                  cJSON_GetArraySize(sc), cJSON_GetArraySize(ty), NV);
        cJSON *first = cJSON_GetArrayItem(tk, 0), *last = cJSON_GetArrayItem(tk, NV - 1);
        CHECK_MSG(cJSON_IsString(first) && strcmp(first->valuestring, "<unk>") == 0, "first token");
        CHECK_MSG(cJSON_IsString(last) && strcmp(last->valuestring, piece[NV - 1]) == 0,
                  "last token '%s' vs '%s'", cJSON_IsString(last) ? last->valuestring : "?", piece[NV - 1]);
        int bad_tok = 0, bad_score = 0, bad_type = 0, n_byte = 0, n_ctl = 0, n_bom = 0, i = 0;
        cJSON *a = tk ? tk->child : NULL, *b = sc ? sc->child : NULL, *t = ty ? ty->child : NULL;
        for (; a && b && t && i < NV; a = a->next, b = b->next, t = t->next, i++) {
            /* the reader decodes with JavaScript's TextDecoder, which drops a
             * leading byte order mark: the piece "\xef\xbb\xbf" (U+FEFF, id
             * 30143) reads as "" — its bytes are checked in the file below */
            const char *want_s = strncmp(piece[i], "\xef\xbb\xbf", 3) == 0 ? piece[i] + 3 : piece[i];
            n_bom += want_s != piece[i];
            bad_tok += !cJSON_IsString(a) || strcmp(a->valuestring, want_s) != 0;
            bad_score += !cJSON_IsNumber(b) || (float)b->valuedouble != score[i];
            int byte = strlen(piece[i]) == 6 && strncmp(piece[i], "<0x", 3) == 0 && piece[i][5] == '>';
            int want = i == 0 ? 2 : i <= 2 ? 3 : byte ? 6 : 1;
            n_byte += want == 6;
            n_ctl += t->valueint == 3;
            bad_type += !cJSON_IsNumber(t) || t->valueint != want;
        }
        CHECK_MSG(i == NV && bad_tok == 0 && bad_score == 0 && bad_type == 0,
                  "tokenizer keys: %d tokens, %d scores, %d types differ from the file", bad_tok, bad_score,
                  bad_type);
        CHECK_MSG(n_byte == 256 && n_ctl == 2, "%d byte tokens (expected 256), %d control (expected 2)",
                  n_byte, n_ctl);
        /* the BOM piece as written: u64 length 3, then EF BB BF, between its neighbours */
        CHECK_MSG(n_bom == 1 && !strcmp(piece[30143], "\xef\xbb\xbf"), "%d BOM pieces (expected 1, id 30143)",
                  n_bom);
        size_t gn;
        char *g = slurp(out, &gn);
        char pat[128];
        size_t pn = 0;
        for (int id = 30142; id <= 30144 && g; id++) {
            uint64_t len = strlen(piece[id]);
            memcpy(pat + pn, &len, 8);
            memcpy(pat + pn + 8, piece[id], len);
            pn += 8 + len;
        }
        int found = 0;
        for (size_t k = 0; g && !found && k + pn <= gn; k++) found = memcmp(g + k, pat, pn) == 0;
        CHECK_MSG(found, "the GGUF file does not hold tokens 30142..30144 as written by the tokenizer");
        free(g);
        cJSON *vs = cJSON_GetObjectItemCaseSensitive(md, "llama.vocab_size");
        CHECK(cJSON_IsNumber(vs) && vs->valueint == NV);
    }
    cJSON_Delete(root);
    for (int i = 0; i < NV; i++) free(piece[i]);
    free(piece);
    free(score);
    free(raw);
}

static void expect_fail(const char *args, const char *needle) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s export %s 2>&1", QUEPT_BIN, args);
    int st;
    char *o = run_capture(cmd, &st);
    CHECK_MSG(st != 0, "'%s' should fail", cmd);
    CHECK_MSG(o && strstr(o, needle), "'%s': expected '%s' in: %s", cmd, needle, o ? o : "");
    free(o);
}

/* A tokenizer.json of n tokens (<unk>, t1 .. t{n-1}; no merges) at path. */
static void write_tokenizer_json(const char *path, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],"
               "\"normalizer\":null,\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":null,"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\","
               "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
               "\"byte_fallback\":false,\"vocab\":{\"<unk>\":0");
    for (int i = 1; i < n; i++) fprintf(f, ",\"t%d\":%d", i, i);
    fprintf(f, "},\"merges\":[]}}");
    fclose(f);
}

/* `quept export --tokenizer SRC` for the HF formats: the source directory's
 * tokenizer files land in the export byte for byte; a file that is not
 * tokenizer.json, a directory without one and a tokenizer larger than the
 * model's vocabulary are refused before anything is written. */
static void test_hf_tokenizer_files(const char *art, int vocab) {
    char src[600], f[700], out[600], a[2048], *x, *y;
    size_t nx, ny;
    QErr err = {{0}};
    snprintf(src, sizeof src, "%s/hf-src", tmpdir);
    CHECK(dir_make_all(src, &err) == 0);
    snprintf(f, sizeof f, "%s/tokenizer.json", src);
    write_tokenizer_json(f, vocab - 5);
    static const char *const EXTRA[][2] = {{"tokenizer_config.json", "{\"bos_token\": \"<s>\"}"},
                                           {"generation_config.json", "{\"max_new_tokens\": 64}"}};
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s/%s", src, EXTRA[i][0]);
        CHECK(file_write_all(f, EXTRA[i][1], strlen(EXTRA[i][1]), &err) == 0);
    }
    snprintf(out, sizeof out, "%s/hf-tok-out", tmpdir);
    snprintf(a, sizeof a, "%s export %s --bits 4 --format safetensors-int --tokenizer %s --out %s 2>&1",
             QUEPT_BIN, art, src, out);
    int st;
    char *o = run_capture(a, &st);
    CHECK_MSG(exit_code(st) == 0 && o && strstr(o, "copied 3 tokenizer files"), "%s", o ? o : "");
    free(o);
    static const char *const NAMES[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        char p1[800], p2[800];
        snprintf(p1, sizeof p1, "%s/%s", src, NAMES[i]);
        snprintf(p2, sizeof p2, "%s/%s", out, NAMES[i]);
        CHECK_MSG(file_read_all(p1, &x, &nx, &err) == 0 && file_read_all(p2, &y, &ny, &err) == 0 &&
                      nx == ny && memcmp(x, y, nx) == 0,
                  "%s not copied byte for byte", NAMES[i]);
        free(x), free(y);
    }
    /* refusals: nothing written */
    snprintf(out, sizeof out, "%s/hf-tok-refused", tmpdir);
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-fp16 --tokenizer %s/x.bin --out %s", art, tmpdir,
             out);
    expect_fail(a, "no such file");
    snprintf(f, sizeof f, "%s/tok.bin", tmpdir);
    CHECK(file_write_all(f, "x", 1, &err) == 0);
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-fp16 --tokenizer %s --out %s", art, f, out);
    expect_fail(a, "give the model directory or its tokenizer.json");
    char empty[700];
    snprintf(empty, sizeof empty, "%s/no-tok", tmpdir);
    CHECK(dir_make_all(empty, &err) == 0);
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-fp16 --tokenizer %s --out %s", art, empty, out);
    expect_fail(a, "no tokenizer.json there");
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-fp16 --tokenizer %s --out %s/o", art, src, src);
    expect_fail(a, "outputs are written outside the inputs"); /* the export may not land in its source */
    snprintf(f, sizeof f, "%s/tokenizer.json", src);
    write_tokenizer_json(f, vocab + 4);
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-fp16 --tokenizer %s --out %s", art, f, out);
    expect_fail(a, "more than the model's vocab_size");
    CHECK_MSG(access(out, F_OK) != 0, "a refused export left %s", out);
}

/* A copy of the export src as dst whose config.json's quantization_config
 * has key set to value (NULL: removed; key NULL: the whole object removed);
 * the weights are a symlink. */
static void config_variant(const char *src, const char *dst, const char *key, const char *value) {
    char path[700], target[700];
    CHECK(mkdir(dst, 0700) == 0);
    snprintf(target, sizeof target, "%s/model.safetensors", src);
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    CHECK(symlink(target, path) == 0);
    snprintf(path, sizeof path, "%s/config.json", src);
    size_t n;
    char *text = slurp(path, &n);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK_MSG(root != NULL, "%s: cannot parse", path);
    free(text);
    if (!root) return;
    cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!key)
        cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    else if (!value)
        cJSON_DeleteItemFromObjectCaseSensitive(q, key);
    else if (cJSON_GetObjectItemCaseSensitive(q, key))
        cJSON_ReplaceItemInObjectCaseSensitive(q, key, cJSON_CreateString(value));
    else
        cJSON_AddStringToObject(q, key, value);
    text = cJSON_Print(root);
    snprintf(path, sizeof path, "%s/config.json", dst);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(text, f) >= 0);
    if (f) fclose(f);
    cJSON_free(text);
    cJSON_Delete(root);
}

static void expect_load_fail(const char *dir, const char *needle) {
    Model m;
    QErr err = {{0}};
    int rc = model_load(&m, dir, &err);
    CHECK_MSG(rc != 0, "model_load %s should fail", dir);
    if (rc == 0) model_free(&m);
    CHECK_MSG(strstr(err.msg, needle), "model_load %s: expected '%s' in: %s", dir, needle, err.msg);
}

/* The checkpoint formats on an artifact with every width 2..8: each layout
 * read back; what a loader would misread refused; what quept's reader
 * cannot place refused. */
static void test_int_formats(void) {
    ModelConfig c = small_cfg(2);
    QuantConfig qc;
    small_qc(&qc, METHOD_QUEPT);
    QErr err = {{0}};
    CHECK(quant_parse_bits(&qc, "2-8", &err) == 0);
    ElasticModel em;
    build(&em, &c, &qc, 41);
    char art[512];
    snprintf(art, sizeof art, "%s/all.qept", tmpdir);
    CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
    test_int(&em, art, 7, NULL);                                /* planar, no longer refused */
    test_int(&em, art, 5, "gptq_p");                            /* the default, asked for */
    test_int(&em, art, 4, "gptq_v2");                           /* the default, asked for */
    for (int b = 2; b <= 4; b++) test_int(&em, art, b, "gptq"); /* v1, zero - 1 */
    int b5[2] = {5, 5}, b6[2] = {6, 6}, b4[2] = {4, 4}, b8[2] = {8, 8}, b3[2] = {3, 3};
    expect_int_fail(art, b3, "gptq_p", "transformers (through optimum) builds its GPTQ modules without");
    expect_int_fail(art, b8, "gptq", "AutoGPTQ's 8-bit CUDA kernels keep 4 bits of a v1 zero point");
    expect_int_fail(art, b5, "gptq_v2", "GPTQModel reads a 5-, 6- or 7-bit gptq / gptq_v2 checkpoint");
    expect_int_fail(art, b6, "gptq", "use gptq_p");
    expect_int_fail(art, b4, "v3", "unknown --checkpoint-format 'v3'");
    /* v1 cannot hold a zero point 0 (a group whose range starts at 0) */
    SwitchedModel sw = {0};
    CHECK(elastic_switch_codes(&em, b4, &sw, &err) == 0);
    SwitchedLinear *up = &sw.lin[1][LIN_UP];
    up->zeros[(size_t)2 * up->ng] = 0.0f;
    char out[600];
    snprintf(out, sizeof out, "%s/x", tmpdir);
    CHECK(export_int(&em, &sw, "gptq", out, &err) != 0);
    CHECK_MSG(strstr(err.msg, "layers.1.mlp.up_proj: row 2 group 0 has zero point 0"), "%s", err.msg);
    CHECK_MSG(access(out, F_OK) != 0, "a refused v1 export left %s behind", out);
    CHECK_MSG(export_int(&em, &sw, NULL, out, &err) == 0, "gptq_v2 holds zero point 0: %s", err.msg);
    /* v1 at 8 bits with every zero point in [1, 15]: written, read back */
    CHECK(elastic_switch_codes(&em, b8, &sw, &err) == 0);
    for (int j = 0; j < c.n_layers; j++)
        for (int l = 0; l < N_LIN; l++)
            for (int k = 0; k < sw.lin[j][l].out * sw.lin[j][l].ng; k++)
                sw.lin[j][l].zeros[k] = (float)(1 + k % 15);
    snprintf(out, sizeof out, "%s/v1_8", tmpdir);
    CHECK_MSG(export_int(&em, &sw, "gptq", out, &err) == 0, "v1 at 8 bits, zero points <= 15: %s", err.msg);
    Model back;
    int lrc = model_load(&back, out, &err);
    CHECK_MSG(lrc == 0, "%s", err.msg);
    for (int j = 0; lrc == 0 && j < c.n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            const SwitchedLinear *sl = &sw.lin[j][l];
            const float *wl = *qblock_linear_slot(&back.blocks[j], l);
            int bad = 0;
            for (int r = 0; r < sl->out; r++)
                for (int i = 0; i < sl->in; i++) {
                    size_t o = (size_t)hf_src(&c, l, r), gk = o * sl->ng + i / sl->group;
                    float want = ((float)sl->codes[o * sl->in + i] - sl->zeros[gk]) * r16(sl->scales[gk]);
                    bad += wl[(size_t)r * sl->in + i] != want;
                }
            CHECK_MSG(bad == 0, "v1 8 bits: block %d %s read back: %d weights differ", j, HF_LIN[l], bad);
        }
    if (lrc == 0) model_free(&back);
    switched_free(&sw);
    /* the reader: a 5-bit export of an earlier quept (bit stream, marked by
     * quept_packing) and packed linears without a GPTQ config are refused */
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/int5_0_gptq_p", tmpdir);
    snprintf(dst, sizeof dst, "%s/legacy5", tmpdir);
    config_variant(src, dst, "quept_packing", "little-endian bit stream of b-bit codes in int32 words");
    expect_load_fail(dst, "export of an earlier quept");
    snprintf(dst, sizeof dst, "%s/noqcfg", tmpdir);
    config_variant(src, dst, NULL, NULL);
    expect_load_fail(dst, "no GPTQ quantization_config");
    snprintf(dst, sizeof dst, "%s/badfmt", tmpdir);
    config_variant(src, dst, "format", "gptq_v3");
    expect_load_fail(dst, "quantization_config.format must be");
    /* the command line: a value it does not know, a format it does not apply to */
    char a[4096];
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-int --checkpoint-format v3 --out %s", art, out);
    expect_fail(a, "--checkpoint-format 'v3' (auto, gptq, gptq_v2 or gptq_p)");
    snprintf(a, sizeof a, "%s --bits 4 --format gguf --checkpoint-format gptq --out %s.gguf", art, out);
    expect_fail(a, "--checkpoint-format applies to --format safetensors-int only");
    elastic_free(&em);
}

/* --format gguf artifacts (synthetic, quept and rtn): the switch yields the
 * ggml blocks of each width's type (llama-quantize's fallback where a row
 * does not fit: 64-wide rows of Q4_K -> Q5_0, of Q2_K -> IQ4_NL; 96-wide
 * rows of Q6_K -> Q8_0), whose dequantization is elastic_switch's weight
 * bitwise; export --format gguf writes those bytes unchanged (file rows in
 * llama.cpp's q/k order), names each tensor's type as the independent
 * reader sees it, and refuses to re-encode them as another type. */
static void test_gguf_format(void) {
    static const char *gl[N_LIN] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                    "ffn_gate", "ffn_up", "ffn_down"};
    for (int mi = 0; mi < 2; mi++)
        for (int wide = 0; wide < 2; wide++) {
            ModelConfig c =
                wide ? llama_config(256, 512, 2, 4, 2, 96, 32) : llama_config(64, 96, 2, 4, 2, 96, 32);
            QuantConfig qc;
            small_qc(&qc, mi ? METHOD_RTN : METHOD_QUEPT);
            quant_config_set_gguf(&qc);
            if (!wide) qc.gguf_type[4] = GQ_Q4_K, qc.gguf_type[5] = GQ_Q5_0;
            QErr err = {{0}};
            CHECK_MSG(quant_config_validate(&qc, &err) == 0, "%s", err.msg);
            ElasticModel em;
            build(&em, &c, &qc, 21 + mi);
            char art[512], out[600];
            snprintf(art, sizeof art, "%s/gguf_%d_%d.qept", tmpdir, mi, wide);
            CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
            SwitchedModel sw = {0};
            Model q = {0};
            for (int bi = 0; bi < qc.n_bits; bi++) {
                const int b = qc.bits[bi], bits[2] = {b, b};
                CHECK_MSG(elastic_switch_codes(&em, bits, &sw, &err) == 0, "%s", err.msg);
                CHECK_MSG(elastic_switch(&em, bits, &q, &err) == 0, "%s", err.msg);
                for (int j = 0; j < 2; j++)
                    for (int l = 0; l < N_LIN; l++) {
                        const SwitchedLinear *sl = &sw.lin[j][l];
                        const int want = gq_row_type(qc.gguf_type[b], sl->in);
                        CHECK_MSG(sl->format == FQ_FORMAT_GGUF && sl->gtype == want,
                                  "%d bits %s: type %s, expected %s", b, gl[l], gq_type_name(sl->gtype),
                                  gq_type_name(want));
                        if (!wide && qc.gguf_type[b] == GQ_Q4_K) CHECK(sl->in != 64 || sl->gtype == GQ_Q5_0);
                        if (!wide && qc.gguf_type[b] == GQ_Q2_K)
                            CHECK(sl->in != 64 || sl->gtype == GQ_IQ4_NL);
                        if (!wide && qc.gguf_type[b] == GQ_Q6_K) CHECK(sl->in != 96 || sl->gtype == GQ_Q8_0);
                        if (wide) CHECK(sl->gtype == qc.gguf_type[b]);
                        size_t n = (size_t)sl->out * sl->in;
                        float *w = malloc(n * sizeof(float));
                        switched_dequantize(sl, w);
                        CHECK_MSG(memcmp(w, qblock_linear_weight(&q.blocks[j], l), n * sizeof(float)) == 0,
                                  "gguf %s %d bits block %d %s: blocks differ from elastic_switch",
                                  quant_method_name(qc.method), b, j, gl[l]);
                        free(w);
                    }
            }
            /* export: blocks {2, 8}, {4, 5}, {3, 6} */
            int pairs[3][2] = {{2, 8}, {4, 5}, {3, 6}};
            for (int pi = 0; pi < 3; pi++) {
                snprintf(out, sizeof out, "%s/gguf_%d_%d_%d.gguf", tmpdir, mi, wide, pi);
                CHECK_MSG(export_art(art, "gguf", pairs[pi], out, NULL, NULL, &err) == 0, "export %s: %s",
                          art, err.msg);
                CHECK_MSG(elastic_switch_codes(&em, pairs[pi], &sw, &err) == 0, "%s", err.msg);
                cJSON *root = gguf_read(out);
                if (!root) continue;
                cJSON *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
                size_t fsz;
                char *bytes = slurp(out, &fsz);
                size_t data_off =
                    (size_t)cJSON_GetObjectItemCaseSensitive(root, "tensor_data_offset")->valuedouble;
                for (int j = 0; j < 2; j++)
                    for (int l = 0; l < N_LIN; l++) {
                        const SwitchedLinear *sl = &sw.lin[j][l];
                        char nm[96];
                        snprintf(nm, sizeof nm, "blk.%d.%s.weight", j, gl[l]);
                        cJSON *t = find_tensor(tensors, nm);
                        CHECK_MSG(t != NULL, "missing %s", nm);
                        if (!t) continue;
                        const char *type = cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring;
                        CHECK_MSG(strcmp(type, gq_type_name(sl->gtype)) == 0, "%s is %s, expected %s", nm,
                                  type, gq_type_name(sl->gtype));
                        const uint8_t *p = (const uint8_t *)bytes + data_off +
                                           (size_t)cJSON_GetObjectItemCaseSensitive(t, "offset")->valuedouble;
                        int bad = 0;
                        for (int r = 0; r < sl->out; r++)
                            bad += memcmp(p + (size_t)r * sl->row_bytes,
                                          sl->packed + (size_t)row_src(&c, l, r, 0) * sl->row_bytes,
                                          sl->row_bytes) != 0;
                        CHECK_MSG(bad == 0, "%s: %d rows differ from the switched blocks", nm, bad);
                    }
                cJSON *ft = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(root, "metadata"), "general.file_type");
                CHECK(cJSON_IsNumber(ft) && ft->valueint > 0);
                free(bytes);
                cJSON_Delete(root);
            }
            /* the codes are the type's: no re-encoding, no GPTQ packing */
            GgufOptions q41 = {.type = "q4_1"};
            int b44[2] = {4, 4};
            expect_export_fail(art, "gguf", b44, &q41, "would re-encode its codes");
            GgufOptions f16 = {.type = "f16"};
            snprintf(out, sizeof out, "%s/gguf_%d_%d_f16.gguf", tmpdir, mi, wide);
            CHECK_MSG(export_art(art, "gguf", b44, out, &f16, NULL, &err) == 0, "f16: %s", err.msg);
            char a[2048];
            snprintf(a, sizeof a, "%s --bits 4 --format safetensors-int --out %s/gx", art, tmpdir);
            expect_fail(a, "holds GGUF block types");
            /* --avg-bits on a GGUF artifact: bits per weight of the linears' blocks, the file's size */
            if (wide) {
                int mb[2];
                double ach = 0.0, want = 0.5 * (true_bits_per_weight(&em, (int[2]){3, 3}) +
                                                true_bits_per_weight(&em, (int[2]){4, 4}));
                CHECK_MSG(mixed_assign_bits(&em, want, 1, mb, &ach, &err) == 0, "%s", err.msg);
                CHECK_MSG(ach <= want + 1e-9 && fabs(ach - true_bits_per_weight(&em, mb)) < 1e-9,
                          "gguf --avg-bits %.4f: achieved %.4f, blocks %d %d (%.4f)", want, ach, mb[0], mb[1],
                          true_bits_per_weight(&em, mb));
                CHECK_MSG(mb[0] != mb[1] && (mb[0] == 3 || mb[0] == 4) && (mb[1] == 3 || mb[1] == 4),
                          "a budget between 3 and 4 bits mixes them: %d %d", mb[0], mb[1]);
                CHECK(mixed_assign_bits(&em, 1.0, 1, mb, &ach, &err) == -1 &&
                      strstr(err.msg, "bits per weight"));
            }
            switched_free(&sw);
            model_free(&q);
            elastic_free(&em);
        }
}

int main(void) {
    test_switch_codes();
    test_layouts();
    scratch_dir(tmpdir, sizeof tmpdir, "export");
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
    for (int bi = 0; bi < qc.n_bits; bi++) test_int(&em, art, qc.bits[bi], NULL); /* 2, 3, 4, 5, 6, 8 */
    test_gguf(&em, art, 4, 5, "Q4_1", "Q5_1");
    test_gguf_format();
    test_gguf(&em, art, 6, 2, "Q8_0", "Q4_1");
    char a[4096], o[600];
    snprintf(o, sizeof o, "%s/x", tmpdir);
    snprintf(a, sizeof a, "%s --bits 4 --format onnx --out %s", art, o);
    expect_fail(a, "unknown --format 'onnx'");
    int b77[2] = {7, 7}, b24[2] = {2, 4}, b66[2] = {6, 6};
    expect_export_fail(art, "gguf", b77, NULL, "7 bits is not in the artifact");
    expect_export_fail(art, "safetensors-int", b24, NULL, "one width for every block");
    GgufOptions q41 = {.type = "q4_1"}, q41_force = {.type = "q4_1", .force = 1};
    expect_export_fail(art, "gguf", b66, &q41, "cannot be stored as Q4_1 exactly");
    snprintf(a, sizeof a, "%s --bits 2,2,2 --format gguf --out %s", art, o);
    expect_fail(a, "more widths than the 2 blocks");
    snprintf(a, sizeof a, "%s/x.gguf", tmpdir);
    CHECK_MSG(export_art(art, "gguf", b66, a, &q41_force, NULL, &err) == 0,
              "--force should store unmappable linears as F16: %s", err.msg);
    char cmd[8192];
    /* mixed precision: one width per block from --avg-bits */
    snprintf(cmd, sizeof cmd, "%s export %s --avg-bits 3.5 --proxy --format gguf --out %s 2>&1", QUEPT_BIN,
             art, a);
    int st;
    char *outp = run_capture(cmd, &st);
    CHECK_MSG(st == 0 && outp && strstr(outp, "average 3.5"), "--avg-bits export: %s", outp ? outp : "");
    free(outp);
    snprintf(a, sizeof a, "%s --avg-bits 3.5 --bits 3 --format gguf --out %s", art, o);
    expect_fail(a, "exclude each other");
    test_hf_tokenizer_files(art, em.cfg.vocab_size);
    char tok[600];
    snprintf(tok, sizeof tok, "%s/models/llama2-tokenizer.bin", QUEPT_SHARED_DIR);
    if (access(tok, R_OK) == 0) {
        GgufVocab tz = {0};
        int rc = gguf_vocab_load(&tz, tok, em.cfg.vocab_size, &err);
        CHECK_MSG(rc != 0, "--tokenizer %s on a vocab-%d model should fail", tok, em.cfg.vocab_size);
        CHECK_MSG(strstr(err.msg, "32000 tokens, but the model's vocab_size is 96"),
                  "expected the sizes in: %s", err.msg);
        gguf_vocab_free(&tz);
    }
    elastic_free(&em);

    /* widths and shapes the int32 packing cannot hold */
    {
        ModelConfig c48 = small_cfg(1);
        c48.dim = 48;
        c48.head_dim = 12;
        QuantConfig rq;
        small_qc(&rq, METHOD_RTN);
        CHECK(quant_parse_bits(&rq, "3,4,7", &err) == 0);
        build(&em, &c48, &rq, 8);
        snprintf(art, sizeof art, "%s/c48.qept", tmpdir);
        CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
        int b7[1] = {7}, b3[1] = {3}, b4[1] = {4};
        expect_export_fail(art, "safetensors-int", b7, NULL, "packs whole blocks of 32 codes");
        expect_export_fail(art, "safetensors-int", b3, NULL, "does not fill whole int32 words");
        /* 48*4 bits fill whole words (gptq_v2 is fine), but AutoGPTQ's rows are in//32*b */
        expect_int_fail(art, b4, "gptq", "AutoGPTQ allocates in//32*4 = 4 qweight rows");
        elastic_free(&em);
    }

    /* Qwen2-style q/k/v biases, in a model with HF (halves) and with
     * interleaved q/k rows: every format carries them, in its row order */
    for (int halves = 1; halves >= 0; halves--) {
        ModelConfig cb = small_cfg(2);
        cb.has_qkv_bias = 1;
        cb.rope_halves = halves;
        small_qc(&qc, METHOD_QUEPT);
        build(&em, &cb, &qc, 30 + halves);
        snprintf(art, sizeof art, "%s/bias%d.qept", tmpdir, halves);
        CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
        test_fp16(&em, art);
        test_int(&em, art, 3, NULL);
        test_int(&em, art, 4, "gptq");
        test_gguf(&em, art, 4, 5, "Q4_1", "Q5_1");
        test_gguf(&em, art, 6, 2, "Q8_0", "Q4_1");
        elastic_free(&em);
    }
    test_tokenizer_keys();
    test_int_formats();

    /* power-of-two artifact: the F16 export carries the switched (±s·2^E)
     * weights; the integer formats refuse it, naming the cause */
    QuantConfig pq;
    small_qc(&pq, METHOD_QUEPT);
    pq.format = QFORMAT_POT;
    pq.teq = TEQ_OFF; /* not implemented for PoT */
    CHECK(quant_parse_bits(&pq, "2-5", &err) == 0);
    c = small_cfg(2);
    build(&em, &c, &pq, 6);
    snprintf(art, sizeof art, "%s/pot.qept", tmpdir);
    CHECK_MSG(elastic_write(&em, art, &err) == 0, "%s", err.msg);
    test_fp16(&em, art);
    snprintf(a, sizeof a, "%s --bits 4 --format safetensors-int --out %s", art, o);
    expect_fail(a, "holds power-of-two codes");
    snprintf(a, sizeof a, "%s --bits 4 --format gguf --out %s", art, o);
    expect_fail(a, "use --format safetensors-fp16");
    elastic_free(&em);
    scratch_remove(tmpdir);
    CHECK_DONE();
}
