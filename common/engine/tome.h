/* tome.h — multi-bit token merging (MB-ToMe): builds the next block's
 * quantized input from the block's outputs at one bit per group. */
#ifndef QUEPT_TOME_H
#define QUEPT_TOME_H

/* outs[g] (T,C) for g = 0..n-1 ordered from the HIGHEST bit to the lowest.
 * Per token, cosine similarity between the lowest- and highest-bit outputs;
 * the ceil(keep*T) most similar tokens take the highest-bit output, the rest
 * the mean of all n outputs. sim: (T) scratch, idx: (T) scratch. */
void tome_merge(float *out, const float *const *outs, int n, int T, int C, float keep, float *sim, int *idx);

#endif
