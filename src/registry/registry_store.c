/* The registry's files on disk: model and version directories, listings, alias files, the
 * writers' lock, whole-file JSON reads and atomic writes, and the history log. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "registry_internal.h"

kiln_status kiln_reg_model_dir(const char *root, const char *name, char *dir, size_t len, int *exists)
{
    KILN_CHECK(kiln_registry_check_name("model name", name));
    KILN_CHECK(kiln_path_format(dir, len, "%s/models/%s", root, name));
    int there = kiln_path_exists(dir);
    if (exists) {
        *exists = there;
        return KILN_OK;
    }
    if (there) return KILN_OK;
    char **names = NULL, list[1024] = "";
    int n = 0;
    if (kiln_registry_models(root, &names, &n) != KILN_OK) kiln_error_clear();
    for (int i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    }
    kiln_registry_free_names(names, n);
    return KILN_ERROR(KILN_ERR_ARG, "no model '%s' in registry '%s' (%s%s)", name, root,
                      n ? "models: " : "it has no models", list);
}

kiln_status kiln_reg_version_dir(const char *mdir, int64_t version, char *dir, size_t len)
{
    return kiln_path_format(dir, len, "%s/versions/%" PRId64, mdir, version);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

kiln_status kiln_reg_list_versions(const char *mdir, int64_t **versions, int *n)
{
    char dir[PATH_MAX], **names;
    int count;
    *versions = NULL;
    *n = 0;
    KILN_CHECK(kiln_path_format(dir, sizeof dir, "%s/versions", mdir));
    KILN_CHECK(kiln_reg_list_names(dir, &names, &count));
    int64_t *v = malloc(((size_t)count + 1) * sizeof *v);
    if (!v) {
        kiln_registry_free_names(names, count);
        return KILN_ERROR(KILN_ERR_NOMEM, "out of memory listing '%s'", dir);
    }
    for (int i = 0; i < count; i++) {
        char *end;
        long long x = strtoll(names[i], &end, 10);
        if (!*end && x >= 1 && names[i][0] != '0') v[(*n)++] = x; /* what kiln_reg_version_dir makes */
    }
    kiln_registry_free_names(names, count);
    if (*n > 1) qsort(v, (size_t)*n, sizeof *v, cmp_i64); /* qsort(NULL, 0) is undefined */
    *versions = v;
    return KILN_OK;
}

void kiln_reg_describe_versions(const char *mdir, char *buf, size_t len)
{
    int64_t *v;
    int n;
    if (kiln_reg_list_versions(mdir, &v, &n) != KILN_OK) {
        kiln_error_clear();
        snprintf(buf, len, "versions unreadable");
        return;
    }
    if (n == 0)
        snprintf(buf, len, "no versions");
    else if (n == 1)
        snprintf(buf, len, "only version %" PRId64, v[0]);
    else
        snprintf(buf, len, "versions %" PRId64 " to %" PRId64 ", %d present", v[0], v[n - 1], n);
    free(v);
}

kiln_status kiln_reg_require_version(const char *root, const char *name, const char *mdir,
                                int64_t version)
{
    char vdir[PATH_MAX], have[256];
    KILN_CHECK(kiln_reg_version_dir(mdir, version, vdir, sizeof vdir));
    if (version > 0 && kiln_path_exists(vdir)) return KILN_OK;
    kiln_reg_describe_versions(mdir, have, sizeof have);
    return KILN_ERROR(KILN_ERR_ARG, "model '%s' in registry '%s' has no version %" PRId64 " (%s)",
                      name, root, version, have);
}

kiln_status kiln_reg_read_alias(const char *mdir, const char *alias, int64_t *version, int *found)
{
    char path[PATH_MAX], line[64] = "";
    *found = 0;
    KILN_CHECK(kiln_registry_check_name("alias", alias));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/aliases/%s", mdir, alias));
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) return KILN_OK;
    if (!f) return KILN_ERROR(KILN_ERR_IO, "cannot read alias file '%s': %s", path, strerror(errno));
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *end;
    long long v = ok ? strtoll(line, &end, 10) : 0;
    if (!ok || v < 1 || (*end && *end != '\n'))
        return KILN_ERROR(KILN_ERR_DATA, "alias file '%s': expected a version number, found '%s'",
                          path, line);
    *version = v;
    *found = 1;
    return KILN_OK;
}

kiln_status kiln_reg_lock(const char *mdir, int *fd)
{
    char path[PATH_MAX];
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/.lock", mdir));
    return kiln_file_lock(path, fd);
}

kiln_status kiln_reg_json_load(const char *path, json_t **out)
{
    json_error_t err;
    *out = NULL;
    if (!kiln_path_exists(path))
        return KILN_ERROR(KILN_ERR_DATA, "registry file '%s' is missing", path);
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        return KILN_ERROR(KILN_ERR_DATA, "registry file '%s' is not valid JSON: line %d, column "
                          "%d: %s", path, err.line, err.column, err.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return KILN_ERROR(KILN_ERR_DATA, "registry file '%s': expected a JSON object", path);
    }
    *out = j;
    return KILN_OK;
}

kiln_status kiln_reg_json_save(const char *path, const json_t *obj)
{
    char *text = json_dumps(obj, REG_JSON_PRETTY);
    KILN_CHECK_ALLOC(text);
    size_t n = strlen(text);
    text[n] = '\n'; /* the terminator's byte becomes the final newline */
    kiln_status st = kiln_write_file_atomic(path, text, n + 1);
    free(text);
    return st;
}

