/*
 * block-backend.c - BlockBackend: request admission (length checks, drain
 * hold-off), write-through, and the callback AIO API.  See block-backend.h.
 *
 * Invariant: a request counted in blk->in_flight has passed admission, so
 * it is also counted in the root node's in_flight until it completes.
 *
 * Overlapping write-like requests (write, write-zeroes, discard) are
 * serialized in submission order: each waits, before admission, for every
 * earlier one it overlaps.  Drivers split requests (qcow2 per cluster
 * run), so without this two overlapping writes could each win part of
 * the range; with it the result is as if the requests ran one by one.
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/vmstate.h"
#include "util/main-loop.h"
#include <errno.h>
#include <string.h>

/* Backends with a name are devices; they are listed for query-block. */
static GList *named_backends;

struct BlockBackend {
    BlockDriverState *root;
    char *name;
    bool enable_write_cache;
    bool allow_beyond_eof;
    unsigned in_flight;
    CoQueue queued_requests;    /* waiting for the root's drain to end */
    GList *writes;              /* BlkWrite, write-like, oldest first */
    uint64_t shared_perm;       /* what the device lets others have */
    int refcnt;
};

/* A write-like request from submission to completion. */
typedef struct BlkWrite {
    int64_t offset, bytes;
    CoQueue waiters;            /* later overlapping requests */
} BlkWrite;

BlockBackend *blk_new(void)
{
    BlockBackend *blk = g_new0(BlockBackend, 1);
    blk->enable_write_cache = true;
    blk->shared_perm = BLK_PERM_ALL;
    blk->refcnt = 1;
    co_queue_init(&blk->queued_requests);
    return blk;
}

BlockBackend *blk_new_open(const char *filename, BlockOpts *opts, int flags,
                           GError **errp)
{
    BlockDriverState *bs = bdrv_open(filename, opts, flags, errp);
    if (!bs) {
        return NULL;
    }
    BlockBackend *blk = blk_new();
    blk_insert_bs(blk, bs);
    bdrv_unref(bs);
    return blk;
}

void blk_insert_bs(BlockBackend *blk, BlockDriverState *bs)
{
    g_assert(!blk->root);
    bdrv_ref(bs);
    blk->root = bs;
    bs->backends = g_list_append(bs->backends, blk);
}

void blk_remove_bs(BlockBackend *blk)
{
    BlockDriverState *bs = blk->root;
    if (!bs) {
        return;
    }
    AIO_POLL_WHILE(blk->in_flight > 0);
    bs->backends = g_list_remove(bs->backends, blk);
    blk->root = NULL;
    bdrv_unref(bs);
}

/* No waiting here: the caller has both nodes drained, so nothing of
 * blk's is in flight and queued requests re-read blk->root on wake-up. */
void blk_replace_root(BlockBackend *blk, BlockDriverState *bs)
{
    BlockDriverState *old = blk->root;
    g_assert(old);
    bdrv_ref(bs);
    old->backends = g_list_remove(old->backends, blk);
    blk->root = bs;
    bs->backends = g_list_append(bs->backends, blk);
    bdrv_unref(old);
}

bool blk_set_shared_perm(BlockBackend *blk, uint64_t shared, GError **errp)
{
    uint64_t old = blk->shared_perm;
    blk->shared_perm = shared & BLK_PERM_ALL;
    if (blk->root && bdrv_refresh_perms(blk->root, errp) < 0) {
        blk->shared_perm = old;     /* the file driver kept its old locks */
        return false;
    }
    return true;
}

uint64_t blk_shared_perm(const BlockBackend *blk)
{
    return blk->shared_perm;
}

void blk_ref(BlockBackend *blk)
{
    blk->refcnt++;
}

void blk_unref(BlockBackend *blk)
{
    if (!blk || --blk->refcnt > 0) {
        return;
    }
    blk_remove_bs(blk);
    named_backends = g_list_remove(named_backends, blk);
    g_free(blk->name);
    g_free(blk);
}

BlockDriverState *blk_bs(BlockBackend *blk)
{
    return blk->root;
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name ? blk->name : "";
}

void blk_set_name(BlockBackend *blk, const char *name)
{
    g_free(blk->name);
    blk->name = g_strdup(name);
    named_backends = g_list_remove(named_backends, blk);
    if (name && *name) {
        named_backends = g_list_append(named_backends, blk);
    }
}

