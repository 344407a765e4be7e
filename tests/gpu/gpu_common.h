/* Shared by the GPU tests: the CUDA backend or a skip (exit 77, which ctest shows as skipped)
 * with the reason, device copies of host arrays, and comparisons of a CUDA result with its
 * CPU twin. Tolerances are relative to the reference's scale: |got - want| <= rtol (|want| +
 * frac max|want|), so values near zero in a sum of many terms are judged against the terms:
 * frac 1/10 for fp32; 1 for bf16, whose rounding errors (2^-9 of every operand) grow with the
 * terms of each sum, not with its result. */
#ifndef KILN_TEST_GPU_COMMON_H
#define KILN_TEST_GPU_COMMON_H
#include "ops_ref.h"

#define GPU_SKIP 77

/* The CUDA backend in precision ("fp32", "bf16"), or exit GPU_SKIP saying why there is none. */
static const kiln_backend *gpu_backend_or_skip(const char *precision)
{
    const kiln_backend *be = NULL;
    kiln_status st = kiln_backend_select("cuda", precision, -1, &be);
    if (st == KILN_OK) return be;
    printf("SKIP: no GPU to test on: %s\n", kiln_error_message());
    exit(GPU_SKIP);
}

static float *dev_copy(const kiln_backend *be, const float *host, size_t n)
{
    float *d = be->alloc((n ? n : 1) * sizeof(float));
    if (d && n) be->copy_to_device(d, host, n * sizeof(float), be->stream);
    return d;
}

static int32_t *dev_copy_i32(const kiln_backend *be, const int32_t *host, size_t n)
{
    int32_t *d = be->alloc((n ? n : 1) * sizeof(int32_t));
    if (d && n) be->copy_to_device(d, host, n * sizeof(int32_t), be->stream);
    return d;
}

/* A device array read back into a new host array (and the device array freed). */
static float *host_copy_free(const kiln_backend *be, float *dev, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (n) be->copy_to_host(h, dev, n * sizeof(float), be->stream);
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
