/* Stage files (kiln/stage.h): what a job saves on its way to its output, so that a rerun after
 * a kill continues (an index build's k-means centroids, PQ sub-quantizers and HNSW graph; a
 * feature build's columns). Each is written whole and atomically, with the job's identity (what
 * the stage depends on) and a crc32 per dataset; a rerun uses it only when the identity, every
 * shape and every checksum match, and otherwise does the stage again. */
#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/stage.h"

void kiln_stage_init(kiln_stage_file *sf, const char *output, const char *stage, const char *identity)
{
    snprintf(sf->path, sizeof sf->path, "%s.%s.h5", output, stage);
    snprintf(sf->identity, sizeof sf->identity, "%s", identity);
}

typedef struct stage_writer {
    const kiln_stage_file *sf;
    int64_t step;
    const kiln_stage_part *parts;
    int n;
} stage_writer;

static kiln_status stage_fill(hid_t file, void *ctx)
{
    const stage_writer *w = ctx;
    KILN_CHECK(kiln_h5_write_attr_str(file, "identity", w->sf->identity));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "step", w->step));
    for (int i = 0; i < w->n; i++) {
        const kiln_stage_part *p = &w->parts[i];
        KILN_CHECK(kiln_h5_write_dataset(file, p->name, p->ftype, p->mtype, p->ndim, p->shape, p->data));
        hid_t d = H5Dopen2(file, p->name, H5P_DEFAULT);
        KILN_H5_CHECK(d, KILN_ERR_HDF5, "reopening '%s'", p->name);
        kiln_status st = kiln_h5_write_attr_u64(d, "crc32", kiln_crc32(0, p->data, p->bytes));
        H5Dclose(d);
        KILN_CHECK(st);
    }
    return KILN_OK;
}

kiln_status kiln_stage_save(const kiln_stage_file *sf, int64_t step, const kiln_stage_part *parts, int n)
{
    stage_writer w = {sf, step, parts, n};
    return kiln_h5_write_file_atomic(sf->path, stage_fill, &w);
}

/* One part read into its buffer, its shape and crc32 checked. */
static int load_part(hid_t f, const kiln_stage_part *p)
{
    hid_t d;
    if (kiln_h5_open_dataset(f, p->name, p->mtype, p->ndim, p->shape, &d) != KILN_OK) return 0;
    uint64_t crc = 0;
    int ok = kiln_h5_read_attr_u64(d, "crc32", &crc) == KILN_OK &&
             H5Dread(d, p->mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, (void *)p->data) >= 0 &&
             kiln_crc32(0, p->data, p->bytes) == (uint32_t)crc;
    H5Dclose(d);
    return ok;
}

int64_t kiln_stage_load(const kiln_stage_file *sf, const kiln_stage_part *parts, int n)
{
    hid_t f;
    if (!kiln_path_exists(sf->path) || kiln_h5_open_file(sf->path, "build progress", KILN_ERR_DATA, &f) != KILN_OK) {
        kiln_error_clear();
        return 0;
    }
    char identity[sizeof sf->identity] = "";
    int64_t step = 0;
    int ok = kiln_h5_read_attr_str(f, "identity", identity, sizeof identity) == KILN_OK &&
             !strcmp(identity, sf->identity) && kiln_h5_read_attr_i64(f, "step", &step) == KILN_OK && step > 0;
    for (int i = 0; ok && i < n; i++) ok = load_part(f, &parts[i]);
    H5Fclose(f);
    kiln_error_clear();
    return ok ? step : 0;
}

void kiln_stage_remove(const kiln_stage_file *sf)
{
    unlink(sf->path);
    /* and what a run killed while saving left (PATH.HOST.PID.tmp): the job holds its output
     * exclusively, so no other writer of this stage is alive */
    char dir[PATH_MAX + 16], base[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", sf->path);
    snprintf(base, sizeof base, "%s", sf->path);
    const char *parent = dirname(dir); /* may be a constant "." rather than dir itself */
    DIR *d = opendir(parent);
    if (!d) return;
    const char *name = basename(base);
    size_t n = strlen(name);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len > n + 5 && !strncmp(e->d_name, name, n) && e->d_name[n] == '.' && !strcmp(e->d_name + len - 4, ".tmp")) {
            char path[2 * PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}
