// Shared by the CUDA kernels: launch shapes, grid-stride loops, warp and block reductions.
// Every op enqueues on the stream it is given and checks each launch (KILN_CUDA_LAUNCHED).
#ifndef KILN_KERNELS_COMMON_CUH
#define KILN_KERNELS_COMMON_CUH
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include "cuda_ops.h"

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

#endif
