/* Config loading against a schema: defaults, then a YAML file or text, then `--set key=value`
 * overrides, each value parsed by one set of rules per type. Every rejection names where the
 * value came from (file:line, the --set argument, or the schema's default), the key path,
 * what was expected and what was found. The YAML reading and writing live in config_yaml.c. */
#include "config_yaml.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

static const char *const cfg_type_names[] = {"int", "int64", "float", "bool", "string", "int list",
                                             "map"};
static const char *const cfg_type_wants[] = {
    "an integer", "a 64-bit integer", "a number", "a boolean (true/false/yes/no/on/off/1/0)",
    "a string", "a list of integers", "a mapping"};

typedef struct {
    const kiln_cfg_schema *schema; /* flat: one section holding every key (cfg_flatten) */
    char *base;         /* the struct being filled */
    char origin[1024];  /* "configs/x.yaml", "--set optim.lr=1", "schema 'train' default" */
    int only_sections;  /* skip top-level sections the schema does not have */
} cfg_loader;

static kiln_status cfg_fail(const cfg_loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static kiln_status cfg_fail(const cfg_loader *ld, int line, const char *fmt, ...)
{
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: %s", ld->origin, line, msg);
    return KILN_ERROR(KILN_ERR_CONFIG, "%s: %s", ld->origin, msg);
}

/* ---- schemas: sections and compositions ---- */

static size_t cfg_count_keys(const kiln_cfg_schema *s)
{
    size_t n = s->n_keys;
    for (size_t p = 0; p < s->n_parts; p++) n += cfg_count_keys(s->parts[p].section);
    return n;
}

/* A section's own keys at base, then each part's at base + its offset. */
static kiln_status cfg_append_keys(const kiln_cfg_schema *section, size_t base,
                                   kiln_cfg_key *keys, const char **owner, size_t *n)
{
    for (size_t i = 0; i < section->n_keys; i++) {
        const kiln_cfg_key *k = &section->keys[i];
        for (size_t j = 0; j < *n; j++)
            if (!strcmp(keys[j].path, k->path))
                return KILN_ERROR(KILN_ERR_CONFIG, "key '%s' is declared twice: by section '%s' "
                                  "and by section '%s'", k->path, owner[j], section->name);
        keys[*n] = *k;
        keys[*n].offset += base;
        owner[(*n)++] = section->name;
    }
    for (size_t p = 0; p < section->n_parts; p++)
        KILN_CHECK(cfg_append_keys(section->parts[p].section, base + section->parts[p].offset,
                                   keys, owner, n));
    return KILN_OK;
}

kiln_status kiln_config_keys(const kiln_cfg_schema *schema, kiln_cfg_key **keys, size_t *n)
{
    size_t total = cfg_count_keys(schema);
    kiln_cfg_key *all = calloc(total ? total : 1, sizeof *all);
    const char **owner = calloc(total ? total : 1, sizeof *owner);
    kiln_status st = all && owner ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "schema '%s'", schema->name);
    *n = 0;
    if (st == KILN_OK) st = cfg_append_keys(schema, 0, all, owner, n);
    free(owner);
    if (st != KILN_OK) {
        free(all);
        return st;
    }
    *keys = all;
    return KILN_OK;
}

/* The schema as one flat section (flat->keys is allocated: cfg_flat_free). */
static kiln_status cfg_flatten(const kiln_cfg_schema *schema, kiln_cfg_schema *flat)
{
    kiln_cfg_key *keys;
    size_t n;
    KILN_CHECK(kiln_config_keys(schema, &keys, &n));
    *flat = (kiln_cfg_schema){schema->name, keys, n, NULL, 0};
    return KILN_OK;
}

static void cfg_flat_free(kiln_cfg_schema *flat) { free((void *)flat->keys); }

/* ---- schema lookups ---- */

static const kiln_cfg_key *cfg_find_key(const kiln_cfg_schema *schema, const char *path)
{
    for (size_t i = 0; i < schema->n_keys; i++)
        if (!strcmp(schema->keys[i].path, path)) return &schema->keys[i];
    return NULL;
}

