/*
 * iov.c - IOVector helpers.  See iov.h for the invariants.
 */
#include "util/iov.h"
#include <glib.h>
#include <string.h>

void iovec_init(IOVector *v, int hint)
{
    v->nalloc = hint > 0 ? hint : 4;
    v->iov = g_new(struct iovec, v->nalloc);
    v->niov = 0;
    v->size = 0;
}

void iovec_init_buf(IOVector *v, void *buf, size_t len)
{
    v->local.iov_base = buf;
    v->local.iov_len = len;
    v->iov = &v->local;
    v->niov = 1;
    v->nalloc = -1;
    v->size = len;
}

void iovec_add(IOVector *v, void *base, size_t len)
{
    g_assert(v->nalloc >= 0);
    if (len == 0) {
        return;
    }
    if (v->niov > 0) {
        struct iovec *last = &v->iov[v->niov - 1];
        if ((char *)last->iov_base + last->iov_len == (char *)base) {
            last->iov_len += len;
            v->size += len;
            return;
        }
    }
    if (v->niov == v->nalloc) {
        v->nalloc *= 2;
        v->iov = g_renew(struct iovec, v->iov, v->nalloc);
    }
    v->iov[v->niov].iov_base = base;
    v->iov[v->niov].iov_len = len;
    v->niov++;
    v->size += len;
}

void iovec_concat(IOVector *dst, const IOVector *src, size_t offset,
                  size_t len)
{
    g_assert(offset + len <= src->size);
    for (int i = 0; i < src->niov && len > 0; i++) {
        size_t l = src->iov[i].iov_len;
        if (offset >= l) {
            offset -= l;
            continue;
        }
        size_t n = MIN(l - offset, len);
        iovec_add(dst, (char *)src->iov[i].iov_base + offset, n);
        offset = 0;
        len -= n;
    }
}

void iovec_reset(IOVector *v)
{
    g_assert(v->nalloc >= 0);
    v->niov = 0;
    v->size = 0;
}

void iovec_destroy(IOVector *v)
{
    if (v->nalloc >= 0) {
        g_free(v->iov);
    }
    v->iov = NULL;
    v->niov = 0;
    v->size = 0;
}

size_t iovec_to_buf(const IOVector *v, size_t offset, void *buf, size_t len)
{
    size_t done = 0;
    for (int i = 0; i < v->niov && done < len; i++) {
        size_t l = v->iov[i].iov_len;
        if (offset >= l) {
            offset -= l;
            continue;
        }
        size_t n = MIN(l - offset, len - done);
        memcpy((char *)buf + done, (char *)v->iov[i].iov_base + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t iovec_from_buf(const IOVector *v, size_t offset, const void *buf,
                      size_t len)
{
    size_t done = 0;
    for (int i = 0; i < v->niov && done < len; i++) {
        size_t l = v->iov[i].iov_len;
        if (offset >= l) {
            offset -= l;
            continue;
        }
        size_t n = MIN(l - offset, len - done);
        memcpy((char *)v->iov[i].iov_base + offset, (const char *)buf + done, n);
        done += n;
        offset = 0;
    }
    return done;
}

void iovec_memset(const IOVector *v, size_t offset, int c, size_t len)
{
    for (int i = 0; i < v->niov && len > 0; i++) {
        size_t l = v->iov[i].iov_len;
        if (offset >= l) {
            offset -= l;
            continue;
        }
        size_t n = MIN(l - offset, len);
        memset((char *)v->iov[i].iov_base + offset, c, n);
        len -= n;
        offset = 0;
    }
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    /* Check word-aligned bulk with 64-bit loads, the edges bytewise. */
    while (len > 0 && ((uintptr_t)p & 7)) {
        if (*p) {
            return false;
        }
        p++;
        len--;
    }
    const uint64_t *w = (const uint64_t *)p;
    while (len >= 32) {
        if (w[0] | w[1] | w[2] | w[3]) {
            return false;
        }
        w += 4;
        len -= 32;
    }
    p = (const unsigned char *)w;
    while (len > 0) {
        if (*p) {
            return false;
        }
        p++;
        len--;
    }
    return true;
}

bool iovec_is_zero(const IOVector *v, size_t offset, size_t len)
{
    for (int i = 0; i < v->niov && len > 0; i++) {
        size_t l = v->iov[i].iov_len;
        if (offset >= l) {
            offset -= l;
            continue;
        }
        size_t n = MIN(l - offset, len);
        if (!buffer_is_zero((char *)v->iov[i].iov_base + offset, n)) {
            return false;
        }
        len -= n;
        offset = 0;
    }
    return true;
}
