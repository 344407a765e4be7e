/* An index as it is searched: one index file, or a sharded index, whose file (the manifest)
 * lists shards built from consecutive row ranges of one input, each an ordinary index file
 * beside it named STEM.shard-SSSSS-of-NNNNN.h5 (STEM: the manifest's name without .h5).
 *
 * The manifest (docs/index.md): the root attributes of an index file (kind, metric, dim, rows
 * of the whole input, nlist (the smallest of the shards'), nprobe and ef (the search defaults),
 * input, input_crc32 (of the whole input), config) plus shards (their number) and shard_stem;
 * and /shards/first_row, /shards/rows, /shards/file_crc32, /shards/file_bytes, int64 [shards].
 * A shard must be the file the manifest recorded (its crc32 and size), and its attributes must
 * say the rows the manifest gives it, so a shard rebuilt or swapped later is refused by name.
 *
 * A rank holds the shards of its group (shard s goes to group s % groups), searches each and
 * merges their top k; groups are merged by the caller (search_job.c) the same way. The merge
 * orders by (distance, id), so the result is the same whatever holds which shard. */
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "ann_internal.h"

enum { MAX_SHARDS = 65536 };

void kiln_ann_shard_path(const char *manifest, const char *stem, int shard, int shards, char *out, size_t len)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", manifest);
    snprintf(out, len, "%s/%s.shard-%05d-of-%05d.h5", dirname(copy), stem, shard, shards);
}

void kiln_ann_shard_stem(const char *manifest, char *stem, size_t len)
{
    const char *slash = strrchr(manifest, '/');
    snprintf(stem, len, "%s", slash ? slash + 1 : manifest);
    size_t n = strlen(stem);
    if (n > 3 && !strcmp(stem + n - 3, ".h5")) stem[n - 3] = '\0';
}

int kiln_ann_shard_groups(int ranks, int shards)
{
    int a = ranks, b = shards;
    while (b) {
        int t = a % b;
        a = b, b = t;
    }
    return a < 1 ? 1 : a;
}

/* ---- the manifest ---- */

typedef struct manifest_writer {
    const ann_index *head;
    const ann_shards *sh;
} manifest_writer;

static kiln_status manifest_fill(hid_t file, void *ctx)
{
    const manifest_writer *w = ctx;
    const ann_index *x = w->head;
    const ann_shards *sh = w->sh;
    KILN_CHECK(kiln_ann_index_write_attrs(file, x));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "shards", sh->n));
    KILN_CHECK(kiln_h5_write_attr_str(file, "shard_stem", sh->stem));
    uint64_t shape[1] = {(uint64_t)sh->n};
    const int64_t *cols[4] = {sh->first_row, sh->rows, sh->file_crc, sh->file_bytes};
    static const char *const names[4] = {"shards/first_row", "shards/rows", "shards/file_crc32", "shards/file_bytes"};
    for (int i = 0; i < 4; i++)
        KILN_CHECK(kiln_h5_write_dataset(file, names[i], H5T_STD_I64LE, H5T_NATIVE_INT64, 1, shape, cols[i]));
    return KILN_OK;
}

kiln_status kiln_ann_manifest_write(const char *path, const ann_index *head, const ann_shards *sh)
{
    manifest_writer w = {head, sh};
    return kiln_h5_write_file_atomic(path, manifest_fill, &w);
}

void kiln_ann_shards_free(ann_shards *sh)
{
    free(sh->first_row), free(sh->rows), free(sh->file_crc), free(sh->file_bytes);
    memset(sh, 0, sizeof *sh);
}

kiln_status kiln_ann_shards_alloc(ann_shards *sh, int n)
{
    sh->n = n;
    sh->first_row = calloc((size_t)n, sizeof *sh->first_row);
    sh->rows = calloc((size_t)n, sizeof *sh->rows);
    sh->file_crc = calloc((size_t)n, sizeof *sh->file_crc);
    sh->file_bytes = calloc((size_t)n, sizeof *sh->file_bytes);
    if (sh->first_row && sh->rows && sh->file_crc && sh->file_bytes) return KILN_OK;
    kiln_ann_shards_free(sh);
    return KILN_ERROR(KILN_ERR_NOMEM, "a table of %d shards", n);
}

