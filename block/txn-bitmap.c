/*
 * txn-bitmap.c - dirty bitmap transaction actions (see txn-bitmap.h).
 *
 * Each action holds a reference to every node it names from prepare to
 * clean, so a bitmap found in prepare stays valid until commit (bitmaps
 * only go away through remove, itself an action, or node deletion).
 */
#include "block/txn-bitmap.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>

BlockDriverState *txn_bitmap_lookup_bs(const char *node, GError **errp)
{
    BlockBackend *blk = node ? blk_by_name(node) : NULL;
    if (blk) {
        if (!blk_bs(blk)) {
            error_setg(errp, "Device '%s' has no medium", node);
        }
        return blk_bs(blk);
    }
    BlockDriverState *bs = node ? bdrv_find_node(node) : NULL;
    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   node ? node : "", node ? node : "");
    }
    return bs;
}

BdrvDirtyBitmap *txn_bitmap_lookup(const char *node, const char *name,
                                   BlockDriverState **pbs, GError **errp)
{
    BlockDriverState *bs = txn_bitmap_lookup_bs(node, NULL);
    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
        return NULL;
    }
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(bs, name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (pbs) {
        *pbs = bs;
    }
    return bm;
}

/* ---- shared state of every bitmap action ---- */

typedef struct BitmapAction {
    char *node, *name;
    BlockDriverState *bs;       /* referenced from prepare to clean */
    BdrvDirtyBitmap *bm;
    /* add */
    bool has_granularity, persistent, disabled;
    uint32_t granularity;
    /* clear, merge */
    HBitmap *bits;              /* new (before commit) / old (after) */
    /* enable, disable */
    bool was_enabled;           /* before commit, for undo */
    /* remove */
    bool removed;               /* detached by commit, freed by clean */
    /* merge */
    GPtrArray *src_nodes, *src_names;   /* char*, node NULL = local */
    GPtrArray *src_bs, *src_bm;
} BitmapAction;

static BitmapAction *action_new(const char *node, const char *name)
{
    BitmapAction *a = g_new0(BitmapAction, 1);
    a->node = g_strdup(node);
    a->name = g_strdup(name);
    return a;
}

static void hold(BitmapAction *a, BlockDriverState *bs)
{
    bdrv_ref(bs);
    a->bs = bs;
}

static int coroutine_fn lookup_checked(BitmapAction *a,
                                       BdrvBitmapCheckFlags flags,
                                       GError **errp)
{
    BlockDriverState *bs;
    a->bm = txn_bitmap_lookup(a->node, a->name, &bs, errp);
    if (!a->bm || bdrv_dirty_bitmap_check(a->bm, flags, errp) < 0) {
        a->bm = NULL;
        return -EINVAL;
    }
    hold(a, bs);
    return 0;
}

static void add_nodes(void *opaque, GPtrArray *nodes)
{
    BitmapAction *a = opaque;
    if (a->bs) {
        g_ptr_array_add(nodes, a->bs);
    }
    for (guint i = 0; a->src_bs && i < a->src_bs->len; i++) {
        g_ptr_array_add(nodes, g_ptr_array_index(a->src_bs, i));
    }
}

static void coroutine_fn abort_nothing(void *opaque)
{
}

static void clean(void *opaque)
{
    BitmapAction *a = opaque;
    if (a->removed) {
        bdrv_dirty_bitmap_release(a->bm);
    }
    hbitmap_free(a->bits);
    for (guint i = 0; a->src_bs && i < a->src_bs->len; i++) {
        bdrv_unref(g_ptr_array_index(a->src_bs, i));
    }
    if (a->src_bs) {
        g_ptr_array_free(a->src_bs, TRUE);
        g_ptr_array_free(a->src_bm, TRUE);
        g_ptr_array_free(a->src_nodes, TRUE);
        g_ptr_array_free(a->src_names, TRUE);
    }
    bdrv_unref(a->bs);
    g_free(a->node);
    g_free(a->name);
    g_free(a);
}

/* ---- add ---- */

