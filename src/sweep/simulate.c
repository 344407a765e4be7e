/* `kiln sweep simulate`: the scheduler (asha.c, state.c, and journal.c with --journal) making
 * its decisions for W simulated workers against a simulated objective, printed as JSON lines,
 * for tests (an independent reference of the paper's algorithm must make the same promotions)
 * and the scale benchmark.
 *
 * The objective of trial i at rung k is value(i, k) = u(i) * (1 + 1 / (k + 1)) +
 * 0.05 * u(1000003 i + k + 1), to be minimised, where u(x) = (splitmix64(x) >> 11) * 2^-53:
 * it ignores the trial's values, so the decisions can be replayed by a reference that knows
 * nothing of samplers. With --objective branin it is instead the Branin function of the
 * trial's two values (x in [-5, 10], y in [0, 15]; minimum 0.397887), times (1 + 1 / (k + 1)):
 * what a sampler's test needs (tpe against random).
 * A job of rung k takes rungs[k] - rungs[k - 1] time units (a promotion continues). The clock:
 * every worker is free at time 0; events are taken in order of (time, worker): a worker whose
 * job ends reports its result and decides again at once; after each such event, the workers
 * that were waiting decide again, in worker order. A worker told to wait waits for the next
 * event; told the sweep is done, it stops. With --processes the workers are split over
 * processes sharing the journal, each with its own clock (end_time is then 0): a worker whose
 * awaited trials are another process's polls every 2 ms. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "kiln/runtime.h"
#include "sweep_internal.h"

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unit(uint64_t x) { return (double)(splitmix64(x) >> 11) * (1.0 / 9007199254740992.0); }

static double branin(double x, double y)
{
    const double pi = 3.14159265358979323846, b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
    double q = y - b * x * x + c * x - 6;
    return q * q + 10 * (1 - t) * cos(x) + 10;
}

typedef struct sim {
    sweep_plan plan;
    int branin;                        /* --objective branin */
    sweep_state state;
    sweep_journal journal;
    int use_journal;
    int quiet;                         /* the summary only */
    int workers;                       /* of this process */
    int process, processes;            /* --processes: this one's index, and how many share the journal */
    double *free_at;                   /* per worker: when its job ends (INFINITY: idle/stopped) */
    sweep_job *job;
    int *waiting, *stopped;
    double now;
    sweep_latency latency;             /* per decision, seconds (wall clock) */
} sim;

static kiln_status sim_emit(void *ctx, const char *event)
{
    sim *m = ctx;
    if (m->use_journal) return kiln_sweep_journal_append(&m->journal, &m->state, event);
    kiln_sweep_state_apply(&m->state, event);
    return KILN_OK;
}

static kiln_status sim_decide(sim *m, int w)
{
    char name[32];
    snprintf(name, sizeof name, "sim%d:%d", m->process, w);
    double t0 = kiln_time_s();
    if (m->use_journal) KILN_CHECK(kiln_sweep_journal_lock(&m->journal, &m->state));
    kiln_status st = kiln_sweep_decide(&m->state, name, m->now, 1e18, NULL, sim_emit, m, &m->job[w]);
    if (m->use_journal) kiln_sweep_journal_unlock(&m->journal);
    KILN_CHECK(st);
    KILN_CHECK(kiln_sweep_latency_add(&m->latency, kiln_time_s() - t0));
    const sweep_job *j = &m->job[w];
    m->waiting[w] = j->kind == JOB_WAIT;
    m->stopped[w] = j->kind == JOB_DONE;
    m->free_at[w] = INFINITY;
    if (j->kind == JOB_RUN) {
        int64_t from = j->rung ? m->plan.rungs[j->rung - 1] : 0;
        m->free_at[w] = m->now + (double)(m->plan.rungs[j->rung] - from);
        if (!m->quiet)
            printf("{\"t\":%.17g,\"worker\":%d,\"run\":%" PRId64 ",\"rung\":%d}\n", m->now, w,
                   j->trial, j->rung);
    } else if (j->kind == JOB_WAIT && !m->quiet) {
        printf("{\"t\":%.17g,\"worker\":%d,\"wait\":true}\n", m->now, w);
    }
    return KILN_OK;
}

static double sim_value(const sim *m, int64_t i, int k)
{
    if (m->branin) {
        const double *x = m->state.trials[i].point.x;
        return branin(x[0], x[1]) * (1.0 + 1.0 / (k + 1.0));
    }
    return unit((uint64_t)i) * (1.0 + 1.0 / (k + 1.0)) + 0.05 * unit(1000003ull * (uint64_t)i + (uint64_t)k + 1);
}

