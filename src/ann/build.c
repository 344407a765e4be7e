/* `kiln index build`: the index of the rows of one input dataset.
 *
 *   flat      rank 0 reads the rows (unit length for cosine) and writes them.
 *   ivf-flat  1. a training sample of index.train_rows rows drawn from the seed, cut into
 *                blocks of ANN_BLOCK that the ranks share; k-means on it (kmeans.c: the same
 *                centroids on any number of ranks);
 *             2. every row assigned to its nearest centroid, the ranks sharing the rows by
 *                blocks; the labels summed over ranks (each rank fills its own rows);
 *             3. rank 0 gathers the rows, orders them by list (input order within a list) and
 *                writes the file (index_file.c), atomically.
 *   hnsw      the ranks read their rows, rank 0 gathers them and inserts them into the graph
 *             on its threads (hnsw.c): insertion is one shared graph, so it scales by threads,
 *             and by shards across ranks.
 * Every rank reads its own rows from the input; the input's crc32 is combined from the ranks'
 * crc32 of their row ranges, in order. Deterministic: the same input and config make the same
 * index on any number of ranks, and a build killed at any point is done again to the same file
 * contents by the same command. */
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/progress.h"
#include "kiln/rng.h"
#include "kiln/runtime.h"
#include "ann_internal.h"

typedef struct build {
    const kiln_index_build_opts *o;
    const kiln_index_config *c;
    kiln_comm *comm;                   /* the ranks building this index (a shard: its group) */
    const char *output;
    int rank, size, threads;
    ann_vectors in;
    ann_index idx;                     /* what is written (rank 0 fills the arrays) */
    uint64_t own_first, own_rows;      /* this rank's rows of the whole input */
    /* the k-means training sample: this rank's share, kept for IVF-PQ's sub-quantizers */
    float *sample;
    uint64_t sample_first, sample_rows, n_train;
} build;

static kiln_status agree(build *b, kiln_status st)
{
    return kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}

/* [first, first + n) of `total` items cut into blocks of `block`, rank r of size. */
static void share(uint64_t total, uint64_t block, int r, int size, uint64_t *first, uint64_t *n)
{
    uint64_t blocks = (total + block - 1) / block;
    uint64_t b0 = blocks * (uint64_t)r / (uint64_t)size, b1 = blocks * (uint64_t)(r + 1) / (uint64_t)size;
    *first = b0 * block;
    uint64_t end = b1 * block < total ? b1 * block : total;
    *n = end > *first ? end - *first : 0;
    if (*first > total) *first = total;
}

