/* Advisory file locks for writers that share a directory across processes and nodes (the
 * registry). fcntl record locks rather than flock: NFS and Lustre implement the former. */
#include "kiln/fs.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

kiln_status kiln_file_lock(const char *path, int *fd)
{
    *fd = -1;
    int f = open(path, O_RDWR | O_CREAT, 0666);
    if (f < 0) return KILN_ERROR(KILN_ERR_IO, "cannot open lock file '%s': %s", path, strerror(errno));
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file */
    int rc;
    while ((rc = fcntl(f, F_SETLKW, &lk)) != 0 && errno == EINTR) {}
    if (rc != 0) {
        int err = errno;
        close(f);
        return KILN_ERROR(KILN_ERR_IO, "cannot lock '%s': %s", path, strerror(err));
    }
    *fd = f;
    return KILN_OK;
}

void kiln_file_unlock(int fd)
{
    if (fd < 0) return;
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_UNLCK;
    lk.l_whence = SEEK_SET;
    fcntl(fd, F_SETLK, &lk);
    close(fd);
}