BlockBackend *blk_next(BlockBackend *blk)
{
    if (!blk) {
        return named_backends ? named_backends->data : NULL;
    }
    GList *l = g_list_find(named_backends, blk);
    return l && l->next ? l->next->data : NULL;
}

BlockBackend *blk_by_name(const char *name)
{
    for (GList *l = named_backends; l; l = l->next) {
        BlockBackend *blk = l->data;
        if (!strcmp(blk->name, name)) {
            return blk;
        }
    }
    return NULL;
}

void blk_set_enable_write_cache(BlockBackend *blk, bool wce)
{
    blk->enable_write_cache = wce;
}

bool blk_enable_write_cache(const BlockBackend *blk)
{
    return blk->enable_write_cache;
}

void blk_set_allow_beyond_eof(BlockBackend *blk, bool allow)
{
    blk->allow_beyond_eof = allow;
}

unsigned blk_in_flight(const BlockBackend *blk)
{
    return blk->in_flight;
}

/* Called by io.c when the root's last drained section ends. */
void blk_root_drained_end(BlockDriverState *bs)
{
    for (GList *l = bs->backends; l; l = l->next) {
        BlockBackend *blk = l->data;
        co_queue_restart_all(&blk->queued_requests);
    }
}

static int coroutine_fn blk_admit(BlockBackend *blk, int64_t offset,
                                  int64_t bytes)
{
    if (!blk->root) {
        return -ENOMEDIUM;
    }
    while (blk->root->quiesce_counter > 0) {
        co_queue_wait(&blk->queued_requests, NULL);
        if (!blk->root) {
            return -ENOMEDIUM;
        }
    }
    if (offset < 0 || bytes < 0) {
        return -EIO;
    }
    if (!blk->allow_beyond_eof) {
        int64_t len = bdrv_getlength(blk->root);
        if (len < 0) {
            return (int)len;
        }
        if (offset > len || len - offset < bytes) {
            return -EIO;
        }
    }
    blk->in_flight++;
    return 0;
}

static BlkWrite *blk_earlier_overlap(BlockBackend *blk, BlkWrite *w)
{
    for (GList *l = blk->writes; l && l->data != w; l = l->next) {
        BlkWrite *o = l->data;
        if (o->offset < w->offset + w->bytes &&
            w->offset < o->offset + o->bytes) {
            return o;
        }
    }
    return NULL;
}

/* Registers w, waits for the earlier overlapping writes, then admits. */
static int coroutine_fn blk_admit_write(BlockBackend *blk, BlkWrite *w,
                                        int64_t offset, int64_t bytes)
{
    BlkWrite *o;
    w->offset = offset;
    w->bytes = MAX(bytes, 1);
    co_queue_init(&w->waiters);
    blk->writes = g_list_append(blk->writes, w);
    while ((o = blk_earlier_overlap(blk, w))) {
        co_queue_wait(&o->waiters, NULL);
    }
    int ret = blk_admit(blk, offset, bytes);
    if (ret < 0) {
        blk->writes = g_list_remove(blk->writes, w);
        co_queue_restart_all(&w->waiters);
    }
    return ret;
}

static void blk_write_done(BlockBackend *blk, BlkWrite *w)
{
    blk->in_flight--;
    blk->writes = g_list_remove(blk->writes, w);
    co_queue_restart_all(&w->waiters);
}

