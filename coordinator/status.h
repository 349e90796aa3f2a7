/* status.h — the job report `quept status` prints (coord_status.c). A
 * running coordinator serves it on its status socket; with none running,
 * the journal alone gives the same report. */
#ifndef QUEPT_COORD_STATUS_H
#define QUEPT_COORD_STATUS_H

#include "base/err.h"

/* The report of the job whose journal is dir, as JSON (malloc'd), or NULL
 * with err. */
char *journal_status_json(const char *dir, QErr *err);

#endif
