/* Product quantization of IVF residuals (Jégou, Douze and Schmid 2011), as FAISS's IVF-PQ:
 *   - a row x in list l is stored as the codes of its residual r = x - c_l: the dim values cut
 *     into m sub-vectors of dsub = dim / m, each replaced by the nearest of 256 sub-centroids
 *     (one byte), so a row costs m bytes;
 *   - the sub-centroids of each of the m parts are k-means (kmeans.c: on GEMM, over the ranks,
 *     the same on any number of ranks) of that part of the training sample's residuals;
 *   - distances by tables: for L2, ||q - c_l - r||^2 = ||q - c_l||^2 + sum_j T2[l][j][code_j]
 *     - 2 sum_j T3[j][code_j], where T2[l][j][c] = ||C_j[c]||^2 + 2 c_l,j . C_j[c] depends only
 *     on the index (made once on load when it fits in index memory, else per list probed) and
 *     T3[j][c] = q_j . C_j[c] is made once per query. For inner products the score is
 *     q . c_l + sum_j T3[j][code_j]. A row then costs m table lookups.
 * With index.pq_refine = R > 0 the index also keeps the vectors, and the R best candidates by
 * tables are ranked again by exact distance (FAISS's IndexRefineFlat). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/log.h"
#include "ann_internal.h"

enum { PQ_K = 256, PRECOMPUTED_MAX_BYTES = 512 << 20 };

/* One part of the rows' residuals, contiguous: out (n x dsub) = x[:, j*dsub : (j+1)*dsub]. */
static void part_of(const float *x, uint64_t n, int dim, int j, int dsub, float *out)
{
    for (uint64_t i = 0; i < n; i++)
        memcpy(out + i * (size_t)dsub, x + i * (size_t)dim + (size_t)j * (size_t)dsub, (size_t)dsub * sizeof *out);
}

kiln_status kiln_ann_pq_train(const ann_kmeans_opts *base, const float *residuals, uint64_t first, uint64_t n,
                              uint64_t n_total, int dim, int m, float *codebooks)
{
    int dsub = dim / m;
    float *part = malloc((n + 1) * (size_t)dsub * sizeof *part);
    KILN_CHECK_ALLOC(part);
    kiln_status st = KILN_OK;
    for (int j = 0; j < m && st == KILN_OK; j++) {
        part_of(residuals, n, dim, j, dsub, part);
        ann_kmeans_opts o = *base;
        o.k = PQ_K;
        o.seed = base->seed + 0x7071ull * (uint64_t)(j + 1); /* a stream per part */
        o.start_iter = 0;
        o.after_iter = NULL;
        st = kiln_ann_kmeans(&o, part, first, n, n_total, dsub, codebooks + (size_t)j * PQ_K * (size_t)dsub, NULL);
    }
    free(part);
    return st;
}

kiln_status kiln_ann_pq_encode(const kiln_backend *be, const float *codebooks, int dim, int m, const float *residuals,
                               uint64_t n, uint8_t *codes)
{
    int dsub = dim / m;
    float *part = malloc((size_t)ANN_BLOCK * (size_t)dsub * sizeof *part);
    float *cn = malloc((size_t)m * PQ_K * sizeof *cn);
    float *scratch = malloc(kiln_ann_assign_scratch(PQ_K) * sizeof *scratch);
    int32_t *label = malloc(ANN_BLOCK * sizeof *label);
    kiln_status st = part && cn && scratch && label ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "PQ encoding buffers");
    if (st == KILN_OK) kiln_ann_squared_norms(codebooks, (uint64_t)m * PQ_K, dsub, cn);
    for (uint64_t at = 0; st == KILN_OK && at < n; at += ANN_BLOCK) {
        uint64_t rows = n - at < ANN_BLOCK ? n - at : ANN_BLOCK;
        for (int j = 0; j < m; j++) {
            part_of(residuals + at * (size_t)dim, rows, dim, j, dsub, part);
            kiln_ann_assign(be, part, rows, dsub, codebooks + (size_t)j * PQ_K * (size_t)dsub, cn + (size_t)j * PQ_K,
                            PQ_K, label, NULL, scratch);
            for (uint64_t i = 0; i < rows; i++) codes[(at + i) * (size_t)m + (size_t)j] = (uint8_t)label[i];
        }
    }
    free(part), free(cn), free(scratch), free(label);
    return st;
}

