/* The `data` config section: which dataset file a step-based job reads and which of its
 * splits it trains and evaluates on. */
#include <stddef.h>
#include "kiln/data.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_data_config, field), def, choices, help}

static const kiln_cfg_key data_keys[] = {
    K("data.path", KILN_CFG_STRING, path, "", NULL, "dataset HDF5 from `kiln data import`"),
    K("data.train_split", KILN_CFG_STRING, train_split, "train", NULL, "group to train on"),
    K("data.eval_split", KILN_CFG_STRING, eval_split, "", NULL,
      "group to evaluate on (empty: test for mlp, val for gpt)"),
};

const kiln_cfg_schema kiln_data_section = {"data", data_keys,
                                           sizeof data_keys / sizeof data_keys[0], NULL, 0};
