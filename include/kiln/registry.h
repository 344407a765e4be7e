/* The file-based model registry: numbered versions of named models, their metadata and
 * artifacts, aliases, and the URIs that name them.
 *
 * A directory tree that people can read (root: a config's registry.path, else $KILN_REGISTRY,
 * else ./registry):
 *   models/NAME/versions/N/version.json   metadata: name, version, created, user, host,
 *                                         slurm_job_id, kiln_version, parent, metrics, params,
 *                                         lineage (data files with sha256, config text, source
 *                                         checkpoint), artifacts [{name, kind, path, sha256,
 *                                         bytes, external}]
 *   models/NAME/versions/N/model.h5       copied artifacts
 *   models/NAME/aliases/ALIAS             one line: the version it points to
 *   models/NAME/history.jsonl             append-only: registrations, alias moves, gc
 *   models/NAME/last_version              highest number ever allocated (never reused)
 *   models/NAME/.lock, .staging/, .trash/ writers' lock, versions being assembled or removed
 *
 * Many writers at once, also from several nodes on a shared filesystem: every change happens
 * under models/NAME/.lock (fcntl), and every file appears by rename (a version directory is
 * assembled in .staging/ and renamed into versions/), so a reader never sees half of anything
 * and needs no lock. Aliases only ever point to versions that exist, and gc never removes an
 * aliased version.
 *
 * URIs, accepted wherever a model or checkpoint path is: registry:NAME@ALIAS and
 * registry:NAME/VERSION. ALIAS "latest" is built in: the highest version. Model and alias
 * names: 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit, not ending in ".tmp" (so
 * no path traversal, no separators, no clash with files being replaced). */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "kiln/config.h"
#include "kiln/status.h"

#define KILN_REGISTRY_NAME_MAX 64
#define KILN_REGISTRY_URI_PREFIX "registry:"
#define KILN_REGISTRY_LATEST "latest"
/* The kind of a version written before versions had one, and of a trained model. */
#define KILN_REGISTRY_KIND_MODEL "model"

typedef struct kiln_registry_ref {
    char name[KILN_REGISTRY_NAME_MAX + 1];
    char alias[KILN_REGISTRY_NAME_MAX + 1]; /* "" when the URI names a version */
    int64_t version;                        /* the URI's version, or the alias's once resolved;
                                               0 for a plain path */
} kiln_registry_ref;

/* The `registry` config sections (src/registry/registry_config.c): kiln_registry_section
 * declares registry.path (every job that reads or writes the registry), and
 * kiln_registry_publish_section registry.name and registry.alias (jobs that register what
 * they make); both describe this struct. */
typedef struct kiln_registry_config {
    kiln_cfg_str path;           /* registry root; "" = $KILN_REGISTRY, else ./registry */
    kiln_cfg_str name;           /* register the result under this name; "" = don't */
    kiln_cfg_str alias;          /* alias moved to the registered version; "" = none */
} kiln_registry_config;
extern const kiln_cfg_schema kiln_registry_section;
extern const kiln_cfg_schema kiln_registry_publish_section;

/* 1 when s starts with "registry:". */
int kiln_registry_is_uri(const char *s);
/* KILN_ERR_ARG naming `what` ("model name", "alias") unless name is valid (see above). */
kiln_status kiln_registry_check_name(const char *what, const char *name);
/* Parse registry:NAME@ALIAS or registry:NAME/VERSION (no filesystem access). */
kiln_status kiln_registry_parse_uri(const char *uri, kiln_registry_ref *ref);
/* "registry:NAME/VERSION" of a resolved ref. */
void kiln_registry_format_uri(const kiln_registry_ref *ref, char *buf, size_t len);
/* The registry root: configured when non-empty, else $KILN_REGISTRY, else "registry". */
const char *kiln_registry_root(const char *configured);

/* Resolve a URI to its version (following the alias) and the path of that version's model
 * artifact. Errors name the registry, the model, the alias or version, and what exists. */
kiln_status kiln_registry_resolve(const char *root, const char *uri, kiln_registry_ref *ref,
                                  char *model_path, size_t len);
/* Where a model or checkpoint argument points: a plain path is copied unchanged (ref->version
 * = 0, ref->name = ""), a URI is resolved as above. ref may be NULL. */
kiln_status kiln_registry_locate(const char *root, const char *path_or_uri, char *path,
                                 size_t len, kiln_registry_ref *ref);

typedef struct kiln_registry_artifact {
    const char *path;          /* the file to register */
    const char *name;          /* its name in the version; NULL = the file's basename */
    const char *kind;          /* "model", "index", "features", "batch_scores", ...; NULL =
                                  "model". The first artifact's kind is the version's kind */
    int external;              /* 1: record the path (made absolute) and digest only, for big
                                  outputs that stay where they are; 0: copy into the version */
} kiln_registry_artifact;

