/* k-means on the backend's GEMM, over a sample spread across ranks, with the same centroids on
 * any number of ranks.
 *
 * Assignment: distances as ||c||^2 - 2 x.c (||x||^2 does not change the argmin) by GEMM over
 * blocks of ANN_BLOCK sample rows, each block on one thread with a single-threaded GEMM, ties to
 * the lower centroid. A row's distances depend only on the row and the centroids.
 * Update: the rows of each cluster are summed in 64-bit fixed point (each value times 2^S,
 * rounded, with S chosen from the sample's largest magnitude and size so no sum can overflow),
 * and the sums and counts are all-reduced as integers: integer sums are exact, so they do not
 * depend on which rank or thread added which row. A centroid is then sum / count. An empty
 * cluster takes half of a large one: the cluster is picked with probability proportional to
 * its size (a draw of the seed and the iteration) and both get its centroid nudged apart by a
 * relative 1/1024, as FAISS does.
 * Init: k distinct sample rows drawn from the seed, or k-means++ (each next centroid drawn
 * with probability proportional to the squared distance to the nearest one so far, distances
 * summed in fixed point for the same reason). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/log.h"
#include "kiln/rng.h"
#include "ann_internal.h"

enum { ASSIGN_ROWS = 256 };            /* rows per GEMM in kiln_ann_assign */

size_t kiln_ann_assign_scratch(int k) { return (size_t)ASSIGN_ROWS * (size_t)k; }

void kiln_ann_assign(const kiln_backend *be, const float *x, uint64_t n, int dim,
                     const float *centroids, const float *cn, int k, int32_t *label, float *dist,
                     float *scratch)
{
    for (uint64_t at = 0; at < n; at += ASSIGN_ROWS) {
        int m = (int)(n - at < ASSIGN_ROWS ? n - at : ASSIGN_ROWS);
        be->ops.gemm(0, 1, m, k, dim, -2.0f, x + at * (size_t)dim, dim, centroids, dim, 0.0f,
                     scratch, k, NULL);
        for (int i = 0; i < m; i++) {
            const float *row = scratch + (size_t)i * (size_t)k;
            int best = 0;
            float bd = row[0] + cn[0];
            for (int c = 1; c < k; c++) {
                float d = row[c] + cn[c];
                if (d < bd) bd = d, best = c;
            }
            label[at + (uint64_t)i] = best;
            if (dist) dist[at + (uint64_t)i] = bd;
        }
    }
}

static uint64_t draw_u64(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t w[4];
    kiln_philox4x32(seed, stream, index, w);
    return ((uint64_t)w[0] << 32) | w[1];
}

typedef struct kmeans {
    const ann_kmeans_opts *o;
    const float *x;
    uint64_t first, n, n_total;
    int dim, k;
    double scale;                      /* 2^S: the fixed point of the sums */
    double d2_scale;                   /* the same for k-means++'s squared distances */
    int32_t *label;
    int64_t *sums, *counts;            /* k x dim, k */
    int64_t *thread_sums, *thread_counts;
    int threads;
} kmeans;

static kiln_status allreduce_i64(const kmeans *m, int64_t *buf, size_t n)
{
    return m->o->comm ? kiln_comm_allreduce_i64(m->o->comm, KILN_AXIS_WORLD, buf, n) : KILN_OK;
}

/* S with |x| * 2^S * n_total < 2^62 for every sample value: no sum can overflow. */
static kiln_status pick_scale(kmeans *m)
{
    double maxabs = 0.0;
    size_t count = (size_t)m->n * (size_t)m->dim;
    for (size_t i = 0; i < count; i++) maxabs = fmax(maxabs, fabs((double)m->x[i]));
    if (m->o->comm) KILN_CHECK(kiln_comm_allreduce_max_f64(m->o->comm, KILN_AXIS_WORLD, &maxabs, 1));
    int e, e2;
    frexp(maxabs > 0.0 ? maxabs : 1.0, &e); /* maxabs < 2^e */
    /* a squared distance is below dim * (2 maxabs)^2 */
    frexp((double)m->dim * 4.0 * (maxabs > 0.0 ? maxabs * maxabs : 1.0), &e2);
    int n_bits = (int)ceil(log2((double)m->n_total + 1.0));
    m->scale = ldexp(1.0, 62 - n_bits - e < 60 ? 62 - n_bits - e : 60);
    m->d2_scale = ldexp(1.0, 62 - n_bits - e2 < 60 ? 62 - n_bits - e2 : 60);
    return KILN_OK;
}

