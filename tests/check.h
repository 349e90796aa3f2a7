/* check.h — the few assertion macros our C tests need (a framework would add
 * a dependency for nothing: ctest already runs, times and reports each test).
 * A failed CHECK prints file:line and the values, and the test exits 1 at the
 * end; SKIP exits 77, which ctest reports as skipped. */
#ifndef QUEPT_CHECK_H
#define QUEPT_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int check_failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                                       \
    do {                                                                                                    \
        double ca_ = (double)(a), cb_ = (double)(b);                                                        \
        if (!(fabs(ca_ - cb_) <= (atol) + (rtol)*fabs(cb_))) {                                              \
            fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s=%.9g vs %s=%.9g\n", __FILE__, __LINE__, #a, ca_, \
                    #b, cb_);                                                                               \
            check_failures++;                                                                               \
        }                                                                                                   \
    } while (0)

#define SKIP(...)                     \
    do {                              \
        fprintf(stderr, "SKIP: ");    \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr);          \
        exit(77);                     \
    } while (0)

#define CHECK_DONE()                                                 \
    do {                                                             \
        if (check_failures) {                                        \
            fprintf(stderr, "%d check(s) failed\n", check_failures); \
            return 1;                                                \
        }                                                            \
        printf("ok\n");                                              \
        return 0;                                                    \
    } while (0)

/* Path of a file under ../shared, or SKIP when it is absent. */
static inline const char *shared_path_or_skip(const char *rel, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", QUEPT_SHARED_DIR, rel);
    if (access(buf, R_OK) != 0) SKIP("%s not found (../shared is absent)", buf);
    return buf;
}

#endif
