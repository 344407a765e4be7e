/* Optimizer updates and the gradient-norm reduction on the CPU, over a range of a flat
 * parameter buffer (ZeRO hands each rank its own shard). */
#include <math.h>
#include "cpu_ops.h"

/* Loshchilov & Hutter's AdamW, as torch.optim.AdamW: the decay term uses the parameter from
 * before this step's update, and is not scaled by the bias corrections. */
void kiln_cpu_adamw_update(float *params, float *m, float *v, const float *grads, size_t n,
                           float lr, float beta1, float beta2, float eps, float weight_decay,
                           float grad_scale, int t, void *stream)
{
    /* bias corrections as factors hoisted out of the loop: one divide and one square root per
     * element instead of three divides (divides, not memory, bound this loop) */
    float inv_bc1 = (float)(1.0 / (1.0 - pow(beta1, t)));
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(beta2, t)));
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float step = (mi * inv_bc1) / (sqrtf(vi) * inv_sqrt_bc2 + eps);
        params[i] -= lr * (step + weight_decay * params[i]);
    }
}

void kiln_cpu_sgd_update(float *params, float *momentum_buf, const float *grads, size_t n,
                         float lr, float momentum, float weight_decay, float grad_scale,
                         void *stream)
{
#pragma omp parallel for simd schedule(static) if (parallel: n >= KILN_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float buf = momentum * momentum_buf[i] + grads[i] * grad_scale + weight_decay * params[i];
        momentum_buf[i] = buf;
        params[i] -= lr * buf;
    }
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
