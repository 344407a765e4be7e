/* What a free worker does, decided on the caught-up state under the journal's lock. In order:
 *   1. resume a trial whose worker went away (its lease expired, or it was a process of this
 *      host that no longer exists): the work already started goes first; a trial that lost
 *      its worker more than sweep.max_retries times fails instead; a trial drawn but never
 *      leased (its worker died between the two events) starts now;
 *   2. promote (ASHA, Li et al. 2020, Algorithm 2): for each rung k from the top down, the
 *      top floor(n_k / eta) of its finished results are promotable; the best one not yet
 *      promoted goes on to rung k + 1, continuing from its checkpoint;
 *   3. draw a new trial at rung 0, if the budget allows;
 *   4. wait, if other workers still hold trials (a promotion may come of them);
 *   5. otherwise the sweep is done.
 * A worker never waits for a rung to fill: it waits only when no work exists at all. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sweep_internal.h"

static kiln_status lease(sweep_state *s, sweep_trial *t, int rung, const char *worker, double now,
                         double lease_s, sweep_emit_fn emit, void *ctx, sweep_job *job)
{
    int64_t id = t->id;
    KILN_CHECK(kiln_sweep_emit_json(emit, ctx, json_pack("{s:s, s:I, s:i, s:s, s:f}", "e", "lease", "id",
                                              (json_int_t)id, "rung", rung, "worker", worker,
                                              "until", now + lease_s)));
    sweep_trial *again = &s->trials[id]; /* the table may have moved */
    if (again->state != TRIAL_RUNNING || again->rung != rung || strcmp(again->worker, worker))
        return KILN_ERROR(KILN_ERR_INTERNAL, "sweep journal: the lease of trial %lld did not take",
                          (long long)id);
    *job = (sweep_job){JOB_RUN, id, rung, again->lease, 0.0, again->point};
    return KILN_OK;
}

static int lease_lost(const sweep_trial *t, double now, sweep_alive_fn alive)
{
    if (t->state != TRIAL_RUNNING) return 0;
    return t->lease_until < now || (alive && !alive(t->worker));
}

/* 1: resume a trial whose worker went away (or fail it after too many); and start one that
 * was drawn but never leased (its worker died between the two events). */
static kiln_status resume_lost(sweep_state *s, const char *worker, double now, double lease_s,
                               sweep_alive_fn alive, sweep_emit_fn emit, void *ctx,
                               sweep_job *job)
{
    for (int64_t i = 0; i < s->n_trials && job->kind != JOB_RUN; i++) {
        sweep_trial *t = &s->trials[i];
        if (t->state == TRIAL_NEW) {
            KILN_CHECK(lease(s, t, 0, worker, now, lease_s, emit, ctx, job));
            continue;
        }
        if (!lease_lost(t, now, alive)) continue;
        if (t->retries >= s->plan->cfg.sweep.max_retries) {
            char why[384];
            snprintf(why, sizeof why, "its worker died or lost its lease %d time%s, more than "
                     "sweep.max_retries (%d) allows (the last: %s, %.0f s after its last heartbeat)",
                     t->retries + 1, t->retries ? "s" : "", s->plan->cfg.sweep.max_retries, t->worker,
                     now - (t->lease_until - lease_s));
            KILN_CHECK(kiln_sweep_emit_json(emit, ctx, json_pack("{s:s, s:I, s:I, s:s}", "e", "fail", "id",
                                                      (json_int_t)t->id, "lease",
                                                      (json_int_t)t->lease, "error", why)));
            continue;
        }
        KILN_CHECK(lease(s, t, t->rung, worker, now, lease_s, emit, ctx, job));
    }
    return KILN_OK;
}

/* 2: the best promotable trial of the highest rung that has one, or -1. */
static void find_promotion(const sweep_state *s, int64_t *trial, int *to)
{
    const sweep_plan *p = s->plan;
    *trial = -1;
    for (int k = p->n_rungs - 2; s->by_rung && k >= 0 && *trial < 0; k--) {
        const sweep_rung_results *rr = &s->by_rung[k];
        int64_t top = rr->n / p->cfg.sweep.eta;
        for (int64_t c = 0; c < top && *trial < 0; c++) {
            const sweep_trial *t = &s->trials[rr->r[c].id];
            if (t->state == TRIAL_PAUSED && t->rung == k) *trial = t->id, *to = k + 1;
        }
    }
}

static int budget_allows(const sweep_state *s, double now)
{
    const sweep_plan *p = s->plan;
    const kiln_sweep_section *c = &p->cfg.sweep;
    if (s->n_trials >= p->trial_budget) return 0;
    if (c->total_steps && s->steps_leased + p->rungs[0] > c->total_steps) return 0;
    if (c->wall_time > 0 && now - s->t_start >= c->wall_time) return 0;
    return 1;
}

/* 3: a new trial at rung 0. */
static kiln_status draw(sweep_state *s, const char *worker, double now, double lease_s,
                        sweep_emit_fn emit, void *ctx, sweep_job *job)
{
    sweep_point pt;
    int64_t id = s->n_trials;
    kiln_sweep_sample(s, id, &pt);
    json_t *x = json_array();
    for (int d = 0; x && d < s->plan->n_dims; d++) json_array_append_new(x, json_real(pt.x[d]));
    KILN_CHECK(kiln_sweep_emit_json(emit, ctx, json_pack("{s:s, s:I, s:o}", "e", "trial", "id", (json_int_t)id,
                                              "x", x)));
    if (s->n_trials != id + 1)
        return KILN_ERROR(KILN_ERR_INTERNAL, "sweep journal: trial %lld was not recorded", (long long)id);
    return lease(s, &s->trials[id], 0, worker, now, lease_s, emit, ctx, job);
}

kiln_status kiln_sweep_decide(sweep_state *s, const char *worker, double now, double lease_s,
                         sweep_alive_fn alive, sweep_emit_fn emit, void *ctx, sweep_job *job)
{
    memset(job, 0, sizeof *job);
    job->kind = JOB_DONE;
    job->trial = -1;
    job->rung = -1;
    if (s->finished) return KILN_OK;
    KILN_CHECK(resume_lost(s, worker, now, lease_s, alive, emit, ctx, job));
    if (job->kind == JOB_RUN) return KILN_OK;
    int64_t trial;
    int to;
    find_promotion(s, &trial, &to);
    if (trial >= 0) return lease(s, &s->trials[trial], to, worker, now, lease_s, emit, ctx, job);
    if (budget_allows(s, now)) return draw(s, worker, now, lease_s, emit, ctx, job);
    double next = INFINITY;
    for (int64_t i = 0; i < s->n_trials; i++)
        if (s->trials[i].state == TRIAL_RUNNING && s->trials[i].lease_until < next)
            next = s->trials[i].lease_until;
    if (isfinite(next)) {
        job->kind = JOB_WAIT;
        job->wait_s = fmax(0.05, fmin(next - now, 0.5));
        return KILN_OK;
    }
    return kiln_sweep_emit_json(emit, ctx, json_pack("{s:s}", "e", "done")); /* *job stays JOB_DONE */
}
