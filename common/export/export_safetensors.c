/* export_safetensors.c — the Hugging Face directory exports (see export.h).
 *
 * safetensors-fp16  config.json + model.safetensors, the switched weights
 *   dequantized and stored as F16 (hf_write_dir: HF names, q/k rows in HF's
 *   "halves" order, q/k/v biases of a Qwen2 model included).
 *
 * safetensors-int   AutoGPTQ's layout, checkpoint format "gptq_v2" (zero
 *   points stored as they are, not minus one), per linear
 *   "model.layers.N.<proj>.":
 *     qweight  I32 (in*b/32, out)  codes of column o as one little-endian bit
 *                                  stream along the INPUT dim: code i of
 *                                  column o occupies stream bits [i*b, i*b+b)
 *                                  of column o, stream bit p being bit p%32 of
 *                                  word [p/32][o]; codes may straddle words
 *     qzeros   I32 (ng, out*b/32)  zero points of group g as one stream along
 *                                  the OUTPUT dim (same rule, row g)
 *     scales   F16 (ng, out)       (rounded from our fp32 scales)
 *     g_idx    I32 (in)            i / group (the last group may be short)
 *     bias     F16 (out)           q/k/v only, Qwen2 models (has_qkv_bias)
 *   W[o][i] = (code - zero) * scale (+ bias[o]).  For 2, 4 and 8 bits no code
 *   straddles and this is GPTQ's packing (pf = 32/b codes per word, code of
 *   input i at bits (i % pf)*b of word i/pf); for 3 bits it is exactly
 *   AutoGPTQ/GPTQModel's 3-bit pack (32 codes in 3 words: 10 codes, a code
 *   split 2+1 bits, 10 codes, a code split 1+2, 10 codes). 5 and 6 bits use
 *   the same stream (32 codes in 5 / 6 words); no GPTQ kernel reads them.
 *   One width for every block, in*b and out*b multiples of 32, every zero
 *   point within [0, 2^b-1] (a group whose clipped range excludes 0 has one
 *   outside; refused with its name). q/k rows (and biases) in HF order.
 *   Embeddings, norms and the head are F16. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "model/hf.h"
#include "model/safetensors.h"

/* A failed export leaves no debris: when it made the directory, the files it
 * writes and the directory go again (a directory that was there is left as
 * it is: its files are replaced atomically or not at all). */
void export_remove_debris(const char *dir, int made_dir) {
    if (!made_dir) return;
    static const char *const FILES[] = {"model.safetensors", "config.json"};
    char path[1200];
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, FILES[i]);
        unlink(path);
    }
    for (int i = 0; EXPORT_HF_TOKENIZER_FILES[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, EXPORT_HF_TOKENIZER_FILES[i]);
        unlink(path);
    }
    rmdir(dir);
}

int export_fp16(const ElasticModel *em, const int *bits, const char *dir, QErr *err) {
    int made_dir = access(dir, F_OK) != 0;
    Model q = {0};
    int rc = elastic_switch(em, bits, &q, err); /* copies the q/k/v biases too */
    if (rc == 0) {
        q.tok_emb = em->base.tok_emb;
        q.final_norm = em->base.final_norm;
        q.classifier = em->base.classifier;
        rc = hf_write_dir(dir, &q, 1, err);
    }
    q.tok_emb = q.final_norm = q.classifier = NULL;
    model_free(&q);
    if (rc != 0) export_remove_debris(dir, made_dir);
    return rc;
}

static const char *const HF_LIN[N_LIN] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};

/* Buffers handed to the safetensors writer, freed after it has written. */
typedef struct {
    void **p;
    int n, cap;
} Owned;

static void *own(Owned *o, size_t bytes) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 64;
        void **np = realloc(o->p, (size_t)cap * sizeof *np);
        if (!np) return NULL;
        o->p = np;
        o->cap = cap;
    }
    void *b = calloc(1, bytes ? bytes : 1);
    if (b) o->p[o->n++] = b;
    return b;
}

static void owned_free(Owned *o) {
    for (int i = 0; i < o->n; i++) free(o->p[i]);
    free(o->p);
}

/* ORs the b-bit value v into the little-endian bit stream at stream bit pos;
 * word k of the stream is words[k * stride]. */
static void stream_put(uint32_t *words, size_t stride, size_t pos, int b, uint32_t v) {
    size_t k = pos / 32;
    int sh = (int)(pos % 32);
    words[k * stride] |= v << sh;
    if (sh + b > 32) words[(k + 1) * stride] |= v >> (32 - sh);
}

