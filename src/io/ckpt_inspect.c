/* `kiln ckpt inspect`: a human-readable summary of one checkpoint. Unlike verify it does not
 * stop at the first problem: it reports the sidecar, the meta and every dataset, marks each
 * damaged part, and fails (KILN_ERR_CKPT) at the end if anything was damaged. */
#include "ckpt_internal.h"
#include "kiln/h5util.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct tally {
    const char *path;
    int datasets, damaged;
} tally;

static kiln_status print_dataset(hid_t file, const char *name, void *ctx)
{
    tally *t = ctx;
    kiln_ckpt_dataset_info info;
    kiln_status st = kiln_ckpt_scan_dataset(file, t->path, name, &info);
    char shape[128] = "?", norm[32] = "-";
    if (info.ndim) kiln_h5_format_shape(info.shape, info.ndim, shape, sizeof shape);
    if (info.data_read) snprintf(norm, sizeof norm, "%.6e", info.norm);
    printf("  %-40s %-8s %-18s norm %-13s ", name, info.dtype[0] ? info.dtype : "?", shape, norm);
    if (st == KILN_OK)
        printf("crc32 %08x ok\n", (unsigned)info.crc);
    else
        printf("DAMAGED: %s\n", kiln_error_message());
    kiln_error_clear();
    t->datasets++;
    t->damaged += st != KILN_OK;
    return KILN_OK;
}

/* Prints the meta; returns 0 when it cannot be read. */
static int print_meta(hid_t file, const char *path, int show_config)
{
    kiln_ckpt_meta *m = malloc(sizeof *m);
    char created[64] = "?";
    if (!m || kiln_ckpt_read_meta(file, path, m) != KILN_OK) {
        printf("meta:    DAMAGED: %s\n", m ? kiln_error_message() : "out of memory");
        kiln_error_clear();
        free(m);
        return 0;
    }
    if (kiln_h5_read_attr_str(file, "created", created, sizeof created) != KILN_OK)
        kiln_error_clear();
    printf("step %lld  samples_seen %lld  tokens_seen %lld  seed %llu\n", (long long)m->step,
           (long long)m->samples_seen, (long long)m->tokens_seen, (unsigned long long)m->seed);
    printf("data cursor: epoch %llu position %llu  best_eval_loss %g\n",
           (unsigned long long)m->data_epoch, (unsigned long long)m->data_pos, m->best_eval_loss);
    printf("kiln_version %s  format_version %d  created %s\n", m->kiln_version,
           KILN_CKPT_FORMAT_VERSION, created);
    if (show_config) printf("config:\n%s\n", m->config_text);
    free(m);
    return 1;
}

kiln_status kiln_ckpt_inspect(const char *path, int show_config)
{
    int present, damaged = 0;
    hid_t file = H5I_INVALID_HID;
    printf("checkpoint %s\n", path);
    if (kiln_ckpt_check_sidecar(path, &present) == KILN_OK) {
        printf("sidecar: %s\n", present ? "ok (size and crc32 match)" : "absent");
    } else {
        printf("sidecar: DAMAGED: %s\n", kiln_error_message());
        kiln_error_clear();
        damaged++;
    }
    KILN_CHECK(kiln_ckpt_open(path, &file));
    damaged += !print_meta(file, path, show_config);
    tally t = {path, 0, 0};
    printf("datasets:\n");
    kiln_status st = kiln_ckpt_for_each_dataset(file, path, print_dataset, &t);
    H5Fclose(file);
    KILN_CHECK(st);
    printf("%d datasets, %d damaged\n", t.datasets, t.damaged);
    if (damaged + t.damaged)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' is damaged: %d of %d datasets%s", path,
                          t.damaged, t.datasets, damaged ? ", plus its sidecar or meta" : "");
    return KILN_OK;
}
