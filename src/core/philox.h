/* Philox4x32-10 as inline code that compiles for both the CPU (rng.c) and CUDA kernels
 * (kernels/pointwise.cu), so a dropout mask drawn on a GPU is bit for bit the CPU's mask:
 * same integer arithmetic, same 24-bit float conversion. Counter = (stream, index); key =
 * seed (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11). */
#ifndef KILN_CORE_PHILOX_H
#define KILN_CORE_PHILOX_H
#include <stdint.h>
#include "host_device.h"

static inline KILN_HOST_DEVICE void kiln_philox_rounds(uint64_t key, uint64_t ctr_hi,
                                                       uint64_t ctr_lo, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform in [0, 1): the top 24 bits of the first word, exactly representable in float. */
static inline KILN_HOST_DEVICE float kiln_philox_uniform(uint64_t seed, uint64_t stream,
                                                         uint64_t index)
{
    uint32_t r[4];
    kiln_philox_rounds(seed, stream, index, r);
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f);
}

#endif
