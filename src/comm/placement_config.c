/* The `placement` config section: how a job's ranks share the cores of their node. */
#include <stddef.h>
#include "kiln/topo.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_placement_config, field), def, choices, help}

static const kiln_cfg_key placement_keys[] = {
    K("placement.bind", KILN_CFG_BOOL, bind, "true", NULL,
      "bind each rank to its share of the node's cores (hwloc; see `kiln topo`)"),
    K("placement.cores_per_rank", KILN_CFG_INT, cores_per_rank, "0", "[0,)",
      "cores (and threads) per rank; 0 = Slurm's --cpus-per-task in a job that set it, else the "
      "node's cores split evenly among its ranks"),
};

const kiln_cfg_schema kiln_placement_section = {
    "placement", placement_keys, sizeof placement_keys / sizeof placement_keys[0], NULL, 0};
