/* CPU backend, part 1: backend lookup and validation, memory, gemm, linear, the elementwise
 * ops (GELU, residual, dropout, scale/zero/axpy) and the optimizer updates, each against a
 * float64 reference; gradients by central differences (ops_ref.h). Part 2: test_ops_nn.c. */
#include "ops_ref.h"
#include "../../src/device/cpu_ops.h" /* white-box: the vectorisable exp behind the softmaxes */

static void test_backend_lookup(void)
{
    const kiln_backend *be = NULL;
    CHECK_OK(kiln_backend_get("cpu", &be));
    CHECK(be == kiln_backend_cpu(), "kiln_backend_get(\"cpu\") is not kiln_backend_cpu()");
    CHECK(be && be->kind == KILN_DEVICE_CPU && strcmp(be->name, "cpu") == 0 && !be->stream,
          "cpu backend has the wrong name, kind or stream");
    CHECK_OK(kiln_backend_validate(kiln_backend_cpu()));
#ifndef KILN_HAVE_CUDA
    CHECK_FAILS(kiln_backend_get("cuda", &be), KILN_ERR_UNSUPPORTED, "no CUDA backend");
#else
    /* built with CUDA: either a GPU is there, or the error says there is no usable one */
    kiln_status cuda_st = kiln_backend_get("cuda", &be);
    if (cuda_st == KILN_OK)
        CHECK(be->kind == KILN_DEVICE_CUDA && be->precision == KILN_PRECISION_FP32 && be->stream,
              "cuda backend has the wrong kind, precision or no stream");
    else
        CHECK(cuda_st == KILN_ERR_DEVICE && strstr(kiln_error_message(), "no usable GPU"),
              "cuda without a GPU: %s (%s)", kiln_status_name(cuda_st), kiln_error_message());
    kiln_error_clear();
#endif
    /* precision: bf16 is a CUDA-only choice, anything else a config error */
    CHECK_OK(kiln_backend_select("cpu", "fp32", -1, &be));
    CHECK(be == kiln_backend_cpu() && be->precision == KILN_PRECISION_FP32,
          "select(cpu, fp32) is not the CPU backend");
    CHECK_FAILS(kiln_backend_select("cpu", "bf16", -1, &be), KILN_ERR_CONFIG,
                "train.precision=bf16 needs backend.name=cuda");
    CHECK_FAILS(kiln_backend_select("cpu", "fp16", -1, &be), KILN_ERR_CONFIG,
                "train.precision must be fp32 or bf16, found 'fp16'");
    CHECK_FAILS(kiln_backend_get("tpu", &be), KILN_ERR_ARG, "unknown backend \"tpu\"");

    kiln_backend partial = *kiln_backend_cpu();
    partial.ops.attention_backward = NULL;
    CHECK_FAILS(kiln_backend_validate(&partial), KILN_ERR_UNSUPPORTED,
                "no method attention_backward for backend cpu");
    partial = *kiln_backend_cpu();
    partial.ops.axpy = NULL; /* the last slot: the walk covers the whole table */
    CHECK_FAILS(kiln_backend_validate(&partial), KILN_ERR_UNSUPPORTED,
                "no method axpy for backend cpu");
    partial = *kiln_backend_cpu();
    partial.copy_to_host = NULL;
    CHECK_FAILS(kiln_backend_validate(&partial), KILN_ERR_UNSUPPORTED,
                "no method copy_to_host for backend cpu");
}

