/* The model registry: names and URIs (path traversal and malformed references rejected), the
 * version metadata, verify finding changed and missing bytes, aliases, gc (aliased versions
 * kept, numbers never reused), and the concurrency guarantees: 8 processes registering 25
 * versions each at once give 200 distinct, valid versions; readers resolving an alias while a
 * writer keeps moving it and gc removes what it left never get a missing version. */
#define _GNU_SOURCE
#include "check.h"
#include "kiln/ckpt.h"
#include "kiln/fs.h"
#include "kiln/registry.h"
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WRITERS = 8, PER_WRITER = 25, READERS = 4, MOVES = 120 };

static char work[PATH_MAX / 2]; /* half: room for the names below */

static void make_root(const char *name, char *root, size_t len)
{
    snprintf(root, len, "%s/%s", work, name);
    CHECK_OK(kiln_mkdir_p(root));
}

/* A small artifact whose bytes say who made it. */
static void write_artifact(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    fprintf(f, "%s\n", text);
    fclose(f);
}

static int64_t register_text(const char *root, const char *name, const char *text,
                             const char *fields)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/artifact-%d-%s.bin", work, (int)getpid(), name);
    write_artifact(path, text);
    /* a plain file: these tests are about versions and aliases, not about what a model is */
    kiln_registry_artifact a = {path, "model.bin", "file", 0};
    int64_t v = 0;
    kiln_status st = kiln_registry_register(root, name, &a, 1, fields, &v);
    unlink(path);
    if (st != KILN_OK) {
        fprintf(stderr, "register %s: %s\n", name, kiln_error_message());
        kiln_error_clear();
        return 0;
    }
    return v;
}

static void test_uris(void)
{
    static const char *bad[] = {
        "registry:../x", "registry:../x@y", "registry:a/../b", "registry:a/b/c", "registry:",
        "registry:m", "registry:m@", "registry:m/", "registry:m/0", "registry:m/-1",
        "registry:m/1x", "registry:.hidden@a", "registry:m@../p", "registry:m@a/b",
        "registry:m@a@b", "registry:m@x.tmp", "registry:/abs@a", "registry:m@ a",
        "registry:m\n@a", "m@prod", "registry:-m@a",
        "registry:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_registry_ref ref;
        CHECK_FAILS(kiln_registry_parse_uri(bad[i], &ref), KILN_ERR_ARG, bad[i]);
    }
    kiln_registry_ref ref;
    CHECK_OK(kiln_registry_parse_uri("registry:a.b_c-1@prod-2", &ref));
    CHECK(!strcmp(ref.name, "a.b_c-1") && !strcmp(ref.alias, "prod-2") && ref.version == 0,
          "parsed %s @%s /%" PRId64, ref.name, ref.alias, ref.version);
    CHECK_OK(kiln_registry_parse_uri("registry:m/12", &ref));
    CHECK(!strcmp(ref.name, "m") && !ref.alias[0] && ref.version == 12, "parsed %s /%" PRId64,
          ref.name, ref.version);
    char uri[128];
    kiln_registry_format_uri(&ref, uri, sizeof uri);
    CHECK(!strcmp(uri, "registry:m/12"), "formatted %s", uri);

    setenv("KILN_REGISTRY", "/from/env", 1);
    CHECK(!strcmp(kiln_registry_root("cfg"), "cfg"), "configured root wins");
    CHECK(!strcmp(kiln_registry_root(""), "/from/env"), "env root next");
    unsetenv("KILN_REGISTRY");
    CHECK(!strcmp(kiln_registry_root(NULL), "registry"), "default root ./registry");

    char path[PATH_MAX];
    CHECK_OK(kiln_registry_locate("nowhere", "runs/x/ckpt/step-1.h5", path, sizeof path, &ref));
    CHECK(!strcmp(path, "runs/x/ckpt/step-1.h5") && ref.version == 0, "a path passes through");
}

