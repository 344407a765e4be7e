/* kiln registry [--registry DIR] ls|show|register|alias|history|diff|verify|gc ... */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "kiln/ann.h"
#include "kiln/registry.h"

static void registry_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln registry [--registry DIR] COMMAND ...\n\n"
            "The model registry at DIR (default: $KILN_REGISTRY, else ./registry). MODEL below\n"
            "is NAME@ALIAS, NAME/VERSION or NAME (= NAME@latest), with or without 'registry:'.\n\n"
            "  ls [NAME]                      models, or a model's versions with metrics and aliases\n"
            "  show MODEL [--path]            a version's version.json (--path: its model file)\n"
            "  register NAME FILE [options]   add FILE (a checkpoint) as a new version; prints its URI\n"
            "      --kind KIND                what FILE is: model (default), index, features, ...\n"
            "      --artifact FILE            another file to store with it (repeatable)\n"
            "      --external                 record FILE's path and sha256 instead of copying it\n"
            "      --metric KEY=NUMBER        (repeatable)   --param KEY=VALUE (repeatable)\n"
            "      --parent URI               the version it was derived from\n"
            "      --alias ALIAS              point ALIAS at the new version\n"
            "      --fields JSON              any further metadata, as a JSON object\n"
            "  alias NAME ALIAS VERSION       point ALIAS at VERSION (moves it if it exists)\n"
            "  alias NAME ALIAS --remove      remove ALIAS\n"
            "      --expect OLD|none          only if ALIAS points at version OLD now (none: does\n"
            "                                 not exist), checked under the model's lock; else\n"
            "                                 change nothing and fail (a concurrent move won)\n"
            "  history NAME                   registrations, alias moves and removals, oldest first\n"
            "  diff MODEL_A MODEL_B           metrics and params side by side ('*': differs)\n"
            "  verify [MODEL]                 recheck every artifact's sha256 (all models by default)\n"
            "  gc NAME [--keep N] [--yes] [--dry-run]\n"
            "                                 remove versions no alias points to, beyond the newest\n"
            "                                 N of them (default 5); asks first unless --yes\n\n"
            "Wherever kiln takes a model or checkpoint path it also takes registry:NAME@ALIAS and\n"
            "registry:NAME/VERSION.\n");
}

/* MODEL argument -> URI: adds "registry:" and "@latest" where missing. */
static void to_uri(const char *arg, char *uri, size_t len)
{
    const char *body = kiln_registry_is_uri(arg) ? arg + strlen(KILN_REGISTRY_URI_PREFIX) : arg;
    int has_ref = strchr(body, '@') || strchr(body, '/');
    snprintf(uri, len, "%s%s%s", KILN_REGISTRY_URI_PREFIX, body, has_ref ? "" : "@" KILN_REGISTRY_LATEST);
}

static int cmd_show(const char *root, int argc, char **argv)
{
    if (argc < 2) return registry_usage(stderr), 2;
    char uri[512], path[4096];
    int want_path = argc > 2 && !strcmp(argv[2], "--path");
    to_uri(argv[1], uri, sizeof uri);
    kiln_registry_ref ref;
    kiln_status st = kiln_registry_resolve(root, uri, &ref, path, sizeof path);
    char *json = NULL;
    if (st == KILN_OK && !want_path) st = kiln_registry_version_json(root, ref.name, ref.version, &json);
    if (st != KILN_OK) return kiln_cli_fail("registry show", st);
    if (want_path) printf("%s\n", path);
    else printf("%s\n", json);
    free(json);
    return 0;
}

/* KEY=VALUE into obj: a JSON number/bool/null when VALUE parses as one, else a string. */
static int set_pair(json_t *obj, const char *arg, int numbers_only)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        fprintf(stderr, "kiln registry register: expected KEY=VALUE, found '%s'\n", arg);
        return 0;
    }
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    if (v && !json_is_number(v) && (numbers_only || json_is_object(v) || json_is_array(v))) {
        json_decref(v);
        v = NULL;
    }
    if (!v && numbers_only) {
        fprintf(stderr, "kiln registry register: metric '%s' is not a number: '%s'\n", key, eq + 1);
        return 0;
    }
    json_object_set_new(obj, key, v ? v : json_string(eq + 1));
    return 1;
}

