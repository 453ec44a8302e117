/*
 * dirty-bitmap.c - named dirty bitmaps of a node (see dirty-bitmap.h).
 *
 * Invariants: names are unique per node; a bitmap with a successor is
 * busy and disabled itself (the successor records for it); a successor is
 * anonymous, on the same node, and never has a successor of its own.
 * Everything runs on the main loop; nothing here does I/O.
 */
#include "block/dirty-bitmap.h"
#include "block/block_int.h"
#include <errno.h>
#include <string.h>

struct BdrvDirtyBitmap {
    BlockDriverState *bs;       /* the node it belongs to */
    bool attached;              /* in bs->dirty_bitmaps */
    int detached_pos;           /* place in the list before detach */
    HBitmap *hb;
    char *name;                 /* NULL: anonymous */
    bool disabled;
    bool busy;
    bool persistent;
    bool inconsistent;
    bool readonly;
    bool hidden;
    BdrvDirtyBitmap *successor;
};

uint32_t bdrv_dirty_bitmap_default_granularity(BlockDriverState *bs)
{
    int cs = bdrv_get_cluster_size(bs);
    if (cs <= 0) {
        return 65536;
    }
    return MIN(65536, MAX(4096, (uint32_t)cs));
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_find(BlockDriverState *bs,
                                        const char *name)
{
    for (GList *l = bs->dirty_bitmaps; l && name; l = l->next) {
        BdrvDirtyBitmap *bm = l->data;
        if (bm->name && !strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BlockDriverState *bs,
                                        BdrvDirtyBitmap *bm)
{
    GList *l = bm ? g_list_find(bs->dirty_bitmaps, bm) : NULL;
    l = bm ? (l ? l->next : NULL) : bs->dirty_bitmaps;
    return l ? l->data : NULL;
}

bool bdrv_has_dirty_bitmaps(BlockDriverState *bs)
{
    return bs->dirty_bitmaps != NULL;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_create(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, GError **errp)
{
    g_assert(granularity && !(granularity & (granularity - 1)));
    if (name) {
        if (bdrv_dirty_bitmap_find(bs, name)) {
            error_setg(errp, "Bitmap already exists: %s", name);
            return NULL;
        }
        if (strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
            error_setg(errp, "Bitmap name too long: %s", name);
            return NULL;
        }
    }
    int64_t len = bdrv_getlength(bs);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "could not get length of device");
        return NULL;
    }
    BdrvDirtyBitmap *bm = g_new0(BdrvDirtyBitmap, 1);
    bm->bs = bs;
    bm->hb = hbitmap_alloc(len, __builtin_ctz(granularity));
    bm->name = g_strdup(name);
    bdrv_dirty_bitmap_attach(bm);
    return bm;
}

void bdrv_dirty_bitmap_attach(BdrvDirtyBitmap *bm)
{
    g_assert(!bm->attached);
    /* Back where it was (a transaction's undo of a remove): the order is
     * visible in query-named-block-nodes.  Never attached: newest first. */
    bm->bs->dirty_bitmaps = g_list_insert(bm->bs->dirty_bitmaps, bm,
                                          bm->detached_pos);
    bm->attached = true;
}

void bdrv_dirty_bitmap_detach(BdrvDirtyBitmap *bm)
{
    if (bm->attached) {
        bm->detached_pos = g_list_index(bm->bs->dirty_bitmaps, bm);
        bm->bs->dirty_bitmaps = g_list_remove(bm->bs->dirty_bitmaps, bm);
        bm->attached = false;
    }
}

void bdrv_dirty_bitmap_release(BdrvDirtyBitmap *bm)
{
    if (!bm) {
        return;
    }
    if (bm->successor) {
        bdrv_dirty_bitmap_release(bm->successor);
    }
    bdrv_dirty_bitmap_detach(bm);
    hbitmap_free(bm->hb);
    g_free(bm->name);
    g_free(bm);
}

void bdrv_dirty_bitmap_release_all(BlockDriverState *bs)
{
    /* Successors are in the list too: drop parents' links first. */
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        ((BdrvDirtyBitmap *)l->data)->successor = NULL;
    }
    while (bs->dirty_bitmaps) {
        bdrv_dirty_bitmap_release(bs->dirty_bitmaps->data);
    }
}

int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bm,
                            BdrvBitmapCheckFlags flags, GError **errp)
{
    if ((flags & BDRV_BITMAP_BUSY) && bm->busy) {
        error_setg(errp, "Bitmap '%s' is currently in use by another "
                   "operation and cannot be used", bm->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_RO) && bm->readonly) {
        error_setg(errp, "Bitmap '%s' is readonly and cannot be modified",
                   bm->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_INCONSISTENT) && bm->inconsistent) {
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used",
                   bm->name);
        return -1;
    }
    return 0;
}