/* The manifest's shard table, checked: the shards cover the rows in order, none empty. */
static kiln_status read_shard_table(hid_t f, const char *path, const ann_index *head, ann_shards *sh)
{
    int64_t n = 0;
    KILN_CHECK(kiln_h5_read_attr_i64(f, "shards", &n));
    if (n < 1 || n > MAX_SHARDS || n > head->rows)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s' has attribute shards %lld; expected 1..%d and at most its "
                          "%lld rows", path, (long long)n, MAX_SHARDS, (long long)head->rows);
    KILN_CHECK(kiln_h5_read_attr_str(f, "shard_stem", sh->stem, sizeof sh->stem));
    if (!sh->stem[0] || strchr(sh->stem, '/'))
        return KILN_ERROR(KILN_ERR_DATA, "index '%s' has shard_stem '%s'; expected a file name", path, sh->stem);
    KILN_CHECK(kiln_ann_shards_alloc(sh, (int)n));
    int64_t *cols[4] = {sh->first_row, sh->rows, sh->file_crc, sh->file_bytes};
    static const char *const names[4] = {"shards/first_row", "shards/rows", "shards/file_crc32", "shards/file_bytes"};
    uint64_t shape[1] = {(uint64_t)n};
    for (int i = 0; i < 4; i++) {
        hid_t d;
        KILN_CHECK(kiln_h5_open_dataset(f, names[i], H5T_NATIVE_INT64, 1, shape, &d));
        herr_t rc = H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, cols[i]);
        H5Dclose(d);
        if (rc < 0) return KILN_H5_ERROR(KILN_ERR_DATA, "cannot read '%s' of index '%s'", names[i], path);
    }
    int64_t next = 0;
    for (int s = 0; s < sh->n; s++) {
        if (sh->first_row[s] != next || sh->rows[s] < 1 || sh->rows[s] > head->rows - next)
            return KILN_ERROR(KILN_ERR_DATA, "index '%s': shard %d holds rows [%lld, +%lld); expected it to start "
                              "at row %lld, hold at least one and end by row %lld", path, s,
                              (long long)sh->first_row[s], (long long)sh->rows[s], (long long)next,
                              (long long)head->rows);
        next += sh->rows[s];
    }
    if (next != head->rows)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': its shards hold %lld rows, the index %lld", path,
                          (long long)next, (long long)head->rows);
    return KILN_OK;
}

/* Shard s read and checked against the manifest: the same file, the same rows and kind. */
static kiln_status open_shard(const ann_set *set, int s, ann_index *idx)
{
    char path[PATH_MAX + 64];
    kiln_ann_shard_path(set->path, set->shards.stem, s, set->shards.n, path, sizeof path);
    uint32_t crc;
    uint64_t bytes;
    KILN_CHECK(kiln_file_crc32(path, &crc, &bytes));
    if (crc != (uint32_t)set->shards.file_crc[s] || bytes != (uint64_t)set->shards.file_bytes[s])
        return KILN_ERROR(KILN_ERR_DATA, "shard %d of index '%s', '%s', is not the file the index was made of "
                          "(crc32 %08x, %" PRIu64 " bytes; the index records %08x, %lld bytes): rebuild the index",
                          s, set->path, path, crc, bytes, (uint32_t)set->shards.file_crc[s],
                          (long long)set->shards.file_bytes[s]);
    KILN_CHECK(kiln_ann_index_read(path, idx));
    const ann_index *h = &set->head;
    if (idx->kind != h->kind || idx->metric != h->metric || idx->dim != h->dim ||
        idx->first_row != set->shards.first_row[s] || idx->rows != set->shards.rows[s])
        return KILN_ERROR(KILN_ERR_DATA, "shard %d of index '%s', '%s', is %s %s of %lld x %d from row %lld; the "
                          "index expects %s %s of %lld x %d from row %lld", s, set->path, path,
                          kiln_ann_kind_name(idx->kind), kiln_ann_metric_name(idx->metric), (long long)idx->rows,
                          idx->dim, (long long)idx->first_row, kiln_ann_kind_name(h->kind),
                          kiln_ann_metric_name(h->metric), (long long)set->shards.rows[s], h->dim,
                          (long long)set->shards.first_row[s]);
    return KILN_OK;
}

/* A manifest: its attributes and table, then the shards of this group. */
static kiln_status open_sharded(ann_set *set, hid_t f, int group, int groups)
{
    KILN_CHECK(kiln_ann_index_read_attrs(f, set->path, &set->head));
    KILN_CHECK(read_shard_table(f, set->path, &set->head, &set->shards));
    int n = (set->shards.n - group + groups - 1) / groups;
    set->held = calloc((size_t)n + 1, sizeof *set->held);
    KILN_CHECK_ALLOC(set->held);
    for (int s = group; s < set->shards.n; s += groups) {
        KILN_CHECK(open_shard(set, s, &set->held[set->n_held]));
        set->n_held++;
    }
    /* what the shards share that a search or an evaluation asks of "the index" */
    const ann_index *first = &set->held[0];
    set->head.hnsw_m = first->hnsw_m, set->head.ef_construction = first->ef_construction;
    set->head.pq_m = first->pq_m;
    return KILN_OK;
}

