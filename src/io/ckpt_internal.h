/* What ckpt.c shares with ckpt_write.c (writing the file) and ckpt_inspect.c: tensor checks,
 * opening a checkpoint, its sidecar check, its meta, and a per-dataset scan (shape, L2 norm,
 * crc32 against the stored attribute). */
#ifndef KILN_CKPT_INTERNAL_H
#define KILN_CKPT_INTERNAL_H
#include <hdf5.h>
#include "kiln/ckpt.h"

/* Since kiln 0.1's meta_crc32 the attributes carry their own checksum; the layout is otherwise
 * unchanged, so the format stays 1 and a file without meta_crc32 (written before) is read as
 * one protected by its sidecar only. */
#define KILN_CKPT_FORMAT_VERSION 1

/* crc32 over every meta attribute as written (the counters, seed, cursor, best loss bits,
 * config text, kiln version and creation time), so that an edited step or config is caught
 * without the sidecar. */
uint32_t kiln_ckpt_meta_crc(const kiln_ckpt_meta *m, const char *kiln_version, const char *created);

uint64_t kiln_ckpt_tensor_numel(const kiln_ckpt_tensor *t);
/* Name, rank, range and data of one descriptor. */
kiln_status kiln_ckpt_check_tensor(const kiln_ckpt_tensor *t);

/* Fault injection for tests: none; stop half-way and return KILN_ERR_INTERRUPTED; stop
 * half-way and _exit(99) as a killed writer would. */
typedef enum { KILN_CKPT_FAULT_NONE, KILN_CKPT_FAULT_RETURN, KILN_CKPT_FAULT_EXIT } kiln_ckpt_fault;

/* Writes the file tmp (meta attributes with `created`, then every tensor's dataset and crc32);
 * checks the descriptors first. comm NULL: this process alone; otherwise collectively by every
 * rank of comm's world, which all pass the same meta and created (ckpt.c sends rank 0's). */
/* In a job (comm not NULL): every rank learns whether st failed anywhere (kiln_comm_agree);
 * alone: st. */
kiln_status kiln_ckpt_agree(kiln_comm *comm, kiln_status st);

kiln_status kiln_ckpt_write_file(kiln_comm *comm, const char *tmp, const kiln_ckpt_meta *meta,
                                 const char *created, const kiln_ckpt_tensor *t, int n,
                                 kiln_ckpt_fault fault);

/* Opens read-only; a file HDF5 cannot open (truncated, not HDF5) is KILN_ERR_CKPT. */
kiln_status kiln_ckpt_open(const char *path, hid_t *file);

/* Checks PATH.crc32 ("crc32-hex size") against the file; *present = 0 and KILN_OK when the
 * sidecar does not exist. */
kiln_status kiln_ckpt_check_sidecar(const char *path, int *present);

/* Root attributes -> meta (format_version must be KILN_CKPT_FORMAT_VERSION). */
kiln_status kiln_ckpt_read_meta(hid_t file, const char *path, kiln_ckpt_meta *meta);

typedef struct kiln_ckpt_dataset_info {
    char dtype[32];                       /* "" until the type has been read */
    int ndim;                             /* 0 until the shape has been read */
    uint64_t shape[KILN_CKPT_MAX_DIMS];
    int data_read;                        /* 1 once norm and crc below are valid */
    double norm;                          /* L2 norm of the data */
    uint32_t crc;                         /* crc32 of the data as read */
} kiln_ckpt_dataset_info;

/* Reads dataset `name` in blocks and fills info; fails with KILN_ERR_CKPT (naming the dataset
 * and file) when it is not float32, has no crc32 attribute, or its data's crc32 differs. */
kiln_status kiln_ckpt_scan_dataset(hid_t file, const char *path, const char *name,
                                   kiln_ckpt_dataset_info *info);

/* Calls fn for every dataset in the file, in name order; stops at the first failure. */
typedef kiln_status (*kiln_ckpt_dataset_fn)(hid_t file, const char *name, void *ctx);
kiln_status kiln_ckpt_for_each_dataset(hid_t file, const char *path, kiln_ckpt_dataset_fn fn,
                                       void *ctx);

#endif
