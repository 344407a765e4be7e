/* A keyed feature (window, as-of, lookup) on many ranks. Each rank holds a contiguous share of
 * the spine rows and of the table's rows; every row goes to the rank that owns its key's block
 * of time (a hash of both; blocks as long as the feature looks back, kiln_feat_block), an event
 * also to the next block's rank, which looks back into it; a rank computes the features of the
 * spine rows it received against the events it received, and the values go back in the order
 * the rows came. A key with millions of rows (an airport) so spreads over every rank; features
 * without a bound on looking back (a lookup, an as-of without `within`) go by key alone.
 *
 * Why the result does not depend on the number of ranks: the shares are contiguous and in rank
 * order, and kiln_comm_exchange keeps each sender's order, so a rank receives its rows in their
 * global order; compute.c sees, for every spine row, every event of its key it can look back to,
 * sorted by (key, time, position), and its window sums restart every look-back. So a row's
 * features are the same arithmetic on the same values in the same order on 1 rank or on 64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "features_internal.h"

typedef struct spine_row {
    int64_t key, time;
} spine_row;

typedef struct event_row {
    int64_t key, time, created;
    double value;
    uint64_t row;                      /* its row in the table, for messages */
} event_row;

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The rank that owns a key's block of time: splitmix64's finalizer spreads consecutive keys
 * (category codes, small integers) and blocks evenly. */
static int owner(int64_t key, int64_t block, int size)
{
    return (int)(mix(mix((uint64_t)key) ^ (uint64_t)block) % (uint64_t)size);
}

/* Where a row goes (dest[2], -1 where none): a spine row (events 0) to its key's block; an
 * event (events 1) to its block's rank and, in the block's last look-back, to the next block's,
 * whose first rows look back into it. */
static void destinations(const feature *f, int64_t key, const int64_t *time, int events, int size, int dest[2])
{
    dest[0] = dest[1] = -1;
    if (key == INT64_MIN || (time && *time == INT64_MIN)) return;
    int64_t b = time ? kiln_feat_block(f, *time) : 0;
    dest[0] = owner(key, b, size);
    int64_t back = kiln_feat_lookback_us(f);
    /* needed next door when the next block's start - back <= t (near the end of time: always) */
    if (events && back && time && (*time > INT64_MAX - back || kiln_feat_block(f, *time + back) != b)) {
        int next = owner(key, b + 1, size);
        if (next != dest[0]) dest[1] = next;
    }
}

/* The positions of the rows grouped by the ranks they go to (one or two each; none without a
 * key, or a time where the feature has one), each group in row order: *order (n_out of them)
 * and counts[size]. */
static kiln_status group_by_owner(const feature *f, const int64_t *keys, const int64_t *times, uint64_t n, int events,
                                  int size, uint64_t **order, uint64_t *n_out, uint64_t *counts)
{
    uint64_t *at = calloc((size_t)size + 1, sizeof *at);
    int (*dest)[2] = malloc((n + 1) * sizeof *dest);
    kiln_status st = at && dest ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "grouping %llu rows by key",
                                                       (unsigned long long)n);
    memset(counts, 0, (size_t)size * sizeof *counts);
    for (uint64_t i = 0; st == KILN_OK && i < n; i++) {
        destinations(f, keys[i], times ? &times[i] : NULL, events, size, dest[i]);
        for (int d = 0; d < 2; d++)
            if (dest[i][d] >= 0) counts[dest[i][d]]++;
    }
    uint64_t total = 0;
    for (int p = 0; st == KILN_OK && p < size; p++) at[p] = total, total += counts[p];
    *order = st == KILN_OK ? malloc((total + 1) * sizeof **order) : NULL;
    if (st == KILN_OK && !*order) st = KILN_ERROR(KILN_ERR_NOMEM, "grouping %llu rows by key", (unsigned long long)n);
    for (uint64_t i = 0; st == KILN_OK && i < n; i++)
        for (int d = 0; d < 2; d++)
            if (dest[i][d] >= 0) (*order)[at[dest[i][d]]++] = i;
    *n_out = total;
    free(at), free(dest);
    return st;
}

/* The feature of the received spine rows against the received events (out: one per spine row). */
static kiln_status compute_received(const feature *f, const spine_row *sp, uint64_t m, const event_row *ev,
                                    uint64_t n, double *out)
{
    int64_t *skeys = malloc((m + 1) * sizeof *skeys), *stimes = malloc((m + 1) * sizeof *stimes);
    int64_t *keys = malloc((n + 1) * sizeof *keys), *times = malloc((n + 1) * sizeof *times);
    int64_t *created = malloc((n + 1) * sizeof *created);
    double *values = malloc((n + 1) * sizeof *values);
    uint64_t *rows = malloc((n + 1) * sizeof *rows);
    kiln_status st = skeys && stimes && keys && times && created && values && rows
                         ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "feature %s: %llu received rows", f->name,
                                                (unsigned long long)(m + n));
    for (uint64_t i = 0; st == KILN_OK && i < m; i++) skeys[i] = sp[i].key, stimes[i] = sp[i].time;
    for (uint64_t i = 0; st == KILN_OK && i < n; i++)
        keys[i] = ev[i].key, times[i] = ev[i].time, created[i] = ev[i].created, values[i] = ev[i].value,
        rows[i] = ev[i].row;
    feat_spine s = {m, stimes};
    if (st == KILN_OK && f->kind == FEAT_WINDOW) st = kiln_feat_window(f, &s, skeys, n, keys, times, values, out);
    if (st == KILN_OK && f->kind == FEAT_ASOF)
        st = kiln_feat_asof(f, &s, skeys, n, keys, times, f->created[0] ? created : NULL, values, out);
    if (st == KILN_OK && f->kind == FEAT_LOOKUP) st = kiln_feat_lookup(f, &s, skeys, n, keys, values, rows, out);
    free(skeys), free(stimes), free(keys), free(times), free(created), free(values), free(rows);
    return st;
}

