/* Keeping a registry honest and small: verify recomputes every artifact's sha256 against its
 * version.json, checks that a version's file opens as its kind (a model's as a kiln checkpoint
 * that verifies, an index's as a kiln index, by the checks the caller gives) and that
 * every alias points at a version that exists; gc removes versions no alias points to beyond
 * the newest few, and what dead writers left. A version is
 * removed by renaming it into .trash first, so readers see it either whole or gone. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include "kiln/ckpt.h"
#include "kiln/fs.h"
#include "registry_internal.h"

#define STALE_STAGING_S (24 * 3600)

/* One artifact record against the bytes on disk. */
static void verify_artifact(const char *uri, const char *vdir, json_t *a, FILE *out, int *n_bad)
{
    const char *name = json_string_value(json_object_get(a, "name"));
    const char *where = json_string_value(json_object_get(a, "path"));
    const char *want = json_string_value(json_object_get(a, "sha256"));
    char path[PATH_MAX], sha[KILN_SHA256_HEX];
    uint64_t bytes;
    if (!name || !where || !want) {
        fprintf(out, "%s: BAD an artifact record lacks name, path or sha256\n", uri);
        (*n_bad)++;
        return;
    }
    int external = json_is_true(json_object_get(a, "external"));
    if (kiln_path_format(path, sizeof path, external ? "%s" : "%s/%s", external ? where : vdir,
                         where) != KILN_OK ||
        kiln_file_sha256(path, sha, &bytes) != KILN_OK) {
        fprintf(out, "%s: MISSING artifact '%s': %s\n", uri, name, kiln_error_message());
        kiln_error_clear();
        (*n_bad)++;
        return;
    }
    if (strcmp(sha, want) != 0) {
        fprintf(out, "%s: CHANGED artifact '%s' (%s): sha256 %s, version.json records %s\n", uri,
                name, path, sha, want);
        (*n_bad)++;
        return;
    }
    fprintf(out, "%s: ok %s (%" PRIu64 " bytes, sha256 %.16s...)\n", uri, name, bytes, sha);
}

/* A version's first artifact must open as its kind: a model's as a kiln checkpoint that
 * verifies (checksums included), another kind's by the check given for it (none: not opened). */
typedef struct kind_checks {
    const kiln_registry_check *v;
    int n;
} kind_checks;

static void verify_kind_file(const char *uri, const char *vdir, json_t *meta, const kind_checks *checks,
                             FILE *out, int *n_bad)
{
    json_t *a = kiln_reg_primary_artifact(meta);
    const char *where = json_string_value(json_object_get(a, "path"));
    const char *kind = kiln_reg_version_kind(meta);
    kiln_registry_check model = {KILN_REGISTRY_KIND_MODEL, "kiln checkpoint", kiln_ckpt_verify};
    const kiln_registry_check *check = strcmp(kind, KILN_REGISTRY_KIND_MODEL) ? NULL : &model;
    for (int i = 0; !check && i < checks->n; i++)
        if (!strcmp(checks->v[i].kind, kind)) check = &checks->v[i];
    char path[PATH_MAX];
    if (!check || !where) return;
    int external = json_is_true(json_object_get(a, "external"));
    if (kiln_path_format(path, sizeof path, external ? "%s" : "%s/%s", external ? where : vdir,
                         where) != KILN_OK || !kiln_path_exists(path))
        return; /* reported as MISSING already */
    if (check->check(path) == KILN_OK) {
        fprintf(out, "%s: ok, opens as a %s\n", uri, check->what);
        return;
    }
    fprintf(out, "%s: %s: its %s file '%s' is not a %s that verifies: %s\n", uri,
            !strcmp(kind, KILN_REGISTRY_KIND_MODEL) ? "NOT A CHECKPOINT" : "DOES NOT OPEN", kind, path,
            check->what, kiln_error_message());
    kiln_error_clear();
    (*n_bad)++;
}

