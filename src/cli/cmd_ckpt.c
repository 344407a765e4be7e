/* kiln ckpt inspect FILE [--config] | kiln ckpt verify FILE */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "kiln/ckpt.h"
#include <limits.h>
#include "kiln/model_open.h"
#include "kiln/registry.h"

static void ckpt_usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  kiln ckpt inspect FILE [--config]   counters, every tensor's shape, norm and\n"
            "                                      checksum status (--config: the run's config)\n"
            "  kiln ckpt verify FILE               exit 0 if every checksum matches\n"
            "FILE may also be a run directory (its ckpt/latest), a checkpoint directory, a\n"
            "`latest` file, registry:NAME@ALIAS or registry:NAME/VERSION ($KILN_REGISTRY).\n");
}

int kiln_cmd_ckpt(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (kiln_cli_is_help(argv[i])) { ckpt_usage(stdout); return 0; }
    if (argc < 3) { ckpt_usage(stderr); return 2; }
    char path[PATH_MAX]; /* FILE may be a registry URI, a run directory or a `latest` */
    kiln_status st = kiln_model_locate(kiln_registry_root(NULL), argv[2], path, sizeof path, NULL);
    if (st != KILN_OK) return kiln_cli_fail("ckpt", st);
    if (!strcmp(argv[1], "inspect")) {
        int show_config = argc > 3 && !strcmp(argv[3], "--config");
        st = kiln_ckpt_inspect(path, show_config);
    } else if (!strcmp(argv[1], "verify")) {
        st = kiln_ckpt_verify(path);
        if (st == KILN_OK) printf("%s: ok\n", path);
    } else {
        ckpt_usage(stderr);
        return 2;
    }
    return st == KILN_OK ? 0 : kiln_cli_fail("ckpt", st);
}
