/* export.h — the writers behind `quept export` (cmd_export.c parses the
 * command line, switches the artifact and calls one of these).
 *
 *   export_safetensors.c  safetensors-fp16 (HF dir, dequantized F16)
 *   export_gptq.c         safetensors-int (HF dir, GPTQ int32 words: gptq_v2
 *                         at 2/3/4/8 bits, GPTQModel's planar gptq_p at
 *                         5/6/7, or v1 gptq for AutoGPTQ on request)
 *   export_gguf.c         GGUF v3 for llama.cpp (llama or qwen2 arch, exact
 *                         Q4_1/Q5_1/Q8_0 where the grid maps, tokenizer keys)
 *   export_rows.c         the q/k row order each format wants
 *
 * Layouts: docs/formats.md, "Export". All return 0, or -1 with err set. */
#ifndef QUEPT_EXPORT_H
#define QUEPT_EXPORT_H

#include "artifact/switch.h"

/* Our row (out index) that goes to row r of linear l in the target order:
 * want_halves = 1 for HF's "halves" q/k order, 0 for the interleaved
 * (llama2.c / Meta) order. Rows of other linears, and of a model already in
 * the target order, map to themselves. The same map orders q/k biases. */
int export_src_row(const ModelConfig *c, int l, int r, int want_halves);

/* safetensors-fp16: switch to bits[] (dequantized) and write an HF dir. A
 * rotated artifact (QuantConfig.rotate) gets the down_proj input's online
 * transform folded back into the dequantized W_down
 * (model_unfold_down_hadamard): a plain checkpoint with the same function. */
int export_fp16(const ElasticModel *em, const int *bits, const char *dir, QErr *err);

/* What export_fp16 and export_gguf_rotated_f16 write: em switched to
 * bits[] (dequantized), a rotated artifact's online down_proj transform
 * folded back, the embeddings, final norm and head borrowed from em (q
 * holds nothing on failure). Release with export_dequantized_free. */
int export_dequantized(const ElasticModel *em, const int *bits, Model *q, QErr *err);
void export_dequantized_free(Model *q);

/* The refusal of safetensors-int and gguf for a rotated artifact (the
 * online down_proj transform has no place in either; format names it). */
int export_refuse_rotated(const char *format, QErr *err);

/* safetensors-int: the switched codes as a GPTQ checkpoint (one width).
 * checkpoint_format: NULL or "auto" (gptq_v2 at 2/3/4/8 bits, gptq_p at
 * 5/6/7), "gptq", "gptq_v2" or "gptq_p" (--checkpoint-format); a format or
 * shape some loader would misread is refused, naming it. */
int export_int(const ElasticModel *em, const SwitchedModel *sw, const char *checkpoint_format,
               const char *dir, QErr *err);

/* The tokenizer files an HF export carries (NULL-terminated): copied from
 * --tokenizer (the source model directory, or its tokenizer.json) when
 * present there. */
extern const char *const EXPORT_HF_TOKENIZER_FILES[];
/* Before writing: --tokenizer names a directory (or tokenizer.json) with a
 * tokenizer.json that loads and has at most vocab_size tokens. */
int export_hf_tokenizer_check(const char *src, int vocab_size, QErr *err);
/* After writing: copies the files of EXPORT_HF_TOKENIZER_FILES present beside
 * src into out_dir (each atomically); *copied counts them. */
int export_hf_tokenizer_copy(const char *src, const char *out_dir, int *copied, QErr *err);
/* Removes what an export wrote into dir (weights, config, tokenizer files)
 * and dir itself, when the export made it (made_dir). */
void export_remove_debris(const char *dir, int made_dir);

/* The tokenizer.ggml.* keys of a GGUF export, as llama.cpp's converters
 * write them (export_gguf_vocab.c has the rules). */
typedef struct {
    char model[8];   /* "llama" (SentencePiece) or "gpt2" (byte-level BPE) */
    const char *pre; /* gpt2: llama.cpp's pre-tokenizer name ("llama-bpe", "qwen2") */
    int n;           /* tokens: the model's vocab_size */
    char **tokens;   /* n strings */
    float *scores;   /* n, "llama" only (else NULL) */
    int *types;      /* n, llama.cpp's token types */
    char **merges;   /* n_merges "left right" strings, "gpt2" only */
    int n_merges;
    int bos, eos, unk; /* -1: key not written */
    int add_bos;       /* -1: key not written (llama.cpp's default) */
    int n_pad;         /* ids the tokenizer leaves out, written as "[PADn]" */
} GgufVocab;

/* Loads --tokenizer PATH for export_gguf: a llama2.c tokenizer.bin (its
 * token count must equal vocab_size), a tokenizer.json, or a directory with
 * one (at most vocab_size tokens). Called before the switch so a wrong file
 * fails fast, with an error naming the file and the reason. */
int gguf_vocab_load(GgufVocab *v, const char *path, int vocab_size, QErr *err);
void gguf_vocab_free(GgufVocab *v);

typedef struct {
    const char *type;       /* --gguf-type: auto (or NULL), f16, q4_1, q5_1, q8_0 */
    int force;              /* --force: F16 for linears an explicit type cannot hold */
    const GgufVocab *vocab; /* --tokenizer, or NULL: no tokenizer keys */
    const char *tok_path;   /* its file, for messages */
} GgufOptions;

/* sw NULL: the full-precision model em->base (only em->cfg and em->base are
 * read), every linear F16 — the input llama-quantize takes. */
int export_gguf(const ElasticModel *em, const SwitchedModel *sw, const char *path, const GgufOptions *opt,
                QErr *err);

/* A rotated artifact (QuantConfig.rotate) as GGUF: switched to bits[]
 * (dequantized), the down_proj input's online transform folded back into
 * W_down as export_fp16 does, every linear F16 (the only type that can hold
 * the folded weight; opt->type must be f16, anything else is refused as
 * export_refuse_rotated says). Activation widths are not carried (as in
 * every export; the command warns). */
int export_gguf_rotated_f16(const ElasticModel *em, const int *bits, const char *path, const GgufOptions *opt,
                            QErr *err);

#endif