static void test_memory(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    size_t sizes[] = {0, 1, 1000, 1 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        unsigned char *p = be->alloc(sizes[s]);
        CHECK(p != NULL && (uintptr_t)p % 64 == 0, "alloc(%zu) = %p: not 64-byte aligned",
              sizes[s], (void *)p);
        size_t nonzero = 0;
        for (size_t i = 0; p && i < sizes[s]; i++)
            nonzero += p[i] != 0;
        CHECK(nonzero == 0, "alloc(%zu): %zu bytes not zeroed", sizes[s], nonzero);
        be->free(p);
    }
    float host[37], back[37];
    fill_normal(host, 37, 1.0f);
    float *dev = be->alloc(sizeof host);
    be->copy_to_device(dev, host, sizeof host, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    be->copy_to_host(back, dev, sizeof host, be->stream);
    CHECK(memcmp(host, back, sizeof host) == 0, "copy to device and back changed the data");
    be->free(dev);
}

/* All four transpose combinations, with leading dimensions wider than the matrices: the
 * padding of C must stay untouched. */
static void check_gemm(int M, int N, int K, int ta, int tb)
{
    const int pad = 3;
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    float alpha = 0.7f, beta = -1.3f;
    float *A = new_normal((size_t)(ta ? K : M) * lda, 1.0f);
    float *B = new_normal((size_t)(tb ? N : K) * ldb, 1.0f);
    float *Cm = new_normal((size_t)M * ldc, 1.0f);
    double *want = to_double(Cm, (size_t)M * ldc);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                       (tb ? B[j * ldb + k] : B[k * ldb + j]);
            want[i * ldc + j] = alpha * acc + beta * want[i * ldc + j];
        }
    cpu_ops()->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc, NULL);
    char what[96];
    snprintf(what, sizeof what, "gemm %dx%dx%d trans_a=%d trans_b=%d", M, N, K, ta, tb);
    /* float accumulation over K: error grows ~ K eps |a||b| (observed 4e-5 at K = 300) */
    check_array(what, Cm, want, (size_t)M * ldc, 1e-5, 1e-6 * K);
    free(A);
    free(B);
    free(Cm);
    free(want);
}

static void test_gemm(void)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(7, 5, 9, ta, tb);
            check_gemm(130, 67, 300, ta, tb); /* past OpenBLAS's small-matrix path */
        }
}

typedef struct {
    int N, C, OC;
} linear_ctx;

/* theta = [inp (N,C), weight (OC,C), bias (OC)] */
static void linear_ref(const void *vctx, const double *theta, double *out)
{
    const linear_ctx *c = vctx;
    const double *inp = theta, *w = inp + c->N * c->C, *bias = w + c->OC * c->C;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double acc = bias[o];
            for (int i = 0; i < c->C; i++)
                acc += inp[n * c->C + i] * w[o * c->C + i];
            out[n * c->OC + o] = acc;
        }
}

static void linear_fwd(const void *vctx, const float *theta, float *out)
{
    const linear_ctx *c = vctx;
    const float *w = theta + c->N * c->C;
    cpu_ops()->linear_forward(out, theta, w, w + c->OC * c->C, c->N, c->C, c->OC, NULL);
}

static void linear_bwd(const void *vctx, const float *theta, const float *dout, float *grad)
{
    const linear_ctx *c = vctx;
    const float *w = theta + c->N * c->C;
    float *dw = grad + c->N * c->C;
    cpu_ops()->linear_backward(grad, dw, dw + c->OC * c->C, dout, theta, w, c->N, c->C, c->OC,
                               NULL);
}

static void test_linear(void)
{
    linear_ctx c = {.N = 6, .C = 5, .OC = 4};
    size_t ntheta = (size_t)c.N * c.C + (size_t)c.OC * c.C + c.OC;
    ops_case lc = {.name = "linear", .ctx = &c, .ntheta = ntheta, .nout = (size_t)c.N * c.OC,
                   .theta_std = 1.0f, .ref = linear_ref, .forward = linear_fwd,
                   .backward = linear_bwd, .fwd_rtol = 1e-5, .fwd_atol = 1e-5,
                   .grad_rtol = 1e-4, .grad_atol = 1e-5};
    check_ops_case(&lc);

    /* Without bias: out must not depend on what it held before (NaN here). Without dinp and
     * dbias: dweight is the same as with them. */
    float *theta = new_normal(ntheta, 1.0f), *dout = new_normal((size_t)c.N * c.OC, 1.0f);
    float *out = malloc((size_t)c.N * c.OC * sizeof(float));
    for (int i = 0; i < c.N * c.OC; i++)
        out[i] = NAN;
    double *theta_d = to_double(theta, ntheta), *want = malloc((size_t)c.N * c.OC * sizeof(double));
    memset(theta_d + ntheta - c.OC, 0, (size_t)c.OC * sizeof(double)); /* bias 0 */
    linear_ref(&c, theta_d, want);
    const float *w = theta + c.N * c.C;
    cpu_ops()->linear_forward(out, theta, w, NULL, c.N, c.C, c.OC, NULL);
    check_array("linear forward without bias", out, want, (size_t)c.N * c.OC, 1e-5, 1e-5);

    float *full = calloc(ntheta, sizeof(float)), *dw_only = calloc((size_t)c.OC * c.C, sizeof(float));
    linear_bwd(&c, theta, dout, full);
    cpu_ops()->linear_backward(NULL, dw_only, NULL, dout, theta, w, c.N, c.C, c.OC, NULL);
    CHECK(memcmp(dw_only, full + c.N * c.C, (size_t)c.OC * c.C * sizeof(float)) == 0,
          "linear backward with dinp = dbias = NULL gives a different dweight");
    free(theta);
    free(dout);
    free(out);
    free(theta_d);
    free(want);
    free(full);
    free(dw_only);
}

