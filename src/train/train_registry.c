/* The training job and the model registry: a warm start from a checkpoint or registry URI
 * (train.init_from), the best-by-eval checkpoint kept aside while training, and the final and
 * best models registered when registry.name is set. Registration happens once per run: a rerun
 * of a finished run finds what it registered (registry.json in the run directory, or the
 * version whose lineage names the same checkpoint) instead of registering it again. */
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "train_internal.h"

#define REGISTRY_MARKER "registry.json"
#define BEST_DIR "best"
#define BEST_EVAL "eval.json"

static const char *registry_root(const train_run *r) { return kiln_registry_root(r->cfg.registry.path); }

/* Re-issues the recorded error with a prefix naming the config key. */
static kiln_status with_key(kiln_status st, const char *key, const char *value)
{
    char inner[4096];
    snprintf(inner, sizeof inner, "%s", kiln_error_message());
    return KILN_ERROR(st, "%s '%s': %s", key, value, inner);
}

kiln_status kiln_train_check_registry_config(kiln_train_config *c)
{
    if (c->registry.name[0]) {
        kiln_status st = kiln_registry_check_name("model name", c->registry.name);
        if (st != KILN_OK) return with_key(KILN_ERR_CONFIG, "registry.name", c->registry.name);
    }
    if (c->registry.alias[0]) {
        kiln_status st = kiln_registry_check_name("alias", c->registry.alias);
        if (st == KILN_OK && !strcmp(c->registry.alias, KILN_REGISTRY_LATEST))
            st = KILN_ERROR(KILN_ERR_CONFIG, "'latest' is built in and cannot be set");
        if (st == KILN_OK && !c->registry.name[0])
            st = KILN_ERROR(KILN_ERR_CONFIG, "it needs registry.name");
        if (st != KILN_OK) return with_key(KILN_ERR_CONFIG, "registry.alias", c->registry.alias);
    }
    if (!c->train.init_from[0]) return KILN_OK;
    kiln_registry_ref ref;
    char path[PATH_MAX];
    kiln_status st = kiln_model_locate(kiln_registry_root(c->registry.path), c->train.init_from,
                                       path, sizeof path, &ref);
    if (st != KILN_OK) return with_key(st, "train.init_from", c->train.init_from);
    /* pin an alias to the version it names now: the stored config and lineage stay exact */
    if (ref.version) kiln_registry_format_uri(&ref, c->train.init_from, sizeof c->train.init_from);
    return KILN_OK;
}

kiln_status kiln_train_warm_start(train_run *r, int resuming)
{
    const char *from = r->cfg.train.init_from;
    if (!from[0]) return KILN_OK;
    if (resuming) {
        kiln_info("train.init_from '%s' not used: the run resumes from a checkpoint", from);
        return KILN_OK;
    }
    kiln_status st = kiln_model_locate(registry_root(r), from, r->init_path, sizeof r->init_path,
                                       NULL);
    if (st == KILN_OK) st = kiln_model_load_checkpoint(r->model, r->init_path);
    if (st != KILN_OK) return with_key(st, "train.init_from", from);
    kiln_info("warm start: model parameters from %s (%s), optimizer fresh, step 0", from,
              r->init_path);
    return KILN_OK;
}

kiln_status kiln_train_keep_best(train_run *r, const kiln_eval_result *ev)
{
    if (!r->cfg.registry.name[0]) return KILN_OK;
    char dir[PATH_MAX], path[PATH_MAX + 16], json[256];
    KILN_CHECK(kiln_run_dir_file(r->dir, BEST_DIR, dir, sizeof dir));
    KILN_CHECK(kiln_train_save_checkpoint_to(r, dir, 1));
    if (!r->writer) return KILN_OK;
    int n = snprintf(json, sizeof json,
                     "{\"step\":%ld,\"eval_loss\":%.9g,\"eval_accuracy\":%.9g,\"eval_targets\":%lld}\n",
                     r->step, ev->loss, ev->accuracy, (long long)ev->targets);
    KILN_CHECK(kiln_path_format(path, sizeof path, "%s/" BEST_EVAL, dir));
    return kiln_write_file_atomic(path, json, (size_t)n);
}

