/* The search kernels, on one thread each (a caller runs one per thread, on its own scratch):
 *   flat      a block of queries against blocks of the stored vectors by GEMM (the scores
 *             q.x, then ||x||^2 - 2 q.x for L2), each query keeping its k best;
 *   IVF-flat  the block's queries against the centroids by GEMM, the nprobe nearest lists of
 *             each; then list by list, the block's queries that probe it, gathered into one
 *             matrix, against the list's vectors by GEMM.
 * Distances ranked internally are ||x||^2 - 2 q.x (L2: ||q||^2 is added at the end, so the
 * output is the squared distance) or -q.x (inner product, cosine: the output is q.x). A filter
 * keeps only rows whose attribute is one of the values: exact with respect to the filter for
 * flat, and among the probed lists for IVF.
 * The GEMM form loses digits where norms are large against distances (pixels: ||x||^2 ~ 1e7,
 * a neighbour at 1e6; float32 keeps ~1e-7 of the norm). So each query keeps its 2k best by
 * GEMM, whose distances are then computed directly in double, and the k best of those are the
 * answer: the distances are exact to float rounding, and the order follows them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ann_internal.h"

/* A block of queries is searched together: an IVF list is read once for all the block's
 * queries that probe it (one GEMM), so larger blocks read less memory per query. */
enum { QUERY_BLOCK = 1024, BASE_BLOCK = 2048 };

struct ann_scratch {
    int k, kept;                       /* kept: candidates a query keeps for the exact pass */
    float *scores;                     /* QUERY_BLOCK x max(BASE_BLOCK, nlist, longest list) */
    ann_topk *tops;                    /* QUERY_BLOCK: each query's candidates */
    float *top_d;                      /* QUERY_BLOCK x kept: the GEMM candidates */
    int64_t *top_id;
    float *exact_d;                    /* k: one query's best by exact distance */
    int64_t *exact_id;
    int32_t *probes;                   /* QUERY_BLOCK x nlist */
    float *probe_dists;                /* QUERY_BLOCK x nlist: the coarse distances, as ranked */
    float *pq;                         /* IVF-PQ tables */
    float *probe_d;
    int64_t *probe_id;
    int32_t *by_list;                  /* the block's (query) of each probe, grouped by list */
    int64_t *list_start;               /* nlist + 1 */
    float *gathered;                   /* QUERY_BLOCK x dim: one list's queries */
    uint8_t *keep;                     /* BASE_BLOCK (flat) or the longest list: filter mask */
    ann_walk *walk;                    /* HNSW */
};

static int candidates(int k) { return k > INT_MAX / 2 ? k : 2 * k; }

static int64_t longest_list(const ann_index *idx)
{
    int64_t m = 0;
    for (int l = 0; l < idx->nlist; l++)
        if (idx->offsets[l + 1] - idx->offsets[l] > m) m = idx->offsets[l + 1] - idx->offsets[l];
    return m;
}

