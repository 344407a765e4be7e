/* A sweep as its directory records it: the plan of the config its start event holds (not the
 * config of whoever reads it) and the state its journal replays to. What `kiln sweep status`,
 * the report and a warm start read, without taking the journal's lock. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "sweep_internal.h"

/* The start event's config. */
static kiln_status read_start_config(const char *dir, char **yaml)
{
    char path[PATH_MAX];
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/journal.jsonl", dir));
    FILE *f = fopen(path, "r");
    if (!f) return KILN_ERROR(KILN_ERR_ARG, "'%s' is not a sweep directory (no journal.jsonl)", dir);
    char *line = NULL;
    size_t cap = 0;
    *yaml = NULL;
    while (!*yaml && getline(&line, &cap, f) > 0) {
        json_t *ev = json_loads(line, 0, NULL);
        const char *e = json_string_value(json_object_get(ev, "e"));
        const char *config = json_string_value(json_object_get(ev, "config"));
        if (e && !strcmp(e, "start") && config) *yaml = strdup(config);
        json_decref(ev);
    }
    free(line);
    fclose(f);
    if (!*yaml) return KILN_ERROR(KILN_ERR_DATA, "'%s/journal.jsonl' has no start event", dir);
    return KILN_OK;
}

kiln_status kiln_sweep_open_recorded(const char *dir, sweep_plan *plan, sweep_state *state)
{
    char *yaml;
    KILN_CHECK(read_start_config(dir, &yaml));
    kiln_sweep_config *cfg = calloc(1, sizeof *cfg);
    kiln_status st = cfg ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "sweep config");
    if (st == KILN_OK) st = kiln_config_load_text(&kiln_sweep_schema, cfg, yaml, "the sweep's start event", NULL, 0);
    if (st == KILN_OK) st = kiln_sweep_plan_init(cfg, plan);
    free(yaml);
    free(cfg);
    KILN_CHECK(st);
    snprintf(plan->dir, sizeof plan->dir, "%s", dir); /* where it is now */
    kiln_sweep_state_init(state, plan);
    st = kiln_sweep_journal_read(dir, state);
    if (st != KILN_OK) {
        kiln_sweep_state_free(state);
        kiln_sweep_plan_free(plan);
    }
    return st;
}
