/* Small HDF5 and file helpers shared by checkpoints, dataset importers and readers.
 *
 * HDF5 failures become a kiln_status whose message names the file and object and ends with
 * HDF5's own innermost error description; HDF5's automatic printing to stderr is turned off
 * (kiln_h5_quiet) so a failure is reported once, by whoever handles the status.
 * Helpers that take an hid_t name the object and its file from the id itself.
 * Content problems (missing attribute or dataset, wrong type or shape) are KILN_ERR_DATA;
 * failures inside the HDF5 library are KILN_ERR_HDF5; file-system failures are KILN_ERR_IO.
 * Plain file helpers (paths, mkdir -p, fsync, committing a tmp file) are in kiln/fs.h. */
#ifndef KILN_H5UTIL_H
#define KILN_H5UTIL_H
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/status.h"

#define KILN_H5_MAX_DIMS 8
#define KILN_H5_ANY UINT64_MAX /* a shape entry that matches any extent (printed "N") */

/* Turns off HDF5's automatic error printing for the calling thread. Cheap; every helper here
 * calls it, and code that calls HDF5 directly calls it before its first HDF5 call. */
void kiln_h5_quiet(void);

/* Records `code` with the formatted message followed by ": <HDF5's innermost error>" when
 * HDF5's error stack holds one. Call it right after the failing HDF5 call. */
kiln_status kiln_h5_error_at(kiln_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define KILN_H5_ERROR(code, ...) kiln_h5_error_at((code), __FILE__, __LINE__, __VA_ARGS__)

/* Return KILN_H5_ERROR(code, ...) when an HDF5 result (hid_t or herr_t) is negative. */
#define KILN_H5_CHECK(ret, code, ...)                                                      \
    do {                                                                                   \
        if ((ret) < 0) return KILN_H5_ERROR((code), __VA_ARGS__);                          \
    } while (0)
/* Same, but store the status in st and jump to a cleanup label. */
#define KILN_H5_CHECK_GOTO(ret, st, label, code, ...)                                      \
    do {                                                                                   \
        if ((ret) < 0) {                                                                   \
            (st) = KILN_H5_ERROR((code), __VA_ARGS__);                                     \
            goto label;                                                                    \
        }                                                                                  \
    } while (0)

/* "'/train/x' in 'data.h5'" for any file, group, dataset or attribute id. */
void kiln_h5_describe(hid_t obj, char *buf, size_t len);
/* "uint8", "int64", "float32", "string", "compound", ... */
void kiln_h5_type_name(hid_t type, char *buf, size_t len);
/* "[100,28,28]"; KILN_H5_ANY entries print as N. */
void kiln_h5_format_shape(const uint64_t *shape, int ndim, char *buf, size_t len);

/* 1 when every component of `path` (relative to loc, or absolute) exists as a link, else 0. */
int kiln_h5_exists(hid_t loc, const char *path);
/* Opens path read-only; a missing or unreadable file, a directory, or a file HDF5 cannot open
 * is an error of `code` naming `what` ("dataset file", "checkpoint") and the path. */
kiln_status kiln_h5_open_file(const char *path, const char *what, kiln_status code, hid_t *out);
/* Rank (at most KILN_H5_MAX_DIMS) and extents of an open dataset. */
kiln_status kiln_h5_dataset_shape(hid_t dset, int *ndim, uint64_t shape[KILN_H5_MAX_DIMS]);
/* Opens dataset `name` and checks its element type against `type` (class, size, signedness)
 * and its shape against shape[ndim] (KILN_H5_ANY matches any extent). On mismatch:
 * "dataset '/train/x' in 'f.h5': expected uint8 [N,784], found float32 [100,28,28]"; when it
 * is missing: "no dataset '/train/x' in 'f.h5' (expected uint8 [N,784])". */
kiln_status kiln_h5_open_dataset(hid_t loc, const char *name, hid_t type, int ndim,
                                 const uint64_t *shape, hid_t *out);
/* Same, but any integer type passes (the caller reads through a conversion, e.g. to int64);
 * messages say "expected integer [N]". */
kiln_status kiln_h5_open_int_dataset(hid_t loc, const char *name, int ndim,
                                     const uint64_t *shape, hid_t *out);

/* Creates dataset `name` (and any missing parent groups) of file type ftype and shape
 * shape[ndim], contiguous and uncompressed so that a whole-dataset read is one read. */
kiln_status kiln_h5_create_dataset(hid_t loc, const char *name, hid_t ftype, int ndim,
                                   const uint64_t *shape, hid_t *out);
/* Creates it as above with its space allocated now and left unfilled: a file that many ranks
 * then open with MPI-IO and write their rows into (kiln_h5_write_range), where nothing may
 * allocate. */
kiln_status kiln_h5_allocate_dataset(hid_t loc, const char *name, hid_t ftype, int ndim,
                                     const uint64_t *shape);
/* Creates it as above and writes all of it from data (memory type mtype). */
kiln_status kiln_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                                  const uint64_t *shape, const void *data);

