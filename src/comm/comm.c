/* MPI behind the comm interface, and NCCL (nccl.c) for device buffers once a GPU backend is
 * attached: each float collective goes where its buffer lives. The grid is pp x dp with
 * pipeline stages outermost: ranks r and r + dp hold the same data-parallel slot in
 * neighbouring stages. */
#include "kiln/comm.h"
#include "kiln/comm_mpi.h"
#include <mpi.h>
#include "kiln/runtime.h"
#include <stdlib.h>
#include <string.h>
#include "nccl.h"

struct kiln_comm {
    MPI_Comm world, dp, pp;
    int owns_mpi; /* we called MPI_Init, so we finalize */
    kiln_nccl *nccl; /* NULL until a device backend is attached */
    int failure_agreed; /* the last agreement ended in a failure that every rank knows of */
};

struct kiln_comm_request {
    MPI_Request r;
    MPI_Request *more;           /* the further pieces of a collective split at max_count */
    int n_more;
    void *nccl_done;             /* a device all-reduce: its completion event */
    int *counts;                 /* kept alive until completion, as MPI requires */
    float *move_to, *move_from;  /* in-place reduce-scatter: MPI leaves the slice at the start */
    size_t move_n;
};

/* Device buffers go through NCCL (MPI here is not CUDA-aware). */
static int on_device(const kiln_comm *c, const void *buf)
{
    return c && c->nccl && kiln_nccl_is_device(buf);
}

static kiln_status mpi_status(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return KILN_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return KILN_ERROR(KILN_ERR_MPI, "%s failed: %s", what, msg);
}

/* The most elements one MPI call carries: MPI counts are int. Collectives over more are split
 * into pieces of this size; what cannot be split (an all-gather's int displacements) is
 * refused. Tests lower it to exercise the splitting. */
static size_t max_count = KILN_COMM_MAX_COUNT;

void kiln_comm_set_max_count(size_t n) { max_count = n ? n : KILN_COMM_MAX_COUNT; }
size_t kiln_comm_max_count(void) { return max_count; }

static MPI_Comm axis_comm(const kiln_comm *c, kiln_axis axis)
{
    return axis == KILN_AXIS_DP ? c->dp : axis == KILN_AXIS_PP ? c->pp : c->world;
}

MPI_Comm kiln_comm_mpi(const kiln_comm *c, kiln_axis axis) { return axis_comm(c, axis); }

kiln_status kiln_comm_init(int *argc, char ***argv, int pp, kiln_comm **out)
{
    *out = NULL;
    kiln_comm *c = calloc(1, sizeof *c);
    KILN_CHECK_ALLOC(c);
    int inited = 0, provided;
    MPI_Initialized(&inited);
    if (!inited) {
        /* only the main thread calls MPI (the prefetch thread never does) */
        KILN_CHECK(mpi_status(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init"));
        c->owns_mpi = 1;
    }
    /* errors come back as codes so they get kiln's messages instead of an abort */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    c->world = MPI_COMM_WORLD;
    int rank, size;
    MPI_Comm_rank(c->world, &rank);
    MPI_Comm_size(c->world, &size);
    if (pp <= 0 || size % pp) {
        kiln_comm_finalize(c);
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "parallel.pp (%d) must divide the number of ranks (%d)", pp, size);
    }
    int dp = size / pp;
    KILN_CHECK(mpi_status(MPI_Comm_split(c->world, rank / dp, rank, &c->dp), "MPI_Comm_split(dp)"));
    KILN_CHECK(mpi_status(MPI_Comm_split(c->world, rank % dp, rank, &c->pp), "MPI_Comm_split(pp)"));
    *out = c;
    return KILN_OK;
}

kiln_status kiln_comm_attach_device(kiln_comm *c, const kiln_backend *be)
{
    if (!c || be->kind == KILN_DEVICE_CPU || c->nccl) return KILN_OK;
    kiln_status st = kiln_nccl_create(c->world, c->dp, c->pp, &c->nccl);
    if (st != KILN_OK) {
        kiln_nccl_free(c->nccl);
        c->nccl = NULL;
    }
    return st;
}

void kiln_comm_finalize(kiln_comm *c)
{
    if (!c) return;
    kiln_nccl_free(c->nccl);
    if (c->dp != MPI_COMM_NULL && c->dp) MPI_Comm_free(&c->dp);
    if (c->pp != MPI_COMM_NULL && c->pp) MPI_Comm_free(&c->pp);
    /* a sub-communicator's world is its own (kiln_comm_split) */
    if (c->world != MPI_COMM_NULL && c->world && c->world != MPI_COMM_WORLD)
        MPI_Comm_free(&c->world);
    if (c->owns_mpi) MPI_Finalize();
    free(c);
}

int kiln_comm_rank(const kiln_comm *c, kiln_axis axis)
{
    int r = 0;
    if (c) MPI_Comm_rank(axis_comm(c, axis), &r);
    return r;
}

int kiln_comm_size(const kiln_comm *c, kiln_axis axis)
{
    int n = 1;
    if (c) MPI_Comm_size(axis_comm(c, axis), &n);
    return n;
}

/* An in-place sum of n elements of `type` (elem bytes each), max_count at a time. */
static kiln_status allreduce_op_pieces(kiln_comm *c, kiln_axis axis, void *buf, size_t n,
                                       MPI_Datatype type, size_t elem, MPI_Op op, const char *what)
{
    for (size_t at = 0; at < n; at += max_count) {
        int count = (int)(n - at < max_count ? n - at : max_count);
        KILN_CHECK(mpi_status(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * elem, count, type,
                                            op, axis_comm(c, axis)), what));
    }
    return KILN_OK;
}

