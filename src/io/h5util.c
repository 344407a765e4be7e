/* HDF5 and file helpers shared by checkpoints, importers and readers (see kiln/h5util.h). */
#include "kiln/h5util.h"
#include "kiln/runtime.h"
#include "kiln/fs.h"
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

void kiln_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* Walking upward visits the most specific error first; that one says what actually went
 * wrong ("truncated file: eof = ..."), the API-level ones only that something did. A failed
 * system call's description is a dump ("file write failed: time = ..., errno = 28, error
 * message = 'No space left on device', buf = ..."): only its error message is kept. */
static herr_t innermost_error(unsigned n, const H5E_error2_t *err, void *out)
{
    if (n != 0 || !err->desc) return 0;
    const char *os = strstr(err->desc, "error message = '");
    if (os) {
        os += strlen("error message = '");
        const char *what = strstr(err->desc, " failed");
        int what_len = what ? (int)(what - err->desc) : 0;
        snprintf(out, 512, "%.*s%s%.*s", what_len, err->desc, what_len ? ": " : "",
                 (int)strcspn(os, "'"), os);
    } else {
        snprintf(out, 512, "%s", err->desc);
    }
    return 0;
}

kiln_status kiln_h5_error_at(kiln_status code, const char *file, int line, const char *fmt, ...)
{
    char msg[2048], h5[512] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, h5);
    H5Eclear2(H5E_DEFAULT);
    if (h5[0]) return kiln_error_at(code, file, line, "%s: %s", msg, h5);
    return kiln_error_at(code, file, line, "%s", msg);
}

kiln_status kiln_h5_open_file(const char *path, const char *what, kiln_status code, hid_t *out)
{
    struct stat sb;
    *out = H5I_INVALID_HID;
    if (stat(path, &sb) != 0 || access(path, R_OK) != 0)
        return KILN_ERROR(code, "%s '%s': %s", what, path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return KILN_ERROR(code, "%s '%s' is a directory, not an HDF5 file", what, path);
    kiln_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    KILN_H5_CHECK(f, code, "%s '%s' cannot be opened as HDF5 (truncated or damaged)", what, path);
    *out = f;
    return KILN_OK;
}

void kiln_h5_describe(hid_t obj, char *buf, size_t len)
{
    char file[PATH_MAX] = "?", name[1024] = "?";
    if (H5Fget_name(obj, file, sizeof file) < 0) strcpy(file, "?");
    if (H5Iget_name(obj, name, sizeof name) <= 0) strcpy(name, "?");
    snprintf(buf, len, "'%s' in '%s'", name, file);
}

void kiln_h5_type_name(hid_t type, char *buf, size_t len)
{
    size_t bits = 8 * H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    case H5T_ARRAY: snprintf(buf, len, "array"); break;
    case H5T_VLEN: snprintf(buf, len, "vlen"); break;
    default: snprintf(buf, len, "opaque/other"); break;
    }
}

void kiln_h5_format_shape(const uint64_t *shape, int ndim, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && used < len; d++) {
        const char *sep = d ? "," : "";
        if (shape[d] == KILN_H5_ANY)
            used += (size_t)snprintf(buf + used, len - used, "%sN", sep);
        else
            used += (size_t)snprintf(buf + used, len - used, "%s%llu", sep,
                                     (unsigned long long)shape[d]);
    }
    if (used < len) snprintf(buf + used, len - used, "]");
}

int kiln_h5_exists(hid_t loc, const char *path)
{
    kiln_h5_quiet();
    char prefix[1024];
    if (strlen(path) >= sizeof prefix) return 0;
    /* H5Lexists fails rather than answers 0 when an intermediate group is missing. */
    for (const char *p = path; (p = strchr(p, '/')) != NULL; p++) {
        if (p == path) continue; /* leading '/' = the root, which exists */
        memcpy(prefix, path, (size_t)(p - path));
        prefix[p - path] = '\0';
        if (H5Lexists(loc, prefix, H5P_DEFAULT) <= 0) return 0;
    }
    return strcmp(path, "/") == 0 || H5Lexists(loc, path, H5P_DEFAULT) > 0;
}

