// GEMMs on the GPU: the row-major gemm and linear layer through cuBLASLt (the bias of the
// forward fused as its epilogue), attention's batched products through cuBLAS, and the
// deterministic column sums behind bias gradients.
//
// cuBLAS is column-major. A row-major X (r, c) with leading dimension ld is the column-major
// X^T (c, r) with the same ld, so the row-major C = op(A) op(B) is computed as the
// column-major C^T = op(B)^T op(A)^T: the operands swap places, keep their transpose flags,
// and M and N swap. Every product below is written row-major, as on the CPU.
#include "common.cuh"

// The largest power of two (up to 256) dividing the address: cuBLASLt must not pick a kernel
// that assumes more alignment than the pointer has (views into the flat parameter buffer
// start at any float).
static uint32_t alignment_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint32_t align = 256;
    while (align > 4 && a % align) align /= 2;
    return align;
}

typedef struct rm_gemm {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb;
    float *C;
    int ldc;
    const float *bias; // row-major C's columns get bias[j] added (epilogue), or NULL
} rm_gemm;

// Column-major layout of a row-major operand whose op() is (rows, cols): the stored matrix
// is (rows, cols) row-major without transpose, (cols, rows) with it.
static int lt_layout(cublasLtMatrixLayout_t *l, int trans, int rows, int cols, int ld)
{
    // row-major (r, c) stored = column-major (c, r)
    int stored_rows = trans ? rows : cols, stored_cols = trans ? cols : rows;
    return KILN_CUBLAS_TRY(cublasLtMatrixLayoutCreate(l, CUDA_R_32F, (uint64_t)stored_rows,
                                                      (uint64_t)stored_cols, ld));
}

static int lt_set_alignment(cublasLtMatmulPreference_t pref,
                            cublasLtMatmulPreferenceAttributes_t attr, const void *p)
{
    uint32_t align = alignment_of(p);
    return KILN_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align));
}

static void lt_matmul(cublasComputeType_t compute, const rm_gemm *g, cudaStream_t stream)
{
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0) { // nothing to multiply: C = beta C (+ bias is never asked for here)
        for (int i = 0; i < g->M; i++) kiln_cuda_scale(g->C + (size_t)i * g->ldc, g->beta, g->N, stream);
        return;
    }
    const kiln_cuda_ctx *ctx = kiln_cuda_context();
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t first = NULL, second = NULL, out = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    // column-major: C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M)
    cublasOperation_t op_first = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint64_t workspace = ctx->lt_workspace_bytes;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (KILN_CUBLAS_TRY(cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F))) goto done;
    if (KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                       sizeof op_first)) ||
        KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                       sizeof op_second)))
        goto done;
    if (g->bias) {
        cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS; // bias[row of C^T] = bias[j]
        if (KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                           &epilogue, sizeof epilogue)) ||
            KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                           &g->bias, sizeof g->bias)))
            goto done;
    }
    // op(B)^T is (N, K): B's op() is (K, N); op(A)^T is (K, M): A's op() is (M, K)
    if (lt_layout(&first, g->trans_b, g->K, g->N, g->ldb) ||
        lt_layout(&second, g->trans_a, g->M, g->K, g->lda) ||
        KILN_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&out, CUDA_R_32F, (uint64_t)g->N,
                                                   (uint64_t)g->M, g->ldc)))
        goto done;
    if (KILN_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref)) ||
        KILN_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace)) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, g->B) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, g->A) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, g->C) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, g->C))
        goto done;
    if (KILN_CUBLAS_TRY(cublasLtMatmulAlgoGetHeuristic(ctx->lt, op, first, second, out, out, pref,
                                                       1, &heur, &found)))
        goto done;
    if (found == 0) {
        kiln_cuda_failed(__FILE__, __LINE__, "cublasLtMatmulAlgoGetHeuristic",
                         "no cuBLASLt algorithm for this GEMM (shape, alignment or epilogue)");
        goto done;
    }
    KILN_CUBLAS_TRY(cublasLtMatmul(ctx->lt, op, &g->alpha, g->B, first, g->A, second, &g->beta,
                                   g->C, out, g->C, out, &heur.algo, ctx->lt_workspace,
                                   ctx->lt_workspace_bytes, stream));
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (out) cublasLtMatrixLayoutDestroy(out);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (op) cublasLtMatmulDescDestroy(op);
}

// dbias[j] += sum_i dout[i, j]. Blocks of 32 columns x 8 row lanes; each block sums its
// chunk of rows into partial[chunk][j], then one ordered pass adds the chunks: the result
// does not depend on scheduling.
#define COLSUM_ROWS_PER_CHUNK 256

__global__ void colsum_partial_kernel(float *partial, const float *dout, int N, int OC)
{
    __shared__ float acc[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int row0 = blockIdx.y * COLSUM_ROWS_PER_CHUNK;
    int row1 = min(row0 + COLSUM_ROWS_PER_CHUNK, N);
    float s = 0.0f;
    if (j < OC)
        for (int i = row0 + threadIdx.y; i < row1; i += 8) s += dout[(size_t)i * OC + j];
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < OC) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++) t += acc[y][threadIdx.x];
        partial[(size_t)blockIdx.y * OC + j] = t;
    }
}

