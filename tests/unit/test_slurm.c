/* Slurm's environment as kiln reads it: the tasks-per-node lists, the job fields, the run-name
 * patterns (and their rejections), and the local rank and size placement takes from a step.
 * The environments are the ones sbatch and srun set (values as Slurm 22.05 prints them). */
#include <stdlib.h>
#include "check.h"
#include "kiln/slurm.h"
#include "kiln/topo.h"

static const char *slurm_vars[] = {
    "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_STEP_ID", "SLURM_JOB_NAME",
    "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_NODEID", "SLURM_PROCID", "SLURM_LOCALID",
    "SLURM_NTASKS", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_CPUS_PER_TASK",
    "SLURM_RESTART_COUNT", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof slurm_vars / sizeof slurm_vars[0]; i++) unsetenv(slurm_vars[i]);
}

static void test_tasks_per_node(void)
{
    CHECK(kiln_slurm_tasks_on_node("4", 0) == 4, "single count");
    CHECK(kiln_slurm_tasks_on_node("4", 1) == 0, "past the list");
    CHECK(kiln_slurm_tasks_on_node("4(x2),3", 0) == 4, "repeat, first node");
    CHECK(kiln_slurm_tasks_on_node("4(x2),3", 1) == 4, "repeat, second node");
    CHECK(kiln_slurm_tasks_on_node("4(x2),3", 2) == 3, "after the repeat");
    CHECK(kiln_slurm_tasks_on_node("4(x2),3", 3) == 0, "past the repeat");
    CHECK(kiln_slurm_tasks_on_node("2,1(x3),5", 4) == 5, "mixed");
    CHECK(kiln_slurm_tasks_on_node("2,1(x3),5", 3) == 1, "inside the middle repeat");
    CHECK(kiln_slurm_tasks_on_node("x", 0) == 0, "malformed");
    CHECK(kiln_slurm_tasks_on_node("4(x", 0) == 0, "unterminated repeat");
    CHECK(kiln_slurm_tasks_on_node(NULL, 0) == 0, "unset");
}

/* A task of an srun step: job 4711 ("train"), 2 nodes x 2 tasks, this one node 1 local 1. */
static void set_step_env(void)
{
    clear_env();
    setenv("SLURM_JOB_ID", "4711", 1);
    setenv("SLURM_STEP_ID", "0", 1);
    setenv("SLURM_JOB_NAME", "train", 1);
    setenv("SLURM_JOB_NODELIST", "gpu[01-02]", 1);
    setenv("SLURM_JOB_NUM_NODES", "2", 1);
    setenv("SLURM_NODEID", "1", 1);
    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_LOCALID", "1", 1);
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_TASKS_PER_NODE", "4(x2)", 1); /* the allocation; the step uses less */
    setenv("SLURM_STEP_TASKS_PER_NODE", "2(x2)", 1);
    setenv("SLURM_CPUS_PER_TASK", "6", 1);
    setenv("SLURM_RESTART_COUNT", "2", 1);
}

static void test_read(void)
{
    kiln_slurm_job j;
    clear_env();
    kiln_slurm_read(&j);
    CHECK(!j.in_job && j.step_id == -1 && j.proc_id == -1 && j.cpus_per_task == 0,
          "outside Slurm: in_job %d step %d proc %d cpus %d", j.in_job, j.step_id, j.proc_id,
          j.cpus_per_task);
    char line[256];
    kiln_slurm_describe(&j, line, sizeof line);
    CHECK(!strcmp(line, "not in a Slurm job"), "%s", line);

    set_step_env();
    kiln_slurm_read(&j);
    CHECK(j.in_job && !strcmp(j.job_id, "4711") && j.step_id == 0, "job %s step %d", j.job_id, j.step_id);
    CHECK(j.node_id == 1 && j.local_id == 1 && j.proc_id == 3 && j.ntasks == 4, "ids");
    CHECK(j.tasks_on_node == 2, "the step's layout wins over the job's: %d", j.tasks_on_node);
    CHECK(j.cpus_per_task == 6 && j.restart_count == 2 && j.num_nodes == 2, "counts");
    kiln_slurm_describe(&j, line, sizeof line);
    const char *want = "job 4711 step 0 'train' on gpu[01-02] (2 nodes): task 3 of 4, local 1 of 2 "
                       "on node 1, 6 CPUs per task, restart 2";
    CHECK(!strcmp(line, want), "describe:\n  %s\n  %s", line, want);

    unsetenv("SLURM_STEP_TASKS_PER_NODE");
    unsetenv("SLURM_STEP_ID");
    kiln_slurm_read(&j);
    CHECK(j.tasks_on_node == 4 && j.step_id == -1, "batch script: job layout %d, step %d",
          j.tasks_on_node, j.step_id);
}