enum { MAX_ARTIFACTS = 16 }; /* the version's file and up to 15 --artifact files */

typedef struct register_args {
    const char *name, *alias;
    kiln_registry_artifact artifacts[MAX_ARTIFACTS];
    int n_artifacts;
    json_t *fields;
} register_args;

static int parse_register(int argc, char **argv, register_args *a)
{
    json_t *metrics = json_object(), *params = json_object();
    json_object_set_new(a->fields, "metrics", metrics);
    json_object_set_new(a->fields, "params", params);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = !strcmp(o, "--artifact") || !strcmp(o, "--metric") ||
                          !strcmp(o, "--param") || !strcmp(o, "--parent") ||
                          !strcmp(o, "--alias") || !strcmp(o, "--fields") || !strcmp(o, "--kind");
        if (takes_value && !val) {
            fprintf(stderr, "kiln registry register: %s needs a value\n", o);
            return 0;
        }
        if (takes_value) i++;
        if (!strcmp(o, "--external")) {
            a->artifacts[0].external = 1;
        } else if (!strcmp(o, "--artifact")) {
            if (a->n_artifacts == MAX_ARTIFACTS) {
                fprintf(stderr, "kiln registry register: at most %d --artifact files, found "
                        "more\n", MAX_ARTIFACTS - 1);
                return 0;
            }
            a->artifacts[a->n_artifacts++] = (kiln_registry_artifact){val, NULL, "file", 0};
        } else if (!strcmp(o, "--kind")) {
            if (kiln_registry_check_name("kind", val) != KILN_OK) {
                fprintf(stderr, "kiln registry register: %s\n", kiln_error_message());
                return 0;
            }
            a->artifacts[0].kind = val;
        } else if (!strcmp(o, "--metric") || !strcmp(o, "--param")) {
            if (!set_pair(o[2] == 'm' ? metrics : params, val, o[2] == 'm')) return 0;
        } else if (!strcmp(o, "--parent")) {
            json_object_set_new(a->fields, "parent", json_string(val));
        } else if (!strcmp(o, "--alias")) {
            a->alias = val;
        } else if (!strcmp(o, "--fields")) {
            json_error_t err;
            json_t *extra = json_loads(val, 0, &err);
            if (!json_is_object(extra)) {
                fprintf(stderr, "kiln registry register: --fields must be a JSON object: %s\n",
                        extra ? "found another JSON value" : err.text);
                json_decref(extra);
                return 0;
            }
            json_object_update(a->fields, extra);
            json_decref(extra);
        } else if (o[0] == '-' || takes_value) {
            fprintf(stderr, "kiln registry register: unknown option '%s'\n", o);
            return 0;
        } else if (!a->name) {
            a->name = o;
        } else if (!a->artifacts[0].path) {
            a->artifacts[0].path = o;
        } else {
            fprintf(stderr, "kiln registry register: unexpected argument '%s'\n", o);
            return 0;
        }
    }
    if (!a->name || !a->artifacts[0].path) {
        registry_usage(stderr);
        return 0;
    }
    return 1;
}

