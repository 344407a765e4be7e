/* Global gradient norm and clipping factor. The norm accumulates in double so that it does
 * not depend on how the buffer is split into ranges (or, later, across ranks). */
#include <math.h>
#include "kiln/optim.h"

double kiln_grad_global_norm(const kiln_backend *be, const float *grads, size_t n)
{
    return sqrt(be->ops.sum_squares(grads, n, be->stream));
}

float kiln_clip_factor(double norm, double max_norm)
{
    if (max_norm <= 0.0 || !(norm > max_norm)) return 1.0f;
    return (float)(max_norm / (norm + 1e-6));
}
