/* Models as jobs use them: rebuilt from a checkpoint, a run directory or a registry URI, and
 * evaluated on a dataset split. Every job kind that takes a model (infer, eval, sweep trials,
 * index builds over embeddings) goes through these, so none of them reads checkpoints or
 * compares model kinds itself. */
#ifndef KILN_MODEL_OPEN_H
#define KILN_MODEL_OPEN_H
#include <limits.h>
#include <stdint.h>
#include "kiln/backend.h"
#include "kiln/comm.h"
#include "kiln/data.h"
#include "kiln/model.h"
#include "kiln/registry.h"

/* Where a model came from. */
typedef struct kiln_model_source {
    char path[PATH_MAX];        /* the checkpoint file */
    char id[PATH_MAX + 128];    /* "registry:NAME/VERSION" when from the registry, else path */
    kiln_registry_ref ref;      /* ref.version = 0 for a path */
    char sha256[65];            /* of the checkpoint file */
} kiln_model_source;

/* The checkpoint file a model argument names: a registry URI (resolved against root), a
 * checkpoint file, a `latest` pointer, a checkpoint directory (DIR/latest) or a run directory
 * (DIR/ckpt/latest); a pointer resolves to the newest valid checkpoint it leads to. ref (may
 * be NULL) receives the registry version, 0 for anything else. Errors name the argument. */
kiln_status kiln_model_locate(const char *root, const char *arg, char *path, size_t len,
                              kiln_registry_ref *ref);

/* Rebuild the model a checkpoint holds (any argument kiln_model_locate takes): the
 * architecture from the model section of its config, the input width and outputs from its
 * tensors, then its parameters, for forwards of up to max_batch rows (<= 0: the model kind's
 * default for the backend). cfg (may be NULL) receives the model section. Errors name the
 * argument and what is wrong with it. */
kiln_status kiln_model_open(const char *root, const char *arg, const kiln_backend *be,
                            int max_batch, kiln_model **model, kiln_model_config *cfg,
                            kiln_model_source *src);

typedef struct kiln_eval_result {
    double loss, accuracy;      /* mean loss per target; top-1 accuracy */
    int64_t targets;
} kiln_eval_result;

/* Evaluate over a rank-sliced, unshuffled loader's epoch from its first row (max_batches > 0
 * stops early), summed over the data-parallel ranks. */
kiln_status kiln_eval_loop(kiln_model *m, kiln_loader *l, kiln_comm *c, uint64_t step,
                           int max_batches, kiln_eval_result *out);

#endif
