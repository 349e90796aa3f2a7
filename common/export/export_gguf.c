/* export_gguf.c — `quept export --format gguf` (see export.h).
 *
 * GGUF v3, llama.cpp's tensor names (token_embd, blk.N.attn_q, ...).
 * Architecture "llama", or "qwen2" for a model with q/k/v biases (what
 * llama.cpp's convert_hf_to_gguf.py writes for Qwen2; llama.cpp's qwen2
 * graph adds blk.N.attn_{q,k,v}.bias). Hyper-parameters under the
 * architecture's prefix ("llama.context_length", "qwen2.context_length", ...).
 *
 * q/k row order: llama.cpp's llama architecture rotates interleaved pairs
 * (its converter permutes HF q/k rows back to the Meta/llama2.c order), its
 * qwen2 architecture rotates halves (NEOX; HF rows unpermuted). We write each
 * architecture's order, permuting when the artifact's model has the other one
 * (cfg.rope_halves); q/k biases follow their rows.
 *
 * Linears are stored in a ggml block type when our grid maps onto it exactly
 * (every 32-block lies in one of our groups: in % 32 == 0 and group % 32 ==
 * 0; the codes are ours, unchanged):
 *   Q4_1 (b <= 4): d = f16(scale), m = f16(-zero*scale), value = d*q + m
 *   Q5_1 (b == 5): same with 5-bit q
 *   Q8_0 (b >= 6): d = f16(scale), q = code - zero (must fit in int8)
 * "Exactly" means: same codes, same grid, the only difference being the F16
 * rounding of d (and of m for Q4_1/Q5_1) — the same rounding the F16 scales
 * of safetensors-int have. Anything else is F16 (dequantized); an explicit
 * --gguf-type that cannot hold a linear is an error unless --force (then F16
 * for that linear). Norms and biases are F32, embeddings and head F16.
 *
 * Tokenizer keys (--tokenizer): export_gguf_vocab.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytebuf.h"
#include "base/log.h"
#include "export.h"
#include "model/safetensors.h"
#include "quant/fakequant.h"
#include "quant/ggml_quant.h"

/* ggml type numbers (ggml_quant.h's GgmlType) */
enum { GG_F32 = GQ_F32, GG_F16 = GQ_F16, GG_Q4_1 = GQ_Q4_1, GG_Q5_1 = GQ_Q5_1, GG_Q8_0 = GQ_Q8_0 };
enum { GV_U32 = 4, GV_I32 = 5, GV_F32 = 6, GV_BOOL = 7, GV_STRING = 8, GV_ARRAY = 9 };
#define GGUF_ALIGN 32

/* The header is built in ByteBufs (out of memory checked once, before writing). */
static void put_u32(ByteBuf *b, uint32_t v) { bytebuf_append(b, &v, 4); } /* little-endian hosts only */
static void put_u64(ByteBuf *b, uint64_t v) { bytebuf_append(b, &v, 8); }
static void put_str(ByteBuf *b, const char *s) {
    put_u64(b, strlen(s));
    bytebuf_append(b, s, strlen(s));
}
static void kv_u32(ByteBuf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, GV_U32);
    put_u32(b, v);
}
static void kv_f32(ByteBuf *b, const char *k, float v) {
    put_str(b, k);
    put_u32(b, GV_F32);
    bytebuf_append(b, &v, 4);
}
static void kv_str(ByteBuf *b, const char *k, const char *v) {
    put_str(b, k);
    put_u32(b, GV_STRING);
    put_str(b, v);
}
/* "<arch>.<key>" */
static void kv_arch_u32(ByteBuf *b, const char *arch, const char *k, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    kv_u32(b, key, v);
}
static void kv_arch_f32(ByteBuf *b, const char *arch, const char *k, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    kv_f32(b, key, v);
}
static void arr_head(ByteBuf *b, const char *k, uint32_t type, uint64_t n) {
    put_str(b, k);
    put_u32(b, GV_ARRAY);
    put_u32(b, type);
    put_u64(b, n);
}