/* Rows `rows[0..n)` (ascending) of the input into x, read a span at a time. */
static kiln_status read_rows(const build *b, const uint64_t *rows, uint64_t n, float *x)
{
    enum { SPAN = 4096 };
    float *span = malloc((size_t)SPAN * (size_t)b->in.dim * sizeof *span);
    KILN_CHECK_ALLOC(span);
    kiln_status st = KILN_OK;
    for (uint64_t i = 0; i < n && st == KILN_OK;) {
        uint64_t start = rows[i], len = b->in.rows - start < SPAN ? b->in.rows - start : SPAN;
        st = kiln_ann_vectors_read(&b->in, start, len, span, NULL);
        for (; st == KILN_OK && i < n && rows[i] < start + len; i++)
            memcpy(x + i * (size_t)b->in.dim, span + (rows[i] - start) * (size_t)b->in.dim,
                   (size_t)b->in.dim * sizeof *x);
    }
    free(span);
    return st;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The training sample: every row, or n distinct rows drawn from the seed, ascending. */
static kiln_status sample_rows(const build *b, uint64_t n, uint64_t **out)
{
    uint64_t *rows = malloc((n + 1) * sizeof *rows);
    KILN_CHECK_ALLOC(rows);
    if (n == b->in.rows) {
        for (uint64_t i = 0; i < n; i++) rows[i] = i;
        *out = rows;
        return KILN_OK;
    }
    /* a draw per row of (seed, row); the n smallest draws win: independent of everything else */
    uint64_t *key = malloc(b->in.rows * sizeof *key);
    if (!key) {
        free(rows);
        return KILN_ERROR(KILN_ERR_NOMEM, "training sample of %" PRIu64 " rows", b->in.rows);
    }
    for (uint64_t i = 0; i < b->in.rows; i++) {
        uint32_t w[4];
        kiln_philox4x32((uint64_t)b->c->index.seed, 0x73616d70ull, i, w);
        key[i] = (uint64_t)w[0] << 32 | w[1];
    }
    /* the n-th smallest key by selection: sort a copy */
    uint64_t *sorted = malloc(b->in.rows * sizeof *sorted);
    if (!sorted) {
        free(rows), free(key);
        return KILN_ERROR(KILN_ERR_NOMEM, "training sample");
    }
    memcpy(sorted, key, b->in.rows * sizeof *sorted);
    qsort(sorted, b->in.rows, sizeof *sorted, cmp_u64);
    uint64_t cut = sorted[n - 1];
    uint64_t m = 0, ties_left = 0;
    for (uint64_t i = 0; i < n; i++) ties_left += sorted[i] == cut;
    for (uint64_t i = 0; i < b->in.rows && m < n; i++)
        if (key[i] < cut || (key[i] == cut && ties_left && ties_left--)) rows[m++] = i;
    free(key), free(sorted);
    *out = rows;
    return KILN_OK;
}

/* m parts of about 8 values each (the largest divisor of dim up to dim / 8), as FAISS's
 * common PQ settings give 4 to 16 values a byte. */
static int default_pq_m(int dim)
{
    int best = 1;
    for (int m = 1; m <= dim / 8; m++)
        if (dim % m == 0) best = m;
    return best;
}

static int default_nlist(uint64_t rows)
{
    double n = 4.0 * sqrt((double)rows);
    if (n > (double)rows) n = (double)rows;
    return n < 1.0 ? 1 : (int)lround(n);
}

/* ---- progress (stage files, kiln/stage.h) ----
 * k-means saves the centroids after every iteration; a rerun of the same build starts from
 * there, and since an iteration depends only on the centroids before it, ends where an
 * uninterrupted build does. IVF-PQ saves its trained sub-quantizers, HNSW its graph after a
 * batch of insertions. */

/* What every stage of this build depends on, then the stage's own settings. */
static void stage_identity(const build *b, char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void stage_identity(const build *b, char *out, size_t len, const char *fmt, ...)
{
    int n = snprintf(out, len, "input=%s first_row=%" PRIu64 " rows=%" PRIu64 " dim=%d metric=%s seed=%lld ",
                     b->o->input, b->in.base, b->in.rows, b->in.dim, kiln_ann_metric_name(b->idx.metric),
                     (long long)b->c->index.seed);
    if (n < 0 || (size_t)n >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, len - (size_t)n, fmt, ap);
    va_end(ap);
}

typedef struct kmeans_progress {
    build *b;
    kiln_stage_file sf;
} kmeans_progress;

static kiln_stage_part centroids_part(const build *b, float *centroids)
{
    size_t bytes = (size_t)b->idx.nlist * (size_t)b->in.dim * sizeof(float);
    return (kiln_stage_part){"centroids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2,
                            {(uint64_t)b->idx.nlist, (uint64_t)b->in.dim}, centroids, bytes};
}

static kiln_status save_progress(void *ctx, int iter, const float *centroids)
{
    kmeans_progress *p = ctx;
    kiln_stage_part part = centroids_part(p->b, (float *)centroids);
    kiln_status st = p->b->rank == 0 ? kiln_stage_save(&p->sf, iter, &part, 1) : KILN_OK;
    return agree(p->b, st);
}

/* The centroids of an earlier run of the same build, and after how many iterations (0: none). */
static int load_progress(const kmeans_progress *p, float *centroids)
{
    kiln_stage_part part = centroids_part(p->b, centroids);
    int64_t iter = kiln_stage_load(&p->sf, &part, 1);
    return iter <= p->b->c->index.kmeans_iters ? (int)iter : 0;
}

static kiln_status train(build *b, float *centroids)
{
    const kiln_index_config *c = b->c;
    uint64_t n_train = c->index.train_rows > 0 ? (uint64_t)c->index.train_rows : 256ull * (uint64_t)b->idx.nlist;
    if (n_train > b->in.rows) n_train = b->in.rows;
    if (n_train < (uint64_t)b->idx.nlist)
        return KILN_ERROR(KILN_ERR_CONFIG, "index.train_rows (%" PRIu64 ") must be at least index.nlist (%d)",
                          n_train, b->idx.nlist);
    uint64_t *rows = NULL, first, n;
    KILN_CHECK(sample_rows(b, n_train, &rows));
    share(n_train, ANN_BLOCK, b->rank, b->size, &first, &n);
    float *x = malloc((n + 1) * (size_t)b->in.dim * sizeof *x);
    kiln_status st = x ? read_rows(b, rows + first, n, x) : KILN_ERROR(KILN_ERR_NOMEM, "training rows");
    if (st == KILN_OK && b->idx.metric == ANN_COSINE) kiln_ann_normalize(x, n, b->in.dim);
    st = agree(b, st);
    double objective = 0.0;
    double t0 = kiln_time_s();
    kmeans_progress progress = {.b = b};
    char identity[sizeof progress.sf.identity];
    stage_identity(b, identity, sizeof identity, "nlist=%d train_rows=%" PRIu64 " iters=%d init=%s", b->idx.nlist,
                   n_train, c->index.kmeans_iters, c->index.kmeans_init);
    kiln_stage_init(&progress.sf, b->output, "kmeans", identity);
    /* rank 0 reads it and tells the others, so that all start from the same iteration */
    int start = b->rank == 0 ? load_progress(&progress, centroids) : 0;
    if (st == KILN_OK) st = kiln_comm_bcast(b->comm, KILN_AXIS_WORLD, &start, sizeof start, 0);
    if (st == KILN_OK && start)
        st = kiln_comm_bcast(b->comm, KILN_AXIS_WORLD, centroids,
                             (size_t)b->idx.nlist * (size_t)b->in.dim * sizeof *centroids, 0);
    if (st == KILN_OK && start && b->rank == 0)
        kiln_info("index: k-means continues from iteration %d of %d (%s)", start, c->index.kmeans_iters,
                  progress.sf.path);
    ann_kmeans_opts ko = {b->idx.nlist, c->index.kmeans_iters, (uint64_t)c->index.seed,
                          !strcmp(c->index.kmeans_init, "kmeans++"), b->o->be, b->comm, b->threads,
                          start, save_progress, &progress};
    if (st == KILN_OK) st = kiln_ann_kmeans(&ko, x, first, n, n_train, b->in.dim, centroids, &objective);
    if (st == KILN_OK && b->rank == 0)
        kiln_info("index: k-means of %" PRIu64 " rows into %d lists, %d iterations in %.2f s "
                  "(objective %.6g)", n_train, b->idx.nlist, c->index.kmeans_iters, kiln_time_s() - t0, objective);
    free(rows);
    b->sample = x, b->sample_first = first, b->sample_rows = n, b->n_train = n_train;
    return st;
}

/* The nearest list of each of n rows of x, on the rank's threads (a block of rows a task). */
static kiln_status assign_rows(const build *b, const float *centroids, const float *x, uint64_t n, int64_t *labels)
{
    int k = b->idx.nlist, dim = b->in.dim;
    float *cn = malloc((size_t)k * sizeof *cn);
    KILN_CHECK_ALLOC(cn);
    kiln_ann_squared_norms(centroids, (uint64_t)k, dim, cn);
    uint64_t blocks = (n + ANN_BLOCK - 1) / ANN_BLOCK;
    int failed = 0, old_levels = omp_get_max_active_levels();
    omp_set_max_active_levels(1);
#pragma omp parallel num_threads(b->threads) reduction(| : failed)
    {
        float *scratch = malloc(kiln_ann_assign_scratch(k) * sizeof *scratch);
        int32_t *lab = malloc(ANN_BLOCK * sizeof *lab);
        if (!scratch || !lab) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (uint64_t blk = 0; blk < blocks; blk++) {
            if (failed) continue;
            uint64_t at = blk * ANN_BLOCK, rows = n - at < ANN_BLOCK ? n - at : ANN_BLOCK;
            kiln_ann_assign(b->o->be, x + at * (size_t)dim, rows, dim, centroids, cn, k, lab, NULL, scratch);
            for (uint64_t i = 0; i < rows; i++) labels[at + i] = lab[i];
        }
        free(scratch), free(lab);
    }
    omp_set_max_active_levels(old_levels);
    free(cn);
    return failed ? KILN_ERROR(KILN_ERR_NOMEM, "assignment buffers") : KILN_OK;
}

/* This rank's rows: read (crc over their bytes), scaled for cosine, labelled when centroids
 * (labels: one per input row; this rank fills its own). */
static kiln_status read_own(build *b, const float *centroids, float *x, int64_t *labels, uint32_t *crc)
{
    KILN_CHECK(kiln_ann_vectors_read(&b->in, b->own_first, b->own_rows, x, crc));
    if (b->idx.metric == ANN_COSINE) kiln_ann_normalize(x, b->own_rows, b->in.dim);
    if (!centroids) return KILN_OK;
    return assign_rows(b, centroids, x, b->own_rows, labels + b->own_first);
}

/* x (n rows) minus the centroid of each row's list, in place. */
static void to_residuals(const build *b, const float *centroids, float *x, uint64_t n, const int64_t *labels)
{
    int dim = b->in.dim;
    for (uint64_t i = 0; i < n; i++) {
        const float *c = centroids + (size_t)labels[i] * (size_t)dim;
        float *r = x + i * (size_t)dim;
        for (int d = 0; d < dim; d++) r[d] -= c[d];
    }
}

/* IVF-PQ: the sub-quantizers of an earlier run of the same build (1), read by the first rank
 * and sent to the others; 0: none. */
static kiln_status load_pq(build *b, const kiln_stage_file *sf, const kiln_stage_part *part, int *loaded)
{
    *loaded = b->rank == 0 && kiln_stage_load(sf, part, 1) > 0;
    KILN_CHECK(kiln_comm_bcast(b->comm, KILN_AXIS_WORLD, loaded, sizeof *loaded, 0));
    if (*loaded) KILN_CHECK(kiln_comm_bcast(b->comm, KILN_AXIS_WORLD, part->data, part->bytes, 0));
    if (*loaded && b->rank == 0) kiln_info("index: PQ sub-quantizers from an earlier run (%s)", sf->path);
    return KILN_OK;
}

/* IVF-PQ: the sub-quantizers, from the residuals of the k-means sample (every rank its share). */
static kiln_status train_pq(build *b, const float *centroids)
{
    ann_index *x = &b->idx;
    const kiln_index_config *c = b->c;
    uint64_t sub = (uint64_t)(x->dim / x->pq_m);
    x->codebooks = malloc((size_t)x->pq_m * 256 * sub * sizeof *x->codebooks);
    kiln_status st = agree(b, x->codebooks ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "PQ sub-quantizers"));
    KILN_CHECK(st);
    kiln_stage_file sf;
    char identity[sizeof sf.identity];
    stage_identity(b, identity, sizeof identity, "nlist=%d train_rows=%" PRIu64 " iters=%d init=%s pq_m=%d pq_iters=%d",
                   x->nlist, b->n_train, c->index.kmeans_iters, c->index.kmeans_init, x->pq_m, c->index.pq_iters);
    kiln_stage_init(&sf, b->output, "pq", identity);
    kiln_stage_part part = {"codebooks", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, {(uint64_t)x->pq_m * 256, sub},
                           x->codebooks, (size_t)x->pq_m * 256 * sub * sizeof(float)};
    int loaded = 0;
    KILN_CHECK(agree(b, load_pq(b, &sf, &part, &loaded)));
    if (loaded) return KILN_OK;
    int64_t *labels = malloc((b->sample_rows + 1) * sizeof *labels);
    st = labels ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "PQ training");
    if (st == KILN_OK) st = assign_rows(b, centroids, b->sample, b->sample_rows, labels);
    if (st == KILN_OK) to_residuals(b, centroids, b->sample, b->sample_rows, labels);
    free(labels);
    st = agree(b, st);
    if (st == KILN_OK && b->n_train < 256)
        st = KILN_ERROR(KILN_ERR_CONFIG, "IVF-PQ trains 256 sub-centroids a part: index.train_rows (%" PRIu64 ") "
                        "must be at least 256", b->n_train);
    double t0 = kiln_time_s();
    ann_kmeans_opts ko = {256, c->index.pq_iters, (uint64_t)c->index.seed, 0, b->o->be, b->comm,
                          b->threads, 0, NULL, NULL};
    if (st == KILN_OK)
        st = kiln_ann_pq_train(&ko, b->sample, b->sample_first, b->sample_rows, b->n_train, x->dim, x->pq_m,
                               x->codebooks);
    if (st == KILN_OK && b->rank == 0) {
        kiln_info("index: PQ of %d parts x 256 trained on %" PRIu64 " residuals in %.2f s", x->pq_m, b->n_train,
                  kiln_time_s() - t0);
        st = kiln_stage_save(&sf, 1, &part, 1);
    }
    return agree(b, st);
}

