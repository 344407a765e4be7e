/* `kiln index eval`: how good and how fast an index is on a set of queries.
 *
 * The ground truth is an exact search (the flat kernel) over the index's own stored vectors,
 * 100 neighbours deep, cached in .kiln-cache/ under a name made of the vectors' identity (the
 * input's crc32, the metric) and the queries' (path, crc32): flat and IVF indexes of the same
 * input share it. For each setting (every nprobe of eval.nprobes up to nlist, every ef of eval.efs; a flat index has
 * one) the queries are searched eval.rounds times on this rank's threads, the fastest pass
 * giving queries/s, and recall@1, @k and @100 are measured (the share of the true r nearest
 * among the r returned, as ann-benchmarks counts it). eval.target_recall picks the cheapest
 * setting whose recall@k reaches it and stores it as the index's default (a file is rewritten
 * atomically). Results: a table, --output JSON, --plot SVG (recall against queries/s), and,
 * with registry.name, the index registered (kind index) with those figures as its metrics.
 * Runs on world rank 0; other ranks wait. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "ann_internal.h"

enum { GT_K = 100, MAX_SETTINGS = KILN_CFG_LIST_MAX };

typedef struct setting {
    int knob;                          /* nprobe (IVF) or ef (HNSW) */
    double qps, r1, rk, r100;
} setting;

typedef struct evaluation {
    const kiln_index_search_opts *o;
    const kiln_index_config *c;
    ann_set set;                       /* every shard, when sharded */
    ann_index idx;                     /* set.head: what "the index" is */
    ann_vectors q;
    float *queries;
    uint32_t queries_crc;
    int64_t *gt;                       /* nq x gt_k */
    int gt_k;
    int threads;
    setting s[MAX_SETTINGS];
    int n;
} evaluation;

/* ---- ground truth ---- */

static void cache_path(const evaluation *e, char *path, size_t len)
{
    /* The key chains the CRC over each part, so no part's length is bounded by a buffer. */
    char nums[96];
    snprintf(nums, sizeof nums, "|%08x|%s|%08x|%d", e->idx.input_crc,
             kiln_ann_metric_name(e->idx.metric), e->queries_crc, e->gt_k);
    uint32_t crc = kiln_crc32(0, e->idx.input, strlen(e->idx.input));
    crc = kiln_crc32(crc, nums, strlen(nums));
    crc = kiln_crc32(crc, e->q.spec, strlen(e->q.spec));
    snprintf(path, len, ".kiln-cache/groundtruth-%08x.h5", crc);
}

static kiln_status gt_load(const evaluation *e, const char *path, int *found)
{
    *found = 0;
    if (!kiln_path_exists(path)) return KILN_OK;
    hid_t f, d;
    if (kiln_h5_open_file(path, "ground truth", KILN_ERR_DATA, &f) != KILN_OK) {
        kiln_error_clear();
        return KILN_OK; /* a damaged cache is made again */
    }
    uint64_t shape[2] = {e->q.rows, (uint64_t)e->gt_k};
    kiln_status st = kiln_h5_open_dataset(f, "ids", H5T_NATIVE_INT64, 2, shape, &d);
    uint64_t crc = 0;
    if (st == KILN_OK) {
        if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->gt) >= 0 &&
            kiln_h5_read_attr_u64(d, "crc32", &crc) == KILN_OK &&
            kiln_crc32(0, e->gt, (size_t)e->q.rows * (size_t)e->gt_k * sizeof *e->gt) == (uint32_t)crc)
            *found = 1;
        H5Dclose(d);
    }
    H5Fclose(f);
    kiln_error_clear();
    return KILN_OK;
}

