/* metrics.jsonl: one JSON object per line, flushed as written so a killed run keeps what it
 * logged. On resume, lines for steps after the checkpoint are dropped (they will be
 * recomputed identically), so the file holds each step once. */
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "train_internal.h"

static long line_step(const char *line)
{
    const char *p = strstr(line, "\"step\":");
    return p ? strtol(p + 7, NULL, 10) : -1;
}

static kiln_status drop_lines_after(const char *path, long keep_through_step)
{
    FILE *f = fopen(path, "r");
    if (!f) return KILN_OK; /* nothing logged yet */
    size_t cap = 1 << 16, len = 0;
    char *kept = malloc(cap), line[8192];
    KILN_CHECK_ALLOC(kept);
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n') break; /* a torn last line from a kill */
        if (line_step(line) > keep_through_step) continue;
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            char *grown = realloc(kept, cap);
            if (!grown) { free(kept); fclose(f); return KILN_ERROR(KILN_ERR_NOMEM, "metrics rewrite"); }
            kept = grown;
        }
        memcpy(kept + len, line, n);
        len += n;
    }
    fclose(f);
    kiln_status st = kiln_write_file_atomic(path, kept, len);
    free(kept);
    return st;
}

kiln_status metrics_open(train_run *r, long keep_through_step)
{
    KILN_CHECK(drop_lines_after(r->metrics_path, keep_through_step));
    r->metrics = fopen(r->metrics_path, "a");
    if (!r->metrics) return KILN_ERROR(KILN_ERR_IO, "cannot open metrics file '%s'", r->metrics_path);
    return KILN_OK;
}

void metrics_write(train_run *r, const char *json_fields)
{
    if (!r->metrics) return;
    fprintf(r->metrics, "{%s}\n", json_fields);
    fflush(r->metrics);
}

void metrics_close(train_run *r)
{
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
}