/* HNSW: the graph as the build left it, between batches of insertions. */
typedef struct hnsw_progress {
    kiln_stage_file sf;
    int64_t top[2];                    /* entry point, top level */
} hnsw_progress;

static int graph_parts(hnsw_progress *p, ann_index *x, kiln_stage_part *parts)
{
    int64_t entries = x->node_entry[x->rows], room = kiln_ann_hnsw_room(x);
    parts[0] = (kiln_stage_part){"link_count", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, {(uint64_t)entries, 0},
                                x->link_count, (size_t)entries * sizeof(int32_t)};
    parts[1] = (kiln_stage_part){"links", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, {(uint64_t)room, 0}, x->links,
                                (size_t)room * sizeof(int32_t)};
    parts[2] = (kiln_stage_part){"top", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {2, 0}, p->top, sizeof p->top};
    return 3;
}

static kiln_status save_graph(void *ctx, const ann_index *x, int64_t inserted)
{
    hnsw_progress *p = ctx;
    kiln_stage_part parts[3];
    p->top[0] = x->entry_point, p->top[1] = x->max_level;
    int n = graph_parts(p, (ann_index *)x, parts);
    return kiln_stage_save(&p->sf, inserted, parts, n);
}

static int64_t load_graph(void *ctx, ann_index *x)
{
    hnsw_progress *p = ctx;
    kiln_stage_part parts[3];
    int n = graph_parts(p, x, parts);
    int64_t inserted = kiln_stage_load(&p->sf, parts, n);
    if (inserted > 1 && inserted <= x->rows) {
        x->entry_point = p->top[0], x->max_level = (int)p->top[1];
        if (p->top[1] >= 0 && p->top[1] <= INT32_MAX && kiln_ann_hnsw_check_partial(x, inserted)) {
            kiln_info("index: HNSW insertion continues from row %lld of %lld (%s)", (long long)inserted,
                      (long long)x->rows, p->sf.path);
            return inserted;
        }
    }
    /* nothing usable: the layout as it was made */
    memset(x->link_count, 0, (size_t)x->node_entry[x->rows] * sizeof *x->link_count);
    x->entry_point = 0, x->max_level = x->levels[0];
    return 0;
}

