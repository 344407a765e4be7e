/* YAML in and out for configs: reading walks libyaml's event stream and reports each node under
 * its dotted path (config_yaml.h); writing emits a resolved config as nested YAML that reads
 * back to the same bytes. */
#include "config_yaml.h"
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    char *path;
    int line;
} seen_path;

typedef struct {
    yaml_parser_t parser;
    const char *origin;
    kiln_cfg_node_fn fn;
    void *ctx;
    char path[1024];
    /* every key path met so far: a repeated path can only come from a repeated key */
    seen_path *seen;
    size_t n_seen, cap_seen;
} walker;

static kiln_status walk_next(walker *w, yaml_event_t *ev)
{
    if (yaml_parser_parse(&w->parser, ev)) return KILN_OK;
    const yaml_parser_t *p = &w->parser;
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) /* no line/column: the bytes are not valid text */
        return KILN_ERROR(KILN_ERR_CONFIG, "%s: malformed YAML: %s at byte %zu", w->origin,
                          problem, p->problem_offset);
    return KILN_ERROR(KILN_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s", w->origin,
                      p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
}

static int event_line(const yaml_event_t *ev) { return (int)ev->start_mark.line + 1; }

static const char *event_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_ALIAS_EVENT: return "an alias (anchors and aliases are not supported)";
    default: return "a scalar";
    }
}

/* Record the path of a new key; a path met before is a duplicate key. */
static kiln_status walk_remember(walker *w, int line)
{
    for (size_t i = 0; i < w->n_seen; i++)
        if (!strcmp(w->seen[i].path, w->path))
            return KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: duplicate key '%s' (first at line %d)",
                              w->origin, line, w->path, w->seen[i].line);
    if (w->n_seen == w->cap_seen) {
        size_t cap = w->cap_seen ? 2 * w->cap_seen : 32;
        seen_path *grown = realloc(w->seen, cap * sizeof *grown);
        KILN_CHECK_ALLOC(grown);
        w->seen = grown;
        w->cap_seen = cap;
    }
    char *copy = strdup(w->path);
    KILN_CHECK_ALLOC(copy);
    w->seen[w->n_seen++] = (seen_path){copy, line};
    return KILN_OK;
}

/* Append a mapping key to the current path; dots would make two spellings of one path. */
static kiln_status walk_push_key(walker *w, const yaml_event_t *key)
{
    int line = event_line(key);
    if (key->type != YAML_SCALAR_EVENT)
        return KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: keys under '%s' must be scalars, found %s",
                          w->origin, line, w->path[0] ? w->path : "(top level)", event_kind(key));
    const char *name = (const char *)key->data.scalar.value;
    if (strlen(name) != key->data.scalar.length)
        return KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: a key under '%s' holds a NUL byte", w->origin,
                          line, w->path[0] ? w->path : "(top level)");
    if (!name[0] || strchr(name, '.'))
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "%s:%d: invalid key '%s' under '%s': keys are non-empty and contain no "
                          "'.' (nest mappings instead)",
                          w->origin, line, name, w->path[0] ? w->path : "(top level)");
    size_t len = strlen(w->path);
    if (len + 1 + strlen(name) >= sizeof w->path)
        return KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: key path '%s.%s' is too long", w->origin, line,
                          w->path, name);
    snprintf(w->path + len, sizeof w->path - len, "%s%s", len ? "." : "", name);
    return walk_remember(w, line);
}

static kiln_status walk_node(walker *w, const kiln_cfg_node *node) { return w->fn(w->ctx, node); }

/* A scalar holding a NUL byte ("ab\0cd" written as an escape): C strings would silently cut it
 * at the NUL, so a registry name "ab\0cd" would register as "ab". Refused instead. */
static kiln_status check_no_nul(const walker *w, const yaml_event_t *ev)
{
    if (strlen((const char *)ev->data.scalar.value) == ev->data.scalar.length) return KILN_OK;
    return KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: key '%s': the value holds a NUL byte, which no "
                      "key accepts", w->origin, event_line(ev), w->path);
}

