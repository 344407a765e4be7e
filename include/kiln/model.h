/* Models: an MLP classifier and a GPT-2-style decoder, over flat buffers.
 *
 * Every buffer lives where the backend computes (device memory on a GPU); batches come from
 * the host and are copied over by forward.
 *
 * A model owns one contiguous buffer for its parameters and one for their gradients; layers
 * hold views (offsets) into them. Tensors are listed in order with their names and shapes
 * (what checkpoints store) and grouped into blocks (MLP: one per linear layer; GPT:
 * embedding, each transformer block, final LayerNorm): the unit that recomputation, ZeRO-3
 * gathers and pipeline stages work on. */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "kiln/backend.h"
#include "kiln/config.h"
#include "kiln/data.h"
#include "kiln/status.h"

typedef struct kiln_model_config {
    kiln_cfg_str kind;          /* "mlp" | "gpt" */
    kiln_cfg_int_list hidden;   /* mlp: hidden layer widths */
    int n_layer, n_head, n_embd, block_size; /* gpt: L, H, C, T */
    double dropout;             /* gpt residual/embedding dropout; mlp after each GELU */
    int recompute;              /* gpt: recompute each block's activations in backward */
    double init_std;            /* gpt weight init (GPT-2: 0.02) */
} kiln_model_config;

/* The `model` config section (src/nn/model_config.c); model.kind is one of the model kinds. */
#define KILN_MODEL_KIND_CHOICES "mlp|gpt"
extern const kiln_cfg_schema kiln_model_section;

typedef struct kiln_tensor_info {
    char name[64];              /* "h0.attn.qkv.weight" */
    size_t offset;              /* into the flat parameter buffer, in floats */
    size_t numel;
    int ndim;
    uint64_t shape[4];
    int decay;                  /* AdamW weight decay applies (matrices, not biases/norms) */
    int block;                  /* index of the block it belongs to */
} kiln_tensor_info;

typedef struct kiln_block_info {
    size_t offset, numel;       /* parameter range of the block */
    int reused;                 /* read again after the last block (the GPT's LM head reads the
                                 * tied embedding): backward accumulates into its gradients from
                                 * its start, not only when it reaches the block */
} kiln_block_info;

/* What a model kind is, for the jobs that use a model without knowing which one it is: they
 * look at these fields instead of comparing model.kind (src/nn/model_kinds.c holds the table;
 * docs/develop.md says how to add a kind). */
typedef struct kiln_model_kind {
    const char *name;           /* the value of model.kind: "mlp" */
    const char *task;           /* what it predicts: "classify" or "next-token" */
    kiln_data_kind input;       /* rows of features (CLASSIFY) or token windows (LM) */
    const char *eval_split;     /* the split evaluation reads by default: "test", "val" */
    const char *infer_dataset;  /* the dataset `kiln infer` scores by default: "x", "tokens" */
    int batch_cpu, batch_gpu;   /* rows per inference forward when the caller leaves it */
} kiln_model_kind;

/* The kind named `name`, or KILN_ERR_CONFIG naming `key` and listing the kinds. */
kiln_status kiln_model_kind_get(const char *key, const char *name, const kiln_model_kind **out);

typedef struct kiln_model kiln_model;

/* in_dim: input width (MLP; ignored by GPT); n_out: classes (MLP) or vocabulary (GPT);
 * max_batch: rows per forward (activations are sized for it). */
kiln_status kiln_model_create(const kiln_model_config *cfg, int in_dim, int n_out,
                              int max_batch, const kiln_backend *be, uint64_t seed,
                              kiln_model **out);
void kiln_model_free(kiln_model *m);
/* A second model of the same architecture and size with a copy of m's parameters (its own
 * activations and gradients): inference runs one per thread. */
kiln_status kiln_model_clone(kiln_model *m, kiln_model **out);

const kiln_model_kind *kiln_model_kind_of(const kiln_model *m);
kiln_data_kind kiln_model_data_kind(const kiln_model *m);
/* Input width (MLP) or context length T (GPT); classes (MLP) or vocabulary (GPT). */
int kiln_model_in_dim(const kiln_model *m);
int kiln_model_n_out(const kiln_model *m);
/* Rows (MLP) or sequences (GPT) one forward can take. */
int kiln_model_max_batch(const kiln_model *m);
size_t kiln_model_num_params(const kiln_model *m);
/* The flat buffers (n_params elements each; NULL once ZeRO freed them, see below). The
 * parameters are fp32: the master weights, which the optimizer updates and checkpoints hold.
 * With train.precision=bf16 the ops read a bf16 copy of them instead (kiln_model_param_copy_at). */
float *kiln_model_params(kiln_model *m);
/* The gradients, in the backend's storage type (float, or bf16 with train.precision=bf16):
 * buffers for backend ops and collectives. A view from element offset on is
 * kiln_model_grads_at, never pointer arithmetic on a float *. */
float *kiln_model_grads(kiln_model *m);
float *kiln_model_grads_at(kiln_model *m, size_t offset);
/* The storage-type copy of the parameters from offset on, which an optimizer step writes with
 * the fp32 ones; NULL with fp32 storage, where the ops read kiln_model_params itself. */