/* HNSW on the first rank's threads, saving the graph as it goes. */
static kiln_status build_graph(build *b)
{
    ann_index *x = &b->idx;
    hnsw_progress p;
    char identity[sizeof p.sf.identity];
    stage_identity(b, identity, sizeof identity, "input_crc32=%08x m=%d ef_construction=%d", x->input_crc,
                   x->hnsw_m, x->ef_construction);
    kiln_stage_init(&p.sf, b->output, "hnsw", identity);
    ann_hnsw_progress saver = {b->c->index.save_interval, load_graph, save_graph, &p};
    double t1 = kiln_time_s();
    KILN_CHECK(kiln_ann_hnsw_build(x, (uint64_t)b->c->index.seed, b->threads, b->c->search.progress_interval, &saver));
    kiln_info("index: HNSW graph (m %d, ef_construction %d, %d layers) of %lld rows in %.2f s on %d threads",
              x->hnsw_m, x->ef_construction, x->max_level + 1, (long long)x->rows, kiln_time_s() - t1, b->threads);
    return KILN_OK;
}

/* IVF-PQ: this rank's rows as codes (rows x m), from their residuals. */
static kiln_status encode_own(build *b, const float *centroids, const float *own, const int64_t *labels,
                              uint8_t **codes)
{
    ann_index *x = &b->idx;
    float *res = malloc((b->own_rows + 1) * (size_t)x->dim * sizeof *res);
    *codes = malloc((b->own_rows + 1) * (size_t)x->pq_m);
    kiln_status st = res && *codes ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "PQ codes");
    if (st == KILN_OK) {
        memcpy(res, own, b->own_rows * (size_t)x->dim * sizeof *res);
        to_residuals(b, centroids, res, b->own_rows, labels + b->own_first);
    }
    /* parts of rows over the threads: each thread a range of rows */
    int failed = 0;
    if (st == KILN_OK) {
        uint64_t blocks = (b->own_rows + ANN_BLOCK - 1) / ANN_BLOCK;
        int old_levels = omp_get_max_active_levels();
        omp_set_max_active_levels(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(b->threads) reduction(| : failed)
        for (uint64_t blk = 0; blk < blocks; blk++) {
            uint64_t at = blk * ANN_BLOCK, n = b->own_rows - at < ANN_BLOCK ? b->own_rows - at : ANN_BLOCK;
            if (kiln_ann_pq_encode(b->o->be, x->codebooks, x->dim, x->pq_m, res + at * (size_t)x->dim, n,
                                   *codes + at * (size_t)x->pq_m) != KILN_OK)
                failed = 1;
        }
        omp_set_max_active_levels(old_levels);
    }
    free(res);
    if (failed) st = KILN_ERROR(KILN_ERR_NOMEM, "PQ encoding");
    return st;
}

