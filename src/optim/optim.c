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
    size_t n;
};

kiln_status kiln_optim_create(const kiln_optim_config *cfg, const kiln_model *m,
                              const kiln_backend *be, kiln_optim **out)
{
    *out = NULL;
    kiln_optim *o = calloc(1, sizeof *o);
    KILN_CHECK_ALLOC(o);
    o->cfg = *cfg;
    o->be = be;
    o->n = kiln_model_num_params(m);
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
        o->state[i] = be->alloc(o->n * sizeof(float));
        if (!o->state[i]) {
            size_t n = o->n;
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
    for (int i = 0; i < o->n_states; i++)
        if (o->state[i]) o->be->free(o->state[i]);
    free(o);
}

void kiln_optim_step(kiln_optim *o, kiln_model *m, float lr, float grad_scale, int t)
{
    const kiln_ops *op = &o->be->ops;
    float *p = kiln_model_params(m), *g = kiln_model_grads(m);
    const kiln_optim_config *c = &o->cfg;
    for (int i = 0; i < kiln_model_num_tensors(m); i++) {
        const kiln_tensor_info *ti = kiln_model_tensor(m, i);
        size_t off = ti->offset;
        float wd = ti->decay ? (float)c->weight_decay : 0.0f;
        if (o->kind == OPT_ADAMW)
            op->adamw_update(p + off, o->state[0] + off, o->state[1] + off, g + off, ti->numel, lr,
                             (float)c->beta1, (float)c->beta2, (float)c->eps, wd, grad_scale, t,
                             o->be->stream);
        else
            op->sgd_update(p + off, o->state[0] + off, g + off, ti->numel, lr, (float)c->momentum,
                           wd, grad_scale, o->be->stream);
    }
}

int kiln_optim_num_states(const kiln_optim *o) { return o->n_states; }
const char *kiln_optim_state_name(const kiln_optim *o, int i) { return o->state_names[i]; }
float *kiln_optim_state(kiln_optim *o, int i) { return o->state[i]; }
