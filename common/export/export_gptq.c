/* export_gptq.c — safetensors-int: the switched codes as a GPTQ checkpoint
 * (see export.h; layouts and the loaders behind them: docs/formats.md,
 * "safetensors-int packing"; the word layouts: model/gptq_layout.h).
 *
 * Per linear "model.layers.N.<proj>.": qweight I32 (in*b/32, out), qzeros
 * I32 (ng, out*b/32), scales F16 (ng, out), g_idx I32 (in) = i / group, and
 * for a Qwen2 model bias F16 (out) on q/k/v; W[o][i] = (code - zero) *
 * scale. Rows of q/k (and their biases) in HF order; embeddings, norms and
 * the head F16. One width for every block. The checkpoint format, by width:
 *   default  gptq_v2 at 2/3/4/8 bits (classic words; GPTQModel, and
 *            transformers through it), gptq_p at 5/6/7 (GPTQModel's planar
 *            words: GPTQModel reads 5/6/7-bit gptq / gptq_v2 as planar too,
 *            so no other layout is safe there; transformers and AutoGPTQ
 *            refuse these widths).
 *   gptq     v1 (stored zero = zero - 1) at 2/3/4/8 bits, for AutoGPTQ
 *            (which refuses gptq_v2): in and out multiples of 32 (AutoGPTQ
 *            allocates in//32*b rows), no zero point 0 (v1 cannot hold it)
 *            and at 8 bits none above 15 (AutoGPTQ's 8-bit CUDA kernels
 *            keep 4 bits of it). GPTQModel's own loader refuses v1 with
 *            sym false.
 *   gptq_v2  as the default at 2/3/4/8; refused at 5/6/7.
 *   gptq_p   planar at 2 and 4..8 bits (2/4/8: the same words as
 *            classic); refused at 3, where transformers would read planar
 *            words as classic.
 * Whatever a loader would misread is refused naming the loader and the
 * rule; a refusal leaves nothing behind. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "model/gptq_layout.h"
#include "model/hf.h"
#include "model/safetensors.h"

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

/* The checkpoint format for `requested` (NULL or "auto": by width) at b bits. */
static int choose_format(const char *requested, int b, GptqFormat *f, QErr *err) {
    const int planar_only = b >= 5 && b <= 7;
    if (!requested || strcmp(requested, "auto") == 0) {
        *f = planar_only ? GPTQ_P : GPTQ_V2;
        return 0;
    }
    if (gptq_format_parse(requested, f, err) != 0)
        return qerr_set(err,
                        "safetensors-int: unknown --checkpoint-format '%s' (auto, gptq, gptq_v2 or gptq_p)",
                        requested);
    if (planar_only && *f != GPTQ_P)
        return qerr_set(err,
                        "safetensors-int: --checkpoint-format %s at %d bits: GPTQModel reads a 5-, 6- or "
                        "7-bit gptq / gptq_v2 checkpoint as its planar gptq_p layout, and AutoGPTQ and "
                        "transformers take only 2, 3, 4 and 8 bits; use gptq_p (the default at this width)",
                        requested, b);
    /* optimum's _replace_by_quant_layers builds GPTQModel's modules without
     * the checkpoint format, and a 3-bit module is planar only when told */
    if (b == 3 && *f == GPTQ_P)
        return qerr_set(
            err, "safetensors-int: --checkpoint-format gptq_p at 3 bits: transformers (through optimum) "
                 "builds its GPTQ modules without the checkpoint format and would read planar 3-bit "
                 "words as classic ones; use gptq_v2 (the default, which GPTQModel reads too)");
    return 0;
}

/* Shapes the loaders of layout L read as written (out, in of one linear). */
static int check_shape(const GptqLayout *L, const char *name, int out, int in, QErr *err) {
    const int b = L->bits;
    if (L->planar && (in % 32 || out % 32))
        return qerr_set(err,
                        "%s: shape (%d, %d): GPTQModel's planar gptq_p layout (%d bits) packs whole blocks "
                        "of 32 codes, so in and out must be multiples of 32 (use --format gguf or "
                        "safetensors-fp16)",
                        name, out, in, b);
    if (!L->planar && (((size_t)in * b) % 32 || ((size_t)out * b) % 32))
        return qerr_set(err,
                        "%s: shape (%d, %d) at %d bits does not fill whole int32 words: GPTQModel unpacks "
                        "ceil(n*%d/32) words into more than n codes (in*%d and out*%d must be multiples of "
                        "32; use --format gguf or safetensors-fp16)",
                        name, out, in, b, b, b, b);
    if (L->format == GPTQ_V1 && (in % 32 || out % 32))
        return qerr_set(err,
                        "%s: shape (%d, %d) with --checkpoint-format gptq: AutoGPTQ allocates in//32*%d = %d "
                        "qweight rows and out//32*%d = %d qzeros columns where the codes fill %d and %d, so "
                        "in and out must be multiples of 32 (the default gptq_v2 is read by GPTQModel)",
                        name, out, in, b, in / 32 * b, b, out / 32 * b, in * b / 32, out * b / 32);
    return 0;
}

/* A zero point z (row o, group g) that layout L stores and its loaders
 * read back as z. */
