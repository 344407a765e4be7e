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
 * Many ranks: each holds a contiguous share of the spine rows; a keyed feature's rows move to the
 * rank owning their key and its values back (exchange.c); each feature's transforms are fitted on
 * one rank from the training values of all (fit.c); every rank writes its rows (write.c). The
 * file is the same on any number of ranks.
 * Each rank saves its share of each feature's column once computed (OUTPUT.feature-J[-part-R-of-S].h5,
 * kiln/stage.h), so a build killed part way computes only the rest when rerun with the same
 * ranks; they are removed with the output written. */
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
#include "kiln/comm.h"
#include "features_internal.h"

typedef feat_build build;

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
    KILN_CHECK(kiln_feat_column_read_part(b->c->features.tables, b->c->features.table, col, b->rank, b->size, &c));
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

/* This rank's share of a column's keys (the spine's or a table's) through the build's
 * dictionary; *first: the share's first row. */
static kiln_status keys_of(build *b, const char *table, const char *name, int64_t **keys, uint64_t *n, uint64_t *first)
{
    feat_column c;
    KILN_CHECK(kiln_feat_column_read_part(b->c->features.tables, table, name, b->rank, b->size, &c));
    *keys = malloc((c.rows + 1) * sizeof **keys);
    kiln_status st = *keys ? kiln_feat_keys(&c, b->dict, *keys) : KILN_ERROR(KILN_ERR_NOMEM, "keys of %s", name);
    *n = c.rows, *first = c.first;
    kiln_feat_column_free(&c);
    return st;
}

static kiln_status read_part(build *b, const char *table, const char *name, feat_column *c)
{
    return kiln_feat_column_read_part(b->c->features.tables, table, name, b->rank, b->size, c);
}

static kiln_status event_times(build *b, const feature *f, feat_column *t)
{
    const char *name = f->at[0] ? f->at : b->c->features.time;
    KILN_CHECK(read_part(b, f->table, name, t));
    if (strcmp(t->type, "timestamp"))
        return KILN_ERROR(KILN_ERR_CONFIG, "feature %s: %s/%s is %s; the time of events must be a timestamp (give "
                          "its table's time column with 'at COLUMN')", f->name, f->table, name, t->type);
    return KILN_OK;
}

/* A keyed feature: this rank's shares of the spine's keys and of the table, then the exchange. */
static kiln_status compute_keyed(build *b, const feature *f, double *out)
{
    int64_t *skeys = NULL, *keys = NULL;
    uint64_t ns = 0, n = 0, sfirst = 0, efirst = 0;
    feat_column v = {0}, t = {0}, cr = {0};
    kiln_status st = keys_of(b, b->c->features.table, f->by, &skeys, &ns, &sfirst);
    if (st == KILN_OK) st = keys_of(b, f->table, f->by, &keys, &n, &efirst);
    if (st == KILN_OK) st = read_part(b, f->table, f->column, &v);
    if (st == KILN_OK && f->kind != FEAT_LOOKUP) st = event_times(b, f, &t);
    if (st == KILN_OK && f->created[0]) st = read_part(b, f->table, f->created, &cr);
    if (st == KILN_OK && f->created[0] && strcmp(cr.type, "timestamp"))
        st = KILN_ERROR(KILN_ERR_CONFIG, "feature %s: created column %s/%s is %s, not a timestamp", f->name, f->table,
                        f->created, cr.type);
    /* every rank reaches the exchange, or all leave with the error */
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    feat_keyed_share in = {ns, skeys, b->spine.time, n, efirst, keys, t.t, cr.t, v.v};
    if (st == KILN_OK) st = kiln_feat_keyed(b->comm, f, &in, out);
    free(skeys), free(keys);
    kiln_feat_column_free(&v), kiln_feat_column_free(&t), kiln_feat_column_free(&cr);
    return st;
}