static kiln_status walk_sequence(walker *w, int line)
{
    char **items = NULL;
    int n = 0;
    kiln_status st = KILN_OK;
    for (;;) {
        yaml_event_t ev;
        KILN_CHECK_GOTO(st, walk_next(w, &ev), done);
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = KILN_ERROR(KILN_ERR_CONFIG,
                            "%s:%d: key '%s': list items must be scalars, found %s", w->origin,
                            event_line(&ev), w->path, event_kind(&ev));
            yaml_event_delete(&ev);
            goto done;
        }
        st = check_no_nul(w, &ev);
        if (st != KILN_OK) {
            yaml_event_delete(&ev);
            goto done;
        }
        char **grown = realloc(items, (size_t)(n + 1) * sizeof *items);
        char *item = strdup((const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if (grown) items = grown;
        if (!grown || !item) {
            free(item);
            st = KILN_ERROR(KILN_ERR_NOMEM, "out of memory reading the list '%s'", w->path);
            goto done;
        }
        items[n++] = item;
    }
    KILN_CHECK_GOTO(st, walk_node(w, &(kiln_cfg_node){KILN_CFG_NODE_SEQUENCE, w->path, line,
                                                      (const char *const *)items, n, 0}), done);
done:
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
    return st;
}

static kiln_status walk_mapping(walker *w);

/* The value of the key just pushed; consumes ev. */
static kiln_status walk_value(walker *w, yaml_event_t *ev, int line)
{
    kiln_status st;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *text = (const char *)ev->data.scalar.value;
        st = check_no_nul(w, ev);
        if (st != KILN_OK) break;
        int quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                     ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        st = walk_node(w, &(kiln_cfg_node){KILN_CFG_NODE_SCALAR, w->path, line, &text, 1, quoted});
        break;
    }
    case YAML_MAPPING_START_EVENT:
        st = walk_node(w, &(kiln_cfg_node){KILN_CFG_NODE_MAPPING, w->path, line, NULL, 0, 0});
        if (st == KILN_OK) st = walk_mapping(w);
        break;
    case YAML_SEQUENCE_START_EVENT:
        st = walk_sequence(w, line);
        break;
    default:
        st = KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: key '%s': found %s", w->origin, line, w->path,
                        event_kind(ev));
    }
    yaml_event_delete(ev);
    return st;
}

/* The keys of a mapping whose start event was just read, up to its end event. */
static kiln_status walk_mapping(walker *w)
{
    size_t len = strlen(w->path);
    for (;;) {
        yaml_event_t key, value;
        KILN_CHECK(walk_next(w, &key));
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return KILN_OK;
        }
        int line = event_line(&key);
        kiln_status st = walk_push_key(w, &key);
        yaml_event_delete(&key);
        KILN_CHECK(st);
        KILN_CHECK(walk_next(w, &value));
        KILN_CHECK(walk_value(w, &value, line));
        w->path[len] = '\0';
    }
}

int kiln_config_yaml_is_null(const char *text)
{
    return !text[0] || !strcmp(text, "~") || !strcmp(text, "null");
}

/* One document whose top level is a mapping; an empty or null document holds no keys. */
static kiln_status walk_document(walker *w)
{
    yaml_event_t ev;
    KILN_CHECK(walk_next(w, &ev));
    kiln_status st = KILN_OK;
    int null_doc = ev.type == YAML_SCALAR_EVENT &&
                   kiln_config_yaml_is_null((const char *)ev.data.scalar.value);
    if (ev.type == YAML_MAPPING_START_EVENT)
        st = walk_mapping(w);
    else if (!null_doc)
        st = KILN_ERROR(KILN_ERR_CONFIG, "%s:%d: expected a mapping of config keys at the top "
                        "level, found %s", w->origin, event_line(&ev), event_kind(&ev));
    yaml_event_delete(&ev);
    KILN_CHECK(st);
    KILN_CHECK(walk_next(w, &ev)); /* document end */
    yaml_event_delete(&ev);
    KILN_CHECK(walk_next(w, &ev));
    int more = ev.type == YAML_DOCUMENT_START_EVENT, line = event_line(&ev);
    yaml_event_delete(&ev);
    if (more)
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "%s:%d: a config holds one YAML document, found a second", w->origin,
                          line);
    return KILN_OK;
}

static kiln_status walk_stream(walker *w)
{
    yaml_event_t ev;
    KILN_CHECK(walk_next(w, &ev)); /* stream start */
    yaml_event_delete(&ev);
    KILN_CHECK(walk_next(w, &ev));
    int empty = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    return empty ? KILN_OK : walk_document(w);
}

kiln_status kiln_config_yaml_walk(const char *text, const char *origin, kiln_cfg_node_fn fn,
                                  void *ctx)
{
    walker w = {.origin = origin, .fn = fn, .ctx = ctx};
    if (!yaml_parser_initialize(&w.parser))
        return KILN_ERROR(KILN_ERR_NOMEM, "out of memory starting the YAML parser for %s", origin);
    yaml_parser_set_input_string(&w.parser, (const unsigned char *)text, strlen(text));
    kiln_status st = walk_stream(&w);
    yaml_parser_delete(&w.parser);
    for (size_t i = 0; i < w.n_seen; i++) free(w.seen[i].path);
    free(w.seen);
    return st;
}

