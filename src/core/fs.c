/* Filesystem helpers shared by checkpoints, metrics, registry and importers. Durable
 * replacement = write a temporary, fsync it, rename it over the target, fsync the directory:
 * after a crash the target is either the old or the new content, never a mix. Registry
 * artifacts are identified by SHA-256 (nettle); copying one digests it in the same read. */
#include "kiln/fs.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

kiln_status kiln_path_format(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) return KILN_ERROR(KILN_ERR_ARG, "path too long: '%s...'", out);
    return KILN_OK;
}

int kiln_path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

kiln_status kiln_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    KILN_CHECK(kiln_path_format(buf, sizeof buf, "%s", path));
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

/* A directory is opened read-only too; fsync on that descriptor flushes its entries. */
static kiln_status fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return KILN_ERROR(KILN_ERR_IO, "cannot open '%s' to fsync it: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return KILN_ERROR(KILN_ERR_IO, "cannot fsync '%s': %s", path, strerror(err));
    return KILN_OK;
}

kiln_status kiln_file_fsync(const char *path) { return fsync_path(path, O_RDONLY); }

kiln_status kiln_fsync_parent_dir(const char *path)
{
    char buf[PATH_MAX];
    KILN_CHECK(kiln_path_format(buf, sizeof buf, "%s", path));
    return fsync_path(dirname(buf), O_RDONLY | O_DIRECTORY);
}

kiln_status kiln_commit_tmp_file(const char *tmp, const char *path)
{
    kiln_status st = kiln_file_fsync(tmp);
    if (st == KILN_OK && rename(tmp, path) != 0)
        st = KILN_ERROR(KILN_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != KILN_OK) {
        unlink(tmp);
        return st;
    }
    return kiln_fsync_parent_dir(path);
}

static kiln_status write_all(int fd, const char *path, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return KILN_ERROR(KILN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return KILN_OK;
}

kiln_status kiln_tmp_path(char *tmp, size_t len, const char *path)
{
    char host[256] = "host";
    gethostname(host, sizeof host - 1); /* many nodes may share the filesystem */
    host[sizeof host - 1] = '\0';
    return kiln_path_format(tmp, len, "%s.%s.%ld.tmp", path, host, (long)getpid());
}

kiln_status kiln_write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    KILN_CHECK(kiln_tmp_path(tmp, sizeof tmp, path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    kiln_status st = write_all(fd, tmp, data, len);
    if (close(fd) != 0 && st == KILN_OK)
        st = KILN_ERROR(KILN_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (st != KILN_OK) {
        unlink(tmp);
        return st;
    }
    return kiln_commit_tmp_file(tmp, path);
}

/* ---- digests and copies ---- */

enum { DIGEST_BLOCK = 1 << 20 };

static void to_hex(struct sha256_ctx *ctx, char hex[KILN_SHA256_HEX])
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(ctx, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void kiln_sha256_hex(const void *data, size_t len, char hex[KILN_SHA256_HEX])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    to_hex(&ctx, hex);
}

/* Reads all of in (named src) in blocks, digesting them and, when out >= 0, writing them there. */
static kiln_status pump(int in, const char *src, int out, const char *dst,
                        char hex[KILN_SHA256_HEX], uint64_t *size)
{
    uint8_t *buf = malloc(DIGEST_BLOCK);
    KILN_CHECK_ALLOC(buf);
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    uint64_t total = 0;
    kiln_status st = KILN_OK;
    for (;;) {
        ssize_t n = read(in, buf, DIGEST_BLOCK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) st = KILN_ERROR(KILN_ERR_IO, "cannot read '%s': %s", src, strerror(errno));
        if (n <= 0) break;
        sha256_update(&ctx, (size_t)n, buf);
        total += (uint64_t)n;
        if (out >= 0 && (st = write_all(out, dst, buf, (size_t)n)) != KILN_OK) break;
    }
    free(buf);
    if (st != KILN_OK) return st;
    to_hex(&ctx, hex);
    *size = total;
    return KILN_OK;
}

kiln_status kiln_file_sha256(const char *path, char hex[KILN_SHA256_HEX], uint64_t *size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    kiln_status st = pump(fd, path, -1, NULL, hex, size);
    close(fd);
    return st;
}

kiln_status kiln_file_copy(const char *src, const char *dst, char hex[KILN_SHA256_HEX],
                           uint64_t *size)
{
    int in = open(src, O_RDONLY);
    if (in < 0) return KILN_ERROR(KILN_ERR_IO, "cannot open '%s': %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (out < 0) {
        close(in);
        return KILN_ERROR(KILN_ERR_IO, "cannot create '%s': %s", dst, strerror(errno));
    }
    kiln_status st = pump(in, src, out, dst, hex, size);
    if (st == KILN_OK && fsync(out) != 0)
        st = KILN_ERROR(KILN_ERR_IO, "cannot fsync '%s': %s", dst, strerror(errno));
    if (close(out) != 0 && st == KILN_OK)
        st = KILN_ERROR(KILN_ERR_IO, "cannot close '%s': %s", dst, strerror(errno));
    close(in);
    if (st != KILN_OK) unlink(dst);
    return st;
}

kiln_status kiln_file_preallocate(const char *path, uint64_t bytes, const char *what)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return KILN_ERROR(KILN_ERR_IO, "%s '%s': %s", what, path, strerror(errno));
    struct stat sb;
    if (bytes == 0 && fstat(fd, &sb) == 0) bytes = (uint64_t)sb.st_size;
    int err = bytes ? posix_fallocate(fd, 0, (off_t)bytes) : 0;
    close(fd);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    struct statvfs fs;
    int have_fs = statvfs(dirname(dir), &fs) == 0;
    if (err == EOPNOTSUPP || err == EINVAL) /* no fallocate on this filesystem: free space must do */
        err = have_fs && (uint64_t)fs.f_bavail * fs.f_frsize < bytes ? ENOSPC : 0;
    if (err == 0) return KILN_OK;
    double free_mb = have_fs ? (double)fs.f_bavail * (double)fs.f_frsize / 1048576.0 : -1.0;
    return KILN_ERROR(KILN_ERR_IO, "%s '%s': %s: it needs %.1f MiB and its filesystem has %.1f "
                      "MiB free", what, path, strerror(err), (double)bytes / 1048576.0, free_mb);
}