/* Distinct sample rows for the random init: the first k of a Fisher-Yates shuffle of
 * [0, n_total) drawn from the seed, the same on every rank. */
static kiln_status draw_rows(const kmeans *m, uint64_t *rows)
{
    if (m->n_total > UINT32_MAX)
        return KILN_ERROR(KILN_ERR_ARG, "a k-means sample of %llu rows: at most 2^32 - 1",
                          (unsigned long long)m->n_total);
    uint32_t *perm = malloc((size_t)m->n_total * sizeof *perm);
    KILN_CHECK_ALLOC(perm);
    for (uint64_t i = 0; i < m->n_total; i++) perm[i] = (uint32_t)i;
    for (int i = 0; i < m->k; i++) {
        uint64_t j = (uint64_t)i + draw_u64(m->o->seed, 0x696e6974ull, (uint64_t)i) % (m->n_total - (uint64_t)i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        rows[i] = perm[i];
    }
    free(perm);
    return KILN_OK;
}

/* Every rank puts the rows it holds among `rows` into c (zeroed elsewhere); a float sum over
 * ranks then gives each row exactly (x + 0 = x). */
static kiln_status gather_rows(const kmeans *m, const uint64_t *rows, int n, float *c)
{
    memset(c, 0, (size_t)n * (size_t)m->dim * sizeof *c);
    for (int i = 0; i < n; i++)
        if (rows[i] >= m->first && rows[i] < m->first + m->n)
            memcpy(c + (size_t)i * (size_t)m->dim, m->x + (rows[i] - m->first) * (size_t)m->dim,
                   (size_t)m->dim * sizeof *c);
    return m->o->comm ? kiln_comm_allreduce_f32(m->o->comm, KILN_AXIS_WORLD, c, (size_t)n * (size_t)m->dim)
                      : KILN_OK;
}

static float sq_dist(const float *a, const float *b, int dim)
{
    float s = 0.0f;
    for (int d = 0; d < dim; d++) {
        float t = a[d] - b[d];
        s += t * t;
    }
    return s;
}

/* k-means++: the next centroid is the sample row where a uniform draw over the fixed-point sum
 * of the squared distances (to the nearest centroid so far) falls. */
static kiln_status init_plus_plus(kmeans *m, float *c)
{
    float *d2 = malloc((m->n + 1) * sizeof *d2);
    int64_t *fx = malloc((m->n + 1) * sizeof *fx);
    int size = m->o->comm ? kiln_comm_size(m->o->comm, KILN_AXIS_WORLD) : 1;
    int64_t *totals = calloc((size_t)size, sizeof *totals);
    kiln_status st = d2 && fx && totals ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "k-means++");
    uint64_t row = draw_u64(m->o->seed, 0x2b2bull, 0) % m->n_total;
    if (st == KILN_OK) st = gather_rows(m, &row, 1, c);
    for (uint64_t i = 0; st == KILN_OK && i < m->n; i++) d2[i] = INFINITY;
    for (int j = 1; st == KILN_OK && j < m->k; j++) {
        const float *last = c + (size_t)(j - 1) * (size_t)m->dim;
        int64_t mine = 0;
        for (uint64_t i = 0; i < m->n; i++) {
            float d = sq_dist(m->x + i * (size_t)m->dim, last, m->dim);
            if (d < d2[i]) d2[i] = d;
            fx[i] = (int64_t)llrint((double)d2[i] * m->d2_scale);
            mine += fx[i];
        }
        st = m->o->comm ? kiln_comm_allgather_bytes(m->o->comm, KILN_AXIS_WORLD, &mine, totals, sizeof mine)
                        : (totals[0] = mine, KILN_OK);
        if (st != KILN_OK) break;
        int64_t total = 0, before = 0;
        for (int r = 0; r < size; r++) total += totals[r];
        int me = m->o->comm ? kiln_comm_rank(m->o->comm, KILN_AXIS_WORLD) : 0;
        for (int r = 0; r < me; r++) before += totals[r];
        uint64_t pick_row = UINT64_MAX;
        if (total > 0) {
            int64_t u = (int64_t)(draw_u64(m->o->seed, 0x2b2bull, (uint64_t)j) % (uint64_t)total);
            if (u >= before && u < before + mine) {
                int64_t acc = before;
                for (uint64_t i = 0; i < m->n && pick_row == UINT64_MAX; i++)
                    if ((acc += fx[i]) > u) pick_row = m->first + i;
            }
        } else if (j < (int)m->n_total) { /* every row is a centroid already: any row */
            pick_row = (uint64_t)j;
            if (pick_row < m->first || pick_row >= m->first + m->n) pick_row = UINT64_MAX;
        }
        /* the owner's choice to everyone: the smallest row offered (others offer none) */
        uint64_t chosen = pick_row;
        if (m->o->comm) {
            uint64_t *all = malloc((size_t)size * sizeof *all);
            st = all ? kiln_comm_allgather_bytes(m->o->comm, KILN_AXIS_WORLD, &pick_row, all, sizeof pick_row)
                     : KILN_ERROR(KILN_ERR_NOMEM, "k-means++");
            for (int r = 0; st == KILN_OK && r < size; r++) chosen = all[r] < chosen ? all[r] : chosen;
            free(all);
        }
        if (st == KILN_OK && chosen == UINT64_MAX) chosen = (uint64_t)j % m->n_total;
        float *dst = c + (size_t)j * (size_t)m->dim;
        float *tmp = st == KILN_OK ? malloc((size_t)m->dim * sizeof *tmp) : NULL;
        if (st == KILN_OK && !tmp) st = KILN_ERROR(KILN_ERR_NOMEM, "k-means++");
        if (st == KILN_OK) st = gather_rows(m, &chosen, 1, tmp);
        if (st == KILN_OK) memcpy(dst, tmp, (size_t)m->dim * sizeof *tmp);
        free(tmp);
    }
    free(d2), free(fx), free(totals);
    return st;
}

