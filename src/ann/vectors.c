/* The vectors an index is built from or queried with: one 2-D dataset of an HDF5 file, named
 * FILE.h5:/path (embeddings from `kiln infer`, a feature matrix, Fashion-MNIST's pixels).
 * float32 rows are taken as they are; uint8 rows as their values 0..255 (as ann-benchmarks
 * uses fashion-mnist-784). Every rank opens the file read-only on its own and reads the row
 * ranges it needs; a NaN or an infinity is refused naming its row. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/h5util.h"
#include "ann_internal.h"

/* FILE.h5:/path split at the last ':' followed by '/' (a path may hold ':' elsewhere). */
static kiln_status split_spec(const char *spec, const char *what, ann_vectors *v)
{
    const char *colon = NULL;
    for (const char *c = spec; (c = strstr(c, ":/")) != NULL; c++) colon = c;
    if (!colon || colon == spec || !colon[2])
        return KILN_ERROR(KILN_ERR_ARG, "%s '%s': expected FILE.h5:/dataset (for example "
                          "data/fashion-mnist.h5:/train/x)", what, spec);
    size_t n = (size_t)(colon - spec);
    if (n >= sizeof v->file || strlen(colon + 1) >= sizeof v->path)
        return KILN_ERROR(KILN_ERR_ARG, "%s '%.80s...': the path is too long", what, spec);
    memcpy(v->file, spec, n);
    v->file[n] = '\0';
    snprintf(v->path, sizeof v->path, "%s", colon + 1);
    snprintf(v->spec, sizeof v->spec, "%s", spec);
    return KILN_OK;
}

kiln_status kiln_ann_vectors_open(const char *spec, const char *what, ann_vectors *v)
{
    memset(v, 0, sizeof *v);
    v->fid = v->dset = H5I_INVALID_HID;
    KILN_CHECK(split_spec(spec, what, v));
    KILN_CHECK(kiln_h5_open_file(v->file, what, KILN_ERR_DATA, &v->fid));
    if (!kiln_h5_exists(v->fid, v->path)) {
        kiln_ann_vectors_close(v);
        return KILN_ERROR(KILN_ERR_DATA, "%s: no dataset '%s' in '%s'", what, v->path, v->file);
    }
    v->dset = H5Dopen2(v->fid, v->path, H5P_DEFAULT);
    hid_t type = v->dset >= 0 ? H5Dget_type(v->dset) : H5I_INVALID_HID;
    uint64_t shape[KILN_H5_MAX_DIMS];
    int nd = 0;
    kiln_status st = v->dset >= 0 && type >= 0 ? kiln_h5_dataset_shape(v->dset, &nd, shape)
                                               : KILN_ERROR(KILN_ERR_DATA, "%s: cannot open '%s' in '%s'",
                                                            what, v->path, v->file);
    char tname[32] = "", sname[128] = "";
    if (st == KILN_OK) {
        kiln_h5_type_name(type, tname, sizeof tname);
        kiln_h5_format_shape(shape, nd, sname, sizeof sname);
        H5T_class_t cls = H5Tget_class(type);
        size_t size = H5Tget_size(type);
        v->is_u8 = cls == H5T_INTEGER && size == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
        if (!v->is_u8 && !(cls == H5T_FLOAT && size == 4))
            st = KILN_ERROR(KILN_ERR_DATA, "%s: dataset '%s' in '%s' is %s %s; expected float32 "
                            "or uint8 [N,D]", what, v->path, v->file, tname, sname);
        else if (nd != 2 || shape[0] == 0 || shape[1] == 0 || shape[1] > 65536)
            st = KILN_ERROR(KILN_ERR_DATA, "%s: dataset '%s' in '%s' has shape %s; expected [N,D] "
                            "with N > 0 and 0 < D <= 65536", what, v->path, v->file, sname);
    }
    if (type >= 0) H5Tclose(type);
    if (st != KILN_OK) {
        kiln_ann_vectors_close(v);
        return st;
    }
    v->rows = v->total_rows = shape[0];
    v->dim = (int)shape[1];
    return KILN_OK;
}

kiln_status kiln_ann_vectors_window(ann_vectors *v, uint64_t first, uint64_t rows)
{
    if (first > v->total_rows || rows > v->total_rows - first || rows == 0)
        return KILN_ERROR(KILN_ERR_ARG, "rows [%" PRIu64 ", %" PRIu64 ") of '%s' (it has %" PRIu64 ")", first,
                          first + rows, v->spec, v->total_rows);
    v->base = first;
    v->rows = rows;
    return KILN_OK;
}

