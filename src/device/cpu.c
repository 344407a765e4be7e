/* The CPU backend: host memory and the ops table filled from src/device/cpu_*.c. */
#include <stdlib.h>
#include <string.h>
#include "cpu_ops.h"

/* A cache line and an AVX-512 vector: aligned buffers never split a vector load. */
enum { CPU_ALIGN = 64 };

/* Zeroed, so fresh gradient and optimizer buffers need no separate clear. */
static void *cpu_alloc(size_t bytes)
{
    size_t rounded = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN; /* aligned_alloc's rule */
    if (rounded < bytes)
        return NULL; /* overflow */
    void *p = aligned_alloc(CPU_ALIGN, rounded ? rounded : CPU_ALIGN);
    if (p)
        memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) { free(p); }

static void cpu_copy(void *dst, const void *src, size_t bytes, void *stream)
{
    if (dst != src)
        memcpy(dst, src, bytes);
}

static kiln_status cpu_synchronize(void *stream) { return KILN_OK; }

/* The CPU stores fp32: casting from fp32 is a copy. */
static void cpu_cast_from_f32(float *dst, const float *src, size_t n, void *stream)
{
    cpu_copy(dst, src, n * sizeof *src, stream);
}

static const kiln_backend cpu_backend = {
    .name = "cpu",
    .kind = KILN_DEVICE_CPU,
    .precision = KILN_PRECISION_FP32,
    .stream = NULL,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .synchronize = cpu_synchronize,
    .ops = {
        .gemm = kiln_cpu_gemm,
        .linear_forward = kiln_cpu_linear_forward,
        .linear_backward = kiln_cpu_linear_backward,
        .gelu_forward = kiln_cpu_gelu_forward,
        .gelu_backward = kiln_cpu_gelu_backward,
        .layernorm_forward = kiln_cpu_layernorm_forward,
        .layernorm_backward = kiln_cpu_layernorm_backward,
        .embedding_forward = kiln_cpu_embedding_forward,
        .embedding_backward = kiln_cpu_embedding_backward,
        .attention_forward = kiln_cpu_attention_forward,
        .attention_backward = kiln_cpu_attention_backward,
        .softmax_xent_forward = kiln_cpu_softmax_xent_forward,
        .softmax_xent_backward = kiln_cpu_softmax_xent_backward,
        .residual_forward = kiln_cpu_residual_forward,
        .residual_backward = kiln_cpu_residual_backward,
        .dropout_forward = kiln_cpu_dropout_forward,
        .dropout_backward = kiln_cpu_dropout_backward,
        .adamw_update = kiln_cpu_adamw_update,
        .sgd_update = kiln_cpu_sgd_update,
        .sum_squares = kiln_cpu_sum_squares,
        .scale = kiln_cpu_scale,
        .zero = kiln_cpu_zero,
        .axpy = kiln_cpu_axpy,
        .cast_from_f32 = cpu_cast_from_f32,
        .row_sq_norms = kiln_cpu_row_sq_norms,
    },
};

const kiln_backend *kiln_backend_cpu(void) { return &cpu_backend; }
