/* Elementwise CPU ops: GELU, residual add, inverted dropout, and the vector helpers
 * (scale, zero, axpy) used on flat gradient and parameter buffers. */
#include <math.h>
#include <string.h>
#include "cpu_ops.h"
#include "gelu_rule.h"
#include "kiln/rng.h"

/* The exp of the GELU's exponent (gelu_rule.h), by the vectorising exp */
static inline float gelu_exp(float x) { return kiln_cpu_exp_in_range(kiln_gelu_exponent(x)); }

void kiln_cpu_gelu_forward(float *out, const float *inp, size_t n, void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = kiln_gelu(inp[i], gelu_exp(inp[i]));
}

void kiln_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                            void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += kiln_gelu_grad(inp[i], gelu_exp(inp[i])) * dout[i];
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
