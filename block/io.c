/*
 * io.c - the generic request path: every request enters here, is counted
 * in bs->in_flight for its whole life, and reaches the driver; plus the
 * synchronous wrappers and drained sections.
 *
 * Invariant: while bs->quiesce_counter > 0, no BlockBackend submits new
 * requests to bs (they wait in the backend), so in_flight only falls.
 * Driver-internal requests (qcow2 reading its L2 tables from `file`) are
 * allowed during a drain: they belong to requests already counted above.
 */
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "util/cutils.h"
#include "util/main-loop.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bdrv_inc_in_flight(BlockDriverState *bs)
{
    bs->in_flight++;
}

/* Wakes drains waiting on bs or on any ancestor (they count subtrees). */
static void bdrv_wake_drainers(BlockDriverState *bs)
{
    if (!co_queue_empty(&bs->drain_waiters)) {
        co_queue_restart_all(&bs->drain_waiters);
    }
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        bdrv_wake_drainers(c->parent);
    }
}

void bdrv_dec_in_flight(BlockDriverState *bs)
{
    g_assert(bs->in_flight > 0);
    bs->in_flight--;
    bdrv_wake_drainers(bs);
}

void *bdrv_try_blockalign(BlockDriverState *bs, size_t size)
{
    void *p;
    size_t align = MAX(bs ? bs->buf_alignment : 1, 4096);
    if (posix_memalign(&p, align, MAX(size, 1))) {
        return NULL;
    }
    return p;
}

void *bdrv_blockalign(BlockDriverState *bs, size_t size)
{
    void *p = bdrv_try_blockalign(bs, size);
    if (!p) {
        g_error("out of memory allocating %zu bytes", size);
    }
    return p;
}

void bdrv_vfree(void *p)
{
    free(p);
}

/*
 * Dirty bitmaps see every write, write-zeroes and discard that reached the
 * driver, failed ones included: a failed request may have changed part
 * of the range, and a spurious bit only costs a copy (as QEMU does).
 * Inline so that a node without bitmaps pays one test.
 */
static inline void bdrv_mark_dirty(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes)
{
    if (bs->dirty_bitmaps) {
        bdrv_dirty_bitmap_mark(bs, offset, bytes);
    }
}

static int bdrv_check_byte_request(int64_t offset, int64_t bytes)
{
    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    return 0;
}