kiln_status kiln_h5_dataset_shape(hid_t dset, int *ndim, uint64_t shape[KILN_H5_MAX_DIMS])
{
    char what[1200];
    hsize_t dims[KILN_H5_MAX_DIMS];
    kiln_h5_quiet();
    kiln_h5_describe(dset, what, sizeof what);
    hid_t space = H5Dget_space(dset);
    KILN_H5_CHECK(space, KILN_ERR_HDF5, "reading the shape of dataset %s", what);
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd >= 0 && nd <= KILN_H5_MAX_DIMS) nd = H5Sget_simple_extent_dims(space, dims, NULL);
    kiln_status st = KILN_OK;
    if (nd < 0)
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "reading the shape of dataset %s", what);
    else if (nd > KILN_H5_MAX_DIMS)
        st = KILN_ERROR(KILN_ERR_DATA, "dataset %s has %d dimensions, at most %d supported", what,
                        nd, KILN_H5_MAX_DIMS);
    H5Sclose(space);
    if (st != KILN_OK) return st;
    *ndim = nd;
    for (int d = 0; d < nd; d++) shape[d] = dims[d];
    return KILN_OK;
}

/* want < 0 stands for "any integer type". */
static int types_match(hid_t want, hid_t got)
{
    H5T_class_t cls = H5Tget_class(got);
    if (want < 0) return cls == H5T_INTEGER;
    if (cls != H5Tget_class(want) || H5Tget_size(want) != H5Tget_size(got)) return 0;
    return cls != H5T_INTEGER || H5Tget_sign(want) == H5Tget_sign(got);
}

static int shapes_match(const uint64_t *want, int want_nd, const uint64_t *got, int got_nd)
{
    if (want_nd != got_nd) return 0;
    for (int d = 0; d < got_nd; d++)
        if (want[d] != KILN_H5_ANY && want[d] != got[d]) return 0;
    return 1;
}

/* "uint8 [N,784]", or "integer [N]" for type < 0. */
static void describe_want(hid_t type, int ndim, const uint64_t *shape, char *buf, size_t len)
{
    char t[32], s[256];
    if (type < 0)
        snprintf(t, sizeof t, "integer");
    else
        kiln_h5_type_name(type, t, sizeof t);
    kiln_h5_format_shape(shape, ndim, s, sizeof s);
    snprintf(buf, len, "%s %s", t, s);
}

/* Checks an open dataset's type and shape against the wanted ones. */
static kiln_status check_dataset(hid_t dset, const char *name, const char *file, hid_t type,
                                 int ndim, const uint64_t *shape)
{
    uint64_t found[KILN_H5_MAX_DIMS];
    int found_nd = 0;
    KILN_CHECK(kiln_h5_dataset_shape(dset, &found_nd, found));
    hid_t ftype = H5Dget_type(dset);
    KILN_H5_CHECK(ftype, KILN_ERR_HDF5, "reading the type of dataset '%s' in '%s'", name, file);
    kiln_status st = KILN_OK;
    if (!types_match(type, ftype) || !shapes_match(shape, ndim, found, found_nd)) {
        char want[300], got_t[32], got_s[256];
        describe_want(type, ndim, shape, want, sizeof want);
        kiln_h5_type_name(ftype, got_t, sizeof got_t);
        kiln_h5_format_shape(found, found_nd, got_s, sizeof got_s);
        st = KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': expected %s, found %s %s", name,
                        file, want, got_t, got_s);
    }
    H5Tclose(ftype);
    return st;
}

static kiln_status open_checked(hid_t loc, const char *name, hid_t type, int ndim,
                                const uint64_t *shape, hid_t *out)
{
    char file[PATH_MAX] = "?";
    kiln_h5_quiet();
    H5Fget_name(loc, file, sizeof file);
    if (!kiln_h5_exists(loc, name)) {
        char want[300];
        describe_want(type, ndim, shape, want, sizeof want);
        return KILN_ERROR(KILN_ERR_DATA, "no dataset '%s' in '%s' (expected %s)", name, file,
                          want);
    }
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    KILN_H5_CHECK(dset, KILN_ERR_DATA, "'%s' in '%s' is not a readable dataset", name, file);
    kiln_status st = check_dataset(dset, name, file, type, ndim, shape);
    if (st != KILN_OK) {
        H5Dclose(dset);
        return st;
    }
    *out = dset;
    return KILN_OK;
}