/* Rank 0: every rank's codes, in input order. */
static kiln_status gather_codes(build *b, const uint8_t *own, uint8_t **all)
{
    int m = b->idx.pq_m;
    int *counts = malloc((size_t)b->size * sizeof *counts), *displs = malloc((size_t)b->size * sizeof *displs);
    kiln_status st = counts && displs ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "gather");
    if (st == KILN_OK && b->in.rows * (uint64_t)m > (uint64_t)INT32_MAX)
        st = KILN_ERROR(KILN_ERR_UNSUPPORTED, "an index of %" PRIu64 " codes is written by one rank, which gathers "
                        "at most 2^31 bytes: build it in shards", b->in.rows * (uint64_t)m);
    for (int r = 0; st == KILN_OK && r < b->size; r++) {
        uint64_t f, n;
        share(b->in.rows, ANN_BLOCK, r, b->size, &f, &n);
        counts[r] = (int)(n * (uint64_t)m);
        displs[r] = (int)(f * (uint64_t)m);
    }
    *all = NULL;
    if (st == KILN_OK && b->rank == 0 && !(*all = malloc(b->in.rows * (size_t)m)))
        st = KILN_ERROR(KILN_ERR_NOMEM, "the index's codes");
    st = agree(b, st);
    if (st == KILN_OK) st = kiln_comm_gather_bytes(b->comm, KILN_AXIS_WORLD, own, *all, counts, displs, 0);
    free(counts), free(displs);
    return st;
}

