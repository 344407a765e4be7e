/* Shared by the backend op tests (test_ops*.c): random inputs, comparison of a float op's
 * output with a float64 reference, and gradient checks by central differences in float64.
 *
 * A differentiable op is described by an ops_case: its float forward and backward (the op
 * under test) and a float64 reference forward, all over one packed vector theta of every
 * differentiable input. check_ops_case runs the whole protocol on random inputs.
 *
 * Tolerances (|got - want| <= atol + rtol |want|, stated at each case): forwards about rtol
 * 1e-5, float accumulation against float64; gradients about rtol 1e-4 with an atol near
 * 1e-5, the float op against differences accurate to ~1e-9. Observed errors sit 5 to 100
 * times below them; a wrong formula, index or missing accumulation lands far above. */
#ifndef KILN_TEST_OPS_REF_H
#define KILN_TEST_OPS_REF_H
#include <omp.h>
#include <stdint.h>
#include "check.h"
#include "kiln/backend.h"
#include "kiln/rng.h"

static uint64_t ops_ref_stream; /* every fill draws from a new stream */

static void fill_normal(float *x, size_t n, float std)
{
    kiln_rng_fill_normal(x, n, 0.0f, std, 20240521, ops_ref_stream++, 0);
}

static float *new_normal(size_t n, float std)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    fill_normal(x, n, std);
    return x;
}

static double *to_double(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* One CHECK per array: every |got - want| <= atol + rtol |want|; names the worst element. */
static void check_array(const char *what, const float *got, const double *want, size_t n,
                        double rtol, double atol)
{
    size_t worst = 0;
    double worst_excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double excess = fabs(got[i] - want[i]) - (atol + rtol * fabs(want[i]));
        if (excess > worst_excess || isnan(got[i])) {
            worst_excess = isnan(got[i]) ? INFINITY : excess;
            worst = i;
        }
    }
    CHECK(n == 0 || worst_excess <= 0.0, "%s: element %zu is %.9g, want %.9g (rtol %g, atol %g)",
          what, worst, n ? got[worst] : 0.0, n ? want[worst] : 0.0, rtol, atol);
}

/* The float64 reference forward: out = f(theta), other inputs fixed in ctx. */
typedef void (*ref_forward_fn)(const void *ctx, const double *theta, double *out);

/* dL/dtheta for L = sum_k w[k] f(theta)[k], by central differences in float64. The step is
 * 1e-6 relative: truncation error ~1e-12, rounding ~1e-10 of L, far below float error. */
static double *fd_gradient(ref_forward_fn f, const void *ctx, const double *theta,
                           size_t ntheta, const double *w, size_t nout)
{
    double *th = malloc(ntheta * sizeof(double)), *out = malloc(nout * sizeof(double));
    double *grad = malloc(ntheta * sizeof(double));
    memcpy(th, theta, ntheta * sizeof(double));
    for (size_t i = 0; i < ntheta; i++) {
        double h = 1e-6 * fmax(1.0, fabs(theta[i])), loss[2];
        for (int side = 0; side < 2; side++) {
            th[i] = theta[i] + (side ? -h : h);
            f(ctx, th, out);
            loss[side] = 0.0;
            for (size_t k = 0; k < nout; k++)
                loss[side] += w[k] * out[k];
        }
        th[i] = theta[i];
        grad[i] = (loss[0] - loss[1]) / (2.0 * h);
    }
    free(th);
    free(out);
    return grad;
}

typedef struct {
    const char *name;
    const void *ctx;
    size_t ntheta, nout;
    float theta_std; /* inputs are N(0, theta_std^2) */
    ref_forward_fn ref;
    /* The op under test: out = f(theta), and grad += dL/dtheta for L = sum dout * out. */
    void (*forward)(const void *ctx, const float *theta, float *out);
    void (*backward)(const void *ctx, const float *theta, const float *dout, float *grad);
    double fwd_rtol, fwd_atol;   /* float forward vs float64 reference */
    double grad_rtol, grad_atol; /* float backward vs central differences */
} ops_case;

/* Forward against the reference; backward (from zeroed gradients) against finite
 * differences of a random linear functional of the output, and bit-identical with 1 and 3
 * threads; a second backward must double the gradient, since backward ops accumulate. */
static void check_ops_case(const ops_case *c)
{
    char what[160];
    float *theta = new_normal(c->ntheta, c->theta_std), *dout = new_normal(c->nout, 1.0f);
    float *out = malloc(c->nout * sizeof(float)), *grad = calloc(c->ntheta, sizeof(float));
    double *theta_d = to_double(theta, c->ntheta), *w = to_double(dout, c->nout);
    double *want = malloc(c->nout * sizeof(double));

    c->forward(c->ctx, theta, out);
    c->ref(c->ctx, theta_d, want);
    snprintf(what, sizeof what, "%s forward", c->name);
    check_array(what, out, want, c->nout, c->fwd_rtol, c->fwd_atol);

    double *fd = fd_gradient(c->ref, c->ctx, theta_d, c->ntheta, w, c->nout);
    c->backward(c->ctx, theta, dout, grad);
    snprintf(what, sizeof what, "%s backward vs finite differences", c->name);
    check_array(what, grad, fd, c->ntheta, c->grad_rtol, c->grad_atol);

    /* Work is split so that no sum depends on the thread count: resumed runs must match. */
    float *other = malloc(c->ntheta * sizeof(float));
    int threads = omp_get_max_threads();
    for (int nt = 1; nt <= 3; nt += 2) {
        memset(other, 0, c->ntheta * sizeof(float));
        omp_set_num_threads(nt);
        c->backward(c->ctx, theta, dout, other);
        omp_set_num_threads(threads);
        CHECK(memcmp(other, grad, c->ntheta * sizeof(float)) == 0,
              "%s backward with %d threads is not bit-identical to %d threads", c->name, nt,
              threads);
    }
    free(other);

    double *twice = to_double(grad, c->ntheta);
    for (size_t i = 0; i < c->ntheta; i++)
        twice[i] *= 2.0;
    c->backward(c->ctx, theta, dout, grad);
    snprintf(what, sizeof what, "%s backward twice accumulates", c->name);
    check_array(what, grad, twice, c->ntheta, c->grad_rtol, c->grad_atol);

    free(theta);
    free(dout);
    free(out);
    free(grad);
    free(theta_d);
    free(w);
    free(want);
    free(fd);
    free(twice);
}

static const kiln_ops *cpu_ops(void) { return &kiln_backend_cpu()->ops; }

#endif