/* ---- writing ---- */

/* %.9g is exact for float32 values and reads well; doubles it cannot hold get all 17 digits. */
static void emit_double(FILE *f, double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
    fputs(buf, f);
}

/* Double-quoted with escapes, so no string can be mistaken for a number, bool or null, and
 * control characters (which YAML does not allow raw) survive. */
static void emit_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A map's entries, nested by their dots as they would be written by hand. Entries are emitted
 * in order, and those sharing a first part are gathered under it. */
static void emit_map(FILE *f, const kiln_cfg_map *map, const char *prefix, size_t plen, int depth,
                     unsigned char *done)
{
    for (int i = 0; i < map->n; i++) {
        const char *key = map->items[i].key;
        if (done[i] || strncmp(key, prefix, plen) != 0) continue;
        const char *name = key + plen, *dot = strchr(name, '.');
        fprintf(f, "\n%*s", 2 * depth, "");
        if (dot) {
            fprintf(f, "%.*s:", (int)(dot - name), name);
            emit_map(f, map, key, (size_t)(dot + 1 - key), depth + 1, done);
        } else {
            fprintf(f, "%s: ", name);
            emit_string(f, map->items[i].value);
            done[i] = 1;
        }
    }
}

static void emit_value(FILE *f, const kiln_cfg_key *key, const void *cfg, int depth)
{
    const char *field = (const char *)cfg + key->offset;
    switch (key->type) {
    case KILN_CFG_INT: fprintf(f, "%d", *(const int *)field); break;
    case KILN_CFG_INT64: fprintf(f, "%" PRId64, *(const int64_t *)field); break;
    case KILN_CFG_FLOAT: emit_double(f, *(const double *)field); break;
    case KILN_CFG_BOOL: fputs(*(const int *)field ? "true" : "false", f); break;
    case KILN_CFG_STRING: emit_string(f, field); break;
    case KILN_CFG_INT_LIST: {
        const kiln_cfg_int_list *list = (const kiln_cfg_int_list *)field;
        fputc('[', f);
        for (int i = 0; i < list->n; i++) fprintf(f, "%s%d", i ? ", " : "", list->v[i]);
        fputc(']', f);
        break;
    }
    case KILN_CFG_MAP: {
        const kiln_cfg_map *map = (const kiln_cfg_map *)field;
        unsigned char done[KILN_CFG_MAP_MAX] = {0};
        if (map->n == 0) fputs("{}", f);
        else emit_map(f, map, "", 0, depth + 1, done);
        break;
    }
    }
}

/* Every key whose path starts with the first plen bytes of prefix, in schema order; a section
 * is emitted whole where its first key appears, so a schema that interleaves sections still
 * yields each mapping once. */
static void emit_section(FILE *f, const kiln_cfg_schema *schema, const void *cfg,
                         const char *prefix, size_t plen, int depth, unsigned char *done)
{
    for (size_t i = 0; i < schema->n_keys; i++) {
        const kiln_cfg_key *key = &schema->keys[i];
        if (done[i] || strncmp(key->path, prefix, plen) != 0) continue;
        const char *name = key->path + plen, *dot = strchr(name, '.');
        fprintf(f, "%*s", 2 * depth, "");
        if (dot) {
            fprintf(f, "%.*s:\n", (int)(dot - name), name);
            emit_section(f, schema, cfg, key->path, (size_t)(dot + 1 - key->path), depth + 1, done);
        } else {
            fprintf(f, "%s:%s", name, key->type == KILN_CFG_MAP ? "" : " ");
            if (key->type == KILN_CFG_MAP && ((const kiln_cfg_map *)((const char *)cfg + key->offset))->n == 0)
                fputc(' ', f);
            emit_value(f, key, cfg, depth);
            fputc('\n', f);
            done[i] = 1;
        }
    }
}

char *kiln_config_to_yaml(const kiln_cfg_schema *whole, const void *cfg)
{
    char *text = NULL;
    size_t len = 0;
    kiln_cfg_key *keys;
    size_t n;
    if (kiln_config_keys(whole, &keys, &n) != KILN_OK) return NULL;
    kiln_cfg_schema schema = {whole->name, keys, n, NULL, 0};
    unsigned char *done = calloc(n ? n : 1, 1);
    FILE *f = done ? open_memstream(&text, &len) : NULL;
    if (!f) {
        free(done);
        free(keys);
        return NULL;
    }
    emit_section(f, &schema, cfg, "", 0, 0, done);
    free(done);
    free(keys);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
