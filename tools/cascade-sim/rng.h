/* The simulator's random stream: xoshiro256** seeded by splitmix64, so a
 * seed gives the same run on every machine. */
#ifndef CX_SIM_RNG_H
#define CX_SIM_RNG_H

#include <stdint.h>

typedef struct cx_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
} cx_rng_t;

void cx_rng_seed(cx_rng_t *r, uint64_t seed);
uint64_t cx_rng_next(cx_rng_t *r);
double cx_rng_u01(cx_rng_t *r);              /* [0, 1) */
double cx_rng_exp(cx_rng_t *r, double rate); /* mean 1/rate */
double cx_rng_normal(cx_rng_t *r);           /* N(0, 1) */

#endif
