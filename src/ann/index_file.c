/* The index file: HDF5, written whole and atomically (PATH.tmp, fsync, rename), read whole and
 * verified. The layout (docs/index.md; h5py reads it as it is):
 *   /              attributes: format (1), kind (flat|ivf-flat|ivf-pq|hnsw), metric (l2|ip|cosine),
 *                  dim, rows, nlist, nprobe and ef (the search defaults), input (FILE.h5:/path),
 *                  input_crc32 (of the rows indexed), first_row (the input row of stored row 0
 *                  when the file is a shard of the input, else 0), config (the build's
 *                  resolved config, YAML)
 *   /vectors       float32 [rows, dim]: the stored vectors (unit length for cosine); IVF: in
 *                  list order
 *   /ids           int64 [rows]: IVF only, the input row of each stored vector (flat and HNSW
 *                  store rows in input order: stored row r is input row first_row + r)
 *   /ivf/centroids float32 [nlist, dim]
 *   /ivf/offsets   int64 [nlist + 1]: list l is rows [offsets[l], offsets[l + 1]) of /vectors
 *   /pq/codebooks  float32 [m, 256, dim / m]: IVF-PQ only, the sub-centroids of each part
 *   /pq/codes      uint8 [rows, m]: IVF-PQ only, each stored row's codes (list order);
 *                  /pq attributes m, refine (IVF-PQ keeps /vectors only when refine > 0)
 *   /hnsw/levels   int32 [rows]: HNSW only, the top layer of each row
 *   /hnsw/offsets  int64 [entries + 1], /hnsw/neighbors int32 [offsets[-1]]: the graph as CSR
 *                  over (node, layer) entries, node-major: node i's lists are entries
 *                  sum(levels[:i] + 1) + layer; /hnsw attributes m, ef_construction,
 *                  entry_point, max_level (the root's ef is the search default)
 *   /attributes/NAME  int64 [rows]: integer attributes of the rows for filtering, stored order
 * Every dataset carries crc32, the crc32 of its little-endian bytes; reading checks every one,
 * and the shapes against each other, before anything is searched. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/h5util.h"
#include "ann_internal.h"

static kiln_status write_checked(hid_t file, const char *name, hid_t ftype, hid_t mtype, int ndim,
                                 const uint64_t *shape, const void *data, size_t bytes)
{
    KILN_CHECK(kiln_h5_write_dataset(file, name, ftype, mtype, ndim, shape, data));
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "cannot reopen dataset '%s'", name);
    kiln_status st = kiln_h5_write_attr_u64(d, "crc32", kiln_crc32(0, data, bytes));
    H5Dclose(d);
    return st;
}

static kiln_status write_pq(hid_t file, const ann_index *x)
{
    int dsub = x->dim / x->pq_m;
    uint64_t bshape[3] = {(uint64_t)x->pq_m, 256, (uint64_t)dsub}, cshape[2] = {(uint64_t)x->rows, (uint64_t)x->pq_m};
    KILN_CHECK(write_checked(file, "pq/codebooks", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, bshape, x->codebooks,
                             (size_t)x->pq_m * 256 * (size_t)dsub * sizeof(float)));
    KILN_CHECK(write_checked(file, "pq/codes", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, cshape, x->codes,
                             (size_t)x->rows * (size_t)x->pq_m));
    hid_t g = H5Gopen2(file, "pq", H5P_DEFAULT);
    KILN_H5_CHECK(g, KILN_ERR_HDF5, "cannot open group 'pq'");
    kiln_status st = kiln_h5_write_attr_i64(g, "m", x->pq_m);
    if (st == KILN_OK) st = kiln_h5_write_attr_i64(g, "refine", x->pq_refine);
    H5Gclose(g);
    return st;
}

static kiln_status write_graph(hid_t file, const ann_index *x)
{
    int64_t entries = x->node_entry[x->rows], links = x->link_start[entries];
    uint64_t lshape[1] = {(uint64_t)x->rows}, oshape[1] = {(uint64_t)entries + 1}, nshape[1] = {(uint64_t)links};
    KILN_CHECK(write_checked(file, "hnsw/levels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, lshape, x->levels,
                             (size_t)x->rows * sizeof(int32_t)));
    KILN_CHECK(write_checked(file, "hnsw/offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, oshape, x->link_start,
                             ((size_t)entries + 1) * sizeof(int64_t)));
    KILN_CHECK(write_checked(file, "hnsw/neighbors", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, nshape, x->links,
                             (size_t)links * sizeof(int32_t)));
    hid_t g = H5Gopen2(file, "hnsw", H5P_DEFAULT);
    KILN_H5_CHECK(g, KILN_ERR_HDF5, "cannot open group 'hnsw'");
    kiln_status st = kiln_h5_write_attr_i64(g, "m", x->hnsw_m);
    if (st == KILN_OK) st = kiln_h5_write_attr_i64(g, "ef_construction", x->ef_construction);
    if (st == KILN_OK) st = kiln_h5_write_attr_i64(g, "entry_point", x->entry_point);
    if (st == KILN_OK) st = kiln_h5_write_attr_i64(g, "max_level", x->max_level);
    H5Gclose(g);
    return st;
}

kiln_status kiln_ann_index_write_attrs(hid_t file, const ann_index *x)
{
    KILN_CHECK(kiln_h5_write_attr_i64(file, "format", ANN_FORMAT));
    KILN_CHECK(kiln_h5_write_attr_str(file, "kind", kiln_ann_kind_name(x->kind)));
    KILN_CHECK(kiln_h5_write_attr_str(file, "metric", kiln_ann_metric_name(x->metric)));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "dim", x->dim));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "rows", x->rows));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "nlist", x->nlist));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "nprobe", x->nprobe));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "ef", x->ef));
    KILN_CHECK(kiln_h5_write_attr_str(file, "input", x->input));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "input_crc32", x->input_crc));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "first_row", x->first_row));
    return kiln_h5_write_attr_str(file, "config", x->config ? x->config : "");
}

static kiln_status fill(hid_t file, void *ctx)
{
    const ann_index *x = ctx;
    KILN_CHECK(kiln_ann_index_write_attrs(file, x));
    size_t rd = (size_t)x->rows * (size_t)x->dim;
    uint64_t vshape[2] = {(uint64_t)x->rows, (uint64_t)x->dim}, rshape[1] = {(uint64_t)x->rows};
    if (x->vectors)
        KILN_CHECK(write_checked(file, "vectors", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, vshape, x->vectors,
                                 rd * sizeof(float)));

    if (x->kind == ANN_IVF_PQ) KILN_CHECK(write_pq(file, x));
    if (x->ids)
        KILN_CHECK(write_checked(file, "ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, rshape, x->ids,
                                 (size_t)x->rows * sizeof(int64_t)));
    if (x->nlist) {
        uint64_t cshape[2] = {(uint64_t)x->nlist, (uint64_t)x->dim}, oshape[1] = {(uint64_t)x->nlist + 1};
        KILN_CHECK(write_checked(file, "ivf/centroids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, cshape,
                                 x->centroids, (size_t)x->nlist * (size_t)x->dim * sizeof(float)));
        KILN_CHECK(write_checked(file, "ivf/offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, oshape,
                                 x->offsets, ((size_t)x->nlist + 1) * sizeof(int64_t)));
    }
    if (x->kind == ANN_HNSW) KILN_CHECK(write_graph(file, x));
    for (int a = 0; a < x->n_attrs; a++) {
        char name[128];
        snprintf(name, sizeof name, "attributes/%s", x->attr_names[a]);
        KILN_CHECK(write_checked(file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, rshape, x->attrs[a],
                                 (size_t)x->rows * sizeof(int64_t)));
    }
    return KILN_OK;
}

kiln_status kiln_ann_index_write(const char *path, const ann_index *idx)
{
    return kiln_h5_write_file_atomic(path, fill, (void *)idx);
}

/* ---- reading ---- */

