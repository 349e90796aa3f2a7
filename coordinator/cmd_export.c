/* cmd_export.c — `quept export`: an elastic artifact switched to one width
 * (or one width per block), written as a file other tools load.
 *
 * Formats (README, "Export"):
 *
 * safetensors-fp16  Hugging Face Llama directory (config.json +
 *   model.safetensors), the switched weights dequantized and stored as F16
 *   (hf_write_dir: HF names, q/k rows in HF's "halves" order).
 *
 * safetensors-int   Hugging Face directory in AutoGPTQ's layout, checkpoint
 *   format "gptq_v2" (zero points stored as they are, not minus one), per
 *   linear "model.layers.N.<proj>.":
 *     qweight  I32 (in/pf, out)   pf = 32/b codes per word, packed along the
 *                                 INPUT dim: word [i][o] holds code[o][i*pf+k]
 *                                 in bits [k*b, k*b+b), k = 0..pf-1
 *     qzeros   I32 (ng, out/pf)   zero points packed along the OUTPUT dim:
 *                                 word [g][w] holds zero[w*pf+k][g] at k*b
 *     scales   F16 (ng, out)      (rounded from our fp32 scales)
 *     g_idx    I32 (in)           g_idx[i] = i / group (last group may be short)
 *   W[o][i] = (code - zero) * scale.  Widths 2, 4, 8 only (3, 5, 6, 7 bits
 *   would cross 32-bit words, which GPTQ's kernels pack differently; refused),
 *   one width for every block, in and out multiples of pf, and every zero point
 *   within [0, 2^b-1] (a group whose clipped range excludes 0 has one outside;
 *   refused with its name). q/k rows are in HF order, like the F16 export.
 *   Embeddings, norms and the head are F16.
 *
 * gguf              GGUF v3, llama architecture, llama.cpp's tensor names
 *   (token_embd, blk.N.attn_q, ...), q/k rows in llama.cpp's own (interleaved,
 *   Meta/llama2.c) order: llama.cpp's converter permutes HF q/k back to
 *   interleaved, so we permute when the artifact's model came from an HF
 *   directory (rope_halves) and copy as is when it came from llama2.c.
 *   Linears are stored in a ggml block type when our grid maps onto it exactly
 *   (every 32-block lies in one of our groups: in % 32 == 0 and group % 32 ==
 *   0; the codes are ours, unchanged):
 *     Q4_1 (b <= 4): d = f16(scale), m = f16(-zero*scale), value = d*q + m
 *     Q5_1 (b == 5): same with 5-bit q
 *     Q8_0 (b >= 6): d = f16(scale), q = code - zero (must fit in int8)
 *   "Exactly" means: same codes, same grid, the only difference being the F16
 *   rounding of d (and of m for Q4_1/Q5_1) — the same rounding the F16 scales
 *   of safetensors-int have. Anything else is F16 (dequantized); an explicit
 *   --gguf-type that cannot hold a linear is an error unless --force (then F16
 *   for that linear). Norms are F32, embeddings and head F16. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifact/elastic.h"
#include "artifact/mixed.h"
#include "artifact/switch.h"
#include "base/log.h"
#include "cli.h"
#include "model/hf.h"
#include "model/safetensors.h"

static const char *HELP =
    "usage: quept export ARTIFACT (--bits B|LIST | --avg-bits X) --format F --out PATH [options]\n"
    "\n"
    "Switches the elastic artifact to B bits (or one width per block, comma-\n"
    "separated) and writes it for other tools.\n"
    "\n"
    "  --format F       safetensors-fp16  HF Llama dir, dequantized F16 weights\n"
    "                                     (the only one for power-of-two artifacts)\n"
    "                   safetensors-int   HF dir, GPTQ (v2) packed int32 codes,\n"
    "                                     F16 scales, qzeros, g_idx (2/4/8 bits)\n"
    "                   gguf              GGUF v3 for llama.cpp (llama arch)\n"
    "  --out PATH       output directory (safetensors-*) or file (gguf)\n"
    "  --avg-bits X     one width per block chosen for a parameter-weighted\n"
    "                   average of X bits (mixed_assign_bits; see quept eval)\n"
    "  --proxy          with --avg-bits: cost = calibration loss, not sensitivity\n"
    "  --gguf-type T    auto (default: Q4_1 for <=4 bits, Q5_1 for 5, Q8_0 for\n"
    "                   6-8 where the grid maps exactly, else F16), f16, q4_1,\n"
    "                   q5_1, q8_0\n"
    "  --force          with an explicit --gguf-type, store linears it cannot\n"
    "                   hold exactly as F16 instead of failing\n"
    "  --artifact A     the artifact (instead of the positional argument)\n";

/* ---- small helpers ---- */

