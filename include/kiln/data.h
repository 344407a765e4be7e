/* Datasets in HDF5, importers, and the batch loader (deterministic shuffle, prefetch thread).
 *
 * Layouts written by `kiln data import`:
 *   classification (fashion-mnist):  /train/x uint8 [N,D], /train/y uint8 [N],
 *                                    /test/x, /test/y likewise; file attribute "num_classes".
 *                                    x may be float32 instead (kiln features build writes
 *                                    /train/x, /valid/x): used as it is, not scaled, and
 *                                    refused when it holds a NaN or an infinity.
 *   text:                            /train/tokens uint8 [N], /val/tokens uint8 [M];
 *                                    file attribute "vocab_size" = 256.
 * Opening checks layout, dtype and shape and names the file and dataset in every error. */
#ifndef KILN_DATA_H
#define KILN_DATA_H
#include <stddef.h>
#include <stdint.h>
#include "kiln/config.h"
#include "kiln/status.h"

/* Importers. Output is written to OUT.tmp and renamed only when complete. */
kiln_status kiln_import_fashion_mnist(const char *dir, const char *out_path);

/* `kiln data import csv` (src/io/import_csv.c): a CSV file as a columnar table, the group
 * /TABLE of an HDF5 file, one dataset per column, [rows] each, attributes type and na_count:
 *   int64      int64, NA as KILN_CSV_NA_INT64
 *   float64    float64, NA as NaN
 *   bool       uint8 0/1, NA as KILN_CSV_NA_BOOL
 *   timestamp  int64 microseconds since 1970-01-01 UTC (attribute unit), NA as KILN_CSV_NA_INT64
 *   category   int32 codes, NA as -1; the values, in order of first appearance, are the UTF-8
 *              strings of /TABLE/.categories/COLUMN
 * The group's attributes: columns (the names, newline-separated, in file order), rows,
 * bad_rows_skipped, source, source_crc32, source_bytes. */
typedef enum {
    KILN_CSV_AUTO = 0, KILN_CSV_INT64, KILN_CSV_FLOAT64, KILN_CSV_BOOL, KILN_CSV_TIMESTAMP, KILN_CSV_CATEGORY
} kiln_csv_type;
#define KILN_CSV_NA_INT64 INT64_MIN
#define KILN_CSV_NA_BOOL 255

typedef struct kiln_csv_options {
    const char *schema;         /* YAML: columns: {NAME: TYPE, ...}, na: [TOKENS] (NULL: none) */
    const char *types;          /* NAME=TYPE,... over the schema (NULL: none) */
    const char *na;             /* NA tokens, comma-separated ("NA," is NA and the empty field);
                                   NULL: the schema's, else NA, the empty field, null, NULL, N/A */
    int skip_bad_rows;          /* 1: a bad row is left out and counted, not an error */
} kiln_csv_options;

typedef struct kiln_csv_report {
    uint64_t rows, bad_rows;
    int columns;
    char **names;
    kiln_csv_type *types;
    double seconds;
} kiln_csv_report;

/* CSV_PATH into TARGET (OUT.h5:/table; other objects of OUT.h5 are kept, the table replaced),
 * atomically. Types not given are inferred: the narrowest of int64, float64, timestamp (ISO
 * 8601), bool (true/false) that every value fits, else category. */
kiln_status kiln_import_csv(const char *csv_path, const char *target, const kiln_csv_options *o,
                            kiln_csv_report *report);
void kiln_csv_report_free(kiln_csv_report *r);
const char *kiln_csv_type_name(kiln_csv_type t);
/* ISO 8601 (the forms a timestamp column takes) as microseconds since 1970-01-01 UTC: 1 if s is one. */
int kiln_parse_iso8601(const char *s, int64_t *us);
int kiln_csv_type_parse(const char *s, kiln_csv_type *t);
/* files in the given order, concatenated; the last val_fraction of bytes -> /val. */
kiln_status kiln_import_text(const char *const *files, int n_files, double val_fraction,
                             const char *out_path);

typedef enum { KILN_DATA_CLASSIFY = 0, KILN_DATA_LM } kiln_data_kind;