static kiln_status gt_fill(hid_t file, void *ctx)
{
    const evaluation *e = ctx;
    uint64_t shape[2] = {e->q.rows, (uint64_t)e->gt_k};
    KILN_CHECK(kiln_h5_write_dataset(file, "ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, shape, e->gt));
    hid_t d = H5Dopen2(file, "ids", H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "ground truth");
    kiln_status st = kiln_h5_write_attr_u64(d, "crc32", kiln_crc32(0, e->gt, (size_t)e->q.rows * (size_t)e->gt_k * sizeof *e->gt));
    H5Dclose(d);
    return st;
}

/* The rows an index was built from, read from its input and checked against its crc32 (an
 * index without vectors, IVF-PQ, is measured against them). */
static kiln_status base_vectors(const evaluation *e, float **rows, float **norms)
{
    ann_vectors in = {.fid = H5I_INVALID_HID, .dset = H5I_INVALID_HID};
    KILN_CHECK(kiln_ann_vectors_open(e->idx.input, "the index's input", &in));
    kiln_status st = KILN_OK;
    if ((int64_t)in.rows != e->idx.rows || in.dim != e->idx.dim)
        st = KILN_ERROR(KILN_ERR_DATA, "the index's input %s is now %llu x %d; the index holds %lld x %d", in.spec,
                        (unsigned long long)in.rows, in.dim, (long long)e->idx.rows, e->idx.dim);
    *rows = st == KILN_OK ? malloc(in.rows * (size_t)in.dim * sizeof **rows) : NULL;
    *norms = st == KILN_OK ? malloc(in.rows * sizeof **norms) : NULL;
    if (st == KILN_OK && (!*rows || !*norms)) st = KILN_ERROR(KILN_ERR_NOMEM, "the index's input rows");
    uint32_t crc = 0;
    if (st == KILN_OK) st = kiln_ann_vectors_read(&in, 0, in.rows, *rows, &crc);
    if (st == KILN_OK && crc != e->idx.input_crc)
        st = KILN_ERROR(KILN_ERR_DATA, "the index's input %s has changed since the build (crc32 %08x, the index "
                        "was built from %08x): the exact answer needs the rows it was built from", in.spec, crc,
                        e->idx.input_crc);
    if (st == KILN_OK && e->idx.metric == ANN_COSINE) kiln_ann_normalize(*rows, in.rows, in.dim);
    if (st == KILN_OK) kiln_ann_squared_norms(*rows, in.rows, in.dim, *norms);
    kiln_ann_vectors_close(&in);
    return st;
}

static kiln_status ground_truth(evaluation *e)
{
    char path[PATH_MAX];
    cache_path(e, path, sizeof path);
    int found;
    KILN_CHECK(gt_load(e, path, &found));
    if (found) {
        kiln_info("index eval: ground truth from %s", path);
        return KILN_OK;
    }
    double t0 = kiln_time_s();
    /* the same vectors, searched exhaustively */
    ann_index flat = {.kind = ANN_FLAT, .metric = e->idx.metric, .dim = e->idx.dim, .rows = e->idx.rows,
                      .vectors = e->idx.vectors, .norms = e->idx.norms, .ids = e->idx.ids,
                      .first_row = e->idx.first_row};
    float *input = NULL, *norms = NULL;
    if (!e->idx.vectors) { /* IVF-PQ keeps codes only: the input it was built from, checked */
        KILN_CHECK(base_vectors(e, &input, &norms));
        flat.vectors = input, flat.norms = norms, flat.ids = NULL;
    }
    ann_search_opts so = {.k = e->gt_k, .filter_attr = -1};
    ann_scratch **scratch;
    KILN_CHECK(kiln_ann_threads_scratch(&flat, e->threads, e->gt_k, 0, &scratch));
    float *dist = malloc((size_t)e->q.rows * (size_t)e->gt_k * sizeof *dist);
    kiln_status st = dist ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "ground truth");
    if (st == KILN_OK)
        kiln_ann_search_parallel(e->o->be, &flat, &so, e->queries, e->q.rows, e->threads, scratch, e->gt, dist);
    for (int t = 0; t < e->threads; t++) kiln_ann_scratch_free(scratch[t]);
    free(scratch), free(dist), free(input), free(norms);
    KILN_CHECK(st);
    kiln_info("index eval: exact ground truth (%d deep) in %.2f s, cached in %s", e->gt_k, kiln_time_s() - t0, path);
    KILN_CHECK(kiln_mkdir_p(".kiln-cache"));
    return kiln_h5_write_file_atomic(path, gt_fill, e);
}

/* ---- settings: the one knob of each kind ---- */

static const char *knob_name(const evaluation *e) { return e->idx.kind == ANN_HNSW ? "ef" : "nprobe"; }
static int stored_knob(const evaluation *e) { return e->idx.kind == ANN_HNSW ? e->idx.ef : e->idx.nprobe; }

/* The settings measured: eval.nprobes within the lists (IVF), eval.efs (HNSW), one (flat). */
static kiln_status pick_settings(evaluation *e)
{
    const kiln_index_config *c = e->c;
    if (e->idx.kind == ANN_FLAT) {
        e->s[e->n++].knob = 0;
        return KILN_OK;
    }
    const kiln_cfg_int_list *list = e->idx.kind == ANN_HNSW ? &c->evaluate.efs : &c->evaluate.nprobes;
    int most = e->idx.kind == ANN_HNSW ? 100000 : e->idx.nlist;
    for (int i = 0; i < list->n; i++)
        if (list->v[i] >= 1 && list->v[i] <= most) e->s[e->n++].knob = list->v[i];
    if (!e->n)
        return KILN_ERROR(KILN_ERR_CONFIG, "eval.%ss: none of the settings is within 1..%d", knob_name(e), most);
    return KILN_OK;
}

/* ---- measuring ---- */

/* The share of the true r nearest found among the r returned, over all queries. */
static double recall(const evaluation *e, const int64_t *ids, int k, int r)
{
    if (r > k || r > e->gt_k) return NAN;
    uint64_t hit = 0;
    for (uint64_t i = 0; i < e->q.rows; i++) {
        const int64_t *got = ids + i * (uint64_t)k, *truth = e->gt + i * (uint64_t)e->gt_k;
        for (int a = 0; a < r; a++)
            for (int b = 0; b < r; b++)
                if (got[a] == truth[b] && got[a] >= 0) {
                    hit++;
                    break;
                }
    }
    return (double)hit / ((double)e->q.rows * r);
}

static kiln_status measure(evaluation *e, setting *s)
{
    int k = e->c->search.k;
    int deep = e->gt_k >= 100 ? 100 : k;
    int hnsw = e->idx.kind == ANN_HNSW;
    ann_search_opts so = {.k = k, .nprobe = hnsw ? 0 : s->knob, .ef = hnsw ? s->knob : 0, .filter_attr = -1};
    kiln_ann_set_scratch_free(&e->set);
    KILN_CHECK(kiln_ann_set_scratch(&e->set, e->threads, deep > k ? deep : k, so.ef));
    size_t n = (size_t)e->q.rows * (size_t)(deep > k ? deep : k);
    int64_t *ids = malloc(n * sizeof *ids);
    float *dist = malloc(n * sizeof *dist);
    kiln_status st = ids && dist ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "eval results");
    double best = INFINITY;
    for (int r = 0; st == KILN_OK && r < e->c->evaluate.rounds; r++) {
        double t0 = kiln_time_s();
        st = kiln_ann_set_search(e->o->be, &e->set, &so, e->queries, e->q.rows, ids, dist);
        best = fmin(best, kiln_time_s() - t0);
    }
    if (st == KILN_OK) {
        s->qps = (double)e->q.rows / best;
        s->r1 = recall(e, ids, k, 1);
        s->rk = recall(e, ids, k, k);
        if (deep > k) { /* recall@100, untimed */
            so.k = deep;
            st = kiln_ann_set_search(e->o->be, &e->set, &so, e->queries, e->q.rows, ids, dist);
            s->r100 = recall(e, ids, deep, 100);
        } else {
            s->r100 = k >= 100 ? recall(e, ids, k, 100) : NAN;
        }
    }
    free(ids), free(dist);
    return st;
}

