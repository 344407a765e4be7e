/* The batch loader: which rows make up each batch (a per-epoch permutation that is a pure
 * function of (seed, epoch), cut into global batches of world*batch rows, of which each rank
 * takes its slice), and a prefetch thread that materialises the next batch while the caller
 * computes on the current one.
 *
 * Positions count global rows within an epoch, so the cursor (epoch, pos) means the same thing
 * on every rank and to any world size with the same global batch: a checkpoint stores it and a
 * resumed run seeks to it.
 *
 * drop_last=1 (training): an epoch holds floor(rows / global) full batches, then rolls over.
 * drop_last=0 (eval): the last batch may be short; its rows are split as evenly as possible
 * over the ranks (some may get 0 rows, but still get a batch so collectives stay in step), then
 * one end-of-epoch NULL, then the next epoch.
 *
 * Double buffering: the caller holds slot[held]; the thread fills slot[1 - held] and sets
 * `ready`. A seek bumps `generation` so a batch prepared for the old position is dropped.
 * With opts.on_caller there is no thread: kiln_loader_next prepares slot[0] on the caller's
 * OpenMP threads. */
#include "kiln/data.h"
#include "kiln/rng.h"
#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kiln_loader {
    kiln_dataset *ds;
    kiln_loader_opts o;
    uint64_t rows;        /* rows per epoch */
    uint64_t global;      /* rows per global batch: world * batch */
    kiln_batch slot[2];
    int held;             /* slot the caller holds */
    uint64_t epoch, pos;  /* caller's cursor; touched only by the caller's thread */

    /* owned by the prefetch thread */
    uint64_t *ids;        /* (batch) dataset rows of the batch being prepared */
    uint64_t *perm;       /* (rows) order of perm_epoch when shuffling */
    uint64_t perm_epoch;
    int perm_valid;

    pthread_t thread;     /* the prefetch thread, unless o.on_caller */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* guarded by mu */
    uint64_t want_epoch, want_pos; /* the next item the thread prepares; while `ready`, the
                                      cursor the caller moves to when it takes the item */
    uint64_t generation;
    int ready;                     /* an item (batch, end-of-epoch or error) awaits the caller */
    int ready_end;
    kiln_status ready_status;
    char ready_error[4096];
    int quit;
};

/* After a drop_last epoch's last full batch the cursor moves to the next epoch's start. */
static void cursor_normalize(const kiln_loader *l, uint64_t *epoch, uint64_t *pos)
{
    if (l->o.drop_last && *pos + l->global > l->rows) {
        (*epoch)++;
        *pos = 0;
    }
}

static uint64_t row_at(kiln_loader *l, uint64_t epoch, uint64_t i)
{
    if (!l->o.shuffle) return i;
    if (!l->perm_valid || l->perm_epoch != epoch) {
        kiln_rng_permutation(l->perm, l->rows, l->o.seed, epoch);
        l->perm_epoch = epoch;
        l->perm_valid = 1;
    }
    return l->perm[i];
}

/* Rows of a batch below this many values are gathered by one thread: the team's wake-up
 * would cost more than it saves. */
enum { GATHER_PARALLEL_MIN = 16384 };

/* b's rows from row `first` on, as a batch of its own (rows of `width` values). */
static kiln_batch batch_from_row(const kiln_batch *b, int first, size_t width)
{
    kiln_batch part = *b;
    size_t at = (size_t)first * width;
    if (b->x) part.x += at, part.y += first;
    if (b->tokens) part.tokens += at, part.targets += at;
    return part;
}

/* kiln_dataset_gather of ids[0..n) into dst: on the prefetch thread alone, or, on the caller,
 * with the rows split over its OpenMP threads (cache misses on shuffled rows overlap). */
