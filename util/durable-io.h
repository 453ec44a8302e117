/*
 * durable-io.h - the file operations that make small metadata files
 * durable (DESIGN rule 2): the transaction records beside images
 * (block/txn-journal.c) and the domain-snapshot catalog
 * (snapshot/catalog.c).  Both replace a file the same way - a fresh
 * temporary file is written, fsynced, closed and renamed over the target,
 * then the folder is fsynced - and remove one by unlink plus an fsync of
 * the folder.
 *
 * Every call that changes a file or a folder (create, write, fsync,
 * rename, unlink) goes through one table of functions, DurableIoOps.
 * Production never changes it: the table is the POSIX calls.  It is the
 * seam for power-loss tests (tests/block/powerloss.h), which put a
 * simulated volatile file system under it: what was not fsynced - a
 * file's data, or a create, rename or unlink whose folder was not fsynced
 * - may be lost when the simulated power fails.  Reads need no seam: the
 * simulation keeps the real files equal to what the process would see.
 *
 * The table is process-global, replaced by a test before the operations
 * it watches and restored after (durable_io_set_ops(NULL)), on the thread
 * that runs them; the calls themselves may run on any thread.  Blocking:
 * callers keep them off DESIGN's main loop as they did before (workers),
 * or accept a few fsyncs where they already did.
 */
#ifndef XBLK_UTIL_DURABLE_IO_H
#define XBLK_UTIL_DURABLE_IO_H

#include <stddef.h>
#include <sys/types.h>

/* The operations, with POSIX's signatures and conventions (-1 and errno
 * on failure).  fsync also serves folders: a descriptor opened with
 * O_DIRECTORY. */
typedef struct DurableIoOps {
    int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    int (*fsync)(int fd);
    int (*close)(int fd);
    int (*renameat)(int olddirfd, const char *oldpath, int newdirfd,
                    const char *newpath);
    int (*unlinkat)(int dirfd, const char *path, int flags);
} DurableIoOps;

/* Installs ops (NULL: the POSIX calls); returns the table in use before.
 * Tests only. */
const DurableIoOps *durable_io_set_ops(const DurableIoOps *ops);

/* The table's operations, POSIX conventions. */
int durable_openat(int dirfd, const char *path, int flags, mode_t mode);
int durable_fsync(int fd);
int durable_close(int fd);
int durable_renameat(int olddirfd, const char *oldpath, int newdirfd,
                     const char *newpath);
int durable_unlinkat(int dirfd, const char *path, int flags);

/* Writes all of buf (retrying short writes and EINTR): 0 or an errno
 * value (EIO for a write that made no progress). */
int durable_write_all(int fd, const void *buf, size_t len);

/* The body of an atomic replacement: data into fd (a fresh temporary
 * file named tmp in dirfd), fsync, close, rename tmp over name in dirfd.
 * fd is closed in every case and tmp removed on failure.  Returns 0 once
 * name holds the new contents (visible, but durable only after the
 * caller's fsync of the folder) or an errno value. */
int durable_replace(int fd, int dirfd, const char *tmp, const char *name,
                    const void *data, size_t len);

/* fsync of the folder that holds path (a name made, renamed or removed
 * there becomes durable): 0 or an errno value. */
int durable_sync_parent(const char *path);

#endif
