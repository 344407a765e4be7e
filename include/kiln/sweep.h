/* `kiln sweep`: hyperparameter sweeps with ASHA (asynchronous successive halving, Li et al.,
 * MLSys 2020) over training runs, durable in a sweep directory and shared by any number of
 * workers that come and go (MPI rank groups, Slurm array tasks). docs/sweep.md is the guide.
 *
 * The sweep directory holds journal.jsonl, the truth: every decision (a trial drawn, a trial
 * leased to a worker for a rung, a heartbeat, a result, a failure) is appended under a lock,
 * and any worker rebuilds the whole state by replaying it. Each trial is a training run in
 * DIR/trials/NNNNN (a run directory with checkpoints): a trial promoted to the next rung
 * continues from its checkpoint, with the learning-rate schedule of a run to r_max, so it ends
 * where the same config trained straight through would. */
#ifndef KILN_SWEEP_H
#define KILN_SWEEP_H
#include "kiln/config.h"
#include "kiln/job.h"
#include "kiln/train.h"

/* The `sweep` section. */
typedef struct kiln_sweep_section {
    kiln_cfg_str dir;           /* the sweep directory; %A, %j, %x expand as in train.out_dir */
    kiln_cfg_map space;         /* KEY: uniform(lo, hi) | loguniform(lo, hi) | int(lo, hi) |
                                   choice(a, b, ...) for any training config key */
    kiln_cfg_str metric;        /* eval_loss | eval_accuracy */
    kiln_cfg_str mode;          /* min | max */
    kiln_cfg_str sampler;       /* random | grid | tpe */
    int64_t seed;
    kiln_cfg_str scheduler;     /* asha | none (every trial to r_max) */
    int eta;                    /* reduction factor */
    int r_min, r_max;           /* steps of the first rung, and of a full run (0: train.steps) */
    int trials;                 /* budget: trials drawn (0: no limit; grid: the grid's size) */
    int64_t total_steps;        /* budget: steps leased over all trials (0: no limit) */
    double wall_time;           /* budget: seconds since the sweep started (0: no limit) */
    int ranks_per_trial;        /* ranks of a worker (an MPI job splits into workers) */
    double lease_s;             /* a worker that does not heartbeat for this long loses its trial */
    int max_retries;            /* a trial whose worker died more often than this fails */
    int grid_points;            /* grid: points of a continuous dimension */
    int tpe_startup;            /* tpe: results a rung needs before TPE models it (random before) */
    kiln_cfg_str warm_start;    /* an earlier sweep directory whose finished trials seed TPE */
} kiln_sweep_section;

typedef struct kiln_sweep_config {
    kiln_train_config train;    /* every trial's config, before the space's values */
    kiln_sweep_section sweep;
} kiln_sweep_config;

extern const kiln_cfg_schema kiln_sweep_schema;

/* `kiln sweep` in the job table (with its tools `status`, `report` and `simulate`). */
extern const kiln_job_kind kiln_sweep_job;

#endif
