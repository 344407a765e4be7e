/* The data-parallel step engine: every rank holds the whole model (or, with ZeRO, its shard of
 * the optimizer state, gradients and parameters), runs its micro-batches of the global batch,
 * and the gradients are averaged over the dp axis in buckets overlapped with backward
 * (kiln/parallel.h). */
#include <math.h>
#include "kiln/log.h"
#include "train_internal.h"

static kiln_status dp_create(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
    size_t bucket_bytes = (size_t)(c->parallel.bucket_mb * 1048576.0);
    KILN_CHECK(kiln_dp_create(r->comm, r->model, r->be, bucket_bytes, c->parallel.overlap,
                              c->parallel.zero, &r->dp));
    size_t lo, hi;
    kiln_dp_shard(r->dp, &lo, &hi);
    KILN_CHECK(kiln_optim_create(&c->optim, r->model, r->be, lo, hi, &r->optim));
    size_t pb, gb, ob, n = kiln_model_num_params(r->model);
    kiln_dp_bytes(r->dp, kiln_optim_num_states(r->optim), &pb, &gb, &ob);
    kiln_log(r->writer ? KILN_LOG_INFO : KILN_LOG_DEBUG,
             "memory: rank %d holds params %zu B, grads %zu B, optimizer state %zu B (ZeRO-%d, "
             "shard [%zu, %zu) of %zu): %.2f B per parameter, %s",
             r->rank, pb, gb, ob, c->parallel.zero, lo, hi, n,
             n ? (double)(pb + gb + ob) / (double)n : 0.0,
             r->be->precision == KILN_PRECISION_BF16
                 ? "bf16 parameters, gradients and activations, fp32 master weights and state"
                 : "fp32");
    kiln_info("model %s: %zu parameters in %d tensors, %d blocks; batch %d = %d ranks x %d x %d "
              "micro-batches; %d all-reduce buckets",
              c->model.kind, kiln_model_num_params(r->model), kiln_model_num_tensors(r->model),
              kiln_model_num_blocks(r->model), c->train.batch_size, r->world, r->accum,
              r->micro_batch, kiln_dp_num_buckets(r->dp));
    return KILN_OK;
}

static kiln_status dp_grad_norm(train_run *r, double *norm)
{
    return kiln_dp_grad_norm(r->dp, norm);
}

static kiln_status dp_step(train_run *r, step_result *out)
{
    const kiln_train_config *c = &r->cfg;
    kiln_dp_zero_grads(r->dp);
    /* this rank's loss sum, rows and scored tokens; summed over the ranks below */
    double sums[3] = {0.0, 0.0, 0.0};
    int is_lm = 0;
    for (int micro = 0; micro < r->accum; micro++) {
        const kiln_batch *b;
        float loss;
        int64_t targets;
        KILN_CHECK(kiln_loader_next(r->train_loader, &b));
        KILN_CHECK(kiln_model_forward(r->model, b, 1, (uint64_t)r->step, &loss, NULL, &targets));
        if (!isfinite(loss)) return kiln_train_nonfinite_error(r, "loss", loss, r->step + 1);
        kiln_dp_begin_backward(r->dp, micro == r->accum - 1);
        KILN_CHECK(kiln_model_backward(r->model, 1.0f / (float)r->accum));
        sums[0] += loss;
        sums[1] += b->B;
        sums[2] += (double)targets;
        is_lm = b->tokens != NULL;
    }
    KILN_CHECK(kiln_dp_finish(r->dp));
    KILN_CHECK(kiln_comm_allreduce_f64(r->comm, KILN_AXIS_DP, sums, 3));
    out->loss = sums[0] / (r->accum * r->world);
    r->samples_seen += (int64_t)sums[1];
    if (is_lm) r->tokens_seen += (int64_t)sums[2];
    out->units = (int64_t)(is_lm ? sums[2] : sums[1]);
    out->grad_norm_known = 0;
    float clip = 1.0f;
    if (c->optim.grad_clip > 0) {
        KILN_CHECK(dp_grad_norm(r, &out->grad_norm));
        out->grad_norm_known = 1;
        if (!isfinite(out->grad_norm))
            return kiln_train_nonfinite_error(r, "gradient norm", out->grad_norm, r->step + 1);
        clip = kiln_clip_factor(out->grad_norm, c->optim.grad_clip);
    }
    out->lr = kiln_schedule_lr(&c->schedule, c->optim.lr, r->step, c->train.steps);
    kiln_optim_step(r->optim, r->model, kiln_dp_shard_params(r->dp),
                    kiln_dp_shard_param_copy(r->dp), kiln_dp_shard_grads(r->dp), (float)out->lr,
                    clip, (int)r->step + 1);
    KILN_CHECK(kiln_dp_after_update(r->dp));
    KILN_CHECK(r->be->synchronize(r->be->stream)); /* a failed GPU kernel of this step */
    r->step++;
    return KILN_OK;
}

/* Always from the split's first row, so that periodic evaluations are comparable and do not
 * depend on where a run resumed. */
static kiln_status dp_evaluate(train_run *r, int max_batches, kiln_eval_result *out)
{
    return kiln_eval_loop(r->model, r->eval_loader, r->comm, (uint64_t)r->step, max_batches, out);
}

static void dp_free(train_run *r)
{
    kiln_dp_free(r->dp);
    r->dp = NULL;
}

const train_engine kiln_train_engine_dp = {"data parallel", dp_create, dp_step, dp_grad_norm,
                                      dp_evaluate, dp_free};
