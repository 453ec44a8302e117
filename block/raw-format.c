/*
 * raw-format.c - the `raw` format: guest bytes are the file's bytes,
 * optionally a window [offset, offset+size) of the file.
 */
#include "block/block_int.h"
#include "util/cutils.h"
#include <errno.h>

typedef struct RawState {
    int64_t offset;
    int64_t size;       /* -1: up to the end of the file */
} RawState;

static int raw_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return 1;   /* anything is raw, with the lowest confidence */
}

static int coroutine_fn raw_open(BlockDriverState *bs, BlockOpts *opts,
                                 int flags, GError **errp)
{
    RawState *s = bs->opaque;
    g_autofree char *off = bopts_take(opts, "offset");
    g_autofree char *size = bopts_take(opts, "size");
    uint64_t v;
    s->size = -1;
    if (off) {
        if (!parse_size(off, 1, &v) || v > INT64_MAX) {
            error_setg(errp, "Parameter 'offset' expects a size");
            return -EINVAL;
        }
        s->offset = v;
    }
    if (size) {
        if (!parse_size(size, 1, &v) || v > INT64_MAX) {
            error_setg(errp, "Parameter 'size' expects a size");
            return -EINVAL;
        }
        s->size = v;
    }
    bs->request_alignment = bs->file->bs->request_alignment;
    bs->buf_alignment = bs->file->bs->buf_alignment;
    return 0;
}

static int64_t raw_get_length(BlockDriverState *bs)
{
    RawState *s = bs->opaque;
    if (s->size >= 0) {
        return s->size;
    }
    int64_t len = bdrv_getlength(bs->file->bs);
    return len < 0 ? len : MAX(len - s->offset, 0);
}

static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    RawState *s = bs->opaque;
    return bdrv_co_preadv(bs->file->bs, offset + s->offset, bytes, qiov, flags);
}

static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    RawState *s = bs->opaque;
    if (s->size >= 0 && offset + bytes > s->size) {
        return -ENOSPC;
    }
    return bdrv_co_pwritev(bs->file->bs, offset + s->offset, bytes, qiov,
                           flags & ~BDRV_REQ_FUA);
}

static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    RawState *s = bs->opaque;
    return bdrv_co_pwrite_zeroes(bs->file->bs, offset + s->offset, bytes,
                                 flags);
}

static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    RawState *s = bs->opaque;
    return bdrv_co_pdiscard(bs->file->bs, offset + s->offset, bytes);
}

static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file)
{
    RawState *s = bs->opaque;
    int ret = bdrv_co_block_status(bs->file->bs, offset + s->offset, bytes,
                                   pnum, map, file);
    if (ret < 0) {
        return ret;
    }
    if (*pnum == 0) {       /* past the end of the file: reads as zeroes */
        *pnum = bytes;
        *map = offset + s->offset;
        *file = bs->file->bs;
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID |
               BDRV_BLOCK_ALLOCATED;
    }
    return (ret & ~BDRV_BLOCK_EOF) | BDRV_BLOCK_ALLOCATED;
}

static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        GError **errp)
{
    RawState *s = bs->opaque;
    if (s->offset || s->size >= 0) {
        error_setg(errp, "Cannot resize a raw node with offset or size");
        return -ENOTSUP;
    }
    if (prealloc == PREALLOC_MODE_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: metadata");
        return -ENOTSUP;
    }
    return bdrv_co_truncate(bs->file->bs, offset, true, prealloc, errp);
}

static const char *const raw_create_opts[] = {
    "size", "preallocation", NULL
};

static int coroutine_fn raw_create(const char *filename, BlockOpts *opts,
                                   GError **errp)
{
    return bdrv_file.create(filename, opts, errp);
}

const BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(RawState),
    .probe = raw_probe,
    .open = raw_open,
    .create = raw_create,
    .create_opts = raw_create_opts,
    .get_length = raw_get_length,
    .co_preadv = raw_co_preadv,
    .co_pwritev = raw_co_pwritev,
    .co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .co_pdiscard = raw_co_pdiscard,
    .co_block_status = raw_co_block_status,
    .co_truncate = raw_co_truncate,
};
