/* The file of a chunked output (kiln/chunked.h): OUTPUT.partial with every dataset allocated
 * in full, progress/done (one byte per chunk) and progress/crc32 (per chunk: the source's crc32
 * and each dataset's), and the attributes that identify the job; then collective writes into
 * preallocated space, and at the end the checksums, complete = 1 and the rename to OUTPUT. */
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
#include "chunked_internal.h"

#define DONE_NAME "progress/done"
#define CRC_NAME "progress/crc32"

uint64_t kiln_chunked_rows(const chunked_job *j, uint64_t c)
{
    uint64_t first = c * j->spec->chunk_rows, left = j->spec->rows - first;
    return left < j->spec->chunk_rows ? left : j->spec->chunk_rows;
}

/* ---- the job's identity, stored as root attributes ---- */

static kiln_status write_identity(hid_t f, const kiln_chunked_spec *s)
{
    for (int i = 0; i < s->n_identity; i++) {
        const kiln_chunked_attr *a = &s->identity[i];
        if (a->kind == KILN_ATTR_STR) KILN_CHECK(kiln_h5_write_attr_str(f, a->name, a->value));
        if (a->kind == KILN_ATTR_U64) KILN_CHECK(kiln_h5_write_attr_u64(f, a->name, *(const uint64_t *)a->value));
        if (a->kind == KILN_ATTR_I64) KILN_CHECK(kiln_h5_write_attr_i64(f, a->name, *(const int64_t *)a->value));
    }
    KILN_CHECK(kiln_h5_write_attr_str(f, "config", s->config ? s->config : ""));
    const char **names = calloc((size_t)s->n_datasets + 1, sizeof *names);
    KILN_CHECK_ALLOC(names);
    for (int i = 0; i < s->n_datasets; i++) names[i] = s->datasets[i].name;
    kiln_status st = kiln_h5_write_attr_strs(f, "outputs", names, (size_t)s->n_datasets);
    free(names);
    KILN_CHECK(st);
    return kiln_h5_write_attr_i64(f, "complete", 0);
}

/* Attribute a of file f as text into have (and the job's value into want). */
static kiln_status attr_texts(hid_t f, const kiln_chunked_attr *a, char *have, size_t have_len,
                              char *want, size_t want_len)
{
    uint64_t u = 0;
    int64_t v = 0;
    if (!kiln_h5_has_attr(f, a->name)) {
        snprintf(have, have_len, "(none)");
        snprintf(want, want_len, "(set)");
        return KILN_OK;
    }
    if (a->kind == KILN_ATTR_STR) {
        snprintf(want, want_len, "%s", (const char *)a->value);
        return kiln_h5_read_attr_str(f, a->name, have, have_len);
    }
    if (a->kind == KILN_ATTR_U64) {
        KILN_CHECK(kiln_h5_read_attr_u64(f, a->name, &u));
        snprintf(have, have_len, "%" PRIu64, u);
        snprintf(want, want_len, "%" PRIu64, *(const uint64_t *)a->value);
        return KILN_OK;
    }
    KILN_CHECK(kiln_h5_read_attr_i64(f, a->name, &v));
    snprintf(have, have_len, "%" PRId64, v);
    snprintf(want, want_len, "%" PRId64, *(const int64_t *)a->value);
    return KILN_OK;
}

/* KILN_ERR_ARG naming the first identity attribute of the file at path that differs from this
 * job's (threads, placement and the like may change between runs: they change no output). */
static kiln_status check_identity(hid_t f, const char *path, const chunked_job *j)
{
    enum { TEXT_MAX = 8192 };
    char *have = malloc(TEXT_MAX), *want = malloc(TEXT_MAX);
    kiln_status st = have && want ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "checking '%s'", path);
    for (int i = 0; i < j->spec->n_identity && st == KILN_OK; i++) {
        const kiln_chunked_attr *a = &j->spec->identity[i];
        st = attr_texts(f, a, have, TEXT_MAX, want, TEXT_MAX);
        if (st == KILN_OK && strcmp(have, want) != 0)
            st = KILN_ERROR(KILN_ERR_ARG, "'%s' belongs to another job: its %s is '%s', this "
                            "run's is '%s'. Remove it to start over, or choose another %s",
                            path, a->name, have, want, j->spec->output_flag);
    }
    free(have);
    free(want);
    return st;
}

/* ---- creation ---- */

/* Chunked by chunk_rows rows, all storage allocated now, no fill: later writes touch raw data
 * only. No timestamps, so two runs of one job write the same bytes. */
