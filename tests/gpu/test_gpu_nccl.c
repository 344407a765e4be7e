/* NCCL collectives on device buffers against the same collectives through MPI on host
 * buffers, behind the same kiln_comm calls: all-reduce (blocking and not), reduce-scatter and
 * all-gather with uneven shards (as ZeRO cuts them), gather to a root; and the gradient
 * collectives on bf16 device buffers (train.precision=bf16) against MPI's fp32 sums of the same
 * bf16 values (rtol 1e-2 of the terms' scale: NCCL rounds the sum to bf16), and the bf16
 * all-gather of ZeRO-3's parameters (a copy: exact). Run under mpiexec
 * with one GPU per rank; skips (exit 77 on every rank) when the node has fewer GPUs than ranks. */
#include <cuda_runtime_api.h>
#include "gpu_common.h"
#include "kiln/comm.h"
#include "kiln/slurm.h"

static kiln_comm *comm;
static const kiln_backend *be;
static int rank, world;

/* This rank's random data: differs per rank, so a sum that misses a rank shows. */
static float *rank_data(size_t n, int salt)
{
    float *x = malloc(n * sizeof(float));
    kiln_rng_fill_normal(x, n, 0.0f, 1.0f, 77, (uint64_t)(rank * 16 + salt), 0);
    return x;
}

static void test_allreduce(size_t n)
{
    float *host = rank_data(n, 1), *dev = dev_copy(be, host, n);
    CHECK_OK(kiln_comm_allreduce_f32(comm, KILN_AXIS_DP, host, n)); /* MPI */
    CHECK_OK(kiln_comm_allreduce_f32(comm, KILN_AXIS_DP, dev, n));  /* NCCL */
    float *got = host_copy_free(be, dev, n);
    check_twin("allreduce", got, host, n, 1e-6);
    free(got);
    free(host);

    float *h2 = rank_data(n, 2), *d2 = dev_copy(be, h2, n);
    kiln_comm_request *rh, *rd;
    CHECK_OK(kiln_comm_iallreduce_f32(comm, KILN_AXIS_DP, h2, n, &rh));
    CHECK_OK(kiln_comm_iallreduce_f32(comm, KILN_AXIS_DP, d2, n, &rd));
    int done = 0;
    CHECK_OK(kiln_comm_test(rd, &done));
    CHECK_OK(kiln_comm_wait(rh));
    CHECK_OK(kiln_comm_wait(rd));
    got = host_copy_free(be, d2, n); /* the copy runs after the wait on the compute stream */
    check_twin("iallreduce", got, h2, n, 1e-6);
    free(got);
    free(h2);
}

static void test_shards(size_t n)
{
    int *counts = malloc((size_t)world * sizeof(int)), *displs = malloc((size_t)world * sizeof(int));
    for (int r = 0; r < world; r++) { /* ZeRO's cut: uneven when world does not divide n */
        displs[r] = (int)(n * (size_t)r / (size_t)world);
        counts[r] = (int)(n * (size_t)(r + 1) / (size_t)world) - displs[r];
    }
    size_t mine = (size_t)counts[rank];
    float *send = rank_data(n, 3), *send_d = dev_copy(be, send, n);
    float *recv = malloc((mine + 1) * sizeof(float)), *recv_d = be->alloc((mine + 1) * sizeof(float));
    CHECK_OK(kiln_comm_reduce_scatter_f32(comm, KILN_AXIS_DP, send, recv, counts));
    CHECK_OK(kiln_comm_reduce_scatter_f32(comm, KILN_AXIS_DP, send_d, recv_d, counts));
    float *got = host_copy_free(be, recv_d, mine);
    check_twin("reduce_scatter", got, recv, mine, 1e-6);
    free(got);

    float *full = rank_data(n, 4), *full_d = dev_copy(be, full, n);
    CHECK_OK(kiln_comm_allgather_f32(comm, KILN_AXIS_DP, full, counts, displs));
    CHECK_OK(kiln_comm_allgather_f32(comm, KILN_AXIS_DP, full_d, counts, displs));
    got = host_copy_free(be, full_d, n);
    CHECK(memcmp(got, full, n * sizeof(float)) == 0, "allgather: device result differs from MPI's");
    free(got);

    float *part = rank_data(mine + 1, 5), *part_d = dev_copy(be, part, mine);
    float *all = calloc(n, sizeof(float)), *all_d = be->alloc(n * sizeof(float));
    CHECK_OK(kiln_comm_gather_f32(comm, KILN_AXIS_DP, part, all, counts, displs, 0));
    CHECK_OK(kiln_comm_gather_f32(comm, KILN_AXIS_DP, part_d, all_d, counts, displs, 0));
    got = host_copy_free(be, all_d, n);
    if (rank == 0)
        CHECK(memcmp(got, all, n * sizeof(float)) == 0, "gather: device result differs from MPI's");
    be->free(part_d);
    be->free(send_d);
    free(got);
    free(all);
    free(part);
    free(full);
    free(recv);
    free(send);
    free(counts);
    free(displs);
}

