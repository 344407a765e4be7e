/* The backend interface: one ops table per device kind.
 *
 * Every op is a plain function over flat float buffers, llm.c style. Argument order is fixed:
 * outputs, saved-for-backward buffers, inputs, weights, dimensions, then the stream (NULL on
 * the CPU). Row-major everywhere. Backward ops ACCUMULATE (+=) into every gradient they
 * write, input gradients included, so residual branches and tied weights need no extra adds;
 * callers zero gradient buffers once per step.
 *
 * The CPU backend (src/device/cpu*.c) implements every op; the CUDA backend (kernels/ .cu files,
 * host side src/device/cuda*.c) implements the same table with the same signatures. Dispatch
 * goes through kiln_backend so a missing op is an error ("no method X for backend Y"), never a
 * crash.
 *
 * On a GPU every pointer an op takes is device memory, ops only enqueue work on the stream and
 * return nothing; a failed launch is recorded and reported by the next synchronize.
 *
 * Storage. Parameters, gradients and activations are buffers of the backend's storage type
 * (its precision): float, or bfloat16 on the CUDA bf16 backend (train.precision=bf16,
 * docs/cuda.md). The table declares them float * either way; a bf16 buffer behind that type
 * is only ever handed to ops and collectives, and a view into it is made with
 * kiln_precision_bytes per element, never with float pointer arithmetic. Ops compute in fp32
 * (fp32 accumulation, statistics and losses) and round what they store. Always fp32, in every
 * precision: LayerNorm's mean and rstd, softmax_xent's losses and probs, the optimizer's
 * params (the master weights) and its states, and cast_from_f32's src. */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "kiln/config.h"
#include "kiln/status.h"

typedef struct kiln_ops {
    /* C (M,N) = alpha * op(A) op(B) + beta * C, row-major; op(X) = X or X^T. */
    void (*gemm)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc, void *stream);

    /* out (N,OC) = inp (N,C) @ weight(OC,C)^T + bias (OC, may be NULL) */
    void (*linear_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC, void *stream);
    /* dinp += dout @ weight; dweight += dout^T @ inp; dbias += colsum(dout) (dbias may be NULL).
     * dinp may be NULL when the input needs no gradient (the first layer). */
    void (*linear_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC,
                            void *stream);

    /* GELU, tanh approximation (as GPT-2). */
    void (*gelu_forward)(float *out, const float *inp, size_t n, void *stream);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n,
                          void *stream);

    /* LayerNorm over the last dim C of inp (N,C); eps 1e-5. mean, rstd (N) saved. */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, void *stream);
    void (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, int N, int C, void *stream);

    /* out (B,T,C) = wte[tokens[b,t]] + wpe[t]; tokens (B,T) int32, wte (V,C), wpe (maxT,C). */
    void (*embedding_forward)(float *out, const int32_t *tokens, const float *wte,
                              const float *wpe, int B, int T, int C, void *stream);
    /* V: rows of wte (every token is < V). */
    void (*embedding_backward)(float *dwte, float *dwpe, const float *dout,
                               const int32_t *tokens, int B, int T, int C, int V, void *stream);

    /* Causal multi-head self-attention. qkv (B,T,3C) holds q, k, v side by side, each split
     * into NH heads of C/NH. att (B,NH,T,T) saves the softmax probabilities (upper triangle
     * zero). out (B,T,C). Scale 1/sqrt(C/NH). */
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int C,
                              int NH, void *stream);
    /* dqkv += d/dqkv. scratch is (B,NH,T,T) of caller-owned workspace. */
    void (*attention_backward)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH, void *stream);

    /* Fused softmax + cross-entropy over logits (N,V) with targets (N) int32.
     * losses (N) = -log softmax(logits)[target]; probs (N,V) saved. A target < 0 is ignored
     * (loss 0, no gradient). */
    void (*softmax_xent_forward)(float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int N, int V, void *stream);
    /* dlogits += scale * (probs - onehot(target)); scale is usually 1/(number of targets). */
    void (*softmax_xent_backward)(float *dlogits, const float *probs, const int32_t *targets,
                                  float scale, int N, int V, void *stream);

    /* out = a + b; backward: da += dout, db += dout. */
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n, void *stream);
    void (*residual_backward)(float *da, float *db, const float *dout, size_t n, void *stream);

    /* Inverted dropout with probability p: keep element i iff
     * kiln_rng_uniform(seed, stream_id, i) >= p, scaling kept values by 1/(1-p). The mask is
     * recomputed from (seed, stream_id) in backward, so nothing is saved. p == 0 copies. */
    void (*dropout_forward)(float *out, const float *inp, float p, uint64_t seed,
                            uint64_t stream_id, size_t n, void *stream);
    void (*dropout_backward)(float *dinp, const float *dout, float p, uint64_t seed,
                             uint64_t stream_id, size_t n, void *stream);

    /* AdamW on a range (decoupled weight decay: p -= lr*wd*p). t is the 1-based step for bias
     * correction. grad_scale multiplies grads first (clipping / averaging folded in). params,
     * m, v are fp32, grads the storage type. params_copy, when not NULL, receives the updated
     * parameters in the storage type (the copy the other ops read) in the same pass. */
    void (*adamw_update)(float *params, float *params_copy, float *m, float *v,
                         const float *grads, size_t n, float lr, float beta1, float beta2,
                         float eps, float weight_decay, float grad_scale, int t, void *stream);
    /* SGD with momentum (PyTorch convention: buf = mu*buf + g + wd*p; p -= lr*buf); buffers as
     * for adamw_update. */
    void (*sgd_update)(float *params, float *params_copy, float *momentum_buf,
                       const float *grads, size_t n, float lr, float momentum,
                       float weight_decay, float grad_scale, void *stream);
    /* Sum of squares of x, accumulated in double (the caller takes sqrt over all ranges). */
    double (*sum_squares)(const float *x, size_t n, void *stream);

    /* x *= s; memset-to-zero; y += x. */
    void (*scale)(float *x, float s, size_t n, void *stream);
    void (*zero)(float *x, size_t n, void *stream);
    void (*axpy)(float *y, const float *x, float a, size_t n, void *stream);
    /* dst (storage type) = src (fp32), rounded to nearest even: a copy with fp32 storage. */
    void (*cast_from_f32)(float *dst, const float *src, size_t n, void *stream);

    /* ---- optional ops: a backend may leave them NULL. New ops land here CPU-first; code that
     * needs one asks kiln_backend_require first, which names the op and the backend that lacks
     * it. An op moves up once every backend has it. ---- */

    /* out (N) = the squared L2 norm of each row of x (N,D), accumulated in double; fp32 in and
     * out whatever the storage type (k-means and IVF distances: |x|^2 - 2 x.c + |c|^2). */
    void (*row_sq_norms)(float *out, const float *x, int N, int D, void *stream);
} kiln_ops;

