/* The parts of `kiln infer`, one concern per file: the job (infer.c; its output and durable
 * progress are the chunked-output engine's, kiln/chunked.h), the input (infer_input.c), what a
 * chunk's rows become (infer_compute.c) and the job-table entries (infer_job.c). */
#ifndef KILN_INFER_INTERNAL_H
#define KILN_INFER_INTERNAL_H
#include <hdf5.h>
#include <limits.h>
#include "kiln/infer.h"

#define INFER_MAX_OUTPUTS 4

/* One dataset of the output: rows of `width` values (width 1: a 1-D dataset). */
typedef struct infer_output {
    char name[32];
    hid_t mem_type;             /* H5T_NATIVE_FLOAT or H5T_NATIVE_INT32 (4 bytes either way) */
    int width;
    void *buf;                  /* (chunk_rows, width): this rank's current chunk (the engine's) */
} infer_output;

/* A thread's share of the compute: whole forward batches, each on one thread, so what a row
 * becomes never depends on how many threads or ranks there are (OpenBLAS's multithreaded
 * sgemm changes the rounding with the thread count; single-threaded, it does not). */
typedef struct infer_worker {
    kiln_model *model;          /* worker 0: the job's model; the others, clones of it */
    kiln_batch batch;           /* one forward's rows */
    float *host[3];             /* host copies of device outputs (probs, loss, embedding) */
    kiln_status st;             /* the first failure in this worker, and its message */
    uint64_t failed_at;         /* the batch it failed in */
    char error[1024];
} infer_worker;

/* What identifies a job: an output is resumed or accepted as done only for the same one. */
typedef struct infer_identity {
    char model[PATH_MAX + 128], model_id[PATH_MAX + 128], model_sha256[65];
    int64_t model_version;
    char input[PATH_MAX], input_dataset[KILN_CFG_STR_MAX + 2];
    uint64_t input_rows, input_width, input_bytes, chunk_rows;
    int64_t input_mtime_ns;
    char settings[4096];        /* the config keys that change what is written */
} infer_identity;

typedef struct infer_job {
    kiln_infer_config cfg;
    const kiln_infer_opts *o;
    int rank, world;
    const kiln_backend *be;
    kiln_model *model;
    kiln_model_source src;
    kiln_model_config model_cfg;
    int is_lm, n_classes, T;    /* n_classes: classes or vocabulary */
    infer_identity id;

    /* input (infer_input.c) */
    hid_t in_file, in_dset, in_type; /* in_type: the memory type rows are read as */
    size_t in_elem;             /* bytes per value read */
    int width;                  /* values per row */
    void *in_raw;               /* (chunk_rows, width) of in_type */

    /* outputs and what computes them (infer_compute.c) */
    infer_output out[INFER_MAX_OUTPUTS];
    int n_out;
    int embed_width;
    int batch;                  /* rows per forward */
    infer_worker *workers;      /* one per thread */
    int n_workers;

    uint64_t n_chunks;
    double t_read;              /* seconds reading input, this rank */
} infer_job;

/* `kiln eval`'s run (eval.c). */
kiln_status kiln_eval_run(kiln_job *job);

/* Rows of chunk c (the last may be short). */
uint64_t kiln_infer_chunk_rows(const infer_job *j, uint64_t c);

/* Opens and checks the input against the model (dataset, type, width; errors name both). */
kiln_status kiln_infer_open_input(infer_job *j);
void kiln_infer_close_input(infer_job *j);
/* Reads chunk c's rows into j->in_raw; *crc: crc32 of their bytes. */
kiln_status kiln_infer_read_chunk(infer_job *j, uint64_t c, uint32_t *crc);

/* The output datasets this job writes, their buffers and the forward batch. */
kiln_status kiln_infer_plan_outputs(infer_job *j);
void kiln_infer_free_outputs(infer_job *j);
/* Computes every output for the rows of chunk c (already in j->in_raw) into the buffers. */
kiln_status kiln_infer_compute_chunk(infer_job *j, uint64_t c);

#endif