static kiln_status gather(kiln_loader *l, int n, kiln_batch *dst)
{
    size_t width = (size_t)kiln_dataset_width(l->ds);
    if (!l->o.on_caller || (size_t)n * width < GATHER_PARALLEL_MIN)
        return kiln_dataset_gather(l->ds, l->ids, n, dst);
    int failed = 0;
#pragma omp parallel reduction(max : failed)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int lo = (int)((long long)n * t / nt), hi = (int)((long long)n * (t + 1) / nt);
        kiln_batch part = batch_from_row(dst, lo, width);
        failed = kiln_dataset_gather(l->ds, l->ids + lo, hi - lo, &part) != KILN_OK;
        if (failed) kiln_error_clear();
    }
    /* an error message lives on the thread that raised it: redo the batch here for it */
    if (failed) return kiln_dataset_gather(l->ds, l->ids, n, dst);
    dst->B = n;
    return KILN_OK;
}

/* Prepares the item at (*epoch, *pos) into dst and advances the cursor past it. */
static kiln_status prepare(kiln_loader *l, uint64_t *epoch, uint64_t *pos, kiln_batch *dst,
                           int *end)
{
    *end = *pos >= l->rows;
    if (*end) {
        (*epoch)++;
        *pos = 0;
        return KILN_OK;
    }
    uint64_t left = l->rows - *pos, n_global = left < l->global ? left : l->global;
    uint64_t world = (uint64_t)l->o.world, rank = (uint64_t)l->o.rank;
    uint64_t each = n_global / world, extra = n_global % world;
    uint64_t start = rank * each + (rank < extra ? rank : extra);
    int n = (int)(each + (rank < extra));
    for (int b = 0; b < n; b++) l->ids[b] = row_at(l, *epoch, *pos + start + (uint64_t)b);
    KILN_CHECK(gather(l, n, dst));
    *pos += n_global;
    cursor_normalize(l, epoch, pos);
    return KILN_OK;
}

static void *prefetch_main(void *arg)
{
    kiln_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && l->ready) pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        uint64_t gen = l->generation, epoch = l->want_epoch, pos = l->want_pos;
        kiln_batch *dst = &l->slot[1 - l->held];
        pthread_mutex_unlock(&l->mu);
        int end = 0;
        kiln_status st = prepare(l, &epoch, &pos, dst, &end);
        pthread_mutex_lock(&l->mu);
        if (gen != l->generation) continue; /* a seek moved on; prepare from there instead */
        l->ready = 1;
        l->ready_end = end;
        l->ready_status = st;
        if (st != KILN_OK) {
            snprintf(l->ready_error, sizeof l->ready_error, "%s", kiln_error_message());
        } else {
            l->want_epoch = epoch;
            l->want_pos = pos;
        }
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static kiln_status batch_alloc(kiln_batch *b, kiln_data_kind kind, size_t rows, size_t width)
{
    memset(b, 0, sizeof *b);
    if (kind == KILN_DATA_LM) {
        b->tokens = malloc(rows * width * sizeof *b->tokens);
        b->targets = malloc(rows * width * sizeof *b->targets);
        KILN_CHECK_ALLOC(b->tokens);
        KILN_CHECK_ALLOC(b->targets);
    } else {
        b->x = malloc(rows * width * sizeof *b->x);
        b->y = malloc(rows * sizeof *b->y);
        KILN_CHECK_ALLOC(b->x);
        KILN_CHECK_ALLOC(b->y);
    }
    return KILN_OK;
}

static void batch_release(kiln_batch *b)
{
    free(b->x);
    free(b->y);
    free(b->tokens);
    free(b->targets);
}

static kiln_status validate_opts(const kiln_dataset *ds, const kiln_loader_opts *o)
{
    if (o->batch < 1 || o->world < 1 || o->rank < 0 || o->rank >= o->world)
        return KILN_ERROR(KILN_ERR_ARG, "loader: expected batch >= 1 and 0 <= rank < world, "
                          "found batch %d, rank %d, world %d", o->batch, o->rank, o->world);
    uint64_t global = (uint64_t)o->batch * (uint64_t)o->world;
    if (o->drop_last && kiln_dataset_rows(ds) < global)
        return KILN_ERROR(KILN_ERR_DATA, "loader: expected at least one global batch of %" PRIu64
                          " rows (batch %d x world %d), found %" PRIu64 " rows in the split",
                          global, o->batch, o->world, kiln_dataset_rows(ds));
    return KILN_OK;
}