static bool check_can_store(BlockDriverState *bs, const char *name,
                            uint32_t granularity, GError **errp)
{
    if (!bs->drv->can_store_new_dirty_bitmap) {
        error_setg_errno(errp, ENOTSUP, "Can't store persistent bitmaps to %s",
                         bdrv_get_node_name(bs));
        return false;
    }
    return bs->drv->can_store_new_dirty_bitmap(bs, name, granularity, errp);
}

static int coroutine_fn add_prepare(void *opaque, Transaction *t,
                                    GError **errp)
{
    BitmapAction *a = opaque;
    if (!a->name || !a->name[0]) {
        error_setg(errp, "Bitmap name cannot be empty");
        return -EINVAL;
    }
    BlockDriverState *bs = txn_bitmap_lookup_bs(a->node, errp);
    if (!bs) {
        return -ENOENT;
    }
    uint32_t gran = a->granularity;
    if (a->has_granularity) {
        if (gran < 512 || (gran & (gran - 1))) {
            error_setg(errp, "Granularity must be power of 2 and at least 512");
            return -EINVAL;
        }
    } else {
        gran = bdrv_dirty_bitmap_default_granularity(bs);
    }
    if (a->persistent && !check_can_store(bs, a->name, gran, errp)) {
        return -EINVAL;
    }
    a->bm = bdrv_dirty_bitmap_create(bs, gran, a->name, errp);
    if (!a->bm) {
        return -EINVAL;
    }
    /* Visible to later actions of this transaction only, records nothing
     * until commit: the bitmap starts at the transaction's instant. */
    bdrv_dirty_bitmap_set_hidden(a->bm, true);
    hold(a, bs);
    return 0;
}

static void add_commit(void *opaque)
{
    BitmapAction *a = opaque;
    bdrv_dirty_bitmap_set_enabled(a->bm, !a->disabled);
    bdrv_dirty_bitmap_set_persistent(a->bm, a->persistent);
    bdrv_dirty_bitmap_set_hidden(a->bm, false);
}

static void coroutine_fn add_abort(void *opaque)
{
    BitmapAction *a = opaque;
    bdrv_dirty_bitmap_release(a->bm);
    a->bm = NULL;
}

/* The undo of every action below runs when another action's finish
 * (after the drain) failed: the transaction as a whole did not happen. */
static const TxnActionDriver txn_bitmap_add_drv = {
    .type = "block-dirty-bitmap-add",
    .prepare = add_prepare,
    .add_nodes = add_nodes,
    .commit = add_commit,
    .abort = add_abort,
    .undo = add_abort,          /* the new bitmap goes again */
    .clean = clean,
};

void txn_add_bitmap_add(Transaction *t, const char *node, const char *name,
                        bool has_granularity, uint32_t granularity,
                        bool persistent, bool disabled)
{
    BitmapAction *a = action_new(node, name);
    a->has_granularity = has_granularity;
    a->granularity = granularity;
    a->persistent = persistent;
    a->disabled = disabled;
    txn_add(t, &txn_bitmap_add_drv, a);
}

/* ---- remove ---- */

static int coroutine_fn remove_prepare(void *opaque, Transaction *t,
                                       GError **errp)
{
    return lookup_checked(opaque, BDRV_BITMAP_BUSY | BDRV_BITMAP_RO, errp);
}

static void remove_commit(void *opaque)
{
    BitmapAction *a = opaque;
    bdrv_dirty_bitmap_detach(a->bm);
    a->removed = true;
}

static void coroutine_fn remove_undo(void *opaque)
{
    BitmapAction *a = opaque;
    bdrv_dirty_bitmap_attach(a->bm);
    a->removed = false;
}

/* Deletes a persistent bitmap from the image, after the drain. */
static int coroutine_fn remove_finish(void *opaque, GError **errp)
{
    BitmapAction *a = opaque;
    if (!bdrv_dirty_bitmap_persistent(a->bm) ||
        !a->bs->drv->co_remove_persistent_dirty_bitmap) {
        return 0;
    }
    int ret = a->bs->drv->co_remove_persistent_dirty_bitmap(a->bs, a->name,
                                                            errp);
    if (ret < 0) {
        remove_undo(a);         /* this action did not happen */
    }
    return ret;
}

