/* Writing a checkpoint's HDF5 file: the meta attributes and one global dataset per tensor with
 * its crc32, either by this process alone or collectively by every rank of a job.
 *
 * Collectively, the file is opened through MPI-IO and every rank writes its own flat range of
 * each dataset in one collective H5Dwrite; nothing is gathered to one rank. A dataset's crc32
 * is combined from every rank's crc32 of its range (exchanged up front, a few bytes per range),
 * and each rank's meta is rank 0's, so the metadata every rank writes is the same, as parallel
 * HDF5 requires. After each step the ranks agree on success, so a failure on one makes them all
 * stop together instead of leaving the others inside a collective call. */
#include "ckpt_internal.h"
#include "kiln/comm_mpi.h"
#include "kiln/h5util.h"
#include "kiln/runtime.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct crc_range {
    uint64_t start, count;
    uint32_t crc;
    uint32_t tensor_crc;         /* of the tensor's name and shape: ranks must list the same */
} crc_range;

/* One dataset to write: the tensor (its first descriptor here) and its whole crc32. */
typedef struct dataset_plan {
    const kiln_ckpt_tensor *t;
    uint32_t crc;
} dataset_plan;

typedef struct writer {
    kiln_comm *comm;             /* NULL: this process alone */
    int rank, world;
    const char *tmp;
    hid_t file, dxpl;
} writer;

kiln_status kiln_ckpt_agree(kiln_comm *comm, kiln_status st)
{
    return comm ? kiln_comm_agree(comm, KILN_AXIS_WORLD, st, KILN_ERR_IO) : st;
}

static kiln_status agree(const writer *w, kiln_status st) { return kiln_ckpt_agree(w->comm, st); }

static kiln_status write_meta(hid_t file, const kiln_ckpt_meta *m, const char *created)
{
    KILN_CHECK(kiln_h5_write_attr_i64(file, "format_version", KILN_CKPT_FORMAT_VERSION));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "step", m->step));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "samples_seen", m->samples_seen));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "tokens_seen", m->tokens_seen));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "seed", m->seed));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "data_epoch", m->data_epoch));
    KILN_CHECK(kiln_h5_write_attr_u64(file, "data_pos", m->data_pos));
    KILN_CHECK(kiln_h5_write_attr_f64(file, "best_eval_loss", m->best_eval_loss));
    KILN_CHECK(kiln_h5_write_attr_str(file, "config", m->config_text));
    KILN_CHECK(kiln_h5_write_attr_str(file, "kiln_version", KILN_VERSION));
    KILN_CHECK(kiln_h5_write_attr_str(file, "created", created));
    return kiln_h5_write_attr_u64(file, "meta_crc32", kiln_ckpt_meta_crc(m, KILN_VERSION, created));
}

static int cmp_range(const void *a, const void *b)
{
    uint64_t x = ((const crc_range *)a)->start, y = ((const crc_range *)b)->start;
    return x < y ? -1 : x > y;
}

/* crc32 of a whole tensor from the crc32s of ranges that must tile [0, numel) exactly. Empty
 * ranges (a rank that owns none of the tensor) are skipped. */
static kiln_status combine_ranges(crc_range *r, int n, const kiln_ckpt_tensor *t, uint32_t *crc)
{
    if (n > 1) qsort(r, (size_t)n, sizeof *r, cmp_range);
    uint64_t end = 0, numel = kiln_ckpt_tensor_numel(t);
    uint32_t c = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].count) continue;
        if (r[i].start != end)
            return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': the ranges given %s element "
                              "%llu; a save needs every element exactly once", t->name,
                              r[i].start > end ? "skip" : "overlap at", (unsigned long long)end);
        c = kiln_crc32_combine(c, r[i].crc, r[i].count * sizeof(float));
        end += r[i].count;
    }
    if (end != numel)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': the ranges given cover %llu of "
                          "its %llu elements", t->name, (unsigned long long)end,
                          (unsigned long long)numel);
    *crc = c;
    return KILN_OK;
}

static int same_shape(const kiln_ckpt_tensor *a, const kiln_ckpt_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]);
}

static crc_range range_of(const kiln_ckpt_tensor *t)
{
    uint32_t id = kiln_crc32(0, t->name, strlen(t->name));
    id = kiln_crc32(id, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
    return (crc_range){t->start, t->count, kiln_crc32(0, t->data, t->count * sizeof(float)), id};
}

static int first_of_name(const kiln_ckpt_tensor *t, int i)
{
    for (int j = 0; j < i; j++)
        if (!strcmp(t[j].name, t[i].name)) return 0;
    return 1;
}

/* This process alone: a dataset per name, its crc32 combined from the ranges given for it. */
static kiln_status plan_alone(const kiln_ckpt_tensor *t, int n, dataset_plan *plan, int *n_plan)
{
    crc_range *ranges = malloc(((size_t)n + 1) * sizeof *ranges);
    KILN_CHECK_ALLOC(ranges);
    kiln_status st = KILN_OK;
    *n_plan = 0;
    for (int i = 0; i < n && st == KILN_OK; i++) {
        if (!first_of_name(t, i)) continue;
        int nr = 0;
        for (int j = i; j < n && st == KILN_OK; j++) {
            if (strcmp(t[j].name, t[i].name) != 0) continue;
            if (!same_shape(&t[j], &t[i]))
                st = KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s' is given with two different "
                                "shapes", t[i].name);
            ranges[nr++] = range_of(&t[j]);
        }
        if (st == KILN_OK) st = combine_ranges(ranges, nr, &t[i], &plan[*n_plan].crc);
        plan[(*n_plan)++].t = &t[i];
    }
    free(ranges);
    return st;
}

