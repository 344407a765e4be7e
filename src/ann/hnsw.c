/* HNSW (Malkov and Yashunin, "Efficient and robust approximate nearest neighbor search using
 * Hierarchical Navigable Small World graphs", 2018), as hnswlib builds and searches it:
 *   - every row gets a level drawn from the seed, floor(-ln(u) / ln(M)): the level of row i
 *     depends only on (seed, i);
 *   - a row is inserted by a greedy descent from the entry point down to its level, then on
 *     each of its layers a beam search of width ef_construction whose results are pruned by
 *     the neighbour heuristic (a candidate is kept only if it is nearer to the row than to
 *     every one kept before it) to M links (2M on layer 0); each new neighbour links back,
 *     pruning its own list by the same heuristic when full;
 *   - rows are inserted by the threads in parallel, each node's links under its own lock.
 * The graph is held as one link list per (node, layer) "entry", node-major: node i's entries
 * are node_entry[i] + layer. While building, every entry has room for its layer's capacity;
 * the file holds it compacted (CSR: offsets, neighbors).
 * A search descends greedily to layer 1, then beam-searches layer 0 with width max(ef, k).
 * A filter excludes rows from the results but not from the walk, so the graph stays connected. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/log.h"
#include "kiln/progress.h"
#include "kiln/rng.h"
#include "kiln/runtime.h"
#include "ann_internal.h"

enum { MAX_LEVEL = 32 };

/* ---- distances: a query against a stored row, four independent accumulators of 16 lanes so
 * the adds do not wait on each other (one accumulator: 1.4x slower searches here) ---- */

typedef float v16f __attribute__((vector_size(64)));

/* No function takes or returns a v16f: without AVX-512 their calling convention differs
 * (-Wpsabi), and as macros they stay inside one function's registers anyway. */
#define LOAD16(p) __extension__({ v16f v_; memcpy(&v_, (p), sizeof v_); v_; })

static inline float lanes(const v16f *v)
{
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += (*v)[i];
    return s;
}

/* Squared L2 of a query and a row */
static inline float l2_f32(const float *q, const float *x, int dim)
{
    v16f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, t;
    int d = 0;
    for (; d + 64 <= dim; d += 64) {
        t = LOAD16(q + d) - LOAD16(x + d), s0 += t * t;
        t = LOAD16(q + d + 16) - LOAD16(x + d + 16), s1 += t * t;
        t = LOAD16(q + d + 32) - LOAD16(x + d + 32), s2 += t * t;
        t = LOAD16(q + d + 48) - LOAD16(x + d + 48), s3 += t * t;
    }
    for (; d + 16 <= dim; d += 16) t = LOAD16(q + d) - LOAD16(x + d), s0 += t * t;
    v16f all = (s0 + s1) + (s2 + s3);
    float r = lanes(&all);
    for (; d < dim; d++) r += (q[d] - x[d]) * (q[d] - x[d]);
    return r;
}

/* Minus the dot product of a query and a row (smaller is nearer) */
static inline float ip_f32(const float *q, const float *x, int dim)
{
    v16f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    int d = 0;
    for (; d + 64 <= dim; d += 64) {
        s0 += LOAD16(q + d) * LOAD16(x + d), s1 += LOAD16(q + d + 16) * LOAD16(x + d + 16);
        s2 += LOAD16(q + d + 32) * LOAD16(x + d + 32), s3 += LOAD16(q + d + 48) * LOAD16(x + d + 48);
    }
    for (; d + 16 <= dim; d += 16) s0 += LOAD16(q + d) * LOAD16(x + d);
    v16f all = (s0 + s1) + (s2 + s3);
    float r = lanes(&all);
    for (; d < dim; d++) r += q[d] * x[d];
    return -r;
}

/* The distance of query q to stored row i, as ranked (smaller is nearer). */
static inline float to_row(const ann_index *idx, const float *q, int64_t i)
{
    size_t at = (size_t)i * (size_t)idx->dim;
    return idx->metric == ANN_L2 ? l2_f32(q, idx->vectors + at, idx->dim) : ip_f32(q, idx->vectors + at, idx->dim);
}

static inline const float *row(const ann_index *idx, int64_t i) { return idx->vectors + (size_t)i * (size_t)idx->dim; }

static inline void prefetch_row(const ann_index *idx, int64_t i) { __builtin_prefetch(row(idx, i)); }

static int capacity(const ann_index *idx, int layer) { return layer == 0 ? 2 * idx->hnsw_m : idx->hnsw_m; }

