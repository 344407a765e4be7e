// Token + position embedding on the GPU: out[b,t] = wte[tokens[b,t]] + wpe[t], and its
// backward. dwpe is a sum over the batch owned by one thread per (t, c), in order; dwte rows
// can be hit by any (b, t), so its adds are atomic (their order, and so the last bits of a
// repeated token's gradient, can vary from run to run).
#include "common.cuh"

__global__ void embedding_forward_kernel(float *out, const int32_t *tokens, const float *wte,
                                         const float *wpe, int T, int C, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        size_t bt = i / (size_t)C;
        int c = (int)(i % (size_t)C), t = (int)(bt % (size_t)T);
        out[i] = wte[(size_t)tokens[bt] * C + c] + wpe[(size_t)t * C + c];
    }
}

__global__ void embedding_backward_wte_kernel(float *dwte, const float *dout,
                                              const int32_t *tokens, int C, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        size_t bt = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        atomicAdd(&dwte[(size_t)tokens[bt] * C + c], dout[i]);
    }
}

__global__ void embedding_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C)
{
    size_t tc = (size_t)T * C;
    KILN_GRID_STRIDE(i, tc)
    {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dout[(size_t)b * tc + i];
        dwpe[i] += s;
    }
}

extern "C" {

void kiln_cuda_embedding_forward(float *out, const int32_t *tokens, const float *wte,
                                 const float *wpe, int B, int T, int C, void *stream)
{
    size_t n = (size_t)B * T * C;
    if (n == 0) return;
    embedding_forward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        out, tokens, wte, wpe, T, C, n);
    KILN_CUDA_LAUNCHED("embedding_forward_kernel");
}

void kiln_cuda_embedding_backward(float *dwte, float *dwpe, const float *dout,
                                  const int32_t *tokens, int B, int T, int C, void *stream)
{
    size_t n = (size_t)B * T * C;
    if (n == 0) return;
    cudaStream_t st = kiln_stream(stream);
    embedding_backward_wte_kernel<<<kiln_grid(n), KILN_THREADS, 0, st>>>(dwte, dout, tokens, C, n);
    if (KILN_CUDA_LAUNCHED("embedding_backward_wte_kernel")) return;
    embedding_backward_wpe_kernel<<<kiln_grid((size_t)T * C), KILN_THREADS, 0, st>>>(dwpe, dout,
                                                                                    B, T, C);
    KILN_CUDA_LAUNCHED("embedding_backward_wpe_kernel");
}

} // extern "C"
