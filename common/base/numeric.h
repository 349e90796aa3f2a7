/* numeric.h — small numeric utilities shared across layers. */
#ifndef QUEPT_NUMERIC_H
#define QUEPT_NUMERIC_H

#include <stddef.h>

#include "err.h"

/* Monotonic wall-clock seconds (for timings and ETAs; never stored). */
double now_seconds(void);
/* Sleeps s seconds (a signal may end it early). */
void sleep_seconds(double s);

/* Fails on the first NaN/Inf in x, with "<what>: non-finite value V at index I".
 * x may be NULL (an absent optional tensor). */
int floats_check_finite(const float *x, size_t n, const char *what, QErr *err);

#endif
