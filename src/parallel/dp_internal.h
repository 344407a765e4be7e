/* What the data-parallel engine (data_parallel.c) shares with its ZeRO parts: gradient
 * staging for stages 2 and 3 (zero_grads.c), parameter gathers for stage 3 (zero_params.c). */
#ifndef KILN_DP_INTERNAL_H
#define KILN_DP_INTERNAL_H
#include "kiln/parallel.h"

/* Each rank's part of a flat range: its shard's intersection with it (shards are in rank
 * order, so the parts tile the range in rank order too). */
typedef struct dp_shares {
    int *counts, *displs;        /* (world) sizes, and starts from the range's start */
    size_t mine;                 /* where this rank's part starts, from the range's start */
} dp_shares;

/* A run of whole blocks, reduced as one collective as soon as backward has finished them. */
typedef struct dp_bucket {
    size_t offset, numel;        /* range of the flat parameters (and gradients) */
    int first_block;             /* the lowest block in it: backward finishes it last */
    dp_shares shares;            /* of the range: what each rank's reduce-scatter keeps */
    int pinned;                  /* ZeRO-2/3: holds a reused block, so it is staged all backward */
    size_t arena_at;             /* ZeRO-2/3: its fixed place in the staging arena */
    float *staging;              /* ZeRO-2/3: its gradients while staged, else NULL */
    kiln_comm_request *req;      /* its reduction, while in flight */
} dp_bucket;

struct kiln_dp {
    kiln_comm *comm;
    kiln_model *model;
    const kiln_backend *be;
    int zero;                    /* ZeRO stage */
    int overlap;                 /* reduce each bucket as backward finishes it */
    int world, me;               /* the dp axis */
    size_t n, lo, hi;            /* parameters; this rank's shard [lo, hi) (all at stage 0) */
    int *counts, *displs;        /* (world) every rank's shard of an even split */
    dp_bucket *buckets;          /* in launch order: last blocks first */
    int n_buckets, next_launch;
    int *bucket_of;              /* (blocks) block -> its bucket */
    int reducing;                /* this backward's buckets are reduced, not only accumulated */
    float *shard_grads;          /* ZeRO-2/3 (hi - lo): accumulated, then averaged, gradients */
    float *arena;                /* ZeRO-2/3: where buckets are staged */
    size_t arena_numel;
    float *shard_params;         /* ZeRO-3 (hi - lo): this rank's parameters, fp32 */
    float *shard_copy;           /* ZeRO-3, bf16 storage (hi - lo): their bf16 copy, gathered */
    float *host_shard;           /* ZeRO-3, device backends (hi - lo): host mirror, checkpoints */
    dp_shares *block_shares;     /* ZeRO-3 (blocks): each block's parts, for its all-gather */
    float *gather;               /* ZeRO-3 (gather_numel, the largest block, storage type): a
                                  * gathered block, as the ops read it */
    size_t gather_numel;
    int gathered, in_use;        /* ZeRO-3: the block in gather (valid), the one in use; -1 none */
    kiln_status error;           /* first failure inside a hook, reported by finish */
    double wait_s;
};

/* Every in-flight bucket reduction gets a chance to progress (MPI moves non-blocking
 * collectives only inside MPI calls). */
void kiln_dp_progress(kiln_dp *dp);
kiln_status kiln_dp_plan_shares(const kiln_dp *dp, size_t offset, size_t numel, dp_shares *out);
void kiln_dp_free_shares(dp_shares *s);

/* ZeRO-2/3 gradients (zero_grads.c). Plan the arena (bucket places, size) and allocate it and
 * the shard; the flat gradient buffer is freed. */
kiln_status kiln_zero_grads_init(kiln_dp *dp);
void kiln_zero_grads_free(kiln_dp *dp);
/* Give bucket b a zeroed place in the arena (completing what still occupies it) and point its
 * blocks' gradients there; nothing when it is already staged. */
kiln_status kiln_zero_grads_stage(kiln_dp *dp, dp_bucket *b);
/* Start reduce-scattering a staged bucket (and wait for it at once without overlap). */
kiln_status kiln_zero_grads_launch(kiln_dp *dp, dp_bucket *b);
/* Wait for a bucket's reduce-scatter, add this rank's part to the shard, release its place. */
kiln_status kiln_zero_grads_complete(kiln_dp *dp, dp_bucket *b);

/* ZeRO-3 parameters (zero_params.c). Keep this rank's shard and a gather buffer; the model's
 * whole-model parameter buffers (and its host mirror) are freed. */
kiln_status kiln_zero_params_init(kiln_dp *dp);
void kiln_zero_params_free(kiln_dp *dp);
/* Gather block's parameters (unless the buffer still holds them) and point the model there. */
kiln_status kiln_zero_params_begin(kiln_dp *dp, int block);
/* The pass is done with the block: the model's pointer is taken away. */
void kiln_zero_params_end(kiln_dp *dp, int block);
/* The shard changed (an optimizer step): the gathered copy is stale. */
void kiln_zero_params_changed(kiln_dp *dp);
/* Checkpoints: the shard to its host mirror (device backends); the mirror back to the shard,
 * its bf16 copy rounded again; the shard as host memory (the mirror, or the shard itself). */
kiln_status kiln_zero_params_to_host(kiln_dp *dp);
kiln_status kiln_zero_params_to_device(kiln_dp *dp);
float *kiln_zero_params_held(kiln_dp *dp);

#endif
