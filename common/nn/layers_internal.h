/* layers_internal.h — helpers shared by layers_forward.c and
 * layers_backward.c only (not part of the layer API). Defined in
 * layers_forward.c. */
#ifndef QUEPT_LAYERS_INTERNAL_H
#define QUEPT_LAYERS_INTERNAL_H

#include <stddef.h>

/* y = e^x elementwise, vectorized on AVX2+FMA (chosen at run time), within
 * ~1 ulp of expf; out-of-range inputs, infinities and NaN go through expf. */
void layers_vexpf(const float *x, float *y, size_t n);

/* fn(ctx, i, tid) for i in [0, n) on nt threads; each task runs on one
 * thread in a fixed order, so results do not depend on the schedule. */
void layers_parallel_for(int n, int nt, void (*fn)(void *ctx, int i, int tid), void *ctx);

/* Threads for the per-head attention work: OpenBLAS's thread count. */
int layers_attention_threads(void);

#endif
