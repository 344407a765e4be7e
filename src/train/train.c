/* `kiln train`: set up a run from its config, resume it if a checkpoint exists, and run the
 * optimizer steps with gradient accumulation, clipping, periodic evaluation, metrics and
 * checkpoints. Everything that can reject the input (config, dataset, checkpoint) runs before
 * the run directory is touched, so bad input leaves no output behind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/progress.h"
#include "kiln/registry.h"
#include "kiln/runtime.h"
#include "kiln/slurm.h"
#include "kiln/topo.h"
#include "train_internal.h"

static kiln_status check_batch_config(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
    if (c->train.steps <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "train.steps must be positive, found %d", c->train.steps);
    if (c->train.batch_size <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "train.batch_size must be positive, found %d",
                          c->train.batch_size);
    if (c->parallel.pp != 1)
        return KILN_ERROR(KILN_ERR_UNSUPPORTED,
                          "parallel.pp=%d: pipeline parallelism is not built yet; use 1",
                          c->parallel.pp);
    if (c->train.batch_size % r->world)
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "train.batch_size (%d) must be a multiple of the data-parallel ranks (%d)",
                          c->train.batch_size, r->world);
    int per_rank = c->train.batch_size / r->world;
    r->micro_batch = c->train.micro_batch > 0 ? c->train.micro_batch : per_rank;
    if (per_rank % r->micro_batch)
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "train.batch_size per rank (%d = %d / %d ranks) must be a multiple of "
                          "train.micro_batch (%d)",
                          per_rank, c->train.batch_size, r->world, r->micro_batch);
    r->accum = per_rank / r->micro_batch;
    if (!c->data.path[0])
        return KILN_ERROR(KILN_ERR_CONFIG, "data.path is empty: set it to a file made by `kiln data import`");
    return KILN_OK;
}

static kiln_status open_data(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
    int is_lm = !strcmp(c->model.kind, "gpt");
    kiln_data_kind kind = is_lm ? KILN_DATA_LM : KILN_DATA_CLASSIFY;
    const char *eval_split = c->data.eval_split[0] ? c->data.eval_split : (is_lm ? "val" : "test");
    int T = c->model.block_size;
    KILN_CHECK(kiln_dataset_open(c->data.path, c->data.train_split, kind, T, &r->train_ds));
    KILN_CHECK(kiln_dataset_open(c->data.path, eval_split, kind, T, &r->eval_ds));
    /* the CPU backend on every core of the rank leaves no core for a prefetch thread */
    int on_caller = r->be->kind == KILN_DEVICE_CPU && !kiln_rank_has_spare_core(&r->place);
    kiln_loader_opts train_opts = {r->micro_batch, 1, 1, (uint64_t)c->train.seed, r->rank, r->world,
                                   on_caller};
    kiln_loader_opts eval_opts = {r->micro_batch, 0, 0, (uint64_t)c->train.seed, r->rank, r->world,
                                  on_caller};
    KILN_CHECK(kiln_loader_create(r->train_ds, &train_opts, &r->train_loader));
    KILN_CHECK(kiln_loader_create(r->eval_ds, &eval_opts, &r->eval_loader));
    return KILN_OK;
}

/* The model, warm-started unless the run resumes (before ZeRO-3 shards its parameters), the
 * data-parallel engine and the optimizer over this rank's shard. */
