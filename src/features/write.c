/* The output of a feature build (the layout: build.c), written by every rank:
 *   1. rank 0 creates OUTPUT.tmp with the names, the spec, the fitted transforms, the statistics
 *      and the attributes, and allocates the rows' datasets (/train, /valid or /rows) in full;
 *   2. every rank opens it with MPI-IO and writes its rows, which follow those of the ranks
 *      before it (spine order), in one collective write per dataset;
 *   3. rank 0 commits OUTPUT.tmp as OUTPUT (fsync, rename).
 * The file's structure is made by one process in one order whatever the number of ranks and the
 * rows are the same bytes in the same places, so 1, 2 or 4 ranks write identical files. A
 * failure anywhere removes OUTPUT.tmp: there is never a partial OUTPUT. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/comm_mpi.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "features_internal.h"

/* A split's rows in the output: the group, this rank's count and place, every rank's count. */
typedef struct split_rows {
    const char *group;
    int train;                         /* which rows: train[i] == train */
    uint64_t mine, at, all;
} split_rows;

static int splits(const feat_build *b, split_rows s[2])
{
    s[0] = (split_rows){b->state ? "rows" : "train", 1, b->n_train, b->train_at, b->all_train};
    s[1] = (split_rows){"valid", 0, b->n_valid, b->valid_at, b->all_valid};
    return b->state ? 1 : 2;
}

/* /stats/NAME (the numbers, with their names as the attribute fields) and /histograms/NAME
 * (counts of equal bins from min to max, the attributes lo and hi). */
static kiln_status write_stats(hid_t file, const feat_build *b, int j)
{
    const double *row = b->stats + (size_t)j * FEAT_STATS_ROW;
    char name[KILN_CFG_MAP_KEY_MAX + 16], fields[256] = "";
    for (int k = 0; k < FEAT_N_STATS; k++)
        snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "%s%s", k ? " " : "", kiln_feat_stat_names[k]);
    snprintf(name, sizeof name, "stats/%s", b->f[j].name);
    uint64_t shape[1] = {FEAT_N_STATS}, bins[1] = {FEAT_HIST_BINS};
    KILN_CHECK(kiln_h5_write_dataset(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, shape, row));
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "reopening %s", name);
    kiln_status st = kiln_h5_write_attr_str(d, "fields", fields);
    H5Dclose(d);
    int64_t counts[FEAT_HIST_BINS];
    for (int k = 0; k < FEAT_HIST_BINS; k++) counts[k] = (int64_t)row[FEAT_N_STATS + k];
    snprintf(name, sizeof name, "histograms/%s", b->f[j].name);
    if (st == KILN_OK) st = kiln_h5_write_dataset(file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, bins, counts);
    if (st != KILN_OK) return st;
    d = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "reopening %s", name);
    int constant = row[4] == row[5]; /* the bins span the value +- 0.5 (fit.c) */
    st = kiln_h5_write_attr_f64(d, "lo", constant ? row[4] - 0.5 : row[4]);
    if (st == KILN_OK) st = kiln_h5_write_attr_f64(d, "hi", constant ? row[5] + 0.5 : row[5]);
    H5Dclose(d);
    return st;
}

/* The rows' datasets of one split, allocated, not written. */
static kiln_status allocate_split(hid_t file, const feat_build *b, const split_rows *s)
{
    char name[64];
    uint64_t xs[2] = {s->all, (uint64_t)b->width}, rs[2] = {s->all, (uint64_t)b->n}, ys[1] = {s->all};
    snprintf(name, sizeof name, "%s/x", s->group);
    KILN_CHECK(kiln_h5_allocate_dataset(file, name, H5T_IEEE_F32LE, 2, xs));
    snprintf(name, sizeof name, "%s/y", s->group);
    if (!b->state) KILN_CHECK(kiln_h5_allocate_dataset(file, name, H5T_STD_U8LE, 1, ys));
    snprintf(name, sizeof name, "%s/raw", s->group);
    KILN_CHECK(kiln_h5_allocate_dataset(file, name, H5T_IEEE_F64LE, 2, rs));
    snprintf(name, sizeof name, "%s/row", s->group);
    return kiln_h5_allocate_dataset(file, name, H5T_STD_I64LE, 1, ys);
}

/* 1. Everything but the rows (rank 0). */
static kiln_status fill_header(hid_t file, const feat_build *b)
{
    split_rows s[2];
    for (int k = 0, n = splits(b, s); k < n; k++) KILN_CHECK(allocate_split(file, b, &s[k]));
    const char **names = malloc((size_t)b->width * sizeof *names);
    const char **spec = malloc((size_t)b->n * sizeof *spec);
    kiln_status st = names && spec ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "names");
    for (int j = 0; st == KILN_OK && j < b->width; j++) names[j] = b->names[j];
    for (int j = 0; st == KILN_OK && j < b->n; j++) spec[j] = b->c->features.define.items[j].value;
    if (st == KILN_OK) st = kiln_h5_write_strings(file, "features/names", names, (uint64_t)b->width);
    if (st == KILN_OK) st = kiln_h5_write_strings(file, "features/spec", spec, (uint64_t)b->n);
    for (int j = 0; st == KILN_OK && j < b->n; j++) spec[j] = b->f[j].name;
    if (st == KILN_OK) st = kiln_h5_write_strings(file, "features/raw_names", spec, (uint64_t)b->n);
    free(names), free(spec);
    for (int j = 0; st == KILN_OK && !b->state && j < b->n; j++) st = write_stats(file, b, j);
    if (st == KILN_OK) st = kiln_feat_state_write(file, b);
    KILN_CHECK(st);
    KILN_CHECK(kiln_h5_write_attr_str(file, "tables", b->c->features.tables));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "tables_crc32", b->tables_crc));
    KILN_CHECK(kiln_h5_write_attr_str(file, "config", b->config_yaml ? b->config_yaml : ""));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "rows", b->all_train + b->all_valid));
    if (b->state) KILN_CHECK(kiln_h5_write_attr_str(file, "state", b->state_path));
    return kiln_h5_write_attr_str(file, "valid_from", b->c->features.valid_from);
}

