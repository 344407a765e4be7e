/* Data parallelism: gradients averaged across the dp axis by all-reduce over buckets of the
 * flat gradient buffer, each launched as soon as backward has finished the blocks it covers,
 * so communication overlaps the rest of backward.
 *
 * ZeRO stage 1 shards the optimizer state: rank r of the dp axis owns the flat parameter range
 * [n*r/dp, n*(r+1)/dp). Gradients are reduce-scattered so each rank gets the averaged gradient
 * of its range, updates that range with its share of the optimizer state, and an all-gather
 * gives every rank the new parameters. Stages 2 and 3 are not built yet. */
#ifndef KILN_PARALLEL_H
#define KILN_PARALLEL_H
#include <stddef.h>
#include "kiln/comm.h"
#include "kiln/model.h"
#include "kiln/status.h"

typedef struct kiln_dp kiln_dp;

/* Buckets of about bucket_bytes (whole blocks, last block first). overlap = 0 reduces
 * everything after backward instead (for measuring what overlap saves). */
kiln_status kiln_dp_create(kiln_comm *comm, kiln_model *m, const kiln_backend *be,
                           size_t bucket_bytes, int overlap, int zero_stage, kiln_dp **out);
void kiln_dp_free(kiln_dp *dp);
/* Before the last micro-batch's backward: arm the block hook. */
void kiln_dp_begin_backward(kiln_dp *dp);
/* After it: launch what is left, wait for every bucket, divide by the dp size. */
kiln_status kiln_dp_finish(kiln_dp *dp);
int kiln_dp_num_buckets(const kiln_dp *dp);
/* The parameter range whose optimizer state and averaged gradient this rank owns (the whole
 * model at stage 0). */
void kiln_dp_shard(const kiln_dp *dp, size_t *lo, size_t *hi);
/* Global L2 norm of the averaged gradient (summed over shards at stage >= 1). */
kiln_status kiln_dp_grad_norm(kiln_dp *dp, double *norm);
/* After the optimizer updated this rank's range: give every rank the whole new parameters. */
kiln_status kiln_dp_after_update(kiln_dp *dp);
/* Checkpoints: the whole of a state buffer that is sharded like the parameters, gathered on dp
 * rank 0 (full is n_params floats there, unused elsewhere); a plain copy at stage 0. */
kiln_status kiln_dp_gather_state(kiln_dp *dp, const float *shard, float *full);
/* Bytes this rank holds for parameters, gradients and optimizer state (n_states buffers). */
void kiln_dp_bytes(const kiln_dp *dp, int n_states, size_t *params, size_t *grads, size_t *optim);
/* Seconds spent blocked in kiln_dp_finish since the last call (communication not hidden). */
double kiln_dp_take_wait_s(kiln_dp *dp);

#endif
