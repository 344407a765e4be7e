// Fused softmax + cross-entropy on the GPU (src/device/cpu_xent.c): one block per row gives
// the saved probabilities and the loss in the log-sum-exp form; backward reads only those.
// Logits and their gradient are the storage type; losses and probabilities are fp32 in every
// precision (the host reads them for the loss and top-1 accuracy).
#include "common.cuh"

template <typename T>
__global__ void softmax_xent_forward_kernel(float *losses, float *probs, const T *logits,
                                            const int32_t *targets, int V)
{
    __shared__ float shared[32];
    size_t n = blockIdx.x;
    const T *z = logits + n * (size_t)V;
    float *p = probs + n * (size_t)V;
    float maxv = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) maxv = fmaxf(maxv, kiln_f32(z[i]));
    maxv = kiln_block_max(maxv, shared);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += expf(kiln_f32(z[i]) - maxv);
    sum = kiln_block_sum(sum, shared);
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < V; i += blockDim.x) p[i] = expf(kiln_f32(z[i]) - maxv) * inv;
    if (threadIdx.x == 0) {
        int32_t target = targets[n];
        losses[n] = target < 0 ? 0.0f : logf(sum) - (kiln_f32(z[target]) - maxv);
    }
}

template <typename T>
__global__ void softmax_xent_backward_kernel(T *dlogits, const float *probs,
                                             const int32_t *targets, float scale, int V, size_t n)
{
    KILN_GRID_STRIDE(i, n)
    {
        size_t row = i / (size_t)V;
        int32_t target = targets[row];
        if (target < 0) continue;
        int col = (int)(i % (size_t)V);
        float d = scale * (probs[i] - (col == target ? 1.0f : 0.0f));
        dlogits[i] = kiln_store<T>(kiln_f32(dlogits[i]) + d);
    }
}

template <typename T>
static void softmax_xent_forward(float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int N, int V, void *stream)
{
    if (N <= 0 || V <= 0) return;
    softmax_xent_forward_kernel<T><<<(unsigned)N, KILN_THREADS, 0, kiln_stream(stream)>>>(
        losses, probs, kiln_typed<T>(logits), targets, V);
    KILN_CUDA_LAUNCHED("softmax_xent_forward_kernel");
}

template <typename T>
static void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets,
                                  float scale, int N, int V, void *stream)
{
    size_t n = (size_t)N * V;
    if (n == 0) return;
    softmax_xent_backward_kernel<T><<<kiln_grid(n), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(dlogits), probs, targets, scale, V, n);
    KILN_CUDA_LAUNCHED("softmax_xent_backward_kernel");
}

template <typename T> static void fill_ops(kiln_ops *ops)
{
    ops->softmax_xent_forward = softmax_xent_forward<T>;
    ops->softmax_xent_backward = softmax_xent_backward<T>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_xent_ops)
