/* The TPE sampler (Bergstra et al. 2011; as Optuna's default TPESampler, univariate): the
 * finished results of the highest rung that has at least sweep.tpe_startup of them (and an
 * earlier sweep's, with sweep.warm_start) split into the best gamma(n) = min(ceil(n / 10), 25)
 * and the rest; each dimension gets two Parzen estimators, l over the good points and g over
 * the others (a truncated normal per point, its width the larger gap to its neighbours, clipped,
 * plus the uniform prior); 24 candidates are drawn from l and the one maximising l / g is taken.
 * Choices use counts with the prior instead. Draws are Philox of (seed, trial, dimension), so a
 * trial's values depend only on the results the drawing worker saw. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sweep_internal.h"

enum { N_CANDIDATES = 24, GOOD_MAX = 25 };
static const double PRIOR_WEIGHT = 1.0;

typedef struct obs {
    double x, y;
} obs;

typedef struct parzen {
    int n;                              /* observations; component n is the prior */
    double *mu, *sigma, *w;             /* [n + 1] */
    double lo, hi;
} parzen;

static int cmp_x(const void *a, const void *b)
{
    double x = ((const obs *)a)->x, y = ((const obs *)b)->x;
    return x < y ? -1 : x > y;
}

/* Widths: the larger gap to a sorted neighbour (the bounds at the ends), clipped to
 * [range / min(100, n + 1), range]; the prior spans the range. */
static int parzen_fit(parzen *pz, obs *o, int n, double lo, double hi)
{
    pz->n = n;
    pz->lo = lo, pz->hi = hi;
    pz->mu = malloc((size_t)(n + 1) * sizeof(double));
    pz->sigma = malloc((size_t)(n + 1) * sizeof(double));
    pz->w = malloc((size_t)(n + 1) * sizeof(double));
    if (!pz->mu || !pz->sigma || !pz->w) return 0;
    if (n > 1) qsort(o, (size_t)n, sizeof *o, cmp_x);
    double range = hi - lo, min_s = range / fmin(100.0, n + 1.0);
    for (int i = 0; i < n; i++) {
        double left = o[i].x - (i ? o[i - 1].x : lo), right = (i + 1 < n ? o[i + 1].x : hi) - o[i].x;
        pz->mu[i] = o[i].x;
        pz->sigma[i] = fmin(fmax(fmax(left, right), min_s), range);
        pz->w[i] = 1.0;
    }
    pz->mu[n] = 0.5 * (lo + hi);
    pz->sigma[n] = range;
    pz->w[n] = PRIOR_WEIGHT;
    return 1;
}

static void parzen_free(parzen *pz)
{
    free(pz->mu), free(pz->sigma), free(pz->w);
}

static double norm_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

static double parzen_logpdf(const parzen *pz, double x)
{
    double total = 0.0, wsum = 0.0;
    for (int i = 0; i <= pz->n; i++) {
        double s = pz->sigma[i], z = (x - pz->mu[i]) / s;
        double mass = norm_cdf((pz->hi - pz->mu[i]) / s) - norm_cdf((pz->lo - pz->mu[i]) / s);
        total += pz->w[i] * exp(-0.5 * z * z) / (s * sqrt(2.0 * M_PI) * fmax(mass, 1e-12));
        wsum += pz->w[i];
    }
    return log(fmax(total / wsum, 1e-300));
}

/* A draw from the mixture, truncated to [lo, hi]: a component by weight, then a normal
 * (Box-Muller) until it lands inside (clamped after a few tries). */
static double parzen_draw(const parzen *pz, uint64_t seed, int64_t trial, int dim, int *draw)
{
    double wsum = 0.0;
    for (int i = 0; i <= pz->n; i++) wsum += pz->w[i];
    double u = kiln_sweep_uniform(seed, trial, dim, (*draw)++) * wsum;
    int c = 0;
    while (c < pz->n && (u -= pz->w[c]) >= 0) c++;
    double x = pz->mu[c];
    for (int tries = 0; tries < 16; tries++) {
        double u1 = fmax(kiln_sweep_uniform(seed, trial, dim, (*draw)++), 1e-300);
        double u2 = kiln_sweep_uniform(seed, trial, dim, (*draw)++);
        x = pz->mu[c] + pz->sigma[c] * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        if (x >= pz->lo && x < pz->hi) return x;
    }
    return fmin(fmax(x, pz->lo), nextafter(pz->hi, pz->lo));
}

/* A numeric dimension: candidates from l, the best by log l - log g. */
static double numeric_dim(const sweep_dim *d, obs *good, int ng, obs *bad, int nb, uint64_t seed,
                          int64_t trial, int dim)
{
    double lo, hi;
    kiln_sweep_dim_bounds(d, &lo, &hi);
    parzen l = {0}, g = {0};
    double best_x = lo + 0.5 * (hi - lo), best = -INFINITY;
    if (parzen_fit(&l, good, ng, lo, hi) && parzen_fit(&g, bad, nb, lo, hi)) {
        int draw = 0;
        for (int c = 0; c < N_CANDIDATES; c++) {
            double x = parzen_draw(&l, seed, trial, dim, &draw);
            double score = parzen_logpdf(&l, x) - parzen_logpdf(&g, x);
            if (score > best) best = score, best_x = x;
        }
    }
    parzen_free(&l);
    parzen_free(&g);
    if (d->kind == DIST_INT) best_x = fmin(floor(best_x), d->hi);
    return best_x;
}

