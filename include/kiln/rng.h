/* Counter-based random numbers (Philox4x32-10).
 *
 * A value is a pure function of (seed, stream, index): element i of a dropout mask or of an
 * initialisation is the same whichever rank or thread computes it, so results do not depend
 * on how work is split, and a checkpoint only needs the seed and the step to resume exactly. */
#ifndef KILN_RNG_H
#define KILN_RNG_H
#include <stddef.h>
#include <stdint.h>

/* The raw generator: four 32-bit words for counter (hi, lo) under key. */
void kiln_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);

/* Uniform in [0, 1) for element index of (seed, stream). */
float kiln_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
/* Standard normal (Box-Muller) for element index of (seed, stream). */
float kiln_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
/* Fill x[i] = mean + std * normal(seed, stream, offset + i). */
void kiln_rng_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed,
                          uint64_t stream, uint64_t offset);
/* Fisher-Yates permutation of 0..n-1 driven by (seed, stream). */
void kiln_rng_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t stream);

#endif
