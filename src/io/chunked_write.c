/* The rounds that fill a chunked output (kiln/chunked.h): rank 0 prepares the file, every
 * rank reads which chunks are done, and in each round rank r computes the r-th remaining chunk
 * of the round and all write collectively. Ranks agree before every collective step, so one
 * rank's failure or a stop signal ends every rank at the same point. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/progress.h"
#include "kiln/runtime.h"
#include "chunked_internal.h"

static kiln_status agree(chunked_job *j, kiln_status st, int *stop)
{
    return kiln_comm_agree_stop(j->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL, stop);
}

/* Rank 0 prepares the output; every rank learns whether it failed and whether it was done. */
static kiln_status prepare(chunked_job *j, int rank, int *finished)
{
    int done = 0;
    kiln_status st = rank == 0 ? kiln_chunked_prepare(j, &done) : KILN_OK;
    double flag = done;
    KILN_CHECK(agree(j, st, NULL));
    KILN_CHECK(kiln_comm_allreduce_f64(j->comm, KILN_AXIS_WORLD, &flag, 1));
    *finished = flag > 0;
    return KILN_OK;
}

typedef struct round_ctx {
    kiln_chunk_fn fn;
    void *ctx;
    kiln_chunked_result *out;
    uint32_t *crcs;             /* [n_datasets + 1]: source, then each dataset */
} round_ctx;

/* This rank's chunk of the round: compute and checksum. */
static kiln_status do_chunk(chunked_job *j, round_ctx *rc, uint64_t c)
{
    const kiln_chunked_spec *s = j->spec;
    uint64_t rows = kiln_chunked_rows(j, c);
    double t0 = kiln_time_s();
    rc->crcs[0] = 0;
    KILN_CHECK(rc->fn(rc->ctx, c, c * s->chunk_rows, rows, j->bufs, &rc->crcs[0]));
    rc->out->t_compute += kiln_time_s() - t0;
    for (int i = 0; i < s->n_datasets; i++)
        rc->crcs[i + 1] = kiln_crc32(0, j->bufs[i], rows * (uint64_t)s->datasets[i].width * j->elem[i]);
    return KILN_OK;
}

static kiln_status run_rounds(chunked_job *j, hid_t file, const uint64_t *left, uint64_t n_left,
                              round_ctx *rc)
{
    int rank = kiln_comm_rank(j->comm, KILN_AXIS_WORLD), world = kiln_comm_size(j->comm, KILN_AXIS_WORLD);
    uint64_t rounds = (n_left + (uint64_t)world - 1) / (uint64_t)world;
    kiln_progress *prog = kiln_progress_start(j->spec->name, j->n_chunks,
                                               j->spec->progress_interval, rank);
    kiln_status st = KILN_OK;
    for (uint64_t r = 0; r < rounds && st == KILN_OK; r++) {
        uint64_t at = r * (uint64_t)world + (uint64_t)rank;
        uint64_t c = at < n_left ? left[at] : UINT64_MAX;
        int stop = 0;
        st = agree(j, c != UINT64_MAX ? do_chunk(j, rc, c) : KILN_OK, &stop);
        if (st != KILN_OK) break;
        double t0 = kiln_time_s();
        st = kiln_chunked_write_round(j, file, c, rc->crcs);
        rc->out->t_write += kiln_time_s() - t0;
        if (c != UINT64_MAX && st == KILN_OK) rc->out->computed_rows += kiln_chunked_rows(j, c);
        uint64_t through = (r + 1) * (uint64_t)world;
        kiln_progress_update(prog, j->n_chunks - n_left + (through < n_left ? through : n_left), "");
        if (st == KILN_OK && stop && r + 1 < rounds)
            st = KILN_ERROR(KILN_ERR_INTERRUPTED, "stopped by a signal with %" PRIu64 " of %" PRIu64
                            " chunks done (progress is in '%s'; rerun to finish)",
                            j->n_chunks - n_left + through, j->n_chunks, j->partial);
    }
    kiln_progress_finish(prog);
    return st;
}

/* Chunk indexes not done yet, ascending; *n of them. */
static uint64_t *remaining_chunks(const chunked_job *j, const uint8_t *done, uint64_t *n)
{
    uint64_t *left = malloc((j->n_chunks + 1) * sizeof *left);
    *n = 0;
    for (uint64_t c = 0; left && c < j->n_chunks; c++)
        if (!done[c]) left[(*n)++] = c;
    return left;
}