/* ---- results ---- */

static kiln_status write_json(const evaluation *e, int chosen)
{
    json_t *rows = json_array();
    for (int i = 0; i < e->n; i++)
        json_array_append_new(rows, json_pack("{s:i, s:f, s:f, s:f, s:o}", knob_name(e), e->s[i].knob, "qps",
                                              e->s[i].qps, "recall_at_1", e->s[i].r1, "recall_at_k", e->s[i].rk,
                                              "recall_at_100", isnan(e->s[i].r100) ? json_null() : json_real(e->s[i].r100)));
    char default_key[32];
    snprintf(default_key, sizeof default_key, "default_%s", knob_name(e));
    json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:i, s:o, s:i}", "index", e->set.path, "kind",
                            kiln_ann_kind_name(e->idx.kind), "metric", kiln_ann_metric_name(e->idx.metric), "k",
                            e->c->search.k, "queries", (json_int_t)e->q.rows, "rows", (json_int_t)e->idx.rows,
                            "threads", e->threads, "settings", rows, default_key,
                            chosen >= 0 ? e->s[chosen].knob : stored_knob(e));
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(doc);
    KILN_CHECK_ALLOC(text);
    size_t len = strlen(text);
    text[len] = '\n';
    kiln_status st = kiln_write_file_atomic(e->o->output, text, len + 1);
    free(text);
    return st;
}

