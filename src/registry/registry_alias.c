/* Aliases and resolution. An alias is one small file replaced by rename, so a reader sees the
 * old or the new version number and never a torn one. A reader does not lock: if the version
 * it read has gone (gc removed it after the alias moved on), it reads the alias again; the
 * version an alias names now always exists, because alias moves and gc both hold the lock and
 * gc spares aliased versions. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "registry_internal.h"

#define RESOLVE_ATTEMPTS 20

/* What the alias points at, for messages: "version N" or "nothing". */
static const char *alias_target(char *buf, size_t n, int exists, int64_t version)
{
    if (exists) snprintf(buf, n, "version %" PRId64, version);
    else snprintf(buf, n, "nothing");
    return buf;
}

static kiln_status check_expected(const char *name, const char *alias, int had, int64_t before,
                                  int64_t expect)
{
    if (expect == KILN_ALIAS_ANY || (had ? before : 0) == expect) return KILN_OK;
    char now[48], want[48];
    return KILN_ERROR(KILN_ERR_CONFLICT, "alias '%s' of model '%s' points at %s, not at %s as "
                      "expected (someone moved it first): left unchanged", alias, name,
                      alias_target(now, sizeof now, had, before),
                      alias_target(want, sizeof want, expect > 0, expect));
}

kiln_status kiln_registry_set_alias(const char *root, const char *name, const char *alias,
                                    int64_t version)
{
    return kiln_registry_move_alias(root, name, alias, version, KILN_ALIAS_ANY);
}

kiln_status kiln_registry_move_alias(const char *root, const char *name, const char *alias,
                                     int64_t version, int64_t expect)
{
    char mdir[PATH_MAX], path[PATH_MAX], line[32];
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    KILN_CHECK(kiln_registry_check_name("alias", alias));
    if (!strcmp(alias, KILN_REGISTRY_LATEST))
        return KILN_ERROR(KILN_ERR_ARG, "alias '%s' is built in (the highest version) and cannot "
                          "be set", alias);
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/aliases/%s", mdir, alias));
    int fd;
    KILN_CHECK(kiln_reg_lock(mdir, &fd));
    int64_t before = 0;
    int had;
    json_t *meta = NULL;
    kiln_status st = kiln_reg_read_alias(mdir, alias, &before, &had);
    if (st == KILN_OK) st = check_expected(name, alias, had, before, expect);
    if (st == KILN_OK && version > 0) st = kiln_reg_require_version(root, name, mdir, version);
    if (st == KILN_OK && version > 0) st = kiln_reg_load_version(mdir, version, &meta);
    if (st == KILN_OK && version > 0) {
        snprintf(line, sizeof line, "%" PRId64 "\n", version);
        st = kiln_write_file_atomic(path, line, strlen(line));
    } else if (st == KILN_OK && !had) {
        st = KILN_ERROR(KILN_ERR_ARG, "model '%s' in registry '%s' has no alias '%s' to remove",
                        name, root, alias);
    } else if (st == KILN_OK) {
        if (unlink(path) != 0) st = KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
        if (st == KILN_OK) st = kiln_fsync_parent_dir(path);
    }
    if (st == KILN_OK)
        st = kiln_reg_history_append(mdir, version > 0 ? "alias" : "unalias",
                                json_pack("{s:s, s:o, s:o}", "alias", alias, "version",
                                          version > 0 ? json_integer(version) : json_null(),
                                          "previous", had ? json_integer(before) : json_null()));
    kiln_file_unlock(fd);
    json_decref(meta);
    return st;
}

kiln_status kiln_registry_aliases(const char *root, const char *name, char ***aliases,
                                  int64_t **versions, int *n)
{
    char mdir[PATH_MAX], dir[PATH_MAX];
    *aliases = NULL;
    *versions = NULL;
    *n = 0;
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    KILN_CHECK(kiln_path_format(dir, sizeof dir, "%s/aliases", mdir));
    char **names = NULL;
    int count = 0;
    KILN_CHECK(kiln_reg_list_names(dir, &names, &count));
    int64_t *v = calloc((size_t)count + 1, sizeof *v);
    if (!v) {
        kiln_registry_free_names(names, count);
        return KILN_ERROR(KILN_ERR_NOMEM, "listing aliases of '%s'", name);
    }
    int kept = 0;
    for (int i = 0; i < count; i++) {
        int found = 0;
        kiln_status st = kiln_reg_read_alias(mdir, names[i], &v[kept], &found);
        if (st != KILN_OK || !found) { /* removed meanwhile, or not an alias file */
            kiln_error_clear();
            free(names[i]);
            continue;
        }
        names[kept++] = names[i];
    }
    *aliases = names;
    *versions = v;
    *n = kept;
    return KILN_OK;
}