/* Our row of output row r in the target order (q/k permutation).
 * to_halves: the target is HF order and ours is interleaved; from_halves:
 * the target is interleaved and ours is HF order. */
static int src_row(const ModelConfig *c, int l, int r, int want_halves) {
    if ((l != LIN_Q && l != LIN_K) || c->rope_halves == want_halves || c->head_dim % 2) return r;
    int hd = c->head_dim, h = hd / 2, head = r / hd, i = r % hd, s;
    if (want_halves) s = i < h ? 2 * i : 2 * (i - h) + 1;    /* HF row i ← interleaved */
    else s = (i % 2 == 0) ? i / 2 : h + (i - 1) / 2;         /* interleaved row i ← HF */
    return head * hd + s;
}

/* ---- safetensors-fp16 ---- */

static int export_fp16(const ElasticModel *em, const int *bits, const char *out, QErr *err) {
    Model q = {0};
    int rc = elastic_switch(em, bits, &q, err);
    if (rc == 0) {
        q.tok_emb = em->base.tok_emb;
        q.final_norm = em->base.final_norm;
        q.classifier = em->base.classifier;
        rc = hf_write_dir(out, &q, 1, err);
    }
    q.tok_emb = q.final_norm = q.classifier = NULL;
    model_free(&q);
    return rc;
}

/* ---- safetensors-int (GPTQ v2 layout) ---- */

static const char *const HF_LIN[N_LIN] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};

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

static int add_int_linear(StWriter *w, Owned *ow, const ModelConfig *c, int j, int l,
                          const SwitchedLinear *sl, QErr *err) {
    const int b = sl->bits, pf = 32 / b, out = sl->out, in = sl->in, ng = sl->ng;
    const float qmax = (float)((1 << b) - 1);
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s", j, HF_LIN[l]);
    if (in % pf || out % pf)
        return qerr_set(err, "%s: shape (%d, %d) is not a multiple of %d codes per int32", name, out,
                        in, pf);
    uint32_t *qw = own(ow, (size_t)(in / pf) * out * 4), *qz = own(ow, (size_t)ng * (out / pf) * 4);
    int32_t *gidx = own(ow, (size_t)in * 4);
    float *sc = malloc((size_t)ng * out * sizeof(float));
    if (!qw || !qz || !gidx || !sc) {
        free(sc);
        return qerr_set(err, "out of memory");
    }
    for (int r = 0; r < out; r++) {
        const int o = src_row(c, l, r, 1);
        const uint8_t *cr = sl->codes + (size_t)o * in;
        for (int i = 0; i < in; i++) qw[(size_t)(i / pf) * out + r] |= (uint32_t)cr[i] << (b * (i % pf));
        for (int g = 0; g < ng; g++) {
            float z = sl->zeros[(size_t)o * ng + g];
            if (!(z >= 0.0f && z <= qmax)) {
                free(sc);
                return qerr_set(err, "%s: row %d group %d has zero point %g outside [0, %g]; GPTQ's "
                                "packed qzeros cannot hold it (use --format safetensors-fp16 or gguf)",
                                name, o, g, (double)z, (double)qmax);
            }
            qz[(size_t)g * (out / pf) + r / pf] |= (uint32_t)z << (b * (r % pf));
            sc[(size_t)g * out + r] = sl->scales[(size_t)o * ng + g];
        }
    }
    for (int i = 0; i < in; i++) gidx[i] = i / sl->group;
    char t[200];
    int64_t sh[2];
    sh[0] = in / pf, sh[1] = out;
    snprintf(t, sizeof t, "%s.qweight", name);
    if (st_writer_add(w, t, ST_I32, 2, sh, qw, (size_t)sh[0] * sh[1] * 4, err)) {
        free(sc);
        return -1;
    }
    sh[0] = ng, sh[1] = out / pf;
    snprintf(t, sizeof t, "%s.qzeros", name);
    if (st_writer_add(w, t, ST_I32, 2, sh, qz, (size_t)sh[0] * sh[1] * 4, err)) {
        free(sc);
        return -1;
    }
    sh[0] = in;
    snprintf(t, sizeof t, "%s.g_idx", name);
    if (st_writer_add(w, t, ST_I32, 1, sh, gidx, (size_t)in * 4, err)) {
        free(sc);
        return -1;
    }
    sh[0] = ng, sh[1] = out;
    snprintf(t, sizeof t, "%s.scales", name);
    return st_writer_add_f32_owned(w, t, ST_F16, 2, sh, sc, err);
}

