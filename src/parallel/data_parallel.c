/* Bucketed, overlapped gradient all-reduce. Blocks are contiguous parameter ranges in model
 * order, and backward finishes them last to first, so a bucket is a run of whole blocks taken
 * from the end: when backward reports its lowest block done, the bucket's range is final and its
 * all-reduce starts while backward continues on earlier blocks. */
#include <stdlib.h>
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

kiln_status kiln_dp_create(kiln_comm *comm, kiln_model *m, const kiln_backend *be,
                           size_t bucket_bytes, int overlap, kiln_dp **out)
{
    *out = NULL;
    kiln_dp *dp = calloc(1, sizeof *dp);
    KILN_CHECK_ALLOC(dp);
    int nb = kiln_model_num_blocks(m);
    dp->buckets = calloc((size_t)nb, sizeof *dp->buckets);
    if (!dp->buckets) { free(dp); return KILN_ERROR(KILN_ERR_NOMEM, "dp buckets"); }
    dp->comm = comm;
    dp->model = m;
    dp->be = be;
    dp->overlap = overlap;
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
    free(dp);
}

void kiln_dp_begin_backward(kiln_dp *dp)
{
    dp->next_launch = 0;
    dp->error = KILN_OK;
    if (dp->overlap) kiln_model_set_block_hook(dp->model, on_block_done, dp);
}

kiln_status kiln_dp_finish(kiln_dp *dp)
{
    kiln_model_set_block_hook(dp->model, NULL, NULL);
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

double kiln_dp_take_wait_s(kiln_dp *dp)
{
    double w = dp->wait_s;
    dp->wait_s = 0.0;
    return w;
}
