/* The `model` config section, declared once here and composed into every job kind that builds
 * a model (train today, sweep trials next). Checkpoints store it with the rest of the job's
 * config; kiln_model_open reads it back alone (kiln_config_load_sections). */
#include <stddef.h>
#include "kiln/model.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_model_config, field), def, choices, help}

static const kiln_cfg_key model_keys[] = {
    K("model.kind", KILN_CFG_STRING, kind, "mlp", KILN_MODEL_KIND_CHOICES, "architecture"),
    K("model.hidden", KILN_CFG_INT_LIST, hidden, "[512, 512]", "[1,)", "mlp: hidden layer widths"),
    K("model.n_layer", KILN_CFG_INT, n_layer, "4", "[1,)", "gpt: transformer blocks (L)"),
    K("model.n_head", KILN_CFG_INT, n_head, "4", "[1,)", "gpt: attention heads (H)"),
    K("model.n_embd", KILN_CFG_INT, n_embd, "256", "[1,)", "gpt: embedding width (C)"),
    K("model.block_size", KILN_CFG_INT, block_size, "128", "[1,)", "gpt: context length (T)"),
    K("model.dropout", KILN_CFG_FLOAT, dropout, "0", "[0,1)", "dropout probability (0 = off)"),
    K("model.recompute", KILN_CFG_BOOL, recompute, "false", NULL,
      "gpt: recompute block activations in backward (less memory, more compute)"),
    K("model.init_std", KILN_CFG_FLOAT, init_std, "0.02", "(0,)", "gpt: weight init std"),
};

const kiln_cfg_schema kiln_model_section = {"model", model_keys,
                                            sizeof model_keys / sizeof model_keys[0], NULL, 0};
