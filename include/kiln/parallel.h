/* Data parallelism: gradients averaged across the dp axis over buckets of whole blocks, each
 * reduced as soon as backward has finished the blocks it covers, so communication overlaps the
 * rest of backward.
 *
 * ZeRO: rank r of the dp axis owns the flat parameter range [n*r/dp, n*(r+1)/dp).
 * Stage 1 shards the optimizer state: gradients are reduce-scattered so each rank gets the
 * averaged gradient of its range, updates that range with its share of the optimizer state,
 * and an all-gather gives every rank the new parameters. Stage 2 also keeps only the own shard
 * of the gradients: a bucket's gradients live in a staging buffer only while backward fills it
 * and its reduce-scatter runs. Stage 3 also keeps only the own shard of the parameters: each
 * block is all-gathered just before forward or backward uses it and released after. */
#ifndef KILN_PARALLEL_H
#define KILN_PARALLEL_H
#include <stddef.h>
#include "kiln/comm.h"
#include "kiln/model.h"
#include "kiln/config.h"
#include "kiln/status.h"

/* The `parallel` config section (src/parallel/parallel_config.c). */
typedef struct kiln_parallel_config {
    int pp;                      /* pipeline stages (1 until pipeline execution lands) */
    kiln_cfg_str schedule;       /* gpipe | 1f1b | interleaved (kiln/schedule.h) */
    int virtual_stages;          /* interleaved: model chunks a stage rank holds */
    double bucket_mb;            /* data-parallel all-reduce bucket size */
    int overlap;                 /* start each bucket's all-reduce during backward */
    int zero;                    /* ZeRO stage 0-3 */
} kiln_parallel_config;
extern const kiln_cfg_schema kiln_parallel_section;

typedef struct kiln_dp kiln_dp;

/* Buckets of about bucket_bytes (whole blocks, last block first). overlap = 0 reduces
 * everything after backward instead (for measuring what overlap saves; stage 2 then waits for
 * each bucket as soon as it is launched). The engine installs the model's block hooks. */
kiln_status kiln_dp_create(kiln_comm *comm, kiln_model *m, const kiln_backend *be,
                           size_t bucket_bytes, int overlap, int zero_stage, kiln_dp **out);
void kiln_dp_free(kiln_dp *dp);
/* At the start of a step: zero the gradients this rank accumulates. */
void kiln_dp_zero_grads(kiln_dp *dp);
/* Before each micro-batch's backward; last: it is the step's last (stages 0 and 1 reduce only
 * then and accumulate before; stage 2 reduces every micro-batch). */
void kiln_dp_begin_backward(kiln_dp *dp, int last);
/* After the last: launch what is left, wait for every bucket, divide by the dp size. */
kiln_status kiln_dp_finish(kiln_dp *dp);
int kiln_dp_num_buckets(const kiln_dp *dp);
/* The parameter range whose optimizer state and averaged gradient this rank owns (the whole
 * model at stage 0), and where they are: element k is flat parameter lo + k. */
void kiln_dp_shard(const kiln_dp *dp, size_t *lo, size_t *hi);
float *kiln_dp_shard_params(kiln_dp *dp);
/* With bf16 storage: the range of the bf16 parameter copy the ops read (ZeRO-3: the shard's
 * copy that the all-gathers send), which the optimizer writes with the fp32 parameters; NULL
 * with fp32 storage. */
float *kiln_dp_shard_param_copy(kiln_dp *dp);
/* In the backend's storage type. */
float *kiln_dp_shard_grads(kiln_dp *dp);
/* Global L2 norm of the averaged gradient (summed over shards at stage >= 1). */
kiln_status kiln_dp_grad_norm(kiln_dp *dp, double *norm);
/* After the optimizer updated this rank's range: give every rank the whole new parameters. */
kiln_status kiln_dp_after_update(kiln_dp *dp);
/* Checkpoints. The part of the flat parameters this rank writes: its shard of an even split
 * among the dp ranks, at every stage (at stage 0 each rank writes that part of its replica).
 * And the fp32 parameters it holds, as host memory: [*lo, *hi) at *base (element 0 is
 * parameter *lo): the model's (kiln_model_host_params), or at ZeRO-3 the shard's own host
 * mirror on a GPU (the shard itself on the CPU). kiln_dp_params_to_host brings that memory up
 * to date before a save, kiln_dp_params_to_device copies it back after a load (and refreshes
 * the bf16 copy the ops read); on the CPU there is nothing to copy. */
void kiln_dp_write_part(const kiln_dp *dp, size_t *lo, size_t *hi);
void kiln_dp_held_params(kiln_dp *dp, float **base, size_t *lo, size_t *hi);
kiln_status kiln_dp_params_to_host(kiln_dp *dp);
kiln_status kiln_dp_params_to_device(kiln_dp *dp);
/* Bytes this rank holds for parameters, gradients and optimizer state (n_states buffers). */
void kiln_dp_bytes(const kiln_dp *dp, int n_states, size_t *params, size_t *grads, size_t *optim);
/* The same for a plan's sizes and storage type: fp32 master weights (ZeRO-3: of the shard)
 * plus their bf16 copy with bf16 storage, and at ZeRO-3 the gather buffer in the storage type;
 * gradients in the storage type, whole below stage 2, else the shard and the staging arena;
 * n_states fp32 states of the shard. fp32 and bf16 without ZeRO both come to 16 bytes a
 * parameter with AdamW; at ZeRO-3, 16 bytes a parameter of the shard plus the two buffers. */
typedef struct kiln_dp_sizes {
    size_t n, shard;             /* parameters; this rank's shard of them */
    int zero;                    /* ZeRO stage */
    size_t arena_numel;          /* ZeRO-2/3: the gradient staging arena */
    size_t gather_numel;         /* ZeRO-3: the parameter gather buffer */
} kiln_dp_sizes;
void kiln_dp_memory_of(kiln_precision storage, const kiln_dp_sizes *s, int n_states,
                       size_t *params, size_t *grads, size_t *optim);
/* Seconds spent blocked in kiln_dp_finish since the last call (communication not hidden). */
double kiln_dp_take_wait_s(kiln_dp *dp);

#endif
