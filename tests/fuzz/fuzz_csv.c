/* Fuzz target: `kiln data import csv` (src/io/import_csv.c). A CSV file is outside input of
 * any shape: the input's bytes are the file, imported twice (types inferred; then every column
 * given a type by --types-like options, with bad rows skipped), into a fresh HDF5 file. Any
 * input must end in a table or in an error, never a crash, a hang or a leak. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "kiln/data.h"

static char csv[256], out[256], target[300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(csv, sizeof csv, "/tmp/fuzz_csv.%d.csv", (int)getpid());
    snprintf(out, sizeof out, "/tmp/fuzz_csv.%d.h5", (int)getpid());
    snprintf(target, sizeof target, "%s:/t", out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(csv, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    kiln_csv_report r = {0};
    kiln_csv_options inferred = {0};
    if (kiln_import_csv(csv, target, &inferred, &r) == KILN_OK) kiln_csv_report_free(&r);
    kiln_error_clear();
    /* the first two columns given types (the header decides their names: a, b are common) */
    static const char *const given[] = {"a=int64,b=timestamp", "a=bool,b=float64", "a=category"};
    kiln_csv_options typed = {.types = given[size % 3], .na = "NA,", .skip_bad_rows = 1};
    if (kiln_import_csv(csv, target, &typed, &r) == KILN_OK) kiln_csv_report_free(&r);
    kiln_error_clear();
    unlink(out);
    return 0;
}
