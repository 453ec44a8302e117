/*
 * dirty-bitmap.h - named dirty bitmaps attached to a node: each records,
 * at its granularity, which bytes of the node were written (write,
 * write-zeroes, discard) while it was enabled.  The generic request path
 * (block/io.c) marks them; qcow2 stores the persistent ones in the image.
 *
 * A bitmap is one of the node's list (bs->dirty_bitmaps, newest first) or
 * detached (between a transaction's remove commit and its clean).
 * States, with the QMP names of query-block:
 *   recording     it (or its successor) marks new writes
 *   busy          an operation (a backup job) holds it: no user changes
 *   persistent    stored in the image when the node closes
 *   inconsistent  loaded from an image that was not closed properly: its
 *                 bits cannot be trusted, it can only be removed
 *   readonly      loaded from a read-only image: cannot be modified
 *   hidden        created by a transaction's prepare, not yet committed:
 *                 records nothing and is left out of queries
 *
 * ---- API for copy jobs (backup sync=incremental/bitmap) ----
 *
 * At job start (bitmap-mode on-success/always/never alike):
 *     bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, errp)
 *     bdrv_dirty_bitmap_create_successor(bm, errp)
 *         bm becomes busy and stops recording; an anonymous successor on
 *         the same node records every write made during the job.
 *     HBitmap *to_copy = bdrv_dirty_bitmap_copy_bits(bm)  (the job's copy)
 *     iterate: bdrv_dirty_bitmap_next_dirty_area() / hbitmap_* on to_copy.
 * At job end (bm keeps its identity; pointers to it stay valid):
 *     success, or bitmap-mode=always  -> bdrv_dirty_bitmap_abdicate(bm):
 *         bm's bits become exactly the successor's (the writes made during
 *         the job); the successor is released.
 *     failure, or bitmap-mode=never   -> bdrv_dirty_bitmap_reclaim(bm):
 *         the successor's bits are ORed back into bm, successor released.
 *     failure with bitmap-mode=always -> abdicate, then
 *         bdrv_dirty_bitmap_merge_hbitmap(bm, to_copy) to add the bits the
 *         job did not copy.
 * Either way bm is no longer busy and records as it did before.
 */
#ifndef XBLK_BLOCK_DIRTY_BITMAP_H
#define XBLK_BLOCK_DIRTY_BITMAP_H

#include "block/block.h"
#include "util/hbitmap.h"
#include <jansson.h>

typedef struct BdrvDirtyBitmap BdrvDirtyBitmap;

#define BDRV_BITMAP_MAX_NAME_SIZE 1023

/* What bdrv_dirty_bitmap_check() refuses. */
typedef enum {
    BDRV_BITMAP_BUSY = 1 << 0,
    BDRV_BITMAP_RO = 1 << 1,
    BDRV_BITMAP_INCONSISTENT = 1 << 2,
} BdrvBitmapCheckFlags;
#define BDRV_BITMAP_DEFAULT \
    (BDRV_BITMAP_BUSY | BDRV_BITMAP_RO | BDRV_BITMAP_INCONSISTENT)
#define BDRV_BITMAP_ALLOW_RO (BDRV_BITMAP_BUSY | BDRV_BITMAP_INCONSISTENT)

/* QEMU's default: the cluster size clamped to [4 KiB, 64 KiB], else 64 KiB. */
uint32_t bdrv_dirty_bitmap_default_granularity(BlockDriverState *bs);

/*
 * Creates a bitmap covering the node's current length, attached to bs
 * and recording.  name may be NULL (anonymous).  Errors (QEMU's texts):
 * duplicate name, name too long, length unknown.
 */