int coroutine_fn bdrv_co_preadv(BlockDriverState *bs, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags)
{
    int ret = bdrv_check_byte_request(offset, bytes);
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    g_assert(!qiov || (int64_t)qiov->size == bytes);
    bdrv_inc_in_flight(bs);
    ret = bs->drv->co_preadv(bs, offset, bytes, qiov, flags);
    bs->rd_bytes += bytes;
    bs->rd_ops++;
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_pwritev(BlockDriverState *bs, int64_t offset,
                                 int64_t bytes, IOVector *qiov,
                                 BdrvRequestFlags flags)
{
    int ret = bdrv_check_byte_request(offset, bytes);
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    /* Filters pass the flag down; anything else must compress itself. */
    if ((flags & BDRV_REQ_WRITE_COMPRESSED) &&
        !bs->drv->supports_compressed_writes && !bs->drv->is_filter) {
        return -ENOTSUP;
    }
    g_assert((int64_t)qiov->size == bytes);
    bdrv_inc_in_flight(bs);
    ret = bs->drv->co_pwritev(bs, offset, bytes, qiov, flags);
    bdrv_mark_dirty(bs, offset, bytes);
    bs->wr_bytes += bytes;
    bs->wr_ops++;
    if (ret >= 0 && (flags & BDRV_REQ_FUA)) {
        ret = bdrv_co_flush(bs);
    }
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_pread(BlockDriverState *bs, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags)
{
    IOVector qiov;
    iovec_init_buf(&qiov, buf, bytes);
    return bdrv_co_preadv(bs, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite(BlockDriverState *bs, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags)
{
    IOVector qiov;
    iovec_init_buf(&qiov, (void *)buf, bytes);
    return bdrv_co_pwritev(bs, offset, bytes, &qiov, flags);
}

#define ZERO_BOUNCE_MAX (1 << 20)

int coroutine_fn bdrv_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags)
{
    int ret = bdrv_check_byte_request(offset, bytes);
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    if (!(bs->open_flags & BDRV_O_UNMAP)) {
        flags &= ~BDRV_REQ_MAY_UNMAP;
    }
    bdrv_inc_in_flight(bs);
    int64_t req_offset = offset, req_bytes = bytes;
    ret = -ENOTSUP;
    if (bs->drv->co_pwrite_zeroes) {
        ret = bs->drv->co_pwrite_zeroes(bs, offset, bytes, flags);
    }
    if (ret == -ENOTSUP && !(flags & BDRV_REQ_NO_FALLBACK)) {
        /* Fall back to writing a buffer of zeroes. */
        size_t chunk = MIN(bytes, ZERO_BOUNCE_MAX);
        void *buf = bdrv_blockalign(bs, chunk);
        memset(buf, 0, chunk);
        ret = 0;
        while (bytes > 0 && ret >= 0) {
            size_t n = MIN((int64_t)chunk, bytes);
            IOVector qiov;
            iovec_init_buf(&qiov, buf, n);
            ret = bs->drv->co_pwritev(bs, offset, n, &qiov,
                                      flags & BDRV_REQ_FUA);
            offset += n;
            bytes -= n;
        }
        bdrv_vfree(buf);
    }
    bdrv_mark_dirty(bs, req_offset, req_bytes);
    /* Drivers do not honour FUA on zeroes: flush here, as pwritev does. */
    if (ret >= 0 && (flags & BDRV_REQ_FUA)) {
        ret = bdrv_co_flush(bs);
    }
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes)
{
    int ret = bdrv_check_byte_request(offset, bytes);
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    if (!(bs->open_flags & BDRV_O_UNMAP) || !bs->drv->co_pdiscard) {
        return 0;       /* discard is a hint: ignoring it is correct */
    }
    bdrv_inc_in_flight(bs);
    ret = bs->drv->co_pdiscard(bs, offset, bytes);
    bdrv_mark_dirty(bs, offset, bytes);
    bdrv_dec_in_flight(bs);
    return ret == -ENOTSUP ? 0 : ret;
}

int coroutine_fn bdrv_co_flush(BlockDriverState *bs)
{
    int ret = 0;
    bdrv_inc_in_flight(bs);
    bs->flush_ops++;
    if (bs->drv->co_flush_to_os) {
        ret = bs->drv->co_flush_to_os(bs);
    }
    if (ret >= 0 && bs->drv->co_flush_to_disk &&
        !(bs->open_flags & BDRV_O_NO_FLUSH) && !bs->read_only) {
        ret = bs->drv->co_flush_to_disk(bs);
    }
    if (ret >= 0 && bs->file && !bs->read_only) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file)
{
    int64_t len = bdrv_getlength(bs);
    int64_t m = 0;
    BlockDriverState *f = NULL;
    if (len < 0) {
        return (int)len;
    }
    if (offset >= len) {
        *pnum = 0;
        return BDRV_BLOCK_EOF;
    }
    bytes = MIN(bytes, len - offset);
    int ret;
    bdrv_inc_in_flight(bs);
    if (!bs->drv->co_block_status) {
        *pnum = bytes;
        ret = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
    } else {
        ret = bs->drv->co_block_status(bs, offset, bytes, pnum, &m, &f);
    }
    bdrv_dec_in_flight(bs);
    if (ret >= 0 && offset + *pnum == len) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (map) {
        *map = m;
    }
    if (file) {
        *file = f;
    }
    return ret;
}

int coroutine_fn bdrv_co_truncate(BlockDriverState *bs, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  GError **errp)
{
    if (offset < 0) {
        error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!bs->drv->co_truncate) {
        error_setg(errp, "Image format driver does not support resize");
        return -ENOTSUP;
    }
    bdrv_inc_in_flight(bs);
    int ret = bs->drv->co_truncate(bs, offset, exact, prealloc, errp);
    if (ret >= 0 && bs->dirty_bitmaps) {
        bdrv_dirty_bitmap_truncate_all(bs, offset);
    }
    bdrv_dec_in_flight(bs);
    return ret;
}

int64_t bdrv_getlength(BlockDriverState *bs)
{
    if (bs->drv->get_length) {
        return bs->drv->get_length(bs);
    }
    return bs->file ? bdrv_getlength(bs->file->bs) : -ENOMEDIUM;
}

int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    if (bs->drv->get_allocated_file_size) {
        return bs->drv->get_allocated_file_size(bs);
    }
    return bs->file ? bdrv_get_allocated_file_size(bs->file->bs) : -ENOTSUP;
}

/* ---- synchronous wrappers ---- */

typedef struct {
    BlockDriverState *bs;
    int64_t offset, bytes;
    void *buf;
    BdrvRequestFlags flags;
    int64_t *pnum, *map;
    BlockDriverState **file;
    int *depth;
    bool exact;
    PreallocMode prealloc;
    GError **errp;
    int ret;
} SyncReq;

static void coroutine_fn sync_pread_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_pread(r->bs, r->offset, r->bytes, r->buf, r->flags);
}

static void coroutine_fn sync_pwrite_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_pwrite(r->bs, r->offset, r->bytes, r->buf, r->flags);
}

static void coroutine_fn sync_zeroes_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_pwrite_zeroes(r->bs, r->offset, r->bytes, r->flags);
}

static void coroutine_fn sync_discard_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_pdiscard(r->bs, r->offset, r->bytes);
}