static kiln_status sim_report(sim *m, int w)
{
    const sweep_job *j = &m->job[w];
    double v = sim_value(m, j->trial, j->rung);
    char ev[256];
    snprintf(ev, sizeof ev, "{\"e\":\"result\",\"id\":%" PRId64 ",\"lease\":%" PRId64 ",\"rung\":%d,"
             "\"value\":%.17g,\"t\":%.17g,\"busy\":%.17g}", j->trial, j->lease, j->rung, v, m->now,
             (double)(m->plan.rungs[j->rung] - (j->rung ? m->plan.rungs[j->rung - 1] : 0)));
    if (m->use_journal) KILN_CHECK(kiln_sweep_journal_lock(&m->journal, &m->state));
    kiln_status st = sim_emit(m, ev);
    if (m->use_journal) kiln_sweep_journal_unlock(&m->journal);
    if (!m->quiet)
        printf("{\"t\":%.17g,\"worker\":%d,\"result\":%" PRId64 ",\"rung\":%d,\"value\":%.17g}\n",
               m->now, w, j->trial, j->rung, v);
    return st;
}

static kiln_status sim_run(sim *m)
{
    for (int w = 0; w < m->workers; w++) KILN_CHECK(sim_decide(m, w));
    for (;;) {
        int next = -1;
        for (int w = 0; w < m->workers; w++)
            if (isfinite(m->free_at[w]) && (next < 0 || m->free_at[w] < m->free_at[next])) next = w;
        if (next < 0 && m->processes > 1) { /* the trials awaited are other processes' */
            int waiting = 0;
            for (int w = 0; w < m->workers; w++) waiting |= m->waiting[w];
            if (!waiting) break;
            usleep(2000);
            for (int w = 0; w < m->workers; w++)
                if (m->waiting[w]) KILN_CHECK(sim_decide(m, w));
            continue;
        }
        if (next < 0) break; /* nothing running: every worker waits or has stopped */
        m->now = m->free_at[next];
        KILN_CHECK(sim_report(m, next));
        KILN_CHECK(sim_decide(m, next));
        for (int w = 0; w < m->workers; w++)
            if (m->waiting[w]) KILN_CHECK(sim_decide(m, w));
    }
    return KILN_OK;
}

static void sim_summary(sim *m, double rebuild_s, double wall_s)
{
    int64_t promotions = 0, done = 0;
    for (int64_t i = 0; i < m->state.n_trials; i++) {
        promotions += m->state.trials[i].rung > 0 ? m->state.trials[i].rung : 0;
        done += m->state.trials[i].state == TRIAL_DONE;
    }
    int rung;
    double value;
    int64_t best = kiln_sweep_state_best(&m->state, &rung, &value);
    printf("{\"summary\":true,\"trials\":%" PRId64 ",\"promotions\":%" PRId64 ",\"reached_top\":%" PRId64
           ",\"best\":%" PRId64 ",\"best_rung\":%d,\"best_value\":%.17g,\"end_time\":%.17g,"
           "\"decisions\":%" PRId64 ",\"decision_mean_s\":%.6g,\"decision_p50_s\":%.6g,"
           "\"decision_p99_s\":%.6g,\"journal_lines\":%" PRId64 ",\"rebuild_s\":%.6g,"
           "\"processes\":%d,\"wall_s\":%.6g}\n",
           m->state.n_trials, promotions, done, best, rung, value, m->now, m->latency.n,
           m->latency.n ? m->latency.sum / (double)m->latency.n : 0.0,
           kiln_sweep_latency_quantile(&m->latency, 0.5), kiln_sweep_latency_quantile(&m->latency, 0.99),
           m->state.lines, rebuild_s, m->processes, wall_s);
}

/* A plan for the simulation: its dimensions (one that only feeds the sampler; Branin's two),
 * the sampler, the rungs. */
