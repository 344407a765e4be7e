/* The CUDA backend's host side: picking the device, the stream and cuBLAS handles, device
 * memory and copies, the first-failure record that synchronize reports, and the two ops
 * tables, one per storage type (fp32; bf16, train.precision=bf16), filled from the kernels/
 * .cu files. */
#include <stdio.h>
#include <string.h>
#include "cuda_backend.h"
#include "cuda_ops.h"
#include "kiln/log.h"
#include "kiln/slurm.h"

enum { LT_WORKSPACE_BYTES = 32 << 20, MIN_ALLOC = 256 };

static kiln_cuda_ctx ctx;
static int ctx_ready;
static void *scratch;
static size_t scratch_bytes;
static struct {
    kiln_status code;
    char message[1024];
} first_failure;

const kiln_cuda_ctx *kiln_cuda_context(void) { return &ctx; }
cudaStream_t kiln_cuda_compute_stream(void) { return ctx_ready ? ctx.stream : NULL; }

void kiln_cuda_failed(const char *file, int line, const char *what, const char *detail)
{
    if (first_failure.code != KILN_OK) return; /* later failures are usually its echoes */
    first_failure.code = KILN_ERR_DEVICE;
    snprintf(first_failure.message, sizeof first_failure.message, "%s failed: %s (at %s:%d)",
             what, detail, file, line);
}

int kiln_cuda_check_rt(cudaError_t err, const char *file, int line, const char *what)
{
    if (err == cudaSuccess) return 0;
    kiln_cuda_failed(file, line, what, cudaGetErrorString(err));
    return 1;
}

int kiln_cuda_check_blas(cublasStatus_t st, const char *file, int line, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS) return 0;
    kiln_cuda_failed(file, line, what, cublasGetStatusString(st));
    return 1;
}

void *kiln_cuda_scratch(size_t bytes)
{
    if (bytes <= scratch_bytes) return scratch;
    size_t want = bytes > 2 * scratch_bytes ? bytes : 2 * scratch_bytes;
    if (scratch) { /* queued kernels may still read the old arena */
        if (KILN_CUDA_TRY(cudaDeviceSynchronize())) return NULL;
        KILN_CUDA_TRY(cudaFree(scratch));
    }
    scratch = NULL;
    scratch_bytes = 0;
    if (KILN_CUDA_TRY(cudaMalloc(&scratch, want))) {
        scratch = NULL;
        return NULL;
    }
    scratch_bytes = want;
    return scratch;
}

