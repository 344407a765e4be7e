/* ZeRO-2/3 gradients: a rank keeps only the gradient of its shard, accumulated over the
 * micro-batches. During backward a bucket's gradients collect in a staging place of one arena;
 * when backward has finished the bucket it is reduce-scattered in place, this rank's part is
 * added to the shard, and the place is free again.
 *
 * Places are fixed when the engine is created, so the memory is known up front: buckets that
 * hold a reused block (the GPT's tied embedding, whose gradient grows from the start of
 * backward to its end) sit at the start of the arena; the others, in backward order, alternate
 * between the two ends of the rest, so the bucket being filled never overlaps the one still in
 * flight before it (without overlap, every bucket uses the front: each reduce-scatter is
 * waited for at once). Staging a bucket first completes whatever in-flight bucket occupies its
 * place. */
#include <stdlib.h>
#include "dp_internal.h"
#include "kiln/runtime.h"

static int overlaps(const dp_bucket *a, const dp_bucket *b)
{
    return a->arena_at < b->arena_at + b->numel && b->arena_at < a->arena_at + a->numel;
}

/* Pinned buckets first, then the alternating region: front for even turns, back for odd. */
static void plan_arena(kiln_dp *dp)
{
    size_t pinned = 0, region = 0, prev = 0;
    for (int i = 0; i < dp->n_buckets; i++) {
        const dp_bucket *b = &dp->buckets[i];
        if (b->pinned) {
            pinned += b->numel;
            continue;
        }
        size_t need = dp->overlap ? prev + b->numel : b->numel; /* with the one before it */
        if (need > region) region = need;
        prev = b->numel;
    }
    size_t next_pinned = 0;
    int turn = 0;
    for (int i = 0; i < dp->n_buckets; i++) {
        dp_bucket *b = &dp->buckets[i];
        if (b->pinned) {
            b->arena_at = next_pinned;
            next_pinned += b->numel;
            continue;
        }
        int back = dp->overlap && turn++ % 2;
        b->arena_at = pinned + (back ? region - b->numel : 0);
    }
    dp->arena_numel = pinned + region;
}

kiln_status kiln_zero_grads_init(kiln_dp *dp)
{
    plan_arena(dp);
    size_t shard = dp->hi - dp->lo;
    /* +1: an empty shard or arena still gets a valid buffer; both hold the storage type */
    size_t elem = kiln_precision_bytes(dp->be->precision);
    dp->shard_grads = dp->be->alloc((shard + 1) * elem);
    dp->arena = dp->be->alloc((dp->arena_numel + 1) * elem);
    if (!dp->shard_grads || !dp->arena)
        return KILN_ERROR(KILN_ERR_NOMEM, "ZeRO-%d: cannot allocate the gradient shard (%zu floats) "
                          "and staging arena (%zu floats)", dp->zero, shard, dp->arena_numel);
    kiln_model_free_flat_grads(dp->model);
    return KILN_OK;
}

void kiln_zero_grads_free(kiln_dp *dp)
{
    if (dp->shard_grads) dp->be->free(dp->shard_grads);
    if (dp->arena) dp->be->free(dp->arena);
}

static void point_blocks(kiln_dp *dp, dp_bucket *b, float *at)
{
    for (int i = b->first_block; i < kiln_model_num_blocks(dp->model); i++) {
        const kiln_block_info *blk = kiln_model_block(dp->model, i);
        if (blk->offset >= b->offset + b->numel) break;
        kiln_model_set_block_grads(
            dp->model, i, at ? kiln_storage_at(dp->be->precision, at, blk->offset - b->offset) : NULL);
    }
}

kiln_status kiln_zero_grads_stage(kiln_dp *dp, dp_bucket *b)
{
    if (b->staging && !b->req) return KILN_OK; /* being filled */
    /* in flight there (b itself included, from the last micro-batch): finish it first */
    for (int i = 0; i < dp->n_buckets; i++) {
        dp_bucket *o = &dp->buckets[i];
        if (!o->staging || !overlaps(o, b)) continue;
        if (!o->req)
            return KILN_ERROR(KILN_ERR_INTERNAL, "ZeRO-%d: backward began the bucket of block %d "
                              "while the bucket of block %d shares its staging place and is not "
                              "finished (blocks out of order)", dp->zero, b->first_block,
                              o->first_block);
        KILN_CHECK(kiln_zero_grads_complete(dp, o));
    }
    b->staging = kiln_storage_at(dp->be->precision, dp->arena, b->arena_at);
    dp->be->ops.zero(b->staging, b->numel, dp->be->stream);
    point_blocks(dp, b, b->staging);
    return KILN_OK;
}

kiln_status kiln_zero_grads_launch(kiln_dp *dp, dp_bucket *b)
{
    KILN_CHECK(kiln_zero_grads_stage(dp, b));
    KILN_CHECK(kiln_comm_ireduce_scatter_typed(dp->comm, KILN_AXIS_DP, dp->be->precision,
                                               b->staging, b->shares.counts, &b->req));
    if (dp->overlap) return KILN_OK;
    double t0 = kiln_time_s();
    kiln_status st = kiln_zero_grads_complete(dp, b);
    dp->wait_s += kiln_time_s() - t0;
    return st;
}

kiln_status kiln_zero_grads_complete(kiln_dp *dp, dp_bucket *b)
{
    kiln_status st = kiln_comm_wait(b->req);
    b->req = NULL;
    KILN_CHECK(st);
    size_t mine = (size_t)b->shares.counts[dp->me];
    kiln_precision type = dp->be->precision;
    if (mine)
        dp->be->ops.axpy(kiln_storage_at(type, dp->shard_grads, b->offset + b->shares.mine - dp->lo),
                         kiln_storage_at(type, b->staging, b->shares.mine), 1.0f, mine,
                         dp->be->stream);
    b->staging = NULL;
    point_blocks(dp, b, NULL);
    return KILN_OK;
}
