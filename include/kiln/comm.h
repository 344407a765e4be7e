/* The communication layer: MPI processes arranged as a grid world = pp x dp, and the
 * collectives the parallel modes use. Host buffers go through MPI; once a GPU backend is
 * attached, device buffers go through NCCL behind the same calls (its own stream, ordered
 * after the work already queued on the compute stream and before the work queued after the
 * call). A single process without mpirun is a 1 x 1 grid (MPI singleton). */
#ifndef KILN_COMM_H
#define KILN_COMM_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/backend.h"
#include "kiln/status.h"

typedef enum { KILN_AXIS_WORLD = 0, KILN_AXIS_DP, KILN_AXIS_PP } kiln_axis;

/* The most elements one MPI call carries (its counts are int). Sums and broadcasts over more
 * are split into pieces; what cannot be split (an all-gather's int displacements, one send)
 * is refused with an error, never truncated. */
#define KILN_COMM_MAX_COUNT ((size_t)INT_MAX)
size_t kiln_comm_max_count(void);
/* Tests only: lower the limit (0 restores it) to exercise the splitting on small buffers. */
void kiln_comm_set_max_count(size_t n);

typedef struct kiln_comm kiln_comm;
typedef struct kiln_comm_request kiln_comm_request;

/* MPI_Init (if nobody did) and the grid; pp must divide the world size. */
kiln_status kiln_comm_init(int *argc, char ***argv, int pp, kiln_comm **out);
void kiln_comm_finalize(kiln_comm *c);
/* A sub-communicator of c's world: the ranks with the same color, ordered by key, as a grid
 * of one pipeline stage (its world is its data-parallel axis): a sweep's workers each train
 * on their own group. Collective over c's world; free it with kiln_comm_finalize (which
 * finalizes MPI only for the communicator that started it). */
kiln_status kiln_comm_split(kiln_comm *c, int color, int key, kiln_comm **out);
/* Collectives on be's device buffers from now on: one NCCL communicator per grid axis, made
 * from the MPI ones (a no-op for the CPU backend). Collective: every rank calls it. */
kiln_status kiln_comm_attach_device(kiln_comm *c, const kiln_backend *be);
int kiln_comm_rank(const kiln_comm *c, kiln_axis axis);
int kiln_comm_size(const kiln_comm *c, kiln_axis axis);

/* In-place sums. */
kiln_status kiln_comm_allreduce_f32(kiln_comm *c, kiln_axis axis, float *buf, size_t n);
kiln_status kiln_comm_allreduce_f64(kiln_comm *c, kiln_axis axis, double *buf, size_t n);
/* Integer sums are exact, so their result does not depend on how the ranks split the work
 * (k-means sums points in fixed point with it: the same centroids on any number of ranks). */
kiln_status kiln_comm_allreduce_i64(kiln_comm *c, kiln_axis axis, int64_t *buf, size_t n);
/* In-place element-wise maximum. */
kiln_status kiln_comm_allreduce_max_f64(kiln_comm *c, kiln_axis axis, double *buf, size_t n);
/* Non-blocking in-place float sum; *req must later be waited. */
kiln_status kiln_comm_iallreduce_f32(kiln_comm *c, kiln_axis axis, float *buf, size_t n,
                                     kiln_comm_request **req);
/* Non-blocking, in place: buf holds the sum of counts elements, rank r's slice at the sum of
 * the counts before it. Once req has been waited, this rank's slice holds the sum over ranks of
 * their buf's copy of it (the rest of buf is undefined). */
kiln_status kiln_comm_ireduce_scatter_f32(kiln_comm *c, kiln_axis axis, float *buf,
                                          const int *counts, kiln_comm_request **req);
/* The same two on buffers of a storage type (a backend's precision, kiln_precision_bytes an
 * element, counts in elements): gradients are bf16 with train.precision=bf16. bf16 buffers must
 * be device buffers, which NCCL sums (MPI has no bf16 type: a bf16 host buffer is an error). */
kiln_status kiln_comm_iallreduce_typed(kiln_comm *c, kiln_axis axis, kiln_precision type,
                                       float *buf, size_t n, kiln_comm_request **req);
kiln_status kiln_comm_ireduce_scatter_typed(kiln_comm *c, kiln_axis axis, kiln_precision type,
                                            float *buf, const int *counts,
                                            kiln_comm_request **req);