/* A 1-D dataset of variable-length UTF-8 strings (h5py reads them as str), written whole; read
 * whole into *out (n of them, NULL ones as ""; kiln_h5_free_strings), with an error naming the
 * dataset and file when it is missing or not strings. */
kiln_status kiln_h5_write_strings(hid_t loc, const char *name, const char *const *values, uint64_t n);
kiln_status kiln_h5_read_strings(hid_t loc, const char *name, const char *file, char ***out, uint64_t *n);
void kiln_h5_free_strings(char **s, uint64_t n);

/* Writes a new HDF5 file at path without ever leaving a partial one there: fill() writes
 * PATH.tmp, which is closed and committed (kiln_commit_tmp_file in kiln/fs.h) when fill
 * succeeds and removed when anything fails. */
typedef kiln_status (*kiln_h5_fill_fn)(hid_t file, void *ctx);
kiln_status kiln_h5_write_file_atomic(const char *path, kiln_h5_fill_fn fill, void *ctx);

/* Flat element range [start, start+count) of a dataset in row-major order, selected as the
 * union (H5S_SELECT_OR) of a partial first row, the whole rows between (themselves a flat range
 * of the leading dims, selected the same way) and a partial last row: three hyperslabs for a
 * 2-D dataset, at most 2*ndim-1 in general. dxpl: H5P_DEFAULT, or a collective MPI-IO
 * transfer list when every rank writes its own range of one dataset. */
kiln_status kiln_h5_read_range(hid_t dset, hid_t mem_type, hid_t dxpl, uint64_t start,
                               uint64_t count, void *buf);
kiln_status kiln_h5_write_range(hid_t dset, hid_t mem_type, hid_t dxpl, uint64_t start,
                                uint64_t count, const void *buf);

/* Scalar attributes on a file, group or dataset (and one 1-D string array). Writing replaces an
 * existing attribute; strings are stored as variable-length UTF-8 (no size limit, read by h5py
 * as str), and reading accepts fixed-length strings too. Numeric reads convert within a class
 * (int32 -> int64) but not across classes. */
int kiln_h5_has_attr(hid_t obj, const char *name);
kiln_status kiln_h5_write_attr_str(hid_t obj, const char *name, const char *value);
kiln_status kiln_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len);
kiln_status kiln_h5_write_attr_strs(hid_t obj, const char *name, const char *const *values,
                                    size_t n);
kiln_status kiln_h5_write_attr_i64(hid_t obj, const char *name, int64_t value);
kiln_status kiln_h5_read_attr_i64(hid_t obj, const char *name, int64_t *value);
kiln_status kiln_h5_write_attr_u64(hid_t obj, const char *name, uint64_t value);
kiln_status kiln_h5_read_attr_u64(hid_t obj, const char *name, uint64_t *value);
kiln_status kiln_h5_write_attr_f64(hid_t obj, const char *name, double value);
kiln_status kiln_h5_read_attr_f64(hid_t obj, const char *name, double *value);

/* zlib CRC-32 (the one h5py users get from zlib.crc32), for buffers of any size; start from
 * crc 0. combine gives crc(A || B) from crc(A), crc(B) and len(B), so ranks can checksum
 * their ranges of one tensor independently. */
uint32_t kiln_crc32(uint32_t crc, const void *buf, size_t len);
uint32_t kiln_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* CRC-32 and size of a whole file. */
kiln_status kiln_file_crc32(const char *path, uint32_t *crc, uint64_t *size);
/* The same of part `part` of `parts` equal byte ranges (*len bytes; *file_size, when not NULL,
 * the whole file's): ranks checksum a file together, combining their parts in order. */
kiln_status kiln_file_crc32_part(const char *path, int part, int parts, uint32_t *crc, uint64_t *len,
                                 uint64_t *file_size);

#endif
