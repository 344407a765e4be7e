/* Checkpoint files: atomic save (tmp, fsync, rename, sidecar, `latest`, prune), verification,
 * discovery of the newest valid checkpoint, and load. The format and the save sequence are
 * described in include/kiln/ckpt.h. Single-process for now, but every tensor is written and
 * read as a flat element range, and a tensor's crc32 is combined from its ranges' crc32s, so
 * ranks can later each handle their own part of every dataset. */
#include "ckpt_internal.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCAN_BLOCK ((uint64_t)1 << 22) /* elements per read when checksumming a dataset */

/* ---- fault injection (tests) ---- */

typedef enum { FAULT_NONE, FAULT_RETURN, FAULT_EXIT } fault_mode;
static int fault_half_next;

void kiln_ckpt_fault_half_write(int enable) { fault_half_next = enable; }

/* KILN_FAULT_CKPT_HALF=1 kills the next save half-way; KILN_FAULT_CKPT_STEP=N only the save of
 * step N (so a run can first write a good checkpoint). */
static fault_mode take_fault(int64_t step)
{
    const char *half = getenv("KILN_FAULT_CKPT_HALF"), *at = getenv("KILN_FAULT_CKPT_STEP");
    int kill_now = (half && !strcmp(half, "1")) || (at && strtoll(at, NULL, 10) == step);
    fault_mode m = kill_now ? FAULT_EXIT : fault_half_next ? FAULT_RETURN : FAULT_NONE;
    fault_half_next = 0;
    return m;
}

/* Flushes what was written so far, so the tmp file looks like one a killed process left. */
static kiln_status fault_stop(fault_mode fault, hid_t file, const char *tmp, int written, int total)
{
    H5Fflush(file, H5F_SCOPE_GLOBAL);
    if (fault == FAULT_EXIT) _exit(99);
    return KILN_ERROR(KILN_ERR_INTERRUPTED,
                      "fault injection: save of '%s' stopped after %d of %d datasets", tmp, written,
                      total);
}

/* ---- names and directory listing ---- */

static void step_name(int64_t step, char *buf, size_t len)
{
    snprintf(buf, len, "step-%08lld.h5", (long long)step);
}

/* 1 (and *step) when name is exactly what step_name makes. */
static int parse_step_name(const char *name, int64_t *step)
{
    long long s;
    char canon[64];
    if (sscanf(name, "step-%lld.h5", &s) != 1 || s < 0) return 0;
    step_name(s, canon, sizeof canon);
    if (strcmp(canon, name) != 0) return 0;
    *step = s;
    return 1;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Steps of the step-N.h5 files in dir, newest first; a missing dir has none. */
static kiln_status list_steps(const char *dir, int64_t **steps, int *n)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT) return KILN_OK;
    if (!d) return KILN_ERROR(KILN_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t s;
        if (!parse_step_name(e->d_name, &s)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *grown = realloc(*steps, (size_t)cap * sizeof *grown);
            if (!grown) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                return KILN_ERROR(KILN_ERR_NOMEM, "out of memory listing '%s'", dir);
            }
            *steps = grown;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    qsort(*steps, (size_t)*n, sizeof **steps, cmp_desc);
    return KILN_OK;
}

static kiln_status remove_file(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    return KILN_OK;
}

/* ---- save ---- */

static uint64_t tensor_numel(const kiln_ckpt_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static kiln_status check_tensor(const kiln_ckpt_tensor *t)
{
    if (!t->name || !t->name[0] || t->name[0] == '/')
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor name '%s' must be a non-empty path "
                          "without a leading '/'", t->name ? t->name : "(null)");
    if (t->ndim < 1 || t->ndim > KILN_CKPT_MAX_DIMS)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': ndim %d is not in 1..%d", t->name,
                          t->ndim, KILN_CKPT_MAX_DIMS);
    uint64_t n = tensor_numel(t);
    if (t->start > n || t->count > n - t->start)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': range [%llu, %llu) is outside "
                          "its %llu elements", t->name, (unsigned long long)t->start,
                          (unsigned long long)(t->start + t->count), (unsigned long long)n);
    if (t->count > 0 && !t->data)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s' has no data", t->name);
    return KILN_OK;
}