typedef struct reader {
    const char *path;
    hid_t file;
} reader;

/* Reads dataset name (type, shape[ndim]) whole into a new buffer and checks its crc32. */
static kiln_status read_checked(const reader *r, const char *name, hid_t mtype, int ndim,
                                const uint64_t *shape, size_t elem, void **out)
{
    hid_t d;
    KILN_CHECK(kiln_h5_open_dataset(r->file, name, mtype, ndim, shape, &d));
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    void *buf = malloc(count * elem + 1);
    kiln_status st = buf ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "dataset '%s' of '%s'", name, r->path);
    if (st == KILN_OK && count && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "cannot read dataset '%s' of index '%s'", name, r->path);
    uint64_t want = 0;
    if (st == KILN_OK && kiln_h5_read_attr_u64(d, "crc32", &want) != KILN_OK) {
        kiln_error_clear();
        st = KILN_ERROR(KILN_ERR_DATA, "dataset '%s' of index '%s' has no crc32 attribute: not a "
                        "kiln index, or damaged", name, r->path);
    }
    if (st == KILN_OK && kiln_crc32(0, buf, count * elem) != (uint32_t)want)
        st = KILN_ERROR(KILN_ERR_DATA, "dataset '%s' of index '%s' fails its checksum (crc32 "
                        "%08x, stored %08x): the file is damaged; build it again", name, r->path,
                        kiln_crc32(0, buf, count * elem), (uint32_t)want);
    H5Dclose(d);
    if (st != KILN_OK) free(buf);
    else *out = buf;
    return st;
}

