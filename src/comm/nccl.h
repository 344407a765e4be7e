/* Private to the comm layer: NCCL collectives for device buffers, one communicator per grid
 * axis, created from the MPI communicators (rank 0 of the axis makes the unique id and
 * broadcasts it). Each collective runs on NCCL's own stream: it waits for the work queued on
 * the compute stream so far (an event) and the compute stream waits for it in turn, so the
 * host never blocks and device work stays in order. Without CUDA the same calls exist as stubs
 * and no pointer is ever a device pointer, so comm.c needs no #ifdef. */
#ifndef KILN_COMM_NCCL_H
#define KILN_COMM_NCCL_H
#include <mpi.h>
#include <stddef.h>
#include "kiln/comm.h"

typedef struct kiln_nccl kiln_nccl;

#ifdef KILN_HAVE_CUDA
kiln_status kiln_nccl_create(MPI_Comm world, MPI_Comm dp, MPI_Comm pp, kiln_nccl **out);
void kiln_nccl_free(kiln_nccl *n);
/* 1 if buf is device memory (then the collective must go through NCCL). */
int kiln_nccl_is_device(const void *buf);
kiln_status kiln_nccl_allreduce(kiln_nccl *n, kiln_axis axis, float *buf, size_t count);
/* Non-blocking, on elements of the storage type `type`: *done is an event that kiln_nccl_done
 * tests and kiln_nccl_finish waits for (on the compute stream) and frees. */
kiln_status kiln_nccl_iallreduce(kiln_nccl *n, kiln_axis axis, kiln_precision type, void *buf,
                                 size_t count, void **done);
kiln_status kiln_nccl_done(void *done, int *finished);
kiln_status kiln_nccl_finish(void *done);
kiln_status kiln_nccl_reduce_scatter(kiln_nccl *n, kiln_axis axis, kiln_precision type,
                                     const void *send, void *recv, const int *counts);
/* In place, on elements of the storage type `type` (counts and displs in elements). */
kiln_status kiln_nccl_allgather(kiln_nccl *n, kiln_axis axis, kiln_precision type, void *buf,
                                const int *counts, const int *displs);
kiln_status kiln_nccl_gather(kiln_nccl *n, kiln_axis axis, const float *send, float *recv,
                             const int *counts, const int *displs, int root);
/* Point to point on NCCL's stream after the compute stream's work so far; *done as for
 * kiln_nccl_iallreduce. */
kiln_status kiln_nccl_send(kiln_nccl *n, kiln_axis axis, int peer, kiln_precision type,
                           const void *buf, size_t count, void **done);
kiln_status kiln_nccl_recv(kiln_nccl *n, kiln_axis axis, int peer, kiln_precision type, void *buf,
                           size_t count, void **done);
#else
static inline kiln_status kiln_nccl_create(MPI_Comm world, MPI_Comm dp, MPI_Comm pp,
                                           kiln_nccl **out)
{
    *out = NULL;
    return KILN_ERROR(KILN_ERR_UNSUPPORTED, "NCCL: this build of kiln has no CUDA backend");
}
static inline void kiln_nccl_free(kiln_nccl *n) {}
static inline int kiln_nccl_is_device(const void *buf) { return 0; }
#define KILN_NCCL_UNREACHABLE KILN_ERROR(KILN_ERR_INTERNAL, "NCCL call in a build without CUDA")
static inline kiln_status kiln_nccl_allreduce(kiln_nccl *n, kiln_axis a, float *b, size_t c)
{
    return KILN_NCCL_UNREACHABLE;
}
static inline kiln_status kiln_nccl_iallreduce(kiln_nccl *n, kiln_axis a, kiln_precision t,
                                               void *b, size_t c, void **d)
{
    return KILN_NCCL_UNREACHABLE;
}
static inline kiln_status kiln_nccl_done(void *d, int *f) { return KILN_NCCL_UNREACHABLE; }
static inline kiln_status kiln_nccl_finish(void *d) { return KILN_NCCL_UNREACHABLE; }
static inline kiln_status kiln_nccl_reduce_scatter(kiln_nccl *n, kiln_axis a, kiln_precision t,
                                                   const void *s, void *r, const int *c)
{
    return KILN_NCCL_UNREACHABLE;
}
static inline kiln_status kiln_nccl_allgather(kiln_nccl *n, kiln_axis a, kiln_precision t,
                                              void *b, const int *c, const int *d)
{
    return KILN_NCCL_UNREACHABLE;
}
static inline kiln_status kiln_nccl_gather(kiln_nccl *n, kiln_axis a, const float *s, float *r,
                                           const int *c, const int *d, int root)
{
    return KILN_NCCL_UNREACHABLE;
}
static inline kiln_status kiln_nccl_send(kiln_nccl *n, kiln_axis a, int peer, kiln_precision t,
                                         const void *b, size_t c, void **d)
{
    return KILN_NCCL_UNREACHABLE;
}
static inline kiln_status kiln_nccl_recv(kiln_nccl *n, kiln_axis a, int peer, kiln_precision t,
                                         void *b, size_t c, void **d)
{
    return KILN_NCCL_UNREACHABLE;
}
#endif
#endif
