/* `kiln features build SPEC.yaml --output FEATURES.h5`: the spine's rows with their label, their
 * features computed as of each row's time (compute.c), split by time into train and valid, the
 * transforms fitted on train (transform.c), and statistics, written whole and atomically:
 *   /train/x float32 [N, F]    the transformed features (F counts indicator columns)
 *   /train/y uint8 [N]         the label, 0 or 1
 *   /train/raw float64 [N, K]  the K features before transforms (NA as NaN)
 *   /train/row int64 [N]       the spine row of each output row
 *   /valid/...                 the same for the validation split
 *   /features/names            [F] the column names of x (NAME, NAME_missing)
 *   /features/spec             [K] each feature's line as written
 *   /features/raw_names        [K] the features' names: the columns of raw
 *   /features/transform_a, /features/transform_b  float64 [K, 8]: what each transform learned
 *                              (row j, column t: feature j's t-th transform; fill: a = the value;
 *                              standardize: a = mean, b = std; minmax: a = min, b = max; clip: lo, hi)
 *   /stats/NAME                per raw feature over train: count, missing, mean, std, min, max
 * Attributes: tables (path), tables_crc32, config (the spec), rows, valid_from.
 * `kiln features apply SPEC --state BUILD.h5`: the same features of every spine row with a time
 * (no label, no split), transformed with what BUILD's transforms learned: /rows/x, /rows/raw,
 * /rows/row, as a build's rows would be.
 * Each feature's column is saved once computed (OUTPUT.feature-J.h5, kiln/stage.h), so a build
 * killed part way computes only the rest when rerun; they are removed with the output written.
 * One process computes (world rank 0); the others wait. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/data.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/runtime.h"
#include "kiln/stage.h"
#include "features_internal.h"

typedef struct build {
    const kiln_features_config *c;
    const char *output, *config_yaml;
    const char *state;                 /* apply: the build whose transforms are used (else NULL) */
    char state_path[PATH_MAX];
    double *given_a, *given_b;         /* apply: what they learned [K, FEAT_MAX_TRANSFORMS] */
    feature *f;
    int n;
    feat_dict *dict;
    feat_spine spine;
    feat_column time;                  /* the spine's time column */
    double *raw;                       /* [rows, n], row-major */
    uint8_t *y, *keep, *train;         /* label; rows with a label; the training split */
    uint64_t n_train, n_valid;
} build;

/* ---- the label: COLUMN OP NUMBER ---- */

static kiln_status label(build *b)
{
    const char *text = b->c->features.label;
    char col[128], op[3];
    double v;
    int used = 0;
    if (sscanf(text, " %127[^ <>=!] %2[<>=!] %lf %n", col, op, &v, &used) != 3 || text[used] ||
        (strcmp(op, ">") && strcmp(op, ">=") && strcmp(op, "<") && strcmp(op, "<=") && strcmp(op, "==") && strcmp(op, "!=")))
        return KILN_ERROR(KILN_ERR_CONFIG, "spine.label '%s': expected COLUMN OP NUMBER with OP one of > >= < <= == != "
                          "(e.g. 'arr_delay > 15')", text);
    feat_column c;
    KILN_CHECK(kiln_feat_column_read(b->c->features.tables, b->c->features.table, col, &c));
    for (uint64_t i = 0; i < b->spine.rows; i++) {
        double x = c.v[i];
        int y = op[0] == '>' ? (op[1] ? x >= v : x > v) : op[0] == '<' ? (op[1] ? x <= v : x < v)
                : op[0] == '=' ? x == v : x != v;
        b->keep[i] = !isnan(x);
        b->y[i] = (uint8_t)y;
    }
    kiln_feat_column_free(&c);
    return KILN_OK;
}

/* ---- the features ---- */

/* A column's keys (the spine's or a table's) through the build's dictionary. */
static kiln_status keys_of(build *b, const char *table, const char *name, int64_t **keys, uint64_t *n)
{
    feat_column c;
    KILN_CHECK(kiln_feat_column_read(b->c->features.tables, table, name, &c));
    *keys = malloc((c.rows + 1) * sizeof **keys);
    kiln_status st = *keys ? kiln_feat_keys(&c, b->dict, *keys) : KILN_ERROR(KILN_ERR_NOMEM, "keys of %s", name);
    *n = c.rows;
    kiln_feat_column_free(&c);
    return st;
}

