// LayerNorm over the last dimension on the GPU (biased variance, eps 1e-5), the formulas of
// src/device/cpu_norm.c. Rows are one warp each; the weight and bias gradients are column
// reductions over a fixed partition of the rows, summed in order (deterministic).
#include "common.cuh"

#define LAYERNORM_EPS 1e-5f
#define LN_ROWS_PER_CHUNK 256

static unsigned int warp_rows_grid(int N) { return (unsigned int)((N + 7) / 8); } // 8 warps a block

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int N, int C)
{
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C;
    float *y = out + (size_t)n * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32) sum += x[c];
    float m = kiln_warp_sum(sum) / C;
    float sq = 0.0f; // two passes: E[(x-m)^2] does not cancel as E[x^2] - m^2 does
    for (int c = lane; c < C; c += 32) sq += (x[c] - m) * (x[c] - m);
    float s = 1.0f / sqrtf(kiln_warp_sum(sq) / C + LAYERNORM_EPS);
    for (int c = lane; c < C; c += 32) y[c] = (x[c] - m) * s * weight[c] + bias[c];
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = s;
    }
}

// dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = weight * dout, per row.
__global__ void layernorm_backward_input_kernel(float *dinp, const float *dout, const float *inp,
                                                const float *weight, const float *mean,
                                                const float *rstd, int N, int C)
{
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    float *dx = dinp + (size_t)n * C;
    float m = mean[n], s = rstd[n], g_mean = 0.0f, gx_mean = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float g = weight[c] * dy[c];
        g_mean += g;
        gx_mean += g * (x[c] - m) * s;
    }
    g_mean = kiln_warp_sum(g_mean) / C;
    gx_mean = kiln_warp_sum(gx_mean) / C;
    for (int c = lane; c < C; c += 32)
        dx[c] += s * (weight[c] * dy[c] - g_mean - (x[c] - m) * s * gx_mean);
}

// partial[chunk][c] = sums over the chunk's rows of xhat * dout (dweight) and dout (dbias);
// blocks of 32 columns x 8 row lanes.
__global__ void layernorm_params_partial_kernel(float *pw, float *pb, const float *dout,
                                                const float *inp, const float *mean,
                                                const float *rstd, int N, int C)
{
    __shared__ float acc_w[8][33], acc_b[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int row0 = blockIdx.y * LN_ROWS_PER_CHUNK, row1 = min(row0 + LN_ROWS_PER_CHUNK, N);
    float sw = 0.0f, sb = 0.0f;
    if (c < C)
        for (int n = row0 + threadIdx.y; n < row1; n += 8) {
            float dy = dout[(size_t)n * C + c];
            sw += (inp[(size_t)n * C + c] - mean[n]) * rstd[n] * dy;
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

__global__ void layernorm_params_finish_kernel(float *dweight, float *dbias, const float *pw,
                                               const float *pb, int chunks, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < chunks; k++) {
        tw += pw[(size_t)k * C + c];
        tb += pb[(size_t)k * C + c];
    }
    dweight[c] += tw;
    dbias[c] += tb;
}

extern "C" {

void kiln_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int N, int C,
                                 void *stream)
{
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<<<warp_rows_grid(N), KILN_THREADS, 0, kiln_stream(stream)>>>(
        out, mean, rstd, inp, weight, bias, N, C);
    KILN_CUDA_LAUNCHED("layernorm_forward_kernel");
}

void kiln_cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean,
                                  const float *rstd, int N, int C, void *stream)
{
    if (N <= 0 || C <= 0) return;
    cudaStream_t st = kiln_stream(stream);
    layernorm_backward_input_kernel<<<warp_rows_grid(N), KILN_THREADS, 0, st>>>(
        dinp, dout, inp, weight, mean, rstd, N, C);
    if (KILN_CUDA_LAUNCHED("layernorm_backward_input_kernel")) return;
    int chunks = (N + LN_ROWS_PER_CHUNK - 1) / LN_ROWS_PER_CHUNK;
    float *pw = (float *)kiln_cuda_scratch(2 * (size_t)chunks * C * sizeof(float));
    if (!pw) return;
    float *pb = pw + (size_t)chunks * C;
    dim3 grid((unsigned)((C + 31) / 32), (unsigned)chunks), block(32, 8);
    layernorm_params_partial_kernel<<<grid, block, 0, st>>>(pw, pb, dout, inp, mean, rstd, N, C);
    if (KILN_CUDA_LAUNCHED("layernorm_params_partial_kernel")) return;
    layernorm_params_finish_kernel<<<(unsigned)((C + KILN_THREADS - 1) / KILN_THREADS),
                                     KILN_THREADS, 0, st>>>(dweight, dbias, pw, pb, chunks, C);
    KILN_CUDA_LAUNCHED("layernorm_params_finish_kernel");
}

} // extern "C"
