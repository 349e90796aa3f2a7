/* hf.h — Hugging Face Llama-family checkpoint directories (config.json +
 * model.safetensors or model.safetensors.index.json with shards).
 * hf_open / hf_write_dir are declared in model.h; this header adds the RoPE
 * row permutation between the llama2.c and the HF q/k layouts. */
#ifndef QUEPT_HF_H
#define QUEPT_HF_H

#include "gptq_layout.h"
#include "model.h"

/* Reorders the rows of a q or k projection (n_heads * head_dim rows of in_dim
 * floats; in_dim = 1 for a bias) within each head, in place, allocation-free.
 *
 * Within one head, HF ("halves") row i corresponds to interleaved (llama2.c /
 * Meta) row  2i  for i < head_dim/2  and  2(i - head_dim/2) + 1  otherwise —
 * the row order HF's convert_llama_weights_to_hf.py produces.
 *   to_halves = 1: w holds interleaved rows, is rewritten in HF order;
 *   to_halves = 0: the inverse (HF order → interleaved).
 * Does nothing for an odd head_dim or non-positive sizes. */
void rope_permute_qk_rows(float *w, int n_heads, int head_dim, int in_dim, int to_halves);

/* f as the shortest decimal that reads back as f (1e-05, not
 * 9.99999974737875e-06): how every config.json we write holds a float. */
double hf_json_float(float f);

/* config.json (hf_config.c): the model config of path, whether it is a
 * Qwen2 model (q/k/v biases), and its GPTQ quantization_config when it has
 * one (*has_gptq 1, *gptq the layout); and the config hf_write_dir writes. */
int hf_parse_config(const char *path, ModelConfig *c, int *is_qwen2, int *has_gptq, GptqLayout *gptq,
                    QErr *err);
int hf_write_config(const char *path, const ModelConfig *c, int tied, int dtype_f16, QErr *err);

#endif
