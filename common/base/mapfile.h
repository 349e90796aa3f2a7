/* mapfile.h — read-only memory-mapped files, and atomic file writes. */
#ifndef QUEPT_MAPFILE_H
#define QUEPT_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char path[512];
} MappedFile;

int mapfile_open(MappedFile *mf, const char *path, QErr *err);
void mapfile_close(MappedFile *mf);

/* Writes a whole file safely: to "<path>.tmp.<pid>", fsync, rename, fsync dir.
 * On failure the old file at path (if any) is untouched and the temp removed. */
typedef struct AtomicFile AtomicFile;
AtomicFile *atomic_open(const char *path, QErr *err);
int atomic_write(AtomicFile *af, const void *buf, size_t n, QErr *err);
int atomic_commit(AtomicFile *af, QErr *err); /* frees af */
void atomic_abort(AtomicFile *af);            /* frees af, removes temp */

int file_write_all(const char *path, const void *buf, size_t n, QErr *err);
/* mkdir -p: creates dir and its missing parents (0755); fails when dir
 * exists but is not a directory. */
int dir_make_all(const char *dir, QErr *err);

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
int file_read_all(const char *path, char **out, size_t *out_len, QErr *err);

#endif