static void verify_version(const char *name, const char *mdir, int64_t v, const kind_checks *checks,
                           FILE *out, int *n_bad)
{
    char uri[256], vdir[PATH_MAX];
    kiln_registry_ref ref = {.version = v};
    snprintf(ref.name, sizeof ref.name, "%s", name);
    kiln_registry_format_uri(&ref, uri, sizeof uri);
    json_t *meta = NULL;
    if (kiln_reg_version_dir(mdir, v, vdir, sizeof vdir) != KILN_OK ||
        kiln_reg_load_version(mdir, v, &meta) != KILN_OK) {
        fprintf(out, "%s: BAD metadata: %s\n", uri, kiln_error_message());
        kiln_error_clear();
        (*n_bad)++;
        return;
    }
    json_t *list = json_object_get(meta, "artifacts"), *a;
    size_t i;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        fprintf(out, "%s: BAD metadata: no artifacts listed\n", uri);
        (*n_bad)++;
    }
    json_array_foreach(list, i, a) verify_artifact(uri, vdir, a, out, n_bad);
    verify_kind_file(uri, vdir, meta, checks, out, n_bad);
    json_decref(meta);
}

/* Every alias must point at a version that exists. */
static kiln_status verify_aliases(const char *root, const char *name, const char *mdir,
                                  FILE *out, int *n_bad)
{
    char **aliases;
    int64_t *versions;
    int n;
    KILN_CHECK(kiln_registry_aliases(root, name, &aliases, &versions, &n));
    for (int i = 0; i < n; i++) {
        char vdir[PATH_MAX];
        if (kiln_reg_version_dir(mdir, versions[i], vdir, sizeof vdir) == KILN_OK &&
            kiln_path_exists(vdir))
            continue;
        fprintf(out, "registry:%s@%s: DANGLING alias: it points at version %" PRId64 ", which "
                "does not exist (move it with `kiln registry alias %s %s VERSION`)\n", name,
                aliases[i], versions[i], name, aliases[i]);
        (*n_bad)++;
    }
    kiln_registry_free_names(aliases, n);
    free(versions);
    return KILN_OK;
}

static kiln_status verify_model(const char *root, const char *name, int64_t version,
                                const kind_checks *checks, FILE *out, int *n_bad)
{
    char mdir[PATH_MAX];
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    if (version > 0) {
        KILN_CHECK(kiln_reg_require_version(root, name, mdir, version));
        verify_version(name, mdir, version, checks, out, n_bad);
        return KILN_OK;
    }
    int64_t *v;
    int n;
    KILN_CHECK(kiln_reg_list_versions(mdir, &v, &n));
    for (int i = 0; i < n; i++) verify_version(name, mdir, v[i], checks, out, n_bad);
    free(v);
    return verify_aliases(root, name, mdir, out, n_bad);
}

kiln_status kiln_registry_verify(const char *root, const char *name, int64_t version,
                                 const kiln_registry_check *check_list, int n_checks, FILE *out,
                                 int *n_bad)
{
    *n_bad = 0;
    kind_checks checks = {check_list, n_checks};
    if (name) return verify_model(root, name, version, &checks, out, n_bad);
    char **names;
    int n;
    KILN_CHECK(kiln_registry_models(root, &names, &n));
    if (n == 0) fprintf(out, "registry '%s' has no models\n", root);
    kiln_status st = KILN_OK;
    for (int i = 0; i < n && st == KILN_OK; i++) st = verify_model(root, names[i], 0, &checks, out, n_bad);
    kiln_registry_free_names(names, n);
    return st;
}

/* ---- gc ---- */

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_asc(const void *a, const void *b) { return -cmp_desc(a, b); }

static kiln_status plan(const char *root, const char *name, const char *mdir, int keep,
                        int64_t **victims, int *n_victims)
{
    int64_t *v, *aliased;
    char **aliases;
    int n, na;
    *victims = NULL;
    *n_victims = 0;
    KILN_CHECK(kiln_reg_list_versions(mdir, &v, &n));
    kiln_status st = kiln_registry_aliases(root, name, &aliases, &aliased, &na);
    if (st != KILN_OK) {
        free(v);
        return st;
    }
    kiln_registry_free_names(aliases, na);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_desc);
    int unaliased = 0, out = 0;
    for (int i = 0; i < n; i++) {
        int is_aliased = 0;
        for (int j = 0; j < na; j++) is_aliased |= aliased[j] == v[i];
        if (is_aliased) continue;
        if (unaliased++ >= keep) v[out++] = v[i];
    }
    free(aliased);
    if (out > 1) qsort(v, (size_t)out, sizeof *v, cmp_asc);
    *victims = v;
    *n_victims = out;
    return KILN_OK;
}

