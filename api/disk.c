/*
 * disk.c - disks (include/xblk/xblk-disk.h): a node graph opened from
 * -blockdev options (block/blockdev.h's parser), behind a BlockBackend
 * whose asynchronous requests become the host's XblkIoDone callbacks.
 *
 * Invariants: a disk's in_flight counts requests between submission and
 * the host's callback; a callback never runs inside the call that
 * submitted its request (a request that completes at once is deferred to
 * a bottom half); close and drain run the loop until in_flight is 0.
 */
#include "api/internal.h"
#include "block/block.h"
#include "block/block_int.h"
#include "block/blockdev.h"
#include "block/dirty-bitmap.h"
#include "util/iov.h"
#include "util/main-loop.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>

typedef struct DiskReq {
    XblkDisk *disk;
    IOVector qiov;
    XblkIoDone *done;
    void *opaque;
    int ret;
    bool submitting;            /* inside blk_aio_*: defer the callback */
    bool completed_early;
} DiskReq;

static bool need_engine(XblkEngine *engine, XblkError **err)
{
    if (!engine || engine != xblk_api_engine()) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no such engine");
        return false;
    }
    return true;
}

XblkDisk *xblk_disk_open(XblkEngine *engine, const char *options,
                         XblkError **err)
{
    if (!need_engine(engine, err)) {
        return NULL;
    }
    if (!options || !*options) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no disk options given");
        return NULL;
    }
    GError *gerr = NULL;
    BlockOpts *opts = blockdev_parse_arg(options, &gerr);
    if (!opts) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "%s", gerr->message);
        g_error_free(gerr);
        return NULL;
    }
    if (!bopts_get(opts, "node-name")) {
        bopts_free(opts);
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "'node-name' must be specified for the root node");
        return NULL;
    }
    const char *name = bopts_get(opts, "node-name");
    if (bdrv_find_node(name)) {
        xblk_api_error(err, XBLK_ERROR_EXISTS,
                       "Duplicate nodes with node-name='%s'", name);
        bopts_free(opts);
        return NULL;
    }
    /* Read-write unless the options say read-only=on, as -blockdev. */
    BlockDriverState *bs = bdrv_open(NULL, opts, BDRV_O_RDWR, &gerr);
    if (!bs) {
        xblk_api_error_from(err, gerr);
        return NULL;
    }
    XblkDisk *d = g_new0(XblkDisk, 1);
    d->engine = engine;
    d->blk = blk_new();
    blk_insert_bs(d->blk, bs);
    bdrv_unref(bs);                 /* the backend holds it now */
    engine->disks = g_list_append(engine->disks, d);
    return d;
}

void xblk_disk_drain(XblkDisk *d)
{
    if (d) {
        AIO_POLL_WHILE(d->in_flight > 0);
    }
}

void xblk_disk_close(XblkDisk *d)
{
    if (!d) {
        return;
    }
    xblk_disk_drain(d);
    BlockDriverState *bs = blk_bs(d->blk);
    if (bs && !bs->read_only) {
        bdrv_flush(bs);
    }
    blk_unref(d->blk);
    d->engine->disks = g_list_remove(d->engine->disks, d);
    g_free(d->name);
    g_free(d);
}

BlockBackend *xblk_api_disk_blk(XblkDisk *d)
{
    return d ? d->blk : NULL;
}

XblkDisk *xblk_api_disk_of_blk(BlockBackend *blk)
{
    XblkEngine *e = xblk_api_engine();
    for (GList *l = e ? e->disks : NULL; l; l = l->next) {
        XblkDisk *d = l->data;
        if (d->blk == blk) {
            return d;
        }
    }
    return NULL;
}

XblkDisk *xblk_api_disk_wrap(XblkEngine *engine, BlockBackend *blk,
                             const char *name)
{
    XblkDisk *d = g_new0(XblkDisk, 1);
    d->engine = engine;
    d->blk = blk;
    blk_ref(blk);
    d->name = g_strdup(name);
    engine->disks = g_list_append(engine->disks, d);
    return d;
}

const char *xblk_disk_name(const XblkDisk *d)
{
    if (d && d->name) {
        return d->name;
    }
    BlockDriverState *bs = d ? blk_bs(d->blk) : NULL;
    return bs ? bs->node_name : NULL;
}

