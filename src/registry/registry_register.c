/* Registering versions and adding artifacts.
 *
 * A new version is assembled outside the lock in models/NAME/.staging/XXXXXX (artifacts copied
 * and digested there, which is the slow part), then, under the lock, numbered one past the
 * highest number ever allocated, given its version.json and renamed into versions/N. Readers
 * see either no version N or all of it; a writer that dies leaves only a staging directory,
 * which gc clears. */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/ckpt.h"
#include "registry_internal.h"

/* The metadata fields every version has, in the order version.json lists them. */
static json_t *base_metadata(const char *name, const char *kind)
{
    char now[32], user[256], host[256] = "";
    kiln_reg_time_now(now);
    kiln_reg_user(user, sizeof user);
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    const char *job = getenv("SLURM_JOB_ID");
    return json_pack("{s:i, s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:{}, s:{}, s:{}}",
                     "format", REG_FORMAT, "name", name, "version", 0, "kind", kind, "created",
                     now, "user", user, "host", host, "slurm_job_id",
                     job && *job ? json_string(job) : json_null(), "kiln_version", KILN_VERSION,
                     "parent", "metrics", "params", "lineage");
}

/* Sets every key of src in dst; where both hold objects, merges those key by key instead. */
static void merge_one_level(json_t *dst, json_t *src)
{
    const char *key;
    json_t *value;
    json_object_foreach(src, key, value)
    {
        json_t *have = json_object_get(dst, key);
        if (json_is_object(have) && json_is_object(value))
            json_object_update(have, value);
        else
            json_object_set(dst, key, value);
    }
}

static kiln_status parse_fields(const char *fields_json, json_t **out)
{
    *out = NULL;
    if (!fields_json || !*fields_json) return KILN_OK;
    json_error_t err;
    json_t *j = json_loads(fields_json, JSON_REJECT_DUPLICATES, &err);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return KILN_ERROR(KILN_ERR_ARG, "registry fields are not a JSON object%s%s",
                          j ? "" : ": ", j ? "" : err.text);
    }
    *out = j;
    return KILN_OK;
}

static const char *artifact_name(const kiln_registry_artifact *a, char *buf, size_t len)
{
    if (a->name) return a->name;
    snprintf(buf, len, "%s", a->path);
    return basename(buf);
}

/* Copies (or, external, digests in place) one artifact into dir and appends its record. */
static kiln_status stage_artifact(const char *dir, const kiln_registry_artifact *a, json_t *list)
{
    char buf[PATH_MAX], dst[PATH_MAX], where[PATH_MAX], sha[KILN_SHA256_HEX];
    uint64_t bytes;
    const char *name = artifact_name(a, buf, sizeof buf);
    KILN_CHECK(kiln_registry_check_name("artifact name", name));
    if (!strcmp(name, REG_VERSION_FILE))
        return KILN_ERROR(KILN_ERR_ARG, "artifact name '%s' is reserved", name);
    size_t i;
    json_t *rec;
    json_array_foreach(list, i, rec)
    {
        if (!strcmp(json_string_value(json_object_get(rec, "name")), name))
            return KILN_ERROR(KILN_ERR_ARG, "two artifacts named '%s'", name);
    }
    struct stat sb;
    if (stat(a->path, &sb) != 0)
        return KILN_ERROR(KILN_ERR_ARG, "artifact '%s': %s", a->path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return KILN_ERROR(KILN_ERR_ARG, "artifact '%s' is not a regular file", a->path);
    if (a->external) {
        if (!realpath(a->path, where))
            return KILN_ERROR(KILN_ERR_IO, "cannot resolve '%s': %s", a->path, strerror(errno));
        KILN_CHECK(kiln_file_sha256(where, sha, &bytes));
    } else {
        KILN_CHECK(kiln_path_format(dst, sizeof dst, "%s/%s", dir, name));
        KILN_CHECK(kiln_file_copy(a->path, dst, sha, &bytes));
        snprintf(where, sizeof where, "%s", name);
    }
    rec = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b}", "name", name, "kind",
                    a->kind ? a->kind : "model", "path", where, "sha256", sha, "bytes",
                    (json_int_t)bytes, "external", a->external);
    KILN_CHECK_ALLOC(rec);
    json_array_append_new(list, rec);
    return KILN_OK;
}

