/* rng.h — deterministic random numbers. Every draw in quept comes from an Rng
 * seeded by rng_seed_from(job seed, block, epoch, step), so a block's result
 * depends only on its inputs and the job config. */
#ifndef QUEPT_RNG_H
#define QUEPT_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4]; /* xoshiro256** state */
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* Mixes several integers into one seed (splitmix64 chain). */
uint64_t rng_mix(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t rng_u64(Rng *r);
float rng_uniform(Rng *r);  /* [0, 1) with 24 bits */
int rng_int(Rng *r, int n); /* [0, n) */
float rng_normal(Rng *r);   /* standard normal, Box-Muller */

#endif