kiln_status kiln_h5_open_dataset(hid_t loc, const char *name, hid_t type, int ndim,
                                 const uint64_t *shape, hid_t *out)
{
    return open_checked(loc, name, type, ndim, shape, out);
}

kiln_status kiln_h5_open_int_dataset(hid_t loc, const char *name, int ndim,
                                     const uint64_t *shape, hid_t *out)
{
    return open_checked(loc, name, H5I_INVALID_HID, ndim, shape, out);
}

static kiln_status create_dataset(hid_t loc, const char *name, hid_t ftype, int ndim,
                                  const uint64_t *shape, int allocate, hid_t *out)
{
    char file[PATH_MAX] = "?";
    hsize_t dims[KILN_H5_MAX_DIMS];
    kiln_h5_quiet();
    H5Fget_name(loc, file, sizeof file);
    if (ndim < 1 || ndim > KILN_H5_MAX_DIMS)
        return KILN_ERROR(KILN_ERR_ARG, "creating dataset '%s' in '%s': rank %d is not in 1..%d",
                          name, file, ndim, KILN_H5_MAX_DIMS);
    for (int d = 0; d < ndim; d++) dims[d] = shape[d];
    hid_t dset = H5I_INVALID_HID;
    hid_t space = H5Screate_simple(ndim, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    /* no modification times in the header: the same contents make the same bytes, so a file
     * rebuilt after a crash has the checksum of the one an uninterrupted run writes */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = space >= 0 && lcpl >= 0 && dcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
             H5Pset_obj_track_times(dcpl, 0) >= 0;
    if (ok && allocate)
        ok = H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0 &&
             H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0;
    if (ok) dset = H5Dcreate2(loc, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    kiln_status st = dset < 0 ? KILN_H5_ERROR(KILN_ERR_HDF5, "creating dataset '%s' in '%s'",
                                              name, file)
                              : KILN_OK;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    *out = dset;
    return st;
}

kiln_status kiln_h5_create_dataset(hid_t loc, const char *name, hid_t ftype, int ndim,
                                   const uint64_t *shape, hid_t *out)
{
    return create_dataset(loc, name, ftype, ndim, shape, 0, out);
}

kiln_status kiln_h5_allocate_dataset(hid_t loc, const char *name, hid_t ftype, int ndim,
                                     const uint64_t *shape)
{
    hid_t dset;
    KILN_CHECK(create_dataset(loc, name, ftype, ndim, shape, 1, &dset));
    H5Dclose(dset);
    return KILN_OK;
}

kiln_status kiln_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                                  const uint64_t *shape, const void *data)
{
    hid_t dset;
    KILN_CHECK(kiln_h5_create_dataset(loc, name, ftype, ndim, shape, &dset));
    kiln_status st = KILN_OK;
    if (H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char what[1200];
        kiln_h5_describe(dset, what, sizeof what);
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "writing dataset %s", what);
    }
    H5Dclose(dset);
    return st;
}

kiln_status kiln_h5_write_file_atomic(const char *path, kiln_h5_fill_fn fill, void *ctx)
{
    char tmp[PATH_MAX];
    KILN_CHECK(kiln_tmp_path(tmp, sizeof tmp, path));
    kiln_h5_quiet();
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    KILN_H5_CHECK(file, KILN_ERR_IO, "cannot create '%s'", tmp);
    kiln_status st = fill(file, ctx);
    if (st != KILN_OK) kiln_error_trace(__FILE__, __LINE__, "fill(file, ctx)");
    if (H5Fclose(file) < 0 && st == KILN_OK)
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "cannot close '%s'", tmp);
    if (st != KILN_OK) {
        unlink(tmp);
        return st;
    }
    return kiln_commit_tmp_file(tmp, path);
}

