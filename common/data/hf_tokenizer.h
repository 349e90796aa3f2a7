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

#endif