static kiln_status event_times(build *b, const feature *f, feat_column *t)
{
    const char *name = f->at[0] ? f->at : b->c->features.time;
    KILN_CHECK(kiln_feat_column_read(b->c->features.tables, f->table, name, t));
    if (strcmp(t->type, "timestamp"))
        return KILN_ERROR(KILN_ERR_CONFIG, "feature %s: %s/%s is %s; the time of events must be a timestamp (give "
                          "its table's time column with 'at COLUMN')", f->name, f->table, name, t->type);
    return KILN_OK;
}

static kiln_status compute_one(build *b, const feature *f, double *out)
{
    const feat_spine *s = &b->spine;
    if (f->kind == FEAT_TIME) {
        kiln_feat_time_part(f->part, s, out);
        return KILN_OK;
    }
    if (f->kind == FEAT_COLUMN) {
        feat_column c;
        KILN_CHECK(kiln_feat_column_read(b->c->features.tables, b->c->features.table, f->column, &c));
        memcpy(out, c.v, s->rows * sizeof *out);
        kiln_feat_column_free(&c);
        return KILN_OK;
    }
    int64_t *skeys = NULL, *keys = NULL;
    uint64_t ns = 0, n = 0;
    feat_column v = {0}, t = {0}, cr = {0};
    kiln_status st = keys_of(b, b->c->features.table, f->by, &skeys, &ns);
    if (st == KILN_OK) st = keys_of(b, f->table, f->by, &keys, &n);
    if (st == KILN_OK) st = kiln_feat_column_read(b->c->features.tables, f->table, f->column, &v);
    if (st == KILN_OK && f->kind != FEAT_LOOKUP) st = event_times(b, f, &t);
    if (st == KILN_OK && f->created[0]) st = kiln_feat_column_read(b->c->features.tables, f->table, f->created, &cr);
    if (st == KILN_OK && f->created[0] && strcmp(cr.type, "timestamp"))
        st = KILN_ERROR(KILN_ERR_CONFIG, "feature %s: created column %s/%s is %s, not a timestamp", f->name, f->table,
                        f->created, cr.type);
    if (st == KILN_OK && f->kind == FEAT_WINDOW) st = kiln_feat_window(f, s, skeys, n, keys, t.t, v.v, out);
    if (st == KILN_OK && f->kind == FEAT_ASOF) st = kiln_feat_asof(f, s, skeys, n, keys, t.t, cr.t, v.v, out);
    if (st == KILN_OK && f->kind == FEAT_LOOKUP) st = kiln_feat_lookup(f, s, skeys, n, keys, v.v, out);
    free(skeys), free(keys);
    kiln_feat_column_free(&v), kiln_feat_column_free(&t), kiln_feat_column_free(&cr);
    return st;
}

static kiln_status parse_features(build *b)
{
    const kiln_cfg_map *m = &b->c->features.define;
    if (m->n == 0) return KILN_ERROR(KILN_ERR_CONFIG, "features: none defined (features: {NAME: 'mean(T.C) by K over 1h'})");
    b->f = calloc((size_t)m->n, sizeof *b->f);
    KILN_CHECK_ALLOC(b->f);
    for (int i = 0; i < m->n; i++) {
        if (strchr(m->items[i].key, '.'))
            return KILN_ERROR(KILN_ERR_CONFIG, "features.%s: a feature is one line (NAME: 'KIND(...) ...'), not a "
                              "mapping", m->items[i].key);
        KILN_CHECK(kiln_feat_parse(m->items[i].key, m->items[i].value, &b->f[i]));
        b->n++;
    }
    return KILN_OK;
}

/* ---- the output ---- */

typedef struct writer {
    build *b;
    uint32_t tables_crc;
    char (*names)[KILN_CFG_MAP_KEY_MAX + 16];
    int width;
    double *xt;                        /* transformed features [rows, width] */
    double *fit_a, *fit_b;             /* what each transform learned [K, FEAT_MAX_TRANSFORMS] */
} writer;

