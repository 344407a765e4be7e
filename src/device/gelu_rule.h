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

/* -2u, clamped to [-87, 80]: below, e is under 1e-38 and adds nothing to 1; above, GELU(x)
 * is under 1e-33, and e stays finite and (1 + e)^2 a normal float. */
static inline KILN_HOST_DEVICE float kiln_gelu_exponent(float x)
{
    float t = x * (-2.0f * KILN_GELU_SCALE + (-2.0f * KILN_GELU_SCALE * KILN_GELU_CUBIC) * x * x);
    return t < -87.0f ? -87.0f : (t > 80.0f ? 80.0f : t);
}

/* GELU(x), given e = exp(kiln_gelu_exponent(x)) */
static inline KILN_HOST_DEVICE float kiln_gelu(float x, float e) { return x / (1.0f + e); }

/* dGELU/dx, given e as above: d/dx [x s] with s = 1 / (1 + e) is s + x ds/dx, and
 * ds/dx = 2 e s^2 du/dx (sech^2 u = 4 e s^2) */
static inline KILN_HOST_DEVICE float kiln_gelu_grad(float x, float e)
{
    float s = 1.0f / (1.0f + e);
    float du_dx = KILN_GELU_SCALE * (1.0f + 3.0f * KILN_GELU_CUBIC * x * x);
    return s + 2.0f * x * e * s * s * du_dx;
}

#endif
