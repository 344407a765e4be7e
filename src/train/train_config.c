/* The schema of `kiln train` configs: the `train` section declared here, composed with the
 * sections the layers below declare (model, data, optim, schedule, backend, registry,
 * placement, parallel). The composition is the reference documentation too (`kiln train
 * --help-config`), in this order. */
#include <stddef.h>
#include "kiln/train.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_train_config, field) - offsetof(kiln_train_config, train), def, \
     choices, help}

static const kiln_cfg_key train_keys[] = {
    K("train.steps", KILN_CFG_INT, train.steps, "1000", "[1,)", "optimizer steps"),
    K("train.batch_size", KILN_CFG_INT, train.batch_size, "128", "[1,)",
      "global batch (rows or sequences per step)"),
    K("train.micro_batch", KILN_CFG_INT, train.micro_batch, "0", "[0,)",
      "rows per forward/backward; gradients accumulate over batch_size/micro_batch (0 = no accumulation)"),
    K("train.seed", KILN_CFG_INT64, train.seed, "1234", "[0,)", "seed for init, shuffling, dropout"),
    K("train.eval_every", KILN_CFG_INT, train.eval_every, "0", "[0,)", "evaluate every N steps (0 = at the end only)"),
    K("train.eval_batches", KILN_CFG_INT, train.eval_batches, "0", "[0,)",
      "batches per periodic evaluation (0 = whole split; the final one always uses all)"),
    K("train.log_every", KILN_CFG_INT, train.log_every, "10", "[0,)", "metrics line every N steps"),
    K("train.ckpt_every", KILN_CFG_INT, train.ckpt_every, "0", "[0,)", "checkpoint every N steps (0 = at the end only)"),
    K("train.keep", KILN_CFG_INT, train.keep, "3", "[0,)", "checkpoints to keep"),
    K("train.threads", KILN_CFG_INT, train.threads, "0", "[0,)", "CPU threads (0 = all available)"),
    K("train.out_dir", KILN_CFG_STRING, train.out_dir, "runs/default", NULL,
      "run directory: metrics.jsonl, summary.json, ckpt/; %j, %x, %A, %a name it after the Slurm "
      "job (id, name, array job, array task; \"local\" outside Slurm)"),
    K("train.init_from", KILN_CFG_STRING, train.init_from, "", NULL,
      "warm start: load only the model parameters from this checkpoint or registry:NAME@ALIAS "
      "(shapes must match) and train from step 0"),
    K("train.progress_interval", KILN_CFG_FLOAT, train.progress_interval, "10", "[0,)",
      "seconds between progress lines when stderr is not a terminal"),
    K("train.precision", KILN_CFG_STRING, train.precision, "fp32", "fp32|bf16",
      "storage of parameters, gradients and activations: fp32, or bf16 (backend cuda; fp32 "
      "master weights, AdamW state, accumulation, statistics and losses)"),
};

static const kiln_cfg_schema train_section = {"train", train_keys,
                                              sizeof train_keys / sizeof train_keys[0], NULL, 0};

#define PART(section, field) {&section, offsetof(kiln_train_config, field)}
static const kiln_cfg_part train_parts[] = {
    PART(kiln_model_section, model),         PART(kiln_data_section, data),
    PART(kiln_optim_section, optim),         PART(kiln_schedule_section, schedule),
    PART(train_section, train),              PART(kiln_backend_section, backend),
    PART(kiln_registry_section, registry),   PART(kiln_registry_publish_section, registry),
    PART(kiln_placement_section, placement), PART(kiln_parallel_section, parallel),
};

const kiln_cfg_schema kiln_train_schema = {"train", NULL, 0, train_parts,
                                           sizeof train_parts / sizeof train_parts[0]};