float *kiln_model_param_copy_at(kiln_model *m, size_t offset);
/* After the fp32 parameters changed other than through an optimizer step (a ZeRO all-gather):
 * queues the refresh of the copy the ops read. Nothing to do with fp32 storage. */
void kiln_model_params_changed(kiln_model *m);
int kiln_model_num_tensors(const kiln_model *m);
const kiln_tensor_info *kiln_model_tensor(const kiln_model *m, int i);
int kiln_model_num_blocks(const kiln_model *m);
const kiln_block_info *kiln_model_block(const kiln_model *m, int i);
/* Training FLOPs (forward + backward) per sample (MLP) or per token (GPT). */
double kiln_model_train_flops_per_unit(const kiln_model *m);

/* Forward on a batch. training=1 enables dropout (mask from seed and step). loss = mean
 * over targets; *n_correct (may be NULL) counts top-1 hits; *n_targets counts scored targets. */
kiln_status kiln_model_forward(kiln_model *m, const kiln_batch *b, int training, uint64_t step,
                               float *loss, int64_t *n_correct, int64_t *n_targets);
/* Backward of the last forward; gradients accumulate (+=) into each block's gradients,
 * scaled by loss_scale (1/micro-batches for gradient accumulation). */
kiln_status kiln_model_backward(kiln_model *m, float loss_scale);
/* Where each block's parameters and gradients are, and when they are used.
 *
 * By default a block's parameters and gradients are its range of the flat buffers. ZeRO moves
 * them (a gathered copy of a sharded block's parameters, a bucket buffer for its gradients):
 * the architectures read every pointer through kiln_model_param/kiln_model_grad and announce
 * each use of a block to the hooks below, so that the storage can be put in place just before
 * a use and released after it. Forward calls begin and end around each use of a block; backward
 * calls begin before it reads a block's parameters or adds to its gradients, end when it no
 * longer reads the parameters but will add to the gradients again (a tied weight), and done
 * when the block's gradients are final (last block first), which also ends the use. A block
 * that is `reused` is begun twice in forward and its gradients grow from the start of backward
 * until its done. A failing hook makes kiln_model_forward/backward return its status. */
typedef enum { KILN_PASS_FORWARD, KILN_PASS_BACKWARD } kiln_pass;
typedef struct kiln_block_hooks {
    void *ctx;
    kiln_status (*begin)(void *ctx, int block, kiln_pass pass);
    kiln_status (*end)(void *ctx, int block, kiln_pass pass);
    kiln_status (*done)(void *ctx, int block);
} kiln_block_hooks;
/* hooks is copied; NULL removes them. */
void kiln_model_set_block_hooks(kiln_model *m, const kiln_block_hooks *hooks);
/* Block b's parameters (gradients) are now at p: element k is flat parameter offset + k. NULL
 * marks them absent (using them then is a bug that crashes). */
void kiln_model_set_block_params(kiln_model *m, int block, float *p);
void kiln_model_set_block_grads(kiln_model *m, int block, float *g);
/* Frees the flat gradient (parameter) buffer once ZeRO keeps them elsewhere; every block's
 * pointer becomes NULL until set, and kiln_model_grads (kiln_model_params) returns NULL. The
 * parameters go with their bf16 copy and host mirror: kiln_model_host_params is NULL then, and
 * kiln_model_params_to_host/_to_device fail on a device backend. */
void kiln_model_free_flat_grads(kiln_model *m);
void kiln_model_free_flat_params(kiln_model *m);

/* Replace the parameters with model/<tensor> of a checkpoint (shapes checked, the
 * checkpoint's checksums verified); optimizer state and counters are not read. */
kiln_status kiln_model_load_checkpoint(kiln_model *m, const char *path);

/* Class probabilities (MLP: (B, n_out)) of the last forward, for inference; in the backend's
 * memory (device memory on a GPU). */
const float *kiln_model_probs(const kiln_model *m);

/* An output of the last forward, in the backend's memory, row-major (B, P, width) with P = 1
 * for the MLP and T for the GPT: "probs", "loss" (per target; 0 where none), or a layer: MLP
 * "fc<i>" (linear outputs, the last being the logits) and "gelu<i>" (hidden activations); GPT
 * "embed", "h<l>" (block outputs), "lnf", "logits". Valid (and sized) from model creation on,
 * so a name can be checked before any forward; an unknown one is KILN_ERR_ARG listing them. */
kiln_status kiln_model_output(const kiln_model *m, const char *name, const float **buf,
                              int *width);

/* The parameters as host memory: the flat buffer itself on the CPU backend; on a GPU a host
 * mirror, brought up to date by kiln_model_params_to_host and copied back by
 * kiln_model_params_to_device (both no-ops on the CPU). Checkpoints go through these. */
float *kiln_model_host_params(kiln_model *m);
kiln_status kiln_model_params_to_host(kiln_model *m);
kiln_status kiln_model_params_to_device(kiln_model *m);

#endif
