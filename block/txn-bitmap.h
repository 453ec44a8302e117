/*
 * txn-bitmap.h - the dirty bitmap actions of a transaction (see
 * transaction.h and dirty-bitmap.h), QEMU's block-dirty-bitmap-add,
 * -remove, -clear, -enable, -disable and -merge.  Each txn_add_* copies
 * its arguments and queues one action; nodes and bitmaps are looked up in
 * prepare, so errors (QEMU 7.2's texts) come out of txn_run().
 *
 * node: a BlockBackend (device) name or a node name.
 *
 * Prepare validates and allocates off to the side; commit (inside the
 * drained section) makes the change visible; abort undoes nothing because
 * nothing visible changed.  A bitmap added by an earlier action of the
 * same transaction can be named by later ones (it exists, hidden, from
 * its prepare on).  Removing a persistent bitmap deletes it from the
 * image in finish; undo puts it back in memory (it is stored again when
 * the node closes).
 */
#ifndef XBLK_BLOCK_TXN_BITMAP_H
#define XBLK_BLOCK_TXN_BITMAP_H

#include "block/dirty-bitmap.h"
#include "block/transaction.h"

/* A merge source: node NULL means the target's node ("local"). */
typedef struct TxnBitmapSource {
    const char *node;
    const char *name;
} TxnBitmapSource;

void txn_add_bitmap_add(Transaction *t, const char *node, const char *name,
                        bool has_granularity, uint32_t granularity,
                        bool persistent, bool disabled);
void txn_add_bitmap_remove(Transaction *t, const char *node,
                           const char *name);
void txn_add_bitmap_clear(Transaction *t, const char *node, const char *name);
void txn_add_bitmap_enable(Transaction *t, const char *node,
                           const char *name);
void txn_add_bitmap_disable(Transaction *t, const char *node,
                            const char *name);
void txn_add_bitmap_merge(Transaction *t, const char *node,
                          const char *target, const TxnBitmapSource *sources,
                          size_t n_sources);

/* The node a bitmap command names (device name first, then node name);
 * QEMU's "Cannot find device=... nor node-name=..." otherwise. */
BlockDriverState *txn_bitmap_lookup_bs(const char *node, GError **errp);
/* node + name as block-dirty-bitmap-* commands resolve them. */
BdrvDirtyBitmap *txn_bitmap_lookup(const char *node, const char *name,
                                   BlockDriverState **pbs, GError **errp);

#endif