/* Recall@k against queries/s, one point per setting, log x. */
static kiln_status write_plot(const evaluation *e)
{
    char *svg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&svg, &len);
    KILN_CHECK_ALLOC(f);
    enum { W = 640, H = 400, L = 70, R = 20, T = 40, B = 50 };
    double x0 = INFINITY, x1 = 0, y0 = 1, y1 = 0;
    for (int i = 0; i < e->n; i++) {
        x0 = fmin(x0, e->s[i].qps), x1 = fmax(x1, e->s[i].qps);
        y0 = fmin(y0, e->s[i].rk), y1 = fmax(y1, e->s[i].rk);
    }
    x0 = pow(10, floor(log10(x0))), x1 = pow(10, ceil(log10(x1)));
    y0 = fmax(0.0, floor(y0 * 10) / 10), y1 = 1.0;
    if (y1 - y0 < 0.05) y0 = y1 - 0.05;
#define PX(x) (L + (log10(x) - log10(x0)) / (log10(x1) - log10(x0) + 1e-12) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif' font-size='12'>"
               "<rect width='100%%' height='100%%' fill='white'/>"
               "<text x='%d' y='22' font-weight='bold'>%s (%s, k=%d): recall@%d against queries/s</text>",
            W, H, L, kiln_ann_kind_name(e->idx.kind), kiln_ann_metric_name(e->idx.metric), e->c->search.k, e->c->search.k);
    for (double x = x0; x <= x1 * 1.0001; x *= 10)
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#eee'/><text x='%.1f' y='%d' text-anchor='middle'>%g</text>",
                PX(x), T, PX(x), H - B, PX(x), H - B + 16, x);
    for (int i = 0; i <= 5; i++) {
        double y = y0 + (y1 - y0) * i / 5.0;
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/><text x='%d' y='%.1f' text-anchor='end'>%.3f</text>",
                L, PY(y), W - R, PY(y), L - 6, PY(y) + 4, y);
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>queries/s (log)</text>"
               "<text x='16' y='%d' transform='rotate(-90 16 %d)' text-anchor='middle'>recall@%d</text><polyline fill='none' stroke='#4c72b0' stroke-width='2' points='",
            (L + W - R) / 2, H - 10, (T + H - B) / 2, (T + H - B) / 2, e->c->search.k);
    for (int i = 0; i < e->n; i++) fprintf(f, "%.1f,%.1f ", PX(e->s[i].qps), PY(e->s[i].rk));
    fprintf(f, "'/>");
    for (int i = 0; i < e->n; i++)
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='#4c72b0'/><text x='%.1f' y='%.1f' font-size='10'>%s %d</text>",
                PX(e->s[i].qps), PY(e->s[i].rk), PX(e->s[i].qps) + 6, PY(e->s[i].rk) - 6,
                e->idx.kind == ANN_FLAT ? "" : knob_name(e), e->s[i].knob);
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    fclose(f);
    KILN_CHECK_ALLOC(svg);
    kiln_status st = kiln_write_file_atomic(e->o->plot, svg, len);
    free(svg);
    return st;
}

/* Where the index's input came from, when `kiln infer` wrote it: the model (its URI as given,
 * its id and registry version) from the output's attributes; nothing otherwise. */