static double gelu_ref_scalar(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void gelu_ref(const void *vctx, const double *theta, double *out)
{
    for (size_t i = 0; i < *(const size_t *)vctx; i++)
        out[i] = gelu_ref_scalar(theta[i]);
}

static void gelu_fwd(const void *vctx, const float *theta, float *out)
{
    cpu_ops()->gelu_forward(out, theta, *(const size_t *)vctx, NULL);
}

static void gelu_bwd(const void *vctx, const float *theta, const float *dout, float *grad)
{
    cpu_ops()->gelu_backward(grad, theta, dout, *(const size_t *)vctx, NULL);
}

static void test_gelu(void)
{
    size_t n = 1000;
    /* std 3: the saturated tails (|x| > 5) are exercised too */
    ops_case gc = {.name = "gelu", .ctx = &n, .ntheta = n, .nout = n, .theta_std = 3.0f,
                   .ref = gelu_ref, .forward = gelu_fwd, .backward = gelu_bwd,
                   .fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-4, .grad_atol = 1e-6};
    check_ops_case(&gc);
    /* Values from torch.nn.functional.gelu(x, approximate="tanh") in float64. */
    CHECK_CLOSE(gelu_ref_scalar(1.0), 0.8411919906082768, 1e-15, 0, "gelu_ref(1)");
    CHECK_CLOSE(gelu_ref_scalar(-2.0), -0.04540230591222494, 1e-14, 0, "gelu_ref(-2)");
    /* Far tails, where gelu_rule.h clamps x to [-9, 9]: GELU is x on the right and within
     * 2e-28 of 0 on the left, its slope 1 and 0, all finite (x^3 overflows float for
     * |x| > 7e12). */
    enum { NT = 8 };
    const float tail[NT] = {-1e30f, -1e4f, -30.0f, -12.0f, 12.0f, 30.0f, 1e4f, 1e30f};
    float out[NT], grad[NT] = {0}, ones[NT];
    for (int i = 0; i < NT; i++) ones[i] = 1.0f;
    cpu_ops()->gelu_forward(out, tail, NT, NULL);
    cpu_ops()->gelu_backward(grad, tail, ones, NT, NULL);
    for (int i = 0; i < NT; i++) {
        float want = tail[i] > 0 ? tail[i] : 0.0f, want_grad = tail[i] > 0 ? 1.0f : 0.0f;
        CHECK(isfinite(out[i]) && fabsf(out[i] - want) <= 1e-6f * fabsf(want) + 2e-28f,
              "gelu(%g) = %g, expected %g", tail[i], out[i], want);
        CHECK(isfinite(grad[i]) && fabsf(grad[i] - want_grad) <= 1e-6f,
              "gelu'(%g) = %g, expected %g", tail[i], grad[i], want_grad);
    }
}

/* Float addition is correctly rounded, so a + b must equal the float64 sum rounded. */
static void test_residual(void)
{
    enum { n = 999 };
    float *a = new_normal(n, 1.0f), *b = new_normal(n, 1.0f), *dout = new_normal(n, 1.0f);
    float *da = new_normal(n, 1.0f), *db = new_normal(n, 1.0f), out[n];
    float da0[n], db0[n];
    memcpy(da0, da, sizeof da0);
    memcpy(db0, db, sizeof db0);
    cpu_ops()->residual_forward(out, a, b, n, NULL);
    cpu_ops()->residual_backward(da, db, dout, n, NULL);
    size_t bad_out = 0, bad_grad = 0;
    for (int i = 0; i < n; i++) {
        bad_out += out[i] != (float)((double)a[i] + b[i]);
        bad_grad += da[i] != da0[i] + dout[i] || db[i] != db0[i] + dout[i];
    }
    CHECK(bad_out == 0, "residual forward: %zu of %d sums wrong", bad_out, n);
    CHECK(bad_grad == 0, "residual backward: %zu of %d gradients not accumulated", bad_grad, n);
    /* x + x: both adds must land in the one gradient buffer */
    memcpy(da, da0, sizeof da0);
    cpu_ops()->residual_backward(da, da, dout, n, NULL);
    bad_grad = 0;
    for (int i = 0; i < n; i++)
        bad_grad += da[i] != (da0[i] + dout[i]) + dout[i];
    CHECK(bad_grad == 0, "residual backward with da == db: %zu of %d wrong", bad_grad, n);
    free(a);
    free(b);
    free(dout);
    free(da);
    free(db);
}

static void test_dropout(void)
{
    const size_t n = 200000;
    const float p = 0.25f;
    const uint64_t seed = 77, stream = 5;
    float *inp = new_normal(n, 1.0f), *dout = new_normal(n, 1.0f);
    float *out = malloc(n * sizeof(float)), *again = malloc(n * sizeof(float));
    float *dinp = calloc(n, sizeof(float));
    const kiln_ops *ops = cpu_ops();

    ops->dropout_forward(out, inp, p, seed, stream, n, NULL);
    size_t kept = 0, wrong = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = kiln_rng_uniform(seed, stream, i) >= p;
        kept += keep;
        /* kept values scaled by 1/(1-p), to float rounding (rel 1e-6); dropped exactly 0 */
        wrong += keep ? fabs(out[i] - inp[i] / (1.0 - p)) > 1e-6 * fabs(inp[i] / (1.0 - p))
                      : out[i] != 0.0f;
    }
    CHECK(wrong == 0, "dropout forward: %zu of %zu elements differ from the rng mask", wrong, n);
    double frac = (double)kept / n, sigma = sqrt(p * (1.0 - p) / n);
    CHECK(fabs(frac - (1.0 - p)) < 5.0 * sigma, "dropout kept %.5f, expected %.5f (5 sigma %.5f)",
          frac, 1.0 - p, 5.0 * sigma);

    ops->dropout_forward(again, inp, p, seed, stream, n, NULL);
    CHECK(memcmp(out, again, n * sizeof(float)) == 0, "dropout: same (seed, stream) differs");
    ops->dropout_forward(again, inp, p, seed, stream + 1, n, NULL);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += (out[i] == 0.0f) != (again[i] == 0.0f);
    /* independent masks disagree on 2p(1-p) = 37.5% of elements */
    CHECK(differ > n / 4, "dropout: another stream_id changed only %zu of %zu mask bits", differ, n);
    memcpy(again, inp, n * sizeof(float));
    ops->dropout_forward(again, again, p, seed, stream, n, NULL);
    CHECK(memcmp(out, again, n * sizeof(float)) == 0, "dropout in place differs");

    ops->dropout_backward(dinp, dout, p, seed, stream, n, NULL);
    wrong = 0;
    for (size_t i = 0; i < n; i++) {
        double want = out[i] != 0.0f ? dout[i] / (1.0 - p) : 0.0; /* inp is never exactly 0 */
        wrong += fabs(dinp[i] - want) > 1e-6 * fabs(want) || (want == 0.0) != (dinp[i] == 0.0f);
    }
    CHECK(wrong == 0, "dropout backward: %zu of %zu elements not masked like forward", wrong, n);
    double *twice = to_double(dinp, n);
    for (size_t i = 0; i < n; i++)
        twice[i] *= 2.0;
    ops->dropout_backward(dinp, dout, p, seed, stream, n, NULL);
    check_array("dropout backward twice accumulates", dinp, twice, n, 1e-6, 0.0);

    ops->dropout_forward(out, inp, 0.0f, seed, stream, n, NULL);
    CHECK(memcmp(out, inp, n * sizeof(float)) == 0, "dropout with p = 0 is not the identity");
    memset(dinp, 0, n * sizeof(float));
    ops->dropout_backward(dinp, dout, 0.0f, seed, stream, n, NULL);
    CHECK(memcmp(dinp, dout, n * sizeof(float)) == 0, "dropout backward with p = 0 is not dout");
    free(inp);
    free(dout);
    free(out);
    free(again);
    free(dinp);
    free(twice);
}