static int cmd_register(const char *root, int argc, char **argv)
{
    register_args a = {.n_artifacts = 1, .fields = json_object()};
    a.artifacts[0] = (kiln_registry_artifact){NULL, NULL, "model", 0};
    if (!parse_register(argc, argv, &a)) {
        json_decref(a.fields);
        return 2;
    }
    /* every version's file has the same name, its kind's: model.h5, index.h5, model.onnx, ... */
    char model_name[128];
    const char *ext = strrchr(a.artifacts[0].path, '.');
    snprintf(model_name, sizeof model_name, "%s%s", a.artifacts[0].kind,
             ext && !strchr(ext, '/') && strlen(ext) < 16 ? ext : "");
    a.artifacts[0].name = model_name;
    char *fields = json_dumps(a.fields, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(a.fields);
    kiln_registry_ref ref = {.version = 0};
    snprintf(ref.name, sizeof ref.name, "%s", a.name);
    kiln_status st = kiln_registry_register(root, a.name, a.artifacts, a.n_artifacts, fields,
                                            &ref.version);
    free(fields);
    if (st == KILN_OK && a.alias) st = kiln_registry_set_alias(root, a.name, a.alias, ref.version);
    if (st != KILN_OK) return kiln_cli_fail("registry register", st);
    char uri[256];
    kiln_registry_format_uri(&ref, uri, sizeof uri);
    printf("registered %s%s%s\n", uri, a.alias ? " as @" : "", a.alias ? a.alias : "");
    return 0;
}

/* --expect's value: a version >= 1, or "none" (0) for an alias that must not exist yet. */
static int parse_expect(const char *s, int64_t *expect)
{
    char *end;
    if (!strcmp(s, "none")) return *expect = 0, 0;
    *expect = strtoll(s, &end, 10);
    if (!*end && *expect >= 1) return 0;
    fprintf(stderr, "kiln registry alias: --expect takes a version >= 1 or 'none', found '%s'\n", s);
    return 2;
}

static int cmd_alias(const char *root, int argc, char **argv)
{
    int64_t version = 0, expect = KILN_ALIAS_ANY;
    if (argc == 6 && !strcmp(argv[4], "--expect")) {
        if (parse_expect(argv[5], &expect)) return 2;
        argc = 4;
    }
    if (argc != 4) return registry_usage(stderr), 2;
    if (strcmp(argv[3], "--remove")) {
        char *end;
        version = strtoll(argv[3], &end, 10);
        if (*end || version < 1) {
            fprintf(stderr, "kiln registry alias: VERSION must be a number >= 1 or --remove, "
                    "found '%s'\n", argv[3]);
            return 2;
        }
    }
    kiln_status st = kiln_registry_move_alias(root, argv[1], argv[2], version, expect);
    if (st != KILN_OK) return kiln_cli_fail("registry alias", st);
    if (version) printf("registry:%s@%s -> registry:%s/%" PRId64 "\n", argv[1], argv[2], argv[1], version);
    else printf("removed alias %s of %s\n", argv[2], argv[1]);
    return 0;
}

/* The kinds verify opens beyond models (which the registry checks as checkpoints itself). */
static const kiln_registry_check kind_checks[] = {{"index", "kiln index", kiln_index_verify}};
enum { N_KIND_CHECKS = sizeof kind_checks / sizeof kind_checks[0] };

static int cmd_verify(const char *root, int argc, char **argv)
{
    kiln_status st;
    int bad = 0;
    if (argc > 1) {
        char uri[512], path[4096];
        kiln_registry_ref ref;
        to_uri(argv[1], uri, sizeof uri);
        int whole_model = !strchr(argv[1], '@') && !strchr(argv[1] + (kiln_registry_is_uri(argv[1]) ? 9 : 0), '/');
        st = kiln_registry_parse_uri(uri, &ref);
        if (st == KILN_OK && !whole_model) st = kiln_registry_resolve(root, uri, &ref, path, sizeof path);
        if (st == KILN_OK) st = kiln_registry_verify(root, ref.name, whole_model ? 0 : ref.version, kind_checks,
                                                    N_KIND_CHECKS, stdout, &bad);
    } else {
        st = kiln_registry_verify(root, NULL, 0, kind_checks, N_KIND_CHECKS, stdout, &bad);
    }
    if (st != KILN_OK) return kiln_cli_fail("registry verify", st);
    if (bad) fprintf(stderr, "kiln registry verify: error: %d problem%s found (see above)\n", bad, bad == 1 ? "" : "s");
    return bad ? 1 : 0;
}

/* 1 when the user types y/yes on a terminal. */
static int confirm(const char *question)
{
    char line[16] = "";
    fprintf(stderr, "%s [y/N] ", question);
    if (!fgets(line, sizeof line, stdin)) return 0;
    return !strcmp(line, "y\n") || !strcmp(line, "yes\n");
}

static int cmd_gc(const char *root, int argc, char **argv)
{
    int keep = 5, yes = 0, dry = 0;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--yes")) yes = 1;
        else if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (argv[i][0] != '-' && !name) name = argv[i];
        else return registry_usage(stderr), 2;
    }
    if (!name) return registry_usage(stderr), 2;
    int64_t *victims;
    int n, removed = 0;
    kiln_status st = kiln_registry_gc_plan(root, name, keep, &victims, &n);
    if (st != KILN_OK) return kiln_cli_fail("registry gc", st);
    printf("%s: %d version%s to remove (not aliased, older than the newest %d such)%s", name, n,
           n == 1 ? "" : "s", keep, n ? ":" : "\n");
    for (int i = 0; i < n; i++) printf(" %" PRId64 "%s", victims[i], i == n - 1 ? "\n" : "");
    int go = n > 0 && !dry;
    if (go && !yes && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "kiln registry gc: error: not removing without --yes (stdin is not a "
                "terminal to ask on)\n");
        free(victims);
        return 2;
    }
    if (go && !yes) go = confirm("remove them?");
    /* with no version to remove (or none approved) it still clears what dead writers left */
    if (!dry) st = kiln_registry_gc(root, name, keep, victims, go ? n : 0, &removed);
    free(victims);
    if (st != KILN_OK) return kiln_cli_fail("registry gc", st);
    if (go) printf("removed %d version%s\n", removed, removed == 1 ? "" : "s");
    return 0;
}