static int add_int_linear(StWriter *w, Owned *ow, const ModelConfig *c, int j, int l,
                          const SwitchedLinear *sl, QErr *err) {
    const int b = sl->bits, out = sl->out, in = sl->in, ng = sl->ng;
    const float qmax = (float)((1 << b) - 1);
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s", j, HF_LIN[l]);
    if (((size_t)in * b) % 32 || ((size_t)out * b) % 32)
        return qerr_set(err,
                        "%s: shape (%d, %d) at %d bits does not fill whole int32 words (in*%d and "
                        "out*%d must be multiples of 32)",
                        name, out, in, b, b, b);
    const size_t qrows = (size_t)in * b / 32, zcols = (size_t)out * b / 32;
    uint32_t *qw = own(ow, qrows * out * 4), *qz = own(ow, (size_t)ng * zcols * 4);
    int32_t *gidx = own(ow, (size_t)in * 4);
    float *sc = malloc((size_t)ng * out * sizeof(float));
    if (!qw || !qz || !gidx || !sc) {
        free(sc);
        return qerr_set(err, "out of memory");
    }
    for (int r = 0; r < out; r++) {
        const int o = export_src_row(c, l, r, 1);
        const uint8_t *cr = sl->codes + (size_t)o * in;
        for (int i = 0; i < in; i++) stream_put(qw + r, (size_t)out, (size_t)i * b, b, cr[i]);
        for (int g = 0; g < ng; g++) {
            float z = sl->zeros[(size_t)o * ng + g];
            if (!(z >= 0.0f && z <= qmax)) {
                free(sc);
                return qerr_set(err,
                                "%s: row %d group %d has zero point %g outside [0, %g]; GPTQ's "
                                "packed qzeros cannot hold it (use --format safetensors-fp16 or gguf)",
                                name, o, g, (double)z, (double)qmax);
            }
            stream_put(qz + (size_t)g * zcols, 1, (size_t)r * b, b, (uint32_t)z);
            sc[(size_t)g * out + r] = sl->scales[(size_t)o * ng + g];
        }
    }
    for (int i = 0; i < in; i++) gidx[i] = i / sl->group;
    char t[200];
    int64_t sh[2] = {(int64_t)qrows, out};
    snprintf(t, sizeof t, "%s.qweight", name);
    int rc = st_writer_add(w, t, ST_I32, 2, sh, qw, qrows * out * 4, err);
    sh[0] = ng, sh[1] = (int64_t)zcols;
    snprintf(t, sizeof t, "%s.qzeros", name);
    rc = rc || st_writer_add(w, t, ST_I32, 2, sh, qz, (size_t)ng * zcols * 4, err);
    sh[0] = in;
    snprintf(t, sizeof t, "%s.g_idx", name);
    rc = rc || st_writer_add(w, t, ST_I32, 1, sh, gidx, (size_t)in * 4, err);
    if (rc) {
        free(sc);
        return -1;
    }
    sh[0] = ng, sh[1] = out;
    snprintf(t, sizeof t, "%s.scales", name);
    return st_writer_add_f32_owned(w, t, ST_F16, 2, sh, sc, err);
}

/* q/k/v bias of block j, linear l, rows in HF order, as F16 "<proj>.bias". */
static int add_bias(StWriter *w, Owned *ow, const ElasticModel *em, int j, int l, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const BlockWeights *bw = &em->base.blocks[j];
    const float *src = l == LIN_Q ? bw->bq : l == LIN_K ? bw->bk : bw->bv;
    const int n = (l == LIN_Q ? c->n_heads : c->n_kv_heads) * c->head_dim;
    float *b = own(ow, (size_t)n * sizeof(float));
    if (!b) return qerr_set(err, "out of memory");
    for (int r = 0; r < n; r++) b[r] = src[export_src_row(c, l, r, 1)];
    char t[200];
    snprintf(t, sizeof t, "model.layers.%d.%s.bias", j, HF_LIN[l]);
    int64_t sh[1] = {n};
    return st_writer_add_f32(w, t, ST_F16, 1, sh, b, err);
}