static void test_expand(void)
{
    kiln_slurm_job j;
    char out[64];
    set_step_env();
    kiln_slurm_read(&j);
    CHECK_OK(kiln_slurm_expand(&j, "train.out_dir", "runs/%x-%j", out, sizeof out));
    CHECK(!strcmp(out, "runs/train-4711"), "%s", out);
    CHECK_OK(kiln_slurm_expand(&j, "train.out_dir", "100%%/%A_%a", out, sizeof out));
    CHECK(!strcmp(out, "100%/4711_0"), "not an array: %s", out);
    setenv("SLURM_ARRAY_JOB_ID", "4700", 1);
    setenv("SLURM_ARRAY_TASK_ID", "11", 1);
    kiln_slurm_read(&j);
    CHECK_OK(kiln_slurm_expand(&j, "train.out_dir", "runs/%A_%a", out, sizeof out));
    CHECK(!strcmp(out, "runs/4700_11"), "array: %s", out);
    CHECK_OK(kiln_slurm_expand(&j, "train.out_dir", "plain/dir", out, sizeof out));
    CHECK(!strcmp(out, "plain/dir"), "%s", out);

    CHECK_FAILS(kiln_slurm_expand(&j, "train.out_dir", "runs/%q", out, sizeof out), KILN_ERR_CONFIG,
                "train.out_dir: 'runs/%q' has an unknown pattern '%q'");
    CHECK_FAILS(kiln_slurm_expand(&j, "train.out_dir", "runs/%", out, sizeof out), KILN_ERR_CONFIG,
                "unknown pattern");
    CHECK_FAILS(kiln_slurm_expand(&j, "train.out_dir", "a-very-long-run-directory-name/%x-%j-%x-%j-%x",
                                  out, 40), KILN_ERR_CONFIG, "too long once expanded");

    clear_env();
    kiln_slurm_read(&j);
    CHECK_OK(kiln_slurm_expand(&j, "train.out_dir", "runs/%x-%j-%A-%a", out, sizeof out));
    CHECK(!strcmp(out, "runs/kiln-local-local-0"), "outside Slurm: %s", out);
}

/* Placement reads the process's job once (cached), so this runs with the step's environment set
 * before anything else asks. */
static void test_local_rank(void)
{
    set_step_env();
    int rank, size;
    kiln_local_rank(&rank, &size);
    CHECK(rank == 1 && size == 2, "srun step: local rank %d of %d, expected 1 of 2", rank, size);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3", 1);
    kiln_local_rank(&rank, &size);
    CHECK(rank == 0 && size == 3, "mpirun's layout wins: %d of %d", rank, size);
    kiln_placement p;
    CHECK_OK(kiln_topo_plan(0, 1, 0, &p));
    int per_core = p.n_pus / p.n_cores > 0 ? p.n_pus / p.n_cores : 1;
    int want = (6 + per_core - 1) / per_core;
    CHECK(p.sized && p.n_rank_cores == want,
          "--cpus-per-task=6 sizes the share: %d cores (sized %d), expected %d", p.n_rank_cores,
          p.sized, want);
    CHECK_OK(kiln_topo_plan(0, 1, 1, &p));
    CHECK(p.sized && p.n_rank_cores == 1, "placement.cores_per_rank wins: %d", p.n_rank_cores);
}

int main(void)
{
    test_local_rank(); /* first: it fixes the cached environment */
    test_tasks_per_node();
    test_read();
    test_expand();
    TEST_MAIN_END();
}