/* A choice: the prior's share plus each observation's weight, for l and g. */
static double choice_dim(const sweep_dim *d, const obs *good, int ng, const obs *bad, int nb,
                         uint64_t seed, int64_t trial, int dim)
{
    int k = d->n_choices;
    double *pl = calloc((size_t)k, sizeof *pl), *pg = calloc((size_t)k, sizeof *pg);
    if (!pl || !pg) {
        free(pl), free(pg);
        return 0.0;
    }
    for (int c = 0; c < k; c++) pl[c] = pg[c] = PRIOR_WEIGHT / k;
    for (int i = 0; i < ng; i++) pl[(int)good[i].x % k] += 1.0;
    for (int i = 0; i < nb; i++) pg[(int)bad[i].x % k] += 1.0;
    double sl = 0.0, sg = 0.0;
    for (int c = 0; c < k; c++) sl += pl[c], sg += pg[c];
    int best_c = 0, draw = 0;
    double best = -INFINITY;
    for (int n = 0; n < N_CANDIDATES; n++) {
        double u = kiln_sweep_uniform(seed, trial, dim, draw++) * sl;
        int c = 0;
        while (c < k - 1 && (u -= pl[c]) >= 0) c++;
        double score = log(pl[c] / sl) - log(pg[c] / sg);
        if (score > best) best = score, best_c = c;
    }
    free(pl), free(pg);
    return (double)best_c;
}

static int cmp_y(const void *a, const void *b)
{
    double x = ((const obs *)a)[0].y, y = ((const obs *)b)[0].y;
    return x < y ? -1 : x > y;
}

/* The rung TPE models: the highest with at least tpe_startup finished results, or -1. */
static int model_rung(const sweep_state *s)
{
    for (int k = s->plan->n_rungs - 1; k >= 0; k--) {
        int64_t n = 0;
        for (int64_t i = 0; i < s->n_trials; i++) n += !isnan(s->trials[i].value[k]);
        if (n + s->plan->n_warm >= s->plan->cfg.sweep.tpe_startup && n > 0) return k;
    }
    return s->plan->n_warm >= s->plan->cfg.sweep.tpe_startup ? s->plan->n_rungs : -1;
}

int kiln_sweep_tpe_sample(const sweep_state *s, int64_t id, sweep_point *pt)
{
    const sweep_plan *p = s->plan;
    int k = model_rung(s);
    if (k < 0) return 0;
    int64_t n = p->n_warm;
    for (int64_t i = 0; k < p->n_rungs && i < s->n_trials; i++) n += !isnan(s->trials[i].value[k]);
    /* per dimension: (x, y) pairs sorted by y, the better first */
    obs *all = malloc((size_t)n * sizeof *all), *o = malloc((size_t)n * sizeof *o);
    int64_t *who = malloc((size_t)n * sizeof *who);
    if (!all || !o || !who) {
        free(all), free(o), free(who);
        return 0;
    }
    int64_t m = 0;
    for (int w = 0; w < p->n_warm; w++) all[m].y = p->warm_y[w], who[m++] = -1 - w;
    for (int64_t i = 0; k < p->n_rungs && i < s->n_trials; i++)
        if (!isnan(s->trials[i].value[k])) all[m].y = s->trials[i].value[k], who[m++] = i;
    for (int64_t i = 0; i < m; i++) all[i].x = (double)i; /* index, to follow the sort */
    for (int64_t i = 0; i < m; i++) all[i].y = p->maximize ? -all[i].y : all[i].y;
    if (m > 1) qsort(all, (size_t)m, sizeof *all, cmp_y);
    int n_good = (int)fmin(ceil(0.1 * (double)m), GOOD_MAX);
    uint64_t seed = (uint64_t)p->cfg.sweep.seed ^ 0x7470655f73656564ull; /* "tpe_seed" */
    for (int d = 0; d < p->n_dims; d++) {
        for (int64_t i = 0; i < m; i++) {
            int64_t src = who[(int64_t)all[i].x];
            o[i].x = src >= 0 ? s->trials[src].point.x[d] : p->warm_x[-1 - src].x[d];
            o[i].y = all[i].y;
        }
        const sweep_dim *dim = &p->dims[d];
        pt->x[d] = dim->kind == DIST_CHOICE
                       ? choice_dim(dim, o, n_good, o + n_good, (int)(m - n_good), seed, id, d)
                       : numeric_dim(dim, o, n_good, o + n_good, (int)(m - n_good), seed, id, d);
    }
    free(all), free(o), free(who);
    return 1;
}
