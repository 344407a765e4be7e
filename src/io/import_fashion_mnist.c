/* `kiln data import fashion-mnist`: the four idx files (plain or .gz) -> the classification
 * layout of kiln/data.h. Everything is read and validated before anything is written, and the
 * HDF5 file goes to OUT.tmp, is fsynced and renamed, so a failure never leaves partial output.
 *
 * idx format: big-endian uint32 magic (0x0000 08 NDIM: uint8 data, NDIM dims), NDIM big-endian
 * uint32 dims, then the bytes in row-major order. */
#include "kiln/data.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FMNIST_SIDE 28
#define FMNIST_CLASSES 10
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u

typedef struct idx_array {
    char path[PATH_MAX + 8]; /* the file actually read, for messages */
    uint32_t count;          /* images or labels */
    uint8_t *data;           /* count * item bytes */
} idx_array;

/* NAME if it exists, else NAME.gz; gzread reads either (plain files pass through). */
static kiln_status idx_open(const char *dir, const char *name, idx_array *a, gzFile *gz)
{
    snprintf(a->path, sizeof a->path, "%s/%s", dir, name);
    if (!kiln_path_exists(a->path)) {
        snprintf(a->path, sizeof a->path, "%s/%s.gz", dir, name);
        if (!kiln_path_exists(a->path))
            return KILN_ERROR(KILN_ERR_IO, "fashion-mnist: neither '%s/%s' nor '%s' exists",
                              dir, name, a->path);
    }
    *gz = gzopen(a->path, "rb");
    if (!*gz)
        return KILN_ERROR(KILN_ERR_IO, "fashion-mnist: cannot open '%s': %s", a->path,
                          strerror(errno));
    return KILN_OK;
}

