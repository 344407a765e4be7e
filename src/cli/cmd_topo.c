/* kiln topo [--ranks-per-node N] [--cores-per-rank K] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "kiln/slurm.h"
#include "kiln/topo.h"

static void topo_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln topo [--ranks-per-node N] [--cores-per-rank K]\n\n"
            "Prints this node's topology (packages, NUMA nodes, cores, PUs, CUDA GPUs) and the\n"
            "placement kiln uses for N ranks per node: each rank's cores, NUMA node, GPU and\n"
            "thread count. N defaults to the ranks of the current job (Open MPI or Slurm), else 1.\n"
            "In a run the same plan comes from placement.bind and placement.cores_per_rank.\n");
}

int kiln_cmd_topo(int argc, char **argv)
{
    int local_rank, ranks, cores = 0;
    kiln_local_rank(&local_rank, &ranks);
    for (int i = 1; i < argc; i++) {
        if (kiln_cli_is_help(argv[i])) { topo_usage(stdout); return 0; }
        int has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--ranks-per-node") && has_value) ranks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cores-per-rank") && has_value) cores = atoi(argv[++i]);
        else { topo_usage(stderr); return 2; }
    }
    if (ranks < 1 || cores < 0) {
        fprintf(stderr, "kiln topo: --ranks-per-node must be >= 1 and --cores-per-rank >= 0\n");
        return 2;
    }
    kiln_status st = kiln_topo_print(stdout, ranks, cores);
    return st == KILN_OK ? 0 : kiln_cli_fail("topo", st);
}
