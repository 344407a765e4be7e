/* Checkpoint files: atomic save (tmp, fsync, rename, sidecar, `latest`, prune), verification,
 * discovery of the newest valid checkpoint, and load. The format and the save sequence are
 * described in include/kiln/ckpt.h; ckpt_write.c writes the HDF5 file itself, by one process
 * or collectively. In a job every rank takes part in the save, and rank 0 alone touches the
 * directory (mkdir, rename, sidecar, `latest`, pruning). Loading reads each tensor's flat range
 * wherever it is, so any number of ranks can resume from any checkpoint. */
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
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCAN_BLOCK ((uint64_t)1 << 22) /* elements per read when checksumming a dataset */

/* ---- fault injection (tests) ---- */

static int fault_half_next;

void kiln_ckpt_fault_half_write(int enable) { fault_half_next = enable; }

/* KILN_FAULT_CKPT_HALF=1 kills the next save half-way; KILN_FAULT_CKPT_STEP=N only the save of
 * step N (so a run can first write a good checkpoint). */
static kiln_ckpt_fault take_fault(int64_t step)
{
    const char *half = getenv("KILN_FAULT_CKPT_HALF"), *at = getenv("KILN_FAULT_CKPT_STEP");
    int kill_now = (half && !strcmp(half, "1")) || (at && strtoll(at, NULL, 10) == step);
    kiln_ckpt_fault m = kill_now         ? KILN_CKPT_FAULT_EXIT
                        : fault_half_next ? KILN_CKPT_FAULT_RETURN
                                          : KILN_CKPT_FAULT_NONE;
    fault_half_next = 0;
    return m;
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
    if (*n > 1) qsort(*steps, (size_t)*n, sizeof **steps, cmp_desc); /* qsort(NULL, 0) is undefined */
    return KILN_OK;
}

static kiln_status remove_file(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return KILN_ERROR(KILN_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    return KILN_OK;
}

/* ---- save ---- */

uint64_t kiln_ckpt_tensor_numel(const kiln_ckpt_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

kiln_status kiln_ckpt_check_tensor(const kiln_ckpt_tensor *t)
{
    if (!t->name || !t->name[0] || t->name[0] == '/')
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor name '%s' must be a non-empty path "
                          "without a leading '/'", t->name ? t->name : "(null)");
    if (t->ndim < 1 || t->ndim > KILN_CKPT_MAX_DIMS)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': ndim %d is not in 1..%d", t->name,
                          t->ndim, KILN_CKPT_MAX_DIMS);
    uint64_t n = kiln_ckpt_tensor_numel(t);
    if (t->start > n || t->count > n - t->start)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s': range [%llu, %llu) is outside "
                          "its %llu elements", t->name, (unsigned long long)t->start,
                          (unsigned long long)(t->start + t->count), (unsigned long long)n);
    if (t->count > 0 && !t->data)
        return KILN_ERROR(KILN_ERR_ARG, "checkpoint tensor '%s' has no data", t->name);
    return KILN_OK;
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

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len > n && !strcmp(s + len - n, suffix);
}

/* What a process that died during a save or a prune left: step-*.tmp (checkpoint or sidecar),
 * latest.*.tmp, a space reservation (*.reserve), and a sidecar step-N.h5.crc32 whose
 * checkpoint is gone. */
static int is_leftover(const char *dir, const char *name)
{
    size_t len = strlen(name);
    int step = !strncmp(name, "step-", 5);
    if (ends_with(name, len, ".tmp") && (step || !strncmp(name, "latest.", 7))) return 1;
    if (step && ends_with(name, len, ".reserve")) return 1;
    if (!step || !ends_with(name, len, ".h5.crc32")) return 0;
    char checkpoint[PATH_MAX];
    return snprintf(checkpoint, sizeof checkpoint, "%s/%.*s", dir, (int)(len - 6), name) <
               (int)sizeof checkpoint &&
           !kiln_path_exists(checkpoint);
}

