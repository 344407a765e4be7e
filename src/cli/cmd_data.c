/* kiln data import fashion-mnist DIR OUT.h5 | text FILE... OUT.h5 | csv FILE.csv OUT.h5:/table */
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
            "  kiln data import csv FILE.csv OUT.h5:/TABLE [--schema SCHEMA.yaml] [--types COL=TYPE,...]\n"
            "                       [--na TOKEN,TOKEN] [--skip-bad-rows]\n"
            "      a columnar table: one dataset per column under /TABLE (other objects of OUT.h5\n"
            "      are kept). TYPE: int64, float64, bool, timestamp (ISO 8601, or epoch seconds when\n"
            "      given; stored as int64 microseconds UTC), category (int32 codes, the strings in\n"
            "      /TABLE/.categories/COL). Types not given are inferred: the narrowest of int64,\n"
            "      float64, timestamp, bool every value fits, else category. NA (default: NA, the\n"
            "      empty field, null, NULL, N/A) becomes NaN, INT64_MIN, 255 or -1. A bad row (a\n"
            "      field too many or too few, a value not of its given type) is an error naming its\n"
            "      line and column, or with --skip-bad-rows left out and counted. SCHEMA.yaml:\n"
            "        columns: {time_hour: timestamp, flight: category}\n"
            "        na: [NA, \"\"]\n"
            "      example: kiln data import csv flights.csv data/flights.h5:/flights\n"
            "The output appears only when complete (written to OUT.h5.HOST.PID.tmp, then renamed).\n");
}

/* kiln data import csv FILE.csv OUT.h5:/TABLE [options] (argv[0] is FILE.csv) */
static int import_csv(int argc, char **argv)
{
    kiln_csv_options o = {0};
    for (int i = 2; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--schema") ? &o.schema
                            : !strcmp(argv[i], "--types") ? &o.types
                            : !strcmp(argv[i], "--na")    ? &o.na
                                                          : NULL;
        if (slot && i + 1 < argc) {
            *slot = argv[++i];
        } else if (!strcmp(argv[i], "--skip-bad-rows")) {
            o.skip_bad_rows = 1;
        } else {
            fprintf(stderr, "kiln data import csv: error: unknown or incomplete option '%s'\n", argv[i]);
            data_usage(stderr);
            return 2;
        }
    }
    kiln_csv_report r = {0};
    kiln_status st = kiln_import_csv(argv[0], argv[1], &o, &r);
    if (st != KILN_OK) return kiln_cli_fail("data import csv", st);
    printf("kiln data import csv: %llu rows x %d columns from %s in %.2f s", (unsigned long long)r.rows, r.columns,
           argv[0], r.seconds);
    if (r.bad_rows) printf(" (%llu bad rows left out)", (unsigned long long)r.bad_rows);
    printf("\n");
    for (int c = 0; c < r.columns; c++)
        printf("  %-24s %s\n", r.names[c], kiln_csv_type_name(r.types[c]));
    printf("wrote %s\n", argv[1]);
    kiln_csv_report_free(&r);
    return 0;
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
    } else if (!strcmp(kind, "csv") && argc >= 5) {
        return import_csv(argc - 3, argv + 3);
    } else {
        data_usage(stderr);
        return 2;
    }
    if (st != KILN_OK) return kiln_cli_fail("data import", st);
    printf("wrote %s\n", argv[argc - 1]);
    return 0;
}
