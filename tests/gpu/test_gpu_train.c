/* Whole training steps on the GPU against the CPU: the MLP and the GPT (dropout on, so the
 * Philox masks must agree) give the same loss, gradients and updated parameters; eval
 * summaries (accuracy) agree; with bf16 storage the same step lands near the CPU's, and its
 * bf16 parameter copy is its fp32 master weights rounded; twenty bf16 steps of the GPT stay
 * within 2% of the fp32 loss curve. Tolerances: fp32 gradients rtol 1e-4 of the buffer's norm
 * (cuBLAS sums in another order, embedding gradients add atomically), losses 1e-5; bf16 losses
 * 1e-2 and gradients 5e-2 of the norm (every activation and gradient is rounded to 8 bits, a few
 * times per layer). The compared update is SGD, linear in the gradient: AdamW's first step is
 * about sign(g), which flips on gradients that are zero to rounding (its kernel is compared on
 * equal inputs in gpu.ops). Skips (exit 77) without a GPU. */
#include <string.h>
#include "gpu_common.h"
#include "kiln/model.h"
#include "kiln/optim.h"

enum { B = 8, T = 32, V = 64, IN = 48, CLASSES = 10 };

typedef struct batch_store {
    float x[B * IN];
    int32_t y[B], tokens[B * T], targets[B * T];
    kiln_batch b;
} batch_store;

/* A learnable sequence (each token a function of the one before, with noise) or random
 * pixels whose label depends on them: training must make progress. */
static void make_batch(batch_store *s, int lm, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->b.B = B;
    for (int i = 0; i < B * IN; i++) s->x[i] = kiln_rng_uniform(seed, 1, (uint64_t)i);
    for (int i = 0; i < B; i++) s->y[i] = (int32_t)(s->x[i * IN] * CLASSES);
    for (int b = 0; b < B; b++) {
        int32_t tok = (int32_t)(kiln_rng_uniform(seed, 2, (uint64_t)b) * V);
        for (int t = 0; t <= T; t++) {
            int32_t next = kiln_rng_uniform(seed, 3, (uint64_t)(b * (T + 1) + t)) < 0.1f
                               ? (int32_t)(kiln_rng_uniform(seed, 4, (uint64_t)(b * T + t)) * V)
                               : (tok * 5 + 3) % V;
            if (t < T) s->tokens[b * T + t] = tok;
            if (t > 0) s->targets[b * T + t - 1] = tok;
            tok = next;
        }
    }
    s->targets[5] = -1; /* an ignored position */
    if (lm) { s->b.tokens = s->tokens; s->b.targets = s->targets; }
    else { s->b.x = s->x; s->b.y = s->y; }
}

static kiln_model_config config(int lm)
{
    kiln_model_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.kind, lm ? "gpt" : "mlp");
    c.hidden.n = 2;
    c.hidden.v[0] = 64;
    c.hidden.v[1] = 32;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_embd = 64;
    c.block_size = T;
    c.dropout = 0.1;
    c.init_std = 0.02;
    return c;
}

static kiln_optim_config optimizer(const char *name)
{
    kiln_optim_config o;
    memset(&o, 0, sizeof o);
    strcpy(o.name, name);
    o.momentum = 0.9;
    o.lr = 1e-3;
    o.beta1 = 0.9;
    o.beta2 = 0.95;
    o.eps = 1e-8;
    o.weight_decay = 0.1;
    return o;
}

/* A model and its optimizer on one backend. */
typedef struct run {
    const kiln_backend *be;
    kiln_model *m;
    kiln_optim *o;
} run;

static run run_new(const kiln_backend *be, int lm, const char *optim)
{
    run r = {be, NULL, NULL};
    kiln_model_config c = config(lm);
    kiln_optim_config oc = optimizer(optim);
    CHECK_OK(kiln_model_create(&c, IN, lm ? V : CLASSES, B, be, 42, &r.m));
    if (r.m) CHECK_OK(kiln_optim_create(&oc, r.m, be, 0, kiln_model_num_params(r.m), &r.o));
    return r;
}

static void run_free(run *r)
{
    kiln_optim_free(r->o);
    kiln_model_free(r->m);
}

/* The optimizer's update of the whole model (lr 1e-3), as 1-based step t: the fp32 parameters
 * and, with bf16 storage, the copy the ops read. */
