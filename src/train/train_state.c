/* The mapping between a training run and its checkpoint: parameters under model/<tensor>,
 * optimizer state under optim/<state>/<tensor>, and the counters, seed, config and data
 * cursor as attributes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/log.h"
#include "train_internal.h"

typedef struct ckpt_names {
    char (*names)[160];
    kiln_ckpt_tensor *tensors;
    int n;
    float *full[2];                    /* optimizer states gathered whole (saving a shard) */
} ckpt_names;

/* Descriptor k: the part [a, b) of tensor ti (flat parameter indexes) held at data. */
static void describe(ckpt_names *cn, const char *prefix, const kiln_tensor_info *ti, size_t a,
                     size_t b, float *data)
{
    int k = cn->n++;
    snprintf(cn->names[k], sizeof cn->names[k], "%s%s", prefix, ti->name);
    kiln_ckpt_tensor *t = &cn->tensors[k];
    t->name = cn->names[k];
    t->data = data;
    t->ndim = ti->ndim;
    memcpy(t->shape, ti->shape, sizeof t->shape);
    t->start = a - ti->offset;
    t->count = b - a;
}

/* Parameters whole; each optimizer state either whole from state_base[s] (n_params floats,
 * for saving) or, with state_base NULL, only this rank's shard of it (for loading). */
static kiln_status describe_tensors(train_run *r, ckpt_names *cn, float *const *state_base)
{
    int nt = kiln_model_num_tensors(r->model), ns = kiln_optim_num_states(r->optim);
    size_t lo, hi;
    kiln_optim_range(r->optim, &lo, &hi);
    cn->names = calloc((size_t)(nt * (1 + ns)), sizeof *cn->names);
    cn->tensors = calloc((size_t)(nt * (1 + ns)), sizeof *cn->tensors);
    KILN_CHECK_ALLOC(cn->names);
    KILN_CHECK_ALLOC(cn->tensors);
    for (int i = 0; i < nt; i++) {
        const kiln_tensor_info *ti = kiln_model_tensor(r->model, i);
        describe(cn, "model/", ti, ti->offset, ti->offset + ti->numel,
                 kiln_model_host_params(r->model) + ti->offset);
    }
    for (int s = 0; s < ns; s++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "optim/%s/", kiln_optim_state_name(r->optim, s));
        for (int i = 0; i < nt; i++) {
            const kiln_tensor_info *ti = kiln_model_tensor(r->model, i);
            size_t a = ti->offset, b = ti->offset + ti->numel;
            if (state_base) {
                describe(cn, prefix, ti, a, b, state_base[s] + a);
                continue;
            }
            if (a < lo) a = lo;
            if (b > hi) b = hi;
            if (a < b) describe(cn, prefix, ti, a, b, kiln_optim_host_state(r->optim, s) + (a - lo));
        }
    }
    return KILN_OK;
}

static void free_names(ckpt_names *cn)
{
    free(cn->names);
    free(cn->tensors);
    for (int s = 0; s < 2; s++) free(cn->full[s]);
}

/* Whole optimizer states on world rank 0 (gathered from the shards under ZeRO). */
static kiln_status gather_states(train_run *r, ckpt_names *cn)
{
    size_t n = kiln_model_num_params(r->model);
    for (int s = 0; s < kiln_optim_num_states(r->optim); s++) {
        cn->full[s] = malloc(n * sizeof(float));
        KILN_CHECK_ALLOC(cn->full[s]);
        KILN_CHECK(kiln_dp_gather_state(r->dp, kiln_optim_host_state(r->optim, s), cn->full[s]));
    }
    return KILN_OK;
}

static kiln_ckpt_meta *meta_alloc(void) { return calloc(1, sizeof(kiln_ckpt_meta)); }

kiln_status train_save_checkpoint(train_run *r)
{
    return train_save_checkpoint_to(r, r->ckpt_dir, r->cfg.train.keep);
}

kiln_status train_save_checkpoint_to(train_run *r, const char *dir, int keep)
{
    ckpt_names cn = {0};
    kiln_ckpt_meta *meta = meta_alloc();
    KILN_CHECK_ALLOC(meta);
    kiln_status st;
    /* on a GPU: the host mirrors the file is written from (no-ops on the CPU) */
    KILN_CHECK_GOTO(st, kiln_model_params_to_host(r->model), done);
    KILN_CHECK_GOTO(st, kiln_optim_states_to_host(r->optim), done);
    KILN_CHECK_GOTO(st, gather_states(r, &cn), done);
    KILN_CHECK_GOTO(st, describe_tensors(r, &cn, cn.full), done);
    meta->step = r->step;
    meta->samples_seen = r->samples_seen;
    meta->tokens_seen = r->tokens_seen;
    meta->seed = (uint64_t)r->cfg.train.seed;
    kiln_loader_cursor(r->train_loader, &meta->data_epoch, &meta->data_pos);
    meta->best_eval_loss = r->best_eval_loss;
    snprintf(meta->config_text, sizeof meta->config_text, "%s", r->config_yaml);
    snprintf(meta->kiln_version, sizeof meta->kiln_version, "%s", KILN_VERSION);
    /* every rank holds the whole state (no sharding yet): rank 0 writes, the others wait */
    if (kiln_comm_rank(r->comm, KILN_AXIS_WORLD) == 0)
        KILN_CHECK_GOTO(st, kiln_ckpt_save(dir, meta, cn.tensors, cn.n, keep), done);
    KILN_CHECK_GOTO(st, kiln_comm_barrier(r->comm), done);
    kiln_debug("checkpoint: step %ld -> %s (all ranks)", r->step, dir);
done:
    free_names(&cn);
    free(meta);
    return st;
}

kiln_status train_restore_checkpoint(train_run *r, const char *path)
{
    ckpt_names cn = {0};
    kiln_ckpt_meta *meta = meta_alloc();
    KILN_CHECK_ALLOC(meta);
    kiln_status st;
    KILN_CHECK_GOTO(st, describe_tensors(r, &cn, NULL), done);
    KILN_CHECK_GOTO(st, kiln_ckpt_load(path, meta, cn.tensors, cn.n), done);
    KILN_CHECK_GOTO(st, kiln_model_params_to_device(r->model), done);
    KILN_CHECK_GOTO(st, kiln_optim_states_to_device(r->optim), done);
    if (meta->seed != (uint64_t)r->cfg.train.seed) {
        st = KILN_ERROR(KILN_ERR_CKPT,
                        "checkpoint '%s' was written with train.seed=%llu but the config has %lld; "
                        "resume with the same seed or use another train.out_dir",
                        path, (unsigned long long)meta->seed, (long long)r->cfg.train.seed);
        goto done;
    }
    r->step = (long)meta->step;
    r->samples_seen = meta->samples_seen;
    r->tokens_seen = meta->tokens_seen;
    r->best_eval_loss = meta->best_eval_loss;
    KILN_CHECK_GOTO(st, kiln_loader_seek(r->train_loader, meta->data_epoch, meta->data_pos), done);
    kiln_info("resumed from %s at step %ld", path, r->step);
done:
    free_names(&cn);
    free(meta);
    return st;
}
