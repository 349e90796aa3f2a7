/* bytebuf.c — see bytebuf.h. */
#include "bytebuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int bytebuf_append(ByteBuf *b, const void *p, size_t n) {
    if (b->oom) return -1;
    if (n > SIZE_MAX - b->len) {
        b->oom = 1;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd) {
            b->oom = 1;
            return -1;
        }
        b->data = nd;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int bytebuf_msgpack_write(void *data, const char *p, size_t n) { return bytebuf_append(data, p, n); }

void bytebuf_free(ByteBuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