static void run_update(run *r, int t)
{
    kiln_optim_step(r->o, r->m, kiln_model_params(r->m), kiln_model_param_copy_at(r->m, 0),
                    kiln_model_grads(r->m), 1e-3f, 1.0f, t);
}

/* One training step (zero, forward, backward, update); returns the loss. */
static float run_step(run *r, const kiln_batch *b, int step)
{
    size_t n = kiln_model_num_params(r->m);
    float loss = NAN;
    r->be->ops.zero(kiln_model_grads(r->m), n, r->be->stream);
    CHECK_OK(kiln_model_forward(r->m, b, 1, (uint64_t)step, &loss, NULL, NULL));
    CHECK_OK(kiln_model_backward(r->m, 1.0f));
    run_update(r, step + 1);
    CHECK_OK(r->be->synchronize(r->be->stream));
    return loss;
}

/* |got - want| / |want| over a whole buffer (device got, fp32 or the storage type, read back). */
static double rel_norm_diff_as(const kiln_backend *be, const float *got_dev, const float *want,
                               size_t n, int f32)
{
    float *got = host_copy_as(be, got_dev, n, f32);
    double d = 0.0, w = 0.0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    free(got);
    return sqrt(d / (w > 0 ? w : 1.0));
}

static double rel_norm_diff(const kiln_backend *be, const float *got_dev, const float *want,
                            size_t n)
{
    return rel_norm_diff_as(be, got_dev, want, n, 1);
}

/* The CPU run c and the GPU run g, from the same initial parameters, through one training
 * forward (dropout on) and backward on the same batch: losses within loss_rtol, gradients
 * within grad_rtol of their norm. */
static void forward_backward_both(run *c, run *g, const char *what, const batch_store *bs,
                                  double loss_rtol, double grad_rtol)
{
    const kiln_backend *gpu = g->be;
    size_t n = kiln_model_num_params(c->m);
    CHECK(rel_norm_diff(gpu, kiln_model_params(g->m), kiln_model_params(c->m), n) == 0.0,
          "%s: initial (fp32) parameters differ between CPU and GPU", what);
    float lc = NAN, lg = NAN;
    CHECK_OK(kiln_model_forward(c->m, &bs->b, 1, 3, &lc, NULL, NULL));
    CHECK_OK(kiln_model_forward(g->m, &bs->b, 1, 3, &lg, NULL, NULL));
    CHECK_CLOSE(lg, lc, loss_rtol, 0.0, "training loss (dropout on)");
    CHECK_OK(kiln_model_backward(c->m, 1.0f));
    CHECK_OK(kiln_model_backward(g->m, 1.0f));
    double dg = rel_norm_diff_as(gpu, kiln_model_grads(g->m), kiln_model_grads(c->m), n, 0);
    printf("%s: loss %.6f vs CPU %.6f, gradients %.3g of their norm from the CPU's\n", what, lg,
           lc, dg);
    CHECK(dg < grad_rtol, "%s: gradients differ from the CPU's by %.3g of their norm", what, dg);
}

static void test_step_matches_cpu(const kiln_backend *gpu, int lm)
{
    const char *what = lm ? "gpt" : "mlp";
    run c = run_new(kiln_backend_cpu(), lm, "sgd"), g = run_new(gpu, lm, "sgd");
    if (!c.o || !g.o) return;
    size_t n = kiln_model_num_params(c.m);
    batch_store bs;
    make_batch(&bs, lm, 5);
    forward_backward_both(&c, &g, what, &bs, 1e-5, 1e-4);
    float lc = NAN, lg = NAN;
    run_update(&c, 1);
    run_update(&g, 1);
    CHECK_OK(gpu->synchronize(gpu->stream));
    double dp = rel_norm_diff(gpu, kiln_model_params(g.m), kiln_model_params(c.m), n);
    CHECK(dp < 1e-6, "%s: parameters after SGD differ by %.3g of their norm", what, dp);
    /* evaluation: loss and top-1 hits, probabilities read back from the device */
    int64_t hc = -1, hg = -2, tc = 0, tg = 0;
    CHECK_OK(kiln_model_forward(c.m, &bs.b, 0, 0, &lc, &hc, &tc));
    CHECK_OK(kiln_model_forward(g.m, &bs.b, 0, 0, &lg, &hg, &tg));
    CHECK_CLOSE(lg, lc, 1e-5, 0.0, "eval loss");
    CHECK(tc == tg && llabs(hc - hg) <= 1, "%s eval: %lld/%lld hits on the GPU, %lld/%lld on the CPU",
          what, (long long)hg, (long long)tg, (long long)hc, (long long)tc);
    /* the host mirror: what checkpoints write */
    CHECK_OK(kiln_model_params_to_host(g.m));
    CHECK(rel_norm_diff(gpu, kiln_model_params(g.m), kiln_model_host_params(g.m), n) == 0.0,
          "%s: host mirror differs from the device parameters", what);
    run_free(&c);
    run_free(&g);
}

