/* What Slurm tells a process about its job, read from the environment that sbatch and srun
 * set. kiln uses it for placement (local rank, tasks on this node, CPUs per task), for log
 * prefixes and run names (the job id survives a requeue, so a run named after it resumes),
 * and for lineage (which job produced a model). Outside Slurm every field says so
 * (in_job 0, ids -1). */
#ifndef KILN_SLURM_H
#define KILN_SLURM_H
#include <stddef.h>
#include "kiln/status.h"

typedef struct kiln_slurm_job {
    int in_job;            /* SLURM_JOB_ID is set */
    char job_id[32];       /* SLURM_JOB_ID (an array task has its own) */
    char array_job_id[32]; /* SLURM_ARRAY_JOB_ID, "" outside arrays */
    int array_task_id;     /* SLURM_ARRAY_TASK_ID, -1 outside arrays */
    int step_id;           /* SLURM_STEP_ID: -1 in the batch script itself (no step) */
    char job_name[128];    /* SLURM_JOB_NAME */
    char nodelist[512];    /* SLURM_JOB_NODELIST, compressed as Slurm prints it ("gpu[01-04]") */
    int num_nodes;         /* SLURM_JOB_NUM_NODES */
    int node_id;           /* SLURM_NODEID: this node's index among the step's nodes */
    int proc_id;           /* SLURM_PROCID: this task's global rank, -1 outside a step */
    int local_id;          /* SLURM_LOCALID: this task among the step's tasks on its node */
    int ntasks;            /* SLURM_NTASKS */
    int tasks_on_node;     /* the step's tasks on this node (SLURM_STEP_TASKS_PER_NODE, else
                            * SLURM_TASKS_PER_NODE, at node_id); 0 if unknown */
    int cpus_per_task;     /* SLURM_CPUS_PER_TASK; 0 when the job did not ask */
    int restart_count;     /* SLURM_RESTART_COUNT: how often the job was requeued */
} kiln_slurm_job;

/* The process's job, read from the environment on first use. */
const kiln_slurm_job *kiln_slurm(void);
/* Read the environment now into out (kiln_slurm() caches this; tests call it directly). */
void kiln_slurm_read(kiln_slurm_job *out);

/* Tasks on node `node` (0-based) of a Slurm tasks-per-node list such as "4(x2),3": 4 for
 * nodes 0-1, 3 for node 2; 0 if the list is malformed or shorter. */
int kiln_slurm_tasks_on_node(const char *spec, int node);

/* Expand sbatch's filename patterns in a run name or path: %j job id, %x job name, %A array
 * job id, %a array task id, %% a percent sign. Outside Slurm %j and %A become "local", %x
 * "kiln" and %a "0", so a config names the same run when it is rerun by hand. Any other %
 * sequence is an error naming `what` (e.g. the config key). */
kiln_status kiln_slurm_expand(const kiln_slurm_job *job, const char *what, const char *pattern,
                              char *out, size_t len);

/* Local rank and ranks per node from OMPI_COMM_WORLD_LOCAL_RANK/SIZE (mpirun) or, inside an
 * srun step, SLURM_LOCALID and the step's tasks on this node; 0 and 1 otherwise. */
void kiln_local_rank(int *local_rank, int *local_size);
/* One line for logs: "job 123 step 0 'train' on gpu[01-02] (2 nodes): task 0 of 8, local 0 of
 * 4 on node 0, 6 CPUs per task, restart 1"; "not in a Slurm job" outside. */
void kiln_slurm_describe(const kiln_slurm_job *job, char *buf, size_t len);

#endif