/* Point to point along an axis (pipeline stages send activations and their gradients to
 * their neighbours): non-blocking, n elements of a storage type to or from rank `peer` of
 * that axis; tag tells messages between the same pair apart (MPI; NCCL keeps the order of
 * posting). Device buffers go through NCCL. *req must later be waited. */
kiln_status kiln_comm_isend(kiln_comm *c, kiln_axis axis, int peer, int tag, kiln_precision type,
                            const float *buf, size_t n, kiln_comm_request **req);
kiln_status kiln_comm_irecv(kiln_comm *c, kiln_axis axis, int peer, int tag, kiln_precision type,
                            float *buf, size_t n, kiln_comm_request **req);
/* Let outstanding requests progress (MPI has no progress thread by default); *done = 1 when
 * req completed. */
kiln_status kiln_comm_test(kiln_comm_request *req, int *done);
/* Wait for req and free it. */
kiln_status kiln_comm_wait(kiln_comm_request *req);
/* Shards (counts[r] elements for rank r, in rank order; int counts as MPI takes them):
 * recv (counts[me]) = the sum over ranks of their send's slice for me. */
kiln_status kiln_comm_reduce_scatter_f32(kiln_comm *c, kiln_axis axis, const float *send,
                                         float *recv, const int *counts);
/* In place: every rank's slice buf[displs[r] .. + counts[r]) is copied to all ranks. */
kiln_status kiln_comm_allgather_f32(kiln_comm *c, kiln_axis axis, float *buf, const int *counts,
                                    const int *displs);
/* The same on a buffer of a storage type (counts and displs in elements): ZeRO-3 gathers bf16
 * parameters with train.precision=bf16. bf16 buffers must be device buffers (NCCL). */
kiln_status kiln_comm_allgather_typed(kiln_comm *c, kiln_axis axis, kiln_precision type,
                                      float *buf, const int *counts, const int *displs);
/* recv (root only, sum of counts) = every rank's send (counts[me]) at displs. */
kiln_status kiln_comm_gather_f32(kiln_comm *c, kiln_axis axis, const float *send, float *recv,
                                 const int *counts, const int *displs, int root);
/* The same for host bytes (counts and displs in bytes). */
kiln_status kiln_comm_gather_bytes(kiln_comm *c, kiln_axis axis, const void *send, void *recv,
                                   const int *counts, const int *displs, int root);
/* Small host metadata: root's bytes to every rank; every rank's bytes to every rank, in rank
 * order (recv holds size x bytes). */
kiln_status kiln_comm_bcast(kiln_comm *c, kiln_axis axis, void *buf, size_t bytes, int root);
kiln_status kiln_comm_allgather_bytes(kiln_comm *c, kiln_axis axis, const void *send, void *recv,
                                      size_t bytes);
/* Rows moved between ranks: every rank sends send_counts[p] elements of elem bytes to each
 * rank p (consecutive in send, rank 0's first) and receives into *recv (allocated here; the
 * caller frees it) recv_counts[p] elements from each p, rank 0's first, each rank's in the order
 * sent. Any sizes: no MPI count overflows. Feature builds partition rows by key hash with it. */
kiln_status kiln_comm_exchange(kiln_comm *c, kiln_axis axis, const void *send,
                               const uint64_t *send_counts, size_t elem, void **recv,
                               uint64_t *recv_counts);
/* Every rank learns whether st failed on any rank, so they leave a collective sequence
 * together instead of some waiting forever. Returns st where it failed; elsewhere KILN_OK when
 * no rank failed, else an error saying another rank failed, of code `code`, or with code
 * KILN_ERR_INTERNAL, of the failing rank's own code (so every rank exits alike). */
kiln_status kiln_comm_agree(kiln_comm *c, kiln_axis axis, kiln_status st, kiln_status code);
/* The same, and in the same collective *stop = 1 when any rank has a stop signal pending
 * (SIGTERM/SIGUSR1), so that all stop at the same point. */
kiln_status kiln_comm_agree_stop(kiln_comm *c, kiln_axis axis, kiln_status st, kiln_status code,
                                 int *stop);
/* 1 when the last agreement over the whole world ended in a failure: every rank knows of it
 * and leaves together, so nothing is left waiting (the job runtime then needs no abort). */
int kiln_comm_failure_agreed(const kiln_comm *c);
kiln_status kiln_comm_barrier(kiln_comm *c);
/* Ends every rank of the job: used when one rank fails so that the others do not hang. */
void kiln_comm_abort(kiln_comm *c, int code);

#endif
