/* MLP classifier: in -> hidden... (linear + GELU [+ dropout]) -> linear -> softmax x-entropy.
 * Each linear layer is one block. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/rng.h"
#include "model_impl.h"

#define MLP_MAX_LAYERS (KILN_CFG_LIST_MAX + 1)

typedef struct mlp_state {
    int n_layers;
    int width[MLP_MAX_LAYERS + 1];      /* width[0] = in_dim, width[n_layers] = n_out */
    size_t w_off[MLP_MAX_LAYERS], b_off[MLP_MAX_LAYERS];
    float *pre[MLP_MAX_LAYERS];         /* (B, width[i+1]) linear outputs */
    float *post[MLP_MAX_LAYERS];        /* (B, width[i+1]) GELU (+dropout) outputs, hidden only */
    float *losses;                      /* (B) */
    float *probs;                       /* (B, n_out) */
    float *dcur, *dnext, *dtmp;         /* (B, max width) activation-gradient scratch */
} mlp_state;

/* Dropout masks are keyed by (step, layer) so recomputation and resume reproduce them. */
static uint64_t mlp_dropout_stream(uint64_t step, int layer) { return (step << 8) | (uint64_t)layer; }

static void mlp_init_params(kiln_model *m, mlp_state *s, uint64_t seed)
{
    for (int i = 0; i < s->n_layers; i++) {
        /* N(0, 1/fan_in): keeps pre-activations at unit scale through GELU layers */
        float std = 1.0f / sqrtf((float)s->width[i]);
        kiln_rng_fill_normal(kiln_model_host_params(m) + s->w_off[i],
                             (size_t)s->width[i] * (size_t)s->width[i + 1], 0.0f, std, seed,
                             (uint64_t)i, 0);
    }
}

static kiln_status mlp_forward(kiln_model *m, const kiln_batch *b, int training, uint64_t step,
                               float *loss, int64_t *n_correct, int64_t *n_targets)
{
    mlp_state *s = m->impl;
    const kiln_ops *op = &m->be->ops;
    void *st = m->be->stream;
    const float *in = b->x;
    float p = (float)m->cfg.dropout;
    for (int i = 0; i < s->n_layers; i++) {
        int C = s->width[i], OC = s->width[i + 1];
        kiln_model_block_begin(m, i, KILN_PASS_FORWARD);
        op->linear_forward(s->pre[i], in, kiln_model_param(m, s->w_off[i]),
                           kiln_model_param(m, s->b_off[i]), b->B, C, OC, st);
        kiln_model_block_end(m, i, KILN_PASS_FORWARD);
        if (i == s->n_layers - 1) break;
        size_t n = (size_t)b->B * OC;
        op->gelu_forward(s->post[i], s->pre[i], n, st);
        if (training && p > 0.0f)
            op->dropout_forward(s->post[i], s->post[i], p, m->seed, mlp_dropout_stream(step, i), n, st);
        in = s->post[i];
    }
    op->softmax_xent_forward(s->losses, s->probs, s->pre[s->n_layers - 1], b->y, b->B, m->n_out, st);
    m->probs = s->probs;
    return kiln_model_xent_summary(m, s->losses, s->probs, b->B, m->n_out, loss, n_correct,
                                   n_targets);
}

static kiln_status mlp_backward(kiln_model *m, float target_scale)
{
    mlp_state *s = m->impl;
    const kiln_ops *op = &m->be->ops;
    void *st = m->be->stream;
    const kiln_batch *batch = m->batch;
    int B = batch->B, L = s->n_layers;
    float p = (float)m->cfg.dropout;

    op->zero(s->dcur, (size_t)B * m->n_out, st);
    op->softmax_xent_backward(s->dcur, s->probs, batch->y, target_scale, B, m->n_out, st);
    for (int i = L - 1; i >= 0; i--) {
        int C = s->width[i], OC = s->width[i + 1];
        const float *in = i ? s->post[i - 1] : batch->x;
        float *din = i ? s->dnext : NULL;
        if (din) op->zero(din, (size_t)B * C, st);
        kiln_model_block_begin(m, i, KILN_PASS_BACKWARD);
        op->linear_backward(din, kiln_model_grad(m, s->w_off[i]), kiln_model_grad(m, s->b_off[i]),
                            s->dcur, in, kiln_model_param(m, s->w_off[i]), B, C, OC, st);
        kiln_model_block_done(m, i);
        if (!i) break;
        /* dnext = d(post[i-1]); turn it into d(pre[i-1]) in dcur */
        size_t n = (size_t)B * C;
        const float *dgelu_out = s->dnext;
        if (m->training && p > 0.0f) {
            op->zero(s->dtmp, n, st);
            op->dropout_backward(s->dtmp, s->dnext, p, m->seed, mlp_dropout_stream(m->step, i - 1), n,
                                 st);
            dgelu_out = s->dtmp;
        }
        op->zero(s->dcur, n, st);
        op->gelu_backward(s->dcur, s->pre[i - 1], dgelu_out, n, st);
    }
    return KILN_OK;
}

static void mlp_free(kiln_model *m)
{
    mlp_state *s = m->impl;
    if (!s) return;
    for (int i = 0; i < s->n_layers; i++) {
        m->be->free(s->pre[i]);
        m->be->free(s->post[i]);
    }
    m->be->free(s->losses);
    m->be->free(s->probs);
    m->be->free(s->dcur);
    m->be->free(s->dnext);
    m->be->free(s->dtmp);
    free(s);
    m->impl = NULL;
}