static kiln_status remove_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return KILN_ERROR(KILN_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
    kiln_status st = KILN_OK;
    struct dirent *e;
    while (st == KILN_OK && (e = readdir(d)) != NULL) {
        if (!is_leftover(dir, e->d_name)) continue;
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

/* What every rank of a collective save writes alike: rank 0's meta, clock and fault. */
typedef struct save_header {
    kiln_ckpt_meta meta;
    char created[32];
    int fault;
} save_header;

static kiln_status share_header(kiln_comm *comm, const kiln_ckpt_meta *meta, save_header *h)
{
    if (!comm || kiln_comm_rank(comm, KILN_AXIS_WORLD) == 0) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(h->created, sizeof h->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
        h->meta = *meta;
        h->fault = (int)take_fault(meta->step);
    }
    return comm ? kiln_comm_bcast(comm, KILN_AXIS_WORLD, h, sizeof *h, 0) : KILN_OK;
}

/* The written tmp becomes the checkpoint: renamed with its sidecar, named by `latest`, the
 * old ones pruned. One process does this (rank 0 in a job). */
static kiln_status commit(const char *dir, const char *tmp, int64_t step, int keep, double t0)
{
    char name[64], path[PATH_MAX], latest[PATH_MAX], line[80];
    step_name(step, name, sizeof name);
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/%s", dir, name));
    KILN_CHECK(kiln_path_format(latest, sizeof latest, "%s/latest", dir));
    KILN_CHECK(publish(tmp, path));
    snprintf(line, sizeof line, "%s\n", name);
    KILN_CHECK(kiln_write_file_atomic(latest, line, strlen(line)));
    double seconds = kiln_time_s() - t0;
    struct stat sb; /* bench/ckpt_bench.sh compares this rate with dd's */
    kiln_info("checkpoint %s: %lld bytes durable in %.3f s", path,
              stat(path, &sb) == 0 ? (long long)sb.st_size : -1LL, seconds);
    /* The checkpoint is durable and current now; failing to tidy up must not fail the save. */
    if (prune(dir, step, keep) != KILN_OK) {
        kiln_warn("checkpoint '%s' saved, but removing old ones failed: %s", path,
                  kiln_error_message());
        kiln_error_clear();
    }
    return KILN_OK;
}

/* Bytes the file will take at most: every tensor's data (each name once), and room for HDF5's
 * metadata and the attributes. */
static uint64_t file_bytes(const kiln_ckpt_tensor *t, int n, const kiln_ckpt_meta *meta)
{
    uint64_t bytes = 256 * 1024 + strnlen(meta->config_text, sizeof meta->config_text);
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++) first = strcmp(t[j].name, t[i].name) != 0;
        if (first) bytes += kiln_ckpt_tensor_numel(&t[i]) * sizeof(float) + 8 * 1024;
    }
    return bytes;
}

/* A full disk found before HDF5 writes a byte: a write failing half-way on one rank leaves
 * the ranks' HDF5 states apart, where a collective close can wait forever. The space is taken
 * for real (on a scratch file) and given back just before the file is written. */
static kiln_status reserve_space(const char *tmp, uint64_t bytes)
{
    char path[PATH_MAX + 16];
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s.reserve", tmp));
    kiln_status st = kiln_file_preallocate(path, bytes, "checkpoint space");
    unlink(path);
    if (st == KILN_OK) return KILN_OK;
    char inner[2048];
    snprintf(inner, sizeof inner, "%s", kiln_error_message());
    kiln_error_clear();
    return KILN_ERROR(KILN_ERR_IO, "checkpoint '%s' not written (the previous one is kept): %s",
                      tmp, inner);
}

static kiln_status save_as(kiln_comm *comm, int lead, const char *dir, const save_header *h,
                           const kiln_ckpt_tensor *tensors, int n_tensors, int keep)
{
    char name[64], tmp[PATH_MAX];
    step_name(h->meta.step, name, sizeof name);
    KILN_CHECK(kiln_path_format(tmp, sizeof tmp, "%s/%s.tmp", dir, name));
    KILN_CHECK(kiln_ckpt_agree(comm, lead ? kiln_mkdir_p(dir) : KILN_OK));
    uint64_t bytes = file_bytes(tensors, n_tensors, &h->meta);
    KILN_CHECK(kiln_ckpt_agree(comm, lead ? reserve_space(tmp, bytes) : KILN_OK));
    double t0 = kiln_time_s();
    kiln_status st = kiln_ckpt_write_file(comm, tmp, &h->meta, h->created, tensors, n_tensors,
                                          (kiln_ckpt_fault)h->fault);
    if (st != KILN_OK) {
        if (lead && st != KILN_ERR_INTERRUPTED) unlink(tmp); /* an injected crash leaves its tmp */
        kiln_error_trace(__FILE__, __LINE__, "kiln_ckpt_write_file(comm, tmp, ...)");
        return st;
    }
    return kiln_ckpt_agree(comm, lead ? commit(dir, tmp, h->meta.step, keep, t0) : KILN_OK);
}

