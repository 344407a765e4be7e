/* The `registry` config sections: where the registry is (every job kind that reads or writes
 * it), and what a job registers its result as (the kinds that publish one). Both live in one
 * kiln_registry_config, so a job that publishes places both sections on the same struct. */
#include <stddef.h>
#include "kiln/registry.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_registry_config, field), def, choices, help}

static const kiln_cfg_key registry_keys[] = {
    K("registry.path", KILN_CFG_STRING, path, "", NULL,
      "model registry root (empty: $KILN_REGISTRY, else ./registry)"),
};

const kiln_cfg_schema kiln_registry_section = {"registry", registry_keys, 1, NULL, 0};

static const kiln_cfg_key publish_keys[] = {
    K("registry.name", KILN_CFG_STRING, name, "", NULL,
      "register the result under this name (train: the final and the best-by-eval model; index eval: "
      "the index); empty: do not register"),
    K("registry.alias", KILN_CFG_STRING, alias, "", NULL,
      "point this alias (e.g. staging) at the registered (final) version"),
};

const kiln_cfg_schema kiln_registry_publish_section = {
    "registry publishing", publish_keys, sizeof publish_keys / sizeof publish_keys[0], NULL, 0};
