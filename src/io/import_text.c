/* `kiln data import text`: files concatenated byte for byte (tokens are bytes, vocab 256) into
 * the LM layout of kiln/data.h; the last val_fraction of the bytes becomes /val/tokens. All
 * files are read before anything is written, and the HDF5 file goes to OUT.tmp, is fsynced and
 * renamed, so a missing input or a failed write never leaves partial output. */
#include "kiln/data.h"
#include "kiln/h5util.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The bytes of all files, and how they split into /train and /val. */
typedef struct text_import {
    const char *const *files;
    int n_files;
    const uint8_t *bytes;
    uint64_t n_train, n_val;
} text_import;

/* kiln_h5_fill_fn: both splits, vocab_size, and sources (the input names in order). */
static kiln_status fill_output(hid_t file, void *ctx)
{
    const text_import *t = ctx;
    KILN_CHECK(kiln_h5_write_dataset(file, "/train/tokens", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1,
                                     &t->n_train, t->bytes));
    KILN_CHECK(kiln_h5_write_dataset(file, "/val/tokens", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1,
                                     &t->n_val, t->bytes + t->n_train));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "vocab_size", TEXT_VOCAB));
    KILN_CHECK(kiln_h5_write_attr_strs(file, "sources", t->files, (size_t)t->n_files));
    return KILN_OK;
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
    uint64_t n_val = (uint64_t)floor(val_fraction * (double)len);
    text_import t = {files, n_files, bytes, len - n_val, n_val};
    KILN_CHECK_GOTO(st, kiln_h5_write_file_atomic(out_path, fill_output, &t), done);
done:
    free(bytes);
    return st;
}
