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

/* count, missing share, mean, std (sample), min, max of the values (NaN: missing; NaN where
 * there are no values). */
static void describe(const double *v, uint64_t n, double out[FEAT_N_STATS])
{
    uint64_t count = 0, missing = 0;
    long double s = 0, q = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (uint64_t i = 0; i < n; i++) {
        if (isnan(v[i])) missing++;
        else count++, s += v[i], lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    double mean = count ? (double)(s / count) : NAN;
    for (uint64_t i = 0; i < n; i++)
        if (!isnan(v[i])) q += ((long double)v[i] - mean) * ((long double)v[i] - mean);
    out[0] = (double)count, out[1] = n ? (double)missing / (double)n : NAN;
    out[2] = mean, out[3] = count > 1 ? (double)sqrtl(q / (count - 1)) : NAN;
    out[4] = count ? lo : NAN, out[5] = count ? hi : NAN;
}

kiln_status kiln_feat_fit(kiln_comm *comm, int owner, const feature *f, const double *col, const uint8_t *fit_rows,
                          uint64_t n, feat_fitted *fit, double stats[FEAT_N_STATS])
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
    for (int p = 0; p < size; p++) m += got[p];
    memset(fit, 0, sizeof *fit);
    uint8_t *ones = me == owner && st == KILN_OK ? malloc(m + 1) : NULL;
    if (me == owner && st == KILN_OK && !ones) st = KILN_ERROR(KILN_ERR_NOMEM, "feature %s: fitting", f->name);
    if (me == owner && st == KILN_OK) {
        describe(all, m, stats);
        memset(ones, 1, m);
        kiln_feat_transform(f, all, m, ones, NULL, NULL, fit);
    }
    free(ones), free(all), free(send), free(got);
    st = kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = kiln_comm_bcast(comm, KILN_AXIS_WORLD, fit, sizeof *fit, owner);
    if (st == KILN_OK) st = kiln_comm_bcast(comm, KILN_AXIS_WORLD, stats, FEAT_N_STATS * sizeof *stats, owner);
    return st;
}
