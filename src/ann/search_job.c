/* `kiln index search`: the k nearest stored rows of every query, into OUT.h5 (ids int64 [Q,k],
 * distances float32 [Q,k]), by the chunked-output engine of kiln/chunked.h: the ranks share
 * the queries by chunks of search.chunk_rows, and a rerun after a kill or a preemption does
 * only the chunks not done, into an output byte-identical to an uninterrupted run's. Inside a
 * chunk the threads take fixed batches of queries, so the result does not depend on the
 * number of ranks or threads. Every check (the index's checksums, the query width, k, nprobe,
 * the filter) is made before any output exists.
 *
 * A sharded index (index_set.c) on R ranks: G = gcd(R, shards) groups hold the shards, rank r
 * those of group r % G, so a rank holds shards / G of them. The ranks of group 0 lead: they
 * share the chunks among themselves as above; for each chunk a leader sends the queries to the
 * other G - 1 ranks of its column (ranks r .. r + G - 1), every rank of the column searches
 * its shards, and the leader merges the G top-k lists and writes the chunk. The merge orders
 * by (distance, id), so the output is the same on any number of ranks. */
#include <inttypes.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kiln/chunked.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "ann_internal.h"

enum { SEARCH_BATCH = 1024 };          /* queries per thread task: fixed, for determinism */

typedef struct search_job {
    const kiln_index_search_opts *o;
    const kiln_index_config *c;
    ann_set set;
    ann_vectors q;
    ann_search_opts so;
    int64_t filter_values[64];
    int threads;
    float *qbuf;                       /* chunk_rows x dim */
    /* sharded over groups: the column this rank answers in, the leaders that share the chunks */
    int groups, leads;
    kiln_comm *column, *leaders;
    int64_t *col_ids;                  /* a leader: groups x chunk_rows x k; others: chunk_rows x k */
    float *col_dist;
    /* identity */
    char settings[KILN_CFG_STR_MAX + 64];
    uint64_t index_crc, index_bytes;
} search_job;

/* search.filter: NAME=V1,V2,... against the index's attributes. */
kiln_status kiln_ann_parse_filter(const char *spec, const ann_index *idx, int64_t *values, int max,
                                  ann_search_opts *so)
{
    so->filter_attr = -1;
    so->n_filter_values = 0;
    if (!spec[0]) return KILN_OK;
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec)
        return KILN_ERROR(KILN_ERR_CONFIG, "search.filter '%s': expected NAME=V1,V2,... (e.g. label=3,5)", spec);
    for (int a = 0; a < idx->n_attrs; a++)
        if (strlen(idx->attr_names[a]) == (size_t)(eq - spec) && !strncmp(idx->attr_names[a], spec, (size_t)(eq - spec)))
            so->filter_attr = a;
    if (so->filter_attr < 0) {
        char have[512] = "";
        for (int a = 0; a < idx->n_attrs; a++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", a ? ", " : "", idx->attr_names[a]);
        return KILN_ERROR(KILN_ERR_CONFIG, "search.filter '%s': the index has no attribute '%.*s' (it has: %s; "
                          "build it with index.attributes)", spec, (int)(eq - spec), spec, have[0] ? have : "none");
    }
    for (const char *p = eq + 1; *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || (*end && *end != ',') || so->n_filter_values == max)
            return KILN_ERROR(KILN_ERR_CONFIG, "search.filter '%s': the values must be integers separated by "
                              "commas (at most %d)", spec, max);
        values[so->n_filter_values++] = v;
        p = *end ? end + 1 : end;
    }
    if (!so->n_filter_values) return KILN_ERROR(KILN_ERR_CONFIG, "search.filter '%s': no values", spec);
    so->filter_values = values;
    return KILN_OK;
}

/* The queries against the index: their width, k, nprobe. */
kiln_status kiln_ann_check_queries(const ann_index *idx, const ann_vectors *q, int k, int nprobe, int ef)
{
    if (q->dim != idx->dim)
        return KILN_ERROR(KILN_ERR_DATA, "queries '%s' have %d values a row, but the index holds rows of %d",
                          q->spec, q->dim, idx->dim);
    if (k > idx->rows)
        return KILN_ERROR(KILN_ERR_CONFIG, "search.k (%d) is larger than the index's %lld rows", k,
                          (long long)idx->rows);
    if (nprobe > 0 && idx->nlist == 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "search.nprobe (%d) applies to IVF indexes; this one is %s", nprobe,
                          kiln_ann_kind_name(idx->kind));
    if (ef > 0 && idx->kind != ANN_HNSW)
        return KILN_ERROR(KILN_ERR_CONFIG, "search.ef (%d) applies to HNSW indexes; this one is %s", ef,
                          kiln_ann_kind_name(idx->kind));
    if (nprobe > idx->nlist && idx->nlist > 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "search.nprobe (%d) is larger than the index's %d lists", nprobe,
                          idx->nlist);
    return KILN_OK;
}