static kiln_status loader_alloc(kiln_loader *l)
{
    size_t rows = (size_t)l->o.batch, width = (size_t)kiln_dataset_width(l->ds);
    for (int i = 0; i < (l->o.on_caller ? 1 : 2); i++) /* the prefetch thread double-buffers */
        KILN_CHECK(batch_alloc(&l->slot[i], kiln_dataset_kind(l->ds), rows, width));
    l->ids = malloc(rows * sizeof *l->ids);
    KILN_CHECK_ALLOC(l->ids);
    if (l->o.shuffle) {
        l->perm = malloc(l->rows * sizeof *l->perm);
        KILN_CHECK_ALLOC(l->perm);
    }
    return KILN_OK;
}

static void loader_release(kiln_loader *l)
{
    for (int i = 0; i < 2; i++) batch_release(&l->slot[i]);
    free(l->ids);
    free(l->perm);
    free(l);
}

kiln_status kiln_loader_create(kiln_dataset *ds, const kiln_loader_opts *opts, kiln_loader **out)
{
    *out = NULL;
    KILN_CHECK(validate_opts(ds, opts));
    kiln_loader *l = calloc(1, sizeof *l);
    KILN_CHECK_ALLOC(l);
    l->ds = ds;
    l->o = *opts;
    l->rows = kiln_dataset_rows(ds);
    l->global = (uint64_t)opts->batch * (uint64_t)opts->world;
    kiln_status st;
    KILN_CHECK_GOTO(st, loader_alloc(l), fail);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (!l->o.on_caller && pthread_create(&l->thread, NULL, prefetch_main, l) != 0) {
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        st = KILN_ERROR(KILN_ERR_INTERNAL, "loader: cannot start the prefetch thread");
        goto fail;
    }
    *out = l;
    return KILN_OK;
fail:
    loader_release(l);
    return st;
}

/* On error the cursor stays put: the same error answers until a seek, as from the thread. */
static kiln_status next_on_caller(kiln_loader *l, const kiln_batch **batch)
{
    int end;
    KILN_CHECK(prepare(l, &l->epoch, &l->pos, &l->slot[0], &end));
    if (!end) *batch = &l->slot[0];
    return KILN_OK;
}

kiln_status kiln_loader_next(kiln_loader *l, const kiln_batch **batch)
{
    *batch = NULL;
    if (l->o.on_caller) return next_on_caller(l, batch);
    pthread_mutex_lock(&l->mu);
    while (!l->ready) pthread_cond_wait(&l->cv, &l->mu);
    kiln_status st = l->ready_status;
    if (st != KILN_OK) {
        /* left ready: the same error answers until a seek, rather than skipping a batch */
        pthread_mutex_unlock(&l->mu);
        return KILN_ERROR(st, "loader prefetch thread: %s", l->ready_error);
    }
    if (!l->ready_end) {
        l->held = 1 - l->held;
        *batch = &l->slot[l->held];
    }
    l->epoch = l->want_epoch;
    l->pos = l->want_pos;
    l->ready = 0;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return KILN_OK;
}

void kiln_loader_cursor(const kiln_loader *l, uint64_t *epoch, uint64_t *pos)
{
    *epoch = l->epoch;
    *pos = l->pos;
}

kiln_status kiln_loader_seek(kiln_loader *l, uint64_t epoch, uint64_t pos)
{
    if (pos > l->rows)
        return KILN_ERROR(KILN_ERR_ARG, "loader seek: expected a position <= %" PRIu64
                          " (rows per epoch), found %" PRIu64, l->rows, pos);
    cursor_normalize(l, &epoch, &pos);
    pthread_mutex_lock(&l->mu);
    l->generation++;
    l->ready = 0;
    l->want_epoch = l->epoch = epoch;
    l->want_pos = l->pos = pos;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return KILN_OK;
}

void kiln_loader_free(kiln_loader *l)
{
    if (!l) return;
    if (!l->o.on_caller) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    loader_release(l);
}