static json_t *input_lineage(const evaluation *e)
{
    char file[PATH_MAX + 256];
    snprintf(file, sizeof file, "%s", e->idx.input);
    char *colon = strstr(file, ":/");
    if (colon) *colon = '\0';
    hid_t f;
    if (kiln_h5_open_file(file, "the index's input", KILN_ERR_DATA, &f) != KILN_OK) {
        kiln_error_clear();
        return json_null();
    }
    char model[PATH_MAX] = "", model_id[256] = "";
    int64_t version = 0;
    json_t *out = json_null();
    if (kiln_h5_has_attr(f, "model_id") && kiln_h5_read_attr_str(f, "model", model, sizeof model) == KILN_OK &&
        kiln_h5_read_attr_str(f, "model_id", model_id, sizeof model_id) == KILN_OK &&
        kiln_h5_read_attr_i64(f, "model_version", &version) == KILN_OK)
        out = json_pack("{s:s, s:s, s:I}", "uri", model, "id", model_id, "version", (json_int_t)version);
    kiln_error_clear();
    H5Fclose(f);
    return out ? out : json_null();
}

static kiln_status register_index(const evaluation *e, int chosen)
{
    const kiln_registry_config *r = &e->c->registry;
    const setting *s = &e->s[chosen >= 0 ? chosen : 0];
    for (int i = 0; chosen < 0 && i < e->n; i++)
        if (e->s[i].knob == stored_knob(e)) s = &e->s[i];
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", e->idx.input_crc);
    json_t *fields = json_pack("{s:{s:f, s:f, s:f, s:i, s:i}, s:{s:s, s:s, s:s, s:o}, s:{s:s, s:s, s:i, s:i, s:i, s:i}}",
                               "metrics", "recall_at_k", s->rk, "recall_at_1", s->r1, "qps", s->qps, "k",
                               e->c->search.k, "threads", e->threads, "lineage", "input", e->idx.input,
                               "input_crc32", crc, "queries", e->q.spec, "model", input_lineage(e), "params", "kind",
                               kiln_ann_kind_name(e->idx.kind), "metric", kiln_ann_metric_name(e->idx.metric),
                               "nlist", e->idx.nlist, "m", e->idx.hnsw_m, "ef_construction", e->idx.ef_construction,
                               knob_name(e), s->knob);
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(fields);
    KILN_CHECK_ALLOC(text);
    /* the file, and a sharded index's shards under their own names (the manifest finds them) */
    int n = 1 + e->set.shards.n;
    kiln_registry_artifact *a = calloc((size_t)n, sizeof *a);
    char (*paths)[PATH_MAX + 64] = calloc((size_t)n, sizeof *paths);
    kiln_status st = a && paths ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "artifacts of %d shards", n - 1);
    if (st == KILN_OK) a[0] = (kiln_registry_artifact){e->set.path, "index.h5", "index", 0};
    for (int sh = 0; st == KILN_OK && sh < e->set.shards.n; sh++) {
        kiln_ann_shard_path(e->set.path, e->set.shards.stem, sh, e->set.shards.n, paths[sh], sizeof paths[sh]);
        a[1 + sh] = (kiln_registry_artifact){paths[sh], NULL, "index-shard", 0};
    }
    int64_t version = 0;
    const char *root = kiln_registry_root(r->path);
    if (st == KILN_OK) st = kiln_registry_register(root, r->name, a, n, text, &version);
    free(text), free(a), free(paths);
    if (st == KILN_OK && r->alias[0]) st = kiln_registry_set_alias(root, r->name, r->alias, version);
    if (st == KILN_OK)
        printf("registered: %s%s/%" PRId64 " (index, recall@%d %.4f at %.0f queries/s)\n",
               KILN_REGISTRY_URI_PREFIX, r->name, version, e->c->search.k, s->rk, s->qps);
    return st;
}

