/* The parts of `kiln index`, one concern per file:
 *   vectors.c      an input: FILE.h5:/path, float32 or uint8 [N, D], read by row ranges
 *   kmeans.c       k-means on the backend's GEMM, distributed, the same on any rank count
 *   topk.c         the k best of a stream of (distance, id)
 *   index_file.c   the index file: its HDF5 layout, written whole, read and verified
 *   build.c        `kiln index build` of one index file: train, assign, write
 *   build_shards.c `kiln index build`: one index, or shards built by rank groups and a manifest
 *   index_set.c    an index as searched: one file, or a manifest's shards, their top k merged
 *   search.c       the search kernels: flat (GEMM) and IVF (coarse GEMM, lists by GEMM)
 *   hnsw.c         the HNSW graph: seeded levels, threaded insertion, beam search
 *   pq.c           product quantization of IVF residuals: training, codes, table distances
 *   search_job.c   `kiln index search`: queries in chunks, exactly once (kiln/chunked.h)
 *   eval.c         `kiln index eval`: ground truth, recall and speed over settings
 *   index_config.c the schemas; index_job.c the job-table entries */
#ifndef KILN_ANN_INTERNAL_H
#define KILN_ANN_INTERNAL_H
#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include "kiln/ann.h"
#include "kiln/backend.h"
#include "kiln/comm.h"
#include "kiln/registry.h"
#include "kiln/stage.h"
#include "kiln/topo.h"

/* ---- the commands ---- */

typedef struct kiln_index_build_opts {
    const kiln_index_config *cfg;
    const char *config_yaml;           /* stored in the index */
    const char *input;                 /* FILE.h5:/path */
    const char *output;
    kiln_comm *comm;
    const kiln_backend *be;
    kiln_rank_setup place;
} kiln_index_build_opts;

kiln_status kiln_index_build(const kiln_index_build_opts *o);
/* The index of input rows [first, first + rows) (rows 0: all of them), built by comm's ranks
 * into output (build.c); kiln_index_build makes one, or the shards and their manifest. */
kiln_status kiln_ann_build_range(const kiln_index_build_opts *o, kiln_comm *comm, uint64_t first, uint64_t rows,
                                 const char *output);

typedef struct kiln_index_search_opts {
    const kiln_index_config *cfg;
    const char *config_yaml;
    const char *index;                 /* a file, or registry:NAME@ALIAS */
    const char *queries;               /* FILE.h5:/path */
    const char *output;                /* search: OUT.h5; eval: RESULT.json ("" = none) */
    const char *plot;                  /* eval: an SVG of recall against queries/s ("" = none) */
    kiln_comm *comm;
    const kiln_backend *be;
    kiln_rank_setup place;
} kiln_index_search_opts;

kiln_status kiln_index_search(const kiln_index_search_opts *o);
kiln_status kiln_index_eval(const kiln_index_search_opts *o);

/* ---- inputs (vectors.c) ---- */

typedef struct ann_vectors {
    char spec[PATH_MAX + 256];         /* as given: FILE.h5:/path */
    char file[PATH_MAX], path[256];
    hid_t fid, dset;
    int is_u8;                         /* uint8 rows (pixels): read as their values, 0..255 */
    uint64_t rows;                     /* of the window read (all of them unless windowed) */
    uint64_t base, total_rows;         /* the window's first row; the dataset's rows */
    int dim;
} ann_vectors;

/* Opens FILE.h5:/path (what names it in errors: "--input"); checks a 2-D float32 or uint8
 * dataset with N > 0 rows. */
kiln_status kiln_ann_vectors_open(const char *spec, const char *what, ann_vectors *v);
/* From now on v reads rows [first, first + rows) of the dataset as its rows 0..rows (a shard's
 * part of the input); errors still name the dataset's own row numbers. */
kiln_status kiln_ann_vectors_window(ann_vectors *v, uint64_t first, uint64_t rows);
/* Rows [first, first + n) as float32 into out (n x dim); a NaN or infinity is an error that
 * names the file, the dataset and the row. *crc (may be NULL) is updated with the raw bytes. */
kiln_status kiln_ann_vectors_read(const ann_vectors *v, uint64_t first, uint64_t n, float *out,
                                  uint32_t *crc);
