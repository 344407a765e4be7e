/* Causal multi-head self-attention on the CPU (GPT-2 / llm.c formulation).
 *
 * Per (batch, head), with q, k, v the head's (T, hs) slices of qkv and P = att:
 *   P = causal_softmax(q k^T / sqrt(hs)),  out = P v;
 *   dP = dout v^T,  dS = P * (dP - rowsum(P * dP)) / sqrt(hs),
 *   dq += dS k,  dk += dS^T q,  dv += P^T dout.
 * Every product is one of three lower-triangular matrix kernels below. (b, h) pairs touch
 * disjoint slices of out and dqkv, so they are the parallel loop, and each kernel runs on one
 * thread. The kernels are plain vectorisable loops rather than sgemm per head: Debian's
 * default OpenBLAS is the pthread build, and sgemm called from inside an OpenMP loop starts
 * its own threads under every OpenMP thread (measured 20x slower here). */
#include <math.h>
#include <string.h>
#include "cpu_ops.h"

/* Columns per pass of the kernels: 64 floats are 8 AVX2 (4 AVX-512) accumulators per row,
 * enough independent FMA chains to hide their latency. The width is a compile-time constant
 * so the accumulators can live in registers; a narrower tail is a second call. */
enum { TILE = 64 };

/* S[t][j] = alpha * a_t . b_j for j <= t (rows t of A and B, hs wide). Entries j > t inside a
 * diagonal tile are written too and left for the caller. The tile of B is transposed first
 * (hs * 256 bytes of stack: 16 KiB at hs = 64), so the inner loop runs along keys and needs
 * no horizontal sums. */
static void lower_abt(float *S, const float *A, size_t lda, const float *B, size_t ldb, int T,
                      int hs, float alpha)
{
    float bt[hs][TILE];
    for (int j0 = 0; j0 < T; j0 += TILE) {
        int nj = T - j0 < TILE ? T - j0 : TILE;
        for (int d = 0; d < hs; d++)
            for (int jj = 0; jj < TILE; jj++)
                bt[d][jj] = jj < nj ? B[(size_t)(j0 + jj) * ldb + d] : 0.0f;
        for (int t = j0; t < T; t++) {
            const float *a = A + (size_t)t * lda;
            float acc[TILE] = {0};
            for (int d = 0; d < hs; d++)
#pragma omp simd
                for (int jj = 0; jj < TILE; jj++)
                    acc[jj] += a[d] * bt[d][jj];
            for (int jj = 0; jj < nj; jj++)
                S[(size_t)t * T + j0 + jj] = alpha * acc[jj];
        }
    }
}

/* o_r[0..width) += sum_{j < n} w_r[j * ws] * b_j[0..width) for r < rows, rows 1 or 2 (the
 * second output row shares every load of b_j; with rows 1, o1 and w1 are not touched).
 * Inlined with constant rows and width. */
static inline void weighted_rows(int rows, int width, float *o0, float *o1, const float *w0,
                                 const float *w1, size_t ws, const float *B, size_t ldb, int n)
{
    float acc0[TILE] = {0}, acc1[TILE] = {0};
    for (int j = 0; j < n; j++) {
        float a0 = w0[(size_t)j * ws], a1 = rows == 2 ? w1[(size_t)j * ws] : 0.0f;
        const float *b = B + (size_t)j * ldb;
#pragma omp simd
        for (int d = 0; d < width; d++) {
            acc0[d] += a0 * b[d];
            acc1[d] += a1 * b[d];
        }
    }
    for (int d = 0; d < width; d++) {
        o0[d] += acc0[d];
        if (rows == 2)
            o1[d] += acc1[d];
    }
}

/* weighted_rows over the hs columns, TILE at a time. */
static inline void weighted_rows_hs(int rows, int hs, float *o0, float *o1, const float *w0,
                                    const float *w1, size_t ws, const float *B, size_t ldb,
                                    int n)
{
    int d0 = 0;
    for (; d0 + TILE <= hs; d0 += TILE)
        weighted_rows(rows, TILE, o0 + d0, o1 + d0, w0, w1, ws, B + d0, ldb, n);
    if (d0 < hs)
        weighted_rows(rows, hs - d0, o0 + d0, o1 + d0, w0, w1, ws, B + d0, ldb, n);
}

