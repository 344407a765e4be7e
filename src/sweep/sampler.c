/* Where a new trial's values come from. random: each coordinate a Philox draw of (seed, trial,
 * dimension), so trial i gets the same values whichever worker draws it and whenever. grid:
 * trial i is the i-th point of the grid (the first dimension varies fastest): every choice,
 * every integer of a narrow int range, sweep.grid_points evenly spaced values (in log for
 * loguniform) of the others, bounds included. tpe: tpe.c, random until a rung has enough
 * results. */
#include <math.h>
#include "kiln/rng.h"
#include "sweep_internal.h"

double kiln_sweep_uniform(uint64_t seed, int64_t trial, int dim, int draw)
{
    uint32_t w[4];
    kiln_philox4x32(seed, (uint64_t)trial, ((uint64_t)(uint32_t)dim << 32) | (uint32_t)draw, w);
    uint64_t bits = ((uint64_t)(w[0] >> 5) << 26) | (w[1] >> 6); /* 53 bits */
    return (double)bits * (1.0 / 9007199254740992.0);
}

static void sample_random(const sweep_plan *p, int64_t id, sweep_point *pt)
{
    for (int d = 0; d < p->n_dims; d++)
        pt->x[d] = kiln_sweep_dim_from_unit(&p->dims[d], kiln_sweep_uniform((uint64_t)p->cfg.sweep.seed, id, d, 0));
}

static void sample_grid(const sweep_plan *p, int64_t id, sweep_point *pt)
{
    int64_t rest = p->grid_size ? id % p->grid_size : id;
    for (int d = 0; d < p->n_dims; d++) {
        const sweep_dim *dim = &p->dims[d];
        double lo, hi;
        kiln_sweep_dim_bounds(dim, &lo, &hi);
        int64_t n;
        if (dim->kind == DIST_CHOICE) n = dim->n_choices;
        else if (dim->kind == DIST_INT) n = (int64_t)fmin(dim->hi - dim->lo + 1.0, p->cfg.sweep.grid_points);
        else n = p->cfg.sweep.grid_points;
        int64_t digit = rest % n;
        rest /= n;
        if (dim->kind == DIST_CHOICE) pt->x[d] = (double)digit;
        else if (dim->kind == DIST_INT) pt->x[d] = n == 1 ? dim->lo : round(dim->lo + (double)digit * (dim->hi - dim->lo) / (double)(n - 1));
        else pt->x[d] = lo + (double)digit * (hi - lo) / (double)(n - 1);
    }
}

void kiln_sweep_sample(const sweep_state *s, int64_t id, sweep_point *pt)
{
    const sweep_plan *p = s->plan;
    if (p->sampler == SAMPLER_GRID) sample_grid(p, id, pt);
    else if (p->sampler != SAMPLER_TPE || !kiln_sweep_tpe_sample(s, id, pt)) sample_random(p, id, pt);
}
