/* What a build saves on its way, so that a rerun after a kill continues: OUTPUT.kmeans.h5 (the
 * centroids after each k-means iteration), OUTPUT.pq.h5 (the trained sub-quantizers),
 * OUTPUT.hnsw.h5 (the graph after a batch of insertions). Each is written whole and
 * atomically by the build's first rank, with the build's identity (what the stage depends on)
 * and a crc32 per dataset; a rerun uses it only when the identity, every shape and every
 * checksum match, and otherwise starts the stage again. Removed once the index is written. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "ann_internal.h"

static const char *const stages[] = {"kmeans", "pq", "hnsw"};

void kiln_ann_stage_init(ann_stage_file *sf, const char *output, const char *stage, const char *identity)
{
    snprintf(sf->path, sizeof sf->path, "%s.%s.h5", output, stage);
    snprintf(sf->identity, sizeof sf->identity, "%s", identity);
}

typedef struct stage_writer {
    const ann_stage_file *sf;
    int64_t step;
    const ann_stage_part *parts;
    int n;
} stage_writer;

static kiln_status stage_fill(hid_t file, void *ctx)
{
    const stage_writer *w = ctx;
    KILN_CHECK(kiln_h5_write_attr_str(file, "identity", w->sf->identity));
    KILN_CHECK(kiln_h5_write_attr_i64(file, "step", w->step));
    for (int i = 0; i < w->n; i++) {
        const ann_stage_part *p = &w->parts[i];
        KILN_CHECK(kiln_h5_write_dataset(file, p->name, p->ftype, p->mtype, p->ndim, p->shape, p->data));
        hid_t d = H5Dopen2(file, p->name, H5P_DEFAULT);
        KILN_H5_CHECK(d, KILN_ERR_HDF5, "reopening '%s'", p->name);
        kiln_status st = kiln_h5_write_attr_u64(d, "crc32", kiln_crc32(0, p->data, p->bytes));
        H5Dclose(d);
        KILN_CHECK(st);
    }
    return KILN_OK;
}

kiln_status kiln_ann_stage_save(const ann_stage_file *sf, int64_t step, const ann_stage_part *parts, int n)
{
    stage_writer w = {sf, step, parts, n};
    return kiln_h5_write_file_atomic(sf->path, stage_fill, &w);
}

/* One part read into its buffer, its shape and crc32 checked. */
static int load_part(hid_t f, const ann_stage_part *p)
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

int64_t kiln_ann_stage_load(const ann_stage_file *sf, const ann_stage_part *parts, int n)
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

void kiln_ann_stage_remove_all(const char *output)
{
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s.%s.h5", output, stages[i]);
        unlink(path);
    }
}