static kiln_status create_header(const feat_build *b, const char *tmp)
{
    kiln_h5_quiet();
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    KILN_H5_CHECK(file, KILN_ERR_IO, "cannot create '%s'", tmp);
    kiln_status st = fill_header(file, b);
    if (H5Fclose(file) < 0 && st == KILN_OK) st = KILN_H5_ERROR(KILN_ERR_HDF5, "cannot close '%s'", tmp);
    return st;
}

/* 2. This rank's rows of one dataset: elements [at * width, (at + mine) * width). */
static kiln_status write_rows(hid_t file, const char *group, const char *set, hid_t mtype, hid_t dxpl,
                              const split_rows *s, uint64_t width, const void *data)
{
    char name[64];
    snprintf(name, sizeof name, "%s/%s", group, set);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "opening %s", name);
    kiln_status st = kiln_h5_write_range(d, mtype, dxpl, s->at * width, s->mine * width, data);
    H5Dclose(d);
    return st;
}

static kiln_status write_split(hid_t file, hid_t dxpl, const feat_build *b, const split_rows *s)
{
    if (s->all == 0) return KILN_OK; /* no rows on any rank: an empty dataset has no storage to write */
    uint64_t n = s->mine, w = (uint64_t)b->width, k = (uint64_t)b->n, at = 0;
    float *x = malloc((n * w + 1) * sizeof *x);
    double *raw = malloc((n * k + 1) * sizeof *raw);
    uint8_t *y = malloc(n + 1);
    int64_t *row = malloc((n + 1) * sizeof *row);
    kiln_status st = x && raw && y && row ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "the %s split", s->group);
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL); /* all write, or none */
    for (uint64_t i = 0; st == KILN_OK && i < b->spine.rows; i++) {
        if (!b->keep[i] || b->train[i] != s->train) continue;
        for (uint64_t j = 0; j < w; j++) x[at * w + j] = (float)b->xt[i * w + j];
        memcpy(raw + at * k, b->raw + i * k, (size_t)k * sizeof *raw);
        y[at] = b->y[i], row[at] = (int64_t)(b->first + i);
        at++;
    }
    /* every rank makes every call, with or without rows: the writes are collective */
    if (st == KILN_OK) st = write_rows(file, s->group, "x", H5T_NATIVE_FLOAT, dxpl, s, w, x);
    if (st == KILN_OK && !b->state) st = write_rows(file, s->group, "y", H5T_NATIVE_UINT8, dxpl, s, 1, y);
    if (st == KILN_OK) st = write_rows(file, s->group, "raw", H5T_NATIVE_DOUBLE, dxpl, s, k, raw);
    if (st == KILN_OK) st = write_rows(file, s->group, "row", H5T_NATIVE_INT64, dxpl, s, 1, row);
    free(x), free(raw), free(y), free(row);
    return st;
}

static kiln_status write_all_rows(const feat_build *b, const char *tmp)
{
    kiln_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), dxpl = H5Pcreate(H5P_DATASET_XFER), file = H5I_INVALID_HID;
    kiln_status st = KILN_OK;
    if (fapl < 0 || dxpl < 0 || H5Pset_fapl_mpio(fapl, kiln_comm_mpi(b->comm, KILN_AXIS_WORLD), MPI_INFO_NULL) < 0 ||
        H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "setting up MPI-IO for '%s'", tmp);
    if (st == KILN_OK && (file = H5Fopen(tmp, H5F_ACC_RDWR, fapl)) < 0)
        st = KILN_H5_ERROR(KILN_ERR_IO, "opening '%s' on every rank", tmp);
    split_rows s[2];
    for (int k = 0, n = splits(b, s); st == KILN_OK && k < n; k++) st = write_split(file, dxpl, b, &s[k]);
    if (file >= 0 && H5Fclose(file) < 0 && st == KILN_OK)
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "closing '%s'", tmp);
    if (fapl >= 0) H5Pclose(fapl);
    if (dxpl >= 0) H5Pclose(dxpl);
    return st;
}

kiln_status kiln_feat_write(feat_build *b)
{
    char tmp[PATH_MAX] = "";
    kiln_status st = b->rank == 0 ? kiln_tmp_path(tmp, sizeof tmp, b->output) : KILN_OK;
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    /* rank 0's name (it holds its host and pid): MPI-IO opens one file on every rank */
    if (st == KILN_OK) st = kiln_comm_bcast(b->comm, KILN_AXIS_WORLD, tmp, sizeof tmp, 0);
    if (st == KILN_OK && b->rank == 0) st = create_header(b, tmp);
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = write_all_rows(b, tmp);
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK && b->rank == 0) st = kiln_commit_tmp_file(tmp, b->output);
    else if (b->rank == 0) unlink(tmp);
    return kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}
