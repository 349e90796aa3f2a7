/* hf_tokenizer.h — a Hugging Face tokenizer.json (the `tokenizers` crate's
 * serialization), for the BPE models Llama 2 / Mistral (SentencePiece style,
 * byte fallback), Llama 3 and Qwen2/Qwen3 (byte-level) use.
 *
 * Supported, each as the tokenizers crate does it: normalizers NFC, Prepend,
 * Replace (string pattern) and Sequence; pre-tokenizers Split (regex or
 * string, behavior Isolated; regexes compiled by PCRE2 in UTF + UCP mode),
 * ByteLevel, Metaspace and Sequence; the BPE model (merges as "a b" strings
 * or ["a", "b"] pairs, byte_fallback, fuse_unk, ignore_merges); added tokens
 * (matched leftmost-longest in the raw text before normalization); the
 * post-processors ByteLevel, TemplateProcessing (its single-sequence
 * special tokens) and Sequence; the decoders ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace and Sequence. Anything else is
 * refused when the file is loaded, naming the field and its value: a
 * tokenizer we do not fully understand is never used. */
#ifndef QUEPT_HF_TOKENIZER_H
#define QUEPT_HF_TOKENIZER_H

#include <stddef.h>

#include "../base/err.h"

typedef struct HfTokenizer HfTokenizer;

/* Loads path (a tokenizer.json). A tokenizer_config.json beside it, when
 * present, names the BOS and EOS tokens the post-processor does not. */
int hf_tokenizer_load(HfTokenizer **out, const char *path, QErr *err);
/* The same from the file's bytes; name is used in messages. */
int hf_tokenizer_parse(HfTokenizer **out, const char *json, size_t len, const char *name, QErr *err);
void hf_tokenizer_free(HfTokenizer *t);

int hf_tokenizer_vocab_size(const HfTokenizer *t); /* 1 + the largest id */
int hf_tokenizer_bos(const HfTokenizer *t);        /* -1: none */
int hf_tokenizer_eos(const HfTokenizer *t);        /* -1: none */

/* Encodes text[0..len), which must be valid UTF-8 (else an error naming the
 * byte offset). add_special: the post-processor's special tokens (e.g. BOS)
 * around the ids. *ids is malloc'd, also when *n is 0. */
int hf_tokenizer_encode(const HfTokenizer *t, const char *text, size_t len, int add_special, int **ids,
                        size_t *n, QErr *err);

/* Decodes ids through the file's decoder; skip_special drops special added
 * tokens. *text is malloc'd and NUL-terminated, *len its length. */
int hf_tokenizer_decode(const HfTokenizer *t, const int *ids, size_t n, int skip_special, char **text,
                        size_t *len, QErr *err);

/* ------------------------------------------------ the file's own view, for
 * writers of other formats (the GGUF export's tokenizer.ggml.* keys). */

typedef enum {
    HF_STYLE_BYTE_LEVEL,    /* a ByteLevel pre-tokenizer: Llama 3, Qwen2/3 (GPT-2 style) */
    HF_STYLE_SENTENCEPIECE, /* byte_fallback with Metaspace or a " " -> U+2581 normalizer: Llama 2 */
    HF_STYLE_OTHER
} HfStyle;
HfStyle hf_tokenizer_style(const HfTokenizer *t);

/* The vocab string of id as the file writes it (byte-level characters, U+2581
 * for spaces, added tokens' content); NULL for an id the file leaves out. */
const char *hf_tokenizer_token(const HfTokenizer *t, int id, int *len);
/* 0: not an added token; 1: an added token; 2: an added special token. */
int hf_tokenizer_added(const HfTokenizer *t, int id);
int hf_tokenizer_unk(const HfTokenizer *t); /* -1: none */
/* The regex of the first Split pre-tokenizer, or NULL. */
const char *hf_tokenizer_split_regex(const HfTokenizer *t);
/* 1 when the normalizer applies NFC. */
int hf_tokenizer_normalizes(const HfTokenizer *t);
/* 1 when the post-processor puts the BOS token first. */
int hf_tokenizer_adds_bos(const HfTokenizer *t);
/* The merges in rank order: left[i] + right[i] -> merged[i] (ids). */
typedef struct {
    int *left, *right, *merged, n;
} HfMerges;
int hf_tokenizer_merge_list(const HfTokenizer *t, HfMerges *m, QErr *err);
void hf_merges_free(HfMerges *m);

#endif