/* The highest version number ever allocated: last_version, or the newest directory if higher
 * (a writer may die between the rename and the counter update). */
static kiln_status highest_allocated(const char *mdir, int64_t *highest)
{
    char path[PATH_MAX], line[64] = "";
    int64_t *v;
    int n;
    KILN_CHECK(kiln_reg_list_versions(mdir, &v, &n));
    *highest = n ? v[n - 1] : 0;
    free(v);
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/last_version", mdir));
    FILE *f = fopen(path, "r");
    if (!f) return KILN_OK;
    kiln_status st = KILN_OK;
    if (fgets(line, sizeof line, f)) {
        char *end;
        errno = 0;
        long long last = strtoll(line, &end, 10);
        /* the next version must be representable: a counter at INT64_MAX (or garbage) is an
         * error naming the file, not an overflow */
        if (errno || end == line || (*end && *end != '\n') || last < 0 || last == INT64_MAX)
            st = KILN_ERROR(KILN_ERR_DATA, "'%s' holds '%.20s', expected the number of the last "
                            "version registered (0 to %lld)", path, line, (long long)INT64_MAX - 1);
        else if (last > *highest)
            *highest = last;
    }
    fclose(f);
    if (st == KILN_OK && *highest == INT64_MAX)
        st = KILN_ERROR(KILN_ERR_DATA, "'%s' has a version numbered %lld: no version can follow it",
                        mdir, (long long)INT64_MAX);
    return st;
}

/* Under the lock: number the staged version, write its metadata, rename it into place. */
static kiln_status publish(const char *mdir, const char *staging, json_t *meta, int64_t *version)
{
    char path[PATH_MAX], dst[PATH_MAX], line[32];
    int64_t highest;
    KILN_CHECK(highest_allocated(mdir, &highest));
    int64_t v = highest + 1;
    json_object_set_new(meta, "version", json_integer(v));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/" REG_VERSION_FILE, staging));
    KILN_CHECK(kiln_reg_json_save(path, meta));
    KILN_CHECK(kiln_reg_version_dir(mdir, v, dst, sizeof dst));
    if (rename(staging, dst) != 0)
        return KILN_ERROR(KILN_ERR_IO, "cannot rename '%s' to '%s': %s", staging, dst,
                          strerror(errno));
    KILN_CHECK(kiln_fsync_parent_dir(dst));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/last_version", mdir));
    snprintf(line, sizeof line, "%" PRId64 "\n", v);
    KILN_CHECK(kiln_write_file_atomic(path, line, strlen(line)));
    KILN_CHECK(kiln_reg_history_append(mdir, "register", json_pack("{s:I}", "version", (json_int_t)v)));
    *version = v;
    return KILN_OK;
}

/* A model version's file is a kiln checkpoint that verifies: anything else would resolve to
 * something no job can open. */
static kiln_status require_checkpoint(const char *name, const char *path)
{
    if (kiln_ckpt_verify(path) == KILN_OK) return KILN_OK;
    char inner[2048];
    snprintf(inner, sizeof inner, "%s", kiln_error_message());
    kiln_error_clear();
    return KILN_ERROR(KILN_ERR_ARG, "registering '%s': '%s' is not a kiln checkpoint that "
                      "verifies (%s); a version of kind model must be one (register other files "
                      "with another kind: --kind)", name, path, inner);
}

/* Metadata without the version number: base fields, those of a checkpoint artifact, the
 * caller's, then the artifact records. */
