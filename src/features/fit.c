/* A feature's transforms fitted, and its statistics, on many ranks. The feature's training
 * values (its raw column on the rows of the training split, before any transform) are gathered
 * in spine order on one rank, the feature's owner (feature j: rank j mod size, so the fits of
 * many features run side by side), which fits and describes them with the same code on the same
 * values in the same order as one rank alone would: the fitted state and the statistics are
 * bit-identical on any number of ranks. The owner then sends them to every rank, and each
 * transforms its own rows with them (transform.c, given). Moved per feature: 8 bytes a training
 * row, once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "features_internal.h"

const char *const kiln_feat_stat_names[FEAT_N_STATS] = {"count", "missing_share", "mean", "std", "min", "max",
                                                         "p01", "p05", "p25", "p50", "p75", "p95", "p99"};

/* The histogram bin of x in FEAT_HIST_BINS equal bins over [lo, hi] (lo < hi), as numpy.histogram finds
 * it (the same edges, the same corrections), so the counts are numpy's. */
static double edge(int k, double lo, double hi)
{
    return k == FEAT_HIST_BINS ? hi : lo + k * ((hi - lo) / FEAT_HIST_BINS);
}

static int bin(double x, double lo, double hi)
{
    if (!(hi > lo)) return 0;
    double at = (x - lo) * (FEAT_HIST_BINS / (hi - lo));
    int k = at >= FEAT_HIST_BINS ? FEAT_HIST_BINS - 1 : at > 0 ? (int)at : 0;
    if (k > 0 && x < edge(k, lo, hi)) k--;
    else if (k < FEAT_HIST_BINS - 1 && x >= edge(k + 1, lo, hi)) k++;
    return k;
}

/* The statistics of the values (NaN: missing; NaN where there are no values): count, missing
 * share, mean, std (sample), min, max, the quantiles of kiln_feat_stat_names, then the
 * histogram. */
static kiln_status describe(const double *v, uint64_t n, double out[FEAT_STATS_ROW])
{
    uint64_t count = 0, missing = 0;
    long double s = 0, q = 0;
    double lo = INFINITY, hi = -INFINITY;
    double *sorted = malloc((n + 1) * sizeof *sorted);
    KILN_CHECK_ALLOC(sorted);
    kiln_status st = KILN_OK;
    for (uint64_t i = 0; i < n; i++) {
        if (isnan(v[i])) missing++;
        else sorted[count++] = v[i], s += v[i], lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    double mean = count ? (double)(s / count) : NAN;
    for (uint64_t i = 0; i < n; i++)
        if (!isnan(v[i])) q += ((long double)v[i] - mean) * ((long double)v[i] - mean);
    out[0] = (double)count, out[1] = n ? (double)missing / (double)n : NAN;
    out[2] = mean, out[3] = count > 1 ? (double)sqrtl(q / (count - 1)) : NAN;
    out[4] = count ? lo : NAN, out[5] = count ? hi : NAN;
    st = kiln_feat_sort_values(sorted, count);
    static const double at[7] = {0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99};
    for (int k = 0; k < 7; k++) out[6 + k] = kiln_feat_quantile(sorted, count, at[k]);
    double *hist = out + FEAT_N_STATS;
    for (int k = 0; k < FEAT_HIST_BINS; k++) hist[k] = 0;
    /* a constant feature: numpy's range, the value +- 0.5; infinite values or a range too
     * wide for a double have no histogram (numpy refuses them) */
    double from = lo < hi ? lo : lo - 0.5, to = lo < hi ? hi : hi + 0.5;
    int drawable = isfinite(from) && isfinite(to) && isfinite(FEAT_HIST_BINS / (to - from));
    for (uint64_t i = 0; st == KILN_OK && drawable && i < count; i++) hist[bin(sorted[i], from, to)] += 1;
    free(sorted);
    return st;
}

/* The owner's buckets and codes to every rank (a and b travel with the struct). */
static kiln_status share_lists(kiln_comm *comm, int owner, feat_fitted *fit)
{
    int me = kiln_comm_rank(comm, KILN_AXIS_WORLD);
    feat_fitted sent = *fit;
    KILN_CHECK(kiln_comm_bcast(comm, KILN_AXIS_WORLD, &sent, sizeof sent, owner));
    kiln_status st = KILN_OK;
    if (me != owner) {
        memcpy(fit->a, sent.a, sizeof fit->a), memcpy(fit->b, sent.b, sizeof fit->b);
        fit->n_edges = sent.n_edges;
        fit->edges = malloc(sent.n_edges * sizeof *fit->edges + 1);
        fit->kept = calloc((size_t)sent.n_kept + 1, sizeof *fit->kept);
        fit->kept_count = calloc((size_t)sent.n_kept + 1, sizeof *fit->kept_count);
        if (!fit->edges || !fit->kept || !fit->kept_count) st = KILN_ERROR(KILN_ERR_NOMEM, "the fitted state");
    }
    /* every rank can take the lists, or none waits for them */
    KILN_CHECK(kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL));
    KILN_CHECK(kiln_comm_bcast(comm, KILN_AXIS_WORLD, fit->edges, fit->n_edges * sizeof *fit->edges, owner));
    KILN_CHECK(kiln_comm_bcast(comm, KILN_AXIS_WORLD, fit->kept_count, (size_t)sent.n_kept * sizeof *fit->kept_count,
                               owner));
    /* the kept categories as one buffer of NUL-terminated strings */
    uint64_t bytes = 0;
    for (int32_t k = 0; me == owner && k < sent.n_kept; k++) bytes += strlen(fit->kept[k]) + 1;
    KILN_CHECK(kiln_comm_bcast(comm, KILN_AXIS_WORLD, &bytes, sizeof bytes, owner));
    char *all = malloc(bytes + 1);
    st = all ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "the fitted state");
    uint64_t at = 0;
    for (int32_t k = 0; st == KILN_OK && me == owner && k < sent.n_kept; k++)
        at += strlen(strcpy(all + at, fit->kept[k])) + 1;
    st = kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = kiln_comm_bcast(comm, KILN_AXIS_WORLD, all, bytes, owner);
    for (at = 0; st == KILN_OK && me != owner && fit->n_kept < sent.n_kept; fit->n_kept++) {
        if (!(fit->kept[fit->n_kept] = strdup(all + at))) st = KILN_ERROR(KILN_ERR_NOMEM, "the fitted state");
        else at += strlen(all + at) + 1;
    }
    free(all);
    return kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}

