/* The per-element optimizer updates as inline code that compiles for both the CPU
 * (src/device/cpu_optim.c) and CUDA kernels (kernels/optim.cu): one formula, in one order of
 * operations, for every backend. The loops around them (threads, vectors, grids, storage
 * types) stay with each backend. */
#ifndef KILN_OPTIM_UPDATE_RULES_H
#define KILN_OPTIM_UPDATE_RULES_H
#include <math.h>
#include "../core/host_device.h"

/* AdamW's constants for one step. The bias corrections are factors computed once per step
 * (in double, then rounded), so an element costs one divide and one square root instead of
 * three divides: divides, not memory, bound this loop on the CPU. */
typedef struct kiln_adamw_step {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    float inv_bc1, inv_sqrt_bc2; /* 1 / (1 - beta1^t), 1 / sqrt(1 - beta2^t) */
} kiln_adamw_step;

/* The constants of 1-based step t (host code). */
static inline kiln_adamw_step kiln_adamw_step_at(float lr, float beta1, float beta2, float eps,
                                                 float weight_decay, float grad_scale, int t)
{
    kiln_adamw_step s = {lr, beta1, beta2, eps, weight_decay, grad_scale,
                         (float)(1.0 / (1.0 - pow(beta1, t))),
                         (float)(1.0 / sqrt(1.0 - pow(beta2, t)))};
    return s;
}

/* Loshchilov & Hutter's AdamW, as torch.optim.AdamW, on one parameter p with gradient grad
 * (grad_scale applied first): updates the moments *m and *v and returns the new parameter.
 * The decay term uses the parameter from before this step's update and is not scaled by the
 * bias corrections. */
static inline KILN_HOST_DEVICE float kiln_adamw_update_one(float p, float grad, float *m,
                                                           float *v, kiln_adamw_step s)
{
    float g = grad * s.grad_scale;
    float mi = s.beta1 * *m + (1.0f - s.beta1) * g;
    float vi = s.beta2 * *v + (1.0f - s.beta2) * g * g;
    *m = mi;
    *v = vi;
    float step = (mi * s.inv_bc1) / (sqrtf(vi) * s.inv_sqrt_bc2 + s.eps);
    return p - s.lr * (step + s.weight_decay * p);
}

/* SGD with momentum, PyTorch's convention, on one parameter: buf = momentum * buf +
 * grad_scale * grad + weight_decay * p; returns p - lr * buf. */
static inline KILN_HOST_DEVICE float kiln_sgd_update_one(float p, float grad, float *buf,
                                                         float lr, float momentum,
                                                         float weight_decay, float grad_scale)
{
    float b = momentum * *buf + grad * grad_scale + weight_decay * p;
    *buf = b;
    return p - lr * b;
}

#endif
