/* `kiln train` in the job table: its help, its flags, the checks made before any rank starts
 * work, and the run, which hands the loaded config to kiln_train_run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/runtime.h"
#include "kiln/schedule.h"
#include "kiln/slurm.h"
#include "train_internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static const char train_usage[] =
    "usage: kiln train CONFIG.yaml [--set key=value ...] [--resume auto|never|FILE]\n"
    "                  [--stop-at STEP]\n\n"
    "Trains the model the config describes and writes to train.out_dir:\n"
    "  metrics.jsonl   one JSON object per logged step and per evaluation\n"
    "  ckpt/           HDF5 checkpoints (step-N.h5), `latest`, the last train.keep kept\n"
    "  summary.json    final loss, eval loss/accuracy, throughput\n\n"
    "options:\n"
    "  --set key=value   override any config key, e.g. --set optim.lr=3e-4\n"
    "                    --set model.hidden=256,256 (repeatable; applied in order)\n"
    "  --resume auto     (default) continue from the newest valid checkpoint in\n"
    "                    train.out_dir/ckpt if there is one, else start fresh\n"
    "  --resume never    start fresh; refuse if train.out_dir already has checkpoints\n"
    "  --resume FILE     continue from that checkpoint (a file, a run directory, or a\n"
    "                    registry:NAME@ALIAS)\n"
    "  --stop-at STEP    stop after STEP steps with a checkpoint, keeping the learning-rate\n"
    "                    schedule of train.steps; rerunning without it continues\n"
    "  --help-config     list every config key with its type, default and meaning\n\n"
    "Exit codes: 0 done, 1 failed, 2 bad input, " STR(KILN_EXIT_PREEMPTED) " stopped by SIGTERM or\n"
    "SIGUSR1 (Slurm preemption) after checkpointing the current step; rerunning the same command\n"
    "resumes.\n\n"
    "example:\n"
    "  kiln train configs/fmnist-mlp.yaml --set train.steps=200 --set optim.lr=2e-3\n";

static const kiln_job_flag train_flags[] = {
    {"--resume", NULL, "auto", 0},
    {"--stop-at", NULL, NULL, 0},
};

/* train.out_dir may name the run after its Slurm job (%j, %x, ...): the job id survives a
 * requeue, so the requeued job finds the checkpoints its first run wrote. */
static kiln_status name_run_after_job(kiln_train_config *c)
{
    kiln_cfg_str dir;
    KILN_CHECK(kiln_slurm_expand(kiln_slurm(), "train.out_dir", c->train.out_dir, dir, sizeof dir));
    memcpy(c->train.out_dir, dir, sizeof dir);
    return KILN_OK;
}

/* What a pipeline config cannot do, refused before anything runs with the keys named; then, as
 * pipeline execution is not built yet, any pp > 1. */
static kiln_status check_pipeline(const kiln_train_config *c)
{
    const kiln_parallel_config *p = &c->parallel;
    kiln_pp_schedule s;
    if (!kiln_pp_schedule_parse(p->schedule, &s))
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.schedule '%s': expected gpipe, 1f1b or interleaved", p->schedule);
    if (p->pp == 1 && p->virtual_stages == 1) return KILN_OK;
    if (p->pp == 1)
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.virtual_stages=%d needs pipeline stages (parallel.pp > 1)",
                          p->virtual_stages);
    int m = c->train.micro_batch > 0 ? c->train.batch_size / c->train.micro_batch : 1;
    KILN_CHECK(kiln_pp_schedule_check(s, p->pp, p->virtual_stages, m));
    if (p->pp > 1 && p->zero >= 2)
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.zero=%d with parallel.pp=%d: ZeRO-2 and 3 shard gradients and "
                          "parameters that the pipeline's micro-batches keep using; use parallel.zero=0 or 1 with "
                          "pipeline stages", p->zero, p->pp);
    return KILN_ERROR(KILN_ERR_UNSUPPORTED, "parallel.pp=%d: the pipeline schedules are checked (parallel.schedule=%s) "
                      "but pipeline execution is not built yet; use parallel.pp=1", p->pp, p->schedule);
}

kiln_status kiln_train_validate(kiln_train_config *c, kiln_job_resources *res)
{
    if (c->train.steps <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "train.steps must be positive, found %d", c->train.steps);
    if (c->train.batch_size <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "train.batch_size must be positive, found %d",
                          c->train.batch_size);
    KILN_CHECK(check_pipeline(c));
    if (!c->data.path[0])
        return KILN_ERROR(KILN_ERR_CONFIG, "data.path is empty: set it to a file made by `kiln data import`");
    const kiln_model_kind *kind;
    KILN_CHECK(kiln_model_kind_get("model.kind", c->model.kind, &kind));
    KILN_CHECK(name_run_after_job(c));
    KILN_CHECK(kiln_train_check_registry_config(c)); /* pins train.init_from before it is stored */
    *res = (kiln_job_resources){&c->placement, c->train.threads, c->backend.name,
                                c->train.precision, 1};
    return KILN_OK;
}

static kiln_status validate(void *config, kiln_job_resources *res)
{
    return kiln_train_validate(config, res);
}

static kiln_status parse_stop_at(const char *text, long *stop_at)
{
    char *end;
    *stop_at = text ? strtol(text, &end, 10) : 0;
    if (text && (*end || *stop_at <= 0))
        return KILN_ERROR(KILN_ERR_ARG, "--stop-at takes a step >= 1, found '%s'", text);
    return KILN_OK;
}

static kiln_status run(kiln_job *j)
{
    kiln_train_opts o = {.cfg = kiln_job_config(j),
                         .resume = kiln_job_option(j, "--resume"),
                         .comm = kiln_job_comm(j),
                         .be = kiln_job_backend(j),
                         .place = *kiln_job_placement(j)};
    KILN_CHECK(parse_stop_at(kiln_job_option(j, "--stop-at"), &o.stop_at));
    return kiln_train_run(&o);
}

static const char *output(kiln_job *j, const char **what)
{
    *what = "train.out_dir";
    return ((const kiln_train_config *)kiln_job_config(j))->train.out_dir;
}

const kiln_job_kind kiln_train_job = {
    .name = "train",
    .summary = "train a model (MLP or GPT) from a YAML config",
    .usage = train_usage,
    .schema = &kiln_train_schema,
    .config_size = sizeof(kiln_train_config),
    .config_positional = 1,
    .flags = train_flags,
    .n_flags = sizeof train_flags / sizeof train_flags[0],
    .validate = validate,
    .output = output,
    .run = run,
};
