/*
 * snapshot.c - disk snapshots (include/xblk/xblk-snapshot.h) on the
 * transaction core (block/transaction.h, block/txn-snapshot.h): one
 * action per XblkSnapshotAction, every action checked before any runs,
 * QEMU's error texts from the core.  Revert and delete of an internal
 * snapshot hold the disk's requests (a drained section) meanwhile.
 */
#include "api/internal.h"
#include "block/block.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "block/txn-snapshot.h"
#include <string.h>

static bool action_check(const XblkSnapshotAction *a, size_t i,
                         XblkError **err)
{
    if (a->size < offsetof(XblkSnapshotAction, overlay_node_name) +
                  sizeof(a->overlay_node_name)) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "action %zu: XblkSnapshotAction.size %zu is too "
                       "small", i, a->size);
        return false;
    }
    if (!a->disk || !xblk_disk_name(a->disk)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "action %zu: no disk", i);
        return false;
    }
    if (a->kind == XBLK_SNAPSHOT_INTERNAL && !(a->name && *a->name)) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "action %zu: an internal snapshot needs a name", i);
        return false;
    }
    if (a->kind == XBLK_SNAPSHOT_EXTERNAL &&
        !(a->overlay_file && *a->overlay_file)) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "action %zu: an external snapshot needs an overlay "
                       "file", i);
        return false;
    }
    if (a->kind != XBLK_SNAPSHOT_INTERNAL &&
        a->kind != XBLK_SNAPSHOT_EXTERNAL) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "action %zu: unknown snapshot kind %d", i, a->kind);
        return false;
    }
    return true;
}

bool xblk_snapshot_transaction(XblkEngine *engine,
                               const XblkSnapshotAction *actions,
                               size_t count, XblkError **err)
{
    if (!engine || engine != xblk_api_engine()) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no such engine");
        return false;
    }
    if (!actions || !count) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no snapshot actions");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        if (!action_check(&actions[i], i, err)) {
            return false;
        }
    }
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    for (size_t i = 0; i < count; i++) {
        const XblkSnapshotAction *a = &actions[i];
        const char *node = xblk_disk_name(a->disk);
        if (a->kind == XBLK_SNAPSHOT_INTERNAL) {
            txn_add_snapshot_internal(t, node, a->name);
        } else {
            txn_add_snapshot_sync(t, NULL, node, a->overlay_file,
                                  a->overlay_node_name, "qcow2", false);
        }
    }
    GError *gerr = NULL;
    if (txn_run(t, &gerr) < 0) {
        xblk_api_error_from(err, gerr);
        return false;
    }
    return true;
}

static BlockDriverState *disk_bs(XblkDisk *d, XblkError **err)
{
    BlockDriverState *bs = d ? blk_bs(d->blk) : NULL;
    if (!bs) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no disk");
    }
    return bs;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    g_strlcpy(dst, src ? src : "", size);
}

int xblk_snapshot_list(XblkDisk *d, XblkSnapshotInfo *out, int max,
                       XblkError **err)
{
    BlockDriverState *bs = disk_bs(d, err);
    if (!bs) {
        return -1;
    }
    if (max < 0 || (max > 0 && !out)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "bad output array");
        return -1;
    }
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    if (n < 0) {
        xblk_api_error(err, XBLK_ERROR_UNSUPPORTED,
                       "Device '%s' does not support internal snapshots",
                       bs->node_name);
        return -1;
    }
    for (int i = 0; i < n && i < max; i++) {
        XblkSnapshotInfo *o = &out[i];
        if (o->size < sizeof(XblkSnapshotInfo)) {
            bdrv_snapshot_list_free(list, n);
            xblk_api_error(err, XBLK_ERROR_INVALID,
                           "XblkSnapshotInfo.size %zu is too small",
                           o->size);
            return -1;
        }
        copy_str(o->id, sizeof(o->id), list[i].id_str);
        copy_str(o->name, sizeof(o->name), list[i].name);
        o->vm_state_size = list[i].vm_state_size;
        o->date_sec = list[i].date_sec;
        o->vm_clock_ns = list[i].vm_clock_nsec;
    }
    bdrv_snapshot_list_free(list, n);
    return n;
}

bool xblk_snapshot_revert(XblkDisk *d, const char *id_or_name,
                          XblkError **err)
{
    BlockDriverState *bs = disk_bs(d, err);
    if (!bs) {
        return false;
    }
    if (!id_or_name || !bdrv_snapshot_find(bs, id_or_name, NULL)) {
        xblk_api_error(err, XBLK_ERROR_NOT_FOUND,
                       "Snapshot '%s' does not exist on '%s'",
                       id_or_name ? id_or_name : "", bs->node_name);
        return false;
    }
    GError *gerr = NULL;
    bdrv_drained_begin(bs);
    int ret = bdrv_snapshot_apply(bs, id_or_name, &gerr);
    bdrv_drained_end(bs);
    if (ret < 0) {
        xblk_api_error_from(err, gerr);
        return false;
    }
    return true;
}

bool xblk_snapshot_delete(XblkDisk *d, const char *id_or_name,
                          XblkError **err)
{
    BlockDriverState *bs = disk_bs(d, err);
    if (!bs) {
        return false;
    }
    BdrvSnapshotInfo sn = { 0 };
    if (!id_or_name || !bdrv_snapshot_find(bs, id_or_name, &sn)) {
        xblk_api_error(err, XBLK_ERROR_NOT_FOUND,
                       "Snapshot '%s' does not exist on '%s'",
                       id_or_name ? id_or_name : "", bs->node_name);
        return false;
    }
    GError *gerr = NULL;
    bdrv_drained_begin(bs);
    int ret = bdrv_snapshot_delete(bs, sn.id_str, NULL, &gerr);
    bdrv_drained_end(bs);
    bdrv_snapshot_info_clear(&sn);
    if (ret < 0) {
        xblk_api_error_from(err, gerr);
        return false;
    }
    return true;
}
