/* paths.h — inputs are sacred: an output path may never name an input.
 *
 * Two paths are the same when they are the same file (device and inode, so
 * hard links and symlinks count) or, for a path that does not exist yet,
 * when they resolve to the same absolute path (realpath of the parent +
 * the last component). A path is inside a directory when its resolved form
 * starts with the directory's resolved form and a slash. */
#ifndef QUEPT_PATHS_H
#define QUEPT_PATHS_H

#include "err.h"

typedef struct {
    const char *flag; /* how the user named it, e.g. "--model" (for messages) */
    const char *path; /* NULL: not given, skipped */
} PathArg;

/* Refuses `out` when it is one of inputs[0..n), lies inside an input that is
 * a directory, or (out_is_dir: the writer fills a directory) when an input
 * lies inside out. The error names both flags and both paths. */
int paths_check_output(PathArg out, int out_is_dir, const PathArg *inputs, int n, QErr *err);

/* The absolute, symlink-free form of path (which need not exist: its parent
 * is resolved instead, or the path is made absolute as written) into buf. */
int paths_resolve(const char *path, char *buf, size_t n, QErr *err);

/* 1 when a and b name the same file (see above), existing or not. */
int paths_same(const char *a, const char *b);

/* 1 when `path`, resolved, is `dir` or lies below it. */
int paths_inside(const char *path, const char *dir);

#endif
