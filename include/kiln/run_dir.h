/* Run directories: where a step-based job (a training run, a sweep trial) keeps what it makes.
 *
 *   DIR/metrics.jsonl   one JSON object per logged step and evaluation, flushed as written
 *   DIR/summary.json    the run's final figures, written atomically at the end
 *   DIR/ckpt/           checkpoints (kiln/ckpt.h): step-N.h5, `latest`
 *   DIR/<marker>.json   register-once markers: what the run registered, so a rerun of a
 *                       finished run finds it instead of registering again
 *
 * One rank of the whole world writes (the writer); the others hold a handle that writes
 * nothing, so callers need no rank checks. A resumed run drops metrics lines past the step it
 * resumes from (they will be logged again, identically), so the file holds each step once. */
#ifndef KILN_RUN_DIR_H
#define KILN_RUN_DIR_H
#include "kiln/status.h"

typedef struct kiln_run_dir kiln_run_dir;

/* The handle for path (nothing is created yet), and where its checkpoints go. */
kiln_status kiln_run_dir_init(const char *path, int writer, kiln_run_dir **out);
void kiln_run_dir_free(kiln_run_dir *d);
const char *kiln_run_dir_path(const kiln_run_dir *d);
const char *kiln_run_dir_ckpt(const kiln_run_dir *d);

/* Writer: create the directory and ckpt/, open metrics.jsonl keeping lines up to step
 * keep_through (the step the run resumes from; 0 for a fresh run). */
kiln_status kiln_run_dir_open(kiln_run_dir *d, long keep_through);
/* One metrics line: json_fields is the inside of an object ("\"step\":3,\"loss\":0.5"). */
void kiln_run_dir_log(kiln_run_dir *d, const char *json_fields);
/* The last step of a metrics line holding field ("eval_loss"), or -1: what a rerun of a
 * finished run has logged already (it must not log it twice). */
long kiln_run_dir_last_logged(const kiln_run_dir *d, const char *field);
/* summary.json (a whole JSON object's text), atomically. */
kiln_status kiln_run_dir_write_summary(kiln_run_dir *d, const char *json);

/* A marker file DIR/name: whether it exists, and writing it (atomically). */
int kiln_run_dir_has_marker(const kiln_run_dir *d, const char *name);
kiln_status kiln_run_dir_write_marker(kiln_run_dir *d, const char *name, const char *text);
/* DIR/name as a path (for markers and subdirectories such as best/). */
kiln_status kiln_run_dir_file(const kiln_run_dir *d, const char *name, char *path, size_t len);

#endif
