/* Whole training steps on the GPU against the CPU: the MLP and the GPT (dropout on, so the
 * Philox masks must agree) give the same loss, gradients and updated parameters; eval
 * summaries (accuracy) agree; twenty bf16 steps of the GPT stay within 2% of the fp32 loss
 * curve. Tolerances: gradients rtol 1e-4 of the buffer's norm (cuBLAS sums in another order,
 * embedding gradients add atomically); losses 1e-5. The compared update is SGD, linear in the
 * gradient: AdamW's first step is about sign(g), which flips on gradients that are zero to
 * rounding (its kernel is compared on equal inputs in gpu.ops). Skips (exit 77) without a GPU. */
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

/* One training step (zero, forward, backward, update); returns the loss. */
static float run_step(run *r, const kiln_batch *b, int step)
{
    size_t n = kiln_model_num_params(r->m);
    float loss = NAN;
    r->be->ops.zero(kiln_model_grads(r->m), n, r->be->stream);
    CHECK_OK(kiln_model_forward(r->m, b, 1, (uint64_t)step, &loss, NULL, NULL));
    CHECK_OK(kiln_model_backward(r->m, 1.0f));
    kiln_optim_step(r->o, r->m, kiln_model_params(r->m), kiln_model_grads(r->m), 1e-3f, 1.0f,
                    step + 1);
    CHECK_OK(r->be->synchronize(r->be->stream));
    return loss;
}

/* |got - want| / |want| over a whole buffer (device got read back). */
static double rel_norm_diff(const kiln_backend *be, const float *got_dev, const float *want,
                            size_t n)
{
    float *got = malloc(n * sizeof(float));
    be->copy_to_host(got, got_dev, n * sizeof(float), be->stream);
    double d = 0.0, w = 0.0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    free(got);
    return sqrt(d / (w > 0 ? w : 1.0));
}

static void test_step_matches_cpu(const kiln_backend *gpu, int lm)
{
    const char *what = lm ? "gpt" : "mlp";
    run c = run_new(kiln_backend_cpu(), lm, "sgd"), g = run_new(gpu, lm, "sgd");
    if (!c.o || !g.o) return;
    size_t n = kiln_model_num_params(c.m);
    CHECK(rel_norm_diff(gpu, kiln_model_params(g.m), kiln_model_params(c.m), n) == 0.0,
          "%s: initial parameters differ between CPU and GPU", what);
    batch_store bs;
    make_batch(&bs, lm, 5);
    float lc = NAN, lg = NAN;
    CHECK_OK(kiln_model_forward(c.m, &bs.b, 1, 3, &lc, NULL, NULL));
    CHECK_OK(kiln_model_forward(g.m, &bs.b, 1, 3, &lg, NULL, NULL));
    CHECK_CLOSE(lg, lc, 1e-5, 0.0, "training loss (dropout on)");
    CHECK_OK(kiln_model_backward(c.m, 1.0f));
    CHECK_OK(kiln_model_backward(g.m, 1.0f));
    double dg = rel_norm_diff(gpu, kiln_model_grads(g.m), kiln_model_grads(c.m), n);
    CHECK(dg < 1e-4, "%s: gradients differ from the CPU's by %.3g of their norm", what, dg);
    kiln_optim_step(c.o, c.m, kiln_model_params(c.m), kiln_model_grads(c.m), 1e-3f, 1.0f, 1);
    kiln_optim_step(g.o, g.m, kiln_model_params(g.m), kiln_model_grads(g.m), 1e-3f, 1.0f, 1);
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

/* bf16 tensor-core GEMMs against fp32 on the GPT: 20 steps on the same batches. */
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
    test_bf16_curve(fp32, bf16);
    TEST_MAIN_END();
}