kiln_status kiln_feat_fit(kiln_comm *comm, int owner, const feature *f, const double *col, const uint8_t *fit_rows,
                          uint64_t n, const feat_cats *src, feat_fitted *fit, double stats[FEAT_STATS_ROW])
{
    int size = kiln_comm_size(comm, KILN_AXIS_WORLD), me = kiln_comm_rank(comm, KILN_AXIS_WORLD);
    uint64_t mine = 0, *send = calloc((size_t)size, sizeof *send), *got = calloc((size_t)size, sizeof *got);
    for (uint64_t i = 0; i < n; i++) mine += fit_rows[i] != 0;
    double *train = malloc((mine + 1) * sizeof *train), *all = NULL;
    kiln_status st = send && got && train ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "feature %s: fitting", f->name);
    for (uint64_t i = 0, k = 0; st == KILN_OK && i < n; i++)
        if (fit_rows[i]) train[k++] = col[i];
    if (st == KILN_OK) send[owner] = mine;
    st = kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = kiln_comm_exchange(comm, KILN_AXIS_WORLD, train, send, sizeof *train, (void **)&all, got);
    free(train);
    uint64_t m = 0;
    for (int p = 0; p < size && got; p++) m += got[p];
    uint8_t *ones = me == owner && st == KILN_OK ? malloc(m + 1) : NULL;
    if (me == owner && st == KILN_OK && !ones) st = KILN_ERROR(KILN_ERR_NOMEM, "feature %s: fitting", f->name);
    if (me == owner && st == KILN_OK) st = describe(all, m, stats);
    if (me == owner && st == KILN_OK) {
        memset(ones, 1, m);
        st = kiln_feat_transform(f, all, m, ones, NULL, src, NULL, fit);
    }
    free(ones), free(all), free(send), free(got);
    st = kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = share_lists(comm, owner, fit);
    if (st == KILN_OK) st = kiln_comm_bcast(comm, KILN_AXIS_WORLD, stats, FEAT_STATS_ROW * sizeof *stats, owner);
    return st;
}
