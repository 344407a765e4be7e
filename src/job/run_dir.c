/* Run directories (kiln/run_dir.h): metrics.jsonl, summary.json, markers and ckpt/, written by
 * the one writer rank. Metrics are flushed line by line so a killed run keeps what it logged;
 * a resumed run first rewrites the file without the lines past its checkpoint. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/run_dir.h"

struct kiln_run_dir {
    char path[PATH_MAX];
    char ckpt[PATH_MAX];
    char metrics_path[PATH_MAX];
    FILE *metrics;
    int writer;
};

kiln_status kiln_run_dir_init(const char *path, int writer, kiln_run_dir **out)
{
    kiln_run_dir *d = calloc(1, sizeof *d);
    KILN_CHECK_ALLOC(d);
    kiln_status st = kiln_path_format(d->path, sizeof d->path, "%s", path);
    if (st == KILN_OK) st = kiln_path_format(d->ckpt, sizeof d->ckpt, "%s/ckpt", path);
    if (st == KILN_OK)
        st = kiln_path_format(d->metrics_path, sizeof d->metrics_path, "%s/metrics.jsonl", path);
    if (st != KILN_OK) {
        free(d);
        return st;
    }
    d->writer = writer;
    *out = d;
    return KILN_OK;
}

void kiln_run_dir_free(kiln_run_dir *d)
{
    if (!d) return;
    if (d->metrics) fclose(d->metrics);
    free(d);
}

const char *kiln_run_dir_path(const kiln_run_dir *d) { return d->path; }
const char *kiln_run_dir_ckpt(const kiln_run_dir *d) { return d->ckpt; }

kiln_status kiln_run_dir_file(const kiln_run_dir *d, const char *name, char *path, size_t len)
{
    return kiln_path_format(path, len, "%s/%s", d->path, name);
}

static long line_step(const char *line)
{
    const char *p = strstr(line, "\"step\":");
    return p ? strtol(p + 7, NULL, 10) : -1;
}

/* Rewrites path without the lines logged after keep_through (and a torn last line). */
static kiln_status drop_lines_after(const char *path, long keep_through)
{
    FILE *f = fopen(path, "r");
    if (!f) return KILN_OK; /* nothing logged yet */
    size_t cap = 1 << 16, len = 0;
    char *kept = malloc(cap), *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    if (!kept) {
        fclose(f);
        return KILN_ERROR(KILN_ERR_NOMEM, "rewriting '%s'", path);
    }
    kiln_status st = KILN_OK;
    while (st == KILN_OK && (n = getline(&line, &line_cap, f)) > 0) {
        if (line[n - 1] != '\n') break; /* a torn last line from a kill */
        if (line_step(line) > keep_through) continue;
        if (len + (size_t)n > cap) {
            cap = 2 * (len + (size_t)n);
            char *grown = realloc(kept, cap);
            if (!grown) st = KILN_ERROR(KILN_ERR_NOMEM, "rewriting '%s'", path);
            else kept = grown;
        }
        if (st == KILN_OK) {
            memcpy(kept + len, line, (size_t)n);
            len += (size_t)n;
        }
    }
    fclose(f);
    free(line);
    if (st == KILN_OK) st = kiln_write_file_atomic(path, kept, len);
    free(kept);
    return st;
}

kiln_status kiln_run_dir_open(kiln_run_dir *d, long keep_through)
{
    if (!d->writer) return KILN_OK;
    KILN_CHECK(kiln_mkdir_p(d->ckpt));
    KILN_CHECK(drop_lines_after(d->metrics_path, keep_through));
    d->metrics = fopen(d->metrics_path, "a");
    if (!d->metrics) return KILN_ERROR(KILN_ERR_IO, "cannot open metrics file '%s'", d->metrics_path);
    return KILN_OK;
}

void kiln_run_dir_log(kiln_run_dir *d, const char *json_fields)
{
    if (!d->metrics) return;
    fprintf(d->metrics, "{%s}\n", json_fields);
    fflush(d->metrics);
}

long kiln_run_dir_last_logged(const kiln_run_dir *d, const char *field)
{
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", field);
    FILE *f = fopen(d->metrics_path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    long last = -1;
    while (getline(&line, &cap, f) > 0)
        if (strstr(line, key) && line_step(line) > last) last = line_step(line);
    free(line);
    fclose(f);
    return last;
}

kiln_status kiln_run_dir_write_summary(kiln_run_dir *d, const char *json)
{
    return kiln_run_dir_write_marker(d, "summary.json", json);
}

int kiln_run_dir_has_marker(const kiln_run_dir *d, const char *name)
{
    char path[PATH_MAX + 64];
    return kiln_run_dir_file(d, name, path, sizeof path) == KILN_OK && kiln_path_exists(path);
}

kiln_status kiln_run_dir_write_marker(kiln_run_dir *d, const char *name, const char *text)
{
    if (!d->writer) return KILN_OK;
    char path[PATH_MAX + 64];
    KILN_CHECK(kiln_run_dir_file(d, name, path, sizeof path));
    return kiln_write_file_atomic(path, text, strlen(text));
}
