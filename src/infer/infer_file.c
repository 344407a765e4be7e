/* The output file of `kiln infer` and its durable progress.
 *
 * Until it is complete the output is OUTPUT.partial. Rank 0 creates it in one go (as
 * OUTPUT.partial.tmp, renamed when whole): every output dataset chunked by infer.chunk_rows
 * rows and allocated in full, progress/done (one byte per chunk) and progress/crc32 (per
 * chunk: the input's crc32 and each output's), and the attributes that identify the job. After
 * that only raw data is ever written into preallocated space, so a process killed at any
 * moment leaves a file HDF5 can open. The ranks write a round of chunks collectively, flush,
 * then mark those chunks done, and flush again: a chunk marked done is on disk, and a chunk
 * not marked is simply computed again (to the same values) by the next run. When every chunk
 * is done rank 0 combines the per-chunk checksums into each dataset's crc32 attribute and the
 * input's, sets complete = 1 and renames OUTPUT.partial to OUTPUT. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/comm_mpi.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "infer_internal.h"

#define DONE_NAME "progress/done"
#define CRC_NAME "progress/crc32"

/* ---- the job's identity, stored as root attributes ---- */

typedef enum { ATTR_STR, ATTR_U64, ATTR_I64 } attr_kind;
typedef struct identity_attr {
    const char *name;
    attr_kind kind;
    const void *value;
} identity_attr;

static int identity_attrs(const infer_job *j, identity_attr *a)
{
    const infer_identity *id = &j->id;
    static const char version[] = KILN_VERSION;
    identity_attr list[] = {
        {"model", ATTR_STR, id->model},           {"model_id", ATTR_STR, id->model_id},
        {"model_sha256", ATTR_STR, id->model_sha256}, {"model_version", ATTR_I64, &id->model_version},
        {"input", ATTR_STR, id->input},           {"input_dataset", ATTR_STR, id->input_dataset},
        {"input_rows", ATTR_U64, &id->input_rows}, {"input_width", ATTR_U64, &id->input_width},
        {"input_bytes", ATTR_U64, &id->input_bytes}, {"input_mtime_ns", ATTR_I64, &id->input_mtime_ns},
        {"chunk_rows", ATTR_U64, &id->chunk_rows}, {"settings", ATTR_STR, id->settings},
        {"kiln_version", ATTR_STR, version}};
    int n = (int)(sizeof list / sizeof list[0]);
    memcpy(a, list, sizeof list);
    return n;
}

static kiln_status write_identity(hid_t f, const infer_job *j)
{
    identity_attr a[16];
    int n = identity_attrs(j, a);
    for (int i = 0; i < n; i++) {
        if (a[i].kind == ATTR_STR) KILN_CHECK(kiln_h5_write_attr_str(f, a[i].name, a[i].value));
        if (a[i].kind == ATTR_U64) KILN_CHECK(kiln_h5_write_attr_u64(f, a[i].name, *(const uint64_t *)a[i].value));
        if (a[i].kind == ATTR_I64) KILN_CHECK(kiln_h5_write_attr_i64(f, a[i].name, *(const int64_t *)a[i].value));
    }
    KILN_CHECK(kiln_h5_write_attr_str(f, "config", j->config_yaml)); /* all of it, for people */
    const char *names[INFER_MAX_OUTPUTS];
    for (int i = 0; i < j->n_out; i++) names[i] = j->out[i].name;
    KILN_CHECK(kiln_h5_write_attr_strs(f, "outputs", names, (size_t)j->n_out));
    return kiln_h5_write_attr_i64(f, "complete", 0);
}

/* KILN_ERR_ARG naming the first attribute of the file at path that differs from this job's
 * (threads, placement and the like may change between runs: they do not change the output). */
