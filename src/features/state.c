/* What a build's transforms learned, in its output, and read back by `kiln features apply`:
 *   /features/transform_a, _b    float64 [K, 8]: a and b of transform t of feature j (transform.c)
 *   /features/buckets/NAME       float64 [E]: the training quantiles of NAME's buckets transform
 *   /features/codes/NAME         strings [C]: the categories NAME's codes transform kept (code 1 first)
 *   /features/codes_rows/NAME    int64 [C]: their training rows: the category's top values
 *   /features/categories/NAME    strings: a categorical feature's source strings; its raw values
 *                                (/train/raw) are positions in them
 * Apply takes the state only from a build of the same features, line for line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/h5util.h"
#include "kiln/registry.h"
#include "features_internal.h"

static int has(const feature *f, feat_tr_kind kind)
{
    for (int t = 0; t < f->n_tr; t++)
        if (f->tr[t].kind == kind) return 1;
    return 0;
}

static void path_of(char *out, size_t len, const char *set, const char *name)
{
    snprintf(out, len, "features/%s/%s", set, name);
}

kiln_status kiln_feat_state_write(hid_t file, const feat_build *b)
{
    uint64_t k = (uint64_t)b->n, shape[2] = {k, FEAT_MAX_TRANSFORMS};
    double *a = calloc(k * FEAT_MAX_TRANSFORMS + 1, sizeof *a), *bb = calloc(k * FEAT_MAX_TRANSFORMS + 1, sizeof *bb);
    kiln_status st = a && bb ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "the state");
    for (uint64_t j = 0; st == KILN_OK && j < k; j++) {
        memcpy(a + j * FEAT_MAX_TRANSFORMS, b->fitted[j].a, sizeof b->fitted[j].a);
        memcpy(bb + j * FEAT_MAX_TRANSFORMS, b->fitted[j].b, sizeof b->fitted[j].b);
    }
    if (st == KILN_OK)
        st = kiln_h5_write_dataset(file, "features/transform_a", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, shape, a);
    if (st == KILN_OK)
        st = kiln_h5_write_dataset(file, "features/transform_b", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, shape, bb);
    free(a), free(bb);
    char path[KILN_CFG_MAP_KEY_MAX + 64];
    for (int j = 0; st == KILN_OK && j < b->n; j++) {
        const feature *f = &b->f[j];
        const feat_fitted *fit = &b->fitted[j];
        if (has(f, TR_BUCKETS)) {
            uint64_t e[1] = {fit->n_edges};
            path_of(path, sizeof path, "buckets", f->name);
            static const double none = 0;
            st = kiln_h5_write_dataset(file, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, e,
                                       fit->edges ? fit->edges : &none);
        }
        if (st == KILN_OK && has(f, TR_CODES)) {
            uint64_t c[1] = {(uint64_t)fit->n_kept};
            path_of(path, sizeof path, "codes", f->name);
            st = kiln_h5_write_strings(file, path, (const char *const *)fit->kept, c[0]);
            path_of(path, sizeof path, "codes_rows", f->name);
            if (st == KILN_OK)
                st = kiln_h5_write_dataset(file, path, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, c,
                                           fit->kept_count ? (const void *)fit->kept_count : "");
        }
        if (st == KILN_OK && kiln_feat_is_categorical(f)) {
            path_of(path, sizeof path, "categories", f->name);
            st = kiln_h5_write_strings(file, path, (const char *const *)b->cats[j].s, (uint64_t)b->cats[j].n);
        }
    }
    return st;
}

/* The state's features must be this spec's, line for line. */
static kiln_status same_features(hid_t file, const feat_build *b)
{
    char **names = NULL, **lines = NULL;
    uint64_t nn = 0, nl = 0;
    kiln_status st = kiln_h5_read_strings(file, "features/raw_names", b->state_path, &names, &nn);
    if (st == KILN_OK) st = kiln_h5_read_strings(file, "features/spec", b->state_path, &lines, &nl);
    if (st == KILN_OK && (nn != (uint64_t)b->n || nl != (uint64_t)b->n))
        st = KILN_ERROR(KILN_ERR_CONFIG, "--state '%s' holds %llu features, this spec %d: apply needs the spec the "
                        "state was built with", b->state_path, (unsigned long long)nn, b->n);
    for (int j = 0; st == KILN_OK && j < b->n; j++)
        if (strcmp(names[j], b->f[j].name) || strcmp(lines[j], b->c->features.define.items[j].value))
            st = KILN_ERROR(KILN_ERR_CONFIG, "--state '%s' was built with feature %d '%s: %s', this spec has '%s: %s': "
                            "apply needs the spec the state was built with", b->state_path, j, names[j], lines[j],
                            b->f[j].name, b->c->features.define.items[j].value);
    kiln_h5_free_strings(names, nn), kiln_h5_free_strings(lines, nl);
    return st;
}

static kiln_status read_matrix(hid_t file, const feat_build *b, const char *name, double *into)
{
    uint64_t shape[2] = {(uint64_t)b->n, FEAT_MAX_TRANSFORMS};
    hid_t d;
    KILN_CHECK(kiln_h5_open_dataset(file, name, H5T_NATIVE_DOUBLE, 2, shape, &d));
    kiln_status st = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, into) < 0
                         ? KILN_H5_ERROR(KILN_ERR_DATA, "reading %s of '%s'", name, b->state_path) : KILN_OK;
    H5Dclose(d);
    return st;
}

