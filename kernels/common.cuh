// Shared by the CUDA kernels: storage types, launch shapes, grid-stride loops, warp and block
// reductions, and the ops one kernels/ file calls in another. Every op enqueues on the stream
// it is given and checks each launch (KILN_CUDA_LAUNCHED).
//
// Storage types. Each op is written once, as a template over the type T its buffers store
// (float, or kiln_bf16 for train.precision=bf16), and computes in float: kiln_f32 loads a
// value, kiln_store<T> rounds one back (to nearest even). Each file's fill_ops<T> puts its
// ops, instantiated for T, into a kiln_ops table (KILN_CUDA_OPS_FILLER). The ops table's
// pointers are float * whatever T is; the entry points cast them to T * first thing.
#ifndef KILN_KERNELS_COMMON_CUH
#define KILN_KERNELS_COMMON_CUH
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include "cuda_ops.h"
#include "../src/core/bf16.h"

__device__ __forceinline__ float kiln_f32(float x) { return x; }
__device__ __forceinline__ float kiln_f32(kiln_bf16 x) { return kiln_bf16_to_f32(x); }
template <typename T> __device__ __forceinline__ T kiln_store(float x);
template <> __device__ __forceinline__ float kiln_store<float>(float x) { return x; }
template <> __device__ __forceinline__ kiln_bf16 kiln_store<kiln_bf16>(float x)
{
    return kiln_bf16_from_f32(x);
}

// The cuBLAS type of a storage type.
template <typename T> inline cudaDataType_t kiln_cuda_type(void);
template <> inline cudaDataType_t kiln_cuda_type<float>(void) { return CUDA_R_32F; }
template <> inline cudaDataType_t kiln_cuda_type<kiln_bf16>(void) { return CUDA_R_16BF; }

// A table pointer as the storage type it holds.
template <typename T> inline T *kiln_typed(float *p) { return reinterpret_cast<T *>(p); }
template <typename T> inline const T *kiln_typed(const float *p)
{
    return reinterpret_cast<const T *>(p);
}

// The C entry point of a kernels/ file: fills its ops of a table, instantiated for the storage
// type of precision p. The file defines template <typename T> void fill_ops(kiln_ops *).
#define KILN_CUDA_OPS_FILLER(name)                                                         \
    extern "C" void name(kiln_ops *ops, kiln_precision p)                                  \
    {                                                                                      \
        if (p == KILN_PRECISION_BF16)                                                      \
            fill_ops<kiln_bf16>(ops);                                                      \
        else                                                                               \
            fill_ops<float>(ops);                                                          \
    }

#define KILN_THREADS 256
// Enough blocks to fill any GPU several times over; grid-stride loops cover the rest.
#define KILN_MAX_BLOCKS 8192

static inline cudaStream_t kiln_stream(void *stream) { return (cudaStream_t)stream; }

// Blocks of KILN_THREADS for n elements (n > 0), capped at KILN_MAX_BLOCKS.
static inline unsigned int kiln_grid(size_t n)
{
    size_t blocks = (n + KILN_THREADS - 1) / KILN_THREADS;
    return (unsigned int)(blocks < KILN_MAX_BLOCKS ? blocks : KILN_MAX_BLOCKS);
}

#define KILN_GRID_STRIDE(i, n)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                \
         i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float kiln_warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ double kiln_warp_sum_d(double v)
{
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float kiln_warp_max(float v)
{
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// shared holds 32 floats. Ends with a barrier, so shared may be reused right after.
__device__ __forceinline__ float kiln_block_sum(float v, float *shared)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = kiln_warp_sum(v);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0f;
    v = kiln_warp_sum(v);
    __syncthreads();
    return v;
}

__device__ __forceinline__ float kiln_block_max(float v, float *shared)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = kiln_warp_max(v);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : -INFINITY;
    v = kiln_warp_max(v);
    __syncthreads();
    return v;
}

// Ops that one file uses from another (instantiated for float and kiln_bf16 there).
// pointwise.cu: x *= s.
template <typename T> void kiln_cuda_scale_t(T *x, float s, size_t n, cudaStream_t stream);
// gemm.cu: row-major strided-batched GEMM for attention (cuBLAS, fp32 accumulation):
// C_i = alpha op(A_i) op(B_i) + beta C_i with X_i = X + i * stride_x, i < batch.
template <typename T>
void kiln_cuda_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha,
                            const T *A, int lda, long long stride_a, const T *B, int ldb,
                            long long stride_b, float beta, T *C, int ldc, long long stride_c,
                            int batch, cudaStream_t stream);

#endif