static kiln_status write_meta(hid_t file, const kiln_ckpt_meta *m)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
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
    return KILN_OK;
}

typedef struct crc_range {
    uint64_t start, count;
    uint32_t crc;
} crc_range;

static int cmp_range(const void *a, const void *b)
{
    uint64_t x = ((const crc_range *)a)->start, y = ((const crc_range *)b)->start;
    return x < y ? -1 : x > y;
}

/* crc32 of a whole tensor from the crc32s of ranges that must tile [0, numel) exactly. */
static kiln_status combine_ranges(crc_range *r, int n, uint64_t numel, const char *name,
                                  uint32_t *crc)
{
    qsort(r, (size_t)n, sizeof *r, cmp_range);
    uint64_t end = 0;
    uint32_t c = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].start != end)
            return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': the ranges given %s element "
                              "%llu; a save needs every element exactly once", name,
                              r[i].start > end ? "skip" : "overlap at", (unsigned long long)end);
        c = kiln_crc32_combine(c, r[i].crc, r[i].count * sizeof(float));
        end += r[i].count;
    }
    if (end != numel)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': the ranges given cover %llu of "
                          "its %llu elements", name, (unsigned long long)end,
                          (unsigned long long)numel);
    *crc = c;
    return KILN_OK;
}

static int same_shape(const kiln_ckpt_tensor *a, const kiln_ckpt_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]);
}

/* Writes every descriptor named like t[first] (the ranges of one tensor) into one dataset. */
static kiln_status write_ranges(hid_t dset, const kiln_ckpt_tensor *t, int n, int first,
                                crc_range *ranges)
{
    const kiln_ckpt_tensor *d = &t[first];
    uint32_t crc = 0;
    int nr = 0;
    for (int j = first; j < n; j++) {
        if (strcmp(t[j].name, d->name) != 0) continue;
        if (!same_shape(&t[j], d))
            return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s' is given with two different "
                              "shapes", d->name);
        KILN_CHECK(kiln_h5_write_range(dset, H5T_NATIVE_FLOAT, H5P_DEFAULT, t[j].start,
                                       t[j].count, t[j].data));
        ranges[nr++] = (crc_range){t[j].start, t[j].count,
                                   kiln_crc32(0, t[j].data, t[j].count * sizeof(float))};
    }
    KILN_CHECK(combine_ranges(ranges, nr, tensor_numel(d), d->name, &crc));
    KILN_CHECK(kiln_h5_write_attr_u64(dset, "crc32", crc));
    return KILN_OK;
}

static kiln_status write_dataset(hid_t file, const kiln_ckpt_tensor *t, int n, int first)
{
    const kiln_ckpt_tensor *d = &t[first];
    crc_range *ranges = malloc((size_t)n * sizeof *ranges);
    KILN_CHECK_ALLOC(ranges);
    hid_t dset;
    kiln_status st;
    KILN_CHECK_GOTO(st, kiln_h5_create_dataset(file, d->name, H5T_IEEE_F32LE, d->ndim, d->shape,
                                               &dset), done);
    st = write_ranges(dset, t, n, first, ranges);
    H5Dclose(dset);
done:
    free(ranges);
    return st;
}

static int first_of_name(const kiln_ckpt_tensor *t, int i)
{
    for (int j = 0; j < i; j++)
        if (!strcmp(t[j].name, t[i].name)) return 0;
    return 1;
}

static kiln_status write_tensors(hid_t file, const char *tmp, const kiln_ckpt_tensor *t, int n,
                                 fault_mode fault)
{
    int total = 0, written = 0;
    for (int i = 0; i < n; i++) total += first_of_name(t, i);
    for (int i = 0; i < n; i++) {
        if (!first_of_name(t, i)) continue;
        if (fault != FAULT_NONE && written == total / 2)
            return fault_stop(fault, file, tmp, written, total);
        KILN_CHECK(write_dataset(file, t, n, i));
        written++;
    }
    return KILN_OK;
}

