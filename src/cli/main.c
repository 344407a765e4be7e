/* kiln <command> [args]: dispatch to one file per subcommand. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "kiln/log.h"
#include "kiln/runtime.h"

static void usage(FILE *f)
{
    fprintf(f,
            "kiln %s: distributed training, inference and index builds on HPC clusters\n\n"
            "usage: kiln <command> [options]\n\n"
            "commands:\n"
            "  train CONFIG [--set key=value ...] [--resume auto|never|FILE]\n"
            "                      train a model (MLP or GPT) from a YAML config\n"
            "  data import fashion-mnist DIR OUT.h5\n"
            "  data import text FILE... OUT.h5\n"
            "                      turn raw data into kiln's HDF5 datasets\n"
            "  ckpt inspect FILE   summarise a checkpoint (tensors, counters, config)\n"
            "  ckpt verify FILE    check a checkpoint's checksums\n"
            "  infer --model PATH|URI --input IN.h5 --output OUT.h5 [--set key=value ...]\n"
            "                      batch scoring on many ranks, resumable exactly once\n"
            "  eval --model PATH|URI --input DATA.h5 [--split S] [--output R.json]\n"
            "                      loss and accuracy of a model on a dataset split\n"
            "  registry ls|show|register|alias|history|diff|verify|gc ...\n"
            "                      the model registry (versions, aliases, artifacts)\n"
            "  topo [--ranks-per-node N]\n"
            "                      the node's topology and the placement of N ranks\n"
            "  version             print the version\n\n"
            "Run `kiln <command> --help` for details. Logging: KILN_LOG=debug|info|warn|error.\n",
            KILN_VERSION);
}

int kiln_cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

int kiln_cli_fail(const char *cmd, kiln_status st)
{
    fprintf(stderr, "kiln %s: error: %s\n", cmd, kiln_error_message());
    if (kiln_log_enabled(KILN_LOG_DEBUG)) fprintf(stderr, "%s", kiln_error_traceback());
    if (st == KILN_ERR_INTERRUPTED) return KILN_EXIT_PREEMPTED;
    return st == KILN_ERR_CONFIG || st == KILN_ERR_ARG ? 2 : 1;
}

int main(int argc, char **argv)
{
    kiln_log_init(0);
    if (argc < 2 || kiln_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return kiln_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "data")) return kiln_cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "ckpt")) return kiln_cmd_ckpt(argc - 1, argv + 1);
    if (!strcmp(cmd, "topo")) return kiln_cmd_topo(argc - 1, argv + 1);
    if (!strcmp(cmd, "registry")) return kiln_cmd_registry(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return kiln_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "infer")) return kiln_cmd_infer(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kiln %s\n", KILN_VERSION);
        return 0;
    }
    fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
