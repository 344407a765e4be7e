/* `kiln train`: the training job. Its config (schema in src/train/train_config.c) and the
 * entry point that the CLI calls. */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H
#include <stdint.h>
#include "kiln/comm.h"
#include "kiln/config.h"
#include "kiln/job.h"
#include "kiln/model.h"
#include "kiln/model_open.h"
#include "kiln/optim.h"
#include "kiln/parallel.h"
#include "kiln/registry.h"
#include "kiln/topo.h"
#include "kiln/status.h"

typedef struct kiln_train_config {
    kiln_model_config model;
    kiln_data_config data;
    kiln_optim_config optim;
    kiln_schedule_config schedule;
    struct {
        int steps;                  /* optimizer steps */
        int batch_size;             /* global rows (sequences) per step */
        int micro_batch;            /* rows per forward/backward; 0 = batch_size */
        int64_t seed;
        int eval_every;             /* 0 = only at the end */
        int eval_batches;           /* 0 = the whole eval split */
        int log_every;
        int ckpt_every;             /* 0 = only at the end */
        int keep;                   /* checkpoints kept */
        int threads;                /* OpenMP/BLAS threads; 0 = all cores of this rank */
        kiln_cfg_str out_dir;       /* metrics.jsonl, ckpt/, summary.json */
        kiln_cfg_str init_from;     /* warm start: model parameters only, from a checkpoint path
                                       or registry URI; "" = random init */
        double progress_interval;   /* seconds between progress lines when not on a terminal */
        kiln_cfg_str precision;     /* "fp32" | "bf16" (bf16 storage, fp32 master; cuda only) */
    } train;
    kiln_backend_config backend;
    kiln_registry_config registry;  /* path; name and alias: what the run registers */
    kiln_placement_config placement;
    kiln_parallel_config parallel;
} kiln_train_config;

extern const kiln_cfg_schema kiln_train_schema;

/* Called after every evaluation (periodic ones and the final one) on every rank, with the
 * step it evaluated: return 1 to stop the run there. A sweep stops a trial at its rung this
 * way; the learning-rate schedule stays the one train.steps defines. */
typedef int (*kiln_train_eval_hook)(void *ctx, long step, const kiln_eval_result *ev);

typedef struct kiln_train_opts {
    const kiln_train_config *cfg;   /* loaded and validated (kiln_train_validate) */
    const char *resume;             /* "auto" (default), "never", or a checkpoint path */
    kiln_comm *comm;                /* the ranks of this run (a sweep worker's group) */
    const kiln_backend *be;
    kiln_rank_setup place;          /* this rank's threads, cores and GPU */
    long stop_at;                   /* stop after this step, checkpointed (0: train.steps) */
    kiln_train_eval_hook on_eval;   /* may be NULL */
    void *hook_ctx;
    kiln_eval_result *result;       /* may be NULL: receives the evaluation at the step the run
                                       ends (stop_at, a hook's stop, or train.steps), made then
                                       if none was made at that step yet */
    long *end_step;                 /* may be NULL: receives that step */
} kiln_train_opts;

/* What the job runtime calls before anything runs: checks that span keys, names the run after
 * its Slurm job (%j in train.out_dir), pins a train.init_from alias to its version, and says
 * what the ranks need (placement, threads, backend). */
kiln_status kiln_train_validate(kiln_train_config *cfg, kiln_job_resources *res);

/* Run training to train.steps (or opts->stop_at), resuming where the run directory says. */
kiln_status kiln_train_run(const kiln_train_opts *opts);

/* `kiln train` in the job table. */
extern const kiln_job_kind kiln_train_job;

#endif