static kiln_status write_strings(hid_t f, const char *name, const char *const *s, uint64_t n)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    KILN_H5_CHECK(type, KILN_ERR_HDF5, "string type");
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    uint64_t shape[1] = {n};
    kiln_status st = kiln_h5_write_dataset(f, name, type, type, 1, shape, s);
    H5Tclose(type);
    return st;
}

/* One split (train 1 or valid 0): its x, y, raw and row datasets. */
static kiln_status write_split(hid_t file, writer *w, int train, const char *group)
{
    build *b = w->b;
    uint64_t n = train ? b->n_train : b->n_valid, at = 0, rows = b->spine.rows;
    float *x = malloc((n * (uint64_t)w->width + 1) * sizeof *x);
    double *raw = malloc((n * (uint64_t)b->n + 1) * sizeof *raw);
    uint8_t *y = malloc(n + 1);
    int64_t *row = malloc((n + 1) * sizeof *row);
    kiln_status st = x && raw && y && row ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "the %s split", group);
    for (uint64_t i = 0; st == KILN_OK && i < rows; i++) {
        if (!b->keep[i] || b->train[i] != train) continue;
        for (int j = 0; j < w->width; j++) x[at * (uint64_t)w->width + j] = (float)w->xt[i * (uint64_t)w->width + j];
        memcpy(raw + at * (uint64_t)b->n, b->raw + i * (uint64_t)b->n, (size_t)b->n * sizeof *raw);
        y[at] = b->y[i], row[at] = (int64_t)i;
        at++;
    }
    char name[64];
    uint64_t xs[2] = {n, (uint64_t)w->width}, rs[2] = {n, (uint64_t)b->n}, ys[1] = {n};
#define W(path, ft, mt, nd, shape, data)                                                   \
    if (st == KILN_OK) {                                                                   \
        snprintf(name, sizeof name, "%s/%s", group, path);                                 \
        st = kiln_h5_write_dataset(file, name, ft, mt, nd, shape, data);                   \
    }
    W("x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xs, x);
    if (!b->state) W("y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, ys, y);
    W("raw", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, rs, raw);
    W("row", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, ys, row);
#undef W
    free(x), free(raw), free(y), free(row);
    return st;
}

/* Statistics of raw feature j over the training split: count, missing share, mean, std (sample),
 * min, max (NaN where there are no values). */
static void feature_stats(const build *b, int j, double out[6])
{
    uint64_t count = 0, missing = 0;
    long double s = 0, q = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (uint64_t i = 0; i < b->spine.rows; i++) {
        if (!b->keep[i] || !b->train[i]) continue;
        double v = b->raw[i * (uint64_t)b->n + (uint64_t)j];
        if (isnan(v)) missing++;
        else count++, s += v, lo = fmin(lo, v), hi = fmax(hi, v);
    }
    double mean = count ? (double)(s / count) : NAN;
    for (uint64_t i = 0; i < b->spine.rows; i++) {
        double v = b->raw[i * (uint64_t)b->n + (uint64_t)j];
        if (b->keep[i] && b->train[i] && !isnan(v)) q += ((long double)v - mean) * ((long double)v - mean);
    }
    out[0] = (double)count, out[1] = count + missing ? (double)missing / (double)(count + missing) : NAN;
    out[2] = mean, out[3] = count > 1 ? (double)sqrtl(q / (count - 1)) : NAN;
    out[4] = count ? lo : NAN, out[5] = count ? hi : NAN;
}

static kiln_status write_stats(hid_t file, const build *b, int j)
{
    double stats[6];
    feature_stats(b, j, stats);
    char name[KILN_CFG_MAP_KEY_MAX + 8];
    snprintf(name, sizeof name, "stats/%s", b->f[j].name);
    uint64_t shape[1] = {6};
    KILN_CHECK(kiln_h5_write_dataset(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, shape, stats));
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "reopening %s", name);
    kiln_status st = kiln_h5_write_attr_str(d, "fields", "count missing_share mean std min max");
    H5Dclose(d);
    return st;
}