static int cmd_diff(const char *root, int argc, char **argv)
{
    if (argc != 3) return registry_usage(stderr), 2;
    char a[512], b[512];
    to_uri(argv[1], a, sizeof a);
    to_uri(argv[2], b, sizeof b);
    kiln_status st = kiln_registry_print_diff(root, a, b, stdout);
    return st == KILN_OK ? 0 : kiln_cli_fail("registry diff", st);
}

int kiln_cmd_registry(int argc, char **argv)
{
    const char *root = kiln_registry_root(NULL);
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "--registry")) {
        root = argv[2];
        i = 3;
    }
    if (i >= argc) return registry_usage(stderr), 2;
    const char *cmd = argv[i];
    argc -= i;
    argv += i;
    if (kiln_cli_is_help(cmd)) return registry_usage(stdout), 0;
    kiln_status st = KILN_OK;
    if (!strcmp(cmd, "ls")) {
        st = argc > 1 ? kiln_registry_print_versions(root, argv[1], stdout)
                      : kiln_registry_print_models(root, stdout);
    } else if (!strcmp(cmd, "history") && argc == 2) {
        st = kiln_registry_print_history(root, argv[1], stdout);
    } else if (!strcmp(cmd, "show")) {
        return cmd_show(root, argc, argv);
    } else if (!strcmp(cmd, "register")) {
        return cmd_register(root, argc, argv);
    } else if (!strcmp(cmd, "alias")) {
        return cmd_alias(root, argc, argv);
    } else if (!strcmp(cmd, "verify")) {
        return cmd_verify(root, argc, argv);
    } else if (!strcmp(cmd, "gc")) {
        return cmd_gc(root, argc, argv);
    } else if (!strcmp(cmd, "diff")) {
        return cmd_diff(root, argc, argv);
    } else {
        fprintf(stderr, "kiln registry: unknown command '%s'\n\n", cmd);
        return registry_usage(stderr), 2;
    }
    return st == KILN_OK ? 0 : kiln_cli_fail("registry", st);
}
