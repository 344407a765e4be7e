/* What a chunk's rows become. A classifier row gives its class probabilities and top-k
 * classes; a GPT row (a sequence of W tokens) gives its loss (mean nats over its W-1 next-token
 * predictions) and the top-k next tokens after it; either can also give an embedding, any
 * model output (kiln_model_output) of the row, pooled over a sequence's positions for the GPT.
 * A chunk is always cut into the same forward batches, whichever rank computes it, so the
 * output does not depend on the number of ranks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
#include <string.h>
#include "kiln/data.h"
#include "kiln/log.h"
#include "infer_internal.h"

enum { HOST_PROBS, HOST_LOSS, HOST_EMBED };

static kiln_status add_output(infer_job *j, const char *name, hid_t type, int width)
{
    infer_output *o = &j->out[j->n_out++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->mem_type = type;
    o->width = width;
    return KILN_OK;
}

static infer_output *output_named(infer_job *j, const char *name)
{
    for (int i = 0; i < j->n_out; i++)
        if (!strcmp(j->out[i].name, name)) return &j->out[i];
    return NULL;
}

static kiln_status plan_worker(infer_job *j, infer_worker *w)
{
    size_t rows = j->is_lm ? (size_t)j->batch * (size_t)j->T : (size_t)j->batch;
    kiln_batch *b = &w->batch;
    if (w != j->workers) KILN_CHECK(kiln_model_clone(j->model, &w->model));
    else w->model = j->model;
    if (j->is_lm) {
        b->tokens = malloc(rows * sizeof *b->tokens);
        b->targets = malloc(rows * sizeof *b->targets);
        KILN_CHECK_ALLOC(b->tokens);
        KILN_CHECK_ALLOC(b->targets);
    } else {
        b->x = aligned_alloc(64, (rows * (size_t)j->width * sizeof *b->x + 63) / 64 * 64);
        b->y = malloc(rows * sizeof *b->y);
        KILN_CHECK_ALLOC(b->x);
        KILN_CHECK_ALLOC(b->y);
        for (size_t i = 0; i < rows; i++) b->y[i] = -1; /* no labels: nothing scored */
    }
    if (j->be->kind == KILN_DEVICE_CPU) return KILN_OK;
    size_t per_pos[3] = {(size_t)j->n_classes, 1, (size_t)(j->embed_width ? j->embed_width : 1)};
    for (int i = 0; i < 3; i++) {
        w->host[i] = malloc(rows * per_pos[i] * sizeof(float));
        KILN_CHECK_ALLOC(w->host[i]);
    }
    return KILN_OK;
}

/* One worker per thread on the CPU (each forward single-threaded), one on a device. */
static kiln_status plan_workers(infer_job *j)
{
    j->n_workers = j->be->kind == KILN_DEVICE_CPU ? omp_get_max_threads() : 1;
    omp_set_max_active_levels(1); /* the ops' own parallel loops stay on their worker's thread */
    j->workers = calloc((size_t)j->n_workers, sizeof *j->workers);
    KILN_CHECK_ALLOC(j->workers);
    for (int i = 0; i < j->n_workers; i++) KILN_CHECK(plan_worker(j, &j->workers[i]));
    return KILN_OK;
}

kiln_status kiln_infer_plan_outputs(infer_job *j)
{
    const kiln_infer_config *c = &j->cfg;
    int k = c->infer.top_k;
    if (c->infer.batch < 0 || c->infer.chunk_rows < 1)
        return KILN_ERROR(KILN_ERR_CONFIG, "infer.batch (%d) must be >= 0 and infer.chunk_rows "
                          "(%d) positive", c->infer.batch, c->infer.chunk_rows);
    if (k < 0 || k > j->n_classes)
        return KILN_ERROR(KILN_ERR_CONFIG, "infer.top_k must be in 0..%d (the model's %s), "
                          "found %d", j->n_classes, j->is_lm ? "vocabulary" : "classes", k);
    if (c->infer.embed[0]) {
        const float *buf;
        kiln_status st = kiln_model_output(j->model, c->infer.embed, &buf, &j->embed_width);
        if (st != KILN_OK) {
            char inner[1024];
            snprintf(inner, sizeof inner, "%s", kiln_error_message());
            return KILN_ERROR(KILN_ERR_CONFIG, "infer.embed '%s': %s", c->infer.embed, inner);
        }
    }
    if (j->is_lm) KILN_CHECK(add_output(j, "loss", H5T_NATIVE_FLOAT, 1));
    if (!j->is_lm && c->infer.probs) KILN_CHECK(add_output(j, "probs", H5T_NATIVE_FLOAT, j->n_classes));
    if (k) {
        KILN_CHECK(add_output(j, j->is_lm ? "next_topk_index" : "topk_index", H5T_NATIVE_INT32, k));
        KILN_CHECK(add_output(j, j->is_lm ? "next_topk_prob" : "topk_prob", H5T_NATIVE_FLOAT, k));
    }
    if (j->embed_width) KILN_CHECK(add_output(j, "embedding", H5T_NATIVE_FLOAT, j->embed_width));
    if (!j->n_out)
        return KILN_ERROR(KILN_ERR_CONFIG, "nothing to write: infer.probs is off, infer.top_k is "
                          "0 and infer.embed is empty");
    j->in_raw = malloc((size_t)j->id.chunk_rows * (size_t)j->width * j->in_elem);
    KILN_CHECK_ALLOC(j->in_raw);
    return plan_workers(j);
}