static kiln_status allreduce_pieces(kiln_comm *c, kiln_axis axis, void *buf, size_t n,
                                    MPI_Datatype type, size_t elem, const char *what)
{
    return allreduce_op_pieces(c, axis, buf, n, type, elem, MPI_SUM, what);
}

kiln_status kiln_comm_allreduce_f32(kiln_comm *c, kiln_axis axis, float *buf, size_t n)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    if (on_device(c, buf)) return kiln_nccl_allreduce(c->nccl, axis, buf, n);
    return allreduce_pieces(c, axis, buf, n, MPI_FLOAT, sizeof(float), "MPI_Allreduce(float)");
}

kiln_status kiln_comm_allreduce_f64(kiln_comm *c, kiln_axis axis, double *buf, size_t n)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    return allreduce_pieces(c, axis, buf, n, MPI_DOUBLE, sizeof(double), "MPI_Allreduce(double)");
}

kiln_status kiln_comm_allreduce_i64(kiln_comm *c, kiln_axis axis, int64_t *buf, size_t n)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    return allreduce_pieces(c, axis, buf, n, MPI_INT64_T, sizeof(int64_t), "MPI_Allreduce(int64)");
}

kiln_status kiln_comm_allreduce_max_f64(kiln_comm *c, kiln_axis axis, double *buf, size_t n)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    return allreduce_op_pieces(c, axis, buf, n, MPI_DOUBLE, sizeof(double), MPI_MAX,
                               "MPI_Allreduce(double, max)");
}

/* MPI carries fp32 only: bf16 buffers are device buffers (NCCL) or a mistake. */
static kiln_status mpi_float_only(kiln_precision type, const char *what)
{
    if (type == KILN_PRECISION_FP32) return KILN_OK;
    return KILN_ERROR(KILN_ERR_ARG, "%s of bf16 elements on a host buffer: MPI has no bf16 type "
                      "(bf16 buffers live on a GPU, where NCCL sums them)", what);
}

/* A request with nothing to wait for. */
static kiln_status new_request(kiln_comm_request **req)
{
    *req = calloc(1, sizeof **req);
    KILN_CHECK_ALLOC(*req);
    (*req)->r = MPI_REQUEST_NULL;
    return KILN_OK;
}

