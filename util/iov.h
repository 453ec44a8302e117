/*
 * iov.h - IOVector: a scatter/gather list with a running byte count.
 *
 * Invariant: size == sum of iov[i].iov_len.  An IOVector either owns its
 * iovec array (iovec_init) or points at its embedded single entry
 * (iovec_init_buf), which needs no destroy.
 */
#ifndef XBLK_UTIL_IOV_H
#define XBLK_UTIL_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct IOVector {
    struct iovec *iov;
    int niov;
    int nalloc;          /* -1: iov points at local */
    size_t size;
    struct iovec local;
} IOVector;

void iovec_init(IOVector *v, int hint);
void iovec_init_buf(IOVector *v, void *buf, size_t len);
void iovec_add(IOVector *v, void *base, size_t len);
/* Appends the bytes [offset, offset+len) of src (no copy of data). */
void iovec_concat(IOVector *dst, const IOVector *src, size_t offset,
                  size_t len);
void iovec_reset(IOVector *v);
void iovec_destroy(IOVector *v);

size_t iovec_to_buf(const IOVector *v, size_t offset, void *buf, size_t len);
size_t iovec_from_buf(const IOVector *v, size_t offset, const void *buf,
                      size_t len);
void iovec_memset(const IOVector *v, size_t offset, int c, size_t len);
bool iovec_is_zero(const IOVector *v, size_t offset, size_t len);
bool buffer_is_zero(const void *buf, size_t len);

#endif
