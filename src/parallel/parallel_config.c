/* The `parallel` config section: how a step-based job splits its ranks (pp x dp) and what data
 * parallelism shards (ZeRO). */
#include <stddef.h>
#include "kiln/parallel.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_parallel_config, field), def, choices, help}

static const kiln_cfg_key parallel_keys[] = {
    K("parallel.pp", KILN_CFG_INT, pp, "1", "[1,)",
      "pipeline stages; the other factor of the world size is data parallel"),
    K("parallel.schedule", KILN_CFG_STRING, schedule, "1f1b", "gpipe|1f1b|interleaved",
      "pipeline schedule: gpipe (all forwards, then all backwards), 1f1b (at most pp - stage "
      "micro-batches held), interleaved (1F1B over parallel.virtual_stages chunks a rank)"),
    K("parallel.virtual_stages", KILN_CFG_INT, virtual_stages, "1", "[1,)",
      "interleaved schedule: model chunks a stage rank holds (the bubble shrinks by this factor)"),
    K("parallel.bucket_mb", KILN_CFG_FLOAT, bucket_mb, "25", "(0,)",
      "data parallel: gradient all-reduce bucket size in MiB"),
    K("parallel.zero", KILN_CFG_INT, zero, "0", "[0,3]",
      "ZeRO stage: 0 = replicate, 1 = shard the optimizer state across data-parallel ranks, "
      "2 = also the gradients, 3 = also the parameters"),
    K("parallel.overlap", KILN_CFG_BOOL, overlap, "true", NULL,
      "data parallel: all-reduce each bucket as soon as backward finishes it"),
};

const kiln_cfg_schema kiln_parallel_section = {
    "parallel", parallel_keys, sizeof parallel_keys / sizeof parallel_keys[0], NULL, 0};