static kiln_status build_metadata(const char *name, const kiln_registry_artifact *artifacts,
                                  int n, const char *fields_json, json_t *records, json_t **out)
{
    /* the version's kind is its first artifact's: a model, a feature set, an index, ... */
    const char *kind = artifacts[0].kind ? artifacts[0].kind : KILN_REGISTRY_KIND_MODEL;
    json_t *meta = base_metadata(name, kind), *from_ckpt = NULL, *fields = NULL;
    KILN_CHECK_ALLOC(meta);
    kiln_status st = parse_fields(fields_json, &fields);
    if (st == KILN_OK && fields && json_object_get(fields, "kind"))
        st = KILN_ERROR(KILN_ERR_ARG, "registering '%s': a version's kind is its first "
                        "artifact's ('%s'), not a field", name, kind);
    if (st == KILN_OK && !strcmp(kind, KILN_REGISTRY_KIND_MODEL))
        st = require_checkpoint(name, artifacts[0].path);
    if (st == KILN_OK && !strcmp(kind, KILN_REGISTRY_KIND_MODEL))
        st = kiln_reg_checkpoint_fields(artifacts[0].path, &from_ckpt);
    if (st == KILN_OK) {
        if (from_ckpt) merge_one_level(meta, from_ckpt);
        if (fields) merge_one_level(meta, fields);
        json_object_set(meta, "artifacts", records);
        *out = meta;
    } else {
        json_decref(meta);
    }
    json_decref(from_ckpt);
    json_decref(fields);
    return st;
}

static kiln_status make_model_dirs(const char *mdir)
{
    const char *subdirs[] = {"versions", "aliases", ".staging", ".trash"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char dir[PATH_MAX];
        KILN_CHECK(kiln_path_format(dir, sizeof dir, "%s/%s", mdir, subdirs[i]));
        KILN_CHECK(kiln_mkdir_p(dir));
    }
    return KILN_OK;
}

kiln_status kiln_registry_register(const char *root, const char *name,
                                   const kiln_registry_artifact *artifacts, int n_artifacts,
                                   const char *fields_json, int64_t *version)
{
    char mdir[PATH_MAX], staging[PATH_MAX];
    int exists;
    *version = 0;
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, &exists));
    if (n_artifacts < 1)
        return KILN_ERROR(KILN_ERR_ARG, "registering '%s': at least one artifact is needed", name);
    KILN_CHECK(make_model_dirs(mdir));
    KILN_CHECK(kiln_reg_clear_leftovers(mdir)); /* staging copies of writers killed before */
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = '\0'; /* HOST.PID.XXXXXX: dots separate the fields */
    KILN_CHECK(kiln_path_format(staging, sizeof staging, "%s/.staging/%s.%ld.XXXXXX", mdir, host,
                                (long)getpid()));
    if (!mkdtemp(staging))
        return KILN_ERROR(KILN_ERR_IO, "cannot create a staging directory in '%s/.staging': %s",
                          mdir, strerror(errno));
    json_t *records = json_array(), *meta = NULL;
    kiln_status st = records ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "artifact list");
    for (int i = 0; i < n_artifacts && st == KILN_OK; i++)
        st = stage_artifact(staging, &artifacts[i], records);
    if (st == KILN_OK) st = build_metadata(name, artifacts, n_artifacts, fields_json, records, &meta);
    int fd = -1;
    if (st == KILN_OK) st = kiln_reg_lock(mdir, &fd);
    if (st == KILN_OK) st = publish(mdir, staging, meta, version);
    kiln_file_unlock(fd);
    if (st != KILN_OK && kiln_path_exists(staging) && kiln_reg_remove_flat_dir(staging) != KILN_OK)
        kiln_error_trace(__FILE__, __LINE__, "kiln_reg_remove_flat_dir(staging)"); /* keep first error */
    json_decref(records);
    json_decref(meta);
    return st;
}

/* *same = 1 when the version holds an artifact of that name with the file's bytes already (a
 * rerun adding it again); another artifact of that name is an error. */
