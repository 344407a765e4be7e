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
 * then its parameters, for forwards of up to max_batch rows. cfg (may be NULL) receives the
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

#endif