static kiln_status init_random(kmeans *m, float *c)
{
    uint64_t *rows = malloc((size_t)m->k * sizeof *rows);
    KILN_CHECK_ALLOC(rows);
    kiln_status st = draw_rows(m, rows);
    if (st == KILN_OK) st = gather_rows(m, rows, m->k, c);
    free(rows);
    return st;
}

/* Labels and per-thread fixed-point sums for this rank's rows; then the sums over threads and
 * ranks (exact). *obj: the sum of squared distances to the assigned centroids. */
static kiln_status assign_and_sum(kmeans *m, const float *c, double *obj)
{
    float *cn = malloc((size_t)m->k * sizeof *cn);
    KILN_CHECK_ALLOC(cn);
    kiln_ann_squared_norms(c, (uint64_t)m->k, m->dim, cn);
    size_t kd = (size_t)m->k * (size_t)m->dim;
    memset(m->thread_sums, 0, (size_t)m->threads * kd * sizeof *m->thread_sums);
    memset(m->thread_counts, 0, (size_t)m->threads * (size_t)m->k * sizeof *m->thread_counts);
    uint64_t blocks = (m->n + ANN_BLOCK - 1) / ANN_BLOCK;
    double total = 0.0;
    int failed = 0;
#pragma omp parallel num_threads(m->threads) reduction(+ : total) reduction(| : failed)
    {
        int t = omp_get_thread_num();
        float *scratch = malloc(kiln_ann_assign_scratch(m->k) * sizeof *scratch);
        float *dist = malloc(ANN_BLOCK * sizeof *dist);
        int64_t *sums = m->thread_sums + (size_t)t * kd, *counts = m->thread_counts + (size_t)t * (size_t)m->k;
        if (!scratch || !dist) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (uint64_t b = 0; b < blocks; b++) {
            if (failed) continue;
            uint64_t at = b * ANN_BLOCK, rows = m->n - at < ANN_BLOCK ? m->n - at : ANN_BLOCK;
            const float *xb = m->x + at * (size_t)m->dim;
            kiln_ann_assign(m->o->be, xb, rows, m->dim, c, cn, m->k, m->label + at, dist, scratch);
            for (uint64_t i = 0; i < rows; i++) {
                const float *r = xb + i * (size_t)m->dim;
                int32_t l = m->label[at + i];
                int64_t *s = sums + (size_t)l * (size_t)m->dim;
                float xx = 0.0f;
                for (int d = 0; d < m->dim; d++) {
                    s[d] += (int64_t)llrint((double)r[d] * m->scale);
                    xx += r[d] * r[d];
                }
                counts[l]++;
                total += (double)fmaxf(dist[i] + xx, 0.0f);
            }
        }
        free(scratch), free(dist);
    }
    free(cn);
    if (failed) return KILN_ERROR(KILN_ERR_NOMEM, "k-means assignment");
    for (int t = 1; t < m->threads; t++) {
        for (size_t i = 0; i < kd; i++) m->thread_sums[i] += m->thread_sums[(size_t)t * kd + i];
        for (int l = 0; l < m->k; l++) m->thread_counts[l] += m->thread_counts[(size_t)t * (size_t)m->k + (size_t)l];
    }
    memcpy(m->sums, m->thread_sums, kd * sizeof *m->sums);
    memcpy(m->counts, m->thread_counts, (size_t)m->k * sizeof *m->counts);
    KILN_CHECK(allreduce_i64(m, m->sums, kd));
    KILN_CHECK(allreduce_i64(m, m->counts, (size_t)m->k));
    *obj = total;
    if (m->o->comm) KILN_CHECK(kiln_comm_allreduce_f64(m->o->comm, KILN_AXIS_WORLD, obj, 1));
    return KILN_OK;
}

