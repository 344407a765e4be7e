/* NCCL behind the comm layer (see nccl.h): communicators per axis from MPI, and the
 * collectives kiln uses on device buffers. Uneven shards (ZeRO cuts the flat buffer at
 * n*r/world) are grouped point collectives: a reduce to each rank for reduce-scatter, a
 * broadcast from each rank for all-gather, send/recv for gather. */
#include <nccl.h>
#include <stdlib.h>
#include "../device/cuda_backend.h"
#include "kiln/log.h"
#include "nccl.h"

struct kiln_nccl {
    ncclComm_t axis[3];          /* KILN_AXIS_WORLD, _DP, _PP; NULL for a one-rank axis */
    int shared[3];               /* the axis reuses the world communicator (same ranks) */
    int rank[3], size[3];
    cudaStream_t stream;         /* where every collective runs */
    cudaEvent_t ready;           /* the compute stream's work so far */
};

#define NCCL_CHECK(call)                                                                   \
    do {                                                                                   \
        ncclResult_t kiln_r_ = (call);                                                     \
        if (kiln_r_ != ncclSuccess)                                                        \
            return KILN_ERROR(KILN_ERR_DEVICE, "%s failed: %s", #call,                     \
                              ncclGetErrorString(kiln_r_));                                \
    } while (0)

static kiln_status mpi_ok(int rc, const char *what)
{
    return rc == MPI_SUCCESS ? KILN_OK : KILN_ERROR(KILN_ERR_MPI, "%s failed (code %d)", what, rc);
}

/* The axis root makes the id, MPI carries it to the others, all join. */
static kiln_status axis_init(kiln_nccl *n, int a, MPI_Comm comm)
{
    MPI_Comm_rank(comm, &n->rank[a]);
    MPI_Comm_size(comm, &n->size[a]);
    ncclUniqueId id;
    if (n->rank[a] == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    KILN_CHECK(mpi_ok(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm), "MPI_Bcast(ncclUniqueId)"));
    NCCL_CHECK(ncclCommInitRank(&n->axis[a], n->size[a], id, n->rank[a]));
    return KILN_OK;
}

kiln_status kiln_nccl_create(MPI_Comm world, MPI_Comm dp, MPI_Comm pp, kiln_nccl **out)
{
    *out = NULL;
    if (!kiln_cuda_compute_stream())
        return KILN_ERROR(KILN_ERR_ARG, "NCCL: the CUDA backend must be set up first");
    kiln_nccl *n = calloc(1, sizeof *n);
    KILN_CHECK_ALLOC(n);
    *out = n; /* kiln_nccl_free undoes a partial setup */
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking));
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming));
    KILN_CHECK(axis_init(n, KILN_AXIS_WORLD, world));
    MPI_Comm others[3] = {world, dp, pp};
    for (int a = KILN_AXIS_DP; a <= KILN_AXIS_PP; a++) {
        int size;
        MPI_Comm_size(others[a], &size);
        if (size == n->size[KILN_AXIS_WORLD]) { /* the same ranks in the same order */
            n->axis[a] = n->axis[KILN_AXIS_WORLD];
            n->shared[a] = 1;
            n->rank[a] = n->rank[KILN_AXIS_WORLD];
            n->size[a] = size;
        } else {
            KILN_CHECK(axis_init(n, a, others[a]));
        }
    }
    kiln_debug("nccl: world rank %d of %d, dp %d of %d, pp %d of %d", n->rank[0], n->size[0],
               n->rank[1], n->size[1], n->rank[2], n->size[2]);
    return KILN_OK;
}

void kiln_nccl_free(kiln_nccl *n)
{
    if (!n) return;
    for (int a = 0; a < 3; a++)
        if (n->axis[a] && !n->shared[a]) ncclCommDestroy(n->axis[a]);
    if (n->ready) cudaEventDestroy(n->ready);
    if (n->stream) cudaStreamDestroy(n->stream);
    free(n);
}

int kiln_nccl_is_device(const void *buf) { return kiln_cuda_is_device_pointer(buf); }

/* NCCL's stream waits for the compute stream's work so far. */
static kiln_status begin(kiln_nccl *n)
{
    KILN_CUDA_CHECK(cudaEventRecord(n->ready, kiln_cuda_compute_stream()));
    KILN_CUDA_CHECK(cudaStreamWaitEvent(n->stream, n->ready, 0));
    return KILN_OK;
}

/* An event after the collective: returned in *done, or (done NULL) made the compute stream's
 * next dependency right away. */
static kiln_status end(kiln_nccl *n, void **done)
{
    cudaEvent_t ev;
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    KILN_CUDA_CHECK(cudaEventRecord(ev, n->stream));
    if (done) {
        *done = ev;
        return KILN_OK;
    }
    return kiln_nccl_finish(ev);
}

/* bf16 sums are NCCL's own: each step of its ring or tree adds in fp32 and rounds to bf16. */
static ncclDataType_t nccl_type(kiln_precision type)
{
    return type == KILN_PRECISION_BF16 ? ncclBfloat16 : ncclFloat;
}

