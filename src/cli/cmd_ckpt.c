/* kiln ckpt inspect FILE [--config] | kiln ckpt verify FILE */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "kiln/ckpt.h"
#include "kiln/registry.h"

static void ckpt_usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  kiln ckpt inspect FILE [--config]   counters, every tensor's shape, norm and\n"
            "                                      checksum status (--config: the run's config)\n"
            "  kiln ckpt verify FILE               exit 0 if every checksum matches\n"
            "FILE may also be registry:NAME@ALIAS or registry:NAME/VERSION ($KILN_REGISTRY).\n");
}

int kiln_cmd_ckpt(int argc, char **argv)
{
    if (argc >= 2 && kiln_cli_is_help(argv[1])) { ckpt_usage(stdout); return 0; }
    if (argc < 3) { ckpt_usage(stderr); return 2; }
    char path[4096]; /* FILE may be a registry URI */
    kiln_status st = kiln_registry_locate(kiln_registry_root(NULL), argv[2], path, sizeof path, NULL);
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
