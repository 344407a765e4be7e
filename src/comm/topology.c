/* hwloc topology and the per-rank placement plan (see include/kiln/topo.h). */
#include "kiln/topo.h"
#include "kiln/slurm.h"
#include <hwloc.h>
#include "kiln/log.h"
#include "kiln/runtime.h"
#include <stdlib.h>
#include <string.h>

static kiln_status topo_load(hwloc_topology_t *t)
{
    if (hwloc_topology_init(t) != 0)
        return KILN_ERROR(KILN_ERR_INTERNAL, "hwloc_topology_init failed");
    /* keep GPUs and other important I/O devices so ranks can pick the nearest one */
    hwloc_topology_set_io_types_filter(*t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(*t) != 0) {
        hwloc_topology_destroy(*t);
        return KILN_ERROR(KILN_ERR_INTERNAL, "hwloc_topology_load failed");
    }
    return KILN_OK;
}

static int is_gpu(hwloc_obj_t o)
{
    return o->attr->osdev.type == HWLOC_OBJ_OSDEV_GPU ||
           o->attr->osdev.type == HWLOC_OBJ_OSDEV_COPROC;
}

static int count_gpus(hwloc_topology_t t)
{
    int n = 0;
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(t, o));)
        if (is_gpu(o) && o->name && !strncmp(o->name, "cuda", 4)) n++;
    return n;
}

/* The cuda GPU whose locality intersects set, taking the local_rank-th of the near ones
 * (several ranks near one socket share its GPUs in turn); -1 if none. */
static int nearest_gpu(hwloc_topology_t t, hwloc_const_cpuset_t set, int local_rank, int n_gpus)
{
    if (n_gpus == 0) return -1;
    int idx = 0, near[64], n_near = 0;
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(t, o));) {
        if (!is_gpu(o) || !o->name || strncmp(o->name, "cuda", 4)) continue;
        hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t, o);
        if (anc && hwloc_bitmap_intersects(anc->cpuset, set) && n_near < 64) near[n_near++] = idx;
        idx++;
    }
    return n_near ? near[local_rank % n_near] : local_rank % n_gpus;
}

/* Cores per rank when the config leaves it open: what Slurm allocated each task
 * (--cpus-per-task counts hardware threads, so a core with two counts twice); 0 outside a
 * job that asked, meaning an even split of the node. */
static int slurm_cores_per_task(hwloc_topology_t t)
{
    const kiln_slurm_job *job = kiln_slurm();
    if (!job->in_job || job->cpus_per_task <= 0) return 0;
    int cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    int pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    int per_core = cores > 0 && pus >= cores ? pus / cores : 1;
    return (job->cpus_per_task + per_core - 1) / per_core;
}

static void plan_from(hwloc_topology_t t, int local_rank, int local_size, int cores_per_rank,
                      kiln_placement *p, hwloc_cpuset_t set)
{
    memset(p, 0, sizeof *p);
    if (cores_per_rank <= 0) cores_per_rank = slurm_cores_per_task(t);
    p->sized = cores_per_rank > 0;
    p->local_rank = local_rank;
    p->local_size = local_size;
    p->n_cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    p->n_pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    p->n_numa = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
    p->n_gpus = count_gpus(t);
    if (p->n_cores < 1) p->n_cores = 1;
    int share = cores_per_rank > 0 ? cores_per_rank : p->n_cores / local_size;
    p->shared = share < 1 || (size_t)share * local_size > (size_t)p->n_cores;
    if (share < 1) share = 1;
    p->first_core = p->shared ? (local_rank * share) % p->n_cores : local_rank * share;
    p->n_rank_cores = share;
    hwloc_bitmap_zero(set);
    for (int c = 0; c < share; c++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, (unsigned)((p->first_core + c) % p->n_cores));
        if (core) hwloc_bitmap_or(set, set, core->cpuset);
    }
    hwloc_obj_t first = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, (unsigned)p->first_core);
    hwloc_obj_t numa = NULL;
    if (first && first->nodeset)
        numa = hwloc_get_next_obj_covering_cpuset_by_type(t, first->cpuset, HWLOC_OBJ_NUMANODE, NULL);
    p->numa_node = numa ? (int)numa->logical_index : 0;
    p->gpu = nearest_gpu(t, set, local_rank, p->n_gpus);
    hwloc_bitmap_list_snprintf(p->cpuset, sizeof p->cpuset, set);
}

kiln_status kiln_topo_plan(int local_rank, int local_size, int cores_per_rank, kiln_placement *out)
{
    hwloc_topology_t t;
    KILN_CHECK(topo_load(&t));
    hwloc_cpuset_t set = hwloc_bitmap_alloc();
    plan_from(t, local_rank, local_size, cores_per_rank, out, set);
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(t);
    return KILN_OK;
}