void kiln_ann_vectors_close(ann_vectors *v)
{
    if (v->dset >= 0) H5Dclose(v->dset);
    if (v->fid >= 0) H5Fclose(v->fid);
    v->dset = v->fid = H5I_INVALID_HID;
}

/* The first row of out (n x dim) holding a NaN or an infinity, or -1. */
static int64_t first_nonfinite(const float *out, uint64_t n, int dim)
{
    for (uint64_t i = 0; i < n; i++) {
        const float *r = out + i * (size_t)dim;
        int bad = 0;
        for (int d = 0; d < dim; d++) bad |= !isfinite(r[d]);
        if (bad) return (int64_t)i;
    }
    return -1;
}

kiln_status kiln_ann_vectors_read(const ann_vectors *v, uint64_t first, uint64_t n, float *out,
                                  uint32_t *crc)
{
    if (first + n > v->rows || first + n < first)
        return KILN_ERROR(KILN_ERR_ARG, "rows [%" PRIu64 ", %" PRIu64 ") of '%s' (it has %" PRIu64 ")",
                          first, first + n, v->spec, v->rows);
    first += v->base;
    size_t count = (size_t)n * (size_t)v->dim;
    if (v->is_u8) {
        /* read the bytes into the tail of out, widen them forwards: each float lands at or
         * before the byte it comes from is read */
        uint8_t *bytes = (uint8_t *)out + count * (sizeof(float) - 1);
        KILN_CHECK(kiln_h5_read_range(v->dset, H5T_NATIVE_UINT8, H5P_DEFAULT,
                                      first * (uint64_t)v->dim, count, bytes));
        if (crc) *crc = kiln_crc32(*crc, bytes, count);
        for (size_t i = 0; i < count; i++) out[i] = (float)bytes[i];
        return KILN_OK;
    }
    KILN_CHECK(kiln_h5_read_range(v->dset, H5T_NATIVE_FLOAT, H5P_DEFAULT, first * (uint64_t)v->dim,
                                  count, out));
    if (crc) *crc = kiln_crc32(*crc, out, count * sizeof(float));
    int64_t bad = first_nonfinite(out, n, v->dim);
    if (bad >= 0)
        return KILN_ERROR(KILN_ERR_DATA, "row %" PRIu64 " of dataset '%s' in '%s' holds a NaN or an "
                          "infinity; every value must be finite", first + (uint64_t)bad, v->path, v->file);
    return KILN_OK;
}

kiln_status kiln_ann_vectors_crc(const ann_vectors *v, uint32_t *crc)
{
    uint64_t block = (1u << 22) / (uint64_t)v->dim + 1;
    float *buf = malloc((size_t)block * (size_t)v->dim * sizeof *buf);
    KILN_CHECK_ALLOC(buf);
    kiln_status st = KILN_OK;
    *crc = 0;
    for (uint64_t at = 0; at < v->rows && st == KILN_OK; at += block)
        st = kiln_ann_vectors_read(v, at, v->rows - at < block ? v->rows - at : block, buf, crc);
    free(buf);
    return st;
}

/* ---- metric and kind names ---- */

static const char *const metric_names[] = {"l2", "ip", "cosine"};
static const char *const kind_names[] = {"flat", "ivf-flat", "ivf-pq", "hnsw"};

const char *kiln_ann_metric_name(ann_metric m) { return metric_names[m]; }
const char *kiln_ann_kind_name(ann_kind k) { return kind_names[k]; }

int kiln_ann_metric_parse(const char *s, ann_metric *m)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, metric_names[i])) return *m = (ann_metric)i, 1;
    return 0;
}

int kiln_ann_kind_parse(const char *s, ann_kind *k)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, kind_names[i])) return *k = (ann_kind)i, 1;
    return 0;
}

void kiln_ann_normalize(float *x, uint64_t n, int dim)
{
    for (uint64_t i = 0; i < n; i++) {
        float *r = x + i * (size_t)dim;
        double s = 0.0;
        for (int d = 0; d < dim; d++) s += (double)r[d] * r[d];
        if (s > 0.0) {
            float inv = (float)(1.0 / sqrt(s));
            for (int d = 0; d < dim; d++) r[d] *= inv;
        }
    }
}

void kiln_ann_squared_norms(const float *x, uint64_t n, int dim, float *out)
{
    for (uint64_t i = 0; i < n; i++) {
        const float *r = x + i * (size_t)dim;
        float s = 0.0f;
        for (int d = 0; d < dim; d++) s += r[d] * r[d];
        out[i] = s;
    }
}
