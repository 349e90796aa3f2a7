/* elastic.h — the quept elastic artifact (version 1) on top of the tensor
 * container (container.h, docs/artifact-format.md): base weights + every
 * block's learned parameters for every bit width, switchable at load time.
 *
 * Metadata tree (a msgpack map):
 *   "format": "quept-elastic", "artifact_version": 1,
 *   "model":  {dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim,
 *              vocab_size, seq_len, rope_theta, norm_eps, rope_halves,
 *              has_qkv_bias, tied_classifier}
 *   "quant":  the QuantConfig (quant/qconfig_table.h: method, bits, group,
 *             rank, ...; "teq": "norm"|"wide" and "lr_teq" only when TEQ was
 *             used — its scales are already folded into the stored base
 *             weights and norms; "act_bits" [bit index] only when a width
 *             quantizes activations, 16 for none — absent = weight-only;
             "rotate": "hadamard" and "rotate_seed" only when the model was
             rotated before calibration — the stored base is the rotated
             model and every block's down_proj input is transformed online,
             BlockWeights.down_had; absent = none)
 *   "ranks":  [linear][bit index] adapter ranks (same for every block)
 *   "losses": [block][bit index] [rtn, init, final] calibration losses
 *   "choice": [block][bit index] 0 trained, 1 adapters dropped, 2 RTN
 *             (the fallback; absent = all trained)
 *   "sensitivity": {"measure": "kld", "table": [bit index][block]} — the
 *             output KL divergence with only that block quantized at that bit
 *             (sensitivity.h); absent in older artifacts (mixed precision then
 *             falls back to the "losses" proxy)
 *   "weight_format": {"default": "int"|"pot", "pot_l2": x,
 *             "tensors": {"blk.J.L": "int"|"pot"}} — the code format of every
 *             quantized linear; absent in older artifacts (= all "int")
 *   "provenance": {model_sha256, data_sha256, seed, quept_version}
 * Tensors: tok_emb, final_norm, classifier (untied only); blk.J.attn_norm,
 *   blk.J.mlp_norm, blk.J.{wq,wk,wv,wo,w_gate,w_up,w_down} (fp32 base), blk.J.{bq,bk,bv};
 *   quept: blk.J.L.Bd (out,R), blk.J.L.Bu (R,in), blk.J.L.gamma.B / beta.B (out,ng)
 *          (PoT: gamma.B = the scale refinement Γ, beta.B = the data-free scale s0)
 *   gptq:  blk.J.L.codes.B (u8, out x in), blk.J.L.scales.B / zeros.B (out,ng); the same
 *          three for a quept bit B whose choice is 3 (stored codes)
 * Nothing that varies between runs (time, host, path) is stored. */
#ifndef QUEPT_ELASTIC_H
#define QUEPT_ELASTIC_H

#include <stdint.h>

#include "../engine/qblock.h"
#include "../engine/recon.h"
#include "../quant/qconfig_table.h"
#include "container.h"

#define ELASTIC_VERSION QCONFIG_ELASTIC_VERSION /* the "quant" map's elastic_version */

/* What a calibration produced (also what the artifact holds once loaded). */
typedef struct {
    ModelConfig cfg;
    QuantConfig qc;
    Model base;                            /* full-precision weights */
    QBlockParams *params;                  /* [n_layers] (quept) */
    GptqLinear (*gptq)[N_LIN][QMAX_NBITS]; /* [n_layers] (gptq) */
    ReconStats *stats;                     /* [n_layers] */
    char model_sha256[65], data_sha256[65];
    double *sens;          /* [n_bits][n_layers] row-major (sens[bi*n_layers + j]), NULL = absent */
    char sens_measure[16]; /* what sens holds: "kld" */
} ElasticModel;

int elastic_alloc(ElasticModel *em, const ModelConfig *c, const QuantConfig *qc, QErr *err);
void elastic_free(ElasticModel *em);

int elastic_write(const ElasticModel *em, const char *path, QErr *err);
int elastic_load(ElasticModel *em, const char *path, QErr *err);
/* Only the metadata of an open artifact (config, losses, choices,
 * sensitivity, provenance) into a freshly allocated em; no tensor is read
 * (em->base stays empty, parameters zeroed). Free with elastic_free. */
int elastic_load_meta(ElasticModel *em, const ArtReader *r, QErr *err);

/* Materialises the model at bits[j] for block j (one value per block) into
 * out, which is allocated on the first call and reused after: switching
 * again never re-reads the file. Block j carries the activation width the
 * artifact pairs with bits[j] (BlockWeights.act_bits, QuantConfig.act_bits;
 * 0 for a weight-only artifact), so model_forward runs the pair. */
int elastic_switch(const ElasticModel *em, const int *bits, Model *out, QErr *err);

#endif
