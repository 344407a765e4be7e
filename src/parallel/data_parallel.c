/* Bucketed, overlapped gradient reduction. Blocks are contiguous parameter ranges in model
 * order, and backward finishes them last to first, so a bucket is a run of whole blocks taken
 * from the end: when backward reports its lowest block done, the bucket's range is final and its
 * reduction starts while backward continues on earlier blocks.
 *
 * Stage 0 all-reduces each bucket in the flat gradient buffer. Stage 1 reduce-scatters it there
 * instead, so each rank ends up with the sum of its shard. Both accumulate micro-batches locally
 * and reduce in the last one's backward. Stages 2 and 3 have no flat gradient buffer: each
 * micro-batch's buckets are staged, reduce-scattered and added to the shard (zero_grads.c). */
#include <math.h>
#include <stdlib.h>
#include "dp_internal.h"
#include "kiln/runtime.h"

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Stages 0 and 1 reduce in place in the flat gradient buffer. Gradients are reduced in their
 * storage type: bf16 with train.precision=bf16 (half the traffic; NCCL adds in fp32 and rounds
 * to bf16 at each step of its ring). */
static kiln_status launch_flat(kiln_dp *dp, dp_bucket *b)
{
    kiln_precision type = dp->be->precision;
    float *g = kiln_model_grads_at(dp->model, b->offset);
    if (dp->zero == 0)
        return kiln_comm_iallreduce_typed(dp->comm, KILN_AXIS_DP, type, g, b->numel, &b->req);
    return kiln_comm_ireduce_scatter_typed(dp->comm, KILN_AXIS_DP, type, g, b->shares.counts,
                                           &b->req);
}

static void launch(kiln_dp *dp, dp_bucket *b)
{
    if (dp->error != KILN_OK) return;
    dp->error = dp->zero >= 2 ? kiln_zero_grads_launch(dp, b) : launch_flat(dp, b);
}

static kiln_status complete(kiln_dp *dp, dp_bucket *b)
{
    if (dp->zero >= 2) return kiln_zero_grads_complete(dp, b);
    kiln_status st = kiln_comm_wait(b->req);
    b->req = NULL;
    return st;
}

void kiln_dp_progress(kiln_dp *dp)
{
    for (int i = 0; i < dp->n_buckets && dp->error == KILN_OK; i++) {
        int done;
        if (dp->buckets[i].req) dp->error = kiln_comm_test(dp->buckets[i].req, &done);
    }
}

/* Hooks report the first failure (the model returns it from forward/backward); after one,
 * no bucket is launched any more, but blocking parameter gathers still take place so that the
 * other ranks are not left waiting in them. */
static kiln_status on_begin(void *ctx, int block, kiln_pass pass)
{
    kiln_dp *dp = ctx;
    kiln_status st = dp->zero == 3 ? kiln_zero_params_begin(dp, block) : KILN_OK;
    if (dp->error == KILN_OK) dp->error = st;
    if (dp->error == KILN_OK && dp->zero >= 2 && pass == KILN_PASS_BACKWARD)
        dp->error = kiln_zero_grads_stage(dp, &dp->buckets[dp->bucket_of[block]]);
    return dp->error;
}

static kiln_status on_end(void *ctx, int block, kiln_pass pass)
{
    kiln_dp *dp = ctx;
    if (dp->zero == 3) kiln_zero_params_end(dp, block);
    return KILN_OK;
}

static kiln_status on_done(void *ctx, int block)
{
    kiln_dp *dp = ctx;
    if (dp->zero == 3) kiln_zero_params_end(dp, block);
    if (!dp->reducing || (!dp->overlap && dp->zero < 2)) return dp->error;
    /* a backward that scored nothing reports blocks done without beginning them */
    if (dp->zero >= 2 && dp->error == KILN_OK)
        dp->error = kiln_zero_grads_stage(dp, &dp->buckets[dp->bucket_of[block]]);
    while (dp->next_launch < dp->n_buckets && dp->buckets[dp->next_launch].first_block >= block)
        launch(dp, &dp->buckets[dp->next_launch++]);
    kiln_dp_progress(dp);
    return dp->error;
}

