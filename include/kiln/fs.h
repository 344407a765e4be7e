/* Small filesystem helpers: directories, durable replacement of small files. */
#ifndef KILN_FS_H
#define KILN_FS_H
#include <stddef.h>
#include "kiln/status.h"

/* mkdir -p; errors name the path. */
kiln_status kiln_mkdir_p(const char *path);
/* 1 if path exists. */
int kiln_path_exists(const char *path);
/* Write bytes to path.tmp, fsync, rename over path, fsync the directory. */
kiln_status kiln_write_file_atomic(const char *path, const void *data, size_t len);
/* fsync the directory that contains path. */
kiln_status kiln_fsync_parent_dir(const char *path);

#endif
