#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int qerr_set(QErr *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int qerr_wrap(QErr *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[QERR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[QERR_MSG_LEN];
    memcpy(old, err->msg, sizeof old);
    /* both parts fit in msg or the tail is cut: truncation is acceptable */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    err->msg[n] = ':';
    err->msg[n + 1] = ' ';
    size_t rest = sizeof err->msg - n - 3;
    size_t m = strlen(old);
    if (m > rest) m = rest;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return -1;
}

void qerr_clear(QErr *err) {
    if (err) err->msg[0] = '\0';
}
