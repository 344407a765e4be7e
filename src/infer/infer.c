/* `kiln infer`: the job. Every rank checks the config, the model and the input (so bad input
 * fails before any output exists), rank 0 then accepts a finished output, resumes a partial one
 * or creates it, and the ranks work through the chunks that are not done yet in rounds: in
 * each, rank r computes the r-th remaining chunk of the round and all write collectively.
 * Ranks agree before every collective step, so one rank's failure (or a stop signal) ends
 * every rank at the same point instead of leaving some waiting. */
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/progress.h"
#include "kiln/runtime.h"
#include "kiln/topo.h"
#include "infer_internal.h"

/* The first failing status of any rank, on every rank: a rank that failed keeps its own
 * error; the others get one that points at it. */
static kiln_status agree(infer_job *j, kiln_status st, int *stop)
{
    double flags[2] = {st != KILN_OK, stop && kiln_signals_pending() != 0};
    kiln_status sync = kiln_comm_allreduce_f64(j->o->comm, KILN_AXIS_WORLD, flags, 2);
    if (st != KILN_OK) return st;
    KILN_CHECK(sync);
    if (stop) *stop = flags[1] > 0;
    if (flags[0] > 0)
        return KILN_ERROR(KILN_ERR_INTERNAL, "%.0f other rank%s failed (see %s message)", flags[0],
                          flags[0] > 1 ? "s" : "", flags[0] > 1 ? "their" : "its");
    return KILN_OK;
}

static kiln_status load_config(infer_job *j)
{
    const kiln_infer_opts *o = j->o;
    KILN_CHECK(kiln_config_load(&kiln_infer_schema, &j->cfg, o->config_path, o->overrides,
                                o->n_overrides));
    j->config_yaml = kiln_config_to_yaml(&kiln_infer_schema, &j->cfg);
    KILN_CHECK_ALLOC(j->config_yaml);
    KILN_CHECK(kiln_path_format(j->partial, sizeof j->partial, "%s.partial", o->output));
    if (j->cfg.infer.register_scores && !kiln_registry_is_uri(o->model))
        return KILN_ERROR(KILN_ERR_CONFIG, "infer.register adds the output to the model's registry "
                          "version, but --model '%s' is not a registry:NAME@ALIAS or "
                          "registry:NAME/VERSION URI", o->model);
    return KILN_OK;
}

static kiln_status open_model(infer_job *j)
{
    const kiln_infer_config *c = &j->cfg;
    kiln_rank_setup place;
    KILN_CHECK(kiln_topo_place_rank(c->placement.bind, c->placement.cores_per_rank,
                                    c->infer.threads, &place));
    KILN_CHECK(kiln_backend_select(c->backend.name, "fp32", place.gpu, &j->be));
    j->model_cfg = malloc(sizeof *j->model_cfg);
    KILN_CHECK_ALLOC(j->model_cfg);
    KILN_CHECK(kiln_model_open(kiln_registry_root(c->registry.path), j->o->model, j->be,
                               c->infer.batch, &j->model, j->model_cfg, &j->src));
    j->batch = kiln_model_max_batch(j->model);
    j->is_lm = kiln_model_data_kind(j->model) == KILN_DATA_LM;
    j->n_classes = kiln_model_n_out(j->model);
    j->T = j->is_lm ? kiln_model_in_dim(j->model) : 1;
    infer_identity *id = &j->id;
    snprintf(id->model, sizeof id->model, "%s", j->o->model);
    snprintf(id->model_id, sizeof id->model_id, "%s", j->src.id);
    snprintf(id->model_sha256, sizeof id->model_sha256, "%s", j->src.sha256);
    id->model_version = j->src.ref.version;
    id->chunk_rows = c->infer.chunk_rows > 0 ? (uint64_t)c->infer.chunk_rows : 1;
    snprintf(id->settings, sizeof id->settings,
             "dataset=%s batch=%d chunk_rows=%d top_k=%d probs=%d embed=%s pool=%s backend=%s",
             c->infer.dataset, j->batch, c->infer.chunk_rows, c->infer.top_k, c->infer.probs,
             c->infer.embed, c->infer.pool, c->backend.name);
    kiln_info("model %s (%s), %s backend, %d threads", j->src.id, j->model_cfg->model.kind,
              j->be->name, place.threads);
    return KILN_OK;
}