static int check_zero(const GptqLayout *L, const char *name, int o, int g, float z, QErr *err) {
    const float qmax = (float)((1 << L->bits) - 1);
    if (!(z >= 0.0f && z <= qmax))
        return qerr_set(err,
                        "%s: row %d group %d has zero point %g outside [0, %g]; GPTQ's packed qzeros cannot "
                        "hold it (use --format safetensors-fp16 or gguf)",
                        name, o, g, (double)z, (double)qmax);
    if (L->zero_offset && z == 0.0f)
        return qerr_set(err,
                        "%s: row %d group %d has zero point 0, which --checkpoint-format gptq (v1, stored as "
                        "zero - 1) cannot hold; use the default gptq_v2",
                        name, o, g);
    /* autogptq_cuda_kernel_{64,256}.cu, VecQuant8MatMulKernel*: zero =
     * (((stored >> shift) & 0xFF) + 1) & 0x0f */
    if (L->zero_offset && L->bits == 8 && z > 15.0f)
        return qerr_set(
            err,
            "%s: row %d group %d has zero point %g: AutoGPTQ's 8-bit CUDA kernels keep 4 bits of a "
            "v1 zero point ((stored + 1) & 0x0f), so --checkpoint-format gptq at 8 bits holds "
            "zero points up to 15 only; use the default gptq_v2",
            name, o, g, (double)z);
    return 0;
}

static int add_int_linear(StWriter *w, Owned *ow, const ModelConfig *c, const GptqLayout *L, int j, int l,
                          const SwitchedLinear *sl, QErr *err) {
    const int b = sl->bits, out = sl->out, in = sl->in, ng = sl->ng;
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s", j, HF_LIN[l]);
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
        for (int i = 0; i < in; i++) gptq_put(L, qw + r, (size_t)out, (size_t)i, cr[i]);
        for (int g = 0; g < ng; g++) {
            float z = sl->zeros[(size_t)o * ng + g];
            if (check_zero(L, name, o, g, z, err) != 0) {
                free(sc);
                return -1;
            }
            gptq_put(L, qz + (size_t)g * zcols, 1, (size_t)r, (uint32_t)z - (uint32_t)L->zero_offset);
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

static int write_int_config(const char *path, const ElasticModel *em, const GptqLayout *L, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const int b = L->bits;
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
    /* GPTQModel reads "format" first, AutoGPTQ and optimum read
     * "checkpoint_format": both, as GPTQModel itself writes them */
    cJSON_AddStringToObject(q, "format", gptq_format_name(L->format));
    cJSON_AddStringToObject(q, "checkpoint_format", gptq_format_name(L->format));
    cJSON_AddStringToObject(q, "pack_dtype", "int32");
    cJSON *meta = cJSON_AddObjectToObject(q, "meta"), *who = cJSON_AddArrayToObject(meta, "quantizer");
    cJSON_AddItemToArray(who, cJSON_CreateString("quept"));
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

int export_int(const ElasticModel *em, const SwitchedModel *sw, const char *checkpoint_format,
               const char *dir, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const int b = sw->bits[0];
    if (em->qc.rotate != ROTATE_NONE) return export_refuse_rotated("safetensors-int", err);
    for (int j = 1; j < c->n_layers; j++)
        if (sw->bits[j] != b)
            return qerr_set(err, "safetensors-int: one width for every block is required (GPTQ's "
                                 "config has one 'bits'); use gguf or safetensors-fp16 for a per-block mix");
    if (b < 2 || b > 8)
        return qerr_set(
            err, "safetensors-int: %d bits is not supported (2 to 8; use gguf or safetensors-fp16)", b);
    GptqFormat fmt;
    if (choose_format(checkpoint_format, b, &fmt, err) != 0) return -1;
    const GptqLayout L = gptq_layout(fmt, b);
    char name[160];
    for (int j = 0; j < c->n_layers; j++) /* every shape before any zero point */
        for (int l = 0; l < N_LIN; l++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", j, HF_LIN[l]);
            if (check_shape(&L, name, sw->lin[j][l].out, sw->lin[j][l].in, err) != 0) return -1;
        }
    int made_dir = access(dir, F_OK) != 0;
    if (dir_make_all(dir, err) != 0) return -1;
    StWriter w;
    Owned ow = {0};
    st_writer_init(&w);
    int rc = st_writer_set_metadata(&w, "format", "pt", err);
    int64_t sh[2] = {c->vocab_size, c->dim};
    rc = rc || st_writer_add_f32(&w, "model.embed_tokens.weight", ST_F16, 2, sh, em->base.tok_emb, err);
    if (!c->tied_classifier)
        rc = rc || st_writer_add_f32(&w, "lm_head.weight", ST_F16, 2, sh, em->base.classifier, err);
    sh[0] = c->dim;
    rc = rc || st_writer_add_f32(&w, "model.norm.weight", ST_F16, 1, sh, em->base.final_norm, err);
    for (int j = 0; rc == 0 && j < c->n_layers; j++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", j);
        rc = rc || st_writer_add_f32(&w, name, ST_F16, 1, sh, em->base.blocks[j].attn_norm, err);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", j);
        rc = rc || st_writer_add_f32(&w, name, ST_F16, 1, sh, em->base.blocks[j].mlp_norm, err);
        for (int l = 0; rc == 0 && l < N_LIN; l++) {
            rc = add_int_linear(&w, &ow, c, &L, j, l, &sw->lin[j][l], err);
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
    if (rc || write_int_config(path, em, &L, err)) {
        export_remove_debris(dir, made_dir);
        return -1;
    }
    return 0;
}
