/*
 * snapshot.c - the generic side of internal snapshots: dispatch to the
 * format driver (qcow2 today) and synchronous wrappers.  See snapshot.h
 * for the prepare / commit / finish split.
 */
#include "block/block_int.h"
#include "util/main-loop.h"
#include <errno.h>
#include <string.h>

void bdrv_snapshot_info_clear(BdrvSnapshotInfo *sn)
{
    g_clear_pointer(&sn->id_str, g_free);
    g_clear_pointer(&sn->name, g_free);
}

void bdrv_snapshot_list_free(BdrvSnapshotInfo *list, int n)
{
    for (int i = 0; i < n; i++) {
        bdrv_snapshot_info_clear(&list[i]);
    }
    g_free(list);
}

bool bdrv_can_snapshot(BlockDriverState *bs)
{
    return bs->drv->snapshot != NULL && !bs->read_only;
}

static bool check_snapshot_support(BlockDriverState *bs, GError **errp)
{
    if (!bs->drv->snapshot) {
        error_setg(errp, "Block format '%s' used by device '%s' does not "
                   "support internal snapshots", bs->drv->format_name,
                   bs->node_name);
        return false;
    }
    return true;
}

int bdrv_snapshot_list(BlockDriverState *bs, BdrvSnapshotInfo **list)
{
    if (!bs->drv->snapshot) {
        *list = NULL;
        return -ENOTSUP;
    }
    return bs->drv->snapshot->list(bs, list);
}

bool bdrv_snapshot_find(BlockDriverState *bs, const char *id_or_name,
                        BdrvSnapshotInfo *out)
{
    BdrvSnapshotInfo *list;
    int n = bdrv_snapshot_list(bs, &list);
    int found = -1;
    for (int i = 0; i < n && found < 0; i++) {
        if (!strcmp(list[i].id_str, id_or_name)) {
            found = i;
        }
    }
    for (int i = 0; i < n && found < 0; i++) {
        if (!strcmp(list[i].name, id_or_name)) {
            found = i;
        }
    }
    if (found >= 0 && out) {
        *out = list[found];
        list[found].id_str = NULL;
        list[found].name = NULL;
    }
    if (n >= 0) {
        bdrv_snapshot_list_free(list, n);
    }
    return found >= 0;
}

int coroutine_fn bdrv_co_snapshot_create_prepare(BlockDriverState *bs,
                                                 const BdrvSnapshotInfo *sn,
                                                 BdrvSnapshotCreate **state,
                                                 GError **errp)
{
    if (!check_snapshot_support(bs, errp)) {
        return -ENOTSUP;
    }
    bdrv_inc_in_flight(bs);
    int ret = bs->drv->snapshot->create_prepare(bs, sn, state, errp);
    bdrv_dec_in_flight(bs);
    return ret;
}

void bdrv_snapshot_create_commit(BlockDriverState *bs,
                                 BdrvSnapshotCreate *state)
{
    bs->drv->snapshot->create_commit(bs, state);
}

int coroutine_fn bdrv_co_snapshot_create_finish(BlockDriverState *bs,
                                                BdrvSnapshotCreate *state,
                                                GError **errp)
{
    bdrv_inc_in_flight(bs);
    int ret = bs->drv->snapshot->create_finish(bs, state, errp);
    bdrv_dec_in_flight(bs);
    return ret;
}

void coroutine_fn bdrv_co_snapshot_create_abort(BlockDriverState *bs,
                                                BdrvSnapshotCreate *state)
{
    bs->drv->snapshot->create_abort(bs, state);
}

typedef struct {
    BlockDriverState *bs;
    const BdrvSnapshotInfo *sn;
    const char *a, *b;
    GError **errp;
    int ret;
} SnapCo;

static void coroutine_fn snapshot_create_entry(void *opaque)
{
    SnapCo *c = opaque;
    BdrvSnapshotCreate *st;
    c->ret = bdrv_co_snapshot_create_prepare(c->bs, c->sn, &st, c->errp);
    if (c->ret < 0) {
        return;
    }
    /* Without a guest to pause, commit right away, quiesced. */
    bdrv_drained_begin(c->bs);
    bdrv_snapshot_create_commit(c->bs, st);
    bdrv_drained_end(c->bs);
    c->ret = bdrv_co_snapshot_create_finish(c->bs, st, c->errp);
}

int bdrv_snapshot_create(BlockDriverState *bs, const BdrvSnapshotInfo *sn,
                         GError **errp)
{
    SnapCo c = { .bs = bs, .sn = sn, .errp = errp };
    co_run_sync(snapshot_create_entry, &c);
    return c.ret;
}

/* Requests in flight belong to the state being left: a write landing in
 * a cluster the revert freed could hit data reusing it.  Drain first. */
static void coroutine_fn snapshot_apply_entry(void *opaque)
{
    SnapCo *c = opaque;
    bdrv_drained_begin(c->bs);
    bdrv_inc_in_flight(c->bs);
    c->ret = c->bs->drv->snapshot->apply(c->bs, c->a, c->errp);
    bdrv_dec_in_flight(c->bs);
    bdrv_drained_end(c->bs);
}

int bdrv_snapshot_apply(BlockDriverState *bs, const char *id_or_name,
                        GError **errp)
{
    if (!check_snapshot_support(bs, errp)) {
        return -ENOTSUP;
    }
    SnapCo c = { .bs = bs, .a = id_or_name, .errp = errp };
    co_run_sync(snapshot_apply_entry, &c);
    return c.ret;
}

static void coroutine_fn snapshot_delete_entry(void *opaque)
{
    SnapCo *c = opaque;
    bdrv_inc_in_flight(c->bs);
    c->ret = c->bs->drv->snapshot->delete(c->bs, c->a, c->b, NULL, c->errp);
    bdrv_dec_in_flight(c->bs);
}

int bdrv_snapshot_delete(BlockDriverState *bs, const char *id,
                         const char *name, GError **errp)
{
    if (!check_snapshot_support(bs, errp)) {
        return -ENOTSUP;
    }
    SnapCo c = { .bs = bs, .a = id, .b = name, .errp = errp };
    co_run_sync(snapshot_delete_entry, &c);
    return c.ret;
}