void kiln_ann_vectors_close(ann_vectors *v);
/* The crc32 of the whole dataset's bytes (row order), read in blocks. */
kiln_status kiln_ann_vectors_crc(const ann_vectors *v, uint32_t *crc);

/* ---- metrics ---- */

typedef enum { ANN_L2 = 0, ANN_IP, ANN_COSINE } ann_metric;
typedef enum { ANN_FLAT = 0, ANN_IVF_FLAT, ANN_IVF_PQ, ANN_HNSW } ann_kind;

const char *kiln_ann_metric_name(ann_metric m);
const char *kiln_ann_kind_name(ann_kind k);
int kiln_ann_metric_parse(const char *s, ann_metric *m);
int kiln_ann_kind_parse(const char *s, ann_kind *k);
/* Cosine works on unit vectors: rows scaled to norm 1 (a zero row stays zero). */
void kiln_ann_normalize(float *x, uint64_t n, int dim);
/* out[i] = ||x_i||^2 for the n rows of x (the L2 distances' GEMM form needs them). */
void kiln_ann_squared_norms(const float *x, uint64_t n, int dim, float *out);

/* ---- k-means (kmeans.c) ---- */

/* Sample rows are processed in blocks of ANN_BLOCK from the sample's start: a rank's share of
 * a sample starts at a multiple of it, so that every rank count cuts the same blocks. */
#define ANN_BLOCK 1024

typedef struct ann_kmeans_opts {
    int k, iters;
    uint64_t seed;
    int plus_plus;                     /* k-means++ init, else k distinct random sample rows */
    const kiln_backend *be;
    kiln_comm *comm;                   /* the ranks holding the sample (NULL: one process) */
    int threads;
    int start_iter;                    /* > 0: centroids holds the result of that many iterations */
    /* called on every rank after each iteration (may be NULL): a build saves its progress */
    kiln_status (*after_iter)(void *ctx, int iter, const float *centroids);
    void *ctx;
} ann_kmeans_opts;

/* k-means of a sample of n_total rows, of which this rank holds rows [first, first + n) in x
 * (n x dim). The rows are summed in 64-bit fixed point (exact, so the sum does not depend on
 * which rank holds which rows) and distances are computed in fixed blocks of sample rows, so
 * 1, 2 or 4 ranks give the same centroids bit for bit. An empty cluster takes half of the
 * largest one (split along its spread). centroids: k x dim, the same on every rank. */
kiln_status kiln_ann_kmeans(const ann_kmeans_opts *o, const float *x, uint64_t first, uint64_t n,
                            uint64_t n_total, int dim, float *centroids, double *objective);

/* For each of n rows of x, the nearest of k centroids (squared L2; cn: the centroids' squared
 * norms), by GEMM in blocks, on the calling thread. Distances to it in dist (may be NULL). */
void kiln_ann_assign(const kiln_backend *be, const float *x, uint64_t n, int dim,
                     const float *centroids, const float *cn, int k, int32_t *label, float *dist,
                     float *scratch);
/* Floats of scratch kiln_ann_assign needs. */
size_t kiln_ann_assign_scratch(int k);

/* ---- the k best (topk.c) ---- */

/* A bounded heap of the k best (smallest distance; for inner products the caller negates). */
typedef struct ann_topk {
    int k, n;
    float *d;
    int64_t *id;
} ann_topk;

void kiln_ann_topk_init(ann_topk *t, int k, float *d, int64_t *id);
/* Offers (dist, id); ties keep the smaller id, so results do not depend on the order offered. */
static inline int kiln_ann_topk_worse(float da, int64_t ia, float db, int64_t ib)
{
    return da > db || (da == db && ia > ib);
}
void kiln_ann_topk_push(ann_topk *t, float dist, int64_t id);
/* The worst kept distance (INFINITY until k are kept): a candidate no better is skipped. */
static inline float kiln_ann_topk_bound(const ann_topk *t) { return t->n < t->k ? __builtin_inff() : t->d[0]; }
/* Sorts the kept ones best first in place; slots past n get id -1 and distance +inf. */
void kiln_ann_topk_sort(ann_topk *t);
/* acc (n rows of k results, best first) merged with more (the same shape) into the k best of
 * both: by distance as reported (smaller for l2, larger for ip and cosine), then smaller id;
 * empty slots (id -1) last. */
