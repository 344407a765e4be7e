/* Small filesystem helpers: paths, directories, durable replacement of files. */
#ifndef KILN_FS_H
#define KILN_FS_H
#include <stddef.h>
#include <stdint.h>
#include "kiln/status.h"

/* snprintf for paths: a result that does not fit is KILN_ERR_ARG, not a silent truncation. */
kiln_status kiln_path_format(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 if path exists. */
int kiln_path_exists(const char *path);
/* mkdir -p; errors name the path. */
kiln_status kiln_mkdir_p(const char *path);
/* fsync one file. */
kiln_status kiln_file_fsync(const char *path);
/* fsync the directory that contains path. */
kiln_status kiln_fsync_parent_dir(const char *path);
/* The temporary name a writer of path uses: path.HOST.PID.tmp, so that two processes writing
 * the same path at once (two imports of one cache file, say) never write into the same file;
 * the later rename wins whole. */
kiln_status kiln_tmp_path(char *tmp, size_t len, const char *path);
/* tmp is complete and closed: fsync it, rename it over path, fsync the directory. After a
 * crash path holds either its old or its new content. tmp is removed when this fails. */
kiln_status kiln_commit_tmp_file(const char *tmp, const char *path);
/* Write bytes to kiln_tmp_path(path) and commit it over path as above. */
kiln_status kiln_write_file_atomic(const char *path, const void *data, size_t len);

/* SHA-256 of a file as 64 lowercase hex digits (+ NUL), and its size. */
#define KILN_SHA256_HEX 65
kiln_status kiln_file_sha256(const char *path, char hex[KILN_SHA256_HEX], uint64_t *size);
void kiln_sha256_hex(const void *data, size_t len, char hex[KILN_SHA256_HEX]);
/* Copy src to dst (created or truncated, then fsynced) and digest the bytes in the same pass.
 * dst is removed when anything fails. */
kiln_status kiln_file_copy(const char *src, const char *dst, char hex[KILN_SHA256_HEX],
                           uint64_t *size);

/* Takes `bytes` of disk for path (0: its current size, filling its holes), so that later writes
 * into that range cannot fail for space: a full disk is found before a collective write, where
 * one rank failing alone would leave the others waiting. KILN_ERR_IO naming `what`, the path,
 * the bytes needed and the space free ("No space left on device"). */
kiln_status kiln_file_preallocate(const char *path, uint64_t bytes, const char *what);

/* Exclusive advisory lock on a lock file (created if missing), held until unlock: POSIX fcntl
 * locks, which NFS and Lustre honour across nodes. Waits for the current holder. One lock
 * per file per process: closing any descriptor of the file would drop it. */
kiln_status kiln_file_lock(const char *path, int *fd);
void kiln_file_unlock(int fd);

/* Exclusive outputs (src/core/output_lock.c): hold `output` (a file or directory, which need not
 * exist yet) for this process through OUTPUT.lock beside it, which says who holds it. Fails at
 * once, or after wait_s seconds, with KILN_ERR_CONFLICT naming the holder (pid, host, Slurm
 * job, since when) and `what` ("--output", "train.out_dir"). A holder that died holds nothing.
 * Release removes the lock file. */
typedef struct kiln_output_lock kiln_output_lock;
kiln_status kiln_output_lock_acquire(const char *output, const char *what, double wait_s,
                                     kiln_output_lock **out);
void kiln_output_lock_release(kiln_output_lock *l);

#endif
