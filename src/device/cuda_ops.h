/* Private to the CUDA backend: the kernels' host entry points (kernels/ .cu files, C linkage) that
 * fill its kiln_ops tables (src/device/cuda.c), and what the kernels need from the host side.
 * Each op has the signature and semantics of the kiln_ops member of the same name
 * (include/kiln/backend.h), with device pointers and the stream as a cudaStream_t in disguise.
 * Ops return nothing: every launch and library call is checked, and the first failure is
 * recorded (kiln_cuda_failed) for the backend's synchronize to report. */
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

/* Scratch device memory for one op's temporaries (bf16 casts, partial sums): valid until the
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

/* kernels/gemm.cu: cuBLASLt on fp32 buffers, in fp32 math (CUBLAS_COMPUTE_32F: no TF32) or,
 * for the _bf16 variants, on bf16 tensor cores (CUBLAS_COMPUTE_32F_FAST_16BF: operands
 * rounded to bf16, products accumulated and written in fp32). */
void kiln_cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream);
void kiln_cuda_linear_forward(float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC, void *stream);
void kiln_cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int N, int C, int OC,
                               void *stream);
void kiln_cuda_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc, void *stream);
void kiln_cuda_linear_forward_bf16(float *out, const float *inp, const float *weight,
                                   const float *bias, int N, int C, int OC, void *stream);
void kiln_cuda_linear_backward_bf16(float *dinp, float *dweight, float *dbias,
                                    const float *dout, const float *inp, const float *weight,
                                    int N, int C, int OC, void *stream);
/* Row-major strided-batched GEMM for attention (cuBLAS), in the given compute type:
 * C_i = alpha op(A_i) op(B_i) + beta C_i with X_i = X + i * stride_x, i < batch. */
void kiln_cuda_gemm_batched(cublasComputeType_t compute, int trans_a, int trans_b, int M, int N,
                            int K, float alpha, const float *A, int lda, long long stride_a,
                            const float *B, int ldb, long long stride_b, float beta, float *C,
                            int ldc, long long stride_c, int batch, cudaStream_t stream);
/* dbias (OC) += column sums of dout (N, OC), deterministic (fixed partition, ordered sum). */
void kiln_cuda_colsum_accumulate(float *dbias, const float *dout, int N, int OC,
                                 cudaStream_t stream);

/* kernels/pointwise.cu */
void kiln_cuda_gelu_forward(float *out, const float *inp, size_t n, void *stream);
void kiln_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                             void *stream);
void kiln_cuda_residual_forward(float *out, const float *a, const float *b, size_t n,
                                void *stream);
void kiln_cuda_residual_backward(float *da, float *db, const float *dout, size_t n,
                                 void *stream);
void kiln_cuda_dropout_forward(float *out, const float *inp, float p, uint64_t seed,
                               uint64_t stream_id, size_t n, void *stream);
void kiln_cuda_dropout_backward(float *dinp, const float *dout, float p, uint64_t seed,
                                uint64_t stream_id, size_t n, void *stream);
void kiln_cuda_scale(float *x, float s, size_t n, void *stream);
void kiln_cuda_zero(float *x, size_t n, void *stream);
void kiln_cuda_axpy(float *y, const float *x, float a, size_t n, void *stream);

/* kernels/norm.cu */
void kiln_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int N, int C,
                                 void *stream);
void kiln_cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean,
                                  const float *rstd, int N, int C, void *stream);

/* kernels/embedding.cu */
void kiln_cuda_embedding_forward(float *out, const int32_t *tokens, const float *wte,
                                 const float *wpe, int B, int T, int C, void *stream);
void kiln_cuda_embedding_backward(float *dwte, float *dwpe, const float *dout,
                                  const int32_t *tokens, int B, int T, int C, void *stream);

/* kernels/attention.cu */
void kiln_cuda_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                 int NH, void *stream);
void kiln_cuda_attention_backward(float *dqkv, float *scratch, const float *dout,
                                  const float *qkv, const float *att, int B, int T, int C,
                                  int NH, void *stream);
void kiln_cuda_attention_forward_bf16(float *out, float *att, const float *qkv, int B, int T,
                                      int C, int NH, void *stream);
void kiln_cuda_attention_backward_bf16(float *dqkv, float *scratch, const float *dout,
                                       const float *qkv, const float *att, int B, int T, int C,
                                       int NH, void *stream);

/* kernels/xent.cu */
void kiln_cuda_softmax_xent_forward(float *losses, float *probs, const float *logits,
                                    const int32_t *targets, int N, int V, void *stream);
void kiln_cuda_softmax_xent_backward(float *dlogits, const float *probs,
                                     const int32_t *targets, float scale, int N, int V,
                                     void *stream);

/* kernels/optim.cu */
void kiln_cuda_adamw_update(float *params, float *m, float *v, const float *grads, size_t n,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            float grad_scale, int t, void *stream);
void kiln_cuda_sgd_update(float *params, float *momentum_buf, const float *grads, size_t n,
                          float lr, float momentum, float weight_decay, float grad_scale,
                          void *stream);
double kiln_cuda_sum_squares(const float *x, size_t n, void *stream);

#ifdef __cplusplus
}
#endif
#endif