kiln_status kiln_comm_iallreduce_typed(kiln_comm *c, kiln_axis axis, kiln_precision type,
                                       float *buf, size_t n, kiln_comm_request **req)
{
    KILN_CHECK(new_request(req));
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    if (on_device(c, buf))
        return kiln_nccl_iallreduce(c->nccl, axis, type, buf, n, &(*req)->nccl_done);
    KILN_CHECK(mpi_float_only(type, "all-reduce")); /* the caller still waits (and frees) *req */
    kiln_comm_request *q = *req;
    size_t pieces = (n + max_count - 1) / max_count;
    if (pieces > 1) {
        q->more = malloc((pieces - 1) * sizeof *q->more);
        KILN_CHECK_ALLOC(q->more);
    }
    for (size_t p = 0; p < pieces; p++) {
        size_t at = p * max_count;
        int count = (int)(n - at < max_count ? n - at : max_count);
        MPI_Request *r = p ? &q->more[q->n_more] : &q->r;
        KILN_CHECK(mpi_status(MPI_Iallreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM,
                                             axis_comm(c, axis), r),
                              "MPI_Iallreduce"));
        if (p) q->n_more++;
    }
    return KILN_OK;
}

kiln_status kiln_comm_iallreduce_f32(kiln_comm *c, kiln_axis axis, float *buf, size_t n,
                                     kiln_comm_request **req)
{
    return kiln_comm_iallreduce_typed(c, axis, KILN_PRECISION_FP32, buf, n, req);
}

kiln_status kiln_comm_ireduce_scatter_typed(kiln_comm *c, kiln_axis axis, kiln_precision type,
                                            float *buf, const int *counts,
                                            kiln_comm_request **req)
{
    KILN_CHECK(new_request(req));
    int n = kiln_comm_size(c, axis), me = kiln_comm_rank(c, axis);
    if (n == 1) return KILN_OK;
    (*req)->counts = malloc((size_t)n * sizeof(int));
    KILN_CHECK_ALLOC((*req)->counts);
    size_t before = 0;
    for (int r = 0; r < n; r++) {
        (*req)->counts[r] = counts[r];
        if (r < me) before += (size_t)counts[r];
    }
    /* NCCL reduces each rank's slice onto that rank in place (ordered on the streams, so the
     * request is complete as far as the host is concerned) */
    if (on_device(c, buf))
        return kiln_nccl_reduce_scatter(c->nccl, axis, type, buf, kiln_storage_at(type, buf, before),
                                        counts);
    KILN_CHECK(mpi_float_only(type, "reduce-scatter"));
    (*req)->move_to = buf + before;
    (*req)->move_from = buf;
    (*req)->move_n = (size_t)counts[me];
    return mpi_status(MPI_Ireduce_scatter(MPI_IN_PLACE, buf, (*req)->counts, MPI_FLOAT, MPI_SUM,
                                          axis_comm(c, axis), &(*req)->r),
                      "MPI_Ireduce_scatter");
}

kiln_status kiln_comm_ireduce_scatter_f32(kiln_comm *c, kiln_axis axis, float *buf,
                                          const int *counts, kiln_comm_request **req)
{
    return kiln_comm_ireduce_scatter_typed(c, axis, KILN_PRECISION_FP32, buf, counts, req);
}

kiln_status kiln_comm_test(kiln_comm_request *req, int *done)
{
    *done = 1;
    if (req->nccl_done) return kiln_nccl_done(req->nccl_done, done);
    if (req->n_more) {
        int all = 0;
        KILN_CHECK(mpi_status(MPI_Testall(req->n_more, req->more, &all, MPI_STATUSES_IGNORE),
                              "MPI_Testall"));
        *done = all;
    }
    if (req->r == MPI_REQUEST_NULL) return KILN_OK;
    int first = 0;
    KILN_CHECK(mpi_status(MPI_Test(&req->r, &first, MPI_STATUS_IGNORE), "MPI_Test"));
    *done = *done && first;
    return KILN_OK;
}

kiln_status kiln_comm_wait(kiln_comm_request *req)
{
    if (req->nccl_done) { /* device: the compute stream waits, the host does not */
        kiln_status st = kiln_nccl_finish(req->nccl_done);
        free(req);
        return st;
    }
    int rc = req->r == MPI_REQUEST_NULL ? MPI_SUCCESS : MPI_Wait(&req->r, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && req->n_more)
        rc = MPI_Waitall(req->n_more, req->more, MPI_STATUSES_IGNORE);
    if (rc == MPI_SUCCESS && req->move_n && req->move_to != req->move_from)
        memmove(req->move_to, req->move_from, req->move_n * sizeof(float));
    free(req->counts);
    free(req->more);
    free(req);
    return mpi_status(rc, "MPI_Wait");
}