/* Every rank lists the same tensors in the same order, each once with the range it writes:
 * exchange the ranges' crc32s so every rank combines every dataset's crc32. */
static kiln_status plan_together(const writer *w, const kiln_ckpt_tensor *t, int n,
                                 dataset_plan *plan, int *n_plan)
{
    int *ns = malloc((size_t)w->world * sizeof *ns);
    KILN_CHECK_ALLOC(ns);
    kiln_status st = kiln_comm_allgather_bytes(w->comm, KILN_AXIS_WORLD, &n, ns, sizeof n);
    for (int r = 0; r < w->world && st == KILN_OK; r++)
        if (ns[r] != n)
            st = KILN_ERROR(KILN_ERR_ARG, "checkpoint: rank %d gives %d tensors, rank %d gives "
                            "%d; every rank must list the same tensors", r, ns[r], w->rank, n);
    free(ns);
    KILN_CHECK(st);
    crc_range *mine = malloc(((size_t)n + 1) * sizeof *mine);
    crc_range *all = malloc(((size_t)n * (size_t)w->world + 1) * sizeof *all);
    crc_range *ranges = malloc(((size_t)w->world + 1) * sizeof *ranges);
    if (!mine || !all || !ranges) st = KILN_ERROR(KILN_ERR_NOMEM, "checkpoint range table");
    for (int i = 0; i < n && st == KILN_OK; i++) mine[i] = range_of(&t[i]);
    if (st == KILN_OK)
        st = kiln_comm_allgather_bytes(w->comm, KILN_AXIS_WORLD, mine, all, (size_t)n * sizeof *mine);
    for (int i = 0; i < n && st == KILN_OK; i++) {
        for (int r = 0; r < w->world; r++) ranges[r] = all[(size_t)r * (size_t)n + (size_t)i];
        for (int r = 0; r < w->world && st == KILN_OK; r++)
            if (ranges[r].tensor_crc != mine[i].tensor_crc)
                st = KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor %d ('%s' here) has another name "
                                "or shape on rank %d; every rank must list the same tensors", i,
                                t[i].name, r);
        if (st == KILN_OK) st = combine_ranges(ranges, w->world, &t[i], &plan[i].crc);
        plan[i].t = &t[i];
    }
    *n_plan = n;
    free(mine);
    free(all);
    free(ranges);
    return st;
}

/* Local checks; collectively each tensor once, so that one H5Dwrite per rank matches. */
static kiln_status check_tensors(const writer *w, const kiln_ckpt_tensor *t, int n)
{
    for (int i = 0; i < n; i++) {
        KILN_CHECK(kiln_ckpt_check_tensor(&t[i]));
        if (w->comm && !first_of_name(t, i))
            return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s' is given twice; a collective "
                              "save takes one range per tensor from each rank", t[i].name);
    }
    return KILN_OK;
}

/* Flushes what was written so far, so the tmp file looks like one a killed writer left. In a
 * job only the last rank dies (the others block in the next collective until the launcher
 * ends the job), as when one node is lost mid-write. */
static kiln_status fault_stop(const writer *w, kiln_ckpt_fault fault, int written, int total)
{
    H5Fflush(w->file, H5F_SCOPE_GLOBAL);
    if (fault == KILN_CKPT_FAULT_EXIT && w->rank == w->world - 1) _exit(99);
    if (fault == KILN_CKPT_FAULT_EXIT) return KILN_OK;
    return KILN_ERROR(KILN_ERR_INTERRUPTED,
                      "fault injection: save of '%s' stopped after %d of %d datasets", w->tmp,
                      written, total);
}

static kiln_status write_dataset(const writer *w, const dataset_plan *d, const kiln_ckpt_tensor *t,
                                 int n)
{
    hid_t dset;
    KILN_CHECK(kiln_h5_create_dataset(w->file, d->t->name, H5T_IEEE_F32LE, d->t->ndim,
                                      d->t->shape, &dset));
    kiln_status st = KILN_OK;
    for (int j = 0; j < n && st == KILN_OK; j++)
        if (!strcmp(t[j].name, d->t->name))
            st = kiln_h5_write_range(dset, H5T_NATIVE_FLOAT, w->dxpl, t[j].start, t[j].count,
                                     t[j].data);
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(dset, "crc32", d->crc);
    H5Dclose(dset);
    return st;
}