BdrvDirtyBitmap *bdrv_dirty_bitmap_create(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, GError **errp);
/* Detaches (if attached) and frees; also frees a successor. */
void bdrv_dirty_bitmap_release(BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_detach(BdrvDirtyBitmap *bm);
/* Re-attaches a detached bitmap to the node it was created on. */
void bdrv_dirty_bitmap_attach(BdrvDirtyBitmap *bm);
/* Frees all bitmaps of a node that is going away. */
void bdrv_dirty_bitmap_release_all(BlockDriverState *bs);

/* Named lookup among bs's bitmaps (hidden ones included); NULL if none. */
BdrvDirtyBitmap *bdrv_dirty_bitmap_find(BlockDriverState *bs,
                                        const char *name);
/* Iterates over bs's bitmaps, newest first: start with NULL. */
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BlockDriverState *bs,
                                        BdrvDirtyBitmap *bm);
bool bdrv_has_dirty_bitmaps(BlockDriverState *bs);

/* 0, or -1 with QEMU's error for the first condition of flags that holds. */
int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bm,
                            BdrvBitmapCheckFlags flags, GError **errp);

/* ---- properties ---- */
const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bm);
BlockDriverState *bdrv_dirty_bitmap_bs(const BdrvDirtyBitmap *bm);
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bm);
uint64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bm);
uint64_t bdrv_dirty_bitmap_count(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_recording(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_persistent(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_hidden(const BdrvDirtyBitmap *bm);

void bdrv_dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled);
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy);
void bdrv_dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool persistent);
void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bm, bool readonly);
void bdrv_dirty_bitmap_set_hidden(BdrvDirtyBitmap *bm, bool hidden);

/* ---- bits ---- */
bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bm, uint64_t offset);
void bdrv_dirty_bitmap_set(BdrvDirtyBitmap *bm, uint64_t offset,
                           uint64_t bytes);
void bdrv_dirty_bitmap_reset(BdrvDirtyBitmap *bm, uint64_t offset,
                             uint64_t bytes);
int64_t bdrv_dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bm,
                                     uint64_t offset, uint64_t bytes);
int64_t bdrv_dirty_bitmap_next_zero(const BdrvDirtyBitmap *bm,
                                    uint64_t offset, uint64_t bytes);
bool bdrv_dirty_bitmap_next_dirty_area(const BdrvDirtyBitmap *bm,
                                       uint64_t start, uint64_t end,
                                       uint64_t max_len, uint64_t *area_start,
                                       uint64_t *area_len);
/* The bits themselves, for the qcow2 driver's store and load. */
HBitmap *bdrv_dirty_bitmap_hbitmap(BdrvDirtyBitmap *bm);
/* A private copy of the bits (caller frees with hbitmap_free). */
HBitmap *bdrv_dirty_bitmap_copy_bits(const BdrvDirtyBitmap *bm);
/* Installs hb (same size) as the bits; returns the old ones (caller
 * frees).  For transactions: allocate in prepare, swap in commit. */
HBitmap *bdrv_dirty_bitmap_swap_bits(BdrvDirtyBitmap *bm, HBitmap *hb);
/* bm |= src, whatever the flags (internal users: jobs, transactions).
 * False if the sizes differ. */
bool bdrv_dirty_bitmap_merge_internal(BdrvDirtyBitmap *bm,
                                      const BdrvDirtyBitmap *src);
bool bdrv_dirty_bitmap_merge_hbitmap(BdrvDirtyBitmap *bm, const HBitmap *src);

/* ---- successors (see the top of this file) ---- */
int bdrv_dirty_bitmap_create_successor(BdrvDirtyBitmap *bm, GError **errp);
BdrvDirtyBitmap *bdrv_dirty_bitmap_successor(const BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_abdicate(BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_reclaim(BdrvDirtyBitmap *bm);

/* ---- hooks of the generic layer (block/io.c) ---- */
/* Marks [offset, offset + bytes) in every recording bitmap of bs. */
void bdrv_dirty_bitmap_mark(BlockDriverState *bs, int64_t offset,
                            int64_t bytes);
/* After a resize of bs: every bitmap follows the new length. */
void bdrv_dirty_bitmap_truncate_all(BlockDriverState *bs, uint64_t size);

/* BlockDirtyInfo objects of bs's visible bitmaps, as query-block lists
 * them (QEMU's member names); NULL when it has none. */
json_t *bdrv_dirty_bitmap_query(BlockDriverState *bs);

#endif