/* "fc<i>": linear layer i's output (the last is the logits); "gelu<i>": hidden activations. */
static const float *mlp_output(const kiln_model *m, const char *name, int *width)
{
    const mlp_state *s = m->impl;
    int i, end = 0;
    if (!strcmp(name, "probs")) return *width = m->n_out, s->probs;
    if (!strcmp(name, "loss")) return *width = 1, s->losses;
    if (sscanf(name, "fc%d%n", &i, &end) == 1 && !name[end] && i >= 0 && i < s->n_layers)
        return *width = s->width[i + 1], s->pre[i];
    if (sscanf(name, "gelu%d%n", &i, &end) == 1 && !name[end] && i >= 0 && i < s->n_layers - 1)
        return *width = s->width[i + 1], s->post[i];
    return NULL;
}

static void mlp_output_names(const kiln_model *m, char *buf, size_t len)
{
    const mlp_state *s = m->impl;
    snprintf(buf, len, "probs, loss, fc0..fc%d (linear outputs; fc%d = logits)", s->n_layers - 1,
             s->n_layers - 1);
    if (s->n_layers > 1) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, ", gelu0..gelu%d (hidden activations)", s->n_layers - 2);
    }
}

static const kiln_model_vtable mlp_vtable = {mlp_forward, mlp_backward, mlp_free, mlp_output,
                                             mlp_output_names};

static void mlp_layout(kiln_model *m, mlp_state *s)
{
    double flops = 0.0, macs;
    for (int i = 0; i < s->n_layers; i++) {
        char name[64];
        uint64_t wshape[2] = {(uint64_t)s->width[i + 1], (uint64_t)s->width[i]};
        uint64_t bshape[1] = {(uint64_t)s->width[i + 1]};
        kiln_model_begin_block(m);
        snprintf(name, sizeof name, "fc%d.weight", i);
        s->w_off[i] = kiln_model_add_tensor(m, name, 2, wshape, 1);
        snprintf(name, sizeof name, "fc%d.bias", i);
        s->b_off[i] = kiln_model_add_tensor(m, name, 1, bshape, 0);
        /* 2 flops per MAC forward, 2 for the weight gradient, 2 for the input gradient; the
         * first layer computes no input gradient */
        macs = (double)s->width[i] * s->width[i + 1];
        flops += (i == 0 ? 4.0 : 6.0) * macs;
    }
    m->flops_per_unit = flops;
}

kiln_status kiln_mlp_init(kiln_model *m, uint64_t seed)
{
    const kiln_model_config *c = &m->cfg;
    if (m->in_dim <= 0)
        return KILN_ERROR(KILN_ERR_ARG, "mlp needs a positive input width, found %d", m->in_dim);
    mlp_state *s = calloc(1, sizeof *s);
    KILN_CHECK_ALLOC(s);
    m->impl = s;
    m->vt = &mlp_vtable;
    m->data_kind = KILN_DATA_CLASSIFY;
    s->n_layers = c->hidden.n + 1;
    s->width[0] = m->in_dim;
    int maxw = m->in_dim;
    for (int i = 0; i < c->hidden.n; i++) {
        if (c->hidden.v[i] <= 0)
            return KILN_ERROR(KILN_ERR_CONFIG, "model.hidden[%d] must be positive, found %d", i,
                              c->hidden.v[i]);
        s->width[i + 1] = c->hidden.v[i];
        if (c->hidden.v[i] > maxw) maxw = c->hidden.v[i];
    }
    s->width[s->n_layers] = m->n_out;
    if (m->n_out > maxw) maxw = m->n_out;
    mlp_layout(m, s);
    KILN_CHECK(kiln_model_alloc_buffers(m));
    mlp_init_params(m, s, seed);
    KILN_CHECK(kiln_model_params_to_device(m));
    size_t B = (size_t)m->max_batch;
    for (int i = 0; i < s->n_layers; i++) {
        KILN_CHECK(kiln_model_alloc_acts(m, &s->pre[i], B * s->width[i + 1], "mlp pre"));
        if (i < s->n_layers - 1)
            KILN_CHECK(kiln_model_alloc_acts(m, &s->post[i], B * s->width[i + 1], "mlp post"));
    }
    KILN_CHECK(kiln_model_alloc_f32(m, &s->losses, B, "losses"));
    KILN_CHECK(kiln_model_alloc_f32(m, &s->probs, B * m->n_out, "probs"));
    KILN_CHECK(kiln_model_alloc_acts(m, &s->dcur, B * maxw, "grad scratch"));
    KILN_CHECK(kiln_model_alloc_acts(m, &s->dnext, B * maxw, "grad scratch"));
    KILN_CHECK(kiln_model_alloc_acts(m, &s->dtmp, B * maxw, "grad scratch"));
    return KILN_OK;
}

kiln_status kiln_mlp_read_widths(hid_t file, const char *path, const kiln_model_config *cfg,
                                 int *in_dim, int *n_out)
{
    char last[64];
    snprintf(last, sizeof last, "model/fc%d.weight", cfg->hidden.n);
    KILN_CHECK(kiln_model_tensor_extent(file, path, "model/fc0.weight", 1, in_dim));
    return kiln_model_tensor_extent(file, path, last, 0, n_out);
}