static void coroutine_fn sync_flush_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_flush(r->bs);
}

static void coroutine_fn sync_status_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_block_status(r->bs, r->offset, r->bytes, r->pnum,
                                  r->map, r->file);
}

static void coroutine_fn sync_truncate_entry(void *opaque)
{
    SyncReq *r = opaque;
    r->ret = bdrv_co_truncate(r->bs, r->offset, r->exact, r->prealloc,
                              r->errp);
}

int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    SyncReq r = { .bs = bs, .offset = offset, .bytes = bytes, .buf = buf };
    co_run_sync(sync_pread_entry, &r);
    return r.ret;
}

int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                const void *buf)
{
    SyncReq r = { .bs = bs, .offset = offset, .bytes = bytes,
                  .buf = (void *)buf };
    co_run_sync(sync_pwrite_entry, &r);
    return r.ret;
}

int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                       BdrvRequestFlags flags)
{
    SyncReq r = { .bs = bs, .offset = offset, .bytes = bytes, .flags = flags };
    co_run_sync(sync_zeroes_entry, &r);
    return r.ret;
}

int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    SyncReq r = { .bs = bs, .offset = offset, .bytes = bytes };
    co_run_sync(sync_discard_entry, &r);
    return r.ret;
}

int bdrv_flush(BlockDriverState *bs)
{
    SyncReq r = { .bs = bs };
    co_run_sync(sync_flush_entry, &r);
    return r.ret;
}

int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    SyncReq r = { .bs = bs, .offset = offset, .bytes = bytes, .pnum = pnum,
                  .map = map, .file = file };
    co_run_sync(sync_status_entry, &r);
    return r.ret;
}

int bdrv_block_status_above(BlockDriverState *bs, int64_t offset,
                            int64_t bytes, int64_t *pnum, int64_t *map,
                            BlockDriverState **file, int *depth)
{
    int d = 0;
    int64_t limit = bytes;
    for (BlockDriverState *p = bs; p; p = bdrv_backing_bs(p), d++) {
        int64_t n = 0;
        int64_t plen = bdrv_getlength(p);
        if (plen >= 0 && offset >= plen) {
            /* Beyond this layer's end everything reads as zeroes. */
            *pnum = limit;
            *depth = d;
            if (map) {
                *map = 0;
            }
            if (file) {
                *file = NULL;
            }
            return BDRV_BLOCK_ZERO | (p == bs ? BDRV_BLOCK_ALLOCATED : 0);
        }
        int ret = bdrv_block_status(p, offset, limit, &n, map, file);
        if (ret < 0) {
            return ret;
        }
        if (ret & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO) ||
            !bdrv_backing_bs(p)) {
            *pnum = n;
            *depth = d;
            return ret;
        }
        limit = n;    /* unallocated here: look underneath, same extent */
    }
    g_assert_not_reached();
}

int bdrv_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                  PreallocMode prealloc, GError **errp)
{
    SyncReq r = { .bs = bs, .offset = offset, .exact = exact,
                  .prealloc = prealloc, .errp = errp };
    co_run_sync(sync_truncate_entry, &r);
    return r.ret;
}

/* ---- drain ---- */

void blk_root_drained_end(BlockDriverState *bs);

static unsigned bdrv_subtree_in_flight(const BlockDriverState *bs)
{
    unsigned n = bs->in_flight;
    if (bs->file) {
        n += bdrv_subtree_in_flight(bs->file->bs);
    }
    if (bs->backing) {
        n += bdrv_subtree_in_flight(bs->backing->bs);
    }
    return n;
}

unsigned bdrv_in_flight(const BlockDriverState *bs)
{
    return bdrv_subtree_in_flight(bs);
}

bool bdrv_is_quiesced(const BlockDriverState *bs)
{
    return bs->quiesce_counter > 0;
}

static void bdrv_quiesce_subtree(BlockDriverState *bs)
{
    bs->quiesce_counter++;
    if (bs->file) {
        bdrv_quiesce_subtree(bs->file->bs);
    }
    if (bs->backing) {
        bdrv_quiesce_subtree(bs->backing->bs);
    }
}

void bdrv_drained_begin(BlockDriverState *bs)
{
    bdrv_quiesce_subtree(bs);
    if (co_in_coroutine()) {
        while (bdrv_subtree_in_flight(bs) > 0) {
            co_queue_wait(&bs->drain_waiters, NULL);
        }
    } else {
        AIO_POLL_WHILE(bdrv_subtree_in_flight(bs) > 0);
    }
}

void bdrv_drained_end(BlockDriverState *bs)
{
    g_assert(bs->quiesce_counter > 0);
    if (--bs->quiesce_counter == 0) {
        blk_root_drained_end(bs);
    }
    if (bs->file) {
        bdrv_drained_end(bs->file->bs);
    }
    if (bs->backing) {
        bdrv_drained_end(bs->backing->bs);
    }
}