static kiln_status write_file(const char *tmp, const kiln_ckpt_meta *meta,
                              const kiln_ckpt_tensor *t, int n, fault_mode fault)
{
    kiln_h5_quiet();
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    KILN_H5_CHECK(file, KILN_ERR_HDF5, "creating checkpoint file '%s'", tmp);
    kiln_status st;
    KILN_CHECK_GOTO(st, write_meta(file, meta), done);
    KILN_CHECK_GOTO(st, write_tensors(file, tmp, t, n, fault), done);
done:
    if (H5Fclose(file) < 0 && st == KILN_OK)
        st = KILN_H5_ERROR(KILN_ERR_HDF5, "closing checkpoint file '%s'", tmp);
    return st;
}

/* Moves the finished file into place and writes its sidecar. The old sidecar goes first: a
 * stale one next to a re-saved step would make the new file look damaged. */
static kiln_status publish(const char *tmp, const char *path)
{
    char sidecar[PATH_MAX], line[64];
    uint32_t crc = 0;
    uint64_t size;
    KILN_CHECK(kiln_path_format(sidecar, sizeof sidecar, "%s.crc32", path));
    KILN_CHECK(remove_file(sidecar));
    KILN_CHECK(kiln_commit_tmp_file(tmp, path));
    KILN_CHECK(kiln_file_crc32(path, &crc, &size));
    snprintf(line, sizeof line, "%08x %llu\n", (unsigned)crc, (unsigned long long)size);
    KILN_CHECK(kiln_write_file_atomic(sidecar, line, strlen(line)));
    return KILN_OK;
}

static kiln_status remove_checkpoint(const char *dir, int64_t step)
{
    char name[64], path[PATH_MAX];
    step_name(step, name, sizeof name);
    /* The .h5 goes first: a sidecar without its file is ignored, a file without one is valid. */
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/%s", dir, name));
    KILN_CHECK(remove_file(path));
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/%s.crc32", dir, name));
    KILN_CHECK(remove_file(path));
    return KILN_OK;
}

/* Tmp files of saves that crashed: step-*.tmp (checkpoint or sidecar) and latest.tmp. */
static kiln_status remove_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return KILN_ERROR(KILN_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
    kiln_status st = KILN_OK;
    struct dirent *e;
    while (st == KILN_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        int tmp = len > 4 && !strcmp(e->d_name + len - 4, ".tmp");
        if (!(tmp && (!strncmp(e->d_name, "step-", 5) || !strcmp(e->d_name, "latest.tmp"))))
            continue;
        char path[PATH_MAX];
        st = kiln_path_format(path, sizeof path, "%s/%s", dir, e->d_name);
        if (st == KILN_OK) st = remove_file(path);
    }
    closedir(d);
    return st;
}

/* Keeps the newest `keep` checkpoints (all when keep <= 0) and always `current`. */
static kiln_status prune(const char *dir, int64_t current, int keep)
{
    int64_t *steps;
    int n, kept = 0;
    KILN_CHECK(list_steps(dir, &steps, &n));
    kiln_status st = KILN_OK;
    for (int i = 0; i < n && st == KILN_OK; i++) {
        if (keep <= 0 || steps[i] == current || kept < keep)
            kept++;
        else
            st = remove_checkpoint(dir, steps[i]);
    }
    free(steps);
    if (st == KILN_OK) st = remove_leftovers(dir);
    return st;
}