kiln_status kiln_topo_bind(const kiln_placement *p, char *bound_pus, size_t len)
{
    hwloc_topology_t t;
    KILN_CHECK(topo_load(&t));
    hwloc_cpuset_t set = hwloc_bitmap_alloc();
    hwloc_bitmap_list_sscanf(set, p->cpuset);
    int rc = hwloc_set_cpubind(t, set, HWLOC_CPUBIND_PROCESS);
    if (rc == 0 && hwloc_get_cpubind(t, set, HWLOC_CPUBIND_PROCESS) == 0)
        hwloc_bitmap_list_snprintf(bound_pus, len, set);
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(t);
    if (rc != 0)
        return KILN_ERROR(KILN_ERR_INTERNAL, "cannot bind local rank %d to PUs %s", p->local_rank,
                          p->cpuset);
    return KILN_OK;
}

kiln_status kiln_topo_print(FILE *f, int ranks_per_node, int cores_per_rank)
{
    hwloc_topology_t t;
    KILN_CHECK(topo_load(&t));
    hwloc_obj_t root = hwloc_get_root_obj(t);
    const char *model = hwloc_obj_get_info_by_name(hwloc_get_obj_by_type(t, HWLOC_OBJ_PACKAGE, 0)
                                                       ? hwloc_get_obj_by_type(t, HWLOC_OBJ_PACKAGE, 0)
                                                       : root, "CPUModel");
    fprintf(f, "machine: %s\n", model ? model : "(unknown CPU model)");
    fprintf(f, "  packages %d, NUMA nodes %d, cores %d, PUs %d, CUDA GPUs %d\n",
            hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE), hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE),
            hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE), hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU),
            count_gpus(t));
    for (hwloc_obj_t n = NULL; (n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n));) {
        char cpus[128];
        hwloc_bitmap_list_snprintf(cpus, sizeof cpus, n->cpuset);
        fprintf(f, "  NUMA node %u: PUs %s, %.1f GiB\n", n->logical_index, cpus,
                (double)n->attr->numanode.local_memory / (1u << 30));
    }
    fprintf(f, "plan for %d rank(s) per node:\n  %-10s %-8s %-12s %-6s %-5s %s\n", ranks_per_node,
            "local rank", "cores", "PUs", "NUMA", "GPU", "threads");
    hwloc_cpuset_t set = hwloc_bitmap_alloc();
    int shared = 0;
    for (int r = 0; r < ranks_per_node; r++) {
        kiln_placement p;
        plan_from(t, r, ranks_per_node, cores_per_rank, &p, set);
        char gpu[16];
        snprintf(gpu, sizeof gpu, p.gpu < 0 ? "-" : "%d", p.gpu);
        fprintf(f, "  %-10d %3d-%-4d %-12s %-6d %-5s %d\n", r, p.first_core,
                p.first_core + p.n_rank_cores - 1, p.cpuset, p.numa_node, gpu, p.n_rank_cores);
        shared |= p.shared;
    }
    if (shared)
        fprintf(f, "note: more ranks than cores; ranks share cores and run slower than with fewer ranks\n");
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(t);
    return KILN_OK;
}

kiln_status kiln_topo_place_rank(int bind, int cores_per_rank, int threads, kiln_rank_setup *out)
{
    int local_rank, local_size;
    kiln_local_rank(&local_rank, &local_size);
    const kiln_slurm_job *job = kiln_slurm();
    if (job->in_job) { /* where the job runs, first in every job kind's log */
        char where[1024];
        kiln_slurm_describe(job, where, sizeof where);
        kiln_log(local_rank == 0 ? KILN_LOG_INFO : KILN_LOG_DEBUG, "slurm: %s", where);
    }
    kiln_placement p;
    KILN_CHECK(kiln_topo_plan(local_rank, local_size, cores_per_rank, &p));
    char bound[128] = "not bound";
    if (bind) KILN_CHECK(kiln_topo_bind(&p, bound, sizeof bound));
    int planned = local_size > 1 || p.sized ? p.n_rank_cores : 0;
    out->threads = kiln_threads_set(threads > 0 ? threads : planned);
    out->cores = p.n_rank_cores;
    out->gpu = p.gpu;
    kiln_log(local_rank == 0 ? KILN_LOG_INFO : KILN_LOG_DEBUG,
             "placement: local rank %d/%d, cores %d-%d, NUMA %d, GPU %d, PUs %s, %d threads%s",
             local_rank, local_size, p.first_core, p.first_core + p.n_rank_cores - 1, p.numa_node,
             p.gpu, bound, out->threads, p.shared ? " (more ranks than cores: sharing)" : "");
    return KILN_OK;
}