void kiln_infer_free_outputs(infer_job *j)
{
    for (int w = 0; j->workers && w < j->n_workers; w++) {
        infer_worker *wk = &j->workers[w];
        free(wk->batch.x);
        free(wk->batch.y);
        free(wk->batch.tokens);
        free(wk->batch.targets);
        for (int i = 0; i < 3; i++) free(wk->host[i]);
        if (w > 0) kiln_model_free(wk->model); /* worker 0's is the job's */
    }
    free(j->workers);
}

/* The k largest of p[0..V) in descending order; ties keep the lower index first. */
static void top_k(const float *p, int V, int k, int32_t *idx, float *val)
{
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (n == k && !(p[i] > val[k - 1])) continue;
        int at = n < k ? n++ : k - 1;
        while (at > 0 && p[i] > val[at - 1]) {
            val[at] = val[at - 1];
            idx[at] = idx[at - 1];
            at--;
        }
        val[at] = p[i];
        idx[at] = i;
    }
}

/* Rows [r0, r0+n) of the chunk's raw input into the forward batch. */
static kiln_status fill_batch(infer_job *j, kiln_batch *b, uint64_t c, uint64_t r0, int n)
{
    size_t W = (size_t)j->width;
    b->B = n;
    if (!j->is_lm) {
        size_t count = (size_t)n * W;
        if (j->in_type == H5T_NATIVE_FLOAT) {
            memcpy(b->x, (const float *)j->in_raw + r0 * W, count * sizeof(float));
        } else {
            kiln_pixels_to_unit(b->x, (const uint8_t *)j->in_raw + r0 * W, count); /* as training */
        }
        return KILN_OK;
    }
    size_t T = (size_t)j->T;
    for (int r = 0; r < n; r++) {
        const int32_t *tok = (const int32_t *)j->in_raw + (r0 + (size_t)r) * W;
        for (size_t t = 0; t < T; t++) {
            int32_t v = t < W ? tok[t] : 0;
            if (v < 0 || v >= j->n_classes)
                return KILN_ERROR(KILN_ERR_DATA, "dataset '%s' in '%s': token %d at row %" PRIu64
                                  ", position %zu is outside the model's vocabulary [0, %d)",
                                  j->id.input_dataset, j->o->input, (int)v,
                                  c * j->id.chunk_rows + r0 + (uint64_t)r, t, j->n_classes);
            b->tokens[(size_t)r * T + t] = v;
            b->targets[(size_t)r * T + t] = t + 1 < W ? tok[t + 1] : -1;
        }
    }
    return KILN_OK;
}

/* The named output of the forward just run, as host memory (copied off a device). */
static kiln_status host_output(infer_job *j, infer_worker *w, const char *name, int slot,
                               size_t floats, const float **out)
{
    int width;
    KILN_CHECK(kiln_model_output(w->model, name, out, &width));
    if (j->be->kind == KILN_DEVICE_CPU) return KILN_OK;
    j->be->copy_to_host(w->host[slot], *out, floats * sizeof(float), j->be->stream);
    KILN_CHECK(j->be->synchronize(j->be->stream));
    *out = w->host[slot];
    return KILN_OK;
}

