#include "numeric.h"

#include <math.h>
#include <time.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sleep_seconds(double s) {
    if (!(s > 0)) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int floats_check_finite(const float *x, size_t n, const char *what, QErr *err) {
    if (!x) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return qerr_set(err, "%s: non-finite value %g at index %zu", what, (double)x[i], i);
    return 0;
}
