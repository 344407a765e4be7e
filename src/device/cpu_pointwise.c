/* Elementwise CPU ops: GELU, residual add, inverted dropout, and the vector helpers
 * (scale, zero, axpy) used on flat gradient and parameter buffers. */
#include <math.h>
#include <string.h>
#include "cpu_ops.h"
#include "kiln/rng.h"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBIC 0.044715f

/* GPT-2's GELU, 0.5 x (1 + tanh u) with u = sqrt(2/pi) (x + 0.044715 x^3), written as
 * x sigmoid(2u) = x / (1 + e), e = exp(-2u): one exponential, no select, no cancellation
 * (tanh's 1 + tanh u loses every digit in the left tail; 1 / (1 + e) keeps them). The
 * exponent is clamped to [-87, 80]: below, e is under 1e-38 and adds nothing to 1; above,
 * GELU(x) is under 1e-33, and e stays finite and (1 + e)^2 a normal float. */
static inline float gelu_exp(float x)
{
    float t = x * (-2.0f * GELU_SCALE + (-2.0f * GELU_SCALE * GELU_CUBIC) * x * x);
    return kiln_cpu_exp_in_range(t < -87.0f ? -87.0f : (t > 80.0f ? 80.0f : t));
}

/* The loops run on restrict slices, one per thread: in this form GCC vectorises them with
 * no aliasing checks, twice as fast as an `omp parallel for simd` over the shared arrays. */
static void gelu_forward_slice(float *restrict out, const float *restrict inp, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] / (1.0f + gelu_exp(inp[i]));
}

/* d/dx [x s] with s = 1 / (1 + e): s + x s' where s' = 2 e s^2 du/dx (sech^2 u = 4 e s^2) */
static void gelu_backward_slice(float *restrict dinp, const float *restrict inp,
                                const float *restrict dout, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], e = gelu_exp(x), s = 1.0f / (1.0f + e);
        float du_dx = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * x * x);
        dinp[i] += (s + 2.0f * x * e * s * s * du_dx) * dout[i];
    }
}

/* This thread's share [lo, hi) of n elements, in whole cache lines of floats. */
static void thread_range(size_t n, size_t *lo, size_t *hi)
{
    size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    size_t lines = (n + 15) / 16;
    *lo = lines * t / nt * 16;
    *hi = lines * (t + 1) / nt * 16;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

void kiln_cpu_gelu_forward(float *out, const float *inp, size_t n, void *stream)
{
#pragma omp parallel if (n >= KILN_CPU_PAR_MIN)
    {
        size_t lo, hi;
        thread_range(n, &lo, &hi);
        gelu_forward_slice(out + lo, inp + lo, hi - lo);
    }
}

void kiln_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                            void *stream)
{
#pragma omp parallel if (n >= KILN_CPU_PAR_MIN)
    {
        size_t lo, hi;
        thread_range(n, &lo, &hi);
        gelu_backward_slice(dinp + lo, inp + lo, dout + lo, hi - lo);
    }
}

void kiln_cpu_residual_forward(float *out, const float *a, const float *b, size_t n,
                               void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* da and db may be the same buffer (x + x): both adds then land, as they should. */
void kiln_cpu_residual_backward(float *da, float *db, const float *dout, size_t n, void *stream)
{
#pragma omp parallel for schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* The mask is a pure function of (seed, stream_id, i), so backward recomputes it instead of
 * saving it, and any split of the work across threads or devices draws the same mask. */
static inline int dropout_keeps(float p, uint64_t seed, uint64_t stream_id, size_t i)
{
    return kiln_rng_uniform(seed, stream_id, i) >= p;
}

void kiln_cpu_dropout_forward(float *out, const float *inp, float p, uint64_t seed,
                              uint64_t stream_id, size_t n, void *stream)
{
    if (p == 0.0f) {
        if (out != inp)
            memcpy(out, inp, n * sizeof(float));
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = dropout_keeps(p, seed, stream_id, i) ? inp[i] * keep_scale : 0.0f;
}

void kiln_cpu_dropout_backward(float *dinp, const float *dout, float p, uint64_t seed,
                               uint64_t stream_id, size_t n, void *stream)
{
    if (p == 0.0f) {
        kiln_cpu_axpy(dinp, dout, 1.0f, n, stream);
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (dropout_keeps(p, seed, stream_id, i))
            dinp[i] += dout[i] * keep_scale;
}

void kiln_cpu_scale(float *x, float s, size_t n, void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

/* Every thread clears its slice: a whole-model gradient buffer is megabytes, and one thread
 * alone would leave the others idle. */
void kiln_cpu_zero(float *x, size_t n, void *stream)
{
#pragma omp parallel if (n >= KILN_CPU_PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        size_t lo = n * (size_t)t / (size_t)nt, hi = n * (size_t)(t + 1) / (size_t)nt;
        memset(x + lo, 0, (hi - lo) * sizeof(float));
    }
}

void kiln_cpu_axpy(float *y, const float *x, float a, size_t n, void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}