/* Register a new version of `name` (created on first use) with its artifacts. The first
 * artifact's kind is the version's kind ("model", "features", "index", ...; version.json
 * "kind"; a version without one reads as a model), and it is what URIs resolve to. When that artifact is a kiln checkpoint, params
 * (its config), metrics.step and lineage (config text, data files with sha256, source) are
 * filled from it. fields_json (NULL or a JSON object's text: metrics, params, lineage, parent,
 * role, any other key) is merged over those, one level deep. *version: the new number. */
kiln_status kiln_registry_register(const char *root, const char *name,
                                   const kiln_registry_artifact *artifacts, int n_artifacts,
                                   const char *fields_json, int64_t *version);
/* The newest version of model `name` registered from checkpoint file `source` (its lineage
 * names that file and its model artifact has that file's sha256), or 0: lets a job that died
 * after registering but before noting it register exactly once when rerun. */
kiln_status kiln_registry_find_source(const char *root, const char *name, const char *source,
                                      int64_t *version);
/* Add one artifact to an existing version (e.g. batch scores made with it). Adding the same
 * name with the same bytes again changes nothing; the same name with other bytes is an error. */
kiln_status kiln_registry_add_artifact(const char *root, const char *name, int64_t version,
                                       const kiln_registry_artifact *artifact);
/* Point alias at version (which must exist), or remove it when version is 0. Logged in the
 * history with the version it pointed to before. */
kiln_status kiln_registry_set_alias(const char *root, const char *name, const char *alias,
                                    int64_t version);
/* The same, only if the alias points at `expect` now (0: only if it does not exist), checked
 * and moved under the model's lock, so two promotions racing from the same evaluation cannot
 * both land: the second fails with KILN_ERR_CONFLICT and changes nothing. */
#define KILN_ALIAS_ANY (-1) /* expect: move whatever the alias points at */
kiln_status kiln_registry_move_alias(const char *root, const char *name, const char *alias,
                                     int64_t version, int64_t expect);

/* version.json's text (caller frees). */
kiln_status kiln_registry_version_json(const char *root, const char *name, int64_t version,
                                       char **json);
/* Versions of a model, ascending (caller frees). */
kiln_status kiln_registry_versions(const char *root, const char *name, int64_t **versions,
                                   int *n);
/* Model names, sorted (free with kiln_registry_free_names). */
kiln_status kiln_registry_models(const char *root, char ***names, int *n);
/* Aliases of a model, sorted by name, with their versions. */
kiln_status kiln_registry_aliases(const char *root, const char *name, char ***aliases,
                                  int64_t **versions, int *n);
void kiln_registry_free_names(char **names, int n);

/* How a version of one kind is opened to prove it is one: check(path of its first artifact)
 * fails with the reason when the file is not a `what` that verifies. Models are checked as
 * kiln checkpoints always; the layers above add their kinds (`kiln index` its indexes). */
typedef struct kiln_registry_check {
    const char *kind;
    const char *what;          /* "kiln index", in reports */
    kiln_status (*check)(const char *path);
} kiln_registry_check;

/* Recompute every artifact's sha256 (of one version, or all when version is 0; of every model
 * when name is NULL) and report each to out; open each version's first artifact by the check
 * of its kind (checks[0..n_checks), and the built-in one for models). *n_bad counts
 * mismatches, missing files, files that do not open as their kind and bad metadata; the call
 * itself fails only when the registry cannot be read. */
kiln_status kiln_registry_verify(const char *root, const char *name, int64_t version,
                                 const kiln_registry_check *checks, int n_checks, FILE *out,
                                 int *n_bad);

/* gc: the versions no alias points to, beyond the newest `keep` of them, ascending. */
kiln_status kiln_registry_gc_plan(const char *root, const char *name, int keep,
                                  int64_t **victims, int *n);
/* Remove the approved versions that are still in the plan (taken again under the lock, so an
 * alias set meanwhile protects its version); also clears assembly leftovers of crashed writers
 * older than a day. *n_removed: versions removed. */
kiln_status kiln_registry_gc(const char *root, const char *name, int keep,
                             const int64_t *approved, int n_approved, int *n_removed);

/* `kiln registry` output: ls (models, or a model's versions), show, history, diff. */
kiln_status kiln_registry_print_models(const char *root, FILE *out);
kiln_status kiln_registry_print_versions(const char *root, const char *name, FILE *out);
kiln_status kiln_registry_print_history(const char *root, const char *name, FILE *out);
/* Metrics and params of a and b side by side, differing rows marked. */
kiln_status kiln_registry_print_diff(const char *root, const char *uri_a, const char *uri_b,
                                     FILE *out);

#endif