/* ---- properties ---- */

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bm)
{
    return bm->name;
}

BlockDriverState *bdrv_dirty_bitmap_bs(const BdrvDirtyBitmap *bm)
{
    return bm->bs;
}

uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bm)
{
    return 1u << hbitmap_granularity(bm->hb);
}

uint64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bm)
{
    return hbitmap_size(bm->hb);
}

uint64_t bdrv_dirty_bitmap_count(const BdrvDirtyBitmap *bm)
{
    return hbitmap_count(bm->hb);
}

bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bm)
{
    return !bm->disabled;
}

bool bdrv_dirty_bitmap_recording(const BdrvDirtyBitmap *bm)
{
    return !bm->disabled || (bm->successor && !bm->successor->disabled);
}

bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bm)
{
    return bm->busy;
}

bool bdrv_dirty_bitmap_persistent(const BdrvDirtyBitmap *bm)
{
    return bm->persistent;
}

bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bm)
{
    return bm->inconsistent;
}

bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bm)
{
    return bm->readonly;
}

bool bdrv_dirty_bitmap_hidden(const BdrvDirtyBitmap *bm)
{
    return bm->hidden;
}

void bdrv_dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled)
{
    bm->disabled = !enabled;
}

void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy)
{
    bm->busy = busy;
}

void bdrv_dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool persistent)
{
    bm->persistent = persistent;
}

/* QEMU's rule: an inconsistent bitmap is persistent, disabled and empty
 * as far as anyone may use it; it stays until removed. */
void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bm)
{
    bm->inconsistent = true;
    bm->disabled = true;
    bm->persistent = true;
}

void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bm, bool readonly)
{
    bm->readonly = readonly;
}

void bdrv_dirty_bitmap_set_hidden(BdrvDirtyBitmap *bm, bool hidden)
{
    bm->hidden = hidden;
}

/* ---- bits ---- */

bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bm, uint64_t offset)
{
    return hbitmap_get(bm->hb, offset);
}

void bdrv_dirty_bitmap_set(BdrvDirtyBitmap *bm, uint64_t offset,
                           uint64_t bytes)
{
    hbitmap_set(bm->hb, offset, bytes);
}

void bdrv_dirty_bitmap_reset(BdrvDirtyBitmap *bm, uint64_t offset,
                             uint64_t bytes)
{
    hbitmap_reset(bm->hb, offset, bytes);
}

int64_t bdrv_dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bm,
                                     uint64_t offset, uint64_t bytes)
{
    return hbitmap_next_dirty(bm->hb, offset, bytes);
}

int64_t bdrv_dirty_bitmap_next_zero(const BdrvDirtyBitmap *bm,
                                    uint64_t offset, uint64_t bytes)
{
    return hbitmap_next_zero(bm->hb, offset, bytes);
}

bool bdrv_dirty_bitmap_next_dirty_area(const BdrvDirtyBitmap *bm,
                                       uint64_t start, uint64_t end,
                                       uint64_t max_len, uint64_t *area_start,
                                       uint64_t *area_len)
{
    return hbitmap_next_dirty_area(bm->hb, start, end, max_len, area_start,
                                   area_len);
}

HBitmap *bdrv_dirty_bitmap_hbitmap(BdrvDirtyBitmap *bm)
{
    return bm->hb;
}

HBitmap *bdrv_dirty_bitmap_copy_bits(const BdrvDirtyBitmap *bm)
{
    return hbitmap_copy(bm->hb);
}