__global__ void colsum_finish_kernel(float *dbias, const float *partial, int chunks, int OC)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= OC) return;
    float s = 0.0f;
    for (int c = 0; c < chunks; c++) s += partial[(size_t)c * OC + j];
    dbias[j] += s;
}

extern "C" {

void kiln_cuda_colsum_accumulate(float *dbias, const float *dout, int N, int OC,
                                 cudaStream_t stream)
{
    if (N <= 0 || OC <= 0) return;
    int chunks = (N + COLSUM_ROWS_PER_CHUNK - 1) / COLSUM_ROWS_PER_CHUNK;
    float *partial = (float *)kiln_cuda_scratch((size_t)chunks * OC * sizeof(float));
    if (!partial) return;
    dim3 grid((unsigned)((OC + 31) / 32), (unsigned)chunks), block(32, 8);
    colsum_partial_kernel<<<grid, block, 0, stream>>>(partial, dout, N, OC);
    if (KILN_CUDA_LAUNCHED("colsum_partial_kernel")) return;
    colsum_finish_kernel<<<(unsigned)((OC + KILN_THREADS - 1) / KILN_THREADS), KILN_THREADS, 0,
                           stream>>>(dbias, partial, chunks, OC);
    KILN_CUDA_LAUNCHED("colsum_finish_kernel");
}

static void gemm_in(cublasComputeType_t compute, int trans_a, int trans_b, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc, void *stream)
{
    rm_gemm g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, lda, ldb, C, ldc, NULL};
    lt_matmul(compute, &g, kiln_stream(stream));
}

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias, the bias as cuBLASLt's epilogue.
static void linear_forward_in(cublasComputeType_t compute, float *out, const float *inp,
                              const float *weight, const float *bias, int N, int C, int OC,
                              void *stream)
{
    rm_gemm g = {0, 1, N, OC, C, 1.0f, 0.0f, inp, weight, C, C, out, OC, bias};
    lt_matmul(compute, &g, kiln_stream(stream));
}

static void linear_backward_in(cublasComputeType_t compute, float *dinp, float *dweight,
                               float *dbias, const float *dout, const float *inp,
                               const float *weight, int N, int C, int OC, void *stream)
{
    cudaStream_t s = kiln_stream(stream);
    if (dinp) { // dinp (N,C) += dout (N,OC) @ weight (OC,C)
        rm_gemm g = {0, 0, N, C, OC, 1.0f, 1.0f, dout, weight, OC, C, dinp, C, NULL};
        lt_matmul(compute, &g, s);
    }
    // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
    rm_gemm g = {1, 0, OC, C, N, 1.0f, 1.0f, dout, inp, OC, C, dweight, C, NULL};
    lt_matmul(compute, &g, s);
    // The bias gradient as its own reduction rather than cuBLASLt's BGRAD epilogue: kiln's
    // backward accumulates (+=) where the epilogue overwrites, and it keeps fp32 and bf16 alike.
    if (dbias) kiln_cuda_colsum_accumulate(dbias, dout, N, OC, s);
}

void kiln_cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream)
{
    gemm_in(CUBLAS_COMPUTE_32F, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
            stream);
}

void kiln_cuda_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc, void *stream)
{
    gemm_in(CUBLAS_COMPUTE_32F_FAST_16BF, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta,
            C, ldc, stream);
}

void kiln_cuda_linear_forward(float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC, void *stream)
{
    linear_forward_in(CUBLAS_COMPUTE_32F, out, inp, weight, bias, N, C, OC, stream);
}

void kiln_cuda_linear_forward_bf16(float *out, const float *inp, const float *weight,
                                   const float *bias, int N, int C, int OC, void *stream)
{
    linear_forward_in(CUBLAS_COMPUTE_32F_FAST_16BF, out, inp, weight, bias, N, C, OC, stream);
}

void kiln_cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int N, int C, int OC,
                               void *stream)
{
    linear_backward_in(CUBLAS_COMPUTE_32F, dinp, dweight, dbias, dout, inp, weight, N, C, OC,
                       stream);
}

void kiln_cuda_linear_backward_bf16(float *dinp, float *dweight, float *dbias,
                                    const float *dout, const float *inp, const float *weight,
                                    int N, int C, int OC, void *stream)
{
    linear_backward_in(CUBLAS_COMPUTE_32F_FAST_16BF, dinp, dweight, dbias, dout, inp, weight, N,
                       C, OC, stream);
}

void kiln_cuda_gemm_batched(cublasComputeType_t compute, int trans_a, int trans_b, int M, int N,
                            int K, float alpha, const float *A, int lda, long long stride_a,
                            const float *B, int ldb, long long stride_b, float beta, float *C,
                            int ldc, long long stride_c, int batch, cudaStream_t stream)
{
    if (M <= 0 || N <= 0 || K <= 0 || batch <= 0) return;
    const kiln_cuda_ctx *ctx = kiln_cuda_context();
    if (KILN_CUBLAS_TRY(cublasSetStream(ctx->blas, stream))) return;
    // column-major C^T = op(B)^T op(A)^T, as in lt_matmul
    KILN_CUBLAS_TRY(cublasGemmStridedBatchedEx(
        ctx->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
        K, &alpha, B, CUDA_R_32F, ldb, stride_b, A, CUDA_R_32F, lda, stride_a, &beta, C,
        CUDA_R_32F, ldc, stride_c, batch, compute, CUBLAS_GEMM_DEFAULT));
}

} // extern "C"