static void test_vector_helpers(void)
{
    enum { n = 1001 };
    float *x = new_normal(n, 1.0f), *y = new_normal(n, 1.0f);
    double *want_scale = to_double(x, n), *want_axpy = to_double(y, n);
    for (int i = 0; i < n; i++) {
        want_scale[i] *= -0.3f;
        want_axpy[i] += 1.7f * (double)x[i];
    }
    cpu_ops()->axpy(y, x, 1.7f, n, NULL);
    check_array("axpy", y, want_axpy, n, 1e-6, 1e-7);
    cpu_ops()->scale(x, -0.3f, n, NULL);
    check_array("scale", x, want_scale, n, 1e-6, 0.0);
    cpu_ops()->zero(x, n - 1, NULL);
    size_t nonzero = 0;
    for (int i = 0; i < n - 1; i++)
        nonzero += x[i] != 0.0f;
    CHECK(nonzero == 0 && x[n - 1] == (float)want_scale[n - 1],
          "zero: %zu left non-zero, or it wrote past n", nonzero);
    free(x);
    free(y);
    free(want_scale);
    free(want_axpy);
}

/* Several AdamW steps against the float64 formula: bias-corrected moments, decoupled decay
 * from the pre-step parameter, gradients multiplied by grad_scale first. */
static void test_adamw(void)
{
    enum { n = 777, steps = 6 };
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
    float *p = new_normal(n, 1.0f), *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    double *pd = to_double(p, n), *md = calloc(n, sizeof(double)), *vd = calloc(n, sizeof(double));
    for (int t = 1; t <= steps; t++) {
        float *g = new_normal(n, 2.0f);
        g[t] = 0.0f; /* a zero gradient: the step is 0/(0+eps), decay still applies */
        cpu_ops()->adamw_update(p, NULL, m, v, g, n, lr, b1, b2, eps, wd, gs, t, NULL);
        for (int i = 0; i < n; i++) {
            double gi = (double)g[i] * gs;
            md[i] = b1 * md[i] + (1.0 - b1) * gi;
            vd[i] = b2 * vd[i] + (1.0 - b2) * gi * gi;
            double mhat = md[i] / (1.0 - pow(b1, t)), vhat = vd[i] / (1.0 - pow(b2, t));
            pd[i] -= lr * (mhat / (sqrt(vhat) + eps) + wd * pd[i]);
        }
        free(g);
    }
    /* float state over a few steps: a few ulps of accumulated rounding */
    check_array("adamw params", p, pd, n, 1e-5, 1e-6);
    check_array("adamw m", m, md, n, 1e-5, 1e-7);
    check_array("adamw v", v, vd, n, 1e-5, 1e-8);
    free(p);
    free(m);
    free(v);
    free(pd);
    free(md);
    free(vd);
}

