/* Transforms of a feature, fitted on the training split only (so the validation split and new
 * rows are transformed with what training saw):
 *   fill_mean      NA to the training mean;  fill(V): NA to V
 *   indicator      a column of 1 where the value is NA at that step (before a fill)
 *   standardize    to the training mean and population standard deviation (a constant: x - mean)
 *   minmax         the training range to [0, 1];  log1p (NaN at or below -1);  clip(LO, HI)
 *   buckets(N)     the number of training quantiles at or below x: N-1 quantiles at i/N (linear
 *                  interpolation between order statistics, numpy's default), equal ones once,
 *                  so 0 .. N-1
 *   codes(MIN)     a category to its code: the categories with at least MIN training rows, most
 *                  frequent first (ties by their text), are 1, 2, ...; rarer ones and ones
 *                  never seen in training are 0, "other"
 *   hash(N)        a category to FNV-1a 64 of its text mod N (kiln_strdict_hash): no state,
 *                  the same bucket for the same text anywhere
 * NA stays NA through buckets, codes and hash (a fill after them gives it a value). codes and
 * hash read the category's text, so they come first, on a category column. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/radix.h"
#include "kiln/strdict.h"
#include "features_internal.h"

int kiln_feat_width(const feature *f)
{
    for (int t = 0; t < f->n_tr; t++)
        if (f->tr[t].kind == TR_INDICATOR) return 2;
    return 1;
}

void kiln_feat_fitted_free(feat_fitted *f)
{
    for (int32_t i = 0; i < f->n_kept; i++) free(f->kept[i]);
    free(f->kept), free(f->kept_count), free(f->edges);
    f->kept = NULL, f->kept_count = NULL, f->edges = NULL, f->n_kept = 0, f->n_edges = 0;
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

kiln_status kiln_feat_sort_values(double *v, uint64_t n)
{
    uint64_t *k = malloc((n + 1) * sizeof *k);
    KILN_CHECK_ALLOC(k);
    for (uint64_t i = 0; i < n; i++) k[i] = kiln_radix_of_double(v[i]);
    kiln_status st = kiln_radix_sort(k, NULL, n, 64);
    for (uint64_t i = 0; st == KILN_OK && i < n; i++) v[i] = kiln_radix_to_double(k[i]);
    free(k);
    return st;
}

double kiln_feat_quantile(const double *sorted, uint64_t m, double q)
{
    if (m == 0) return NAN;
    double h = (double)(m - 1) * q;
    uint64_t lo = (uint64_t)h;
    double t = h - (double)lo;
    if (lo >= m - 1 || t == 0) return sorted[lo < m - 1 ? lo : m - 1]; /* exact: inf next door gives no NaN */
    return sorted[lo] + t * (sorted[lo + 1] - sorted[lo]);
}

/* buckets(N): the training quantiles at 1/N .. (N-1)/N, each once. */
static kiln_status fit_buckets(const double *x, uint64_t n, const uint8_t *train, int buckets, feat_fitted *fit)
{
    uint64_t m = 0;
    double *v = malloc((n + 1) * sizeof *v);
    fit->edges = malloc((size_t)buckets * sizeof *fit->edges);
    if (!v || !fit->edges) {
        free(v);
        return KILN_ERROR(KILN_ERR_NOMEM, "buckets of %llu values", (unsigned long long)n);
    }
    for (uint64_t i = 0; i < n; i++)
        if (train[i] && !isnan(x[i])) v[m++] = x[i];
    kiln_status st = kiln_feat_sort_values(v, m);
    fit->n_edges = 0;
    for (int i = 1; st == KILN_OK && m && i < buckets; i++) {
        double e = kiln_feat_quantile(v, m, (double)i / buckets);
        if (!fit->n_edges || e > fit->edges[fit->n_edges - 1]) fit->edges[fit->n_edges++] = e;
    }
    free(v);
    return st;
}

static void apply_buckets(double *x, uint64_t n, const feat_fitted *fit)
{
    for (uint64_t i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        uint64_t lo = 0, hi = fit->n_edges; /* the number of edges <= x */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (fit->edges[mid] <= x[i]) lo = mid + 1;
            else hi = mid;
        }
        x[i] = (double)lo;
    }
}

