/* Learning-rate schedules against their formulas, the clipping factor, the global norm, and
 * AdamW's weight decay reaching matrices but not biases. */
#include <string.h>
#include "check.h"
#include "kiln/optim.h"

static kiln_schedule_config schedule(const char *kind, double warmup_frac, int warmup_steps)
{
    kiln_schedule_config s;
    memset(&s, 0, sizeof s);
    strcpy(s.kind, kind);
    s.warmup_frac = warmup_frac;
    s.warmup_steps = warmup_steps;
    s.min_lr = 1e-4;
    s.step_every = 10;
    s.gamma = 0.5;
    return s;
}

static void test_schedules(void)
{
    kiln_schedule_config c = schedule("constant", 0.1, 0);
    CHECK_CLOSE(kiln_schedule_lr(&c, 1e-3, 0, 100), 1e-4, 1e-12, 0, "warmup step 0 = lr/10");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1e-3, 9, 100), 1e-3, 1e-12, 0, "warmup reaches lr");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1e-3, 99, 100), 1e-3, 1e-12, 0, "constant after warmup");

    c = schedule("cosine", 0.1, 0); /* 10 warmup steps, 90 of decay */
    CHECK_CLOSE(kiln_schedule_lr(&c, 1e-3, 10, 100), 1e-3, 1e-12, 0, "cosine starts at lr");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1e-3, 55, 100), (1e-3 + 1e-4) / 2, 1e-9, 0, "cosine midpoint");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1e-3, 100, 100), 1e-4, 1e-9, 0, "cosine ends at min_lr");
    double prev = 1.0;
    int monotone = 1;
    for (long t = 10; t <= 100; t++) {
        double lr = kiln_schedule_lr(&c, 1e-3, t, 100);
        monotone &= lr <= prev;
        prev = lr;
    }
    CHECK(monotone, "cosine decay is non-increasing");

    c = schedule("step", 0.0, 4); /* warmup_steps wins over warmup_frac */
    CHECK_CLOSE(kiln_schedule_lr(&c, 1.0, 1, 100), 0.5, 1e-12, 0, "warmup by steps");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1.0, 13, 100), 1.0, 1e-12, 0, "step: first period");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1.0, 14, 100), 0.5, 1e-12, 0, "step: second period");
    CHECK_CLOSE(kiln_schedule_lr(&c, 1.0, 34, 100), 0.125, 1e-12, 0, "step: fourth period");
}

static void test_clip_and_norm(void)
{
    CHECK(kiln_clip_factor(0.5, 1.0) == 1.0f, "within the limit: no clipping");
    CHECK(kiln_clip_factor(5.0, 0.0) == 1.0f, "max_norm 0 disables clipping");
    CHECK_CLOSE(kiln_clip_factor(4.0, 1.0) * 4.0, 1.0, 1e-6, 0, "clipped norm equals max_norm");
    const kiln_backend *be = kiln_backend_cpu();
    float g[1000];
    double ref = 0.0;
    for (int i = 0; i < 1000; i++) {
        g[i] = (float)((i % 7) - 3) * 0.01f;
        ref += (double)g[i] * g[i];
    }
    CHECK_CLOSE(kiln_grad_global_norm(be, g, 1000), sqrt(ref), 1e-12, 0, "global norm");
}

/* With zero gradients AdamW's step is pure decoupled decay: w *= 1 - lr*wd on matrices only. */
static void test_decay_targets(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    kiln_model_config mc;
    memset(&mc, 0, sizeof mc);
    strcpy(mc.kind, "mlp");
    mc.hidden.n = 1;
    mc.hidden.v[0] = 4;
    kiln_model *m;
    CHECK_OK(kiln_model_create(&mc, 3, 2, 2, be, 1, &m));
    size_t n = kiln_model_num_params(m);
    float *p = kiln_model_params(m);
    for (size_t i = 0; i < n; i++) p[i] = 1.0f;
    memset(kiln_model_grads(m), 0, n * sizeof(float));
    kiln_optim_config oc;
    memset(&oc, 0, sizeof oc);
    strcpy(oc.name, "adamw");
    oc.beta1 = 0.9;
    oc.beta2 = 0.999;
    oc.eps = 1e-8;
    oc.weight_decay = 0.5;
    kiln_optim *o;
    CHECK_OK(kiln_optim_create(&oc, m, be, 0, n, &o));
    kiln_optim_step(o, m, p, NULL, kiln_model_grads(m), 0.1f, 1.0f, 1);
    for (int t = 0; t < kiln_model_num_tensors(m); t++) {
        const kiln_tensor_info *ti = kiln_model_tensor(m, t);
        float want = ti->decay ? 1.0f - 0.1f * 0.5f : 1.0f;
        int ok = 1;
        for (size_t i = 0; i < ti->numel; i++) ok &= p[ti->offset + i] == want;
        CHECK(ok, "tensor %s: expected every value %g after one decay-only step", ti->name, want);
    }
    CHECK(kiln_model_tensor(m, 0)->decay && !kiln_model_tensor(m, 1)->decay,
          "weights decay, biases do not");
    kiln_optim_free(o);
    kiln_model_free(m);
}

int main(void)
{
    test_schedules();
    test_clip_and_norm();
    test_decay_targets();
    TEST_MAIN_END();
}
