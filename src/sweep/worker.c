/* A worker of a sweep: its ranks (a group of sweep.ranks_per_trial) take the next job from the
 * journal (group rank 0 decides, under the lock, and tells the others), train that trial to its
 * rung on all of them, and report the objective. While a trial trains, a thread of group rank 0
 * renews its lease; a worker stopped by a signal checkpoints and gives the trial back. When the
 * sweep is complete, the worker that sees it first registers the best trial (once). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include "kiln/ckpt.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/runtime.h"
#include "sweep_internal.h"

typedef struct worker {
    const sweep_worker_opts *o;
    const sweep_plan *p;
    int lead;                          /* group rank 0: talks to the journal */
    char name[96];                     /* host:pid:gN */
    sweep_journal journal;
    sweep_state state;
    sweep_latency decisions;           /* seconds of each decision: lock, catch up, decide, append */
    double busy_s;                     /* seconds in trials */
    /* the heartbeat of the trial in training */
    pthread_t beat_thread;
    volatile int beat_stop;
    int64_t beat_trial, beat_lease;
} worker;

static double wall_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

/* A lease's worker is gone when it was a process of this host that no longer exists. */
static int worker_alive(const char *who)
{
    static char host[256]; /* asked once: this runs for every running trial at every decision */
    if (!host[0] && gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
    size_t n = strlen(host);
    if (strncmp(who, host, n) != 0 || who[n] != ':') return 1; /* another host: the lease decides */
    long pid = strtol(who + n + 1, NULL, 10);
    return pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static kiln_status emit(void *ctx, const char *event)
{
    worker *w = ctx;
    return kiln_sweep_journal_append(&w->journal, &w->state, event);
}

static kiln_status emit_json(worker *w, json_t *ev) { return kiln_sweep_emit_json(emit, w, ev); }

/* The sweep's identity: the same searched space, objective and training, whatever budget,
 * placement or thread count a worker has (those may differ between the tasks of an array). */
static void identity_sha(const sweep_plan *p, char sha[KILN_SHA256_HEX])
{
    kiln_sweep_config c = p->cfg;
    memset(&c.train.placement, 0, sizeof c.train.placement);
    c.train.train.threads = 0;
    c.train.train.progress_interval = 0;
    c.sweep.trials = 0, c.sweep.total_steps = 0, c.sweep.wall_time = 0;
    c.sweep.ranks_per_trial = 0, c.sweep.lease_s = 0, c.sweep.max_retries = 0;
    memset(c.sweep.dir, 0, sizeof c.sweep.dir);
    char *yaml = kiln_config_to_yaml(&kiln_sweep_schema, &c);
    kiln_sha256_hex(yaml ? yaml : "", yaml ? strlen(yaml) : 0, sha);
    free(yaml);
}

/* The first worker starts the journal; later ones must be of the same sweep. */
static kiln_status join(worker *w)
{
    char sha[KILN_SHA256_HEX];
    identity_sha(w->p, sha);
    KILN_CHECK(kiln_sweep_journal_lock(&w->journal, &w->state));
    kiln_status st = KILN_OK;
    if (!w->state.start_sha[0])
        st = emit_json(w, json_pack("{s:s, s:s, s:f, s:s}", "e", "start", "sha", sha, "t", wall_s(),
                                    "config", w->p->config_yaml));
    else if (strcmp(w->state.start_sha, sha))
        st = KILN_ERROR(KILN_ERR_ARG, "sweep directory '%s' holds another sweep (its space, "
                        "objective or training differ from this config's); resume it with its own "
                        "config, or set sweep.dir to a new directory", w->p->dir);
    kiln_sweep_journal_unlock(&w->journal);
    return st;
}

static kiln_status decide(worker *w, sweep_job *job)
{
    double t0 = kiln_time_s();
    KILN_CHECK(kiln_sweep_journal_lock(&w->journal, &w->state));
    kiln_status st = kiln_sweep_decide(&w->state, w->name, wall_s(), w->p->cfg.sweep.lease_s,
                                  worker_alive, emit, w, job);
    kiln_sweep_journal_unlock(&w->journal);
    if (st == KILN_OK) st = kiln_sweep_latency_add(&w->decisions, kiln_time_s() - t0);
    return st;
}

/* ---- the heartbeat ---- */

static void *beat_loop(void *arg)
{
    worker *w = arg;
    double period = w->p->cfg.sweep.lease_s / 4.0, next = kiln_time_s() + period;
    while (!w->beat_stop) {
        usleep(50000);
        if (kiln_time_s() < next) continue;
        next += period;
        char ev[256];
        snprintf(ev, sizeof ev, "{\"e\":\"beat\",\"id\":%" PRId64 ",\"lease\":%" PRId64 ",\"until\":%.3f}",
                 w->beat_trial, w->beat_lease, wall_s() + w->p->cfg.sweep.lease_s);
        if (kiln_sweep_journal_lock(&w->journal, &w->state) == KILN_OK) {
            if (kiln_sweep_journal_append(&w->journal, &w->state, ev) != KILN_OK) kiln_error_clear();
            kiln_sweep_journal_unlock(&w->journal);
        } else {
            kiln_error_clear(); /* the next beat tries again; the lease has slack for it */
        }
    }
    return NULL;
}

/* ---- a trial ---- */

/* The trial's training config: the sweep's with the trial's values, the schedule of a full run
 * (train.steps = r_max), its own run directory, evaluations on the whole eval split (so that a
 * rung compares its trials on the same data whatever their batch size), and nothing registered
 * (the sweep registers its best trial itself). */
static kiln_status trial_config(const worker *w, const sweep_job *job, kiln_train_config *cfg,
                                char *desc, size_t desc_len)
{
    const sweep_plan *p = w->p;
    enum { SET_LEN = PATH_MAX + KILN_CFG_MAP_KEY_MAX + KILN_CFG_STR_MAX + 32 };
    char (*sets)[SET_LEN] = calloc((size_t)p->n_dims + 4, SET_LEN);
    const char **ptrs = calloc((size_t)p->n_dims + 4, sizeof *ptrs);
    char *base = kiln_config_to_yaml(&kiln_train_schema, &p->cfg.train);
    kiln_status st = sets && ptrs && base ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "trial config");
    int n = 0;
    desc[0] = '\0';
    for (int d = 0; d < p->n_dims && st == KILN_OK; d++, n++) {
        char value[KILN_CFG_STR_MAX];
        kiln_sweep_dim_format(&p->dims[d], job->point.x[d], value, sizeof value);
        snprintf(sets[n], SET_LEN, "%s=%s", p->dims[d].key, value);
        size_t used = strlen(desc);
        snprintf(desc + used, desc_len - used, "%s%s", used ? " " : "", sets[n]);
    }
    if (st == KILN_OK) {
        snprintf(sets[n++], SET_LEN, "train.out_dir=%s/trials/%05" PRId64, p->dir, job->trial);
        snprintf(sets[n++], SET_LEN, "train.eval_batches=0"); /* rungs compare on the whole split */
        snprintf(sets[n++], SET_LEN, "registry.name=");
        snprintf(sets[n++], SET_LEN, "registry.alias=");
        for (int i = 0; i < n; i++) ptrs[i] = sets[i];
        st = kiln_config_load_text(&kiln_train_schema, cfg, base, "the sweep's config", ptrs, n);
    }
    kiln_job_resources ignored;
    if (st == KILN_OK) st = kiln_train_validate(cfg, &ignored);
    free(sets), free(ptrs), free(base);
    return st;
}

static double objective(const worker *w, const kiln_eval_result *ev)
{
    return !strcmp(w->p->cfg.sweep.metric, "eval_accuracy") ? ev->accuracy : ev->loss;
}

/* Trains trial t of job on every rank of the group; *value receives the objective. */
static kiln_status train_trial(worker *w, const sweep_job *job, double *value)
{
    kiln_train_config *cfg = malloc(sizeof *cfg);
    char desc[2048];
    KILN_CHECK_ALLOC(cfg);
    kiln_status st = trial_config(w, job, cfg, desc, sizeof desc);
    if (w->lead)
        kiln_info("sweep: trial %" PRId64 " to rung %d (%" PRId64 " steps) on worker %s: %s",
                  job->trial, job->rung, w->p->rungs[job->rung], w->name, desc);
    kiln_eval_result ev = {0};
    kiln_train_opts o = {.cfg = cfg, .resume = "auto", .comm = w->o->group, .be = w->o->be,
                         .place = w->o->place, .stop_at = w->p->rungs[job->rung], .result = &ev};
    if (st == KILN_OK) st = kiln_train_run(&o);
    free(cfg);
    st = kiln_comm_agree(w->o->group, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    *value = objective(w, &ev);
    if (st == KILN_OK && !isfinite(*value))
        st = KILN_ERROR(KILN_ERR_NUMERIC, "the objective %s is %g at step %" PRId64,
                        w->p->cfg.sweep.metric, *value, w->p->rungs[job->rung]);
    return st;
}

/* The sweep's progress line after a result: what this trial reached, and where the sweep is. */
static void log_progress(const worker *w, const sweep_job *job, double value)
{
    const sweep_state *s = &w->state;
    int rung;
    double best_value;
    int64_t best = kiln_sweep_state_best(s, &rung, &best_value);
    char budget[64] = "";
    if (w->p->trial_budget != INT64_MAX) snprintf(budget, sizeof budget, " of %" PRId64, w->p->trial_budget);
    kiln_info("sweep: trial %" PRId64 " rung %d: %s %.6g | %" PRId64 "%s trials drawn, %" PRId64
              " results, %" PRId64 " failed; best: trial %" PRId64 " %.6g at rung %d",
              job->trial, job->rung, w->p->cfg.sweep.metric, value, s->n_trials, budget, s->results,
              s->failures, best, best_value, rung);
}

/* Records the outcome of job (group rank 0): its result, its failure, or (a signal) the trial
 * given back. */
static kiln_status report(worker *w, const sweep_job *job, kiln_status outcome, double value,
                          double busy)
{
    char error[1024];
    snprintf(error, sizeof error, "%s", outcome == KILN_OK ? "" : kiln_error_message());
    KILN_CHECK(kiln_sweep_journal_lock(&w->journal, &w->state));
    /* a worker whose lease lapsed (it stalled past sweep.lease_s) and was taken over records
     * nothing: the trial is the other worker's now, and a result must be recorded once */
    if (w->state.trials[job->trial].lease != job->lease) {
        kiln_sweep_journal_unlock(&w->journal);
        kiln_warn("sweep: trial %" PRId64 " was taken over while this worker trained it (its lease "
                  "lapsed); the other worker's outcome counts", job->trial);
        return KILN_OK;
    }
    json_t *ev;
    if (outcome == KILN_OK)
        ev = json_pack("{s:s, s:I, s:I, s:i, s:f, s:f, s:f}", "e", "result", "id",
                       (json_int_t)job->trial, "lease", (json_int_t)job->lease, "rung", job->rung,
                       "value", value, "t", wall_s() - w->state.t_start, "busy", busy);
    else if (outcome == KILN_ERR_INTERRUPTED)
        ev = json_pack("{s:s, s:I, s:I}", "e", "release", "id", (json_int_t)job->trial, "lease",
                       (json_int_t)job->lease);
    else
        ev = json_pack("{s:s, s:I, s:I, s:s, s:f}", "e", "fail", "id", (json_int_t)job->trial,
                       "lease", (json_int_t)job->lease, "error", error, "busy", busy);
    kiln_status st = emit_json(w, ev);
    kiln_sweep_journal_unlock(&w->journal);
    if (outcome == KILN_OK)
        log_progress(w, job, value);
    else if (outcome != KILN_ERR_INTERRUPTED)
        kiln_warn("sweep: trial %" PRId64 " failed: %s", job->trial, error);
    return st;
}

static kiln_status run_job(worker *w, const sweep_job *job)
{
    if (w->lead) {
        w->beat_stop = 0;
        w->beat_trial = job->trial;
        w->beat_lease = job->lease;
        if (pthread_create(&w->beat_thread, NULL, beat_loop, w) != 0)
            return KILN_ERROR(KILN_ERR_INTERNAL, "cannot start the sweep's heartbeat thread");
    }
    double t0 = kiln_time_s(), value = NAN;
    kiln_status outcome = train_trial(w, job, &value);
    if (w->lead) {
        w->beat_stop = 1;
        pthread_join(w->beat_thread, NULL);
    }
    w->busy_s += kiln_time_s() - t0;
    kiln_status st = w->lead ? report(w, job, outcome, value, kiln_time_s() - t0) : KILN_OK;
    kiln_error_clear();
    st = kiln_comm_agree(w->o->group, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK && outcome == KILN_ERR_INTERRUPTED)
        return KILN_ERROR(KILN_ERR_INTERRUPTED, "stopped by a signal during trial %" PRId64
                          " (checkpointed and given back; rerun to go on)", job->trial);
    return st;
}

/* ---- the end ---- */

static kiln_status register_best(worker *w)
{
    const kiln_registry_config *r = &w->p->cfg.train.registry;
    int rung;
    double value;
    int64_t best = kiln_sweep_state_best(&w->state, &rung, &value);
    if (!r->name[0] || best < 0 || w->state.registered) return KILN_OK;
    char ckpt_dir[PATH_MAX], ckpt[PATH_MAX];
    int found;
    KILN_CHECK(kiln_path_format(ckpt_dir, sizeof ckpt_dir, "%s/trials/%05" PRId64 "/ckpt", w->p->dir, best));
    KILN_CHECK(kiln_ckpt_find_latest(ckpt_dir, ckpt, sizeof ckpt, &found));
    if (!found) return KILN_ERROR(KILN_ERR_CKPT, "sweep: the best trial %" PRId64 " has no checkpoint in '%s'", best, ckpt_dir);
    json_t *fields = json_pack("{s:{s:f, s:i, s:I}, s:{s:s, s:I}, s:[s]}", "metrics",
                               w->p->cfg.sweep.metric, value, "rung", rung, "steps",
                               (json_int_t)w->p->rungs[rung], "lineage", "sweep", w->p->dir,
                               "sweep_trial", (json_int_t)best, "role", "best of sweep");
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(fields);
    KILN_CHECK_ALLOC(text);
    kiln_registry_artifact model = {ckpt, "model.h5", "model", 0};
    int64_t version = 0;
    const char *root = kiln_registry_root(r->path);
    /* a worker that died after registering but before its journal event: register once */
    kiln_status st = kiln_registry_find_source(root, r->name, ckpt, &version);
    if (st == KILN_OK && !version) st = kiln_registry_register(root, r->name, &model, 1, text, &version);
    free(text);
    if (st == KILN_OK && r->alias[0]) st = kiln_registry_set_alias(root, r->name, r->alias, version);
    if (st == KILN_OK)
        st = emit_json(w, json_pack("{s:s, s:I}", "e", "registered", "version", (json_int_t)version));
    if (st == KILN_OK)
        printf("registered: %s%s/%" PRId64 " (sweep trial %" PRId64 ", %s %.6g)\n",
               KILN_REGISTRY_URI_PREFIX, r->name, version, best, w->p->cfg.sweep.metric, value);
    return st;
}

/* The failures' errors, alike ones (the same first 40 characters) counted together: the few
 * causes a person must fix, not one line per trial. */
static void summarise_failures(const sweep_state *s, char *out, size_t len)
{
    enum { GROUPS = 4, PREFIX = 40 };
    int64_t first[GROUPS], count[GROUPS], others = 0;
    int n = 0;
    for (int64_t i = 0; i < s->n_trials; i++) {
        if (s->trials[i].state != TRIAL_FAILED) continue;
        int g = 0;
        while (g < n && strncmp(s->trials[first[g]].error, s->trials[i].error, PREFIX)) g++;
        if (g == n && n == GROUPS) {
            others++;
            continue;
        }
        if (g == n) first[n] = i, count[n++] = 0;
        count[g]++;
    }
    size_t used = 0;
    out[0] = '\0';
    for (int g = 0; g < n && used < len; g++)
        used += (size_t)snprintf(out + used, len - used, "%s%" PRId64 " like trial %" PRId64 "'s: %s",
                                 g ? "; " : "", count[g], first[g], s->trials[first[g]].error);
    if (others && used < len) snprintf(out + used, len - used, "; %" PRId64 " more of other causes", others);
}

static kiln_status finish(worker *w)
{
    KILN_CHECK(kiln_sweep_journal_lock(&w->journal, &w->state));
    kiln_status st = register_best(w);
    kiln_sweep_journal_unlock(&w->journal);
    KILN_CHECK(st);
    const sweep_state *s = &w->state;
    int rung;
    double value;
    int64_t best = kiln_sweep_state_best(s, &rung, &value);
    printf("kiln sweep: %" PRId64 " trials, %" PRId64 " results, %" PRId64 " failed; ",
           s->n_trials, s->results, s->failures);
    if (best >= 0)
        printf("best trial %" PRId64 " at rung %d (%" PRId64 " steps): %s %.6g\n", best, rung,
               w->p->rungs[rung], w->p->cfg.sweep.metric, value);
    else
        printf("no trial finished\n");
    printf("status: kiln sweep status %s; report: kiln sweep report %s --out report.html\n",
           w->p->dir, w->p->dir);
    if (best >= 0 || !s->failures) return KILN_OK;
    char summary[1536];
    summarise_failures(s, summary, sizeof summary);
    /* exit 1 (failed), not 2: the config was valid, its trials failed */
    return KILN_ERROR(KILN_ERR_INTERNAL, "every one of the %" PRId64 " trials failed: %s; see "
                      "kiln sweep status %s", s->n_trials, summary, w->p->dir);
}

kiln_status kiln_sweep_worker_run(const sweep_worker_opts *o)
{
    worker *w = calloc(1, sizeof *w);
    KILN_CHECK_ALLOC(w);
    w->o = o;
    w->p = o->plan;
    w->lead = kiln_comm_rank(o->group, KILN_AXIS_WORLD) == 0;
    char host[200] = "unknown";
    gethostname(host, sizeof host - 1);
    snprintf(w->name, sizeof w->name, "%s:%ld:g%d", host, (long)getpid(), o->group_id);
    kiln_sweep_state_init(&w->state, w->p);
    kiln_status st = KILN_OK;
    if (w->lead) st = kiln_sweep_journal_open(&w->journal, w->p->dir);
    if (st == KILN_OK && w->lead) st = join(w);
    st = kiln_comm_agree(o->group, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    sweep_job job;
    memset(&job, 0, sizeof job);
    while (st == KILN_OK) {
        if (w->lead) st = decide(w, &job);
        st = kiln_comm_agree(o->group, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
        if (st == KILN_OK) st = kiln_comm_bcast(o->group, KILN_AXIS_WORLD, &job, sizeof job, 0);
        if (st != KILN_OK || job.kind == JOB_DONE) break;
        if (job.kind == JOB_WAIT) {
            if (kiln_signals_pending())
                st = KILN_ERROR(KILN_ERR_INTERRUPTED, "stopped by a signal while waiting for work");
            else usleep((useconds_t)(job.wait_s * 1e6));
            continue;
        }
        st = run_job(w, &job);
    }
    if (st == KILN_OK && w->lead) st = finish(w);
    st = kiln_comm_agree(o->group, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (w->lead) {
        /* bench/sweep_bench.sh reads this line */
        kiln_info("sweep: worker %s: %" PRId64 " decisions, median %.2f ms, p99 %.2f ms, slowest %.2f ms; "
                  "%.1f s in trials", w->name, w->decisions.n, 1e3 * kiln_sweep_latency_quantile(&w->decisions, 0.5),
                  1e3 * kiln_sweep_latency_quantile(&w->decisions, 0.99),
                  1e3 * kiln_sweep_latency_quantile(&w->decisions, 1.0), w->busy_s);
        kiln_sweep_latency_free(&w->decisions);
        kiln_sweep_journal_close(&w->journal);
    }
    kiln_sweep_state_free(&w->state);
    free(w);
    return st;
}
