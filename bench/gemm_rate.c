/* The OpenBLAS SGEMM rate on exactly the GEMMs of one training step of the benchmark models:
 * the physical limit that bench/train_bench.sh holds kiln's and PyTorch's achieved GFLOP/s
 * against. Every linear layer issues the three calls of src/device/cpu_gemm.c (row-major):
 *   forward   out (N,OC)  = inp (N,C) @ W^T        sgemm(NoTrans, Trans)
 *   backward  dinp (N,C) += dout (N,OC) @ W (OC,C) sgemm(NoTrans, NoTrans)  (not for the input layer)
 *             dW (OC,C)  += dout^T @ inp           sgemm(Trans, NoTrans)
 * Each layer has its own buffers, as in training, so no layer finds another's operands in cache.
 * --forward times the forward GEMMs alone: the limit of inference (bench/infer_bench.sh).
 * --workers N runs N single-threaded copies at once, each with its own buffers, and reports
 * their summed rate: the limit of work split by rows across independent threads, as kiln
 * infer splits a chunk's forward batches (one GEMM on N threads is the --threads N figure).
 * Prints one JSON object on stdout. */
#include <omp.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kiln/runtime.h"

#define MAX_LINEARS 256
#define WARMUP_PASSES 3
#define MAX_WORKERS 64

typedef struct linear_gemms {
    int N, C, OC, has_dinp;                 /* rows, in features, out features */
    float *inp, *w, *out, *dout, *dinp, *dw;
} linear_gemms;

typedef struct model_gemms {
    const char *name, *unit;                /* "mlp" / "sample", "gpt" / "token" */
    double units_per_pass;                  /* samples or tokens in one step */
    int n;
    linear_gemms lin[MAX_LINEARS];
} model_gemms;

static int forward_only; /* --forward: no backward GEMMs */

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "kiln_bench_gemm: %s%s\n"
            "usage: kiln_bench_gemm [--threads N] [--seconds S] [--mlp B,IN,H1,...,OUT] "
            "[--gpt B,L,C,T,V] [--forward] [--workers N]\n"
            "  defaults: --mlp 128,784,512,512,10  --gpt 16,4,256,128,256\n", msg, arg);
    exit(2);
}

/* Comma-separated positive ints into out[]; returns how many. */
static int parse_ints(const char *s, int *out, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > (1L << 24) || n == max || (*end && *end != ','))
            die("expected comma-separated positive integers, found ", s);
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

static float *alloc_filled(size_t n, unsigned *seed)
{
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    if (!p) die("out of memory", "");
    /* small values keep the accumulating outputs far from overflow and denormals */
    for (size_t i = 0; i < n; i++) p[i] = (float)(rand_r(seed) % 2001 - 1000) * 1e-6f;
    return p;
}

static void add_linear(model_gemms *m, int N, int C, int OC, int has_dinp)
{
    if (m->n == MAX_LINEARS) die("too many layers", "");
    unsigned seed = (unsigned)m->n + 1u;
    linear_gemms *l = &m->lin[m->n++];
    *l = (linear_gemms){.N = N, .C = C, .OC = OC, .has_dinp = has_dinp};
    l->inp = alloc_filled((size_t)N * C, &seed);
    l->w = alloc_filled((size_t)OC * C, &seed);
    l->out = alloc_filled((size_t)N * OC, &seed);
    l->dout = alloc_filled((size_t)N * OC, &seed);
    l->dinp = has_dinp ? alloc_filled((size_t)N * C, &seed) : NULL;
    l->dw = alloc_filled((size_t)OC * C, &seed);
}

static void free_model(model_gemms *m)
{
    for (int i = 0; i < m->n; i++) {
        linear_gemms *l = &m->lin[i];
        free(l->inp), free(l->w), free(l->out), free(l->dout), free(l->dinp), free(l->dw);
    }
}

/* The MLP's layers, no input gradient for the first (it would be the gradient of the pixels). */
static void build_mlp(model_gemms *m, const int *v, int n)
{
    if (n < 3) die("--mlp needs B and at least two widths", "");
    m->name = "mlp", m->unit = "sample", m->units_per_pass = v[0];
    for (int i = 1; i + 1 < n; i++) add_linear(m, v[0], v[i], v[i + 1], i > 1);
}

/* Per block qkv, attention projection, fc, fc projection on B*T rows; then the tied LM head. */
static void build_gpt(model_gemms *m, const int *v, int n)
{
    if (n != 5) die("--gpt needs B,L,C,T,V", "");
    int B = v[0], L = v[1], C = v[2], T = v[3], V = v[4], BT = B * T;
    m->name = "gpt", m->unit = "token", m->units_per_pass = (double)BT;
    for (int l = 0; l < L; l++) {
        add_linear(m, BT, C, 3 * C, 1);
        add_linear(m, BT, C, C, 1);
        add_linear(m, BT, C, 4 * C, 1);
        add_linear(m, BT, 4 * C, C, 1);
    }
    add_linear(m, BT, C, V, 1);
}