/* "aliases: production -> 3, staging -> 5" or "it has no aliases" */
static void describe_aliases(const char *root, const char *name, char *buf, size_t len)
{
    char **a;
    int64_t *v;
    int n;
    if (kiln_registry_aliases(root, name, &a, &v, &n) != KILN_OK) {
        kiln_error_clear();
        snprintf(buf, len, "aliases unreadable");
        return;
    }
    snprintf(buf, len, "%s", n ? "aliases: " : "it has no aliases");
    for (int i = 0; i < n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s -> %" PRId64, i ? ", " : "", a[i], v[i]);
    }
    kiln_registry_free_names(a, n);
    free(v);
}

/* The version ref names right now: its number, or its alias's (latest: the highest). */
static kiln_status current_version(const char *root, const char *mdir, kiln_registry_ref *ref,
                                   int64_t *version)
{
    if (!ref->alias[0]) {
        *version = ref->version;
        return KILN_OK;
    }
    if (!strcmp(ref->alias, KILN_REGISTRY_LATEST)) {
        int64_t *v;
        int n;
        KILN_CHECK(kiln_reg_list_versions(mdir, &v, &n));
        *version = n ? v[n - 1] : 0;
        free(v);
        if (!n)
            return KILN_ERROR(KILN_ERR_ARG, "model '%s' in registry '%s' has no versions",
                              ref->name, root);
        return KILN_OK;
    }
    int found;
    KILN_CHECK(kiln_reg_read_alias(mdir, ref->alias, version, &found));
    if (found) return KILN_OK;
    char have[1024];
    describe_aliases(root, ref->name, have, sizeof have);
    return KILN_ERROR(KILN_ERR_ARG, "model '%s' in registry '%s' has no alias '%s' (%s)",
                      ref->name, root, ref->alias, have);
}

/* The path of the version's primary artifact (the first of the version's own kind). */
static kiln_status model_artifact(const char *mdir, int64_t version, json_t *meta, char *path,
                                  size_t len)
{
    char vdir[PATH_MAX];
    KILN_CHECK(kiln_reg_version_dir(mdir, version, vdir, sizeof vdir));
    const char *kind = kiln_reg_version_kind(meta);
    json_t *a = kiln_reg_primary_artifact(meta);
    const char *where = json_string_value(json_object_get(a, "path"));
    if (!where)
        return KILN_ERROR(KILN_ERR_DATA, "version %" PRId64 " in '%s' has no artifact of kind "
                          "\"%s\"", version, mdir, kind);
    if (json_is_true(json_object_get(a, "external")))
        KILN_CHECK(kiln_path_format(path, len, "%s", where));
    else
        KILN_CHECK(kiln_path_format(path, len, "%s/%s", vdir, where));
    if (!kiln_path_exists(path))
        return KILN_ERROR(KILN_ERR_DATA, "version %" PRId64 " in '%s': its %s artifact '%s' is "
                          "missing", version, mdir, kind, path);
    return KILN_OK;
}

kiln_status kiln_registry_resolve(const char *root, const char *uri, kiln_registry_ref *ref,
                                  char *model_path, size_t len)
{
    char mdir[PATH_MAX], have[256];
    KILN_CHECK(kiln_registry_parse_uri(uri, ref));
    KILN_CHECK(kiln_reg_model_dir(root, ref->name, mdir, sizeof mdir, NULL));
    int64_t v = 0, previous = -1;
    for (int attempt = 0; attempt < RESOLVE_ATTEMPTS; attempt++) {
        KILN_CHECK(current_version(root, mdir, ref, &v));
        char vdir[PATH_MAX];
        KILN_CHECK(kiln_reg_version_dir(mdir, v, vdir, sizeof vdir));
        if (kiln_path_exists(vdir)) {
            json_t *meta = NULL;
            kiln_status st = kiln_reg_load_version(mdir, v, &meta);
            if (st == KILN_OK) st = model_artifact(mdir, v, meta, model_path, len);
            json_decref(meta);
            if (st == KILN_OK) {
                ref->version = v;
                return KILN_OK;
            }
            if (kiln_path_exists(vdir)) return st; /* there, but damaged */
            kiln_error_clear();
        }
        if (!ref->alias[0] || v == previous) break; /* a number, or an alias that stays put */
        previous = v;
    }
    kiln_reg_describe_versions(mdir, have, sizeof have);
    if (ref->alias[0])
        return KILN_ERROR(KILN_ERR_DATA, "alias '%s' of model '%s' in registry '%s' points to "
                          "version %" PRId64 ", which does not exist (%s)", ref->alias,
                          ref->name, root, v, have);
    return kiln_reg_require_version(root, ref->name, mdir, v);
}

kiln_status kiln_registry_locate(const char *root, const char *path_or_uri, char *path,
                                 size_t len, kiln_registry_ref *ref)
{
    kiln_registry_ref local;
    if (!ref) ref = &local;
    memset(ref, 0, sizeof *ref);
    if (kiln_registry_is_uri(path_or_uri))
        return kiln_registry_resolve(root, path_or_uri, ref, path, len);
    return kiln_path_format(path, len, "%s", path_or_uri);
}