static hid_t chunked_dcpl(const chunked_job *j, int ndim, const hsize_t *dims)
{
    uint64_t rows = j->spec->chunk_rows;
    hsize_t chunk[2] = {rows < dims[0] ? rows : dims[0], ndim > 1 ? dims[1] : 1};
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

/* The little-endian file type of a native memory type. */
static hid_t file_type(hid_t mem)
{
    size_t size = H5Tget_size(mem);
    if (H5Tget_class(mem) == H5T_FLOAT) return size == 8 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
    int is_signed = H5Tget_sign(mem) == H5T_SGN_2;
    switch (size) {
    case 1: return is_signed ? H5T_STD_I8LE : H5T_STD_U8LE;
    case 2: return is_signed ? H5T_STD_I16LE : H5T_STD_U16LE;
    case 4: return is_signed ? H5T_STD_I32LE : H5T_STD_U32LE;
    default: return is_signed ? H5T_STD_I64LE : H5T_STD_U64LE;
    }
}

static kiln_status fill_new_file(hid_t f, void *ctx)
{
    chunked_job *j = ctx;
    const kiln_chunked_spec *s = j->spec;
    for (int i = 0; i < s->n_datasets; i++) {
        const kiln_chunked_dataset *o = &s->datasets[i];
        hsize_t dims[2] = {s->rows, (hsize_t)o->width};
        int ndim = o->width == 1 ? 1 : 2;
        KILN_CHECK(create_one(f, o->name, file_type(o->mem_type), ndim, dims, chunked_dcpl(j, ndim, dims)));
    }
    hsize_t done_dims[1] = {j->n_chunks}, crc_dims[2] = {j->n_chunks, (hsize_t)s->n_datasets + 1};
    KILN_CHECK(create_one(f, DONE_NAME, H5T_STD_U8LE, 1, done_dims, zeroed_dcpl(H5T_NATIVE_UINT8)));
    KILN_CHECK(create_one(f, CRC_NAME, H5T_STD_U32LE, 2, crc_dims, zeroed_dcpl(H5T_NATIVE_UINT32)));
    return write_identity(f, s);
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

static kiln_status accept_finished(chunked_job *j, const char *out, int *done)
{
    hid_t f;
    int ok;
    int64_t complete = 0;
    try_open(out, &f, &ok);
    if (!ok)
        return KILN_ERROR(KILN_ERR_ARG, "output '%s' exists and is not an HDF5 file; remove it or "
                          "choose another %s", out, j->spec->output_flag);
    kiln_status st = kiln_h5_has_attr(f, "complete") ? kiln_h5_read_attr_i64(f, "complete", &complete)
                                                     : KILN_OK;
    if (st == KILN_OK && complete != 1)
        st = KILN_ERROR(KILN_ERR_ARG, "output '%s' exists and is not a finished %s output; remove "
                        "it or choose another %s", out, j->spec->job, j->spec->output_flag);
    if (st == KILN_OK) st = check_identity(f, out, j);
    H5Fclose(f);
    KILN_CHECK(st);
    kiln_info("'%s' is complete for this job already: nothing to do", out);
    *done = 1;
    return KILN_OK;
}

/* Every byte of the preallocated datasets taken on disk now: the collective writes that fill
 * them then cannot run out of space half-way on one rank. A disk too small for the output is
 * an error here, and a partial file just created goes (nothing of it is written yet). */
static kiln_status reserve(chunked_job *j, int created)
{
    kiln_status st = kiln_file_preallocate(j->partial, 0, "output");
    if (st != KILN_OK && created && unlink(j->partial) != 0)
        kiln_error_trace(__FILE__, __LINE__, "unlink(partial)"); /* keep the space error */
    return st;
}

kiln_status kiln_chunked_prepare(chunked_job *j, int *done)
{
    const char *out = j->spec->output;
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
            return reserve(j, 0);
        }
        kiln_warn("'%s' cannot be opened (a crash while it was finished?): starting it over",
                  j->partial);
        if (unlink(j->partial) != 0)
            return KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", j->partial, strerror(errno));
    }
    KILN_CHECK(kiln_h5_write_file_atomic(j->partial, fill_new_file, j));
    return reserve(j, 1);
}

/* ---- the parallel phase ---- */

