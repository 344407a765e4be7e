// Elementwise CUDA ops: GELU, residual add, inverted dropout (the CPU's Philox mask), the
// vector helpers on flat buffers. Same formulas as src/device/cpu_pointwise.c.
#include "common.cuh"
#include "../src/core/philox.h"

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi)
#define GELU_CUBIC 0.044715f

// 0.5 (1 + tanh u) and sech^2 u through e = exp(-2|u|), as on the CPU: no overflow, and
// accurate in the tails.
__device__ __forceinline__ void gelu_terms(float x, float *half_one_plus_tanh, float *sech2)
{
    float u = GELU_SCALE * (x + GELU_CUBIC * x * x * x);
    float e = expf(-2.0f * fabsf(u)), r = 1.0f / (1.0f + e);
    *half_one_plus_tanh = u >= 0.0f ? r : e * r;
    *sech2 = 4.0f * e * r * r;
}

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        float half, sech2;
        gelu_terms(inp[i], &half, &sech2);
        out[i] = inp[i] * half;
    }
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        float x = inp[i], half, sech2;
        gelu_terms(x, &half, &sech2);
        float du_dx = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * x * x);
        dinp[i] += (half + 0.5f * x * sech2 * du_dx) * dout[i];
    }
}

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t n)
{
    KILN_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

// da and db may be the same buffer: each thread owns element i, so both adds land.
__global__ void residual_backward_kernel(float *da, float *db, const float *dout, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

__global__ void dropout_forward_kernel(float *out, const float *inp, float p, float keep_scale,
                                       uint64_t seed, uint64_t stream_id, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        int keep = kiln_philox_uniform(seed, stream_id, i) >= p;
        out[i] = keep ? inp[i] * keep_scale : 0.0f;
    }
}

__global__ void dropout_backward_kernel(float *dinp, const float *dout, float p,
                                        float keep_scale, uint64_t seed, uint64_t stream_id,
                                        size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        if (kiln_philox_uniform(seed, stream_id, i) >= p) dinp[i] += dout[i] * keep_scale;
    }
}

__global__ void scale_kernel(float *x, float s, size_t n)
{
    KILN_GRID_STRIDE(i, n) x[i] *= s;
}

__global__ void axpy_kernel(float *y, const float *x, float a, size_t n)
{
    KILN_GRID_STRIDE(i, n) y[i] += a * x[i];
}

extern "C" {

void kiln_cuda_gelu_forward(float *out, const float *inp, size_t n, void *stream)
{
    if (n == 0) return;
    gelu_forward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(out, inp, n);
    KILN_CUDA_LAUNCHED("gelu_forward_kernel");
}

void kiln_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                             void *stream)
{
    if (n == 0) return;
    gelu_backward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(dinp, inp, dout,
                                                                                 n);
    KILN_CUDA_LAUNCHED("gelu_backward_kernel");
}

void kiln_cuda_residual_forward(float *out, const float *a, const float *b, size_t n,
                                void *stream)
{
    if (n == 0) return;
    residual_forward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(out, a, b, n);
    KILN_CUDA_LAUNCHED("residual_forward_kernel");
}

void kiln_cuda_residual_backward(float *da, float *db, const float *dout, size_t n,
                                 void *stream)
{
    if (n == 0) return;
    residual_backward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(da, db, dout,
                                                                                     n);
    KILN_CUDA_LAUNCHED("residual_backward_kernel");
}

void kiln_cuda_dropout_forward(float *out, const float *inp, float p, uint64_t seed,
                               uint64_t stream_id, size_t n, void *stream)
{
    if (n == 0) return;
    if (p == 0.0f) {
        if (out != inp)
            KILN_CUDA_TRY(cudaMemcpyAsync(out, inp, n * sizeof(float), cudaMemcpyDeviceToDevice,
                                          kiln_stream(stream)));
        return;
    }
    float keep_scale = 1.0f / (1.0f - p); // computed on the host, as the CPU does
    dropout_forward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        out, inp, p, keep_scale, seed, stream_id, n);
    KILN_CUDA_LAUNCHED("dropout_forward_kernel");
}

void kiln_cuda_dropout_backward(float *dinp, const float *dout, float p, uint64_t seed,
                                uint64_t stream_id, size_t n, void *stream)
{
    if (n == 0) return;
    if (p == 0.0f) {
        kiln_cuda_axpy(dinp, dout, 1.0f, n, stream);
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
    dropout_backward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        dinp, dout, p, keep_scale, seed, stream_id, n);
    KILN_CUDA_LAUNCHED("dropout_backward_kernel");
}

void kiln_cuda_scale(float *x, float s, size_t n, void *stream)
{
    if (n == 0) return;
    scale_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(x, s, n);
    KILN_CUDA_LAUNCHED("scale_kernel");
}

void kiln_cuda_zero(float *x, size_t n, void *stream)
{
    if (n == 0) return;
    KILN_CUDA_TRY(cudaMemsetAsync(x, 0, n * sizeof(float), kiln_stream(stream)));
}

void kiln_cuda_axpy(float *y, const float *x, float a, size_t n, void *stream)
{
    if (n == 0) return;
    axpy_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(y, x, a, n);
    KILN_CUDA_LAUNCHED("axpy_kernel");
}

} // extern "C"
