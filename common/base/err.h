/* err.h — status + message error reporting.
 * Every fallible function returns 0 on success or -1 on failure and fills a
 * QErr with a message that names the file, the field and what was expected.
 * Only main() decides to exit. */
#ifndef QUEPT_ERR_H
#define QUEPT_ERR_H

#include <stddef.h>

#define QERR_MSG_LEN 1024

typedef struct {
    char msg[QERR_MSG_LEN];
} QErr;

/* Sets the message (printf-style) and returns -1 so callers can
 * `return qerr_set(err, ...)`. err may be NULL. */
int qerr_set(QErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (adds context on the way up). */
int qerr_wrap(QErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void qerr_clear(QErr *err);

#endif
