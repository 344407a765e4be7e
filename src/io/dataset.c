/* Opening a dataset file (layouts in kiln/data.h): check every dataset's presence, dtype and
 * shape before trusting it, read one split into memory, and turn rows into float/int32 batches.
 * Errors name the file and the dataset with what was expected and what was found, because a
 * user who pointed a job at the wrong file must be able to tell from one line. */
#include "kiln/data.h"
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LM_VOCAB 256 /* tokens are bytes */

struct kiln_dataset {
    kiln_data_kind kind;
    uint64_t rows;
    int width;         /* CLASSIFY: D; LM: seq_len */
    int num_classes;
    uint8_t *x;        /* CLASSIFY: (rows, D) */
    int32_t *y;        /* CLASSIFY: (rows) */
    uint8_t *tokens;   /* LM: (rows * seq_len + 1) */
};

/* The open file plus its name, for messages. */
typedef struct h5_source {
    const char *path;
    hid_t file;
} h5_source;

static void format_dtype(hid_t type, char *buf, size_t len)
{
    size_t bits = H5Tget_size(type) * 8;
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    default: snprintf(buf, len, "a non-numeric HDF5 type (class %d)", (int)H5Tget_class(type));
    }
}

static void format_shape(const hsize_t *dims, int ndim, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRIu64, i ? ", " : "",
                                 (uint64_t)dims[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

static kiln_status source_open(const char *path, h5_source *src)
{
    if (access(path, R_OK) != 0)
        return KILN_ERROR(KILN_ERR_DATA, "dataset file '%s': %s", path, strerror(errno));
    src->path = path;
    H5E_BEGIN_TRY { src->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (src->file < 0)
        return KILN_ERROR(KILN_ERR_DATA, "dataset file '%s' is not a readable HDF5 file", path);
    return KILN_OK;
}

/* Opens dataset `name`, returning its rank and dims. `layout` describes what a good file holds
 * there, for the message when it is missing. */
static kiln_status dset_open(const h5_source *src, const char *name, const char *layout,
                             hid_t *dset, int *ndim, hsize_t dims[H5S_MAX_RANK])
{
    htri_t exists;
    H5E_BEGIN_TRY { exists = H5Lexists(src->file, name, H5P_DEFAULT); } H5E_END_TRY;
    if (exists <= 0)
        return KILN_ERROR(KILN_ERR_DATA, "dataset file '%s' has no dataset '%s' (expected %s)",
                          src->path, name, layout);
    *dset = H5Dopen2(src->file, name, H5P_DEFAULT);
    hid_t space = *dset < 0 ? -1 : H5Dget_space(*dset);
    *ndim = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (*ndim < 0) {
        if (*dset >= 0) H5Dclose(*dset);
        return KILN_ERROR(KILN_ERR_HDF5, "dataset file '%s': cannot open dataset '%s'",
                          src->path, name);
    }
    return KILN_OK;
}

/* want_unsigned_byte: 1 demands uint8 exactly; 0 accepts any integer type. */
static kiln_status check_dtype(const h5_source *src, const char *name, hid_t dset,
                               int want_unsigned_byte)
{
    hid_t type = H5Dget_type(dset);
    int ok = H5Tget_class(type) == H5T_INTEGER &&
             (!want_unsigned_byte || (H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE));
    char found[64];
    format_dtype(type, found, sizeof found);
    H5Tclose(type);
    if (!ok)
        return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': expected dtype %s, found %s", name,
                          src->path, want_unsigned_byte ? "uint8" : "an integer type", found);
    return KILN_OK;
}

static kiln_status shape_error(const h5_source *src, const char *name, const char *expected,
                               const hsize_t *dims, int ndim)
{
    char found[256];
    format_shape(dims, ndim, found, sizeof found);
    return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': expected shape %s, found %s", name,
                      src->path, expected, found);
}

/* Reads the whole dataset into a new buffer of n elements of mem_type (size elem). */
static kiln_status dset_read(const h5_source *src, const char *name, hid_t dset, hid_t mem_type,
                             uint64_t n, size_t elem, void **out)
{
    *out = malloc(n ? n * elem : 1);
    KILN_CHECK_ALLOC(*out);
    if (H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        free(*out);
        *out = NULL;
        return KILN_ERROR(KILN_ERR_HDF5, "dataset '%s' in '%s': read failed", name, src->path);
    }
    return KILN_OK;
}

/* The file's num_classes attribute, or 0 when it has none. */
static kiln_status read_num_classes(const h5_source *src, int *num_classes)
{
    *num_classes = 0;
    htri_t has = H5Aexists(src->file, "num_classes");
    if (has <= 0) return KILN_OK;
    hid_t attr = H5Aopen(src->file, "num_classes", H5P_DEFAULT);
    herr_t rd = attr < 0 ? -1 : H5Aread(attr, H5T_NATIVE_INT, num_classes);
    if (attr >= 0) H5Aclose(attr);
    if (rd < 0 || *num_classes <= 0)
        return KILN_ERROR(KILN_ERR_DATA,
                          "dataset file '%s': attribute num_classes: expected a positive integer, "
                          "found %s", src->path, rd < 0 ? "an unreadable value" : "a value <= 0");
    return KILN_OK;
}

/* Labels must lie in [0, num_classes); without the attribute num_classes is max label + 1. */
static kiln_status load_labels(const h5_source *src, const char *name, hid_t dset, uint64_t n,
                               kiln_dataset *ds)
{
    int64_t *raw;
    KILN_CHECK(dset_read(src, name, dset, H5T_NATIVE_INT64, n, sizeof *raw, (void **)&raw));
    kiln_status st = read_num_classes(src, &ds->num_classes);
    int64_t limit = ds->num_classes ? ds->num_classes : INT32_MAX;
    ds->y = st == KILN_OK ? malloc(n * sizeof *ds->y) : NULL;
    if (st == KILN_OK && !ds->y) st = KILN_ERROR(KILN_ERR_NOMEM, "out of memory for labels");
    int64_t max = -1;
    for (uint64_t i = 0; st == KILN_OK && i < n; i++) {
        if (raw[i] < 0 || raw[i] >= limit)
            st = KILN_ERROR(KILN_ERR_DATA,
                            "dataset '%s' in '%s': label %" PRId64 " at row %" PRIu64
                            " is out of range: expected [0, %" PRId64 ")%s", name, src->path,
                            raw[i], i, limit, ds->num_classes ? " (num_classes attribute)" : "");
        else
            ds->y[i] = (int32_t)raw[i];
        if (raw[i] > max) max = raw[i];
    }
    if (st == KILN_OK && !ds->num_classes) ds->num_classes = (int)(max + 1);
    free(raw);
    return st;
}

static kiln_status load_classify(const h5_source *src, const char *split, kiln_dataset *ds)
{
    char xname[256], yname[256], expect_y[320];
    snprintf(xname, sizeof xname, "/%s/x", split);
    snprintf(yname, sizeof yname, "/%s/y", split);
    hid_t x, y;
    int xdim, ydim;
    hsize_t xd[H5S_MAX_RANK], yd[H5S_MAX_RANK];
    KILN_CHECK(dset_open(src, xname, "uint8 [N, D]", &x, &xdim, xd));
    kiln_status st = check_dtype(src, xname, x, 1);
    if (st == KILN_OK && (xdim != 2 || xd[0] == 0 || xd[1] == 0 || xd[1] > INT32_MAX))
        st = shape_error(src, xname, "[N, D] with N, D > 0", xd, xdim);
    if (st == KILN_OK) st = dset_open(src, yname, "integer labels [N]", &y, &ydim, yd);
    if (st != KILN_OK) {
        H5Dclose(x);
        return st;
    }
    snprintf(expect_y, sizeof expect_y, "[%" PRIu64 "] (one label per row of %s)",
             (uint64_t)xd[0], xname);
    st = check_dtype(src, yname, y, 0);
    if (st == KILN_OK && (ydim != 1 || yd[0] != xd[0]))
        st = shape_error(src, yname, expect_y, yd, ydim);
    ds->rows = xd[0];
    ds->width = (int)xd[1];
    if (st == KILN_OK) st = load_labels(src, yname, y, ds->rows, ds);
    if (st == KILN_OK)
        st = dset_read(src, xname, x, H5T_NATIVE_UINT8, ds->rows * xd[1], 1, (void **)&ds->x);
    H5Dclose(x);
    H5Dclose(y);
    return st;
}

static kiln_status load_lm(const h5_source *src, const char *split, int seq_len, kiln_dataset *ds)
{
    char name[256];
    snprintf(name, sizeof name, "/%s/tokens", split);
    hid_t t;
    int ndim;
    hsize_t dims[H5S_MAX_RANK];
    KILN_CHECK(dset_open(src, name, "uint8 tokens [N]", &t, &ndim, dims));
    kiln_status st = check_dtype(src, name, t, 1);
    if (st == KILN_OK && ndim != 1) st = shape_error(src, name, "[N] (1-D)", dims, ndim);
    if (st == KILN_OK && dims[0] < (hsize_t)seq_len + 1)
        st = KILN_ERROR(KILN_ERR_DATA,
                        "dataset '%s' in '%s': expected at least seq_len + 1 = %d tokens for one "
                        "window, found %" PRIu64, name, src->path, seq_len + 1, (uint64_t)dims[0]);
    if (st == KILN_OK) {
        ds->rows = (dims[0] - 1) / (hsize_t)seq_len;
        ds->width = seq_len;
        ds->num_classes = LM_VOCAB;
        st = dset_read(src, name, t, H5T_NATIVE_UINT8, dims[0], 1, (void **)&ds->tokens);
    }
    H5Dclose(t);
    return st;
}

kiln_status kiln_dataset_open(const char *path, const char *split, kiln_data_kind kind,
                              int seq_len, kiln_dataset **out)
{
    *out = NULL;
    if (kind == KILN_DATA_LM && seq_len < 1)
        return KILN_ERROR(KILN_ERR_ARG, "dataset '%s': expected seq_len >= 1, found %d", path,
                          seq_len);
    kiln_dataset *ds = calloc(1, sizeof *ds);
    KILN_CHECK_ALLOC(ds);
    ds->kind = kind;
    h5_source src;
    kiln_status st = source_open(path, &src);
    if (st == KILN_OK) {
        st = kind == KILN_DATA_LM ? load_lm(&src, split, seq_len, ds)
                                  : load_classify(&src, split, ds);
        H5Fclose(src.file);
    }
    if (st != KILN_OK) {
        kiln_error_trace(__FILE__, __LINE__, "kiln_dataset_open");
        kiln_dataset_free(ds);
        return st;
    }
    *out = ds;
    return KILN_OK;
}

void kiln_dataset_free(kiln_dataset *ds)
{
    if (!ds) return;
    free(ds->x);
    free(ds->y);
    free(ds->tokens);
    free(ds);
}

uint64_t kiln_dataset_rows(const kiln_dataset *ds) { return ds->rows; }
int kiln_dataset_width(const kiln_dataset *ds) { return ds->width; }
int kiln_dataset_num_classes(const kiln_dataset *ds) { return ds->num_classes; }
kiln_data_kind kiln_dataset_kind(const kiln_dataset *ds) { return ds->kind; }

static void gather_classify(const kiln_dataset *ds, const uint64_t *rows, int n, kiln_batch *out)
{
    size_t D = (size_t)ds->width;
    for (int b = 0; b < n; b++) {
        const uint8_t *src = ds->x + rows[b] * D;
        float *dst = out->x + (size_t)b * D;
        for (size_t j = 0; j < D; j++) dst[j] = (float)src[j] / 255.0f;
        out->y[b] = ds->y[rows[b]];
    }
}

/* Window i is tokens[i*T .. i*T+T]: inputs are its first T tokens, targets its last T. */
static void gather_lm(const kiln_dataset *ds, const uint64_t *rows, int n, kiln_batch *out)
{
    size_t T = (size_t)ds->width;
    for (int b = 0; b < n; b++) {
        const uint8_t *src = ds->tokens + rows[b] * T;
        for (size_t t = 0; t < T; t++) {
            out->tokens[(size_t)b * T + t] = src[t];
            out->targets[(size_t)b * T + t] = src[t + 1];
        }
    }
}

kiln_status kiln_dataset_gather(const kiln_dataset *ds, const uint64_t *rows, int n,
                                kiln_batch *out)
{
    for (int b = 0; b < n; b++)
        if (rows[b] >= ds->rows)
            return KILN_ERROR(KILN_ERR_ARG, "dataset row %" PRIu64 " out of range: %" PRIu64
                              " rows", rows[b], ds->rows);
    if (ds->kind == KILN_DATA_LM)
        gather_lm(ds, rows, n, out);
    else
        gather_classify(ds, rows, n, out);
    out->B = n;
    return KILN_OK;
}
