#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static LogLevel g_level = LOG_INFO; /* configuration read at start */
static const char *const LEVEL_NAMES[] = {"error", "warn", "info", "debug"};

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_get_level(void) { return g_level; }

void log_level_from_env(void) {
    const char *v = getenv("QUEPT_LOG");
    if (!v || !*v) return;
    for (int l = LOG_ERROR; l <= LOG_DEBUG; l++) {
        if (strcmp(v, LEVEL_NAMES[l]) == 0) {
            g_level = (LogLevel)l;
            return;
        }
    }
    log_warn("QUEPT_LOG='%s' is not a log level (debug, info, warn, error); logging at %s", v,
             LEVEL_NAMES[g_level]);
}

void log_msg(LogLevel level, const char *fmt, ...) {
    if (level > g_level) return;
    fprintf(stderr, "quept %s: ", LEVEL_NAMES[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void log_sanitize(char *s) {
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            p[0] = p[1] = '?', p++;
    }
}