static int write_int_config(const char *path, const ElasticModel *em, int b, QErr *err) {
    const ModelConfig *c = &em->cfg;
    cJSON *root = cJSON_CreateObject(), *archs = cJSON_AddArrayToObject(root, "architectures");
    /* q/k/v biases without an o_proj bias is Qwen2's layout (as hf_write_dir) */
    cJSON_AddItemToArray(archs,
                         cJSON_CreateString(c->has_qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", c->has_qkv_bias ? "qwen2" : "llama");
    cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->seq_len);
    cJSON_AddNumberToObject(root, "rope_theta", hf_json_float(c->rope_theta));
    cJSON_AddNumberToObject(root, "rms_norm_eps", hf_json_float(c->norm_eps));
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied_classifier);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddBoolToObject(root, "attention_bias", 0);
    cJSON_AddStringToObject(root, "torch_dtype", "float16");
    cJSON *q = cJSON_AddObjectToObject(root, "quantization_config");
    cJSON_AddStringToObject(q, "quant_method", "gptq");
    cJSON_AddNumberToObject(q, "bits", b);
    cJSON_AddNumberToObject(q, "group_size", em->qc.group[b] > 0 ? em->qc.group[b] : -1);
    cJSON_AddBoolToObject(q, "desc_act", 0);
    cJSON_AddBoolToObject(q, "sym", 0);
    cJSON_AddStringToObject(q, "checkpoint_format", "gptq_v2");
    cJSON_AddStringToObject(q, "quantizer", "quept");
    cJSON_AddStringToObject(q, "quept_packing",
                            "little-endian bit stream of b-bit codes in int32 words: "
                            "qweight along in, qzeros along out");
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return qerr_set(err, "%s: out of memory", path);
    FILE *f = fopen(path, "w");
    int rc = 0;
    if (!f || fputs(text, f) < 0) rc = qerr_set(err, "%s: cannot write: %s", path, strerror(errno));
    if (f && fclose(f) != 0 && rc == 0) rc = qerr_set(err, "%s: cannot write", path);
    cJSON_free(text);
    return rc;
}

int export_int(const ElasticModel *em, const SwitchedModel *sw, const char *dir, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const int b = sw->bits[0];
    for (int j = 1; j < c->n_layers; j++)
        if (sw->bits[j] != b)
            return qerr_set(err, "safetensors-int: one width for every block is required (GPTQ's "
                                 "config has one 'bits'); use gguf or safetensors-fp16 for a per-block mix");
    if (b != 2 && b != 3 && b != 4 && b != 5 && b != 6 && b != 8)
        return qerr_set(err,
                        "safetensors-int: %d bits is not supported (--bits must be 2, 3, 4, 5, 6 "
                        "or 8; use gguf or safetensors-fp16)",
                        b);
    int made_dir = access(dir, F_OK) != 0;
    if (dir_make_all(dir, err) != 0) return -1;
    StWriter w;
    Owned ow = {0};
    st_writer_init(&w);
    int rc = st_writer_set_metadata(&w, "format", "pt", err);
    rc = rc || st_writer_set_metadata(&w, "quept_layout",
                                      "gptq_v2: qweight int32 bit stream along in, "
                                      "qzeros int32 bit stream along out, scales f16, W=(q-z)*s",
                                      err);
    int64_t sh[2] = {c->vocab_size, c->dim};
    rc = rc || st_writer_add_f32(&w, "model.embed_tokens.weight", ST_F16, 2, sh, em->base.tok_emb, err);
    if (!c->tied_classifier)
        rc = rc || st_writer_add_f32(&w, "lm_head.weight", ST_F16, 2, sh, em->base.classifier, err);
    sh[0] = c->dim;
    rc = rc || st_writer_add_f32(&w, "model.norm.weight", ST_F16, 1, sh, em->base.final_norm, err);
    char name[160];
    for (int j = 0; rc == 0 && j < c->n_layers; j++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", j);
        rc = rc || st_writer_add_f32(&w, name, ST_F16, 1, sh, em->base.blocks[j].attn_norm, err);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", j);
        rc = rc || st_writer_add_f32(&w, name, ST_F16, 1, sh, em->base.blocks[j].mlp_norm, err);
        for (int l = 0; rc == 0 && l < N_LIN; l++) {
            rc = add_int_linear(&w, &ow, c, j, l, &sw->lin[j][l], err);
            if (rc == 0 && c->has_qkv_bias && (l == LIN_Q || l == LIN_K || l == LIN_V))
                rc = add_bias(&w, &ow, em, j, l, err);
        }
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = rc || st_writer_write(&w, path, err);
    st_writer_free(&w);
    owned_free(&ow);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rc || write_int_config(path, em, b, err)) {
        export_remove_debris(dir, made_dir);
        return -1;
    }
    return 0;
}
