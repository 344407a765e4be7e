/* Shared by the GPU tests: the CUDA backend or a skip (exit 77, which ctest shows as skipped)
 * with the reason, device copies of host arrays in a backend's storage type (bf16 for the bf16
 * backend, through the conversions of src/core/bf16.h that the kernels use), and comparisons
 * of a CUDA result with its CPU twin. Tolerances are relative to the reference's scale:
 * |got - want| <= rtol (|want| + frac max|want|), so values near zero in a sum of many terms
 * are judged against the terms: frac 1/10 for fp32; 1 for bf16, whose rounding errors (2^-9
 * of every stored value) grow with the terms of each sum, not with its result. */
#ifndef KILN_TEST_GPU_COMMON_H
#define KILN_TEST_GPU_COMMON_H
#include "ops_ref.h"
#include "../../src/core/bf16.h"

#define GPU_SKIP 77

/* The CUDA backend in precision ("fp32", "bf16"); exit GPU_SKIP only when the node has no GPU.
 * With a GPU present, a backend that cannot start on it (a missing op, a driver or kernel
 * failure) is a failure of the test, not a skip. */
static const kiln_backend *gpu_backend_or_skip(const char *precision)
{
    if (kiln_gpus_present() == 0) {
        printf("SKIP: no GPU to test on (the NVIDIA driver shows none)\n");
        exit(GPU_SKIP);
    }
    const kiln_backend *be = NULL;
    kiln_status st = kiln_backend_select("cuda", precision, -1, &be);
    if (st == KILN_OK) return be;
    printf("FAIL: this node has %d GPU(s), but the CUDA backend (%s) does not start: %s\n",
           kiln_gpus_present(), precision, kiln_error_message());
    exit(1);
}

static int is_bf16(const kiln_backend *be) { return be->precision == KILN_PRECISION_BF16; }

/* x rounded to what the backend stores, in place (a no-op for fp32): both twins then start
 * from the same values and a comparison measures the op, not the rounding of its inputs. */
static void round_to_storage(const kiln_backend *be, float *x, size_t n)
{
    if (!is_bf16(be)) return;
    for (size_t i = 0; i < n; i++) x[i] = kiln_bf16_to_f32(kiln_bf16_from_f32(x[i]));
}

/* n host floats into device buffer d, as fp32 (f32 = 1) or the backend's storage type. */
static void upload_as(const kiln_backend *be, float *d, const float *host, size_t n, int f32)
{
    if (!n) return;
    if (f32 || !is_bf16(be)) {
        be->copy_to_device(d, host, n * sizeof(float), be->stream);
        return;
    }
    kiln_bf16 *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) b[i] = kiln_bf16_from_f32(host[i]);
    be->copy_to_device(d, b, n * sizeof *b, be->stream);
    free(b);
}

/* The same into a new device buffer. */
static float *dev_copy_as(const kiln_backend *be, const float *host, size_t n, int f32)
{
    size_t elem = f32 ? sizeof(float) : kiln_precision_bytes(be->precision);
    float *d = be->alloc((n ? n : 1) * elem);
    if (d) upload_as(be, d, host, n, f32);
    return d;
}

static float *dev_copy(const kiln_backend *be, const float *host, size_t n)
{
    return dev_copy_as(be, host, n, 1);
}

static int32_t *dev_copy_i32(const kiln_backend *be, const int32_t *host, size_t n)
{
    int32_t *d = be->alloc((n ? n : 1) * sizeof(int32_t));
    if (d && n) be->copy_to_device(d, host, n * sizeof(int32_t), be->stream);
    return d;
}

/* A device buffer (fp32, or the backend's storage type) read into a new host float array. */
static float *host_copy_as(const kiln_backend *be, const float *dev, size_t n, int f32)
{
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (!n) return h;
    if (f32 || !is_bf16(be)) {
        be->copy_to_host(h, dev, n * sizeof(float), be->stream);
        return h;
    }
    kiln_bf16 *b = malloc(n * sizeof *b);
    be->copy_to_host(b, dev, n * sizeof *b, be->stream);
    for (size_t i = 0; i < n; i++) h[i] = kiln_bf16_to_f32(b[i]);
    free(b);
    return h;
}

/* An fp32 device array read back into a new host array (and the device array freed). */
static float *host_copy_free(const kiln_backend *be, float *dev, size_t n)
{
    float *h = host_copy_as(be, dev, n, 1);
    be->free(dev);
    return h;
}

/* One CHECK per array: the CUDA result got against the CPU result want. */
static void check_twin_frac(const char *what, const float *got, const float *want, size_t n,
                            double rtol, double frac)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    double *w = to_double(want, n);
    check_array(what, got, w, n, rtol, rtol * frac * scale);
    free(w);
}

static void check_twin(const char *what, const float *got, const float *want, size_t n,
                       double rtol)
{
    check_twin_frac(what, got, want, n, rtol, 0.1);
}

#endif
