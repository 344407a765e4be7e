/* sweep.warm_start: an earlier sweep's finished trials (those that reached its last rung) as
 * observations for TPE, so a new sweep over a similar space starts from what is known. Each of
 * this sweep's dimensions must be one of the earlier sweep's, of the same kind (a choice's
 * values are matched by their text); a point outside this sweep's bounds is left out. The
 * objective (metric and mode) must be the same; results at another r_max are taken as they are:
 * TPE needs their order, not their values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sweep_internal.h"

static const sweep_dim *find_dim(const sweep_plan *p, const char *key)
{
    for (int d = 0; d < p->n_dims; d++)
        if (!strcmp(p->dims[d].key, key)) return &p->dims[d];
    return NULL;
}

static kiln_status check_compatible(const sweep_plan *p, const sweep_plan *old)
{
    const char *dir = p->cfg.sweep.warm_start;
    if (strcmp(p->cfg.sweep.metric, old->cfg.sweep.metric) || p->maximize != old->maximize)
        return KILN_ERROR(KILN_ERR_CONFIG, "sweep.warm_start: '%s' optimised %s %s, this sweep %s %s",
                          dir, old->cfg.sweep.mode, old->cfg.sweep.metric, p->cfg.sweep.mode, p->cfg.sweep.metric);
    for (int d = 0; d < p->n_dims; d++) {
        const sweep_dim *o = find_dim(old, p->dims[d].key);
        if (!o || o->kind != p->dims[d].kind)
            return KILN_ERROR(KILN_ERR_CONFIG, "sweep.warm_start: '%s' %s sweep.space.%s%s", dir,
                              o ? "searched another kind of distribution for" : "did not search",
                              p->dims[d].key, o ? "" : " (every searched key must be the earlier sweep's too)");
    }
    return KILN_OK;
}

/* The coordinate of the old sweep's x for dimension d of p; 0 when it is outside p's. */
static int map_coordinate(const sweep_dim *d, const sweep_dim *o, double x, double *out)
{
    if (d->kind == DIST_CHOICE) {
        int i = (int)x;
        if (i < 0 || i >= o->n_choices) return 0;
        for (int c = 0; c < d->n_choices; c++)
            if (!strcmp(d->choices[c], o->choices[i])) return *out = c, 1;
        return 0;
    }
    double lo, hi;
    kiln_sweep_dim_bounds(d, &lo, &hi);
    *out = x;
    return x >= lo && x <= hi;
}

static kiln_status add_finished(sweep_plan *p, const sweep_plan *old, const sweep_state *s)
{
    int last = old->n_rungs - 1;
    p->warm_x = calloc((size_t)s->n_trials + 1, sizeof *p->warm_x);
    p->warm_y = calloc((size_t)s->n_trials + 1, sizeof *p->warm_y);
    KILN_CHECK_ALLOC(p->warm_x);
    KILN_CHECK_ALLOC(p->warm_y);
    for (int64_t i = 0; i < s->n_trials; i++) {
        const sweep_trial *t = &s->trials[i];
        if (isnan(t->value[last])) continue;
        int inside = 1;
        for (int d = 0; d < p->n_dims && inside; d++) {
            const sweep_dim *o = find_dim(old, p->dims[d].key);
            inside = map_coordinate(&p->dims[d], o, t->point.x[o - old->dims], &p->warm_x[p->n_warm].x[d]);
        }
        if (inside) p->warm_y[p->n_warm++] = t->value[last];
    }
    return KILN_OK;
}

kiln_status kiln_sweep_warm_start_load(sweep_plan *p)
{
    if (!p->cfg.sweep.warm_start[0]) return KILN_OK;
    sweep_plan old;
    sweep_state s;
    kiln_status st = kiln_sweep_open_recorded(p->cfg.sweep.warm_start, &old, &s);
    if (st != KILN_OK) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", kiln_error_message());
        kiln_error_clear();
        return KILN_ERROR(KILN_ERR_CONFIG, "sweep.warm_start: %s", inner);
    }
    st = check_compatible(p, &old);
    if (st == KILN_OK) st = add_finished(p, &old, &s);
    kiln_sweep_state_free(&s);
    kiln_sweep_plan_free(&old);
    return st;
}
