/* sha256.h — SHA-256 (FIPS 180-4), for provenance hashes of models and data. */
#ifndef QUEPT_SHA256_H
#define QUEPT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t out[32]);
/* Hex digest of a file (or, for a directory, of its files in name order that
 * end in .json or .safetensors). */
int sha256_path_hex(const char *path, char hex[65], QErr *err);
void sha256_hex(const uint8_t d[32], char hex[65]);

#endif
