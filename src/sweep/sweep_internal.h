/* The parts of `kiln sweep`, one concern per file:
 *   space.c       the search space: distributions parsed from sweep.space, values drawn
 *   sampler.c     random (counter-based) and grid points; tpe.c, the TPE sampler
 *   plan.c        the sweep's plan from its config: rungs, objective, budget, validation
 *   warm_start.c  sweep.warm_start: an earlier sweep's finished trials, for TPE
 *   state.c       the state rebuilt from the journal: trials, leases, results per rung
 *   recorded.c    a sweep as its directory records it (status, report, warm start)
 *   journal.c     the journal file: appended under a lock, replayed incrementally
 *   asha.c        the decision a free worker takes: resume, promote, draw, wait or finish
 *   latency.c     decision latencies and their quantiles
 *   worker.c      a worker: decide, train the trial on its ranks, heartbeat, report
 *   simulate.c    the scheduler against a simulated objective (tests, bench)
 *   report.c      `kiln sweep status` and the HTML report
 *   sweep_job.c   the job-table entry and its tools */
#ifndef KILN_SWEEP_INTERNAL_H
#define KILN_SWEEP_INTERNAL_H
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include "kiln/sweep.h"

/* ---- the search space (space.c) ---- */

typedef enum { DIST_UNIFORM, DIST_LOGUNIFORM, DIST_INT, DIST_CHOICE } sweep_dist_kind;

typedef struct sweep_dim {
    char key[KILN_CFG_MAP_KEY_MAX];    /* the training config key: "optim.lr" */
    sweep_dist_kind kind;
    double lo, hi;                     /* uniform, loguniform, int (inclusive) */
    char **choices;                    /* choice: the values' texts */
    int n_choices;
} sweep_dim;

/* A point of the space: per dimension, its coordinate: the value (log of it for loguniform)
 * for numbers, the choice's index for a choice. What TPE models and the report plots. */
typedef struct sweep_point {
    double x[KILN_CFG_MAP_MAX];
} sweep_point;

/* Parses every entry of sweep.space; errors name "sweep.space.KEY". keys (n_keys of them) are
 * the training config's keys: a dimension must be one of them. */
kiln_status kiln_sweep_space_parse(const kiln_cfg_map *space, const kiln_cfg_key *keys, size_t n_keys,
                              sweep_dim **dims, int *n_dims);
void kiln_sweep_space_free(sweep_dim *dims, int n_dims);
/* The coordinate for u in [0, 1) (uniform over the dimension; log-uniform for loguniform). */
double kiln_sweep_dim_from_unit(const sweep_dim *d, double u);
/* The --set value text of a coordinate: "0.00123", "256", "[256, 256]". */
void kiln_sweep_dim_format(const sweep_dim *d, double x, char *buf, size_t len);
/* Coordinate bounds (log space for loguniform; [0, n) for a choice). */
void kiln_sweep_dim_bounds(const sweep_dim *d, double *lo, double *hi);

/* ---- the plan (plan.c) ---- */

typedef enum { SAMPLER_RANDOM, SAMPLER_GRID, SAMPLER_TPE } sweep_sampler_kind;

typedef struct sweep_plan {
    kiln_sweep_config cfg;             /* the whole config, validated */
    char *config_yaml;                 /* as given (the journal's first event records its sha) */
    char dir[PATH_MAX];
    sweep_dim *dims;
    int n_dims;
    int maximize;                      /* mode max */
    sweep_sampler_kind sampler;
    int64_t *rungs;                    /* steps of each rung, ascending; the last is r_max */
    int n_rungs;
    int64_t trial_budget;              /* trials drawn at most (INT64_MAX: no limit) */
    int64_t grid_size;                 /* grid: points of the whole grid */
    sweep_point *warm_x;               /* sweep.warm_start: the earlier sweep's finished points */
    double *warm_y;                    /* and their values */
    int n_warm;
} sweep_plan;

/* The plan of a sweep config: every check made before any trial starts (the space, the
 * objective, eta, the rungs, the budget), errors naming the key. On an error nothing is left
 * to free. */