/* The `data` config section (src/io/data_config.c) of a job that trains and evaluates. */
typedef struct kiln_data_config {
    kiln_cfg_str path;          /* HDF5 file from `kiln data import` */
    kiln_cfg_str train_split;   /* "train" */
    kiln_cfg_str eval_split;    /* "" = the model kind's evaluation split (test or val) */
} kiln_data_config;
extern const kiln_cfg_schema kiln_data_section;

typedef struct kiln_dataset kiln_dataset;
/* kind CLASSIFY: split "train"/"test", rows = N, width = D.
 * kind LM: split "train"/"val", rows = number of windows of seq_len+1 tokens taken at stride
 * seq_len, width = seq_len. The split is read into memory. */
kiln_status kiln_dataset_open(const char *path, const char *split, kiln_data_kind kind,
                              int seq_len, kiln_dataset **out);
void kiln_dataset_free(kiln_dataset *ds);
uint64_t kiln_dataset_rows(const kiln_dataset *ds);
int kiln_dataset_width(const kiln_dataset *ds);
int kiln_dataset_num_classes(const kiln_dataset *ds); /* CLASSIFY: max label + 1 or attribute; LM: 256 */

typedef struct kiln_batch {
    int B;              /* rows in this batch (the last eval batch may be short) */
    float *x;           /* CLASSIFY: (B, D) pixels / 255 */
    int32_t *y;         /* CLASSIFY: (B) labels */
    int32_t *tokens;    /* LM: (B, T) inputs */
    int32_t *targets;   /* LM: (B, T) next tokens */
} kiln_batch;

kiln_data_kind kiln_dataset_kind(const kiln_dataset *ds);
/* Materialise rows[0..n) of ds into out, whose buffers hold at least n rows (x and y for
 * CLASSIFY, tokens and targets for LM); sets out->B = n. KILN_ERR_ARG for a row out of range. */
kiln_status kiln_dataset_gather(const kiln_dataset *ds, const uint64_t *rows, int n,
                                kiln_batch *out);

/* Pixels as the models see them: dst[i] = src[i] / 255 in float, rounded exactly as that
 * division rounds (training and inference must agree bit for bit), at a fraction of a
 * vector divide's cost. */
void kiln_pixels_to_unit(float *restrict dst, const uint8_t *restrict src, size_t n);

typedef struct kiln_loader_opts {
    int batch;          /* rows per batch for this rank */
    int shuffle;        /* 1: permutation per epoch from (seed, epoch); 0: in order */
    int drop_last;      /* 1: skip a final short batch (training); 0: emit it (eval) */
    uint64_t seed;
    int rank, world;    /* this rank takes rows [rank*batch, (rank+1)*batch) of each
                           global batch of world*batch rows */
    int on_caller;      /* 1: kiln_loader_next prepares each batch itself, its rows split over
                           the caller's OpenMP threads: for a caller whose compute holds every
                           core it may run on (the CPU backend), where a prefetch thread would
                           take a core from it mid-GEMM; 0: a prefetch thread prepares the next
                           batch while the caller computes (on a device, or beside a spare
                           core) */
} kiln_loader_opts;

typedef struct kiln_loader kiln_loader;
/* Starts the prefetch thread that prepares the next batch while the caller computes, unless
 * opts->on_caller. */
kiln_status kiln_loader_create(kiln_dataset *ds, const kiln_loader_opts *opts, kiln_loader **out);
/* The next batch; valid until the following call. Training loaders run forever (epochs roll
 * over); eval loaders (shuffle 0, drop_last 0) return *batch = NULL at the end of the epoch and
 * start again on the next call. */
kiln_status kiln_loader_next(kiln_loader *l, const kiln_batch **batch);
/* The cursor: epoch and position (in global rows) of the next batch not yet returned. */
void kiln_loader_cursor(const kiln_loader *l, uint64_t *epoch, uint64_t *pos);
/* Move to a saved cursor (drops any prefetched batch). */
kiln_status kiln_loader_seek(kiln_loader *l, uint64_t epoch, uint64_t pos);
void kiln_loader_free(kiln_loader *l);

#endif