/* The best checkpoint kept during training, when it is better than the final model. */
static kiln_status best_checkpoint(train_run *r, const kiln_eval_result *final, char *path,
                                   size_t len, json_t **metrics)
{
    char dir[PATH_MAX], eval_path[PATH_MAX + 16];
    int found = 0;
    *metrics = NULL;
    KILN_CHECK(kiln_run_dir_file(r->dir, BEST_DIR, dir, sizeof dir));
    KILN_CHECK(kiln_ckpt_find_latest(dir, path, len, &found));
    KILN_CHECK(kiln_path_format(eval_path, sizeof eval_path, "%s/" BEST_EVAL, dir));
    if (!found || !kiln_path_exists(eval_path)) return KILN_OK;
    json_error_t err;
    json_t *m = json_load_file(eval_path, 0, &err);
    json_t *loss = json_object_get(m, "eval_loss");
    if (!json_is_number(loss)) {
        json_decref(m);
        return KILN_ERROR(KILN_ERR_DATA, "'%s' is not the eval record kiln writes", eval_path);
    }
    if (json_number_value(loss) < final->loss) *metrics = m;
    else json_decref(m);
    return KILN_OK;
}

/* Registers ckpt (once) with role and metrics; *version receives its number. */
static kiln_status register_one(train_run *r, const char *ckpt, json_t *role, json_t *metrics,
                                int64_t *version)
{
    const char *root = registry_root(r), *name = r->cfg.registry.name;
    KILN_CHECK(kiln_registry_find_source(root, name, ckpt, version));
    if (*version) {
        kiln_info("registry: %s was already registered as version %" PRId64, ckpt, *version);
        return KILN_OK;
    }
    const char *from = r->cfg.train.init_from;
    json_t *fields = json_pack("{s:o, s:O, s:o, s:{s:s, s:s}}", "role", role, "metrics", metrics,
                               "parent", kiln_registry_is_uri(from) ? json_string(from) : json_null(),
                               "lineage", "run_dir", r->cfg.train.out_dir, "init_from", from);
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(fields);
    KILN_CHECK_ALLOC(text);
    kiln_registry_artifact model = {ckpt, "model.h5", "model", 0};
    kiln_status st = kiln_registry_register(root, name, &model, 1, text, version);
    free(text);
    return st;
}

static kiln_status write_marker(train_run *r, int64_t final, int64_t best)
{
    char line[1400], uf[600], ub[600];
    snprintf(uf, sizeof uf, KILN_REGISTRY_URI_PREFIX "%s/%" PRId64, r->cfg.registry.name, final);
    snprintf(ub, sizeof ub, KILN_REGISTRY_URI_PREFIX "%s/%" PRId64, r->cfg.registry.name, best);
    snprintf(line, sizeof line, "{\"final\":\"%s\",\"best\":\"%s\"}\n", uf, ub);
    KILN_CHECK(kiln_run_dir_write_marker(r->dir, REGISTRY_MARKER, line));
    printf("registered: %s (final)%s%s%s\n", uf, best == final ? " = best by eval" : ", ",
           best == final ? "" : ub, best == final ? "" : " (best by eval)");
    return KILN_OK;
}

kiln_status kiln_train_register(train_run *r, const kiln_eval_result *ev)
{
    const kiln_train_config *c = &r->cfg;
    if (!c->registry.name[0] || !r->writer) return KILN_OK;
    char final_path[PATH_MAX], best_path[PATH_MAX];
    if (kiln_run_dir_has_marker(r->dir, REGISTRY_MARKER)) {
        kiln_info("registry: this run is registered already (%s/%s)", kiln_run_dir_path(r->dir),
                  REGISTRY_MARKER);
        return KILN_OK;
    }
    int found;
    const char *ckpt_dir = kiln_run_dir_ckpt(r->dir);
    KILN_CHECK(kiln_ckpt_find_latest(ckpt_dir, final_path, sizeof final_path, &found));
    if (!found) return KILN_ERROR(KILN_ERR_CKPT, "registry: no final checkpoint in '%s'", ckpt_dir);
    json_t *best_metrics;
    KILN_CHECK(best_checkpoint(r, ev, best_path, sizeof best_path, &best_metrics));
    json_t *final_metrics = json_pack("{s:f, s:f, s:I, s:f}", "eval_loss", ev->loss,
                                      "eval_accuracy", ev->accuracy, "eval_targets",
                                      (json_int_t)ev->targets, "best_eval_loss", r->best_eval_loss);
    json_t *role = best_metrics ? json_pack("[s]", "final") : json_pack("[s, s]", "final", "best");
    int64_t final = 0, best = 0;
    kiln_status st = register_one(r, final_path, role, final_metrics, &final);
    best = final;
    if (st == KILN_OK && best_metrics)
        st = register_one(r, best_path, json_pack("[s]", "best"), json_incref(best_metrics), &best);
    json_decref(best_metrics);
    if (st == KILN_OK && c->registry.alias[0])
        st = kiln_registry_set_alias(registry_root(r), c->registry.name, c->registry.alias, final);
    if (st == KILN_OK) st = write_marker(r, final, best);
    return st;
}
