/* Fuzz target: a sweep journal (src/sweep/journal.c, state.c, asha.c). Every worker of a sweep
 * trusts the journal.jsonl it replays, which any worker (or a torn write, or an editor) may have
 * left in any state. The input's lines are applied to a sweep's state as a worker replays them,
 * then ASHA decides for a few workers (promotions, resumptions of lost leases, new trials drawn
 * by TPE from whatever results were read), each decision applied as it would be appended. Lines
 * that do not make sense must be skipped, never crash or loop. */
#include <stdlib.h>
#include <string.h>
#include "../../src/sweep/sweep_internal.h"

static sweep_plan plan;

static kiln_status apply_event(void *ctx, const char *event)
{
    kiln_sweep_state_apply(ctx, event);
    return KILN_OK;
}

static int alive(const char *worker) { return worker && worker[0] == 'a'; }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static sweep_dim dims[2] = {{"x", DIST_UNIFORM, -5.0, 10.0, NULL, 0}, {"y", DIST_LOGUNIFORM, 1e-4, 1.0, NULL, 0}};
    plan.dims = dims;
    plan.n_dims = 2;
    plan.sampler = SAMPLER_TPE;
    plan.cfg.sweep.tpe_startup = 3;
    plan.cfg.sweep.eta = 3;
    plan.cfg.sweep.r_min = 1;
    plan.cfg.sweep.max_retries = 2;
    plan.cfg.sweep.seed = 1;
    plan.trial_budget = 40;
    static int64_t rungs[3] = {1, 3, 9};
    plan.rungs = rungs;
    plan.n_rungs = 3;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sweep_state s;
    kiln_sweep_state_init(&s, &plan);
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        kiln_sweep_state_apply(&s, line);
    free(text);
    int rung;
    double value;
    (void)kiln_sweep_state_best(&s, &rung, &value);
    const char *workers[] = {"a0", "b1", "a2"};
    for (int i = 0; i < 6; i++) {
        sweep_job job;
        if (kiln_sweep_decide(&s, workers[i % 3], 1000.0 + i, 60.0, alive, apply_event, &s, &job) != KILN_OK) break;
    }
    kiln_error_clear();
    kiln_sweep_state_free(&s);
    return 0;
}
