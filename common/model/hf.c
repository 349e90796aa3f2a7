/* hf.c — Hugging Face Llama-family checkpoint directories: reader (hf_open,
 * a ModelBackend) and writer (hf_write_dir). See hf.h and model.h.
 *
 * Reader: config.json gives the ModelConfig; the weights come from
 * model.safetensors or, failing that, from model.safetensors.index.json whose
 * "weight_map" names a shard file per tensor (each shard is mapped once).
 * hf_open checks that every tensor the config implies is present with the
 * right shape (header only, no tensor bytes are touched); load_block(j) then
 * converts only block j's tensors to fp32. */
#include "hf.h"

#include "gptq_layout.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

#define HF_PATH_MAX 1200

typedef struct {
    char *name;
    int shard;
} HfMapEntry;

typedef struct {
    char dir[1024];
    char weights_path[HF_PATH_MAX]; /* model.safetensors or the index json */
    int indexed;                    /* 1: sharded via index json */
    SafeTensors *shards;
    char **shard_names; /* file names relative to dir */
    int n_shards;
    HfMapEntry *map; /* sorted by name (indexed only) */
    int n_map;
    int has_gptq;    /* config.json has a GPTQ quantization_config */
    GptqLayout gptq; /* its layout (for GPTQ-packed linears) */
} HfImpl;

/* ------------------------------------------------------------------------ */
/* RoPE row permutation                                                      */

/* Interleaved source row of HF row i (to_halves) or HF source row of
 * interleaved row i (inverse). new[i] = old[next(i)]. */
static int perm_next(int i, int hd, int to_halves) {
    int h = hd / 2;
    if (to_halves) return i < h ? 2 * i : 2 * (i - h) + 1;
    return (i % 2 == 0) ? i / 2 : h + (i - 1) / 2;
}

static void swap_rows(float *a, float *b, int n) {
    for (int k = 0; k < n; k++) {
        float t = a[k];
        a[k] = b[k];
        b[k] = t;
    }
}