kiln_status kiln_ann_threads_scratch(const ann_index *idx, int threads, int k, int beam, ann_scratch ***out)
{
    ann_scratch **s = calloc((size_t)threads, sizeof *s);
    KILN_CHECK_ALLOC(s);
    kiln_status st = KILN_OK;
    for (int t = 0; t < threads && st == KILN_OK; t++) st = kiln_ann_scratch_new(idx, k, beam, &s[t]);
    if (st != KILN_OK) {
        for (int t = 0; t < threads; t++) kiln_ann_scratch_free(s[t]);
        free(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

void kiln_ann_search_parallel(const kiln_backend *be, const ann_index *idx, const ann_search_opts *so,
                              const float *q, uint64_t n, int threads, ann_scratch **scratch, int64_t *ids,
                              float *dist)
{
    uint64_t batches = (n + SEARCH_BATCH - 1) / SEARCH_BATCH;
    int old_levels = omp_get_max_active_levels();
    omp_set_max_active_levels(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (uint64_t b = 0; b < batches; b++) {
        uint64_t at = b * SEARCH_BATCH, m = n - at < SEARCH_BATCH ? n - at : SEARCH_BATCH;
        kiln_ann_search(be, idx, so, q + at * (size_t)idx->dim, (int)m, ids + at * (size_t)so->k,
                        dist + at * (size_t)so->k, scratch[omp_get_thread_num()]);
    }
    omp_set_max_active_levels(old_levels);
}

/* Every rank of a column: n queries (in qbuf) against its shards; a leader then merges the
 * column's results into ids/dist, the others send theirs. */
static kiln_status search_column(search_job *j, uint64_t n, int64_t *ids, float *dist)
{
    KILN_CHECK(kiln_ann_set_search(j->o->be, &j->set, &j->so, j->qbuf, n, ids, dist));
    if (j->groups == 1) return KILN_OK;
    size_t len = (size_t)n * (size_t)j->so.k;
    int *counts = malloc((size_t)j->groups * sizeof *counts), *displs = malloc((size_t)j->groups * sizeof *displs);
    KILN_CHECK_ALLOC(counts);
    for (int g = 0; displs && g < j->groups; g++) counts[g] = (int)(len * sizeof(int64_t)), displs[g] = g * counts[g];
    kiln_status st = displs ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "gather counts");
    if (st == KILN_OK) st = kiln_comm_gather_bytes(j->column, KILN_AXIS_WORLD, ids, j->col_ids, counts, displs, 0);
    for (int g = 0; displs && g < j->groups; g++) counts[g] = (int)(len * sizeof(float)), displs[g] = g * counts[g];
    if (st == KILN_OK) st = kiln_comm_gather_bytes(j->column, KILN_AXIS_WORLD, dist, j->col_dist, counts, displs, 0);
    free(counts), free(displs);
    for (int g = 1; st == KILN_OK && j->leads && g < j->groups; g++)
        st = kiln_ann_merge_results(j->set.head.metric, j->so.k, n, ids, dist, j->col_ids + (size_t)g * len,
                                    j->col_dist + (size_t)g * len);
    return st;
}

/* A leader to its column: n queries follow (n > 0), or stop (n 0; failed 1 when it failed). */
static kiln_status tell_column(search_job *j, int64_t n, int64_t failed)
{
    int64_t head[2] = {n, failed};
    return kiln_comm_bcast(j->column, KILN_AXIS_WORLD, head, sizeof head, 0);
}

static kiln_status compute_chunk(void *ctx, uint64_t chunk, uint64_t first, uint64_t rows,
                                 void *const *bufs, uint32_t *source_crc)
{
    (void)chunk;
    search_job *j = ctx;
    *source_crc = 0;
    KILN_CHECK(kiln_ann_vectors_read(&j->q, first, rows, j->qbuf, source_crc));
    if (j->set.head.metric == ANN_COSINE) kiln_ann_normalize(j->qbuf, rows, j->set.head.dim);
    if (j->groups > 1) {
        KILN_CHECK(tell_column(j, (int64_t)rows, 0));
        KILN_CHECK(kiln_comm_bcast(j->column, KILN_AXIS_WORLD, j->qbuf, rows * (size_t)j->q.dim * sizeof *j->qbuf, 0));
    }
    kiln_status st = search_column(j, rows, bufs[0], bufs[1]);
    return j->groups > 1 ? kiln_comm_agree(j->column, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL) : st;
}

/* A rank outside group 0: answers its leader's chunks until told to stop. */
static kiln_status serve_column(search_job *j)
{
    for (;;) {
        int64_t head[2];
        KILN_CHECK(kiln_comm_bcast(j->column, KILN_AXIS_WORLD, head, sizeof head, 0));
        if (head[0] <= 0) return head[1] ? KILN_ERROR(KILN_ERR_INTERNAL, "the search stopped on its leading rank")
                                         : KILN_OK;
        if ((uint64_t)head[0] > (uint64_t)j->c->search.chunk_rows)
            return KILN_ERROR(KILN_ERR_INTERNAL, "a chunk of %lld queries (at most %d)", (long long)head[0],
                              j->c->search.chunk_rows);
        uint64_t n = (uint64_t)head[0];
        KILN_CHECK(kiln_comm_bcast(j->column, KILN_AXIS_WORLD, j->qbuf, n * (size_t)j->q.dim * sizeof *j->qbuf, 0));
        kiln_status st = search_column(j, n, j->col_ids, j->col_dist);
        KILN_CHECK(kiln_comm_agree(j->column, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL));
    }
}

/* The shards' groups (gcd(ranks, shards)) and this rank's communicators. */
static kiln_status split_columns(search_job *j, int shards)
{
    kiln_comm *world = j->o->comm;
    int rank = kiln_comm_rank(world, KILN_AXIS_WORLD), size = kiln_comm_size(world, KILN_AXIS_WORLD);
    j->groups = kiln_ann_shard_groups(size, shards);
    j->leads = rank % j->groups == 0;
    if (j->groups == 1) {
        j->leaders = world;
        return KILN_OK;
    }
    KILN_CHECK(kiln_comm_split(world, rank / j->groups, rank % j->groups, &j->column));
    return kiln_comm_split(world, j->leads ? 0 : 1, rank, &j->leaders);
}

static kiln_status setup(search_job *j)
{
    int shards = 1;
    kiln_status st = kiln_ann_set_count_shards(j->o->index, &j->c->registry, &shards);
    KILN_CHECK(kiln_comm_agree(j->o->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL));
    KILN_CHECK(kiln_comm_agree(j->o->comm, KILN_AXIS_WORLD, split_columns(j, shards), KILN_ERR_INTERNAL));
    int rank = kiln_comm_rank(j->o->comm, KILN_AXIS_WORLD);
    KILN_CHECK(kiln_ann_set_open(j->o->index, &j->c->registry, rank % j->groups, j->groups, &j->set));
    const ann_index *head = &j->set.head;
    KILN_CHECK(kiln_ann_vectors_open(j->o->queries, "--queries", &j->q));
    KILN_CHECK(kiln_ann_check_queries(head, &j->q, j->c->search.k, j->c->search.nprobe, j->c->search.ef));
    j->so = (ann_search_opts){.k = j->c->search.k, .nprobe = j->c->search.nprobe, .ef = j->c->search.ef,
                              .filter_attr = -1};
    KILN_CHECK(kiln_ann_parse_filter(j->c->search.filter, &j->set.held[0], j->filter_values, 64, &j->so));
    uint32_t crc;
    KILN_CHECK(kiln_file_crc32(j->set.path, &crc, &j->index_bytes));
    j->index_crc = crc;
    snprintf(j->settings, sizeof j->settings, "k=%d nprobe=%d ef=%d filter=%s", j->so.k,
             j->so.nprobe ? j->so.nprobe : head->nprobe, j->so.ef ? j->so.ef : head->ef, j->c->search.filter);
    j->threads = j->o->place.threads > 0 ? j->o->place.threads : omp_get_max_threads();
    KILN_CHECK(kiln_ann_set_scratch(&j->set, j->threads, j->so.k, j->so.ef ? j->so.ef : head->ef));
    size_t chunk = (size_t)j->c->search.chunk_rows;
    j->qbuf = malloc(chunk * (size_t)head->dim * sizeof *j->qbuf);
    KILN_CHECK_ALLOC(j->qbuf);
    if (j->groups > 1) {
        size_t len = chunk * (size_t)j->so.k, copies = j->leads ? (size_t)j->groups : 1;
        if (len * copies * sizeof(int64_t) > (size_t)INT32_MAX)
            return KILN_ERROR(KILN_ERR_CONFIG, "search.chunk_rows (%zu) x search.k (%d) x %d shard groups is too "
                              "much to gather at once (2 GiB): lower search.chunk_rows", chunk, j->so.k, j->groups);
        j->col_ids = malloc(len * copies * sizeof *j->col_ids);
        j->col_dist = malloc(len * copies * sizeof *j->col_dist);
        if (!j->col_ids || !j->col_dist) return KILN_ERROR(KILN_ERR_NOMEM, "shard results");
    }
    return KILN_OK;
}

/* Group 0's ranks: the output, by chunks; then their columns are told to stop. */
static kiln_status lead(search_job *j, kiln_chunked_result *res)
{
    const kiln_index_search_opts *o = j->o;
    uint64_t k = (uint64_t)j->c->search.k;
    kiln_chunked_dataset sets[2] = {{"ids", H5T_NATIVE_INT64, (int)k}, {"distances", H5T_NATIVE_FLOAT, (int)k}};
    static const char version[] = KILN_VERSION;
    uint64_t chunk_rows = (uint64_t)j->c->search.chunk_rows;
    kiln_chunked_attr id[] = {
        {"index", KILN_ATTR_STR, j->set.path},         {"index_crc32", KILN_ATTR_U64, &j->index_crc},
        {"index_bytes", KILN_ATTR_U64, &j->index_bytes}, {"queries", KILN_ATTR_STR, o->queries},
        {"query_rows", KILN_ATTR_U64, &j->q.rows},      {"chunk_rows", KILN_ATTR_U64, &chunk_rows},
        {"settings", KILN_ATTR_STR, j->settings},
        {"metric", KILN_ATTR_STR, kiln_ann_metric_name(j->set.head.metric)},
        {"kiln_version", KILN_ATTR_STR, version}};
    kiln_chunked_spec spec = {
        .output = o->output, .name = "search", .job = "`kiln index search`", .output_flag = "--output",
        .rows = j->q.rows, .chunk_rows = chunk_rows, .datasets = sets, .n_datasets = 2, .identity = id,
        .n_identity = sizeof id / sizeof id[0], .config = o->config_yaml,
        .source_row_bytes = (uint64_t)j->q.dim * (j->q.is_u8 ? 1u : 4u),
        .progress_interval = j->c->search.progress_interval};
    kiln_status st = kiln_chunked_write(j->leaders, &spec, compute_chunk, j, res);
    if (j->groups > 1) {
        kiln_status told = tell_column(j, 0, st != KILN_OK);
        if (st == KILN_OK) st = told;
    }
    return st;
}

kiln_status kiln_index_search(const kiln_index_search_opts *o)
{
    search_job *j = calloc(1, sizeof *j);
    KILN_CHECK_ALLOC(j);
    j->o = o;
    j->c = o->cfg;
    j->q.fid = j->q.dset = H5I_INVALID_HID;
    double t0 = kiln_time_s();
    kiln_status st = kiln_comm_agree(o->comm, KILN_AXIS_WORLD, setup(j), KILN_ERR_INTERNAL);
    kiln_chunked_result res = {0};
    if (st == KILN_OK) st = j->leads ? lead(j, &res) : serve_column(j);
    st = kiln_comm_agree(o->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    double seconds = kiln_time_s() - t0, rows = (double)res.computed_rows;
    if (st == KILN_OK && kiln_comm_allreduce_f64(o->comm, KILN_AXIS_WORLD, &rows, 1) != KILN_OK) kiln_error_clear();
    if (st == KILN_OK && kiln_comm_rank(o->comm, KILN_AXIS_WORLD) == 0) {
        if (res.was_complete)
            printf("kiln index search: '%s' is complete already; nothing to do\n", o->output);
        else
            printf("kiln index search: %" PRIu64 " queries (%.0f searched now), k %d, %s, %.3f s end to end, "
                   "%.0f queries/s in search\nwrote %s\n", j->q.rows, rows, j->so.k, j->settings, seconds,
                   res.t_compute > 0 ? (double)res.computed_rows / res.t_compute : 0.0, o->output);
    }
    free(j->qbuf), free(j->col_ids), free(j->col_dist);
    kiln_ann_set_free(&j->set);
    kiln_ann_vectors_close(&j->q);
    if (j->column) kiln_comm_finalize(j->column);
    if (j->leaders && j->leaders != o->comm) kiln_comm_finalize(j->leaders);
    free(j);
    return st;
}