kiln_status kiln_ckpt_save(const char *dir, const kiln_ckpt_meta *meta,
                           const kiln_ckpt_tensor *tensors, int n_tensors, int keep)
{
    if (!dir || !meta || n_tensors < 0 || (n_tensors > 0 && !tensors) || meta->step < 0)
        return KILN_ERROR(KILN_ERR_ARG, "kiln_ckpt_save: bad arguments (dir, meta, %d tensors)",
                          n_tensors);
    if (!memchr(meta->config_text, '\0', sizeof meta->config_text))
        return KILN_ERROR(KILN_ERR_ARG, "kiln_ckpt_save: config text is not terminated");
    for (int i = 0; i < n_tensors; i++) KILN_CHECK(check_tensor(&tensors[i]));
    char name[64], path[PATH_MAX], tmp[PATH_MAX], latest[PATH_MAX], line[80];
    step_name(meta->step, name, sizeof name);
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/%s", dir, name));
    KILN_CHECK(kiln_path_format(tmp, sizeof tmp, "%s.tmp", path));
    KILN_CHECK(kiln_path_format(latest, sizeof latest, "%s/latest", dir));
    KILN_CHECK(kiln_mkdir_p(dir));

    double t0 = kiln_time_s();
    kiln_status st = write_file(tmp, meta, tensors, n_tensors, take_fault(meta->step));
    if (st != KILN_OK) {
        if (st != KILN_ERR_INTERRUPTED) unlink(tmp); /* an injected crash leaves its tmp behind */
        kiln_error_trace(__FILE__, __LINE__, "write_file(tmp, meta, tensors, n_tensors, fault)");
        return st;
    }
    KILN_CHECK(publish(tmp, path));
    snprintf(line, sizeof line, "%s\n", name);
    KILN_CHECK(kiln_write_file_atomic(latest, line, strlen(line)));
    double seconds = kiln_time_s() - t0;
    struct stat sb; /* bench/ckpt_bench.sh compares this rate with dd's */
    kiln_info("checkpoint %s: %lld bytes durable in %.3f s", path,
              stat(path, &sb) == 0 ? (long long)sb.st_size : -1LL, seconds);
    /* The checkpoint is durable and current now; failing to tidy up must not fail the save. */
    if (prune(dir, meta->step, keep) != KILN_OK) {
        kiln_warn("checkpoint '%s' saved, but removing old ones failed: %s", path,
                  kiln_error_message());
        kiln_error_clear();
    }
    return KILN_OK;
}

/* ---- reading: shared with ckpt_inspect.c ---- */

kiln_status kiln_ckpt_open(const char *path, hid_t *file)
{
    kiln_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    KILN_H5_CHECK(f, KILN_ERR_CKPT, "checkpoint '%s' cannot be opened as HDF5 (truncated or "
                  "damaged)", path);
    *file = f;
    return KILN_OK;
}

kiln_status kiln_ckpt_check_sidecar(const char *path, int *present)
{
    char sidecar[PATH_MAX], extra;
    unsigned want_crc;
    unsigned long long want_size;
    struct stat sb;
    uint32_t crc = 0;
    uint64_t size;
    KILN_CHECK(kiln_path_format(sidecar, sizeof sidecar, "%s.crc32", path));
    FILE *f = fopen(sidecar, "r");
    *present = f != NULL;
    if (!f && errno == ENOENT) return KILN_OK;
    if (!f) return KILN_ERROR(KILN_ERR_IO, "cannot read '%s': %s", sidecar, strerror(errno));
    int fields = fscanf(f, "%8x %llu %c", &want_crc, &want_size, &extra);
    fclose(f);
    if (fields != 2)
        return KILN_ERROR(KILN_ERR_CKPT, "sidecar '%s' is malformed: expected \"crc32 size\"",
                          sidecar);
    if (stat(path, &sb) != 0)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' cannot be read: %s", path,
                          strerror(errno));
    if ((unsigned long long)sb.st_size != want_size)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' is %llu bytes but its sidecar '%s' "
                          "records %llu (truncated or overwritten)", path,
                          (unsigned long long)sb.st_size, sidecar, want_size);
    KILN_CHECK(kiln_file_crc32(path, &crc, &size));
    if (crc != want_crc)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' has crc32 %08x but its sidecar '%s' "
                          "records %08x (file damaged)", path, (unsigned)crc, sidecar, want_crc);
    return KILN_OK;
}