int kiln_ann_hnsw_level(uint64_t seed, int64_t i, int m)
{
    uint32_t w[4];
    kiln_philox4x32(seed, 0x686e7377ull, (uint64_t)i, w);
    double u = ((double)w[0] + 1.0) / 4294967297.0; /* (0, 1) */
    int level = (int)floor(-log(u) / log((double)m));
    return level < MAX_LEVEL ? level : MAX_LEVEL;
}

/* ---- a min-heap of candidates (nearest first) ---- */

typedef struct cand_heap {
    int n, cap;
    float *d;
    int32_t *id;
} cand_heap;

static void cand_push(cand_heap *h, float d, int32_t id)
{
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h->d[p] <= d) break;
        h->d[i] = h->d[p], h->id[i] = h->id[p];
        i = p;
    }
    h->d[i] = d, h->id[i] = id;
}

static void cand_pop(cand_heap *h)
{
    float d = h->d[--h->n];
    int32_t id = h->id[h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        float md = d;
        if (l < h->n && h->d[l] < md) m = l, md = h->d[l];
        if (r < h->n && h->d[r] < md) m = r;
        if (m == i) break;
        h->d[i] = h->d[m], h->id[i] = h->id[m];
        i = m;
    }
    h->d[i] = d, h->id[i] = id;
}

/* ---- per-thread state of a walk ---- */

struct ann_walk {
    uint32_t *seen;                    /* rows: == mark when visited in this walk */
    uint32_t mark;
    cand_heap cand;                    /* room for every row: a walk pushes each at most once */
    float *top_d;                      /* room for the widest beam */
    int64_t *top_id;
    int top_cap;
    int32_t *links;                    /* a copy of one list (building: read under its lock) */
    float *sel_d;                      /* the heuristic's work */
    int32_t *sel_id;
    int32_t *chosen;                   /* a node's new links, while each links back */
    int32_t *fresh;                    /* a list's links not seen before in this walk */
};

void kiln_ann_walk_free(ann_walk *w)
{
    if (!w) return;
    free(w->seen), free(w->cand.d), free(w->cand.id), free(w->top_d), free(w->top_id);
    free(w->links), free(w->sel_d), free(w->sel_id), free(w->chosen), free(w->fresh);
    free(w);
}

kiln_status kiln_ann_walk_new(const ann_index *idx, int beam, ann_walk **out)
{
    ann_walk *w = calloc(1, sizeof *w);
    KILN_CHECK_ALLOC(w);
    size_t rows = (size_t)idx->rows, wide = (size_t)beam + 2 * (size_t)idx->hnsw_m + 1;
    w->seen = calloc(rows, sizeof *w->seen);
    w->cand.d = malloc(rows * sizeof *w->cand.d);
    w->cand.id = malloc(rows * sizeof *w->cand.id);
    w->top_d = malloc(wide * sizeof *w->top_d);
    w->top_id = malloc(wide * sizeof *w->top_id);
    w->top_cap = beam;
    w->links = malloc(2 * (size_t)idx->hnsw_m * sizeof *w->links + 1);
    w->sel_d = malloc(wide * sizeof *w->sel_d);
    w->sel_id = malloc(wide * sizeof *w->sel_id);
    w->chosen = malloc(wide * sizeof *w->chosen);
    w->fresh = malloc(wide * sizeof *w->fresh);
    if (!w->seen || !w->cand.d || !w->cand.id || !w->top_d || !w->top_id || !w->links || !w->sel_d || !w->sel_id ||
        !w->chosen || !w->fresh) {
        kiln_ann_walk_free(w);
        return KILN_ERROR(KILN_ERR_NOMEM, "HNSW search state for %lld rows", (long long)idx->rows);
    }
    *out = w;
    return KILN_OK;
}

static void new_walk(ann_walk *w, int64_t rows)
{
    if (++w->mark == 0) { /* wrapped: forget every old mark */
        memset(w->seen, 0, (size_t)rows * sizeof *w->seen);
        w->mark = 1;
    }
    w->cand.n = 0;
}

/* ---- the graph's lists ---- */

typedef struct graph_locks {
    omp_lock_t *node;                  /* NULL when searching: nothing changes */
} graph_locks;