kiln_status kiln_ann_scratch_new(const ann_index *idx, int k, int beam, ann_scratch **out)
{
    ann_scratch *s = calloc(1, sizeof *s);
    KILN_CHECK_ALLOC(s);
    s->k = k;
    s->kept = candidates(k);
    if (idx->kind == ANN_IVF_PQ && !idx->vectors) s->kept = k; /* nothing to rank again with */
    if (idx->kind == ANN_IVF_PQ && idx->vectors && idx->pq_refine > s->kept) s->kept = idx->pq_refine;
    if (idx->kind == ANN_HNSW) {
        kiln_status st = kiln_ann_walk_new(idx, beam > k ? beam : k, &s->walk);
        if (st != KILN_OK) free(s);
        else *out = s;
        return st;
    }
    int64_t width = BASE_BLOCK, longest = idx->nlist ? longest_list(idx) : 0;
    if (idx->nlist > width) width = idx->nlist;
    if (longest > width) width = longest;
    size_t q = QUERY_BLOCK, lists = (size_t)(idx->nlist > 0 ? idx->nlist : 1);
    s->scores = malloc(q * (size_t)width * sizeof *s->scores);
    s->tops = malloc(q * sizeof *s->tops);
    s->top_d = malloc(q * (size_t)s->kept * sizeof *s->top_d);
    s->top_id = malloc(q * (size_t)s->kept * sizeof *s->top_id);
    s->exact_d = malloc((size_t)k * sizeof *s->exact_d);
    s->exact_id = malloc((size_t)k * sizeof *s->exact_id);
    s->probes = malloc(q * lists * sizeof *s->probes);
    s->probe_dists = malloc(q * lists * sizeof *s->probe_dists);
    s->pq = idx->kind == ANN_IVF_PQ ? malloc(kiln_ann_pq_scratch_floats(idx) * sizeof *s->pq) : NULL;
    s->probe_d = malloc(lists * sizeof *s->probe_d);
    s->probe_id = malloc(lists * sizeof *s->probe_id);
    s->by_list = malloc(q * lists * sizeof *s->by_list);
    s->list_start = malloc((lists + 1) * sizeof *s->list_start);
    s->gathered = malloc(q * (size_t)idx->dim * sizeof *s->gathered);
    s->keep = malloc((size_t)width);
    if (!s->scores || !s->tops || !s->top_d || !s->top_id || !s->exact_d || !s->exact_id || !s->probe_dists ||
        (idx->kind == ANN_IVF_PQ && !s->pq) || !s->probes || !s->probe_d || !s->probe_id ||
        !s->by_list || !s->list_start || !s->gathered || !s->keep) {
        kiln_ann_scratch_free(s);
        return KILN_ERROR(KILN_ERR_NOMEM, "search buffers (%lld floats a thread)",
                          (long long)(q * (size_t)width));
    }
    *out = s;
    return KILN_OK;
}

void kiln_ann_scratch_free(ann_scratch *s)
{
    if (!s) return;
    kiln_ann_walk_free(s->walk);
    free(s->scores), free(s->tops), free(s->top_d), free(s->top_id), free(s->exact_d), free(s->exact_id),
        free(s->probe_dists), free(s->pq), free(s->probes), free(s->probe_d);
    free(s->probe_id), free(s->by_list), free(s->list_start), free(s->gathered), free(s->keep);
    free(s);
}

/* Stored rows [first, first + n) against the m queries q (m x dim): scores into s->scores
 * (m x n), then each query's heap. */
static void scan_rows(const kiln_backend *be, const ann_index *idx, const ann_search_opts *o,
                      const float *q, int m, const int32_t *which, int64_t first, int64_t n,
                      ann_topk *tops, ann_scratch *s)
{
    int l2 = idx->metric == ANN_L2;
    be->ops.gemm(0, 1, m, (int)n, idx->dim, l2 ? -2.0f : -1.0f, q, idx->dim,
                 idx->vectors + (size_t)first * (size_t)idx->dim, idx->dim, 0.0f, s->scores, (int)n, NULL);
    int filtered = o->filter_attr >= 0;
    if (filtered)
        for (int64_t j = 0; j < n; j++) s->keep[j] = (uint8_t)kiln_ann_passes(idx, o, first + j);
    const float *norms = idx->norms + first;
    for (int i = 0; i < m; i++) {
        ann_topk *t = &tops[which ? which[i] : i];
        const float *row = s->scores + (size_t)i * (size_t)n;
        float bound = kiln_ann_topk_bound(t);
        for (int64_t j = 0; j < n; j++) {
            float d = l2 ? row[j] + norms[j] : row[j];
            if (d > bound || (filtered && !s->keep[j])) continue;
            kiln_ann_topk_push(t, d, first + j); /* the stored position; its id at the end */
            bound = kiln_ann_topk_bound(t);
        }
    }
}

