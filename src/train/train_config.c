/* The schema of `kiln train` configs: every key, its type, default and meaning. This table is
 * the reference documentation too (`kiln train --help-config`). */
#include <stddef.h>
#include "kiln/train.h"

#define K(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_train_config, field), def, choices, help}

static const kiln_cfg_key train_keys[] = {
    K("model.kind", KILN_CFG_STRING, model.kind, "mlp", "mlp|gpt", "architecture"),
    K("model.hidden", KILN_CFG_INT_LIST, model.hidden, "[512, 512]", NULL, "mlp: hidden layer widths"),
    K("model.n_layer", KILN_CFG_INT, model.n_layer, "4", NULL, "gpt: transformer blocks (L)"),
    K("model.n_head", KILN_CFG_INT, model.n_head, "4", NULL, "gpt: attention heads (H)"),
    K("model.n_embd", KILN_CFG_INT, model.n_embd, "256", NULL, "gpt: embedding width (C)"),
    K("model.block_size", KILN_CFG_INT, model.block_size, "128", NULL, "gpt: context length (T)"),
    K("model.dropout", KILN_CFG_FLOAT, model.dropout, "0", NULL, "dropout probability (0 = off)"),
    K("model.recompute", KILN_CFG_BOOL, model.recompute, "false", NULL,
      "gpt: recompute block activations in backward (less memory, more compute)"),
    K("model.init_std", KILN_CFG_FLOAT, model.init_std, "0.02", NULL, "gpt: weight init std"),
    K("data.path", KILN_CFG_STRING, data.path, "", NULL, "dataset HDF5 from `kiln data import`"),
    K("data.train_split", KILN_CFG_STRING, data.train_split, "train", NULL, "group to train on"),
    K("data.eval_split", KILN_CFG_STRING, data.eval_split, "", NULL,
      "group to evaluate on (empty: test for mlp, val for gpt)"),
    K("optim.name", KILN_CFG_STRING, optim.name, "adamw", "adamw|sgd", "optimizer"),
    K("optim.lr", KILN_CFG_FLOAT, optim.lr, "1e-3", NULL, "peak learning rate"),
    K("optim.beta1", KILN_CFG_FLOAT, optim.beta1, "0.9", NULL, "adamw beta1"),
    K("optim.beta2", KILN_CFG_FLOAT, optim.beta2, "0.999", NULL, "adamw beta2"),
    K("optim.eps", KILN_CFG_FLOAT, optim.eps, "1e-8", NULL, "adamw epsilon"),
    K("optim.weight_decay", KILN_CFG_FLOAT, optim.weight_decay, "0", NULL,
      "decoupled weight decay on matrices (not biases or norms)"),
    K("optim.momentum", KILN_CFG_FLOAT, optim.momentum, "0.9", NULL, "sgd momentum"),
    K("optim.grad_clip", KILN_CFG_FLOAT, optim.grad_clip, "1.0", NULL,
      "clip the global gradient norm to this (0 = off)"),
    K("schedule.kind", KILN_CFG_STRING, schedule.kind, "constant", "constant|cosine|step",
      "learning-rate schedule after warmup"),
    K("schedule.warmup_frac", KILN_CFG_FLOAT, schedule.warmup_frac, "0", NULL,
      "linear warmup as a fraction of train.steps"),
    K("schedule.warmup_steps", KILN_CFG_INT, schedule.warmup_steps, "0", NULL,
      "linear warmup in steps (wins over warmup_frac when > 0)"),
    K("schedule.min_lr", KILN_CFG_FLOAT, schedule.min_lr, "0", NULL, "cosine: final learning rate"),
    K("schedule.step_every", KILN_CFG_INT, schedule.step_every, "1000", NULL,
      "step: decay every this many steps"),
    K("schedule.gamma", KILN_CFG_FLOAT, schedule.gamma, "0.1", NULL, "step: decay factor"),
    K("train.steps", KILN_CFG_INT, train.steps, "1000", NULL, "optimizer steps"),
    K("train.batch_size", KILN_CFG_INT, train.batch_size, "128", NULL,
      "global batch (rows or sequences per step)"),
    K("train.micro_batch", KILN_CFG_INT, train.micro_batch, "0", NULL,
      "rows per forward/backward; gradients accumulate over batch_size/micro_batch (0 = no accumulation)"),
    K("train.seed", KILN_CFG_INT64, train.seed, "1234", NULL, "seed for init, shuffling, dropout"),
    K("train.eval_every", KILN_CFG_INT, train.eval_every, "0", NULL, "evaluate every N steps (0 = at the end only)"),
    K("train.eval_batches", KILN_CFG_INT, train.eval_batches, "0", NULL,
      "batches per periodic evaluation (0 = whole split; the final one always uses all)"),
    K("train.log_every", KILN_CFG_INT, train.log_every, "10", NULL, "metrics line every N steps"),
    K("train.ckpt_every", KILN_CFG_INT, train.ckpt_every, "0", NULL, "checkpoint every N steps (0 = at the end only)"),
    K("train.keep", KILN_CFG_INT, train.keep, "3", NULL, "checkpoints to keep"),
    K("train.threads", KILN_CFG_INT, train.threads, "0", NULL, "CPU threads (0 = all available)"),
    K("train.out_dir", KILN_CFG_STRING, train.out_dir, "runs/default", NULL,
      "run directory: metrics.jsonl, summary.json, ckpt/"),
    K("train.progress_interval", KILN_CFG_FLOAT, train.progress_interval, "10", NULL,
      "seconds between progress lines when stderr is not a terminal"),
    K("backend.name", KILN_CFG_STRING, backend.name, "cpu", "cpu|cuda", "compute backend"),
};

const kiln_cfg_schema kiln_train_schema = {"train", train_keys, sizeof train_keys / sizeof train_keys[0]};