kiln_status kiln_comm_reduce_scatter_f32(kiln_comm *c, kiln_axis axis, const float *send,
                                         float *recv, const int *counts)
{
    if (on_device(c, send))
        return kiln_nccl_reduce_scatter(c->nccl, axis, KILN_PRECISION_FP32, send, recv, counts);
    return mpi_status(MPI_Reduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, axis_comm(c, axis)),
                      "MPI_Reduce_scatter");
}

kiln_status kiln_comm_allgather_typed(kiln_comm *c, kiln_axis axis, kiln_precision type,
                                      float *buf, const int *counts, const int *displs)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK; /* the one slice is in place already */
    if (on_device(c, buf)) return kiln_nccl_allgather(c->nccl, axis, type, buf, counts, displs);
    KILN_CHECK(mpi_float_only(type, "all-gather"));
    return mpi_status(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs,
                                     MPI_FLOAT, axis_comm(c, axis)),
                      "MPI_Allgatherv");
}

kiln_status kiln_comm_allgather_f32(kiln_comm *c, kiln_axis axis, float *buf, const int *counts,
                                    const int *displs)
{
    return kiln_comm_allgather_typed(c, axis, KILN_PRECISION_FP32, buf, counts, displs);
}

kiln_status kiln_comm_gather_f32(kiln_comm *c, kiln_axis axis, const float *send, float *recv,
                                 const int *counts, const int *displs, int root)
{
    if (on_device(c, send)) return kiln_nccl_gather(c->nccl, axis, send, recv, counts, displs, root);
    MPI_Comm comm = axis_comm(c, axis);
    int me;
    MPI_Comm_rank(comm, &me);
    return mpi_status(MPI_Gatherv(send, counts[me], MPI_FLOAT, recv, counts, displs, MPI_FLOAT, root,
                                  comm),
                      "MPI_Gatherv");
}

kiln_status kiln_comm_gather_bytes(kiln_comm *c, kiln_axis axis, const void *send, void *recv,
                                   const int *counts, const int *displs, int root)
{
    MPI_Comm comm = axis_comm(c, axis);
    int me;
    MPI_Comm_rank(comm, &me);
    return mpi_status(MPI_Gatherv(send, counts[me], MPI_BYTE, recv, counts, displs, MPI_BYTE, root, comm),
                      "MPI_Gatherv");
}

kiln_status kiln_comm_bcast(kiln_comm *c, kiln_axis axis, void *buf, size_t bytes, int root)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    for (size_t at = 0; at < bytes; at += max_count) {
        int count = (int)(bytes - at < max_count ? bytes - at : max_count);
        KILN_CHECK(mpi_status(MPI_Bcast((char *)buf + at, count, MPI_BYTE, root,
                                        axis_comm(c, axis)), "MPI_Bcast"));
    }
    return KILN_OK;
}

kiln_status kiln_comm_allgather_bytes(kiln_comm *c, kiln_axis axis, const void *send, void *recv,
                                      size_t bytes)
{
    if (kiln_comm_size(c, axis) == 1) {
        memcpy(recv, send, bytes);
        return KILN_OK;
    }
    if (bytes > max_count)
        return KILN_ERROR(KILN_ERR_ARG, "all-gather of %zu bytes a rank: more than one MPI call "
                          "carries (%zu)", bytes, max_count);
    return mpi_status(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                                    axis_comm(c, axis)),
                      "MPI_Allgather");
}

/* The pieces of one peer's bytes, each at most max_count: posted as non-blocking sends or
 * receives into reqs (at *n), so that no MPI count overflows whatever the sizes. */