kiln_status kiln_ann_set_open(const char *arg, const kiln_registry_config *reg, int group, int groups,
                              ann_set *set)
{
    memset(set, 0, sizeof *set);
    KILN_CHECK(kiln_registry_locate(kiln_registry_root(reg->path), arg, set->path, sizeof set->path, NULL));
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(set->path, "index", KILN_ERR_DATA, &f));
    int sharded = kiln_h5_has_attr(f, "shards");
    kiln_status st = sharded ? open_sharded(set, f, group, groups) : KILN_OK;
    H5Fclose(f);
    if (st != KILN_OK || sharded) return st;
    KILN_CHECK(kiln_ann_index_read(set->path, &set->head));
    set->held = &set->head;
    set->n_held = 1;
    return KILN_OK;
}

kiln_status kiln_ann_set_count_shards(const char *arg, const kiln_registry_config *reg, int *shards)
{
    char path[PATH_MAX];
    KILN_CHECK(kiln_registry_locate(kiln_registry_root(reg->path), arg, path, sizeof path, NULL));
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(path, "index", KILN_ERR_DATA, &f));
    int64_t n = 1;
    kiln_status st = kiln_h5_has_attr(f, "shards") ? kiln_h5_read_attr_i64(f, "shards", &n) : KILN_OK;
    H5Fclose(f);
    KILN_CHECK(st);
    if (n < 1 || n > MAX_SHARDS)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s' has attribute shards %lld; expected 1..%d", path, (long long)n,
                          MAX_SHARDS);
    *shards = (int)n;
    return KILN_OK;
}

void kiln_ann_set_scratch_free(ann_set *set)
{
    for (int h = 0; set->scratch && h < set->n_held; h++) {
        for (int t = 0; set->scratch[h] && t < set->threads; t++) kiln_ann_scratch_free(set->scratch[h][t]);
        free(set->scratch[h]);
    }
    free(set->scratch);
    set->scratch = NULL;
}

void kiln_ann_set_free(ann_set *set)
{
    kiln_ann_set_scratch_free(set);
    if (set->held != &set->head) {
        for (int h = 0; set->held && h < set->n_held; h++) kiln_ann_index_free(&set->held[h]);
        free(set->held);
    }
    kiln_ann_index_free(&set->head);
    kiln_ann_shards_free(&set->shards);
    memset(set, 0, sizeof *set);
}

kiln_status kiln_ann_set_scratch(ann_set *set, int threads, int k, int beam)
{
    set->threads = threads;
    set->scratch = calloc((size_t)set->n_held, sizeof *set->scratch);
    KILN_CHECK_ALLOC(set->scratch);
    for (int h = 0; h < set->n_held; h++)
        KILN_CHECK(kiln_ann_threads_scratch(&set->held[h], threads, k, beam, &set->scratch[h]));
    return KILN_OK;
}

kiln_status kiln_ann_set_search(const kiln_backend *be, const ann_set *set, const ann_search_opts *so,
                                const float *q, uint64_t n, int64_t *ids, float *dist)
{
    ann_search_opts o = *so; /* the defaults are the manifest's, not each shard's own */
    if (!o.nprobe) o.nprobe = set->head.nprobe;
    if (!o.ef) o.ef = set->head.ef;
    kiln_ann_search_parallel(be, &set->held[0], &o, q, n, set->threads, set->scratch[0], ids, dist);
    if (set->n_held == 1) return KILN_OK;
    size_t len = (size_t)n * (size_t)o.k;
    int64_t *more_ids = malloc(len * sizeof *more_ids + 1);
    float *more_dist = malloc(len * sizeof *more_dist + 1);
    kiln_status st = more_ids && more_dist ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "shard results");
    for (int h = 1; st == KILN_OK && h < set->n_held; h++) {
        kiln_ann_search_parallel(be, &set->held[h], &o, q, n, set->threads, set->scratch[h], more_ids, more_dist);
        st = kiln_ann_merge_results(set->head.metric, o.k, n, ids, dist, more_ids, more_dist);
    }
    free(more_ids), free(more_dist);
    return st;
}

/* The manifest rewritten with a new search default, atomically. */
static kiln_status manifest_set_default(const char *path, int knob)
{
    ann_set set = {0};
    snprintf(set.path, sizeof set.path, "%s", path);
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(path, "index", KILN_ERR_DATA, &f));
    kiln_status st = kiln_ann_index_read_attrs(f, path, &set.head);
    if (st == KILN_OK) st = read_shard_table(f, path, &set.head, &set.shards);
    H5Fclose(f);
    if (st == KILN_OK) {
        if (set.head.kind == ANN_HNSW) set.head.ef = knob;
        else set.head.nprobe = knob;
        st = kiln_ann_manifest_write(path, &set.head, &set.shards);
    }
    kiln_ann_set_free(&set);
    return st;
}

kiln_status kiln_ann_set_store_default(const ann_set *set, int knob)
{
    return set->shards.n ? manifest_set_default(set->path, knob) : kiln_ann_index_set_default(set->path, knob);
}

kiln_status kiln_index_verify(const char *path)
{
    kiln_registry_config none = {0};
    ann_set set;
    kiln_status st = kiln_ann_set_open(path, &none, 0, 1, &set);
    kiln_ann_set_free(&set);
    return st;
}
