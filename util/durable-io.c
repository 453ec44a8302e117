/*
 * durable-io.c - the seam under the metadata files' durable writes (see
 * durable-io.h).  Owns the table of operations; the default is the POSIX
 * calls, so production behaves exactly as direct calls would.
 */
#include "util/durable-io.h"
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <unistd.h>

static int posix_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags, mode);
}

static const DurableIoOps posix_ops = {
    .openat = posix_openat,
    .write = write,
    .fsync = fsync,
    .close = close,
    .renameat = renameat,
    .unlinkat = unlinkat,
};

static const DurableIoOps *ops = &posix_ops;

const DurableIoOps *durable_io_set_ops(const DurableIoOps *new_ops)
{
    const DurableIoOps *old = ops;
    ops = new_ops ? new_ops : &posix_ops;
    return old;
}

int durable_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return ops->openat(dirfd, path, flags, mode);
}

int durable_fsync(int fd)
{
    return ops->fsync(fd);
}

int durable_close(int fd)
{
    return ops->close(fd);
}

int durable_renameat(int olddirfd, const char *oldpath, int newdirfd,
                     const char *newpath)
{
    return ops->renameat(olddirfd, oldpath, newdirfd, newpath);
}

int durable_unlinkat(int dirfd, const char *path, int flags)
{
    return ops->unlinkat(dirfd, path, flags);
}

int durable_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = ops->write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? errno : EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int durable_replace(int fd, int dirfd, const char *tmp, const char *name,
                    const void *data, size_t len)
{
    int err = durable_write_all(fd, data, len);
    /* The data before the name: a rename that survives a crash must
     * never point at contents that did not. */
    if (!err && ops->fsync(fd) < 0) {
        err = errno;
    }
    if (ops->close(fd) < 0 && !err) {
        err = errno;
    }
    if (!err && ops->renameat(dirfd, tmp, dirfd, name) < 0) {
        err = errno;
    }
    if (err) {
        ops->unlinkat(dirfd, tmp, 0);
    }
    return err;
}

int durable_sync_parent(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = ops->openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                         0);
    if (fd < 0) {
        return errno;
    }
    int err = ops->fsync(fd) < 0 ? errno : 0;
    ops->close(fd);
    return err;
}