static kiln_status post_pieces(MPI_Comm comm, int peer, int sending, char *buf, uint64_t bytes,
                               MPI_Request *reqs, int *n)
{
    enum { EXCHANGE_TAG = 7301 };
    for (uint64_t at = 0; at < bytes; at += max_count) {
        int count = (int)(bytes - at < max_count ? bytes - at : max_count);
        int rc = sending ? MPI_Isend(buf + at, count, MPI_BYTE, peer, EXCHANGE_TAG, comm, &reqs[*n])
                         : MPI_Irecv(buf + at, count, MPI_BYTE, peer, EXCHANGE_TAG, comm, &reqs[*n]);
        KILN_CHECK(mpi_status(rc, sending ? "MPI_Isend(exchange)" : "MPI_Irecv(exchange)"));
        (*n)++;
    }
    return KILN_OK;
}

static uint64_t pieces(uint64_t bytes) { return (bytes + max_count - 1) / max_count; }

kiln_status kiln_comm_exchange(kiln_comm *c, kiln_axis axis, const void *send,
                               const uint64_t *send_counts, size_t elem, void **recv,
                               uint64_t *recv_counts)
{
    MPI_Comm comm = axis_comm(c, axis);
    int size = kiln_comm_size(c, axis), me = kiln_comm_rank(c, axis);
    *recv = NULL;
    KILN_CHECK(mpi_status(MPI_Alltoall(send_counts, 1, MPI_UINT64_T, recv_counts, 1, MPI_UINT64_T,
                                       comm), "MPI_Alltoall(exchange counts)"));
    uint64_t total = 0, n_req = 0;
    kiln_status st = KILN_OK;
    for (int p = 0; st == KILN_OK && p < size; p++) {
        if (recv_counts[p] > (UINT64_MAX / 2 - total * elem) / elem)
            st = KILN_ERROR(KILN_ERR_ARG, "exchange: more than 2^63 bytes to receive");
        total += recv_counts[p];
        if (p != me) n_req += pieces(send_counts[p] * elem) + pieces(recv_counts[p] * elem);
    }
    *recv = st == KILN_OK ? malloc(total * elem + 1) : NULL;
    MPI_Request *reqs = st == KILN_OK ? malloc((n_req + 1) * sizeof *reqs) : NULL;
    if (st == KILN_OK && (!*recv || !reqs))
        st = KILN_ERROR(KILN_ERR_NOMEM, "exchange: %llu bytes to receive", (unsigned long long)(total * elem));
    /* every rank posts its sends and receives, or none does: a peer left waiting would hang */
    int failed = st != KILN_OK, any = failed;
    kiln_status agreed = mpi_status(MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm), "MPI_Allreduce(exchange)");
    if (st == KILN_OK && (agreed != KILN_OK || any))
        st = agreed != KILN_OK ? agreed : KILN_ERROR(KILN_ERR_INTERNAL, "exchange: another rank could not take part");
    if (st != KILN_OK) {
        free(*recv), free(reqs), *recv = NULL;
        return st;
    }
    const char *from = send;
    char *into = *recv;
    int n = 0;
    for (int p = 0; st == KILN_OK && p < size; p++) {
        uint64_t out_bytes = send_counts[p] * elem, in_bytes = recv_counts[p] * elem;
        if (p == me) memcpy(into, from, out_bytes);
        else st = post_pieces(comm, p, 0, into, in_bytes, reqs, &n);
        if (st == KILN_OK && p != me) st = post_pieces(comm, p, 1, (char *)from, out_bytes, reqs, &n);
        from += out_bytes, into += in_bytes;
    }
    /* whatever was posted completes before the buffers can go */
    kiln_status done = n ? mpi_status(MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE), "MPI_Waitall(exchange)")
                         : KILN_OK;
    free(reqs);
    if (st == KILN_OK) st = done;
    if (st != KILN_OK) free(*recv), *recv = NULL;
    return st;
}

