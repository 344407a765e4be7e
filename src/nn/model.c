/* The architecture-independent part of a model: flat buffers, tensor/block tables,
 * dispatch to the architecture (mlp.c, gpt.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_impl.h"

/* Room for one more entry of a table that grows by doubling; 0 (and m->layout_status set)
 * when memory runs out, which kiln_model_alloc_buffers reports. */
static int grow(kiln_model *m, void **table, int *cap, int n, size_t entry)
{
    if (n < *cap) return 1;
    int want = *cap ? 2 * *cap : 16;
    void *bigger = m->layout_status == KILN_OK ? realloc(*table, (size_t)want * entry) : NULL;
    if (!bigger) {
        if (m->layout_status == KILN_OK)
            m->layout_status = KILN_ERROR(KILN_ERR_NOMEM, "model layout: %d table entries", want);
        return 0;
    }
    memset((char *)bigger + (size_t)*cap * entry, 0, (size_t)(want - *cap) * entry);
    *table = bigger;
    *cap = want;
    return 1;
}

void kiln_model_begin_block(kiln_model *m)
{
    if (!grow(m, (void **)&m->blocks, &m->cap_blocks, m->n_blocks, sizeof *m->blocks)) return;
    kiln_block_info *b = &m->blocks[m->n_blocks++];
    b->offset = m->n_params;
    b->numel = 0;
}

size_t kiln_model_add_tensor(kiln_model *m, const char *name, int ndim, const uint64_t *shape,
                             int decay)
{
    if (m->n_blocks == 0 ||
        !grow(m, (void **)&m->tensors, &m->cap_tensors, m->n_tensors, sizeof *m->tensors))
        return 0;
    kiln_tensor_info *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
    t->offset = m->n_params;
    t->decay = decay;
    t->block = m->n_blocks - 1;
    m->n_params += t->numel;
    m->blocks[t->block].numel += t->numel;
    return t->offset;
}

/* Element offset into a buffer of the storage type. */
static float *storage_at(const kiln_model *m, float *base, size_t offset)
{
    return kiln_storage_at(m->be->precision, base, offset);
}

kiln_status kiln_model_alloc_buffers(kiln_model *m)
{
    KILN_CHECK(m->layout_status);
    m->block_params = calloc((size_t)m->n_blocks + 1, sizeof *m->block_params);
    m->block_grads = calloc((size_t)m->n_blocks + 1, sizeof *m->block_grads);
    if (!m->block_params || !m->block_grads)
        return KILN_ERROR(KILN_ERR_NOMEM, "model layout: %d blocks", m->n_blocks);
    m->elem = kiln_precision_bytes(m->be->precision);
    m->params = m->be->alloc(m->n_params * sizeof(float));
    m->grads = m->be->alloc(m->n_params * m->elem);
    if (m->elem != sizeof(float)) m->param_copy = m->be->alloc(m->n_params * m->elem);
    if (!m->params || !m->grads || (m->elem != sizeof(float) && !m->param_copy))
        return KILN_ERROR(KILN_ERR_NOMEM, "cannot allocate %zu parameters on %s", m->n_params,
                          m->be->name);
    float *read = m->param_copy ? m->param_copy : m->params; /* what the ops read */
    for (int b = 0; b < m->n_blocks; b++) {
        m->block_params[b] = storage_at(m, read, m->blocks[b].offset);
        m->block_grads[b] = storage_at(m, m->grads, m->blocks[b].offset);
    }
    return kiln_model_alloc_staging(m);
}

