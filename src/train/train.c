/* A training run: set it up from its config, resume it if its run directory has a checkpoint,
 * and run the optimizer steps through the step engine with periodic evaluation, metrics and
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
#include "train_internal.h"

/* World-size dependent checks (the rest is kiln_train_validate's). */
static kiln_status check_batch_config(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
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
    return KILN_OK;
}

static kiln_status open_data(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
    kiln_data_kind kind = r->kind->input;
    const char *eval_split = c->data.eval_split[0] ? c->data.eval_split : r->kind->eval_split;
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

/* The model, warm-started unless the run resumes (before ZeRO-3 shards its parameters), then
 * the step engine's placement of it and the optimizer. */
static kiln_status build_model(train_run *r, int resuming)
{
    const kiln_train_config *c = &r->cfg;
    int in_dim = kiln_dataset_width(r->train_ds);
    int n_out = kiln_dataset_num_classes(r->train_ds);
    KILN_CHECK(kiln_model_create(&c->model, in_dim, n_out, r->micro_batch, r->be,
                                 (uint64_t)c->train.seed, &r->model));
    KILN_CHECK(kiln_train_warm_start(r, resuming));
    return r->engine->create(r);
}

/* "auto": continue from the newest valid checkpoint if there is one; "never": start fresh
 * (refusing to mix with an existing run); anything else: that checkpoint (any argument
 * kiln_model_locate takes). *found = 1 and path when there is one to resume from. */
static kiln_status find_resume(train_run *r, const char *resume, char *path, size_t len,
                               int *found)
{
    const char *ckpt_dir = kiln_run_dir_ckpt(r->dir);
    *found = 0;
    if (!strcmp(resume, "never")) {
        char latest[PATH_MAX + 16];
        KILN_CHECK(kiln_path_format(latest, sizeof latest, "%s/latest", ckpt_dir));
        if (kiln_path_exists(latest))
            return KILN_ERROR(KILN_ERR_ARG,
                              "'%s' already holds checkpoints; use --resume auto to continue it "
                              "or set train.out_dir to a new directory", r->cfg.train.out_dir);
        return KILN_OK;
    }
    if (!strcmp(resume, "auto")) return kiln_ckpt_find_latest(ckpt_dir, path, len, found);
    KILN_CHECK(kiln_model_locate(kiln_registry_root(r->cfg.registry.path), resume, path, len, NULL));
    *found = 1;
    return KILN_OK;
}

static kiln_status setup(train_run *r, const kiln_train_opts *o)
{
    r->opts = o;
    r->cfg = *o->cfg;
    r->comm = o->comm;
    r->be = o->be;
    r->place = o->place;
    r->rank = kiln_comm_rank(r->comm, KILN_AXIS_DP);
    r->world = kiln_comm_size(r->comm, KILN_AXIS_DP);
    r->writer = kiln_comm_rank(r->comm, KILN_AXIS_WORLD) == 0;
    r->engine = &kiln_train_engine_dp;
    r->stop_at = o->stop_at > 0 && o->stop_at < r->cfg.train.steps ? o->stop_at : r->cfg.train.steps;
    r->evaluated_step = -1;
    KILN_CHECK(kiln_model_kind_get("model.kind", r->cfg.model.kind, &r->kind));
    r->config_yaml = kiln_config_to_yaml(&kiln_train_schema, &r->cfg);
    KILN_CHECK_ALLOC(r->config_yaml);
    KILN_CHECK(check_batch_config(r));
    KILN_CHECK(open_data(r));
    KILN_CHECK(kiln_run_dir_init(r->cfg.train.out_dir, r->writer, &r->dir));
    char resume_path[PATH_MAX];
    int resuming;
    KILN_CHECK(find_resume(r, o->resume ? o->resume : "auto", resume_path, sizeof resume_path,
                           &resuming));
    r->best_eval_loss = INFINITY;
    KILN_CHECK(build_model(r, resuming));
    if (resuming) KILN_CHECK(kiln_train_restore_checkpoint(r, resume_path));
    /* input accepted: from here on the run directory may be written (by the writer) */
    return kiln_run_dir_open(r->dir, r->step);
}

static void teardown(train_run *r)
{
    if (r->engine && r->engine->free) r->engine->free(r);
    kiln_run_dir_free(r->dir);
    kiln_loader_free(r->train_loader);
    kiln_loader_free(r->eval_loader);
    kiln_dataset_free(r->train_ds);
    kiln_dataset_free(r->eval_ds);
    kiln_optim_free(r->optim);
    kiln_model_free(r->model);
    free(r->config_yaml);
}

kiln_status kiln_train_nonfinite_error(train_run *r, const char *what, double value, long step)
{
    char latest[PATH_MAX] = "none";
    int found = 0;
    if (kiln_ckpt_find_latest(kiln_run_dir_ckpt(r->dir), latest, sizeof latest, &found) != KILN_OK ||
        !found)
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
    KILN_CHECK(r->engine->grad_norm(r, &s->grad_norm));
    s->grad_norm_known = 1;
    if (!isfinite(s->grad_norm)) return kiln_train_nonfinite_error(r, "gradient norm", s->grad_norm, step);
    return KILN_OK;
}

/* Evaluates, logs (unless this step's evaluation is logged already: a finished run rerun),
 * keeps the best; *stop = 1 when the caller's hook ends the run here. */
static kiln_status run_eval(train_run *r, int max_batches, kiln_eval_result *ev, int *stop)
{
    KILN_CHECK(r->engine->evaluate(r, max_batches, ev));
    r->evaluated_step = r->step;
    r->last_eval = *ev;
    char line[512];
    snprintf(line, sizeof line, "\"step\":%ld,\"eval_loss\":%.6f,\"eval_accuracy\":%.6f,\"eval_targets\":%lld",
             r->step, ev->loss, ev->accuracy, (long long)ev->targets);
    if (kiln_run_dir_last_logged(r->dir, "eval_loss") < r->step) kiln_run_dir_log(r->dir, line);
    kiln_info("eval step %ld: loss %.4f accuracy %.4f", r->step, ev->loss, ev->accuracy);
    *stop = r->opts->on_eval && r->opts->on_eval(r->opts->hook_ctx, r->step, ev);
    if (ev->loss >= r->best_eval_loss) return KILN_OK;
    r->best_eval_loss = ev->loss;
    /* periodic evals run before the last step; the final model is kept by its checkpoint */
    return r->step < r->cfg.train.steps ? kiln_train_keep_best(r, ev) : KILN_OK;
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
    int is_lm = r->kind->input == KILN_DATA_LM;
    double rate = seconds > 0 ? (double)units / seconds : 0.0;
    double gflops = rate * kiln_model_train_flops_per_unit(r->model) * 1e-9;
    char line[512];
    double wait = r->dp ? kiln_dp_take_wait_s(r->dp) : 0.0;
    snprintf(line, sizeof line,
             "\"step\":%ld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,\"%s\":%.1f,"
             "\"gflops\":%.2f,\"comm_wait_s\":%.4f",
             r->step, s->loss, s->lr, s->grad_norm, is_lm ? "tokens_per_s" : "samples_per_s",
             rate, gflops, wait);
    kiln_run_dir_log(r->dir, line);
    kiln_debug("step %ld loss %.4f lr %.3g |g| %.3f %.0f %s/s %.1f GFLOP/s", r->step, s->loss,
               s->lr, s->grad_norm, rate, is_lm ? "tokens" : "samples", gflops);
}

typedef struct run_totals {
    double train_s;
    int64_t units;
} run_totals;

static kiln_status write_summary(train_run *r, const kiln_eval_result *ev, const step_result *last,
                                 const run_totals *tot)
{
    int is_lm = r->kind->input == KILN_DATA_LM;
    double rate = tot->train_s > 0 ? (double)tot->units / tot->train_s : 0.0;
    char json[1024];
    snprintf(json, sizeof json,
             "{\"steps\":%ld,\"final_loss\":%.6f,\"eval_loss\":%.6f,\"eval_accuracy\":%.6f,"
             "\"best_eval_loss\":%.6f,\"params\":%zu,\"%s\":%.1f,\"gflops\":%.2f,"
             "\"samples_seen\":%lld,\"tokens_seen\":%lld}\n",
             r->step, last->loss, ev->loss, ev->accuracy, r->best_eval_loss,
             kiln_model_num_params(r->model), is_lm ? "tokens_per_s" : "samples_per_s", rate,
             rate * kiln_model_train_flops_per_unit(r->model) * 1e-9,
             (long long)r->samples_seen, (long long)r->tokens_seen);
    if (!r->writer) return KILN_OK;
    KILN_CHECK(kiln_run_dir_write_summary(r->dir, json));
    printf("kiln train: %ld steps, eval loss %.4f, eval accuracy %.2f%%", r->step, ev->loss,
           100.0 * ev->accuracy);
    if (tot->units) printf(", final train loss %.4f", last->loss);
    if (tot->units) printf(", %.0f %s/s", rate, is_lm ? "tokens" : "samples");
    printf("\nsummary: %s/summary.json\n", kiln_run_dir_path(r->dir));
    return KILN_OK;
}

/* What follows step r->step, the same on every rank. */
typedef struct step_plan {
    int signalled;              /* some rank was asked to stop (agreed) */
    int log_now;                /* a metrics line */
    int periodic_ckpt;          /* train.ckpt_every */
    int at_stop;                /* opts->stop_at reached before train.steps */
} step_plan;

static kiln_status plan_step(train_run *r, step_plan *p)
{
    const kiln_train_config *c = &r->cfg;
    long total = c->train.steps;
    KILN_CHECK(stop_requested(r, &p->signalled));
    p->log_now = c->train.log_every > 0 && (r->step % c->train.log_every == 0 || r->step == total);
    p->periodic_ckpt = c->train.ckpt_every > 0 && r->step % c->train.ckpt_every == 0 &&
                       r->step < total;
    p->at_stop = r->step == r->stop_at && r->stop_at < total;
    return KILN_OK;
}

/* After step r->step: evaluate and checkpoint as planned. *done = 1 when the run stops here
 * (a signal: KILN_ERR_INTERRUPTED; the caller's hook or stop_at: KILN_OK). */
static kiln_status after_step(train_run *r, const step_plan *p, int *done)
{
    const kiln_train_config *c = &r->cfg;
    long total = c->train.steps;
    int signalled = p->signalled, at_stop = p->at_stop, periodic_ckpt = p->periodic_ckpt;
    int hooked = 0;
    kiln_eval_result ev;
    if ((c->train.eval_every > 0 && r->step % c->train.eval_every == 0 && r->step < total) ||
        at_stop)
        KILN_CHECK(run_eval(r, c->train.eval_batches, &ev, &hooked));
    *done = signalled || hooked || at_stop;
    if (periodic_ckpt || *done) KILN_CHECK(kiln_train_save_checkpoint(r)); /* the final one: later */
    if (!signalled) return KILN_OK;
    kiln_warn("stop requested (SIGTERM/SIGUSR1): checkpointed step %ld, exiting for requeue", r->step);
    return KILN_ERROR(KILN_ERR_INTERRUPTED,
                      "stopped by a signal at step %ld (checkpoint written; rerun to resume)",
                      r->step);
}

static kiln_status train_loop(train_run *r)
{
    const kiln_train_config *c = &r->cfg;
    long total = c->train.steps;
    step_result s = {0};
    run_totals tot = {0};
    kiln_progress *prog = kiln_progress_start("train", (uint64_t)r->stop_at,
                                               c->train.progress_interval,
                                               kiln_comm_rank(r->comm, KILN_AXIS_WORLD));
    double t_log = kiln_time_s();
    int64_t units_since_log = 0;
    int done = 0;
    kiln_status st = KILN_OK;
    if (r->step >= r->stop_at) kiln_info("already at step %ld of %ld: nothing to train", r->step, r->stop_at);
    while (st == KILN_OK && !done && r->step < r->stop_at) {
        double t0 = kiln_time_s();
        step_plan p = {0};
        st = r->engine->step(r, &s);
        if (st == KILN_OK) st = plan_step(r, &p);
        /* what reads the gradient norm: a metrics line, a checkpoint (periodic, final, a stop);
         * the same decision on every rank, since at ZeRO >= 1 measuring it is collective */
        if (st == KILN_OK && (p.log_now || p.periodic_ckpt || p.signalled || p.at_stop ||
                              r->step == total))
            st = measure_grad_norm(r, &s, r->step);
        if (st != KILN_OK) break;
        tot.train_s += kiln_time_s() - t0;
        tot.units += s.units;
        units_since_log += s.units;
        if (p.log_now) {
            log_step(r, &s, units_since_log, kiln_time_s() - t_log);
            units_since_log = 0;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f", s.loss);
        kiln_progress_update(prog, (uint64_t)r->step, extra);
        st = after_step(r, &p, &done);
        t_log = units_since_log ? t_log : kiln_time_s();
    }
    kiln_progress_finish(prog);
    KILN_CHECK(st);
    if (r->step < total) { /* stopped early on purpose, checkpointed; evaluated here (a rerun
                            * that found the run at its stop step already evaluates now) */
        int ignored;
        kiln_eval_result ev;
        if (r->evaluated_step != r->step) KILN_CHECK(run_eval(r, c->train.eval_batches, &ev, &ignored));
        return KILN_OK;
    }
    kiln_eval_result ev;
    int ignored;
    KILN_CHECK(run_eval(r, 0, &ev, &ignored));
    if (tot.units) KILN_CHECK(kiln_train_save_checkpoint(r)); /* a finished run rerun saves nothing */
    KILN_CHECK(write_summary(r, &ev, &s, &tot));
    return kiln_train_register(r, &ev);
}

kiln_status kiln_train_run(const kiln_train_opts *opts)
{
    train_run *r = calloc(1, sizeof *r);
    KILN_CHECK_ALLOC(r);
    kiln_status st;
    KILN_CHECK_GOTO(st, setup(r, opts), done);
    KILN_CHECK_GOTO(st, train_loop(r), done);
    if (opts->result) *opts->result = r->last_eval;
    if (opts->end_step) *opts->end_step = r->step;
done:
    teardown(r);
    free(r);
    return st;
}
