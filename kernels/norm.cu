// LayerNorm over the last dimension on the GPU (biased variance, eps 1e-5), the formulas of
// src/device/cpu_norm.c. Rows are one warp each, with fp32 statistics (mean and rstd are
// stored fp32 in every precision); the weight and bias gradients are column reductions in
// fp32 over a fixed partition of the rows, summed in order (deterministic).
#include "common.cuh"

#define LAYERNORM_EPS 1e-5f
#define LN_ROWS_PER_CHUNK 256

static unsigned int warp_rows_grid(int N) { return (unsigned int)((N + 7) / 8); } // 8 warps a block

template <typename T>
__global__ void layernorm_forward_kernel(T *out, float *mean, float *rstd, const T *inp,
                                         const T *weight, const T *bias, int N, int C)
{
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    const T *x = inp + (size_t)n * C;
    T *y = out + (size_t)n * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32) sum += kiln_f32(x[c]);
    float m = kiln_warp_sum(sum) / C;
    float sq = 0.0f; // two passes: E[(x-m)^2] does not cancel as E[x^2] - m^2 does
    for (int c = lane; c < C; c += 32) {
        float d = kiln_f32(x[c]) - m;
        sq += d * d;
    }
    float s = 1.0f / sqrtf(kiln_warp_sum(sq) / C + LAYERNORM_EPS);
    for (int c = lane; c < C; c += 32)
        y[c] = kiln_store<T>((kiln_f32(x[c]) - m) * s * kiln_f32(weight[c]) + kiln_f32(bias[c]));
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = s;
    }
}

// dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = weight * dout, per row.
template <typename T>
__global__ void layernorm_backward_input_kernel(T *dinp, const T *dout, const T *inp,
                                                const T *weight, const float *mean,
                                                const float *rstd, int N, int C)
{
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    const T *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    T *dx = dinp + (size_t)n * C;
    float m = mean[n], s = rstd[n], g_mean = 0.0f, gx_mean = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float g = kiln_f32(weight[c]) * kiln_f32(dy[c]);
        g_mean += g;
        gx_mean += g * (kiln_f32(x[c]) - m) * s;
    }
    g_mean = kiln_warp_sum(g_mean) / C;
    gx_mean = kiln_warp_sum(gx_mean) / C;
    for (int c = lane; c < C; c += 32) {
        float g = kiln_f32(weight[c]) * kiln_f32(dy[c]);
        float d = s * (g - g_mean - (kiln_f32(x[c]) - m) * s * gx_mean);
        dx[c] = kiln_store<T>(kiln_f32(dx[c]) + d);
    }
}

// partial[chunk][c] = sums over the chunk's rows of xhat * dout (dweight) and dout (dbias);
// blocks of 32 columns x 8 row lanes.
template <typename T>
__global__ void layernorm_params_partial_kernel(float *pw, float *pb, const T *dout,
                                                const T *inp, const float *mean,
                                                const float *rstd, int N, int C)
{
    __shared__ float acc_w[8][33], acc_b[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int row0 = blockIdx.y * LN_ROWS_PER_CHUNK, row1 = min(row0 + LN_ROWS_PER_CHUNK, N);
    float sw = 0.0f, sb = 0.0f;
    if (c < C)
        for (int n = row0 + threadIdx.y; n < row1; n += 8) {
            float dy = kiln_f32(dout[(size_t)n * C + c]);
            sw += (kiln_f32(inp[(size_t)n * C + c]) - mean[n]) * rstd[n] * dy;
            sb += dy;
        }
    acc_w[threadIdx.y][threadIdx.x] = sw;
    acc_b[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int y = 0; y < 8; y++) {
            tw += acc_w[y][threadIdx.x];
            tb += acc_b[y][threadIdx.x];
        }
        pw[(size_t)blockIdx.y * C + c] = tw;
        pb[(size_t)blockIdx.y * C + c] = tb;
    }
}

template <typename T>
__global__ void layernorm_params_finish_kernel(T *dweight, T *dbias, const float *pw,
                                               const float *pb, int chunks, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < chunks; k++) {
        tw += pw[(size_t)k * C + c];
        tb += pb[(size_t)k * C + c];
    }
    dweight[c] = kiln_store<T>(kiln_f32(dweight[c]) + tw);
    dbias[c] = kiln_store<T>(kiln_f32(dbias[c]) + tb);
}

template <typename T>
static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<T><<<warp_rows_grid(N), KILN_THREADS, 0, kiln_stream(stream)>>>(
        kiln_typed<T>(out), mean, rstd, kiln_typed<T>(inp), kiln_typed<T>(weight),
        kiln_typed<T>(bias), N, C);
    KILN_CUDA_LAUNCHED("layernorm_forward_kernel");
}

template <typename T>
static void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    cudaStream_t st = kiln_stream(stream);
    const T *dy = kiln_typed<T>(dout), *x = kiln_typed<T>(inp);
    layernorm_backward_input_kernel<T><<<warp_rows_grid(N), KILN_THREADS, 0, st>>>(
        kiln_typed<T>(dinp), dy, x, kiln_typed<T>(weight), mean, rstd, N, C);
    if (KILN_CUDA_LAUNCHED("layernorm_backward_input_kernel")) return;
    int chunks = (N + LN_ROWS_PER_CHUNK - 1) / LN_ROWS_PER_CHUNK;
    float *pw = (float *)kiln_cuda_scratch(2 * (size_t)chunks * C * sizeof(float));
    if (!pw) return;
    float *pb = pw + (size_t)chunks * C;
    dim3 grid((unsigned)((C + 31) / 32), (unsigned)chunks), block(32, 8);
    layernorm_params_partial_kernel<T><<<grid, block, 0, st>>>(pw, pb, dy, x, mean, rstd, N, C);
    if (KILN_CUDA_LAUNCHED("layernorm_params_partial_kernel")) return;
    layernorm_params_finish_kernel<T><<<(unsigned)((C + KILN_THREADS - 1) / KILN_THREADS),
                                        KILN_THREADS, 0, st>>>(
        kiln_typed<T>(dweight), kiln_typed<T>(dbias), pw, pb, chunks, C);
    KILN_CUDA_LAUNCHED("layernorm_params_finish_kernel");
}

template <typename T> static void fill_ops(kiln_ops *ops)
{
    ops->layernorm_forward = layernorm_forward<T>;
    ops->layernorm_backward = layernorm_backward<T>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_norm_ops)
