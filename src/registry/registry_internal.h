/* What the registry's files share: where things live under a model's directory, the writers'
 * lock, JSON files read and written whole (atomically), and the history log. */
#ifndef KILN_REGISTRY_INTERNAL_H
#define KILN_REGISTRY_INTERNAL_H
#include <jansson.h>
#include <limits.h>
#include "kiln/registry.h"

#define REG_VERSION_FILE "version.json"
#define REG_FORMAT 1
/* 15 significant digits: configured values print as typed (0.9, not 0.90000000000000002) */
#define REG_JSON_PRETTY (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
#define REG_JSON_LINE (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

/* root/models/NAME after checking the name; *exists = whether that directory exists (NULL:
 * it must, else an error that lists the registry's models). */
kiln_status kiln_reg_model_dir(const char *root, const char *name, char *dir, size_t len, int *exists);
/* mdir/versions/N */
kiln_status kiln_reg_version_dir(const char *mdir, int64_t version, char *dir, size_t len);
/* Names in dir that could be registry names (no hidden or .tmp files), sorted; a missing dir
 * has none. Free with kiln_registry_free_names. */
kiln_status kiln_reg_list_names(const char *dir, char ***names, int *n);
/* Versions present under mdir/versions, ascending. */
kiln_status kiln_reg_list_versions(const char *mdir, int64_t **versions, int *n);
/* KILN_ERR_ARG "model 'm' in registry 'r' has no version 9 (versions 1 to 5, 5 present)" when
 * mdir (of model name in root) lacks that version. */
kiln_status kiln_reg_require_version(const char *root, const char *name, const char *mdir,
                                int64_t version);
/* The version alias points to; *found = 0 when the alias does not exist. */
kiln_status kiln_reg_read_alias(const char *mdir, const char *alias, int64_t *version, int *found);
/* "versions 1-7 (5 present)" / "no versions": for messages that say what exists. */
void kiln_reg_describe_versions(const char *mdir, char *buf, size_t len);

/* The model's writers' lock (mdir/.lock). */
kiln_status kiln_reg_lock(const char *mdir, int *fd);

/* A JSON file read whole: KILN_ERR_DATA naming the file, line and column when it is not valid
 * JSON or not an object. */
kiln_status kiln_reg_json_load(const char *path, json_t **out);
/* Written to a temporary file (kiln_tmp_path), fsynced and renamed over path; indented, keys in insertion order. */
kiln_status kiln_reg_json_save(const char *path, const json_t *obj);
/* The version's metadata, checked to be a version.json of (mdir's) model and that version. */
kiln_status kiln_reg_load_version(const char *mdir, int64_t version, json_t **out);

/* Appends {"time", "user", "event", ...fields} as one line to mdir/history.jsonl (under the
 * lock), fsynced. Steals fields. */
kiln_status kiln_reg_history_append(const char *mdir, const char *event, json_t *fields);

/* Removes a directory and the files in it (version and staging directories are flat). */
kiln_status kiln_reg_remove_flat_dir(const char *dir);

/* Fields a version takes from a kiln checkpoint artifact: params (its config, one key per
 * dotted path), metrics.step, lineage (config text, source file, data files with sha256).
 * *out = NULL (and KILN_OK) when path is not a kiln checkpoint. */
kiln_status kiln_reg_checkpoint_fields(const char *path, json_t **out);
/* Removes what dead processes left in a model's directory: staging directories of writers that
 * are gone (a process of this host that no longer exists, else older than a day) and .trash. */
kiln_status kiln_reg_clear_leftovers(const char *mdir);
/* A version's kind ("model", "features", "index", ...): its "kind" field, "model" for versions
 * written before versions had one. */
const char *kiln_reg_version_kind(json_t *meta);
/* Its primary artifact, the one a URI resolves to: the first of the version's own kind. */
json_t *kiln_reg_primary_artifact(json_t *meta);

/* "2026-11-23T21:14:37Z" */
void kiln_reg_time_now(char buf[32]);
/* The user registering: $USER, else the passwd entry, else the uid. */
void kiln_reg_user(char *buf, size_t len);

#endif
