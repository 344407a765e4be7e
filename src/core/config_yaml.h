/* Private interface between the config loader (config.c) and its YAML reader (config_yaml.c).
 *
 * The reader knows YAML, not the schema: it walks a document and reports every mapping,
 * scalar and sequence of scalars under its dotted path; the loader decides what each path may
 * hold. Keeping the schema out of the reader lets `--set` overrides reuse the same callback. */
#ifndef KILN_CONFIG_YAML_H
#define KILN_CONFIG_YAML_H
#include "kiln/config.h"

typedef enum {
    KILN_CFG_NODE_MAPPING,  /* reported before the mapping's own keys */
    KILN_CFG_NODE_SCALAR,   /* items[0] is the text */
    KILN_CFG_NODE_SEQUENCE  /* items[0..n_items) are the texts of a sequence of scalars */
} kiln_cfg_node_kind;

typedef struct {
    kiln_cfg_node_kind kind;
    const char *path;         /* "optim.lr" */
    int line;                 /* 1-based line of the key; 0 where there is no line (--set) */
    const char *const *items;
    int n_items;
    int quoted;               /* a quoted scalar: a string, whatever its text looks like */
} kiln_cfg_node;

typedef kiln_status (*kiln_cfg_node_fn)(void *ctx, const kiln_cfg_node *node);

/* Whether a scalar's text is YAML's null ("", "~", "null"): an empty document or section. */
int kiln_config_yaml_is_null(const char *text);

/* Walk one YAML document (text, NUL-terminated) and call fn for every node under the top-level
 * mapping. origin names the text in errors ("configs/x.yaml"). Stops at fn's first error. */
kiln_status kiln_config_yaml_walk(const char *text, const char *origin, kiln_cfg_node_fn fn,
                                  void *ctx);

#endif