/* The map key path lies below ("sweep.space" for "sweep.space.optim.lr"), or NULL. */
static const kiln_cfg_key *cfg_find_map(const kiln_cfg_schema *schema, const char *path)
{
    for (size_t i = 0; i < schema->n_keys; i++) {
        const kiln_cfg_key *k = &schema->keys[i];
        size_t n = strlen(k->path);
        if (k->type == KILN_CFG_MAP && !strncmp(path, k->path, n) && path[n] == '.') return k;
    }
    return NULL;
}

/* Whether path lies under section (the first n bytes of it); n = 0 is the top level. */
static int cfg_under(const char *path, const char *section, size_t n)
{
    return n == 0 || (!strncmp(path, section, n) && path[n] == '.');
}

static int cfg_is_section(const kiln_cfg_schema *schema, const char *path, size_t n)
{
    for (size_t i = 0; i < schema->n_keys; i++)
        if (cfg_under(schema->keys[i].path, path, n)) return 1;
    return 0;
}

static void cfg_append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg_append(char *buf, size_t size, const char *fmt, ...)
{
    size_t used = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (used + 1 < size) vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* The distinct keys and sections directly under the first n bytes of section, as full paths. */
static void cfg_list_children(const kiln_cfg_schema *schema, const char *section, size_t n,
                              char *buf, size_t size)
{
    size_t skip = n ? n + 1 : 0;
    for (size_t i = 0; i < schema->n_keys; i++) {
        const char *p = schema->keys[i].path;
        if (!cfg_under(p, section, n)) continue;
        size_t len = strcspn(p + skip, ".") + skip;
        int repeat = 0;
        for (size_t j = 0; j < i && !repeat; j++) {
            const char *q = schema->keys[j].path;
            repeat = cfg_under(q, section, n) && !strncmp(q, p, len) && (!q[len] || q[len] == '.');
        }
        if (!repeat) cfg_append(buf, size, "%s%.*s", buf[0] ? ", " : "", (int)len, p);
    }
}

/* Edit distance counting a swap of neighbours as one edit, the commonest typo ("modle"). */
static size_t cfg_edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    enum { MAX = 128 };
    size_t rows[3][MAX + 1]; /* rows i-2, i-1 and i of the table, used in rotation */
    if (na > MAX || nb > MAX) return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++) rows[0][j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t *cur = rows[i % 3], *up = rows[(i - 1) % 3], *up2 = rows[(i + 1) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t best = up[j - 1] + (a[i - 1] != b[j - 1]);
            if (up[j] + 1 < best) best = up[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            int swap = i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1];
            if (swap && up2[j - 2] + 1 < best) best = up2[j - 2] + 1;
            cur[j] = best;
        }
    }
    return rows[na % 3][nb];
}

/* " (did you mean 'x'?)" for a near key or section, else the keys where path went astray. */
static void cfg_unknown_hint(const kiln_cfg_schema *schema, const char *path, char *buf,
                             size_t size)
{
    size_t plen = strlen(path), best = SIZE_MAX, best_len = 0;
    const char *best_path = NULL;
    for (size_t i = 0; i < schema->n_keys; i++) {
        const char *k = schema->keys[i].path;
        for (size_t len = strcspn(k, ".");; len += 1 + strcspn(k + len + 1, ".")) {
            size_t d = cfg_edit_distance(path, plen, k, len);
            if (d < best) {
                best = d;
                best_path = k;
                best_len = len;
            }
            if (!k[len]) break;
        }
    }
    size_t near = (plen + 4) / 5; /* edits a typo may hold: one per five characters, up to 3 */
    if (near > 3) near = 3;
    buf[0] = '\0';
    if (best_path && best <= near) {
        snprintf(buf, size, " (did you mean '%.*s'?)", (int)best_len, best_path);
        return;
    }
    size_t n = plen;
    while (n > 0 && (path[n] != '.' || !cfg_is_section(schema, path, n))) n--;
    char list[1024] = "";
    cfg_list_children(schema, path, n, list, sizeof list);
    if (n) snprintf(buf, size, " (known keys under '%.*s': %s)", (int)n, path, list);
    else snprintf(buf, size, " (known top-level keys: %s)", list);
}

