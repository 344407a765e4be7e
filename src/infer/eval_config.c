/* The schema of `kiln eval` configs: the `eval` section declared here (its flags --model,
 * --input, --split, --output, --batch and --threads set these keys), composed with the
 * backend, placement and registry sections. */
#include <stddef.h>
#include "kiln/infer.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_eval_config, field) - offsetof(kiln_eval_config, eval), def, \
     choices, help}

static const kiln_cfg_key eval_keys[] = {
    K("eval.model", KILN_CFG_STRING, eval.model, "", NULL,
      "the model: a checkpoint, a run directory, or registry:NAME@ALIAS / registry:NAME/VERSION"),
    K("eval.input", KILN_CFG_STRING, eval.input, "", NULL, "dataset file from `kiln data import`"),
    K("eval.split", KILN_CFG_STRING, eval.split, "", NULL,
      "split to evaluate on (empty: test for classifiers, val for the GPT)"),
    K("eval.output", KILN_CFG_STRING, eval.output, "", NULL,
      "write the result as JSON to this file (empty: print only)"),
    K("eval.batch", KILN_CFG_INT, eval.batch, "256", "[1,)", "rows per forward per rank"),
    K("eval.threads", KILN_CFG_INT, eval.threads, "0", "[0,)", "CPU threads per rank (0 = its cores)"),
};

static const kiln_cfg_schema eval_section = {"eval", eval_keys,
                                             sizeof eval_keys / sizeof eval_keys[0], NULL, 0};

#define PART(section, field) {&section, offsetof(kiln_eval_config, field)}
static const kiln_cfg_part eval_parts[] = {
    PART(eval_section, eval), PART(kiln_backend_section, backend),
    PART(kiln_placement_section, placement), PART(kiln_registry_section, registry),
};

const kiln_cfg_schema kiln_eval_schema = {"eval", NULL, 0, eval_parts,
                                          sizeof eval_parts / sizeof eval_parts[0]};
