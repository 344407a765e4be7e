/* CPU GEMM, the linear layer built on it (OpenBLAS sgemm, row-major), and the row norms that
 * turn a GEMM into squared distances. */
#include <cblas.h>
#include <string.h>
#include "cpu_ops.h"

static CBLAS_TRANSPOSE blas_trans(int trans) { return trans ? CblasTrans : CblasNoTrans; }

/* OpenBLAS threads every GEMM above 2^18 multiply-adds. Below about 2^20 (a classifier head:
 * 128 x 10 x 512) one thread is faster: waking the team and meeting at its barriers costs more
 * than the work, and far more when another process holds a core. */
enum { GEMM_SERIAL_MAX_MACS = 1 << 20 };

static void sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int threads = omp_get_max_threads();
    int serial = threads > 1 && (double)M * N * K <= GEMM_SERIAL_MAX_MACS;
    if (serial) omp_set_num_threads(1); /* the OpenMP OpenBLAS sizes its team from this */
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (serial) omp_set_num_threads(threads);
}

void kiln_cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream)
{
    sgemm(blas_trans(trans_a), blas_trans(trans_b), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
    sgemm(CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f, out,
          OC);
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
        sgemm(CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    /* dweight (OC,C) += dout^T (OC,N) @ inp (N,C) */
    sgemm(CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias)
        colsum_accumulate(dbias, dout, N, OC);
}

/* Each row summed in double, rows over threads: the result does not depend on the thread
 * count. */
void kiln_cpu_row_sq_norms(float *out, const float *x, int N, int D, void *stream)
{
#pragma omp parallel for schedule(static) if (parallel: (size_t)N * (size_t)D >= KILN_CPU_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *row = x + (size_t)i * (size_t)D;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < D; d++)
            s += (double)row[d] * row[d];
        out[i] = (float)s;
    }
}
