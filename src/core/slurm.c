/* The Slurm job this process runs in, from the environment (see include/kiln/slurm.h). */
#include "kiln/slurm.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int env_int(const char *name, int fallback)
{
    const char *s = getenv(name);
    if (!s || !*s) return fallback;
    char *end;
    long v = strtol(s, &end, 10);
    return end == s ? fallback : (int)v;
}

static void env_str(const char *name, char *out, size_t len)
{
    const char *s = getenv(name);
    snprintf(out, len, "%s", s ? s : "");
}

int kiln_slurm_tasks_on_node(const char *spec, int node)
{
    if (!spec || node < 0) return 0;
    const char *p = spec;
    while (*p) {
        char *end;
        long tasks = strtol(p, &end, 10);
        if (end == p || tasks < 0) return 0;
        long repeat = 1;
        if (!strncmp(end, "(x", 2)) {
            repeat = strtol(end + 2, &end, 10);
            if (*end != ')' || repeat < 1) return 0;
            end++;
        }
        if (node < repeat) return (int)tasks;
        node -= (int)repeat;
        if (*end == ',') end++;
        else if (*end) return 0;
        p = end;
    }
    return 0;
}

void kiln_slurm_read(kiln_slurm_job *j)
{
    memset(j, 0, sizeof *j);
    env_str("SLURM_JOB_ID", j->job_id, sizeof j->job_id);
    j->in_job = j->job_id[0] != '\0';
    env_str("SLURM_ARRAY_JOB_ID", j->array_job_id, sizeof j->array_job_id);
    j->array_task_id = env_int("SLURM_ARRAY_TASK_ID", -1);
    j->step_id = env_int("SLURM_STEP_ID", -1);
    env_str("SLURM_JOB_NAME", j->job_name, sizeof j->job_name);
    env_str("SLURM_JOB_NODELIST", j->nodelist, sizeof j->nodelist);
    j->num_nodes = env_int("SLURM_JOB_NUM_NODES", j->in_job ? 1 : 0);
    j->node_id = env_int("SLURM_NODEID", 0);
    j->proc_id = env_int("SLURM_PROCID", -1);
    j->local_id = env_int("SLURM_LOCALID", 0);
    j->ntasks = env_int("SLURM_NTASKS", j->in_job ? 1 : 0);
    /* the step's layout, when in a step, is what the ranks really have; the job's is the
     * allocation, which a step may use only part of */
    const char *per_node = getenv("SLURM_STEP_TASKS_PER_NODE");
    if (!per_node || !*per_node) per_node = getenv("SLURM_TASKS_PER_NODE");
    j->tasks_on_node = kiln_slurm_tasks_on_node(per_node, j->node_id);
    j->cpus_per_task = env_int("SLURM_CPUS_PER_TASK", 0);
    j->restart_count = env_int("SLURM_RESTART_COUNT", 0);
}

static kiln_slurm_job cached;
static pthread_once_t cached_once = PTHREAD_ONCE_INIT;
static void read_cached(void) { kiln_slurm_read(&cached); }

const kiln_slurm_job *kiln_slurm(void)
{
    pthread_once(&cached_once, read_cached);
    return &cached;
}

/* The text one pattern letter stands for. */
static kiln_status pattern_value(const kiln_slurm_job *j, char letter, const char *what,
                                 const char *pattern, char *buf, size_t len)
{
    switch (letter) {
    case 'j': snprintf(buf, len, "%s", j->in_job ? j->job_id : "local"); break;
    case 'x': snprintf(buf, len, "%s", j->in_job && j->job_name[0] ? j->job_name : "kiln"); break;
    case 'A':
        snprintf(buf, len, "%s", j->array_job_id[0] ? j->array_job_id : j->in_job ? j->job_id : "local");
        break;
    case 'a': snprintf(buf, len, "%d", j->array_task_id >= 0 ? j->array_task_id : 0); break;
    case '%': snprintf(buf, len, "%%"); break;
    default:
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "%s: '%s' has an unknown pattern '%%%c'; expected %%j (job id), %%x "
                          "(job name), %%A (array job id), %%a (array task id) or %%%%",
                          what, pattern, letter ? letter : ' ');
    }
    return KILN_OK;
}

kiln_status kiln_slurm_expand(const kiln_slurm_job *j, const char *what, const char *pattern,
                              char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = pattern; *p; p++) {
        char piece[160] = {p[0], '\0'};
        /* a trailing '%' reads the terminator as its letter and is rejected, never passed */
        if (*p == '%') KILN_CHECK(pattern_value(j, *++p, what, pattern, piece, sizeof piece));
        size_t k = strlen(piece);
        if (n + k >= len)
            return KILN_ERROR(KILN_ERR_CONFIG, "%s: '%s' is too long once expanded", what, pattern);
        memcpy(out + n, piece, k);
        n += k;
    }
    out[n] = '\0';
    return KILN_OK;
}

void kiln_slurm_describe(const kiln_slurm_job *j, char *buf, size_t len)
{
    if (!j->in_job) {
        snprintf(buf, len, "not in a Slurm job");
        return;
    }
    char step[24] = "batch script";
    if (j->step_id >= 0) snprintf(step, sizeof step, "step %d", j->step_id);
    char cpus[32] = "";
    if (j->cpus_per_task > 0)
        snprintf(cpus, sizeof cpus, ", %d CPU%s per task", j->cpus_per_task,
                 j->cpus_per_task == 1 ? "" : "s");
    snprintf(buf, len,
             "job %s %s '%s' on %s (%d node%s): task %d of %d, local %d of %d on node %d%s, "
             "restart %d",
             j->job_id, step, j->job_name, j->nodelist, j->num_nodes, j->num_nodes == 1 ? "" : "s",
             j->proc_id, j->ntasks, j->local_id, j->tasks_on_node, j->node_id, cpus,
             j->restart_count);
}

void kiln_local_rank(int *local_rank, int *local_size)
{
    /* inside an srun step Slurm knows the layout; the batch script itself (no step) and a
     * process outside Slurm are one rank alone unless mpirun says otherwise */
    const kiln_slurm_job *job = kiln_slurm();
    int in_step = job->in_job && job->step_id >= 0 && job->tasks_on_node > 0;
    *local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", in_step ? job->local_id : 0);
    *local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", in_step ? job->tasks_on_node : 1);
    if (*local_size < 1) *local_size = 1;
    if (*local_rank < 0 || *local_rank >= *local_size) *local_rank = 0;
}
