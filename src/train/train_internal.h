/* Private pieces of the training job, split by concern: the run state (train.c), evaluation
 * (train_eval.c), checkpoint mapping (train_state.c) and metrics output (metrics.c). */
#ifndef KILN_TRAIN_INTERNAL_H
#define KILN_TRAIN_INTERNAL_H
#include <stdio.h>
#include "kiln/ckpt.h"
#include "kiln/data.h"
#include "kiln/infer.h"
#include "kiln/parallel.h"
#include "kiln/topo.h"
#include "kiln/train.h"

typedef struct train_run {
    kiln_train_config cfg;
    char *config_yaml;
    const kiln_backend *be;
    kiln_rank_setup place;             /* this rank's threads, cores and GPU */
    kiln_dataset *train_ds, *eval_ds;
    kiln_loader *train_loader, *eval_loader;
    kiln_model *model;
    kiln_optim *optim;
    kiln_comm *comm;
    kiln_dp *dp;                       /* gradient averaging across the dp ranks */
    int rank, world;                   /* this rank's place on the dp axis */
    int micro_batch, accum;            /* rows per forward on this rank; forwards per step */
    long step;                         /* optimizer steps completed */
    int64_t samples_seen, tokens_seen;
    double best_eval_loss;
    char ckpt_dir[4096];
    char init_path[4096];              /* train.init_from resolved to a file */
    char metrics_path[4096];
    FILE *metrics;
} train_run;

typedef kiln_eval_result eval_result;

/* Evaluate on the eval split: max_batches > 0 limits the batches (periodic evals). */
kiln_status train_evaluate(train_run *r, int max_batches, eval_result *out);

/* Checkpoint the run into ckpt_dir (or dir, keeping `keep`); restore from a checkpoint file. */
kiln_status train_save_checkpoint(train_run *r);
kiln_status train_save_checkpoint_to(train_run *r, const char *dir, int keep);
kiln_status train_restore_checkpoint(train_run *r, const char *path);

/* The registry (train_registry.c): check registry.* and resolve train.init_from (pinning an
 * alias to its version) before anything is written; load the warm start into the new model
 * before it is sharded (unless the run resumes);
 * keep the best-by-eval checkpoint aside (periodic evals that improve, registry.name set);
 * register the final and best models at the end. */
kiln_status train_check_registry_config(train_run *r);
kiln_status train_warm_start(train_run *r, int resuming);
kiln_status train_keep_best(train_run *r, const eval_result *ev);
kiln_status train_register(train_run *r, const eval_result *ev);

/* metrics.jsonl: open for appending after dropping lines past `keep_through_step` (a resumed
 * run rewrites what came after its checkpoint); one JSON object per line. */
kiln_status metrics_open(train_run *r, long keep_through_step);
void metrics_write(train_run *r, const char *json_fields);
void metrics_close(train_run *r);

#endif
