/* A small GPT trained through kiln_dp under any ZeRO stage, for the tests that compare stages
 * step by step (tests/unit/test_zero_device.c, tests/mpi/test_zero_unscored.c): vocabulary
 * DP_RUN_V, context DP_RUN_T, 1 KiB buckets so that there are several, AdamW. */
#ifndef KILN_TEST_DP_RUN_H
#define KILN_TEST_DP_RUN_H
#include <math.h>
#include "check.h"
#include "kiln/comm.h"
#include "kiln/optim.h"
#include "kiln/parallel.h"

enum { DP_RUN_V = 11, DP_RUN_T = 5 };

typedef struct dp_run {
    kiln_model *m;
    kiln_dp *dp;
    kiln_optim *o;
} dp_run;

static void dp_run_init(dp_run *r, kiln_comm *c, const kiln_backend *be, int zero, int batch,
                        uint64_t seed)
{
    kiln_model_config cfg = {.kind = "gpt", .n_layer = 2, .n_head = 2, .n_embd = 8,
                             .block_size = DP_RUN_T, .init_std = 0.3};
    kiln_optim_config oc = {.name = "adamw", .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95,
                            .eps = 1e-8, .weight_decay = 0.1};
    CHECK_OK(kiln_model_create(&cfg, 0, DP_RUN_V, batch, be, seed, &r->m));
    CHECK_OK(kiln_dp_create(c, r->m, be, 1024, 1, zero, &r->dp));
    size_t lo, hi;
    kiln_dp_shard(r->dp, &lo, &hi);
    CHECK_OK(kiln_optim_create(&oc, r->m, be, lo, hi, &r->o));
}

static void dp_run_free(dp_run *r)
{
    kiln_optim_free(r->o);
    kiln_dp_free(r->dp);
    kiln_model_free(r->m);
}

/* One optimizer step (t: 1-based) on b; returns this rank's loss, and in *scored (if not
 * NULL) how many of its targets counted. */
static float dp_run_step(dp_run *r, const kiln_batch *b, int t, int64_t *scored)
{
    float loss = NAN;
    kiln_dp_zero_grads(r->dp);
    CHECK_OK(kiln_model_forward(r->m, b, 1, (uint64_t)t, &loss, NULL, scored));
    kiln_dp_begin_backward(r->dp, 1);
    CHECK_OK(kiln_model_backward(r->m, 1.0f));
    CHECK_OK(kiln_dp_finish(r->dp));
    kiln_optim_step(r->o, r->m, kiln_dp_shard_params(r->dp), kiln_dp_shard_param_copy(r->dp),
                    kiln_dp_shard_grads(r->dp), 1e-2f, 1.0f, t);
    CHECK_OK(kiln_dp_after_update(r->dp));
    return loss;
}

#endif
