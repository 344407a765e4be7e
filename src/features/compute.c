/* The features of the spine rows, correct in time: a feature at time t uses only events whose
 * time is before t (windows: [t - W, t)) or at most t (as-of joins: the latest row known at t).
 *
 * Windows: the events and the spine rows are each sorted by (key, time, row) (radix sorted:
 * linear in the rows); within a key
 * the window's ends only move forward as t grows, so one pass per key keeps it: prefix sums in
 * long double for count, sum, mean and std (each window's sums are differences of two prefixes,
 * so no error accumulates from row to row; they restart every W, see block_sum),
 * monotonic queues for min and max, the newest
 * non-NA row for last. NA values (NaN) are not counted; an empty window's sum, mean, min, max,
 * std and last are NaN (SQL's NULL), its count 0; std is the sample one (NaN below 2 values).
 * Spine rows and events whose key or time is NA have no features (NaN) and are not seen. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/radix.h"
#include "features_internal.h"

typedef struct sort_ctx {
    const int64_t *key, *time;
} sort_ctx;

static int by_key_time(const void *a, const void *b, void *ctx)
{
    const sort_ctx *c = ctx;
    uint64_t i = *(const uint64_t *)a, j = *(const uint64_t *)b;
    if (c->key[i] != c->key[j]) return c->key[i] < c->key[j] ? -1 : 1;
    if (c->time[i] != c->time[j]) return c->time[i] < c->time[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int bits_of(uint64_t range)
{
    int b = 0;
    while (b < 64 && (range >> b)) b++;
    return b;
}

/* The rows of order[0..n) sorted by (key, time, row) in linear time when key and time, less
 * their minimums, fit one 64-bit word together (category keys and any span of times do), packed
 * as (key, time) and radix sorted, which keeps rows in order among equal pairs; 0 when they do
 * not fit. */
static int radix_sorted(const int64_t *key, const int64_t *time, uint64_t *order, uint64_t n, kiln_status *st)
{
    int64_t kmin = INT64_MAX, kmax = INT64_MIN, tmin = INT64_MAX, tmax = INT64_MIN;
    for (uint64_t i = 0; i < n; i++) {
        int64_t k = key[order[i]], t = time[order[i]];
        kmin = k < kmin ? k : kmin, kmax = k > kmax ? k : kmax, tmin = t < tmin ? t : tmin, tmax = t > tmax ? t : tmax;
    }
    if (n < 2) return 1;
    int tbits = bits_of((uint64_t)tmax - (uint64_t)tmin), kbits = bits_of((uint64_t)kmax - (uint64_t)kmin);
    if (tbits + kbits > 64) return 0;
    uint64_t *packed = malloc(n * sizeof *packed);
    if (!packed) return *st = KILN_ERROR(KILN_ERR_NOMEM, "sorting %llu rows", (unsigned long long)n), 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = order[i];
        uint64_t k = (uint64_t)key[r] - (uint64_t)kmin, t = (uint64_t)time[r] - (uint64_t)tmin;
        packed[i] = (tbits < 64 ? k << tbits : 0) | t;
    }
    *st = kiln_radix_sort(packed, order, n, tbits + kbits);
    free(packed);
    return 1;
}

/* The rows with a key and a time, sorted by (key, time, row): *order (caller frees), *n. */
static kiln_status sorted_rows(const int64_t *key, const int64_t *time, uint64_t rows, uint64_t **order, uint64_t *n)
{
    *order = malloc((rows + 1) * sizeof **order);
    KILN_CHECK_ALLOC(*order);
    *n = 0;
    for (uint64_t i = 0; i < rows; i++)
        if (key[i] != INT64_MIN && time[i] != INT64_MIN) (*order)[(*n)++] = i;
    kiln_status st = KILN_OK;
    if (radix_sorted(key, time, *order, *n, &st)) return st;
    sort_ctx c = {key, time};
    qsort_r(*order, *n, sizeof **order, by_key_time, &c);
    return KILN_OK;
}