/* PyTorch's SGD: buf = momentum*buf + (grad_scale*g + wd*p); p -= lr*buf. */
static void check_sgd(float momentum)
{
    enum { n = 555, steps = 5 };
    const float lr = 0.1f, wd = 0.01f, gs = 2.0f;
    float *p = new_normal(n, 1.0f), *buf = calloc(n, sizeof(float));
    double *pd = to_double(p, n), *bd = calloc(n, sizeof(double));
    for (int t = 0; t < steps; t++) {
        float *g = new_normal(n, 1.0f);
        cpu_ops()->sgd_update(p, NULL, buf, g, n, lr, momentum, wd, gs, NULL);
        for (int i = 0; i < n; i++) {
            bd[i] = momentum * bd[i] + (double)g[i] * gs + wd * pd[i];
            pd[i] -= lr * bd[i];
        }
        free(g);
    }
    char what[64];
    snprintf(what, sizeof what, "sgd params (momentum %g)", momentum);
    check_array(what, p, pd, n, 1e-5, 1e-6);
    snprintf(what, sizeof what, "sgd momentum buffer (momentum %g)", momentum);
    check_array(what, buf, bd, n, 1e-5, 1e-6);
    free(p);
    free(buf);
    free(pd);
    free(bd);
}

/* The CPU stores fp32: an update's params_copy receives the updated parameters as they are
 * (the same values as an update without one), and casting from fp32 copies. */
