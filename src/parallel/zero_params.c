/* ZeRO-3 parameters: a rank keeps only its shard of the parameters. Just before a pass uses a
 * block, the block's parameters are all-gathered from every rank's shard into one gather
 * buffer (as large as the largest block) and the model is pointed there; when the pass is done
 * with the block the model's pointer is taken away again. The gathered copy stays valid until
 * the parameters change, so using the same block again right away (the GPT's tied LM head
 * from the end of forward to the start of backward) needs no second gather.
 *
 * The shard is fp32: the optimizer's master weights. With bf16 storage the gather buffer holds
 * bf16, what the ops read, and is gathered from a bf16 copy of the shard that the optimizer
 * writes in the same pass as the fp32 update (half the bytes of an fp32 gather; the same
 * rounding as the whole-model copy without ZeRO-3). On a device backend the shard has a host
 * mirror of its own for checkpoints: no copy of the whole model is kept anywhere.
 *
 * Blocks are used one at a time: forward and backward each begin a block, use it and end it
 * (backward's done ends it too) before beginning the next. */
#include <stdlib.h>
#include <string.h>
#include "dp_internal.h"
#include "kiln/runtime.h"

static size_t shard_numel(const kiln_dp *dp) { return dp->hi - dp->lo; }

/* After the fp32 shard changed other than through the optimizer: round its bf16 copy again
 * and forget the gathered block. */
static void shard_changed(kiln_dp *dp)
{
    if (dp->shard_copy)
        dp->be->ops.cast_from_f32(dp->shard_copy, dp->shard_params, shard_numel(dp), dp->be->stream);
    dp->gathered = -1;
}

static kiln_status alloc_buffers(kiln_dp *dp, size_t largest)
{
    const kiln_backend *be = dp->be;
    size_t shard = shard_numel(dp), elem = kiln_precision_bytes(be->precision);
    int copy = elem != sizeof(float), mirror = be->kind != KILN_DEVICE_CPU;
    /* +1: an empty shard still gets a valid buffer */
    dp->shard_params = be->alloc((shard + 1) * sizeof(float));
    dp->gather = be->alloc((largest + 1) * elem);
    if (copy) dp->shard_copy = be->alloc((shard + 1) * elem);
    if (mirror) dp->host_shard = malloc((shard + 1) * sizeof(float));
    if (!dp->shard_params || !dp->gather || (copy && !dp->shard_copy) || (mirror && !dp->host_shard))
        return KILN_ERROR(KILN_ERR_NOMEM, "ZeRO-3: cannot allocate the parameter shard (%zu "
                          "parameters, fp32%s%s) and gather buffer (%zu, %d bytes each)", shard,
                          copy ? " and its bf16 copy" : "", mirror ? " and its host mirror" : "",
                          largest, (int)elem);
    dp->gather_numel = largest;
    return KILN_OK;
}

kiln_status kiln_zero_params_init(kiln_dp *dp)
{
    kiln_model *m = dp->model;
    int nb = kiln_model_num_blocks(m);
    size_t largest = 0;
    dp->block_shares = calloc((size_t)nb, sizeof *dp->block_shares);
    KILN_CHECK_ALLOC(dp->block_shares);
    for (int b = 0; b < nb; b++) {
        const kiln_block_info *blk = kiln_model_block(m, b);
        KILN_CHECK(kiln_dp_plan_shares(dp, blk->offset, blk->numel, &dp->block_shares[b]));
        if (blk->numel > largest) largest = blk->numel;
    }
    KILN_CHECK(alloc_buffers(dp, largest));
    /* the model's fp32 parameters as initialised or warm-started (device to device on a GPU) */
    dp->be->copy_to_device(dp->shard_params, kiln_model_params(m) + dp->lo,
                           shard_numel(dp) * sizeof(float), dp->be->stream);
    kiln_model_free_flat_params(m);
    shard_changed(dp);
    dp->in_use = -1;
    return dp->be->synchronize(dp->be->stream);
}

void kiln_zero_params_free(kiln_dp *dp)
{
    for (int b = 0; dp->block_shares && b < kiln_model_num_blocks(dp->model); b++)
        kiln_dp_free_shares(&dp->block_shares[b]);
    free(dp->block_shares);
    free(dp->host_shard);
    float *dev[] = {dp->shard_params, dp->shard_copy, dp->gather};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) dp->be->free(dev[i]);
}

static kiln_status gather_block(kiln_dp *dp, int block)
{
    const kiln_block_info *blk = kiln_model_block(dp->model, block);
    const dp_shares *sh = &dp->block_shares[block];
    kiln_precision type = dp->be->precision;
    const float *own = dp->shard_copy ? dp->shard_copy : dp->shard_params; /* the storage type */
    size_t mine = (size_t)sh->counts[dp->me];
    if (mine)
        dp->be->copy_to_device(kiln_storage_at(type, dp->gather, sh->mine),
                               kiln_storage_at(type, own, blk->offset + sh->mine - dp->lo),
                               mine * kiln_precision_bytes(type), dp->be->stream);
    double t0 = kiln_time_s();
    kiln_status st = kiln_comm_allgather_typed(dp->comm, KILN_AXIS_DP, type, dp->gather,
                                               sh->counts, sh->displs);
    dp->wait_s += kiln_time_s() - t0;
    dp->gathered = st == KILN_OK ? block : -1;
    return st;
}

kiln_status kiln_zero_params_begin(kiln_dp *dp, int block)
{
    /* pointed at the buffer first: a failure leaves garbage to compute on, not a crash */
    kiln_model_set_block_params(dp->model, block, dp->gather);
    if (dp->in_use >= 0 && dp->in_use != block)
        return KILN_ERROR(KILN_ERR_INTERNAL, "ZeRO-3: block %d begun while block %d is in use "
                          "(blocks must be used one at a time)", block, dp->in_use);
    dp->in_use = block;
    return dp->gathered == block ? KILN_OK : gather_block(dp, block);
}

void kiln_zero_params_end(kiln_dp *dp, int block)
{
    if (dp->in_use != block) return;
    kiln_model_set_block_params(dp->model, block, NULL);
    dp->in_use = -1;
}

void kiln_zero_params_changed(kiln_dp *dp) { dp->gathered = -1; }

kiln_status kiln_zero_params_to_host(kiln_dp *dp)
{
    if (!dp->host_shard) return KILN_OK; /* the CPU: the shard is host memory */
    dp->be->copy_to_host(dp->host_shard, dp->shard_params, shard_numel(dp) * sizeof(float),
                         dp->be->stream);
    return dp->be->synchronize(dp->be->stream);
}

kiln_status kiln_zero_params_to_device(kiln_dp *dp)
{
    if (dp->host_shard)
        dp->be->copy_to_device(dp->shard_params, dp->host_shard, shard_numel(dp) * sizeof(float),
                               dp->be->stream);
    shard_changed(dp);
    return dp->be->synchronize(dp->be->stream);
}

float *kiln_zero_params_held(kiln_dp *dp) { return dp->host_shard ? dp->host_shard : dp->shard_params; }
