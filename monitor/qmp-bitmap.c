/*
 * qmp-bitmap.c - the standalone block-dirty-bitmap-* QMP commands.  Each
 * runs a transaction of its one action (block/txn-bitmap.h), so a command
 * and the same action inside `transaction` behave and fail alike.
 */
#include "block/transaction.h"
#include "block/txn-bitmap.h"
#include "monitor/qmp-bitmap.h"
#include "qapi/engine-qapi-commands.h"
#include "util/error.h"

static void run_one(Transaction *t, GError **errp)
{
    txn_run(t, errp);
}

void qmp_block_dirty_bitmap_add(const char *node, const char *name,
                                bool has_granularity, uint64_t granularity,
                                bool has_persistent, bool persistent,
                                bool has_disabled, bool disabled,
                                GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    if (has_granularity && granularity > UINT32_MAX) {
        granularity = 1;        /* refused as not a power of 2 >= 512 */
    }
    txn_add_bitmap_add(t, node, name, has_granularity, (uint32_t)granularity,
                       has_persistent && persistent,
                       has_disabled && disabled);
    run_one(t, errp);
}

void qmp_block_dirty_bitmap_remove(const char *node, const char *name,
                                   GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_remove(t, node, name);
    run_one(t, errp);
}

void qmp_block_dirty_bitmap_clear(const char *node, const char *name,
                                  GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_clear(t, node, name);
    run_one(t, errp);
}

void qmp_block_dirty_bitmap_enable(const char *node, const char *name,
                                   GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_enable(t, node, name);
    run_one(t, errp);
}

void qmp_block_dirty_bitmap_disable(const char *node, const char *name,
                                    GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_disable(t, node, name);
    run_one(t, errp);
}

/* Converts the QAPI source list to the plain C array of txn-bitmap.h
 * (strings borrowed from the list). */
TxnBitmapSource *qmp_bitmap_sources(BlockDirtyBitmapOrStrList *bitmaps,
                                    size_t *n)
{
    GArray *arr = g_array_new(FALSE, TRUE, sizeof(TxnBitmapSource));
    for (BlockDirtyBitmapOrStrList *l = bitmaps; l; l = l->next) {
        TxnBitmapSource s = { 0 };
        if (l->value->type == QTYPE_QSTRING) {
            s.name = l->value->u.local;
        } else {
            s.node = l->value->u.external->node;
            s.name = l->value->u.external->name;
        }
        g_array_append_val(arr, s);
    }
    *n = arr->len;
    return (TxnBitmapSource *)g_array_free(arr, FALSE);
}

void qmp_block_dirty_bitmap_merge(const char *node, const char *target,
                                  BlockDirtyBitmapOrStrList *bitmaps,
                                  GError **errp)
{
    size_t n;
    g_autofree TxnBitmapSource *src = qmp_bitmap_sources(bitmaps, &n);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_merge(t, node, target, src, n);
    run_one(t, errp);
}
