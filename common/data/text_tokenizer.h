/* text_tokenizer.h — one interface over both tokenizer formats quept reads:
 * llama2.c's tokenizer.bin (tokenizer.h) and Hugging Face's tokenizer.json
 * (hf_tokenizer.h). The format is told by content: a file whose first
 * non-blank byte is '{' is tokenizer.json, anything else tokenizer.bin. */
#ifndef QUEPT_TEXT_TOKENIZER_H
#define QUEPT_TEXT_TOKENIZER_H

#include <stddef.h>

#include "../base/err.h"

typedef struct TextTokenizer TextTokenizer;
typedef struct Tokenizer Tokenizer;
typedef struct HfTokenizer HfTokenizer;

/* Opens a tokenizer file of either format, or a directory holding
 * tokenizer.json (a Hugging Face model directory). */
int ttok_open(TextTokenizer **out, const char *path, QErr *err);

/* The tokenizer of a model: --tokenizer when given, else the model's own
 * (tokenizer.json in a Hugging Face directory). A llama2.c checkpoint has
 * none: the error says to pass --tokenizer. */
int ttok_open_for_model(TextTokenizer **out, const char *model_path, const char *tokenizer_path, QErr *err);

void ttok_free(TextTokenizer *t);

int ttok_vocab_size(const TextTokenizer *t);
int ttok_bos(const TextTokenizer *t);            /* -1: none */
int ttok_eos(const TextTokenizer *t);            /* -1: none */
const char *ttok_format(const TextTokenizer *t); /* "tokenizer.bin" or "tokenizer.json" */

/* Encodes text[0..len) (valid UTF-8, else an error naming the byte offset;
 * no NUL bytes). add_special: BOS first (tokenizer.bin), or the
 * post-processor's special tokens (tokenizer.json). *ids is malloc'd. */
int ttok_encode(const TextTokenizer *t, const char *text, size_t len, int add_special, int **ids, size_t *n,
                QErr *err);

/* Decodes ids to text (malloc'd, NUL-terminated); special tokens give no
 * text when skip_special. */
int ttok_decode(const TextTokenizer *t, const int *ids, size_t n, int skip_special, char **text, size_t *len,
                QErr *err);

/* The tokenizer underneath: exactly one of the two is non-NULL. */
const Tokenizer *ttok_bin(const TextTokenizer *t);
const HfTokenizer *ttok_hf(const TextTokenizer *t);

#endif
