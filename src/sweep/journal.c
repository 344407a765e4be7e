/* The journal of a sweep: DIR/journal.jsonl, one event a line, appended by whichever worker
 * holds DIR/journal.lock (an fcntl lock: NFS and Lustre honour it across nodes; a mutex on top
 * of it, as fcntl locks do not exclude the threads of one process). Each worker keeps the
 * state it has replayed and the byte offset it reached, and under the lock first applies what
 * others appended since, so a decision costs the new lines, not the whole history. A line
 * torn by a writer killed mid-append is terminated by the next writer and skipped by all. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/runtime.h"
#include "sweep_internal.h"

kiln_status kiln_sweep_journal_open(sweep_journal *j, const char *dir)
{
    memset(j, 0, sizeof *j);
    j->lock_fd = -1;
    pthread_mutex_init(&j->mutex, NULL);
    KILN_CHECK(kiln_mkdir_p(dir));
    KILN_CHECK(kiln_path_format(j->path, sizeof j->path, "%s/journal.jsonl", dir));
    KILN_CHECK(kiln_path_format(j->lock_path, sizeof j->lock_path, "%s/journal.lock", dir));
    int fd = open(j->path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "cannot create '%s': %s", j->path, strerror(errno));
    close(fd);
    return KILN_OK;
}

void kiln_sweep_journal_close(sweep_journal *j)
{
    if (j->lock_fd >= 0) kiln_file_unlock(j->lock_fd);
    j->lock_fd = -1;
    pthread_mutex_destroy(&j->mutex);
}

/* Applies every complete line from j->offset on; stops before a last line with no newline. */
static kiln_status catch_up(sweep_journal *j, sweep_state *s, int *torn)
{
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "cannot read '%s': %s", j->path, strerror(errno));
    size_t cap = 1 << 16, have = 0;
    char *buf = malloc(cap);
    kiln_status st = buf ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "reading '%s'", j->path);
    *torn = 0;
    while (st == KILN_OK) {
        if (have + 4096 > cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                st = KILN_ERROR(KILN_ERR_NOMEM, "reading '%s'", j->path);
                break;
            }
            buf = grown;
        }
        ssize_t n = pread(fd, buf + have, cap - have - 1, j->offset + (off_t)have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) st = KILN_ERROR(KILN_ERR_IO, "cannot read '%s': %s", j->path, strerror(errno));
        if (n <= 0) break;
        have += (size_t)n;
        size_t used = 0;
        for (char *nl; (nl = memchr(buf + used, '\n', have - used)) != NULL; used = (size_t)(nl - buf) + 1) {
            *nl = '\0';
            kiln_sweep_state_apply(s, buf + used);
        }
        memmove(buf, buf + used, have - used);
        j->offset += (long)used;
        have -= used;
    }
    *torn = have > 0;
    free(buf);
    close(fd);
    return st;
}

kiln_status kiln_sweep_journal_lock(sweep_journal *j, sweep_state *s)
{
    pthread_mutex_lock(&j->mutex);
    kiln_status st = kiln_file_lock(j->lock_path, &j->lock_fd);
    int torn;
    if (st == KILN_OK) st = catch_up(j, s, &torn);
    if (st == KILN_OK && torn) { /* a writer died mid-line: end the line, everyone skips it */
        int fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0 || write(fd, "\n", 1) != 1)
            st = KILN_ERROR(KILN_ERR_IO, "cannot repair '%s': %s", j->path, strerror(errno));
        if (fd >= 0) close(fd);
        if (st == KILN_OK) st = catch_up(j, s, &torn);
    }
    if (st != KILN_OK) kiln_sweep_journal_unlock(j);
    return st;
}

void kiln_sweep_journal_unlock(sweep_journal *j)
{
    if (j->lock_fd >= 0) kiln_file_unlock(j->lock_fd);
    j->lock_fd = -1;
    pthread_mutex_unlock(&j->mutex);
}

kiln_status kiln_sweep_journal_append(sweep_journal *j, sweep_state *s, const char *event)
{
    size_t n = strlen(event);
    char *line = malloc(n + 2);
    KILN_CHECK_ALLOC(line);
    memcpy(line, event, n);
    line[n] = '\n';
    int fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    kiln_status st = KILN_OK;
    if (fd < 0 || write(fd, line, n + 1) != (ssize_t)(n + 1) || fsync(fd) != 0)
        st = KILN_ERROR(KILN_ERR_IO, "cannot append to '%s': %s", j->path, strerror(errno));
    if (fd >= 0) close(fd);
    free(line);
    int torn;
    if (st == KILN_OK) st = catch_up(j, s, &torn); /* applied as every other worker applies it */
    return st;
}

kiln_status kiln_sweep_emit_json(sweep_emit_fn emit, void *ctx, json_t *ev)
{
    char *text = ev ? json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(ev);
    KILN_CHECK_ALLOC(text);
    kiln_status st = emit(ctx, text);
    free(text);
    return st;
}

kiln_status kiln_sweep_journal_read(const char *dir, sweep_state *s)
{
    sweep_journal j;
    memset(&j, 0, sizeof j);
    KILN_CHECK(kiln_path_format(j.path, sizeof j.path, "%s/journal.jsonl", dir));
    if (!kiln_path_exists(j.path))
        return KILN_ERROR(KILN_ERR_ARG, "'%s' is not a sweep directory (no journal.jsonl)", dir);
    int torn;
    return catch_up(&j, s, &torn);
}