static int write_int_config(const char *path, const ElasticModel *em, int b, QErr *err) {
    const ModelConfig *c = &em->cfg;
    cJSON *root = cJSON_CreateObject(), *archs = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", "llama");
    cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->seq_len);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->norm_eps);
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

static int export_int(const ElasticModel *em, const SwitchedModel *sw, const char *dir, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const int b = sw->bits[0];
    for (int j = 1; j < c->n_layers; j++)
        if (sw->bits[j] != b)
            return qerr_set(err, "safetensors-int: one width for every block is required (GPTQ's "
                            "config has one 'bits'); use gguf or safetensors-fp16 for a per-block mix");
    if (b != 2 && b != 4 && b != 8)
        return qerr_set(err, "safetensors-int: %d bits is not supported (GPTQ int32 packing is "
                        "implemented for 2, 4 and 8 bits; 3/5/6/7-bit codes would straddle words)", b);
    if (c->has_qkv_bias) return qerr_set(err, "safetensors-int: models with q/k/v biases are not supported");
    if (dir_make_all(dir, err) != 0) return -1;
    StWriter w;
    Owned ow = {0};
    st_writer_init(&w);
    int rc = st_writer_set_metadata(&w, "format", "pt", err);
    rc = rc || st_writer_set_metadata(&w, "quept_layout", "gptq_v2: qweight int32 along in, qzeros int32 "
                                      "along out, scales f16, W=(q-z)*s", err);
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
        for (int l = 0; rc == 0 && l < N_LIN; l++) rc = add_int_linear(&w, &ow, c, j, l, &sw->lin[j][l], err);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = rc || st_writer_write(&w, path, err);
    st_writer_free(&w);
    owned_free(&ow);
    snprintf(path, sizeof path, "%s/config.json", dir);
    return rc || write_int_config(path, em, b, err) ? -1 : 0;
}

/* ---- gguf ---- */

enum { GG_F32 = 0, GG_F16 = 1, GG_Q4_1 = 3, GG_Q5_1 = 7, GG_Q8_0 = 8 };
enum { GV_U32 = 4, GV_I32 = 5, GV_F32 = 6, GV_STRING = 8, GV_ARRAY = 9 };
#define GGUF_ALIGN 32

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} Buf;