/* bf16 gradients: all-reduce and the in-place reduce-scatter in bf16 on the GPU, MPI's fp32
 * on the host (the same bf16 values as floats), and a bf16 host buffer refused. */
static void test_bf16_gradients(const kiln_backend *bf16, size_t n)
{
    float *host = rank_data(n, 6);
    round_to_storage(bf16, host, n);
    float *dev = dev_copy_as(bf16, host, n, 0);
    kiln_comm_request *req = NULL;
    CHECK_OK(kiln_comm_allreduce_f32(comm, KILN_AXIS_DP, host, n));
    CHECK_OK(kiln_comm_iallreduce_typed(comm, KILN_AXIS_DP, KILN_PRECISION_BF16, dev, n, &req));
    CHECK_OK(kiln_comm_wait(req));
    float *got = host_copy_as(bf16, dev, n, 0);
    check_twin_frac("bf16 iallreduce", got, host, n, 1e-2, 1.0);
    free(got);

    int *counts = malloc((size_t)world * sizeof(int));
    size_t before = 0;
    for (int r = 0; r < world; r++) {
        counts[r] = (int)(n * (size_t)(r + 1) / (size_t)world - n * (size_t)r / (size_t)world);
        if (r < rank) before += (size_t)counts[r];
    }
    size_t mine = (size_t)counts[rank];
    float *send = rank_data(n, 7);
    round_to_storage(bf16, send, n);
    float *send_d = dev_copy_as(bf16, send, n, 0), *recv = malloc((mine + 1) * sizeof(float));
    CHECK_OK(kiln_comm_reduce_scatter_f32(comm, KILN_AXIS_DP, send, recv, counts));
    CHECK_OK(kiln_comm_ireduce_scatter_typed(comm, KILN_AXIS_DP, KILN_PRECISION_BF16, send_d,
                                             counts, &req));
    CHECK_OK(kiln_comm_wait(req));
    got = host_copy_as(bf16, kiln_storage_at(KILN_PRECISION_BF16, send_d, before), mine, 0);
    check_twin_frac("bf16 ireduce_scatter (in place)", got, recv, mine, 1e-2, 1.0);
    free(got);

    /* ZeRO-3's bf16 parameter gather: a copy, so exactly MPI's fp32 gather of the same values */
    int *displs = malloc((size_t)world * sizeof(int));
    for (int r = 0; r < world; r++) displs[r] = r ? displs[r - 1] + counts[r - 1] : 0;
    float *full = rank_data(n, 8);
    round_to_storage(bf16, full, n);
    float *full_d = dev_copy_as(bf16, full, n, 0);
    CHECK_OK(kiln_comm_allgather_f32(comm, KILN_AXIS_DP, full, counts, displs));
    CHECK_OK(kiln_comm_allgather_typed(comm, KILN_AXIS_DP, KILN_PRECISION_BF16, full_d, counts,
                                       displs));
    got = host_copy_as(bf16, full_d, n, 0);
    CHECK(memcmp(got, full, n * sizeof(float)) == 0,
          "bf16 allgather: device result differs from MPI's fp32 gather of the same values");
    free(got);
    bf16->free(full_d);
    free(full);
    free(displs);
    if (world > 1) {
        req = NULL;
        CHECK_FAILS(kiln_comm_iallreduce_typed(comm, KILN_AXIS_DP, KILN_PRECISION_BF16, host, n,
                                               &req),
                    KILN_ERR_ARG, "MPI has no bf16 type");
        if (req) CHECK_OK(kiln_comm_wait(req)); /* nothing was started; this frees it */
    }
    bf16->free(dev);
    bf16->free(send_d);
    free(host);
    free(send);
    free(recv);
    free(counts);
}

int main(int argc, char **argv)
{
    if (kiln_comm_init(&argc, &argv, 1, &comm) != KILN_OK) {
        fprintf(stderr, "MPI init failed: %s\n", kiln_error_message());
        return 1;
    }
    rank = kiln_comm_rank(comm, KILN_AXIS_DP);
    world = kiln_comm_size(comm, KILN_AXIS_DP);
    int local_rank, local_size, gpus = kiln_gpus_present();
    kiln_local_rank(&local_rank, &local_size);
    /* the driver's count, not CUDA's: a GPU that CUDA cannot use fails below, never skips */
    int skip = gpus < local_size;
    if (skip) { /* the same answer on every rank of the node, so all skip together */
        if (rank == 0)
            printf("SKIP: NCCL needs one GPU per rank: %d ranks on this node, %d GPUs visible\n",
                   local_size, gpus);
        kiln_comm_finalize(comm);
        return GPU_SKIP;
    }
    be = gpu_backend_or_skip("fp32");
    CHECK_OK(kiln_comm_attach_device(comm, be));
    size_t sizes[] = {1, 1000, 1000003};
    const kiln_backend *bf16 = gpu_backend_or_skip("bf16");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        test_allreduce(sizes[i]);
        test_shards(sizes[i]);
        test_bf16_gradients(bf16, sizes[i]);
    }
    CHECK_OK(be->synchronize(be->stream));
    kiln_comm_finalize(comm);
    TEST_MAIN_END();
}
