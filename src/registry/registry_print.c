/* What `kiln registry ls | history | diff` print: plain aligned text for people (show prints
 * version.json itself, for programs). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "registry_internal.h"

/* "production, staging" of the aliases naming version v (buf "" when none). */
static void aliases_of(char **aliases, const int64_t *versions, int n, int64_t v, char *buf,
                       size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (versions[i] != v) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", aliases[i]);
    }
}

kiln_status kiln_registry_print_models(const char *root, FILE *out)
{
    char **names;
    int n;
    KILN_CHECK(kiln_registry_models(root, &names, &n));
    if (n == 0) fprintf(out, "registry '%s' has no models\n", root);
    else fprintf(out, "%-32s %8s %8s  %s\n", "MODEL", "VERSIONS", "LATEST", "ALIASES");
    kiln_status st = KILN_OK;
    for (int i = 0; i < n && st == KILN_OK; i++) {
        int64_t *v = NULL, *av = NULL;
        char **a = NULL, list[1024] = "";
        int nv = 0, na = 0;
        st = kiln_registry_versions(root, names[i], &v, &nv);
        if (st == KILN_OK) st = kiln_registry_aliases(root, names[i], &a, &av, &na);
        for (int j = 0; j < na; j++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s -> %" PRId64, j ? ", " : "", a[j], av[j]);
        }
        if (st == KILN_OK)
            fprintf(out, "%-32s %8d %8" PRId64 "  %s\n", names[i], nv, nv ? v[nv - 1] : 0, list);
        free(v);
        free(av);
        kiln_registry_free_names(a, na);
    }
    kiln_registry_free_names(names, n);
    return st;
}

static void print_metric(FILE *out, json_t *metrics, const char *key)
{
    json_t *m = json_object_get(metrics, key);
    if (json_is_number(m)) fprintf(out, " %12.6g", json_number_value(m));
    else fprintf(out, " %12s", "-");
}

kiln_status kiln_registry_print_versions(const char *root, const char *name, FILE *out)
{
    char mdir[PATH_MAX];
    int64_t *v, *av;
    char **a;
    int n, na;
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    KILN_CHECK(kiln_reg_list_versions(mdir, &v, &n));
    kiln_status st = kiln_registry_aliases(root, name, &a, &av, &na);
    if (st != KILN_OK) {
        free(v);
        return st;
    }
    fprintf(out, "%8s  %-20s %-12s %8s %12s %12s  %s\n", "VERSION", "CREATED", "USER", "STEP",
            "EVAL_LOSS", "EVAL_ACC", "ALIASES");
    for (int i = 0; i < n; i++) {
        json_t *meta = NULL;
        char list[512];
        aliases_of(a, av, na, v[i], list, sizeof list);
        if (kiln_reg_load_version(mdir, v[i], &meta) != KILN_OK) {
            fprintf(out, "%8" PRId64 "  (unreadable: %s)\n", v[i], kiln_error_message());
            kiln_error_clear();
            continue;
        }
        json_t *metrics = json_object_get(meta, "metrics");
        json_t *step = json_object_get(metrics, "step");
        fprintf(out, "%8" PRId64 "  %-20s %-12s", v[i],
                json_string_value(json_object_get(meta, "created")) ?: "?",
                json_string_value(json_object_get(meta, "user")) ?: "?");
        if (json_is_integer(step)) fprintf(out, " %8" JSON_INTEGER_FORMAT, json_integer_value(step));
        else fprintf(out, " %8s", "-");
        print_metric(out, metrics, "eval_loss");
        print_metric(out, metrics, "eval_accuracy");
        fprintf(out, "  %s\n", list);
        json_decref(meta);
    }
    free(v);
    free(av);
    kiln_registry_free_names(a, na);
    return KILN_OK;
}

