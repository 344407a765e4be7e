/* The k best (distance, id) pairs of a stream: a max-heap on (distance, id), whose root is the
 * worst kept. Ties are broken by the id, so the kept set and its order do not depend on the
 * order candidates come in (an IVF scan and a flat scan agree on equal distances). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ann_internal.h"

void kiln_ann_topk_init(ann_topk *t, int k, float *d, int64_t *id)
{
    t->k = k;
    t->n = 0;
    t->d = d;
    t->id = id;
}

static void sift_down(ann_topk *t, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < t->n && kiln_ann_topk_worse(t->d[l], t->id[l], t->d[w], t->id[w])) w = l;
        if (r < t->n && kiln_ann_topk_worse(t->d[r], t->id[r], t->d[w], t->id[w])) w = r;
        if (w == i) return;
        float td = t->d[i];
        int64_t ti = t->id[i];
        t->d[i] = t->d[w], t->id[i] = t->id[w];
        t->d[w] = td, t->id[w] = ti;
        i = w;
    }
}

void kiln_ann_topk_push(ann_topk *t, float dist, int64_t id)
{
    if (t->n < t->k) {
        int i = t->n++;
        t->d[i] = dist, t->id[i] = id;
        while (i > 0) { /* sift up */
            int p = (i - 1) / 2;
            if (!kiln_ann_topk_worse(t->d[i], t->id[i], t->d[p], t->id[p])) break;
            float td = t->d[i];
            int64_t ti = t->id[i];
            t->d[i] = t->d[p], t->id[i] = t->id[p];
            t->d[p] = td, t->id[p] = ti;
            i = p;
        }
        return;
    }
    if (!kiln_ann_topk_worse(t->d[0], t->id[0], dist, id)) return; /* no better than the worst */
    t->d[0] = dist, t->id[0] = id;
    sift_down(t, 0);
}

void kiln_ann_topk_sort(ann_topk *t)
{
    /* heap sort: move the worst to the end, shrink */
    int n = t->n;
    while (t->n > 1) {
        int last = t->n - 1;
        float td = t->d[0];
        int64_t ti = t->id[0];
        t->d[0] = t->d[last], t->id[0] = t->id[last];
        t->d[last] = td, t->id[last] = ti;
        t->n--;
        sift_down(t, 0);
    }
    t->n = n;
    for (int i = n; i < t->k; i++) t->d[i] = INFINITY, t->id[i] = -1;
}

/* 1 when (da, ia) ranks before (db, ib) in a search's output. */
static int ranks_before(ann_metric metric, float da, int64_t ia, float db, int64_t ib)
{
    if (ia < 0 || ib < 0) return ia >= 0 && ib < 0;
    if (da != db) return metric == ANN_L2 ? da < db : da > db;
    return ia < ib;
}

kiln_status kiln_ann_merge_results(ann_metric metric, int k, uint64_t n, int64_t *acc_ids, float *acc_dist,
                                   const int64_t *more_ids, const float *more_dist)
{
    int64_t *ids = malloc((size_t)k * sizeof *ids);
    float *dist = malloc((size_t)k * sizeof *dist);
    if (!ids || !dist) {
        free(ids), free(dist);
        return KILN_ERROR(KILN_ERR_NOMEM, "merging results of k %d", k);
    }
    for (uint64_t q = 0; q < n; q++) {
        int64_t *ai = acc_ids + q * (uint64_t)k;
        float *ad = acc_dist + q * (uint64_t)k;
        const int64_t *bi = more_ids + q * (uint64_t)k;
        const float *bd = more_dist + q * (uint64_t)k;
        int a = 0, b = 0;
        for (int j = 0; j < k; j++) {
            int take_a = b >= k || (a < k && !ranks_before(metric, bd[b], bi[b], ad[a], ai[a]));
            ids[j] = take_a ? ai[a] : bi[b];
            dist[j] = take_a ? ad[a++] : bd[b++];
        }
        memcpy(ai, ids, (size_t)k * sizeof *ids);
        memcpy(ad, dist, (size_t)k * sizeof *dist);
    }
    free(ids), free(dist);
    return KILN_OK;
}
