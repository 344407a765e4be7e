/* The `optim` and `schedule` config sections: the optimizer and its learning-rate schedule. */
#include <stddef.h>
#include "kiln/optim.h"

#define O(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_optim_config, field), def, choices, help}

static const kiln_cfg_key optim_keys[] = {
    O("optim.name", KILN_CFG_STRING, name, "adamw", "adamw|sgd", "optimizer"),
    O("optim.lr", KILN_CFG_FLOAT, lr, "1e-3", "[0,)", "peak learning rate"),
    O("optim.beta1", KILN_CFG_FLOAT, beta1, "0.9", "[0,1)", "adamw beta1"),
    O("optim.beta2", KILN_CFG_FLOAT, beta2, "0.999", "[0,1)", "adamw beta2"),
    O("optim.eps", KILN_CFG_FLOAT, eps, "1e-8", "(0,)", "adamw epsilon"),
    O("optim.weight_decay", KILN_CFG_FLOAT, weight_decay, "0", "[0,)",
      "decoupled weight decay on matrices (not biases or norms)"),
    O("optim.momentum", KILN_CFG_FLOAT, momentum, "0.9", "[0,1)", "sgd momentum"),
    O("optim.grad_clip", KILN_CFG_FLOAT, grad_clip, "1.0", "[0,)",
      "clip the global gradient norm to this (0 = off)"),
};

const kiln_cfg_schema kiln_optim_section = {"optim", optim_keys,
                                            sizeof optim_keys / sizeof optim_keys[0], NULL, 0};

#define S(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_schedule_config, field), def, choices, help}

static const kiln_cfg_key schedule_keys[] = {
    S("schedule.kind", KILN_CFG_STRING, kind, "constant", "constant|cosine|step",
      "learning-rate schedule after warmup"),
    S("schedule.warmup_frac", KILN_CFG_FLOAT, warmup_frac, "0", "[0,1]",
      "linear warmup as a fraction of train.steps"),
    S("schedule.warmup_steps", KILN_CFG_INT, warmup_steps, "0", "[0,)",
      "linear warmup in steps (wins over warmup_frac when > 0)"),
    S("schedule.min_lr", KILN_CFG_FLOAT, min_lr, "0", "[0,)", "cosine: final learning rate"),
    S("schedule.step_every", KILN_CFG_INT, step_every, "1000", "[1,)",
      "step: decay every this many steps"),
    S("schedule.gamma", KILN_CFG_FLOAT, gamma, "0.1", "(0,)", "step: decay factor"),
};

const kiln_cfg_schema kiln_schedule_section = {
    "schedule", schedule_keys, sizeof schedule_keys / sizeof schedule_keys[0], NULL, 0};