/* A node whose path is not a key: a section given a value, or unknown. */
static kiln_status cfg_not_a_key(const cfg_loader *ld, const kiln_cfg_node *node)
{
    char found[96] = "a sequence";
    if (node->kind == KILN_CFG_NODE_SCALAR) snprintf(found, sizeof found, "'%s'", node->items[0]);
    size_t n = strlen(node->path);
    char info[1024] = "";
    if (n && cfg_is_section(ld->schema, node->path, n)) {
        /* a section whose keys are all commented out is empty, not wrong */
        if (node->kind == KILN_CFG_NODE_SCALAR && kiln_config_yaml_is_null(node->items[0]))
            return KILN_OK;
        cfg_list_children(ld->schema, node->path, n, info, sizeof info);
        return cfg_fail(ld, node->line, "'%s' is a section (%s): expected a mapping, found %s",
                        node->path, info, found);
    }
    size_t top = strcspn(node->path, ".");
    if (ld->only_sections && !cfg_is_section(ld->schema, node->path, top)) return KILN_OK;
    cfg_unknown_hint(ld->schema, node->path, info, sizeof info);
    return cfg_fail(ld, node->line, "unknown key '%s'%s", node->path, info);
}

/* ---- values ---- */

/* 0 if text is a whole base-10 integer in [lo, hi]; ERANGE outside it; EINVAL otherwise. */
static int cfg_parse_integer(const char *text, long long lo, long long hi, long long *v)
{
    if (!text[0] || isspace((unsigned char)text[0])) return EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (*end) return EINVAL;
    if (errno == ERANGE || x < lo || x > hi) return ERANGE;
    *v = x;
    return 0;
}

static int cfg_parse_double(const char *text, double *v)
{
    if (!text[0] || isspace((unsigned char)text[0])) return 0;
    char *end;
    double x = strtod(text, &end);
    if (*end || !isfinite(x)) return 0;
    *v = x;
    return 1;
}

static int cfg_parse_bool(const char *text, int *v)
{
    static const char *const words[][2] = {{"false", "true"}, {"no", "yes"}, {"off", "on"},
                                           {"0", "1"}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        for (int b = 0; b < 2; b++)
            if (!strcasecmp(text, words[i][b])) {
                *v = b;
                return 1;
            }
    return 0;
}

static kiln_status cfg_wrong(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                             const char *text, int err)
{
    return cfg_fail(ld, line, "key '%s' expects %s, found '%s'%s", key->path,
                    cfg_type_wants[key->type], text, err == ERANGE ? " (out of range)" : "");
}

static kiln_status cfg_in_range_bad(const kiln_cfg_key *key)
{
    return KILN_ERROR(KILN_ERR_CONFIG, "key '%s' has a malformed range '%s' in its schema",
                      key->path, key->choices);
}

static int cfg_in_choices(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *c = choices;; c++) {
        size_t len = strcspn(c, "|");
        if (len == n && !strncmp(c, s, n)) return 1;
        c += len;
        if (!*c) return 0;
    }
}

static kiln_status cfg_set_string(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                                  const char *text)
{
    size_t n = strlen(text);
    if (n >= KILN_CFG_STR_MAX)
        return cfg_fail(ld, line, "key '%s' expects a string of at most %d bytes, found %zu bytes",
                        key->path, KILN_CFG_STR_MAX - 1, n);
    if (key->choices && !cfg_in_choices(key->choices, text))
        return cfg_fail(ld, line, "key '%s' must be one of %s, found '%s'", key->path,
                        key->choices, text);
    char *field = ld->base + key->offset;
    /* zero the tail so equal configs are equal bytes, whatever was there before */
    memset(field, 0, KILN_CFG_STR_MAX);
    memcpy(field, text, n);
    return KILN_OK;
}

/* A number key's range "[lo,hi]": '[' or '(' and ']' or ')' for closed or open ends, an empty
 * end unbounded ("[1,)": at least 1). *ok = 0 when value lies outside; a malformed range is a
 * schema bug, reported against the key. */
