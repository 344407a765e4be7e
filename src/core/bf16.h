/* bfloat16, the storage type of train.precision=bf16: the upper half of an IEEE float (sign,
 * 8 exponent bits, 7 mantissa bits), so it has fp32's range with 8 bits of precision.
 * The conversions are inline code for both the CPU and CUDA kernels: the kernels load and
 * store bf16 through these, so what the unit tests check on the CPU is exactly what a GPU
 * does, and host code (tests reading device buffers) converts the same way. */
#ifndef KILN_CORE_BF16_H
#define KILN_CORE_BF16_H
#include <stdint.h>
#include <string.h>
#include "host_device.h"

/* A struct, not a bare uint16_t, so that a bf16 buffer never passes for integers. */
typedef struct kiln_bf16 {
    uint16_t bits;
} kiln_bf16;

static inline KILN_HOST_DEVICE uint32_t kiln_f32_bits(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

static inline KILN_HOST_DEVICE float kiln_f32_from_bits(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* Round to nearest, ties to even (IEEE's default, and PyTorch's): adding 0x7fff plus the lowest
 * kept bit carries into the kept half exactly when the dropped half is above one half, or equal
 * to it with an odd kept half. Values past the largest bf16 round to infinity, infinities and
 * signed zeros stay, NaN stays a (quiet) NaN instead of rounding into infinity. */
static inline KILN_HOST_DEVICE kiln_bf16 kiln_bf16_from_f32(float f)
{
    uint32_t u = kiln_f32_bits(f);
    kiln_bf16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        b.bits = (uint16_t)((u >> 16) | 0x0040u);
        return b;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    b.bits = (uint16_t)(u >> 16);
    return b;
}

/* Exact: every bf16 is a float. */
static inline KILN_HOST_DEVICE float kiln_bf16_to_f32(kiln_bf16 b)
{
    return kiln_f32_from_bits((uint32_t)b.bits << 16);
}

#endif
