/* The two halves of the chunked-output engine (kiln/chunked.h): the file (chunked_file.c:
 * create, accept, resume, collective writes, finish) and the rounds that fill it
 * (chunked_write.c). */
#ifndef KILN_CHUNKED_INTERNAL_H
#define KILN_CHUNKED_INTERNAL_H
#include <limits.h>
#include "kiln/chunked.h"

typedef struct chunked_job {
    const kiln_chunked_spec *spec;
    kiln_comm *comm;
    char partial[PATH_MAX];     /* OUTPUT.partial */
    uint64_t n_chunks;
    void **bufs;                /* [n_datasets]: this rank's current chunk of each */
    size_t *elem;               /* [n_datasets]: bytes per value */
} chunked_job;

/* Rows of chunk c (the last may be short). */
uint64_t kiln_chunked_rows(const chunked_job *j, uint64_t c);

/* Rank 0: accept an OUTPUT complete for this job (*done = 1), resume a matching
 * OUTPUT.partial, or create it (refusing anything made by another job). */
kiln_status kiln_chunked_prepare(chunked_job *j, int *done);
/* Every rank: open OUTPUT.partial for parallel writes; read which chunks are done. */
kiln_status kiln_chunked_open(chunked_job *j, hid_t *file, uint8_t *done);
/* Every rank, collectively: write chunk c's rows (c = UINT64_MAX: none this round), flush,
 * then mark it done with its checksums (crcs: source, then each dataset), flush. */
kiln_status kiln_chunked_write_round(chunked_job *j, hid_t file, uint64_t c, const uint32_t *crcs);
kiln_status kiln_chunked_close(hid_t file);
/* Rank 0, once every chunk is done and the parallel file is closed: the checksums, the
 * completion mark, the rename to OUTPUT. */
kiln_status kiln_chunked_finish(chunked_job *j);

#endif