/* FLOPs and sgemm calls of one step. */
static double pass_flops(const model_gemms *m, int *calls)
{
    double f = 0.0;
    *calls = 0;
    for (int i = 0; i < m->n; i++) {
        const linear_gemms *l = &m->lin[i];
        int gemms = forward_only ? 1 : 2 + l->has_dinp;
        *calls += gemms;
        f += 2.0 * l->N * l->C * l->OC * gemms;
    }
    return f;
}

/* One training step's GEMMs: all forwards in layer order, then the backwards in reverse. */
static void run_pass(model_gemms *m)
{
    for (int i = 0; i < m->n; i++) {
        linear_gemms *l = &m->lin[i];
        /* beta = 1 as in kiln, where the output rows are pre-filled with the bias */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->N, l->OC, l->C, 1.0f, l->inp,
                    l->C, l->w, l->C, 1.0f, l->out, l->OC);
    }
    for (int i = m->n - 1; i >= 0 && !forward_only; i--) {
        linear_gemms *l = &m->lin[i];
        if (l->has_dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->N, l->C, l->OC, 1.0f,
                        l->dout, l->OC, l->w, l->C, 1.0f, l->dinp, l->C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->OC, l->C, l->N, 1.0f, l->dout,
                    l->OC, l->inp, l->C, 1.0f, l->dw, l->C);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Passes of m for at least `seconds`; returns how many, and the time they took in *t. */
static long timed_passes(model_gemms *m, double seconds, double *t)
{
    for (int i = 0; i < WARMUP_PASSES; i++) run_pass(m);
    long passes = 0;
    double t0 = now_s();
    do {
        run_pass(m);
        passes++;
    } while ((*t = now_s() - t0) < seconds);
    return passes;
}

/* copies[0..workers) are the same model, each with its own buffers. With workers > 1 each
 * runs on its own thread of one parallel region, where OpenBLAS's OpenMP build runs every
 * call on the calling thread alone; the rate is the sum of the copies' rates. */
static void measure_and_print(model_gemms *copies, int workers, double seconds, int last)
{
    long passes = 0;
    double rate = 0.0, t = 0.0;
    int calls;
    double f = pass_flops(&copies[0], &calls);
    if (workers <= 1) {
        passes = timed_passes(&copies[0], seconds, &t);
        rate = f * (double)passes / t;
    } else {
#pragma omp parallel num_threads(workers) reduction(+ : passes, rate) reduction(max : t)
        {
            double mine_t;
            long mine = timed_passes(&copies[omp_get_thread_num()], seconds, &mine_t);
            passes += mine;
            rate += f * (double)mine / mine_t;
            t = mine_t;
        }
    }
    const model_gemms *m = &copies[0];
    printf("    \"%s\": {\"gemm_calls_per_step\": %d, \"units_per_step\": %.0f, "
           "\"flops_per_%s\": %.1f, \"steps\": %ld, \"seconds\": %.3f, \"gflops\": %.2f}%s\n",
           m->name, calls, m->units_per_pass, m->unit, f / m->units_per_pass, passes, t,
           rate * 1e-9, last ? "" : ",");
}

int main(int argc, char **argv)
{
    int threads = 0, workers = 1, mlp[64], gpt[8], n_mlp, n_gpt;
    double seconds = 1.0;
    const char *mlp_arg = "128,784,512,512,10", *gpt_arg = "16,4,256,128,256";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--forward")) {
            forward_only = 1;
            continue;
        }
        if (i + 1 == argc) die("missing value after ", argv[i]);
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers")) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--mlp")) mlp_arg = argv[++i];
        else if (!strcmp(argv[i], "--gpt")) gpt_arg = argv[++i];
        else die("unknown argument ", argv[i]);
    }
    if (threads < 0 || !(seconds > 0.0)) die("--threads must be >= 0 and --seconds > 0", "");
    if (workers < 1 || workers > MAX_WORKERS) die("--workers must be in 1..64", "");
    n_mlp = parse_ints(mlp_arg, mlp, 64);
    n_gpt = parse_ints(gpt_arg, gpt, 8);

    static model_gemms models[2][MAX_WORKERS];
    for (int w = 0; w < workers; w++) {
        build_mlp(&models[0][w], mlp, n_mlp);
        build_gpt(&models[1][w], gpt, n_gpt);
    }
    int used = kiln_threads_set(workers > 1 ? workers : threads);
    printf("{\n  \"forward_only\": %s,\n  \"threads\": %d,\n  \"workers\": %d,\n  \"openblas\": \"%s\",\n  \"openblas_parallel\": \"%s\",\n"
           "  \"models\": {\n", forward_only ? "true" : "false", used, workers, openblas_get_config(),
           (const char *[]){"sequential", "pthread", "openmp"}[openblas_get_parallel() % 3]);
    for (int i = 0; i < 2; i++) {
        measure_and_print(models[i], workers, seconds, i == 1);
        for (int w = 0; w < workers; w++) free_model(&models[i][w]);
    }
    printf("  }\n}\n");
    return 0;
}