kiln_status kiln_ckpt_read_meta(hid_t file, const char *path, kiln_ckpt_meta *m)
{
    int64_t version;
    KILN_CHECK(kiln_h5_read_attr_i64(file, "format_version", &version));
    if (version != KILN_CKPT_FORMAT_VERSION)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' has format_version %lld; this kiln (%s) "
                          "reads format_version %d", path, (long long)version, KILN_VERSION,
                          KILN_CKPT_FORMAT_VERSION);
    KILN_CHECK(kiln_h5_read_attr_i64(file, "step", &m->step));
    KILN_CHECK(kiln_h5_read_attr_i64(file, "samples_seen", &m->samples_seen));
    KILN_CHECK(kiln_h5_read_attr_i64(file, "tokens_seen", &m->tokens_seen));
    KILN_CHECK(kiln_h5_read_attr_u64(file, "seed", &m->seed));
    KILN_CHECK(kiln_h5_read_attr_u64(file, "data_epoch", &m->data_epoch));
    KILN_CHECK(kiln_h5_read_attr_u64(file, "data_pos", &m->data_pos));
    KILN_CHECK(kiln_h5_read_attr_f64(file, "best_eval_loss", &m->best_eval_loss));
    KILN_CHECK(kiln_h5_read_attr_str(file, "config", m->config_text, sizeof m->config_text));
    KILN_CHECK(kiln_h5_read_attr_str(file, "kiln_version", m->kiln_version,
                                     sizeof m->kiln_version));
    return KILN_OK;
}

/* Compares crc (of the dataset's data as read) with the dataset's crc32 attribute. */
static kiln_status check_crc(hid_t dset, const char *path, const char *name, uint32_t crc)
{
    uint64_t stored;
    if (!kiln_h5_has_attr(dset, "crc32"))
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s': dataset '%s' has no crc32 attribute",
                          path, name);
    KILN_CHECK(kiln_h5_read_attr_u64(dset, "crc32", &stored));
    if (stored != crc)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s': dataset '%s' has crc32 %08x but its "
                          "crc32 attribute records %08llx (data damaged)", path, name,
                          (unsigned)crc, (unsigned long long)stored);
    return KILN_OK;
}

static kiln_status scan_data(hid_t dset, const char *path, const char *name,
                             kiln_ckpt_dataset_info *info)
{
    uint64_t shape[KILN_H5_MAX_DIMS], numel = 1;
    int nd;
    hid_t type = H5Dget_type(dset);
    KILN_H5_CHECK(type, KILN_ERR_CKPT, "checkpoint '%s': reading the type of '%s'", path, name);
    kiln_h5_type_name(type, info->dtype, sizeof info->dtype);
    H5Tclose(type);
    KILN_CHECK(kiln_h5_dataset_shape(dset, &nd, shape));
    if (nd < 1 || nd > KILN_CKPT_MAX_DIMS || strcmp(info->dtype, "float32") != 0)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s': dataset '%s' is %s with %d dimensions; "
                          "checkpoints hold float32 with 1 to %d", path, name, info->dtype, nd,
                          KILN_CKPT_MAX_DIMS);
    info->ndim = nd;
    for (int d = 0; d < nd; d++) {
        info->shape[d] = shape[d];
        numel *= shape[d];
    }

    /* +1 keeps the size non-zero for an empty dataset */
    float *buf = malloc((numel < SCAN_BLOCK ? numel : SCAN_BLOCK) * sizeof *buf + 1);
    KILN_CHECK_ALLOC(buf);
    uint32_t crc = 0;
    double sumsq = 0;
    kiln_status st = KILN_OK;
    for (uint64_t s = 0; s < numel && st == KILN_OK; s += SCAN_BLOCK) {
        uint64_t n = numel - s < SCAN_BLOCK ? numel - s : SCAN_BLOCK;
        st = kiln_h5_read_range(dset, H5T_NATIVE_FLOAT, H5P_DEFAULT, s, n, buf);
        crc = kiln_crc32(crc, buf, n * sizeof *buf);
        for (uint64_t i = 0; i < n; i++) sumsq += (double)buf[i] * buf[i];
    }
    free(buf);
    KILN_CHECK(st);
    info->data_read = 1;
    info->crc = crc;
    info->norm = sqrt(sumsq);
    KILN_CHECK(check_crc(dset, path, name, crc));
    return KILN_OK;
}

