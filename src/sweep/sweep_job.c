/* `kiln sweep` in the job table: a worker of the sweep its config describes (an MPI job of R
 * ranks is R / sweep.ranks_per_trial workers), and the tools `status`, `report` and `simulate`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "sweep_internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static const char sweep_usage[] =
    "usage: kiln sweep CONFIG.yaml [--set key=value ...]     join (or start) the sweep\n"
    "       kiln sweep status DIR [--json]                    trials, rungs, the best so far\n"
    "       kiln sweep report DIR --out report.html           one page with plots\n\n"
    "A sweep is a training config plus a `sweep:` section: the search space (any training key:\n"
    "uniform(lo, hi), loguniform(lo, hi), int(lo, hi), choice(a, b, ...)), the objective\n"
    "(sweep.metric, sweep.mode), the sampler (random, grid, tpe), the scheduler (ASHA: rungs at\n"
    "sweep.r_min * sweep.eta^k steps up to sweep.r_max, the top 1/eta of each going on from its\n"
    "checkpoint; or none) and a budget (sweep.trials, sweep.total_steps, sweep.wall_time).\n\n"
    "Every process that runs this command with the same config joins the same sweep directory\n"
    "(sweep.dir): run it on many ranks (mpiexec -n 8 ... with sweep.ranks_per_trial=2 is four\n"
    "workers), as a Slurm array (sbatch --array=0-63 jobs/sweep.sbatch CONFIG), or again later:\n"
    "the journal in the directory holds every decision, so workers may join and leave at any\n"
    "time, a trial whose worker dies is resumed by another from its checkpoint, and rerunning\n"
    "the command resumes the sweep. The best trial is registered when registry.name is set.\n\n"
    "Exit codes: 0 the sweep is complete, 1 failed (every trial failed, or a worker's error),\n"
    "2 bad input, " STR(KILN_EXIT_PREEMPTED) " stopped by a signal (the trial was checkpointed and given back).\n\n"
    "example:\n"
    "  kiln sweep configs/fmnist-sweep.yaml --set sweep.trials=27\n"
    "  kiln sweep status sweeps/fmnist\n";

static kiln_status validate(void *config, kiln_job_resources *res)
{
    kiln_sweep_config *c = config;
    KILN_CHECK(kiln_train_validate(&c->train, res));
    sweep_plan plan;
    kiln_status st = kiln_sweep_plan_init(c, &plan);
    if (st == KILN_OK) st = kiln_sweep_warm_start_load(&plan);
    kiln_sweep_plan_free(&plan);
    return st;
}

static kiln_status run(kiln_job *j)
{
    sweep_plan plan;
    KILN_CHECK(kiln_sweep_plan_init(kiln_job_config(j), &plan));
    kiln_status st = kiln_sweep_warm_start_load(&plan);
    if (st != KILN_OK) {
        kiln_sweep_plan_free(&plan);
        return st;
    }
    kiln_comm *world = kiln_job_comm(j), *group = NULL;
    int rank = kiln_comm_rank(world, KILN_AXIS_WORLD), size = kiln_comm_size(world, KILN_AXIS_WORLD);
    int per = plan.cfg.sweep.ranks_per_trial;
    if (size % per)
        st = KILN_ERROR(KILN_ERR_CONFIG, "sweep.ranks_per_trial (%d) must divide the number of ranks "
                        "(%d)", per, size);
    if (st == KILN_OK) st = kiln_comm_split(world, rank / per, rank, &group);
    if (st == KILN_OK) st = kiln_comm_attach_device(group, kiln_job_backend(j));
    if (st == KILN_OK) {
        if (kiln_job_is_writer(j))
            kiln_info("sweep %s: %d worker%s of %d rank%s, %d rungs (%lld to %lld steps), sampler %s",
                      plan.dir, size / per, size / per == 1 ? "" : "s", per, per == 1 ? "" : "s",
                      plan.n_rungs, (long long)plan.rungs[0], (long long)plan.rungs[plan.n_rungs - 1],
                      plan.cfg.sweep.sampler);
        sweep_worker_opts o = {&plan, group, rank / per, kiln_job_backend(j), *kiln_job_placement(j)};
        st = kiln_sweep_worker_run(&o);
    }
    /* every group ends the same way: a group's failure is every worker's */
    st = kiln_job_agree(j, st);
    if (group) kiln_comm_finalize(group);
    kiln_sweep_plan_free(&plan);
    return st;
}

static int fail(const char *tool, kiln_status st)
{
    fprintf(stderr, "kiln sweep %s: error: %s\n", tool, kiln_error_message());
    return kiln_job_exit_code(st);
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

static int status_main(int argc, char **argv)
{
    int as_json = argc == 3 && !strcmp(argv[2], "--json");
    if ((argc != 2 && !as_json) || is_help(argv[1])) {
        fprintf(argc == 2 ? stdout : stderr, "usage: kiln sweep status DIR [--json]\n"
                "Every trial (its values, the rung it reached, its objective at each rung, its state)\n"
                "and the best so far, from the sweep's journal (safe while workers run). --json: the\n"
                "same as one JSON document, values at full precision.\n");
        return argc == 2 ? 0 : KILN_EXIT_BAD_INPUT;
    }
    kiln_status st = kiln_sweep_print_status(argv[1], as_json, stdout);
    return st == KILN_OK ? 0 : fail("status", st);
}

static int report_main(int argc, char **argv)
{
    if (argc == 2 && is_help(argv[1])) {
        printf("usage: kiln sweep report DIR --out report.html\n"
               "One self-contained HTML page: learning curves of every trial (promotions visible),\n"
               "the best so far against wall time and against compute, each searched value against\n"
               "the objective, and the table of trials.\n");
        return 0;
    }
    if (argc != 4 || strcmp(argv[2], "--out")) {
        fprintf(stderr, "usage: kiln sweep report DIR --out report.html\n");
        return KILN_EXIT_BAD_INPUT;
    }
    kiln_status st = kiln_sweep_write_report(argv[1], argv[3]);
    if (st != KILN_OK) return fail("report", st);
    printf("wrote %s\n", argv[3]);
    return 0;
}

static const kiln_job_tool sweep_tools[] = {
    {"status", status_main},
    {"report", report_main},
    {"simulate", kiln_sweep_simulate_main},
};

const kiln_job_kind kiln_sweep_job = {
    .name = "sweep",
    .summary = "hyperparameter sweeps with ASHA; status, report",
    .usage = sweep_usage,
    .schema = &kiln_sweep_schema,
    .config_size = sizeof(kiln_sweep_config),
    .config_positional = 1,
    .validate = validate,
    .run = run,
    .tools = sweep_tools,
    .n_tools = sizeof sweep_tools / sizeof sweep_tools[0],
};