/* Invalid names are refused before anything is created. */
static void test_names_create_nothing(void)
{
    char root[PATH_MAX], models[PATH_MAX + 16];
    make_root("names", root, sizeof root);
    static const char *bad[] = {"..", "../escape", "a/b", "", ".hidden", "x.tmp", "white space"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_registry_artifact a = {"/etc/hostname", NULL, "model", 0};
        int64_t v;
        CHECK_FAILS(kiln_registry_register(root, bad[i], &a, 1, NULL, &v), KILN_ERR_ARG,
                    "model name");
    }
    snprintf(models, sizeof models, "%s/models", root);
    CHECK(!kiln_path_exists(models), "a rejected name created %s", models);
    CHECK(register_text(root, "ok", "x", NULL) == 1, "a valid name registers");
    CHECK_FAILS(kiln_registry_set_alias(root, "ok", "../up", 1), KILN_ERR_ARG, "alias '../up'");
    CHECK_FAILS(kiln_registry_set_alias(root, "ok", "latest", 1), KILN_ERR_ARG, "built in");
}

static json_t *load_meta(const char *root, const char *name, int64_t v)
{
    char *text = NULL;
    CHECK_OK(kiln_registry_version_json(root, name, v, &text));
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    CHECK(json_is_object(j), "version %" PRId64 " metadata is a JSON object", v);
    return j;
}

