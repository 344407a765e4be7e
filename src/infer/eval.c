/* Evaluation: the loop `kiln train` runs on its eval split and `kiln eval` runs on any model
 * (checkpoint or registry URI) and dataset split, so a pipeline can compare two versions on
 * the same data. Rank-sliced like training: each rank scores its slice of every batch and
 * the sums are all-reduced. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "kiln/fs.h"
#include "kiln/infer.h"
#include "kiln/log.h"
#include "kiln/topo.h"

kiln_status kiln_eval_loop(kiln_model *m, kiln_loader *l, kiln_comm *c, uint64_t step,
                           int max_batches, kiln_eval_result *out)
{
    double loss_sum = 0.0;
    int64_t correct = 0, targets = 0;
    KILN_CHECK(kiln_loader_seek(l, 0, 0));
    for (int nb = 0; max_batches <= 0 || nb < max_batches; nb++) {
        const kiln_batch *b;
        KILN_CHECK(kiln_loader_next(l, &b));
        if (!b) break;
        /* a rank with no rows of this batch still runs the forward: under ZeRO-3 it takes part
         * in every block's parameter all-gather */
        float loss;
        int64_t hits, n;
        KILN_CHECK(kiln_model_forward(m, b, 0, step, &loss, &hits, &n));
        loss_sum += (double)loss * (double)n;
        correct += hits;
        targets += n;
    }
    double sums[3] = {loss_sum, (double)correct, (double)targets};
    KILN_CHECK(kiln_comm_allreduce_f64(c, KILN_AXIS_DP, sums, 3));
    out->targets = (int64_t)sums[2];
    out->loss = out->targets ? sums[0] / sums[2] : 0.0;
    out->accuracy = out->targets ? sums[1] / sums[2] : 0.0;
    return KILN_OK;
}

/* The dataset must fit the model: same input width (MLP), labels below its class count. */
static kiln_status check_fit(const kiln_eval_opts *o, const char *split, kiln_model *m,
                             kiln_dataset *ds)
{
    if (kiln_model_data_kind(m) == KILN_DATA_LM) return KILN_OK; /* windows are cut to fit */
    if (kiln_dataset_width(ds) != kiln_model_in_dim(m))
        return KILN_ERROR(KILN_ERR_DATA, "dataset '/%s/x' in '%s' has rows of %d values, but "
                          "model '%s' takes %d", split, o->input, kiln_dataset_width(ds),
                          o->model, kiln_model_in_dim(m));
    if (kiln_dataset_num_classes(ds) > kiln_model_n_out(m))
        return KILN_ERROR(KILN_ERR_DATA, "dataset '/%s/y' in '%s' has %d classes, but model "
                          "'%s' has %d outputs", split, o->input, kiln_dataset_num_classes(ds),
                          o->model, kiln_model_n_out(m));
    return KILN_OK;
}

static kiln_status write_result(const kiln_eval_opts *o, const kiln_model_source *src,
                                const char *split, const kiln_eval_result *r)
{
    json_t *j = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:f, s:f, s:I}", "model", o->model,
                          "resolved", src->id, "version",
                          src->ref.version ? json_integer(src->ref.version) : json_null(),
                          "sha256", src->sha256, "input", o->input, "split", split, "loss",
                          r->loss, "accuracy", r->accuracy, "targets", (json_int_t)r->targets);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    KILN_CHECK_ALLOC(text);
    size_t n = strlen(text);
    text[n] = '\n';
    kiln_status st = kiln_write_file_atomic(o->output, text, n + 1);
    free(text);
    return st;
}

kiln_status kiln_eval_run(const kiln_eval_opts *o)
{
    const kiln_backend *be;
    int rank = kiln_comm_rank(o->comm, KILN_AXIS_DP), world = kiln_comm_size(o->comm, KILN_AXIS_DP);
    int batch = o->batch > 0 ? o->batch : 256;
    kiln_rank_setup place;
    KILN_CHECK(kiln_topo_place_rank(1, 0, o->threads, &place));
    KILN_CHECK(kiln_backend_select(o->backend && *o->backend ? o->backend : "cpu", "fp32",
                                   place.gpu, &be));
    kiln_model *m = NULL;
    kiln_train_config *cfg = malloc(sizeof *cfg);
    kiln_model_source src;
    kiln_dataset *ds = NULL;
    kiln_loader *l = NULL;
    kiln_eval_result r = {0};
    KILN_CHECK_ALLOC(cfg);
    kiln_status st = kiln_model_open(kiln_registry_root(o->registry), o->model, be, batch, &m,
                                     cfg, &src);
    int is_lm = m && kiln_model_data_kind(m) == KILN_DATA_LM;
    const char *split = o->split && *o->split ? o->split : is_lm ? "val" : "test";
    if (st == KILN_OK)
        st = kiln_dataset_open(o->input, split, is_lm ? KILN_DATA_LM : KILN_DATA_CLASSIFY,
                               cfg->model.block_size, &ds);
    if (st == KILN_OK) st = check_fit(o, split, m, ds);
    kiln_loader_opts lo = {batch, 0, 0, 0, rank, world,
                           be->kind == KILN_DEVICE_CPU && !kiln_rank_has_spare_core(&place)};
    if (st == KILN_OK) st = kiln_loader_create(ds, &lo, &l);
    if (st == KILN_OK) st = kiln_eval_loop(m, l, o->comm, 0, 0, &r);
    if (st == KILN_OK && rank == 0) {
        printf("kiln eval: %s on %s:%s: loss %.6f, accuracy %.4f%% (%" PRId64 " targets, %d "
               "rank%s)\n", src.id, o->input, split, r.loss, 100.0 * r.accuracy, r.targets,
               world, world == 1 ? "" : "s");
        if (o->output) st = write_result(o, &src, split, &r);
        if (st == KILN_OK && o->output) printf("wrote %s\n", o->output);
    }
    kiln_loader_free(l);
    kiln_dataset_free(ds);
    kiln_model_free(m);
    free(cfg);
    return st;
}
