/* golden_reader.h — a bounds-checked cursor over a golden file's bytes,
 * shared by the tests that read PyTorch-generated references. */
#ifndef QUEPT_GOLDEN_READER_H
#define QUEPT_GOLDEN_READER_H

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *buf;
    size_t len, pos;
} Reader;

static inline int rd_bytes(Reader *r, void *dst, size_t n) {
    if (r->len - r->pos < n) return -1;
    memcpy(dst, r->buf + r->pos, n);
    r->pos += n;
    return 0;
}

/* n floats into a fresh buffer, or NULL when the file is too short. */
static inline float *rd_floats(Reader *r, size_t n) {
    float *p = malloc(n ? n * sizeof(float) : 1);
    if (!p || rd_bytes(r, p, n * sizeof(float)) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static inline float *zalloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

#endif