static kiln_status evaluate(evaluation *e)
{
    const kiln_index_config *c = e->c;
    KILN_CHECK(kiln_ann_set_open(e->o->index, &c->registry, 0, 1, &e->set));
    e->idx = e->set.head; /* a copy of the scalars; the set owns the arrays */
    KILN_CHECK(kiln_ann_vectors_open(e->o->queries, "--queries", &e->q));
    KILN_CHECK(kiln_ann_check_queries(&e->idx, &e->q, c->search.k, 0, 0));
    if (c->evaluate.target_recall > 0 && kiln_registry_is_uri(e->o->index))
        return KILN_ERROR(KILN_ERR_CONFIG, "eval.target_recall stores a default in the index file, and "
                          "registered versions do not change: evaluate the file before registering it");
    e->threads = e->o->place.threads > 0 ? e->o->place.threads : omp_get_max_threads();
    e->queries = malloc((size_t)e->q.rows * (size_t)e->q.dim * sizeof *e->queries);
    e->gt_k = e->idx.rows < GT_K ? (int)e->idx.rows : GT_K;
    if (e->gt_k < c->search.k) e->gt_k = c->search.k;
    e->gt = malloc((size_t)e->q.rows * (size_t)e->gt_k * sizeof *e->gt);
    if (!e->queries || !e->gt) return KILN_ERROR(KILN_ERR_NOMEM, "%" PRIu64 " queries", e->q.rows);
    e->queries_crc = 0;
    KILN_CHECK(kiln_ann_vectors_read(&e->q, 0, e->q.rows, e->queries, &e->queries_crc));
    if (e->idx.metric == ANN_COSINE) kiln_ann_normalize(e->queries, e->q.rows, e->q.dim);
    KILN_CHECK(ground_truth(e));
    KILN_CHECK(pick_settings(e));
    printf("%8s %12s %10s %10s %10s\n", knob_name(e), "queries/s", "recall@1", "recall@k", "recall@100");
    for (int i = 0; i < e->n; i++) {
        KILN_CHECK(measure(e, &e->s[i]));
        printf("%8d %12.0f %10.4f %10.4f %10.4f\n", e->s[i].knob, e->s[i].qps, e->s[i].r1, e->s[i].rk, e->s[i].r100);
    }
    int chosen = -1;
    if (c->evaluate.target_recall > 0 && e->idx.kind != ANN_FLAT) {
        for (int i = 0; i < e->n && chosen < 0; i++)
            if (e->s[i].rk >= c->evaluate.target_recall) chosen = i;
        if (chosen < 0)
            return KILN_ERROR(KILN_ERR_DATA, "no setting of eval.%ss reaches recall@%d %.4f (the best: %.4f at "
                              "%s %d): add larger ones, or build a finer index", knob_name(e), c->search.k,
                              c->evaluate.target_recall, e->s[e->n - 1].rk, knob_name(e), e->s[e->n - 1].knob);
        KILN_CHECK(kiln_ann_set_store_default(&e->set, e->s[chosen].knob));
        if (e->idx.kind == ANN_HNSW) e->idx.ef = e->s[chosen].knob;
        else e->idx.nprobe = e->s[chosen].knob;
        printf("default %s of %s: %d (recall@%d %.4f >= %.4f at %.0f queries/s)\n", knob_name(e), e->set.path,
               e->s[chosen].knob, c->search.k, e->s[chosen].rk, c->evaluate.target_recall, e->s[chosen].qps);
    }
    if (e->o->output[0]) KILN_CHECK(write_json(e, chosen));
    if (e->o->plot[0]) KILN_CHECK(write_plot(e));
    if (c->registry.name[0]) KILN_CHECK(register_index(e, chosen));
    return KILN_OK;
}

kiln_status kiln_index_eval(const kiln_index_search_opts *o)
{
    evaluation *e = calloc(1, sizeof *e);
    KILN_CHECK_ALLOC(e);
    e->o = o;
    e->c = o->cfg;
    e->q.fid = e->q.dset = H5I_INVALID_HID;
    kiln_status st = kiln_comm_rank(o->comm, KILN_AXIS_WORLD) == 0 ? evaluate(e) : KILN_OK;
    kiln_ann_set_free(&e->set);
    kiln_ann_vectors_close(&e->q);
    free(e->queries), free(e->gt), free(e);
    return kiln_comm_agree(o->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}
