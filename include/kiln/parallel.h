/* Data parallelism: gradients averaged across the dp axis by all-reduce over buckets of the
 * flat gradient buffer, each launched as soon as backward has finished the blocks it covers,
 * so communication overlaps the rest of backward. */
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
                           size_t bucket_bytes, int overlap, kiln_dp **out);
void kiln_dp_free(kiln_dp *dp);
/* Before the last micro-batch's backward: arm the block hook. */
void kiln_dp_begin_backward(kiln_dp *dp);
/* After it: launch what is left, wait for every bucket, divide by the dp size. */
kiln_status kiln_dp_finish(kiln_dp *dp);
int kiln_dp_num_buckets(const kiln_dp *dp);
/* Seconds spent blocked in kiln_dp_finish since the last call (communication not hidden). */
double kiln_dp_take_wait_s(kiln_dp *dp);

#endif
