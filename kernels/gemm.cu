// GEMMs on the GPU: the row-major gemm and linear layer through cuBLASLt (the bias of the
// forward fused as its epilogue), attention's batched products through cuBLAS, and the
// deterministic column sums behind bias gradients. Operands and results are the storage type
// T (fp32, or bf16 on tensor cores); products always accumulate in fp32 (CUBLAS_COMPUTE_32F,
// which for fp32 operands also means no TF32), alpha and beta are fp32.
//
// cuBLAS is column-major. A row-major X (r, c) with leading dimension ld is the column-major
// X^T (c, r) with the same ld, so the row-major C = op(A) op(B) is computed as the
// column-major C^T = op(B)^T op(A)^T: the operands swap places, keep their transpose flags,
// and M and N swap. Every product below is written row-major, as on the CPU.
#include "common.cuh"

// The largest power of two (up to 256, at least the element size) dividing the address:
// cuBLASLt must not pick a kernel that assumes more alignment than the pointer has (views
// into the flat parameter buffer start at any element).
static uint32_t alignment_of(const void *p, size_t elem)
{
    uintptr_t a = (uintptr_t)p;
    uint32_t align = 256;
    while (align > elem && a % align) align /= 2;
    return align;
}

template <typename T> struct rm_gemm {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const T *A, *B;
    int lda, ldb;
    T *C;
    int ldc;
    const T *bias; // row-major C's columns get bias[j] added (epilogue), or NULL
};

// Column-major layout of a row-major operand whose op() is (rows, cols): the stored matrix
// is (rows, cols) row-major without transpose, (cols, rows) with it.
static int lt_layout(cublasLtMatrixLayout_t *l, cudaDataType_t type, int trans, int rows,
                     int cols, int ld)
{
    // row-major (r, c) stored = column-major (c, r)
    int stored_rows = trans ? rows : cols, stored_cols = trans ? cols : rows;
    return KILN_CUBLAS_TRY(cublasLtMatrixLayoutCreate(l, type, (uint64_t)stored_rows,
                                                      (uint64_t)stored_cols, ld));
}

static int lt_set_alignment(cublasLtMatmulPreference_t pref,
                            cublasLtMatmulPreferenceAttributes_t attr, const void *p, size_t elem)
{
    uint32_t align = alignment_of(p, elem);
    return KILN_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align));
}

template <typename T> static void lt_matmul(const rm_gemm<T> *g, cudaStream_t stream)
{
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0) { // nothing to multiply: C = beta C (+ bias is never asked for here)
        for (int i = 0; i < g->M; i++) kiln_cuda_scale_t<T>(g->C + (size_t)i * g->ldc, g->beta, g->N, stream);
        return;
    }
    const kiln_cuda_ctx *ctx = kiln_cuda_context();
    const cudaDataType_t type = kiln_cuda_type<T>();
    const size_t elem = sizeof(T);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t first = NULL, second = NULL, out = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    // column-major: C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M)
    cublasOperation_t op_first = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint64_t workspace = ctx->lt_workspace_bytes;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (KILN_CUBLAS_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F))) goto done;
    if (KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                       sizeof op_first)) ||
        KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                       sizeof op_second)))
        goto done;
    if (g->bias) { // of the output's type (cuBLASLt's default for the bias)
        cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS; // bias[row of C^T] = bias[j]
        if (KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                           &epilogue, sizeof epilogue)) ||
            KILN_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                           &g->bias, sizeof g->bias)))
            goto done;
    }
    // op(B)^T is (N, K): B's op() is (K, N); op(A)^T is (K, M): A's op() is (M, K)
    if (lt_layout(&first, type, g->trans_b, g->K, g->N, g->ldb) ||
        lt_layout(&second, type, g->trans_a, g->M, g->K, g->lda) ||
        KILN_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&out, type, (uint64_t)g->N, (uint64_t)g->M,
                                                   g->ldc)))
        goto done;
    if (KILN_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref)) ||
        KILN_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace)) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, g->B, elem) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, g->A, elem) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, g->C, elem) ||
        lt_set_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, g->C, elem))
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

// dbias[j] += sum_i dout[i, j], in fp32. Blocks of 32 columns x 8 row lanes; each block sums
// its chunk of rows into partial[chunk][j], then one ordered pass adds the chunks: the result
// does not depend on scheduling.
#define COLSUM_ROWS_PER_CHUNK 256

template <typename T>
__global__ void colsum_partial_kernel(float *partial, const T *dout, int N, int OC)
{
    __shared__ float acc[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int row0 = blockIdx.y * COLSUM_ROWS_PER_CHUNK;
    int row1 = min(row0 + COLSUM_ROWS_PER_CHUNK, N);
    float s = 0.0f;
    if (j < OC)
        for (int i = row0 + threadIdx.y; i < row1; i += 8) s += kiln_f32(dout[(size_t)i * OC + j]);
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < OC) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++) t += acc[y][threadIdx.x];
        partial[(size_t)blockIdx.y * OC + j] = t;
    }
}

