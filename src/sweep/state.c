/* The state of a sweep, rebuilt from its journal by applying each line in order. Every worker
 * applies the same lines the same way, so all agree on it; a lease's id is the number of the
 * journal line that granted it, which makes "this result belongs to the current lease" a
 * comparison of two numbers. Events (one JSON object a line):
 *   start  {sha, t}                the sweep's identity and start time
 *   trial  {id, x: [...]}          a trial drawn, its point
 *   lease  {id, rung, worker, until}   a worker takes a trial to a rung
 *   beat   {id, lease, until}      the worker still has it
 *   release {id, lease}            the worker stopped (a signal) and gave it back
 *   result {id, lease, rung, value, t, busy}  the objective at the rung
 *   fail   {id, lease, error}      the trial failed
 *   registered {version}           the best trial is in the registry
 *   done   {}                      every trial reached its end */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/log.h"
#include "sweep_internal.h"

void kiln_sweep_state_init(sweep_state *s, const sweep_plan *plan)
{
    memset(s, 0, sizeof *s);
    s->plan = plan;
}

void kiln_sweep_state_free(sweep_state *s)
{
    for (int64_t i = 0; i < s->n_trials; i++) {
        free(s->trials[i].value);
        free(s->trials[i].value_time);
    }
    free(s->trials);
    for (int k = 0; s->by_rung && k < s->plan->n_rungs; k++) free(s->by_rung[k].r);
    free(s->by_rung);
    memset(s, 0, sizeof *s);
}

int kiln_sweep_better(const sweep_plan *p, double a, int64_t ia, double b, int64_t ib)
{
    if (a != b) return p->maximize ? a > b : a < b;
    return ia < ib;
}

static sweep_trial *trial_at(sweep_state *s, json_t *ev)
{
    json_int_t id = json_integer_value(json_object_get(ev, "id"));
    return id >= 0 && id < s->n_trials ? &s->trials[id] : NULL;
}

static int add_trial(sweep_state *s, json_t *ev)
{
    json_int_t id = json_integer_value(json_object_get(ev, "id"));
    json_t *x = json_object_get(ev, "x");
    if (id != s->n_trials || !json_is_array(x) || (int)json_array_size(x) != s->plan->n_dims)
        return 0;
    if (s->n_trials == s->cap_trials) {
        int64_t cap = s->cap_trials ? 2 * s->cap_trials : 64;
        sweep_trial *grown = realloc(s->trials, (size_t)cap * sizeof *grown);
        if (!grown) return 0;
        s->trials = grown;
        s->cap_trials = cap;
    }
    sweep_trial *t = &s->trials[s->n_trials];
    memset(t, 0, sizeof *t);
    int R = s->plan->n_rungs;
    t->value = malloc((size_t)R * sizeof *t->value);
    t->value_time = malloc((size_t)R * sizeof *t->value_time);
    if (!t->value || !t->value_time) {
        free(t->value), free(t->value_time);
        return 0;
    }
    for (int k = 0; k < R; k++) t->value[k] = t->value_time[k] = NAN;
    t->id = id;
    t->rung = -1;
    t->state = TRIAL_NEW;
    for (int d = 0; d < s->plan->n_dims; d++) t->point.x[d] = json_number_value(json_array_get(x, (size_t)d));
    s->n_trials++;
    return 1;
}

static int apply_lease(sweep_state *s, sweep_trial *t, json_t *ev)
{
    json_int_t rung = json_integer_value(json_object_get(ev, "rung"));
    const char *worker = json_string_value(json_object_get(ev, "worker"));
    if (!t || rung < 0 || rung >= s->plan->n_rungs || !worker || t->state == TRIAL_FAILED ||
        t->state == TRIAL_DONE)
        return 0;
    if (t->state == TRIAL_RUNNING && !t->released) t->retries++; /* its worker went away */
    t->released = 0;
    int64_t from = t->rung >= 0 && t->state == TRIAL_PAUSED ? s->plan->rungs[t->rung] : 0;
    if (t->state != TRIAL_RUNNING) s->steps_leased += s->plan->rungs[rung] - from;
    t->state = TRIAL_RUNNING;
    t->rung = (int)rung;
    t->lease = s->lines;
    t->lease_until = json_number_value(json_object_get(ev, "until"));
    snprintf(t->worker, sizeof t->worker, "%s", worker);
    return 1;
}

/* An event for the current lease of a running trial (a late one of a lease taken over is
 * ignored: the trial's result is recorded once). */
static int current(const sweep_trial *t, json_t *ev)
{
    return t && t->state == TRIAL_RUNNING &&
           json_integer_value(json_object_get(ev, "lease")) == t->lease;
}

