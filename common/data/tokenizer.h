/* tokenizer.h — the llama2.c sentencepiece-BPE tokenizer (tokenizer.bin).
 *
 * File format (native little endian, as written by llama2.c tokenizer.py):
 *   int32 max_token_length
 *   then per token: float32 score, int32 len, len bytes (no terminator)
 * The token count is not stored: the caller passes the model's vocab_size,
 * or 0 to read tokens until the end of the file.
 *
 * Encoding follows llama2.c run.c encode() exactly: a dummy " " prefix when
 * the text is non-empty, one token per UTF-8 codepoint found in the vocab,
 * byte fallback (byte b -> token b+3) otherwise, then repeatedly merge the
 * adjacent pair whose concatenation is the best-scoring vocab entry (ties:
 * leftmost pair). BOS (1) takes part in the merges, as in llama2.c; EOS (2)
 * is appended after them. We get the same result faster: vocab lookups go
 * through a hash table, and the merges through a heap over adjacent pairs
 * (O(n log n) instead of rescanning all pairs after each merge), run
 * separately between tokens that can never merge, such as "<0x0A>".
 *
 * Deviations, none of which matter for the Llama 2 vocab: a missing " "
 * token falls back to its byte token like any other character (llama2.c
 * emits id -1); byte tokens are recognised only in the exact form "<0xHH>"
 * (llama2.c's sscanf also takes e.g. "<0x4"); a duplicated vocab string
 * resolves to its lowest id (llama2.c: whichever one bsearch hits); and a
 * token longer than max_token_length is an error (llama2.c overflows). */
#ifndef QUEPT_TOKENIZER_H
#define QUEPT_TOKENIZER_H

#include "../base/err.h"

#define TOKEN_BOS 1
#define TOKEN_EOS 2

typedef struct Tokenizer Tokenizer;

/* vocab_size: the expected number of tokens (the file must hold exactly that
 * many), or 0 to accept however many the file holds. */
int tokenizer_load(Tokenizer **out, const char *path, int vocab_size, QErr *err);
void tokenizer_free(Tokenizer *t);

int tokenizer_vocab_size(const Tokenizer *t);
int tokenizer_max_token_length(const Tokenizer *t);
/* The raw vocab string of a token (as stored in the file), NULL if out of range. */
const char *tokenizer_vocab_str(const Tokenizer *t, int token);
float tokenizer_score(const Tokenizer *t, int token); /* 0 if out of range */
/* Id of the vocab entry equal to str (the lowest if duplicated), or -1. */
int tokenizer_lookup(const Tokenizer *t, const char *str);

/* Encodes NUL-terminated text; *tokens is malloc'd (free it), also when
 * *n_tokens is 0. bos/eos: add TOKEN_BOS first / TOKEN_EOS last. */
int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int **tokens, int *n_tokens,
                     QErr *err);

/* The text of one token, llama2.c decode(): after BOS a leading space is
 * stripped, and "<0xHH>" byte tokens give the raw byte. NULL if token is out
 * of range. The pointer lives as long as t. */
const char *tokenizer_piece(const Tokenizer *t, int prev_token, int token);

/* The text of a whole sequence: the pieces of tokens[0..n), each decoded
 * with the token before it as prev_token (none for the first). BOS and EOS
 * are control tokens and add no text, as in llama2.c generation. So
 * decode(encode(s, bos=1)) == s, unless s itself spells a byte token such as
 * "<0x41>" that the merges rebuild. *text is malloc'd. */
int tokenizer_decode(const Tokenizer *t, const int *tokens, int n, char **text, QErr *err);

#endif
