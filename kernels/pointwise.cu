// Elementwise CUDA ops: GELU, residual add, inverted dropout (the CPU's Philox mask), the
// vector helpers on flat buffers and the cast from fp32. Same formulas as
// src/device/cpu_pointwise.c (the GELU's in gelu_rule.h), in float on values loaded from the
// storage type T.
#include "common.cuh"
#include "../src/core/philox.h"
#include "../src/device/gelu_rule.h"

template <typename T> __global__ void gelu_forward_kernel(T *out, const T *inp, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        float x = kiln_f32(inp[i]);
        out[i] = kiln_store<T>(kiln_gelu(x, expf(kiln_gelu_exponent(x))));
    }
}

template <typename T>
__global__ void gelu_backward_kernel(T *dinp, const T *inp, const T *dout, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        float x = kiln_f32(inp[i]);
        float d = kiln_gelu_grad(x, expf(kiln_gelu_exponent(x))) * kiln_f32(dout[i]);
        dinp[i] = kiln_store<T>(kiln_f32(dinp[i]) + d);
    }
}

template <typename T>
__global__ void residual_forward_kernel(T *out, const T *a, const T *b, size_t n)
{
    KILN_GRID_STRIDE(i, n) out[i] = kiln_store<T>(kiln_f32(a[i]) + kiln_f32(b[i]));
}

// da and db may be the same buffer: each thread owns element i and reads db after writing
// da, so both adds land.
template <typename T> __global__ void residual_backward_kernel(T *da, T *db, const T *dout, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        float d = kiln_f32(dout[i]);
        da[i] = kiln_store<T>(kiln_f32(da[i]) + d);
        db[i] = kiln_store<T>(kiln_f32(db[i]) + d);
    }
}

template <typename T>
__global__ void dropout_forward_kernel(T *out, const T *inp, float p, float keep_scale,
                                       uint64_t seed, uint64_t stream_id, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        int keep = kiln_philox_uniform(seed, stream_id, i) >= p;
        out[i] = kiln_store<T>(keep ? kiln_f32(inp[i]) * keep_scale : 0.0f);
    }
}

template <typename T>
__global__ void dropout_backward_kernel(T *dinp, const T *dout, float p, float keep_scale,
                                        uint64_t seed, uint64_t stream_id, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        if (kiln_philox_uniform(seed, stream_id, i) >= p)
            dinp[i] = kiln_store<T>(kiln_f32(dinp[i]) + kiln_f32(dout[i]) * keep_scale);
    }
}

template <typename T> __global__ void scale_kernel(T *x, float s, size_t n)
{
    KILN_GRID_STRIDE(i, n) x[i] = kiln_store<T>(kiln_f32(x[i]) * s);
}

template <typename T> __global__ void axpy_kernel(T *y, const T *x, float a, size_t n)
{
    KILN_GRID_STRIDE(i, n) y[i] = kiln_store<T>(kiln_f32(y[i]) + a * kiln_f32(x[i]));
}

template <typename T> __global__ void cast_kernel(T *dst, const float *src, size_t n)
{
    KILN_GRID_STRIDE(i, n) dst[i] = kiln_store<T>(src[i]);
}

// --- the ops: the table's signatures, pointers cast to the storage type T

template <typename T> static void gelu_forward(float *out, const float *inp, size_t n, void *stream)
{
    if (n == 0) return;
    gelu_forward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(out), kiln_typed<T>(inp), n);
    KILN_CUDA_LAUNCHED("gelu_forward_kernel");
}

template <typename T>
static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, void *stream)
{
    if (n == 0) return;
    gelu_backward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(dinp), kiln_typed<T>(inp), kiln_typed<T>(dout), n);
    KILN_CUDA_LAUNCHED("gelu_backward_kernel");
}

template <typename T>
static void residual_forward(float *out, const float *a, const float *b, size_t n, void *stream)
{
    if (n == 0) return;
    residual_forward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(out), kiln_typed<T>(a), kiln_typed<T>(b), n);
    KILN_CUDA_LAUNCHED("residual_forward_kernel");
}

template <typename T>
static void residual_backward(float *da, float *db, const float *dout, size_t n, void *stream)
{
    if (n == 0) return;
    residual_backward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(da), kiln_typed<T>(db), kiln_typed<T>(dout), n);
    KILN_CUDA_LAUNCHED("residual_backward_kernel");
}

template <typename T> static void axpy(float *y, const float *x, float a, size_t n, void *stream)
{
    if (n == 0) return;
    axpy_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(y), kiln_typed<T>(x), a, n);
    KILN_CUDA_LAUNCHED("axpy_kernel");
}

template <typename T>
static void dropout_forward(float *out, const float *inp, float p, uint64_t seed,
                            uint64_t stream_id, size_t n, void *stream)
{
    if (n == 0) return;
    if (p == 0.0f) {
        if (out != inp)
            KILN_CUDA_TRY(cudaMemcpyAsync(out, inp, n * sizeof(T), cudaMemcpyDeviceToDevice,
                                          kiln_stream(stream)));
        return;
    }
    float keep_scale = 1.0f / (1.0f - p); // computed on the host, as the CPU does
    dropout_forward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(out), kiln_typed<T>(inp), p, keep_scale, seed, stream_id, n);
    KILN_CUDA_LAUNCHED("dropout_forward_kernel");
}

template <typename T>
static void dropout_backward(float *dinp, const float *dout, float p, uint64_t seed,
                             uint64_t stream_id, size_t n, void *stream)
{
    if (n == 0) return;
    if (p == 0.0f) {
        axpy<T>(dinp, dout, 1.0f, n, stream);
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
    dropout_backward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(dinp), kiln_typed<T>(dout), p, keep_scale, seed, stream_id, n);
    KILN_CUDA_LAUNCHED("dropout_backward_kernel");
}

template <typename T> void kiln_cuda_scale_t(T *x, float s, size_t n, cudaStream_t stream)
{
    if (n == 0) return;
    scale_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, stream>>>(x, s, n);
    KILN_CUDA_LAUNCHED("scale_kernel");
}
template void kiln_cuda_scale_t<float>(float *, float, size_t, cudaStream_t);
template void kiln_cuda_scale_t<kiln_bf16>(kiln_bf16 *, float, size_t, cudaStream_t);

template <typename T> static void scale(float *x, float s, size_t n, void *stream)
{
    kiln_cuda_scale_t<T>(kiln_typed<T>(x), s, n, kiln_stream(stream));
}

template <typename T> static void zero(float *x, size_t n, void *stream)
{
    if (n == 0) return;
    KILN_CUDA_TRY(cudaMemsetAsync(x, 0, n * sizeof(T), kiln_stream(stream)));
}

template <typename T> static void cast_from_f32(float *dst, const float *src, size_t n, void *stream)
{
    if (n == 0) return;
    cast_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(kiln_typed<T>(dst),
                                                                          src, n);
    KILN_CUDA_LAUNCHED("cast_kernel");
}

template <typename T> static void fill_ops(kiln_ops *ops)
{
    ops->gelu_forward = gelu_forward<T>;
    ops->gelu_backward = gelu_backward<T>;
    ops->residual_forward = residual_forward<T>;
    ops->residual_backward = residual_backward<T>;
    ops->dropout_forward = dropout_forward<T>;
    ops->dropout_backward = dropout_backward<T>;
    ops->scale = scale<T>;
    ops->zero = zero<T>;
    ops->axpy = axpy<T>;
    ops->cast_from_f32 = cast_from_f32<T>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_pointwise_ops)