kiln_status kiln_comm_agree_stop(kiln_comm *c, kiln_axis axis, kiln_status st, kiln_status code,
                                 int *stop)
{
    /* any failure, any stop request, and the failure's code (so that every rank ends with the
     * same kind of error, and the same exit code) */
    int mine[3] = {st != KILN_OK, stop && kiln_signals_pending() != 0, (int)st};
    int any[3] = {mine[0], mine[1], mine[2]};
    if (kiln_comm_size(c, axis) > 1) {
        kiln_status a = mpi_status(MPI_Allreduce(mine, any, 3, MPI_INT, MPI_MAX,
                                                 axis_comm(c, axis)),
                                   "MPI_Allreduce(agree)");
        if (a != KILN_OK) return st != KILN_OK ? st : a;
    }
    /* only an agreement over the whole world lets every rank leave without an abort */
    if (axis == KILN_AXIS_WORLD || kiln_comm_size(c, KILN_AXIS_WORLD) == kiln_comm_size(c, axis))
        c->failure_agreed = any[0] > 0;
    if (stop) *stop = any[1] > 0;
    if (st != KILN_OK) return st;
    if (any[0])
        return KILN_ERROR(code == KILN_ERR_INTERNAL ? (kiln_status)any[2] : code,
                          "another rank failed (its message names the cause)");
    return KILN_OK;
}

kiln_status kiln_comm_agree(kiln_comm *c, kiln_axis axis, kiln_status st, kiln_status code)
{
    return kiln_comm_agree_stop(c, axis, st, code, NULL);
}

int kiln_comm_failure_agreed(const kiln_comm *c) { return c && c->failure_agreed; }

kiln_status kiln_comm_barrier(kiln_comm *c)
{
    return mpi_status(MPI_Barrier(c->world), "MPI_Barrier");
}

void kiln_comm_abort(kiln_comm *c, int code)
{
    if (c && kiln_comm_size(c, KILN_AXIS_WORLD) > 1) MPI_Abort(c->world, code);
}

/* ---- sub-communicators ---- */

kiln_status kiln_comm_split(kiln_comm *c, int color, int key, kiln_comm **out)
{
    *out = NULL;
    kiln_comm *s = calloc(1, sizeof *s);
    KILN_CHECK_ALLOC(s);
    s->world = s->dp = s->pp = MPI_COMM_NULL;
    kiln_status st = mpi_status(MPI_Comm_split(c->world, color, key, &s->world), "MPI_Comm_split");
    if (st == KILN_OK) MPI_Comm_set_errhandler(s->world, MPI_ERRORS_RETURN);
    /* a group is one data-parallel axis: the grid of a sub-communicator is 1 x size */
    if (st == KILN_OK) st = mpi_status(MPI_Comm_dup(s->world, &s->dp), "MPI_Comm_dup(dp)");
    if (st == KILN_OK) {
        int rank;
        MPI_Comm_rank(s->world, &rank);
        st = mpi_status(MPI_Comm_split(s->world, rank, 0, &s->pp), "MPI_Comm_split(pp)");
    }
    if (st != KILN_OK) {
        kiln_comm_finalize(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

/* ---- point to point ---- */

kiln_status kiln_comm_isend(kiln_comm *c, kiln_axis axis, int peer, int tag, kiln_precision type,
                            const float *buf, size_t n, kiln_comm_request **req)
{
    KILN_CHECK(new_request(req));
    if (on_device(c, buf))
        return kiln_nccl_send(c->nccl, axis, peer, type, buf, n, &(*req)->nccl_done);
    KILN_CHECK(mpi_float_only(type, "send"));
    if (n > max_count)
        return KILN_ERROR(KILN_ERR_ARG, "send of %zu elements: more than one MPI call carries "
                          "(%zu)", n, max_count);
    return mpi_status(MPI_Isend(buf, (int)n, MPI_FLOAT, peer, tag, axis_comm(c, axis), &(*req)->r),
                      "MPI_Isend");
}

kiln_status kiln_comm_irecv(kiln_comm *c, kiln_axis axis, int peer, int tag, kiln_precision type,
                            float *buf, size_t n, kiln_comm_request **req)
{
    KILN_CHECK(new_request(req));
    if (on_device(c, buf))
        return kiln_nccl_recv(c->nccl, axis, peer, type, buf, n, &(*req)->nccl_done);
    KILN_CHECK(mpi_float_only(type, "receive"));
    if (n > max_count)
        return KILN_ERROR(KILN_ERR_ARG, "receive of %zu elements: more than one MPI call carries "
                          "(%zu)", n, max_count);
    return mpi_status(MPI_Irecv(buf, (int)n, MPI_FLOAT, peer, tag, axis_comm(c, axis), &(*req)->r),
                      "MPI_Irecv");
}
