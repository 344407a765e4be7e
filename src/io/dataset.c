/* Opening a dataset file (layouts in kiln/data.h): check every dataset's presence, dtype and
 * shape before trusting it, read one split into memory, and turn rows into float/int32 batches.
 * Errors name the file and the dataset with what was expected and what was found, because a
 * user who pointed a job at the wrong file must be able to tell from one line. */
#include "kiln/data.h"
#include "kiln/h5util.h"
#include <errno.h>
#include <math.h>
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
    uint8_t *x;        /* CLASSIFY: (rows, D) pixels, scaled to [0, 1] in batches */
    float *xf;         /* CLASSIFY: (rows, D) features as they are (x float32 in the file) */
    int32_t *y;        /* CLASSIFY: (rows) */
    uint8_t *tokens;   /* LM: (rows * seq_len + 1) */
};

/* The open file plus its name, for messages. */
typedef struct h5_source {
    const char *path;
    hid_t file;
} h5_source;

static kiln_status source_open(const char *path, h5_source *src)
{
    src->path = path;
    return kiln_h5_open_file(path, "dataset file", KILN_ERR_DATA, &src->file);
}

static kiln_status shape_error(const h5_source *src, const char *name, const char *expected,
                               const uint64_t *dims, int ndim)
{
    char found[256];
    kiln_h5_format_shape(dims, ndim, found, sizeof found);
    return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': expected %s, found %s", name,
                      src->path, expected, found);
}

