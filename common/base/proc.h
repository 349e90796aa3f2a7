/* proc.h — this process as the system sees it. */
#ifndef QUEPT_PROC_H
#define QUEPT_PROC_H

#include <stddef.h>

#include "err.h"

/* The path of our own executable, NUL-terminated in buf[n] (to start more
 * processes of ourselves: local workers, benchmarks). */
int proc_self_exe(char *buf, size_t n, QErr *err);

#endif