/* New centroids from the sums; empty clusters split a large one. Returns the number split. */
static int update(kmeans *m, float *c, int iter)
{
    for (int l = 0; l < m->k; l++) {
        if (!m->counts[l]) continue;
        double inv = 1.0 / ((double)m->counts[l] * m->scale);
        for (int d = 0; d < m->dim; d++)
            c[(size_t)l * (size_t)m->dim + d] = (float)((double)m->sums[(size_t)l * (size_t)m->dim + d] * inv);
    }
    int split = 0;
    for (int l = 0; l < m->k; l++) {
        if (m->counts[l]) continue;
        /* a cluster with probability proportional to its size beyond one row */
        int64_t weight = 0;
        for (int j = 0; j < m->k; j++) weight += m->counts[j] > 1 ? m->counts[j] - 1 : 0;
        if (weight <= 0) break;
        int64_t u = (int64_t)(draw_u64(m->o->seed, 0x73706c6974ull + (uint64_t)iter, (uint64_t)l) % (uint64_t)weight);
        int j = 0;
        for (; j < m->k; j++) {
            int64_t w = m->counts[j] > 1 ? m->counts[j] - 1 : 0;
            if (u < w) break;
            u -= w;
        }
        float *cl = c + (size_t)l * (size_t)m->dim, *cj = c + (size_t)j * (size_t)m->dim;
        for (int d = 0; d < m->dim; d++) {
            float v = cj[d];
            cl[d] = v * (1.0f + 1.0f / 1024.0f) + (d % 2 ? 1e-6f : -1e-6f);
            cj[d] = v * (1.0f - 1.0f / 1024.0f) - (d % 2 ? 1e-6f : -1e-6f);
        }
        m->counts[l] = m->counts[j] / 2;
        m->counts[j] -= m->counts[l];
        split++;
    }
    return split;
}

kiln_status kiln_ann_kmeans(const ann_kmeans_opts *o, const float *x, uint64_t first, uint64_t n,
                            uint64_t n_total, int dim, float *centroids, double *objective)
{
    if (o->k < 1 || (uint64_t)o->k > n_total)
        return KILN_ERROR(KILN_ERR_ARG, "k-means of %llu rows into %d clusters: need 1 <= clusters "
                          "<= rows", (unsigned long long)n_total, o->k);
    kmeans m = {.o = o, .x = x, .first = first, .n = n, .n_total = n_total, .dim = dim, .k = o->k,
                .threads = o->threads > 0 ? o->threads : omp_get_max_threads()};
    size_t kd = (size_t)o->k * (size_t)dim;
    m.label = malloc((n + 1) * sizeof *m.label);
    m.sums = malloc(kd * sizeof *m.sums);
    m.counts = malloc((size_t)o->k * sizeof *m.counts);
    m.thread_sums = malloc((size_t)m.threads * kd * sizeof *m.thread_sums);
    m.thread_counts = malloc((size_t)m.threads * (size_t)o->k * sizeof *m.thread_counts);
    kiln_status st = m.label && m.sums && m.counts && m.thread_sums && m.thread_counts
                         ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "k-means of %d clusters", o->k);
    if (st == KILN_OK) st = pick_scale(&m);
    if (st == KILN_OK && !o->start_iter)
        st = o->plus_plus ? init_plus_plus(&m, centroids) : init_random(&m, centroids);
    double obj = 0.0;
    int old_levels = omp_get_max_active_levels();
    omp_set_max_active_levels(1); /* each block's GEMM stays on its thread */
    for (int it = o->start_iter; st == KILN_OK && it < o->iters; it++) {
        st = assign_and_sum(&m, centroids, &obj);
        if (st != KILN_OK) break;
        int split = update(&m, centroids, it);
        kiln_debug("k-means iteration %d: objective %.6g, %d empty clusters split", it + 1, obj, split);
        if (o->after_iter) st = o->after_iter(o->ctx, it + 1, centroids);
    }
    omp_set_max_active_levels(old_levels);
    if (objective) *objective = obj;
    free(m.label), free(m.sums), free(m.counts), free(m.thread_sums), free(m.thread_counts);
    return st;
}
