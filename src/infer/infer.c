/* `kiln infer`: every rank checks the model and the input (so bad input fails before any
 * output exists), then the chunked-output engine (kiln/chunked.h) shares the input's chunks
 * among the ranks, calls back here for what a chunk's rows become, and writes them exactly
 * once into one preallocated output. */
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/chunked.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "infer_internal.h"

static kiln_status check_config(infer_job *j)
{
    if (j->cfg.infer.register_scores && !kiln_registry_is_uri(j->o->model))
        return KILN_ERROR(KILN_ERR_CONFIG, "infer.register adds the output to the model's registry "
                          "version, but --model '%s' is not a registry:NAME@ALIAS or "
                          "registry:NAME/VERSION URI", j->o->model);
    return KILN_OK;
}

static kiln_status open_model(infer_job *j)
{
    const kiln_infer_config *c = &j->cfg;
    KILN_CHECK(kiln_model_open(kiln_registry_root(c->registry.path), j->o->model, j->be,
                               c->infer.batch, &j->model, &j->model_cfg, &j->src));
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
    kiln_info("model %s (%s), %s backend, %d threads", j->src.id, j->model_cfg.kind,
              j->be->name, j->o->place.threads);
    return KILN_OK;
}

static kiln_status setup(infer_job *j)
{
    KILN_CHECK(check_config(j));
    KILN_CHECK(open_model(j));
    KILN_CHECK(kiln_infer_open_input(j));
    KILN_CHECK(kiln_infer_plan_outputs(j));
    j->n_chunks = (j->id.input_rows + j->id.chunk_rows - 1) / j->id.chunk_rows;
    return KILN_OK;
}

/* The engine's callback: read chunk c, compute every output into the engine's buffers. */
static kiln_status compute_chunk(void *ctx, uint64_t c, uint64_t first, uint64_t rows,
                                 void *const *bufs, uint32_t *source_crc)
{
    infer_job *j = ctx;
    (void)first;
    (void)rows;
    for (int i = 0; i < j->n_out; i++) j->out[i].buf = bufs[i];
    double t0 = kiln_time_s();
    KILN_CHECK(kiln_infer_read_chunk(j, c, source_crc));
    j->t_read += kiln_time_s() - t0;
    return kiln_infer_compute_chunk(j, c);
}

/* What identifies the job: an output is resumed or accepted as done only for the same one. */
static int identity(const infer_job *j, kiln_chunked_attr *a)
{
    const infer_identity *id = &j->id;
    static const char version[] = KILN_VERSION;
    kiln_chunked_attr list[] = {
        {"model", KILN_ATTR_STR, id->model},           {"model_id", KILN_ATTR_STR, id->model_id},
        {"model_sha256", KILN_ATTR_STR, id->model_sha256}, {"model_version", KILN_ATTR_I64, &id->model_version},
        {"input", KILN_ATTR_STR, id->input},           {"input_dataset", KILN_ATTR_STR, id->input_dataset},
        {"input_rows", KILN_ATTR_U64, &id->input_rows}, {"input_width", KILN_ATTR_U64, &id->input_width},
        {"input_bytes", KILN_ATTR_U64, &id->input_bytes}, {"input_mtime_ns", KILN_ATTR_I64, &id->input_mtime_ns},
        {"chunk_rows", KILN_ATTR_U64, &id->chunk_rows}, {"settings", KILN_ATTR_STR, id->settings},
        {"kiln_version", KILN_ATTR_STR, version}};
    int n = (int)(sizeof list / sizeof list[0]);
    memcpy(a, list, sizeof list);
    return n;
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

static void report(infer_job *j, const kiln_chunked_result *res, double seconds)
{
    double sums[2] = {(double)res->computed_rows, res->t_compute - j->t_read};
    if (kiln_comm_allreduce_f64(j->o->comm, KILN_AXIS_WORLD, sums, 2) != KILN_OK) kiln_error_clear();
    if (j->rank != 0) return;
    if (res->was_complete) {
        printf("kiln infer: '%s' is complete already (%" PRIu64 " rows from %s); nothing to do\n",
               j->o->output, j->id.input_rows, j->src.id);
        return;
    }
    printf("kiln infer: %" PRIu64 " rows (%" PRIu64 " computed now) in %" PRIu64 " chunks on %d "
           "rank%s, %.3f s end to end, %.0f rows/s; compute %.0f rows/s per rank (rank 0: read "
           "%.3f s, compute %.3f s, write %.3f s)\n",
           j->id.input_rows, (uint64_t)sums[0], j->n_chunks, j->world, j->world == 1 ? "" : "s",
           seconds, seconds > 0 ? sums[0] / seconds : 0.0,
           sums[1] > 0 ? sums[0] / sums[1] : 0.0, j->t_read, res->t_compute - j->t_read,
           res->t_write);
    printf("wrote %s\n", j->o->output);
}

static kiln_status run(infer_job *j)
{
    double t0 = kiln_time_s();
    KILN_CHECK(kiln_comm_agree(j->o->comm, KILN_AXIS_WORLD, setup(j), KILN_ERR_INTERNAL));
    kiln_chunked_dataset sets[INFER_MAX_OUTPUTS];
    for (int i = 0; i < j->n_out; i++)
        sets[i] = (kiln_chunked_dataset){j->out[i].name, j->out[i].mem_type, j->out[i].width};
    kiln_chunked_attr id[16];
    kiln_chunked_spec spec = {
        .output = j->o->output, .name = "infer", .job = "`kiln infer`", .output_flag = "--output",
        .rows = j->id.input_rows, .chunk_rows = j->id.chunk_rows,
        .datasets = sets, .n_datasets = j->n_out, .identity = id, .n_identity = identity(j, id),
        .config = j->o->config_yaml, .source_row_bytes = (uint64_t)j->width * j->in_elem,
        .progress_interval = j->cfg.infer.progress_interval};
    kiln_chunked_result res;
    KILN_CHECK(kiln_chunked_write(j->o->comm, &spec, compute_chunk, j, &res));
    report(j, &res, kiln_time_s() - t0);
    if (j->cfg.infer.register_scores)
        KILN_CHECK(kiln_comm_agree(j->o->comm, KILN_AXIS_WORLD,
                                   j->rank == 0 ? register_scores(j) : KILN_OK, KILN_ERR_INTERNAL));
    return KILN_OK;
}

kiln_status kiln_infer_run(const kiln_infer_opts *o)
{
    infer_job *j = calloc(1, sizeof *j);
    KILN_CHECK_ALLOC(j);
    j->o = o;
    j->cfg = *o->cfg;
    j->be = o->be;
    j->rank = kiln_comm_rank(o->comm, KILN_AXIS_WORLD);
    j->world = kiln_comm_size(o->comm, KILN_AXIS_WORLD);
    j->in_file = j->in_dset = H5I_INVALID_HID;
    kiln_status st = run(j);
    kiln_infer_close_input(j);
    kiln_infer_free_outputs(j);
    kiln_model_free(j->model);
    free(j);
    return st;
}