/* The input's crc32: the ranks' crc32 of their ranges, combined in rank order. */
static kiln_status combine_crc(build *b, uint32_t mine, uint32_t *all_crc)
{
    uint64_t pair[2] = {mine, b->own_rows * (uint64_t)b->in.dim * (b->in.is_u8 ? 1u : 4u)};
    uint64_t *all = malloc((size_t)b->size * sizeof pair);
    KILN_CHECK_ALLOC(all);
    kiln_status st = kiln_comm_allgather_bytes(b->comm, KILN_AXIS_WORLD, pair, all, sizeof pair);
    uint32_t crc = 0;
    for (int r = 0; st == KILN_OK && r < b->size; r++)
        crc = r == 0 ? (uint32_t)all[0] : kiln_crc32_combine(crc, (uint32_t)all[2 * r], all[2 * r + 1]);
    free(all);
    *all_crc = crc;
    return st;
}

/* Rank 0: every row, gathered in input order. */
static kiln_status gather_rows(build *b, const float *x, float **all)
{
    int *counts = malloc((size_t)b->size * sizeof *counts), *displs = malloc((size_t)b->size * sizeof *displs);
    kiln_status st = counts && displs ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "gather");
    uint64_t total = b->in.rows * (uint64_t)b->in.dim;
    if (st == KILN_OK && total > (uint64_t)INT32_MAX)
        st = KILN_ERROR(KILN_ERR_UNSUPPORTED, "an index of %" PRIu64 " values is written by one rank, "
                        "which gathers at most 2^31 floats: build it in shards", total);
    for (int r = 0; st == KILN_OK && r < b->size; r++) {
        uint64_t f, n;
        share(b->in.rows, ANN_BLOCK, r, b->size, &f, &n);
        counts[r] = (int)(n * (uint64_t)b->in.dim);
        displs[r] = (int)(f * (uint64_t)b->in.dim);
    }
    *all = NULL;
    if (st == KILN_OK && b->rank == 0 && !(*all = malloc((size_t)total * sizeof **all)))
        st = KILN_ERROR(KILN_ERR_NOMEM, "the index's %" PRIu64 " vectors", b->in.rows);
    st = agree(b, st);
    if (st == KILN_OK) st = kiln_comm_gather_f32(b->comm, KILN_AXIS_WORLD, x, *all, counts, displs, 0);
    free(counts), free(displs);
    return st;
}

/* Rank 0: the rows (and codes; either may be NULL) in list order, their ids, the offsets. */
static kiln_status order_by_list(build *b, float *rows, uint8_t *codes, const int64_t *labels)
{
    ann_index *x = &b->idx;
    int dim = b->in.dim, m = x->pq_m;
    x->offsets = calloc((size_t)x->nlist + 1, sizeof *x->offsets);
    x->ids = malloc((size_t)x->rows * sizeof *x->ids);
    x->vectors = rows ? malloc((size_t)x->rows * (size_t)dim * sizeof *x->vectors) : NULL;
    x->codes = codes ? malloc((size_t)x->rows * (size_t)m + 1) : NULL;
    int64_t *cursor = malloc(((size_t)x->nlist + 1) * sizeof *cursor);
    if (!x->offsets || !x->ids || (rows && !x->vectors) || (codes && !x->codes) || !cursor) {
        free(cursor), free(rows), free(codes);
        return KILN_ERROR(KILN_ERR_NOMEM, "the index's lists");
    }
    for (int64_t i = 0; i < x->rows; i++) x->offsets[labels[i] + 1]++;
    for (int l = 0; l < x->nlist; l++) x->offsets[l + 1] += x->offsets[l];
    memcpy(cursor, x->offsets, ((size_t)x->nlist + 1) * sizeof *cursor);
    for (int64_t i = 0; i < x->rows; i++) {
        int64_t at = cursor[labels[i]]++;
        x->ids[at] = (int64_t)b->in.base + i;
        if (rows)
            memcpy(x->vectors + (size_t)at * (size_t)dim, rows + (size_t)i * (size_t)dim, (size_t)dim * sizeof(float));
        if (codes) memcpy(x->codes + (size_t)at * (size_t)m, codes + (size_t)i * (size_t)m, (size_t)m);
    }
    free(cursor), free(rows), free(codes);
    return KILN_OK;
}

