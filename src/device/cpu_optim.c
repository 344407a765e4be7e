/* Optimizer updates and the gradient-norm reduction on the CPU, over a range of a flat
 * parameter buffer (ZeRO hands each rank its own shard). */
#include <math.h>
#include <string.h>
#include "cpu_ops.h"
#include "update_rules.h"

/* The per-element formulas are src/device/update_rules.h, shared with the CUDA kernels. The
 * CPU stores fp32, so a params_copy (never asked for by the models here) is a plain copy. */
static void copy_params(float *params_copy, const float *params, size_t n)
{
    if (params_copy && params_copy != params) memcpy(params_copy, params, n * sizeof *params);
}

void kiln_cpu_adamw_update(float *params, float *params_copy, float *m, float *v,
                           const float *grads, size_t n, float lr, float beta1, float beta2,
                           float eps, float weight_decay, float grad_scale, int t, void *stream)
{
    kiln_adamw_step s = kiln_adamw_step_at(lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    /* firstprivate: each thread's own copy of s cannot alias the arrays, so its fields stay in
     * registers for the whole loop */
#pragma omp parallel for simd schedule(static) firstprivate(s) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        params[i] = kiln_adamw_update_one(params[i], grads[i], &m[i], &v[i], s);
    copy_params(params_copy, params, n);
}

void kiln_cpu_sgd_update(float *params, float *params_copy, float *momentum_buf,
                         const float *grads, size_t n, float lr, float momentum,
                         float weight_decay, float grad_scale, void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        params[i] = kiln_sgd_update_one(params[i], grads[i], &momentum_buf[i], lr, momentum,
                                        weight_decay, grad_scale);
    copy_params(params_copy, params, n);
}

/* Fixed-size blocks are each summed alone and then added in index order, so the result is
 * bit-identical for any thread count (resumed runs must match uninterrupted ones). */
double kiln_cpu_sum_squares(const float *x, size_t n, void *stream)
{
    enum { BLOCK = 1 << 15 };
    size_t nblocks = (n + BLOCK - 1) / BLOCK;
    double total = 0.0;
#pragma omp parallel for ordered schedule(static, 1) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t lo = blk * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = lo; i < hi; i++)
            s += (double)x[i] * x[i];
#pragma omp ordered
        total += s;
    }
    return total;
}
