/*
 * qmp-bitmap.h - helpers of the block-dirty-bitmap-* commands shared with
 * the `transaction` dispatcher (monitor/qmp-transaction.c).
 */
#ifndef XBLK_MONITOR_QMP_BITMAP_H
#define XBLK_MONITOR_QMP_BITMAP_H

#include "block/txn-bitmap.h"
#include "qapi/engine-qapi-types.h"

/* The merge sources of a QAPI list as a plain array (g_free it); the
 * strings stay borrowed from bitmaps. */
TxnBitmapSource *qmp_bitmap_sources(BlockDirtyBitmapOrStrList *bitmaps,
                                    size_t *n);

#endif
