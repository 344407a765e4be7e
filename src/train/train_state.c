/* The mapping between a training run and its checkpoint: parameters under model/<tensor>,
 * optimizer state under optim/<state>/<tensor>, and the counters, seed, config and data
 * cursor as attributes. Each rank writes its part and reads what it holds, so a checkpoint
 * is the same file whatever the number of ranks or the ZeRO stage on either side. */
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
} ckpt_names;

/* A buffer holding the flat parameter range [lo, hi) (parameters or an optimizer state). */
typedef struct held_range {
    float *base;                       /* element 0 is flat index lo */
    size_t lo, hi;
} held_range;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* One descriptor per tensor for its part inside [lo, hi) (a sub-range of h), named
 * prefix + tensor name. every_tensor: also for tensors with no part there, as an empty range
 * (a collective save needs every rank to list every tensor). */
static void describe_part(ckpt_names *cn, const kiln_model *m, const char *prefix, held_range h,
                          size_t lo, size_t hi, int every_tensor)
{
    for (int i = 0; i < kiln_model_num_tensors(m); i++) {
        const kiln_tensor_info *ti = kiln_model_tensor(m, i);
        size_t a = max_sz(ti->offset, lo), b = min_sz(ti->offset + ti->numel, hi);
        if (a >= b && !every_tensor) continue;
        int k = cn->n++;
        snprintf(cn->names[k], sizeof cn->names[k], "%s%s", prefix, ti->name);
        kiln_ckpt_tensor *t = &cn->tensors[k];
        t->name = cn->names[k];
        t->ndim = ti->ndim;
        memcpy(t->shape, ti->shape, sizeof t->shape);
        t->start = a < b ? a - ti->offset : 0;
        t->count = a < b ? b - a : 0;
        t->data = a < b ? h.base + (a - h.lo) : NULL;
    }
}

/* Saving (write = 1): every tensor's part in this rank's write part of the flat range, whole
 * tensors across the ranks. Loading: everything this rank holds. Parameters go under model/,
 * optimizer state s under optim/<s>/. */
static kiln_status describe_tensors(train_run *r, ckpt_names *cn, int write)
{
    int nt = kiln_model_num_tensors(r->model), ns = kiln_optim_num_states(r->optim);
    cn->names = calloc((size_t)(nt * (1 + ns)), sizeof *cn->names);
    cn->tensors = calloc((size_t)(nt * (1 + ns)), sizeof *cn->tensors);
    KILN_CHECK_ALLOC(cn->names);
    KILN_CHECK_ALLOC(cn->tensors);
    size_t part_lo, part_hi;
    kiln_dp_write_part(r->dp, &part_lo, &part_hi);
    held_range params;
    kiln_dp_held_params(r->dp, &params.base, &params.lo, &params.hi);
    describe_part(cn, r->model, "model/", params, write ? part_lo : params.lo,
                  write ? part_hi : params.hi, write);
    for (int s = 0; s < ns; s++) {
        char prefix[64];
        held_range state = {kiln_optim_host_state(r->optim, s), 0, 0};
        kiln_optim_range(r->optim, &state.lo, &state.hi);
        snprintf(prefix, sizeof prefix, "optim/%s/", kiln_optim_state_name(r->optim, s));
        describe_part(cn, r->model, prefix, state, write ? part_lo : state.lo,
                      write ? part_hi : state.hi, write);
    }
    return KILN_OK;
}

static void free_names(ckpt_names *cn)
{
    free(cn->names);
    free(cn->tensors);
}

static kiln_ckpt_meta *meta_alloc(void) { return calloc(1, sizeof(kiln_ckpt_meta)); }

kiln_status kiln_train_save_checkpoint(train_run *r)
{
    return kiln_train_save_checkpoint_to(r, kiln_run_dir_ckpt(r->dir), r->cfg.train.keep);
}

kiln_status kiln_train_save_checkpoint_to(train_run *r, const char *dir, int keep)
{
    ckpt_names cn = {0};
    kiln_ckpt_meta *meta = meta_alloc();
    KILN_CHECK_ALLOC(meta);
    kiln_status st;
    /* on a GPU: the host mirrors the file is written from (the shard's own at ZeRO-3; no-ops
     * on the CPU) */
    KILN_CHECK_GOTO(st, kiln_dp_params_to_host(r->dp), done);
    KILN_CHECK_GOTO(st, kiln_optim_states_to_host(r->optim), done);
    KILN_CHECK_GOTO(st, describe_tensors(r, &cn, 1), done);
    meta->step = r->step;
    meta->samples_seen = r->samples_seen;
    meta->tokens_seen = r->tokens_seen;
    meta->seed = (uint64_t)r->cfg.train.seed;
    kiln_loader_cursor(r->train_loader, &meta->data_epoch, &meta->data_pos);
    meta->best_eval_loss = r->best_eval_loss;
    snprintf(meta->config_text, sizeof meta->config_text, "%s", r->config_yaml);
    snprintf(meta->kiln_version, sizeof meta->kiln_version, "%s", KILN_VERSION);
    /* every rank writes its part of every tensor, collectively */
    KILN_CHECK_GOTO(st, kiln_ckpt_save(r->comm, dir, meta, cn.tensors, cn.n, keep), done);
    kiln_debug("checkpoint: step %ld -> %s (all ranks)", r->step, dir);
done:
    free_names(&cn);
    free(meta);
    return st;
}

kiln_status kiln_train_restore_checkpoint(train_run *r, const char *path)
{
    ckpt_names cn = {0};
    kiln_ckpt_meta *meta = meta_alloc();
    KILN_CHECK_ALLOC(meta);
    kiln_status st;
    KILN_CHECK_GOTO(st, describe_tensors(r, &cn, 0), done);
    KILN_CHECK_GOTO(st, kiln_ckpt_load(path, meta, cn.tensors, cn.n), done);
    KILN_CHECK_GOTO(st, kiln_dp_params_to_device(r->dp), done);
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
