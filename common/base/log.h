/* log.h — leveled logging to stderr. The level is the only global, set once
 * at start-up: info, or the environment variable QUEPT_LOG (log_level_from_env,
 * called by main); `quept worker --quiet` then lowers it to warn. */
#ifndef QUEPT_LOG_H
#define QUEPT_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
/* Sets the level from QUEPT_LOG: debug, info, warn or error. Unset or empty
 * keeps the level; any other value keeps it too, with a warning that names
 * the accepted values. */
void log_level_from_env(void);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes text from outside (a peer's name or message) safe to print: every
 * control character (C0, DEL, and C1 as UTF-8 0xC2 0x80..0x9F) becomes '?',
 * so it cannot move the cursor, colour the terminal or forge a log line. */
void log_sanitize(char *s);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
