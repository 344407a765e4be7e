/* Placement with hwloc: which cores (and GPU) each rank on a node uses.
 *
 * Ranks on a node split its cores into equal contiguous shares in hwloc's logical order (which
 * keeps a share inside one package / NUMA node when it fits), bind themselves to their share
 * and run that many OpenMP/OpenBLAS threads. Where GPUs exist each rank takes the one nearest
 * its cores. The local rank comes from Open MPI or Slurm; in a Slurm job that asked for
 * --cpus-per-task, that is each rank's share unless placement.cores_per_rank says otherwise. */
#ifndef KILN_TOPO_H
#define KILN_TOPO_H
#include <stdio.h>
#include "kiln/config.h"
#include "kiln/status.h"

typedef struct kiln_placement {
    int local_rank, local_size;  /* this rank among the ranks of its node */
    int n_cores, n_pus, n_numa, n_gpus; /* the node */
    int first_core, n_rank_cores; /* this rank's cores: logical indexes [first, first + n) */
    int numa_node;               /* logical index of the NUMA node of its first core */
    int gpu;                     /* index among the node's GPUs, or -1 */
    int shared;                  /* more ranks than cores: ranks share cores round-robin */
    int sized;                   /* the share was asked for (cores_per_rank, or Slurm's
                                  * --cpus-per-task), not an even split of the node */
    char cpuset[128];            /* the bound PUs as a list, e.g. "0-3,8-11" */
} kiln_placement;

/* The `placement` config section (src/comm/placement_config.c). */
typedef struct kiln_placement_config {
    int bind;                    /* bind each rank to its share of the node's cores */
    int cores_per_rank;          /* 0 = Slurm's --cpus-per-task, else an even split */
} kiln_placement_config;
extern const kiln_cfg_schema kiln_placement_section;

/* The plan for one local rank; cores_per_rank > 0 (else Slurm's CPUs per task) overrides the
 * even split. */
kiln_status kiln_topo_plan(int local_rank, int local_size, int cores_per_rank, kiln_placement *out);
/* Bind this process (all its threads) to the plan's cores; bound_pus receives the binding as
 * the OS reports it afterwards (a list like "0-3"). */
kiln_status kiln_topo_bind(const kiln_placement *p, char *bound_pus, size_t len);

/* What kiln_topo_place_rank settled for this rank. */
typedef struct kiln_rank_setup {
    int threads;   /* OpenMP/OpenBLAS threads in effect */
    int cores;     /* cores of the rank's share of its node */
    int gpu;       /* the GPU nearest those cores, -1 when hwloc sees none */
} kiln_rank_setup;

/* What a job does at start on every rank: plan this rank's share of its node (cores_per_rank 0
 * = Slurm's CPUs per task, else an even split), bind to it when `bind`, and run `threads`
 * threads (0 = as many as its cores; a lone rank with no share asked for keeps
 * OMP_NUM_THREADS or all cores). Logs the Slurm job it runs in, if any, and the placement (at
 * info on local rank 0). */
kiln_status kiln_topo_place_rank(int bind, int cores_per_rank, int threads, kiln_rank_setup *out);

/* 1 when the rank's threads leave a core of its share free, where a helper thread (a batch
 * prefetcher) runs without taking a core from the compute. */
static inline int kiln_rank_has_spare_core(const kiln_rank_setup *s)
{
    return s->threads < s->cores;
}

/* `kiln topo`: the node's packages, NUMA nodes, cores, PUs, GPUs and the plan for
 * ranks_per_node ranks. */
kiln_status kiln_topo_print(FILE *f, int ranks_per_node, int cores_per_rank);

#endif
