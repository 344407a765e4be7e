/* Checkpoints: one HDF5 file per checkpoint, world-size independent.
 *
 * Every tensor (parameters, optimizer state) is stored as its full global dataset under the
 * name the caller gives ("model/h0.ln1.weight", "optim/m/h0.ln1.weight", ...), each with a
 * "crc32" attribute over its bytes in row-major order. A tensor descriptor may hold only a
 * flat range [start, start+count) of the tensor's elements, so that a rank (ZeRO shards cut
 * flat buffers anywhere) writes and reads just its part; the ranks of a job write one file
 * together.
 *
 * Save writes DIR/step-NNNNNNNN.h5.tmp, fsyncs, renames to DIR/step-NNNNNNNN.h5, writes a
 * sidecar DIR/step-NNNNNNNN.h5.crc32 with the whole file's CRC and size (same tmp+fsync+rename
 * dance), fsyncs DIR, then atomically replaces DIR/latest (a one-line text file naming the
 * checkpoint file) and removes all but the newest `keep` checkpoints. A crash at any point
 * leaves the previous checkpoint and `latest` valid. */
#ifndef KILN_CKPT_H
#define KILN_CKPT_H
#include <stddef.h>
#include <stdint.h>
#include "kiln/comm.h"
#include "kiln/status.h"

#define KILN_CKPT_MAX_DIMS 4

typedef struct kiln_ckpt_tensor {
    const char *name;          /* dataset path inside the file, no leading '/' */
    float *data;               /* count floats (read fills it, write reads it) */
    int ndim;
    uint64_t shape[KILN_CKPT_MAX_DIMS]; /* the global tensor's shape */
    uint64_t start, count;     /* flat element range held in data; whole tensor: 0, numel */
} kiln_ckpt_tensor;

typedef struct kiln_ckpt_meta {
    int64_t step;              /* optimizer steps completed */
    int64_t samples_seen;
    int64_t tokens_seen;
    uint64_t seed;
    uint64_t data_epoch;       /* sampler cursor: epoch and position within it */
    uint64_t data_pos;
    double best_eval_loss;     /* for best-by-eval tracking; +inf when none */
    char config_text[65536];   /* resolved YAML */
    char kiln_version[32];
} kiln_ckpt_meta;

/* Save atomically as described above (see kiln_ckpt_fault_half_write for fault tests).
 * comm NULL, or a world of one rank: this process writes alone (no MPI-IO). Otherwise every
 * rank of comm's world calls it with the same tensors in the same order, each tensor once with
 * the flat range this rank writes (count 0 for none; all ranks' ranges together cover every
 * element once), and they write the file collectively through MPI-IO, each its own ranges;
 * meta is taken from rank 0, which alone renames the file and updates the directory. Every
 * rank gets the same outcome. */
kiln_status kiln_ckpt_save(kiln_comm *comm, const char *dir, const kiln_ckpt_meta *meta,
                           const kiln_ckpt_tensor *tensors, int n_tensors, int keep);

/* Verify a checkpoint file: sidecar CRC and size (when the sidecar exists), HDF5 opens, every
 * dataset's crc32 attribute matches. Errors name the file and the dataset. */
kiln_status kiln_ckpt_verify(const char *path);

/* Path of the newest valid checkpoint in dir: the one `latest` names, or, if it fails
 * verification, the newest older one that passes (with a warning naming the damaged file).
 * KILN_ERR_CKPT when none is valid; *found = 0 (and KILN_OK) when dir has no checkpoint. */
kiln_status kiln_ckpt_find_latest(const char *dir, char *path, size_t path_len, int *found);

/* Read meta and the listed tensors. Each tensor's shape must match the stored dataset's shape
 * exactly (error names the dataset, expected and found shapes); its crc32 is verified when the
 * whole tensor is read. */
kiln_status kiln_ckpt_load(const char *path, kiln_ckpt_meta *meta, kiln_ckpt_tensor *tensors,
                           int n_tensors);

/* `kiln ckpt inspect`: a readable summary (meta, config, every dataset with shape, dtype,
 * norm, checksum status) to stdout. */
kiln_status kiln_ckpt_inspect(const char *path, int show_config);

/* Tests only: make the next kiln_ckpt_save stop after writing about half its datasets and
 * return KILN_ERR_INTERRUPTED, as if the process had been killed mid-write. Also enabled by
 * environment variable KILN_FAULT_CKPT_HALF=1, or KILN_FAULT_CKPT_STEP=N for the save of step
 * N only: then the write stops half-way and calls _exit(99), as a kill during it would. */
void kiln_ckpt_fault_half_write(int enable);

#endif
