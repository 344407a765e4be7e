/* Inference jobs: a model rebuilt from a checkpoint or registry URI, `kiln eval` (loss and
 * accuracy of a model on a dataset split) and `kiln infer` (batch scoring into an HDF5 file,
 * split across ranks, resumable exactly once). */
#ifndef KILN_INFER_H
#define KILN_INFER_H
#include <stdint.h>
#include "kiln/backend.h"
#include "kiln/comm.h"
#include "kiln/data.h"
#include "kiln/model.h"
#include "kiln/registry.h"
#include "kiln/train.h"

/* Where a model came from. */
typedef struct kiln_model_source {
    char path[4096];            /* the checkpoint file */
    char id[4200];              /* "registry:NAME/VERSION" when from the registry, else path */
    kiln_registry_ref ref;      /* ref.version = 0 for a plain path */
    char sha256[65];            /* of the checkpoint file */
} kiln_model_source;

/* Rebuild the model a checkpoint (path or registry URI, resolved against registry root) holds:
 * the architecture from its config attribute, the input width and outputs from its tensors,
 * then its parameters, for forwards of up to max_batch rows (<= 0: 1024 rows for the MLP, 32
 * sequences for the GPT). cfg (may be NULL) receives the
 * checkpoint's config. Errors name the argument and what is wrong with it. */
kiln_status kiln_model_open(const char *root, const char *path_or_uri, const kiln_backend *be,
                            int max_batch, kiln_model **model, kiln_train_config *cfg,
                            kiln_model_source *src);

typedef struct kiln_eval_result {
    double loss, accuracy;      /* mean loss per target; top-1 accuracy */
    int64_t targets;
} kiln_eval_result;

/* Evaluate over a rank-sliced, unshuffled loader's epoch from its first row (max_batches > 0
 * stops early), summed over the data-parallel ranks. */
kiln_status kiln_eval_loop(kiln_model *m, kiln_loader *l, kiln_comm *c, uint64_t step,
                           int max_batches, kiln_eval_result *out);

typedef struct kiln_eval_opts {
    const char *model;          /* checkpoint path or registry URI */
    const char *input;          /* dataset file from `kiln data import` */
    const char *split;          /* NULL/"": test (classifier) or val (GPT) */
    const char *output;         /* JSON written here when non-NULL */
    const char *registry;       /* registry root; NULL = $KILN_REGISTRY, else ./registry */
    const char *backend;        /* "cpu" (NULL) or "cuda" */
    int batch;                  /* rows per forward per rank */
    int threads;                /* 0 = this rank's cores */
    kiln_comm *comm;
} kiln_eval_opts;

/* `kiln eval`: prints one line and (rank 0) writes {"model", "version", "input", "split",
 * "loss", "accuracy", "targets", ...} to output. */
kiln_status kiln_eval_run(const kiln_eval_opts *o);

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
    struct {
        kiln_cfg_str name;          /* "cpu" | "cuda" */
    } backend;
    struct {
        int bind;
        int cores_per_rank;
    } placement;
    struct {
        kiln_cfg_str path;          /* registry root; "" = $KILN_REGISTRY, else ./registry */
    } registry;
} kiln_infer_config;

extern const kiln_cfg_schema kiln_infer_schema;

typedef struct kiln_infer_opts {
    const char *config_path;        /* NULL: defaults and overrides only */
    const char *const *overrides;
    int n_overrides;
    const char *model;              /* checkpoint path or registry URI */
    const char *input;              /* HDF5 file with the rows to score */
    const char *output;             /* HDF5 file to write (OUTPUT.partial until complete) */
    kiln_comm *comm;
} kiln_infer_opts;

/* `kiln infer`: every rank takes its share of the input's chunks and writes them into one
 * preallocated output with collective parallel-HDF5 writes; which chunks are done is durable
 * in the output, so rerunning after a crash or kill does only the missing ones. Input errors
 * (width, model, alias) are found before any output exists. See docs/infer.md. */
kiln_status kiln_infer_run(const kiln_infer_opts *o);

#endif
