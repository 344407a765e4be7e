/* Elementwise CPU ops: GELU, residual add, inverted dropout, and the vector helpers
 * (scale, zero, axpy) used on flat gradient and parameter buffers. */
#include <math.h>
#include <string.h>
#include "cpu_ops.h"
#include "kiln/rng.h"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBIC 0.044715f

/* GPT-2's GELU: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline float gelu_arg(float x) { return GELU_SCALE * (x + GELU_CUBIC * x * x * x); }

/* 0.5 (1 + tanh u) and sech^2 u = 1 - tanh^2 u, both through e = exp(-2|u|): it cannot
 * overflow, and it keeps both accurate in the tails, where the direct forms cancel to 0. */
static inline void gelu_terms(float x, float *half_one_plus_tanh, float *sech2)
{
    float u = gelu_arg(x);
    float e = kiln_cpu_expf(-2.0f * fabsf(u)), r = 1.0f / (1.0f + e);
    *half_one_plus_tanh = u >= 0.0f ? r : e * r;
    *sech2 = 4.0f * e * r * r;
}

void kiln_cpu_gelu_forward(float *out, const float *inp, size_t n, void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float half, sech2;
        gelu_terms(inp[i], &half, &sech2);
        out[i] = inp[i] * half;
    }
}

void kiln_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                            void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], half, sech2;
        gelu_terms(x, &half, &sech2);
        float du_dx = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * x * x);
        dinp[i] += (half + 0.5f * x * sech2 * du_dx) * dout[i];
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