static kiln_status setup(infer_job *j)
{
    KILN_CHECK(load_config(j));
    KILN_CHECK(open_model(j));
    KILN_CHECK(infer_open_input(j));
    KILN_CHECK(infer_plan_outputs(j));
    j->n_chunks = (j->id.input_rows + j->id.chunk_rows - 1) / j->id.chunk_rows;
    return KILN_OK;
}

/* Rank 0 prepares the output; every rank learns whether it failed and whether it was done. */
static kiln_status prepare_output(infer_job *j, int *finished)
{
    int done = 0;
    kiln_status st = j->rank == 0 ? infer_file_prepare(j, &done) : KILN_OK;
    double flag = done;
    KILN_CHECK(agree(j, st, NULL));
    KILN_CHECK(kiln_comm_allreduce_f64(j->o->comm, KILN_AXIS_WORLD, &flag, 1));
    *finished = flag > 0;
    return KILN_OK;
}

/* This rank's chunk of the round: read, compute, checksum. */
static kiln_status do_chunk(infer_job *j, uint64_t c, uint32_t *crcs)
{
    double t0 = kiln_time_s();
    KILN_CHECK(infer_read_chunk(j, c, &crcs[0]));
    double t1 = kiln_time_s();
    KILN_CHECK(infer_compute_chunk(j, c));
    j->t_read += t1 - t0;
    j->t_compute += kiln_time_s() - t1;
    uint64_t rows = infer_chunk_rows(j, c);
    for (int i = 0; i < j->n_out; i++)
        crcs[i + 1] = kiln_crc32(0, j->out[i].buf, rows * (uint64_t)j->out[i].width * 4);
    return KILN_OK;
}

/* Chunk indexes not done yet, ascending; *n of them. */
static uint64_t *remaining_chunks(const infer_job *j, const uint8_t *done, uint64_t *n)
{
    uint64_t *left = malloc((j->n_chunks + 1) * sizeof *left);
    *n = 0;
    for (uint64_t c = 0; left && c < j->n_chunks; c++)
        if (!done[c]) left[(*n)++] = c;
    return left;
}

static kiln_status run_rounds(infer_job *j, hid_t file, const uint64_t *left, uint64_t n_left,
                              uint64_t *computed)
{
    uint64_t rounds = (n_left + (uint64_t)j->world - 1) / (uint64_t)j->world;
    kiln_progress *prog = kiln_progress_start("infer", j->n_chunks, j->cfg.infer.progress_interval, j->rank);
    kiln_status st = KILN_OK;
    uint32_t crcs[INFER_MAX_OUTPUTS + 1];
    for (uint64_t r = 0; r < rounds && st == KILN_OK; r++) {
        uint64_t at = r * (uint64_t)j->world + (uint64_t)j->rank;
        uint64_t c = at < n_left ? left[at] : UINT64_MAX;
        int stop = 0;
        st = agree(j, c != UINT64_MAX ? do_chunk(j, c, crcs) : KILN_OK, &stop);
        if (st != KILN_OK) break;
        double t0 = kiln_time_s();
        st = infer_file_write_round(j, file, c, crcs);
        j->t_write += kiln_time_s() - t0;
        if (c != UINT64_MAX && st == KILN_OK) *computed += infer_chunk_rows(j, c);
        uint64_t through = (r + 1) * (uint64_t)j->world;
        kiln_progress_update(prog, j->n_chunks - n_left + (through < n_left ? through : n_left), "");
        if (st == KILN_OK && stop && r + 1 < rounds)
            st = KILN_ERROR(KILN_ERR_INTERRUPTED, "stopped by a signal with %" PRIu64 " of %" PRIu64
                            " chunks done (progress is in '%s'; rerun to finish)",
                            j->n_chunks - n_left + through, j->n_chunks, j->partial);
    }
    kiln_progress_finish(prog);
    return st;
}

