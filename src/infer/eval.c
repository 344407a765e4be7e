/* `kiln eval`: the evaluation loop (kiln_eval_loop, which training runs on its eval split too)
 * on any model (checkpoint, run directory or registry URI) and dataset split, so a pipeline
 * can compare two versions on the same data. Rank-sliced like training: each rank scores its
 * slice of every batch and the sums are all-reduced. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "kiln/fs.h"
#include "kiln/infer.h"
#include "kiln/log.h"
#include "kiln/job.h"
#include "infer_internal.h"

/* The dataset must fit the model: same input width (MLP), labels below its class count. */
static kiln_status check_fit(const kiln_eval_config *c, const char *split, kiln_model *m,
                             kiln_dataset *ds)
{
    if (kiln_model_data_kind(m) == KILN_DATA_LM) return KILN_OK; /* windows are cut to fit */
    if (kiln_dataset_width(ds) != kiln_model_in_dim(m))
        return KILN_ERROR(KILN_ERR_DATA, "dataset '/%s/x' in '%s' has rows of %d values, but "
                          "model '%s' takes %d", split, c->eval.input, kiln_dataset_width(ds),
                          c->eval.model, kiln_model_in_dim(m));
    if (kiln_dataset_num_classes(ds) > kiln_model_n_out(m))
        return KILN_ERROR(KILN_ERR_DATA, "dataset '/%s/y' in '%s' has %d classes, but model "
                          "'%s' has %d outputs", split, c->eval.input, kiln_dataset_num_classes(ds),
                          c->eval.model, kiln_model_n_out(m));
    return KILN_OK;
}

static kiln_status write_result(const kiln_eval_config *c, const kiln_model_source *src,
                                const char *split, const kiln_eval_result *r)
{
    json_t *j = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:f, s:f, s:I}", "model", c->eval.model,
                          "resolved", src->id, "version",
                          src->ref.version ? json_integer(src->ref.version) : json_null(),
                          "sha256", src->sha256, "input", c->eval.input, "split", split, "loss",
                          r->loss, "accuracy", r->accuracy, "targets", (json_int_t)r->targets);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    KILN_CHECK_ALLOC(text);
    size_t n = strlen(text);
    text[n] = '\n';
    kiln_status st = kiln_write_file_atomic(c->eval.output, text, n + 1);
    free(text);
    return st;
}

kiln_status kiln_eval_run(kiln_job *job)
{
    const kiln_eval_config *c = kiln_job_config(job);
    const kiln_backend *be = kiln_job_backend(job);
    kiln_comm *comm = kiln_job_comm(job);
    int rank = kiln_comm_rank(comm, KILN_AXIS_DP), world = kiln_comm_size(comm, KILN_AXIS_DP);
    kiln_model *m = NULL;
    kiln_model_config cfg;
    kiln_model_source src;
    kiln_dataset *ds = NULL;
    kiln_loader *l = NULL;
    kiln_eval_result r = {0};
    kiln_status st = kiln_model_open(kiln_registry_root(c->registry.path), c->eval.model, be,
                                     c->eval.batch, &m, &cfg, &src);
    const kiln_model_kind *kind = m ? kiln_model_kind_of(m) : NULL;
    const char *split = c->eval.split[0] ? c->eval.split : kind ? kind->eval_split : "";
    if (st == KILN_OK) st = kiln_dataset_open(c->eval.input, split, kind->input, cfg.block_size, &ds);
    if (st == KILN_OK) st = check_fit(c, split, m, ds);
    kiln_loader_opts lo = {c->eval.batch, 0, 0, 0, rank, world,
                           be->kind == KILN_DEVICE_CPU &&
                               !kiln_rank_has_spare_core(kiln_job_placement(job))};
    if (st == KILN_OK) st = kiln_loader_create(ds, &lo, &l);
    if (st == KILN_OK) st = kiln_eval_loop(m, l, comm, 0, 0, &r);
    if (st == KILN_OK && kiln_job_is_writer(job)) {
        printf("kiln eval: %s on %s:%s: loss %.6f, accuracy %.4f%% (%" PRId64 " targets, %d "
               "rank%s)\n", src.id, c->eval.input, split, r.loss, 100.0 * r.accuracy, r.targets,
               world, world == 1 ? "" : "s");
        if (c->eval.output[0]) st = write_result(c, &src, split, &r);
        if (st == KILN_OK && c->eval.output[0]) printf("wrote %s\n", c->eval.output);
    }
    kiln_loader_free(l);
    kiln_dataset_free(ds);
    kiln_model_free(m);
    return st;
}