static kiln_status write_datasets(const writer *w, const dataset_plan *plan, int n_plan,
                                  const kiln_ckpt_tensor *t, int n, kiln_ckpt_fault fault)
{
    for (int i = 0; i < n_plan; i++) {
        if (fault != KILN_CKPT_FAULT_NONE && i == n_plan / 2)
            KILN_CHECK(fault_stop(w, fault, i, n_plan));
        KILN_CHECK(agree(w, write_dataset(w, &plan[i], t, n)));
    }
    return KILN_OK;
}

/* MPI-IO with collective metadata and data transfers in a job, the default driver alone. */
static kiln_status open_file(writer *w)
{
    hid_t fapl = H5P_DEFAULT;
    w->dxpl = H5P_DEFAULT;
    if (w->comm) {
        fapl = H5Pcreate(H5P_FILE_ACCESS);
        w->dxpl = H5Pcreate(H5P_DATASET_XFER);
        if (fapl < 0 || w->dxpl < 0 ||
            H5Pset_fapl_mpio(fapl, kiln_comm_mpi(w->comm, KILN_AXIS_WORLD), MPI_INFO_NULL) < 0 ||
            H5Pset_all_coll_metadata_ops(fapl, 1) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0 ||
            H5Pset_dxpl_mpio(w->dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
            if (fapl >= 0) H5Pclose(fapl);
            return KILN_H5_ERROR(KILN_ERR_HDF5, "setting up MPI-IO for checkpoint '%s'", w->tmp);
        }
    }
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl != H5P_DEFAULT) H5Pclose(fapl);
    KILN_H5_CHECK(w->file, KILN_ERR_HDF5, "creating checkpoint file '%s'", w->tmp);
    return KILN_OK;
}

static kiln_status fill_file(writer *w, const kiln_ckpt_meta *meta, const char *created,
                             const dataset_plan *plan, int n_plan, const kiln_ckpt_tensor *t,
                             int n, kiln_ckpt_fault fault)
{
    KILN_CHECK(agree(w, write_meta(w->file, meta, created)));
    KILN_CHECK(write_datasets(w, plan, n_plan, t, n, fault));
    /* MPI_File_sync on every rank: the data is durable before rank 0 renames the file */
    if (w->comm && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        return agree(w, KILN_H5_ERROR(KILN_ERR_HDF5, "flushing checkpoint file '%s'", w->tmp));
    return agree(w, KILN_OK);
}

/* Closing a file is collective, and after a failed write the ranks' HDF5 states differ: one
 * may wait in a barrier the others never reach. A failed save's close therefore runs under a
 * deadline, which ends the job with the save's error instead of a hang. */
static void close_file(writer *w, kiln_status *st)
{
    enum { CLOSE_DEADLINE_S = 20 };
    if (*st != KILN_OK && w->comm) {
        char msg[2048];
        snprintf(msg, sizeof msg, "kiln: error: checkpoint '%s' failed (%s) and could not be "
                 "closed on every rank; ending the job (the previous checkpoint is kept)",
                 w->tmp, kiln_error_message());
        kiln_watchdog_arm(CLOSE_DEADLINE_S, msg);
    }
    herr_t rc = H5Fclose(w->file);
    kiln_watchdog_disarm();
    if (rc < 0 && *st == KILN_OK)
        *st = KILN_H5_ERROR(KILN_ERR_HDF5, "closing checkpoint file '%s'", w->tmp);
    else if (rc < 0)
        H5Eclear2(H5E_DEFAULT);
}

static kiln_status plan_and_fill(writer *w, const kiln_ckpt_meta *meta, const char *created,
                                 const kiln_ckpt_tensor *t, int n, kiln_ckpt_fault fault)
{
    dataset_plan *plan = malloc(((size_t)n + 1) * sizeof *plan);
    kiln_status st = plan ? check_tensors(w, t, n) : KILN_ERROR(KILN_ERR_NOMEM, "checkpoint plan");
    st = agree(w, st);
    int n_plan = 0;
    if (st == KILN_OK) st = w->comm ? plan_together(w, t, n, plan, &n_plan)
                                    : plan_alone(t, n, plan, &n_plan);
    if (st == KILN_OK) st = agree(w, open_file(w));
    if (st == KILN_OK) {
        st = fill_file(w, meta, created, plan, n_plan, t, n, fault);
        close_file(w, &st);
    }
    free(plan);
    return st;
}

kiln_status kiln_ckpt_write_file(kiln_comm *comm, const char *tmp, const kiln_ckpt_meta *meta,
                                 const char *created, const kiln_ckpt_tensor *t, int n,
                                 kiln_ckpt_fault fault)
{
    writer w = {comm, comm ? kiln_comm_rank(comm, KILN_AXIS_WORLD) : 0,
                comm ? kiln_comm_size(comm, KILN_AXIS_WORLD) : 1, tmp, H5I_INVALID_HID,
                H5P_DEFAULT};
    kiln_h5_quiet();
    kiln_status st = plan_and_fill(&w, meta, created, t, n, fault);
    if (w.dxpl != H5P_DEFAULT) H5Pclose(w.dxpl);
    return st;
}