static kiln_status process(infer_job *j, uint64_t *computed)
{
    uint8_t *done = malloc(j->n_chunks);
    KILN_CHECK_ALLOC(done);
    hid_t file = H5I_INVALID_HID;
    uint64_t n_left = 0, *left = NULL;
    kiln_status st = infer_file_open(j, &file, done);
    if (st == KILN_OK && !(left = remaining_chunks(j, done, &n_left)))
        st = KILN_ERROR(KILN_ERR_NOMEM, "chunk list");
    if (st == KILN_OK && n_left < j->n_chunks)
        kiln_info("%" PRIu64 " of %" PRIu64 " chunks are done already", j->n_chunks - n_left, j->n_chunks);
    if (st == KILN_OK) st = run_rounds(j, file, left, n_left, computed);
    kiln_status closed = file >= 0 ? infer_file_close(file) : KILN_OK;
    free(done);
    free(left);
    return st != KILN_OK ? st : closed;
}

static kiln_status register_scores(infer_job *j)
{
    char name[PATH_MAX];
    snprintf(name, sizeof name, "%s", j->o->output);
    kiln_registry_artifact a = {j->o->output, basename(name), "batch_scores", 1};
    KILN_CHECK(kiln_registry_add_artifact(kiln_registry_root(j->cfg.registry.path),
                                          j->src.ref.name, j->src.ref.version, &a));
    printf("registered %s as batch_scores artifact '%s' of %s\n", j->o->output, a.name, j->src.id);
    return KILN_OK;
}

static void report(infer_job *j, uint64_t computed, double seconds, int was_finished)
{
    double sums[2] = {(double)computed, j->t_compute};
    if (kiln_comm_allreduce_f64(j->o->comm, KILN_AXIS_WORLD, sums, 2) != KILN_OK) kiln_error_clear();
    if (j->rank != 0) return;
    if (was_finished) {
        printf("kiln infer: '%s' is complete already (%" PRIu64 " rows from %s); nothing to do\n",
               j->o->output, j->id.input_rows, j->src.id);
        return;
    }
    printf("kiln infer: %" PRIu64 " rows (%" PRIu64 " computed now) in %" PRIu64 " chunks on %d "
           "rank%s, %.3f s end to end, %.0f rows/s; compute %.0f rows/s per rank (rank 0: read "
           "%.3f s, compute %.3f s, write %.3f s)\n",
           j->id.input_rows, (uint64_t)sums[0], j->n_chunks, j->world, j->world == 1 ? "" : "s",
           seconds, seconds > 0 ? sums[0] / seconds : 0.0,
           sums[1] > 0 ? sums[0] / sums[1] : 0.0, j->t_read, j->t_compute, j->t_write);
    printf("wrote %s\n", j->o->output);
}

static kiln_status run(infer_job *j)
{
    double t0 = kiln_time_s();
    KILN_CHECK(agree(j, setup(j), NULL));
    int finished;
    uint64_t computed = 0;
    KILN_CHECK(prepare_output(j, &finished));
    if (!finished) {
        KILN_CHECK(agree(j, process(j, &computed), NULL));
        KILN_CHECK(agree(j, j->rank == 0 ? infer_file_finish(j) : KILN_OK, NULL));
    }
    report(j, computed, kiln_time_s() - t0, finished);
    if (j->cfg.infer.register_scores) KILN_CHECK(agree(j, j->rank == 0 ? register_scores(j) : KILN_OK, NULL));
    return KILN_OK;
}

kiln_status kiln_infer_run(const kiln_infer_opts *o)
{
    infer_job *j = calloc(1, sizeof *j);
    KILN_CHECK_ALLOC(j);
    j->o = o;
    j->rank = kiln_comm_rank(o->comm, KILN_AXIS_WORLD);
    j->world = kiln_comm_size(o->comm, KILN_AXIS_WORLD);
    j->in_file = j->in_dset = H5I_INVALID_HID;
    kiln_status st = run(j);
    infer_close_input(j);
    infer_free_outputs(j);
    kiln_model_free(j->model);
    free(j->model_cfg);
    free(j->config_yaml);
    free(j);
    return st;
}