kiln_status kiln_reg_load_version(const char *mdir, int64_t version, json_t **out)
{
    char dir[PATH_MAX], path[PATH_MAX];
    KILN_CHECK(kiln_reg_version_dir(mdir, version, dir, sizeof dir));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/" REG_VERSION_FILE, dir));
    json_t *j;
    KILN_CHECK(kiln_reg_json_load(path, &j));
    const char *base = strrchr(mdir, '/');
    base = base ? base + 1 : mdir;
    json_t *name = json_object_get(j, "name"), *v = json_object_get(j, "version");
    if (!json_is_string(name) || strcmp(json_string_value(name), base) ||
        !json_is_integer(v) || json_integer_value(v) != version) {
        json_decref(j);
        return KILN_ERROR(KILN_ERR_DATA, "registry file '%s': expected name \"%s\" and version "
                          "%" PRId64 " in it", path, base, version);
    }
    *out = j;
    return KILN_OK;
}

void kiln_reg_time_now(char buf[32])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void kiln_reg_user(char *buf, size_t len)
{
    const char *u = getenv("USER");
    struct passwd *pw = (u && *u) ? NULL : getpwuid(geteuid());
    if (u && *u)
        snprintf(buf, len, "%s", u);
    else if (pw)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "uid %u", (unsigned)geteuid());
}

kiln_status kiln_reg_history_append(const char *mdir, const char *event, json_t *fields)
{
    char path[PATH_MAX], now[32], user[256];
    kiln_reg_time_now(now);
    kiln_reg_user(user, sizeof user);
    json_t *line = json_pack("{s:s, s:s, s:s}", "time", now, "user", user, "event", event);
    if (line && fields) json_object_update(line, fields);
    json_decref(fields);
    KILN_CHECK_ALLOC(line);
    char *text = json_dumps(line, REG_JSON_LINE);
    json_decref(line);
    KILN_CHECK_ALLOC(text);
    kiln_status st = kiln_path_format(path, sizeof path, "%s/history.jsonl", mdir);
    int fd = st == KILN_OK ? open(path, O_WRONLY | O_APPEND | O_CREAT, 0666) : -1;
    if (st == KILN_OK && fd < 0)
        st = KILN_ERROR(KILN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (st == KILN_OK) {
        size_t n = strlen(text);
        text[n] = '\n'; /* the terminator's byte becomes the line's newline */
        ssize_t w = write(fd, text, n + 1);
        if (w != (ssize_t)(n + 1) || fsync(fd) != 0)
            st = KILN_ERROR(KILN_ERR_IO, "cannot append to '%s': %s", path, strerror(errno));
    }
    if (fd >= 0) close(fd);
    free(text);
    return st;
}

kiln_status kiln_reg_remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return KILN_ERROR(KILN_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
    struct dirent *e;
    kiln_status st = KILN_OK;
    while ((e = readdir(d)) != NULL && st == KILN_OK) {
        char path[PATH_MAX];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        st = kiln_path_format(path, sizeof path, "%s/%s", dir, e->d_name);
        if (st == KILN_OK && unlink(path) != 0 && errno != ENOENT)
            st = KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    }
    closedir(d);
    if (st == KILN_OK && rmdir(dir) != 0)
        st = KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", dir, strerror(errno));
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

kiln_status kiln_reg_list_names(const char *dir, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT) return KILN_OK;
    if (!d) return KILN_ERROR(KILN_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    kiln_status st = KILN_OK;
    while ((e = readdir(d)) != NULL && st == KILN_OK) {
        if (kiln_registry_check_name("name", e->d_name) != KILN_OK) {
            kiln_error_clear();
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown) {
                st = KILN_ERROR(KILN_ERR_NOMEM, "out of memory listing '%s'", dir);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            st = KILN_ERROR(KILN_ERR_NOMEM, "out of memory listing '%s'", dir);
        else
            (*n)++;
    }
    closedir(d);
    if (st != KILN_OK) {
        kiln_registry_free_names(*names, *n);
        *names = NULL;
        *n = 0;
        return st;
    }
    if (*n > 1) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return KILN_OK;
}

void kiln_registry_free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

kiln_status kiln_registry_models(const char *root, char ***names, int *n)
{
    char dir[PATH_MAX];
    KILN_CHECK(kiln_path_format(dir, sizeof dir, "%s/models", root));
    return kiln_reg_list_names(dir, names, n);
}

kiln_status kiln_registry_versions(const char *root, const char *name, int64_t **versions, int *n)
{
    char mdir[PATH_MAX];
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    return kiln_reg_list_versions(mdir, versions, n);
}

kiln_status kiln_registry_version_json(const char *root, const char *name, int64_t version,
                                       char **json)
{
    char mdir[PATH_MAX];
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    KILN_CHECK(kiln_reg_require_version(root, name, mdir, version));
    json_t *meta;
    KILN_CHECK(kiln_reg_load_version(mdir, version, &meta));
    *json = json_dumps(meta, REG_JSON_PRETTY);
    json_decref(meta);
    KILN_CHECK_ALLOC(*json);
    return KILN_OK;
}

const char *kiln_reg_version_kind(json_t *meta)
{
    const char *kind = json_string_value(json_object_get(meta, "kind"));
    return kind && *kind ? kind : KILN_REGISTRY_KIND_MODEL;
}

json_t *kiln_reg_primary_artifact(json_t *meta)
{
    const char *want = kiln_reg_version_kind(meta);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(meta, "artifacts"), i, a)
    {
        const char *kind = json_string_value(json_object_get(a, "kind"));
        if (kind && !strcmp(kind, want)) return a;
    }
    return NULL;
}
