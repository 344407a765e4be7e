/* What a version learns from a kiln checkpoint artifact: the run's config becomes params (one
 * key per dotted path, typed as its YAML reads, since the registry knows no job's schema) and
 * lineage (the config text, the source file, the data file with its sha256), its counters
 * become metrics. */
#include <errno.h>
#include <math.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "registry_internal.h"

/* A plain YAML scalar as JSON: integer, number, boolean or null where it reads as one
 * (YAML 1.1's core forms), else a string; a quoted scalar is always a string. */
static json_t *scalar_value(const char *text, int quoted)
{
    if (quoted) return json_string(text);
    if (!strcmp(text, "true") || !strcmp(text, "false")) return json_boolean(text[0] == 't');
    if (!strcmp(text, "null") || !strcmp(text, "~") || !text[0]) return json_null();
    char *end;
    errno = 0;
    long long i = strtoll(text, &end, 10);
    if (!*end && errno == 0) return json_integer(i);
    double d = strtod(text, &end);
    if (!*end && isfinite(d)) return json_real(d);
    return json_string(text);
}

typedef struct params_walk {
    json_t *params;
    char data_path[PATH_MAX];  /* data.path, the dataset the run read (lineage) */
} params_walk;

static kiln_status on_config_value(void *ctx, const char *path, const char *const *items,
                                   int n_items, int is_sequence, int quoted)
{
    params_walk *w = ctx;
    json_t *v;
    if (is_sequence) {
        v = json_array();
        for (int i = 0; v && i < n_items; i++) json_array_append_new(v, scalar_value(items[i], 0));
    } else {
        v = scalar_value(items[0], quoted);
        if (!strcmp(path, "data.path")) snprintf(w->data_path, sizeof w->data_path, "%s", items[0]);
    }
    if (!v || json_object_set_new(w->params, path, v) != 0)
        return KILN_ERROR(KILN_ERR_NOMEM, "registry params: key '%s'", path);
    return KILN_OK;
}

/* {path, sha256, bytes} of a data file; sha256 null (with a warning) when it is gone. */
static json_t *data_record(const char *path)
{
    char sha[KILN_SHA256_HEX], where[PATH_MAX];
    uint64_t bytes;
    if (!realpath(path, where)) snprintf(where, sizeof where, "%s", path);
    if (kiln_file_sha256(where, sha, &bytes) != KILN_OK) {
        kiln_warn("registry lineage: data file '%s' cannot be read, recording it without a "
                  "checksum: %s", path, kiln_error_message());
        kiln_error_clear();
        return json_pack("{s:s, s:n, s:n}", "path", where, "sha256", "bytes");
    }
    return json_pack("{s:s, s:s, s:I}", "path", where, "sha256", sha, "bytes", (json_int_t)bytes);
}

/* Reads the checkpoint's counters and config; *is_ckpt = 0 when it has none of kiln's. */
static kiln_status read_checkpoint(const char *path, int *is_ckpt, int64_t counters[3],
                                   char *config, size_t len)
{
    static const char *names[3] = {"step", "samples_seen", "tokens_seen"};
    *is_ckpt = 0;
    kiln_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return KILN_OK;
    kiln_status st = KILN_OK;
    if (kiln_h5_has_attr(f, "format_version") && kiln_h5_has_attr(f, "config")) {
        *is_ckpt = 1;
        for (int i = 0; i < 3 && st == KILN_OK; i++)
            st = kiln_h5_read_attr_i64(f, names[i], &counters[i]);
        if (st == KILN_OK) st = kiln_h5_read_attr_str(f, "config", config, len);
    }
    H5Fclose(f);
    return st;
}

kiln_status kiln_reg_checkpoint_fields(const char *path, json_t **out)
{
    *out = NULL;
    enum { CONFIG_MAX = 65536 };
    char *config = malloc(CONFIG_MAX);
    params_walk walk = {json_object(), ""};
    kiln_status st = config && walk.params ? KILN_OK
                                           : KILN_ERROR(KILN_ERR_NOMEM, "checkpoint fields");
    int is_ckpt = 0;
    int64_t c[3] = {0, 0, 0};
    if (st == KILN_OK) st = read_checkpoint(path, &is_ckpt, c, config, CONFIG_MAX);
    /* the params are the job's config as it wrote it, whatever kind of job that was */
    if (st == KILN_OK && is_ckpt) st = kiln_config_walk_values(config, path, on_config_value, &walk);
    if (st == KILN_OK && is_ckpt) {
        char where[PATH_MAX];
        if (!realpath(path, where)) snprintf(where, sizeof where, "%s", path);
        json_t *data = json_array();
        if (data && walk.data_path[0]) json_array_append_new(data, data_record(walk.data_path));
        *out = json_pack("{s:{s:I, s:I, s:I}, s:O, s:{s:s, s:s, s:I, s:o}}", "metrics", "step",
                         (json_int_t)c[0], "samples_seen", (json_int_t)c[1], "tokens_seen",
                         (json_int_t)c[2], "params", walk.params, "lineage", "config",
                         config, "source", where, "source_step", (json_int_t)c[0], "data", data);
        if (!*out) st = KILN_ERROR(KILN_ERR_NOMEM, "checkpoint fields of '%s'", path);
    }
    json_decref(walk.params);
    free(config);
    return st;
}