kiln_status kiln_ann_index_read_attrs(hid_t file, const char *path, ann_index *idx)
{
    const reader rr = {path, file}, *r = &rr;
    int64_t format = 0, dim = 0, rows = 0, nlist = 0, nprobe = 0, ef = 0;
    char kind[32] = "", metric[32] = "";
    uint64_t crc = 0;
    kiln_status st = kiln_h5_read_attr_i64(r->file, "format", &format);
    if (st != KILN_OK || format != ANN_FORMAT) {
        kiln_error_clear();
        return KILN_ERROR(KILN_ERR_DATA, "'%s' is not a kiln index of format %d (attribute format: "
                          "%lld)", r->path, ANN_FORMAT, (long long)format);
    }
    KILN_CHECK(kiln_h5_read_attr_str(r->file, "kind", kind, sizeof kind));
    KILN_CHECK(kiln_h5_read_attr_str(r->file, "metric", metric, sizeof metric));
    KILN_CHECK(kiln_h5_read_attr_i64(r->file, "dim", &dim));
    KILN_CHECK(kiln_h5_read_attr_i64(r->file, "rows", &rows));
    KILN_CHECK(kiln_h5_read_attr_i64(r->file, "nlist", &nlist));
    KILN_CHECK(kiln_h5_read_attr_i64(r->file, "nprobe", &nprobe));
    KILN_CHECK(kiln_h5_read_attr_i64(r->file, "ef", &ef));
    KILN_CHECK(kiln_h5_read_attr_str(r->file, "input", idx->input, sizeof idx->input));
    KILN_CHECK(kiln_h5_read_attr_u64(r->file, "input_crc32", &crc));
    if (!kiln_ann_kind_parse(kind, &idx->kind) || ef < 0 || ef > 1000000 ||
        !kiln_ann_metric_parse(metric, &idx->metric) || dim < 1 || dim > 65536 || rows < 1 ||
        nlist < 0 || nlist > rows || (idx->kind == ANN_IVF_FLAT || idx->kind == ANN_IVF_PQ) != (nlist > 0) || nprobe < 0 ||
        nprobe > nlist)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s' has attributes kind '%s', metric '%s', dim %lld, "
                          "rows %lld, nlist %lld, nprobe %lld, which do not fit together", r->path,
                          kind, metric, (long long)dim, (long long)rows, (long long)nlist, (long long)nprobe);
    idx->dim = (int)dim;
    idx->rows = rows;
    idx->nlist = (int)nlist;
    idx->nprobe = (int)nprobe;
    idx->ef = (int)ef;
    idx->input_crc = (uint32_t)crc;
    int64_t first_row = 0; /* files written before shards have none: they start at row 0 */
    if (kiln_h5_has_attr(r->file, "first_row")) KILN_CHECK(kiln_h5_read_attr_i64(r->file, "first_row", &first_row));
    if (first_row < 0 || first_row > INT64_MAX - rows)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s' has attribute first_row %lld; expected 0 or more", r->path,
                          (long long)first_row);
    idx->first_row = first_row;
    size_t len = 1 << 20;
    idx->config = calloc(1, len);
    KILN_CHECK_ALLOC(idx->config);
    if (kiln_h5_read_attr_str(r->file, "config", idx->config, len) != KILN_OK) kiln_error_clear();
    return KILN_OK;
}

