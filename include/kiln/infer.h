/* Inference jobs: `kiln eval` (loss and accuracy of a model on a dataset split) and `kiln
 * infer` (batch scoring into an HDF5 file, split across ranks, resumable exactly once). Both
 * take any model kiln/model_open.h opens. */
#ifndef KILN_INFER_H
#define KILN_INFER_H
#include <stdint.h>
#include "kiln/backend.h"
#include "kiln/comm.h"
#include "kiln/data.h"
#include "kiln/model.h"
#include "kiln/registry.h"
#include "kiln/job.h"
#include "kiln/model_open.h"
#include "kiln/topo.h"

/* `kiln infer` config (schema: src/infer/infer_config.c; `kiln infer --help-config`). */
typedef struct kiln_infer_config {
    struct {
        kiln_cfg_str dataset;       /* input dataset; "" = x (classifier) or tokens (GPT) */
        int batch;                  /* rows per forward; 0 = 1024 (classifier) or 32 (GPT) */
        int chunk_rows;             /* rows per chunk: the unit of work, progress and HDF5 chunk */
        int top_k;                  /* top classes (next tokens) written per row; 0 = none */
        int probs;                  /* classifier: write every class probability */
        kiln_cfg_str embed;         /* a model output written as embeddings; "" = none */
        kiln_cfg_str pool;          /* GPT embeddings over a sequence: mean | last */
        int threads;                /* 0 = this rank's cores */
        int register_scores;        /* add the output to the model's registry version */
        double progress_interval;
    } infer;
    kiln_backend_config backend;
    kiln_placement_config placement;
    kiln_registry_config registry; /* path only */
} kiln_infer_config;

extern const kiln_cfg_schema kiln_infer_schema;

typedef struct kiln_infer_opts {
    const kiln_infer_config *cfg;   /* loaded */
    const char *config_yaml;        /* stored with the output, for people */
    const char *model;              /* any model argument (kiln/model_open.h) */
    const char *input;              /* HDF5 file with the rows to score */
    const char *output;             /* HDF5 file to write (OUTPUT.partial until complete) */
    kiln_comm *comm;
    const kiln_backend *be;
    kiln_rank_setup place;
} kiln_infer_opts;

/* `kiln infer`: every rank takes its share of the input's chunks and writes them into one
 * preallocated output (kiln/chunked.h): rerunning after a crash or kill does only the missing
 * ones. Input errors (width, model, alias) are found before any output exists. See
 * docs/infer.md. */
kiln_status kiln_infer_run(const kiln_infer_opts *o);

/* `kiln eval` config (src/infer/eval_config.c): the flags of `kiln eval` set these keys. */
typedef struct kiln_eval_config {
    struct {
        kiln_cfg_str model;         /* any model argument (kiln/model_open.h) */
        kiln_cfg_str input;         /* dataset file from `kiln data import` */
        kiln_cfg_str split;         /* "" = the model kind's evaluation split */
        kiln_cfg_str output;        /* JSON result written here; "" = none */
        int batch;                  /* rows per forward per rank */
        int threads;                /* 0 = this rank's cores */
    } eval;
    kiln_backend_config backend;
    kiln_placement_config placement;
    kiln_registry_config registry; /* path only */
} kiln_eval_config;

extern const kiln_cfg_schema kiln_eval_schema;

/* The job-table entries of `kiln infer` and `kiln eval`. */
extern const kiln_job_kind kiln_infer_job;
extern const kiln_job_kind kiln_eval_job;

#endif
