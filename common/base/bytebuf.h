/* bytebuf.h — a growable byte buffer with a sticky out-of-memory flag: append
 * freely, check b.oom (or any return value) once at the end. Used to build
 * headers and messages whose size is not known in advance. */
#ifndef QUEPT_BYTEBUF_H
#define QUEPT_BYTEBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int oom; /* an append failed: data holds what came before it */
} ByteBuf;

/* Appends n bytes of p (p may be NULL when n is 0); -1 and b->oom set when
 * memory runs out, and every later append fails too. */
int bytebuf_append(ByteBuf *b, const void *p, size_t n);
/* msgpack_packer_init(&pk, &buf, bytebuf_msgpack_write) packs into buf. */
int bytebuf_msgpack_write(void *data, const char *p, size_t n);
void bytebuf_free(ByteBuf *b); /* back to empty; the struct may be reused */

#endif