/* O_t += sum_{j <= t} S[t][j] b_j for lower-triangular S (exact zeros above the diagonal,
 * which lets rows t and t+1 share the keys 0..t+1). */
static void lower_sb(float *O, size_t ldo, const float *S, const float *B, size_t ldb, int T,
                     int hs)
{
    int t = 0;
    for (; t + 1 < T; t += 2)
        weighted_rows_hs(2, hs, O + (size_t)t * ldo, O + (size_t)(t + 1) * ldo,
                         S + (size_t)t * T, S + (size_t)(t + 1) * T, 1, B, ldb, t + 2);
    if (t < T)
        weighted_rows_hs(1, hs, O + (size_t)t * ldo, O + (size_t)t * ldo, S + (size_t)t * T,
                         S + (size_t)t * T, 1, B, ldb, t + 1);
}

/* O_j += sum_{t >= j} S[t][j] a_t for lower-triangular S (zeros above the diagonal, which
 * lets columns j and j+1 share the rows j..T-1). */
static void lower_stb(float *O, size_t ldo, const float *S, const float *A, size_t lda, int T,
                      int hs)
{
    int j = 0;
    for (; j + 1 < T; j += 2)
        weighted_rows_hs(2, hs, O + (size_t)j * ldo, O + (size_t)(j + 1) * ldo,
                         S + (size_t)j * T + j, S + (size_t)j * T + j + 1, T,
                         A + (size_t)j * lda, lda, T - j);
    if (j < T)
        weighted_rows_hs(1, hs, O + (size_t)j * ldo, O + (size_t)j * ldo, S + (size_t)j * T + j,
                         S + (size_t)j * T + j, T, A + (size_t)j * lda, lda, T - j);
}

/* Row t of P from its scores: softmax over keys 0..t, exact zeros after. */
static void causal_softmax(float *P, int T)
{
    for (int t = 0; t < T; t++) {
        float *p = P + (size_t)t * T, maxv = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : maxv)
        for (int j = 0; j <= t; j++)
            maxv = p[j] > maxv ? p[j] : maxv;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j <= t; j++) {
            p[j] = kiln_cpu_expf(p[j] - maxv);
            sum += p[j];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j <= t; j++)
            p[j] *= inv;
        memset(p + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
    }
}

void kiln_cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                int NH, void *stream)
{
    int hs = C / NH;
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *k = q + C, *v = q + 2 * C;
            float *P = att + ((size_t)b * NH + h) * T * T;
            float *o = out + (size_t)b * T * C + (size_t)h * hs;
            lower_abt(P, q, C3, k, C3, T, hs, 1.0f / sqrtf((float)hs));
            causal_softmax(P, T);
            for (int t = 0; t < T; t++)
                memset(o + (size_t)t * C, 0, (size_t)hs * sizeof(float));
            lower_sb(o, C, P, v, C3, T, hs);
        }
}

/* dS = P * (dP - rowsum(P * dP)) * scale in place over dP, zeros above the diagonal. */
static void softmax_backward(float *dS, const float *P, int T, float scale)
{
    for (int t = 0; t < T; t++) {
        const float *p = P + (size_t)t * T;
        float *ds = dS + (size_t)t * T, pdp = 0.0f;
#pragma omp simd reduction(+ : pdp)
        for (int j = 0; j <= t; j++)
            pdp += p[j] * ds[j];
#pragma omp simd
        for (int j = 0; j <= t; j++)
            ds[j] = p[j] * (ds[j] - pdp) * scale;
        memset(ds + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
    }
}

void kiln_cpu_attention_backward(float *dqkv, float *scratch, const float *dout,
                                 const float *qkv, const float *att, int B, int T, int C, int NH,
                                 void *stream)
{
    int hs = C / NH;
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t off = (size_t)b * T * C3 + (size_t)h * hs;
            const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
            const float *P = att + ((size_t)b * NH + h) * T * T;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * hs;
            float *dS = scratch + ((size_t)b * NH + h) * T * T;
            lower_abt(dS, dy, C, v, C3, T, hs, 1.0f); /* dP */
            softmax_backward(dS, P, T, 1.0f / sqrtf((float)hs));
            lower_sb(dq, C3, dS, k, C3, T, hs);
            lower_stb(dk, C3, dS, q, C3, T, hs);
            lower_stb(dv, C3, P, dy, C, T, hs);
        }
}
