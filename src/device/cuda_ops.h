/* Private to the CUDA backend: what the kernels/ .cu files and the host side (src/device/cuda.c)
 * share. Each kernels/ file fills its ops of a kiln_ops table for a storage type (fp32 or
 * bf16, the table's precision); every op has the signature and semantics of the kiln_ops
 * member of the same name (include/kiln/backend.h), with device pointers and the stream as a
 * cudaStream_t in disguise. Ops return nothing: every launch and library call is checked, and
 * the first failure is recorded (kiln_cuda_failed) for the backend's synchronize to report. */
#ifndef KILN_DEVICE_CUDA_OPS_H
#define KILN_DEVICE_CUDA_OPS_H
#include <stddef.h>
#include <stdint.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "kiln/backend.h"

/* The device, its stream and the cuBLAS handles, set up once per process by cuda.c. */
typedef struct kiln_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;          /* batched GEMMs of attention */
    cublasLtHandle_t lt;          /* every other GEMM */
    void *lt_workspace;           /* cuBLASLt's scratch */
    size_t lt_workspace_bytes;
} kiln_cuda_ctx;
const kiln_cuda_ctx *kiln_cuda_context(void);

/* Scratch device memory for one op's temporaries (partial sums, fp32 accumulators): valid until the
 * next call, which may grow it. Ops run in stream order, so one arena is enough. NULL (and a
 * recorded failure) when it cannot be had. */
void *kiln_cuda_scratch(size_t bytes);

/* Record a failure at file:line of `what` (the first one wins; synchronize reports it).
 * The checks return 1 when they recorded one, so callers can stop early. */
void kiln_cuda_failed(const char *file, int line, const char *what, const char *detail);
int kiln_cuda_check_rt(cudaError_t err, const char *file, int line, const char *what);
int kiln_cuda_check_blas(cublasStatus_t st, const char *file, int line, const char *what);
#define KILN_CUDA_TRY(call) kiln_cuda_check_rt((call), __FILE__, __LINE__, #call)
#define KILN_CUBLAS_TRY(call) kiln_cuda_check_blas((call), __FILE__, __LINE__, #call)
/* After every kernel launch: launch errors (bad configuration, no kernel image for this GPU). */
#define KILN_CUDA_LAUNCHED(kernel) kiln_cuda_check_rt(cudaGetLastError(), __FILE__, __LINE__, kernel)

/* The ops of each kernels/ file, instantiated for the storage type of precision p, put into
 * ops: gemm.cu (gemm, linear), attention.cu, norm.cu (LayerNorm), embedding.cu, xent.cu
 * (softmax + cross-entropy), pointwise.cu (GELU, residual, dropout, scale, zero, axpy, cast),
 * optim.cu (AdamW, SGD, sum of squares). */
void kiln_cuda_gemm_ops(kiln_ops *ops, kiln_precision p);
void kiln_cuda_attention_ops(kiln_ops *ops, kiln_precision p);
void kiln_cuda_norm_ops(kiln_ops *ops, kiln_precision p);
void kiln_cuda_embedding_ops(kiln_ops *ops, kiln_precision p);
void kiln_cuda_xent_ops(kiln_ops *ops, kiln_precision p);
void kiln_cuda_pointwise_ops(kiln_ops *ops, kiln_precision p);
void kiln_cuda_optim_ops(kiln_ops *ops, kiln_precision p);

#ifdef __cplusplus
}
#endif
#endif
