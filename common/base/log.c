#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static LogLevel g_level = LOG_INFO; /* configuration read at start */

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_get_level(void) { return g_level; }

void log_msg(LogLevel level, const char *fmt, ...) {
    if (level > g_level) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "quept %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