kiln_status kiln_ckpt_scan_dataset(hid_t file, const char *path, const char *name,
                                   kiln_ckpt_dataset_info *info)
{
    memset(info, 0, sizeof *info);
    kiln_h5_quiet();
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    KILN_H5_CHECK(dset, KILN_ERR_CKPT, "checkpoint '%s': cannot open dataset '%s'", path, name);
    kiln_status st = scan_data(dset, path, name, info);
    H5Dclose(dset);
    return st;
}

typedef struct visit_ctx {
    hid_t file;
    const char *path;
    kiln_ckpt_dataset_fn fn;
    void *ctx;
    kiln_status st;
} visit_ctx;

static herr_t visit_link(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    visit_ctx *v = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t obj = H5Oopen(v->file, name, H5P_DEFAULT);
    if (obj < 0) {
        v->st = KILN_H5_ERROR(KILN_ERR_CKPT, "checkpoint '%s': cannot open '%s'", v->path, name);
        return -1;
    }
    int is_dataset = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    if (!is_dataset) return 0;
    v->st = v->fn(v->file, name, v->ctx);
    return v->st == KILN_OK ? 0 : 1;
}

kiln_status kiln_ckpt_for_each_dataset(hid_t file, const char *path, kiln_ckpt_dataset_fn fn,
                                       void *ctx)
{
    visit_ctx v = {file, path, fn, ctx, KILN_OK};
    kiln_h5_quiet();
    herr_t r = H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_link, &v);
    if (v.st != KILN_OK) return v.st;
    KILN_H5_CHECK(r, KILN_ERR_CKPT, "checkpoint '%s': cannot list its datasets", path);
    return KILN_OK;
}

/* ---- verify, find_latest, load ---- */

/* Inside a checkpoint, an attribute or dataset that is missing, unreadable or of the wrong
 * type or shape means the file is damaged or not a (compatible) kiln checkpoint. */
static kiln_status as_ckpt_error(kiln_status st)
{
    if (st != KILN_ERR_DATA && st != KILN_ERR_HDF5) return st;
    kiln_error_trace(__FILE__, __LINE__, "(reported as a checkpoint error)");
    return KILN_ERR_CKPT;
}

static kiln_status verify_dataset(hid_t file, const char *name, void *path)
{
    kiln_ckpt_dataset_info info;
    return kiln_ckpt_scan_dataset(file, path, name, &info);
}

static kiln_status verify_open(hid_t file, const char *path)
{
    kiln_ckpt_meta *meta = malloc(sizeof *meta);
    KILN_CHECK_ALLOC(meta);
    kiln_status st = kiln_ckpt_read_meta(file, path, meta);
    free(meta);
    KILN_CHECK(st);
    KILN_CHECK(kiln_ckpt_for_each_dataset(file, path, verify_dataset, (void *)path));
    return KILN_OK;
}

kiln_status kiln_ckpt_verify(const char *path)
{
    struct stat sb;
    int sidecar;
    hid_t file = H5I_INVALID_HID;
    if (stat(path, &sb) != 0)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' cannot be read: %s", path,
                          strerror(errno));
    KILN_CHECK(kiln_ckpt_check_sidecar(path, &sidecar));
    KILN_CHECK(kiln_ckpt_open(path, &file));
    kiln_status st = verify_open(file, path);
    H5Fclose(file);
    return as_ckpt_error(st);
}

/* 1 when path verifies; otherwise warns naming it and why. */
static int usable(const char *path)
{
    if (kiln_ckpt_verify(path) == KILN_OK) return 1;
    kiln_warn("skipping checkpoint '%s': %s", path, kiln_error_message());
    kiln_error_clear();
    return 0;
}

