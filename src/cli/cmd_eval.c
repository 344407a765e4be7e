/* kiln eval --model PATH|URI --input DATA.h5 [--split S] [--output OUT.json] [--batch N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "kiln/comm.h"
#include "kiln/infer.h"
#include "kiln/log.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln eval --model PATH|registry:NAME@ALIAS|registry:NAME/VERSION\n"
            "                 --input DATA.h5 [--split SPLIT] [--output RESULT.json]\n"
            "                 [--batch N] [--threads N] [--backend cpu|cuda] [--registry DIR]\n\n"
            "Mean loss (per target) and top-1 accuracy of the model on a dataset split made by\n"
            "`kiln data import` (default split: test for classifiers, val for the GPT). Prints\n"
            "one line; --output also writes {model, resolved, version, sha256, input, split,\n"
            "loss, accuracy, targets} as JSON, e.g. to compare two registry versions:\n\n"
            "  kiln eval --model registry:fmnist@production --input data.h5 --output prod.json\n"
            "  kiln eval --model registry:fmnist@staging    --input data.h5 --output new.json\n\n"
            "Runs on any number of MPI ranks (each scores its slice of every batch).\n");
}

int kiln_cmd_eval(int argc, char **argv)
{
    kiln_eval_opts o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (kiln_cli_is_help(a)) return eval_usage(stdout), 0;
        if (!v || a[0] != '-') {
            fprintf(stderr, "kiln eval: %s '%s' (see kiln eval --help)\n",
                    a[0] == '-' ? "option needs a value:" : "unexpected argument", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--input")) o.input = v;
        else if (!strcmp(a, "--split")) o.split = v;
        else if (!strcmp(a, "--output")) o.output = v;
        else if (!strcmp(a, "--registry")) o.registry = v;
        else if (!strcmp(a, "--backend")) o.backend = v;
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else {
            fprintf(stderr, "kiln eval: unknown option '%s' (see kiln eval --help)\n", a);
            return 2;
        }
    }
    if (!o.model || !o.input) return eval_usage(stderr), 2;
    kiln_status st = kiln_comm_init(&argc, &argv, 1, &o.comm);
    if (st != KILN_OK) return kiln_cli_fail("eval", st);
    kiln_log_init(kiln_comm_rank(o.comm, KILN_AXIS_WORLD));
    st = kiln_eval_run(&o);
    int rc = st == KILN_OK ? 0 : kiln_cli_fail("eval", st);
    if (rc != 0) kiln_comm_abort(o.comm, rc);
    kiln_comm_finalize(o.comm);
    return rc;
}