static kiln_status compute_one(build *b, const feature *f, double *out)
{
    if (f->kind == FEAT_TIME) {
        kiln_feat_time_part(f->part, &b->spine, out);
        return KILN_OK;
    }
    if (f->kind == FEAT_COLUMN) {
        feat_column c;
        KILN_CHECK(read_part(b, b->c->features.table, f->column, &c));
        memcpy(out, c.v, b->spine.rows * sizeof *out);
        kiln_feat_column_free(&c);
        return KILN_OK;
    }
    return compute_keyed(b, f, out);
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

/* ---- the registry: a version of kind features ---- */

/* Per feature: its training statistics as metrics (NAME.mean ...; JSON has no NaN: absent). */
static json_t *stat_metrics(const build *b)
{
    json_t *m = json_pack("{s:I, s:I, s:i}", "train_rows", (json_int_t)b->n_train, "valid_rows",
                          (json_int_t)b->n_valid, "features", b->n);
    for (int j = 0; m && j < b->n; j++) {
        const double *st = b->stats + (size_t)j * FEAT_STATS_ROW;
        for (int k = 0; k < FEAT_N_STATS; k++) {
            char key[KILN_CFG_MAP_KEY_MAX + 32];
            snprintf(key, sizeof key, "%s.%s", b->f[j].name, kiln_feat_stat_names[k]);
            if (isfinite(st[k])) json_object_set_new(m, key, json_real(st[k]));
        }
    }
    return m;
}

static kiln_status register_features(const build *b)
{
    const kiln_registry_config *r = &b->c->registry;
    json_t *params = json_object();
    for (int j = 0; params && j < b->n; j++)
        json_object_set_new(params, b->c->features.define.items[j].key, json_string(b->c->features.define.items[j].value));
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", b->tables_crc);
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
               KILN_REGISTRY_URI_PREFIX, r->name, version, b->n, b->all_train, b->all_valid);
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

/* Where this rank's rows go: after every row of the ranks before it, split by split. */
static kiln_status place_rows(build *b)
{
    uint64_t mine[2] = {b->n_train, b->n_valid};
    uint64_t *all = malloc((size_t)b->size * sizeof mine);
    KILN_CHECK_ALLOC(all);
    kiln_status st = kiln_comm_allgather_bytes(b->comm, KILN_AXIS_WORLD, mine, all, sizeof mine);
    b->train_at = b->valid_at = b->all_train = b->all_valid = 0;
    for (int p = 0; st == KILN_OK && p < b->size; p++) {
        if (p < b->rank) b->train_at += all[2 * p], b->valid_at += all[2 * p + 1];
        b->all_train += all[2 * p], b->all_valid += all[2 * p + 1];
    }
    free(all);
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
    return KILN_OK;
}

/* ---- progress: each feature's column, saved once computed (OUTPUT.feature-J.h5) ---- */

static void column_stage(const build *b, int j, kiln_stage_file *sf)
{
    char identity[sizeof sf->identity], stage[64];
    snprintf(identity, sizeof identity, "tables=%s crc32=%08x spine=%s time=%s rows=%llu first=%llu of=%llu "
             "feature=%s: %s", b->c->features.tables, b->tables_crc, b->c->features.table, b->c->features.time,
             (unsigned long long)b->spine.rows, (unsigned long long)b->first, (unsigned long long)b->total,
             b->f[j].name, b->c->features.define.items[j].value);
    if (b->size == 1) snprintf(stage, sizeof stage, "feature-%d", j);
    else snprintf(stage, sizeof stage, "feature-%d-part-%d-of-%d", j, b->rank, b->size);
    kiln_stage_init(sf, b->output, stage, identity);
}

/* Feature j's column of this rank's rows: from an earlier run of the same build when every rank
 * saved its part (the ranks compute together or not at all: a keyed feature is collective),
 * else computed and saved. */
static kiln_status feature_column(build *b, int j, double *col)
{
    kiln_stage_file sf;
    column_stage(b, j, &sf);
    kiln_stage_part part = {"values", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, {b->spine.rows, 0}, col,
                            b->spine.rows * sizeof *col};
    int64_t saved = kiln_stage_load(&sf, &part, 1) > 0;
    KILN_CHECK(kiln_comm_allreduce_i64(b->comm, KILN_AXIS_WORLD, &saved, 1));
    if (saved == b->size) {
        if (b->rank == 0) kiln_info("features: %s from an earlier run (%s)", b->f[j].name, sf.path);
        return KILN_OK;
    }
    double t1 = kiln_time_s();
    kiln_status st = compute_one(b, &b->f[j], col);
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK && b->rank == 0) kiln_info("features: %s in %.3f s", b->f[j].name, kiln_time_s() - t1);
    if (st == KILN_OK) st = kiln_stage_save(&sf, 1, &part, 1);
    return kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}

static void remove_stages(const build *b)
{
    for (int j = 0; j < b->n; j++) {
        kiln_stage_file sf;
        column_stage(b, j, &sf);
        kiln_stage_remove(&sf);
    }
}

/* ---- the transforms: fitted (build) or given (apply), applied to this rank's rows ---- */

