#define _POSIX_C_SOURCE 200809L
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mapfile_open(MappedFile *mf, const char *path, QErr *err) {
    memset(mf, 0, sizeof *mf);
    snprintf(mf->path, sizeof mf->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return qerr_setc(err, QERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return qerr_setc(err, QERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return qerr_setc(err, QERR_IO, "%s: not a regular file", path);
    }
    mf->size = (size_t)st.st_size;
    if (mf->size > 0) {
        void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return qerr_setc(err, QERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
        }
        mf->data = p;
    }
    close(fd);
    return 0;
}

void mapfile_close(MappedFile *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    mf->data = NULL;
    mf->size = 0;
}

struct AtomicFile {
    int fd;
    char path[1024];
    char tmp[1100];
};

AtomicFile *atomic_open(const char *path, QErr *err) {
    AtomicFile *af = calloc(1, sizeof *af);
    if (!af) {
        qerr_set(err, "%s: out of memory", path);
        return NULL;
    }
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (af->fd < 0) {
        qerr_setc(err, QERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af);
        return NULL;
    }
    return af;
}

int atomic_write(AtomicFile *af, const void *buf, size_t n, QErr *err) {
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(af->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return qerr_setc(err, QERR_IO, "%s: write failed: %s", af->tmp, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void atomic_abort(AtomicFile *af) {
    if (!af) return;
    if (af->fd >= 0) close(af->fd);
    unlink(af->tmp);
    free(af);
}

int atomic_commit(AtomicFile *af, QErr *err) {
    if (fsync(af->fd) != 0) {
        qerr_setc(err, QERR_IO, "%s: fsync failed: %s", af->tmp, strerror(errno));
        atomic_abort(af);
        return -1;
    }
    if (close(af->fd) != 0) {
        af->fd = -1;
        qerr_setc(err, QERR_IO, "%s: close failed: %s", af->tmp, strerror(errno));
        atomic_abort(af);
        return -1;
    }
    af->fd = -1;
    if (rename(af->tmp, af->path) != 0) {
        qerr_setc(err, QERR_IO, "%s: rename to %s failed: %s", af->tmp, af->path, strerror(errno));
        atomic_abort(af);
        return -1;
    }
    /* fsync the directory so the rename itself is durable */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", af->path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(af);
    return 0;
}

int file_write_all(const char *path, const void *buf, size_t n, QErr *err) {
    AtomicFile *af = atomic_open(path, err);
    if (!af) return -1;
    if (atomic_write(af, buf, n, err) != 0) {
        atomic_abort(af);
        return -1;
    }
    return atomic_commit(af, err);
}

int file_read_all(const char *path, char **out, size_t *out_len, QErr *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qerr_setc(err, QERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return qerr_set(err, "%s: out of memory", path);
    }
    for (;;) {
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (len < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            fclose(f);
            return qerr_set(err, "%s: out of memory", path);
        }
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return qerr_setc(err, QERR_IO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = len;
    return 0;
}

int dir_make_all(const char *dir, QErr *err) {
    char buf[1024];
    if (!dir || !*dir) return qerr_set(err, "empty directory name");
    int w = snprintf(buf, sizeof buf, "%s", dir);
    if (w < 0 || (size_t)w >= sizeof buf) return qerr_set(err, "%s: path too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return qerr_setc(err, QERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = saved;
            if (saved == '\0') break;
        }
    }
    struct stat s;
    if (stat(dir, &s) != 0 || !S_ISDIR(s.st_mode)) return qerr_setc(err, QERR_IO, "%s: not a directory", dir);
    return 0;
}