kiln_status kiln_sweep_plan_init(const kiln_sweep_config *cfg, sweep_plan *plan);
void kiln_sweep_plan_free(sweep_plan *plan);

/* sweep.warm_start (warm_start.c): the earlier sweep's finished trials into p->warm_x/_y, for
 * TPE; errors name sweep.warm_start. The plan's own dimensions must all be the earlier's. */
kiln_status kiln_sweep_warm_start_load(sweep_plan *plan);

/* ---- the state (state.c) ---- */

typedef enum { TRIAL_NEW, TRIAL_RUNNING, TRIAL_PAUSED, TRIAL_DONE, TRIAL_FAILED } sweep_trial_state;

typedef struct sweep_trial {
    int64_t id;
    sweep_point point;                 /* its values (kiln_sweep_dim_format gives their text) */
    sweep_trial_state state;
    int rung;                          /* the rung it is leased to or last reached (-1: none) */
    double *value;                     /* [n_rungs] objective at each rung (NaN: none) */
    double *value_time;                /* [n_rungs] seconds since the sweep started */
    int64_t lease;                     /* the current lease's id (its journal line) */
    double lease_until;                /* wall-clock seconds */
    char worker[96];                   /* "host:pid:gN" of the lease */
    int retries;                       /* leases lost to a dead worker */
    int released;                      /* its worker gave it back (stopped by a signal) */
    char error[512];                   /* a failure's cause */
    double busy_s;                     /* seconds its workers trained it */
} sweep_trial;

/* One rung's results, best first (ties: the lower trial id), kept sorted as results come:
 * a promotion looks at the top of it instead of sorting every trial each decision. */
typedef struct sweep_rank {
    double value;
    int64_t id;
} sweep_rank;

typedef struct sweep_rung_results {
    sweep_rank *r;
    int64_t n, cap;
} sweep_rung_results;

typedef struct sweep_state {
    const sweep_plan *plan;
    sweep_rung_results *by_rung;       /* [n_rungs] (NULL until the first result) */
    sweep_trial *trials;               /* by id: trials[i].id == i */
    int64_t n_trials, cap_trials;
    int64_t lines;                     /* journal lines applied (the next event's id) */
    double t_start;                    /* wall clock of the sweep's first event */
    char start_sha[65];                /* of the config the sweep was started with */
    int64_t steps_leased;              /* steps over every lease (compute budget) */
    int64_t results, failures;
    int64_t registered;                /* the registry version of the best trial (0: none) */
    int finished;                      /* a "done" event: the sweep is complete */
} sweep_state;

void kiln_sweep_state_init(sweep_state *s, const sweep_plan *plan);
void kiln_sweep_state_free(sweep_state *s);
/* One journal line; a line that does not parse or refers to what does not exist is counted
 * and skipped (a torn line of a writer killed mid-append). */
void kiln_sweep_state_apply(sweep_state *s, const char *line);
/* The best trial: the best value at the highest rung any trial reached (-1 when none). */
int64_t kiln_sweep_state_best(const sweep_state *s, int *rung, double *value);
/* 1 when a is better than b for the objective (ties: the lower trial id). */
int kiln_sweep_better(const sweep_plan *p, double a, int64_t ia, double b, int64_t ib);

/* ---- the journal (journal.c) ---- */

typedef struct sweep_journal {
    char path[PATH_MAX], lock_path[PATH_MAX];
    long offset;                       /* bytes replayed so far */
    int lock_fd;
    pthread_mutex_t mutex;             /* fcntl locks do not exclude the threads of a process */
} sweep_journal;

kiln_status kiln_sweep_journal_open(sweep_journal *j, const char *dir);
void kiln_sweep_journal_close(sweep_journal *j);
/* Takes the lock and replays what others appended since (into s). */
kiln_status kiln_sweep_journal_lock(sweep_journal *j, sweep_state *s);
/* Appends one event (a JSON object's text, no newline), durable on return; applies it to s. */
kiln_status kiln_sweep_journal_append(sweep_journal *j, sweep_state *s, const char *event);
void kiln_sweep_journal_unlock(sweep_journal *j);
/* Replays the whole journal of dir into s without taking the lock (status, report). */
kiln_status kiln_sweep_journal_read(const char *dir, sweep_state *s);