/* A 1-D dataset of any length into a new array (*n values of mtype). */
static kiln_status read_vector(hid_t file, const char *path, const char *name, hid_t mtype, size_t elem, void **out,
                               uint64_t *n)
{
    uint64_t shape[1] = {KILN_H5_ANY};
    hid_t d;
    KILN_CHECK(kiln_h5_open_dataset(file, name, mtype, 1, shape, &d));
    int nd;
    uint64_t dims[KILN_H5_MAX_DIMS];
    kiln_status st = kiln_h5_dataset_shape(d, &nd, dims);
    *out = st == KILN_OK ? malloc(dims[0] * elem + 1) : NULL;
    if (st == KILN_OK && !*out) st = KILN_ERROR(KILN_ERR_NOMEM, "%s", name);
    if (st == KILN_OK && dims[0] && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "reading %s of '%s'", name, path);
    *n = st == KILN_OK ? dims[0] : 0;
    H5Dclose(d);
    return st;
}

static kiln_status read_lists(hid_t file, feat_build *b, int j)
{
    const feature *f = &b->f[j];
    feat_fitted *fit = &b->fitted[j];
    char path[KILN_CFG_MAP_KEY_MAX + 64];
    if (has(f, TR_BUCKETS)) {
        path_of(path, sizeof path, "buckets", f->name);
        KILN_CHECK(read_vector(file, b->state_path, path, H5T_NATIVE_DOUBLE, sizeof *fit->edges, (void **)&fit->edges,
                               &fit->n_edges));
    }
    if (has(f, TR_CODES)) {
        uint64_t n = 0, rows = 0;
        path_of(path, sizeof path, "codes", f->name);
        KILN_CHECK(kiln_h5_read_strings(file, path, b->state_path, &fit->kept, &n));
        fit->n_kept = (int32_t)n;
        path_of(path, sizeof path, "codes_rows", f->name);
        KILN_CHECK(read_vector(file, b->state_path, path, H5T_NATIVE_INT64, sizeof *fit->kept_count,
                               (void **)&fit->kept_count, &rows));
        if (rows != n)
            return KILN_ERROR(KILN_ERR_DATA, "'%s': %s holds %llu counts for %llu codes", b->state_path, path,
                              (unsigned long long)rows, (unsigned long long)n);
    }
    return KILN_OK;
}

kiln_status kiln_feat_state_read(feat_build *b)
{
    KILN_CHECK(kiln_registry_locate(kiln_registry_root(b->c->registry.path), b->state, b->state_path,
                                    sizeof b->state_path, NULL));
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(b->state_path, "--state", KILN_ERR_DATA, &f));
    uint64_t k = (uint64_t)b->n;
    double *a = malloc((k * FEAT_MAX_TRANSFORMS + 1) * sizeof *a), *bb = malloc((k * FEAT_MAX_TRANSFORMS + 1) * sizeof *bb);
    kiln_status st = a && bb ? same_features(f, b) : KILN_ERROR(KILN_ERR_NOMEM, "the state");
    if (st == KILN_OK) st = read_matrix(f, b, "features/transform_a", a);
    if (st == KILN_OK) st = read_matrix(f, b, "features/transform_b", bb);
    for (uint64_t j = 0; st == KILN_OK && j < k; j++) {
        memcpy(b->fitted[j].a, a + j * FEAT_MAX_TRANSFORMS, sizeof b->fitted[j].a);
        memcpy(b->fitted[j].b, bb + j * FEAT_MAX_TRANSFORMS, sizeof b->fitted[j].b);
        st = read_lists(f, b, (int)j);
    }
    free(a), free(bb);
    H5Fclose(f);
    return st;
}

kiln_status kiln_feat_source_check(feat_build *b, int j)
{
    const feature *f = &b->f[j];
    if (f->kind == FEAT_TIME) return KILN_OK;
    const char *table = f->kind == FEAT_COLUMN ? b->c->features.table : f->table;
    feat_column c;
    KILN_CHECK(kiln_feat_column_read_part(b->c->features.tables, table, f->column, 0, 0, &c));
    kiln_status st = KILN_OK;
    int category = !strcmp(c.type, "category");
    if (kiln_feat_is_categorical(f) && !category)
        st = KILN_ERROR(KILN_ERR_CONFIG, "feature %s: codes and hash read a category's text; %s/%s is %s", f->name,
                        table, f->column, c.type);
    else if (!kiln_feat_is_categorical(f) && category && !(f->kind == FEAT_WINDOW && f->agg == AGG_COUNT))
        /* its numbers would be the import's codes, which another import numbers otherwise */
        st = KILN_ERROR(KILN_ERR_CONFIG, "feature %s: %s/%s is a category; as a value it needs '| codes' or "
                        "'| hash(N)' first (a window over it can only count it)", f->name, table, f->column);
    else if (category)
        b->cats[j] = (feat_cats){c.cats, c.n_cats}, c.cats = NULL, c.n_cats = 0;
    kiln_feat_column_free(&c);
    return st;
}