int coroutine_fn blk_co_preadv(BlockBackend *blk, int64_t offset,
                               int64_t bytes, IOVector *qiov,
                               BdrvRequestFlags flags)
{
    int ret = blk_admit(blk, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_preadv(blk->root, offset, bytes, qiov, flags);
    blk->in_flight--;
    return ret;
}

int coroutine_fn blk_co_pwritev(BlockBackend *blk, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags)
{
    BlkWrite w;
    int ret = blk_admit_write(blk, &w, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    if (!blk->enable_write_cache) {
        flags |= BDRV_REQ_FUA;
    }
    ret = bdrv_co_pwritev(blk->root, offset, bytes, qiov, flags);
    blk_write_done(blk, &w);
    return ret;
}

int coroutine_fn blk_co_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, BdrvRequestFlags flags)
{
    BlkWrite w;
    int ret = blk_admit_write(blk, &w, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_pwrite_zeroes(blk->root, offset, bytes, flags);
    if (ret >= 0 && !blk->enable_write_cache) {
        ret = bdrv_co_flush(blk->root);
    }
    blk_write_done(blk, &w);
    return ret;
}

int coroutine_fn blk_co_pdiscard(BlockBackend *blk, int64_t offset,
                                 int64_t bytes)
{
    BlkWrite w;
    int ret = blk_admit_write(blk, &w, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_pdiscard(blk->root, offset, bytes);
    blk_write_done(blk, &w);
    return ret;
}

int coroutine_fn blk_co_flush(BlockBackend *blk)
{
    int ret = blk_admit(blk, 0, 0);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_flush(blk->root);
    blk->in_flight--;
    return ret;
}

int64_t blk_getlength(BlockBackend *blk)
{
    return blk->root ? bdrv_getlength(blk->root) : -ENOMEDIUM;
}

int blk_truncate(BlockBackend *blk, int64_t offset, bool exact,
                 PreallocMode prealloc, GError **errp)
{
    if (!blk->root) {
        error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    return bdrv_truncate(blk->root, offset, exact, prealloc, errp);
}

/* ---- the VM state area (block/vmstate.h) ---- */

/* Admitted like a flush: held while the root is drained, no length
 * check (the area lies beyond the disk). */
static int coroutine_fn blk_admit_vmstate(BlockBackend *blk, GError **errp)
{
    int ret = blk_admit(blk, 0, 0);
    if (ret < 0) {
        error_setg(errp, "No medium inserted");
    }
    return ret;
}

int coroutine_fn blk_co_writev_vmstate(BlockBackend *blk, IOVector *qiov,
                                       int64_t pos, GError **errp)
{
    int ret = blk_admit_vmstate(blk, errp);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_writev_vmstate(blk->root, qiov, pos, errp);
    blk->in_flight--;
    return ret;
}

int coroutine_fn blk_co_readv_vmstate(BlockBackend *blk, IOVector *qiov,
                                      int64_t pos, GError **errp)
{
    int ret = blk_admit_vmstate(blk, errp);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_readv_vmstate(blk->root, qiov, pos, errp);
    blk->in_flight--;
    return ret;
}

typedef struct {
    BlockBackend *blk;
    bool write;
    IOVector qiov;
    int64_t pos;
    GError **errp;
    int ret;
} BlkVmReq;

static void coroutine_fn blk_vm_entry(void *opaque)
{
    BlkVmReq *r = opaque;
    r->ret = r->write ? blk_co_writev_vmstate(r->blk, &r->qiov, r->pos,
                                              r->errp)
                      : blk_co_readv_vmstate(r->blk, &r->qiov, r->pos,
                                             r->errp);
}

static int blk_vm_sync(BlockBackend *blk, bool write, void *buf, int64_t pos,
                       int64_t size, GError **errp)
{
    if (size < 0) {
        error_setg(errp, "Invalid VM state request size");
        return -EINVAL;
    }
    BlkVmReq r = { .blk = blk, .write = write, .pos = pos, .errp = errp };
    iovec_init_buf(&r.qiov, buf, size);
    co_run_sync(blk_vm_entry, &r);
    return r.ret;
}

int blk_save_vmstate(BlockBackend *blk, const void *buf, int64_t pos,
                     int64_t size, GError **errp)
{
    return blk_vm_sync(blk, true, (void *)buf, pos, size, errp);
}

int blk_load_vmstate(BlockBackend *blk, void *buf, int64_t pos, int64_t size,
                     GError **errp)
{
    return blk_vm_sync(blk, false, buf, pos, size, errp);
}

/* ---- synchronous and callback wrappers ---- */

typedef enum { BLK_READ, BLK_WRITE, BLK_ZEROES, BLK_DISCARD, BLK_FLUSH } BlkOp;

typedef struct BlkReq {
    BlockBackend *blk;
    BlkOp op;
    int64_t offset, bytes;
    IOVector *qiov;
    IOVector local;
    BdrvRequestFlags flags;
    BlockCompletionFunc *cb;
    void *opaque;
    bool submitting;            /* still inside blk_aio_*() */
    int ret;
} BlkReq;

static int coroutine_fn blk_req_run(BlkReq *r)
{
    switch (r->op) {
    case BLK_READ:
        return blk_co_preadv(r->blk, r->offset, r->bytes, r->qiov, r->flags);
    case BLK_WRITE:
        return blk_co_pwritev(r->blk, r->offset, r->bytes, r->qiov, r->flags);
    case BLK_ZEROES:
        return blk_co_pwrite_zeroes(r->blk, r->offset, r->bytes, r->flags);
    case BLK_DISCARD:
        return blk_co_pdiscard(r->blk, r->offset, r->bytes);
    case BLK_FLUSH:
        return blk_co_flush(r->blk);
    }
    return -EINVAL;
}

static void coroutine_fn blk_sync_entry(void *opaque)
{
    BlkReq *r = opaque;
    r->ret = blk_req_run(r);
}

static int blk_sync(BlkReq *r)
{
    co_run_sync(blk_sync_entry, r);
    return r->ret;
}

int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf)
{
    BlkReq r = { .blk = blk, .op = BLK_READ, .offset = offset,
                 .bytes = bytes, .qiov = NULL };
    iovec_init_buf(&r.local, buf, bytes);
    r.qiov = &r.local;
    return blk_sync(&r);
}

int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes,
               const void *buf, BdrvRequestFlags flags)
{
    BlkReq r = { .blk = blk, .op = BLK_WRITE, .offset = offset,
                 .bytes = bytes, .flags = flags };
    iovec_init_buf(&r.local, (void *)buf, bytes);
    r.qiov = &r.local;
    return blk_sync(&r);
}

int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BdrvRequestFlags flags)
{
    BlkReq r = { .blk = blk, .op = BLK_ZEROES, .offset = offset,
                 .bytes = bytes, .flags = flags };
    return blk_sync(&r);
}

int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    BlkReq r = { .blk = blk, .op = BLK_DISCARD, .offset = offset,
                 .bytes = bytes };
    return blk_sync(&r);
}