/* ---- decision latencies (latency.c) ---- */

typedef struct sweep_latency {
    double *s;                         /* seconds of each decision */
    int64_t n, cap;
    double sum;
} sweep_latency;

kiln_status kiln_sweep_latency_add(sweep_latency *l, double seconds);
/* The q-quantile (0.5: the median) of the seconds so far (0 when none); sorts them. */
double kiln_sweep_latency_quantile(sweep_latency *l, double q);
void kiln_sweep_latency_free(sweep_latency *l);

/* ---- the decision (asha.c) ---- */

typedef enum { JOB_RUN, JOB_WAIT, JOB_DONE } sweep_job_kind;

typedef struct sweep_job {
    sweep_job_kind kind;
    int64_t trial;
    int rung;
    int64_t lease;                     /* the lease's id */
    double wait_s;                     /* JOB_WAIT: how long until something may change */
    sweep_point point;                 /* JOB_RUN: the trial's values */
} sweep_job;

/* What a free worker does now, decided on the caught-up state s under the journal's lock: the
 * events that record it (a trial drawn, a lease, a failure) are appended through emit. now is
 * wall-clock seconds; alive says whether a lease's worker still lives (NULL: by time only). */
typedef kiln_status (*sweep_emit_fn)(void *ctx, const char *event);
typedef int (*sweep_alive_fn)(const char *worker);
/* An event (a jansson object, consumed; NULL: out of memory) through emit, as one compact line
 * with doubles at full precision (journal.c). */
struct json_t;
kiln_status kiln_sweep_emit_json(sweep_emit_fn emit, void *ctx, struct json_t *ev);
kiln_status kiln_sweep_decide(sweep_state *s, const char *worker, double now, double lease_s,
                         sweep_alive_fn alive, sweep_emit_fn emit, void *ctx, sweep_job *job);

/* ---- samplers (sampler.c, tpe.c) ---- */

/* The point of trial id: the plan's sampler over what s knows. */
void kiln_sweep_sample(const sweep_state *s, int64_t id, sweep_point *point);
/* TPE over the finished results of the highest rung holding tpe_startup of them (and the
 * warm-start observations); returns 0 when there are too few (then the caller draws at random). */
int kiln_sweep_tpe_sample(const sweep_state *s, int64_t id, sweep_point *point);
/* Philox uniform in [0, 1) of (seed, trial, dimension, draw). */
double kiln_sweep_uniform(uint64_t seed, int64_t trial, int dim, int draw);

/* ---- a worker (worker.c) ---- */

typedef struct sweep_worker_opts {
    const sweep_plan *plan;
    kiln_comm *group;                  /* this worker's ranks */
    int group_id;
    const kiln_backend *be;
    kiln_rank_setup place;
} sweep_worker_opts;

/* Until the sweep is complete: decide, train, report; group rank 0 talks to the journal. */
kiln_status kiln_sweep_worker_run(const sweep_worker_opts *o);

/* ---- a sweep as recorded (recorded.c) ---- */

/* The plan of the config dir's start event and the state its journal replays to (no lock);
 * free both with kiln_sweep_state_free and kiln_sweep_plan_free. */
kiln_status kiln_sweep_open_recorded(const char *dir, sweep_plan *plan, sweep_state *state);

/* ---- results (report.c) ---- */

/* as_json: the same at full precision, as one JSON document. */
kiln_status kiln_sweep_print_status(const char *dir, int as_json, FILE *out);
kiln_status kiln_sweep_write_report(const char *dir, const char *out_path);

/* ---- simulation (simulate.c) ---- */

/* `kiln sweep simulate`: the scheduler's decisions against a simulated objective, as JSON
 * lines on out (see simulate.c for the objective and the clock). */
int kiln_sweep_simulate_main(int argc, char **argv);

#endif
