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
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return -1;
}

void qerr_clear(QErr *err) {
    if (err) err->msg[0] = '\0';
}