kiln_status kiln_chunked_open(chunked_job *j, hid_t *file, uint8_t *done)
{
    kiln_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    KILN_H5_CHECK(fapl, KILN_ERR_HDF5, "opening '%s' for parallel writes", j->partial);
    herr_t rc = H5Pset_fapl_mpio(fapl, kiln_comm_mpi(j->comm, KILN_AXIS_WORLD), MPI_INFO_NULL);
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

static kiln_status flush(hid_t file, const chunked_job *j)
{
    KILN_H5_CHECK(H5Fflush(file, H5F_SCOPE_GLOBAL), KILN_ERR_IO, "cannot flush '%s'", j->partial);
    return KILN_OK;
}

kiln_status kiln_chunked_write_round(chunked_job *j, hid_t file, uint64_t c, const uint32_t *crcs)
{
    const kiln_chunked_spec *s = j->spec;
    int mine = c != UINT64_MAX;
    uint64_t rows = mine ? kiln_chunked_rows(j, c) : 0, first = mine ? c * s->chunk_rows : 0;
    uint8_t one = 1;
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    KILN_H5_CHECK(dxpl, KILN_ERR_HDF5, "writing '%s'", j->partial);
    kiln_status st = H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0
                         ? KILN_H5_ERROR(KILN_ERR_HDF5, "collective writes to '%s'", j->partial)
                         : KILN_OK;
    for (int i = 0; i < s->n_datasets && st == KILN_OK; i++) {
        const kiln_chunked_dataset *o = &s->datasets[i];
        st = write_rows(file, o->name, o->mem_type, dxpl, first, rows, (uint64_t)o->width, j->bufs[i]);
    }
    if (st == KILN_OK) st = flush(file, j); /* the data is on disk before it is marked done */
    if (st == KILN_OK)
        st = write_rows(file, CRC_NAME, H5T_NATIVE_UINT32, dxpl, mine ? c : 0, mine,
                        (uint64_t)s->n_datasets + 1, crcs);
    if (st == KILN_OK) st = write_rows(file, DONE_NAME, H5T_NATIVE_UINT8, dxpl, mine ? c : 0, mine, 1, &one);
    if (st == KILN_OK) st = flush(file, j);
    H5Pclose(dxpl);
    return st;
}

kiln_status kiln_chunked_close(hid_t file)
{
    KILN_H5_CHECK(H5Fclose(file), KILN_ERR_IO, "cannot close the output");
    return KILN_OK;
}

/* ---- finish ---- */

/* crc32 of each column of progress/crc32 over all chunks, in row order: the whole source's and
 * each whole dataset's. */
static kiln_status combine_crcs(chunked_job *j, hid_t f, uint32_t *total)
{
    const kiln_chunked_spec *s = j->spec;
    size_t cols = (size_t)s->n_datasets + 1;
    uint32_t *crc = malloc(j->n_chunks * cols * sizeof *crc);
    KILN_CHECK_ALLOC(crc);
    hid_t d = H5Dopen2(f, CRC_NAME, H5P_DEFAULT);
    kiln_status st = d < 0 ? KILN_H5_ERROR(KILN_ERR_DATA, "'%s' has no %s", j->partial, CRC_NAME)
                           : kiln_h5_read_range(d, H5T_NATIVE_UINT32, H5P_DEFAULT, 0, j->n_chunks * cols, crc);
    if (d >= 0) H5Dclose(d);
    for (size_t k = 0; k < cols && st == KILN_OK; k++) {
        uint64_t row_bytes = k ? (uint64_t)s->datasets[k - 1].width * j->elem[k - 1]
                               : s->source_row_bytes;
        uint32_t c = 0;
        for (uint64_t ch = 0; ch < j->n_chunks; ch++)
            c = kiln_crc32_combine(c, crc[ch * cols + k], kiln_chunked_rows(j, ch) * row_bytes);
        total[k] = c;
    }
    free(crc);
    return st;
}

static kiln_status mark_complete(chunked_job *j, hid_t f)
{
    const kiln_chunked_spec *s = j->spec;
    uint32_t *total = calloc((size_t)s->n_datasets + 1, sizeof *total);
    KILN_CHECK_ALLOC(total);
    kiln_status st = combine_crcs(j, f, total);
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(f, "input_crc32", total[0]);
    for (int i = 0; i < s->n_datasets && st == KILN_OK; i++) {
        hid_t d = H5Dopen2(f, s->datasets[i].name, H5P_DEFAULT);
        if (d < 0) {
            st = KILN_H5_ERROR(KILN_ERR_HDF5, "opening '%s' in '%s'", s->datasets[i].name, j->partial);
            break;
        }
        st = kiln_h5_write_attr_u64(d, "crc32", total[i + 1]);
        H5Dclose(d);
    }
    free(total);
    KILN_CHECK(st);
    return kiln_h5_write_attr_i64(f, "complete", 1);
}

kiln_status kiln_chunked_finish(chunked_job *j)
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
    if (rename(j->partial, j->spec->output) != 0)
        return KILN_ERROR(KILN_ERR_IO, "cannot rename '%s' to '%s': %s", j->partial,
                          j->spec->output, strerror(errno));
    return kiln_fsync_parent_dir(j->spec->output);
}