static kiln_status transform_one(build *b, int j, int at, double *col, double *ind, const uint8_t *fit_rows)
{
    uint64_t rows = b->spine.rows, n = (uint64_t)b->n, w = (uint64_t)b->width;
    const feature *f = &b->f[j];
    for (uint64_t i = 0; i < rows; i++) col[i] = b->raw[i * n + (uint64_t)j];
    const feat_cats *src = kiln_feat_is_categorical(f) ? &b->cats[j] : NULL;
    if (!b->state)
        KILN_CHECK(kiln_feat_fit(b->comm, j % b->size, f, col, fit_rows, rows, src, &b->fitted[j],
                                 b->stats + (size_t)j * FEAT_STATS_ROW));
    int wide = kiln_feat_width(f);
    KILN_CHECK(kiln_feat_transform(f, col, rows, NULL, &b->fitted[j], src, wide > 1 ? ind : NULL, NULL));
    snprintf(b->names[at], sizeof b->names[at], "%s", f->name);
    for (uint64_t i = 0; i < rows; i++) b->xt[i * w + (uint64_t)at] = col[i];
    if (wide > 1) {
        snprintf(b->names[at + 1], sizeof b->names[at + 1], "%s_missing", f->name);
        for (uint64_t i = 0; i < rows; i++) b->xt[i * w + (uint64_t)at + 1] = ind[i];
    }
    return KILN_OK;
}

static kiln_status transform_all(build *b, double *col)
{
    uint64_t rows = b->spine.rows, n = (uint64_t)b->n;
    for (int j = 0; j < b->n; j++) b->width += kiln_feat_width(&b->f[j]);
    b->names = calloc((size_t)b->width, sizeof *b->names);
    b->xt = malloc((rows * (uint64_t)b->width + 1) * sizeof *b->xt);
    b->stats = calloc(n * FEAT_STATS_ROW + 1, sizeof *b->stats);
    double *ind = malloc((rows + 1) * sizeof *ind);
    uint8_t *fit_rows = malloc(rows + 1);
    kiln_status st = b->names && b->xt && b->stats && ind && fit_rows ? KILN_OK
                                                                       : KILN_ERROR(KILN_ERR_NOMEM, "the matrix");
    for (uint64_t i = 0; st == KILN_OK && i < rows; i++) fit_rows[i] = b->keep[i] && b->train[i];
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    for (int j = 0, at = 0; st == KILN_OK && j < b->n; at += kiln_feat_width(&b->f[j]), j++) {
        st = transform_one(b, j, at, col, ind, fit_rows);
        st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    }
    free(ind), free(fit_rows);
    return st;
}

/* ---- the build ---- */

/* The spine's share of this rank and what every row of it is: label, split, place. */
static kiln_status spine(build *b)
{
    const kiln_features_config *c = b->c;
    kiln_status st = read_part(b, c->features.table, c->features.time, &b->time);
    if (st == KILN_OK && strcmp(b->time.type, "timestamp"))
        st = KILN_ERROR(KILN_ERR_CONFIG, "spine.time: %s/%s is %s, not a timestamp", c->features.table,
                        c->features.time, b->time.type);
    b->spine = (feat_spine){b->time.rows, b->time.t};
    b->first = b->time.first, b->total = b->time.total;
    uint64_t rows = b->spine.rows;
    if (st == KILN_OK) { /* no return before the agreement below: every rank must reach it */
        b->raw = malloc((rows * (uint64_t)b->n + 1) * sizeof *b->raw);
        b->y = malloc(rows + 1), b->keep = malloc(rows + 1), b->train = malloc(rows + 1);
        st = b->raw && b->y && b->keep && b->train ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "features");
    }
    if (st == KILN_OK && b->state) st = kiln_feat_state_read(b);
    if (st == KILN_OK && b->state) apply_rows(b);
    if (st == KILN_OK && !b->state) st = label(b);
    if (st == KILN_OK && !b->state) st = split(b);
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = place_rows(b);
    if (st == KILN_OK && !b->state && !b->all_train)
        st = KILN_ERROR(KILN_ERR_CONFIG, "valid_from '%s' leaves no spine row with a label before it to train on",
                        c->features.valid_from);
    return st;
}

