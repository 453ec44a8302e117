/*
 * block-backend.h - the device-facing handle on a node graph.
 *
 * Devices, tools and jobs reach images only through a BlockBackend.  It
 * checks requests against the image length, holds new requests while its
 * root node is drained, implements write-through caching, and offers a
 * callback-style AIO API for callers that are not coroutines (the IDE
 * controller's DMA, the xblk-io aio_* commands).
 */
#ifndef XBLK_BLOCK_BLOCK_BACKEND_H
#define XBLK_BLOCK_BLOCK_BACKEND_H

#include "block/block.h"

typedef struct BlockBackend BlockBackend;
typedef void BlockCompletionFunc(void *opaque, int ret);

BlockBackend *blk_new(void);
BlockBackend *blk_new_open(const char *filename, BlockOpts *opts, int flags,
                           GError **errp);
void blk_insert_bs(BlockBackend *blk, BlockDriverState *bs);
void blk_remove_bs(BlockBackend *blk);
/* Another owner (an XblkDisk over a -drive's backend, api/disk.c). */
void blk_ref(BlockBackend *blk);
void blk_unref(BlockBackend *blk);
/* Points blk at bs instead of its root, in memory (graph switches). */
void blk_replace_root(BlockBackend *blk, BlockDriverState *bs);
BlockDriverState *blk_bs(BlockBackend *blk);
/* What the device on blk lets other users of its node have (BLK_PERM_*;
 * a new backend shares everything, as -blockdev's user does; ide-hd
 * shares all but write, as QEMU's device does unless share-rw=on).
 * Applied to the locks at once: false with errp on a conflict, and the
 * old value stays. */
bool blk_set_shared_perm(BlockBackend *blk, uint64_t shared, GError **errp);
uint64_t blk_shared_perm(const BlockBackend *blk);
const char *blk_name(const BlockBackend *blk);
void blk_set_name(BlockBackend *blk, const char *name);
void blk_set_enable_write_cache(BlockBackend *blk, bool wce);
bool blk_enable_write_cache(const BlockBackend *blk);
/* Disables the length check (xblk-io's "beyond EOF" reads on raw files). */
void blk_set_allow_beyond_eof(BlockBackend *blk, bool allow);

int coroutine_fn blk_co_preadv(BlockBackend *blk, int64_t offset,
                               int64_t bytes, IOVector *qiov,
                               BdrvRequestFlags flags);
int coroutine_fn blk_co_pwritev(BlockBackend *blk, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn blk_co_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn blk_co_pdiscard(BlockBackend *blk, int64_t offset,
                                 int64_t bytes);
int coroutine_fn blk_co_flush(BlockBackend *blk);

int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf);
int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes,
               const void *buf, BdrvRequestFlags flags);
int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BdrvRequestFlags flags);
int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes);
int blk_flush(BlockBackend *blk);
int64_t blk_getlength(BlockBackend *blk);
int blk_truncate(BlockBackend *blk, int64_t offset, bool exact,
                 PreallocMode prealloc, GError **errp);

/* The root's VM state area (block/vmstate.h), admitted like requests
 * (held while the root is drained).  0 or -errno with *errp set. */
int coroutine_fn blk_co_writev_vmstate(BlockBackend *blk, IOVector *qiov,
                                       int64_t pos, GError **errp);
int coroutine_fn blk_co_readv_vmstate(BlockBackend *blk, IOVector *qiov,
                                      int64_t pos, GError **errp);
int blk_save_vmstate(BlockBackend *blk, const void *buf, int64_t pos,
                     int64_t size, GError **errp);
int blk_load_vmstate(BlockBackend *blk, void *buf, int64_t pos, int64_t size,
                     GError **errp);

/* Callback style: cb(opaque, ret) runs on the main loop. qiov stays
 * owned by the caller and must live until the callback. */
void blk_aio_preadv(BlockBackend *blk, int64_t offset, IOVector *qiov,
                    BdrvRequestFlags flags, BlockCompletionFunc *cb,
                    void *opaque);
void blk_aio_pwritev(BlockBackend *blk, int64_t offset, IOVector *qiov,
                     BdrvRequestFlags flags, BlockCompletionFunc *cb,
                     void *opaque);
void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque);
void blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BlockCompletionFunc *cb, void *opaque);
/* Iterates over backends that have a name (devices): start with NULL. */
BlockBackend *blk_next(BlockBackend *blk);
BlockBackend *blk_by_name(const char *name);
/* Requests submitted through this backend and not yet completed. */
unsigned blk_in_flight(const BlockBackend *blk);

#endif
