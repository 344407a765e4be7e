/* `kiln index build | search | eval`: nearest-neighbour indexes over the rows of an HDF5
 * dataset (embeddings, features, pixels), built on the backend's GEMM by MPI ranks, searched
 * exactly once into a chunked output, measured against exact search and registered like
 * models. docs/index.md is the guide; src/ann/ann_internal.h maps the files. */
#ifndef KILN_ANN_H
#define KILN_ANN_H
#include "kiln/backend.h"
#include "kiln/config.h"
#include "kiln/job.h"
#include "kiln/registry.h"
#include "kiln/topo.h"

/* The config of all three commands (src/ann/index_config.c; `kiln index build --help-config`). */
typedef struct kiln_index_config {
    struct {
        kiln_cfg_str kind;          /* flat | ivf-flat | ivf-pq | hnsw */
        kiln_cfg_str metric;        /* l2 | ip | cosine */
        int nlist;                  /* IVF lists (0: 4 sqrt(rows)) */
        int nprobe;                 /* lists searched by default (stored in the index) */
        int64_t train_rows;         /* k-means sample (0: 256 per list, at most the rows) */
        int kmeans_iters;
        kiln_cfg_str kmeans_init;   /* random | kmeans++ */
        int pq_m;                   /* IVF-PQ bytes a row (0: about 8 values a part) */
        int pq_iters;               /* k-means iterations of each PQ part */
        int pq_refine;              /* IVF-PQ candidates ranked again exactly (0: none, no vectors kept) */
        int hnsw_m;                 /* HNSW links per node and layer */
        int ef_construction;
        int ef;                     /* HNSW search default (stored in the index) */
        int64_t seed;
        kiln_cfg_str attributes;    /* NAME=FILE.h5:/path,...: integer row attributes to filter on */
        int threads;                /* 0: this rank's cores */
        int shards;                 /* > 1: consecutive row ranges built as shards by rank groups */
        double save_interval;       /* seconds between saves of an HNSW graph being built */
    } index;
    struct {
        int k;
        int nprobe;                 /* 0: the index's default */
        int ef;                     /* HNSW beam; 0: the index's default */
        kiln_cfg_str filter;        /* NAME=V1,V2,...: only rows whose attribute is one of them */
        int chunk_rows;             /* queries per chunk: the unit of work and of progress */
        double progress_interval;
    } search;
    struct {
        kiln_cfg_int_list nprobes;  /* settings measured (IVF) */
        kiln_cfg_int_list efs;      /* settings measured (HNSW) */
        double target_recall;       /* > 0: the cheapest setting reaching it becomes the default */
        int rounds;                 /* timed passes over the queries per setting (the best counts) */
    } evaluate;
    kiln_backend_config backend;
    kiln_placement_config placement;
    kiln_registry_config registry;  /* eval registers the index when registry.name is set */
} kiln_index_config;

extern const kiln_cfg_schema kiln_index_schema;

/* `kiln index` in the job table: its commands build, search and eval are kinds of their own. */
extern const kiln_job_kind kiln_index_job;

/* Opens an index file (a sharded index: its manifest and every shard) and checks every
 * checksum and shape, as a search would: what `kiln registry verify` runs on versions of kind
 * index. */
kiln_status kiln_index_verify(const char *path);

#endif
