/* Columns of the tables `kiln data import csv` wrote (kiln/data.h), read whole: values as
 * float64 for the features, timestamps as int64 microseconds, and keys as integers comparable
 * across tables: a category's strings are interned in one dictionary per build, so the
 * "origin" of flights and the "origin" of weather map to the same numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/data.h"
#include "kiln/h5util.h"
#include "kiln/runtime.h"
#include "kiln/strdict.h"
#include "features_internal.h"

void kiln_feat_column_free(feat_column *c)
{
    for (int32_t i = 0; i < c->n_cats; i++) free(c->cats[i]);
    free(c->cats), free(c->v), free(c->t), free(c->codes);
    memset(c, 0, sizeof *c);
}

/* The strings of a category column (/TABLE/.categories/NAME). */
static kiln_status read_categories(hid_t g, const char *file, feat_column *c)
{
    char path[300];
    snprintf(path, sizeof path, ".categories/%s", c->name);
    uint64_t n = 0;
    KILN_CHECK(kiln_h5_read_strings(g, path, file, &c->cats, &n));
    c->n_cats = (int32_t)n; /* read_strings refuses more than INT32_MAX */
    return KILN_OK;
}

/* Rows [c->first, c->first + c->rows) of the column, as mtype. */
static kiln_status read_rows(hid_t d, hid_t mtype, const char *file, const feat_column *c, void *buf)
{
    if (kiln_h5_read_range(d, mtype, H5P_DEFAULT, c->first, c->rows, buf) != KILN_OK)
        return KILN_H5_ERROR(KILN_ERR_DATA, "reading %s/%s of '%s'", c->table, c->name, file);
    return KILN_OK;
}

static kiln_status read_values(hid_t d, const char *file, feat_column *c)
{
    uint64_t n = c->rows;
    if (!strcmp(c->type, "timestamp")) {
        c->t = malloc(n * sizeof *c->t + 1);
        KILN_CHECK_ALLOC(c->t);
        KILN_CHECK(read_rows(d, H5T_NATIVE_INT64, file, c, c->t));
        c->v = malloc(n * sizeof *c->v + 1);
        KILN_CHECK_ALLOC(c->v);
        for (uint64_t i = 0; i < n; i++) c->v[i] = c->t[i] == KILN_CSV_NA_INT64 ? NAN : (double)c->t[i] / 1e6;
        return KILN_OK;
    }
    c->v = malloc(n * sizeof *c->v + 1);
    KILN_CHECK_ALLOC(c->v);
    if (!strcmp(c->type, "category")) {
        c->codes = malloc(n * sizeof *c->codes + 1);
        KILN_CHECK_ALLOC(c->codes);
        KILN_CHECK(read_rows(d, H5T_NATIVE_INT32, file, c, c->codes));
        for (uint64_t i = 0; i < n; i++) c->v[i] = c->codes[i] < 0 ? NAN : (double)c->codes[i];
        return KILN_OK;
    }
    if (!strcmp(c->type, "int64")) { /* the raw values kept too: keys beyond 2^53 stay exact */
        c->t = malloc(n * sizeof *c->t + 1);
        KILN_CHECK_ALLOC(c->t);
        KILN_CHECK(read_rows(d, H5T_NATIVE_INT64, file, c, c->t));
        for (uint64_t i = 0; i < n; i++) c->v[i] = c->t[i] == KILN_CSV_NA_INT64 ? NAN : (double)c->t[i];
        return KILN_OK;
    }
    if (!strcmp(c->type, "bool")) {
        uint8_t *raw = malloc(n + 1);
        KILN_CHECK_ALLOC(raw);
        kiln_status st = read_rows(d, H5T_NATIVE_UINT8, file, c, raw);
        for (uint64_t i = 0; st == KILN_OK && i < n; i++) c->v[i] = raw[i] == KILN_CSV_NA_BOOL ? NAN : raw[i];
        free(raw);
        return st;
    }
    return read_rows(d, H5T_NATIVE_DOUBLE, file, c, c->v);
}

kiln_status kiln_feat_column_read(const char *file, const char *table, const char *name, feat_column *c)
{
    return kiln_feat_column_read_part(file, table, name, 0, 1, c);
}