static kiln_status fill_file(hid_t file, void *ctx)
{
    writer *w = ctx;
    build *b = w->b;
    KILN_CHECK(write_split(file, w, 1, b->state ? "rows" : "train"));
    if (!b->state) KILN_CHECK(write_split(file, w, 0, "valid"));
    const char **names = malloc((size_t)w->width * sizeof *names);
    const char **spec = malloc((size_t)b->n * sizeof *spec);
    kiln_status st = names && spec ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "names");
    for (int j = 0; st == KILN_OK && j < w->width; j++) names[j] = w->names[j];
    for (int j = 0; st == KILN_OK && j < b->n; j++) spec[j] = b->c->features.define.items[j].value;
    if (st == KILN_OK) st = write_strings(file, "features/names", names, (uint64_t)w->width);
    if (st == KILN_OK) st = write_strings(file, "features/spec", spec, (uint64_t)b->n);
    for (int j = 0; st == KILN_OK && j < b->n; j++) spec[j] = b->f[j].name;
    if (st == KILN_OK) st = write_strings(file, "features/raw_names", spec, (uint64_t)b->n);
    free(names), free(spec);
    for (int j = 0; st == KILN_OK && !b->state && j < b->n; j++) st = write_stats(file, b, j);
    uint64_t fs[2] = {(uint64_t)b->n, FEAT_MAX_TRANSFORMS};
    if (st == KILN_OK)
        st = kiln_h5_write_dataset(file, "features/transform_a", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, fs, w->fit_a);
    if (st == KILN_OK)
        st = kiln_h5_write_dataset(file, "features/transform_b", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, fs, w->fit_b);
    KILN_CHECK(st);
    KILN_CHECK(kiln_h5_write_attr_str(file, "tables", b->c->features.tables));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "tables_crc32", w->tables_crc));
    KILN_CHECK(kiln_h5_write_attr_str(file, "config", b->config_yaml ? b->config_yaml : ""));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "rows", b->n_train + b->n_valid));
    if (b->state) KILN_CHECK(kiln_h5_write_attr_str(file, "state", b->state_path));
    return kiln_h5_write_attr_str(file, "valid_from", b->c->features.valid_from);
}

/* ---- the registry: a version of kind features ---- */

/* Per feature: its training statistics as metrics (NAME.mean ...; JSON has no NaN: absent). */
static json_t *stat_metrics(const build *b)
{
    json_t *m = json_pack("{s:I, s:I, s:i}", "train_rows", (json_int_t)b->n_train, "valid_rows",
                          (json_int_t)b->n_valid, "features", b->n);
    static const char *const field[6] = {"count", "missing_share", "mean", "std", "min", "max"};
    for (int j = 0; m && j < b->n; j++) {
        double st[6];
        feature_stats(b, j, st);
        for (int k = 0; k < 6; k++) {
            char key[KILN_CFG_MAP_KEY_MAX + 32];
            snprintf(key, sizeof key, "%s.%s", b->f[j].name, field[k]);
            if (isfinite(st[k])) json_object_set_new(m, key, json_real(st[k]));
        }
    }
    return m;
}

static kiln_status register_features(const build *b, uint32_t tables_crc)
{
    const kiln_registry_config *r = &b->c->registry;
    json_t *params = json_object();
    for (int j = 0; params && j < b->n; j++)
        json_object_set_new(params, b->c->features.define.items[j].key, json_string(b->c->features.define.items[j].value));
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", tables_crc);
    json_t *fields = json_pack("{s:o, s:o, s:{s:s, s:s, s:s, s:s}}", "metrics", stat_metrics(b), "params", params,
                               "lineage", "tables", b->c->features.tables, "tables_crc32", crc, "spine",
                               b->c->features.table, "valid_from", b->c->features.valid_from);
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(fields);
    KILN_CHECK_ALLOC(text);
    kiln_registry_artifact a = {b->output, "features.h5", "features", 0};
    int64_t version = 0;
    const char *root = kiln_registry_root(r->path);
    kiln_status st = kiln_registry_register(root, r->name, &a, 1, text, &version);
    free(text);
    if (st == KILN_OK && r->alias[0]) st = kiln_registry_set_alias(root, r->name, r->alias, version);
    if (st == KILN_OK)
        printf("registered: %s%s/%" PRId64 " (features, %d features, %" PRIu64 " + %" PRIu64 " rows)\n",
               KILN_REGISTRY_URI_PREFIX, r->name, version, b->n, b->n_train, b->n_valid);
    return st;
}

/* ---- the build ---- */

