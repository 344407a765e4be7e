/* The schema of `kiln sweep` configs: a whole training config (every trial's, before the
 * searched keys take their values) composed with the `sweep` section declared here. */
#include <stddef.h>
#include "kiln/sweep.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_sweep_section, field), def, choices, help}

static const kiln_cfg_key sweep_keys[] = {
    K("sweep.dir", KILN_CFG_STRING, dir, "sweeps/default", NULL,
      "sweep directory: journal.jsonl, trials/, shared by every worker; %A, %j, %x as in "
      "train.out_dir (an array's tasks share %A)"),
    K("sweep.space", KILN_CFG_MAP, space, "", NULL,
      "the search space: KEY: uniform(lo, hi) | loguniform(lo, hi) | int(lo, hi) | "
      "choice(a, b, ...) for any training config key"),
    K("sweep.metric", KILN_CFG_STRING, metric, "eval_loss", "eval_loss|eval_accuracy",
      "the objective: what training's evaluation reports at each rung"),
    K("sweep.mode", KILN_CFG_STRING, mode, "min", "min|max", "minimise or maximise the metric"),
    K("sweep.sampler", KILN_CFG_STRING, sampler, "random", "random|grid|tpe",
      "how trials' values are drawn: random (trial i's are the same whoever draws them), grid, "
      "or TPE (Bayesian, fitted on the results of the highest rung with enough of them)"),
    K("sweep.seed", KILN_CFG_INT64, seed, "0", "[0,)", "seed of the samplers"),
    K("sweep.scheduler", KILN_CFG_STRING, scheduler, "asha", "asha|none",
      "asha: stop the worse trials early at rungs r_min*eta^k; none: every trial to r_max"),
    K("sweep.eta", KILN_CFG_INT, eta, "3", "[2,)",
      "ASHA's reduction factor: the top 1/eta of a rung go on to the next"),
    K("sweep.r_min", KILN_CFG_INT, r_min, "100", "[1,)", "steps of the first rung"),
    K("sweep.r_max", KILN_CFG_INT, r_max, "0", "[0,)",
      "steps of a full run, the last rung (0: train.steps); sets every trial's train.steps"),
    K("sweep.trials", KILN_CFG_INT, trials, "0", "[0,)",
      "budget: trials drawn (0: no limit, but another budget must end the sweep; grid: its size)"),
    K("sweep.total_steps", KILN_CFG_INT64, total_steps, "0", "[0,)",
      "budget: training steps over all trials (0: no limit)"),
    K("sweep.wall_time", KILN_CFG_FLOAT, wall_time, "0", "[0,)",
      "budget: seconds after the sweep started when no new trial is drawn (0: no limit)"),
    K("sweep.ranks_per_trial", KILN_CFG_INT, ranks_per_trial, "1", "[1,)",
      "ranks of one worker: an MPI job of R ranks runs R / ranks_per_trial trials at a time"),
    K("sweep.lease_s", KILN_CFG_FLOAT, lease_s, "120", "[1,)",
      "a worker that has not heartbeat for this long loses its trial to another"),
    K("sweep.max_retries", KILN_CFG_INT, max_retries, "2", "[0,)",
      "a trial whose worker died more often than this is failed"),
    K("sweep.grid_points", KILN_CFG_INT, grid_points, "3", "[2,)",
      "grid: points of a uniform, loguniform or wide int dimension"),
    K("sweep.tpe_startup", KILN_CFG_INT, tpe_startup, "10", "[2,)",
      "tpe: results a rung needs before TPE models it (trials before are random)"),
    K("sweep.warm_start", KILN_CFG_STRING, warm_start, "", NULL,
      "an earlier sweep directory whose finished trials seed TPE"),
};

static const kiln_cfg_schema sweep_section = {"sweep", sweep_keys,
                                              sizeof sweep_keys / sizeof sweep_keys[0], NULL, 0};

static const kiln_cfg_part sweep_parts[] = {
    {&kiln_train_schema, offsetof(kiln_sweep_config, train)},
    {&sweep_section, offsetof(kiln_sweep_config, sweep)},
};

const kiln_cfg_schema kiln_sweep_schema = {"sweep", NULL, 0, sweep_parts,
                                           sizeof sweep_parts / sizeof sweep_parts[0]};
