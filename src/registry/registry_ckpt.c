/* What a version learns from a kiln checkpoint artifact: the run's config becomes params (one
 * key per dotted path, typed as the schema types it) and lineage (the config text, the source
 * file, the data file with its sha256), its counters become metrics. */
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/train.h"
#include "registry_internal.h"

static json_t *config_value(const kiln_cfg_key *key, const void *cfg)
{
    const char *field = (const char *)cfg + key->offset;
    switch (key->type) {
    case KILN_CFG_INT: return json_integer(*(const int *)field);
    case KILN_CFG_INT64: return json_integer(*(const int64_t *)field);
    case KILN_CFG_FLOAT: return json_real(*(const double *)field);
    case KILN_CFG_BOOL: return json_boolean(*(const int *)field);
    case KILN_CFG_STRING: return json_string(field);
    case KILN_CFG_INT_LIST: {
        const kiln_cfg_int_list *list = (const kiln_cfg_int_list *)field;
        json_t *a = json_array();
        for (int i = 0; a && i < list->n; i++) json_array_append_new(a, json_integer(list->v[i]));
        return a;
    }
    }
    return json_null();
}

static json_t *config_params(const kiln_train_config *cfg)
{
    json_t *params = json_object();
    for (size_t i = 0; params && i < kiln_train_schema.n_keys; i++) {
        const kiln_cfg_key *key = &kiln_train_schema.keys[i];
        json_object_set_new(params, key->path, config_value(key, cfg));
    }
    return params;
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

kiln_status reg_checkpoint_fields(const char *path, json_t **out)
{
    *out = NULL;
    enum { CONFIG_MAX = 65536 };
    char *config = malloc(CONFIG_MAX);
    kiln_train_config *cfg = malloc(sizeof *cfg);
    kiln_status st = config && cfg ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "checkpoint fields");
    int is_ckpt = 0;
    int64_t c[3] = {0, 0, 0};
    if (st == KILN_OK) st = read_checkpoint(path, &is_ckpt, c, config, CONFIG_MAX);
    if (st == KILN_OK && is_ckpt)
        st = kiln_config_load_text(&kiln_train_schema, cfg, config, path, NULL, 0);
    if (st == KILN_OK && is_ckpt) {
        char where[PATH_MAX];
        if (!realpath(path, where)) snprintf(where, sizeof where, "%s", path);
        json_t *data = json_array();
        if (data && cfg->data.path[0]) json_array_append_new(data, data_record(cfg->data.path));
        *out = json_pack("{s:{s:I, s:I, s:I}, s:o, s:{s:s, s:s, s:I, s:o}}", "metrics", "step",
                         (json_int_t)c[0], "samples_seen", (json_int_t)c[1], "tokens_seen",
                         (json_int_t)c[2], "params", config_params(cfg), "lineage", "config",
                         config, "source", where, "source_step", (json_int_t)c[0], "data", data);
        if (!*out) st = KILN_ERROR(KILN_ERR_NOMEM, "checkpoint fields of '%s'", path);
    }
    free(config);
    free(cfg);
    return st;
}