kiln_status kiln_ann_merge_results(ann_metric metric, int k, uint64_t n, int64_t *acc_ids, float *acc_dist,
                                   const int64_t *more_ids, const float *more_dist);

typedef struct ann_scratch ann_scratch;

/* ---- the index (index_file.c) ---- */

#define ANN_FORMAT 1

typedef struct ann_index {
    ann_kind kind;
    ann_metric metric;
    int dim;
    int64_t rows;
    int64_t first_row;                 /* a shard: the input row of its row 0 (else 0) */
    float *vectors;                    /* rows x dim; IVF: in list order */
    int64_t *ids;                      /* IVF: the input row of each stored vector; NULL: row
                                          order, stored row r being input row first_row + r */
    float *norms;                      /* squared norms of the stored vectors (made on load) */
    /* IVF */
    int nlist;
    float *centroids;                  /* nlist x dim */
    float *centroid_norms;
    int64_t *offsets;                  /* nlist + 1: list l is [offsets[l], offsets[l + 1]) */
    /* IVF-PQ: vectors is NULL unless pq_refine > 0 */
    int pq_m, pq_refine;
    float *codebooks;                  /* pq_m x 256 x (dim / pq_m) */
    uint8_t *codes;                    /* rows x pq_m, in list order */
    float *pq_terms;                   /* L2: nlist x pq_m x 256 list terms (derived; NULL: per list) */
    /* filtering: integer attributes of the rows, in stored order */
    int n_attrs;
    char (*attr_names)[64];
    int64_t **attrs;
    /* HNSW: the graph, one link list per (node, layer) entry; node i's are node_entry[i] + layer */
    int hnsw_m, ef_construction, max_level;
    int64_t entry_point;
    int32_t *levels;                   /* rows */
    int64_t *node_entry;               /* rows + 1 (derived) */
    int64_t *link_start;               /* entries + 1: the file's hnsw/offsets */
    int32_t *link_count;               /* entries (derived) */
    int32_t *links;                    /* the file's hnsw/neighbors */
    int64_t n_entries, n_links;        /* as read */
    /* defaults for search (set by eval --target-recall): IVF nprobe, HNSW ef */
    int nprobe, ef;
    /* where it came from */
    char input[PATH_MAX + 256];
    uint32_t input_crc;
    char *config;                      /* the build's resolved config */
} ann_index;

/* Writes idx to path whole (atomically: path.tmp, fsync, rename), with a crc32 attribute on
 * every dataset and the layout docs/index.md describes. */
kiln_status kiln_ann_index_write(const char *path, const ann_index *idx);
/* Reads and verifies (every dataset against its crc32, the shapes against each other). */
kiln_status kiln_ann_index_read(const char *path, ann_index *idx);
void kiln_ann_index_free(ann_index *idx);
/* Sets the stored search default (IVF: nprobe; HNSW: ef) in place, keeping everything else. */
kiln_status kiln_ann_index_set_default(const char *path, int knob);

/* The root attributes of an index file (kind ... config), written or read and checked; what
 * a manifest shares with an index file. */
kiln_status kiln_ann_index_write_attrs(hid_t file, const ann_index *idx);
kiln_status kiln_ann_index_read_attrs(hid_t file, const char *path, ann_index *idx);

/* ---- search (search.c) ---- */

typedef struct ann_search_opts {
    int k;
    int nprobe;                        /* IVF lists probed (0: the index's default) */
    int ef;                            /* HNSW beam width (0: the index's default) */
    const int64_t *filter_values;      /* keep rows whose attribute filter_attr is one of these */
    int n_filter_values;
    int filter_attr;                   /* index into idx->attrs, or -1: no filter */
} ann_search_opts;

/* nq queries (nq x dim, already normalised for cosine) against idx: ids (nq x k, -1 where
 * fewer than k rows qualify) and distances (squared L2, or the inner product for ip/cosine).
 * Single-threaded on the calling thread; scratch is per thread (kiln_ann_search_scratch). */
