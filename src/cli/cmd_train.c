/* kiln train CONFIG [--set k=v ...] [--resume auto|never|FILE] [--help-config] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "kiln/comm.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "kiln/train.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln train CONFIG.yaml [--set key=value ...] [--resume auto|never|FILE]\n\n"
            "Trains the model the config describes and writes to train.out_dir:\n"
            "  metrics.jsonl   one JSON object per logged step and per evaluation\n"
            "  ckpt/           HDF5 checkpoints (step-N.h5), `latest`, the last train.keep kept\n"
            "  summary.json    final loss, eval loss/accuracy, throughput\n\n"
            "options:\n"
            "  --set key=value   override any config key, e.g. --set optim.lr=3e-4\n"
            "                    --set model.hidden=256,256 (repeatable; applied in order)\n"
            "  --resume auto     (default) continue from the newest valid checkpoint in\n"
            "                    train.out_dir/ckpt if there is one, else start fresh\n"
            "  --resume never    start fresh; refuse if train.out_dir already has checkpoints\n"
            "  --resume FILE     continue from that checkpoint file\n"
            "  --help-config     list every config key with its type, default and meaning\n\n"
            "SIGTERM or SIGUSR1 (Slurm preemption) checkpoints at the end of the current step and\n"
            "exits with code %d; rerunning the same command resumes.\n\n"
            "example:\n"
            "  kiln train configs/fmnist-mlp.yaml --set train.steps=200 --set optim.lr=2e-3\n",
            KILN_EXIT_PREEMPTED);
}

int kiln_cmd_train(int argc, char **argv)
{
    const char *config = NULL, *resume = "auto";
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (kiln_cli_is_help(a)) { train_usage(stdout); free(sets); return 0; }
        if (!strcmp(a, "--help-config")) {
            kiln_config_print_help(&kiln_train_schema, stdout);
            free(sets);
            return 0;
        }
        if ((!strcmp(a, "--set") || !strcmp(a, "--resume")) && i + 1 >= argc) {
            fprintf(stderr, "kiln train: %s needs a value\n", a);
            free(sets);
            return 2;
        }
        if (!strcmp(a, "--set")) sets[n_sets++] = argv[++i];
        else if (!strncmp(a, "--set=", 6)) sets[n_sets++] = a + 6;
        else if (!strcmp(a, "--resume")) resume = argv[++i];
        else if (a[0] == '-') {
            fprintf(stderr, "kiln train: unknown option '%s' (see kiln train --help)\n", a);
            free(sets);
            return 2;
        } else if (!config) config = a;
        else {
            fprintf(stderr, "kiln train: more than one config given ('%s', '%s')\n", config, a);
            free(sets);
            return 2;
        }
    }
    if (!config) {
        train_usage(stderr);
        free(sets);
        return 2;
    }
    kiln_comm *comm;
    kiln_status st = kiln_comm_init(&argc, &argv, 1, &comm);
    if (st != KILN_OK) {
        free(sets);
        return kiln_cli_fail("train", st);
    }
    kiln_log_init(kiln_comm_rank(comm, KILN_AXIS_WORLD));
    kiln_signals_install();
    kiln_train_opts opts = {config, sets, n_sets, resume, comm};
    st = kiln_train_run(&opts);
    free(sets);
    int rc = st == KILN_OK ? 0 : kiln_cli_fail("train", st);
    /* a rank that failed alone would leave the others blocked in a collective */
    if (rc != 0 && rc != KILN_EXIT_PREEMPTED) kiln_comm_abort(comm, rc);
    kiln_comm_finalize(comm);
    return rc;
}