/* The links of (node, layer) into w->links; their count. Under the node's lock while building. */
static int read_links(const ann_index *idx, const graph_locks *g, int64_t node, int layer, ann_walk *w)
{
    int64_t e = idx->node_entry[node] + layer;
    if (g && g->node) omp_set_lock(&g->node[node]);
    int n = idx->link_count[e];
    memcpy(w->links, idx->links + idx->link_start[e], (size_t)n * sizeof *w->links);
    if (g && g->node) omp_unset_lock(&g->node[node]);
    return n;
}

/* Greedy descent on one layer: the nearest node reachable by always stepping closer. */
static int64_t greedy(const ann_index *idx, const graph_locks *g, const float *q, int64_t cur, float *dcur,
                      int layer, ann_walk *w)
{
    for (int changed = 1; changed;) {
        changed = 0;
        int n = read_links(idx, g, cur, layer, w);
        for (int j = 0; j < n; j++) {
            float d = to_row(idx, q, w->links[j]);
            if (d < *dcur) *dcur = d, cur = w->links[j], changed = 1;
        }
    }
    return cur;
}

/* The beam search of one layer from `start`: the `beam` nearest found, as a bounded heap in
 * top (sort it for nearest first). Rows failing the filter (o may be NULL) are walked, not kept. */
static void beam_search(const ann_index *idx, const graph_locks *g, const ann_search_opts *o, const float *q,
                        int64_t start, int beam, int layer, ann_walk *w, ann_topk *top)
{
    new_walk(w, idx->rows);
    kiln_ann_topk_init(top, beam, w->top_d, w->top_id);
    float d0 = to_row(idx, q, start);
    w->seen[start] = w->mark;
    cand_push(&w->cand, d0, (int32_t)start);
    if (!o || kiln_ann_passes(idx, o, start)) kiln_ann_topk_push(top, d0, start);
    while (w->cand.n) {
        float d = w->cand.d[0];
        int32_t c = w->cand.id[0];
        if (d > kiln_ann_topk_bound(top)) break; /* nothing nearer is left to expand */
        cand_pop(&w->cand);
        int n = read_links(idx, g, c, layer, w), fresh = 0;
        /* the unseen neighbours first, each row's fetch started, then their distances */
        for (int j = 0; j < n; j++) {
            int32_t nb = w->links[j];
            if (w->seen[nb] == w->mark) continue;
            w->seen[nb] = w->mark;
            w->fresh[fresh++] = nb;
            prefetch_row(idx, nb);
        }
        for (int j = 0; j < fresh; j++) {
            int32_t nb = w->fresh[j];
            float dn = to_row(idx, q, nb);
            if (dn < kiln_ann_topk_bound(top) || top->n < beam) {
                cand_push(&w->cand, dn, nb);
                if (!o || kiln_ann_passes(idx, o, nb)) kiln_ann_topk_push(top, dn, nb);
            }
        }
    }
}

/* The entry point's descent to `layer` + 1, then nothing: the node to start layer `layer` from. */
static int64_t descend(const ann_index *idx, const graph_locks *g, const float *q, int64_t entry, int top_level,
                       int layer, ann_walk *w)
{
    float d = to_row(idx, q, entry);
    for (int l = top_level; l > layer; l--) entry = greedy(idx, g, q, entry, &d, l, w);
    return entry;
}

void kiln_ann_hnsw_search(const ann_index *idx, const ann_search_opts *o, const float *q, int k, ann_walk *w,
                          int64_t *ids, float *dist)
{
    int ef = o->ef > 0 ? o->ef : idx->ef;
    int beam = ef > k ? ef : k;
    if (beam > w->top_cap) beam = w->top_cap;
    int64_t start = descend(idx, NULL, q, idx->entry_point, idx->max_level, 0, w);
    ann_topk top;
    beam_search(idx, NULL, o->filter_attr >= 0 ? o : NULL, q, start, beam, 0, w, &top);
    kiln_ann_topk_sort(&top);
    for (int j = 0; j < k; j++) {
        ids[j] = j < top.n ? top.id[j] : -1;
        dist[j] = j >= top.n ? NAN : idx->metric == ANN_L2 ? top.d[j] : -top.d[j];
    }
}

/* ---- building ---- */

/* The neighbour heuristic over candidates (sel_d, sel_id)[0..n), nearest first: keeps at most
 * m, each nearer to the base than to every one kept before it. Returns how many, in place. */