/* Rank 0: index.attributes, NAME=FILE.h5:/path,..., each an integer dataset of one value per
 * input row, permuted into the stored order. */
static kiln_status read_attributes(build *b)
{
    const char *spec = b->c->index.attributes;
    if (!spec[0]) return KILN_OK;
    ann_index *x = &b->idx;
    x->attr_names = calloc(16, sizeof *x->attr_names);
    x->attrs = calloc(16, sizeof *x->attrs);
    KILN_CHECK_ALLOC(x->attr_names);
    KILN_CHECK_ALLOC(x->attrs);
    char list[KILN_CFG_STR_MAX];
    snprintf(list, sizeof list, "%s", spec);
    kiln_status st = KILN_OK;
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item && st == KILN_OK; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || eq - item >= 63 || x->n_attrs == 16) {
            st = KILN_ERROR(KILN_ERR_CONFIG, "index.attributes: '%s' is not NAME=FILE.h5:/path (at most "
                            "16, names under 64 characters)", item);
            break;
        }
        *eq = '\0';
        char file[PATH_MAX], *colon = strstr(eq + 1, ":/");
        if (!colon) {
            st = KILN_ERROR(KILN_ERR_CONFIG, "index.attributes: '%s=%s' is not NAME=FILE.h5:/path", item, eq + 1);
            break;
        }
        snprintf(file, sizeof file, "%.*s", (int)(colon - (eq + 1)), eq + 1);
        hid_t f, d;
        st = kiln_h5_open_file(file, "index.attributes", KILN_ERR_DATA, &f);
        if (st != KILN_OK) break;
        uint64_t shape[1] = {b->in.total_rows};
        st = kiln_h5_open_int_dataset(f, colon + 1, 1, shape, &d);
        int64_t *v = st == KILN_OK ? malloc(b->in.total_rows * sizeof *v) : NULL;
        if (st == KILN_OK && !v) st = KILN_ERROR(KILN_ERR_NOMEM, "attribute %s", item);
        if (st == KILN_OK && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            st = KILN_H5_ERROR(KILN_ERR_DATA, "cannot read '%s' of '%s'", colon + 1, file);
        if (st == KILN_OK) {
            int64_t *stored = malloc(b->in.rows * sizeof *stored);
            if (!stored) st = KILN_ERROR(KILN_ERR_NOMEM, "attribute %s", item);
            for (int64_t i = 0; stored && i < x->rows; i++)
                stored[i] = v[x->ids ? x->ids[i] : (int64_t)b->in.base + i];
            snprintf(x->attr_names[x->n_attrs], sizeof x->attr_names[0], "%s", item);
            x->attrs[x->n_attrs] = stored;
            if (stored) x->n_attrs++;
        }
        free(v);
        if (st == KILN_OK || d >= 0) H5Dclose(d);
        H5Fclose(f);
    }
    return st;
}

