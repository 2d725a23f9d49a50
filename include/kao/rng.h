/* rng.h — kao's one random generator (xoshiro256**, seeded through splitmix64).
 * Its whole state is four uint64 words, saved in checkpoints so a resumed run draws the same
 * numbers as an uninterrupted one. Independent streams come from kao_rng_seed(seed, stream). */
#ifndef KAO_RNG_H
#define KAO_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } kao_rng;

void kao_rng_seed(kao_rng *r, uint64_t seed, uint64_t stream);
uint64_t kao_rng_next(kao_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float kao_rng_uniform(kao_rng *r);
/* Uniform integer in [0, n), without modulo bias. */
uint32_t kao_rng_below(kao_rng *r, uint32_t n);
/* Standard normal (Box–Muller in double). */
float kao_rng_normal(kao_rng *r);
/* Fisher–Yates shuffle of n ints. */
void kao_rng_shuffle(kao_rng *r, int *items, int n);

#endif
