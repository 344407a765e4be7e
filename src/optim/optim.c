/* AdamW and SGD-with-momentum over the flat parameter buffer. State buffers mirror the
 * parameters; updates run tensor by tensor only to choose whether weight decay applies. */
#include <stdlib.h>
#include <string.h>
#include "kiln/optim.h"

enum { OPT_ADAMW, OPT_SGD };

struct kiln_optim {
    kiln_optim_config cfg;
    const kiln_backend *be;
    int kind;
    int n_states;
    const char *state_names[2];
    float *state[2];
    float *host_state[2];        /* device backends: host mirrors for checkpoints */
    size_t lo, hi;               /* the parameter range the state covers */
};

kiln_status kiln_optim_create(const kiln_optim_config *cfg, const kiln_model *m,
                              const kiln_backend *be, size_t lo, size_t hi, kiln_optim **out)
{
    *out = NULL;
    if (lo > hi || hi > kiln_model_num_params(m))
        return KILN_ERROR(KILN_ERR_ARG, "optimizer range [%zu, %zu) outside the %zu parameters", lo,
                          hi, kiln_model_num_params(m));
    kiln_optim *o = calloc(1, sizeof *o);
    KILN_CHECK_ALLOC(o);
    o->cfg = *cfg;
    o->be = be;
    o->lo = lo;
    o->hi = hi;
    if (!strcmp(cfg->name, "adamw")) {
        o->kind = OPT_ADAMW;
        o->n_states = 2;
        o->state_names[0] = "m";
        o->state_names[1] = "v";
    } else if (!strcmp(cfg->name, "sgd")) {
        o->kind = OPT_SGD;
        o->n_states = 1;
        o->state_names[0] = "momentum";
    } else {
        free(o);
        return KILN_ERROR(KILN_ERR_CONFIG, "optim.name must be adamw or sgd, found '%s'", cfg->name);
    }
    for (int i = 0; i < o->n_states; i++) {
        /* at least one element so an empty shard still has valid buffers */
        o->state[i] = be->alloc((hi - lo + 1) * sizeof(float));
        if (be->kind != KILN_DEVICE_CPU) o->host_state[i] = malloc((hi - lo + 1) * sizeof(float));
        if (!o->state[i] || (be->kind != KILN_DEVICE_CPU && !o->host_state[i])) {
            size_t n = hi - lo;
            kiln_optim_free(o);
            return KILN_ERROR(KILN_ERR_NOMEM, "cannot allocate optimizer state (%zu floats)", n);
        }
    }
    *out = o;
    return KILN_OK;
}

void kiln_optim_free(kiln_optim *o)
{
    if (!o) return;
    for (int i = 0; i < o->n_states; i++) {
        if (o->state[i]) o->be->free(o->state[i]);
        free(o->host_state[i]);
    }
    free(o);
}

/* One update over the flat range [a, b), all with weight decay wd; params (fp32), params_copy
 * (the storage type, or NULL) and grads (the storage type) hold the optimizer's range (element
 * k is parameter lo + k). The copy the ops read is written in the same pass as the fp32 update. */
static void update_range(kiln_optim *o, float *params, float *params_copy, const float *grads,
                         size_t a, size_t b, float wd, float lr, float grad_scale, int t)
{
    const kiln_ops *op = &o->be->ops;
    const kiln_optim_config *c = &o->cfg;
    kiln_precision type = o->be->precision;
    size_t n = b - a, s = a - o->lo;
    float *copy = params_copy ? kiln_storage_at(type, params_copy, s) : NULL;
    const float *g = kiln_storage_at(type, grads, s);
    if (o->kind == OPT_ADAMW)
        op->adamw_update(params + s, copy, o->state[0] + s, o->state[1] + s, g, n, lr,
                         (float)c->beta1, (float)c->beta2, (float)c->eps, wd, grad_scale, t,
                         o->be->stream);
    else
        op->sgd_update(params + s, copy, o->state[0] + s, g, n, lr, (float)c->momentum, wd,
                       grad_scale, o->be->stream);
}

/* Tensors are adjacent in the flat buffer, so a run of them with the same weight decay is one
 * update: one pass (and one thread team) instead of one per tensor, most of them tiny biases. */
void kiln_optim_step(kiln_optim *o, const kiln_model *m, float *params, float *params_copy,
                     const float *grads, float lr, float grad_scale, int t)
{
    size_t run_a = 0, run_b = 0;
    float run_wd = 0.0f;
    for (int i = 0; i < kiln_model_num_tensors(m); i++) {
        const kiln_tensor_info *ti = kiln_model_tensor(m, i);
        /* the part of this tensor inside the optimizer's range */
        size_t a = ti->offset > o->lo ? ti->offset : o->lo;
        size_t b = ti->offset + ti->numel < o->hi ? ti->offset + ti->numel : o->hi;
        if (a >= b) continue;
        float wd = ti->decay ? (float)o->cfg.weight_decay : 0.0f;
        if (run_b > run_a && (wd != run_wd || a != run_b)) {
            update_range(o, params, params_copy, grads, run_a, run_b, run_wd, lr, grad_scale, t);
            run_a = run_b;
        }
        if (run_b == run_a) {
            run_a = a;
            run_wd = wd;
        }
        run_b = b;
    }
    if (run_b > run_a) update_range(o, params, params_copy, grads, run_a, run_b, run_wd, lr, grad_scale, t);
}

int kiln_optim_num_states(const kiln_optim *o) { return o->n_states; }
const char *kiln_optim_state_name(const kiln_optim *o, int i) { return o->state_names[i]; }
float *kiln_optim_state(kiln_optim *o, int i) { return o->state[i]; }
float *kiln_optim_host_state(kiln_optim *o, int i)
{
    return o->host_state[i] ? o->host_state[i] : o->state[i];
}

/* dir 0: device -> host mirrors, 1: back; nothing to do on the CPU. */
static kiln_status sync_states(kiln_optim *o, int to_device)
{
    if (o->be->kind == KILN_DEVICE_CPU) return KILN_OK;
    size_t bytes = (o->hi - o->lo) * sizeof(float);
    for (int i = 0; i < o->n_states; i++) {
        if (to_device) o->be->copy_to_device(o->state[i], o->host_state[i], bytes, o->be->stream);
        else o->be->copy_to_host(o->host_state[i], o->state[i], bytes, o->be->stream);
    }
    return o->be->synchronize(o->be->stream);
}

kiln_status kiln_optim_states_to_host(kiln_optim *o) { return sync_states(o, 0); }
kiln_status kiln_optim_states_to_device(kiln_optim *o) { return sync_states(o, 1); }

void kiln_optim_range(const kiln_optim *o, size_t *lo, size_t *hi)
{
    *lo = o->lo;
    *hi = o->hi;
}