static void sim_plan(sweep_plan *p, int branin, sweep_sampler_kind sampler, int tpe_startup, int eta,
                     int r_min, int r_max, int64_t trials, int64_t seed)
{
    memset(p, 0, sizeof *p);
    static sweep_dim unit_dim[1] = {{"x", DIST_UNIFORM, 0.0, 1.0, NULL, 0}};
    static sweep_dim branin_dims[2] = {{"x", DIST_UNIFORM, -5.0, 10.0, NULL, 0},
                                       {"y", DIST_UNIFORM, 0.0, 15.0, NULL, 0}};
    p->dims = branin ? branin_dims : unit_dim;
    p->n_dims = branin ? 2 : 1;
    p->sampler = sampler;
    p->cfg.sweep.tpe_startup = tpe_startup;
    p->cfg.sweep.eta = eta;
    p->cfg.sweep.r_min = r_min;
    p->cfg.sweep.max_retries = 2;
    p->cfg.sweep.seed = seed;
    p->trial_budget = trials;
    p->rungs = calloc(64, sizeof *p->rungs);
    for (int64_t r = r_min; p->rungs && r < r_max && p->n_rungs < 63; r *= eta) p->rungs[p->n_rungs++] = r;
    if (p->rungs) p->rungs[p->n_rungs++] = r_max;
}

static int usage(void)
{
    fprintf(stderr, "usage: kiln sweep simulate --workers W --eta E --trials N --r-min R --r-max M "
            "[--seed S] [--journal DIR [--processes P]] [--quiet]\n"
            "       [--objective ids|branin] [--sampler random|tpe] [--tpe-startup N]\n"
            "ASHA's decisions for W simulated workers against a simulated objective, as JSON lines\n"
            "(tests and bench/sweep_bench.sh); --journal runs them through a real journal in DIR,\n"
            "--processes splits the workers over P processes sharing it (with --quiet).\n"
            "r_min = r_max is one rung: every trial to the end (scheduler none).\n");
    return KILN_EXIT_BAD_INPUT;
}

typedef struct sim_args {
    int workers, eta, r_min, r_max, quiet, branin, tpe_startup, processes;
    sweep_sampler_kind sampler;
    int64_t trials, seed;
    const char *dir;
} sim_args;

static int parse_args(int argc, char **argv, sim_args *a)
{
    *a = (sim_args){.workers = 1, .eta = 3, .r_min = 1, .r_max = 27, .tpe_startup = 10,
                    .processes = 1, .sampler = SAMPLER_RANDOM, .trials = 20};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--quiet")) a->quiet = 1;
        else if (!v) return 0;
        else if (!strcmp(k, "--workers")) a->workers = atoi(v), i++;
        else if (!strcmp(k, "--eta")) a->eta = atoi(v), i++;
        else if (!strcmp(k, "--trials")) a->trials = atoll(v), i++;
        else if (!strcmp(k, "--r-min")) a->r_min = atoi(v), i++;
        else if (!strcmp(k, "--r-max")) a->r_max = atoi(v), i++;
        else if (!strcmp(k, "--seed")) a->seed = atoll(v), i++;
        else if (!strcmp(k, "--journal")) a->dir = v, i++;
        else if (!strcmp(k, "--processes")) a->processes = atoi(v), i++;
        else if (!strcmp(k, "--tpe-startup")) a->tpe_startup = atoi(v), i++;
        else if (!strcmp(k, "--objective") && (!strcmp(v, "ids") || !strcmp(v, "branin")))
            a->branin = !strcmp(v, "branin"), i++;
        else if (!strcmp(k, "--sampler") && (!strcmp(v, "random") || !strcmp(v, "tpe")))
            a->sampler = !strcmp(v, "tpe") ? SAMPLER_TPE : SAMPLER_RANDOM, i++;
        else return 0;
    }
    return a->workers >= 1 && a->eta >= 2 && a->r_min >= 1 && a->r_max >= a->r_min && a->trials >= 1 &&
           a->tpe_startup >= 2 && a->processes >= 1 && a->processes <= a->workers &&
           (a->processes == 1 || (a->dir && a->quiet));
}

static sim *sim_new(const sim_args *a, int process)
{
    sim *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->quiet = a->quiet;
    m->process = process;
    m->processes = a->processes;
    /* the workers dealt out over the processes */
    m->workers = a->workers / a->processes + (process < a->workers % a->processes);
    m->free_at = calloc((size_t)m->workers, sizeof *m->free_at);
    m->job = calloc((size_t)m->workers, sizeof *m->job);
    m->waiting = calloc((size_t)m->workers, sizeof *m->waiting);
    m->stopped = calloc((size_t)m->workers, sizeof *m->stopped);
    m->branin = a->branin;
    m->use_journal = a->dir != NULL;
    sim_plan(&m->plan, a->branin, a->sampler, a->tpe_startup, a->eta, a->r_min, a->r_max, a->trials, a->seed);
    kiln_sweep_state_init(&m->state, &m->plan);
    return m;
}