static kiln_status cfg_in_range(const kiln_cfg_key *key, double value, int *ok)
{
    const char *r = key->choices;
    *ok = 1;
    if (!r) return KILN_OK;
    char lo_s[64], hi_s[64];
    size_t n = strlen(r);
    const char *comma = strchr(r, ',');
    if (n < 3 || !comma || (r[0] != '[' && r[0] != '(') || (r[n - 1] != ']' && r[n - 1] != ')') ||
        (size_t)(comma - r - 1) >= sizeof lo_s || (size_t)(r + n - 1 - comma - 1) >= sizeof hi_s)
        return KILN_ERROR(KILN_ERR_CONFIG, "key '%s' has a malformed range '%s' in its schema",
                          key->path, r);
    snprintf(lo_s, sizeof lo_s, "%.*s", (int)(comma - r - 1), r + 1);
    snprintf(hi_s, sizeof hi_s, "%.*s", (int)(r + n - 1 - comma - 1), comma + 1);
    double lo = 0.0, hi = 0.0;
    if (lo_s[0] && !cfg_parse_double(lo_s, &lo)) return cfg_in_range_bad(key);
    if (hi_s[0] && !cfg_parse_double(hi_s, &hi)) return cfg_in_range_bad(key);
    if (lo_s[0]) *ok &= r[0] == '[' ? value >= lo : value > lo;
    if (hi_s[0]) *ok &= r[n - 1] == ']' ? value <= hi : value < hi;
    return KILN_OK;
}

static kiln_status cfg_check_range(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                                   double value, const char *text)
{
    int ok;
    KILN_CHECK(cfg_in_range(key, value, &ok));
    if (ok) return KILN_OK;
    return cfg_fail(ld, line, "key '%s' must be in %s, found %s", key->path, key->choices, text);
}

static kiln_status cfg_set_items(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                                 const char *const *items, int n)
{
    if (key->type != KILN_CFG_INT_LIST)
        return cfg_fail(ld, line, "key '%s' expects %s, found a sequence", key->path,
                        cfg_type_wants[key->type]);
    if (n > KILN_CFG_LIST_MAX)
        return cfg_fail(ld, line, "key '%s' expects at most %d integers, found %d", key->path,
                        KILN_CFG_LIST_MAX, n);
    kiln_cfg_int_list list = {.n = n};
    for (int i = 0; i < n; i++) {
        long long v;
        int err = cfg_parse_integer(items[i], INT_MIN, INT_MAX, &v);
        if (err) return cfg_wrong(ld, key, line, items[i], err);
        KILN_CHECK(cfg_check_range(ld, key, line, (double)v, items[i]));
        list.v[i] = (int)v;
    }
    memcpy(ld->base + key->offset, &list, sizeof list);
    return KILN_OK;
}

static char *cfg_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* "512,512", "[512, 512]", "[]" or "" as text (--set, defaults, a YAML scalar). */
static kiln_status cfg_set_list_text(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                                     const char *text)
{
    char *copy = strdup(text);
    KILN_CHECK_ALLOC(copy);
    char *s = cfg_trim(copy);
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s[len - 1] = '\0';
        s = cfg_trim(s + 1);
    }
    int n = *s ? 1 : 0;
    for (const char *c = s; *s && (c = strchr(c, ',')) != NULL; c++) n++;
    const char **items = calloc((size_t)n + 1, sizeof *items);
    if (!items) {
        free(copy);
        return KILN_ERROR(KILN_ERR_NOMEM, "out of memory parsing the list for '%s'", key->path);
    }
    for (int i = 0; i < n; i++) items[i] = cfg_trim(strsep(&s, ","));
    kiln_status st = cfg_set_items(ld, key, line, items, n);
    free(items);
    free(copy);
    return st;
}

/* Entry `sub` of map key `key` becomes text (replacing an earlier one). Entries are kept
 * sorted by key, so that a map reads back from its YAML in the same order whatever order it
 * was written in. */
static kiln_status cfg_map_put(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                               const char *sub, const char *text)
{
    kiln_cfg_map *map = (kiln_cfg_map *)(ld->base + key->offset);
    if (strlen(sub) >= KILN_CFG_MAP_KEY_MAX || strlen(text) >= KILN_CFG_STR_MAX)
        return cfg_fail(ld, line, "key '%s.%s': entries of '%s' have keys of at most %d bytes and "
                        "values of at most %d", key->path, sub, key->path, KILN_CFG_MAP_KEY_MAX - 1,
                        KILN_CFG_STR_MAX - 1);
    int at = 0;
    while (at < map->n && strcmp(map->items[at].key, sub) < 0) at++;
    int replace = at < map->n && !strcmp(map->items[at].key, sub);
    if (!replace && map->n == KILN_CFG_MAP_MAX)
        return cfg_fail(ld, line, "key '%s' holds at most %d entries; '%s' would be one more",
                        key->path, KILN_CFG_MAP_MAX, sub);
    if (!replace) {
        memmove(&map->items[at + 1], &map->items[at], (size_t)(map->n - at) * sizeof map->items[0]);
        map->n++;
    }
    memset(&map->items[at], 0, sizeof map->items[at]);
    snprintf(map->items[at].key, sizeof map->items[at].key, "%s", sub);
    snprintf(map->items[at].value, sizeof map->items[at].value, "%s", text);
    return KILN_OK;
}