kiln_status kiln_registry_gc_plan(const char *root, const char *name, int keep, int64_t **victims,
                                  int *n)
{
    char mdir[PATH_MAX];
    if (keep < 0) return KILN_ERROR(KILN_ERR_ARG, "gc: --keep must be >= 0, found %d", keep);
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    return plan(root, name, mdir, keep, victims, n);
}

/* Out of sight by one rename, then deleted. */
static kiln_status remove_version(const char *mdir, int64_t v)
{
    char vdir[PATH_MAX], trash[PATH_MAX];
    KILN_CHECK(kiln_reg_version_dir(mdir, v, vdir, sizeof vdir));
    KILN_CHECK(kiln_path_format(trash, sizeof trash, "%s/.trash/%" PRId64 "-%ld", mdir, v,
                                (long)getpid()));
    if (rename(vdir, trash) != 0)
        return KILN_ERROR(KILN_ERR_IO, "cannot move '%s' to '%s': %s", vdir, trash, strerror(errno));
    KILN_CHECK(kiln_fsync_parent_dir(vdir));
    KILN_CHECK(kiln_reg_remove_flat_dir(trash));
    return kiln_reg_history_append(mdir, "gc", json_pack("{s:I}", "version", (json_int_t)v));
}

/* Whether the writer that named a staging directory HOST.PID.XXXXXX is gone: a process of this
 * host that no longer exists. A writer on another host is judged by age alone. */
static int writer_gone(const char *entry, time_t mtime)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = '\0'; /* as registry_register.c names them */
    size_t hl = strlen(host);
    if (hl && !strncmp(entry, host, hl) && entry[hl] == '.') {
        char *end;
        long pid = strtol(entry + hl + 1, &end, 10);
        if (end != entry + hl + 1 && *end == '.' && pid > 0)
            return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    }
    return time(NULL) - mtime >= STALE_STAGING_S; /* live writers are seconds old */
}

kiln_status kiln_reg_clear_leftovers(const char *mdir)
{
    const char *sub[2] = {".staging", ".trash"};
    kiln_status st = KILN_OK;
    for (int k = 0; k < 2 && st == KILN_OK; k++) {
        char dir[PATH_MAX];
        KILN_CHECK(kiln_path_format(dir, sizeof dir, "%s/%s", mdir, sub[k]));
        DIR *d = opendir(dir);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && st == KILN_OK) {
            char path[PATH_MAX];
            struct stat sb;
            if (e->d_name[0] == '.') continue;
            st = kiln_path_format(path, sizeof path, "%s/%s", dir, e->d_name);
            if (st != KILN_OK || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) continue;
            if (k == 0 && !writer_gone(e->d_name, sb.st_mtime)) continue;
            st = kiln_reg_remove_flat_dir(path);
        }
        closedir(d);
    }
    return st;
}

kiln_status kiln_registry_gc(const char *root, const char *name, int keep,
                             const int64_t *approved, int n_approved, int *n_removed)
{
    char mdir[PATH_MAX];
    *n_removed = 0;
    if (keep < 0) return KILN_ERROR(KILN_ERR_ARG, "gc: --keep must be >= 0, found %d", keep);
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    int fd;
    KILN_CHECK(kiln_reg_lock(mdir, &fd));
    int64_t *victims = NULL;
    int n = 0;
    kiln_status st = plan(root, name, mdir, keep, &victims, &n);
    for (int i = 0; i < n && st == KILN_OK; i++) {
        int ok = 0;
        for (int j = 0; j < n_approved; j++) ok |= approved[j] == victims[i];
        if (!ok) continue;
        st = remove_version(mdir, victims[i]);
        if (st == KILN_OK) (*n_removed)++;
    }
    if (st == KILN_OK) st = kiln_reg_clear_leftovers(mdir);
    kiln_file_unlock(fd);
    free(victims);
    return st;
}
