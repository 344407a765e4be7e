// Fused softmax + cross-entropy on the GPU (src/device/cpu_xent.c): one block per row gives
// the saved probabilities and the loss in the log-sum-exp form; backward reads only those.
#include "common.cuh"

__global__ void softmax_xent_forward_kernel(float *losses, float *probs, const float *logits,
                                            const int32_t *targets, int V)
{
    __shared__ float shared[32];
    size_t n = blockIdx.x;
    const float *z = logits + n * (size_t)V;
    float *p = probs + n * (size_t)V;
    float maxv = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) maxv = fmaxf(maxv, z[i]);
    maxv = kiln_block_max(maxv, shared);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += expf(z[i] - maxv);
    sum = kiln_block_sum(sum, shared);
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < V; i += blockDim.x) p[i] = expf(z[i] - maxv) * inv;
    if (threadIdx.x == 0) {
        int32_t target = targets[n];
        losses[n] = target < 0 ? 0.0f : logf(sum) - (z[target] - maxv);
    }
}

__global__ void softmax_xent_backward_kernel(float *dlogits, const float *probs,
                                             const int32_t *targets, float scale, int V, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        size_t row = i / (size_t)V;
        int32_t target = targets[row];
        if (target < 0) continue;
        int col = (int)(i % (size_t)V);
        dlogits[i] += scale * (probs[i] - (col == target ? 1.0f : 0.0f));
    }
}

extern "C" {

void kiln_cuda_softmax_xent_forward(float *losses, float *probs, const float *logits,
                                    const int32_t *targets, int N, int V, void *stream)
{
    if (N <= 0 || V <= 0) return;
    softmax_xent_forward_kernel<<<(unsigned)N, KILN_THREADS, 0, kiln_stream(stream)>>>(
        losses, probs, logits, targets, V);
    KILN_CUDA_LAUNCHED("softmax_xent_forward_kernel");
}

void kiln_cuda_softmax_xent_backward(float *dlogits, const float *probs,
                                     const int32_t *targets, float scale, int N, int V,
                                     void *stream)
{
    size_t n = (size_t)N * V;
    if (n == 0) return;
    softmax_xent_backward_kernel<<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        dlogits, probs, targets, scale, V, n);
    KILN_CUDA_LAUNCHED("softmax_xent_backward_kernel");
}

} // extern "C"
