/* `kiln data import fashion-mnist`: the four idx files (plain or .gz) -> the classification
 * layout of kiln/data.h. Everything is read and validated before anything is written, and the
 * HDF5 file goes to OUT.tmp, is fsynced and renamed, so a failure never leaves partial output.
 *
 * idx format: big-endian uint32 magic (0x0000 08 NDIM: uint8 data, NDIM dims), NDIM big-endian
 * uint32 dims, then the bytes in row-major order. */
#include "kiln/data.h"
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
    if (access(a->path, F_OK) != 0) {
        snprintf(a->path, sizeof a->path, "%s/%s.gz", dir, name);
        if (access(a->path, F_OK) != 0)
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

/* A uint8 dataset, contiguous and uncompressed: loading it is one read. */
static kiln_status h5_write_u8(hid_t file, const char *file_path, const char *name, int ndim,
                               const hsize_t *dims, const uint8_t *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(file, name, H5T_STD_U8LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    H5Pclose(lcpl);
    if (w < 0)
        return KILN_ERROR(KILN_ERR_HDF5, "'%s': cannot write dataset '%s'", file_path, name);
    return KILN_OK;
}

static kiln_status h5_write_attrs(hid_t file, const char *file_path, int num_classes,
                                  const char *source)
{
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    hid_t nc = H5Acreate2(file, "num_classes", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    hid_t src = H5Acreate2(file, "source", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    int ok = nc >= 0 && src >= 0 && H5Awrite(nc, H5T_NATIVE_INT, &num_classes) >= 0 &&
             H5Awrite(src, str, &source) >= 0;
    if (nc >= 0) H5Aclose(nc);
    if (src >= 0) H5Aclose(src);
    H5Tclose(str);
    H5Sclose(scalar);
    if (!ok) return KILN_ERROR(KILN_ERR_HDF5, "'%s': cannot write file attributes", file_path);
    return KILN_OK;
}

static kiln_status fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0 || fsync(fd) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        return KILN_ERROR(KILN_ERR_IO, "cannot fsync '%s': %s", path, strerror(err));
    }
    close(fd);
    return KILN_OK;
}

/* tmp is complete and closed: make it durable, then give it its final name. */
static kiln_status commit_tmp(const char *tmp, const char *out)
{
    KILN_CHECK(fsync_path(tmp, O_RDONLY));
    if (rename(tmp, out) != 0)
        return KILN_ERROR(KILN_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    KILN_CHECK(fsync_path(dirname(dir), O_RDONLY | O_DIRECTORY));
    return KILN_OK;
}

static kiln_status write_splits(hid_t file, const char *tmp, const char *dir,
                                const fmnist_split *splits, int n_splits)
{
    char name[64];
    for (int i = 0; i < n_splits; i++) {
        const fmnist_split *s = &splits[i];
        hsize_t xdims[2] = {s->images.count, FMNIST_SIDE * FMNIST_SIDE};
        hsize_t ydims[1] = {s->labels.count};
        snprintf(name, sizeof name, "/%s/x", s->group);
        KILN_CHECK(h5_write_u8(file, tmp, name, 2, xdims, s->images.data));
        snprintf(name, sizeof name, "/%s/y", s->group);
        KILN_CHECK(h5_write_u8(file, tmp, name, 1, ydims, s->labels.data));
    }
    char source[PATH_MAX + 32];
    snprintf(source, sizeof source, "fashion-mnist idx files in %s", dir);
    KILN_CHECK(h5_write_attrs(file, tmp, FMNIST_CLASSES, source));
    return KILN_OK;
}

static kiln_status write_output(const char *out_path, const char *dir, const fmnist_split *splits,
                                int n_splits)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        return KILN_ERROR(KILN_ERR_ARG, "output path too long: '%s'", out_path);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return KILN_ERROR(KILN_ERR_IO, "cannot create '%s'", tmp);
    kiln_status st = write_splits(file, tmp, dir, splits, n_splits);
    if (H5Fclose(file) < 0 && st == KILN_OK)
        st = KILN_ERROR(KILN_ERR_HDF5, "cannot close '%s'", tmp);
    if (st == KILN_OK) st = commit_tmp(tmp, out_path);
    if (st != KILN_OK) unlink(tmp);
    return st;
}

kiln_status kiln_import_fashion_mnist(const char *dir, const char *out_path)
{
    fmnist_split splits[2] = {{.group = "train", .prefix = "train"},
                              {.group = "test", .prefix = "t10k"}};
    kiln_status st;
    for (int i = 0; i < 2; i++) KILN_CHECK_GOTO(st, split_read(dir, &splits[i]), done);
    KILN_CHECK_GOTO(st, write_output(out_path, dir, splits, 2), done);
done:
    for (int i = 0; i < 2; i++) {
        free(splits[i].images.data);
        free(splits[i].labels.data);
    }
    return st;
}