typedef struct window_state {
    const feature *f;
    const int64_t *times;
    const double *values;
    const uint64_t *ev;                /* the events of this key, sorted by time */
    uint64_t n;
    long double *s1, *s2;              /* prefix sums of the non-NA values and their squares, each
                                        * restarting every look-back (block_sum) */
    uint64_t *first;                   /* the position of the first event of each event's span */
    uint64_t *cnt;                     /* prefix counts of the non-NA values */
    uint64_t *qmin, *qmax;             /* monotonic queues (positions in ev) */
    uint64_t hmin, tmin, hmax, tmax;
    int64_t last;                      /* the newest non-NA position below hi, or -1 */
} window_state;

static void push_queues(window_state *w, uint64_t pos)
{
    double v = w->values[w->ev[pos]];
    if (isnan(v)) return;
    while (w->tmin > w->hmin && w->values[w->ev[w->qmin[w->tmin - 1]]] >= v) w->tmin--;
    w->qmin[w->tmin++] = pos;
    while (w->tmax > w->hmax && w->values[w->ev[w->qmax[w->tmax - 1]]] <= v) w->tmax--;
    w->qmax[w->tmax++] = pos;
    w->last = (int64_t)pos;
}

/* floor(t / b) for any t (0 when b is 0: one block), without overflow. */
static int64_t floor_div(int64_t t, int64_t b)
{
    if (!b) return 0;
    int64_t q = t / b;
    return t % b < 0 ? q - 1 : q;
}

/* t - d, saturating at INT64_MIN (d >= 0): the start of a look-back near the start of time. */
static int64_t minus(int64_t t, int64_t d) { return t < INT64_MIN + d ? INT64_MIN : t - d; }

/* The sum of events [lo, hi) (hi > lo) from prefix sums that restart every look-back W
 * (floor(t / W)): the window [t - W, t) lies in at most two such spans, and each span is whole
 * on every rank that holds any of it (exchange.c sends a block's last W whole to the next
 * block's rank), so the sum is the same arithmetic on the same values on 1 rank or on 64. */
static long double block_sum(const window_state *w, const long double *s, uint64_t lo, uint64_t hi)
{
    uint64_t fe = w->first[hi - 1];
    long double before_lo = lo == w->first[lo] ? 0 : s[lo];
    if (lo >= fe) return s[hi] - before_lo;
    return (s[fe] - before_lo) + s[hi];
}

static double window_value(const window_state *w, uint64_t lo, uint64_t hi)
{
    uint64_t n = w->cnt[hi] - w->cnt[lo];
    long double s = hi > lo ? block_sum(w, w->s1, lo, hi) : 0, q = hi > lo ? block_sum(w, w->s2, lo, hi) : 0;
    switch (w->f->agg) {
    case AGG_COUNT: return (double)n;
    case AGG_SUM: return n ? (double)s : NAN;
    case AGG_MEAN: return n ? (double)(s / n) : NAN;
    case AGG_MIN: return n ? w->values[w->ev[w->qmin[w->hmin]]] : NAN;
    case AGG_MAX: return n ? w->values[w->ev[w->qmax[w->hmax]]] : NAN;
    case AGG_STD: {
        if (n < 2) return NAN;
        long double var = (q - s * s / n) / (n - 1);
        return var > 0 ? (double)sqrtl(var) : 0.0;
    }
    default: return w->last >= (int64_t)lo ? w->values[w->ev[w->last]] : NAN;
    }
}

/* The spine rows sp[0..m) of one key (sorted by time) against its events. */
static void window_key(window_state *w, const feat_spine *s, const uint64_t *sp, uint64_t m, double *out)
{
    w->s1[0] = w->s2[0] = 0, w->cnt[0] = 0;
    for (uint64_t p = 0; p < w->n; p++) {
        double v = w->values[w->ev[p]];
        int ok = !isnan(v);
        int64_t back = kiln_feat_lookback_us(w->f);
        int starts = p == 0 || floor_div(w->times[w->ev[p]], back) != floor_div(w->times[w->ev[p - 1]], back);
        w->first[p] = starts ? p : w->first[p - 1];
        w->s1[p + 1] = (starts ? 0 : w->s1[p]) + (ok ? v : 0);
        w->s2[p + 1] = (starts ? 0 : w->s2[p]) + (ok ? (long double)v * v : 0);
        w->cnt[p + 1] = w->cnt[p] + (uint64_t)ok;
    }
    w->hmin = w->tmin = w->hmax = w->tmax = 0;
    w->last = -1;
    uint64_t lo = 0, hi = 0;
    for (uint64_t r = 0; r < m; r++) {
        int64_t t = s->time[sp[r]], from = minus(t, w->f->over_us);
        while (hi < w->n && w->times[w->ev[hi]] < t) push_queues(w, hi++);
        while (lo < hi && w->times[w->ev[lo]] < from) lo++;
        while (w->hmin < w->tmin && w->qmin[w->hmin] < lo) w->hmin++;
        while (w->hmax < w->tmax && w->qmax[w->hmax] < lo) w->hmax++;
        out[sp[r]] = window_value(w, lo, hi);
    }
}