static kiln_status gz_read_exact(gzFile gz, const char *path, const char *what, void *buf,
                                 uint64_t n)
{
    uint64_t got = 0;
    while (got < n) {
        uint64_t want = n - got < (1u << 30) ? n - got : (1u << 30);
        int r = gzread(gz, (uint8_t *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            return KILN_ERROR(KILN_ERR_IO, "'%s': cannot read %s: %s", path, what,
                              gzerror(gz, &zerr));
        }
        if (r == 0) break;
        got += (uint64_t)r;
    }
    if (got < n)
        return KILN_ERROR(KILN_ERR_DATA, "'%s' is truncated: expected %" PRIu64 " bytes of %s, "
                          "found %" PRIu64, path, n, what, got);
    return KILN_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Header (magic, count, then each item dim checked against item_dims) and data. */
static kiln_status idx_parse(gzFile gz, idx_array *a, uint32_t magic, const uint32_t *item_dims,
                             int n_item_dims)
{
    uint8_t head[4 * 4];
    int ndim = 1 + n_item_dims;
    KILN_CHECK(gz_read_exact(gz, a->path, "header", head, 4 * (uint64_t)(1 + ndim)));
    if (be32(head) != magic)
        return KILN_ERROR(KILN_ERR_DATA, "'%s': expected idx magic 0x%08" PRIx32 " (uint8, %d-D), "
                          "found 0x%08" PRIx32, a->path, magic, ndim, be32(head));
    a->count = be32(head + 4);
    uint64_t item = 1;
    for (int i = 0; i < n_item_dims; i++) {
        uint32_t d = be32(head + 8 + 4 * i);
        if (d != item_dims[i])
            return KILN_ERROR(KILN_ERR_DATA, "'%s': expected dimension %d to be %" PRIu32
                              ", found %" PRIu32, a->path, i + 1, item_dims[i], d);
        item *= d;
    }
    uint64_t bytes = item * a->count;
    a->data = malloc(bytes ? bytes : 1);
    KILN_CHECK_ALLOC(a->data);
    return gz_read_exact(gz, a->path, "data", a->data, bytes);
}

static kiln_status idx_read(const char *dir, const char *name, uint32_t magic,
                            const uint32_t *item_dims, int n_item_dims, idx_array *a)
{
    gzFile gz;
    KILN_CHECK(idx_open(dir, name, a, &gz));
    kiln_status st = idx_parse(gz, a, magic, item_dims, n_item_dims);
    gzclose(gz);
    return st;
}

static kiln_status check_labels(const idx_array *images, const idx_array *labels)
{
    if (images->count != labels->count)
        return KILN_ERROR(KILN_ERR_DATA, "fashion-mnist: '%s' has %" PRIu32 " labels but '%s' has "
                          "%" PRIu32 " images; expected equal counts", labels->path,
                          labels->count, images->path, images->count);
    for (uint32_t i = 0; i < labels->count; i++)
        if (labels->data[i] >= FMNIST_CLASSES)
            return KILN_ERROR(KILN_ERR_DATA, "'%s': label at index %" PRIu32 ": expected < %d, "
                              "found %u", labels->path, i, FMNIST_CLASSES, labels->data[i]);
    return KILN_OK;
}

/* One split: images and labels as idx_arrays. */
typedef struct fmnist_split {
    const char *group;  /* "train" / "test" */
    const char *prefix; /* idx file name prefix: "train" / "t10k" */
    idx_array images, labels;
} fmnist_split;

typedef struct fmnist_import {
    const char *dir;
    fmnist_split splits[2];
} fmnist_import;

static kiln_status split_read(const char *dir, fmnist_split *s)
{
    static const uint32_t image_dims[2] = {FMNIST_SIDE, FMNIST_SIDE};
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", s->prefix);
    KILN_CHECK(idx_read(dir, name, IDX_MAGIC_IMAGES, image_dims, 2, &s->images));
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", s->prefix);
    KILN_CHECK(idx_read(dir, name, IDX_MAGIC_LABELS, NULL, 0, &s->labels));
    KILN_CHECK(check_labels(&s->images, &s->labels));
    return KILN_OK;
}

static kiln_status split_write(hid_t file, const fmnist_split *s)
{
    const uint64_t xdims[2] = {s->images.count, FMNIST_SIDE * FMNIST_SIDE};
    const uint64_t ydims[1] = {s->labels.count};
    char name[64];
    snprintf(name, sizeof name, "/%s/x", s->group);
    KILN_CHECK(kiln_h5_write_dataset(file, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, xdims,
                                     s->images.data));
    snprintf(name, sizeof name, "/%s/y", s->group);
    KILN_CHECK(kiln_h5_write_dataset(file, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, ydims,
                                     s->labels.data));
    return KILN_OK;
}

/* kiln_h5_fill_fn: the splits and the file attributes. */
static kiln_status fill_output(hid_t file, void *ctx)
{
    const fmnist_import *imp = ctx;
    for (int i = 0; i < 2; i++) KILN_CHECK(split_write(file, &imp->splits[i]));
    char source[PATH_MAX + 32];
    snprintf(source, sizeof source, "fashion-mnist idx files in %s", imp->dir);
    KILN_CHECK(kiln_h5_write_attr_i64(file, "num_classes", FMNIST_CLASSES));
    KILN_CHECK(kiln_h5_write_attr_str(file, "source", source));
    return KILN_OK;
}

kiln_status kiln_import_fashion_mnist(const char *dir, const char *out_path)
{
    fmnist_import imp = {dir, {{.group = "train", .prefix = "train"},
                               {.group = "test", .prefix = "t10k"}}};
    kiln_status st;
    for (int i = 0; i < 2; i++) KILN_CHECK_GOTO(st, split_read(dir, &imp.splits[i]), done);
    KILN_CHECK_GOTO(st, kiln_h5_write_file_atomic(out_path, fill_output, &imp), done);
done:
    for (int i = 0; i < 2; i++) {
        free(imp.splits[i].images.data);
        free(imp.splits[i].labels.data);
    }
    return st;
}
