/* A model on a device backend: the device copy of each batch that forward reads, the host
 * copies of the losses (and probabilities) that the summaries read, and the host mirror of
 * the parameters that initialisation and checkpoints use. On the CPU backend every buffer is
 * already host memory: nothing here allocates or copies, so the CPU path is unchanged. With
 * bf16 storage the parameters the ops read are a bf16 copy of the fp32 ones, refreshed here
 * whenever the fp32 ones arrive from the host. */
#include <stdlib.h>
#include "model_impl.h"

static int on_device(const kiln_model *m) { return m->be->kind != KILN_DEVICE_CPU; }

/* Rows of the loss (one per scored position) and columns of an input row. */
static size_t max_rows(const kiln_model *m)
{
    size_t B = (size_t)m->max_batch;
    return m->data_kind == KILN_DATA_LM ? B * (size_t)m->cfg.block_size : B;
}

kiln_status kiln_model_alloc_staging(kiln_model *m)
{
    if (!on_device(m)) return KILN_OK;
    m->host_params = calloc(m->n_params ? m->n_params : 1, sizeof(float)); /* biases start 0 */
    m->host_losses = malloc(max_rows(m) * sizeof(float));
    KILN_CHECK_ALLOC(m->host_params);
    KILN_CHECK_ALLOC(m->host_losses);
    size_t B = (size_t)m->max_batch, rows = max_rows(m);
    kiln_batch *d = &m->dev_batch;
    if (m->data_kind == KILN_DATA_LM) {
        d->tokens = m->be->alloc(rows * sizeof(int32_t));
        d->targets = m->be->alloc(rows * sizeof(int32_t));
        if (!d->tokens || !d->targets)
            return KILN_ERROR(KILN_ERR_NOMEM, "cannot allocate the batch (%zu tokens) on %s", rows,
                              m->be->name);
    } else {
        size_t n = B * (size_t)m->in_dim;
        d->x = m->be->alloc(n * m->elem);
        d->y = m->be->alloc(B * sizeof(int32_t));
        /* inputs arrive as fp32; with bf16 storage they land here and are cast into d->x */
        if (m->elem != sizeof(float)) m->dev_x_f32 = m->be->alloc(n * sizeof(float));
        if (!d->x || !d->y || (m->elem != sizeof(float) && !m->dev_x_f32))
            return KILN_ERROR(KILN_ERR_NOMEM, "cannot allocate the batch (%zu rows of %d) on %s",
                              B, m->in_dim, m->be->name);
    }
    return KILN_OK;
}

void kiln_model_free_staging(kiln_model *m)
{
    if (!on_device(m)) return;
    free(m->host_params);
    free(m->host_losses);
    free(m->host_probs);
    void *dev[] = {m->dev_batch.x, m->dev_batch.y, m->dev_batch.tokens, m->dev_batch.targets,
                   m->dev_x_f32};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) m->be->free(dev[i]);
}

kiln_status kiln_model_stage_batch(kiln_model *m, const kiln_batch *b, const kiln_batch **out)
{
    *out = b;
    if (!on_device(m)) return KILN_OK;
    const kiln_backend *be = m->be;
    kiln_batch *d = &m->dev_batch;
    size_t B = (size_t)b->B;
    if (m->data_kind == KILN_DATA_LM) {
        size_t n = B * (size_t)m->cfg.block_size * sizeof(int32_t);
        be->copy_to_device(d->tokens, b->tokens, n, be->stream);
        be->copy_to_device(d->targets, b->targets, n, be->stream);
    } else {
        size_t n = B * (size_t)m->in_dim;
        float *x = m->dev_x_f32 ? m->dev_x_f32 : d->x;
        be->copy_to_device(x, b->x, n * sizeof(float), be->stream);
        if (m->dev_x_f32) be->ops.cast_from_f32(d->x, m->dev_x_f32, n, be->stream);
        be->copy_to_device(d->y, b->y, B * sizeof(int32_t), be->stream);
    }
    d->B = b->B;
    *out = d;
    return KILN_OK;
}

kiln_status kiln_model_xent_summary(kiln_model *m, const float *losses, const float *probs,
                                    int N, int V, float *loss, int64_t *n_correct,
                                    int64_t *n_targets)
{
    const kiln_batch *hb = m->host_batch;
    const int32_t *targets = m->data_kind == KILN_DATA_LM ? hb->targets : hb->y;
    if (!on_device(m)) {
        kiln_xent_summary(losses, probs, targets, N, V, loss, n_correct, n_targets);
        return KILN_OK;
    }
    const kiln_backend *be = m->be;
    be->copy_to_host(m->host_losses, losses, (size_t)N * sizeof(float), be->stream);
    if (n_correct) { /* evaluation: the probabilities too, for the top-1 hits */
        if (!m->host_probs) m->host_probs = malloc(max_rows(m) * (size_t)m->n_out * sizeof(float));
        KILN_CHECK_ALLOC(m->host_probs);
        be->copy_to_host(m->host_probs, probs, (size_t)N * V * sizeof(float), be->stream);
    }
    KILN_CHECK(be->synchronize(be->stream)); /* reports a failed kernel of this forward */
    kiln_xent_summary(m->host_losses, m->host_probs, targets, N, V, loss, n_correct, n_targets);
    return KILN_OK;
}

float *kiln_model_host_params(kiln_model *m) { return on_device(m) ? m->host_params : m->params; }

/* Once ZeRO-3 holds the parameters there is no whole model to copy: its shard has its own. */
static kiln_status check_whole(const kiln_model *m)
{
    if (m->params) return KILN_OK;
    return KILN_ERROR(KILN_ERR_INTERNAL, "the model's parameters are sharded (ZeRO-3): copy them "
                      "through the data-parallel engine (kiln_dp_params_to_host/_to_device)");
}

kiln_status kiln_model_params_to_host(kiln_model *m)
{
    if (!on_device(m)) return KILN_OK;
    KILN_CHECK(check_whole(m));
    m->be->copy_to_host(m->host_params, m->params, m->n_params * sizeof(float), m->be->stream);
    return m->be->synchronize(m->be->stream);
}

kiln_status kiln_model_params_to_device(kiln_model *m)
{
    if (!on_device(m)) return KILN_OK;
    KILN_CHECK(check_whole(m));
    m->be->copy_to_device(m->params, m->host_params, m->n_params * sizeof(float), m->be->stream);
    kiln_model_params_changed(m);
    return m->be->synchronize(m->be->stream);
}

void kiln_model_params_changed(kiln_model *m)
{
    if (m->param_copy) m->be->ops.cast_from_f32(m->param_copy, m->params, m->n_params, m->be->stream);
}
