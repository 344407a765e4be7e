/* kiln data import fashion-mnist DIR OUT.h5 | kiln data import text FILE... OUT.h5 */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "kiln/data.h"

static void data_usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  kiln data import fashion-mnist DIR OUT.h5\n"
            "      DIR holds the idx files (plain or .gz), e.g. /usr/share/datasets/fashion-mnist\n"
            "      from Debian's dataset-fashion-mnist. Writes /train/x uint8 [60000,784],\n"
            "      /train/y, /test/x [10000,784], /test/y.\n"
            "  kiln data import text FILE... OUT.h5\n"
            "      concatenates the files' bytes in the given order; the last 10%% become\n"
            "      /val/tokens, the rest /train/tokens (uint8, vocabulary 256).\n"
            "The output appears only when complete (written to OUT.h5.HOST.PID.tmp, then renamed).\n");
}

int kiln_cmd_data(int argc, char **argv)
{
    if (argc >= 2 && kiln_cli_is_help(argv[1])) { data_usage(stdout); return 0; }
    if (argc < 3 || strcmp(argv[1], "import")) { data_usage(stderr); return 2; }
    const char *kind = argv[2];
    kiln_status st;
    if (!strcmp(kind, "fashion-mnist") && argc == 5) {
        st = kiln_import_fashion_mnist(argv[3], argv[4]);
    } else if (!strcmp(kind, "text") && argc >= 5) {
        st = kiln_import_text((const char *const *)argv + 3, argc - 4, 0.1, argv[argc - 1]);
    } else {
        data_usage(stderr);
        return 2;
    }
    if (st != KILN_OK) return kiln_cli_fail("data import", st);
    printf("wrote %s\n", argv[argc - 1]);
    return 0;
}