/* Adds to the selection row `row` (a flat index over dims [0, k-1)), elements [col, col+n) of
 * dim k-1, and all of every dim from k on. */
static herr_t select_block(hid_t space, const hsize_t *dims, int ndim, int k, hsize_t row,
                           hsize_t col, hsize_t n)
{
    hsize_t off[KILN_H5_MAX_DIMS], cnt[KILN_H5_MAX_DIMS];
    for (int d = k - 2; d >= 0; d--) {
        off[d] = row % dims[d];
        cnt[d] = 1;
        row /= dims[d];
    }
    off[k - 1] = col;
    cnt[k - 1] = n;
    for (int d = k; d < ndim; d++) {
        off[d] = 0;
        cnt[d] = dims[d];
    }
    return H5Sselect_hyperslab(space, H5S_SELECT_OR, off, NULL, cnt, NULL);
}

/* Selects elements [start, start+count) (count > 0) of the array of dims [0, k), where one
 * element spans all of the dims from k on: a partial first row, the whole rows (a flat range
 * one level up), a partial last row. A range inside one row is one block, so k == 1 never
 * recurses. */
static herr_t select_flat(hid_t space, const hsize_t *dims, int ndim, int k, hsize_t start,
                          hsize_t count)
{
    hsize_t cols = dims[k - 1], end = start + count;
    hsize_t first = start / cols, last = (end - 1) / cols;
    if (first == last) return select_block(space, dims, ndim, k, first, start % cols, count);
    hsize_t whole_from = first, whole_to = last + 1;
    if (start % cols) {
        if (select_block(space, dims, ndim, k, first, start % cols, cols - start % cols) < 0)
            return -1;
        whole_from++;
    }
    if (end % cols) {
        if (select_block(space, dims, ndim, k, last, 0, end % cols) < 0) return -1;
        whole_to--;
    }
    if (whole_to > whole_from)
        return select_flat(space, dims, ndim, k - 1, whole_from, whole_to - whole_from);
    return 0;
}

static kiln_status transfer_range(hid_t dset, hid_t mem_type, hid_t dxpl, uint64_t start,
                                  uint64_t count, void *rbuf, const void *wbuf)
{
    char what[1200];
    kiln_h5_quiet();
    kiln_h5_describe(dset, what, sizeof what);
    const char *verb = rbuf ? "reading" : "writing";
    hid_t fspace = H5Dget_space(dset);
    KILN_H5_CHECK(fspace, KILN_ERR_HDF5, "%s dataset %s", verb, what);
    kiln_status st = KILN_OK;
    hid_t mspace = H5I_INVALID_HID;
    hsize_t dims[KILN_H5_MAX_DIMS];
    int nd = H5Sget_simple_extent_ndims(fspace);
    if (nd < 1 || nd > KILN_H5_MAX_DIMS) {
        st = KILN_ERROR(KILN_ERR_DATA, "%s a range of dataset %s: rank %d is not in 1..%d", verb,
                        what, nd, KILN_H5_MAX_DIMS);
        goto done;
    }
    H5Sget_simple_extent_dims(fspace, dims, NULL);
    uint64_t numel = (uint64_t)H5Sget_simple_extent_npoints(fspace);
    if (start > numel || count > numel - start) {
        st = KILN_ERROR(KILN_ERR_ARG, "%s elements [%llu, %llu) of dataset %s, which has %llu",
                        verb, (unsigned long long)start, (unsigned long long)(start + count),
                        what, (unsigned long long)numel);
        goto done;
    }
    /* An empty range still makes the call: collective MPI-IO needs every rank in it. */
    hsize_t mdims = count ? count : 1;
    mspace = H5Screate_simple(1, &mdims, NULL);
    KILN_H5_CHECK_GOTO(mspace, st, done, KILN_ERR_HDF5, "%s dataset %s", verb, what);
    herr_t sel = H5Sselect_none(fspace);
    if (sel >= 0 && count == 0) sel = H5Sselect_none(mspace);
    if (sel >= 0 && count > 0) sel = select_flat(fspace, dims, nd, nd, start, count);
    KILN_H5_CHECK_GOTO(sel, st, done, KILN_ERR_HDF5,
                       "selecting elements [%llu, %llu) of dataset %s", (unsigned long long)start,
                       (unsigned long long)(start + count), what);
    herr_t err = rbuf ? H5Dread(dset, mem_type, mspace, fspace, dxpl, rbuf)
                      : H5Dwrite(dset, mem_type, mspace, fspace, dxpl, wbuf);
    KILN_H5_CHECK_GOTO(err, st, done, KILN_ERR_HDF5, "%s elements [%llu, %llu) of dataset %s",
                       verb, (unsigned long long)start, (unsigned long long)(start + count), what);
done:
    if (mspace >= 0) H5Sclose(mspace);
    H5Sclose(fspace);
    return st;
}

