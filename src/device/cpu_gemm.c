/* CPU GEMM and the linear layer built on it: OpenBLAS sgemm, row-major. */
#include <cblas.h>
#include <string.h>
#include "cpu_ops.h"

static CBLAS_TRANSPOSE blas_trans(int trans) { return trans ? CblasTrans : CblasNoTrans; }

void kiln_cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream)
{
    cblas_sgemm(CblasRowMajor, blas_trans(trans_a), blas_trans(trans_b), M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

void kiln_cpu_linear_forward(float *out, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC, void *stream)
{
    /* Rows pre-filled with the bias let sgemm add the product in the same pass (beta = 1). */
    if (bias) {
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= KILN_CPU_PAR_MIN)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C,
                bias ? 1.0f : 0.0f, out, OC);
}

/* dbias += column sums of dout (N,OC). */
static void colsum_accumulate(float *dbias, const float *dout, int N, int OC)
{
#pragma omp parallel if ((size_t)N * OC >= KILN_CPU_PAR_MIN)
    {
        int lo, hi;
        kiln_cpu_thread_slice(OC, &lo, &hi);
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC;
#pragma omp simd
            for (int o = lo; o < hi; o++)
                dbias[o] += row[o];
        }
    }
}

void kiln_cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC,
                              void *stream)
{
    if (dinp) /* dinp (N,C) += dout (N,OC) @ weight (OC,C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight,
                    C, 1.0f, dinp, C);
    /* dweight (OC,C) += dout^T (OC,N) @ inp (N,C) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                dweight, C);
    if (dbias)
        colsum_accumulate(dbias, dout, N, OC);
}
