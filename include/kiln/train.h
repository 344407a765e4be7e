/* `kiln train`: the training job. Its config (schema in src/train/train_config.c) and the
 * entry point that the CLI calls. */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H
#include <stdint.h>
#include "kiln/comm.h"
#include "kiln/config.h"
#include "kiln/model.h"
#include "kiln/optim.h"
#include "kiln/status.h"

typedef struct kiln_train_config {
    kiln_model_config model;
    struct {
        kiln_cfg_str path;          /* HDF5 file from `kiln data import` */
        kiln_cfg_str train_split;   /* "train" */
        kiln_cfg_str eval_split;    /* "" = test (classification) or val (text) */
    } data;
    kiln_optim_config optim;
    kiln_schedule_config schedule;
    struct {
        int steps;                  /* optimizer steps */
        int batch_size;             /* global rows (sequences) per step */
        int micro_batch;            /* rows per forward/backward; 0 = batch_size */
        int64_t seed;
        int eval_every;             /* 0 = only at the end */
        int eval_batches;           /* 0 = the whole eval split */
        int log_every;
        int ckpt_every;             /* 0 = only at the end */
        int keep;                   /* checkpoints kept */
        int threads;                /* OpenMP/BLAS threads; 0 = all cores of this rank */
        kiln_cfg_str out_dir;       /* metrics.jsonl, ckpt/, summary.json */
        kiln_cfg_str init_from;     /* warm start: model parameters only, from a checkpoint path
                                       or registry URI; "" = random init */
        double progress_interval;   /* seconds between progress lines when not on a terminal */
        kiln_cfg_str precision;     /* "fp32" | "bf16" (bf16 storage, fp32 master; cuda only) */
    } train;
    struct {
        kiln_cfg_str name;          /* "cpu" | "cuda" */
    } backend;
    struct {
        kiln_cfg_str path;          /* registry root; "" = $KILN_REGISTRY, else ./registry */
        kiln_cfg_str name;          /* register the final and best-by-eval models; "" = don't */
        kiln_cfg_str alias;         /* alias moved to the final version; "" = none */
    } registry;
    struct {
        int bind;                   /* bind each rank to its share of the node's cores */
        int cores_per_rank;         /* 0 = the node's cores split evenly among its ranks */
    } placement;
    struct {
        int pp;                     /* pipeline stages (1 until pipeline parallelism lands) */
        double bucket_mb;           /* data-parallel all-reduce bucket size */
        int overlap;                /* start each bucket's all-reduce during backward */
        int zero;                   /* ZeRO stage: 0, or 1 (optimizer state sharded) */
    } parallel;
} kiln_train_config;

extern const kiln_cfg_schema kiln_train_schema;

typedef struct kiln_train_opts {
    const char *config_path;
    const char *const *overrides;
    int n_overrides;
    const char *resume;             /* "auto" (default), "never", or a checkpoint path */
    kiln_comm *comm;                /* the ranks of this job */
} kiln_train_opts;

/* Run training to completion (or resume it). */
kiln_status kiln_train_run(const kiln_train_opts *opts);

#endif