/* apply: every spine row with a time, one group, no label. */
static void apply_rows(build *b)
{
    for (uint64_t i = 0; i < b->spine.rows; i++) {
        b->keep[i] = b->train[i] = b->spine.time[i] != INT64_MIN;
        b->y[i] = 0;
        b->n_train += b->keep[i];
    }
}

/* apply: the state's features must be this spec's, line for line; then what they learned. */
static kiln_status read_strings(hid_t f, const char *path, const char *name, int n, char ***out)
{
    hid_t d = kiln_h5_exists(f, name) ? H5Dopen2(f, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (d < 0) return KILN_ERROR(KILN_ERR_DATA, "'%s' has no %s: not made by kiln features build", path, name);
    int nd = 0;
    uint64_t dims[KILN_H5_MAX_DIMS];
    if (kiln_h5_dataset_shape(d, &nd, dims) != KILN_OK || nd != 1 || dims[0] != (uint64_t)n) {
        H5Dclose(d);
        kiln_error_clear();
        return KILN_ERROR(KILN_ERR_CONFIG, "'%s' holds other features than this spec's %d (%s)", path, n, name);
    }
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    *out = calloc((size_t)n, sizeof **out);
    kiln_status st = *out ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "%s", name);
    if (st == KILN_OK && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "reading %s of '%s'", name, path);
    H5Tclose(type);
    H5Dclose(d);
    return st;
}

static kiln_status load_state(build *b)
{
    KILN_CHECK(kiln_registry_locate(kiln_registry_root(b->c->registry.path), b->state, b->state_path,
                                    sizeof b->state_path, NULL));
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(b->state_path, "--state", KILN_ERR_DATA, &f));
    char **names = NULL, **lines = NULL;
    kiln_status st = read_strings(f, b->state_path, "features/raw_names", b->n, &names);
    if (st == KILN_OK) st = read_strings(f, b->state_path, "features/spec", b->n, &lines);
    for (int j = 0; st == KILN_OK && j < b->n; j++)
        if (!names[j] || !lines[j] || strcmp(names[j], b->f[j].name) || strcmp(lines[j], b->c->features.define.items[j].value))
            st = KILN_ERROR(KILN_ERR_CONFIG, "--state '%s' was built with feature %d '%s: %s', this spec has '%s: %s': "
                            "apply needs the spec the state was built with", b->state_path, j, names[j] ? names[j] : "",
                            lines[j] ? lines[j] : "", b->f[j].name, b->c->features.define.items[j].value);
    for (int j = 0; j < b->n; j++) {
        if (names) free(names[j]);
        if (lines) free(lines[j]);
    }
    free(names), free(lines);
    uint64_t shape[2] = {(uint64_t)b->n, FEAT_MAX_TRANSFORMS};
    b->given_a = malloc((size_t)b->n * FEAT_MAX_TRANSFORMS * sizeof *b->given_a);
    b->given_b = malloc((size_t)b->n * FEAT_MAX_TRANSFORMS * sizeof *b->given_b);
    if (st == KILN_OK && (!b->given_a || !b->given_b)) st = KILN_ERROR(KILN_ERR_NOMEM, "the state");
    const char *sets[2] = {"features/transform_a", "features/transform_b"};
    double *into[2] = {b->given_a, b->given_b};
    for (int i = 0; i < 2 && st == KILN_OK; i++) {
        hid_t d;
        st = kiln_h5_open_dataset(f, sets[i], H5T_NATIVE_DOUBLE, 2, shape, &d);
        if (st == KILN_OK && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, into[i]) < 0)
            st = KILN_H5_ERROR(KILN_ERR_DATA, "reading %s of '%s'", sets[i], b->state_path);
        if (st == KILN_OK || d >= 0) H5Dclose(d);
    }
    H5Fclose(f);
    return st;
}