static kiln_status build_model(train_run *r, int resuming)
{
    const kiln_train_config *c = &r->cfg;
    int in_dim = kiln_dataset_width(r->train_ds);
    int n_out = kiln_dataset_num_classes(r->train_ds);
    KILN_CHECK(kiln_model_create(&c->model, in_dim, n_out, r->micro_batch, r->be,
                                 (uint64_t)c->train.seed, &r->model));
    KILN_CHECK(train_warm_start(r, resuming));
    size_t bucket_bytes = (size_t)(c->parallel.bucket_mb * 1048576.0);
    KILN_CHECK(kiln_dp_create(r->comm, r->model, r->be, bucket_bytes, c->parallel.overlap,
                              c->parallel.zero, &r->dp));
    size_t lo, hi;
    kiln_dp_shard(r->dp, &lo, &hi);
    KILN_CHECK(kiln_optim_create(&c->optim, r->model, r->be, lo, hi, &r->optim));
    size_t pb, gb, ob, n = kiln_model_num_params(r->model);
    kiln_dp_bytes(r->dp, kiln_optim_num_states(r->optim), &pb, &gb, &ob);
    kiln_log(r->rank == 0 ? KILN_LOG_INFO : KILN_LOG_DEBUG,
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

/* "auto": continue from the newest valid checkpoint if there is one; "never": start fresh
 * (refusing to mix with an existing run); anything else: that checkpoint file or registry URI.
 * *found = 1 and path when there is one to resume from. */
static kiln_status find_resume(train_run *r, const char *resume, char *path, size_t len,
                               int *found)
{
    *found = 0;
    if (!strcmp(resume, "never")) {
        char latest[4200];
        snprintf(latest, sizeof latest, "%s/latest", r->ckpt_dir);
        if (kiln_path_exists(latest))
            return KILN_ERROR(KILN_ERR_ARG,
                              "'%s' already holds checkpoints; use --resume auto to continue it "
                              "or set train.out_dir to a new directory", r->cfg.train.out_dir);
        return KILN_OK;
    }
    if (!strcmp(resume, "auto")) return kiln_ckpt_find_latest(r->ckpt_dir, path, len, found);
    KILN_CHECK(kiln_registry_locate(kiln_registry_root(r->cfg.registry.path), resume, path, len,
                                    NULL));
    *found = 1;
    return KILN_OK;
}

/* train.out_dir may name the run after its Slurm job (%j, %x, ...): the job id survives a
 * requeue, so the requeued job finds the checkpoints its first run wrote. */
static kiln_status name_run_after_job(train_run *r)
{
    kiln_cfg_str dir;
    KILN_CHECK(kiln_slurm_expand(kiln_slurm(), "train.out_dir", r->cfg.train.out_dir, dir, sizeof dir));
    memcpy(r->cfg.train.out_dir, dir, sizeof dir);
    return KILN_OK;
}

static kiln_status setup(train_run *r, const kiln_train_opts *o)
{
    KILN_CHECK(kiln_config_load(&kiln_train_schema, &r->cfg, o->config_path, o->overrides,
                                o->n_overrides));
    KILN_CHECK(name_run_after_job(r));
    r->comm = o->comm;
    r->rank = kiln_comm_rank(r->comm, KILN_AXIS_DP);
    r->world = kiln_comm_size(r->comm, KILN_AXIS_DP);
    KILN_CHECK(train_check_registry_config(r)); /* pins train.init_from before it is stored */
    r->config_yaml = kiln_config_to_yaml(&kiln_train_schema, &r->cfg);
    KILN_CHECK_ALLOC(r->config_yaml);
    KILN_CHECK(check_batch_config(r));
    KILN_CHECK(kiln_topo_place_rank(r->cfg.placement.bind, r->cfg.placement.cores_per_rank,
                                    r->cfg.train.threads, &r->place));
    KILN_CHECK(kiln_backend_select(r->cfg.backend.name, r->cfg.train.precision, r->place.gpu,
                                   &r->be));
    KILN_CHECK(kiln_comm_attach_device(r->comm, r->be));
    if (kiln_log_enabled(KILN_LOG_INFO))
        fprintf(stderr, "# resolved config (%s backend, %d threads)\n%s", r->be->name,
                r->place.threads, r->config_yaml);
    KILN_CHECK(open_data(r));
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/ckpt", r->cfg.train.out_dir);
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/metrics.jsonl", r->cfg.train.out_dir);
    char resume_path[4096];
    int resuming;
    KILN_CHECK(find_resume(r, o->resume ? o->resume : "auto", resume_path, sizeof resume_path,
                           &resuming));
    KILN_CHECK(build_model(r, resuming));
    r->best_eval_loss = INFINITY;
    if (resuming) KILN_CHECK(train_restore_checkpoint(r, resume_path));
    /* input accepted: from here on the run directory may be written (by rank 0) */
    if (kiln_comm_rank(r->comm, KILN_AXIS_WORLD) == 0) {
        KILN_CHECK(kiln_mkdir_p(r->ckpt_dir));
        KILN_CHECK(metrics_open(r, r->step));
    }
    return KILN_OK;
}

static void teardown(train_run *r)
{
    metrics_close(r);
    kiln_dp_free(r->dp);
    kiln_loader_free(r->train_loader);
    kiln_loader_free(r->eval_loader);
    kiln_dataset_free(r->train_ds);
    kiln_dataset_free(r->eval_ds);
    kiln_optim_free(r->optim);
    kiln_model_free(r->model);
    free(r->config_yaml);
}

typedef struct step_result {
    double loss, grad_norm, lr;
    int grad_norm_known;               /* measured this step (see measure_grad_norm) */
    int64_t units;                     /* samples (mlp) or tokens (gpt) processed */
} step_result;

/* step: the 1-based step whose loss or gradient was not finite */
static kiln_status nonfinite_error(train_run *r, const char *what, double value, long step)
{
    char latest[4096] = "none";
    int found = 0;
    if (kiln_ckpt_find_latest(r->ckpt_dir, latest, sizeof latest, &found) != KILN_OK || !found)
        snprintf(latest, sizeof latest, "none");
    kiln_error_clear();
    return KILN_ERROR(KILN_ERR_NUMERIC,
                      "non-finite %s (%g) at step %ld; stopping without checkpointing it. "
                      "Last good checkpoint: %s. Lower optim.lr or set optim.grad_clip.",
                      what, value, step, latest);
}

/* The gradient norm costs a pass over every gradient. Clipping needs it before the update;
 * otherwise it is measured only for what reads it (a metrics line, a checkpoint), after the
 * update, which leaves the gradients untouched. An unmeasured non-finite gradient makes the
 * next step's loss non-finite, and that stops the run before any checkpoint is written. */
static kiln_status measure_grad_norm(train_run *r, step_result *s, long step)
{
    if (s->grad_norm_known) return KILN_OK;
    KILN_CHECK(kiln_dp_grad_norm(r->dp, &s->grad_norm));
    s->grad_norm_known = 1;
    if (!isfinite(s->grad_norm)) return nonfinite_error(r, "gradient norm", s->grad_norm, step);
    return KILN_OK;
}

static kiln_status train_step(train_run *r, step_result *out)
{
    const kiln_train_config *c = &r->cfg;
    const kiln_backend *be = r->be;
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
        if (!isfinite(loss)) return nonfinite_error(r, "loss", loss, r->step + 1);
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
        KILN_CHECK(measure_grad_norm(r, out, r->step + 1));
        clip = kiln_clip_factor(out->grad_norm, c->optim.grad_clip);
    }
    out->lr = kiln_schedule_lr(&c->schedule, c->optim.lr, r->step, c->train.steps);
    kiln_optim_step(r->optim, r->model, kiln_dp_shard_params(r->dp),
                    kiln_dp_shard_param_copy(r->dp), kiln_dp_shard_grads(r->dp), (float)out->lr,
                    clip, (int)r->step + 1);
    KILN_CHECK(kiln_dp_after_update(r->dp));
    KILN_CHECK(be->synchronize(be->stream)); /* a failed GPU kernel of this step */
    r->step++;
    return KILN_OK;
}

static kiln_status run_eval(train_run *r, int max_batches, eval_result *ev)
{
    KILN_CHECK(train_evaluate(r, max_batches, ev));
    char line[512];
    snprintf(line, sizeof line, "\"step\":%ld,\"eval_loss\":%.6f,\"eval_accuracy\":%.6f,\"eval_targets\":%lld",
             r->step, ev->loss, ev->accuracy, (long long)ev->targets);
    metrics_write(r, line);
    kiln_info("eval step %ld: loss %.4f accuracy %.4f", r->step, ev->loss, ev->accuracy);
    if (ev->loss >= r->best_eval_loss) return KILN_OK;
    r->best_eval_loss = ev->loss;
    /* periodic evals run before the last step; the final model is kept by its checkpoint */
    return r->step < r->cfg.train.steps ? train_keep_best(r, ev) : KILN_OK;
}

/* 1 if any rank was asked to stop. Ranks receive a forwarded signal at slightly different
 * times; agreeing here makes them all checkpoint the same step and stop together. */
static kiln_status stop_requested(train_run *r, int *stop)
{
    double any = kiln_signals_pending() != 0;
    KILN_CHECK(kiln_comm_allreduce_f64(r->comm, KILN_AXIS_WORLD, &any, 1));
    *stop = any > 0;
    return KILN_OK;
}

static void log_step(train_run *r, const step_result *s, int64_t units, double seconds)
{
    int is_lm = kiln_model_data_kind(r->model) == KILN_DATA_LM;
    double rate = seconds > 0 ? (double)units / seconds : 0.0;
    double gflops = rate * kiln_model_train_flops_per_unit(r->model) * 1e-9;
    char line[512];
    snprintf(line, sizeof line,
             "\"step\":%ld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,\"%s\":%.1f,"
             "\"gflops\":%.2f,\"comm_wait_s\":%.4f",
             r->step, s->loss, s->lr, s->grad_norm, is_lm ? "tokens_per_s" : "samples_per_s",
             rate, gflops, kiln_dp_take_wait_s(r->dp));
    metrics_write(r, line);
    kiln_debug("step %ld loss %.4f lr %.3g |g| %.3f %.0f %s/s %.1f GFLOP/s", r->step, s->loss,
               s->lr, s->grad_norm, rate, is_lm ? "tokens" : "samples", gflops);
}

typedef struct run_totals {
    double train_s;
    int64_t units;
} run_totals;

static kiln_status write_summary(train_run *r, const eval_result *ev, const step_result *last,
                                 const run_totals *tot)
{
    int is_lm = kiln_model_data_kind(r->model) == KILN_DATA_LM;
    double rate = tot->train_s > 0 ? (double)tot->units / tot->train_s : 0.0;
    char json[1024];
    int n = snprintf(json, sizeof json,
                     "{\"steps\":%ld,\"final_loss\":%.6f,\"eval_loss\":%.6f,\"eval_accuracy\":%.6f,"
                     "\"best_eval_loss\":%.6f,\"params\":%zu,\"%s\":%.1f,\"gflops\":%.2f,"
                     "\"samples_seen\":%lld,\"tokens_seen\":%lld}\n",
                     r->step, last->loss, ev->loss, ev->accuracy, r->best_eval_loss,
                     kiln_model_num_params(r->model), is_lm ? "tokens_per_s" : "samples_per_s",
                     rate, rate * kiln_model_train_flops_per_unit(r->model) * 1e-9,
                     (long long)r->samples_seen, (long long)r->tokens_seen);
    if (kiln_comm_rank(r->comm, KILN_AXIS_WORLD) != 0) return KILN_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", r->cfg.train.out_dir);
    KILN_CHECK(kiln_write_file_atomic(path, json, (size_t)n));
    printf("kiln train: %ld steps, eval loss %.4f, eval accuracy %.2f%%", r->step, ev->loss,
           100.0 * ev->accuracy);
    if (tot->units) printf(", final train loss %.4f", last->loss);
    if (tot->units) printf(", %.0f %s/s", rate, is_lm ? "tokens" : "samples");
    printf("\nsummary: %s\n", path);
    return KILN_OK;
}

static kiln_status train_loop(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
    long total = c->train.steps;
    step_result s = {0};
    run_totals tot = {0};
    kiln_progress *prog = kiln_progress_start("train", (uint64_t)total, c->train.progress_interval,
                                               kiln_comm_rank(r->comm, KILN_AXIS_WORLD));
    double t_log = kiln_time_s();
    int64_t units_since_log = 0;
    if (r->step >= total) kiln_info("already at step %ld of %ld: nothing to train", r->step, total);
    while (r->step < total) {
        double t0 = kiln_time_s();
        kiln_status st = train_step(r, &s);
        if (st != KILN_OK) { kiln_progress_finish(prog); return st; }
        int stop;
        KILN_CHECK(stop_requested(r, &stop));
        int log_now = c->train.log_every > 0 && (r->step % c->train.log_every == 0 || r->step == total);
        int periodic_ckpt = c->train.ckpt_every > 0 && r->step % c->train.ckpt_every == 0 &&
                            r->step < total;
        /* the final checkpoint comes after the loop */
        if (log_now || periodic_ckpt || stop || r->step == total)
            KILN_CHECK(measure_grad_norm(r, &s, r->step));
        tot.train_s += kiln_time_s() - t0;
        tot.units += s.units;
        units_since_log += s.units;
        if (log_now) {
            log_step(r, &s, units_since_log, kiln_time_s() - t_log);
            units_since_log = 0;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f", s.loss);
        kiln_progress_update(prog, (uint64_t)r->step, extra);
        eval_result ev;
        if (c->train.eval_every > 0 && r->step % c->train.eval_every == 0 && r->step < total)
            KILN_CHECK(run_eval(r, c->train.eval_batches, &ev));
        if (periodic_ckpt || stop)
            KILN_CHECK(train_save_checkpoint(r));
        if (stop) {
            kiln_progress_finish(prog);
            kiln_warn("stop requested (SIGTERM/SIGUSR1): checkpointed step %ld, exiting for requeue",
                      r->step);
            return KILN_ERROR(KILN_ERR_INTERRUPTED,
                              "stopped by a signal at step %ld (checkpoint written; rerun to resume)",
                              r->step);
        }
        t_log = units_since_log ? t_log : kiln_time_s();
    }
    kiln_progress_finish(prog);
    eval_result ev;
    KILN_CHECK(run_eval(r, 0, &ev));
    if (tot.units) KILN_CHECK(train_save_checkpoint(r)); /* a finished run rerun saves nothing */
    KILN_CHECK(write_summary(r, &ev, &s, &tot));
    return train_register(r, &ev);
}

kiln_status kiln_train_run(const kiln_train_opts *opts)
{
    train_run *r = calloc(1, sizeof *r);
    KILN_CHECK_ALLOC(r);
    kiln_status st;
    KILN_CHECK_GOTO(st, setup(r, opts), done);
    KILN_CHECK_GOTO(st, train_loop(r), done);
done:
    teardown(r);
    free(r);
    return st;
}