/* Rank r's part of the flat parameters: an even split, cut anywhere. */
static void shard_bounds(const kiln_dp *dp, int r, size_t *lo, size_t *hi)
{
    *lo = dp->n / (size_t)dp->world * (size_t)r + dp->n % (size_t)dp->world * (size_t)r / (size_t)dp->world;
    *hi = dp->n / (size_t)dp->world * (size_t)(r + 1) +
          dp->n % (size_t)dp->world * (size_t)(r + 1) / (size_t)dp->world;
}

static kiln_status plan_shards(kiln_dp *dp)
{
    /* the shards' collectives address the flat buffer with MPI's int counts and displacements */
    if (dp->zero && dp->world > 1 && dp->n > kiln_comm_max_count())
        return KILN_ERROR(KILN_ERR_UNSUPPORTED,
                          "parallel.zero=%d over %zu parameters: ZeRO's collectives address the "
                          "flat buffer with MPI's int counts and displacements, at most %zu "
                          "elements; kiln refuses rather than overflow them (use parallel.zero=0, "
                          "or fewer parameters per model)", dp->zero, dp->n, kiln_comm_max_count());
    dp->counts = calloc((size_t)dp->world, sizeof *dp->counts);
    dp->displs = calloc((size_t)dp->world, sizeof *dp->displs);
    KILN_CHECK_ALLOC(dp->counts);
    KILN_CHECK_ALLOC(dp->displs);
    for (int r = 0; r < dp->world && dp->n <= kiln_comm_max_count(); r++) {
        size_t a, b;
        shard_bounds(dp, r, &a, &b);
        dp->displs[r] = (int)a; /* checked above: used by ZeRO's collectives only */
        dp->counts[r] = (int)(b - a);
    }
    size_t lo, hi;
    shard_bounds(dp, dp->me, &lo, &hi);
    dp->lo = dp->zero ? lo : 0;
    dp->hi = dp->zero ? hi : dp->n;
    return KILN_OK;
}

kiln_status kiln_dp_plan_shares(const kiln_dp *dp, size_t offset, size_t numel, dp_shares *out)
{
    out->counts = calloc((size_t)dp->world, sizeof *out->counts);
    out->displs = calloc((size_t)dp->world, sizeof *out->displs);
    KILN_CHECK_ALLOC(out->counts);
    KILN_CHECK_ALLOC(out->displs);
    size_t end = offset + numel;
    out->mine = 0;
    for (int r = 0; r < dp->world; r++) {
        size_t s_lo = (size_t)dp->displs[r], s_hi = s_lo + (size_t)dp->counts[r];
        size_t a = max_sz(s_lo, offset), z = min_sz(s_hi, end);
        out->counts[r] = a < z ? (int)(z - a) : 0;
        out->displs[r] = r ? out->displs[r - 1] + out->counts[r - 1] : 0;
        if (r == dp->me && a < z) out->mine = a - offset;
    }
    return KILN_OK;
}

void kiln_dp_free_shares(dp_shares *s)
{
    free(s->counts);
    free(s->displs);
}

/* The first bucket (the last blocks, which backward finishes first) closes at 1 MiB whatever
 * parallel.bucket_mb says, as PyTorch DDP's does: its collective then starts early in
 * backward, and a model smaller than one bucket still overlaps something (the 2-rank GPT of
 * bench/scaling_bench.sh waited 7.5 ms a step with one bucket, 2.5 ms with 1 MiB buckets). */
#define FIRST_BUCKET_BYTES ((size_t)1 << 20)

static kiln_status plan_buckets(kiln_dp *dp, size_t bucket_bytes)
{
    kiln_model *m = dp->model;
    int nb = kiln_model_num_blocks(m);
    dp->buckets = calloc((size_t)nb, sizeof *dp->buckets);
    dp->bucket_of = calloc((size_t)nb, sizeof *dp->bucket_of);
    KILN_CHECK_ALLOC(dp->buckets);
    KILN_CHECK_ALLOC(dp->bucket_of);
    size_t elem = kiln_precision_bytes(dp->be->precision), limit = bucket_bytes / elem;
    size_t first_limit = FIRST_BUCKET_BYTES / elem < limit ? FIRST_BUCKET_BYTES / elem : limit;
    for (int i = nb - 1; i >= 0; i--) {
        const kiln_block_info *blk = kiln_model_block(m, i);
        dp_bucket *cur = dp->n_buckets ? &dp->buckets[dp->n_buckets - 1] : NULL;
        if (!cur || cur->numel >= (dp->n_buckets == 1 ? first_limit : limit)) {
            cur = &dp->buckets[dp->n_buckets++];
            cur->offset = blk->offset + blk->numel;
        }
        cur->offset = blk->offset;
        cur->numel += blk->numel;
        cur->first_block = i;
        cur->pinned |= blk->reused;
        dp->bucket_of[i] = dp->n_buckets - 1;
    }
    for (int i = 0; i < dp->n_buckets; i++) {
        dp_bucket *b = &dp->buckets[i];
        KILN_CHECK(kiln_dp_plan_shares(dp, b->offset, b->numel, &b->shares));
    }
    return KILN_OK;
}