/* The first line of DIR/latest; *has = 0 when there is no such file. */
static kiln_status read_latest(const char *dir, char *name, size_t len, int *has)
{
    char path[PATH_MAX];
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/latest", dir));
    name[0] = '\0';
    FILE *f = fopen(path, "r");
    *has = f != NULL;
    if (!f && errno == ENOENT) return KILN_OK;
    if (!f) return KILN_ERROR(KILN_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    if (!fgets(name, (int)len, f)) name[0] = '\0';
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    return KILN_OK;
}

/* Newest step-N.h5 older than `below` that verifies; *seen counts the files tried. */
static kiln_status find_older(const char *dir, int64_t below, char *path, size_t path_len,
                              int *found, int *seen)
{
    int64_t *steps;
    int n;
    KILN_CHECK(list_steps(dir, &steps, &n));
    kiln_status st = KILN_OK;
    for (int i = 0; i < n && !*found && st == KILN_OK; i++) {
        char name[64];
        if (steps[i] >= below) continue;
        step_name(steps[i], name, sizeof name);
        st = kiln_path_format(path, path_len, "%s/%s", dir, name);
        if (st != KILN_OK) break;
        (*seen)++;
        *found = usable(path);
    }
    free(steps);
    return st;
}

kiln_status kiln_ckpt_find_latest(const char *dir, char *path, size_t path_len, int *found)
{
    char name[256];
    int has_latest, seen = 0;
    int64_t below = INT64_MAX; /* after a damaged `latest`, only older steps are candidates */
    *found = 0;
    KILN_CHECK(read_latest(dir, name, sizeof name, &has_latest));
    if (has_latest && !parse_step_name(name, &below)) {
        kiln_warn("'%s/latest' names '%s', not a checkpoint file; using the newest valid one",
                  dir, name);
        below = INT64_MAX;
    } else if (has_latest) {
        KILN_CHECK(kiln_path_format(path, path_len, "%s/%s", dir, name));
        seen += access(path, F_OK) == 0;
        if (usable(path)) {
            *found = 1;
            return KILN_OK;
        }
    }
    KILN_CHECK(find_older(dir, below, path, path_len, found, &seen));
    if (*found) return KILN_OK;
    if (path_len) path[0] = '\0';
    if (seen)
        return KILN_ERROR(KILN_ERR_CKPT, "no valid checkpoint in '%s': all %d found are damaged "
                          "(see the warnings above)", dir, seen);
    return KILN_OK;
}

static kiln_status load_tensor(hid_t file, const char *path, kiln_ckpt_tensor *t)
{
    hid_t dset;
    KILN_CHECK(check_tensor(t));
    uint64_t numel = tensor_numel(t);
    KILN_CHECK(kiln_h5_open_dataset(file, t->name, H5T_NATIVE_FLOAT, t->ndim, t->shape, &dset));
    kiln_status st = kiln_h5_read_range(dset, H5T_NATIVE_FLOAT, H5P_DEFAULT, t->start, t->count,
                                        t->data);
    if (st == KILN_OK && t->start == 0 && t->count == numel)
        st = check_crc(dset, path, t->name, kiln_crc32(0, t->data, numel * sizeof(float)));
    H5Dclose(dset);
    return st;
}

kiln_status kiln_ckpt_load(const char *path, kiln_ckpt_meta *meta, kiln_ckpt_tensor *tensors,
                           int n_tensors)
{
    hid_t file = H5I_INVALID_HID;
    if (!path || n_tensors < 0 || (n_tensors > 0 && !tensors))
        return KILN_ERROR(KILN_ERR_ARG, "kiln_ckpt_load: bad arguments (%d tensors)", n_tensors);
    KILN_CHECK(kiln_ckpt_verify(path));
    KILN_CHECK(kiln_ckpt_open(path, &file));
    kiln_status st = KILN_OK;
    if (meta) KILN_CHECK_GOTO(st, kiln_ckpt_read_meta(file, path, meta), done);
    for (int i = 0; i < n_tensors; i++)
        KILN_CHECK_GOTO(st, load_tensor(file, path, &tensors[i]), done);
done:
    H5Fclose(file);
    return as_ckpt_error(st);
}
