#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 0))) static int qerr_vsetc(QErr *err, QErrCode code, const char *fmt,
                                                            va_list ap) {
    if (!err) return -1;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    err->code = code;
    return -1;
}

int qerr_set(QErr *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = qerr_vsetc(err, QERR_FAILED, fmt, ap);
    va_end(ap);
    return rc;
}

int qerr_setc(QErr *err, QErrCode code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = qerr_vsetc(err, code, fmt, ap);
    va_end(ap);
    return rc;
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
    if (!err) return;
    err->msg[0] = '\0';
    err->code = QERR_FAILED;
}

int qerr_exit_status(QErrCode code) {
    switch (code) {
    case QERR_USAGE: return 2;
    case QERR_INTERRUPTED: return 130;
    default: return 1;
    }
}