/* Inserts (value, id) into rung k's results at its place (binary search). */
static int rank_insert(sweep_state *s, int k, double value, int64_t id)
{
    if (!s->by_rung && !(s->by_rung = calloc((size_t)s->plan->n_rungs, sizeof *s->by_rung))) return 0;
    sweep_rung_results *rr = &s->by_rung[k];
    if (rr->n == rr->cap) {
        int64_t cap = rr->cap ? 2 * rr->cap : 64;
        sweep_rank *grown = realloc(rr->r, (size_t)cap * sizeof *grown);
        if (!grown) return 0;
        rr->r = grown;
        rr->cap = cap;
    }
    int64_t lo = 0, hi = rr->n; /* the first position whose entry is not better than (value, id) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (kiln_sweep_better(s->plan, rr->r[mid].value, rr->r[mid].id, value, id)) lo = mid + 1;
        else hi = mid;
    }
    memmove(rr->r + lo + 1, rr->r + lo, (size_t)(rr->n - lo) * sizeof *rr->r);
    rr->r[lo] = (sweep_rank){value, id};
    rr->n++;
    return 1;
}

static int apply_result(sweep_state *s, sweep_trial *t, json_t *ev)
{
    json_t *v = json_object_get(ev, "value");
    if (!current(t, ev) || !json_is_number(v)) return 0;
    if (!rank_insert(s, t->rung, json_number_value(v), t->id)) return 0;
    t->value[t->rung] = json_number_value(v);
    t->value_time[t->rung] = json_number_value(json_object_get(ev, "t"));
    t->busy_s += json_number_value(json_object_get(ev, "busy"));
    t->state = t->rung == s->plan->n_rungs - 1 ? TRIAL_DONE : TRIAL_PAUSED;
    s->results++;
    return 1;
}

static int apply_fail(sweep_state *s, sweep_trial *t, json_t *ev)
{
    if (!t || t->state == TRIAL_DONE || t->state == TRIAL_FAILED) return 0;
    if (json_integer_value(json_object_get(ev, "lease")) && !current(t, ev)) return 0;
    const char *why = json_string_value(json_object_get(ev, "error"));
    snprintf(t->error, sizeof t->error, "%s", why ? why : "failed");
    t->busy_s += json_number_value(json_object_get(ev, "busy"));
    t->state = TRIAL_FAILED;
    s->failures++;
    return 1;
}

static int apply(sweep_state *s, json_t *ev)
{
    const char *e = json_string_value(json_object_get(ev, "e"));
    if (!e) return 0;
    sweep_trial *t = trial_at(s, ev);
    if (!strcmp(e, "start")) {
        if (s->start_sha[0]) return 0; /* only the first start counts */
        const char *sha = json_string_value(json_object_get(ev, "sha"));
        snprintf(s->start_sha, sizeof s->start_sha, "%s", sha ? sha : "");
        s->t_start = json_number_value(json_object_get(ev, "t"));
        return 1;
    }
    if (!strcmp(e, "trial")) return add_trial(s, ev);
    if (!strcmp(e, "lease")) return apply_lease(s, t, ev);
    if (!strcmp(e, "beat")) {
        if (!current(t, ev)) return 0;
        t->lease_until = json_number_value(json_object_get(ev, "until"));
        return 1;
    }
    if (!strcmp(e, "release")) { /* stopped by a signal, checkpointed: free for anyone now */
        if (!current(t, ev)) return 0;
        t->lease_until = 0.0;
        t->released = 1;
        return 1;
    }
    if (!strcmp(e, "result")) return apply_result(s, t, ev);
    if (!strcmp(e, "fail")) return apply_fail(s, t, ev);
    if (!strcmp(e, "registered")) {
        s->registered = json_integer_value(json_object_get(ev, "version"));
        return 1;
    }
    if (!strcmp(e, "done")) return s->finished = 1;
    return 0;
}

void kiln_sweep_state_apply(sweep_state *s, const char *line)
{
    json_error_t err;
    json_t *ev = json_loads(line, 0, &err);
    if (!ev || !apply(s, ev))
        kiln_debug("sweep journal line %lld ignored: %.80s", (long long)s->lines, line);
    json_decref(ev);
    s->lines++;
}

int64_t kiln_sweep_state_best(const sweep_state *s, int *rung, double *value)
{
    int64_t best = -1;
    int top = -1;
    for (int64_t i = 0; i < s->n_trials; i++)
        for (int k = s->plan->n_rungs - 1; k >= 0; k--)
            if (!isnan(s->trials[i].value[k])) {
                if (k > top) top = k, best = -1;
                if (k == top && (best < 0 || kiln_sweep_better(s->plan, s->trials[i].value[k], i,
                                                          s->trials[best].value[k], best)))
                    best = i;
                break;
            }
    if (rung) *rung = top;
    if (value) *value = best >= 0 ? s->trials[best].value[top] : NAN;
    return best;
}