kiln_status kiln_h5_read_range(hid_t dset, hid_t mem_type, hid_t dxpl, uint64_t start,
                               uint64_t count, void *buf)
{
    return transfer_range(dset, mem_type, dxpl, start, count, buf, NULL);
}

kiln_status kiln_h5_write_range(hid_t dset, hid_t mem_type, hid_t dxpl, uint64_t start,
                                uint64_t count, const void *buf)
{
    return transfer_range(dset, mem_type, dxpl, start, count, NULL, buf);
}

static hid_t utf8_string_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type >= 0 && (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0)) {
        H5Tclose(type);
        return H5I_INVALID_HID;
    }
    return type;
}

kiln_status kiln_h5_write_strings(hid_t loc, const char *name, const char *const *values, uint64_t n)
{
    hid_t type = utf8_string_type();
    KILN_H5_CHECK(type, KILN_ERR_HDF5, "string type for '%s'", name);
    uint64_t shape[1] = {n};
    kiln_status st = kiln_h5_write_dataset(loc, name, type, type, 1, shape, n ? (const void *)values : "");
    H5Tclose(type);
    return st;
}

void kiln_h5_free_strings(char **s, uint64_t n)
{
    for (uint64_t i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

kiln_status kiln_h5_read_strings(hid_t loc, const char *name, const char *file, char ***out, uint64_t *n)
{
    *out = NULL, *n = 0;
    kiln_h5_quiet();
    if (!kiln_h5_exists(loc, name))
        return KILN_ERROR(KILN_ERR_DATA, "no dataset '%s' in '%s' (expected strings [N])", name, file);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_DATA, "opening '%s' in '%s'", name, file);
    int nd = 0;
    uint64_t dims[KILN_H5_MAX_DIMS];
    hid_t ftype = H5Dget_type(d), type = utf8_string_type();
    kiln_status st = kiln_h5_dataset_shape(d, &nd, dims);
    if (st == KILN_OK && (nd != 1 || ftype < 0 || H5Tget_class(ftype) != H5T_STRING || dims[0] > INT32_MAX))
        st = KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': expected strings [N]", name, file);
    if (st == KILN_OK && !(*out = calloc(dims[0] + 1, sizeof **out))) st = KILN_ERROR(KILN_ERR_NOMEM, "%s", name);
    if (st == KILN_OK && dims[0] && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "reading '%s' of '%s'", name, file);
    for (uint64_t i = 0; st == KILN_OK && i < dims[0]; i++)
        if (!(*out)[i] && !((*out)[i] = strdup(""))) st = KILN_ERROR(KILN_ERR_NOMEM, "%s", name);
    if (st == KILN_OK) *n = dims[0];
    else kiln_h5_free_strings(*out, dims[0]), *out = NULL;
    if (type >= 0) H5Tclose(type);
    if (ftype >= 0) H5Tclose(ftype);
    H5Dclose(d);
    return st;
}

int kiln_h5_has_attr(hid_t obj, const char *name)
{
    kiln_h5_quiet();
    return H5Aexists(obj, name) > 0;
}

/* Creates (replacing) attribute `name` of file type ftype, scalar when dims is NULL, else 1-D
 * of dims[0] elements, and writes it from value. */
static kiln_status write_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                              const hsize_t *dims, const void *value)
{
    char what[1200];
    kiln_h5_quiet();
    kiln_h5_describe(obj, what, sizeof what);
    if (H5Aexists(obj, name) > 0)
        KILN_H5_CHECK(H5Adelete(obj, name), KILN_ERR_HDF5, "replacing attribute '%s' of %s",
                      name, what);
    hid_t space = dims ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    KILN_H5_CHECK(space, KILN_ERR_HDF5, "writing attribute '%s' of %s", name, what);
    hid_t attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t err = attr < 0 ? -1 : H5Awrite(attr, mtype, value);
    kiln_status st = err < 0 ? KILN_H5_ERROR(KILN_ERR_HDF5, "writing attribute '%s' of %s", name,
                                             what)
                             : KILN_OK;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return st;
}