static kiln_status split(build *b)
{
    int64_t from = INT64_MAX;
    if (b->c->features.valid_from[0]) {
        if (!kiln_parse_iso8601(b->c->features.valid_from, &from))
            return KILN_ERROR(KILN_ERR_CONFIG, "valid_from '%s': expected an ISO 8601 time (2013-11-01 or "
                              "2013-11-01T00:00:00Z)", b->c->features.valid_from);
    }
    for (uint64_t i = 0; i < b->spine.rows; i++) {
        b->train[i] = b->spine.time[i] != INT64_MIN && b->spine.time[i] < from;
        if (!b->keep[i]) continue;
        if (b->spine.time[i] == INT64_MIN) b->keep[i] = 0;
        else if (b->train[i]) b->n_train++;
        else b->n_valid++;
    }
    if (!b->n_train)
        return KILN_ERROR(KILN_ERR_CONFIG, "valid_from '%s' leaves no spine row with a label before it to train on",
                          b->c->features.valid_from);
    return KILN_OK;
}

/* ---- progress: each feature's column, saved once computed (OUTPUT.feature-J.h5) ---- */

static void column_stage(const build *b, int j, uint32_t tables_crc, kiln_stage_file *sf)
{
    char identity[sizeof sf->identity], stage[32];
    snprintf(identity, sizeof identity, "tables=%s crc32=%08x spine=%s time=%s rows=%llu feature=%s: %s",
             b->c->features.tables, tables_crc, b->c->features.table, b->c->features.time,
             (unsigned long long)b->spine.rows, b->f[j].name, b->c->features.define.items[j].value);
    snprintf(stage, sizeof stage, "feature-%d", j);
    kiln_stage_init(sf, b->output, stage, identity);
}

/* Feature j's column: from an earlier run of the same build when it saved it, else computed
 * and saved. */
static kiln_status feature_column(build *b, int j, uint32_t tables_crc, double *col)
{
    kiln_stage_file sf;
    column_stage(b, j, tables_crc, &sf);
    kiln_stage_part part = {"values", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, {b->spine.rows, 0}, col,
                            b->spine.rows * sizeof *col};
    if (kiln_stage_load(&sf, &part, 1) > 0) {
        kiln_info("features: %s from an earlier run (%s)", b->f[j].name, sf.path);
        return KILN_OK;
    }
    double t1 = kiln_time_s();
    KILN_CHECK(compute_one(b, &b->f[j], col));
    kiln_info("features: %s in %.3f s", b->f[j].name, kiln_time_s() - t1);
    return kiln_stage_save(&sf, 1, &part, 1);
}

static void remove_stages(const build *b, uint32_t tables_crc)
{
    for (int j = 0; j < b->n; j++) {
        kiln_stage_file sf;
        column_stage(b, j, tables_crc, &sf);
        kiln_stage_remove(&sf);
    }
}