int64_t xblk_disk_length(XblkDisk *d, XblkError **err)
{
    if (!d) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no disk");
        return -1;
    }
    int64_t len = blk_getlength(d->blk);
    if (len < 0) {
        xblk_api_error(err, XBLK_ERROR_IO, "cannot get the disk's length: "
                       "%s", g_strerror((int)-len));
    }
    return len;
}

bool xblk_disk_read_only(const XblkDisk *d)
{
    BlockDriverState *bs = d ? blk_bs(d->blk) : NULL;
    return !bs || bs->read_only;
}

/* ---- requests ---- */

static void req_deliver(void *opaque)
{
    DiskReq *r = opaque;
    XblkDisk *d = r->disk;
    r->done(r->opaque, r->ret);
    d->in_flight--;
    g_free(r);
}

static void req_complete(void *opaque, int ret)
{
    DiskReq *r = opaque;
    r->ret = ret;
    if (r->submitting) {
        r->completed_early = true;
        return;
    }
    req_deliver(r);
}

static bool req_check(XblkDisk *d, uint64_t offset, const void *buf,
                      size_t bytes, bool write, XblkIoDone *done,
                      XblkError **err)
{
    if (!d || !done || (!buf && bytes)) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "a request needs a disk, a buffer and a callback");
        return false;
    }
    if (write && xblk_disk_read_only(d)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "disk '%s' is read-only",
                       xblk_disk_name(d));
        return false;
    }
    int64_t len = blk_getlength(d->blk);
    if (len < 0 || offset > (uint64_t)len || bytes > (uint64_t)len - offset) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "request [%" G_GUINT64_FORMAT ", +%zu) lies past the "
                       "end of disk '%s'", offset, bytes, xblk_disk_name(d));
        return false;
    }
    return true;
}

static DiskReq *req_new(XblkDisk *d, void *buf, size_t bytes,
                        XblkIoDone *done, void *opaque)
{
    DiskReq *r = g_new0(DiskReq, 1);
    r->disk = d;
    r->done = done;
    r->opaque = opaque;
    r->submitting = true;
    iovec_init_buf(&r->qiov, buf, bytes);
    d->in_flight++;
    return r;
}

static void req_submitted(DiskReq *r)
{
    r->submitting = false;
    if (r->completed_early) {
        aio_bh_schedule(req_deliver, r);
    }
}

bool xblk_disk_read(XblkDisk *d, uint64_t offset, void *buf, size_t bytes,
                    XblkIoDone *done, void *opaque, XblkError **err)
{
    if (!req_check(d, offset, buf, bytes, false, done, err)) {
        return false;
    }
    DiskReq *r = req_new(d, buf, bytes, done, opaque);
    blk_aio_preadv(d->blk, (int64_t)offset, &r->qiov, 0, req_complete, r);
    req_submitted(r);
    return true;
}

bool xblk_disk_write(XblkDisk *d, uint64_t offset, const void *buf,
                     size_t bytes, XblkIoDone *done, void *opaque,
                     XblkError **err)
{
    if (!req_check(d, offset, buf, bytes, true, done, err)) {
        return false;
    }
    /* The request never writes into buf: the cast only fits IOVector. */
    DiskReq *r = req_new(d, (void *)buf, bytes, done, opaque);
    blk_aio_pwritev(d->blk, (int64_t)offset, &r->qiov, 0, req_complete, r);
    req_submitted(r);
    return true;
}

bool xblk_disk_flush(XblkDisk *d, XblkIoDone *done, void *opaque,
                     XblkError **err)
{
    if (!d || !done) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "a flush needs a disk and a callback");
        return false;
    }
    DiskReq *r = req_new(d, NULL, 0, done, opaque);
    blk_aio_flush(d->blk, req_complete, r);
    req_submitted(r);
    return true;
}

/* ---- the medium's file, dirty bitmaps ---- */

const char *xblk_disk_filename(XblkDisk *d)
{
    BlockDriverState *bs = d ? blk_bs(d->blk) : NULL;
    return bs ? bdrv_get_filename(bs) : NULL;
}

