/* err.h — status + message error reporting.
 * Every fallible function returns 0 on success or -1 on failure and fills a
 * QErr with a message that names the file, the field and what was expected,
 * and a code that says what kind of failure it is (for the exit status:
 * callers never match on the message). Only main() decides to exit. */
#ifndef QUEPT_ERR_H
#define QUEPT_ERR_H

#include <stddef.h>

/* room for two paths of PATH_MAX and the reason: a long path must never
 * cut the reason off */
#define QERR_MSG_LEN 10240

/* The kind of a failure, set where it happens (qerr_setc). */
typedef enum {
    QERR_FAILED = 0,  /* generic: what qerr_set sets (and a zeroed QErr holds) */
    QERR_USAGE,       /* the command line: unknown option, missing or bad value */
    QERR_IO,          /* a file could not be opened, read or written */
    QERR_CORRUPT,     /* a file's checksum, magic or format version is wrong */
    QERR_INTERRUPTED, /* stopped by a signal (SIGINT, SIGTERM) */
    QERR_CANCELLED,   /* stopped on request (a cancel flag or callback) */
} QErrCode;

/* The two fields sit in an anonymous struct (C11), code first, so that the
 * `QErr err = {{0}}` used throughout zeroes both without a
 * missing-initializer warning; read them as err.msg and err.code. */
typedef struct {
    struct {
        QErrCode code;
        char msg[QERR_MSG_LEN];
    };
} QErr;

/* Sets the message (printf-style) with the generic code QERR_FAILED and
 * returns -1 so callers can `return qerr_set(err, ...)`. err may be NULL. */
int qerr_set(QErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* qerr_set with a code. */
int qerr_setc(QErr *err, QErrCode code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (adds context on the way up);
 * the code stays. */
int qerr_wrap(QErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empty message, generic code. */
void qerr_clear(QErr *err);

/* The process exit status of a command that failed with code: QERR_USAGE 2,
 * QERR_INTERRUPTED 130 (128 + SIGINT, as a shell reports it), else 1. */
int qerr_exit_status(QErrCode code);

#endif