static void test_metadata_and_verify(void)
{
    char root[PATH_MAX], vfile[PATH_MAX + 64], sha[KILN_SHA256_HEX], report[PATH_MAX + 16];
    uint64_t bytes;
    make_root("verify", root, sizeof root);
    for (int i = 1; i <= 3; i++) {
        char text[32], fields[128];
        snprintf(text, sizeof text, "weights %d", i);
        snprintf(fields, sizeof fields, "{\"metrics\":{\"eval_loss\":%d.5},\"parent\":\"x\"}", i);
        CHECK(register_text(root, "m", text, fields) == i, "version %d", i);
    }
    json_t *meta = load_meta(root, "m", 2);
    json_t *a = json_array_get(json_object_get(meta, "artifacts"), 0);
    snprintf(vfile, sizeof vfile, "%s/models/m/versions/2/model.bin", root);
    CHECK_OK(kiln_file_sha256(vfile, sha, &bytes));
    CHECK(!strcmp(json_string_value(json_object_get(a, "sha256")) ?: "", sha),
          "recorded sha256 is the stored file's");
    CHECK(json_number_value(json_object_get(json_object_get(meta, "metrics"), "eval_loss")) == 2.5,
          "caller's metrics merged");
    CHECK(!strcmp(json_string_value(json_object_get(meta, "parent")) ?: "", "x"), "parent kept");
    CHECK(json_is_string(json_object_get(meta, "created")) && json_is_string(json_object_get(meta, "user")),
          "created and user recorded");
    json_decref(meta);

    int bad = -1;
    snprintf(report, sizeof report, "%s/report.txt", work);
    FILE *out = fopen(report, "w");
    CHECK_OK(kiln_registry_verify(root, NULL, 0, NULL, 0, out, &bad));
    fclose(out);
    CHECK(bad == 0, "an untouched registry verifies (%d bad)", bad);

    FILE *f = fopen(vfile, "r+b"); /* change one byte of version 2 */
    fseek(f, 3, SEEK_SET);
    fputc('X', f);
    fclose(f);
    out = fopen(report, "w");
    CHECK_OK(kiln_registry_verify(root, "m", 0, NULL, 0, out, &bad));
    fclose(out);
    char text[4096] = "";
    f = fopen(report, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK(bad == 1, "one changed artifact found, %d reported", bad);
    CHECK(strstr(text, "registry:m/2: CHANGED artifact 'model.bin'") != NULL, "report: %s", text);
    CHECK(strstr(text, "registry:m/1: ok") && strstr(text, "registry:m/3: ok"), "report: %s", text);

    snprintf(vfile, sizeof vfile, "%s/models/m/versions/3/model.bin", root);
    unlink(vfile);
    out = fopen(report, "w");
    CHECK_OK(kiln_registry_verify(root, "m", 3, NULL, 0, out, &bad));
    fclose(out);
    CHECK(bad == 1, "a missing artifact is found");
}

/* Where alias of model m points (0: nowhere). */
static int64_t alias_version(const char *root, const char *alias)
{
    char uri[128], path[PATH_MAX];
    kiln_registry_ref ref;
    snprintf(uri, sizeof uri, "registry:m@%s", alias);
    kiln_status st = kiln_registry_resolve(root, uri, &ref, path, sizeof path);
    kiln_error_clear();
    return st == KILN_OK ? ref.version : 0;
}

/* A move with --expect lands only if the alias still points where the caller saw it; a
 * losing move changes nothing and says where the alias points. (m has versions 1-6, prod->2.) */
static void test_alias_compare_and_set(const char *root)
{
    CHECK_FAILS(kiln_registry_move_alias(root, "m", "prod", 5, 3), KILN_ERR_CONFLICT,
                "alias 'prod' of model 'm' points at version 2, not at version 3");
    CHECK(alias_version(root, "prod") == 2, "a lost compare-and-set left prod at %" PRId64,
          alias_version(root, "prod"));
    CHECK_FAILS(kiln_registry_move_alias(root, "m", "prod", 5, 0), KILN_ERR_CONFLICT,
                "points at version 2, not at nothing");
    CHECK_OK(kiln_registry_move_alias(root, "m", "prod", 4, 2));
    CHECK(alias_version(root, "prod") == 4, "prod moved 2 -> 4, found %" PRId64,
          alias_version(root, "prod"));
    CHECK_FAILS(kiln_registry_move_alias(root, "m", "prod", 5, 2), KILN_ERR_CONFLICT,
                "points at version 4, not at version 2"); /* the second of two racing moves */
    CHECK_FAILS(kiln_registry_move_alias(root, "m", "canary", 3, 1), KILN_ERR_CONFLICT,
                "points at nothing, not at version 1");
    CHECK_OK(kiln_registry_move_alias(root, "m", "canary", 3, 0));
    CHECK(alias_version(root, "canary") == 3, "canary created at 3");
    CHECK_OK(kiln_registry_move_alias(root, "m", "canary", 0, 3)); /* remove, as expected */
    CHECK(alias_version(root, "canary") == 0, "canary removed");
    CHECK_OK(kiln_registry_set_alias(root, "m", "prod", 2)); /* back where the rest expects it */
}

static void test_aliases_and_gc(void)
{
    char root[PATH_MAX], path[PATH_MAX];
    kiln_registry_ref ref;
    make_root("gc", root, sizeof root);
    for (int i = 1; i <= 6; i++) CHECK(register_text(root, "m", "w", NULL) == i, "version %d", i);
    CHECK_OK(kiln_registry_set_alias(root, "m", "prod", 2));
    CHECK_FAILS(kiln_registry_set_alias(root, "m", "prod", 9), KILN_ERR_ARG, "has no version 9");
    CHECK_FAILS(kiln_registry_resolve(root, "registry:m@staging", &ref, path, sizeof path),
                KILN_ERR_ARG, "has no alias 'staging' (aliases: prod -> 2)");
    CHECK_FAILS(kiln_registry_resolve(root, "registry:nope@prod", &ref, path, sizeof path),
                KILN_ERR_ARG, "no model 'nope' in registry");
    CHECK_FAILS(kiln_registry_resolve(root, "registry:m/7", &ref, path, sizeof path),
                KILN_ERR_ARG, "has no version 7 (versions 1 to 6");
    CHECK_OK(kiln_registry_resolve(root, "registry:m@latest", &ref, path, sizeof path));
    CHECK(ref.version == 6, "latest is the highest version, got %" PRId64, ref.version);
    CHECK_OK(kiln_registry_resolve(root, "registry:m@prod", &ref, path, sizeof path));
    CHECK(ref.version == 2 && strstr(path, "/models/m/versions/2/model.bin"), "prod -> %s", path);
    test_alias_compare_and_set(root);

    int64_t *victims = NULL;
    int n = 0, removed = 0;
    CHECK_OK(kiln_registry_gc_plan(root, "m", 2, &victims, &n));
    CHECK(n == 3 && victims[0] == 1 && victims[1] == 3 && victims[2] == 4,
          "gc keeps the aliased version and the newest 2 others: plan has %d", n);
    int64_t only_one = 1;
    CHECK_OK(kiln_registry_gc(root, "m", 2, &only_one, 1, &removed));
    CHECK(removed == 1, "only the approved version is removed (%d)", removed);
    CHECK_OK(kiln_registry_set_alias(root, "m", "keep", 3)); /* aliased after the plan */
    CHECK_OK(kiln_registry_gc(root, "m", 2, victims, n, &removed));
    CHECK(removed == 1, "a version aliased after planning survives gc (%d removed)", removed);
    free(victims);
    int64_t *v;
    CHECK_OK(kiln_registry_versions(root, "m", &v, &n));
    CHECK(n == 4 && v[0] == 2 && v[1] == 3 && v[2] == 5 && v[3] == 6, "left: %d versions", n);
    free(v);
    CHECK(register_text(root, "m", "w", NULL) == 7, "numbers are never reused");
    CHECK_OK(kiln_registry_set_alias(root, "m", "prod", 0));
    CHECK_FAILS(kiln_registry_set_alias(root, "m", "prod", 0), KILN_ERR_ARG, "no alias 'prod'");
}

static void test_concurrent_registration(void)
{
    char root[PATH_MAX];
    make_root("concurrent", root, sizeof root);
    pid_t kids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        if ((kids[w] = fork()) == 0) {
            int failed = 0;
            for (int i = 0; i < PER_WRITER; i++) {
                char text[64], fields[96];
                snprintf(text, sizeof text, "writer %d item %d", w, i);
                snprintf(fields, sizeof fields, "{\"metrics\":{\"writer\":%d,\"item\":%d}}", w, i);
                failed += register_text(root, "shared", text, fields) == 0;
            }
            _exit(failed ? 1 : 0);
        }
    }
    int ok_kids = 0;
    for (int w = 0; w < WRITERS; w++) {
        int status;
        waitpid(kids[w], &status, 0);
        ok_kids += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(ok_kids == WRITERS, "%d of %d writers registered everything", ok_kids, WRITERS);
    int64_t *v;
    int n;
    CHECK_OK(kiln_registry_versions(root, "shared", &v, &n));
    CHECK(n == WRITERS * PER_WRITER, "%d versions, expected %d", n, WRITERS * PER_WRITER);
    int seen[WRITERS][PER_WRITER] = {{0}}, valid = 0;
    for (int i = 0; i < n; i++) {
        CHECK(v[i] == i + 1, "version %d is %" PRId64 ": numbers are 1..N without gaps", i + 1, v[i]);
        json_t *meta = load_meta(root, "shared", v[i]);
        json_t *m = json_object_get(meta, "metrics");
        int w = (int)json_integer_value(json_object_get(m, "writer"));
        int item = (int)json_integer_value(json_object_get(m, "item"));
        if (w >= 0 && w < WRITERS && item >= 0 && item < PER_WRITER &&
            json_integer_value(json_object_get(meta, "version")) == v[i]) {
            seen[w][item]++;
            valid++;
        }
        json_decref(meta);
    }
    free(v);
    int once = 0;
    for (int w = 0; w < WRITERS; w++)
        for (int i = 0; i < PER_WRITER; i++) once += seen[w][i] == 1;
    CHECK(valid == WRITERS * PER_WRITER && once == WRITERS * PER_WRITER,
          "every registration is there exactly once with valid metadata (%d valid, %d once)",
          valid, once);
    int bad = -1;
    FILE *devnull = fopen("/dev/null", "w");
    CHECK_OK(kiln_registry_verify(root, "shared", 0, NULL, 0, devnull, &bad));
    fclose(devnull);
    CHECK(bad == 0, "every artifact verifies (%d bad)", bad);
}

/* Reader: resolve the alias until the writer's flag file appears; exit 0 when every
 * resolution succeeded and several distinct versions were seen. */
static void reader(const char *root, const char *done_flag)
{
    long resolved = 0, failures = 0;
    int64_t last = 0, distinct = 0;
    while (!kiln_path_exists(done_flag)) {
        kiln_registry_ref ref;
        char path[PATH_MAX];
        if (kiln_registry_resolve(root, "registry:hot@prod", &ref, path, sizeof path) != KILN_OK) {
            if (failures++ < 3) fprintf(stderr, "reader: %s\n", kiln_error_message());
            kiln_error_clear();
            continue;
        }
        resolved++;
        if (ref.version != last) distinct++;
        last = ref.version;
    }
    printf("reader %d: %ld resolutions, %" PRId64 " changes of version, %ld failures\n",
           (int)getpid(), resolved, distinct, failures);
    fflush(stdout);
    _exit(failures == 0 && resolved > 0 && distinct > 1 ? 0 : 1);
}

static void test_alias_moves_while_read(void)
{
    char root[PATH_MAX], flag[PATH_MAX + 8];
    make_root("race", root, sizeof root);
    snprintf(flag, sizeof flag, "%s/done", root);
    int64_t first = register_text(root, "hot", "v1", NULL);
    CHECK_OK(kiln_registry_set_alias(root, "hot", "prod", first));
    pid_t kids[READERS];
    for (int r = 0; r < READERS; r++)
        if ((kids[r] = fork()) == 0) reader(root, flag);
    int moved = 0;
    for (int i = 0; i < MOVES; i++) { /* promote a new version, then gc everything else */
        int64_t v = register_text(root, "hot", "next", NULL), *victims = NULL;
        int n = 0, removed = 0;
        if (v && kiln_registry_set_alias(root, "hot", "prod", v) == KILN_OK &&
            kiln_registry_gc_plan(root, "hot", 0, &victims, &n) == KILN_OK &&
            kiln_registry_gc(root, "hot", 0, victims, n, &removed) == KILN_OK)
            moved++;
        else
            fprintf(stderr, "writer: %s\n", kiln_error_message());
        kiln_error_clear();
        free(victims);
    }
    write_artifact(flag, "done");
    CHECK(moved == MOVES, "writer moved the alias %d of %d times", moved, MOVES);
    int ok = 0;
    for (int r = 0; r < READERS; r++) {
        int status;
        waitpid(kids[r], &status, 0);
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(ok == READERS, "%d of %d readers always resolved an existing version", ok, READERS);
    int64_t *v;
    int n;
    CHECK_OK(kiln_registry_versions(root, "hot", &v, &n));
    CHECK(n == 1 && v[0] == MOVES + 1, "gc left only the aliased version (%d left)", n);
    free(v);
}

/* Versions carry a kind, the kind of their first artifact: an index registers like a model and
 * its URI resolves to the index file; a version written before kinds existed reads as a
 * model; a kind cannot be smuggled in as a field. */
static void test_version_kinds(void)
{
    char root[PATH_MAX / 2], idx[PATH_MAX], extra[PATH_MAX], path[PATH_MAX];
    make_root("kinds", root, sizeof root);
    snprintf(idx, sizeof idx, "%s/index.h5", root);
    snprintf(extra, sizeof extra, "%s/notes.txt", root);
    write_artifact(idx, "an index");
    write_artifact(extra, "notes");
    kiln_registry_artifact a[2] = {{idx, NULL, "index", 0}, {extra, NULL, "file", 0}};
    int64_t v = 0;
    CHECK_OK(kiln_registry_register(root, "fm-index", a, 2, "{\"metrics\": {\"recall_at_10\": 0.99}}", &v));
    char *json = NULL;
    CHECK_OK(kiln_registry_version_json(root, "fm-index", v, &json));
    CHECK(json && strstr(json, "\"kind\": \"index\""), "version.json of an index: %s", json ? json : "");
    free(json);
    kiln_registry_ref ref;
    CHECK_OK(kiln_registry_resolve(root, "registry:fm-index@latest", &ref, path, sizeof path));
    CHECK(strstr(path, "/index.h5") != NULL, "an index URI resolves to the index file: %s", path);
    CHECK_FAILS(kiln_registry_register(root, "fm-index", a, 1, "{\"kind\": \"model\"}", &v),
                KILN_ERR_ARG, "a version's kind is its first artifact's ('index')");

    /* a model version must be a kiln checkpoint that verifies; a text file is refused */
    kiln_registry_artifact text = {extra, NULL, "model", 0};
    CHECK_FAILS(kiln_registry_register(root, "notes", &text, 1, NULL, &v), KILN_ERR_ARG,
                "is not a kiln checkpoint that verifies");

    /* a version.json from before kinds: no "kind" field, read as a model */
    char ckdir[PATH_MAX], ckpt[PATH_MAX + 32];
    snprintf(ckdir, sizeof ckdir, "%s/ck", root);
    float w[6] = {1, 2, 3, 4, 5, 6};
    kiln_ckpt_tensor t = {"model/w", w, 2, {2, 3}, 0, 6};
    static kiln_ckpt_meta ck_meta; /* 64 KiB: not on the stack */
    ck_meta.step = 3;
    snprintf(ck_meta.config_text, sizeof ck_meta.config_text, "model:\n  kind: \"mlp\"\n");
    CHECK_OK(kiln_ckpt_save(NULL, ckdir, &ck_meta, &t, 1, 1));
    snprintf(ckpt, sizeof ckpt, "%s/step-00000003.h5", ckdir);
    kiln_registry_artifact model = {ckpt, "model.h5", "model", 0};
    int64_t m = 0;
    CHECK_OK(kiln_registry_register(root, "old", &model, 1, NULL, &m));
    char vjson[PATH_MAX + 64];
    snprintf(vjson, sizeof vjson, "%s/models/old/versions/%lld/version.json", root, (long long)m);
    json_error_t err;
    json_t *meta = json_load_file(vjson, 0, &err);
    CHECK(meta && json_object_del(meta, "kind") == 0, "version.json had a kind to remove");
    CHECK(meta && json_dump_file(meta, vjson, JSON_INDENT(2)) == 0, "rewrote %s", vjson);
    json_decref(meta);
    CHECK_OK(kiln_registry_resolve(root, "registry:old@latest", &ref, path, sizeof path));
    CHECK(strstr(path, "/model.h5") != NULL, "a version without a kind resolves to its model: %s", path);
}

/* verify reports an alias to a version that is gone; a staging copy left by a writer that died
 * (a process of this host that no longer exists) is removed by the next registration. */
static void test_dangling_and_leftovers(void)
{
    char root[PATH_MAX / 2], vdir[PATH_MAX], staging[PATH_MAX], report[PATH_MAX], host[256] = "x";
    make_root("leftovers", root, sizeof root);
    CHECK(register_text(root, "m", "a", NULL) == 1 && register_text(root, "m", "b", NULL) == 2,
          "two versions");
    CHECK_OK(kiln_registry_set_alias(root, "m", "prod", 2));
    snprintf(vdir, sizeof vdir, "rm -rf '%s/models/m/versions/2'", root);
    CHECK(system(vdir) == 0, "removed version 2 behind the registry's back");
    snprintf(report, sizeof report, "%s/verify.txt", root);
    FILE *out = fopen(report, "w");
    int bad = 0;
    CHECK_OK(kiln_registry_verify(root, "m", 0, NULL, 0, out, &bad));
    fclose(out);
    char text[4096] = "";
    FILE *f = fopen(report, "r");
    size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[got] = '\0';
    if (f) fclose(f);
    CHECK(bad == 1 && strstr(text, "registry:m@prod: DANGLING alias: it points at version 2"),
          "verify: %d problems: %s", bad, text);

    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = '\0';
    snprintf(staging, sizeof staging, "%s/models/m/.staging/%s.999999999.abcdef", root, host);
    CHECK_OK(kiln_mkdir_p(staging));
    CHECK(register_text(root, "m", "c", NULL) == 3, "third version");
    CHECK(!kiln_path_exists(staging), "the dead writer's staging copy is gone: %s", staging);
}

int main(void)
{
    const char *tmp = getenv("KILN_TEST_TMP");
    snprintf(work, sizeof work, "%s/test_registry.XXXXXX", tmp ? tmp : "/tmp");
    CHECK_OK(kiln_mkdir_p(tmp ? tmp : "/tmp"));
    if (!mkdtemp(work)) {
        perror("mkdtemp");
        return 1;
    }
    test_uris();
    test_names_create_nothing();
    test_metadata_and_verify();
    test_aliases_and_gc();
    test_concurrent_registration();
    test_alias_moves_while_read();
    test_version_kinds();
    test_dangling_and_leftovers();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    if (!test_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", work);
    TEST_MAIN_END();
}