kiln_status kiln_ann_build_range(const kiln_index_build_opts *o, kiln_comm *comm, uint64_t first, uint64_t rows,
                                 const char *output)
{
    build b = {.o = o, .c = o->cfg, .comm = comm, .output = output};
    b.rank = kiln_comm_rank(comm, KILN_AXIS_WORLD);
    b.size = kiln_comm_size(comm, KILN_AXIS_WORLD);
    b.threads = o->place.threads > 0 ? o->place.threads : omp_get_max_threads();
    ann_index *x = &b.idx;
    kiln_ann_kind_parse(b.c->index.kind, &x->kind);
    kiln_ann_metric_parse(b.c->index.metric, &x->metric);
    kiln_status st = kiln_ann_vectors_open(o->input, "--input", &b.in);
    if (st == KILN_OK && rows) st = kiln_ann_vectors_window(&b.in, first, rows);
    st = agree(&b, st);
    KILN_CHECK(st);
    x->dim = b.in.dim;
    x->rows = (int64_t)b.in.rows;
    x->first_row = (int64_t)b.in.base;
    int ivf = x->kind == ANN_IVF_FLAT || x->kind == ANN_IVF_PQ;
    x->nlist = ivf ? (b.c->index.nlist ? b.c->index.nlist : default_nlist(b.in.rows)) : 0;
    if (x->kind == ANN_IVF_PQ) {
        x->pq_m = b.c->index.pq_m ? b.c->index.pq_m : default_pq_m(x->dim);
        x->pq_refine = b.c->index.pq_refine;
        if (x->dim % x->pq_m)
            st = KILN_ERROR(KILN_ERR_CONFIG, "index.pq_m (%d) must divide the rows' width (%d): each part is "
                            "dim / pq_m values", x->pq_m, x->dim);
    }
    if (x->nlist > x->rows)
        st = KILN_ERROR(KILN_ERR_CONFIG, "index.nlist (%d) is more than the input's %lld rows", x->nlist,
                        (long long)x->rows);
    x->nprobe = x->nlist ? (b.c->index.nprobe < x->nlist ? b.c->index.nprobe : x->nlist) : 0;
    snprintf(x->input, sizeof x->input, "%s", o->input);
    x->config = (char *)o->config_yaml;
    x->hnsw_m = b.c->index.hnsw_m;
    x->ef_construction = b.c->index.ef_construction;
    x->ef = x->kind == ANN_HNSW ? b.c->index.ef : 0;
    if (st == KILN_OK && x->kind == ANN_HNSW && x->rows > INT32_MAX)
        st = KILN_ERROR(KILN_ERR_UNSUPPORTED, "an HNSW graph holds at most 2^31 - 1 rows; the input has %lld",
                        (long long)x->rows);
    if (b.rank == 0)
        kiln_info("index: %s %s of %" PRIu64 " x %d rows of %s (from row %" PRIu64 ") on %d rank%s -> %s",
                  kiln_ann_kind_name(x->kind), kiln_ann_metric_name(x->metric), b.in.rows, b.in.dim, o->input,
                  b.in.base, b.size, b.size == 1 ? "" : "s", output);
    float *centroids = NULL;
    if (st == KILN_OK && x->nlist && !(centroids = malloc((size_t)x->nlist * (size_t)x->dim * sizeof *centroids)))
        st = KILN_ERROR(KILN_ERR_NOMEM, "%d centroids", x->nlist);
    st = agree(&b, st);
    if (st == KILN_OK && x->nlist) st = train(&b, centroids);
    if (st == KILN_OK && x->kind == ANN_IVF_PQ) st = train_pq(&b, centroids);
    free(b.sample);
    b.sample = NULL;
    share(b.in.rows, ANN_BLOCK, b.rank, b.size, &b.own_first, &b.own_rows);
    float *own = st == KILN_OK ? malloc((b.own_rows + 1) * (size_t)x->dim * sizeof *own) : NULL;
    int64_t *labels = st == KILN_OK && x->nlist ? calloc(b.in.rows, sizeof *labels) : NULL;
    if (st == KILN_OK && (!own || (x->nlist && !labels))) st = KILN_ERROR(KILN_ERR_NOMEM, "the rows to index");
    uint32_t crc = 0;
    double t0 = kiln_time_s();
    if (st == KILN_OK) st = read_own(&b, centroids, own, labels, &crc);
    st = agree(&b, st);
    if (st == KILN_OK) st = combine_crc(&b, crc, &x->input_crc);
    if (st == KILN_OK && labels) st = kiln_comm_allreduce_i64(comm, KILN_AXIS_WORLD, labels, b.in.rows);
    if (st == KILN_OK && b.rank == 0 && x->nlist)
        kiln_info("index: %" PRIu64 " rows assigned to lists in %.2f s", b.in.rows, kiln_time_s() - t0);
    uint8_t *own_codes = NULL, *codes = NULL;
    if (st == KILN_OK && x->kind == ANN_IVF_PQ) st = agree(&b, encode_own(&b, centroids, own, labels, &own_codes));
    if (st == KILN_OK && own_codes) st = gather_codes(&b, own_codes, &codes);
    free(own_codes);
    float *all = NULL;
    int keep_vectors = x->kind != ANN_IVF_PQ || x->pq_refine > 0;
    if (st == KILN_OK && keep_vectors) st = gather_rows(&b, own, &all);
    free(own);
    if (st == KILN_OK && b.rank == 0) {
        if (x->nlist) {
            x->centroids = centroids;
            centroids = NULL;
            st = order_by_list(&b, all, codes, labels);
            codes = NULL;
        } else {
            x->vectors = all;
        }
        all = NULL;
        if (st == KILN_OK && x->kind == ANN_HNSW) st = build_graph(&b);
        if (st == KILN_OK) st = read_attributes(&b);
        if (st == KILN_OK) st = kiln_ann_index_write(output, x);
        for (int k = 0; st == KILN_OK && k < 3; k++) { /* the index holds it all now */
            static const char *const stages[3] = {"kmeans", "pq", "hnsw"};
            kiln_stage_file done;
            kiln_stage_init(&done, output, stages[k], "");
            kiln_stage_remove(&done);
        }
        if (st == KILN_OK)
            printf("kiln index build: %s, %" PRId64 " rows x %d, %s -> %s\n", kiln_ann_kind_name(x->kind), x->rows,
                   x->dim, kiln_ann_metric_name(x->metric), output);
    }
    free(all), free(centroids), free(labels), free(codes);
    x->config = NULL;
    kiln_ann_index_free(x);
    kiln_ann_vectors_close(&b.in);
    return agree(&b, st);
}