/* The nprobe nearest lists of each of the m queries into s->probes (m x nprobe). */
static void coarse(const kiln_backend *be, const ann_index *idx, const float *q, int m, int nprobe,
                   ann_scratch *s)
{
    int l2 = idx->metric == ANN_L2;
    be->ops.gemm(0, 1, m, idx->nlist, idx->dim, l2 ? -2.0f : -1.0f, q, idx->dim, idx->centroids,
                 idx->dim, 0.0f, s->scores, idx->nlist, NULL);
    for (int i = 0; i < m; i++) {
        ann_topk t;
        kiln_ann_topk_init(&t, nprobe, s->probe_d, s->probe_id);
        const float *row = s->scores + (size_t)i * (size_t)idx->nlist;
        for (int l = 0; l < idx->nlist; l++) {
            float d = l2 ? row[l] + idx->centroid_norms[l] : row[l];
            if (d <= kiln_ann_topk_bound(&t)) kiln_ann_topk_push(&t, d, l);
        }
        kiln_ann_topk_sort(&t); /* nearest list first */
        for (int p = 0; p < nprobe; p++) {
            size_t at = (size_t)i * (size_t)nprobe + (size_t)p;
            s->probes[at] = p < t.n ? (int32_t)t.id[p] : -1;
            s->probe_dists[at] = p < t.n ? t.d[p] : INFINITY;
        }
    }
}

static int probes_of(const ann_index *idx, const ann_search_opts *o)
{
    int nprobe = o->nprobe > 0 ? o->nprobe : idx->nprobe;
    return nprobe > idx->nlist ? idx->nlist : nprobe;
}

static void pq_block(const kiln_backend *be, const ann_index *idx, const ann_search_opts *o,
                     const float *q, int m, ann_topk *tops, ann_scratch *s)
{
    int nprobe = probes_of(idx, o);
    coarse(be, idx, q, m, nprobe, s);
    for (int i = 0; i < m; i++)
        kiln_ann_pq_scan(idx, o, q + (size_t)i * (size_t)idx->dim, s->probes + (size_t)i * (size_t)nprobe,
                         s->probe_dists + (size_t)i * (size_t)nprobe, nprobe, &tops[i], s->pq);
}

static void ivf_block(const kiln_backend *be, const ann_index *idx, const ann_search_opts *o,
                      const float *q, int m, ann_topk *tops, ann_scratch *s)
{
    int nprobe = probes_of(idx, o);
    coarse(be, idx, q, m, nprobe, s);
    /* group the probes by list (a counting sort: lists ascending, queries ascending) */
    memset(s->list_start, 0, ((size_t)idx->nlist + 1) * sizeof *s->list_start);
    for (int i = 0; i < m * nprobe; i++)
        if (s->probes[i] >= 0) s->list_start[s->probes[i] + 1]++;
    for (int l = 0; l < idx->nlist; l++) s->list_start[l + 1] += s->list_start[l];
    for (int i = 0; i < m; i++)
        for (int p = 0; p < nprobe; p++) {
            int32_t l = s->probes[(size_t)i * (size_t)nprobe + (size_t)p];
            if (l >= 0) s->by_list[s->list_start[l]++] = i;
        }
    for (int l = idx->nlist; l > 0; l--) s->list_start[l] = s->list_start[l - 1];
    s->list_start[0] = 0;
    for (int l = 0; l < idx->nlist; l++) {
        int64_t a = s->list_start[l], b = s->list_start[l + 1];
        int64_t first = idx->offsets[l], n = idx->offsets[l + 1] - first;
        if (a == b || n == 0) continue;
        int r = (int)(b - a);
        for (int j = 0; j < r; j++)
            memcpy(s->gathered + (size_t)j * (size_t)idx->dim, q + (size_t)s->by_list[a + j] * (size_t)idx->dim,
                   (size_t)idx->dim * sizeof(float));
        scan_rows(be, idx, o, s->gathered, r, s->by_list + a, first, n, tops, s);
    }
}

static void flat_block(const kiln_backend *be, const ann_index *idx, const ann_search_opts *o,
                       const float *q, int m, ann_topk *tops, ann_scratch *s)
{
    for (int64_t at = 0; at < idx->rows; at += BASE_BLOCK) {
        int64_t n = idx->rows - at < BASE_BLOCK ? idx->rows - at : BASE_BLOCK;
        scan_rows(be, idx, o, q, m, NULL, at, n, tops, s);
    }
}

/* The exact distance (as ranked: smaller is better) of query r to stored vector x. */
static float exact_distance(const ann_index *idx, const float *r, const float *x)
{
    double acc = 0.0;
    if (idx->metric == ANN_L2)
        for (int d = 0; d < idx->dim; d++) {
            double t = (double)r[d] - (double)x[d];
            acc += t * t;
        }
    else
        for (int d = 0; d < idx->dim; d++) acc -= (double)r[d] * (double)x[d];
    return (float)acc;
}