static kiln_status process(chunked_job *j, round_ctx *rc)
{
    uint8_t *done = malloc(j->n_chunks + 1);
    KILN_CHECK_ALLOC(done);
    hid_t file = H5I_INVALID_HID;
    uint64_t n_left = 0, *left = NULL;
    kiln_status st = kiln_chunked_open(j, &file, done);
    if (st == KILN_OK && !(left = remaining_chunks(j, done, &n_left)))
        st = KILN_ERROR(KILN_ERR_NOMEM, "chunk list");
    if (st == KILN_OK && n_left < j->n_chunks)
        kiln_info("%" PRIu64 " of %" PRIu64 " chunks are done already", j->n_chunks - n_left, j->n_chunks);
    if (st == KILN_OK) st = run_rounds(j, file, left, n_left, rc);
    kiln_status closed = file >= 0 ? kiln_chunked_close(file) : KILN_OK;
    free(done);
    free(left);
    return st != KILN_OK ? st : closed;
}

static kiln_status alloc_buffers(chunked_job *j)
{
    const kiln_chunked_spec *s = j->spec;
    j->bufs = calloc((size_t)s->n_datasets + 1, sizeof *j->bufs);
    j->elem = calloc((size_t)s->n_datasets + 1, sizeof *j->elem);
    KILN_CHECK_ALLOC(j->bufs);
    KILN_CHECK_ALLOC(j->elem);
    for (int i = 0; i < s->n_datasets; i++) {
        j->elem[i] = H5Tget_size(s->datasets[i].mem_type);
        size_t values = (size_t)s->chunk_rows * (size_t)s->datasets[i].width;
        if (j->elem[i] == 0 || values / (size_t)s->datasets[i].width != (size_t)s->chunk_rows)
            return KILN_ERROR(KILN_ERR_ARG, "chunked output '%s': dataset '%s' of %d values a row "
                              "does not fit in memory as chunks of %" PRIu64 " rows", s->output,
                              s->datasets[i].name, s->datasets[i].width, s->chunk_rows);
        j->bufs[i] = malloc(values * j->elem[i]);
        KILN_CHECK_ALLOC(j->bufs[i]);
    }
    return KILN_OK;
}

static kiln_status check_spec(const kiln_chunked_spec *s)
{
    if (s->rows == 0 || s->chunk_rows == 0 || s->n_datasets < 1)
        return KILN_ERROR(KILN_ERR_ARG, "chunked output '%s': needs rows, chunk_rows and a "
                          "dataset (found %" PRIu64 ", %" PRIu64 ", %d)", s->output, s->rows,
                          s->chunk_rows, s->n_datasets);
    for (int i = 0; i < s->n_datasets; i++)
        if (s->datasets[i].width < 1)
            return KILN_ERROR(KILN_ERR_ARG, "chunked output '%s': dataset '%s' has width %d",
                              s->output, s->datasets[i].name, s->datasets[i].width);
    return KILN_OK;
}

static kiln_status write_all(chunked_job *j, kiln_chunk_fn fn, void *ctx, kiln_chunked_result *out)
{
    int rank = kiln_comm_rank(j->comm, KILN_AXIS_WORLD), finished;
    KILN_CHECK(agree(j, check_spec(j->spec), NULL));
    KILN_CHECK(kiln_path_format(j->partial, sizeof j->partial, "%s.partial", j->spec->output));
    j->n_chunks = (j->spec->rows + j->spec->chunk_rows - 1) / j->spec->chunk_rows;
    KILN_CHECK(agree(j, alloc_buffers(j), NULL));
    KILN_CHECK(prepare(j, rank, &finished));
    out->was_complete = finished;
    if (finished) return KILN_OK;
    round_ctx rc = {fn, ctx, out, calloc((size_t)j->spec->n_datasets + 1, sizeof(uint32_t))};
    kiln_status st = rc.crcs ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "chunk checksums");
    st = agree(j, st == KILN_OK ? process(j, &rc) : st, NULL);
    free(rc.crcs);
    KILN_CHECK(st);
    return agree(j, rank == 0 ? kiln_chunked_finish(j) : KILN_OK, NULL);
}

kiln_status kiln_chunked_write(kiln_comm *comm, const kiln_chunked_spec *spec, kiln_chunk_fn fn,
                               void *ctx, kiln_chunked_result *out)
{
    memset(out, 0, sizeof *out);
    chunked_job j = {.spec = spec, .comm = comm};
    kiln_status st = write_all(&j, fn, ctx, out);
    for (int i = 0; j.bufs && i < spec->n_datasets; i++) free(j.bufs[i]);
    free(j.bufs);
    free(j.elem);
    return st;
}