/* A node below a map key: a mapping nests, a scalar or sequence is an entry. */
static kiln_status cfg_map_node(const cfg_loader *ld, const kiln_cfg_key *key,
                                const kiln_cfg_node *node)
{
    if (node->kind == KILN_CFG_NODE_MAPPING) return KILN_OK;
    const char *sub = node->path + strlen(key->path) + 1;
    if (node->kind == KILN_CFG_NODE_SCALAR) return cfg_map_put(ld, key, node->line, sub, node->items[0]);
    char text[KILN_CFG_STR_MAX] = "[";
    for (int i = 0; i < node->n_items; i++)
        cfg_append(text, sizeof text, "%s%s", i ? ", " : "", node->items[i]);
    cfg_append(text, sizeof text, "]");
    return cfg_map_put(ld, key, node->line, sub, text);
}

static kiln_status cfg_set_text(const cfg_loader *ld, const kiln_cfg_key *key, int line,
                                const char *text)
{
    char *field = ld->base + key->offset;
    long long v;
    int err;
    double d;
    switch (key->type) {
    case KILN_CFG_INT:
        if ((err = cfg_parse_integer(text, INT_MIN, INT_MAX, &v))) break;
        KILN_CHECK(cfg_check_range(ld, key, line, (double)v, text));
        *(int *)field = (int)v;
        return KILN_OK;
    case KILN_CFG_INT64:
        if ((err = cfg_parse_integer(text, INT64_MIN, INT64_MAX, &v))) break;
        KILN_CHECK(cfg_check_range(ld, key, line, (double)v, text));
        *(int64_t *)field = v;
        return KILN_OK;
    case KILN_CFG_FLOAT:
        err = EINVAL;
        if (!cfg_parse_double(text, &d)) break;
        KILN_CHECK(cfg_check_range(ld, key, line, d, text));
        *(double *)field = d;
        return KILN_OK;
    case KILN_CFG_BOOL:
        if (cfg_parse_bool(text, (int *)field)) return KILN_OK;
        err = EINVAL;
        break;
    case KILN_CFG_STRING: return cfg_set_string(ld, key, line, text);
    case KILN_CFG_INT_LIST: return cfg_set_list_text(ld, key, line, text);
    case KILN_CFG_MAP:
        if (!text[0] || kiln_config_yaml_is_null(text)) { /* the default: empty */
            memset(field, 0, sizeof(kiln_cfg_map));
            return KILN_OK;
        }
        return cfg_fail(ld, line, "key '%s' expects a mapping of keys to values, found '%s' (write "
                        "%s.KEY=VALUE)", key->path, text, key->path);
    default:
        return KILN_ERROR(KILN_ERR_ARG, "key '%s' has an invalid type %d", key->path,
                          (int)key->type);
    }
    return cfg_wrong(ld, key, line, text, err);
}

/* One node from the YAML walk or a --set override. */
static kiln_status cfg_on_node(void *ctx, const kiln_cfg_node *node)
{
    const cfg_loader *ld = ctx;
    const kiln_cfg_key *key = cfg_find_key(ld->schema, node->path);
    const kiln_cfg_key *map = key ? NULL : cfg_find_map(ld->schema, node->path);
    if (map) return cfg_map_node(ld, map, node);
    if (key && key->type == KILN_CFG_MAP && node->kind == KILN_CFG_NODE_MAPPING) return KILN_OK;
    if (node->kind == KILN_CFG_NODE_MAPPING) {
        if (key)
            return cfg_fail(ld, node->line, "key '%s' expects %s, found a mapping", key->path,
                            cfg_type_wants[key->type]);
        if (!cfg_is_section(ld->schema, node->path, strlen(node->path)))
            return cfg_not_a_key(ld, node);
        return KILN_OK;
    }
    if (!key) return cfg_not_a_key(ld, node);
    if (node->kind == KILN_CFG_NODE_SEQUENCE)
        return cfg_set_items(ld, key, node->line, node->items, node->n_items);
    return cfg_set_text(ld, key, node->line, node->items[0]);
}