static kiln_status dp_init(kiln_dp *dp, size_t bucket_bytes)
{
    static const kiln_block_hooks none = {0};
    kiln_block_hooks hooks = none;
    hooks.ctx = dp;
    hooks.begin = on_begin;
    hooks.end = on_end;
    hooks.done = on_done;
    KILN_CHECK(plan_shards(dp));
    KILN_CHECK(plan_buckets(dp, bucket_bytes));
    if (dp->zero >= 2) KILN_CHECK(kiln_zero_grads_init(dp));
    if (dp->zero == 3) KILN_CHECK(kiln_zero_params_init(dp));
    kiln_model_set_block_hooks(dp->model, &hooks);
    return KILN_OK;
}

kiln_status kiln_dp_create(kiln_comm *comm, kiln_model *m, const kiln_backend *be,
                           size_t bucket_bytes, int overlap, int zero_stage, kiln_dp **out)
{
    *out = NULL;
    if (zero_stage < 0 || zero_stage > 3)
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.zero must be 0, 1, 2 or 3, found %d",
                          zero_stage);
    kiln_dp *dp = calloc(1, sizeof *dp);
    KILN_CHECK_ALLOC(dp);
    dp->comm = comm;
    dp->model = m;
    dp->be = be;
    dp->overlap = overlap;
    dp->zero = zero_stage;
    dp->world = kiln_comm_size(comm, KILN_AXIS_DP);
    dp->me = kiln_comm_rank(comm, KILN_AXIS_DP);
    dp->n = kiln_model_num_params(m);
    kiln_status st = dp_init(dp, bucket_bytes);
    if (st != KILN_OK) {
        kiln_dp_free(dp);
        return st;
    }
    *out = dp;
    return KILN_OK;
}

void kiln_dp_free(kiln_dp *dp)
{
    if (!dp) return;
    kiln_model_set_block_hooks(dp->model, NULL);
    for (int i = 0; dp->buckets && i < dp->n_buckets; i++) kiln_dp_free_shares(&dp->buckets[i].shares);
    kiln_zero_grads_free(dp);
    kiln_zero_params_free(dp);
    free(dp->buckets);
    free(dp->bucket_of);
    free(dp->counts);
    free(dp->displs);
    free(dp);
}

void kiln_dp_zero_grads(kiln_dp *dp)
{
    if (dp->zero >= 2)
        dp->be->ops.zero(dp->shard_grads, dp->hi - dp->lo, dp->be->stream);
    else
        dp->be->ops.zero(kiln_model_grads(dp->model), dp->n, dp->be->stream);
}

void kiln_dp_begin_backward(kiln_dp *dp, int last)
{
    dp->next_launch = 0;
    dp->reducing = last || dp->zero >= 2;
}

kiln_status kiln_dp_finish(kiln_dp *dp)
{
    while (dp->next_launch < dp->n_buckets) launch(dp, &dp->buckets[dp->next_launch++]);
    double t0 = kiln_time_s();
    kiln_status st = dp->error;
    for (int i = 0; i < dp->n_buckets; i++) {
        if (!dp->buckets[i].req) continue;
        kiln_status w = complete(dp, &dp->buckets[i]);
        if (st == KILN_OK) st = w;
    }
    dp->wait_s += kiln_time_s() - t0;
    dp->error = KILN_OK;
    KILN_CHECK(st);
    if (dp->world > 1)
        dp->be->ops.scale(kiln_dp_shard_grads(dp), 1.0f / (float)dp->world, dp->hi - dp->lo,
                          dp->be->stream);
    return KILN_OK;
}