kiln_status kiln_registry_print_history(const char *root, const char *name, FILE *out)
{
    char mdir[PATH_MAX], path[PATH_MAX], line[8192];
    KILN_CHECK(kiln_reg_model_dir(root, name, mdir, sizeof mdir, NULL));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/history.jsonl", mdir));
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(out, "model '%s' has no history yet\n", name);
        return KILN_OK;
    }
    while (fgets(line, sizeof line, f)) {
        json_t *e = json_loads(line, 0, NULL);
        if (!e) continue; /* a torn last line of a writer that died mid-append */
        json_t *v = json_object_get(e, "version"), *prev = json_object_get(e, "previous");
        fprintf(out, "%-20s %-12s %-9s", json_string_value(json_object_get(e, "time")) ?: "?",
                json_string_value(json_object_get(e, "user")) ?: "?",
                json_string_value(json_object_get(e, "event")) ?: "?");
        const char *alias = json_string_value(json_object_get(e, "alias"));
        if (alias) fprintf(out, " %s:", alias);
        if (json_is_integer(prev)) fprintf(out, " %" JSON_INTEGER_FORMAT " ->", json_integer_value(prev));
        if (json_is_integer(v)) fprintf(out, " %" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (alias) fprintf(out, " (removed)");
        const char *artifact = json_string_value(json_object_get(e, "artifact"));
        if (artifact) fprintf(out, " %s", artifact);
        fputc('\n', out);
        json_decref(e);
    }
    fclose(f);
    return KILN_OK;
}

/* Compact JSON text of a value, "-" when absent. */
static void value_text(json_t *v, char *buf, size_t len)
{
    char *t = v ? json_dumps(v, JSON_ENCODE_ANY | REG_JSON_LINE) : NULL;
    snprintf(buf, len, "%s", t ? t : "-");
    free(t);
}

/* Every key of section in a or b, a's order first; differing rows marked with '*'. */
static void diff_section(FILE *out, const char *section, json_t *a, json_t *b)
{
    json_t *sa = json_object_get(a, section), *sb = json_object_get(b, section);
    json_t *both[2] = {sa, sb};
    fprintf(out, "%s:\n", section);
    for (int side = 0; side < 2; side++) {
        const char *key;
        json_t *value;
        json_object_foreach(both[side], key, value)
        {
            if (side == 1 && json_object_get(sa, key)) continue; /* printed with a's keys */
            json_t *va = json_object_get(sa, key), *vb = json_object_get(sb, key);
            char ta[256], tb[256];
            value_text(va, ta, sizeof ta);
            value_text(vb, tb, sizeof tb);
            int same = va && vb && json_equal(va, vb);
            fprintf(out, "%c %-32s %-24s %s\n", same ? ' ' : '*', key, ta, tb);
        }
    }
}

static kiln_status load_ref(const char *root, const char *uri, kiln_registry_ref *ref, json_t **meta)
{
    char path[PATH_MAX], mdir[PATH_MAX];
    KILN_CHECK(kiln_registry_resolve(root, uri, ref, path, sizeof path));
    KILN_CHECK(kiln_reg_model_dir(root, ref->name, mdir, sizeof mdir, NULL));
    return kiln_reg_load_version(mdir, ref->version, meta);
}

kiln_status kiln_registry_print_diff(const char *root, const char *uri_a, const char *uri_b,
                                     FILE *out)
{
    kiln_registry_ref ra, rb;
    json_t *a = NULL, *b = NULL;
    KILN_CHECK(load_ref(root, uri_a, &ra, &a));
    kiln_status st = load_ref(root, uri_b, &rb, &b);
    if (st == KILN_OK) {
        char ua[256], ub[256];
        kiln_registry_format_uri(&ra, ua, sizeof ua);
        kiln_registry_format_uri(&rb, ub, sizeof ub);
        fprintf(out, "  %-32s %-24s %s\n", "", ua, ub);
        diff_section(out, "metrics", a, b);
        diff_section(out, "params", a, b);
    }
    json_decref(a);
    json_decref(b);
    return st;
}