/* The tokenizer.ggml.* keys of v; returns the number of keys added. */
static int kv_tokenizer(ByteBuf *b, const GgufVocab *v, const char *path) {
    int n_kv = 0;
    kv_str(b, "tokenizer.ggml.model", v->model), n_kv++;
    if (v->pre) kv_str(b, "tokenizer.ggml.pre", v->pre), n_kv++;
    arr_head(b, "tokenizer.ggml.tokens", GV_STRING, (uint64_t)v->n), n_kv++;
    for (int i = 0; i < v->n; i++) put_str(b, v->tokens[i]);
    if (v->scores) {
        arr_head(b, "tokenizer.ggml.scores", GV_F32, (uint64_t)v->n), n_kv++;
        bytebuf_append(b, v->scores, (size_t)v->n * 4);
    }
    arr_head(b, "tokenizer.ggml.token_type", GV_I32, (uint64_t)v->n), n_kv++;
    for (int i = 0; i < v->n; i++) put_u32(b, (uint32_t)v->types[i]);
    if (v->merges) {
        arr_head(b, "tokenizer.ggml.merges", GV_STRING, (uint64_t)v->n_merges), n_kv++;
        for (int i = 0; i < v->n_merges; i++) put_str(b, v->merges[i]);
    }
    if (v->bos >= 0) kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos), n_kv++;
    if (v->eos >= 0) kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos), n_kv++;
    if (v->unk >= 0) kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk), n_kv++;
    if (v->add_bos >= 0) {
        put_str(b, "tokenizer.ggml.add_bos_token");
        put_u32(b, GV_BOOL);
        uint8_t on = (uint8_t)(v->add_bos != 0);
        bytebuf_append(b, &on, 1);
        n_kv++;
    }
    log_info("export: tokenizer %s: model %s%s%s, %d tokens (%d padding), %d merges", path, v->model,
             v->pre ? ", pre " : "", v->pre ? v->pre : "", v->n, v->n_pad, v->n_merges);
    return n_kv;
}

typedef struct {
    char name[96];
    int type, ndim;
    int64_t ne[2];
    uint64_t off, nbytes;
    const float *f32; /* non-linear source, or NULL */
    int bias_l;       /* with f32: the linear whose q/k row order a bias follows, or -1 */
    int j, l;         /* linear source (f32 NULL) */
    const float *lin; /* a full-precision linear (no switched model), or NULL */
} GTensor;

/* llama.cpp's llama_ftype of a file whose linears are mostly `type` (its
 * enum llama_ftype: MOSTLY_F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9,
 * Q2_K 10, Q3_K_S 11, Q4_K_S 14, Q5_K_S 16, Q6_K 18, IQ4_NL 25: a file of
 * one K-type is its _S mix), and GGML's quantization version of the block
 * formats we write (2). */
#define GGUF_QUANTIZATION_VERSION 2
static uint32_t llama_ftype_of(int type) {
    switch (type) {
    case GQ_F16: return 1;
    case GQ_Q4_0: return 2;
    case GQ_Q4_1: return 3;
    case GQ_Q8_0: return 7;
    case GQ_Q5_0: return 8;
    case GQ_Q5_1: return 9;
    case GQ_Q2_K: return 10;
    case GQ_Q3_K: return 11;
    case GQ_Q4_K: return 14;
    case GQ_Q5_K: return 16;
    case GQ_Q6_K: return 18;
    case GQ_IQ4_NL: return 25;
    default: return 0;
    }
}

static uint64_t type_bytes(int type, int64_t ne0, int64_t ne1) {
    if (type == GG_F32) return (uint64_t)ne0 * (uint64_t)ne1 * 4;
    return (uint64_t)gq_row_bytes(type, (int)ne0) * (uint64_t)ne1;
}

/* The type holding the most linear weights (ties: the one with more bytes
 * per weight): what general.file_type names, so llama.cpp reports the type
 * instead of guessing it. */
