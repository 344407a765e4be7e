/* kiln infer [CONFIG.yaml] --model PATH|URI --input IN.h5 --output OUT.h5 [--set k=v ...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "kiln/comm.h"
#include "kiln/infer.h"
#include "kiln/log.h"
#include "kiln/runtime.h"

static void infer_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln infer [CONFIG.yaml] --model PATH|registry:NAME@ALIAS|registry:NAME/VERSION\n"
            "                  --input IN.h5 --output OUT.h5 [--set key=value ...] [--help-config]\n\n"
            "Scores every row of a dataset of IN.h5 (infer.dataset; default x, or tokens for the\n"
            "GPT) with the model and writes OUT.h5:\n"
            "  classifier  probs [N,K], topk_index / topk_prob [N,k]\n"
            "  GPT         loss [N] (mean nats per predicted token), next_topk_index / next_topk_prob\n"
            "  either      embedding [N,E] from any model output (--set infer.embed=fc1)\n"
            "The ranks (mpiexec -n R) share the rows by chunks of infer.chunk_rows and write them\n"
            "collectively with parallel HDF5. Until it is complete the file is OUT.h5.partial,\n"
            "holding which chunks are done: rerunning the same command after a crash, kill or\n"
            "preemption computes only the rest. A finished OUT.h5 has complete = 1, the model's\n"
            "id and sha256, the input's crc32 and a crc32 attribute on every dataset.\n"
            "SIGTERM/SIGUSR1 stop after the current round with exit code %d.\n\n"
            "example:\n"
            "  mpiexec -n 4 kiln infer --model registry:fmnist@production --input data.h5 \\\n"
            "      --set infer.dataset=test/x --output scores.h5\n",
            KILN_EXIT_PREEMPTED);
}

int kiln_cmd_infer(int argc, char **argv)
{
    kiln_infer_opts o = {0};
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = !strcmp(a, "--model") || !strcmp(a, "--input") ||
                          !strcmp(a, "--output") || !strcmp(a, "--set");
        if (kiln_cli_is_help(a)) rc = (infer_usage(stdout), 0);
        else if (!strcmp(a, "--help-config")) rc = (kiln_config_print_help(&kiln_infer_schema, stdout), 0);
        else if (takes_value && !v) rc = (fprintf(stderr, "kiln infer: %s needs a value\n", a), 2);
        else if (!strcmp(a, "--model")) o.model = argv[++i];
        else if (!strcmp(a, "--input")) o.input = argv[++i];
        else if (!strcmp(a, "--output")) o.output = argv[++i];
        else if (!strcmp(a, "--set")) sets[o.n_overrides++] = argv[++i];
        else if (a[0] == '-') rc = (fprintf(stderr, "kiln infer: unknown option '%s' (see kiln infer --help)\n", a), 2);
        else if (!o.config_path) o.config_path = a;
        else rc = (fprintf(stderr, "kiln infer: more than one config given ('%s', '%s')\n", o.config_path, a), 2);
    }
    if (rc < 0 && (!o.model || !o.input || !o.output)) rc = (infer_usage(stderr), 2);
    if (rc >= 0) {
        free(sets);
        return rc;
    }
    o.overrides = sets;
    kiln_status st = kiln_comm_init(&argc, &argv, 1, &o.comm);
    if (st != KILN_OK) {
        free(sets);
        return kiln_cli_fail("infer", st);
    }
    kiln_log_init(kiln_comm_rank(o.comm, KILN_AXIS_WORLD));
    kiln_signals_install();
    st = kiln_infer_run(&o);
    free(sets);
    rc = st == KILN_OK ? 0 : kiln_cli_fail("infer", st);
    kiln_comm_finalize(o.comm);
    return rc;
}
