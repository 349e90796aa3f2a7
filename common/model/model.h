/* model.h — a Llama-family decoder model held as fp32 tensors.
 *
 * Layout conventions (all row-major, "out x in" for linear layers, as in
 * llama2.c and PyTorch's nn.Linear.weight):
 *   tok_emb     (vocab, dim)
 *   wq          (n_heads*head_dim, dim)      bq (n_heads*head_dim) optional
 *   wk, wv      (n_kv_heads*head_dim, dim)   bk, bv                optional
 *   wo          (dim, n_heads*head_dim)
 *   w_gate (w1) (hidden, dim)   w_up (w3) (hidden, dim)   w_down (w2) (dim, hidden)
 *   classifier  (vocab, dim)  aliases tok_emb when tied
 *
 * RoPE: llama2.c checkpoints rotate interleaved pairs (2i, 2i+1); Hugging Face
 * checkpoints rotate halves (i, i+head_dim/2) and store q/k rows permuted to
 * match. We keep the convention of the file (cfg.rope_halves) rather than
 * permuting on load, so both code paths are real and tested. */
#ifndef QUEPT_MODEL_H
#define QUEPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../base/mapfile.h"

typedef struct {
    int dim;        /* hidden size */
    int hidden_dim; /* FFN (intermediate) size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim; /* dim / n_heads unless the config says otherwise */
    int vocab_size;
    int seq_len; /* maximum context */
    float rope_theta;
    float norm_eps;
    int rope_halves;     /* 0: interleaved pairs (llama2.c), 1: halves (HF) */
    int has_qkv_bias;    /* Qwen2-style q/k/v biases */
    int tied_classifier; /* classifier == tok_emb */
} ModelConfig;

typedef struct {
    float *attn_norm; /* (dim) */
    float *wq, *wk, *wv, *wo;
    float *bq, *bk, *bv; /* NULL unless has_qkv_bias */
    float *mlp_norm;     /* (dim) */
    float *w_gate, *w_up, *w_down;
    /* Activation fake quantization at the input of every linear (nn/actquant.h:
     * per token, dynamic, symmetric) at this width; 0 = none, weight-only. Set
     * on a block's quantized view (engine/qblock.h, a switched artifact);
     * loaders and block_weights_alloc leave it 0. */
    int act_bits;
    /* QuaRot's online rotation of the down_proj input (model/rotate.h,
     * docs/rotation.md): 1 when w_down was folded by model_fold_down_hadamard,
     * so the forward must transform the SwiGLU output h -> H^T h / sqrt(hidden)
     * (per token, before its activation quantization); 0 = none. Loaders and
     * block_weights_alloc leave it 0; the rotation and a rotated artifact set it. */
    int down_had;
} BlockWeights;

typedef enum { MODEL_FMT_LLAMA2C_LEGACY, MODEL_FMT_LLAMA2C_V1, MODEL_FMT_HF } ModelFormat;

/* An opened checkpoint: config parsed, files mapped, nothing converted yet.
 * Loading one block touches only that block's bytes. */
typedef struct ModelSource ModelSource;

int model_source_open(ModelSource **out, const char *path, QErr *err);
void model_source_close(ModelSource *src);
const ModelConfig *model_source_config(const ModelSource *src);
ModelFormat model_source_format(const ModelSource *src);
const char *model_source_path(const ModelSource *src);

/* Loads block j's tensors into freshly allocated fp32 buffers (block_weights_free). */
int model_source_load_block(ModelSource *src, int j, BlockWeights *bw, QErr *err);
/* Loads tok_emb, final norm and classifier (alloc'd; classifier may alias tok_emb). */
int model_source_load_embeddings(ModelSource *src, float **tok_emb, float **final_norm, float **classifier,
                                 QErr *err);

void block_weights_free(BlockWeights *bw);
/* Number of floats in each tensor of a block (for allocation and copying). */
size_t block_weights_numel(const ModelConfig *c);

/* A whole model in memory. */
typedef struct {
    ModelConfig cfg;
    float *tok_emb;
    float *final_norm;
    float *classifier; /* == tok_emb when tied */
    BlockWeights *blocks;
} Model;

int model_load(Model *m, const char *path, QErr *err);
void model_free(Model *m);
/* Checks that every weight is finite; names block and tensor on failure. */
int model_check_finite(const Model *m, QErr *err);
int block_weights_check_finite(const BlockWeights *w, const ModelConfig *c, int j, QErr *err);

/* Validates a config (positive dims, divisibility); `what` names the source. */
int model_config_validate(const ModelConfig *c, const char *what, QErr *err);

/* Allocates zeroed block tensors for cfg in one buffer owned by attn_norm
 * (block_weights_free releases it). */
int block_weights_alloc(BlockWeights *bw, const ModelConfig *c, QErr *err);

/* A random model (N(0, 1/fan_in) weights, norms near 1) for tests and benchmarks. */
int model_init_random(Model *m, const ModelConfig *cfg, uint64_t seed, QErr *err);

/* --- format back ends (model.c dispatches to these) --- */
typedef struct {
    int (*load_block)(void *impl, const ModelConfig *c, int j, BlockWeights *bw, QErr *err);
    int (*load_embeddings)(void *impl, const ModelConfig *c, float **tok_emb, float **final_norm,
                           float **classifier, QErr *err);
    void (*close)(void *impl);
} ModelBackend;

int llama2c_open(const char *path, ModelConfig *cfg, ModelFormat *fmt, void **impl, const ModelBackend **be,
                 QErr *err);
int hf_open(const char *dir, ModelConfig *cfg, void **impl, const ModelBackend **be, QErr *err);

/* Writers (tests, fixtures and export use them). */
int llama2c_write_legacy(const char *path, const Model *m, QErr *err);
int hf_write_dir(const char *dir, const Model *m, int dtype_f16, QErr *err);

#endif
