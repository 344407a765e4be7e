/* Bucketed, overlapped gradient all-reduce. Blocks are contiguous parameter ranges in model
 * order, and backward finishes them last to first, so a bucket is a run of whole blocks taken
 * from the end: when backward reports its lowest block done, the bucket's range is final and its
 * all-reduce starts while backward continues on earlier blocks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/parallel.h"
#include "kiln/runtime.h"

typedef struct bucket {
    size_t offset, numel;        /* range of the flat gradient buffer */
    int first_block;             /* the lowest block in it: done last */
    kiln_comm_request *req;
} bucket;

struct kiln_dp {
    kiln_comm *comm;
    kiln_model *model;
    const kiln_backend *be;
    bucket *buckets;             /* in launch order: last blocks first */
    int n_buckets, next_launch;
    int overlap;
    int zero;                    /* ZeRO stage */
    size_t lo, hi;               /* this rank's shard of the flat parameters */
    int *counts, *displs;        /* every rank's shard, for the collectives */
    float *shard_grads;          /* (hi - lo) reduce-scatter target */
    kiln_status error;           /* first failure inside the hook, reported by finish */
    double wait_s;
};

static void launch(kiln_dp *dp, bucket *b)
{
    if (dp->error != KILN_OK) return;
    float *g = kiln_model_grads(dp->model) + b->offset;
    dp->error = kiln_comm_iallreduce_f32(dp->comm, KILN_AXIS_DP, g, b->numel, &b->req);
}

/* MPI progresses non-blocking collectives only inside MPI calls: poke the ones in flight. */
static void progress(kiln_dp *dp)
{
    for (int i = 0; i < dp->next_launch && dp->error == KILN_OK; i++) {
        int done;
        if (dp->buckets[i].req) dp->error = kiln_comm_test(dp->buckets[i].req, &done);
    }
}

static void on_block_done(void *ctx, int block)
{
    kiln_dp *dp = ctx;
    while (dp->next_launch < dp->n_buckets && dp->buckets[dp->next_launch].first_block >= block)
        launch(dp, &dp->buckets[dp->next_launch++]);
    progress(dp);
}

static kiln_status plan_shards(kiln_dp *dp)
{
    int world = kiln_comm_size(dp->comm, KILN_AXIS_DP), me = kiln_comm_rank(dp->comm, KILN_AXIS_DP);
    size_t n = kiln_model_num_params(dp->model);
    dp->counts = calloc((size_t)world, sizeof *dp->counts);
    dp->displs = calloc((size_t)world, sizeof *dp->displs);
    KILN_CHECK_ALLOC(dp->counts);
    KILN_CHECK_ALLOC(dp->displs);
    for (int r = 0; r < world; r++) {
        size_t a = n * (size_t)r / (size_t)world, b = n * (size_t)(r + 1) / (size_t)world;
        dp->displs[r] = (int)a; /* MPI counts are int: models up to 2^31 parameters */
        dp->counts[r] = (int)(b - a);
    }
    dp->lo = dp->zero ? (size_t)dp->displs[me] : 0;
    dp->hi = dp->zero ? dp->lo + (size_t)dp->counts[me] : n;
    if (dp->zero) {
        dp->shard_grads = dp->be->alloc((dp->hi - dp->lo + 1) * sizeof(float));
        KILN_CHECK_ALLOC(dp->shard_grads);
    }
    return KILN_OK;
}

kiln_status kiln_dp_create(kiln_comm *comm, kiln_model *m, const kiln_backend *be,
                           size_t bucket_bytes, int overlap, int zero_stage, kiln_dp **out)
{
    if (zero_stage < 0 || zero_stage > 1)
        return KILN_ERROR(KILN_ERR_UNSUPPORTED,
                          "parallel.zero=%d: ZeRO stages 2 and 3 are not built yet; use 0 or 1",
                          zero_stage);
    *out = NULL;
    kiln_dp *dp = calloc(1, sizeof *dp);
    KILN_CHECK_ALLOC(dp);
    int nb = kiln_model_num_blocks(m);
    dp->buckets = calloc((size_t)nb, sizeof *dp->buckets);
    if (!dp->buckets) { free(dp); return KILN_ERROR(KILN_ERR_NOMEM, "dp buckets"); }
    dp->comm = comm;
    dp->model = m;
    dp->be = be;
    dp->overlap = overlap && zero_stage == 0; /* stage 1 reduce-scatters after backward */
    dp->zero = zero_stage;
    kiln_status st = plan_shards(dp);
    if (st != KILN_OK) {
        kiln_dp_free(dp);
        return st;
    }
    size_t limit = bucket_bytes / sizeof(float);
    for (int b = nb - 1; b >= 0; b--) {
        const kiln_block_info *blk = kiln_model_block(m, b);
        bucket *cur = dp->n_buckets ? &dp->buckets[dp->n_buckets - 1] : NULL;
        if (!cur || cur->numel >= limit) {
            cur = &dp->buckets[dp->n_buckets++];
            cur->offset = blk->offset + blk->numel;
        }
        cur->offset = blk->offset;
        cur->numel += blk->numel;
        cur->first_block = b;
    }
    *out = dp;
    return KILN_OK;
}

