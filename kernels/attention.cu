// Causal multi-head self-attention on the GPU, the formulation of src/device/cpu_attention.c:
//   P = causal_softmax(q k^T / sqrt(hs)),  out = P v;
//   dP = dout v^T,  dS = P * (dP - rowsum(P * dP)) / sqrt(hs),
//   dq += dS k,  dk += dS^T q,  dv += P^T dout.
// The five products are strided-batched cuBLAS GEMMs run straight on the heads' slices of
// qkv, out and dqkv (leading dimensions 3C and C), so nothing is permuted or copied; the
// softmaxes are one warp per row. The scores are computed for the whole T x T square and the
// softmax writes exact zeros above the diagonal, so the products after it need no masking.
// Everything is the storage type T, products accumulating in fp32; with bf16 the scores are
// rounded to bf16 before the softmax (as llm.c does), and the softmaxes compute in fp32.
#include "common.cuh"

// One warp per row of P (B*NH*T rows of T): row t of its (b, h) matrix is a softmax over keys
// 0..t, then zeros.
template <typename S> __global__ void causal_softmax_kernel(S *P, int T, size_t rows)
{
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = (int)(row % (size_t)T);
    S *p = P + row * (size_t)T;
    float maxv = -INFINITY;
    for (int j = lane; j <= t; j += 32) maxv = fmaxf(maxv, kiln_f32(p[j]));
    maxv = kiln_warp_max(maxv);
    float sum = 0.0f;
    for (int j = lane; j <= t; j += 32) sum += expf(kiln_f32(p[j]) - maxv);
    sum = kiln_warp_sum(sum);
    float inv = 1.0f / sum;
    for (int j = lane; j < T; j += 32)
        p[j] = kiln_store<S>(j <= t ? expf(kiln_f32(p[j]) - maxv) * inv : 0.0f);
}

// dS = P * (dP - rowsum(P * dP)) * scale in place over dP, zeros above the diagonal.
template <typename S>
__global__ void softmax_backward_kernel(S *dS, const S *P, int T, size_t rows, float scale)
{
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = (int)(row % (size_t)T);
    const S *p = P + row * (size_t)T;
    S *ds = dS + row * (size_t)T;
    float pdp = 0.0f;
    for (int j = lane; j <= t; j += 32) pdp += kiln_f32(p[j]) * kiln_f32(ds[j]);
    pdp = kiln_warp_sum(pdp);
    for (int j = lane; j < T; j += 32)
        ds[j] = kiln_store<S>(j <= t ? kiln_f32(p[j]) * (kiln_f32(ds[j]) - pdp) * scale : 0.0f);
}

static int row_kernel_launch(size_t rows, unsigned int *blocks)
{
    const size_t warps_per_block = KILN_THREADS / 32;
    *blocks = (unsigned int)((rows + warps_per_block - 1) / warps_per_block);
    return rows > 0;
}

// The (b, h) slices as cuBLAS batches: the outer loop runs over the smaller of B and NH and
// each call batches the other, at a constant stride. Offsets and strides in elements.
typedef struct head_slices {
    int outer, batch;
    long long qkv_stride, y_stride, att_stride;   // between batches
    long long qkv_outer, y_outer, att_outer;      // between outer iterations
} head_slices;

static head_slices slices_of(int B, int T, int C, int NH)
{
    long long hs = C / NH, TT = (long long)T * T, tq = (long long)T * 3 * C, ty = (long long)T * C;
    head_slices s;
    if (NH >= B) { // per sequence, batch over heads
        s.outer = B;
        s.batch = NH;
        s.qkv_stride = hs, s.y_stride = hs, s.att_stride = TT;
        s.qkv_outer = tq, s.y_outer = ty, s.att_outer = NH * TT;
    } else { // per head, batch over sequences
        s.outer = NH;
        s.batch = B;
        s.qkv_stride = tq, s.y_stride = ty, s.att_stride = NH * TT;
        s.qkv_outer = hs, s.y_outer = hs, s.att_outer = TT;
    }
    return s;
}