/* The tables file's CRC-32, each rank checksumming 1/R of its bytes, combined in rank order. */
static kiln_status tables_crc(build *b)
{
    struct part {
        uint32_t crc;
        uint64_t len;
    } mine = {0, 0}, *all = calloc((size_t)b->size, sizeof *all);
    kiln_status st = all ? kiln_file_crc32_part(b->c->features.tables, b->rank, b->size, &mine.crc, &mine.len, NULL)
                         : KILN_ERROR(KILN_ERR_NOMEM, "checksums");
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = kiln_comm_allgather_bytes(b->comm, KILN_AXIS_WORLD, &mine, all, sizeof mine);
    b->tables_crc = 0;
    for (int p = 0; st == KILN_OK && p < b->size; p++)
        b->tables_crc = p ? kiln_crc32_combine(b->tables_crc, all[p].crc, all[p].len) : all[p].crc;
    free(all);
    return st;
}

static kiln_status run(build *b)
{
    const kiln_features_config *c = b->c;
    double t0 = kiln_time_s();
    kiln_status st = parse_features(b);
    if (st == KILN_OK) {
        b->fitted = calloc((size_t)b->n + 1, sizeof *b->fitted);
        b->cats = calloc((size_t)b->n + 1, sizeof *b->cats);
        if (!b->fitted || !b->cats) st = KILN_ERROR(KILN_ERR_NOMEM, "features");
    }
    for (int j = 0; st == KILN_OK && j < b->n; j++) st = kiln_feat_source_check(b, j);
    if (st == KILN_OK) st = kiln_feat_dict_new(&b->dict);
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK) st = tables_crc(b);
    if (st == KILN_OK) st = spine(b);
    uint64_t rows = b->spine.rows, n = (uint64_t)b->n;
    double *col = st == KILN_OK ? malloc((rows + 1) * sizeof *col) : NULL;
    if (st == KILN_OK && !col) st = KILN_ERROR(KILN_ERR_NOMEM, "features");
    st = kiln_comm_agree(b->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    for (int j = 0; st == KILN_OK && j < b->n; j++) {
        st = feature_column(b, j, col);
        for (uint64_t i = 0; st == KILN_OK && i < rows; i++) b->raw[i * n + (uint64_t)j] = col[i];
    }
    double t1 = kiln_time_s();
    if (st == KILN_OK) st = transform_all(b, col);
    free(col);
    if (st == KILN_OK && b->rank == 0)
        kiln_info("features: transforms %s in %.3f s", b->state ? "applied" : "fitted and applied", kiln_time_s() - t1);
    t1 = kiln_time_s();
    if (st == KILN_OK) st = kiln_feat_write(b);
    if (st == KILN_OK && b->rank == 0) kiln_info("features: %s written in %.3f s", b->output, kiln_time_s() - t1);
    if (st == KILN_OK) remove_stages(b); /* the output holds it all now */
    if (st == KILN_OK && b->rank == 0 && b->state)
        printf("kiln features apply: %" PRIu64 " rows x %d columns (%d features) with the transforms of %s in %.2f s "
               "-> %s\n", b->all_train, b->width, b->n, b->state_path, kiln_time_s() - t0, b->output);
    else if (st == KILN_OK && b->rank == 0)
        printf("kiln features build: %" PRIu64 " train + %" PRIu64 " valid rows x %d columns (%d features) on %d "
               "rank%s in %.2f s -> %s\n", b->all_train, b->all_valid, b->width, b->n, b->size, b->size > 1 ? "s" : "",
               kiln_time_s() - t0, b->output);
    if (st == KILN_OK && b->rank == 0 && !b->state && c->registry.name[0]) st = register_features(b);
    return st;
}

kiln_status kiln_features_build(const kiln_features_config *c, const char *config_yaml, const char *state,
                                const char *output, kiln_comm *comm)
{
    build b = {.c = c, .comm = comm, .output = output, .config_yaml = config_yaml,
               .state = state && state[0] ? state : NULL, .rank = kiln_comm_rank(comm, KILN_AXIS_WORLD),
               .size = kiln_comm_size(comm, KILN_AXIS_WORLD)};
    kiln_status st = run(&b);
    for (int j = 0; j < b.n; j++) {
        if (b.fitted) kiln_feat_fitted_free(&b.fitted[j]);
        if (b.cats) kiln_h5_free_strings(b.cats[j].s, (uint64_t)b.cats[j].n);
    }
    free(b.f), free(b.raw), free(b.y), free(b.keep), free(b.train), free(b.fitted), free(b.cats);
    free(b.names), free(b.xt), free(b.stats);
    kiln_feat_column_free(&b.time);
    kiln_feat_dict_free(b.dict);
    return kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}