int blk_flush(BlockBackend *blk)
{
    BlkReq r = { .blk = blk, .op = BLK_FLUSH };
    return blk_sync(&r);
}

static void blk_aio_complete(void *opaque)
{
    BlkReq *r = opaque;
    r->cb(r->opaque, r->ret);
    g_free(r);
}

static void coroutine_fn blk_aio_entry(void *opaque)
{
    BlkReq *r = opaque;
    r->ret = blk_req_run(r);
    /* Callers may rely on the callback never running before return. */
    if (r->submitting) {
        aio_bh_schedule(blk_aio_complete, r);
    } else {
        blk_aio_complete(r);
    }
}

static void blk_aio_submit(BlkReq *tmpl)
{
    BlkReq *r = g_memdup2(tmpl, sizeof(*r));
    r->submitting = true;
    co_enter(co_create(blk_aio_entry, r));
    r->submitting = false;   /* r is freed only by the BH if it finished */
}

void blk_aio_preadv(BlockBackend *blk, int64_t offset, IOVector *qiov,
                    BdrvRequestFlags flags, BlockCompletionFunc *cb,
                    void *opaque)
{
    BlkReq r = { .blk = blk, .op = BLK_READ, .offset = offset,
                 .bytes = qiov->size, .qiov = qiov, .flags = flags,
                 .cb = cb, .opaque = opaque };
    blk_aio_submit(&r);
}

void blk_aio_pwritev(BlockBackend *blk, int64_t offset, IOVector *qiov,
                     BdrvRequestFlags flags, BlockCompletionFunc *cb,
                     void *opaque)
{
    BlkReq r = { .blk = blk, .op = BLK_WRITE, .offset = offset,
                 .bytes = qiov->size, .qiov = qiov, .flags = flags,
                 .cb = cb, .opaque = opaque };
    blk_aio_submit(&r);
}

void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    BlkReq r = { .blk = blk, .op = BLK_FLUSH, .cb = cb, .opaque = opaque };
    blk_aio_submit(&r);
}

void blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BlockCompletionFunc *cb, void *opaque)
{
    BlkReq r = { .blk = blk, .op = BLK_DISCARD, .offset = offset,
                 .bytes = bytes, .cb = cb, .opaque = opaque };
    blk_aio_submit(&r);
}
