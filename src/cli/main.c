/* kiln <command> [args]: the job kinds (one table entry each, run by kiln_job_main) and the
 * tools that are not jobs (data import, checkpoints, the registry, topology), one file each. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "kiln/ann.h"
#include "kiln/features.h"
#include "kiln/infer.h"
#include "kiln/job.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "kiln/sweep.h"
#include "kiln/train.h"

/* Every job kind: `kiln NAME` runs it. A new kind is its folder under src/ and a row here. */
static const kiln_job_kind *const job_kinds[] = {&kiln_train_job, &kiln_infer_job, &kiln_eval_job,
                                                 &kiln_sweep_job, &kiln_index_job,
                                                 &kiln_features_job};
enum { N_JOB_KINDS = sizeof job_kinds / sizeof job_kinds[0] };

typedef struct tool {
    const char *name;
    const char *synopsis;       /* for `kiln --help` */
    int (*main)(int argc, char **argv);
} tool;

static const tool tools[] = {
    {"data", "data import fashion-mnist DIR OUT.h5 | data import text FILE... OUT.h5\n"
             "                      turn raw data into kiln's HDF5 datasets", kiln_cmd_data},
    {"ckpt", "ckpt inspect|verify FILE\n"
             "                      summarise a checkpoint, or check its checksums", kiln_cmd_ckpt},
    {"registry", "registry ls|show|register|alias|history|diff|verify|gc ...\n"
                 "                      the model registry (versions, aliases, artifacts)",
     kiln_cmd_registry},
    {"topo", "topo [--ranks-per-node N]\n"
             "                      the node's topology and the placement of N ranks", kiln_cmd_topo},
};
enum { N_TOOLS = sizeof tools / sizeof tools[0] };

static void usage(FILE *f)
{
    fprintf(f, "kiln %s: distributed training, inference and index builds on HPC clusters\n\n"
               "usage: kiln <command> [options]\n\njobs (kiln JOB --help, --help-config):\n",
            KILN_VERSION);
    for (int i = 0; i < N_JOB_KINDS; i++)
        fprintf(f, "  %-18s  %s\n", job_kinds[i]->name, job_kinds[i]->summary);
    fprintf(f, "\ntools:\n");
    for (int i = 0; i < N_TOOLS; i++) fprintf(f, "  %s\n", tools[i].synopsis);
    fprintf(f, "  version             print the version\n\n"
               "Jobs exit 0 when done, 1 on failure, 2 on bad input or usage, %d when stopped by\n"
               "SIGTERM/SIGUSR1 at a safe point (rerun the same command to resume).\n"
               "Logging: KILN_LOG=debug|info|warn|error.\n",
            KILN_EXIT_PREEMPTED);
}

int kiln_cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

int kiln_cli_fail(const char *cmd, kiln_status st)
{
    fprintf(stderr, "kiln %s: error: %s\n", cmd, kiln_error_message());
    if (kiln_log_enabled(KILN_LOG_DEBUG)) fprintf(stderr, "%s", kiln_error_traceback());
    return kiln_job_exit_code(st);
}

int main(int argc, char **argv)
{
    kiln_log_init(0);
    if (argc < 2 || kiln_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KILN_EXIT_BAD_INPUT : 0;
    }
    const char *cmd = argv[1];
    for (int i = 0; i < N_JOB_KINDS; i++)
        if (!strcmp(cmd, job_kinds[i]->name)) return kiln_job_main(job_kinds[i], argc - 1, argv + 1);
    for (int i = 0; i < N_TOOLS; i++)
        if (!strcmp(cmd, tools[i].name)) return tools[i].main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kiln %s\n", KILN_VERSION);
        return 0;
    }
    fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return KILN_EXIT_BAD_INPUT;
}