static int main_linear_type(const GTensor *ts, int k) {
    static const int all[] = {GQ_F32,  GQ_F16,  GQ_Q4_0, GQ_Q4_1, GQ_Q5_0, GQ_Q5_1,  GQ_Q8_0,
                              GQ_Q2_K, GQ_Q3_K, GQ_Q4_K, GQ_Q5_K, GQ_Q6_K, GQ_IQ4_NL};
    enum { NT = sizeof all / sizeof all[0] };
    uint64_t n[NT] = {0};
    for (int i = 0; i < k; i++)
        if (!ts[i].f32)
            for (int w = 0; w < NT; w++)
                if (ts[i].type == all[w]) n[w] += (uint64_t)ts[i].ne[0] * (uint64_t)ts[i].ne[1];
    int best = -1;
    for (int w = 0; w < NT; w++) {
        if (!n[w]) continue;
        if (best < 0 || n[w] > n[best] ||
            (n[w] == n[best] && type_bytes(all[w], 256, 1) > type_bytes(all[best], 256, 1)))
            best = w;
    }
    return best < 0 ? GQ_F16 : all[best];
}

static const char *type_name(int t) { return gq_type_name(t) ? gq_type_name(t) : "?"; }

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

/* A GGUF artifact's linear: its ggml blocks as calibrated (t == sl->gtype),
 * or F16 of their dequantization (t == F16), rows in the target order. */
static int write_linear_packed(FILE *f, const ModelConfig *c, int l, const SwitchedLinear *sl, int t,
                               int halves, QErr *err) {
    const int in = sl->in;
    size_t rowbytes = type_bytes(t, in, 1);
    uint8_t *row = malloc(rowbytes);
    float *w = malloc((size_t)in * sizeof *w);
    int rc = row && w ? 0 : qerr_set(err, "out of memory");
    for (int r = 0; rc == 0 && r < sl->out; r++) {
        const uint8_t *src = sl->packed + (size_t)export_src_row(c, l, r, halves) * sl->row_bytes;
        if (t == sl->gtype) {
            memcpy(row, src, rowbytes);
        } else {
            gq_dequantize_row(sl->gtype, src, in, w);
            uint16_t *h = (uint16_t *)row;
            for (int i = 0; i < in; i++) h[i] = float_to_f16(w[i]);
        }
        if (fwrite(row, 1, rowbytes, f) != rowbytes) rc = qerr_set(err, "write failed: %s", strerror(errno));
    }
    free(row);
    free(w);
    return rc;
}