/* k: the most neighbours asked for; beam: the widest HNSW beam (ef) to be searched with. */
kiln_status kiln_ann_scratch_new(const ann_index *idx, int k, int beam, ann_scratch **out);
void kiln_ann_scratch_free(ann_scratch *s);
void kiln_ann_search(const kiln_backend *be, const ann_index *idx, const ann_search_opts *o,
                     const float *queries, int nq, int64_t *ids, float *dist, ann_scratch *s);

/* 1 when stored row r passes the search's filter. */
static inline int kiln_ann_passes(const ann_index *idx, const ann_search_opts *o, int64_t r)
{
    if (o->filter_attr < 0) return 1;
    int64_t v = idx->attrs[o->filter_attr][r];
    for (int i = 0; i < o->n_filter_values; i++)
        if (o->filter_values[i] == v) return 1;
    return 0;
}

/* ---- sharded indexes (index_set.c) ---- */

/* A manifest's table: shard s holds input rows [first_row[s], first_row[s] + rows[s]) in the
 * file STEM.shard-SSSSS-of-NNNNN.h5 beside it, whose crc32 and size are recorded. */
typedef struct ann_shards {
    int n;                             /* 0: not sharded */
    char stem[256];
    int64_t *first_row, *rows, *file_crc, *file_bytes;
} ann_shards;

kiln_status kiln_ann_shards_alloc(ann_shards *sh, int n);
void kiln_ann_shards_free(ann_shards *sh);
/* The stem of a manifest's shards (its file name without .h5), and shard s's path. */
void kiln_ann_shard_stem(const char *manifest, char *stem, size_t len);
void kiln_ann_shard_path(const char *manifest, const char *stem, int shard, int shards, char *out, size_t len);
/* Writes a manifest whole and atomically: head's attributes and the table. */
kiln_status kiln_ann_manifest_write(const char *path, const ann_index *head, const ann_shards *sh);

/* An index as searched: one file, or the shards of a manifest this rank holds. */
typedef struct ann_set {
    char path[PATH_MAX];               /* the index file or the manifest */
    ann_index head;                    /* one file: the index; sharded: the manifest's attributes */
    ann_shards shards;
    ann_index *held;                   /* the indexes searched here (one file: &head) */
    int n_held;
    int threads;
    ann_scratch ***scratch;            /* [held][thread] */
} ann_set;

/* The groups shards are held by on `ranks` ranks: gcd(ranks, shards); rank r is in r % groups. */
int kiln_ann_shard_groups(int ranks, int shards);
/* The shards of --index (1: not sharded), from its file's attributes. */
kiln_status kiln_ann_set_count_shards(const char *arg, const kiln_registry_config *reg, int *shards);
/* Opens --index (a file or registry:NAME@ALIAS), every part verified; a sharded index's shards
 * s with s % groups == group (groups 1: all of them). */
kiln_status kiln_ann_set_open(const char *arg, const kiln_registry_config *reg, int group, int groups,
                              ann_set *set);
void kiln_ann_set_free(ann_set *set);
/* A scratch per thread and index held, for k results and beams up to beam (again: replaced). */
kiln_status kiln_ann_set_scratch(ann_set *set, int threads, int k, int beam);
void kiln_ann_set_scratch_free(ann_set *set);
/* n queries against every index held, their results merged (ids, dist: n x so->k). nprobe or
 * ef 0 in so: the set's stored default. */
kiln_status kiln_ann_set_search(const kiln_backend *be, const ann_set *set, const ann_search_opts *so,
                                const float *q, uint64_t n, int64_t *ids, float *dist);
/* Stores a new search default (nprobe for IVF, ef for HNSW) in the set's file. */
kiln_status kiln_ann_set_store_default(const ann_set *set, int knob);

/* ---- HNSW (hnsw.c) ---- */

/* The level of row i: floor(-ln(u) / ln(m)), u drawn from (seed, i). */
int kiln_ann_hnsw_level(uint64_t seed, int64_t i, int m);
/* How a graph build saves itself and continues: load (after the layout is made) fills
 * link_count, links, entry_point and max_level from an earlier run and returns the rows it had
 * inserted (rows 0..n-1; 0 or 1: none); save is offered the graph every `interval` seconds,
 * between batches of insertions. */