static int prune(const ann_index *idx, float *cd, int32_t *cid, int n, int m)
{
    int kept = 0;
    for (int i = 0; i < n && kept < m; i++) {
        int good = 1;
        const float *ci = row(idx, cid[i]);
        for (int j = 0; j < kept && good; j++)
            if (to_row(idx, ci, cid[j]) < cd[i]) good = 0;
        if (good) cd[kept] = cd[i], cid[kept] = cid[i], kept++;
    }
    return kept;
}

/* Sorts (d, id)[0..n) nearest first (insertion sort: n is at most 2M + 1 or the beam). */
static void sort_pairs(float *d, int32_t *id, int n)
{
    for (int i = 1; i < n; i++) {
        float x = d[i];
        int32_t y = id[i];
        int j = i - 1;
        for (; j >= 0 && (d[j] > x || (d[j] == x && id[j] > y)); j--) d[j + 1] = d[j], id[j + 1] = id[j];
        d[j + 1] = x, id[j + 1] = y;
    }
}

/* `node` gains a link to `to` on `layer`; a full list is pruned by the heuristic. */
static void link_back(ann_index *idx, const graph_locks *g, int64_t node, int32_t to, int layer, ann_walk *w)
{
    int cap = capacity(idx, layer);
    int64_t e = idx->node_entry[node] + layer;
    omp_set_lock(&g->node[node]);
    int32_t *list = idx->links + idx->link_start[e];
    int n = idx->link_count[e];
    if (n < cap) {
        list[n] = to;
        idx->link_count[e] = n + 1;
    } else {
        const float *base = row(idx, node);
        for (int j = 0; j < n; j++) w->sel_id[j] = list[j], w->sel_d[j] = to_row(idx, base, list[j]);
        w->sel_id[n] = to, w->sel_d[n] = to_row(idx, base, to);
        sort_pairs(w->sel_d, w->sel_id, n + 1);
        int kept = prune(idx, w->sel_d, w->sel_id, n + 1, cap);
        memcpy(list, w->sel_id, (size_t)kept * sizeof *list);
        idx->link_count[e] = kept;
    }
    omp_unset_lock(&g->node[node]);
}

typedef struct top_state {
    omp_lock_t lock;
    int64_t entry;
    int level;
} top_state;

static void insert(ann_index *idx, const graph_locks *g, top_state *ts, int64_t node, ann_walk *w)
{
    int level = idx->levels[node];
    omp_set_lock(&ts->lock);
    int64_t entry = ts->entry;
    int top_level = ts->level;
    omp_unset_lock(&ts->lock);
    const float *q = row(idx, node);
    int64_t cur = descend(idx, g, q, entry, top_level, level < top_level ? level : top_level, w);
    for (int l = level < top_level ? level : top_level; l >= 0; l--) {
        ann_topk top;
        beam_search(idx, g, NULL, q, cur, idx->ef_construction, l, w, &top);
        kiln_ann_topk_sort(&top);
        int n = 0;
        for (int j = 0; j < top.n; j++)
            if (top.id[j] != node) w->sel_d[n] = top.d[j], w->sel_id[n] = (int32_t)top.id[j], n++;
        cur = n ? w->sel_id[0] : cur;
        n = prune(idx, w->sel_d, w->sel_id, n, idx->hnsw_m);
        int64_t e = idx->node_entry[node] + l;
        omp_set_lock(&g->node[node]);
        memcpy(idx->links + idx->link_start[e], w->sel_id, (size_t)n * sizeof(int32_t));
        idx->link_count[e] = n;
        omp_unset_lock(&g->node[node]);
        memcpy(w->chosen, w->sel_id, (size_t)n * sizeof *w->chosen); /* link_back reuses sel_* */
        for (int j = 0; j < n; j++) link_back(idx, g, w->chosen[j], (int32_t)node, l, w);
    }
    if (level > top_level) {
        omp_set_lock(&ts->lock);
        if (level > ts->level) ts->level = level, ts->entry = node;
        omp_unset_lock(&ts->lock);
    }
}