/* This rank's spine rows, grouped by owner, and its events, the same. */
static kiln_status pack(const feat_keyed_share *in, const uint64_t *sorder, uint64_t ns, const uint64_t *eorder,
                        uint64_t ne, spine_row **sp, event_row **ev)
{
    *sp = malloc((ns + 1) * sizeof **sp);
    *ev = malloc((ne + 1) * sizeof **ev);
    if (!*sp || !*ev) return KILN_ERROR(KILN_ERR_NOMEM, "%llu rows to send", (unsigned long long)(ns + ne));
    for (uint64_t i = 0; i < ns; i++) (*sp)[i] = (spine_row){in->skeys[sorder[i]], in->stimes[sorder[i]]};
    for (uint64_t i = 0; i < ne; i++) {
        uint64_t e = eorder[i];
        (*ev)[i] = (event_row){in->keys[e], in->times ? in->times[e] : 0, in->created ? in->created[e] : 0,
                               in->values[e], in->first_event + e};
    }
    return KILN_OK;
}

/* One rank: every key is here already, nothing moves. */
static kiln_status compute_here(const feature *f, const feat_keyed_share *in, double *out)
{
    feat_spine s = {in->n_spine, in->stimes};
    if (f->kind == FEAT_WINDOW)
        return kiln_feat_window(f, &s, in->skeys, in->n_events, in->keys, in->times, in->values, out);
    if (f->kind == FEAT_ASOF)
        return kiln_feat_asof(f, &s, in->skeys, in->n_events, in->keys, in->times, in->created, in->values, out);
    return kiln_feat_lookup(f, &s, in->skeys, in->n_events, in->keys, in->values, NULL, out);
}

kiln_status kiln_feat_keyed(kiln_comm *comm, const feature *f, const feat_keyed_share *in, double *out)
{
    int size = kiln_comm_size(comm, KILN_AXIS_WORLD);
    if (size == 1) return compute_here(f, in, out);
    const int64_t *etimes = f->kind == FEAT_LOOKUP ? NULL : in->times;
    uint64_t *sc = calloc((size_t)size, sizeof *sc), *ec = calloc((size_t)size, sizeof *ec);
    uint64_t *src = calloc((size_t)size, sizeof *src), *erc = calloc((size_t)size, sizeof *erc);
    uint64_t *sorder = NULL, *eorder = NULL, ns = 0, ne = 0;
    spine_row *sp = NULL, *rsp = NULL;
    event_row *ev = NULL, *rev = NULL;
    double *values = NULL, *back = NULL;
    kiln_status st = sc && ec && src && erc ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "exchange counts");
    if (st == KILN_OK) st = group_by_owner(f, in->skeys, in->stimes, in->n_spine, 0, size, &sorder, &ns, sc);
    if (st == KILN_OK) st = group_by_owner(f, in->keys, etimes, in->n_events, 1, size, &eorder, &ne, ec);
    if (st == KILN_OK) st = pack(in, sorder, ns, eorder, ne, &sp, &ev);
    /* every rank enters the exchanges, or none does */
    st = kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = kiln_comm_exchange(comm, KILN_AXIS_WORLD, sp, sc, sizeof *sp, (void **)&rsp, src);
    if (st == KILN_OK) st = kiln_comm_exchange(comm, KILN_AXIS_WORLD, ev, ec, sizeof *ev, (void **)&rev, erc);
    free(sp), free(ev);
    uint64_t m = 0, n = 0;
    for (int p = 0; st == KILN_OK && p < size; p++) m += src[p], n += erc[p];
    if (st == KILN_OK) values = malloc((m + 1) * sizeof *values);
    if (st == KILN_OK && !values) st = KILN_ERROR(KILN_ERR_NOMEM, "feature %s: %llu values", f->name,
                                                  (unsigned long long)m);
    if (st == KILN_OK) st = compute_received(f, rsp, m, rev, n, values);
    free(rsp), free(rev);
    st = kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    /* the values back to the ranks the rows came from, in the order they came */
    if (st == KILN_OK) st = kiln_comm_exchange(comm, KILN_AXIS_WORLD, values, src, sizeof *values, (void **)&back, sc);
    for (uint64_t i = 0; st == KILN_OK && i < in->n_spine; i++) out[i] = NAN;
    for (uint64_t i = 0; st == KILN_OK && i < ns; i++) out[sorder[i]] = back[i];
    free(values), free(back), free(sorder), free(eorder), free(sc), free(ec), free(src), free(erc);
    return st;
}