static kiln_status run(build *b)
{
    const kiln_features_config *c = b->c;
    double t0 = kiln_time_s();
    KILN_CHECK(parse_features(b));
    KILN_CHECK(kiln_feat_column_read(c->features.tables, c->features.table, c->features.time, &b->time));
    if (strcmp(b->time.type, "timestamp"))
        return KILN_ERROR(KILN_ERR_CONFIG, "spine.time: %s/%s is %s, not a timestamp", c->features.table,
                          c->features.time, b->time.type);
    b->spine = (feat_spine){b->time.rows, b->time.t};
    uint64_t rows = b->spine.rows, n = (uint64_t)b->n;
    b->raw = malloc((rows * n + 1) * sizeof *b->raw);
    b->y = malloc(rows + 1), b->keep = malloc(rows + 1), b->train = malloc(rows + 1);
    double *col = malloc((rows + 1) * sizeof *col);
    kiln_status st = b->raw && b->y && b->keep && b->train && col ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "features");
    if (st == KILN_OK) st = kiln_feat_dict_new(&b->dict);
    if (st == KILN_OK && b->state) st = load_state(b);
    if (st == KILN_OK && b->state) apply_rows(b);
    if (st == KILN_OK && !b->state) st = label(b);
    if (st == KILN_OK && !b->state) st = split(b);
    writer w = {.b = b};
    uint64_t bytes;
    if (st == KILN_OK) st = kiln_file_crc32(c->features.tables, &w.tables_crc, &bytes);
    for (int j = 0; st == KILN_OK && j < b->n; j++) {
        st = feature_column(b, j, w.tables_crc, col);
        for (uint64_t i = 0; st == KILN_OK && i < rows; i++) b->raw[i * n + (uint64_t)j] = col[i];
    }
    /* transforms, fitted on train, into the matrix */
    for (int j = 0; j < b->n; j++) w.width += kiln_feat_width(&b->f[j]);
    w.names = calloc((size_t)w.width, sizeof *w.names);
    w.xt = malloc((rows * (uint64_t)w.width + 1) * sizeof *w.xt);
    w.fit_a = calloc(n * FEAT_MAX_TRANSFORMS + 1, sizeof *w.fit_a);
    w.fit_b = calloc(n * FEAT_MAX_TRANSFORMS + 1, sizeof *w.fit_b);
    double *ind = malloc((rows + 1) * sizeof *ind);
    uint8_t *fit_rows = malloc(rows + 1);
    if (st == KILN_OK && (!w.names || !w.xt || !ind || !fit_rows || !w.fit_a || !w.fit_b))
        st = KILN_ERROR(KILN_ERR_NOMEM, "the matrix");
    for (uint64_t i = 0; st == KILN_OK && i < rows; i++) fit_rows[i] = b->keep[i] && b->train[i];
    for (int j = 0, at = 0; st == KILN_OK && j < b->n; j++) {
        for (uint64_t i = 0; i < rows; i++) col[i] = b->raw[i * n + (uint64_t)j];
        feat_fitted fit = {0}, given;
        if (b->state) {
            memcpy(given.a, b->given_a + (size_t)j * FEAT_MAX_TRANSFORMS, sizeof given.a);
            memcpy(given.b, b->given_b + (size_t)j * FEAT_MAX_TRANSFORMS, sizeof given.b);
        }
        int wide = kiln_feat_width(&b->f[j]);
        kiln_feat_transform(&b->f[j], col, rows, fit_rows, b->state ? &given : NULL, wide > 1 ? ind : NULL, &fit);
        memcpy(w.fit_a + (size_t)j * FEAT_MAX_TRANSFORMS, fit.a, sizeof fit.a);
        memcpy(w.fit_b + (size_t)j * FEAT_MAX_TRANSFORMS, fit.b, sizeof fit.b);
        snprintf(w.names[at], sizeof w.names[at], "%s", b->f[j].name);
        for (uint64_t i = 0; i < rows; i++) w.xt[i * (uint64_t)w.width + (uint64_t)at] = col[i];
        if (wide > 1) {
            snprintf(w.names[at + 1], sizeof w.names[at + 1], "%s_missing", b->f[j].name);
            for (uint64_t i = 0; i < rows; i++) w.xt[i * (uint64_t)w.width + (uint64_t)at + 1] = ind[i];
        }
        at += wide;
    }
    if (st == KILN_OK) st = kiln_h5_write_file_atomic(b->output, fill_file, &w);
    if (st == KILN_OK) remove_stages(b, w.tables_crc); /* the output holds it all now */
    if (st == KILN_OK && b->state)
        printf("kiln features apply: %" PRIu64 " rows x %d columns (%d features) with the transforms of %s in %.2f s "
               "-> %s\n", b->n_train, w.width, b->n, b->state_path, kiln_time_s() - t0, b->output);
    else if (st == KILN_OK)
        printf("kiln features build: %" PRIu64 " train + %" PRIu64 " valid rows x %d columns (%d features) in %.2f s "
               "-> %s\n", b->n_train, b->n_valid, w.width, b->n, kiln_time_s() - t0, b->output);
    if (st == KILN_OK && !b->state && c->registry.name[0]) st = register_features(b, w.tables_crc);
    free(w.names), free(w.xt), free(w.fit_a), free(w.fit_b), free(ind), free(fit_rows), free(col);
    return st;
}

kiln_status kiln_features_build(const kiln_features_config *c, const char *config_yaml, const char *state,
                                const char *output, kiln_comm *comm)
{
    build b = {.c = c, .output = output, .config_yaml = config_yaml, .state = state && state[0] ? state : NULL};
    kiln_status st = kiln_comm_rank(comm, KILN_AXIS_WORLD) == 0 ? run(&b) : KILN_OK;
    free(b.f), free(b.raw), free(b.y), free(b.keep), free(b.train), free(b.given_a), free(b.given_b);
    kiln_feat_column_free(&b.time);
    kiln_feat_dict_free(b.dict);
    return kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}
