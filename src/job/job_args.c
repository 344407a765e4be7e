/* The command line every job kind shares: `kiln NAME [CONFIG.yaml] [--set key=value ...]
 * [--FLAG VALUE ...] [--help] [--help-config]`. Flags are declared by the kind: most are
 * shorthands for a config key (so a flag and --set can never disagree about what they mean),
 * a few are options of the run. Errors here are usage errors (exit 2) and print before MPI
 * starts, once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "job_args.h"

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

static int usage_error(const kiln_job_kind *k, job_args *a, const char *what, const char *arg)
{
    fprintf(stderr, "kiln %s: %s '%s' (see kiln %s --help)\n", k->name, what, arg, k->name);
    a->exit_now = KILN_EXIT_BAD_INPUT;
    return 0;
}

/* The flag of k that arg names ("--batch" or "--batch=64"), or -1; *inline_value points past
 * the '=' when there is one. */
static int find_flag(const kiln_job_kind *k, const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    for (int f = 0; f < k->n_flags; f++) {
        size_t n = strlen(k->flags[f].flag);
        if (strncmp(arg, k->flags[f].flag, n) != 0) continue;
        if (arg[n] == '\0') return f;
        if (arg[n] == '=') {
            *inline_value = arg + n + 1;
            return f;
        }
    }
    return -1;
}

static char *override_text(const char *key, const char *value)
{
    size_t n = strlen(key) + strlen(value) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s=%s", key, value);
    return s;
}

/* One argument (and its value, consumed from argv[*i + 1] when needed); 0 stops parsing. */
static int take(const kiln_job_kind *k, int argc, char **argv, int *i, job_args *a)
{
    const char *arg = argv[*i], *value = NULL;
    if (is_help(arg)) {
        fputs(k->usage, stdout);
        a->exit_now = KILN_EXIT_DONE;
        return 0;
    }
    if (!strcmp(arg, "--help-config")) {
        kiln_config_print_help(k->schema, stdout);
        a->exit_now = KILN_EXIT_DONE;
        return 0;
    }
    int f = find_flag(k, arg, &value);
    const char *key = NULL;
    if (!strcmp(arg, "--set") || !strncmp(arg, "--set=", 6)) {
        if (arg[5] == '=') value = arg + 6;
        f = -2;
    } else if (f < 0 && arg[0] == '-' && arg[1]) {
        return usage_error(k, a, "unknown option", arg);
    } else if (f < 0) {
        if (a->config_path) {
            fprintf(stderr, "kiln %s: more than one config given ('%s', '%s')\n", k->name,
                    a->config_path, arg);
            a->exit_now = KILN_EXIT_BAD_INPUT;
            return 0;
        }
        a->config_path = arg;
        return 1;
    }
    if (!value) {
        if (*i + 1 >= argc) return usage_error(k, a, "option needs a value:", arg);
        value = argv[++*i];
    }
    if (f >= 0 && !k->flags[f].key) {
        a->options[f] = value;
        return 1;
    }
    key = f >= 0 ? k->flags[f].key : NULL;
    char *ov = key ? override_text(key, value) : strdup(value);
    if (!ov) return usage_error(k, a, "out of memory at", arg);
    a->overrides[a->n_overrides++] = ov;
    return 1;
}

kiln_status kiln_job_args_parse(const kiln_job_kind *k, int argc, char **argv, job_args *a)
{
    memset(a, 0, sizeof *a);
    a->exit_now = -1;
    a->overrides = calloc((size_t)argc + 1, sizeof *a->overrides);
    a->options = calloc((size_t)k->n_flags + 1, sizeof *a->options);
    KILN_CHECK_ALLOC(a->overrides);
    KILN_CHECK_ALLOC(a->options);
    for (int i = 1; i < argc; i++)
        if (!take(k, argc, argv, &i, a)) return KILN_OK;
    if (k->config_positional && !a->config_path) {
        fputs(k->usage, stderr);
        a->exit_now = KILN_EXIT_BAD_INPUT;
        return KILN_OK;
    }
    for (int f = 0; f < k->n_flags; f++) {
        if (k->flags[f].key) continue;
        if (!a->options[f] && k->flags[f].required) {
            fprintf(stderr, "kiln %s: %s is required (see kiln %s --help)\n", k->name,
                    k->flags[f].flag, k->name);
            a->exit_now = KILN_EXIT_BAD_INPUT;
            return KILN_OK;
        }
        if (!a->options[f]) a->options[f] = k->flags[f].fallback;
    }
    return KILN_OK;
}

void kiln_job_args_free(const kiln_job_kind *k, job_args *a)
{
    for (int i = 0; a->overrides && i < a->n_overrides; i++) free(a->overrides[i]);
    free(a->overrides);
    free(a->options);
}