/* The length of the 1-D dataset name. */
static kiln_status length_of(const reader *r, const char *name, uint64_t *len)
{
    hid_t d = H5Dopen2(r->file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_DATA, "index '%s' has no dataset '%s'", r->path, name);
    int ndim = 0;
    uint64_t shape[KILN_H5_MAX_DIMS];
    kiln_status st = kiln_h5_dataset_shape(d, &ndim, shape);
    H5Dclose(d);
    KILN_CHECK(st);
    if (ndim != 1)
        return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' of index '%s' has %d dimensions, expected 1", name, r->path, ndim);
    *len = shape[0];
    return KILN_OK;
}

static kiln_status read_pq(const reader *r, ann_index *idx)
{
    hid_t g = H5Gopen2(r->file, "pq", H5P_DEFAULT);
    KILN_H5_CHECK(g, KILN_ERR_DATA, "index '%s' is an IVF-PQ index without the group 'pq'", r->path);
    int64_t m = 0, refine = 0;
    kiln_status st = kiln_h5_read_attr_i64(g, "m", &m);
    if (st == KILN_OK) st = kiln_h5_read_attr_i64(g, "refine", &refine);
    H5Gclose(g);
    KILN_CHECK(st);
    if (m < 1 || m > idx->dim || idx->dim % m || refine < 0 || refine > 100000)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': pq attributes m %lld (dim %d) and refine %lld do not fit "
                          "together", r->path, (long long)m, idx->dim, (long long)refine);
    idx->pq_m = (int)m, idx->pq_refine = (int)refine;
    uint64_t bshape[3] = {(uint64_t)m, 256, (uint64_t)(idx->dim / m)}, cshape[2] = {(uint64_t)idx->rows, (uint64_t)m};
    void *buf = NULL;
    KILN_CHECK(read_checked(r, "pq/codebooks", H5T_NATIVE_FLOAT, 3, bshape, sizeof(float), &buf));
    idx->codebooks = buf;
    buf = NULL;
    KILN_CHECK(read_checked(r, "pq/codes", H5T_NATIVE_UINT8, 2, cshape, 1, &buf));
    idx->codes = buf;
    return KILN_OK;
}

static kiln_status read_graph(const reader *r, ann_index *idx)
{
    hid_t g = H5Gopen2(r->file, "hnsw", H5P_DEFAULT);
    KILN_H5_CHECK(g, KILN_ERR_DATA, "index '%s' is an HNSW index without the group 'hnsw'", r->path);
    int64_t m = 0, efc = 0, entry = -1, top = -1;
    kiln_status st = kiln_h5_read_attr_i64(g, "m", &m);
    if (st == KILN_OK) st = kiln_h5_read_attr_i64(g, "ef_construction", &efc);
    if (st == KILN_OK) st = kiln_h5_read_attr_i64(g, "entry_point", &entry);
    if (st == KILN_OK) st = kiln_h5_read_attr_i64(g, "max_level", &top);
    H5Gclose(g);
    KILN_CHECK(st);
    if (m < 2 || m > 256 || efc < 1 || efc > 1000000 || top < 0 || top > 64)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': hnsw attributes m %lld, ef_construction %lld, max_level %lld "
                          "are out of range", r->path, (long long)m, (long long)efc, (long long)top);
    idx->hnsw_m = (int)m, idx->ef_construction = (int)efc, idx->entry_point = entry, idx->max_level = (int)top;
    uint64_t lshape[1] = {(uint64_t)idx->rows}, oshape[1], nshape[1];
    void *buf = NULL;
    KILN_CHECK(read_checked(r, "hnsw/levels", H5T_NATIVE_INT32, 1, lshape, sizeof(int32_t), &buf));
    idx->levels = buf;
    KILN_CHECK(length_of(r, "hnsw/offsets", &oshape[0]));
    KILN_CHECK(length_of(r, "hnsw/neighbors", &nshape[0]));
    if (oshape[0] < 2)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': hnsw/offsets has %llu values", r->path,
                          (unsigned long long)oshape[0]);
    idx->n_entries = (int64_t)oshape[0] - 1, idx->n_links = (int64_t)nshape[0];
    buf = NULL;
    KILN_CHECK(read_checked(r, "hnsw/offsets", H5T_NATIVE_INT64, 1, oshape, sizeof(int64_t), &buf));
    idx->link_start = buf;
    buf = NULL;
    KILN_CHECK(read_checked(r, "hnsw/neighbors", H5T_NATIVE_INT32, 1, nshape, sizeof(int32_t), &buf));
    idx->links = buf;
    return KILN_OK;
}