static void sim_free(sim *m)
{
    if (!m) return;
    if (m->use_journal) kiln_sweep_journal_close(&m->journal);
    kiln_sweep_state_free(&m->state);
    free(m->plan.rungs);
    free(m->free_at), free(m->job), free(m->waiting), free(m->stopped);
    kiln_sweep_latency_free(&m->latency);
    free(m);
}

static kiln_status sim_start(sim *m, const char *dir)
{
    if (!m || !m->free_at || !m->job || !m->waiting || !m->stopped || !m->plan.rungs)
        return KILN_ERROR(KILN_ERR_NOMEM, "simulation");
    if (dir) KILN_CHECK(kiln_sweep_journal_open(&m->journal, dir));
    if (dir) KILN_CHECK(kiln_sweep_journal_lock(&m->journal, &m->state));
    kiln_status st = m->state.start_sha[0] ? KILN_OK : sim_emit(m, "{\"e\":\"start\",\"sha\":\"simulation\",\"t\":0}");
    if (dir) kiln_sweep_journal_unlock(&m->journal);
    return st;
}

/* --processes P: P processes, each with its share of the workers, on one journal: the
 * contention of many writers for real (the lock, the catching up on others' lines). Each child
 * leaves its decisions' latencies in DIR/latency.N for the parent's quantiles. */
static kiln_status run_processes(const sim_args *a, sim *parent)
{
    pid_t *pids = calloc((size_t)a->processes, sizeof *pids);
    KILN_CHECK_ALLOC(pids);
    fflush(NULL);
    for (int p = 0; p < a->processes; p++) {
        pids[p] = fork();
        if (pids[p] < 0) return free(pids), KILN_ERROR(KILN_ERR_INTERNAL, "fork: %s", strerror(errno));
        if (pids[p] > 0) continue;
        sim *m = sim_new(a, p);
        kiln_status st = sim_start(m, a->dir);
        if (st == KILN_OK) st = sim_run(m);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/latency.%d", a->dir, p);
        FILE *f = st == KILN_OK ? fopen(path, "wb") : NULL;
        if (f) fwrite(m->latency.s, sizeof(double), (size_t)m->latency.n, f), fclose(f);
        if (st != KILN_OK) fprintf(stderr, "kiln sweep simulate: process %d: %s\n", p, kiln_error_message());
        _exit(st == KILN_OK && f ? 0 : 1);
    }
    kiln_status st = KILN_OK;
    for (int p = 0; p < a->processes; p++) {
        int status = 0;
        if (waitpid(pids[p], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            st = KILN_ERROR(KILN_ERR_INTERNAL, "simulation process %d failed", p);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/latency.%d", a->dir, p);
        FILE *f = fopen(path, "rb");
        double x;
        while (f && fread(&x, sizeof x, 1, f) == 1 && st == KILN_OK) st = kiln_sweep_latency_add(&parent->latency, x);
        if (f) fclose(f);
        unlink(path);
    }
    free(pids);
    return st;
}

int kiln_sweep_simulate_main(int argc, char **argv)
{
    sim_args a;
    if (!parse_args(argc, argv, &a)) return usage();
    double started = kiln_time_s();
    sim *m = sim_new(&a, 0);
    kiln_status st = sim_start(m, a.dir);
    if (st == KILN_OK) st = a.processes > 1 ? run_processes(&a, m) : sim_run(m);
    double rebuild = 0.0;
    if (st == KILN_OK && a.dir) { /* the whole state again, from the journal alone */
        sweep_state again;
        kiln_sweep_state_init(&again, &m->plan);
        double t0 = kiln_time_s();
        st = kiln_sweep_journal_read(a.dir, &again);
        rebuild = kiln_time_s() - t0;
        if (st == KILN_OK && a.processes == 1 &&
            (again.n_trials != m->state.n_trials || again.results != m->state.results))
            st = KILN_ERROR(KILN_ERR_INTERNAL, "the journal rebuilds another state");
        if (a.processes > 1) { /* the parent made no decision: the rebuilt state is the sweep's */
            kiln_sweep_state_free(&m->state);
            m->state = again;
        } else {
            kiln_sweep_state_free(&again);
        }
    }
    if (st == KILN_OK) sim_summary(m, rebuild, kiln_time_s() - started);
    else fprintf(stderr, "kiln sweep simulate: error: %s\n", kiln_error_message());
    sim_free(m);
    return st == KILN_OK ? 0 : 1;
}
