/* A sweep's plan from its config: the space, the objective, the rungs and the budget, with
 * every check made before any trial starts. Rungs are r_min * eta^k steps for every k where
 * that is below r_max, then r_max itself (scheduler none: r_max alone). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/slurm.h"
#include "sweep_internal.h"

/* Keys the sweep sets itself, which the space may not hold. */
static const char *const owned_keys[] = {"train.steps", "train.out_dir"};

static kiln_status plan_rungs(sweep_plan *p)
{
    const kiln_sweep_section *s = &p->cfg.sweep;
    int64_t r_max = s->r_max ? s->r_max : p->cfg.train.train.steps;
    if (s->r_min > r_max)
        return KILN_ERROR(KILN_ERR_CONFIG, "sweep.r_min (%d) must not exceed sweep.r_max (%lld%s)",
                          s->r_min, (long long)r_max, s->r_max ? "" : ", train.steps");
    p->rungs = calloc(64, sizeof *p->rungs);
    KILN_CHECK_ALLOC(p->rungs);
    if (!strcmp(s->scheduler, "asha"))
        for (int64_t r = s->r_min; r < r_max && p->n_rungs < 63; r *= s->eta) p->rungs[p->n_rungs++] = r;
    p->rungs[p->n_rungs++] = r_max;
    p->cfg.train.train.steps = (int)r_max; /* every trial's schedule is that of a full run */
    return KILN_OK;
}

static int64_t dim_grid_points(const sweep_dim *d, int points)
{
    if (d->kind == DIST_CHOICE) return d->n_choices;
    if (d->kind == DIST_INT) return (int64_t)fmin(d->hi - d->lo + 1.0, (double)points);
    return points;
}

static kiln_status plan_budget(sweep_plan *p)
{
    const kiln_sweep_section *s = &p->cfg.sweep;
    p->grid_size = 1;
    for (int i = 0; i < p->n_dims && p->grid_size < INT32_MAX; i++)
        p->grid_size *= dim_grid_points(&p->dims[i], s->grid_points);
    p->trial_budget = s->trials ? s->trials : p->sampler == SAMPLER_GRID ? p->grid_size : INT64_MAX;
    if (p->trial_budget == INT64_MAX && !s->total_steps && s->wall_time <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "the sweep has no budget: set sweep.trials, "
                          "sweep.total_steps or sweep.wall_time");
    return KILN_OK;
}

/* Every searched key with its extreme values and each choice, as a trial's config would take
 * them: a value its key refuses is an error now rather than a failed trial later. */
static kiln_status check_values(const sweep_plan *p, const char *base_yaml)
{
    kiln_train_config *probe = malloc(sizeof *probe);
    KILN_CHECK_ALLOC(probe);
    kiln_status st = KILN_OK;
    for (int i = 0; i < p->n_dims && st == KILN_OK; i++) {
        const sweep_dim *d = &p->dims[i];
        for (size_t k = 0; k < sizeof owned_keys / sizeof owned_keys[0]; k++)
            if (!strcmp(d->key, owned_keys[k]))
                return free(probe), KILN_ERROR(KILN_ERR_CONFIG, "sweep.space.%s: the sweep sets "
                                               "%s itself (sweep.r_max, sweep.dir)", d->key, d->key);
        double lo, hi;
        kiln_sweep_dim_bounds(d, &lo, &hi);
        int n = d->kind == DIST_CHOICE ? d->n_choices : 2;
        for (int v = 0; v < n && st == KILN_OK; v++) {
            /* a grid takes a continuous dimension's upper bound itself */
            int grid_end = p->sampler == SAMPLER_GRID && (d->kind == DIST_UNIFORM || d->kind == DIST_LOGUNIFORM);
            double x = d->kind == DIST_CHOICE ? v
                       : v == 0              ? lo
                       : grid_end            ? hi
                                             : kiln_sweep_dim_from_unit(d, 0.999999);
            char value[KILN_CFG_STR_MAX], set[KILN_CFG_STR_MAX + KILN_CFG_MAP_KEY_MAX + 2];
            kiln_sweep_dim_format(d, x, value, sizeof value);
            snprintf(set, sizeof set, "%s=%s", d->key, value);
            const char *sets[1] = {set};
            st = kiln_config_load_text(&kiln_train_schema, probe, base_yaml, "the sweep's config",
                                       sets, 1);
            if (st != KILN_OK) {
                char inner[2048];
                snprintf(inner, sizeof inner, "%s", kiln_error_message());
                kiln_error_clear();
                st = KILN_ERROR(KILN_ERR_CONFIG, "sweep.space.%s: its value %s is refused: %s",
                                d->key, value, inner);
            }
        }
    }
    free(probe);
    return st;
}

static kiln_status plan_space(sweep_plan *p)
{
    kiln_cfg_key *keys;
    size_t n;
    KILN_CHECK(kiln_config_keys(&kiln_train_schema, &keys, &n));
    kiln_status st = kiln_sweep_space_parse(&p->cfg.sweep.space, keys, n, &p->dims, &p->n_dims);
    free(keys);
    KILN_CHECK(st);
    char *base = kiln_config_to_yaml(&kiln_train_schema, &p->cfg.train);
    KILN_CHECK_ALLOC(base);
    st = check_values(p, base);
    free(base);
    return st;
}

kiln_status kiln_sweep_plan_init(const kiln_sweep_config *cfg, sweep_plan *p)
{
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    const kiln_sweep_section *s = &p->cfg.sweep;
    p->maximize = !strcmp(s->mode, "max");
    p->sampler = !strcmp(s->sampler, "grid") ? SAMPLER_GRID : !strcmp(s->sampler, "tpe") ? SAMPLER_TPE
                                                                                         : SAMPLER_RANDOM;
    kiln_status st = kiln_slurm_expand(kiln_slurm(), "sweep.dir", s->dir, p->dir, sizeof p->dir);
    if (st == KILN_OK) st = plan_space(p);
    if (st == KILN_OK) st = plan_rungs(p);
    if (st == KILN_OK) st = plan_budget(p);
    if (st == KILN_OK) p->config_yaml = kiln_config_to_yaml(&kiln_sweep_schema, &p->cfg);
    if (st == KILN_OK && !p->config_yaml) st = KILN_ERROR(KILN_ERR_NOMEM, "the sweep's config");
    if (st != KILN_OK) kiln_sweep_plan_free(p); /* nothing for the caller to free */
    return st;
}

void kiln_sweep_plan_free(sweep_plan *p)
{
    kiln_sweep_space_free(p->dims, p->n_dims);
    free(p->rungs);
    free(p->config_yaml);
    free(p->warm_x);
    free(p->warm_y);
    memset(p, 0, sizeof *p);
}
