/* LayerNorm over the last dimension on the CPU (GPT-2 / PyTorch: biased variance, eps 1e-5). */
#include <math.h>
#include "cpu_ops.h"

#define LAYERNORM_EPS 1e-5f

void kiln_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C,
                                void *stream)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++)
            sum += x[c];
        float m = sum / C;
        /* Two passes over the row: E[(x-m)^2] does not cancel the way E[x^2] - m^2 does. */
        float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
        for (int c = 0; c < C; c++)
            sq += (x[c] - m) * (x[c] - m);
        float s = 1.0f / sqrtf(sq / C + LAYERNORM_EPS);
#pragma omp simd
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* dinp, row by row: with xhat = (x - mean) * rstd and g = weight * dout,
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
static void layernorm_backward_input(float *dinp, const float *dout, const float *inp,
                                     const float *weight, const float *mean, const float *rstd,
                                     int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float g_mean = 0.0f, gx_mean = 0.0f;
#pragma omp simd reduction(+ : g_mean, gx_mean)
        for (int c = 0; c < C; c++) {
            float g = weight[c] * dy[c];
            g_mean += g;
            gx_mean += g * (x[c] - m) * s;
        }
        g_mean /= C;
        gx_mean /= C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            dx[c] += s * (weight[c] * dy[c] - g_mean - (x[c] - m) * s * gx_mean);
    }
}

/* dweight += sum_n xhat * dout, dbias += sum_n dout: column reductions, one slice per thread. */
static void layernorm_backward_params(float *dweight, float *dbias, const float *dout,
                                      const float *inp, const float *mean, const float *rstd,
                                      int N, int C)
{
#pragma omp parallel
    {
        int lo, hi;
        kiln_cpu_thread_slice(C, &lo, &hi);
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
#pragma omp simd
            for (int c = lo; c < hi; c++) {
                dweight[c] += (x[c] - m) * s * dy[c];
                dbias[c] += dy[c];
            }
        }
    }
}

void kiln_cpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, int N, int C, void *stream)
{
    layernorm_backward_input(dinp, dout, inp, weight, mean, rstd, N, C);
    layernorm_backward_params(dweight, dbias, dout, inp, mean, rstd, N, C);
}
