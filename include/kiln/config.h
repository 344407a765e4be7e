/* YAML configs with a schema, dotted overrides and errors that name the key path.
 *
 * A job kind describes its config as a table of keys (dotted path, type, offset into a plain
 * C struct, default, help). Loading = defaults, then the YAML file, then `--set k=v`
 * overrides, in that order. Every key in the file or an override must be in the table:
 * an unknown key, a wrong type, a value outside `choices`, or malformed YAML is an error that
 * names the file (and line) or the override, the key path, what was expected and what was
 * found. The resolved config can be emitted back as YAML (printed by rank 0, stored in
 * checkpoints) and parsed again to the same struct. */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H
#include <stddef.h>
#include <stdio.h>
#include "kiln/status.h"

#define KILN_CFG_STR_MAX 512
#define KILN_CFG_LIST_MAX 16
#define KILN_CFG_MAP_MAX 128     /* entries of a map key (a sweep's search space, a feature spec) */
#define KILN_CFG_MAP_KEY_MAX 128

typedef char kiln_cfg_str[KILN_CFG_STR_MAX];
typedef struct {
    int n;
    int v[KILN_CFG_LIST_MAX];
} kiln_cfg_int_list;

/* A map key's entries: any path below the key (its mappings nest, as config sections do)
 * with its value's text; a sequence value is kept as its flow text "[a, b]". */
typedef struct {
    int n;
    struct {
        char key[KILN_CFG_MAP_KEY_MAX];   /* "optim.lr" below "sweep.space" */
        kiln_cfg_str value;               /* "loguniform(1e-4, 1e-2)" */
    } items[KILN_CFG_MAP_MAX];
} kiln_cfg_map;

typedef enum {
    KILN_CFG_INT,      /* int; YAML integer */
    KILN_CFG_INT64,    /* int64_t */
    KILN_CFG_FLOAT,    /* double; accepts integers too ("1" -> 1.0) */
    KILN_CFG_BOOL,     /* int 0/1; true/false/yes/no/on/off */
    KILN_CFG_STRING,   /* kiln_cfg_str */
    KILN_CFG_INT_LIST, /* kiln_cfg_int_list; YAML flow or block sequence of integers, or "512,512" in --set */
    KILN_CFG_MAP       /* kiln_cfg_map; any key below it, e.g. sweep.space.optim.lr in YAML or --set */
} kiln_cfg_type;

typedef struct kiln_cfg_key {
    const char *path;          /* "optim.lr" */
    kiln_cfg_type type;
    size_t offset;             /* offsetof(struct, field) */
    const char *default_value; /* text, parsed by the same rules as YAML scalars; "" = empty */
    const char *choices;       /* what values are allowed: a string one of "adamw|sgd", a number
                                  (each item of an int list) in a range "[0,1)", "[1,)" ('['
                                  and ']' closed, '(' and ')' open, an empty end unbounded);
                                  NULL for any */
    const char *help;          /* one line, shown by --help-config */
} kiln_cfg_key;

/* A schema is either a section (its own keys, offsets into the section's struct) or a
 * composition: sections placed at offsets of a job's config struct. Each section (backend,
 * placement, registry, model, ...) is declared once, by the layer that owns its struct, and
 * every job kind composes the ones it reads, so no key is declared twice. A part may itself be
 * a composition (a sweep's config holds a whole training config). */
typedef struct kiln_cfg_part {
    const struct kiln_cfg_schema *section;
    size_t offset;             /* offsetof(job config, section struct) */
} kiln_cfg_part;

typedef struct kiln_cfg_schema {
    const char *name;          /* "train" */
    const kiln_cfg_key *keys;  /* a section's own keys (NULL in a composition) */
    size_t n_keys;
    const kiln_cfg_part *parts; /* a composition's sections, in the order they are listed */
    size_t n_parts;
} kiln_cfg_schema;

/* Every key of a schema with its offset in the whole config struct, in order: a section's keys
 * as they are, a composition's part by part (caller frees *keys). KILN_ERR_CONFIG naming both
 * sections when a key is declared twice: a schema bug the tests catch. */
kiln_status kiln_config_keys(const kiln_cfg_schema *schema, kiln_cfg_key **keys, size_t *n);

/* Fill *out from defaults, then yaml_path (may be NULL), then overrides ("a.b=v" strings). */
kiln_status kiln_config_load(const kiln_cfg_schema *schema, void *out, const char *yaml_path,
                             const char *const *overrides, int n_overrides);
/* Same, from YAML text held in memory (e.g. a checkpoint's config attribute); origin names it
 * in errors. */
kiln_status kiln_config_load_text(const kiln_cfg_schema *schema, void *out, const char *yaml_text,
                                  const char *origin, const char *const *overrides,
                                  int n_overrides);
/* Fill *out (a struct of this schema) from the parts of YAML text that belong to its sections,
 * ignoring every other top-level section: how a model's architecture is read out of a
 * checkpoint whose config is a whole job's. Defaults first, as above. */
kiln_status kiln_config_load_sections(const kiln_cfg_schema *schema, void *out,
                                      const char *yaml_text, const char *origin);
/* A config read without a schema (the registry turns a job's config into a version's params):
 * fn gets every scalar (n_items 1) and every sequence of scalars under its dotted path, with
 * whether the scalar was quoted (then it is a string, whatever its text looks like). */
/* A YAML file's text, whole (caller frees); an error names the file. */
kiln_status kiln_config_read_file(const char *path, char **text);
typedef kiln_status (*kiln_config_value_fn)(void *ctx, const char *path,
                                            const char *const *items, int n_items,
                                            int is_sequence, int quoted);
kiln_status kiln_config_walk_values(const char *yaml_text, const char *origin,
                                    kiln_config_value_fn fn, void *ctx);
/* The resolved config as YAML text (nested maps, keys in schema order); caller frees. */
char *kiln_config_to_yaml(const kiln_cfg_schema *schema, const void *cfg);
/* Every key with type, default, choices and help, for `--help-config`. */
void kiln_config_print_help(const kiln_cfg_schema *schema, FILE *f);

#endif