static kiln_status read_attributes(const reader *r, ann_index *idx)
{
    if (!kiln_h5_exists(r->file, "attributes")) return KILN_OK;
    hid_t g = H5Gopen2(r->file, "attributes", H5P_DEFAULT);
    KILN_H5_CHECK(g, KILN_ERR_DATA, "cannot open group 'attributes' of index '%s'", r->path);
    H5G_info_t info;
    kiln_status st = H5Gget_info(g, &info) < 0 ? KILN_H5_ERROR(KILN_ERR_DATA, "attributes of '%s'", r->path)
                                               : KILN_OK;
    int n = st == KILN_OK ? (int)info.nlinks : 0;
    if (n > 64) st = KILN_ERROR(KILN_ERR_DATA, "index '%s' has %d attributes; at most 64", r->path, n);
    if (st == KILN_OK && n) {
        idx->attr_names = calloc((size_t)n, sizeof *idx->attr_names);
        idx->attrs = calloc((size_t)n, sizeof *idx->attrs);
        if (!idx->attr_names || !idx->attrs) st = KILN_ERROR(KILN_ERR_NOMEM, "index attributes");
    }
    uint64_t shape[1] = {(uint64_t)idx->rows};
    for (int a = 0; a < n && st == KILN_OK; a++) {
        char name[64];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)a, name, sizeof name,
                               H5P_DEFAULT) < 0) {
            st = KILN_H5_ERROR(KILN_ERR_DATA, "attribute %d of index '%s'", a, r->path);
            break;
        }
        char path[128];
        snprintf(path, sizeof path, "attributes/%s", name);
        snprintf(idx->attr_names[a], sizeof idx->attr_names[a], "%s", name);
        void *buf = NULL;
        st = read_checked(r, path, H5T_NATIVE_INT64, 1, shape, sizeof(int64_t), &buf);
        idx->attrs[a] = buf;
        if (st == KILN_OK) idx->n_attrs = a + 1;
    }
    H5Gclose(g);
    return st;
}

/* What searching needs beyond the file: the squared norms; the lists' consistency. */
static kiln_status derive(const reader *r, ann_index *idx)
{
    if (idx->vectors) {
        idx->norms = malloc((size_t)idx->rows * sizeof *idx->norms);
        KILN_CHECK_ALLOC(idx->norms);
        kiln_ann_squared_norms(idx->vectors, (uint64_t)idx->rows, idx->dim, idx->norms);
    }
    if (idx->kind == ANN_HNSW) return kiln_ann_hnsw_derive(idx, r->path);
    if (!idx->nlist) return KILN_OK;
    if (idx->offsets[0] != 0 || idx->offsets[idx->nlist] != idx->rows)
        return KILN_ERROR(KILN_ERR_DATA, "index '%s': ivf/offsets runs from %lld to %lld, expected 0 "
                          "to rows (%lld)", r->path, (long long)idx->offsets[0],
                          (long long)idx->offsets[idx->nlist], (long long)idx->rows);
    for (int l = 0; l < idx->nlist; l++)
        if (idx->offsets[l + 1] < idx->offsets[l])
            return KILN_ERROR(KILN_ERR_DATA, "index '%s': ivf/offsets decreases at list %d", r->path, l);
    for (int64_t i = 0; i < idx->rows; i++)
        if (idx->ids[i] < 0)
            return KILN_ERROR(KILN_ERR_DATA, "index '%s': ids[%lld] is negative", r->path, (long long)i);
    idx->centroid_norms = malloc((size_t)idx->nlist * sizeof *idx->centroid_norms);
    KILN_CHECK_ALLOC(idx->centroid_norms);
    kiln_ann_squared_norms(idx->centroids, (uint64_t)idx->nlist, idx->dim, idx->centroid_norms);
    return idx->kind == ANN_IVF_PQ ? kiln_ann_pq_derive(idx) : KILN_OK;
}