/* ---- loading ---- */

static kiln_status cfg_apply_defaults(cfg_loader *ld)
{
    snprintf(ld->origin, sizeof ld->origin, "schema '%s' default", ld->schema->name);
    for (size_t i = 0; i < ld->schema->n_keys; i++) {
        const kiln_cfg_key *key = &ld->schema->keys[i];
        KILN_CHECK(cfg_set_text(ld, key, 0, key->default_value ? key->default_value : ""));
    }
    return KILN_OK;
}

static kiln_status cfg_apply_override(cfg_loader *ld, const char *arg)
{
    snprintf(ld->origin, sizeof ld->origin, "--set %s", arg);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return cfg_fail(ld, 0, "expected key=value (e.g. optim.lr=3e-4)");
    char *path = strndup(arg, (size_t)(eq - arg));
    KILN_CHECK_ALLOC(path);
    const char *value = eq + 1;
    kiln_status st = cfg_on_node(ld, &(kiln_cfg_node){KILN_CFG_NODE_SCALAR, path, 0, &value, 1, 0});
    free(path);
    return st;
}

static size_t cfg_field_size(kiln_cfg_type type)
{
    switch (type) {
    case KILN_CFG_INT64: return sizeof(int64_t);
    case KILN_CFG_FLOAT: return sizeof(double);
    case KILN_CFG_STRING: return sizeof(kiln_cfg_str);
    case KILN_CFG_INT_LIST: return sizeof(kiln_cfg_int_list);
    case KILN_CFG_MAP: return sizeof(kiln_cfg_map);
    default: return sizeof(int);
    }
}

static kiln_status cfg_load(const kiln_cfg_schema *schema, void *out, const char *yaml_text,
                            const char *origin, const char *const *overrides, int n_overrides,
                            int only_sections)
{
    kiln_cfg_schema flat;
    KILN_CHECK(cfg_flatten(schema, &flat));
    /* fill a copy and publish it only on success, so a rejected config leaves *out untouched */
    size_t extent = 0;
    for (size_t i = 0; i < flat.n_keys; i++) {
        size_t end = flat.keys[i].offset + cfg_field_size(flat.keys[i].type);
        if (end > extent) extent = end;
    }
    char *scratch = malloc(extent ? extent : 1);
    if (!scratch) {
        cfg_flat_free(&flat);
        return KILN_ERROR(KILN_ERR_NOMEM, "out of memory loading a '%s' config", schema->name);
    }
    memcpy(scratch, out, extent);
    cfg_loader ld = {.schema = &flat, .base = scratch, .only_sections = only_sections};
    kiln_status st;
    KILN_CHECK_GOTO(st, cfg_apply_defaults(&ld), done);
    if (yaml_text) {
        snprintf(ld.origin, sizeof ld.origin, "%s", origin ? origin : "(config text)");
        KILN_CHECK_GOTO(st, kiln_config_yaml_walk(yaml_text, ld.origin, cfg_on_node, &ld), done);
    }
    for (int i = 0; i < n_overrides; i++)
        KILN_CHECK_GOTO(st, cfg_apply_override(&ld, overrides[i]), done);
    memcpy(out, scratch, extent);
done:
    free(scratch);
    cfg_flat_free(&flat);
    return st;
}

kiln_status kiln_config_load_text(const kiln_cfg_schema *schema, void *out, const char *yaml_text,
                                  const char *origin, const char *const *overrides,
                                  int n_overrides)
{
    return cfg_load(schema, out, yaml_text, origin, overrides, n_overrides, 0);
}

kiln_status kiln_config_load_sections(const kiln_cfg_schema *schema, void *out,
                                      const char *yaml_text, const char *origin)
{
    return cfg_load(schema, out, yaml_text, origin, NULL, 0, 1);
}