/* Variable-length UTF-8 strings, scalar (dims NULL) or 1-D. */
static kiln_status write_attr_strings(hid_t obj, const char *name, const hsize_t *dims,
                                      const char *const *values)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    KILN_H5_CHECK(type, KILN_ERR_HDF5, "writing string attribute '%s'", name);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    kiln_status st = write_attr(obj, name, type, type, dims, values);
    H5Tclose(type);
    return st;
}

static kiln_status copy_str(const char *src, const char *what, char *buf, size_t len)
{
    size_t n = strlen(src);
    if (n >= len)
        return KILN_ERROR(KILN_ERR_DATA, "%s is %zu bytes long, more than the %zu allowed", what,
                          n, len - 1);
    memcpy(buf, src, n + 1);
    return KILN_OK;
}

static kiln_status read_str(hid_t attr, hid_t ftype, const char *what, char *out, size_t len)
{
    kiln_status st = KILN_OK;
    hid_t mtype = H5Tcopy(H5T_C_S1);
    KILN_H5_CHECK(mtype, KILN_ERR_HDF5, "reading %s", what);
    H5Tset_cset(mtype, H5Tget_cset(ftype)); /* HDF5 converts neither ASCII<->UTF-8 way */
    if (H5Tis_variable_str(ftype) > 0) {
        char *s = NULL;
        H5Tset_size(mtype, H5T_VARIABLE);
        KILN_H5_CHECK_GOTO(H5Aread(attr, mtype, &s), st, done, KILN_ERR_HDF5, "reading %s", what);
        st = copy_str(s ? s : "", what, out, len);
        H5free_memory(s);
    } else {
        size_t size = H5Tget_size(ftype);
        char *s = calloc(size + 1, 1);
        KILN_CHECK_ALLOC(s);
        H5Tset_size(mtype, size + 1); /* room for the terminator a space-padded string lacks */
        if (H5Aread(attr, mtype, s) < 0)
            st = KILN_H5_ERROR(KILN_ERR_HDF5, "reading %s", what);
        else
            st = copy_str(s, what, out, len);
        free(s);
    }
done:
    H5Tclose(mtype);
    return st;
}

static const char *class_name(H5T_class_t cls)
{
    return cls == H5T_STRING ? "string" : cls == H5T_FLOAT ? "floating-point" : "integer";
}

/* Reads attribute `name` after checking it holds one value of class cls: a string into buf
 * (len bytes), a number converted to mtype into buf. */
