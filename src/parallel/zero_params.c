/* ZeRO-3 parameters: a rank keeps only its shard of the parameters. Just before a pass uses a
 * block, the block's parameters are all-gathered from every rank's shard into one gather
 * buffer (as large as the largest block) and the model is pointed there; when the pass is done
 * with the block the model's pointer is taken away again. The gathered copy stays valid until
 * the parameters change, so using the same block again right away (the GPT's tied LM head
 * from the end of forward to the start of backward) needs no second gather.
 *
 * Blocks are used one at a time: forward and backward each begin a block, use it and end it
 * (backward's done ends it too) before beginning the next. */
#include <stdlib.h>
#include <string.h>
#include "dp_internal.h"
#include "kiln/runtime.h"

kiln_status zero_params_init(kiln_dp *dp)
{
    kiln_model *m = dp->model;
    int nb = kiln_model_num_blocks(m);
    size_t shard = dp->hi - dp->lo, largest = 0;
    dp->block_shares = calloc((size_t)nb, sizeof *dp->block_shares);
    KILN_CHECK_ALLOC(dp->block_shares);
    for (int b = 0; b < nb; b++) {
        const kiln_block_info *blk = kiln_model_block(m, b);
        KILN_CHECK(dp_plan_shares(dp, blk->offset, blk->numel, &dp->block_shares[b]));
        if (blk->numel > largest) largest = blk->numel;
    }
    /* +1: an empty shard still gets a valid buffer */
    dp->shard_params = dp->be->alloc((shard + 1) * sizeof(float));
    dp->gather = dp->be->alloc((largest + 1) * sizeof(float));
    if (!dp->shard_params || !dp->gather)
        return KILN_ERROR(KILN_ERR_NOMEM, "ZeRO-3: cannot allocate the parameter shard (%zu floats) "
                          "and gather buffer (%zu floats)", shard, largest);
    dp->gather_numel = largest;
    dp->be->copy_to_device(dp->shard_params, kiln_model_params(m) + dp->lo, shard * sizeof(float),
                           dp->be->stream);
    kiln_model_free_flat_params(m);
    dp->gathered = dp->in_use = -1;
    return KILN_OK;
}

void zero_params_free(kiln_dp *dp)
{
    for (int b = 0; dp->block_shares && b < kiln_model_num_blocks(dp->model); b++)
        dp_free_shares(&dp->block_shares[b]);
    free(dp->block_shares);
    if (dp->shard_params) dp->be->free(dp->shard_params);
    if (dp->gather) dp->be->free(dp->gather);
}

static kiln_status gather_block(kiln_dp *dp, int block)
{
    const kiln_block_info *blk = kiln_model_block(dp->model, block);
    const dp_shares *sh = &dp->block_shares[block];
    size_t mine = (size_t)sh->counts[dp->me];
    if (mine)
        dp->be->copy_to_device(dp->gather + sh->mine,
                               dp->shard_params + (blk->offset + sh->mine - dp->lo),
                               mine * sizeof(float), dp->be->stream);
    double t0 = kiln_time_s();
    kiln_status st = kiln_comm_allgather_f32(dp->comm, KILN_AXIS_DP, dp->gather, sh->counts,
                                             sh->displs);
    dp->wait_s += kiln_time_s() - t0;
    dp->gathered = st == KILN_OK ? block : -1;
    return st;
}

kiln_status zero_params_begin(kiln_dp *dp, int block)
{
    /* pointed at the buffer first: a failure leaves garbage to compute on, not a crash */
    kiln_model_set_block_params(dp->model, block, dp->gather);
    if (dp->in_use >= 0 && dp->in_use != block)
        return KILN_ERROR(KILN_ERR_INTERNAL, "ZeRO-3: block %d begun while block %d is in use "
                          "(blocks must be used one at a time)", block, dp->in_use);
    dp->in_use = block;
    return dp->gathered == block ? KILN_OK : gather_block(dp, block);
}

void zero_params_end(kiln_dp *dp, int block)
{
    if (dp->in_use != block) return;
    kiln_model_set_block_params(dp->model, block, NULL);
    dp->in_use = -1;
}

void zero_params_changed(kiln_dp *dp) { dp->gathered = -1; }