static const TxnActionDriver txn_bitmap_remove_drv = {
    .type = "block-dirty-bitmap-remove",
    .prepare = remove_prepare,
    .add_nodes = add_nodes,
    .commit = remove_commit,
    .abort = abort_nothing,
    .finish = remove_finish,
    .undo = remove_undo,
    .clean = clean,
};

void txn_add_bitmap_remove(Transaction *t, const char *node, const char *name)
{
    txn_add(t, &txn_bitmap_remove_drv, action_new(node, name));
}

/* ---- clear ---- */

static int coroutine_fn clear_prepare(void *opaque, Transaction *t,
                                      GError **errp)
{
    BitmapAction *a = opaque;
    int ret = lookup_checked(a, BDRV_BITMAP_DEFAULT, errp);
    if (ret < 0) {
        return ret;
    }
    HBitmap *cur = bdrv_dirty_bitmap_hbitmap(a->bm);
    a->bits = hbitmap_alloc(hbitmap_size(cur), hbitmap_granularity(cur));
    return 0;
}

static void clear_commit(void *opaque)
{
    BitmapAction *a = opaque;
    a->bits = bdrv_dirty_bitmap_swap_bits(a->bm, a->bits);  /* old: clean */
}

/* The old bits come back, plus whatever was written since the commit. */
static void coroutine_fn clear_undo(void *opaque)
{
    BitmapAction *a = opaque;
    HBitmap *since = bdrv_dirty_bitmap_swap_bits(a->bm, a->bits);
    bdrv_dirty_bitmap_merge_hbitmap(a->bm, since);
    a->bits = since;
}

static const TxnActionDriver txn_bitmap_clear_drv = {
    .type = "block-dirty-bitmap-clear",
    .prepare = clear_prepare,
    .add_nodes = add_nodes,
    .commit = clear_commit,
    .abort = abort_nothing,
    .undo = clear_undo,
    .clean = clean,
};

void txn_add_bitmap_clear(Transaction *t, const char *node, const char *name)
{
    txn_add(t, &txn_bitmap_clear_drv, action_new(node, name));
}

/* ---- enable / disable ---- */

static int coroutine_fn enable_prepare(void *opaque, Transaction *t,
                                       GError **errp)
{
    return lookup_checked(opaque, BDRV_BITMAP_ALLOW_RO, errp);
}

static void enable_commit(void *opaque)
{
    BitmapAction *a = opaque;
    a->was_enabled = bdrv_dirty_bitmap_enabled(a->bm);
    bdrv_dirty_bitmap_set_enabled(a->bm, true);
}

static void disable_commit(void *opaque)
{
    BitmapAction *a = opaque;
    a->was_enabled = bdrv_dirty_bitmap_enabled(a->bm);
    bdrv_dirty_bitmap_set_enabled(a->bm, false);
}

static void coroutine_fn enable_undo(void *opaque)
{
    BitmapAction *a = opaque;
    bdrv_dirty_bitmap_set_enabled(a->bm, a->was_enabled);
}

static const TxnActionDriver txn_bitmap_enable_drv = {
    .type = "block-dirty-bitmap-enable",
    .prepare = enable_prepare,
    .add_nodes = add_nodes,
    .commit = enable_commit,
    .abort = abort_nothing,
    .undo = enable_undo,
    .clean = clean,
};

static const TxnActionDriver txn_bitmap_disable_drv = {
    .type = "block-dirty-bitmap-disable",
    .prepare = enable_prepare,
    .add_nodes = add_nodes,
    .commit = disable_commit,
    .abort = abort_nothing,
    .undo = enable_undo,
    .clean = clean,
};

void txn_add_bitmap_enable(Transaction *t, const char *node, const char *name)
{
    txn_add(t, &txn_bitmap_enable_drv, action_new(node, name));
}

void txn_add_bitmap_disable(Transaction *t, const char *node,
                            const char *name)
{
    txn_add(t, &txn_bitmap_disable_drv, action_new(node, name));
}

/* ---- merge ---- */

