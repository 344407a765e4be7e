/* Fused softmax + cross-entropy on the CPU: one pass over the logits gives both the saved
 * probabilities and the loss, and backward needs only those probabilities. */
#include <math.h>
#include "cpu_ops.h"

void kiln_cpu_softmax_xent_forward(float *losses, float *probs, const float *logits,
                                   const int32_t *targets, int N, int V, void *stream)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
        for (int i = 0; i < V; i++)
            maxv = z[i] > maxv ? z[i] : maxv;
#pragma omp simd
        for (int i = 0; i < V; i++)
            p[i] = kiln_cpu_expf(z[i] - maxv);
        /* The normaliser is summed in double (V reaches 50k terms in a language model), in
         * its own loop: fused with the exps, GCC 12 vectorises neither. */
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++)
            sum += p[i];
        float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int i = 0; i < V; i++)
            p[i] *= inv;
        int32_t target = targets[n];
        /* log-sum-exp form: exact where probs[target] would underflow to 0. */
        losses[n] = target < 0 ? 0.0f : (float)(log(sum) - (z[target] - maxv));
    }
}

void kiln_cpu_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets,
                                    float scale, int N, int V, void *stream)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        int32_t target = targets[n];
        if (target < 0)
            continue;
        const float *p = probs + (size_t)n * V;
        float *dz = dlogits + (size_t)n * V;
#pragma omp simd
        for (int i = 0; i < V; i++)
            dz[i] += scale * (p[i] - (i == target ? 1.0f : 0.0f));
    }
}
