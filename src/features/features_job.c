/* `kiln features` in the job table: the command build, a kind of its own on the job runtime
 * (MPI, placement, exit codes, the exclusive output). */
#include <stdio.h>
#include <string.h>
#include "kiln/runtime.h"
#include "features_internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static const char build_usage[] =
    "usage: kiln features build SPEC.yaml --output FEATURES.h5 [--set key=value ...] [--help-config]\n\n"
    "Builds a training set from event tables (imported by kiln data import csv): for every row of\n"
    "the spine table, its label and its features, each computed as of the row's time, so that\n"
    "nothing known only later leaks in. A feature is one line of SPEC.yaml's features:\n"
    "  AGG(TABLE.COLUMN) by KEY over DURATION [at TIME]   count sum mean min max std last over [t-W, t)\n"
    "  asof(TABLE.COLUMN) by KEY [within DURATION] [created COLUMN]   the latest row at or before t\n"
    "  lookup(TABLE.COLUMN) by KEY    hour() dow() day() month()    column(COLUMN)\n"
    "then transforms: | fill_mean | fill(V) | indicator | standardize | minmax | log1p | clip(LO,HI)\n"
    "| buckets(N) | codes(MIN) | hash(N), fitted on the rows before valid_from. FEATURES.h5 holds /train\n"
    "and /valid (x float32, y uint8, raw float64, row), the column names, the spec, the fitted\n"
    "transforms and per-feature statistics (quantiles, histograms); it appears whole or not at all.\n"
    "Under mpirun or srun the ranks share the build (rows by key hash) and write the same file.\n"
    "docs/features.md is the guide.\n"
    "Exit codes: 0 done, 1 failed, 2 bad input, " STR(KILN_EXIT_PREEMPTED) " stopped by a signal.\n\n"
    "example:\n"
    "  kiln data import csv data/nycflights13/flights.csv data/flights.h5:/flights\n"
    "  kiln data import csv data/nycflights13/weather.csv data/flights.h5:/weather\n"
    "  kiln features build configs/flights-features.yaml --output data/flights-features.h5\n";

static const char features_usage[] =
    "usage: kiln features build|apply|diff ...   (kiln features COMMAND --help for each)\n\n"
    "  build    a training set from event tables, correct in time, with fitted transforms\n"
    "  apply    the features of new rows, with a build's fitted transforms\n"
    "  diff     drift between two builds, per feature (PSI); exit 3 above a threshold\n\n"
    "docs/features.md is the guide.\n";

static kiln_status validate(void *config, kiln_job_resources *res)
{
    kiln_features_config *c = config;
    *res = (kiln_job_resources){&c->placement, c->features.threads, NULL, NULL, 0};
    if (!c->features.tables[0] || !c->features.table[0] || !c->features.time[0] || !c->features.label[0])
        return KILN_ERROR(KILN_ERR_CONFIG, "a feature spec names tables, spine.table, spine.time and spine.label "
                          "(kiln features build --help-config)");
    return KILN_OK;
}

static kiln_status build_run(kiln_job *j)
{
    return kiln_features_build(kiln_job_config(j), kiln_job_config_yaml(j), NULL, kiln_job_option(j, "--output"),
                               kiln_job_comm(j));
}

static kiln_status apply_run(kiln_job *j)
{
    return kiln_features_build(kiln_job_config(j), kiln_job_config_yaml(j), kiln_job_option(j, "--state"),
                               kiln_job_option(j, "--output"), kiln_job_comm(j));
}

static const char *held_output(kiln_job *j, const char **what)
{
    *what = "--output";
    return kiln_job_option(j, "--output");
}

static const kiln_job_flag build_flags[] = {{"--output", NULL, NULL, 1}};
static const kiln_job_flag apply_flags[] = {{"--state", NULL, NULL, 1}, {"--output", NULL, NULL, 1}};

static const kiln_job_kind build_job = {
    .name = "features build", .summary = "build a training set", .usage = build_usage,
    .schema = &kiln_features_schema, .config_size = sizeof(kiln_features_config), .config_positional = 1,
    .flags = build_flags, .n_flags = 1, .validate = validate, .output = held_output, .run = build_run,
    .command = "build"};

static const char apply_usage[] =
    "usage: kiln features apply SPEC.yaml --state BUILD.h5|registry:NAME@ALIAS --output ROWS.h5\n\n"
    "The features of new rows (SPEC's tables hold them), transformed with what BUILD's transforms\n"
    "learned from its training split, exactly as at training time: ROWS.h5 holds /rows/x float32,\n"
    "/rows/raw float64 and /rows/row for every spine row with a time (no label is needed). SPEC's\n"
    "features must be BUILD's, line for line.\n\n"
    "example:\n"
    "  kiln features apply configs/flights-features.yaml --set tables=data/tonight.h5 \\\n"
    "      --state registry:flights-features@production --output tonight-rows.h5\n";

static const kiln_job_kind apply_job = {
    .name = "features apply", .summary = "features of new rows with a build's transforms", .usage = apply_usage,
    .schema = &kiln_features_schema, .config_size = sizeof(kiln_features_config), .config_positional = 1,
    .flags = apply_flags, .n_flags = 2, .validate = validate, .output = held_output, .run = apply_run,
    .command = "apply"};

static const kiln_job_kind *const feature_commands[] = {&build_job, &apply_job};
static const kiln_job_tool feature_tools[] = {{"diff", kiln_features_diff_main}};

const kiln_job_kind kiln_features_job = {
    .name = "features",
    .summary = "training sets from event tables: build, apply, diff",
    .usage = features_usage,
    .commands = feature_commands,
    .n_commands = 2,
    .tools = feature_tools,
    .n_tools = 1,
};
