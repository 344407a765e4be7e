/* Private pieces of the training job, split by concern: the run and its loop (train.c), the
 * step engine that turns batches into optimizer steps (kiln_train_engine_dp.c: data parallel with
 * ZeRO; pipelines next), checkpoint mapping (train_state.c), the registry (train_registry.c)
 * and the job-table entry (train_job.c). */
#ifndef KILN_TRAIN_INTERNAL_H
#define KILN_TRAIN_INTERNAL_H
#include <limits.h>
#include <stdio.h>
#include "kiln/ckpt.h"
#include "kiln/data.h"
#include "kiln/parallel.h"
#include "kiln/run_dir.h"
#include "kiln/topo.h"
#include "kiln/train.h"

typedef struct train_run train_run;

typedef struct step_result {
    double loss, grad_norm, lr;
    int grad_norm_known;               /* measured this step (see train_measure_grad_norm) */
    int64_t units;                     /* samples (mlp) or tokens (gpt) processed */
} step_result;

/* How a run turns batches into optimizer steps: the model's placement over the ranks, its
 * optimizer state, a step, the gradient norm and evaluation. Data parallelism (with ZeRO) is
 * one engine; pipeline stages will be another, chosen by parallel.pp. */
typedef struct train_engine {
    const char *name;
    /* After the model exists (warm-started): shard it, build the optimizer over its part. */
    kiln_status (*create)(train_run *r);
    /* One optimizer step from r->step: forwards, backwards, reduction, clipping, update. */
    kiln_status (*step)(train_run *r, step_result *out);
    /* Global L2 norm of this step's averaged gradient. */
    kiln_status (*grad_norm)(train_run *r, double *norm);
    /* Loss and accuracy on the eval split (max_batches > 0 limits the batches). */
    kiln_status (*evaluate)(train_run *r, int max_batches, kiln_eval_result *out);
    void (*free)(train_run *r);
} train_engine;

extern const train_engine kiln_train_engine_dp;

struct train_run {
    const kiln_train_config *cfg_in;   /* as given; cfg is the run's copy */
    kiln_train_config cfg;
    const kiln_train_opts *opts;
    char *config_yaml;
    const kiln_backend *be;
    kiln_rank_setup place;             /* this rank's threads, cores and GPU */
    const kiln_model_kind *kind;
    kiln_dataset *train_ds, *eval_ds;
    kiln_loader *train_loader, *eval_loader;
    kiln_model *model;
    kiln_optim *optim;
    kiln_comm *comm;
    const train_engine *engine;
    kiln_dp *dp;                       /* the data-parallel engine's state */
    int rank, world;                   /* this rank's place on the dp axis */
    int writer;                        /* the one rank of the world that writes files */
    int micro_batch, accum;            /* rows per forward on this rank; forwards per step */
    long step;                         /* optimizer steps completed */
    long stop_at;                      /* the step this invocation stops after */
    long evaluated_step;               /* the step of the last evaluation made (-1: none) */
    kiln_eval_result last_eval;
    int64_t samples_seen, tokens_seen;
    double best_eval_loss;
    kiln_run_dir *dir;
    char init_path[PATH_MAX];          /* train.init_from resolved to a file */
};

/* 1-based step whose loss or gradient was not finite: the error that stops the run. */
kiln_status kiln_train_nonfinite_error(train_run *r, const char *what, double value, long step);

/* Checkpoint the run into its ckpt dir (or dir, keeping `keep`); restore from a file. */
kiln_status kiln_train_save_checkpoint(train_run *r);
kiln_status kiln_train_save_checkpoint_to(train_run *r, const char *dir, int keep);
kiln_status kiln_train_restore_checkpoint(train_run *r, const char *path);

/* The registry (train_registry.c): check registry.* and pin train.init_from to a version
 * (kiln_train_validate, before anything is written); resolve it to a file and load the warm
 * start into the new model before it is sharded (unless the run resumes); keep the
 * best-by-eval checkpoint aside (periodic evals that improve, registry.name set); register
 * the final and best models at the end. */
kiln_status kiln_train_check_registry_config(kiln_train_config *c);
kiln_status kiln_train_warm_start(train_run *r, int resuming);
kiln_status kiln_train_keep_best(train_run *r, const kiln_eval_result *ev);
kiln_status kiln_train_register(train_run *r, const kiln_eval_result *ev);

#endif