kiln_status kiln_feat_column_read_part(const char *file, const char *table, const char *name, int part, int parts,
                                       feat_column *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->table, sizeof c->table, "%s", table);
    snprintf(c->name, sizeof c->name, "%s", name);
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(file, "features.tables", KILN_ERR_DATA, &f));
    kiln_status st = KILN_OK;
    hid_t g = H5I_INVALID_HID, d = H5I_INVALID_HID;
    if (!kiln_h5_exists(f, table))
        st = KILN_ERROR(KILN_ERR_CONFIG, "'%s' has no table '%s' (import it with kiln data import csv FILE.csv "
                        "%s:/%s)", file, table, file, table);
    if (st == KILN_OK && (g = H5Gopen2(f, table, H5P_DEFAULT)) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "'%s': '%s' is not a table", file, table);
    if (st == KILN_OK && (!name[0] || name[0] == '.' || strchr(name, '/') || !kiln_h5_exists(g, name))) {
        char columns[4096] = "";
        if (kiln_h5_read_attr_str(g, "columns", columns, sizeof columns) != KILN_OK) kiln_error_clear();
        for (char *p = columns; *p; p++)
            if (*p == '\n') *p = ' ';
        st = KILN_ERROR(KILN_ERR_CONFIG, "table '%s' of '%s' has no column '%s' (it has: %.600s)", table, file, name,
                        columns);
    }
    if (st == KILN_OK && (d = H5Dopen2(g, name, H5P_DEFAULT)) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "'%s': cannot open %s/%s", file, table, name);
    int nd = 0;
    uint64_t shape[KILN_H5_MAX_DIMS];
    if (st == KILN_OK) st = kiln_h5_dataset_shape(d, &nd, shape);
    if (st == KILN_OK && nd != 1)
        st = KILN_ERROR(KILN_ERR_DATA, "'%s': column %s/%s is not one-dimensional", file, table, name);
    if (st == KILN_OK) st = kiln_h5_read_attr_str(d, "type", c->type, sizeof c->type);
    kiln_csv_type ty;
    if (st == KILN_OK && (!kiln_csv_type_parse(c->type, &ty) || ty == KILN_CSV_AUTO))
        st = KILN_ERROR(KILN_ERR_DATA, "'%s': column %s/%s has type '%s'", file, table, name, c->type);
    c->total = st == KILN_OK ? shape[0] : 0;
    if (parts > 0) kiln_part_of(c->total, part, parts, &c->first, &c->rows);
    if (st == KILN_OK) st = read_values(d, file, c);
    if (st == KILN_OK && !strcmp(c->type, "category")) st = read_categories(g, file, c);
    for (uint64_t i = 0; st == KILN_OK && c->codes && i < c->rows; i++)
        if (c->codes[i] >= c->n_cats)
            st = KILN_ERROR(KILN_ERR_DATA, "'%s': %s/%s row %llu has code %d of %d categories", file, table, name,
                            (unsigned long long)(c->first + i), c->codes[i], c->n_cats);
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    if (st != KILN_OK) kiln_feat_column_free(c);
    return st;
}

/* ---- keys ---- */

struct feat_dict {
    kiln_strdict strings;
};

kiln_status kiln_feat_dict_new(feat_dict **d)
{
    *d = calloc(1, sizeof **d);
    KILN_CHECK_ALLOC(*d);
    return KILN_OK;
}

void kiln_feat_dict_free(feat_dict *d)
{
    if (!d) return;
    kiln_strdict_free(&d->strings);
    free(d);
}

kiln_status kiln_feat_keys(const feat_column *c, feat_dict *d, int64_t *keys)
{
    if (!strcmp(c->type, "float64"))
        return KILN_ERROR(KILN_ERR_CONFIG, "column %s/%s is float64: a key is an integer, a category or a timestamp",
                          c->table, c->name);
    if (c->codes) {
        int64_t *ids = malloc(((size_t)c->n_cats + 1) * sizeof *ids);
        KILN_CHECK_ALLOC(ids);
        kiln_status st = KILN_OK;
        for (int32_t i = 0; i < c->n_cats && st == KILN_OK; i++) st = kiln_strdict_intern(&d->strings, c->cats[i], &ids[i]);
        for (uint64_t r = 0; st == KILN_OK && r < c->rows; r++) keys[r] = c->codes[r] < 0 ? INT64_MIN : ids[c->codes[r]];
        free(ids);
        return st;
    }
    for (uint64_t r = 0; r < c->rows; r++)
        keys[r] = c->t ? c->t[r] : isnan(c->v[r]) ? INT64_MIN : (int64_t)c->v[r];
    return KILN_OK;
}
