/* MPI behind the comm interface, and NCCL (nccl.c) for device buffers once a GPU backend is
 * attached: each float collective goes where its buffer lives. The grid is pp x dp with
 * pipeline stages outermost: ranks r and r + dp hold the same data-parallel slot in
 * neighbouring stages. */
#include "kiln/comm.h"
#include "kiln/comm_mpi.h"
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include "nccl.h"

struct kiln_comm {
    MPI_Comm world, dp, pp;
    int owns_mpi; /* we called MPI_Init, so we finalize */
    kiln_nccl *nccl; /* NULL until a device backend is attached */
};

struct kiln_comm_request {
    MPI_Request r;
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

kiln_status kiln_comm_allreduce_f32(kiln_comm *c, kiln_axis axis, float *buf, size_t n)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    if (on_device(c, buf)) return kiln_nccl_allreduce(c->nccl, axis, buf, n);
    return mpi_status(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, axis_comm(c, axis)),
                      "MPI_Allreduce(float)");
}

kiln_status kiln_comm_allreduce_f64(kiln_comm *c, kiln_axis axis, double *buf, size_t n)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    return mpi_status(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, axis_comm(c, axis)),
                      "MPI_Allreduce(double)");
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
    return mpi_status(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM,
                                     axis_comm(c, axis), &(*req)->r),
                      "MPI_Iallreduce");
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
    if (req->r == MPI_REQUEST_NULL) return KILN_OK;
    return mpi_status(MPI_Test(&req->r, done, MPI_STATUS_IGNORE), "MPI_Test");
}

kiln_status kiln_comm_wait(kiln_comm_request *req)
{
    if (req->nccl_done) { /* device: the compute stream waits, the host does not */
        kiln_status st = kiln_nccl_finish(req->nccl_done);
        free(req);
        return st;
    }
    int rc = req->r == MPI_REQUEST_NULL ? MPI_SUCCESS : MPI_Wait(&req->r, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && req->move_n && req->move_to != req->move_from)
        memmove(req->move_to, req->move_from, req->move_n * sizeof(float));
    free(req->counts);
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

kiln_status kiln_comm_bcast(kiln_comm *c, kiln_axis axis, void *buf, size_t bytes, int root)
{
    if (kiln_comm_size(c, axis) == 1) return KILN_OK;
    return mpi_status(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, axis_comm(c, axis)), "MPI_Bcast");
}

kiln_status kiln_comm_allgather_bytes(kiln_comm *c, kiln_axis axis, const void *send, void *recv,
                                      size_t bytes)
{
    if (kiln_comm_size(c, axis) == 1) {
        memcpy(recv, send, bytes);
        return KILN_OK;
    }
    return mpi_status(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                                    axis_comm(c, axis)),
                      "MPI_Allgather");
}

kiln_status kiln_comm_agree(kiln_comm *c, kiln_axis axis, kiln_status st, kiln_status code)
{
    int failed = st != KILN_OK, total = failed;
    if (kiln_comm_size(c, axis) > 1) {
        kiln_status a = mpi_status(MPI_Allreduce(&failed, &total, 1, MPI_INT, MPI_SUM,
                                                 axis_comm(c, axis)),
                                   "MPI_Allreduce(agree)");
        if (a != KILN_OK) return st != KILN_OK ? st : a;
    }
    if (st != KILN_OK) return st;
    if (total)
        return KILN_ERROR(code, "%d other rank%s failed (%s message names the cause)", total,
                          total > 1 ? "s" : "", total > 1 ? "their" : "its");
    return KILN_OK;
}

kiln_status kiln_comm_barrier(kiln_comm *c)
{
    return mpi_status(MPI_Barrier(c->world), "MPI_Barrier");
}

void kiln_comm_abort(kiln_comm *c, int code)
{
    if (c && kiln_comm_size(c, KILN_AXIS_WORLD) > 1) MPI_Abort(c->world, code);
}