kiln_status kiln_config_read_file(const char *path, char **text)
{
    FILE *f = fopen(path, "rb");
    if (!f) return KILN_ERROR(KILN_ERR_CONFIG, "config file '%s': %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t len = getdelim(&buf, &cap, '\0', f); /* the whole file, unless it holds a NUL */
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        return KILN_ERROR(KILN_ERR_CONFIG, "config file '%s': %s", path, strerror(err));
    }
    if (len > 0 && strlen(buf) < (size_t)len) {
        free(buf);
        return KILN_ERROR(KILN_ERR_CONFIG, "config file '%s': expected YAML text, found a NUL byte",
                          path);
    }
    if (len <= 0) { /* an empty file: getdelim reports EOF and may leave buf unset */
        free(buf);
        buf = strdup("");
        KILN_CHECK_ALLOC(buf);
    }
    *text = buf;
    return KILN_OK;
}

kiln_status kiln_config_load(const kiln_cfg_schema *schema, void *out, const char *yaml_path,
                             const char *const *overrides, int n_overrides)
{
    char *text = NULL;
    if (yaml_path) KILN_CHECK(kiln_config_read_file(yaml_path, &text));
    kiln_status st = kiln_config_load_text(schema, out, text, yaml_path, overrides, n_overrides);
    free(text);
    KILN_CHECK(st);
    return KILN_OK;
}

/* ---- reading without a schema ---- */

typedef struct {
    kiln_config_value_fn fn;
    void *ctx;
} cfg_value_walk;

static kiln_status cfg_on_value(void *ctx, const kiln_cfg_node *node)
{
    const cfg_value_walk *w = ctx;
    if (node->kind == KILN_CFG_NODE_MAPPING) return KILN_OK;
    return w->fn(w->ctx, node->path, node->items, node->n_items,
                 node->kind == KILN_CFG_NODE_SEQUENCE, node->quoted);
}

kiln_status kiln_config_walk_values(const char *yaml_text, const char *origin,
                                    kiln_config_value_fn fn, void *ctx)
{
    cfg_value_walk w = {fn, ctx};
    return kiln_config_yaml_walk(yaml_text, origin, cfg_on_value, &w);
}

/* ---- help ---- */

enum { CFG_HELP_COLS = 5 };

static void cfg_help_row(const kiln_cfg_key *k, const char *row[CFG_HELP_COLS])
{
    row[0] = k->path;
    row[1] = cfg_type_names[k->type];
    row[2] = k->default_value && k->default_value[0] ? k->default_value : "\"\"";
    row[3] = k->choices ? k->choices : "";
    row[4] = k->help ? k->help : "";
}

static void cfg_help_line(FILE *f, const int *width, const char *const *row)
{
    fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %s\n", width[0], row[0], width[1], row[1], width[2],
            row[2], width[3], row[3], row[4]);
}

void kiln_config_print_help(const kiln_cfg_schema *whole, FILE *f)
{
    kiln_cfg_schema flat;
    if (cfg_flatten(whole, &flat) != KILN_OK) {
        fprintf(f, "schema '%s' is broken: %s\n", whole->name, kiln_error_message());
        return;
    }
    const kiln_cfg_schema *schema = &flat;
    const char *row[CFG_HELP_COLS] = {"KEY", "TYPE", "DEFAULT", "ALLOWED", "HELP"};
    int width[CFG_HELP_COLS - 1];
    for (int c = 0; c < CFG_HELP_COLS - 1; c++) width[c] = (int)strlen(row[c]);
    fprintf(f, "config keys of '%s' (set them in the YAML file or with --set key=value):\n",
            schema->name);
    for (size_t i = 0; i < schema->n_keys; i++) {
        const char *cols[CFG_HELP_COLS];
        cfg_help_row(&schema->keys[i], cols);
        for (int c = 0; c < CFG_HELP_COLS - 1; c++)
            if ((int)strlen(cols[c]) > width[c]) width[c] = (int)strlen(cols[c]);
    }
    cfg_help_line(f, width, row);
    for (size_t i = 0; i < schema->n_keys; i++) {
        cfg_help_row(&schema->keys[i], row);
        cfg_help_line(f, width, row);
    }
    cfg_flat_free(&flat);
}