void kiln_dp_free(kiln_dp *dp)
{
    if (!dp) return;
    free(dp->buckets);
    free(dp->counts);
    free(dp->displs);
    if (dp->shard_grads) dp->be->free(dp->shard_grads);
    free(dp);
}

void kiln_dp_begin_backward(kiln_dp *dp)
{
    dp->next_launch = 0;
    dp->error = KILN_OK;
    if (dp->overlap) kiln_model_set_block_hook(dp->model, on_block_done, dp);
}

/* ZeRO-1: this rank's range of the summed gradient, scaled to the average. */
static kiln_status reduce_scatter_grads(kiln_dp *dp)
{
    float *g = kiln_model_grads(dp->model);
    double t0 = kiln_time_s();
    KILN_CHECK(kiln_comm_reduce_scatter_f32(dp->comm, KILN_AXIS_DP, g, dp->shard_grads, dp->counts));
    dp->wait_s += kiln_time_s() - t0;
    size_t n = dp->hi - dp->lo;
    int world = kiln_comm_size(dp->comm, KILN_AXIS_DP);
    dp->be->copy_to_device(g + dp->lo, dp->shard_grads, n * sizeof(float), dp->be->stream);
    dp->be->ops.scale(g + dp->lo, 1.0f / (float)world, n, dp->be->stream);
    return KILN_OK;
}

kiln_status kiln_dp_finish(kiln_dp *dp)
{
    kiln_model_set_block_hook(dp->model, NULL, NULL);
    if (dp->zero) return reduce_scatter_grads(dp);
    while (dp->next_launch < dp->n_buckets) launch(dp, &dp->buckets[dp->next_launch++]);
    double t0 = kiln_time_s();
    kiln_status st = dp->error;
    for (int i = 0; i < dp->n_buckets; i++) {
        bucket *b = &dp->buckets[i];
        if (!b->req) continue;
        kiln_status w = kiln_comm_wait(b->req);
        b->req = NULL;
        if (st == KILN_OK) st = w;
    }
    dp->wait_s += kiln_time_s() - t0;
    KILN_CHECK(st);
    int world = kiln_comm_size(dp->comm, KILN_AXIS_DP);
    if (world > 1)
        dp->be->ops.scale(kiln_model_grads(dp->model), 1.0f / (float)world,
                          kiln_model_num_params(dp->model), dp->be->stream);
    return KILN_OK;
}

int kiln_dp_num_buckets(const kiln_dp *dp) { return dp->n_buckets; }

void kiln_dp_shard(const kiln_dp *dp, size_t *lo, size_t *hi)
{
    *lo = dp->lo;
    *hi = dp->hi;
}

kiln_status kiln_dp_grad_norm(kiln_dp *dp, double *norm)
{
    const float *g = kiln_model_grads(dp->model) + dp->lo;
    double sq = dp->be->ops.sum_squares(g, dp->hi - dp->lo, dp->be->stream);
    if (dp->zero) KILN_CHECK(kiln_comm_allreduce_f64(dp->comm, KILN_AXIS_DP, &sq, 1));
    *norm = sqrt(sq);
    return KILN_OK;
}

kiln_status kiln_dp_after_update(kiln_dp *dp)
{
    if (!dp->zero) return KILN_OK;
    double t0 = kiln_time_s();
    KILN_CHECK(kiln_comm_allgather_f32(dp->comm, KILN_AXIS_DP, kiln_model_params(dp->model),
                                       dp->counts, dp->displs));
    dp->wait_s += kiln_time_s() - t0;
    return KILN_OK;
}

kiln_status kiln_dp_gather_state(kiln_dp *dp, const float *shard, float *full)
{
    if (!dp->zero) {
        memcpy(full, shard, kiln_model_num_params(dp->model) * sizeof(float));
        return KILN_OK;
    }
    return kiln_comm_gather_f32(dp->comm, KILN_AXIS_DP, shard, full, dp->counts, dp->displs, 0);
}

void kiln_dp_bytes(const kiln_dp *dp, int n_states, size_t *params, size_t *grads, size_t *optim)
{
    size_t n = kiln_model_num_params(dp->model);
    *params = n * sizeof(float);
    /* stage 1 still accumulates the whole gradient during backward */
    *grads = n * sizeof(float) + (dp->zero ? (dp->hi - dp->lo) * sizeof(float) : 0);
    *optim = (size_t)n_states * (dp->hi - dp->lo) * sizeof(float);
}

double kiln_dp_take_wait_s(kiln_dp *dp)
{
    double w = dp->wait_s;
    dp->wait_s = 0.0;
    return w;
}