kiln_status kiln_ann_index_read(const char *path, ann_index *idx)
{
    memset(idx, 0, sizeof *idx);
    reader r = {path, H5I_INVALID_HID};
    KILN_CHECK(kiln_h5_open_file(path, "index", KILN_ERR_DATA, &r.file));
    kiln_status st = kiln_ann_index_read_attrs(r.file, path, idx);
    uint64_t vshape[2] = {(uint64_t)idx->rows, (uint64_t)idx->dim}, rshape[1] = {(uint64_t)idx->rows};
    void *buf = NULL;
    int has_vectors = idx->kind != ANN_IVF_PQ || kiln_h5_exists(r.file, "vectors");
    if (st == KILN_OK && has_vectors) st = read_checked(&r, "vectors", H5T_NATIVE_FLOAT, 2, vshape, sizeof(float), &buf);
    idx->vectors = buf;
    if (st == KILN_OK && idx->kind == ANN_IVF_PQ) st = read_pq(&r, idx);
    if (st == KILN_OK && idx->kind == ANN_IVF_PQ && (idx->pq_refine > 0) != (idx->vectors != NULL))
        st = KILN_ERROR(KILN_ERR_DATA, "index '%s': pq refine is %d but the vectors are %s", path, idx->pq_refine,
                        idx->vectors ? "there" : "missing");
    if (st == KILN_OK && idx->nlist) {
        uint64_t cshape[2] = {(uint64_t)idx->nlist, (uint64_t)idx->dim}, oshape[1] = {(uint64_t)idx->nlist + 1};
        buf = NULL;
        st = read_checked(&r, "ids", H5T_NATIVE_INT64, 1, rshape, sizeof(int64_t), &buf);
        idx->ids = buf;
        buf = NULL;
        if (st == KILN_OK) st = read_checked(&r, "ivf/centroids", H5T_NATIVE_FLOAT, 2, cshape, sizeof(float), &buf);
        idx->centroids = buf;
        buf = NULL;
        if (st == KILN_OK) st = read_checked(&r, "ivf/offsets", H5T_NATIVE_INT64, 1, oshape, sizeof(int64_t), &buf);
        idx->offsets = buf;
    }
    if (st == KILN_OK && idx->kind == ANN_HNSW) st = read_graph(&r, idx);
    if (st == KILN_OK) st = read_attributes(&r, idx);
    H5Fclose(r.file);
    if (st == KILN_OK) st = derive(&r, idx);
    if (st != KILN_OK) kiln_ann_index_free(idx);
    return st;
}

void kiln_ann_index_free(ann_index *idx)
{
    free(idx->vectors), free(idx->ids), free(idx->norms), free(idx->centroids);
    free(idx->centroid_norms), free(idx->offsets), free(idx->config);
    free(idx->codebooks), free(idx->codes), free(idx->pq_terms);
    free(idx->levels), free(idx->node_entry), free(idx->link_start), free(idx->link_count), free(idx->links);
    for (int a = 0; a < idx->n_attrs; a++) free(idx->attrs[a]);
    free(idx->attrs), free(idx->attr_names);
    memset(idx, 0, sizeof *idx);
}

kiln_status kiln_ann_index_set_default(const char *path, int knob)
{
    /* rewritten whole and atomically like a build: a crash leaves the old file or the new one */
    ann_index idx;
    KILN_CHECK(kiln_ann_index_read(path, &idx));
    if (idx.kind == ANN_HNSW) idx.ef = knob;
    else idx.nprobe = knob;
    kiln_status st = kiln_ann_index_write(path, &idx);
    kiln_ann_index_free(&idx);
    return st;
}
