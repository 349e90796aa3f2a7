/* utf8.h — strict UTF-8 validation (no overlong forms, no surrogates,
 * nothing above U+10FFFF), shared by every tokenizer entry point. */
#ifndef QUEPT_UTF8_H
#define QUEPT_UTF8_H

#include <stddef.h>

/* 1 when s[0..n) is valid UTF-8; else 0 with *bad the offset of the first
 * byte of the first invalid sequence. */
int utf8_valid(const char *s, size_t n, size_t *bad);

/* Length of the UTF-8 sequence that starts with byte c (1 for a stray byte). */
int utf8_seq_len(unsigned char c);

#endif