int kiln_dp_num_buckets(const kiln_dp *dp) { return dp->n_buckets; }

void kiln_dp_shard(const kiln_dp *dp, size_t *lo, size_t *hi)
{
    *lo = dp->lo;
    *hi = dp->hi;
}

float *kiln_dp_shard_params(kiln_dp *dp)
{
    return dp->zero == 3 ? dp->shard_params : kiln_model_params(dp->model) + dp->lo;
}

float *kiln_dp_shard_param_copy(kiln_dp *dp)
{
    return dp->zero == 3 ? dp->shard_copy : kiln_model_param_copy_at(dp->model, dp->lo);
}

float *kiln_dp_shard_grads(kiln_dp *dp)
{
    return dp->zero >= 2 ? dp->shard_grads : kiln_model_grads_at(dp->model, dp->lo);
}

kiln_status kiln_dp_grad_norm(kiln_dp *dp, double *norm)
{
    double sq = dp->be->ops.sum_squares(kiln_dp_shard_grads(dp), dp->hi - dp->lo, dp->be->stream);
    if (dp->zero) KILN_CHECK(kiln_comm_allreduce_f64(dp->comm, KILN_AXIS_DP, &sq, 1));
    *norm = sqrt(sq);
    return KILN_OK;
}

kiln_status kiln_dp_after_update(kiln_dp *dp)
{
    if (dp->zero == 3) kiln_zero_params_changed(dp); /* gathered afresh by the next forward */
    if (dp->zero == 0 || dp->zero == 3) return KILN_OK;
    double t0 = kiln_time_s();
    KILN_CHECK(kiln_comm_allgather_f32(dp->comm, KILN_AXIS_DP, kiln_model_params(dp->model),
                                       dp->counts, dp->displs));
    dp->wait_s += kiln_time_s() - t0;
    /* the other ranks' shards arrived as fp32: round them into the copy the ops read (bf16) */
    kiln_model_params_changed(dp->model);
    return KILN_OK;
}

void kiln_dp_write_part(const kiln_dp *dp, size_t *lo, size_t *hi)
{
    shard_bounds(dp, dp->me, lo, hi);
}

void kiln_dp_held_params(kiln_dp *dp, float **base, size_t *lo, size_t *hi)
{
    int sharded = dp->zero == 3;
    *base = sharded ? kiln_zero_params_held(dp) : kiln_model_host_params(dp->model);
    *lo = sharded ? dp->lo : 0;
    *hi = sharded ? dp->hi : dp->n;
}

kiln_status kiln_dp_params_to_host(kiln_dp *dp)
{
    return dp->zero == 3 ? kiln_zero_params_to_host(dp) : kiln_model_params_to_host(dp->model);
}

kiln_status kiln_dp_params_to_device(kiln_dp *dp)
{
    return dp->zero == 3 ? kiln_zero_params_to_device(dp) : kiln_model_params_to_device(dp->model);
}

void kiln_dp_memory_of(kiln_precision storage, const kiln_dp_sizes *s, int n_states,
                       size_t *params, size_t *grads, size_t *optim)
{
    size_t elem = kiln_precision_bytes(storage);
    /* the fp32 master weights of what the rank keeps (ZeRO-3: its shard) and with bf16 storage
     * their bf16 copy; ZeRO-3 also the gather buffer, in the storage type */
    size_t kept = s->zero == 3 ? s->shard : s->n;
    *params = kept * sizeof(float) + (elem == sizeof(float) ? 0 : kept * elem) +
              (s->zero == 3 ? s->gather_numel * elem : 0);
    *grads = (s->zero >= 2 ? s->shard + s->arena_numel : s->n) * elem;
    *optim = (size_t)n_states * s->shard * sizeof(float);
}

void kiln_dp_bytes(const kiln_dp *dp, int n_states, size_t *params, size_t *grads, size_t *optim)
{
    kiln_dp_sizes sizes = {dp->n, dp->hi - dp->lo, dp->zero, dp->arena_numel, dp->gather_numel};
    kiln_dp_memory_of(dp->be->precision, &sizes, n_states, params, grads, optim);
}

double kiln_dp_take_wait_s(kiln_dp *dp)
{
    double w = dp->wait_s;
    dp->wait_s = 0.0;
    return w;
}