static BdrvDirtyBitmap *merge_source(BitmapAction *a, guint i,
                                     BlockDriverState **pbs, GError **errp)
{
    const char *node = g_ptr_array_index(a->src_nodes, i);
    const char *name = g_ptr_array_index(a->src_names, i);
    if (node) {
        return txn_bitmap_lookup(node, name, pbs, errp);
    }
    BdrvDirtyBitmap *src = bdrv_dirty_bitmap_find(a->bs, name);
    if (!src) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
    }
    *pbs = a->bs;
    return src;
}

static int coroutine_fn merge_prepare(void *opaque, Transaction *t,
                                      GError **errp)
{
    BitmapAction *a = opaque;
    BlockDriverState *bs;
    a->bm = txn_bitmap_lookup(a->node, a->name, &bs, errp);
    if (!a->bm) {
        return -EINVAL;
    }
    hold(a, bs);
    /* QEMU's order: each source is checked as it is merged into a
     * scratch bitmap, the target last. */
    for (guint i = 0; i < a->src_names->len; i++) {
        BlockDriverState *sbs;
        BdrvDirtyBitmap *src = merge_source(a, i, &sbs, errp);
        if (!src || bdrv_dirty_bitmap_check(src, BDRV_BITMAP_ALLOW_RO,
                                            errp) < 0) {
            return -EINVAL;
        }
        if (bdrv_dirty_bitmap_size(src) != bdrv_dirty_bitmap_size(a->bm)) {
            error_setg(errp, "Bitmaps are of different sizes (destination "
                       "size is %" G_GUINT64_FORMAT ", source size is %"
                       G_GUINT64_FORMAT ") and can't be merged",
                       bdrv_dirty_bitmap_size(a->bm),
                       bdrv_dirty_bitmap_size(src));
            return -EINVAL;
        }
        bdrv_ref(sbs);
        g_ptr_array_add(a->src_bs, sbs);
        g_ptr_array_add(a->src_bm, src);
    }
    if (bdrv_dirty_bitmap_check(a->bm, BDRV_BITMAP_DEFAULT, errp) < 0) {
        return -EINVAL;
    }
    /* Room for the result, so that commit keeps the old bits for undo
     * without allocating. */
    HBitmap *cur = bdrv_dirty_bitmap_hbitmap(a->bm);
    a->bits = hbitmap_alloc(hbitmap_size(cur), hbitmap_granularity(cur));
    return 0;
}

/* The OR runs here, not in prepare: writes may land in the sources
 * between prepare and the drain, and the result must include them. */
static void merge_commit(void *opaque)
{
    BitmapAction *a = opaque;
    a->bits = bdrv_dirty_bitmap_swap_bits(a->bm, a->bits);   /* old */
    bdrv_dirty_bitmap_merge_hbitmap(a->bm, a->bits);
    for (guint i = 0; i < a->src_bm->len; i++) {
        bdrv_dirty_bitmap_merge_internal(a->bm,
                                         g_ptr_array_index(a->src_bm, i));
    }
}

/* The target's bits before the merge come back.  Writes that reached it
 * between the commit and this undo (the guest runs during finish) cannot
 * be told apart from the merged bits and are dropped with them. */
static void coroutine_fn merge_undo(void *opaque)
{
    BitmapAction *a = opaque;
    a->bits = bdrv_dirty_bitmap_swap_bits(a->bm, a->bits);
}

static const TxnActionDriver txn_bitmap_merge_drv = {
    .type = "block-dirty-bitmap-merge",
    .prepare = merge_prepare,
    .add_nodes = add_nodes,
    .commit = merge_commit,
    .abort = abort_nothing,
    .undo = merge_undo,
    .clean = clean,
};

void txn_add_bitmap_merge(Transaction *t, const char *node,
                          const char *target, const TxnBitmapSource *sources,
                          size_t n_sources)
{
    BitmapAction *a = action_new(node, target);
    a->src_nodes = g_ptr_array_new_with_free_func(g_free);
    a->src_names = g_ptr_array_new_with_free_func(g_free);
    a->src_bs = g_ptr_array_new();
    a->src_bm = g_ptr_array_new();
    for (size_t i = 0; i < n_sources; i++) {
        g_ptr_array_add(a->src_nodes, g_strdup(sources[i].node));
        g_ptr_array_add(a->src_names, g_strdup(sources[i].name));
    }
    txn_add(t, &txn_bitmap_merge_drv, a);
}
