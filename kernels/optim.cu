// Optimizer updates and the gradient-norm reduction on the GPU, over a range of a flat
// buffer. The per-element formulas are the CPU's (src/device/update_rules.h). The update reads
// gradients of the storage type G, updates the fp32 parameters (the master weights) and fp32
// states, and in the same pass writes the rounded copy the other ops read (when there is one).
#include "common.cuh"
#include "../src/device/update_rules.h"

template <typename G>
__global__ void adamw_kernel(float *params, G *copy, float *m, float *v, const G *grads, size_t n,
                             kiln_adamw_step s)
{
    KILN_GRID_STRIDE(i, n)
    {
        float mi = m[i], vi = v[i];
        float p = kiln_adamw_update_one(params[i], kiln_f32(grads[i]), &mi, &vi, s);
        params[i] = p;
        m[i] = mi;
        v[i] = vi;
        if (copy) copy[i] = kiln_store<G>(p);
    }
}

template <typename G>
__global__ void sgd_kernel(float *params, G *copy, float *momentum_buf, const G *grads, size_t n,
                           float lr, float momentum, float weight_decay, float grad_scale)
{
    KILN_GRID_STRIDE(i, n)
    {
        float buf = momentum_buf[i];
        float p = kiln_sgd_update_one(params[i], kiln_f32(grads[i]), &buf, lr, momentum,
                                      weight_decay, grad_scale);
        params[i] = p;
        momentum_buf[i] = buf;
        if (copy) copy[i] = kiln_store<G>(p);
    }
}

// Sum of squares in double: each block's grid-stride share, then one ordered pass over the
// blocks. The grid depends only on n, so the result is the same on every call.
template <typename T> __global__ void sum_squares_partial_kernel(double *partial, const T *x, size_t n)
{
    __shared__ double shared[32];
    double s = 0.0;
    KILN_GRID_STRIDE(i, n)
    {
        double xi = kiln_f32(x[i]);
        s += xi * xi;
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    s = kiln_warp_sum_d(s);
    if (lane == 0) shared[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < (int)(blockDim.x / 32); w++) t += shared[w];
        partial[blockIdx.x] = t;
    }
}

static __global__ void sum_squares_finish_kernel(double *partial, unsigned int blocks)
{
    double t = 0.0;
    for (unsigned int b = 0; b < blocks; b++) t += partial[b];
    partial[0] = t;
}

template <typename T>
static void adamw_update(float *params, float *params_copy, float *m, float *v, const float *grads,
                         size_t n, float lr, float beta1, float beta2, float eps,
                         float weight_decay, float grad_scale, int t, void *stream)
{
    if (n == 0) return;
    kiln_adamw_step s = kiln_adamw_step_at(lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    adamw_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        params, kiln_typed<T>(params_copy), m, v, kiln_typed<T>(grads), n, s);
    KILN_CUDA_LAUNCHED("adamw_kernel");
}

template <typename T>
static void sgd_update(float *params, float *params_copy, float *momentum_buf, const float *grads,
                       size_t n, float lr, float momentum, float weight_decay, float grad_scale,
                       void *stream)
{
    if (n == 0) return;
    sgd_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        params, kiln_typed<T>(params_copy), momentum_buf, kiln_typed<T>(grads), n, lr, momentum,
        weight_decay, grad_scale);
    KILN_CUDA_LAUNCHED("sgd_kernel");
}

// Synchronous: the caller (the gradient norm, clipping) needs the value on the host. A
// failure returns NaN, which the training loop reports as a non-finite norm, and is also
// recorded for synchronize.
template <typename T> static double sum_squares(const float *x, size_t n, void *stream)
{
    if (n == 0) return 0.0;
    cudaStream_t st = kiln_stream(stream);
    unsigned int blocks = kiln_grid(n);
    double *partial = (double *)kiln_cuda_scratch(blocks * sizeof(double));
    double result = NAN;
    if (!partial) return result;
    sum_squares_partial_kernel<T><<<blocks, KILN_THREADS, 0, st>>>(partial, kiln_typed<T>(x), n);
    if (KILN_CUDA_LAUNCHED("sum_squares_partial_kernel")) return result;
    sum_squares_finish_kernel<<<1, 1, 0, st>>>(partial, blocks);
    if (KILN_CUDA_LAUNCHED("sum_squares_finish_kernel")) return result;
    if (KILN_CUDA_TRY(cudaMemcpyAsync(&result, partial, sizeof result, cudaMemcpyDeviceToHost, st)) ||
        KILN_CUDA_TRY(cudaStreamSynchronize(st)))
        return NAN;
    return result;
}

template <typename T> static void fill_ops(kiln_ops *ops)
{
    ops->adamw_update = adamw_update<T>;
    ops->sgd_update = sgd_update<T>;
    ops->sum_squares = sum_squares<T>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_optim_ops)