/* The build-time layout: levels drawn, entries with room for their capacity. */
static kiln_status lay_out(ann_index *idx, uint64_t seed)
{
    int64_t rows = idx->rows;
    idx->levels = malloc((size_t)rows * sizeof *idx->levels);
    idx->node_entry = malloc(((size_t)rows + 1) * sizeof *idx->node_entry);
    KILN_CHECK_ALLOC(idx->levels);
    KILN_CHECK_ALLOC(idx->node_entry);
    int64_t entries = 0, room = 0;
    for (int64_t i = 0; i < rows; i++) {
        idx->levels[i] = kiln_ann_hnsw_level(seed, i, idx->hnsw_m);
        idx->node_entry[i] = entries;
        entries += idx->levels[i] + 1;
        room += 2 * idx->hnsw_m + (int64_t)idx->levels[i] * idx->hnsw_m;
    }
    idx->node_entry[rows] = entries;
    idx->link_start = malloc(((size_t)entries + 1) * sizeof *idx->link_start);
    idx->link_count = calloc((size_t)entries + 1, sizeof *idx->link_count);
    idx->links = malloc((size_t)room * sizeof *idx->links + 1);
    if (!idx->link_start || !idx->link_count || !idx->links)
        return KILN_ERROR(KILN_ERR_NOMEM, "the HNSW graph of %lld rows (%lld links)", (long long)rows, (long long)room);
    int64_t at = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int l = 0; l <= idx->levels[i]; l++) {
            idx->link_start[idx->node_entry[i] + l] = at;
            at += capacity(idx, l);
        }
    idx->link_start[entries] = at;
    idx->entry_point = 0;
    idx->max_level = idx->levels[0];
    return KILN_OK;
}

/* Lists packed one after another: link_start becomes the CSR offsets the file holds. */
static void compact(ann_index *idx)
{
    int64_t entries = idx->node_entry[idx->rows], at = 0;
    for (int64_t e = 0; e < entries; e++) {
        int n = idx->link_count[e];
        memmove(idx->links + at, idx->links + idx->link_start[e], (size_t)n * sizeof *idx->links);
        idx->link_start[e] = at;
        at += n;
    }
    idx->link_start[entries] = at;
}

enum { INSERT_BATCH = 4096 };          /* rows inserted between chances to save the graph */

/* Rows [from, to) inserted by the threads (row order, a block of 64 at a time). */
static int insert_rows(ann_index *idx, const graph_locks *g, top_state *ts, int64_t from, int64_t to, int threads,
                       kiln_progress *p, int64_t *done)
{
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        ann_walk *w = NULL;
        if (kiln_ann_walk_new(idx, idx->ef_construction, &w) != KILN_OK) failed = 1;
#pragma omp for schedule(dynamic, 64)
        for (int64_t i = from; i < to; i++) {
            if (failed) continue;
            insert(idx, g, ts, i, w);
            int64_t n;
#pragma omp atomic capture
            n = ++*done;
            if (omp_get_thread_num() == 0 && n % 1024 == 0) kiln_progress_update(p, (uint64_t)n, NULL);
        }
        kiln_ann_walk_free(w);
    }
    return failed;
}

kiln_status kiln_ann_hnsw_build(ann_index *idx, uint64_t seed, int threads, double progress_interval,
                                const ann_hnsw_progress *saver)
{
    if (idx->rows > INT32_MAX)
        return KILN_ERROR(KILN_ERR_UNSUPPORTED, "an HNSW graph links rows by 32-bit numbers: %lld rows are too "
                          "many for one graph; build it in shards", (long long)idx->rows);
    KILN_CHECK(lay_out(idx, seed));
    /* row 0 is the first entry point; an earlier run may have inserted more */
    int64_t start = saver ? saver->load(saver->ctx, idx) : 0;
    if (start < 1 || start > idx->rows) start = 1;
    graph_locks g = {malloc((size_t)idx->rows * sizeof(omp_lock_t))};
    KILN_CHECK_ALLOC(g.node);
    for (int64_t i = 0; i < idx->rows; i++) omp_init_lock(&g.node[i]);
    top_state ts = {.entry = idx->entry_point, .level = idx->max_level};
    omp_init_lock(&ts.lock);
    kiln_progress *p = kiln_progress_start("hnsw insert", (uint64_t)idx->rows, progress_interval, 0);
    int failed = 0;
    kiln_status st = KILN_OK;
    int64_t done = start;
    double saved = kiln_time_s();
    for (int64_t at = start; at < idx->rows && !failed && st == KILN_OK; at += INSERT_BATCH) {
        int64_t to = idx->rows - at < INSERT_BATCH ? idx->rows : at + INSERT_BATCH;
        failed = insert_rows(idx, &g, &ts, at, to, threads, p, &done);
        if (!failed && saver && to < idx->rows && kiln_time_s() - saved >= saver->interval) {
            idx->entry_point = ts.entry, idx->max_level = ts.level;
            st = saver->save(saver->ctx, idx, to);
            saved = kiln_time_s();
        }
    }
    kiln_progress_update(p, (uint64_t)idx->rows, NULL);
    kiln_progress_finish(p);
    for (int64_t i = 0; i < idx->rows; i++) omp_destroy_lock(&g.node[i]);
    omp_destroy_lock(&ts.lock);
    free(g.node);
    if (failed) return KILN_ERROR(KILN_ERR_NOMEM, "HNSW insertion buffers");
    KILN_CHECK(st);
    idx->entry_point = ts.entry;
    idx->max_level = ts.level;
    compact(idx);
    return KILN_OK;
}