typedef enum { KILN_DEVICE_CPU = 0, KILN_DEVICE_CUDA } kiln_device_kind;
/* The storage type of parameters, gradients and activations (train.precision). */
typedef enum { KILN_PRECISION_FP32 = 0, KILN_PRECISION_BF16 } kiln_precision;

/* Bytes of one element of a buffer in that storage type. */
static inline size_t kiln_precision_bytes(kiln_precision p)
{
    return p == KILN_PRECISION_BF16 ? 2 : 4;
}

/* Element i of a buffer of storage type p, as the view to hand an op (like strchr, it keeps
 * no const): a bf16 buffer is never indexed through its float *. */
static inline float *kiln_storage_at(kiln_precision p, const float *base, size_t i)
{
    return (float *)((const char *)base + i * kiln_precision_bytes(p));
}

typedef struct kiln_backend {
    const char *name;            /* "cpu", "cuda" */
    kiln_device_kind kind;
    kiln_precision precision;    /* storage type of its parameters, gradients, activations */
    kiln_ops ops;
    void *stream;                /* default stream; NULL on the CPU */
    /* Memory on this device, zero-filled (fresh gradient and optimizer buffers need no clear). */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    /* Copies between host and device memory (device to device too). Both are complete on
     * return as far as the host buffer is concerned: the host may reuse or read it. */
    void (*copy_to_device)(void *dst, const void *src, size_t bytes, void *stream);
    void (*copy_to_host)(void *dst, const void *src, size_t bytes, void *stream);
    /* Waits for the stream and returns the first failure of any op, copy or launch since the
     * last call (with its message recorded), then clears it. Always KILN_OK on the CPU. */
    kiln_status (*synchronize)(void *stream);
} kiln_backend;

/* The `backend` config section (src/device/backend_config.c). */
typedef struct kiln_backend_config {
    kiln_cfg_str name;           /* "cpu" | "cuda" */
} kiln_backend_config;
extern const kiln_cfg_schema kiln_backend_section;

/* Backend by name ("cpu", "cuda"), fp32; a clear error if it was not built or no device
 * exists. The CUDA backend runs on the device kiln_backend_select chose, else device 0. */
kiln_status kiln_backend_get(const char *name, const kiln_backend **out);
/* Backend by name and precision ("fp32", "bf16"), on GPU index gpu of this node (the one
 * hwloc placed the rank next to; -1: the local rank's turn among the visible devices).
 * bf16 on the CPU backend is a KILN_ERR_CONFIG naming train.precision and backend.name. */
kiln_status kiln_backend_select(const char *name, const char *precision, int gpu,
                                const kiln_backend **out);
const kiln_backend *kiln_backend_cpu(void);
/* Fails with "no method <op> for backend <name>" when a required op is missing from the table. */
kiln_status kiln_backend_validate(const kiln_backend *be);
/* 1 when be implements the op of that name (a kiln_ops member: "row_sq_norms"). */
int kiln_backend_supports(const kiln_backend *be, const char *op);
/* KILN_ERR_UNSUPPORTED ("op X is not supported on backend cuda yet; ...") unless be
 * implements every op named (n of them): what a job checks before it starts work. */
kiln_status kiln_backend_require(const kiln_backend *be, const char *const *ops, int n);
/* NVIDIA GPUs the kernel driver shows on this node, whether or not CUDA can use them (0 without
 * the driver): a GPU test skips only when this is 0, and fails when a GPU is present but the
 * backend cannot run on it. */
int kiln_gpus_present(void);

#endif
