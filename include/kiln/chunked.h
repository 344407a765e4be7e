/* Resumable chunked outputs: one HDF5 file that many ranks fill chunk by chunk, exactly once,
 * whatever kills them. `kiln infer` writes its scores with it; feature builds and index
 * searches write theirs the same way.
 *
 * The rows [0, rows) are cut into chunks of chunk_rows; a chunk is the unit of work, of
 * progress and of HDF5 storage. Until it is complete the output is OUTPUT.partial, created in
 * one go by rank 0 (every dataset allocated in full, progress/done and progress/crc32 zeroed,
 * the job's identity as attributes), after which only raw data is ever written into
 * preallocated space, so a process killed at any moment leaves a file HDF5 can open. In each
 * round every rank computes one chunk not done yet, all write collectively, flush, mark those
 * chunks done with their checksums, and flush again: a chunk marked done is on disk, a chunk
 * not marked is computed again (to the same values) by the next run. When every chunk is done
 * rank 0 combines the per-chunk checksums into a crc32 attribute per dataset (and the
 * source's, input_crc32), sets complete = 1 and renames OUTPUT.partial to OUTPUT.
 *
 * Rerunning the same job accepts a complete OUTPUT, resumes OUTPUT.partial, or creates it;
 * an output made by another job (any identity attribute differs) is refused and left alone.
 * Ranks agree before every collective step, so one rank's failure or a stop signal ends
 * every rank at the same point. */
#ifndef KILN_CHUNKED_H
#define KILN_CHUNKED_H
#include <hdf5.h>
#include <stdint.h>
#include "kiln/comm.h"
#include "kiln/status.h"

/* One dataset of the output: rows of `width` values of a native type (H5T_NATIVE_FLOAT,
 * _DOUBLE, _INT32, _INT64, _UINT8), stored little-endian; width 1 makes a 1-D dataset. */
typedef struct kiln_chunked_dataset {
    const char *name;
    hid_t mem_type;
    int width;
} kiln_chunked_dataset;

typedef enum { KILN_ATTR_STR, KILN_ATTR_U64, KILN_ATTR_I64 } kiln_attr_kind;

/* An identity attribute: what a resumed or accepted output must match. */
typedef struct kiln_chunked_attr {
    const char *name;
    kiln_attr_kind kind;
    const void *value;          /* const char *, const uint64_t * or const int64_t * */
} kiln_chunked_attr;

typedef struct kiln_chunked_spec {
    const char *output;         /* OUTPUT (OUTPUT.partial until complete) */
    const char *name;           /* the job in progress lines: "infer" */
    const char *job;            /* what makes it, in messages: "`kiln infer`" */
    const char *output_flag;    /* how the user names it, in messages: "--output" */
    uint64_t rows, chunk_rows;
    const kiln_chunked_dataset *datasets;
    int n_datasets;
    const kiln_chunked_attr *identity;
    int n_identity;
    const char *config;         /* stored as the "config" attribute, for people (not checked) */
    uint64_t source_row_bytes;  /* bytes of source per row, for input_crc32 */
    double progress_interval;   /* seconds between progress lines off a terminal */
} kiln_chunked_spec;

/* Computes chunk `chunk` (rows [first, first + rows)) into bufs[i], dataset i's rows * width
 * values, and *source_crc, the crc32 of the source bytes it read (0 when there is none). */
typedef kiln_status (*kiln_chunk_fn)(void *ctx, uint64_t chunk, uint64_t first, uint64_t rows,
                                     void *const *bufs, uint32_t *source_crc);

typedef struct kiln_chunked_result {
    int was_complete;           /* OUTPUT was complete already: nothing done */
    uint64_t computed_rows;     /* rows this rank computed in this run */
    double t_compute, t_write;  /* seconds this rank spent in fn and in writing */
} kiln_chunked_result;

/* Collective over comm's world: the whole output, as above. bufs are allocated here (chunk_rows
 * rows of each dataset). A signal (SIGTERM/SIGUSR1) stops after the current round with
 * KILN_ERR_INTERRUPTED, progress kept. */
kiln_status kiln_chunked_write(kiln_comm *comm, const kiln_chunked_spec *spec, kiln_chunk_fn fn,
                               void *ctx, kiln_chunked_result *out);

#endif