/* Reads all n elements of the dataset into a new buffer of mem_type (size elem). */
static kiln_status dset_read(hid_t dset, hid_t mem_type, uint64_t n, size_t elem, void **out)
{
    *out = malloc(n ? n * elem : 1);
    KILN_CHECK_ALLOC(*out);
    kiln_status st = kiln_h5_read_range(dset, mem_type, H5P_DEFAULT, 0, n, *out);
    if (st != KILN_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

/* The file's num_classes attribute, or 0 when it has none. */
static kiln_status read_num_classes(const h5_source *src, int *num_classes)
{
    int64_t v;
    *num_classes = 0;
    if (!kiln_h5_has_attr(src->file, "num_classes")) return KILN_OK;
    KILN_CHECK(kiln_h5_read_attr_i64(src->file, "num_classes", &v));
    if (v <= 0 || v > INT32_MAX)
        return KILN_ERROR(KILN_ERR_DATA, "dataset file '%s': attribute num_classes: expected an "
                          "integer in [1, %d], found %" PRId64, src->path, INT32_MAX, v);
    *num_classes = (int)v;
    return KILN_OK;
}
/* Labels must lie in [0, num_classes); without the attribute num_classes is max label + 1. */
static kiln_status load_labels(const h5_source *src, const char *name, hid_t dset, uint64_t n,
                               kiln_dataset *ds)
{
    int64_t *raw;
    KILN_CHECK(dset_read(dset, H5T_NATIVE_INT64, n, sizeof *raw, (void **)&raw));
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
    static const uint64_t any_nd[2] = {KILN_H5_ANY, KILN_H5_ANY}, any_n[1] = {KILN_H5_ANY};
    char xname[256], yname[256], expect_y[320];
    snprintf(xname, sizeof xname, "/%s/x", split);
    snprintf(yname, sizeof yname, "/%s/y", split);
    hid_t x, y;
    int nd;
    uint64_t xd[KILN_H5_MAX_DIMS], yd[KILN_H5_MAX_DIMS];
    /* uint8 pixels, or float32 features (kiln features build) */
    int is_float = 0;
    if (kiln_h5_exists(src->file, xname)) {
        hid_t d = H5Dopen2(src->file, xname, H5P_DEFAULT), t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
        is_float = t >= 0 && H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4;
        if (t >= 0) H5Tclose(t);
        if (d >= 0) H5Dclose(d);
    }
    KILN_CHECK(kiln_h5_open_dataset(src->file, xname, is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, 2, any_nd, &x));
    kiln_status st = kiln_h5_dataset_shape(x, &nd, xd);
    if (st == KILN_OK && (xd[0] == 0 || xd[1] == 0 || xd[1] > INT32_MAX))
        st = shape_error(src, xname, "[N,D] with N, D > 0", xd, nd);
    if (st == KILN_OK) st = kiln_h5_open_int_dataset(src->file, yname, 1, any_n, &y);
    if (st != KILN_OK) {
        H5Dclose(x);
        return st;
    }
    snprintf(expect_y, sizeof expect_y, "[%" PRIu64 "] (one label per row of %s)", xd[0], xname);
    st = kiln_h5_dataset_shape(y, &nd, yd);
    if (st == KILN_OK && yd[0] != xd[0]) st = shape_error(src, yname, expect_y, yd, nd);
    ds->rows = xd[0];
    ds->width = (int)xd[1];
    if (st == KILN_OK) st = load_labels(src, yname, y, ds->rows, ds);
    if (st == KILN_OK && is_float)
        st = dset_read(x, H5T_NATIVE_FLOAT, ds->rows * xd[1], sizeof(float), (void **)&ds->xf);
    else if (st == KILN_OK)
        st = dset_read(x, H5T_NATIVE_UINT8, ds->rows * xd[1], 1, (void **)&ds->x);
    for (uint64_t i = 0; st == KILN_OK && ds->xf && i < ds->rows * xd[1]; i++)
        if (!isfinite(ds->xf[i]))
            st = KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': row %" PRIu64 " holds a NaN or an infinity (fill "
                            "missing values before training: kiln features' fill_mean or fill(V))", xname, src->path,
                            i / xd[1]);
    H5Dclose(x);
    H5Dclose(y);
    return st;
}

static kiln_status load_lm(const h5_source *src, const char *split, int seq_len, kiln_dataset *ds)
{
    static const uint64_t any_n[1] = {KILN_H5_ANY};
    char name[256];
    snprintf(name, sizeof name, "/%s/tokens", split);
    hid_t t;
    int nd;
    uint64_t dims[KILN_H5_MAX_DIMS];
    KILN_CHECK(kiln_h5_open_dataset(src->file, name, H5T_NATIVE_UINT8, 1, any_n, &t));
    kiln_status st = kiln_h5_dataset_shape(t, &nd, dims);
    if (st == KILN_OK && dims[0] < (uint64_t)seq_len + 1)
        st = KILN_ERROR(KILN_ERR_DATA,
                        "dataset '%s' in '%s': expected at least seq_len + 1 = %d tokens for one "
                        "window, found %" PRIu64, name, src->path, seq_len + 1, dims[0]);
    if (st == KILN_OK) {
        ds->rows = (dims[0] - 1) / (uint64_t)seq_len;
        ds->width = seq_len;
        ds->num_classes = LM_VOCAB;
        st = dset_read(t, H5T_NATIVE_UINT8, dims[0], 1, (void **)&ds->tokens);
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
    free(ds->x), free(ds->xf);
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
    /* Shuffled rows are scattered over the whole dataset: ask for all their cache lines first,
     * so the misses overlap, instead of waiting on each row in turn (this runs on the prefetch
     * thread, and stalls there take a core from the step) */
    if (ds->xf) {
        for (int b = 0; b < n; b++) {
            memcpy(out->x + (size_t)b * D, ds->xf + rows[b] * D, D * sizeof *out->x);
            out->y[b] = ds->y[rows[b]];
        }
        return;
    }
    for (int b = 0; b < n; b++) {
        const uint8_t *src = ds->x + rows[b] * D;
        for (size_t j = 0; j < D; j += 64) __builtin_prefetch(src + j);
        __builtin_prefetch(src + D - 1);
        __builtin_prefetch(ds->y + rows[b]);
    }
    for (int b = 0; b < n; b++) {
        kiln_pixels_to_unit(out->x + (size_t)b * D, ds->x + rows[b] * D, D);
        out->y[b] = ds->y[rows[b]];
    }
}

/* q = v * RN(1/255) is off by one ulp for half of the 256 bytes; one FMA step on its exact
 * residual v - 255 q gives the correctly rounded quotient for every byte (tests/unit checks
 * all 256). restrict: a uint8_t pointer may alias anything, and without it the loop runs
 * scalar, on the prefetch thread that competes with the step for a core. */
void kiln_pixels_to_unit(float *restrict dst, const uint8_t *restrict src, size_t n)
{
    const float inv = 1.0f / 255.0f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = (float)src[i], q = v * inv;
        dst[i] = fmaf(fmaf(-q, 255.0f, v), inv, q);
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