/* Writes one linear's rows (target order) in type t. */
static int write_linear(FILE *f, const ModelConfig *c, int l, const SwitchedLinear *sl, int t, int halves,
                        QErr *err) {
    const int in = sl->in, ng = sl->ng;
    size_t rowbytes = type_bytes(t, in, 1);
    if (sl->format == FQ_FORMAT_GGUF) return write_linear_packed(f, c, l, sl, t, halves, err);
    uint8_t *row = malloc(rowbytes);
    if (!row) return qerr_set(err, "out of memory");
    for (int r = 0; r < sl->out; r++) {
        const int o = export_src_row(c, l, r, halves);
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
                    for (int i = 0; i < 16; i++) p[4 + i] = (uint8_t)((q[i] & 15) | (q[i + 16] & 15) << 4);
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

/* A full-precision linear w (out, in) as F16 rows in the target order. */
static int write_linear_f16(FILE *f, const ModelConfig *c, int l, const float *w, int out, int in, int halves,
                            QErr *err) {
    uint16_t *row = malloc((size_t)in * sizeof *row);
    if (!row) return qerr_set(err, "out of memory");
    for (int r = 0; r < out; r++) {
        const float *src = w + (size_t)export_src_row(c, l, r, halves) * in;
        for (int i = 0; i < in; i++) row[i] = float_to_f16(src[i]);
        if (fwrite(row, 2, (size_t)in, f) != (size_t)in) {
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
        if (t == GG_F32)
            w = fwrite(&x[i], 4, 1, f);
        else {
            uint16_t h = float_to_f16(x[i]);
            w = fwrite(&h, 2, 1, f);
        }
        if (w != 1) return qerr_set(err, "write failed: %s", strerror(errno));
    }
    return 0;
}

/* A q/k/v bias (F32), rows in the order of its linear's rows. */
static int write_bias(FILE *f, const ModelConfig *c, int l, const float *b, int n, int halves, QErr *err) {
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) return qerr_set(err, "out of memory");
    for (int r = 0; r < n; r++) x[r] = b[export_src_row(c, l, r, halves)];
    int rc = write_f32_as(f, x, (size_t)n, GG_F32, err);
    free(x);
    return rc;
}

static const char *const GG_LIN[N_LIN] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                          "ffn_gate", "ffn_up", "ffn_down"};

int export_gguf(const ElasticModel *em, const SwitchedModel *sw, const char *path, const GgufOptions *opt,
                QErr *err) {
    const ModelConfig *c = &em->cfg;
    if (sw && em->qc.rotate != ROTATE_NONE) return export_refuse_rotated("gguf", err);
    const char *req = opt->type, *arch = c->has_qkv_bias ? "qwen2" : "llama";
    const int force = opt->force, halves = c->has_qkv_bias; /* qwen2: NEOX (halves) rope */
    int want = -1;                                          /* auto */
    if (!req || strcmp(req, "auto") == 0)
        want = -1;
    else if (strcmp(req, "f16") == 0)
        want = GG_F16;
    else if (strcmp(req, "q4_1") == 0)
        want = GG_Q4_1;
    else if (strcmp(req, "q5_1") == 0)
        want = GG_Q5_1;
    else if (strcmp(req, "q8_0") == 0)
        want = GG_Q8_0;
    else
        return qerr_set(err, "--gguf-type: unknown type '%s' (auto, f16, q4_1, q5_1, q8_0)", req);
    if (!sw && want >= 0 && want != GG_F16)
        return qerr_set(err,
                        "--gguf-type %s: a model without an artifact has full-precision weights only "
                        "(F16); quantize it with quept calibrate first, or with llama-quantize",
                        req);
    int nt = 2 + !c->tied_classifier + c->n_layers * (2 + N_LIN + 3 * c->has_qkv_bias);
    GTensor *ts = calloc((size_t)nt, sizeof *ts);
    if (!ts) return qerr_set(err, "out of memory");
    int k = 0, rc = 0, n_exact = 0, n_f16 = 0;
#define ADD_F(nm, src, t, d0, d1, nd)                                                         \
    do {                                                                                      \
        snprintf(ts[k].name, sizeof ts[k].name, "%s", nm);                                    \
        ts[k].f32 = src, ts[k].type = t, ts[k].ne[0] = d0, ts[k].ne[1] = d1, ts[k].ndim = nd; \
        ts[k].bias_l = -1;                                                                    \
        k++;                                                                                  \
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
        for (int l = 0; rc == 0 && l < N_LIN && !sw; l++) { /* full precision: F16 */
            int out, in;
            qblock_linear_shape(c, l, &out, &in);
            snprintf(ts[k].name, sizeof ts[k].name, "blk.%d.%s.weight", j, GG_LIN[l]);
            ts[k].type = GG_F16, ts[k].ne[0] = in, ts[k].ne[1] = out, ts[k].ndim = 2;
            ts[k].j = j, ts[k].l = l, ts[k].lin = qblock_linear_weight(&em->base.blocks[j], l);
            k++, n_f16++;
            if (c->has_qkv_bias && (l == LIN_Q || l == LIN_K || l == LIN_V)) {
                const BlockWeights *bw = &em->base.blocks[j];
                snprintf(nm, sizeof nm, "blk.%d.%s.bias", j, GG_LIN[l]);
                ADD_F(nm, l == LIN_Q ? bw->bq : l == LIN_K ? bw->bk : bw->bv, GG_F32, out, 1, 1);
                ts[k - 1].bias_l = l;
            }
        }
        for (int l = 0; rc == 0 && l < N_LIN && sw; l++) {
            const SwitchedLinear *sl = &sw->lin[j][l];
            int t = want;
            char why[128];
            if (sl->format == FQ_FORMAT_GGUF) { /* calibrated in its type: written as it is */
                const int asked = em->qc.gguf_type[sl->bits];
                if (want >= 0 && want != GG_F16 && want != sl->gtype) {
                    rc = qerr_set(err,
                                  "gguf: blk.%d.%s at %d bits was calibrated as %s; --gguf-type %s would "
                                  "re-encode its codes (use --gguf-type auto, or f16)",
                                  j, GG_LIN[l], sl->bits, type_name(sl->gtype), type_name(want));
                    break;
                }
                if (want < 0) t = sl->gtype;
                if (sl->gtype != asked)
                    log_info("export: blk.%d.%s: rows of %d do not fit %s's %d-weight blocks: %s, as "
                             "llama-quantize falls back",
                             j, GG_LIN[l], sl->in, type_name(asked), gq_block_elems(asked),
                             type_name(sl->gtype));
            } else if (t < 0) {
                t = sl->bits <= 4 ? GG_Q4_1 : sl->bits == 5 ? GG_Q5_1 : GG_Q8_0;
            }
            if (sl->format == FQ_FORMAT_GGUF) {
                /* nothing to check: the blocks are the type's */
            } else if (!gguf_maps(sl, t, why, sizeof why)) {
                if (want >= 0 && !force)
                    rc = qerr_set(err,
                                  "gguf: blk.%d.%s (%d bits) cannot be stored as %s exactly: %s "
                                  "(use --gguf-type auto, or --force to store it as F16)",
                                  j, GG_LIN[l], sl->bits, type_name(t), why);
                t = GG_F16;
            }
            if (t == GG_F16)
                n_f16++;
            else
                n_exact++;
            snprintf(ts[k].name, sizeof ts[k].name, "blk.%d.%s.weight", j, GG_LIN[l]);
            ts[k].type = t, ts[k].ne[0] = sl->in, ts[k].ne[1] = sl->out, ts[k].ndim = 2;
            ts[k].j = j, ts[k].l = l;
            k++;
            if (c->has_qkv_bias && (l == LIN_Q || l == LIN_K || l == LIN_V)) {
                const BlockWeights *bw = &em->base.blocks[j];
                snprintf(nm, sizeof nm, "blk.%d.%s.bias", j, GG_LIN[l]);
                ADD_F(nm, l == LIN_Q ? bw->bq : l == LIN_K ? bw->bk : bw->bv, GG_F32, sl->out, 1, 1);
                ts[k - 1].bias_l = l;
            }
        }
    }
#undef ADD_F
    if (rc) {
        free(ts);
        return -1;
    }
    ByteBuf kv = {0}, ti = {0};
    int n_kv = 0;
    kv_str(&kv, "general.architecture", arch), n_kv++;
    kv_str(&kv, "general.name", "quept export"), n_kv++;
    kv_u32(&kv, "general.alignment", GGUF_ALIGN), n_kv++;
    kv_u32(&kv, "general.file_type", llama_ftype_of(main_linear_type(ts, k))), n_kv++;
    kv_u32(&kv, "general.quantization_version", GGUF_QUANTIZATION_VERSION), n_kv++;
    kv_arch_u32(&kv, arch, "context_length", (uint32_t)c->seq_len), n_kv++;
    kv_arch_u32(&kv, arch, "embedding_length", (uint32_t)c->dim), n_kv++;
    kv_arch_u32(&kv, arch, "block_count", (uint32_t)c->n_layers), n_kv++;
    kv_arch_u32(&kv, arch, "feed_forward_length", (uint32_t)c->hidden_dim), n_kv++;
    kv_arch_u32(&kv, arch, "attention.head_count", (uint32_t)c->n_heads), n_kv++;
    kv_arch_u32(&kv, arch, "attention.head_count_kv", (uint32_t)c->n_kv_heads), n_kv++;
    kv_arch_u32(&kv, arch, "rope.dimension_count", (uint32_t)c->head_dim), n_kv++;
    kv_arch_u32(&kv, arch, "vocab_size", (uint32_t)c->vocab_size), n_kv++;
    kv_arch_f32(&kv, arch, "rope.freq_base", c->rope_theta), n_kv++;
    kv_arch_f32(&kv, arch, "attention.layer_norm_rms_epsilon", c->norm_eps), n_kv++;
    if (c->head_dim * c->n_heads != c->dim) {
        kv_arch_u32(&kv, arch, "attention.key_length", (uint32_t)c->head_dim), n_kv++;
        kv_arch_u32(&kv, arch, "attention.value_length", (uint32_t)c->head_dim), n_kv++;
    }
    if (opt->vocab && opt->vocab->n != c->vocab_size) {
        bytebuf_free(&kv);
        free(ts);
        return qerr_set(err, "--tokenizer %s: %d tokens, but the model's vocab_size is %d", opt->tok_path,
                        opt->vocab->n, c->vocab_size);
    }
    if (opt->vocab) {
        n_kv += kv_tokenizer(&kv, opt->vocab, opt->tok_path);
    } else {
        log_warn("export: no --tokenizer: %s has no tokenizer.ggml.* keys, and llama.cpp will not load "
                 "it without them (pass the model's tokenizer.json or llama2.c tokenizer.bin with "
                 "--tokenizer)",
                 path);
    }
    if (sw) {
        put_str(&kv, "quept.bits"), n_kv++;
        put_u32(&kv, GV_ARRAY);
        put_u32(&kv, GV_I32);
        put_u64(&kv, (uint64_t)c->n_layers);
        for (int j = 0; j < c->n_layers; j++) bytebuf_append(&kv, &sw->bits[j], 4);
        kv_str(&kv, "quept.method", quant_method_name(em->qc.method)), n_kv++;
    }
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
    if (!f)
        rc =
            qerr_set(err, "%s: cannot create: %s", tmp, kv.oom || ti.oom ? "out of memory" : strerror(errno));
    if (rc == 0) {
        ByteBuf h = {0};
        bytebuf_append(&h, "GGUF", 4);
        put_u32(&h, 3);
        put_u64(&h, (uint64_t)k);
        put_u64(&h, (uint64_t)n_kv);
        bytebuf_append(&h, kv.data, kv.len);
        bytebuf_append(&h, ti.data, ti.len);
        static const uint8_t zero[GGUF_ALIGN] = {0};
        size_t pad = (GGUF_ALIGN - h.len % GGUF_ALIGN) % GGUF_ALIGN;
        bytebuf_append(&h, zero, pad);
        if (h.oom || fwrite(h.data, 1, h.len, f) != h.len) rc = qerr_set(err, "%s: write failed", tmp);
        bytebuf_free(&h);
        for (int i = 0; rc == 0 && i < k; i++) {
            if (ts[i].f32 && ts[i].bias_l >= 0)
                rc = write_bias(f, c, ts[i].bias_l, ts[i].f32, (int)ts[i].ne[0], halves, err);
            else if (ts[i].f32)
                rc = write_f32_as(f, ts[i].f32, (size_t)(ts[i].ne[0] * ts[i].ne[1]), ts[i].type, err);
            else if (ts[i].lin)
                rc = write_linear_f16(f, c, ts[i].l, ts[i].lin, (int)ts[i].ne[1], (int)ts[i].ne[0], halves,
                                      err);
            else
                rc = write_linear(f, c, ts[i].l, &sw->lin[ts[i].j][ts[i].l], ts[i].type, halves, err);
            size_t p2 = (size_t)((GGUF_ALIGN - ts[i].nbytes % GGUF_ALIGN) % GGUF_ALIGN);
            if (rc == 0 && p2 && fwrite(zero, 1, p2, f) != p2) rc = qerr_set(err, "%s: write failed", tmp);
        }
    }
    if (f && fclose(f) != 0 && rc == 0) rc = qerr_set(err, "%s: write failed", tmp);
    if (rc == 0 && rename(tmp, path) != 0) rc = qerr_set(err, "%s: cannot rename: %s", path, strerror(errno));
    if (rc != 0 && f) remove(tmp);
    if (rc == 0)
        log_info("export: %s: %d linears in exact ggml block types, %d as F16", path, n_exact, n_f16);
    bytebuf_free(&kv);
    bytebuf_free(&ti);
    free(ts);
    return rc;
}

int export_gguf_rotated_f16(const ElasticModel *em, const int *bits, const char *path, const GgufOptions *opt,
                            QErr *err) {
    if (!opt->type || strcmp(opt->type, "f16") != 0) return export_refuse_rotated("gguf", err);
    ElasticModel dq;
    memset(&dq, 0, sizeof dq);
    dq.cfg = em->cfg;
    int rc = export_dequantized(em, bits, &dq.base, err);
    if (rc == 0) {
        rc = export_gguf(&dq, NULL, path, opt, err);
        export_dequantized_free(&dq.base);
    }
    return rc;
}