/* T2 of list l into t (m x 256): ||C_j[c]||^2 + 2 c_l,j . C_j[c]. */
static void list_terms(const ann_index *idx, int l, float *t)
{
    int m = idx->pq_m, dsub = idx->dim / m;
    const float *cl = idx->centroids + (size_t)l * (size_t)idx->dim;
    for (int j = 0; j < m; j++)
        for (int c = 0; c < PQ_K; c++) {
            const float *cc = idx->codebooks + ((size_t)j * PQ_K + (size_t)c) * (size_t)dsub;
            const float *cj = cl + (size_t)j * (size_t)dsub;
            float s = 0.0f;
            for (int d = 0; d < dsub; d++) s += cc[d] * (cc[d] + 2.0f * cj[d]);
            t[(size_t)j * PQ_K + (size_t)c] = s;
        }
}

kiln_status kiln_ann_pq_derive(ann_index *idx)
{
    size_t per_list = (size_t)idx->pq_m * PQ_K;
    if (idx->metric != ANN_L2 || (double)idx->nlist * (double)per_list * sizeof(float) > PRECOMPUTED_MAX_BYTES)
        return KILN_OK; /* inner products need no list terms; too large ones are made per list */
    idx->pq_terms = malloc((size_t)idx->nlist * per_list * sizeof *idx->pq_terms);
    KILN_CHECK_ALLOC(idx->pq_terms);
    for (int l = 0; l < idx->nlist; l++) list_terms(idx, l, idx->pq_terms + (size_t)l * per_list);
    return KILN_OK;
}

size_t kiln_ann_pq_scratch_floats(const ann_index *idx) { return 3 * (size_t)idx->pq_m * PQ_K; }

/* T3 of one query: q_j . C_j[c]. */
static void query_terms(const ann_index *idx, const float *q, float *t)
{
    int m = idx->pq_m, dsub = idx->dim / m;
    for (int j = 0; j < m; j++)
        for (int c = 0; c < PQ_K; c++) {
            const float *cc = idx->codebooks + ((size_t)j * PQ_K + (size_t)c) * (size_t)dsub;
            const float *qj = q + (size_t)j * (size_t)dsub;
            float s = 0.0f;
            for (int d = 0; d < dsub; d++) s += qj[d] * cc[d];
            t[(size_t)j * PQ_K + (size_t)c] = s;
        }
}

void kiln_ann_pq_scan(const ann_index *idx, const ann_search_opts *o, const float *q, const int32_t *probes,
                      const float *probe_d, int nprobe, ann_topk *top, float *scratch)
{
    int m = idx->pq_m, l2 = idx->metric == ANN_L2;
    size_t per_list = (size_t)m * PQ_K;
    float *t3 = scratch, *table = scratch + per_list, *terms = scratch + 2 * per_list;
    query_terms(idx, q, t3);
    for (int p = 0; p < nprobe; p++) {
        int l = probes[p];
        if (l < 0) continue;
        /* probe_d: the coarse distance as ranked, ||c_l||^2 - 2 q.c_l (L2) or -q.c_l */
        float base = probe_d[p];
        if (l2) {
            const float *t2 = idx->pq_terms ? idx->pq_terms + (size_t)l * per_list : (list_terms(idx, l, terms), terms);
            for (size_t i = 0; i < per_list; i++) table[i] = t2[i] - 2.0f * t3[i];
        } else {
            for (size_t i = 0; i < per_list; i++) table[i] = -t3[i];
        }
        int64_t first = idx->offsets[l], last = idx->offsets[l + 1];
        for (int64_t r = first; r < last; r++) {
            if (o->filter_attr >= 0 && !kiln_ann_passes(idx, o, r)) continue;
            const uint8_t *code = idx->codes + (size_t)r * (size_t)m;
            float d = base;
            for (int j = 0; j < m; j++) d += table[(size_t)j * PQ_K + code[j]];
            if (d <= kiln_ann_topk_bound(top)) kiln_ann_topk_push(top, d, r);
        }
    }
}