static kiln_status read_attr(hid_t obj, const char *name, H5T_class_t cls, hid_t mtype,
                             void *buf, size_t len)
{
    char what[1200], obj_what[1100];
    kiln_h5_quiet();
    kiln_h5_describe(obj, obj_what, sizeof obj_what);
    snprintf(what, sizeof what, "attribute '%s' of %s", name, obj_what);
    if (H5Aexists(obj, name) <= 0) return KILN_ERROR(KILN_ERR_DATA, "no %s", what);
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    KILN_H5_CHECK(attr, KILN_ERR_HDF5, "opening %s", what);
    kiln_status st = KILN_OK;
    hid_t ftype = H5Aget_type(attr), space = H5Aget_space(attr);
    if (ftype < 0 || space < 0) {
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "reading %s", what);
        goto done;
    }
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (H5Tget_class(ftype) != cls || n != 1) {
        char got[32];
        kiln_h5_type_name(ftype, got, sizeof got);
        st = KILN_ERROR(KILN_ERR_DATA, "%s: expected one %s value, found %lld of type %s", what,
                        class_name(cls), (long long)n, got);
    } else if (cls == H5T_STRING) {
        st = read_str(attr, ftype, what, buf, len);
    } else if (H5Aread(attr, mtype, buf) < 0) {
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "reading %s", what);
    }
done:
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    H5Aclose(attr);
    return st;
}

kiln_status kiln_h5_write_attr_str(hid_t obj, const char *name, const char *value)
{
    return write_attr_strings(obj, name, NULL, &value);
}

kiln_status kiln_h5_write_attr_strs(hid_t obj, const char *name, const char *const *values,
                                    size_t n)
{
    hsize_t dims[1] = {n};
    return write_attr_strings(obj, name, dims, values);
}

kiln_status kiln_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len)
{
    return read_attr(obj, name, H5T_STRING, H5T_C_S1, buf, len);
}

kiln_status kiln_h5_write_attr_i64(hid_t obj, const char *name, int64_t value)
{
    return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, NULL, &value);
}

kiln_status kiln_h5_read_attr_i64(hid_t obj, const char *name, int64_t *value)
{
    return read_attr(obj, name, H5T_INTEGER, H5T_NATIVE_INT64, value, sizeof *value);
}

kiln_status kiln_h5_write_attr_u64(hid_t obj, const char *name, uint64_t value)
{
    return write_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, NULL, &value);
}

kiln_status kiln_h5_read_attr_u64(hid_t obj, const char *name, uint64_t *value)
{
    return read_attr(obj, name, H5T_INTEGER, H5T_NATIVE_UINT64, value, sizeof *value);
}

kiln_status kiln_h5_write_attr_f64(hid_t obj, const char *name, double value)
{
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, NULL, &value);
}

kiln_status kiln_h5_read_attr_f64(hid_t obj, const char *name, double *value)
{
    return read_attr(obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, value, sizeof *value);
}

uint32_t kiln_crc32(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uLong c = crc;
    while (len > 0) { /* zlib takes a 32-bit length */
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

uint32_t kiln_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return (uint32_t)crc32_combine(crc_a, crc_b, (z_off_t)len_b); /* z_off_t is 64-bit on LP64 */
}

kiln_status kiln_file_crc32(const char *path, uint32_t *crc, uint64_t *size)
{
    return kiln_file_crc32_part(path, 0, 1, crc, size, NULL);
}

kiln_status kiln_file_crc32_part(const char *path, int part, int parts, uint32_t *crc, uint64_t *len,
                                 uint64_t *file_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return KILN_ERROR(KILN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    int failed = !buf || fseeko(f, 0, SEEK_END) != 0;
    off_t end = failed ? 0 : ftello(f);
    uint64_t whole = end > 0 ? (uint64_t)end : 0;
    uint64_t lo, span;
    kiln_part_of(whole, part, parts, &lo, &span);
    uint64_t hi = lo + span;
    failed = failed || fseeko(f, (off_t)lo, SEEK_SET) != 0;
    uint32_t c = 0;
    uint64_t total = 0;
    size_t n;
    while (!failed && total < hi - lo &&
           (n = fread(buf, 1, hi - lo - total < CHUNK ? (size_t)(hi - lo - total) : CHUNK, f)) > 0) {
        c = kiln_crc32(c, buf, n);
        total += n;
    }
    failed = failed || ferror(f) || total != hi - lo;
    free(buf);
    fclose(f);
    if (failed) return KILN_ERROR(KILN_ERR_IO, "error reading '%s'", path);
    *crc = c, *len = total;
    if (file_size) *file_size = whole;
    return KILN_OK;
}