kiln_status kiln_nccl_iallreduce(kiln_nccl *n, kiln_axis axis, kiln_precision type, void *buf,
                                 size_t count, void **done)
{
    KILN_CHECK(begin(n));
    NCCL_CHECK(ncclAllReduce(buf, buf, count, nccl_type(type), ncclSum, n->axis[axis], n->stream));
    return end(n, done);
}

kiln_status kiln_nccl_allreduce(kiln_nccl *n, kiln_axis axis, float *buf, size_t count)
{
    return kiln_nccl_iallreduce(n, axis, KILN_PRECISION_FP32, buf, count, NULL);
}

kiln_status kiln_nccl_done(void *done, int *finished)
{
    cudaError_t e = cudaEventQuery((cudaEvent_t)done);
    *finished = e == cudaSuccess;
    if (e == cudaErrorNotReady) return KILN_OK;
    KILN_CUDA_CHECK(e);
    return KILN_OK;
}

kiln_status kiln_nccl_finish(void *done)
{
    cudaEvent_t ev = (cudaEvent_t)done;
    cudaError_t e = cudaStreamWaitEvent(kiln_cuda_compute_stream(), ev, 0);
    cudaEventDestroy(ev); /* safe while waited on: released once it completes */
    KILN_CUDA_CHECK(e);
    return KILN_OK;
}

static void offsets(const int *counts, int size, size_t *displs)
{
    size_t at = 0;
    for (int r = 0; r < size; r++) {
        displs[r] = at;
        at += (size_t)counts[r];
    }
}

kiln_status kiln_nccl_reduce_scatter(kiln_nccl *n, kiln_axis axis, kiln_precision type,
                                     const void *send, void *recv, const int *counts)
{
    size_t elem = kiln_precision_bytes(type);
    int size = n->size[axis];
    size_t *displs = malloc((size_t)size * sizeof *displs);
    KILN_CHECK_ALLOC(displs);
    offsets(counts, size, displs);
    kiln_status st = begin(n);
    ncclResult_t r = ncclSuccess;
    if (st == KILN_OK) {
        r = ncclGroupStart();
        for (int root = 0; root < size && r == ncclSuccess; root++)
            r = ncclReduce((const char *)send + displs[root] * elem, recv, (size_t)counts[root],
                           nccl_type(type), ncclSum, root, n->axis[axis], n->stream);
        ncclResult_t g = ncclGroupEnd();
        if (r == ncclSuccess) r = g;
    }
    free(displs);
    KILN_CHECK(st);
    NCCL_CHECK(r);
    return end(n, NULL);
}

kiln_status kiln_nccl_allgather(kiln_nccl *n, kiln_axis axis, kiln_precision type, void *buf,
                                const int *counts, const int *displs)
{
    size_t elem = kiln_precision_bytes(type);
    KILN_CHECK(begin(n));
    NCCL_CHECK(ncclGroupStart());
    ncclResult_t r = ncclSuccess;
    for (int root = 0; root < n->size[axis] && r == ncclSuccess; root++) {
        char *slice = (char *)buf + (size_t)displs[root] * elem;
        r = ncclBroadcast(slice, slice, (size_t)counts[root], nccl_type(type), root, n->axis[axis],
                          n->stream);
    }
    ncclResult_t g = ncclGroupEnd();
    NCCL_CHECK(r);
    NCCL_CHECK(g);
    return end(n, NULL);
}

kiln_status kiln_nccl_gather(kiln_nccl *n, kiln_axis axis, const float *send, float *recv,
                             const int *counts, const int *displs, int root)
{
    int me = n->rank[axis];
    if (me == root && !kiln_nccl_is_device(recv))
        return KILN_ERROR(KILN_ERR_ARG, "gather: a device send buffer needs a device receive "
                          "buffer on the root");
    KILN_CHECK(begin(n));
    if (me == root)
        KILN_CUDA_CHECK(cudaMemcpyAsync(recv + displs[me], send, (size_t)counts[me] * sizeof(float),
                                        cudaMemcpyDeviceToDevice, n->stream));
    NCCL_CHECK(ncclGroupStart());
    ncclResult_t r = ncclSuccess;
    if (me == root) {
        for (int src = 0; src < n->size[axis] && r == ncclSuccess; src++)
            if (src != root)
                r = ncclRecv(recv + displs[src], (size_t)counts[src], ncclFloat, src,
                             n->axis[axis], n->stream);
    } else {
        r = ncclSend(send, (size_t)counts[me], ncclFloat, root, n->axis[axis], n->stream);
    }
    ncclResult_t g = ncclGroupEnd();
    NCCL_CHECK(r);
    NCCL_CHECK(g);
    return end(n, NULL);
}

kiln_status kiln_nccl_send(kiln_nccl *n, kiln_axis axis, int peer, kiln_precision type,
                           const void *buf, size_t count, void **done)
{
    KILN_CHECK(begin(n));
    NCCL_CHECK(ncclSend(buf, count, nccl_type(type), peer, n->axis[axis], n->stream));
    return end(n, done);
}

kiln_status kiln_nccl_recv(kiln_nccl *n, kiln_axis axis, int peer, kiln_precision type, void *buf,
                           size_t count, void **done)
{
    KILN_CHECK(begin(n));
    NCCL_CHECK(ncclRecv(buf, count, nccl_type(type), peer, n->axis[axis], n->stream));
    return end(n, done);
}