/* One step with bf16 storage against the CPU's fp32 step: close, not equal. */
static void test_bf16_step_near_cpu(const kiln_backend *bf16, int lm)
{
    const char *what = lm ? "gpt bf16" : "mlp bf16";
    run c = run_new(kiln_backend_cpu(), lm, "sgd"), g = run_new(bf16, lm, "sgd");
    if (!c.o || !g.o) return;
    size_t n = kiln_model_num_params(c.m);
    batch_store bs;
    make_batch(&bs, lm, 5);
    forward_backward_both(&c, &g, what, &bs, 1e-2, 5e-2);
    float *before = malloc(n * sizeof(float));
    memcpy(before, kiln_model_params(c.m), n * sizeof(float));
    run_update(&c, 1);
    run_update(&g, 1);
    CHECK_OK(bf16->synchronize(bf16->stream));
    /* the update moved the fp32 master weights as the CPU's moved (off by the gradients' gap,
     * a small part of the step) and wrote their bf16 copy in the same pass */
    float *master = host_copy_as(bf16, kiln_model_params(g.m), n, 1);
    float *copy = host_copy_as(bf16, kiln_model_param_copy_at(g.m, 0), n, 0);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += kiln_bf16_to_f32(kiln_bf16_from_f32(master[i])) != copy[i];
    CHECK(differ == 0, "%s: %zu of %zu bf16 parameters are not their master weight rounded", what,
          differ, n);
    double gap = 0.0, step = 0.0;
    for (size_t i = 0; i < n; i++) {
        double p = kiln_model_params(c.m)[i];
        gap += (master[i] - p) * (master[i] - p);
        step += (p - before[i]) * (p - before[i]);
    }
    CHECK(step > 0.0 && sqrt(gap) < 0.2 * sqrt(step),
          "%s: master weights after SGD are %.3g from the CPU's, whose step was %.3g", what,
          sqrt(gap), sqrt(step));
    free(before);
    free(master);
    free(copy);
    run_free(&c);
    run_free(&g);
}

/* bf16 storage against fp32 on the GPT: 20 steps on the same batches. */
static void test_bf16_curve(const kiln_backend *fp32, const kiln_backend *bf16)
{
    run a = run_new(fp32, 1, "adamw"), b = run_new(bf16, 1, "adamw");
    if (!a.o || !b.o) return;
    double worst = 0.0, first = 0.0, last = 0.0;
    for (int step = 0; step < 20; step++) {
        batch_store bs;
        make_batch(&bs, 1, (uint64_t)(100 + step % 4));
        float la = run_step(&a, &bs.b, step), lb = run_step(&b, &bs.b, step);
        double rel = fabs((double)lb - la) / la;
        if (rel > worst) worst = rel;
        if (step == 0) first = la;
        last = la;
    }
    printf("bf16 vs fp32 over 20 GPT steps: worst relative loss gap %.4f; fp32 loss %.4f -> %.4f\n",
           worst, first, last);
    CHECK(worst <= 0.02, "bf16 loss strays %.2f%% from fp32 (limit 2%%)", 100.0 * worst);
    CHECK(last < first, "the GPT did not learn in 20 steps (%.4f -> %.4f)", first, last);
    run_free(&a);
    run_free(&b);
}

int main(void)
{
    const kiln_backend *fp32 = gpu_backend_or_skip("fp32"), *bf16 = gpu_backend_or_skip("bf16");
    test_step_matches_cpu(fp32, 0);
    test_step_matches_cpu(fp32, 1);
    test_bf16_step_near_cpu(bf16, 0);
    test_bf16_step_near_cpu(bf16, 1);
    test_bf16_curve(fp32, bf16);
    TEST_MAIN_END();
}
