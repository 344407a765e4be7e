/* Private model internals shared by model.c (the generic part) and each architecture. */
#ifndef KILN_MODEL_IMPL_H
#define KILN_MODEL_IMPL_H
#include "kiln/model.h"

#include <hdf5.h>

typedef struct kiln_model_vtable {
    kiln_status (*forward)(kiln_model *m, const kiln_batch *b, int training, uint64_t step,
                           float *loss, int64_t *n_correct, int64_t *n_targets);
    /* target_scale = loss_scale / scored targets: the gradient of each target's loss */
    kiln_status (*backward)(kiln_model *m, float target_scale);
    void (*free_impl)(kiln_model *m);
    /* The buffer of output `name` (see kiln_model_output) and its width per position, or NULL
     * when there is none; names lists them all (for messages). */
    const float *(*output)(const kiln_model *m, const char *name, int *width);
    void (*output_names)(const kiln_model *m, char *buf, size_t len);
} kiln_model_vtable;

/* A model kind's public description and what builds it (the table is src/nn/model_kinds.c). */
typedef struct kiln_model_kind_impl {
    kiln_model_kind pub;
    /* Lay out the tensors for m->cfg, in_dim and n_out, allocate, initialise from seed. */
    kiln_status (*init)(kiln_model *m, uint64_t seed);
    /* The input width and number of outputs a checkpoint's tensors imply (file open read-only;
     * path names it in errors). */
    kiln_status (*read_widths)(hid_t file, const char *path, const kiln_model_config *cfg,
                               int *in_dim, int *n_out);
} kiln_model_kind_impl;

const kiln_model_kind_impl *kiln_model_kind_impl_of(const kiln_model_kind *kind);

struct kiln_model {
    const kiln_model_vtable *vt;
    const kiln_model_kind_impl *kind;
    const kiln_backend *be;
    kiln_model_config cfg;
    kiln_data_kind data_kind;
    int in_dim, n_out, max_batch;
    /* Flat buffers of n_params, NULL once ZeRO frees them. params: fp32, the master weights
     * (what the optimizer updates and checkpoints hold). param_copy: their copy in the storage
     * type that the ops read, NULL when that is fp32 and the ops read params itself. grads: the
     * storage type. */
    float *params, *param_copy, *grads;
    float **block_params;                  /* (n_blocks) where each block's parameters (as the
                                            * ops read them: param_copy's type) are now */
    float **block_grads;                   /* (n_blocks) and its gradients */
    size_t n_params;
    size_t elem;                           /* bytes of a storage element (param_copy, grads) */
    kiln_tensor_info *tensors;             /* (n_tensors), grown as the layout adds them */
    int n_tensors, cap_tensors;
    kiln_block_info *blocks;               /* (n_blocks) */
    int n_blocks, cap_blocks;
    kiln_status layout_status;             /* a failed growth of the tables above */
    double flops_per_unit;
    uint64_t seed;                         /* init and dropout masks */
    const float *probs;                    /* last forward's probabilities */
    /* the last forward, which backward differentiates */
    const kiln_batch *batch;
    int training;
    uint64_t step;
    int64_t n_targets;                     /* scored targets (the loss is their mean) */
    kiln_block_hooks hooks;                /* all NULL when none are set */
    kiln_status hook_status;               /* first failing hook of this forward/backward */
    void *impl;                            /* architecture-specific state */
    /* device backends only (model_device.c); NULL on the CPU, where the buffers are host memory */
    float *host_params;                    /* (n_params) host mirror: init and checkpoints */
    kiln_batch dev_batch;                  /* the last batch, copied to the device */
    float *dev_x_f32;                      /* bf16 storage: MLP inputs as copied, before the cast */
    const kiln_batch *host_batch;          /* the caller's batch of the last forward */
    float *host_losses, *host_probs;       /* loss and probabilities read back for summaries */
};

/* Layout building: open a block, then add its tensors in order. */
void kiln_model_begin_block(kiln_model *m);
size_t kiln_model_add_tensor(kiln_model *m, const char *name, int ndim, const uint64_t *shape,
                             int decay);
/* After layout: allocate params/grads on the backend. */
kiln_status kiln_model_alloc_buffers(kiln_model *m);
/* Flat parameter offset -> where that parameter as the ops read it (the storage type) and its
 * gradient are now (see the block storage in kiln/model.h). */
float *kiln_model_param(kiln_model *m, size_t offset);
float *kiln_model_grad(kiln_model *m, size_t offset);
/* Buffers on the backend, zero-filled; failing allocation is an error. Activations and their
 * gradients are the storage type; LayerNorm statistics, losses and probabilities are fp32. */
kiln_status kiln_model_alloc_acts(kiln_model *m, float **p, size_t n, const char *what);
kiln_status kiln_model_alloc_f32(kiln_model *m, float **p, size_t n, const char *what);

/* Architectures announce each use of a block (the hooks' contract is in kiln/model.h). */
void kiln_model_block_begin(kiln_model *m, int block, kiln_pass pass);
void kiln_model_block_end(kiln_model *m, int block, kiln_pass pass);
void kiln_model_block_done(kiln_model *m, int block);

kiln_status kiln_mlp_init(kiln_model *m, uint64_t seed);
kiln_status kiln_gpt_init(kiln_model *m, uint64_t seed);
kiln_status kiln_mlp_read_widths(hid_t file, const char *path, const kiln_model_config *cfg,
                                 int *in_dim, int *n_out);
kiln_status kiln_gpt_read_widths(hid_t file, const char *path, const kiln_model_config *cfg,
                                 int *in_dim, int *n_out);
/* Extent d of 2-D float tensor `name` of a checkpoint (an error naming both when absent). */
kiln_status kiln_model_tensor_extent(hid_t file, const char *path, const char *name, int d,
                                     int *out);

/* Mean loss, top-1 hits and scored-target count from a softmax+cross-entropy forward
 * (targets < 0 are not scored). Host buffers; probs is read only when n_correct is wanted. */
void kiln_xent_summary(const float *losses, const float *probs, const int32_t *targets, int N,
                       int V, float *loss, int64_t *n_correct, int64_t *n_targets);

/* model_device.c: the device side of a model (nothing is copied on the CPU backend). */
/* Host mirrors and staging for a device backend, after the flat buffers exist (and, with bf16
 * storage, the fp32 landing place of MLP inputs before their cast). */
kiln_status kiln_model_alloc_staging(kiln_model *m);
void kiln_model_free_staging(kiln_model *m);
/* The batch as the backend's ops read it: b itself on the CPU, else its copy on the device. */
kiln_status kiln_model_stage_batch(kiln_model *m, const kiln_batch *b, const kiln_batch **out);
/* kiln_xent_summary of the last forward's losses and probs (backend buffers, N rows of V)
 * against the targets of the caller's batch. */
kiln_status kiln_model_xent_summary(kiln_model *m, const float *losses, const float *probs,
                                    int N, int V, float *loss, int64_t *n_correct,
                                    int64_t *n_targets);

#endif
