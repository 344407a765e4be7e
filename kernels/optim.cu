// Optimizer updates and the gradient-norm reduction on the GPU, over a range of a flat
// buffer. The per-element formulas are the CPU's (src/optim/update_rules.h).
#include "common.cuh"
#include "../src/optim/update_rules.h"

__global__ void adamw_kernel(float *params, float *m, float *v, const float *grads, size_t n,
                             kiln_adamw_step s)
{
    KILN_GRID_STRIDE(i, n)
    {
        float mi = m[i], vi = v[i];
        params[i] = kiln_adamw_update_one(params[i], grads[i], &mi, &vi, s);
        m[i] = mi;
        v[i] = vi;
    }
}

__global__ void sgd_kernel(float *params, float *momentum_buf, const float *grads, size_t n,
                           float lr, float momentum, float weight_decay, float grad_scale)
{
    KILN_GRID_STRIDE(i, n)
    {
        float buf = momentum_buf[i];
        params[i] = kiln_sgd_update_one(params[i], grads[i], &buf, lr, momentum, weight_decay,
                                        grad_scale);
        momentum_buf[i] = buf;
    }
}

// Sum of squares in double: each block's grid-stride share, then one ordered pass over the
// blocks. The grid depends only on n, so the result is the same on every call.
__global__ void sum_squares_partial_kernel(double *partial, const float *x, size_t n)
{
    __shared__ double shared[32];
    double s = 0.0;
    KILN_GRID_STRIDE(i, n) s += (double)x[i] * x[i];
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

__global__ void sum_squares_finish_kernel(double *partial, unsigned int blocks)
{
    double t = 0.0;
    for (unsigned int b = 0; b < blocks; b++) t += partial[b];
    partial[0] = t;
}

extern "C" {

void kiln_cuda_adamw_update(float *params, float *m, float *v, const float *grads, size_t n,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            float grad_scale, int t, void *stream)
{
    if (n == 0) return;
    kiln_adamw_step s = kiln_adamw_step_at(lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    adamw_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(params, m, v, grads, n, s);
    KILN_CUDA_LAUNCHED("adamw_kernel");
}

void kiln_cuda_sgd_update(float *params, float *momentum_buf, const float *grads, size_t n,
                          float lr, float momentum, float weight_decay, float grad_scale,
                          void *stream)
{
    if (n == 0) return;
    sgd_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        params, momentum_buf, grads, n, lr, momentum, weight_decay, grad_scale);
    KILN_CUDA_LAUNCHED("sgd_kernel");
}

// Synchronous: the caller (the gradient norm, clipping) needs the value on the host. A
// failure returns NaN, which the training loop reports as a non-finite norm, and is also
// recorded for synchronize.
double kiln_cuda_sum_squares(const float *x, size_t n, void *stream)
{
    if (n == 0) return 0.0;
    cudaStream_t st = kiln_stream(stream);
    unsigned int blocks = kiln_grid(n);
    double *partial = (double *)kiln_cuda_scratch(blocks * sizeof(double));
    double result = NAN;
    if (!partial) return result;
    sum_squares_partial_kernel<<<blocks, KILN_THREADS, 0, st>>>(partial, x, n);
    if (KILN_CUDA_LAUNCHED("sum_squares_partial_kernel")) return result;
    sum_squares_finish_kernel<<<1, 1, 0, st>>>(partial, blocks);
    if (KILN_CUDA_LAUNCHED("sum_squares_finish_kernel")) return result;
    if (KILN_CUDA_TRY(cudaMemcpyAsync(&result, partial, sizeof result, cudaMemcpyDeviceToHost, st)) ||
        KILN_CUDA_TRY(cudaStreamSynchronize(st)))
        return NAN;
    return result;
}

} // extern "C"
