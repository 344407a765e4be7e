/* Token + position embedding on the CPU: out[b,t] = wte[tokens[b,t]] + wpe[t]. */
#include "cpu_ops.h"

void kiln_cpu_embedding_forward(float *out, const int32_t *tokens, const float *wte,
                                const float *wpe, int B, int T, int C, void *stream)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            const float *tok = wte + (size_t)tokens[bt] * C, *pos = wpe + (size_t)t * C;
            float *y = out + bt * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                y[c] = tok[c] + pos[c];
        }
}

/* A token can repeat anywhere in the batch, so rows of dwte are not owned by one (b,t);
 * each thread takes a slice of channels instead and walks every (b,t) in order. */
void kiln_cpu_embedding_backward(float *dwte, float *dwpe, const float *dout,
                                 const int32_t *tokens, int B, int T, int C, int V,
                                 void *stream)
{
#pragma omp parallel
    {
        int lo, hi;
        kiln_cpu_thread_slice(C, &lo, &hi);
        for (size_t bt = 0; bt < (size_t)B * T; bt++) {
            const float *dy = dout + bt * C;
            float *dtok = dwte + (size_t)tokens[bt] * C, *dpos = dwpe + (bt % T) * C;
#pragma omp simd
            for (int c = lo; c < hi; c++) {
                dtok[c] += dy[c];
                dpos[c] += dy[c];
            }
        }
    }
}