int64_t kiln_feat_block(const feature *f, int64_t t)
{
    return floor_div(t, kiln_feat_block_us(f));
}

int64_t kiln_feat_lookback_us(const feature *f)
{
    return f->kind == FEAT_WINDOW ? f->over_us : f->kind == FEAT_ASOF ? f->within_us : 0;
}

int64_t kiln_feat_block_us(const feature *f)
{
    /* 16 look-backs: an event is needed by the next block only in its block's last 1/16 */
    int64_t w = kiln_feat_lookback_us(f);
    return w > INT64_MAX / 16 ? INT64_MAX : 16 * w;
}

/* Calls fn for every key of the spine: its spine rows and its events, both sorted by time. */
typedef void (*key_fn)(void *ctx, const uint64_t *sp, uint64_t m, const uint64_t *ev, uint64_t n);

static kiln_status each_key(const feat_spine *s, const int64_t *skeys, const int64_t *keys, const int64_t *times,
                            uint64_t n_events, key_fn fn, void *ctx)
{
    uint64_t *sp, *ev, ns, ne;
    KILN_CHECK(sorted_rows(skeys, s->time, s->rows, &sp, &ns));
    kiln_status st = sorted_rows(keys, times, n_events, &ev, &ne);
    for (uint64_t a = 0, b = 0; st == KILN_OK && a < ns;) {
        int64_t k = skeys[sp[a]];
        uint64_t a1 = a, b1;
        while (a1 < ns && skeys[sp[a1]] == k) a1++;
        while (b < ne && keys[ev[b]] < k) b++;
        for (b1 = b; b1 < ne && keys[ev[b1]] == k;) b1++;
        fn(ctx, sp + a, a1 - a, ev + b, b1 - b);
        a = a1, b = b1;
    }
    free(sp), free(ev);
    return st;
}

static void fill_nan(double *out, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) out[i] = NAN;
}

typedef struct window_job {
    window_state w;
    const feat_spine *s;
    double *out;
} window_job;

static void window_one(void *ctx, const uint64_t *sp, uint64_t m, const uint64_t *ev, uint64_t n)
{
    window_job *j = ctx;
    j->w.ev = ev, j->w.n = n;
    window_key(&j->w, j->s, sp, m, j->out);
}

kiln_status kiln_feat_window(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                             const int64_t *keys, const int64_t *times, const double *values, double *out)
{
    fill_nan(out, s->rows);
    window_job j = {{.f = f, .times = times, .values = values}, s, out};
    window_state *w = &j.w;
    w->s1 = malloc((n + 1) * sizeof *w->s1);
    w->s2 = malloc((n + 1) * sizeof *w->s2);
    w->cnt = malloc((n + 1) * sizeof *w->cnt);
    w->first = malloc((n + 1) * sizeof *w->first);
    w->qmin = malloc((n + 1) * sizeof *w->qmin);
    w->qmax = malloc((n + 1) * sizeof *w->qmax);
    kiln_status st = w->s1 && w->s2 && w->cnt && w->first && w->qmin && w->qmax
                         ? each_key(s, skeys, keys, times, n, window_one, &j)
                         : KILN_ERROR(KILN_ERR_NOMEM, "feature %s: window buffers for %llu events", f->name,
                                      (unsigned long long)n);
    free(w->s1), free(w->s2), free(w->cnt), free(w->first), free(w->qmin), free(w->qmax);
    return st;
}

/* ---- as-of: the latest row of the key at or before t (the last in input order among equal
 * times), within the tolerance, and, with a creation time, created at or before t ---- */