int kiln_cuda_is_device_pointer(const void *p)
{
    struct cudaPointerAttributes a;
    if (p == NULL || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* an unknown host pointer is not an error worth keeping */
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* --- memory: zero-filled allocations, copies that are done with the host buffer on return */

static void *cuda_alloc(size_t bytes)
{
    void *p = NULL;
    size_t n = bytes < MIN_ALLOC ? MIN_ALLOC : bytes;
    if (KILN_CUDA_TRY(cudaMalloc(&p, n))) return NULL;
    if (KILN_CUDA_TRY(cudaMemsetAsync(p, 0, n, ctx.stream)) ||
        KILN_CUDA_TRY(cudaStreamSynchronize(ctx.stream))) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_free(void *p)
{
    if (p) KILN_CUDA_TRY(cudaFree(p));
}

static void cuda_copy(void *dst, const void *src, size_t bytes, void *stream)
{
    if (bytes == 0 || dst == src) return;
    cudaStream_t s = (cudaStream_t)stream;
    if (!KILN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s)))
        KILN_CUDA_TRY(cudaStreamSynchronize(s));
}

static kiln_status cuda_synchronize(void *stream)
{
    KILN_CUDA_TRY(cudaStreamSynchronize((cudaStream_t)stream));
    if (first_failure.code == KILN_OK) return KILN_OK;
    kiln_status code = first_failure.code;
    first_failure.code = KILN_OK;
    return KILN_ERROR(code, "CUDA backend: %s", first_failure.message);
}

#define CUDA_MEMORY                                                                        \
    .alloc = cuda_alloc, .free = cuda_free, .copy_to_device = cuda_copy,                  \
    .copy_to_host = cuda_copy, .synchronize = cuda_synchronize

static kiln_backend cuda_fp32 = {
    .name = "cuda",
    .kind = KILN_DEVICE_CUDA,
    .precision = KILN_PRECISION_FP32,
    CUDA_MEMORY,
};

static kiln_backend cuda_bf16 = {
    .name = "cuda",
    .kind = KILN_DEVICE_CUDA,
    .precision = KILN_PRECISION_BF16,
    CUDA_MEMORY,
};

/* Each table gets every kernels/ file's ops for its storage type (backend.c then checks that
 * no slot is left empty). */
static void fill_ops(kiln_backend *be)
{
    void (*const fillers[])(kiln_ops *, kiln_precision) = {
        kiln_cuda_gemm_ops, kiln_cuda_attention_ops, kiln_cuda_norm_ops,
        kiln_cuda_embedding_ops, kiln_cuda_xent_ops, kiln_cuda_pointwise_ops,
        kiln_cuda_optim_ops,
    };
    for (size_t i = 0; i < sizeof fillers / sizeof fillers[0]; i++)
        fillers[i](&be->ops, be->precision);
}

/* --- the device: chosen once per process */

static kiln_status pick_device(int gpu, int *device)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        const char *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device is visible";
        cudaGetLastError();
        return KILN_ERROR(KILN_ERR_DEVICE,
                          "backend \"cuda\": no usable GPU (cudaGetDeviceCount: %s); use "
                          "backend.name=cpu", why);
    }
    if (gpu >= n)
        return KILN_ERROR(KILN_ERR_DEVICE,
                          "backend \"cuda\": placement chose GPU %d but only %d are visible "
                          "(CUDA_VISIBLE_DEVICES?)", gpu, n);
    if (gpu < 0) { /* hwloc saw no CUDA GPU: ranks of a node take the devices in turn */
        int local_rank, local_size;
        kiln_local_rank(&local_rank, &local_size);
        gpu = local_rank % n;
    }
    *device = gpu;
    return KILN_OK;
}

static kiln_status cuda_init(int gpu)
{
    KILN_CHECK(pick_device(gpu, &ctx.device));
    KILN_CUDA_CHECK(cudaSetDevice(ctx.device));
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
    cublasStatus_t st = cublasCreate(&ctx.blas);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(ctx.blas, ctx.stream);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtCreate(&ctx.lt);
    if (st != CUBLAS_STATUS_SUCCESS)
        return KILN_ERROR(KILN_ERR_DEVICE, "cuBLAS setup failed: %s", cublasGetStatusString(st));
    ctx.lt_workspace_bytes = LT_WORKSPACE_BYTES;
    KILN_CUDA_CHECK(cudaMalloc(&ctx.lt_workspace, ctx.lt_workspace_bytes));
    struct cudaDeviceProp prop;
    KILN_CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx.device));
    kiln_info("cuda: device %d, %s (sm_%d%d, %.1f GiB)", ctx.device, prop.name, prop.major,
              prop.minor, (double)prop.totalGlobalMem / (1u << 30));
    cuda_fp32.stream = ctx.stream;
    cuda_bf16.stream = ctx.stream;
    fill_ops(&cuda_fp32);
    fill_ops(&cuda_bf16);
    ctx_ready = 1;
    return KILN_OK;
}

kiln_status kiln_cuda_backend(kiln_precision prec, int gpu, const kiln_backend **out)
{
    if (!ctx_ready) {
        KILN_CHECK(cuda_init(gpu));
    } else if (gpu >= 0 && gpu != ctx.device) {
        return KILN_ERROR(KILN_ERR_DEVICE, "backend \"cuda\" already runs on GPU %d in this "
                          "process; one process uses one GPU (asked for GPU %d)", ctx.device, gpu);
    }
    *out = prec == KILN_PRECISION_BF16 ? &cuda_bf16 : &cuda_fp32;
    return KILN_OK;
}
