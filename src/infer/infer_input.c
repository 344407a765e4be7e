/* The rows `kiln infer` scores: one 2-D dataset of the input file, checked against the model
 * before any output exists, then read a chunk at a time by whichever rank owns the chunk
 * (every rank opens the file read-only on its own). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "infer_internal.h"

uint64_t kiln_infer_chunk_rows(const infer_job *j, uint64_t c)
{
    uint64_t first = c * j->id.chunk_rows, left = j->id.input_rows - first;
    return left < j->id.chunk_rows ? left : j->id.chunk_rows;
}

/* The memory type rows are read as: uint8 or float32 pixels, int32 tokens. */
static kiln_status pick_type(infer_job *j, hid_t ftype, const char *name, const char *path)
{
    H5T_class_t cls = H5Tget_class(ftype);
    size_t size = H5Tget_size(ftype);
    char found[32];
    kiln_h5_type_name(ftype, found, sizeof found);
    if (j->is_lm && cls == H5T_INTEGER) {
        j->in_type = H5T_NATIVE_INT32;
        j->in_elem = sizeof(int32_t);
    } else if (!j->is_lm && cls == H5T_INTEGER && size == 1 && H5Tget_sign(ftype) == H5T_SGN_NONE) {
        j->in_type = H5T_NATIVE_UINT8;
        j->in_elem = 1;
    } else if (!j->is_lm && cls == H5T_FLOAT && size == 4) {
        j->in_type = H5T_NATIVE_FLOAT;
        j->in_elem = sizeof(float);
    } else {
        return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s' is %s; the %s model '%s' takes %s",
                          name, path, found, j->is_lm ? "GPT" : "classifier", j->o->model,
                          j->is_lm ? "integer tokens" : "uint8 or float32 rows");
    }
    return KILN_OK;
}

static kiln_status check_shape(infer_job *j, const char *name, const char *path)
{
    uint64_t shape[KILN_H5_MAX_DIMS];
    int nd;
    char found[128];
    KILN_CHECK(kiln_h5_dataset_shape(j->in_dset, &nd, shape));
    kiln_h5_format_shape(shape, nd, found, sizeof found);
    int want = kiln_model_in_dim(j->model);
    if (nd != 2 || shape[0] == 0)
        return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s' has shape %s; expected [N,%s%d] "
                          "with N > 0", name, path, found, j->is_lm ? "W<=" : "", want);
    if (!j->is_lm && shape[1] != (uint64_t)want)
        return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s' has rows of %" PRIu64 " values "
                          "(shape %s), but model '%s' takes %d", name, path, shape[1], found,
                          j->o->model, want);
    if (j->is_lm && (shape[1] < 2 || shape[1] > (uint64_t)want))
        return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s' holds sequences of %" PRIu64
                          " tokens (shape %s), but model '%s' takes 2 to %d (its block_size)",
                          name, path, shape[1], found, j->o->model, want);
    j->width = (int)shape[1];
    j->id.input_rows = shape[0];
    j->id.input_width = shape[1];
    return KILN_OK;
}

static kiln_status open_dataset(infer_job *j, const char *path)
{
    const char *given = j->cfg.infer.dataset;
    char *name = j->id.input_dataset;
    KILN_CHECK(kiln_path_format(name, sizeof j->id.input_dataset, "%s%s", given[0] == '/' ? "" : "/",
                                given[0] ? given : kiln_model_kind_of(j->model)->infer_dataset));
    if (!kiln_h5_exists(j->in_file, name))
        return KILN_ERROR(KILN_ERR_DATA, "no dataset '%s' in '%s' (set infer.dataset to the "
                          "dataset holding the rows, e.g. --set infer.dataset=test/x)", name, path);
    kiln_h5_quiet();
    j->in_dset = H5Dopen2(j->in_file, name, H5P_DEFAULT);
    KILN_H5_CHECK(j->in_dset, KILN_ERR_DATA, "'%s' in '%s' is not a readable dataset", name, path);
    hid_t ftype = H5Dget_type(j->in_dset);
    KILN_H5_CHECK(ftype, KILN_ERR_HDF5, "reading the type of '%s' in '%s'", name, path);
    kiln_status st = pick_type(j, ftype, name, path);
    H5Tclose(ftype);
    KILN_CHECK(st);
    return check_shape(j, name, path);
}

kiln_status kiln_infer_open_input(infer_job *j)
{
    const char *path = j->o->input;
    struct stat sb;
    j->in_file = j->in_dset = H5I_INVALID_HID;
    if (stat(path, &sb) != 0)
        return KILN_ERROR(KILN_ERR_DATA, "input '%s': %s", path, strerror(errno));
    if (!realpath(path, j->id.input)) snprintf(j->id.input, sizeof j->id.input, "%s", path);
    j->id.input_bytes = (uint64_t)sb.st_size;
    j->id.input_mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    kiln_h5_quiet();
    j->in_file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    KILN_H5_CHECK(j->in_file, KILN_ERR_DATA, "input '%s' is not a readable HDF5 file", path);
    return open_dataset(j, path);
}

void kiln_infer_close_input(infer_job *j)
{
    if (j->in_dset >= 0) H5Dclose(j->in_dset);
    if (j->in_file >= 0) H5Fclose(j->in_file);
    free(j->in_raw);
    j->in_raw = NULL;
}

kiln_status kiln_infer_read_chunk(infer_job *j, uint64_t c, uint32_t *crc)
{
    uint64_t rows = kiln_infer_chunk_rows(j, c), W = (uint64_t)j->width;
    KILN_CHECK(kiln_h5_read_range(j->in_dset, j->in_type, H5P_DEFAULT, c * j->id.chunk_rows * W,
                                  rows * W, j->in_raw));
    *crc = kiln_crc32(0, j->in_raw, rows * W * j->in_elem);
    return KILN_OK;
}
