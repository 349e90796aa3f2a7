/* paths.c — see paths.h. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int paths_resolve(const char *path, char *buf, size_t n, QErr *err) {
    char tmp[PATH_MAX];
    if (realpath(path, tmp)) {
        if (snprintf(buf, n, "%s", tmp) >= (int)n) return qerr_set(err, "%s: path too long", path);
        return 0;
    }
    /* not there yet: resolve the parent, keep the last component */
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy)
        return qerr_set(err, "%s: path too long", path);
    char *slash = strrchr(copy, '/');
    const char *base = slash ? slash + 1 : copy;
    const char *parent = slash ? (slash == copy ? "/" : copy) : ".";
    if (slash) *slash = '\0';
    char pres[PATH_MAX];
    if (!realpath(parent, pres)) {
        /* the parent does not exist either: absolute as written */
        if (path[0] == '/')
            return snprintf(buf, n, "%s", path) >= (int)n ? qerr_set(err, "%s: path too long", path) : 0;
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return qerr_set(err, "getcwd: %s", strerror(errno));
        return snprintf(buf, n, "%s/%s", cwd, path) >= (int)n ? qerr_set(err, "%s: path too long", path) : 0;
    }
    int w = strcmp(pres, "/") == 0 ? snprintf(buf, n, "/%s", base) : snprintf(buf, n, "%s/%s", pres, base);
    return w >= (int)n ? qerr_set(err, "%s: path too long", path) : 0;
}

int paths_inside(const char *path, const char *dir) {
    char p[PATH_MAX], d[PATH_MAX];
    if (paths_resolve(path, p, sizeof p, NULL) != 0 || paths_resolve(dir, d, sizeof d, NULL) != 0) return 0;
    size_t nd = strlen(d);
    if (strcmp(d, "/") == 0) return 1;
    return strncmp(p, d, nd) == 0 && (p[nd] == '/' || p[nd] == '\0');
}

int paths_same(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ra[PATH_MAX], rb[PATH_MAX];
    if (paths_resolve(a, ra, sizeof ra, NULL) != 0 || paths_resolve(b, rb, sizeof rb, NULL) != 0) return 0;
    return strcmp(ra, rb) == 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int paths_check_output(PathArg out, int out_is_dir, const PathArg *inputs, int n, QErr *err) {
    if (!out.path) return 0;
    for (int i = 0; i < n; i++) {
        const PathArg *in = &inputs[i];
        if (!in->path) continue;
        if (paths_same(out.path, in->path))
            return qerr_set(err, "%s %s is the same file as %s %s: an output may never overwrite an input",
                            out.flag, out.path, in->flag, in->path);
        if (is_dir(in->path) && paths_inside(out.path, in->path))
            return qerr_set(err, "%s %s lies inside %s %s: outputs are written outside the inputs", out.flag,
                            out.path, in->flag, in->path);
        if (out_is_dir && paths_inside(in->path, out.path))
            return qerr_set(err, "%s %s is a directory the output fills, and it holds %s %s", out.flag,
                            out.path, in->flag, in->path);
    }
    return 0;
}