typedef struct ann_hnsw_progress {
    double interval;
    int64_t (*load)(void *ctx, ann_index *idx);
    kiln_status (*save)(void *ctx, const ann_index *idx, int64_t inserted);
    void *ctx;
} ann_hnsw_progress;

/* Builds the graph of idx's vectors (hnsw_m, ef_construction set) on `threads` threads
 * (saver: may be NULL). */
kiln_status kiln_ann_hnsw_build(ann_index *idx, uint64_t seed, int threads, double progress_interval,
                                const ann_hnsw_progress *saver);
/* While building: the links the layout has room for; and whether a graph loaded for rows
 * 0..inserted-1 is one a build can go on from (every link to an inserted row of its layer). */
int64_t kiln_ann_hnsw_room(const ann_index *idx);
int kiln_ann_hnsw_check_partial(const ann_index *idx, int64_t inserted);
/* Checks a graph read from a file and derives what searching needs. */
kiln_status kiln_ann_hnsw_derive(ann_index *idx, const char *path);
/* Per-thread state of a graph walk, for beams up to `beam` wide. */
typedef struct ann_walk ann_walk;
kiln_status kiln_ann_walk_new(const ann_index *idx, int beam, ann_walk **out);
void kiln_ann_walk_free(ann_walk *w);
/* One query's k nearest (ids, dist as the output reports them). */
void kiln_ann_hnsw_search(const ann_index *idx, const ann_search_opts *o, const float *q, int k, ann_walk *w,
                          int64_t *ids, float *dist);

/* ---- IVF-PQ (pq.c) ---- */

/* The sub-centroids (m x 256 x dim/m) of the sample's residuals, part by part, by k-means with
 * base's options (threads, comm, seed, iterations). The rank holds sample rows [first, first+n). */
kiln_status kiln_ann_pq_train(const ann_kmeans_opts *base, const float *residuals, uint64_t first, uint64_t n,
                              uint64_t n_total, int dim, int m, float *codebooks);
/* codes (n x m) of n residuals: the nearest sub-centroid of each part. */
kiln_status kiln_ann_pq_encode(const kiln_backend *be, const float *codebooks, int dim, int m, const float *residuals,
                               uint64_t n, uint8_t *codes);
/* After reading: the list terms of the L2 tables, when they fit. */
kiln_status kiln_ann_pq_derive(ann_index *idx);
/* Floats of scratch kiln_ann_pq_scan needs. */
size_t kiln_ann_pq_scratch_floats(const ann_index *idx);
/* One query's probed lists (their ids and coarse distances as ranked) scanned by tables into top
 * (stored positions, distances as ranked: without ||q||^2 for L2, negated for inner products). */
void kiln_ann_pq_scan(const ann_index *idx, const ann_search_opts *o, const float *q, const int32_t *probes,
                      const float *probe_d, int nprobe, ann_topk *top, float *scratch);

/* ---- shared by search and eval (search_job.c) ---- */

/* The index a --index argument names (a file or registry:NAME@ALIAS), read and verified. */
kiln_status kiln_ann_open_index(const char *arg, const kiln_registry_config *reg, char *path,
                                size_t len, ann_index *idx);
/* search.filter (NAME=V1,V2,...) against idx's attributes into so (values: max of them). */
kiln_status kiln_ann_parse_filter(const char *spec, const ann_index *idx, int64_t *values, int max,
                                  ann_search_opts *so);
/* Queries of the index's width, k within its rows, nprobe within its lists (IVF only), ef for
 * HNSW only (0: not given). */
kiln_status kiln_ann_check_queries(const ann_index *idx, const ann_vectors *q, int k, int nprobe, int ef);
/* A scratch per thread, and n queries searched in fixed batches over the threads. */
kiln_status kiln_ann_threads_scratch(const ann_index *idx, int threads, int k, int beam, ann_scratch ***out);
void kiln_ann_search_parallel(const kiln_backend *be, const ann_index *idx, const ann_search_opts *so,
                              const float *q, uint64_t n, int threads, ann_scratch **scratch,
                              int64_t *ids, float *dist);

#endif
