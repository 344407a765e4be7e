/* `kiln data import text`: files concatenated byte for byte (tokens are bytes, vocab 256) into
 * the LM layout of kiln/data.h; the last val_fraction of the bytes becomes /val/tokens. All
 * files are read before anything is written, and the HDF5 file goes to OUT.tmp, is fsynced and
 * renamed, so a missing input or a failed write never leaves partial output. */
#include "kiln/data.h"
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEXT_VOCAB 256

/* Appends the whole file to *buf (size *len, capacity *cap). */
static kiln_status append_file(const char *path, uint8_t **buf, uint64_t *len, uint64_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return KILN_ERROR(KILN_ERR_IO, "text file '%s': %s", path, strerror(errno));
    kiln_status st = KILN_OK;
    for (;;) {
        if (*len == *cap) {
            uint64_t grown = *cap ? 2 * *cap : 1 << 20;
            uint8_t *p = realloc(*buf, grown);
            if (!p) {
                st = KILN_ERROR(KILN_ERR_NOMEM, "out of memory reading '%s'", path);
                break;
            }
            *buf = p;
            *cap = grown;
        }
        size_t got = fread(*buf + *len, 1, *cap - *len, f);
        *len += got;
        if (got == 0) {
            if (ferror(f))
                st = KILN_ERROR(KILN_ERR_IO, "text file '%s': read failed: %s", path,
                                strerror(errno));
            break;
        }
    }
    fclose(f);
    return st;
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

/* vocab_size (int) and sources (1-D array of UTF-8 strings, the input names in order). */
static kiln_status h5_write_attrs(hid_t file, const char *file_path, const char *const *files,
                                  int n_files)
{
    int vocab = TEXT_VOCAB;
    hsize_t n = (hsize_t)n_files;
    hid_t scalar = H5Screate(H5S_SCALAR), list = H5Screate_simple(1, &n, NULL);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    hid_t vs = H5Acreate2(file, "vocab_size", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    hid_t src = H5Acreate2(file, "sources", str, list, H5P_DEFAULT, H5P_DEFAULT);
    int ok = vs >= 0 && src >= 0 && H5Awrite(vs, H5T_NATIVE_INT, &vocab) >= 0 &&
             H5Awrite(src, str, files) >= 0;
    if (vs >= 0) H5Aclose(vs);
    if (src >= 0) H5Aclose(src);
    H5Tclose(str);
    H5Sclose(list);
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

static kiln_status write_contents(hid_t file, const char *tmp, const uint8_t *bytes,
                                  uint64_t n_train, uint64_t n_val, const char *const *files,
                                  int n_files)
{
    hsize_t train_dims[1] = {n_train}, val_dims[1] = {n_val};
    KILN_CHECK(h5_write_u8(file, tmp, "/train/tokens", 1, train_dims, bytes));
    KILN_CHECK(h5_write_u8(file, tmp, "/val/tokens", 1, val_dims, bytes + n_train));
    KILN_CHECK(h5_write_attrs(file, tmp, files, n_files));
    return KILN_OK;
}

static kiln_status write_output(const char *out_path, const uint8_t *bytes, uint64_t n,
                                double val_fraction, const char *const *files, int n_files)
{
    uint64_t n_val = (uint64_t)floor(val_fraction * (double)n);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        return KILN_ERROR(KILN_ERR_ARG, "output path too long: '%s'", out_path);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return KILN_ERROR(KILN_ERR_IO, "cannot create '%s'", tmp);
    kiln_status st = write_contents(file, tmp, bytes, n - n_val, n_val, files, n_files);
    if (H5Fclose(file) < 0 && st == KILN_OK)
        st = KILN_ERROR(KILN_ERR_HDF5, "cannot close '%s'", tmp);
    if (st == KILN_OK) st = commit_tmp(tmp, out_path);
    if (st != KILN_OK) unlink(tmp);
    return st;
}

kiln_status kiln_import_text(const char *const *files, int n_files, double val_fraction,
                             const char *out_path)
{
    if (n_files < 1 || !(val_fraction >= 0.0 && val_fraction < 1.0))
        return KILN_ERROR(KILN_ERR_ARG, "text import: expected at least one file and "
                          "0 <= val_fraction < 1, found %d files and val_fraction %g",
                          n_files, val_fraction);
    uint8_t *bytes = NULL;
    uint64_t len = 0, cap = 0;
    kiln_status st;
    for (int i = 0; i < n_files; i++)
        KILN_CHECK_GOTO(st, append_file(files[i], &bytes, &len, &cap), done);
    if (len == 0) {
        st = KILN_ERROR(KILN_ERR_DATA, "text import: expected some bytes, found %d empty file(s)",
                        n_files);
        goto done;
    }
    KILN_CHECK_GOTO(st, write_output(out_path, bytes, len, val_fraction, files, n_files), done);
done:
    free(bytes);
    return st;
}