/* The forward's rows into the output buffers at chunk row r0. */
static kiln_status gather(infer_job *j, infer_worker *w, uint64_t r0, int n)
{
    size_t P = j->is_lm ? (size_t)j->T : 1, V = (size_t)j->n_classes, W = (size_t)j->width;
    const float *probs, *loss = NULL, *emb = NULL;
    KILN_CHECK(host_output(j, w, "probs", HOST_PROBS, (size_t)n * P * V, &probs));
    if (j->is_lm) KILN_CHECK(host_output(j, w, "loss", HOST_LOSS, (size_t)n * P, &loss));
    if (j->embed_width)
        KILN_CHECK(host_output(j, w, j->cfg.infer.embed, HOST_EMBED, (size_t)n * P * j->embed_width, &emb));
    infer_output *op = output_named(j, "probs"), *oe = output_named(j, "embedding");
    infer_output *ol = output_named(j, "loss");
    infer_output *ti = &j->out[0], *tp = &j->out[0];
    int k = j->cfg.infer.top_k;
    if (k) {
        ti = output_named(j, j->is_lm ? "next_topk_index" : "topk_index");
        tp = output_named(j, j->is_lm ? "next_topk_prob" : "topk_prob");
    }
    size_t last = j->is_lm ? W - 1 : 0; /* the position whose prediction is "next" */
    int pool_last = !strcmp(j->cfg.infer.pool, "last");
    for (int r = 0; r < n; r++) {
        size_t row = r0 + (size_t)r;
        const float *p = probs + ((size_t)r * P + last) * V;
        if (op) memcpy((float *)op->buf + row * V, p, V * sizeof(float));
        if (k) top_k(p, (int)V, k, (int32_t *)ti->buf + row * (size_t)k, (float *)tp->buf + row * (size_t)k);
        if (ol) {
            double sum = 0.0;
            for (size_t t = 0; t + 1 < W; t++) sum += loss[(size_t)r * P + t];
            ((float *)ol->buf)[row] = (float)(sum / (double)(W - 1));
        }
        if (!oe) continue;
        size_t E = (size_t)j->embed_width;
        float *dst = (float *)oe->buf + row * E;
        const float *src = emb + (size_t)r * P * E;
        if (!j->is_lm || pool_last) {
            memcpy(dst, src + (j->is_lm ? last * E : 0), E * sizeof(float));
            continue;
        }
        for (size_t e = 0; e < E; e++) {
            double sum = 0.0;
            for (size_t t = 0; t < W; t++) sum += src[t * E + e];
            dst[e] = (float)(sum / (double)W);
        }
    }
    return KILN_OK;
}

/* Batch b of chunk c on worker w; a failure is kept in the worker (errors are per thread). */
static void compute_batch(infer_job *j, infer_worker *w, uint64_t c, uint64_t b, uint64_t rows)
{
    uint64_t r0 = b * (uint64_t)j->batch;
    int n = rows - r0 < (uint64_t)j->batch ? (int)(rows - r0) : j->batch;
    float loss;
    int64_t scored;
    kiln_status st = fill_batch(j, &w->batch, c, r0, n);
    if (st == KILN_OK) st = kiln_model_forward(w->model, &w->batch, 0, 0, &loss, NULL, &scored);
    if (st == KILN_OK) st = gather(j, w, r0, n);
    if (st == KILN_OK || w->st != KILN_OK) return;
    w->st = st;
    w->failed_at = b;
    snprintf(w->error, sizeof w->error, "%s", kiln_error_message());
    kiln_error_clear();
}

kiln_status kiln_infer_compute_chunk(infer_job *j, uint64_t c)
{
    uint64_t rows = kiln_infer_chunk_rows(j, c), n_batches = (rows + (uint64_t)j->batch - 1) / (uint64_t)j->batch;
    for (int w = 0; w < j->n_workers; w++) j->workers[w].st = KILN_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(j->n_workers)
    for (uint64_t b = 0; b < n_batches; b++) {
        infer_worker *w = &j->workers[omp_get_thread_num()];
        if (w->st == KILN_OK) compute_batch(j, w, c, b, rows);
    }
    const infer_worker *first = NULL; /* report the earliest failing batch, as one thread would */
    for (int w = 0; w < j->n_workers; w++)
        if (j->workers[w].st != KILN_OK && (!first || j->workers[w].failed_at < first->failed_at))
            first = &j->workers[w];
    if (first) return KILN_ERROR(first->st, "%s", first->error);
    return KILN_OK;
}
