/* proc.c — see proc.h. */
#include "proc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int proc_self_exe(char *buf, size_t n, QErr *err) {
    ssize_t got = n > 1 ? readlink("/proc/self/exe", buf, n - 1) : -1;
    if (got <= 0) return qerr_set(err, "cannot find our own executable: /proc/self/exe: %s", strerror(errno));
    /* readlink truncates silently: a full buffer may be a cut path */
    if ((size_t)got >= n - 1) return qerr_set(err, "cannot find our own executable: its path is too long");
    buf[got] = 0;
    return 0;
}
