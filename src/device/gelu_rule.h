/* GPT-2's GELU per element, for the CPU (cpu_pointwise.c) and the CUDA kernels
 * (kernels/pointwise.cu): one formula, each backend bringing its own exp (the CPU's
 * vectorises, CUDA's is expf).
 *
 * 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3), written as x sigmoid(2u) =
 * x / (1 + e) with e = exp(-2u): one exponential and no select, and no cancellation in the
 * left tail, where 1 + tanh u loses every digit and 1 / (1 + e) keeps them. */
#ifndef KILN_DEVICE_GELU_RULE_H
#define KILN_DEVICE_GELU_RULE_H
#include "../core/host_device.h"

#define KILN_GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define KILN_GELU_CUBIC 0.044715f

/* Beyond |x| = 9, GELU(x) is x or 0 and its slope 1 or 0 to within 1e-27 (the other term
 * carries exp(-66)), so every term is taken at x clamped to [-9, 9]: then -2u lies in
 * [-66.4, 66.4], e = exp(-2u) and (1 + e)^2 stay normal floats, and no product overflows for
 * any finite x. NaN stays NaN. */
static inline KILN_HOST_DEVICE float kiln_gelu_clamp(float x)
{
    return x < -9.0f ? -9.0f : (x > 9.0f ? 9.0f : x);
}

/* -2u at x clamped, the argument of the exp that the two functions below are given */
static inline KILN_HOST_DEVICE float kiln_gelu_exponent(float x)
{
    float c = kiln_gelu_clamp(x);
    return c * (-2.0f * KILN_GELU_SCALE + (-2.0f * KILN_GELU_SCALE * KILN_GELU_CUBIC) * c * c);
}

/* GELU(x), given e = exp(kiln_gelu_exponent(x)): x s with s = 1 / (1 + e); below -9 it is
 * -9 s, under 2e-28 */
static inline KILN_HOST_DEVICE float kiln_gelu(float x, float e)
{
    return (x < -9.0f ? -9.0f : x) / (1.0f + e);
}

/* dGELU/dx, given e as above: d/dx [x s] is s + x ds/dx, and ds/dx = 2 e s^2 du/dx
 * (sech^2 u = 4 e s^2) */
static inline KILN_HOST_DEVICE float kiln_gelu_grad(float x, float e)
{
    float c = kiln_gelu_clamp(x), s = 1.0f / (1.0f + e);
    float du_dx = KILN_GELU_SCALE * (1.0f + 3.0f * KILN_GELU_CUBIC * c * c);
    return s + 2.0f * c * e * s * s * du_dx;
}

#endif