static kiln_status already_there(json_t *records, const kiln_registry_artifact *a,
                                 const char *model, int64_t version, int *same)
{
    char buf[PATH_MAX], sha[KILN_SHA256_HEX];
    const char *name = artifact_name(a, buf, sizeof buf);
    size_t i;
    json_t *rec;
    *same = 0;
    json_array_foreach(records, i, rec)
    {
        if (strcmp(json_string_value(json_object_get(rec, "name")) ?: "", name)) continue;
        uint64_t bytes;
        KILN_CHECK(kiln_file_sha256(a->path, sha, &bytes));
        const char *have = json_string_value(json_object_get(rec, "sha256")) ?: "";
        if (strcmp(have, sha))
            return KILN_ERROR(KILN_ERR_ARG, "version %" PRId64 " of model '%s' already has an "
                              "artifact '%s' with other bytes (sha256 %.16s..., this file's "
                              "%.16s...); give this one another name", version, model, name,
                              have, sha);
        *same = 1;
    }
    return KILN_OK;
}

kiln_status kiln_registry_add_artifact(const char *root, const char *name, int64_t version,
                                       const kiln_registry_artifact *artifact)
{
    char mdir[PATH_MAX], vdir[PATH_MAX], path[PATH_MAX];
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    KILN_CHECK(kiln_reg_version_dir(mdir, version, vdir, sizeof vdir));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/" REG_VERSION_FILE, vdir));
    int fd;
    KILN_CHECK(kiln_reg_lock(mdir, &fd));
    json_t *meta = NULL;
    kiln_status st = kiln_reg_load_version(mdir, version, &meta);
    json_t *records = meta ? json_object_get(meta, "artifacts") : NULL;
    if (st == KILN_OK && !json_is_array(records))
        st = KILN_ERROR(KILN_ERR_DATA, "registry file '%s' has no artifacts list", path);
    int same = 0;
    if (st == KILN_OK) st = already_there(records, artifact, name, version, &same);
    if (st == KILN_OK && !same) st = stage_artifact(vdir, artifact, records);
    if (st == KILN_OK && !same) st = kiln_reg_json_save(path, meta);
    if (st == KILN_OK && !same) {
        char buf[PATH_MAX];
        st = kiln_reg_history_append(mdir, "artifact",
                                json_pack("{s:I, s:s}", "version", (json_int_t)version, "artifact",
                                          artifact_name(artifact, buf, sizeof buf)));
    }
    kiln_file_unlock(fd);
    json_decref(meta);
    return st;
}

/* sha256 of the version's primary artifact, or NULL. */
static const char *model_sha(json_t *meta)
{
    return json_string_value(json_object_get(kiln_reg_primary_artifact(meta), "sha256"));
}

kiln_status kiln_registry_find_source(const char *root, const char *name, const char *source,
                                      int64_t *version)
{
    char mdir[PATH_MAX], where[PATH_MAX], sha[KILN_SHA256_HEX] = "";
    int exists;
    *version = 0;
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, &exists));
    if (!exists || !realpath(source, where)) return KILN_OK;
    int64_t *v;
    int n;
    KILN_CHECK(kiln_reg_list_versions(mdir, &v, &n));
    kiln_status st = KILN_OK;
    for (int i = n - 1; i >= 0 && !*version && st == KILN_OK; i--) {
        json_t *meta = NULL;
        if (kiln_reg_load_version(mdir, v[i], &meta) != KILN_OK) { /* verify reports those */
            kiln_error_clear();
            continue;
        }
        const char *src = json_string_value(json_object_get(json_object_get(meta, "lineage"), "source"));
        const char *want = model_sha(meta);
        if (src && want && !strcmp(src, where)) {
            uint64_t bytes;
            if (!sha[0]) st = kiln_file_sha256(where, sha, &bytes);
            if (st == KILN_OK && !strcmp(sha, want)) *version = v[i];
        }
        json_decref(meta);
    }
    free(v);
    return st;
}
