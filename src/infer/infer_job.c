/* `kiln infer` and `kiln eval` in the job table: their help, flags and checks. */
#include <stdio.h>
#include <string.h>
#include "kiln/runtime.h"
#include "infer_internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static const char infer_usage[] =
    "usage: kiln infer [CONFIG.yaml] --model MODEL --input IN.h5 --output OUT.h5\n"
    "                  [--set key=value ...] [--help-config]\n\n"
    "Scores every row of a dataset of IN.h5 (infer.dataset; default x, or tokens for the\n"
    "GPT) with the model and writes OUT.h5:\n"
    "  classifier  probs [N,K], topk_index / topk_prob [N,k]\n"
    "  GPT         loss [N] (mean nats per predicted token), next_topk_index / next_topk_prob\n"
    "  either      embedding [N,E] from any model output (--set infer.embed=fc1)\n"
    "MODEL is a checkpoint file, a run directory (its ckpt/latest), registry:NAME@ALIAS or\n"
    "registry:NAME/VERSION.\n"
    "The ranks (mpiexec -n R) share the rows by chunks of infer.chunk_rows and write them\n"
    "collectively with parallel HDF5. Until it is complete the file is OUT.h5.partial,\n"
    "holding which chunks are done: rerunning the same command after a crash, kill or\n"
    "preemption computes only the rest. A finished OUT.h5 has complete = 1, the model's\n"
    "id and sha256, the input's crc32 and a crc32 attribute on every dataset.\n"
    "Exit codes: 0 done, 1 failed, 2 bad input, " STR(KILN_EXIT_PREEMPTED) " stopped by SIGTERM/SIGUSR1\n"
    "after the current round (rerun to finish).\n\n"
    "example:\n"
    "  mpiexec -n 4 kiln infer --model registry:fmnist@production --input data.h5 \\\n"
    "      --set infer.dataset=test/x --output scores.h5\n";

static const kiln_job_flag infer_flags[] = {
    {"--model", NULL, NULL, 1},
    {"--input", NULL, NULL, 1},
    {"--output", NULL, NULL, 1},
};

static kiln_status infer_validate(void *config, kiln_job_resources *res)
{
    kiln_infer_config *c = config;
    if (c->infer.batch < 0 || c->infer.chunk_rows < 1)
        return KILN_ERROR(KILN_ERR_CONFIG, "infer.batch (%d) must be >= 0 and infer.chunk_rows "
                          "(%d) positive", c->infer.batch, c->infer.chunk_rows);
    *res = (kiln_job_resources){&c->placement, c->infer.threads, c->backend.name, "fp32", 0};
    return KILN_OK;
}

static kiln_status infer_run(kiln_job *j)
{
    kiln_infer_opts o = {kiln_job_config(j), kiln_job_config_yaml(j),
                         kiln_job_option(j, "--model"), kiln_job_option(j, "--input"),
                         kiln_job_option(j, "--output"), kiln_job_comm(j), kiln_job_backend(j),
                         *kiln_job_placement(j)};
    return kiln_infer_run(&o);
}

static const char *infer_held_output(kiln_job *j, const char **what)
{
    *what = "--output";
    return kiln_job_option(j, "--output");
}

const kiln_job_kind kiln_infer_job = {
    .name = "infer",
    .summary = "batch scoring on many ranks, resumable exactly once",
    .usage = infer_usage,
    .schema = &kiln_infer_schema,
    .config_size = sizeof(kiln_infer_config),
    .flags = infer_flags,
    .n_flags = sizeof infer_flags / sizeof infer_flags[0],
    .validate = infer_validate,
    .output = infer_held_output,
    .run = infer_run,
};

static const char eval_usage[] =
    "usage: kiln eval [CONFIG.yaml] --model MODEL --input DATA.h5 [--split SPLIT]\n"
    "                 [--output RESULT.json] [--batch N] [--threads N] [--backend cpu|cuda]\n"
    "                 [--registry DIR] [--set key=value ...] [--help-config]\n\n"
    "Mean loss (per target) and top-1 accuracy of the model on a dataset split made by\n"
    "`kiln data import` (default split: test for classifiers, val for the GPT). MODEL is a\n"
    "checkpoint file, a run directory (its ckpt/latest), registry:NAME@ALIAS or\n"
    "registry:NAME/VERSION. Prints one line; --output also writes {model, resolved, version,\n"
    "sha256, input, split, loss, accuracy, targets} as JSON, e.g. to compare two versions:\n\n"
    "  kiln eval --model registry:fmnist@production --input data.h5 --output prod.json\n"
    "  kiln eval --model registry:fmnist@staging    --input data.h5 --output new.json\n\n"
    "Every flag sets a config key (--model sets eval.model, --registry registry.path, ...;\n"
    "see --help-config), so the same evaluation can live in a YAML file.\n"
    "Runs on any number of MPI ranks (each scores its slice of every batch).\n";

static const kiln_job_flag eval_flags[] = {
    {"--model", "eval.model", NULL, 0},    {"--input", "eval.input", NULL, 0},
    {"--split", "eval.split", NULL, 0},    {"--output", "eval.output", NULL, 0},
    {"--batch", "eval.batch", NULL, 0},    {"--threads", "eval.threads", NULL, 0},
    {"--backend", "backend.name", NULL, 0}, {"--registry", "registry.path", NULL, 0},
};

static kiln_status eval_validate(void *config, kiln_job_resources *res)
{
    kiln_eval_config *c = config;
    if (!c->eval.model[0] || !c->eval.input[0])
        return KILN_ERROR(KILN_ERR_CONFIG, "eval.model and eval.input are required (--model "
                          "MODEL --input DATA.h5; see kiln eval --help)");
    if (c->eval.batch < 1)
        return KILN_ERROR(KILN_ERR_CONFIG, "eval.batch must be >= 1, found %d", c->eval.batch);
    *res = (kiln_job_resources){&c->placement, c->eval.threads, c->backend.name, "fp32", 0};
    return KILN_OK;
}

static const char *eval_output(kiln_job *j, const char **what)
{
    *what = "eval.output";
    return ((const kiln_eval_config *)kiln_job_config(j))->eval.output;
}

const kiln_job_kind kiln_eval_job = {
    .name = "eval",
    .summary = "loss and accuracy of a model on a dataset split",
    .usage = eval_usage,
    .schema = &kiln_eval_schema,
    .config_size = sizeof(kiln_eval_config),
    .flags = eval_flags,
    .n_flags = sizeof eval_flags / sizeof eval_flags[0],
    .validate = eval_validate,
    .output = eval_output,
    .run = kiln_eval_run,
};