template <typename S>
static void attention_forward(float *out_f, float *att_f, const float *qkv_f, int B, int T, int C,
                              int NH, void *stream)
{
    cudaStream_t st = kiln_stream(stream);
    S *out = kiln_typed<S>(out_f), *att = kiln_typed<S>(att_f);
    const S *qkv = kiln_typed<S>(qkv_f);
    int hs = C / NH;
    head_slices s = slices_of(B, T, C, NH);
    float scale = 1.0f / sqrtf((float)hs);
    for (int o = 0; o < s.outer; o++) { // P = scale q k^T (T x T per head)
        const S *q = qkv + o * s.qkv_outer, *k = q + C;
        kiln_cuda_gemm_batched<S>(0, 1, T, T, hs, scale, q, 3 * C, s.qkv_stride, k, 3 * C,
                                  s.qkv_stride, 0.0f, att + o * s.att_outer, T, s.att_stride,
                                  s.batch, st);
    }
    size_t rows = (size_t)B * NH * T;
    unsigned int blocks;
    if (row_kernel_launch(rows, &blocks)) {
        causal_softmax_kernel<S><<<blocks, KILN_THREADS, 0, st>>>(att, T, rows);
        if (KILN_CUDA_LAUNCHED("causal_softmax_kernel")) return;
    }
    for (int o = 0; o < s.outer; o++) { // out = P v
        const S *v = qkv + o * s.qkv_outer + 2 * C;
        kiln_cuda_gemm_batched<S>(0, 0, T, hs, T, 1.0f, att + o * s.att_outer, T, s.att_stride, v,
                                  3 * C, s.qkv_stride, 0.0f, out + o * s.y_outer, C, s.y_stride,
                                  s.batch, st);
    }
}

template <typename S>
static void attention_backward(float *dqkv_f, float *scratch_f, const float *dout_f,
                               const float *qkv_f, const float *att_f, int B, int T, int C, int NH,
                               void *stream)
{
    cudaStream_t st = kiln_stream(stream);
    S *dqkv = kiln_typed<S>(dqkv_f), *scratch = kiln_typed<S>(scratch_f);
    const S *dout = kiln_typed<S>(dout_f), *qkv = kiln_typed<S>(qkv_f), *att = kiln_typed<S>(att_f);
    int hs = C / NH;
    head_slices s = slices_of(B, T, C, NH);
    for (int o = 0; o < s.outer; o++) { // dP = dout v^T
        const S *v = qkv + o * s.qkv_outer + 2 * C;
        kiln_cuda_gemm_batched<S>(0, 1, T, T, hs, 1.0f, dout + o * s.y_outer, C, s.y_stride, v,
                                  3 * C, s.qkv_stride, 0.0f, scratch + o * s.att_outer, T,
                                  s.att_stride, s.batch, st);
    }
    size_t rows = (size_t)B * NH * T;
    unsigned int blocks;
    if (row_kernel_launch(rows, &blocks)) {
        softmax_backward_kernel<S><<<blocks, KILN_THREADS, 0, st>>>(scratch, att, T, rows,
                                                                    1.0f / sqrtf((float)hs));
        if (KILN_CUDA_LAUNCHED("softmax_backward_kernel")) return;
    }
    for (int o = 0; o < s.outer; o++) {
        const S *q = qkv + o * s.qkv_outer, *k = q + C;
        const S *dS = scratch + o * s.att_outer, *P = att + o * s.att_outer;
        const S *dy = dout + o * s.y_outer;
        S *dq = dqkv + o * s.qkv_outer, *dk = dq + C, *dv = dq + 2 * C;
        // dq += dS k;  dk += dS^T q;  dv += P^T dout
        kiln_cuda_gemm_batched<S>(0, 0, T, hs, T, 1.0f, dS, T, s.att_stride, k, 3 * C,
                                  s.qkv_stride, 1.0f, dq, 3 * C, s.qkv_stride, s.batch, st);
        kiln_cuda_gemm_batched<S>(1, 0, T, hs, T, 1.0f, dS, T, s.att_stride, q, 3 * C,
                                  s.qkv_stride, 1.0f, dk, 3 * C, s.qkv_stride, s.batch, st);
        kiln_cuda_gemm_batched<S>(1, 0, T, hs, T, 1.0f, P, T, s.att_stride, dy, C, s.y_stride,
                                  1.0f, dv, 3 * C, s.qkv_stride, s.batch, st);
    }
}

template <typename S> static void fill_ops(kiln_ops *ops)
{
    ops->attention_forward = attention_forward<S>;
    ops->attention_backward = attention_backward<S>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_attention_ops)