HBitmap *bdrv_dirty_bitmap_swap_bits(BdrvDirtyBitmap *bm, HBitmap *hb)
{
    if (hbitmap_size(hb) != hbitmap_size(bm->hb)) {
        hbitmap_truncate(hb, hbitmap_size(bm->hb));   /* resized meanwhile */
    }
    HBitmap *old = bm->hb;
    bm->hb = hb;
    return old;
}

bool bdrv_dirty_bitmap_merge_internal(BdrvDirtyBitmap *bm,
                                      const BdrvDirtyBitmap *src)
{
    return hbitmap_merge(bm->hb, src->hb);
}

bool bdrv_dirty_bitmap_merge_hbitmap(BdrvDirtyBitmap *bm, const HBitmap *src)
{
    return hbitmap_merge(bm->hb, src);
}

/* ---- successors ---- */

int bdrv_dirty_bitmap_create_successor(BdrvDirtyBitmap *bm, GError **errp)
{
    if (bm->busy) {
        error_setg(errp, "Cannot create a successor for a bitmap that is "
                   "in-use by an operation");
        return -1;
    }
    if (bm->successor) {
        error_setg(errp, "Cannot create a successor for a bitmap that "
                   "already has one");
        return -1;
    }
    BdrvDirtyBitmap *s = bdrv_dirty_bitmap_create(
        bm->bs, bdrv_dirty_bitmap_granularity(bm), NULL, errp);
    if (!s) {
        return -1;
    }
    if (hbitmap_size(s->hb) != hbitmap_size(bm->hb)) {
        hbitmap_truncate(s->hb, hbitmap_size(bm->hb));
    }
    s->disabled = bm->disabled;     /* records if bm did */
    bm->successor = s;
    bm->busy = true;
    bm->disabled = true;
    return 0;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_successor(const BdrvDirtyBitmap *bm)
{
    return bm->successor;
}

/* Drops the successor link and the frozen state. */
static BdrvDirtyBitmap *take_successor(BdrvDirtyBitmap *bm)
{
    BdrvDirtyBitmap *s = bm->successor;
    g_assert(s);
    bm->successor = NULL;
    bm->disabled = s->disabled;
    bm->busy = false;
    return s;
}

void bdrv_dirty_bitmap_abdicate(BdrvDirtyBitmap *bm)
{
    BdrvDirtyBitmap *s = take_successor(bm);
    HBitmap *old = bm->hb;
    bm->hb = s->hb;
    s->hb = old;
    bdrv_dirty_bitmap_release(s);
}

void bdrv_dirty_bitmap_reclaim(BdrvDirtyBitmap *bm)
{
    BdrvDirtyBitmap *s = take_successor(bm);
    hbitmap_merge(bm->hb, s->hb);
    bdrv_dirty_bitmap_release(s);
}

/* ---- hooks ---- */

void bdrv_dirty_bitmap_mark(BlockDriverState *bs, int64_t offset,
                            int64_t bytes)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bm = l->data;
        if (!bm->disabled && !bm->hidden) {
            hbitmap_set(bm->hb, offset, bytes);
        }
    }
}

void bdrv_dirty_bitmap_truncate_all(BlockDriverState *bs, uint64_t size)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bm = l->data;
        hbitmap_truncate(bm->hb, size);
    }
}

json_t *bdrv_dirty_bitmap_query(BlockDriverState *bs)
{
    json_t *arr = NULL;
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bm = l->data;
        if (bm->hidden) {
            continue;
        }
        json_t *o = json_object();
        if (bm->name) {
            json_object_set_new(o, "name", json_string(bm->name));
        }
        json_object_set_new(o, "recording",
                            json_boolean(bdrv_dirty_bitmap_recording(bm)));
        json_object_set_new(o, "persistent", json_boolean(bm->persistent));
        json_object_set_new(o, "busy", json_boolean(bm->busy));
        json_object_set_new(o, "granularity",
                            json_integer(bdrv_dirty_bitmap_granularity(bm)));
        json_object_set_new(o, "count",
                            json_integer((json_int_t)hbitmap_count(bm->hb)));
        if (bm->inconsistent) {
            json_object_set_new(o, "inconsistent", json_true());
        }
        if (!arr) {
            arr = json_array();
        }
        json_array_append_new(arr, o);
    }
    return arr;
}
