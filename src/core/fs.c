/* Filesystem helpers shared by checkpoints, metrics, registry and importers. Durable
 * replacement = write a temporary, fsync it, rename it over the target, fsync the directory:
 * after a crash the target is either the old or the new content, never a mix. */
#include "kiln/fs.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kiln_path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

kiln_status kiln_mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return KILN_ERROR(KILN_ERR_ARG, "path too long: '%s'", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return KILN_ERROR(KILN_ERR_IO, "cannot create directory '%s': %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return KILN_ERROR(KILN_ERR_IO, "cannot create directory '%s': %s", buf, strerror(errno));
    return KILN_OK;
}

kiln_status kiln_fsync_parent_dir(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    const char *dir = dirname(buf);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return KILN_ERROR(KILN_ERR_IO, "fsync of directory '%s' failed: %s", dir, strerror(errno));
    return KILN_OK;
}

kiln_status kiln_write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return KILN_ERROR(KILN_ERR_ARG, "path too long: '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return KILN_ERROR(KILN_ERR_IO, "write to '%s' failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return KILN_ERROR(KILN_ERR_IO, "fsync/close of '%s' failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return KILN_ERROR(KILN_ERR_IO, "rename '%s' -> '%s' failed: %s", tmp, path, strerror(e));
    }
    return kiln_fsync_parent_dir(path);
}