static void put(Buf *b, const void *x, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(Buf *b, uint32_t v) { put(b, &v, 4); } /* little-endian hosts only */
static void put_u64(Buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(Buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(Buf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, GV_U32);
    put_u32(b, v);
}
static void kv_f32(Buf *b, const char *k, float v) {
    put_str(b, k);
    put_u32(b, GV_F32);
    put(b, &v, 4);
}
static void kv_str(Buf *b, const char *k, const char *v) {
    put_str(b, k);
    put_u32(b, GV_STRING);
    put_str(b, v);
}

typedef struct {
    char name[96];
    int type, ndim;
    int64_t ne[2];
    uint64_t off, nbytes;
    const float *f32; /* non-linear source, or NULL */
    int j, l;         /* linear source */
} GTensor;

static uint64_t type_bytes(int type, int64_t ne0, int64_t ne1) {
    uint64_t n = (uint64_t)ne0 * (uint64_t)ne1;
    switch (type) {
    case GG_F32: return n * 4;
    case GG_F16: return n * 2;
    case GG_Q4_1: return n / 32 * 20;
    case GG_Q5_1: return n / 32 * 24;
    default: return n / 32 * 34; /* Q8_0 */
    }
}

static const char *type_name(int t) {
    return t == GG_F32 ? "F32" : t == GG_F16 ? "F16" : t == GG_Q4_1 ? "Q4_1" : t == GG_Q5_1 ? "Q5_1" : "Q8_0";
}

/* 1 when the linear's grid maps onto block type t exactly (see the top). */
static int gguf_maps(const SwitchedLinear *sl, int t, char *why, size_t nwhy) {
    if (t == GG_F16) return 1;
    if (sl->in % 32 || sl->group % 32) {
        snprintf(why, nwhy, "group size %d / row length %d is not a multiple of 32", sl->group, sl->in);
        return 0;
    }
    if ((t == GG_Q4_1 && sl->bits > 4) || (t == GG_Q5_1 && sl->bits > 5)) {
        snprintf(why, nwhy, "%d-bit codes do not fit %s", sl->bits, type_name(t));
        return 0;
    }
    size_t ngt = (size_t)sl->out * sl->ng;
    for (size_t g = 0; g < ngt; g++) {
        float s = sl->scales[g], z = sl->zeros[g];
        if (!(fabsf(s) < 65504.0f) || !(fabsf(z * s) < 65504.0f)) {
            snprintf(why, nwhy, "a scale or minimum overflows F16");
            return 0;
        }
        if (t == GG_Q8_0 && (z > 128.0f || z < (float)((1 << sl->bits) - 1) - 127.0f)) {
            snprintf(why, nwhy, "code - zero leaves int8 (zero point %g)", (double)z);
            return 0;
        }
    }
    return 1;
}

/* Writes one linear's rows (target order) in type t. */
static int write_linear(FILE *f, const ModelConfig *c, int l, const SwitchedLinear *sl, int t, QErr *err) {
    const int in = sl->in, ng = sl->ng;
    size_t rowbytes = type_bytes(t, in, 1);
    uint8_t *row = malloc(rowbytes);
    if (!row) return qerr_set(err, "out of memory");
    for (int r = 0; r < sl->out; r++) {
        const int o = src_row(c, l, r, 0);
        const uint8_t *cr = sl->codes + (size_t)o * in;
        const float *sc = sl->scales + (size_t)o * ng, *zr = sl->zeros + (size_t)o * ng;
        if (t == GG_F16) {
            uint16_t *h = (uint16_t *)row;
            for (int i = 0; i < in; i++) {
                int g = i / sl->group;
                h[i] = float_to_f16(((float)cr[i] - zr[g]) * sc[g]);
            }
        } else {
            uint8_t *p = row;
            for (int k = 0; k < in / 32; k++) {
                const uint8_t *q = cr + 32 * k;
                int g = 32 * k / sl->group;
                uint16_t d = float_to_f16(sc[g]);
                memcpy(p, &d, 2);
                if (t == GG_Q8_0) {
                    int8_t *qs = (int8_t *)(p + 2);
                    for (int i = 0; i < 32; i++) qs[i] = (int8_t)((int)q[i] - (int)zr[g]);
                    p += 34;
                    continue;
                }
                uint16_t m = float_to_f16(-zr[g] * sc[g]);
                memcpy(p + 2, &m, 2);
                if (t == GG_Q4_1) {
                    for (int i = 0; i < 16; i++) p[4 + i] = (uint8_t)(q[i] | q[i + 16] << 4);
                    p += 20;
                } else { /* Q5_1: qh bit i = bit 4 of q[i], qs nibbles as Q4_1 */
                    uint32_t qh = 0;
                    for (int i = 0; i < 32; i++) qh |= (uint32_t)((q[i] >> 4) & 1) << i;
                    memcpy(p + 4, &qh, 4);
                    for (int i = 0; i < 16; i++) p[8 + i] = (uint8_t)((q[i] & 15) | (q[i + 16] & 15) << 4);
                    p += 24;
                }
            }
        }
        if (fwrite(row, 1, rowbytes, f) != rowbytes) {
            free(row);
            return qerr_set(err, "write failed: %s", strerror(errno));
        }
    }
    free(row);
    return 0;
}

static int write_f32_as(FILE *f, const float *x, size_t n, int t, QErr *err) {
    for (size_t i = 0; i < n; i++) {
        size_t w;
        if (t == GG_F32) w = fwrite(&x[i], 4, 1, f);
        else {
            uint16_t h = float_to_f16(x[i]);
            w = fwrite(&h, 2, 1, f);
        }
        if (w != 1) return qerr_set(err, "write failed: %s", strerror(errno));
    }
    return 0;
}

static const char *const GG_LIN[N_LIN] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                          "ffn_gate", "ffn_up", "ffn_down"};

static int export_gguf(const ElasticModel *em, const SwitchedModel *sw, const char *path,
                       const char *req, int force, QErr *err) {
    const ModelConfig *c = &em->cfg;
    if (c->has_qkv_bias) return qerr_set(err, "gguf: models with q/k/v biases (qwen2) are not supported");
    int want = -1; /* auto */
    if (!req || strcmp(req, "auto") == 0) want = -1;
    else if (strcmp(req, "f16") == 0) want = GG_F16;
    else if (strcmp(req, "q4_1") == 0) want = GG_Q4_1;
    else if (strcmp(req, "q5_1") == 0) want = GG_Q5_1;
    else if (strcmp(req, "q8_0") == 0) want = GG_Q8_0;
    else return qerr_set(err, "--gguf-type: unknown type '%s' (auto, f16, q4_1, q5_1, q8_0)", req);
    int nt = 2 + !c->tied_classifier + c->n_layers * (2 + N_LIN);
    GTensor *ts = calloc((size_t)nt, sizeof *ts);
    if (!ts) return qerr_set(err, "out of memory");
    int k = 0, rc = 0, n_exact = 0, n_f16 = 0;
#define ADD_F(nm, src, t, d0, d1, nd) \
    do { \
        snprintf(ts[k].name, sizeof ts[k].name, "%s", nm); \
        ts[k].f32 = src, ts[k].type = t, ts[k].ne[0] = d0, ts[k].ne[1] = d1, ts[k].ndim = nd; \
        k++; \
    } while (0)
    ADD_F("token_embd.weight", em->base.tok_emb, GG_F16, c->dim, c->vocab_size, 2);
    ADD_F("output_norm.weight", em->base.final_norm, GG_F32, c->dim, 1, 1);
    if (!c->tied_classifier) ADD_F("output.weight", em->base.classifier, GG_F16, c->dim, c->vocab_size, 2);
    char nm[96];
    for (int j = 0; rc == 0 && j < c->n_layers; j++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", j);
        ADD_F(nm, em->base.blocks[j].attn_norm, GG_F32, c->dim, 1, 1);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", j);
        ADD_F(nm, em->base.blocks[j].mlp_norm, GG_F32, c->dim, 1, 1);
        for (int l = 0; rc == 0 && l < N_LIN; l++) {
            const SwitchedLinear *sl = &sw->lin[j][l];
            int t = want;
            if (t < 0) t = sl->bits <= 4 ? GG_Q4_1 : sl->bits == 5 ? GG_Q5_1 : GG_Q8_0;
            char why[128];
            if (!gguf_maps(sl, t, why, sizeof why)) {
                if (want >= 0 && !force)
                    rc = qerr_set(err, "gguf: blk.%d.%s (%d bits) cannot be stored as %s exactly: %s "
                                  "(use --gguf-type auto, or --force to store it as F16)",
                                  j, GG_LIN[l], sl->bits, type_name(t), why);
                t = GG_F16;
            }
            if (t == GG_F16) n_f16++;
            else n_exact++;
            snprintf(ts[k].name, sizeof ts[k].name, "blk.%d.%s.weight", j, GG_LIN[l]);
            ts[k].type = t, ts[k].ne[0] = sl->in, ts[k].ne[1] = sl->out, ts[k].ndim = 2;
            ts[k].j = j, ts[k].l = l;
            k++;
        }
    }
#undef ADD_F
    if (rc) {
        free(ts);
        return -1;
    }
    Buf kv = {0}, ti = {0};
    int n_kv = 0;
    kv_str(&kv, "general.architecture", "llama"), n_kv++;
    kv_str(&kv, "general.name", "quept export"), n_kv++;
    kv_u32(&kv, "general.alignment", GGUF_ALIGN), n_kv++;
    kv_u32(&kv, "llama.context_length", (uint32_t)c->seq_len), n_kv++;
    kv_u32(&kv, "llama.embedding_length", (uint32_t)c->dim), n_kv++;
    kv_u32(&kv, "llama.block_count", (uint32_t)c->n_layers), n_kv++;
    kv_u32(&kv, "llama.feed_forward_length", (uint32_t)c->hidden_dim), n_kv++;
    kv_u32(&kv, "llama.attention.head_count", (uint32_t)c->n_heads), n_kv++;
    kv_u32(&kv, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads), n_kv++;
    kv_u32(&kv, "llama.rope.dimension_count", (uint32_t)c->head_dim), n_kv++;
    kv_u32(&kv, "llama.vocab_size", (uint32_t)c->vocab_size), n_kv++;
    kv_f32(&kv, "llama.rope.freq_base", c->rope_theta), n_kv++;
    kv_f32(&kv, "llama.attention.layer_norm_rms_epsilon", c->norm_eps), n_kv++;
    if (c->head_dim * c->n_heads != c->dim) {
        kv_u32(&kv, "llama.attention.key_length", (uint32_t)c->head_dim), n_kv++;
        kv_u32(&kv, "llama.attention.value_length", (uint32_t)c->head_dim), n_kv++;
    }
    put_str(&kv, "quept.bits"), n_kv++;
    put_u32(&kv, GV_ARRAY);
    put_u32(&kv, GV_I32);
    put_u64(&kv, (uint64_t)c->n_layers);
    for (int j = 0; j < c->n_layers; j++) put(&kv, &sw->bits[j], 4);
    kv_str(&kv, "quept.method", quant_method_name(em->qc.method)), n_kv++;
    uint64_t off = 0;
    for (int i = 0; i < k; i++) {
        ts[i].off = off;
        ts[i].nbytes = type_bytes(ts[i].type, ts[i].ne[0], ts[i].ne[1]);
        off += (ts[i].nbytes + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
        put_str(&ti, ts[i].name);
        put_u32(&ti, (uint32_t)ts[i].ndim);
        for (int d = 0; d < ts[i].ndim; d++) put_u64(&ti, (uint64_t)ts[i].ne[d]);
        put_u32(&ti, (uint32_t)ts[i].type);
        put_u64(&ti, ts[i].off);
    }
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = kv.oom || ti.oom ? NULL : fopen(tmp, "wb");
    if (!f) rc = qerr_set(err, "%s: cannot create: %s", tmp, kv.oom || ti.oom ? "out of memory" : strerror(errno));
    if (rc == 0) {
        Buf h = {0};
        put(&h, "GGUF", 4);
        put_u32(&h, 3);
        put_u64(&h, (uint64_t)k);
        put_u64(&h, (uint64_t)n_kv);
        put(&h, kv.p, kv.n);
        put(&h, ti.p, ti.n);
        static const uint8_t zero[GGUF_ALIGN] = {0};
        size_t pad = (GGUF_ALIGN - h.n % GGUF_ALIGN) % GGUF_ALIGN;
        put(&h, zero, pad);
        if (h.oom || fwrite(h.p, 1, h.n, f) != h.n) rc = qerr_set(err, "%s: write failed", tmp);
        free(h.p);
        for (int i = 0; rc == 0 && i < k; i++) {
            if (ts[i].f32) rc = write_f32_as(f, ts[i].f32, (size_t)(ts[i].ne[0] * ts[i].ne[1]), ts[i].type, err);
            else rc = write_linear(f, c, ts[i].l, &sw->lin[ts[i].j][ts[i].l], ts[i].type, err);
            size_t p2 = (size_t)((GGUF_ALIGN - ts[i].nbytes % GGUF_ALIGN) % GGUF_ALIGN);
            if (rc == 0 && p2 && fwrite(zero, 1, p2, f) != p2) rc = qerr_set(err, "%s: write failed", tmp);
        }
    }
    if (f && fclose(f) != 0 && rc == 0) rc = qerr_set(err, "%s: write failed", tmp);
    if (rc == 0 && rename(tmp, path) != 0) rc = qerr_set(err, "%s: cannot rename: %s", path, strerror(errno));
    if (rc != 0 && f) remove(tmp);
    if (rc == 0)
        log_info("export: %s: %d linears in exact ggml block types, %d as F16", path, n_exact, n_f16);
    free(kv.p);
    free(ti.p);
    free(ts);
    return rc;
}

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"artifact", 1, 0}, {"bits", 1, 0}, {"format", 1, 0},
                  {"out", 1, 0},      {"gguf-type", 1, 0}, {"force", 0, 0},
                  {"avg-bits", 1, 0}, {"proxy", 0, 0}};
    int no = sizeof o / sizeof o[0], npos = 0;
    const char *pos[1];
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, no, pos, 1, &npos, &err)) {
        log_error("export: %s", err.msg);
        return 2;
    }
    const char *art = cli_get(o, no, "artifact");
    if (!art && npos == 1) art = pos[0];
    const char *fmt = cli_get(o, no, "format"), *out = cli_get(o, no, "out");
    if (!art || !fmt || !out) {
        log_error("export: an artifact, --format and --out are required (see --help)");
        return 2;
    }
    int kind = strcmp(fmt, "safetensors-fp16") == 0 ? 0 : strcmp(fmt, "safetensors-int") == 0 ? 1
               : strcmp(fmt, "gguf") == 0 ? 2 : -1;
    if (kind < 0) {
        log_error("export: unknown --format '%s' (safetensors-fp16, safetensors-int, gguf)", fmt);
        return 2;
    }
    double avg = 0;
    const char *avg_s = cli_get(o, no, "avg-bits");
    if (avg_s && cli_get(o, no, "bits")) {
        log_error("export: --bits and --avg-bits exclude each other");
        return 2;
    }
    if (avg_s && cli_get_float(o, no, "avg-bits", 0, QBITS_MIN, QBITS_MAX, &avg, &err)) {
        log_error("export: %s", err.msg);
        return 2;
    }
    if (cli_get(o, no, "gguf-type") && kind != 2) {
        log_error("export: --gguf-type applies to --format gguf only");
        return 2;
    }
    ElasticModel em;
    if (elastic_load(&em, art, &err) != 0) {
        log_error("export: %s", err.msg);
        return 1;
    }
    if (em.qc.format == QFORMAT_POT && kind != 0) {
        log_error("export: %s holds power-of-two codes (sign + exponent, W = ±s·2^E); %s stores "
                  "integer grids (W = (q - z)·s) that cannot represent them: use --format "
                  "safetensors-fp16 (the switched weights, dequantized)", art, fmt);
        elastic_free(&em);
        return 1;
    }
    int *bits = calloc((size_t)em.cfg.n_layers, sizeof(int));
    SwitchedModel sw = {0};
    int rc = !bits ? qerr_set(&err, "out of memory") : 0;
    if (rc == 0 && avg_s) {
        double achieved = 0;
        rc = mixed_assign_bits(&em, avg, cli_get(o, no, "proxy") != NULL, bits, &achieved, &err);
        if (rc == 0) {
            char list[1024];
            size_t n = 0;
            for (int j = 0; j < em.cfg.n_layers && n + 8 < sizeof list; j++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", j ? "," : "", bits[j]);
            log_info("export: --avg-bits %g -> widths %s (average %.4f)", avg, list, achieved);
        }
    } else if (rc == 0) {
        rc = cli_parse_block_bits(cli_get(o, no, "bits"), em.cfg.n_layers, bits, &err);
    }
    if (rc == 0) rc = kind == 0 ? export_fp16(&em, bits, out, &err) : elastic_switch_codes(&em, bits, &sw, &err);
    if (rc == 0 && kind == 1) rc = export_int(&em, &sw, out, &err);
    if (rc == 0 && kind == 2) rc = export_gguf(&em, &sw, out, cli_get(o, no, "gguf-type"),
                                               cli_get(o, no, "force") != NULL, &err);
    if (rc) log_error("export: %s", err.msg);
    else log_info("export: wrote %s (%s)", out, fmt);
    switched_free(&sw);
    free(bits);
    elastic_free(&em);
    return rc == 0 ? 0 : 1;
}
