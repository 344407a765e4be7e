/* Transforms of a feature, fitted on the training split only (so the validation split and new
 * rows are transformed with what training saw): fill_mean (NA to the training mean), fill(V),
 * indicator (a column of 1 where the value is NA at that step, before a fill), standardize (to
 * the training mean and population standard deviation; a constant feature to 0), minmax (the
 * training range to [0, 1]), log1p (NaN at or below -1), clip(LO, HI). */
#include <math.h>
#include "features_internal.h"

int kiln_feat_width(const feature *f)
{
    for (int t = 0; t < f->n_tr; t++)
        if (f->tr[t].kind == TR_INDICATOR) return 2;
    return 1;
}

/* Mean and population standard deviation of the training split's non-NA values (two passes). */
static void moments(const double *x, uint64_t n, const uint8_t *train, double *mean, double *sd)
{
    long double s = 0;
    uint64_t m = 0;
    for (uint64_t i = 0; i < n; i++)
        if (train[i] && !isnan(x[i])) s += x[i], m++;
    *mean = m ? (double)(s / m) : 0.0;
    long double q = 0;
    for (uint64_t i = 0; i < n; i++)
        if (train[i] && !isnan(x[i])) q += ((long double)x[i] - *mean) * ((long double)x[i] - *mean);
    *sd = m ? (double)sqrtl(q / m) : 0.0;
}

static void range(const double *x, uint64_t n, const uint8_t *train, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (uint64_t i = 0; i < n; i++)
        if (train[i] && !isnan(x[i])) *lo = fmin(*lo, x[i]), *hi = fmax(*hi, x[i]);
    if (*lo > *hi) *lo = *hi = 0.0;
}

void kiln_feat_transform(const feature *f, double *x, uint64_t n, const uint8_t *train, const feat_fitted *given,
                         double *ind, feat_fitted *fit)
{
    for (int t = 0; t < f->n_tr; t++) {
        const feat_transform *tr = &f->tr[t];
        double a = tr->a, b = tr->b;
        switch (tr->kind) {
        case TR_FILL_MEAN:
        case TR_FILL:
            if (tr->kind == TR_FILL_MEAN && given) a = given->a[t], b = given->b[t];
            else if (tr->kind == TR_FILL_MEAN) moments(x, n, train, &a, &b);
            for (uint64_t i = 0; i < n; i++)
                if (isnan(x[i])) x[i] = a;
            break;
        case TR_INDICATOR:
            for (uint64_t i = 0; ind && i < n; i++) ind[i] = isnan(x[i]) ? 1.0 : 0.0;
            break;
        case TR_STANDARDIZE:
            if (given) a = given->a[t], b = given->b[t];
            else moments(x, n, train, &a, &b);
            for (uint64_t i = 0; i < n; i++) x[i] = b > 0 ? (x[i] - a) / b : x[i] - a;
            break;
        case TR_MINMAX:
            if (given) a = given->a[t], b = given->b[t];
            else range(x, n, train, &a, &b);
            for (uint64_t i = 0; i < n; i++) x[i] = b > a ? (x[i] - a) / (b - a) : x[i] - a;
            break;
        case TR_LOG1P:
            for (uint64_t i = 0; i < n; i++) x[i] = x[i] > -1.0 ? log1p(x[i]) : NAN;
            break;
        case TR_CLIP:
            for (uint64_t i = 0; i < n; i++)
                if (!isnan(x[i])) x[i] = fmin(fmax(x[i], a), b);
            break;
        }
        fit->a[t] = a, fit->b[t] = b;
    }
}