int64_t kiln_ann_hnsw_room(const ann_index *idx) { return idx->link_start[idx->node_entry[idx->rows]]; }

int kiln_ann_hnsw_check_partial(const ann_index *idx, int64_t inserted)
{
    int64_t entries = idx->node_entry[idx->rows];
    if (idx->entry_point < 0 || idx->entry_point >= inserted || idx->max_level < 0 || idx->max_level > MAX_LEVEL ||
        idx->levels[idx->entry_point] != idx->max_level)
        return 0;
    for (int64_t i = 0; i < inserted; i++)
        if (idx->levels[i] > idx->max_level) return 0;
    for (int64_t i = 0; i < idx->rows; i++)
        for (int l = 0; l <= idx->levels[i]; l++) {
            int64_t e = idx->node_entry[i] + l;
            int32_t n = idx->link_count[e];
            if (n < 0 || n > capacity(idx, l) || e >= entries || (i >= inserted && n)) return 0;
            for (int32_t j = 0; j < n; j++) {
                int32_t nb = idx->links[idx->link_start[e] + j];
                if (nb < 0 || nb >= inserted || idx->levels[nb] < l) return 0;
            }
        }
    return 1;
}

/* After reading a file: the entries of each node, the counts, and that every link is one a
 * search may follow (a node in range, present on that layer), so no file can make it stray. */
kiln_status kiln_ann_hnsw_derive(ann_index *idx, const char *path)
{
    int64_t rows = idx->rows, entries = 0;
    idx->node_entry = malloc(((size_t)rows + 1) * sizeof *idx->node_entry);
    KILN_CHECK_ALLOC(idx->node_entry);
    for (int64_t i = 0; i < rows; i++) {
        if (idx->levels[i] < 0 || idx->levels[i] > MAX_LEVEL)
            return KILN_ERROR(KILN_ERR_DATA, "index '%s': hnsw/levels[%lld] is %d, expected 0..%d", path,
                              (long long)i, idx->levels[i], MAX_LEVEL);
        idx->node_entry[i] = entries;
        entries += idx->levels[i] + 1;
    }
    idx->node_entry[rows] = entries;
    if (entries != idx->n_entries)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': hnsw/offsets has %lld lists, but hnsw/levels makes %lld",
                          path, (long long)idx->n_entries, (long long)entries);
    idx->link_count = malloc(((size_t)entries + 1) * sizeof *idx->link_count);
    KILN_CHECK_ALLOC(idx->link_count);
    if (idx->link_start[0] != 0 || idx->link_start[entries] != idx->n_links)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': hnsw/offsets does not run from 0 to the %lld neighbors", path,
                          (long long)idx->n_links);
    for (int64_t i = 0; i < rows; i++)
        for (int l = 0; l <= idx->levels[i]; l++) {
            int64_t e = idx->node_entry[i] + l, n = idx->link_start[e + 1] - idx->link_start[e];
            if (n < 0 || n > capacity(idx, l))
                return KILN_ERROR(KILN_ERR_DATA, "index '%s': node %lld has %lld links on layer %d, expected "
                                  "0..%d", path, (long long)i, (long long)n, l, capacity(idx, l));
            idx->link_count[e] = (int32_t)n;
            for (int64_t j = idx->link_start[e]; j < idx->link_start[e + 1]; j++) {
                int32_t nb = idx->links[j];
                if (nb < 0 || nb >= rows || idx->levels[nb] < l)
                    return KILN_ERROR(KILN_ERR_DATA, "index '%s': node %lld links to %d on layer %d, which is "
                                      "not a node of that layer", path, (long long)i, nb, l);
            }
        }
    if (idx->entry_point < 0 || idx->entry_point >= rows || idx->levels[idx->entry_point] != idx->max_level)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': the entry point %lld is not a node of the top layer %d", path,
                          (long long)idx->entry_point, idx->max_level);
    return KILN_OK;
}
