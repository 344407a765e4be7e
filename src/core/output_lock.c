/* Exclusive outputs: one run at a time writes an output (a file, a run directory, a sweep
 * directory). The holder keeps an fcntl lock on OUTPUT.lock beside it (fcntl, not flock: NFS
 * and Lustre honour it across nodes) and writes who it is into that file, so a second run fails
 * at once saying which process holds the output. The kernel drops the lock when the holder
 * dies, even of kill -9 or a lost node's lease, so a dead holder never blocks; its stale file
 * is taken over. Release unlinks the file while still holding the lock; a run that opened the
 * old file meanwhile sees that it is no longer the one at the path and tries again. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "kiln/fs.h"
#include "kiln/runtime.h"

struct kiln_output_lock {
    int fd;
    char path[PATH_MAX];        /* OUTPUT.lock */
};

static int try_lock(int fd)
{
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    int rc;
    while ((rc = fcntl(fd, F_SETLK, &lk)) != 0 && errno == EINTR) {}
    return rc == 0 ? 0 : errno;
}

/* 1 when fd is still the file at path (not unlinked by a releasing holder). */
static int still_at_path(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void describe_self(char *buf, size_t len)
{
    char host[256] = "unknown", when[32];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    const char *job = getenv("SLURM_JOB_ID");
    snprintf(buf, len, "pid %d on host %s%s%s, since %s", (int)getpid(), host,
             job && *job ? ", Slurm job " : "", job && *job ? job : "", when);
}

static kiln_status busy(const char *output, const char *what, int fd)
{
    char holder[512] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    return KILN_ERROR(KILN_ERR_CONFLICT, "%s '%s' is in use by another run (%s); wait for it to "
                      "end, or choose another %s", what, output,
                      holder[0] ? holder : "a process that has not said who it is yet", what);
}

kiln_status kiln_output_lock_acquire(const char *output, const char *what, double wait_s,
                                     kiln_output_lock **out)
{
    *out = NULL;
    kiln_output_lock *l = calloc(1, sizeof *l);
    KILN_CHECK_ALLOC(l);
    l->fd = -1;
    char parent[PATH_MAX];
    size_t n = strlen(output);
    while (n > 1 && output[n - 1] == '/') n--; /* "runs/x/" is the directory runs/x */
    kiln_status st = kiln_path_format(l->path, sizeof l->path, "%.*s.lock", (int)n, output);
    if (st == KILN_OK) st = kiln_path_format(parent, sizeof parent, "%.*s", (int)n, output);
    if (st == KILN_OK) st = kiln_mkdir_p(dirname(parent));
    double until = kiln_time_s() + wait_s;
    while (st == KILN_OK) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            st = KILN_ERROR(KILN_ERR_IO, "cannot open lock file '%s': %s", l->path, strerror(errno));
            break;
        }
        int err = try_lock(fd);
        if (err == 0 && still_at_path(fd, l->path)) {
            l->fd = fd;
            break;
        }
        if (err == 0) { /* the holder released and unlinked it as we opened it: again */
            close(fd);
            continue;
        }
        if (err != EACCES && err != EAGAIN) {
            close(fd);
            st = KILN_ERROR(KILN_ERR_IO, "cannot lock '%s': %s", l->path, strerror(err));
            break;
        }
        if (kiln_time_s() >= until) {
            st = busy(output, what, fd);
            close(fd);
            break;
        }
        close(fd);
        usleep(200000);
    }
    if (st != KILN_OK) {
        free(l);
        return st;
    }
    char me[512];
    describe_self(me, sizeof me);
    size_t len = strlen(me);
    me[len++] = '\n';
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, me, len, 0) != (ssize_t)len) {
        int err = errno;
        kiln_output_lock_release(l);
        return KILN_ERROR(KILN_ERR_IO, "cannot write '%s': %s", output, strerror(err));
    }
    *out = l;
    return KILN_OK;
}

void kiln_output_lock_release(kiln_output_lock *l)
{
    if (!l) return;
    if (l->fd >= 0) {
        unlink(l->path); /* still holding it: whoever opened it meanwhile will retry */
        close(l->fd);
    }
    free(l);
}