void rope_permute_qk_rows(float *w, int n_heads, int head_dim, int in_dim, int to_halves) {
    if (!w || n_heads <= 0 || head_dim <= 0 || in_dim <= 0 || head_dim % 2 != 0) return;
    for (int hh = 0; hh < n_heads; hh++) {
        float *head = w + (size_t)hh * head_dim * in_dim;
        for (int s = 0; s < head_dim; s++) {
            /* handle each cycle once, from its smallest index */
            int leader = 1;
            for (int a = perm_next(s, head_dim, to_halves); a != s; a = perm_next(a, head_dim, to_halves))
                if (a < s) {
                    leader = 0;
                    break;
                }
            if (!leader) continue;
            /* new[a_k] = old[a_{k+1}] along the cycle, by successive swaps */
            int a = s;
            for (int b = perm_next(a, head_dim, to_halves); b != s; b = perm_next(b, head_dim, to_halves)) {
                swap_rows(head + (size_t)a * in_dim, head + (size_t)b * in_dim, in_dim);
                a = b;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* tensor lookup                                                             */

static int cmp_map(const void *a, const void *b) {
    return strcmp(((const HfMapEntry *)a)->name, ((const HfMapEntry *)b)->name);
}

/* Finds a tensor; with err == NULL it is a silent presence test. */
static const StTensor *hf_find(const HfImpl *h, const char *name, const SafeTensors **st, QErr *err) {
    if (!h->indexed) {
        const StTensor *t = st_find(&h->shards[0], name);
        if (!t) qerr_set(err, "%s: missing tensor '%s'", h->weights_path, name);
        *st = &h->shards[0];
        return t;
    }
    HfMapEntry key = {(char *)name, 0};
    const HfMapEntry *e = h->n_map ? bsearch(&key, h->map, (size_t)h->n_map, sizeof *h->map, cmp_map) : NULL;
    if (!e) {
        qerr_set(err, "%s: missing tensor '%s' (not in \"weight_map\")", h->weights_path, name);
        return NULL;
    }
    *st = &h->shards[e->shard];
    const StTensor *t = st_find(*st, name);
    if (!t)
        qerr_set(err, "%s: missing tensor '%s' (the \"weight_map\" of %s places it in this shard)",
                 st_path(*st), name, h->weights_path);
    return t;
}

static int hf_has(const HfImpl *h, const char *name) {
    const SafeTensors *st;
    return hf_find(h, name, &st, NULL) != NULL;
}

static int hf_check(const HfImpl *h, const char *name, int ndim, int64_t d0, int64_t d1, QErr *err) {
    const SafeTensors *st;
    const StTensor *t = hf_find(h, name, &st, err);
    if (!t) return -1;
    int64_t shape[2] = {d0, d1};
    return st_check_shape(st, t, ndim, shape, err);
}

static int hf_read(const HfImpl *h, const char *name, int ndim, int64_t d0, int64_t d1, float *out,
                   QErr *err) {
    const SafeTensors *st;
    const StTensor *t = hf_find(h, name, &st, err);
    if (!t) return -1;
    int64_t shape[2] = {d0, d1};
    if (st_check_shape(st, t, ndim, shape, err) != 0) return -1;
    size_t n = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    return st_read_f32(st, t, out, n, err);
}

/* ------------------------------------------------------------------------ */
/* the tensors of a block                                                    */

typedef enum {
    T_ATTN_NORM,
    T_Q,
    T_K,
    T_V,
    T_O,
    T_QB,
    T_KB,
    T_VB,
    T_MLP_NORM,
    T_GATE,
    T_UP,
    T_DOWN,
    T_COUNT
} BlockTensor;

static const char *const block_suffix[T_COUNT] = {
    [T_ATTN_NORM] = "input_layernorm.weight",
    [T_Q] = "self_attn.q_proj.weight",
    [T_K] = "self_attn.k_proj.weight",
    [T_V] = "self_attn.v_proj.weight",
    [T_O] = "self_attn.o_proj.weight",
    [T_QB] = "self_attn.q_proj.bias",
    [T_KB] = "self_attn.k_proj.bias",
    [T_VB] = "self_attn.v_proj.bias",
    [T_MLP_NORM] = "post_attention_layernorm.weight",
    [T_GATE] = "mlp.gate_proj.weight",
    [T_UP] = "mlp.up_proj.weight",
    [T_DOWN] = "mlp.down_proj.weight",
};

typedef struct {
    int ndim;
    int64_t d0, d1;
} Shape2;

static Shape2 block_shape(const ModelConfig *c, BlockTensor t) {
    int64_t C = c->dim, H = c->hidden_dim;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim;
    switch (t) {
    case T_ATTN_NORM:
    case T_MLP_NORM: return (Shape2){1, C, 0};
    case T_Q: return (Shape2){2, QD, C};
    case T_K:
    case T_V: return (Shape2){2, KVD, C};
    case T_O: return (Shape2){2, C, QD};
    case T_QB: return (Shape2){1, QD, 0};
    case T_KB:
    case T_VB: return (Shape2){1, KVD, 0};
    case T_GATE:
    case T_UP: return (Shape2){2, H, C};
    case T_DOWN: return (Shape2){2, C, H};
    default: return (Shape2){0, 0, 0};
    }
}

static float **block_ptr(BlockWeights *bw, BlockTensor t) {
    switch (t) {
    case T_ATTN_NORM: return &bw->attn_norm;
    case T_Q: return &bw->wq;
    case T_K: return &bw->wk;
    case T_V: return &bw->wv;
    case T_O: return &bw->wo;
    case T_QB: return &bw->bq;
    case T_KB: return &bw->bk;
    case T_VB: return &bw->bv;
    case T_MLP_NORM: return &bw->mlp_norm;
    case T_GATE: return &bw->w_gate;
    case T_UP: return &bw->w_up;
    case T_DOWN: return &bw->w_down;
    default: return NULL;
    }
}

static int is_bias(BlockTensor t) { return t == T_QB || t == T_KB || t == T_VB; }
static int is_linear(BlockTensor t) {
    return t == T_Q || t == T_K || t == T_V || t == T_O || t == T_GATE || t == T_UP || t == T_DOWN;
}

/* The parts of a linear stored as GPTQ packed integers (gptq_layout.h)
 * instead of "<proj>.weight": quept's own safetensors-int export, laid out
 * as the config's quantization_config says. */
static const char *const GPTQ_PARTS[4] = {"qweight", "qzeros", "scales", "g_idx"};

/* "model.layers.J.<proj>.weight" -> "model.layers.J.<proj>.<part>" */
static void gptq_part_name(char *buf, size_t n, const char *weight_name, const char *part) {
    size_t k = strlen(weight_name) - strlen("weight");
    snprintf(buf, n, "%.*s%s", (int)k, weight_name, part);
}

/* 1 when linear `name` ("<proj>.weight") is stored GPTQ-packed: no dense
 * weight, a qweight instead. */
static int is_gptq_linear(const HfImpl *h, const char *name) {
    char qn[160];
    gptq_part_name(qn, sizeof qn, name, "qweight");
    return !hf_has(h, name) && hf_has(h, qn);
}

/* A linear: its dense weight, or its GPTQ parts dequantized. */
static int hf_read_linear(const HfImpl *h, const char *name, int64_t out, int64_t in, float *w, QErr *err) {
    if (!is_gptq_linear(h, name)) return hf_read(h, name, 2, out, in, w, err);
    StRef parts[4];
    for (int p = 0; p < 4; p++) {
        char pn[160];
        gptq_part_name(pn, sizeof pn, name, GPTQ_PARTS[p]);
        parts[p].t = hf_find(h, pn, &parts[p].st, err);
        if (!parts[p].t) return qerr_wrap(err, "GPTQ-packed linear '%s'", name);
    }
    return gptq_dequantize(name, &h->gptq, &parts[0], &parts[1], &parts[2], &parts[3], (int)out, (int)in, w,
                           err);
}

static void block_name(char *buf, size_t n, int j, BlockTensor t) {
    snprintf(buf, n, "model.layers.%d.%s", j, block_suffix[t]);
}

/* ------------------------------------------------------------------------ */
/* backend                                                                   */

static void hf_impl_free(HfImpl *h) {
    if (!h) return;
    for (int i = 0; i < h->n_shards; i++) {
        st_close(&h->shards[i]);
        free(h->shard_names[i]);
    }
    free(h->shards);
    free(h->shard_names);
    for (int i = 0; i < h->n_map; i++) free(h->map[i].name);
    free(h->map);
    free(h);
}

static void hf_close(void *impl) { hf_impl_free(impl); }

static int hf_load_block(void *impl, const ModelConfig *c, int j, BlockWeights *bw, QErr *err) {
    HfImpl *h = impl;
    memset(bw, 0, sizeof *bw);
    if (j < 0 || j >= c->n_layers)
        return qerr_set(err, "%s: block %d out of range [0, %d)", h->dir, j, c->n_layers);
    if (block_weights_alloc(bw, c, err) != 0) return qerr_wrap(err, "%s: block %d", h->dir, j);
    for (int t = 0; t < T_COUNT; t++) {
        if (is_bias((BlockTensor)t) && !c->has_qkv_bias) continue;
        char name[128];
        block_name(name, sizeof name, j, (BlockTensor)t);
        Shape2 s = block_shape(c, (BlockTensor)t);
        float *dst = *block_ptr(bw, (BlockTensor)t);
        int rc = is_linear((BlockTensor)t) ? hf_read_linear(h, name, s.d0, s.d1, dst, err)
                                           : hf_read(h, name, s.ndim, s.d0, s.d1, dst, err);
        if (rc != 0) {
            block_weights_free(bw);
            return -1;
        }
    }
    return 0;
}

static int hf_load_embeddings(void *impl, const ModelConfig *c, float **tok_emb, float **final_norm,
                              float **classifier, QErr *err) {
    HfImpl *h = impl;
    *tok_emb = *final_norm = *classifier = NULL;
    size_t VC = (size_t)c->vocab_size * (size_t)c->dim;
    float *emb = malloc(VC * sizeof *emb);
    float *norm = malloc((size_t)c->dim * sizeof *norm);
    float *cls = NULL;
    if (!emb || !norm) {
        free(emb);
        free(norm);
        return qerr_set(err, "%s: out of memory for the embeddings (%zu floats)", h->dir, VC);
    }
    int rc = hf_read(h, "model.embed_tokens.weight", 2, c->vocab_size, c->dim, emb, err);
    if (rc == 0) rc = hf_read(h, "model.norm.weight", 1, c->dim, 0, norm, err);
    if (rc == 0) {
        if (c->tied_classifier) {
            cls = emb;
        } else {
            cls = malloc(VC * sizeof *cls);
            if (!cls)
                rc = qerr_set(err, "%s: out of memory for the classifier (%zu floats)", h->dir, VC);
            else
                rc = hf_read(h, "lm_head.weight", 2, c->vocab_size, c->dim, cls, err);
        }
    }
    if (rc != 0) {
        if (cls != emb) free(cls);
        free(emb);
        free(norm);
        return -1;
    }
    *tok_emb = emb;
    *final_norm = norm;
    *classifier = cls;
    return 0;
}

static const ModelBackend hf_backend = {
    .load_block = hf_load_block,
    .load_embeddings = hf_load_embeddings,
    .close = hf_close,
};

/* ------------------------------------------------------------------------ */
/* config.json                                                               */

static int join(char *buf, size_t n, const char *dir, const char *file, QErr *err) {
    int w = snprintf(buf, n, "%s/%s", dir, file);
    if (w < 0 || (size_t)w >= n) return qerr_set(err, "%s/%s: path too long", dir, file);
    return 0;
}

static int is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static int open_single(HfImpl *h, QErr *err) {
    h->shards = calloc(1, sizeof *h->shards);
    h->shard_names = calloc(1, sizeof *h->shard_names);
    if (!h->shards || !h->shard_names) return qerr_set(err, "out of memory");
    h->shard_names[0] = malloc(sizeof "model.safetensors");
    if (!h->shard_names[0]) return qerr_set(err, "out of memory");
    memcpy(h->shard_names[0], "model.safetensors", sizeof "model.safetensors");
    if (st_open(&h->shards[0], h->weights_path, err) != 0) return -1;
    h->n_shards = 1;
    return 0;
}

static int open_indexed(HfImpl *h, QErr *err) {
    const char *ip = h->weights_path;
    char *text = NULL;
    size_t len = 0;
    if (file_read_all(ip, &text, &len, err) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        free(text);
        return qerr_set(err, "%s: not valid JSON (error near byte %zu)", ip, at);
    }
    free(text);
    int rc = -1;
    const cJSON *wm = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        qerr_set(err, "%s: missing object field 'weight_map'", ip);
        goto out;
    }
    int n = cJSON_GetArraySize(wm);
    if (n <= 0) {
        qerr_set(err, "%s: 'weight_map' is empty", ip);
        goto out;
    }
    h->map = calloc((size_t)n, sizeof *h->map);
    h->shards = calloc((size_t)n, sizeof *h->shards);
    h->shard_names = calloc((size_t)n, sizeof *h->shard_names);
    if (!h->map || !h->shards || !h->shard_names) {
        qerr_set(err, "%s: out of memory", ip);
        goto out;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        const char *tname = it->string ? it->string : "";
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0' || strchr(it->valuestring, '/') ||
            strcmp(it->valuestring, "..") == 0 || strcmp(it->valuestring, ".") == 0) {
            qerr_set(err, "%s: weight_map['%s'] must be a shard file name in the same directory", ip, tname);
            goto out;
        }
        int s = -1;
        for (int i = 0; i < h->n_shards; i++)
            if (strcmp(h->shard_names[i], it->valuestring) == 0) {
                s = i;
                break;
            }
        if (s < 0) { /* first mention of this shard: map it now */
            char sp[HF_PATH_MAX];
            if (join(sp, sizeof sp, h->dir, it->valuestring, err) != 0) goto out;
            size_t nl = strlen(it->valuestring) + 1;
            h->shard_names[h->n_shards] = malloc(nl);
            if (!h->shard_names[h->n_shards]) {
                qerr_set(err, "%s: out of memory", ip);
                goto out;
            }
            memcpy(h->shard_names[h->n_shards], it->valuestring, nl);
            if (st_open(&h->shards[h->n_shards], sp, err) != 0) {
                free(h->shard_names[h->n_shards]);
                h->shard_names[h->n_shards] = NULL;
                qerr_wrap(err, "shard of %s", ip);
                goto out;
            }
            s = h->n_shards++;
        }
        size_t nl = strlen(tname) + 1;
        h->map[h->n_map].name = malloc(nl);
        if (!h->map[h->n_map].name) {
            qerr_set(err, "%s: out of memory", ip);
            goto out;
        }
        memcpy(h->map[h->n_map].name, tname, nl);
        h->map[h->n_map].shard = s;
        h->n_map++;
    }
    qsort(h->map, (size_t)h->n_map, sizeof *h->map, cmp_map);
    for (int i = 1; i < h->n_map; i++)
        if (strcmp(h->map[i - 1].name, h->map[i].name) == 0) {
            qerr_set(err, "%s: weight_map lists tensor '%s' twice", ip, h->map[i].name);
            goto out;
        }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* 1 when `name` is a tensor the config implies (or a buffer we may ignore). */
static int tensor_expected(const char *name, const ModelConfig *c) {
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight") ||
        !strcmp(name, "lm_head.weight"))
        return 1;
    size_t n = strlen(name), k = strlen("rotary_emb.inv_freq"); /* a recomputed buffer some exports keep */
    if (n >= k && !strcmp(name + n - k, "rotary_emb.inv_freq")) return 1;
    int j, used = 0;
    if (sscanf(name, "model.layers.%d.%n", &j, &used) != 1 || used == 0 || j < 0 || j >= c->n_layers)
        return 0;
    for (int t = 0; t < T_COUNT; t++) {
        if (!strcmp(name + used, block_suffix[t])) return !is_bias((BlockTensor)t) || c->has_qkv_bias;
        if (!is_linear((BlockTensor)t)) continue;
        for (int p = 0; p < 4; p++) {
            char pn[160];
            gptq_part_name(pn, sizeof pn, block_suffix[t], GPTQ_PARTS[p]);
            if (!strcmp(name + used, pn)) return 1;
        }
    }
    return 0;
}

/* A tensor the config does not account for (a layer past num_hidden_layers,
 * biases a Llama config has no place for) means config and weights
 * disagree: refuse rather than load a different model than the files hold. */
static int check_no_extra_tensors(const HfImpl *h, const ModelConfig *c, QErr *err) {
    for (int s = 0; s < h->n_shards; s++)
        for (int i = 0; i < h->shards[s].n_tensors; i++) {
            const char *name = h->shards[s].tensors[i].name;
            if (!tensor_expected(name, c))
                return qerr_set(err,
                                "%s/%s: tensor '%s' has no place in the model config.json describes "
                                "(%d layers%s): config and weights disagree",
                                h->dir, h->shard_names[s], name, c->n_layers,
                                c->has_qkv_bias ? ", q/k/v biases" : ", no biases");
        }
    return 0;
}

/* Checks presence and shape of every tensor the config implies (headers only). */
static int check_all_tensors(const HfImpl *h, const ModelConfig *c, QErr *err) {
    if (hf_check(h, "model.embed_tokens.weight", 2, c->vocab_size, c->dim, err) ||
        hf_check(h, "model.norm.weight", 1, c->dim, 0, err))
        return -1;
    if (!c->tied_classifier && hf_check(h, "lm_head.weight", 2, c->vocab_size, c->dim, err)) return -1;
    for (int j = 0; j < c->n_layers; j++) {
        for (int t = 0; t < T_COUNT; t++) {
            if (is_bias((BlockTensor)t) && !c->has_qkv_bias) continue;
            char name[128];
            block_name(name, sizeof name, j, (BlockTensor)t);
            Shape2 s = block_shape(c, (BlockTensor)t);
            if (is_linear((BlockTensor)t) && is_gptq_linear(h, name)) {
                /* GPTQ-packed: the parts must be there (their shapes are checked at load) */
                for (int p = 0; p < 4; p++) {
                    char pn[160];
                    const SafeTensors *st;
                    gptq_part_name(pn, sizeof pn, name, GPTQ_PARTS[p]);
                    if (!hf_find(h, pn, &st, err)) return qerr_wrap(err, "GPTQ-packed linear '%s'", name);
                }
                if (!h->has_gptq)
                    return qerr_set(err,
                                    "%s: GPTQ-packed linear '%s' but config.json has no GPTQ "
                                    "quantization_config (its bits and format)",
                                    h->dir, name);
                continue;
            }
            if (hf_check(h, name, s.ndim, s.d0, s.d1, err) != 0) return -1;
        }
        /* biases we cannot represent must not be silently dropped */
        static const char *const unsupported[] = {"self_attn.o_proj.bias", "mlp.gate_proj.bias",
                                                  "mlp.up_proj.bias", "mlp.down_proj.bias"};
        for (size_t u = 0; u < sizeof unsupported / sizeof *unsupported; u++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", j, unsupported[u]);
            if (hf_has(h, name))
                return qerr_set(err, "%s: tensor '%s' is not supported (no o_proj / MLP biases)",
                                h->weights_path, name);
        }
    }
    return 0;
}

int hf_open(const char *dir, ModelConfig *cfg, void **impl, const ModelBackend **be, QErr *err) {
    *impl = NULL;
    *be = NULL;
    HfImpl *h = calloc(1, sizeof *h);
    if (!h) return qerr_set(err, "%s: out of memory", dir);
    int w = snprintf(h->dir, sizeof h->dir, "%s", dir);
    if (w < 0 || (size_t)w >= sizeof h->dir) {
        free(h);
        return qerr_set(err, "%s: path too long", dir);
    }
    /* drop trailing slashes (not the root's) so messages read dir/file */
    size_t dl = strlen(h->dir);
    while (dl > 1 && h->dir[dl - 1] == '/') h->dir[--dl] = '\0';

    char cpath[HF_PATH_MAX];
    ModelConfig c;
    int is_qwen2 = 0;
    if (join(cpath, sizeof cpath, h->dir, "config.json", err) != 0) goto fail;
    if (!is_file(cpath)) {
        qerr_set(err, "%s: not a Hugging Face model directory: no config.json", h->dir);
        goto fail;
    }
    if (hf_parse_config(cpath, &c, &is_qwen2, &h->has_gptq, &h->gptq, err) != 0) goto fail;

    char single[HF_PATH_MAX], index[HF_PATH_MAX];
    if (join(single, sizeof single, h->dir, "model.safetensors", err) != 0 ||
        join(index, sizeof index, h->dir, "model.safetensors.index.json", err) != 0)
        goto fail;
    if (is_file(single)) {
        memcpy(h->weights_path, single, sizeof single);
        if (open_single(h, err) != 0) goto fail;
    } else if (is_file(index)) {
        memcpy(h->weights_path, index, sizeof index);
        h->indexed = 1;
        if (open_indexed(h, err) != 0) goto fail;
    } else {
        qerr_set(err, "%s: no model.safetensors or model.safetensors.index.json", h->dir);
        goto fail;
    }

    c.has_qkv_bias = is_qwen2 || hf_has(h, "model.layers.0.self_attn.q_proj.bias");
    if (!hf_has(h, "lm_head.weight")) c.tied_classifier = 1;
    if (model_config_validate(&c, cpath, err) != 0) goto fail;
    if (check_all_tensors(h, &c, err) != 0 || check_no_extra_tensors(h, &c, err) != 0) goto fail;

    *cfg = c;
    *impl = h;
    *be = &hf_backend;
    return 0;
fail:
    hf_impl_free(h);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

int hf_write_dir(const char *dir, const Model *m, int dtype_f16, QErr *err) {
    const ModelConfig *c = &m->cfg;
    if (model_config_validate(c, dir, err) != 0) return -1;
    if (!m->tok_emb || !m->final_norm || !m->blocks)
        return qerr_set(err, "%s: cannot write an incomplete model (no embeddings, norm or blocks)", dir);
    int tied = c->tied_classifier || m->classifier == m->tok_emb || m->classifier == NULL;
    if (!c->tied_classifier && m->classifier == NULL)
        return qerr_set(err, "%s: model has no classifier and is not tied", dir);
    for (int j = 0; j < c->n_layers; j++)
        for (int t = 0; t < T_COUNT; t++) {
            if (is_bias((BlockTensor)t) && !c->has_qkv_bias) continue;
            if (!*block_ptr(&m->blocks[j], (BlockTensor)t))
                return qerr_set(err, "%s: block %d has no tensor %s", dir, j, block_suffix[t]);
        }
    if (!dir || !*dir) return qerr_set(err, "hf_write_dir: empty directory name");
    if (dir_make_all(dir, err) != 0) return -1;

    StDtype dt = dtype_f16 ? ST_F16 : ST_F32;
    StWriter w;
    st_writer_init(&w);
    int rc = st_writer_set_metadata(&w, "format", "pt", err);
    int64_t sh[2];
    sh[0] = c->vocab_size;
    sh[1] = c->dim;
    if (rc == 0) rc = st_writer_add_f32(&w, "model.embed_tokens.weight", dt, 2, sh, m->tok_emb, err);
    if (rc == 0 && !tied) rc = st_writer_add_f32(&w, "lm_head.weight", dt, 2, sh, m->classifier, err);
    sh[0] = c->dim;
    if (rc == 0) rc = st_writer_add_f32(&w, "model.norm.weight", dt, 1, sh, m->final_norm, err);
    for (int j = 0; rc == 0 && j < c->n_layers; j++) {
        BlockWeights *bw = &m->blocks[j];
        for (int t = 0; rc == 0 && t < T_COUNT; t++) {
            if (is_bias((BlockTensor)t) && !c->has_qkv_bias) continue;
            char name[128];
            block_name(name, sizeof name, j, (BlockTensor)t);
            Shape2 s = block_shape(c, (BlockTensor)t);
            sh[0] = s.d0;
            sh[1] = s.d1;
            const float *src = *block_ptr(bw, (BlockTensor)t);
            int is_q = (t == T_Q || t == T_QB), is_k = (t == T_K || t == T_KB);
            if (c->rope_halves == 0 && (is_q || is_k)) {
                size_t n = (size_t)s.d0 * (s.ndim == 2 ? (size_t)s.d1 : 1);
                float *copy = malloc(n * sizeof *copy);
                if (!copy) {
                    rc = qerr_set(err, "%s: out of memory", dir);
                    break;
                }
                memcpy(copy, src, n * sizeof *copy);
                rope_permute_qk_rows(copy, is_q ? c->n_heads : c->n_kv_heads, c->head_dim,
                                     s.ndim == 2 ? c->dim : 1, 1);
                rc = st_writer_add_f32_owned(&w, name, dt, s.ndim, sh, copy, err);
            } else {
                rc = st_writer_add_f32(&w, name, dt, s.ndim, sh, src, err);
            }
        }
    }
    char path[HF_PATH_MAX];
    if (rc == 0) rc = join(path, sizeof path, dir, "model.safetensors", err);
    if (rc == 0) rc = st_writer_write(&w, path, err);
    st_writer_free(&w);
    /* config.json last: a directory with a config has complete weights */
    if (rc == 0) rc = join(path, sizeof path, dir, "config.json", err);
    if (rc == 0) rc = hf_write_config(path, c, tied, dtype_f16, err);
    return rc;
}
