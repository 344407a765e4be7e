/* What the data-parallel engine (data_parallel.c) shares with its ZeRO parts: gradient
 * staging for stages 2 and 3 (zero_grads.c). */
#ifndef KILN_DP_INTERNAL_H
#define KILN_DP_INTERNAL_H
#include "kiln/parallel.h"

/* A run of whole blocks, reduced as one collective as soon as backward has finished them. */
typedef struct dp_bucket {
    size_t offset, numel;        /* range of the flat parameters (and gradients) */
    int first_block;             /* the lowest block in it: backward finishes it last */
    int *counts;                 /* (world) each rank's part of the range: its shard's share */
    size_t mine;                 /* where this rank's part starts, from offset */
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
    kiln_status error;           /* first failure inside a hook, reported by finish */
    double wait_s;
};

/* Every in-flight bucket reduction gets a chance to progress (MPI moves non-blocking
 * collectives only inside MPI calls). */
void dp_progress(kiln_dp *dp);

/* ZeRO-2/3 gradients (zero_grads.c). Plan the arena (bucket places, size) and allocate it and
 * the shard; the flat gradient buffer is freed. */
kiln_status zero_grads_init(kiln_dp *dp);
void zero_grads_free(kiln_dp *dp);
/* Give bucket b a zeroed place in the arena (completing what still occupies it) and point its
 * blocks' gradients there; nothing when it is already staged. */
kiln_status zero_grads_stage(kiln_dp *dp, dp_bucket *b);
/* Start reduce-scattering a staged bucket (and wait for it at once without overlap). */
kiln_status zero_grads_launch(kiln_dp *dp, dp_bucket *b);
/* Wait for a bucket's reduce-scatter, add this rank's part to the shard, release its place. */
kiln_status zero_grads_complete(kiln_dp *dp, dp_bucket *b);

#endif
