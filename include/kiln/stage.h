/* Stage files: what a job saves on its way to its output so that a rerun after a kill continues
 * (src/io/stage_file.c). OUTPUT.STAGE.h5, written whole and atomically: the job's identity (what
 * the stage depends on), a step (> 0: how far it got) and datasets each with its crc32. A rerun
 * takes it only when the identity, every shape and every checksum match. */
#ifndef KILN_STAGE_H
#define KILN_STAGE_H
#include <hdf5.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/status.h"

typedef struct kiln_stage_file {
    char path[PATH_MAX + 16];
    char identity[2048];               /* what the stage depends on; a file of another is ignored */
} kiln_stage_file;

/* A dataset of a stage file: saved from data, or loaded into it (bytes: its size). */
typedef struct kiln_stage_part {
    const char *name;
    hid_t ftype, mtype;
    int ndim;
    uint64_t shape[2];
    void *data;
    size_t bytes;
} kiln_stage_part;

void kiln_stage_init(kiln_stage_file *sf, const char *output, const char *stage, const char *identity);
/* Writes the stage file whole and atomically: identity, step (> 0) and the parts. */
kiln_status kiln_stage_save(const kiln_stage_file *sf, int64_t step, const kiln_stage_part *parts, int n);
/* The step saved, its parts read into their data, when the file's identity, shapes and
 * checksums all match; 0 otherwise (the parts' data may then hold anything). */
int64_t kiln_stage_load(const kiln_stage_file *sf, const kiln_stage_part *parts, int n);
/* Removes the stage file and what a run killed while saving it left (its *.tmp). */
void kiln_stage_remove(const kiln_stage_file *sf);

#endif