/* The medium (active layer) of a disk that bitmap calls act on. */
static BlockDriverState *bitmap_node(XblkDisk *d, XblkError **err)
{
    if (!d) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no disk");
        return NULL;
    }
    BlockDriverState *bs = blk_bs(d->blk);
    if (!bs) {
        const char *name = xblk_disk_name(d);
        xblk_api_error(err, XBLK_ERROR_INVALID, "Device '%s' has no medium",
                       name ? name : "");
    }
    return bs;
}

static bool bitmap_name_ok(const char *name, XblkError **err)
{
    if (!name || !*name) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "a bitmap needs a name");
        return false;
    }
    return true;
}

/* A bitmap the host can see: named, and not a transaction's hidden one
 * (both invisible to QMP's query-block too). */
static BdrvDirtyBitmap *bitmap_lookup(BlockDriverState *bs, const char *name)
{
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(bs, name);
    return bm && !bdrv_dirty_bitmap_hidden(bm) ? bm : NULL;
}

/* The bitmap name of d's medium, or NULL with *err; refuse: the states
 * (BdrvBitmapCheckFlags) the caller cannot act on, each with its code. */
static BdrvDirtyBitmap *bitmap_get(XblkDisk *d, const char *name,
                                   BdrvBitmapCheckFlags refuse,
                                   XblkError **err)
{
    BlockDriverState *bs = bitmap_node(d, err);
    if (!bs || !bitmap_name_ok(name, err)) {
        return NULL;
    }
    BdrvDirtyBitmap *bm = bitmap_lookup(bs, name);
    if (!bm) {
        xblk_api_error(err, XBLK_ERROR_NOT_FOUND,
                       "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    GError *gerr = NULL;
    if (bdrv_dirty_bitmap_check(bm, refuse, &gerr) < 0) {
        XblkErrorCode code =
            (refuse & BDRV_BITMAP_BUSY) && bdrv_dirty_bitmap_busy(bm)
                ? XBLK_ERROR_BUSY
            : (refuse & BDRV_BITMAP_RO) && bdrv_dirty_bitmap_readonly(bm)
                ? XBLK_ERROR_INVALID
                : XBLK_ERROR_FAILED;
        xblk_api_error(err, code, "%s", gerr->message);
        g_error_free(gerr);
        return NULL;
    }
    return bm;
}

bool xblk_disk_bitmap_add(XblkDisk *d, const char *name, bool persistent,
                          XblkError **err)
{
    BlockDriverState *bs = bitmap_node(d, err);
    if (!bs || !bitmap_name_ok(name, err)) {
        return false;
    }
    if (bdrv_dirty_bitmap_find(bs, name)) {
        xblk_api_error(err, XBLK_ERROR_EXISTS, "Bitmap already exists: %s",
                       name);
        return false;
    }
    if (strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "Bitmap name too long: %s",
                       name);
        return false;
    }
    uint32_t gran = bdrv_dirty_bitmap_default_granularity(bs);
    GError *gerr = NULL;
    if (persistent) {
        if (bs->read_only) {
            xblk_api_error(err, XBLK_ERROR_INVALID,
                           "Can't make bitmap '%s' persistent in '%s': the "
                           "disk is read-only", name, bdrv_get_node_name(bs));
            return false;
        }
        if (!bs->drv || !bs->drv->can_store_new_dirty_bitmap) {
            xblk_api_error(err, XBLK_ERROR_UNSUPPORTED,
                           "Can't make bitmap '%s' persistent in '%s': the "
                           "%s format cannot store bitmaps", name,
                           bdrv_get_node_name(bs),
                           bdrv_get_format_name(bs));
            return false;
        }
        if (!bs->drv->can_store_new_dirty_bitmap(bs, name, gran, &gerr)) {
            xblk_api_error(err, XBLK_ERROR_UNSUPPORTED, "%s", gerr->message);
            g_error_free(gerr);
            return false;
        }
    }
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_create(bs, gran, name, &gerr);
    if (!bm) {
        xblk_api_error_from(err, gerr);
        return false;
    }
    bdrv_dirty_bitmap_set_persistent(bm, persistent);
    return true;
}

bool xblk_disk_bitmap_remove(XblkDisk *d, const char *name, XblkError **err)
{
    /* Inconsistent ones too: removing is all they are good for. */
    BdrvDirtyBitmap *bm = bitmap_get(d, name,
                                     BDRV_BITMAP_BUSY | BDRV_BITMAP_RO, err);
    if (!bm) {
        return false;
    }
    bdrv_dirty_bitmap_release(bm);
    return true;
}

bool xblk_disk_bitmap_clear(XblkDisk *d, const char *name, XblkError **err)
{
    BdrvDirtyBitmap *bm = bitmap_get(d, name, BDRV_BITMAP_DEFAULT, err);
    if (!bm) {
        return false;
    }
    bdrv_dirty_bitmap_reset(bm, 0, bdrv_dirty_bitmap_size(bm));
    return true;
}

int64_t xblk_disk_bitmap_dirty_bytes(XblkDisk *d, const char *name,
                                     XblkError **err)
{
    BdrvDirtyBitmap *bm = bitmap_get(d, name, BDRV_BITMAP_ALLOW_RO, err);
    return bm ? (int64_t)bdrv_dirty_bitmap_count(bm) : -1;
}

bool xblk_disk_bitmap_copy(XblkDisk *d, const char *from, const char *to,
                           XblkError **err)
{
    BdrvDirtyBitmap *src = bitmap_get(d, from, BDRV_BITMAP_ALLOW_RO, err);
    if (!src || !bitmap_name_ok(to, err)) {
        return false;
    }
    BlockDriverState *bs = bdrv_dirty_bitmap_bs(src);
    GError *gerr = NULL;
    BdrvDirtyBitmap *dst = bdrv_dirty_bitmap_create(
        bs, bdrv_dirty_bitmap_granularity(src), to, &gerr);
    if (!dst) {
        xblk_api_error(err, bdrv_dirty_bitmap_find(bs, to) ?
                       XBLK_ERROR_EXISTS : XBLK_ERROR_INVALID,
                       "%s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    bdrv_dirty_bitmap_set_enabled(dst, false);
    bdrv_dirty_bitmap_merge_internal(dst, src);     /* same size: a copy */
    return true;
}

bool xblk_disk_bitmap_merge(XblkDisk *d, const char *from, const char *into,
                            XblkError **err)
{
    BdrvDirtyBitmap *src = bitmap_get(d, from, BDRV_BITMAP_ALLOW_RO, err);
    BdrvDirtyBitmap *dst = src ? bitmap_get(d, into, BDRV_BITMAP_DEFAULT,
                                            err) : NULL;
    if (!dst) {
        return false;
    }
    if (!bdrv_dirty_bitmap_merge_internal(dst, src)) {
        xblk_api_error(err, XBLK_ERROR_FAILED, "Bitmaps '%s' and '%s' are "
                       "of different sizes", from, into);
        return false;
    }
    return true;
}

bool xblk_disk_bitmap_info(XblkDisk *d, const char *name,
                           XblkBitmapInfo *info, XblkError **err)
{
    if (!info || info->size < offsetof(XblkBitmapInfo, granularity) +
                              sizeof(info->granularity)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "XblkBitmapInfo.size %zu is "
                       "too small", info ? info->size : (size_t)0);
        return false;
    }
    BdrvDirtyBitmap *bm = bitmap_get(d, name, 0, err);
    if (!bm) {
        return false;
    }
    info->persistent = bdrv_dirty_bitmap_persistent(bm);
    info->recording = bdrv_dirty_bitmap_recording(bm);
    info->busy = bdrv_dirty_bitmap_busy(bm);
    info->inconsistent = bdrv_dirty_bitmap_inconsistent(bm);
    info->granularity = bdrv_dirty_bitmap_granularity(bm);
    return true;
}

char **xblk_disk_bitmap_list(XblkDisk *d, XblkError **err)
{
    BlockDriverState *bs = bitmap_node(d, err);
    if (!bs) {
        return NULL;
    }
    GPtrArray *names = g_ptr_array_new();
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL); bm;
         bm = bdrv_dirty_bitmap_next(bs, bm)) {
        if (bdrv_dirty_bitmap_name(bm) && !bdrv_dirty_bitmap_hidden(bm)) {
            g_ptr_array_add(names, g_strdup(bdrv_dirty_bitmap_name(bm)));
        }
    }
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, FALSE);
}

void xblk_disk_bitmap_list_free(char **names)
{
    g_strfreev(names);
}
