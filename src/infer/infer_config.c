/* The schema of `kiln infer` configs: the `infer` section declared here, composed with the
 * backend, placement and registry sections (also what `kiln infer --help-config` prints). */
#include <stddef.h>
#include "kiln/infer.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_infer_config, field) - offsetof(kiln_infer_config, infer), def, \
     choices, help}

static const kiln_cfg_key infer_keys[] = {
    K("infer.dataset", KILN_CFG_STRING, infer.dataset, "", NULL,
      "input dataset: [N,D] uint8 (scaled by 1/255 as in training) or float32 for a classifier, "
      "[N,W] integer tokens (2 <= W <= block_size) for the GPT; empty: x or tokens"),
    K("infer.batch", KILN_CFG_INT, infer.batch, "0", "[0,)",
      "rows per forward pass, each on one thread (0 = a classifier 256 on the CPU, 1024 on a GPU; the GPT 32)"),
    K("infer.chunk_rows", KILN_CFG_INT, infer.chunk_rows, "16384", "[1,)",
      "rows per chunk: the unit ranks share, progress is recorded in, and HDF5 chunks hold"),
    K("infer.top_k", KILN_CFG_INT, infer.top_k, "5", "[0,)",
      "classes (classifier) or next tokens (GPT) written per row with their probabilities; 0 = none"),
    K("infer.probs", KILN_CFG_BOOL, infer.probs, "true", NULL,
      "classifier: write every class probability (dataset probs)"),
    K("infer.embed", KILN_CFG_STRING, infer.embed, "", NULL,
      "write this model output as embeddings (MLP: fc<i>, gelu<i>; GPT: embed, h<l>, lnf); empty = none"),
    K("infer.pool", KILN_CFG_STRING, infer.pool, "mean", "mean|last",
      "GPT embeddings: mean over the sequence's positions, or its last position"),
    K("infer.threads", KILN_CFG_INT, infer.threads, "0", "[0,)", "CPU threads per rank (0 = its cores)"),
    K("infer.register", KILN_CFG_BOOL, infer.register_scores, "false", NULL,
      "add the finished output to the model's registry version as a batch_scores artifact"),
    K("infer.progress_interval", KILN_CFG_FLOAT, infer.progress_interval, "10", "[0,)",
      "seconds between progress lines when stderr is not a terminal"),
};

static const kiln_cfg_schema infer_section = {"infer", infer_keys,
                                              sizeof infer_keys / sizeof infer_keys[0], NULL, 0};

#define PART(section, field) {&section, offsetof(kiln_infer_config, field)}
static const kiln_cfg_part infer_parts[] = {
    PART(infer_section, infer), PART(kiln_backend_section, backend),
    PART(kiln_placement_section, placement), PART(kiln_registry_section, registry),
};

const kiln_cfg_schema kiln_infer_schema = {"infer", NULL, 0, infer_parts,
                                           sizeof infer_parts / sizeof infer_parts[0]};
