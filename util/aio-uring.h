/*
 * aio-uring.h - one io_uring per process, driven by the main loop.
 *
 * A coroutine on the loop thread queues one operation, yields, and is
 * resumed on the loop with the operation's result (bytes or -errno).
 * Queued operations are submitted together once per loop iteration;
 * completions are announced on an eventfd watched by a GSource.
 *
 * Without CONFIG_IO_URING (no liburing at build time) aio_uring_available()
 * is false and the other calls must not be made.
 */
#ifndef XBLK_UTIL_AIO_URING_H
#define XBLK_UTIL_AIO_URING_H

#include "util/coroutine.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Sets the ring up on first use; false if it cannot be (no liburing, the
 * kernel refuses, or the caller is not the loop thread that owns it). */
bool aio_uring_available(void);

/* One preadv/pwritev; iov must stay valid until it returns. */
int coroutine_fn aio_uring_rw(int fd, bool write, const struct iovec *iov,
                              int niov, int64_t offset);
int coroutine_fn aio_uring_fdatasync(int fd);
int coroutine_fn aio_uring_fallocate(int fd, int mode, int64_t offset,
                                     int64_t len);

#endif
