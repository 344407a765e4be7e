/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
 * Counter = (stream, index); key = seed. The rounds live in philox.h, shared with the CUDA
 * kernels. */
#include "kiln/rng.h"
#include <math.h>
#include "philox.h"

void kiln_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4])
{
    kiln_philox_rounds(key, ctr_hi, ctr_lo, out);
}

float kiln_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
    return kiln_philox_uniform(seed, stream, index);
}

float kiln_rng_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t r[4];
    kiln_philox4x32(seed, stream, index, r);
    double u1 = ((double)r[0] + 1.0) / 4294967297.0; /* (0,1]: log is finite */
    double u2 = (double)r[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void kiln_rng_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed,
                          uint64_t stream, uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean + std * kiln_rng_normal(seed, stream, offset + i);
}

void kiln_rng_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t stream)
{
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    for (uint64_t i = n; i > 1; i--) {
        uint32_t r[4];
        kiln_philox4x32(seed, stream, i, r);
        uint64_t j = (((uint64_t)r[0] << 32) | r[1]) % i; /* bias < 2^-32 for n < 2^32 */
        uint64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