/* Query r's candidates (stored positions in t) ranked again by exact distance; the k best go
 * to ids/dist as the output reports them (row ids; squared L2 or the inner product). */
static void finish_query(const ann_index *idx, const float *r, const ann_topk *t, int k, ann_scratch *s,
                         int64_t *ids, float *dist)
{
    ann_topk exact;
    kiln_ann_topk_init(&exact, k, s->exact_d, s->exact_id);
    for (int j = 0; j < t->n; j++) {
        int64_t pos = t->id[j];
        float e = exact_distance(idx, r, idx->vectors + (size_t)pos * (size_t)idx->dim);
        kiln_ann_topk_push(&exact, e, idx->ids ? idx->ids[pos] : pos);
    }
    kiln_ann_topk_sort(&exact);
    for (int j = 0; j < k; j++) {
        ids[j] = j < exact.n ? exact.id[j] : -1;
        dist[j] = j >= exact.n ? NAN : idx->metric == ANN_L2 ? exact.d[j] : -exact.d[j];
    }
}

/* Without the vectors (IVF-PQ): the candidates' table distances, made whole (L2: + ||q||^2). */
static void finish_approximate(const ann_index *idx, const float *r, ann_topk *t, int k, int64_t *ids, float *dist)
{
    kiln_ann_topk_sort(t);
    float qq = 0.0f;
    if (idx->metric == ANN_L2)
        for (int d = 0; d < idx->dim; d++) qq += r[d] * r[d];
    for (int j = 0; j < k; j++) {
        int found = j < t->n;
        ids[j] = found ? idx->ids[t->id[j]] : -1;
        dist[j] = !found ? NAN : idx->metric == ANN_L2 ? fmaxf(t->d[j] + qq, 0.0f) : -t->d[j];
    }
}

/* Stored positions as input rows, for the kinds that store rows in input order (a shard's
 * start at its first_row). */
static void to_input_rows(const ann_index *idx, int64_t *ids, size_t n)
{
    if (idx->ids || !idx->first_row) return;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0) ids[i] += idx->first_row;
}

void kiln_ann_search(const kiln_backend *be, const ann_index *idx, const ann_search_opts *o,
                     const float *queries, int nq, int64_t *ids, float *dist, ann_scratch *s)
{
    int k = o->k, kept = s->kept;
    if (idx->kind == ANN_HNSW) {
        for (int i = 0; i < nq; i++)
            kiln_ann_hnsw_search(idx, o, queries + (size_t)i * (size_t)idx->dim, k, s->walk, ids + (size_t)i * (size_t)k,
                                 dist + (size_t)i * (size_t)k);
        to_input_rows(idx, ids, (size_t)nq * (size_t)k);
        return;
    }
    ann_topk *tops = s->tops;
    for (int at = 0; at < nq; at += QUERY_BLOCK) {
        int m = nq - at < QUERY_BLOCK ? nq - at : QUERY_BLOCK;
        const float *q = queries + (size_t)at * (size_t)idx->dim;
        for (int i = 0; i < m; i++)
            kiln_ann_topk_init(&tops[i], kept, s->top_d + (size_t)i * (size_t)kept,
                               s->top_id + (size_t)i * (size_t)kept);
        if (idx->kind == ANN_FLAT) flat_block(be, idx, o, q, m, tops, s);
        else if (idx->kind == ANN_IVF_PQ) pq_block(be, idx, o, q, m, tops, s);
        else ivf_block(be, idx, o, q, m, tops, s);
        for (int i = 0; i < m; i++) {
            size_t row = (size_t)(at + i) * (size_t)k;
            const float *qi = q + (size_t)i * (size_t)idx->dim;
            if (idx->vectors) finish_query(idx, qi, &tops[i], k, s, ids + row, dist + row);
            else finish_approximate(idx, qi, &tops[i], k, ids + row, dist + row);
        }
    }
    to_input_rows(idx, ids, (size_t)nq * (size_t)k);
}