static kiln_status check_identity(hid_t f, const char *path, const infer_job *j)
{
    identity_attr a[16];
    int n = identity_attrs(j, a);
    enum { TEXT_MAX = 8192 };
    char *have = malloc(TEXT_MAX);
    KILN_CHECK_ALLOC(have);
    kiln_status st = KILN_OK;
    for (int i = 0; i < n && st == KILN_OK; i++) {
        char want[4300];
        uint64_t u = 0;
        int64_t v = 0;
        if (a[i].kind == ATTR_STR) {
            st = kiln_h5_read_attr_str(f, a[i].name, have, TEXT_MAX);
            snprintf(want, sizeof want, "%s", (const char *)a[i].value);
        } else if (a[i].kind == ATTR_U64) {
            st = kiln_h5_read_attr_u64(f, a[i].name, &u);
            snprintf(have, TEXT_MAX, "%" PRIu64, u);
            snprintf(want, sizeof want, "%" PRIu64, *(const uint64_t *)a[i].value);
        } else {
            st = kiln_h5_read_attr_i64(f, a[i].name, &v);
            snprintf(have, TEXT_MAX, "%" PRId64, v);
            snprintf(want, sizeof want, "%" PRId64, *(const int64_t *)a[i].value);
        }
        if (st == KILN_OK && strcmp(have, want) != 0)
            st = KILN_ERROR(KILN_ERR_ARG, "'%s' belongs to another job: its %s is '%s', this "
                            "run's is '%s'. Remove it to start over, or choose another --output",
                            path, a[i].name, have, want);
    }
    free(have);
    return st;
}

/* ---- creation ---- */

/* Chunked by chunk_rows rows, all storage allocated now, no fill: later writes touch raw data
 * only. No timestamps, so two runs of one job write the same bytes. */
static hid_t chunked_dcpl(const infer_job *j, int ndim, const hsize_t *dims)
{
    hsize_t chunk[2] = {j->id.chunk_rows < dims[0] ? j->id.chunk_rows : dims[0], ndim > 1 ? dims[1] : 1};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_chunk(dcpl, ndim, chunk) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        if (dcpl >= 0) H5Pclose(dcpl);
        return H5I_INVALID_HID;
    }
    return dcpl;
}

/* Progress: contiguous, allocated and zero-filled now (zero = not done). */
static hid_t zeroed_dcpl(hid_t type)
{
    static const uint32_t zero = 0;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        H5Pset_fill_value(dcpl, type, &zero) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0) {
        if (dcpl >= 0) H5Pclose(dcpl);
        return H5I_INVALID_HID;
    }
    return dcpl;
}

static kiln_status create_one(hid_t f, const char *name, hid_t ftype, int ndim, const hsize_t *dims,
                              hid_t dcpl)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), space = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5I_INVALID_HID;
    if (lcpl >= 0 && space >= 0 && dcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0)
        d = H5Dcreate2(f, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    kiln_status st = d < 0 ? KILN_H5_ERROR(KILN_ERR_HDF5, "creating dataset '%s'", name) : KILN_OK;
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    return st;
}

static kiln_status fill_new_file(hid_t f, void *ctx)
{
    infer_job *j = ctx;
    hsize_t rows = j->id.input_rows;
    for (int i = 0; i < j->n_out; i++) {
        const infer_output *o = &j->out[i];
        hsize_t dims[2] = {rows, (hsize_t)o->width};
        int ndim = o->width == 1 ? 1 : 2;
        hid_t ftype = o->mem_type == H5T_NATIVE_INT32 ? H5T_STD_I32LE : H5T_IEEE_F32LE;
        KILN_CHECK(create_one(f, o->name, ftype, ndim, dims, chunked_dcpl(j, ndim, dims)));
    }
    hsize_t done_dims[1] = {j->n_chunks}, crc_dims[2] = {j->n_chunks, (hsize_t)j->n_out + 1};
    KILN_CHECK(create_one(f, DONE_NAME, H5T_STD_U8LE, 1, done_dims, zeroed_dcpl(H5T_NATIVE_UINT8)));
    KILN_CHECK(create_one(f, CRC_NAME, H5T_STD_U32LE, 2, crc_dims, zeroed_dcpl(H5T_NATIVE_UINT32)));
    return write_identity(f, j);
}

/* ---- prepare: accept, resume or create ---- */

/* *ok = 1 when path opens as HDF5 (read-only handle in *f). */
static void try_open(const char *path, hid_t *f, int *ok)
{
    kiln_h5_quiet();
    *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    *ok = *f >= 0;
    H5Eclear2(H5E_DEFAULT);
}