/* The block holding flat offset `offset`: blocks tile the parameters in order. */
static int block_of(const kiln_model *m, size_t offset)
{
    int lo = 0, hi = m->n_blocks - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (m->blocks[mid].offset <= offset) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

float *kiln_model_param(kiln_model *m, size_t offset)
{
    int b = block_of(m, offset);
    return storage_at(m, m->block_params[b], offset - m->blocks[b].offset);
}

float *kiln_model_grad(kiln_model *m, size_t offset)
{
    int b = block_of(m, offset);
    return storage_at(m, m->block_grads[b], offset - m->blocks[b].offset);
}

static kiln_status alloc_elems(kiln_model *m, float **p, size_t n, size_t elem, const char *what)
{
    *p = m->be->alloc(n * elem);
    if (!*p)
        return KILN_ERROR(KILN_ERR_NOMEM, "cannot allocate activations '%s' (%zu elements)", what, n);
    return KILN_OK;
}

kiln_status kiln_model_alloc_acts(kiln_model *m, float **p, size_t n, const char *what)
{
    return alloc_elems(m, p, n, m->elem, what);
}

kiln_status kiln_model_alloc_f32(kiln_model *m, float **p, size_t n, const char *what)
{
    return alloc_elems(m, p, n, sizeof(float), what);
}

kiln_status kiln_model_create(const kiln_model_config *cfg, int in_dim, int n_out,
                              int max_batch, const kiln_backend *be, uint64_t seed,
                              kiln_model **out)
{
    *out = NULL;
    if (max_batch <= 0 || n_out <= 0)
        return KILN_ERROR(KILN_ERR_ARG, "model needs max_batch > 0 and n_out > 0 (got %d, %d)",
                          max_batch, n_out);
    kiln_model *m = calloc(1, sizeof *m);
    KILN_CHECK_ALLOC(m);
    m->cfg = *cfg;
    m->be = be;
    m->in_dim = in_dim;
    m->n_out = n_out;
    m->max_batch = max_batch;
    m->seed = seed;
    const kiln_model_kind *kind;
    kiln_status st = kiln_model_kind_get("model.kind", cfg->kind, &kind);
    if (st == KILN_OK) {
        m->kind = kiln_model_kind_impl_of(kind);
        st = m->kind->init(m, seed);
    }
    if (st != KILN_OK) {
        kiln_error_trace(__FILE__, __LINE__, "model init");
        kiln_model_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

kiln_status kiln_model_clone(kiln_model *m, kiln_model **out)
{
    KILN_CHECK(kiln_model_create(&m->cfg, m->in_dim, m->n_out, m->max_batch, m->be, m->seed, out));
    kiln_status st = kiln_model_params_to_host(m);
    if (st == KILN_OK) {
        memcpy(kiln_model_host_params(*out), kiln_model_host_params(m), m->n_params * sizeof(float));
        st = kiln_model_params_to_device(*out);
    }
    if (st != KILN_OK) {
        kiln_model_free(*out);
        *out = NULL;
    }
    return st;
}

void kiln_model_free(kiln_model *m)
{
    if (!m) return;
    if (m->vt && m->vt->free_impl) m->vt->free_impl(m);
    if (m->params) m->be->free(m->params);
    if (m->param_copy) m->be->free(m->param_copy);
    if (m->grads) m->be->free(m->grads);
    kiln_model_free_staging(m);
    free(m->tensors);
    free(m->blocks);
    free(m->block_params);
    free(m->block_grads);
    free(m);
}

const kiln_model_kind *kiln_model_kind_of(const kiln_model *m) { return &m->kind->pub; }
kiln_data_kind kiln_model_data_kind(const kiln_model *m) { return m->data_kind; }
size_t kiln_model_num_params(const kiln_model *m) { return m->n_params; }
int kiln_model_in_dim(const kiln_model *m)
{
    return m->data_kind == KILN_DATA_LM ? m->cfg.block_size : m->in_dim;
}
int kiln_model_n_out(const kiln_model *m) { return m->n_out; }
int kiln_model_max_batch(const kiln_model *m) { return m->max_batch; }
float *kiln_model_params(kiln_model *m) { return m->params; }
float *kiln_model_grads(kiln_model *m) { return m->grads; }
float *kiln_model_grads_at(kiln_model *m, size_t offset)
{
    return m->grads ? storage_at(m, m->grads, offset) : NULL;
}
float *kiln_model_param_copy_at(kiln_model *m, size_t offset)
{
    return m->param_copy ? storage_at(m, m->param_copy, offset) : NULL;
}
int kiln_model_num_tensors(const kiln_model *m) { return m->n_tensors; }
const kiln_tensor_info *kiln_model_tensor(const kiln_model *m, int i) { return &m->tensors[i]; }
int kiln_model_num_blocks(const kiln_model *m) { return m->n_blocks; }
const kiln_block_info *kiln_model_block(const kiln_model *m, int i) { return &m->blocks[i]; }
double kiln_model_train_flops_per_unit(const kiln_model *m) { return m->flops_per_unit; }
const float *kiln_model_probs(const kiln_model *m) { return m->probs; }

kiln_status kiln_model_output(const kiln_model *m, const char *name, const float **buf,
                              int *width)
{
    *buf = m->vt->output(m, name, width);
    if (*buf) return KILN_OK;
    char names[512];
    m->vt->output_names(m, names, sizeof names);
    return KILN_ERROR(KILN_ERR_ARG, "the %s model has no output '%s'; it has: %s", m->cfg.kind,
                      name, names);
}

kiln_status kiln_model_forward(kiln_model *m, const kiln_batch *b, int training, uint64_t step,
                               float *loss, int64_t *n_correct, int64_t *n_targets)
{
    if (b->B > m->max_batch)
        return KILN_ERROR(KILN_ERR_ARG, "batch of %d rows exceeds the model's max_batch %d", b->B,
                          m->max_batch);
    const kiln_batch *run;
    KILN_CHECK(kiln_model_stage_batch(m, b, &run));
    m->batch = run;
    m->host_batch = b;
    m->training = training;
    m->step = step;
    m->hook_status = KILN_OK;
    int64_t scored = 0;
    KILN_CHECK(m->vt->forward(m, run, training, step, loss, n_correct, &scored));
    KILN_CHECK(m->hook_status);
    m->n_targets = scored;
    if (n_targets) *n_targets = scored;
    return KILN_OK;
}

kiln_status kiln_model_backward(kiln_model *m, float loss_scale)
{
    if (!m->batch)
        return KILN_ERROR(KILN_ERR_ARG, "model backward called before any forward");
    m->hook_status = KILN_OK;
    /* Nothing scored still runs the whole backward, adding a zero gradient: its block hooks
     * are collectives under data parallelism (ZeRO-3 gathers each block as backward begins
     * it), and every rank must make them in the same order, so this rank cannot skip them. */
    KILN_CHECK(m->vt->backward(m, m->n_targets ? loss_scale / (float)m->n_targets : 0.0f));
    KILN_CHECK(m->hook_status);
    return KILN_OK;
}

void kiln_xent_summary(const float *losses, const float *probs, const int32_t *targets, int N,
                       int V, float *loss, int64_t *n_correct, int64_t *n_targets)
{
    double sum = 0.0;
    int64_t hits = 0, count = 0;
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) continue;
        if (n_correct) {
            const float *p = probs + (size_t)i * V;
            int best = 0;
            for (int j = 1; j < V; j++)
                if (p[j] > p[best]) best = j;
            hits += best == targets[i];
        }
        sum += losses[i];
        count++;
    }
    *loss = count ? (float)(sum / (double)count) : 0.0f;
    if (n_correct) *n_correct = hits;
    if (n_targets) *n_targets = count;
}

void kiln_model_set_block_hooks(kiln_model *m, const kiln_block_hooks *hooks)
{
    static const kiln_block_hooks none = {0};
    m->hooks = hooks ? *hooks : none;
}

void kiln_model_set_block_params(kiln_model *m, int block, float *p) { m->block_params[block] = p; }
void kiln_model_set_block_grads(kiln_model *m, int block, float *g) { m->block_grads[block] = g; }

void kiln_model_free_flat_grads(kiln_model *m)
{
    if (m->grads) m->be->free(m->grads);
    m->grads = NULL;
    for (int b = 0; b < m->n_blocks; b++) m->block_grads[b] = NULL;
}

void kiln_model_free_flat_params(kiln_model *m)
{
    if (m->params) m->be->free(m->params);
    if (m->param_copy) m->be->free(m->param_copy);
    free(m->host_params); /* the host mirror (device backends): nothing to mirror any more */
    m->params = m->param_copy = m->host_params = NULL;
    for (int b = 0; b < m->n_blocks; b++) m->block_params[b] = NULL;
}

/* The first failure is kept: later hooks still run, so every rank makes the same calls. */
static void hook_result(kiln_model *m, kiln_status st)
{
    if (st != KILN_OK && m->hook_status == KILN_OK) m->hook_status = st;
}

void kiln_model_block_begin(kiln_model *m, int block, kiln_pass pass)
{
    if (m->hooks.begin) hook_result(m, m->hooks.begin(m->hooks.ctx, block, pass));
}

void kiln_model_block_end(kiln_model *m, int block, kiln_pass pass)
{
    if (m->hooks.end) hook_result(m, m->hooks.end(m->hooks.ctx, block, pass));
}

void kiln_model_block_done(kiln_model *m, int block)
{
    if (m->hooks.done) hook_result(m, m->hooks.done(m->hooks.ctx, block));
}