template <typename T>
__global__ void colsum_finish_kernel(T *dbias, const float *partial, int chunks, int OC)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= OC) return;
    float s = 0.0f;
    for (int c = 0; c < chunks; c++) s += partial[(size_t)c * OC + j];
    dbias[j] = kiln_store<T>(kiln_f32(dbias[j]) + s);
}

template <typename T>
static void colsum_accumulate(T *dbias, const T *dout, int N, int OC, cudaStream_t stream)
{
    if (N <= 0 || OC <= 0) return;
    int chunks = (N + COLSUM_ROWS_PER_CHUNK - 1) / COLSUM_ROWS_PER_CHUNK;
    float *partial = (float *)kiln_cuda_scratch((size_t)chunks * OC * sizeof(float));
    if (!partial) return;
    dim3 grid((unsigned)((OC + 31) / 32), (unsigned)chunks), block(32, 8);
    colsum_partial_kernel<T><<<grid, block, 0, stream>>>(partial, dout, N, OC);
    if (KILN_CUDA_LAUNCHED("colsum_partial_kernel")) return;
    colsum_finish_kernel<T><<<(unsigned)((OC + KILN_THREADS - 1) / KILN_THREADS), KILN_THREADS, 0,
                              stream>>>(dbias, partial, chunks, OC);
    KILN_CUDA_LAUNCHED("colsum_finish_kernel");
}

template <typename T>
static void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream)
{
    rm_gemm<T> g = {trans_a, trans_b, M, N, K, alpha, beta, kiln_typed<T>(A), kiln_typed<T>(B),
                    lda, ldb, kiln_typed<T>(C), ldc, NULL};
    lt_matmul<T>(&g, kiln_stream(stream));
}

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias, the bias as cuBLASLt's epilogue.
template <typename T>
static void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC, void *stream)
{
    rm_gemm<T> g = {0, 1, N, OC, C, 1.0f, 0.0f, kiln_typed<T>(inp), kiln_typed<T>(weight), C, C,
                    kiln_typed<T>(out), OC, kiln_typed<T>(bias)};
    lt_matmul<T>(&g, kiln_stream(stream));
}

template <typename T>
static void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC,
                            void *stream)
{
    cudaStream_t s = kiln_stream(stream);
    const T *dy = kiln_typed<T>(dout);
    if (dinp) { // dinp (N,C) += dout (N,OC) @ weight (OC,C)
        rm_gemm<T> g = {0, 0, N, C, OC, 1.0f, 1.0f, dy, kiln_typed<T>(weight), OC, C,
                        kiln_typed<T>(dinp), C, NULL};
        lt_matmul<T>(&g, s);
    }
    // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
    rm_gemm<T> g = {1, 0, OC, C, N, 1.0f, 1.0f, dy, kiln_typed<T>(inp), OC, C,
                    kiln_typed<T>(dweight), C, NULL};
    lt_matmul<T>(&g, s);
    // The bias gradient as its own reduction rather than cuBLASLt's BGRAD epilogue: kiln's
    // backward accumulates (+=) where the epilogue overwrites.
    if (dbias) colsum_accumulate<T>(kiln_typed<T>(dbias), dy, N, OC, s);
}

template <typename T>
void kiln_cuda_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha,
                            const T *A, int lda, long long stride_a, const T *B, int ldb,
                            long long stride_b, float beta, T *C, int ldc, long long stride_c,
                            int batch, cudaStream_t stream)
{
    if (M <= 0 || N <= 0 || K <= 0 || batch <= 0) return;
    const kiln_cuda_ctx *ctx = kiln_cuda_context();
    const cudaDataType_t type = kiln_cuda_type<T>();
    if (KILN_CUBLAS_TRY(cublasSetStream(ctx->blas, stream))) return;
    // column-major C^T = op(B)^T op(A)^T, as in lt_matmul
    KILN_CUBLAS_TRY(cublasGemmStridedBatchedEx(
        ctx->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
        K, &alpha, B, type, ldb, stride_b, A, type, lda, stride_a, &beta, C, type, ldc, stride_c,
        batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
template void kiln_cuda_gemm_batched<float>(int, int, int, int, int, float, const float *, int,
                                            long long, const float *, int, long long, float,
                                            float *, int, long long, int, cudaStream_t);
template void kiln_cuda_gemm_batched<kiln_bf16>(int, int, int, int, int, float, const kiln_bf16 *,
                                                int, long long, const kiln_bf16 *, int, long long,
                                                float, kiln_bf16 *, int, long long, int,
                                                cudaStream_t);

template <typename T> static void fill_ops(kiln_ops *ops)
{
    ops->gemm = gemm<T>;
    ops->linear_forward = linear_forward<T>;
    ops->linear_backward = linear_backward<T>;
}

KILN_CUDA_OPS_FILLER(kiln_cuda_gemm_ops)