static kiln_status accept_finished(infer_job *j, const char *out, int *done)
{
    hid_t f;
    int ok;
    int64_t complete = 0;
    try_open(out, &f, &ok);
    if (!ok)
        return KILN_ERROR(KILN_ERR_ARG, "output '%s' exists and is not an HDF5 file; remove it or "
                          "choose another --output", out);
    kiln_status st = kiln_h5_has_attr(f, "complete") ? kiln_h5_read_attr_i64(f, "complete", &complete)
                                                     : KILN_OK;
    if (st == KILN_OK && complete != 1)
        st = KILN_ERROR(KILN_ERR_ARG, "output '%s' exists and is not a finished `kiln infer` "
                        "output; remove it or choose another --output", out);
    if (st == KILN_OK) st = check_identity(f, out, j);
    H5Fclose(f);
    KILN_CHECK(st);
    kiln_info("'%s' is complete for this model and input already: nothing to do", out);
    *done = 1;
    return KILN_OK;
}

kiln_status infer_file_prepare(infer_job *j, int *done)
{
    const char *out = j->o->output;
    *done = 0;
    if (kiln_path_exists(out)) return accept_finished(j, out, done);
    if (kiln_path_exists(j->partial)) {
        hid_t f;
        int ok;
        try_open(j->partial, &f, &ok);
        if (ok) {
            kiln_status st = check_identity(f, j->partial, j);
            H5Fclose(f);
            KILN_CHECK(st);
            kiln_info("resuming '%s'", j->partial);
            return KILN_OK;
        }
        kiln_warn("'%s' cannot be opened (a crash while it was finished?): starting it over",
                  j->partial);
        if (unlink(j->partial) != 0)
            return KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", j->partial, strerror(errno));
    }
    return kiln_h5_write_file_atomic(j->partial, fill_new_file, j);
}

/* ---- the parallel phase ---- */

kiln_status infer_file_open(infer_job *j, hid_t *file, uint8_t *done)
{
    kiln_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    KILN_H5_CHECK(fapl, KILN_ERR_HDF5, "opening '%s' for parallel writes", j->partial);
    herr_t rc = H5Pset_fapl_mpio(fapl, kiln_comm_mpi(j->o->comm, KILN_AXIS_WORLD), MPI_INFO_NULL);
    hid_t f = rc >= 0 ? H5Fopen(j->partial, H5F_ACC_RDWR, fapl) : H5I_INVALID_HID;
    H5Pclose(fapl);
    KILN_H5_CHECK(f, KILN_ERR_IO, "cannot open '%s' for parallel writes", j->partial);
    hid_t d = H5Dopen2(f, DONE_NAME, H5P_DEFAULT);
    kiln_status st = d < 0 ? KILN_H5_ERROR(KILN_ERR_DATA, "'%s' has no %s", j->partial, DONE_NAME)
                           : kiln_h5_read_range(d, H5T_NATIVE_UINT8, H5P_DEFAULT, 0, j->n_chunks, done);
    if (d >= 0) H5Dclose(d);
    if (st != KILN_OK) {
        H5Fclose(f);
        return st;
    }
    *file = f;
    return KILN_OK;
}

/* Collective write of rows [first, first+rows) of dataset `name` (rows 0: this rank joins
 * without data). */
static kiln_status write_rows(hid_t file, const char *name, hid_t type, hid_t dxpl,
                              uint64_t first, uint64_t rows, uint64_t width, const void *buf)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "opening dataset '%s' of the output", name);
    kiln_status st = kiln_h5_write_range(d, type, dxpl, first * width, rows * width, buf);
    H5Dclose(d);
    return st;
}

static kiln_status flush(hid_t file, const infer_job *j)
{
    KILN_H5_CHECK(H5Fflush(file, H5F_SCOPE_GLOBAL), KILN_ERR_IO, "cannot flush '%s'", j->partial);
    return KILN_OK;
}

