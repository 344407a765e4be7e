// Token + position embedding on the GPU: out[b,t] = wte[tokens[b,t]] + wpe[t], and its
// backward. dwpe is a sum over the batch owned by one thread per (t, c), in order. dwte rows
// can be hit by any (b, t): they are summed with fp32 atomic adds into a (V, C) fp32 scratch
// and added to dwte once, so a frequent token's gradient is not rounded to bf16 at every one
// of its thousands of adds. The order of the atomic adds (and so the last bits of a repeated
// token's gradient) can vary from run to run.
#include "common.cuh"

template <typename T>
__global__ void embedding_forward_kernel(T *out, const int32_t *tokens, const T *wte, const T *wpe,
                                         int T_, int C, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        size_t bt = i / (size_t)C;
        int c = (int)(i % (size_t)C), t = (int)(bt % (size_t)T_);
        out[i] = kiln_store<T>(kiln_f32(wte[(size_t)tokens[bt] * C + c]) +
                               kiln_f32(wpe[(size_t)t * C + c]));
    }
}

template <typename T>
__global__ void embedding_backward_wte_kernel(float *acc, const T *dout, const int32_t *tokens,
                                              int C, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        size_t bt = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        atomicAdd(&acc[(size_t)tokens[bt] * C + c], kiln_f32(dout[i]));
    }
}

template <typename T> __global__ void add_f32_kernel(T *y, const float *x, size_t n)
{
    KILN_GRID_STRIDE(i, n) y[i] = kiln_store<T>(kiln_f32(y[i]) + x[i]);
}

template <typename T>
__global__ void embedding_backward_wpe_kernel(T *dwpe, const T *dout, int B, int T_, int C)
{
    size_t tc = (size_t)T_ * C;
    KILN_GRID_STRIDE(i, tc)
    {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += kiln_f32(dout[(size_t)b * tc + i]);
        dwpe[i] = kiln_store<T>(kiln_f32(dwpe[i]) + s);
    }
}

template <typename T>
static void embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                              int B, int T_, int C, void *stream)
{
    size_t n = (size_t)B * T_ * C;
    if (n == 0) return;
    embedding_forward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(out), tokens, kiln_typed<T>(wte), kiln_typed<T>(wpe), T_, C, n);
    KILN_CUDA_LAUNCHED("embedding_forward_kernel");
}

template <typename T>
static void embedding_backward(float *dwte, float *dwpe, const float *dout,
                               const int32_t *tokens, int B, int T_, int C, int V, void *stream)
{
    size_t n = (size_t)B * T_ * C, vc = (size_t)V * C;
    if (n == 0 || vc == 0) return;
    cudaStream_t st = kiln_stream(stream);
    const T *dy = kiln_typed<T>(dout);
    float *acc = (float *)kiln_cuda_scratch(vc * sizeof(float));
    if (!acc) return;
    if (KILN_CUDA_TRY(cudaMemsetAsync(acc, 0, vc * sizeof(float), st))) return;
    embedding_backward_wte_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, st>>>(acc, dy, tokens, C, n);
    if (KILN_CUDA_LAUNCHED("embedding_backward_wte_kernel")) return;
    add_f32_kernel<T><<<kiln_grid(vc), KILN_THREADS, 0, st>>>(kiln_typed<T>(dwte), acc, vc);
    if (KILN_CUDA_LAUNCHED("add_f32_kernel")) return;
    embedding_backward_wpe_kernel<T><<<kiln_grid((size_t)T_ * C), KILN_THREADS, 0, st>>>(
        kiln_typed<T>(dwpe), dy, B, T_, C);
    KILN_CUDA_LAUNCHED("embedding_backward_wpe_kernel");
}

template <typename T> static void fill_ops(kiln_ops *ops)
{
    ops->embedding_forward = embedding_forward<T>;
    ops->embedding_backward = embedding_backward<T>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_embedding_ops)