static void test_param_copy(void)
{
    enum { n = 301 };
    float *p = new_normal(n, 1.0f), *g = new_normal(n, 1.0f), *copy = new_normal(n, 1.0f);
    float *q = malloc(n * sizeof(float));
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    float *m2 = calloc(n, sizeof(float)), *v2 = calloc(n, sizeof(float));
    memcpy(q, p, n * sizeof(float));
    cpu_ops()->adamw_update(p, copy, m, v, g, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1, NULL);
    cpu_ops()->adamw_update(q, NULL, m2, v2, g, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1, NULL);
    CHECK(!memcmp(copy, p, n * sizeof(float)) && !memcmp(p, q, n * sizeof(float)),
          "adamw: params_copy is not the updated parameters, or changed them");
    cpu_ops()->sgd_update(p, copy, m, g, n, 0.1f, 0.9f, 0.0f, 1.0f, NULL);
    CHECK(!memcmp(copy, p, n * sizeof(float)), "sgd: params_copy is not the updated parameters");
    cpu_ops()->cast_from_f32(copy, g, n, NULL);
    CHECK(!memcmp(copy, g, n * sizeof(float)), "cast_from_f32 on the CPU is not a copy");
    free(p);
    free(q);
    free(g);
    free(copy);
    free(m);
    free(v);
    free(m2);
    free(v2);
}

static void test_sum_squares(void)
{
    const size_t n = 100003; /* several blocks, the last one partial */
    float *x = new_normal(n, 3.0f);
    double want = 0.0;
    for (size_t i = 0; i < n; i++)
        want += (double)x[i] * x[i];
    double got = cpu_ops()->sum_squares(x, n, NULL);
    CHECK_CLOSE(got, want, 1e-12, 0.0, "sum_squares vs float64 sum"); /* order only */
    CHECK(cpu_ops()->sum_squares(x, 0, NULL) == 0.0, "sum_squares of nothing is not 0");
    /* Bit-identical whatever the thread count: resumed runs must match. */
    int threads = omp_get_max_threads();
    for (int nt = 1; nt <= 3; nt++) {
        omp_set_num_threads(nt);
        double s = cpu_ops()->sum_squares(x, n, NULL);
        CHECK(s == got, "sum_squares with %d threads: %.17g vs %.17g", nt, s, got);
    }
    omp_set_num_threads(threads);
    free(x);
}

/* The worst ulp error against exp of f over about a million floats spread evenly, by bit
 * pattern, over [lo, hi] (both of one sign). */
static double exp_worst_ulps(float (*f)(float), float lo, float hi, float *worst_x)
{
    uint32_t a, b;
    memcpy(&a, &lo, sizeof a);
    memcpy(&b, &hi, sizeof b);
    if (a > b) { uint32_t t = a; a = b; b = t; }
    double worst = 0.0;
    for (uint32_t u = a; u <= b; u += (b - a) / 1000000u + 1u) {
        float x;
        memcpy(&x, &u, sizeof x);
        float want = (float)exp((double)x), got = f(x);
        double ulps = fabs((double)got - exp((double)x)) / (nextafterf(want, INFINITY) - want);
        if (ulps > worst) {
            worst = ulps;
            *worst_x = x;
        }
    }
    return worst;
}

static float exp_in_range(float x) { return kiln_cpu_exp_in_range(x); }
static float expf_clamped(float x) { return kiln_cpu_expf(x); }

/* Within 1.5 ulp of exp (the worst over every float is 1.03): kiln_cpu_expf on [-87, 0] (the
 * softmaxes), its unchecked core on [0, 88] too (the GELU's exponent reaches 80); exp(0) is
 * exact and kiln_cpu_expf is 0 below -87. */
static void test_fast_exp(void)
{
    float x = 0.0f;
    double worst = exp_worst_ulps(expf_clamped, -0.0f, -87.0f, &x);
    CHECK(worst <= 1.5, "kiln_cpu_expf is %.3f ulp off at %.9g", worst, x);
    worst = exp_worst_ulps(exp_in_range, 0.0f, 88.0f, &x);
    CHECK(worst <= 1.5, "kiln_cpu_exp_in_range is %.3f ulp off at %.9g", worst, x);
    CHECK(kiln_cpu_expf(0.0f) == 1.0f && kiln_cpu_expf(-0.0f) == 1.0f, "exp(0) != 1");
    CHECK(kiln_cpu_expf(-87.5f) == 0.0f && kiln_cpu_expf(-INFINITY) == 0.0f,
          "exp below -87 is not flushed to 0");
}

int main(void)
{
    test_backend_lookup();
    test_memory();
    test_gemm();
    test_linear();
    test_fast_exp();
    test_gelu();
    test_residual();
    test_dropout();
    test_vector_helpers();
    test_adamw();
    check_sgd(0.9f);
    check_sgd(0.0f);
    test_param_copy();
    test_sum_squares();
    TEST_MAIN_END();
}
