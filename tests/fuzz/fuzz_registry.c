/* Fuzz target: the registry's metadata as a damaged or hostile file would have it. The input is
 * cut at 0xff bytes into the contents of a version's version.json, an alias file, last_version
 * and history.jsonl of a model; then every reader runs over it: resolving URIs, listing,
 * showing, diffing, verifying, planning gc, finding a source, and registering a new version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/registry.h"

static char tmpl[256], root[256];

int LLVMFuzzerInitialize(int *argc, char **argv[])
{
    (void)argc;
    (void)argv;
    if (!freopen("/dev/null", "w", stdout)) abort();
    snprintf(tmpl, sizeof tmpl, "/tmp/fuzz_registry.%d", (int)getpid());
    snprintf(root, sizeof root, "%s.work", tmpl);
    char file[300];
    snprintf(file, sizeof file, "%s.artifact", tmpl);
    FILE *f = fopen(file, "w");
    if (!f) abort();
    fputs("weights\n", f);
    fclose(f);
    kiln_registry_artifact a = {file, "model.bin", "file", 0};
    int64_t v;
    for (int i = 0; i < 2; i++)
        if (kiln_registry_register(tmpl, "m", &a, 1, "{\"metrics\": {\"acc\": 0.5}}", &v) != KILN_OK)
            abort();
    if (kiln_registry_set_alias(tmpl, "m", "prod", 1) != KILN_OK) abort();
    return 0;
}

static void put(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char cmd[600], path[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", root, tmpl, root);
    if (system(cmd) != 0) abort();
    static const char *files[] = {"versions/1/version.json", "aliases/prod", "last_version",
                                  "history.jsonl"};
    size_t at = 0;
    for (int i = 0; i < 4 && at <= size; i++) {
        const uint8_t *end = memchr(data + at, 0xff, size - at);
        size_t n = end ? (size_t)(end - (data + at)) : size - at;
        snprintf(path, sizeof path, "%s/models/m/%s", root, files[i]);
        put(path, data + at, n);
        at += n + 1;
    }
    char model_path[4096];
    kiln_registry_ref ref;
    int bad;
    int64_t *victims = NULL, version = 0;
    int n;
    (void)kiln_registry_resolve(root, "registry:m@prod", &ref, model_path, sizeof model_path);
    (void)kiln_registry_resolve(root, "registry:m@latest", &ref, model_path, sizeof model_path);
    (void)kiln_registry_resolve(root, "registry:m/1", &ref, model_path, sizeof model_path);
    (void)kiln_registry_print_models(root, stdout);
    (void)kiln_registry_print_versions(root, "m", stdout);
    (void)kiln_registry_print_history(root, "m", stdout);
    (void)kiln_registry_print_diff(root, "registry:m/1", "registry:m/2", stdout);
    (void)kiln_registry_verify(root, NULL, 0, NULL, 0, stdout, &bad);
    if (kiln_registry_gc_plan(root, "m", 0, &victims, &n) == KILN_OK) free(victims);
    (void)kiln_registry_find_source(root, "m", "/nonexistent", &version);
    snprintf(path, sizeof path, "%s.artifact", tmpl);
    kiln_registry_artifact a = {path, "model.bin", "file", 0};
    (void)kiln_registry_register(root, "m", &a, 1, NULL, &version);
    kiln_error_clear();
    return 0;
}