kiln_status kiln_ckpt_save(kiln_comm *comm, const char *dir, const kiln_ckpt_meta *meta,
                           const kiln_ckpt_tensor *tensors, int n_tensors, int keep)
{
    if (!dir || !meta || n_tensors < 0 || (n_tensors > 0 && !tensors) || meta->step < 0)
        return KILN_ERROR(KILN_ERR_ARG, "kiln_ckpt_save: bad arguments (dir, meta, %d tensors)",
                          n_tensors);
    if (!memchr(meta->config_text, '\0', sizeof meta->config_text))
        return KILN_ERROR(KILN_ERR_ARG, "kiln_ckpt_save: config text is not terminated");
    /* a lone rank (the MPI singleton included) writes without MPI-IO */
    if (comm && kiln_comm_size(comm, KILN_AXIS_WORLD) == 1) comm = NULL;
    int lead = !comm || kiln_comm_rank(comm, KILN_AXIS_WORLD) == 0;
    save_header *h = calloc(1, sizeof *h);
    KILN_CHECK_ALLOC(h);
    kiln_status st = share_header(comm, meta, h);
    if (st == KILN_OK) st = save_as(comm, lead, dir, h, tensors, n_tensors, keep);
    free(h);
    return st;
}

/* ---- reading: shared with ckpt_inspect.c ---- */

kiln_status kiln_ckpt_open(const char *path, hid_t *file)
{
    return kiln_h5_open_file(path, "checkpoint", KILN_ERR_CKPT, file);
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

uint32_t kiln_ckpt_meta_crc(const kiln_ckpt_meta *m, const char *kiln_version, const char *created)
{
    char head[512];
    int n = snprintf(head, sizeof head, "step=%lld\nsamples_seen=%lld\ntokens_seen=%lld\nseed=%llu\n"
                     "data_epoch=%llu\ndata_pos=%llu\nbest_eval_loss=%a\nkiln_version=%s\ncreated=%s\n",
                     (long long)m->step, (long long)m->samples_seen, (long long)m->tokens_seen,
                     (unsigned long long)m->seed, (unsigned long long)m->data_epoch,
                     (unsigned long long)m->data_pos, m->best_eval_loss, kiln_version, created);
    uint32_t crc = kiln_crc32(0, head, n > 0 && (size_t)n < sizeof head ? (size_t)n : 0);
    return kiln_crc32(crc, m->config_text, strnlen(m->config_text, sizeof m->config_text));
}

/* The attributes against their meta_crc32. */
static kiln_status check_meta_crc(hid_t file, const char *path, const kiln_ckpt_meta *m)
{
    char created[64];
    uint64_t stored;
    KILN_CHECK(kiln_h5_read_attr_str(file, "created", created, sizeof created));
    KILN_CHECK(kiln_h5_read_attr_u64(file, "meta_crc32", &stored));
    uint32_t crc = kiln_ckpt_meta_crc(m, m->kiln_version, created);
    if (stored != crc)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s': its attributes (step %lld, counters, "
                          "seed, config) have crc32 %08x but meta_crc32 records %08llx: they "
                          "were edited or damaged", path, (long long)m->step, (unsigned)crc,
                          (unsigned long long)stored);
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
    /* files written before meta_crc32 are protected by their sidecar only */
    return kiln_h5_has_attr(file, "meta_crc32") ? check_meta_crc(file, path, m) : KILN_OK;
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
    KILN_CHECK(kiln_ckpt_check_tensor(t));
    uint64_t numel = kiln_ckpt_tensor_numel(t);
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