/* A category's position in its source column's strings, or -1 for NA (or a value that is not
 * one: the caller's column is checked to be a category). */
static int64_t position(double v, const feat_cats *src)
{
    return isnan(v) || v < 0 || v >= src->n ? -1 : (int64_t)v;
}

typedef struct count_of {
    const char *s;
    int64_t n;
} count_of;

static int by_count(const void *a, const void *b)
{
    const count_of *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return strcmp(x->s, y->s);
}

/* codes(MIN): the categories with at least MIN training rows, most frequent first. */
static kiln_status fit_codes(const double *x, uint64_t n, const uint8_t *train, const feat_cats *src, double min,
                             feat_fitted *fit)
{
    count_of *c = calloc((size_t)src->n + 1, sizeof *c);
    KILN_CHECK_ALLOC(c);
    for (int32_t k = 0; k < src->n; k++) c[k].s = src->s[k];
    for (uint64_t i = 0; i < n; i++) {
        int64_t p = train[i] ? position(x[i], src) : -1;
        if (p >= 0) c[p].n++;
    }
    qsort(c, (size_t)src->n, sizeof *c, by_count);
    int32_t kept = 0;
    while (kept < src->n && c[kept].n > 0 && (double)c[kept].n >= min) kept++;
    fit->kept = calloc((size_t)kept + 1, sizeof *fit->kept);
    fit->kept_count = calloc((size_t)kept + 1, sizeof *fit->kept_count);
    kiln_status st = fit->kept && fit->kept_count ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "codes");
    for (int32_t k = 0; st == KILN_OK && k < kept; k++, fit->n_kept++) {
        fit->kept[k] = strdup(c[k].s);
        fit->kept_count[k] = c[k].n;
        if (!fit->kept[k]) st = KILN_ERROR(KILN_ERR_NOMEM, "codes");
    }
    free(c);
    return st;
}

/* Each source category's code under fit (0: other), then the values through it. */
static kiln_status apply_codes(double *x, uint64_t n, const feat_cats *src, const feat_fitted *fit)
{
    kiln_strdict kept = {0};
    double *code = malloc(((size_t)src->n + 1) * sizeof *code);
    kiln_status st = code ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "codes");
    for (int32_t k = 0; st == KILN_OK && k < fit->n_kept; k++) {
        int64_t id;
        st = kiln_strdict_intern(&kept, fit->kept[k], &id);
    }
    for (int32_t k = 0; st == KILN_OK && k < src->n; k++) code[k] = (double)(kiln_strdict_find(&kept, src->s[k]) + 1);
    for (uint64_t i = 0; st == KILN_OK && i < n; i++) {
        int64_t p = position(x[i], src);
        x[i] = p < 0 ? NAN : code[p];
    }
    kiln_strdict_free(&kept);
    free(code);
    return st;
}

static void apply_hash(double *x, uint64_t n, const feat_cats *src, double buckets)
{
    for (uint64_t i = 0; i < n; i++) {
        int64_t p = position(x[i], src);
        x[i] = p < 0 ? NAN : (double)(kiln_strdict_hash(src->s[p]) % (uint64_t)buckets);
    }
}

kiln_status kiln_feat_transform(const feature *f, double *x, uint64_t n, const uint8_t *train,
                                const feat_fitted *given, const feat_cats *src, double *ind, feat_fitted *fit)
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
        case TR_BUCKETS:
            if (!given) KILN_CHECK(fit_buckets(x, n, train, (int)a, fit));
            apply_buckets(x, n, given ? given : fit);
            b = (double)(given ? given : fit)->n_edges;
            break;
        case TR_CODES:
            if (!given) KILN_CHECK(fit_codes(x, n, train, src, a, fit));
            KILN_CHECK(apply_codes(x, n, src, given ? given : fit));
            b = (double)(given ? given : fit)->n_kept;
            break;
        case TR_HASH:
            apply_hash(x, n, src, a);
            break;
        }
        if (fit) fit->a[t] = a, fit->b[t] = b;
    }
    return KILN_OK;
}
