/* Private to the CPU backend: the functions that fill its kiln_ops table (src/device/cpu.c).
 * Each one has the signature and semantics of the kiln_ops member of the same name
 * (include/kiln/backend.h); the stream argument is ignored on the CPU. */
#ifndef KILN_DEVICE_CPU_OPS_H
#define KILN_DEVICE_CPU_OPS_H
#include <omp.h>
#include <stdint.h>
#include "kiln/backend.h"

/* exp(x) for x in [-87, 88], with no range checks: the core of kiln_cpu_expf, and of the GELU,
 * whose sigmoid clamps its argument to that range itself. Unlike libm's expf (glibc has a
 * vector expf only under -ffast-math) it vectorises. Cephes' expf: x = n ln2 + r with ln2
 * split in two so the reduction is exact, a degree-5 polynomial for e^r, 2^n put in the
 * exponent bits. Within 1.03 ulp of exp over every float in [-87, 88] (checked exhaustively). */
static inline float kiln_cpu_exp_in_range(float x)
{
    /* n = round(x / ln2) by the 1.5 * 2^23 trick: floorf blocks GCC 12's vectoriser. */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    union {
        uint32_t bits;
        float value;
    } two_n;
    /* unsigned: a NaN x makes n's conversion INT_MIN, whose signed shift would be undefined;
     * the result is NaN either way */
    two_n.bits = (uint32_t)((int32_t)n + 127) << 23;
    return (p * r * r + r + 1.0f) * two_n.value;
}

/* exp(x) for x <= 0, for the softmaxes: below -87, where the result would leave the normal
 * range, it returns 0. */
static inline float kiln_cpu_expf(float x)
{
    float e = kiln_cpu_exp_in_range(x < -87.0f ? -87.0f : x);
    return x < -87.0f ? 0.0f : e;
}

/* The slice [*lo, *hi) of 0..n owned by the calling thread of an OpenMP parallel region.
 * Column reductions (bias and weight gradients) give each thread whole columns and walk the
 * rows in order: no races, no atomics, and sums that do not depend on the thread count. */
/* Element-wise loops shorter than this run on one thread: waking the team and meeting at the
 * barrier costs more than the work (biases, norms and small layers are this size). */
#define KILN_CPU_PAR_MIN 65536

static inline void kiln_cpu_thread_slice(int n, int *lo, int *hi)
{
    long long t = omp_get_thread_num(), nt = omp_get_num_threads();
    *lo = (int)(n * t / nt);
    *hi = (int)(n * (t + 1) / nt);
}

/* cpu_gemm.c */
void kiln_cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream);
void kiln_cpu_linear_forward(float *out, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC, void *stream);
void kiln_cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC,
                              void *stream);

/* cpu_pointwise.c */
void kiln_cpu_gelu_forward(float *out, const float *inp, size_t n, void *stream);
void kiln_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                            void *stream);
void kiln_cpu_residual_forward(float *out, const float *a, const float *b, size_t n,
                               void *stream);
void kiln_cpu_residual_backward(float *da, float *db, const float *dout, size_t n,
                                void *stream);
void kiln_cpu_dropout_forward(float *out, const float *inp, float p, uint64_t seed,
                              uint64_t stream_id, size_t n, void *stream);
void kiln_cpu_dropout_backward(float *dinp, const float *dout, float p, uint64_t seed,
                               uint64_t stream_id, size_t n, void *stream);
void kiln_cpu_scale(float *x, float s, size_t n, void *stream);
void kiln_cpu_zero(float *x, size_t n, void *stream);
void kiln_cpu_axpy(float *y, const float *x, float a, size_t n, void *stream);

/* cpu_norm.c */
void kiln_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C,
                                void *stream);
void kiln_cpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, int N, int C, void *stream);

/* cpu_embedding.c */
void kiln_cpu_embedding_forward(float *out, const int32_t *tokens, const float *wte,
                                const float *wpe, int B, int T, int C, void *stream);
void kiln_cpu_embedding_backward(float *dwte, float *dwpe, const float *dout,
                                 const int32_t *tokens, int B, int T, int C, int V,
                                 void *stream);

/* cpu_attention.c */
void kiln_cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                int NH, void *stream);
void kiln_cpu_attention_backward(float *dqkv, float *scratch, const float *dout,
                                 const float *qkv, const float *att, int B, int T, int C, int NH,
                                 void *stream);

/* cpu_xent.c */
void kiln_cpu_softmax_xent_forward(float *losses, float *probs, const float *logits,
                                   const int32_t *targets, int N, int V, void *stream);
void kiln_cpu_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets,
                                    float scale, int N, int V, void *stream);

/* cpu_optim.c */
void kiln_cpu_adamw_update(float *params, float *params_copy, float *m, float *v,
                           const float *grads, size_t n, float lr, float beta1, float beta2,
                           float eps, float weight_decay, float grad_scale, int t,
                           void *stream);
void kiln_cpu_sgd_update(float *params, float *params_copy, float *momentum_buf,
                         const float *grads, size_t n, float lr, float momentum,
                         float weight_decay, float grad_scale, void *stream);
double kiln_cpu_sum_squares(const float *x, size_t n, void *stream);

/* cpu_gemm.c (optional ops) */
void kiln_cpu_row_sq_norms(float *out, const float *x, int N, int D, void *stream);

#endif