kiln_status infer_file_write_round(infer_job *j, hid_t file, uint64_t c, const uint32_t *crcs)
{
    int mine = c != UINT64_MAX;
    uint64_t rows = mine ? infer_chunk_rows(j, c) : 0, first = mine ? c * j->id.chunk_rows : 0;
    uint8_t one = 1;
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    KILN_H5_CHECK(dxpl, KILN_ERR_HDF5, "writing '%s'", j->partial);
    kiln_status st = H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0
                         ? KILN_H5_ERROR(KILN_ERR_HDF5, "collective writes to '%s'", j->partial)
                         : KILN_OK;
    for (int i = 0; i < j->n_out && st == KILN_OK; i++) {
        const infer_output *o = &j->out[i];
        st = write_rows(file, o->name, o->mem_type, dxpl, first, rows, (uint64_t)o->width, o->buf);
    }
    if (st == KILN_OK) st = flush(file, j); /* the data is on disk before it is marked done */
    if (st == KILN_OK)
        st = write_rows(file, CRC_NAME, H5T_NATIVE_UINT32, dxpl, mine ? c : 0, mine, (uint64_t)j->n_out + 1, crcs);
    if (st == KILN_OK) st = write_rows(file, DONE_NAME, H5T_NATIVE_UINT8, dxpl, mine ? c : 0, mine, 1, &one);
    if (st == KILN_OK) st = flush(file, j);
    H5Pclose(dxpl);
    return st;
}

kiln_status infer_file_close(hid_t file)
{
    KILN_H5_CHECK(H5Fclose(file), KILN_ERR_IO, "cannot close the output");
    return KILN_OK;
}

/* ---- finish ---- */

/* crc32 of each column of progress/crc32 over all chunks, in row order: the whole input's and
 * each whole dataset's. */
static kiln_status combine_crcs(infer_job *j, hid_t f, uint32_t *total)
{
    size_t cols = (size_t)j->n_out + 1;
    uint32_t *crc = malloc(j->n_chunks * cols * sizeof *crc);
    KILN_CHECK_ALLOC(crc);
    hid_t d = H5Dopen2(f, CRC_NAME, H5P_DEFAULT);
    kiln_status st = d < 0 ? KILN_H5_ERROR(KILN_ERR_DATA, "'%s' has no %s", j->partial, CRC_NAME)
                           : kiln_h5_read_range(d, H5T_NATIVE_UINT32, H5P_DEFAULT, 0, j->n_chunks * cols, crc);
    if (d >= 0) H5Dclose(d);
    for (size_t k = 0; k < cols && st == KILN_OK; k++) {
        uint32_t c = 0;
        for (uint64_t ch = 0; ch < j->n_chunks; ch++) {
            uint64_t values = infer_chunk_rows(j, ch) * (k ? (uint64_t)j->out[k - 1].width : (uint64_t)j->width);
            c = kiln_crc32_combine(c, crc[ch * cols + k], values * (k ? 4 : j->in_elem));
        }
        total[k] = c;
    }
    free(crc);
    return st;
}

static kiln_status mark_complete(infer_job *j, hid_t f)
{
    uint32_t total[INFER_MAX_OUTPUTS + 1];
    KILN_CHECK(combine_crcs(j, f, total));
    KILN_CHECK(kiln_h5_write_attr_u64(f, "input_crc32", total[0]));
    for (int i = 0; i < j->n_out; i++) {
        hid_t d = H5Dopen2(f, j->out[i].name, H5P_DEFAULT);
        KILN_H5_CHECK(d, KILN_ERR_HDF5, "opening '%s' in '%s'", j->out[i].name, j->partial);
        kiln_status st = kiln_h5_write_attr_u64(d, "crc32", total[i + 1]);
        H5Dclose(d);
        KILN_CHECK(st);
    }
    return kiln_h5_write_attr_i64(f, "complete", 1);
}

kiln_status infer_file_finish(infer_job *j)
{
    kiln_h5_quiet();
    hid_t f = H5Fopen(j->partial, H5F_ACC_RDWR, H5P_DEFAULT);
    KILN_H5_CHECK(f, KILN_ERR_IO, "cannot reopen '%s' to finish it", j->partial);
    kiln_status st = mark_complete(j, f);
    if (H5Fclose(f) < 0 && st == KILN_OK)
        st = KILN_H5_ERROR(KILN_ERR_IO, "cannot close '%s'", j->partial);
    KILN_CHECK(st);
    /* not kiln_commit_tmp_file: a failed rename must keep the finished work */
    KILN_CHECK(kiln_file_fsync(j->partial));
    if (rename(j->partial, j->o->output) != 0)
        return KILN_ERROR(KILN_ERR_IO, "cannot rename '%s' to '%s': %s", j->partial, j->o->output,
                          strerror(errno));
    return kiln_fsync_parent_dir(j->o->output);
}