typedef struct asof_job {
    const feature *f;
    const feat_spine *s;
    const int64_t *times, *created;
    const double *values;
    double *out;
} asof_job;

static void asof_one(void *ctx, const uint64_t *sp, uint64_t m, const uint64_t *ev, uint64_t n)
{
    asof_job *j = ctx;
    uint64_t hi = 0;
    for (uint64_t r = 0; r < m; r++) {
        int64_t t = j->s->time[sp[r]];
        while (hi < n && j->times[ev[hi]] <= t) hi++;
        for (uint64_t p = hi; p-- > 0;) {
            uint64_t e = ev[p];
            if (j->f->within_us && j->times[e] < minus(t, j->f->within_us)) break;
            if (j->created && (j->created[e] == INT64_MIN || j->created[e] > t)) continue;
            j->out[sp[r]] = j->values[e];
            break;
        }
    }
}

kiln_status kiln_feat_asof(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                           const int64_t *keys, const int64_t *times, const int64_t *created, const double *values,
                           double *out)
{
    fill_nan(out, s->rows);
    asof_job j = {f, s, times, created, values, out};
    return each_key(s, skeys, keys, times, n, asof_one, &j);
}

/* ---- lookups: the one row of a static table with the key ---- */

static int by_key(const void *a, const void *b, void *ctx)
{
    const int64_t *key = ctx;
    uint64_t i = *(const uint64_t *)a, j = *(const uint64_t *)b;
    return key[i] != key[j] ? (key[i] < key[j] ? -1 : 1) : (i < j ? -1 : i > j);
}

static uint64_t find_key(const uint64_t *order, uint64_t n, const int64_t *keys, int64_t k)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (keys[order[mid]] < k) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && keys[order[lo]] == k ? lo : n;
}

kiln_status kiln_feat_lookup(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                             const int64_t *keys, const double *values, const uint64_t *rows, double *out)
{
    uint64_t *order = malloc((n + 1) * sizeof *order), m = 0;
    KILN_CHECK_ALLOC(order);
    for (uint64_t i = 0; i < n; i++)
        if (keys[i] != INT64_MIN) order[m++] = i;
    qsort_r(order, m, sizeof *order, by_key, (void *)keys);
    for (uint64_t i = 1; i < m; i++)
        if (keys[order[i]] == keys[order[i - 1]]) {
            kiln_status st = KILN_ERROR(KILN_ERR_DATA, "feature %s: table '%s' has two rows with one %s (data rows "
                                        "%llu and %llu): a lookup needs one row a key; use asof for a history",
                                        f->name, f->table, f->by,
                                        (unsigned long long)(rows ? rows[order[i - 1]] : order[i - 1]) + 1,
                                        (unsigned long long)(rows ? rows[order[i]] : order[i]) + 1);
            free(order);
            return st;
        }
    for (uint64_t r = 0; r < s->rows; r++) {
        uint64_t at = skeys[r] == INT64_MIN ? m : find_key(order, m, keys, skeys[r]);
        out[r] = at < m ? values[order[at]] : NAN;
    }
    free(order);
    return KILN_OK;
}

/* ---- parts of the spine's time (UTC) ---- */

void kiln_feat_time_part(feat_part part, const feat_spine *s, double *out)
{
    for (uint64_t r = 0; r < s->rows; r++) {
        int64_t t = s->time[r];
        if (t == INT64_MIN) {
            out[r] = NAN;
            continue;
        }
        int64_t secs = t >= 0 ? t / 1000000 : -((-t + 999999) / 1000000);
        int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
        int64_t sod = secs - days * 86400;
        if (part == PART_HOUR) {
            out[r] = (double)(sod / 3600);
        } else if (part == PART_DOW) { /* 0 = Monday; 1970-01-01 was a Thursday */
            out[r] = (double)(((days % 7) + 7 + 3) % 7);
        } else { /* civil_from_days (Howard Hinnant) */
            int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
            int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
            int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
            int64_t d = doy - (153 * mp + 2) / 5 + 1, mo = mp < 10 ? mp + 3 : mp - 9;
            out[r] = (double)(part == PART_DAY ? d : mo);
        }
    }
}
