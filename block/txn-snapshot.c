/*
 * txn-snapshot.c - the snapshot actions (see txn-snapshot.h) as
 * TxnActionDrivers of the transaction core.
 *
 * External snapshots: prepare does every costly step (checks, flush of the
 * old top, creating and opening the overlay without its backing chain);
 * commit is bdrv_append() only; abort closes the overlay and removes the
 * file if this action created it.  finish has nothing to write (the
 * overlay's header already names its backing file) but exists so that
 * undo can put the old graph back when another action's finish fails
 * (DESIGN rule 3).
 *
 * A new overlay file is created under a hidden temporary name in the
 * same folder and renamed into place once complete, so a process killed
 * while creating it leaves no half-made image under the user's name;
 * finish makes the folder entry durable before the reply.
 *
 * Internal snapshots map onto bdrv_co_snapshot_create_prepare / _commit /
 * _finish / _abort; undo deletes the snapshot again.  With a late VM state
 * (txn_add_snapshot_internal_late) finish first runs the caller's
 * write-out into the committed snapshot
 * (bdrv_co_snapshot_create_writev_vmstate), then finishes it; a failed
 * write-out aborts the committed creation, which abandons the snapshot.
 *
 * Once a transaction that appended an overlay is over (clean), the old
 * top is reopened read-only and drops its write lock (bdrv_reopen_read_only).
 *
 * Invariant: from a successful prepare until clean, an action holds one
 * reference to every node it names.
 */
#include "block/txn-snapshot.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/vmstate.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* QEMU's lookup: a backend by name first, then a node by name. */
static BlockDriverState *txn_lookup_bs(const char *device,
                                       const char *node_name, GError **errp)
{
    if (device) {
        BlockBackend *blk = blk_by_name(device);
        if (blk && blk_bs(blk)) {
            return blk_bs(blk);
        }
        if (blk) {              /* an empty drive */
            error_setg(errp, "Device '%s' has no medium", device);
            return NULL;
        }
    }
    if (node_name) {
        BlockDriverState *bs = bdrv_find_node(node_name);
        if (bs) {
            return bs;
        }
    }
    error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
               device ? device : "", node_name ? node_name : "");
    return NULL;
}

/* A node under another as its backing cannot get an overlay. */
static bool txn_check_not_backing(BlockDriverState *bs, GError **errp)
{
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        if (!strcmp(c->role, "backing")) {
            error_setg(errp, "Node '%s' is busy: node is used as backing hd "
                       "of '%s'", bs->node_name, c->parent->node_name);
            return false;
        }
    }
    return true;
}

/* Internal snapshots, as in QEMU, only of a root node (one no other node
 * has as its child): a snapshot of a node under a filter or format node
 * would not capture what the parent shows. */
static bool txn_check_root(BlockDriverState *bs, GError **errp)
{
    if (bs->parents) {
        error_setg(errp, "Need a root block node");
        return false;
    }
    return true;
}

/* The old top's data must be on disk before the overlay hides it. */
static int coroutine_fn txn_flush_top(BlockDriverState *bs, GError **errp)
{
    if (bs->read_only) {
        return 0;
    }
    int ret = bdrv_co_flush(bs);
    if (ret < 0) {
        error_setg(errp, "An IO error has occurred");
    }
    return ret;
}

/* ---- external snapshots ---- */

typedef struct ExtSnap {
    bool sync;                  /* blockdev-snapshot-sync, else -snapshot */
    char *device, *node_name;   /* the node to snapshot */
    char *file, *snap_node_name, *format;
    bool existing;
    char *overlay_name;         /* blockdev-snapshot */
    BlockDriverState *top, *overlay;
    bool created;               /* we created `file` (remove on rollback) */
    bool renamed;               /* created by rename: sync its folder */
    bool reserved;              /* snap_node_name and file are reserved */
    bool appended;              /* the graph switch is in place */
} ExtSnap;

/*
 * Node names and files that snapshot-sync prepares are about to create.
 * Prepares of neighbouring actions run side by side (parallel_prepare),
 * so a name must be claimed when it is checked, not when the overlay
 * opens, for the second of two actions naming it to fail as it would if
 * they ran one after the other.
 */
static GHashTable *ext_reserved;

static bool ext_reserve(ExtSnap *s, GError **errp)
{
    if (!ext_reserved) {
        ext_reserved = g_hash_table_new_full(g_str_hash, g_str_equal,
                                             g_free, NULL);
    }
    g_autofree char *name_key = s->snap_node_name ?
        g_strconcat("node:", s->snap_node_name, NULL) : NULL;
    g_autofree char *file_key = g_strconcat("file:", s->file, NULL);
    if (name_key && g_hash_table_contains(ext_reserved, name_key)) {
        error_setg(errp, "New overlay node-name already in use");
        return false;
    }
    if (g_hash_table_contains(ext_reserved, file_key)) {
        error_setg(errp, "Could not create '%s': File exists", s->file);
        return false;
    }
    if (name_key) {
        g_hash_table_add(ext_reserved, g_steal_pointer(&name_key));
    }
    g_hash_table_add(ext_reserved, g_steal_pointer(&file_key));
    s->reserved = true;
    return true;
}

static void ext_unreserve(ExtSnap *s)
{
    if (!s->reserved) {
        return;
    }
    if (s->snap_node_name) {
        g_autofree char *k = g_strconcat("node:", s->snap_node_name, NULL);
        g_hash_table_remove(ext_reserved, k);
    }
    g_autofree char *k = g_strconcat("file:", s->file, NULL);
    g_hash_table_remove(ext_reserved, k);
    s->reserved = false;
}

static int coroutine_fn ext_sync_check(ExtSnap *s, const BlockDriver **drv,
                                       GError **errp)
{
    if (s->node_name && !s->snap_node_name) {
        error_setg(errp, "New overlay node-name missing");
        return -EINVAL;
    }
    if (s->snap_node_name && (bdrv_find_node(s->snap_node_name) ||
                              blk_by_name(s->snap_node_name))) {
        error_setg(errp, "New overlay node-name already in use");
        return -EEXIST;
    }
    /* Checked before creating anything, so a bad name leaves no file. */
    if (s->snap_node_name && !bdrv_node_name_valid(s->snap_node_name)) {
        error_setg(errp, "Invalid node-name: '%s'", s->snap_node_name);
        return -EINVAL;
    }
    *drv = bdrv_find_format(s->format);
    if (!*drv || (*drv)->is_filter || (*drv)->is_protocol) {
        error_setg(errp, "Unknown file format '%s'", s->format);
        return -EINVAL;
    }
    if (!s->existing && !(*drv)->supports_backing) {
        error_setg(errp, "Backing file not supported for file format '%s'",
                   s->format);
        return -ENOTSUP;
    }
    /* Last and without yielding since the first lookup above. */
    return ext_reserve(s, errp) ? 0 : -EEXIST;
}

typedef struct ExtFileOp {
    const char *from, *to;      /* rename from -> to; fsync folder `to` */
} ExtFileOp;

static int ext_rename_worker(void *opaque)
{
    ExtFileOp *op = opaque;
    return rename(op->from, op->to) < 0 ? -errno : 0;
}

static int ext_sync_dir_worker(void *opaque)
{
    ExtFileOp *op = opaque;
    return fsync_parent_dir(op->to);
}

/* Errors of the creation name the file the user asked for. */
static void ext_rename_in_error(GError *err, const char *tmp,
                                const char *file)
{
    if (err && strstr(err->message, tmp)) {
        GString *m = g_string_new(err->message);
        g_string_replace(m, tmp, file, 0);
        g_free(err->message);
        err->message = g_string_free(m, FALSE);
    }
}

static int coroutine_fn ext_sync_create(ExtSnap *s, GError **errp)
{
    g_autoptr(BlockOpts) o = bopts_new();
    g_autofree char *size = g_strdup_printf("%" G_GINT64_FORMAT,
                                            bdrv_getlength(s->top));
    bopts_set(o, "size", size);
    bopts_set(o, "backing_file", s->top->filename);
    bopts_set(o, "backing_fmt", bdrv_get_format_name(s->top));
    /* An existing file is overwritten in place, as QEMU does, and is not
     * ours to delete on rollback. */
    if (access(s->file, F_OK) == 0) {
        return MIN(bdrv_create(s->format, s->file, o, errp), 0);
    }
    g_autofree char *dir = g_path_get_dirname(s->file);
    g_autofree char *base = g_path_get_basename(s->file);
    g_autofree char *tmp = g_strdup_printf("%s/.%s.xblk-new", dir, base);
    GError *err = NULL;
    int ret = bdrv_create(s->format, tmp, o, &err);
    if (ret >= 0) {
        ExtFileOp op = { tmp, s->file };
        ret = worker_pool_run(ext_rename_worker, &op);
        if (ret < 0) {
            error_setg_errno(&err, -ret, "Could not create '%s'", s->file);
        }
    }
    if (ret < 0) {
        unlink(tmp);
        ext_rename_in_error(err, tmp, s->file);
        g_propagate_error(errp, err);
        return ret;
    }
    s->created = s->renamed = true;
    return 0;
}

static int coroutine_fn ext_sync_open(ExtSnap *s, GError **errp)
{
    BlockOpts *o = bopts_new();
    bopts_set(o, "driver", s->format);
    if (s->snap_node_name) {
        bopts_set(o, "node-name", s->snap_node_name);
    }
    bopts_set(o, "file.driver", "file");
    bopts_set(o, "file.filename", s->file);
    s->overlay = bdrv_open(NULL, o, BDRV_O_RDWR | BDRV_O_NO_BACKING, errp);
    return s->overlay ? 0 : -EIO;
}

static void ext_remove_file(ExtSnap *s)
{
    if (s->created) {
        unlink(s->file);
        s->created = false;
    }
}

typedef struct ExtFlushCo {
    BlockDriverState *top;
    int ret;
    GError *err;
    bool done;
    Coroutine *waiter;
} ExtFlushCo;

static void coroutine_fn ext_flush_entry(void *opaque)
{
    ExtFlushCo *f = opaque;
    f->ret = txn_flush_top(f->top, &f->err);
    f->done = true;
    if (f->waiter) {
        co_wake(f->waiter);
    }
}

/* The old top's flush and the overlay's creation wait on different
 * files: they run side by side.  A failed flush wins over a failed
 * creation, as if the flush had come first. */
static int coroutine_fn ext_sync_prepare(ExtSnap *s, GError **errp)
{
    const BlockDriver *drv;
    int ret = ext_sync_check(s, &drv, errp);
    if (ret < 0) {
        return ret;
    }
    ExtFlushCo flush = { .top = s->top };
    co_enter(co_create(ext_flush_entry, &flush));
    GError *err = NULL;
    if (!s->existing) {
        ret = ext_sync_create(s, &err);
    }
    if (ret == 0) {
        ret = ext_sync_open(s, &err);
    }
    if (!flush.done) {
        flush.waiter = co_self();
        co_yield();
    }
    if (flush.ret < 0) {
        g_clear_error(&err);
        g_propagate_error(errp, flush.err);
        ret = flush.ret;
        if (s->overlay) {
            bdrv_unref(s->overlay);
            s->overlay = NULL;
        }
    } else if (ret < 0) {
        g_propagate_error(errp, err);
    }
    if (ret < 0) {
        ext_remove_file(s);
    }
    return ret;
}

static int coroutine_fn ext_overlay_prepare(ExtSnap *s, GError **errp)
{
    BlockDriverState *ov = txn_lookup_bs(s->overlay_name, s->overlay_name,
                                         errp);
    if (!ov) {
        return -ENOENT;
    }
    if (ov->backends || ov->parents) {
        error_setg(errp, "The overlay is already in use");
        return -EBUSY;
    }
    if (ov->backing) {
        error_setg(errp, "The overlay already has a backing image");
        return -EEXIST;
    }
    if (!ov->drv->supports_backing) {
        error_setg(errp, "The overlay does not support backing images");
        return -ENOTSUP;
    }
    if (bdrv_is_in_subtree(s->top, ov)) {
        error_setg(errp, "Making '%s' a backing child of '%s' would create "
                   "a cycle", s->top->node_name, ov->node_name);
        return -EINVAL;
    }
    int ret = txn_flush_top(s->top, errp);
    if (ret < 0) {
        return ret;
    }
    bdrv_ref(ov);
    s->overlay = ov;
    return 0;
}

static int coroutine_fn ext_prepare(void *opaque, Transaction *txn,
                                    GError **errp)
{
    ExtSnap *s = opaque;
    BlockDriverState *top = txn_lookup_bs(s->device, s->node_name, errp);
    if (!top) {
        return -ENOENT;
    }
    if (!txn_check_not_backing(top, errp)) {
        return -EBUSY;
    }
    s->top = top;
    int ret = s->sync ? ext_sync_prepare(s, errp) : ext_overlay_prepare(s, errp);
    if (ret < 0) {
        s->top = NULL;
        return ret;
    }
    bdrv_ref(top);
    return 0;
}

static void ext_add_nodes(void *opaque, GPtrArray *nodes)
{
    ExtSnap *s = opaque;
    g_ptr_array_add(nodes, s->top);
    g_ptr_array_add(nodes, s->overlay);
}

static void ext_commit(void *opaque)
{
    ExtSnap *s = opaque;
    bdrv_append(s->overlay, s->top);
    s->appended = true;
}

/* Drops the overlay this action opened (the file too if it made it). */
static void ext_drop_overlay(ExtSnap *s)
{
    bdrv_unref(s->overlay);
    s->overlay = NULL;
    ext_remove_file(s);
}

static void coroutine_fn ext_abort(void *opaque)
{
    ExtSnap *s = opaque;
    g_assert(!s->appended);
    ext_drop_overlay(s);
}

static int coroutine_fn ext_finish(void *opaque, GError **errp)
{
    ExtSnap *s = opaque;
    if (!s->renamed) {
        return 0;
    }
    /* Guest writes now go to the overlay; its name must survive a power
     * cut before the reply says the snapshot exists. */
    ExtFileOp op = { NULL, s->file };
    int ret = worker_pool_run(ext_sync_dir_worker, &op);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not sync the folder of '%s'",
                         s->file);
    }
    return ret;
}

/* Another action's finish failed: the old top goes back on top.  Guest
 * writes that reached the overlay meanwhile are dropped with it, as the
 * transaction as a whole did not happen. */
static void coroutine_fn ext_undo(void *opaque)
{
    ExtSnap *s = opaque;
    bdrv_drained_begin(s->overlay);
    bdrv_drained_begin(s->top);
    bdrv_unappend(s->overlay, s->top);
    bdrv_drained_end(s->top);
    bdrv_drained_end(s->overlay);
    s->appended = false;
    ext_drop_overlay(s);
}

static void ext_clean(void *opaque)
{
    ExtSnap *s = opaque;
    if (s->appended) {
        /* The snapshot happened: the old top is a backing file now and is
         * reopened read-only, releasing its write lock as QEMU does (so
         * that `qemu-img info` of it works).  Outside the pause; a node
         * that cannot (persistent bitmaps) stays read-write. */
        g_autoptr(GError) err = NULL;
        bdrv_reopen_read_only(s->top, &err);
    }
    ext_unreserve(s);
    /* Whoever holds the overlay now (the top's old parents, the monitor)
     * keeps it; with no holder it closes, as in QEMU. */
    bdrv_unref(s->overlay);
    bdrv_unref(s->top);
    g_free(s->device);
    g_free(s->node_name);
    g_free(s->file);
    g_free(s->snap_node_name);
    g_free(s->format);
    g_free(s->overlay_name);
    g_free(s);
}

static const TxnActionDriver ext_sync_driver = {
    .type = "blockdev-snapshot-sync",
    .parallel_prepare = true,
    .prepare = ext_prepare,
    .add_nodes = ext_add_nodes,
    .commit = ext_commit,
    .abort = ext_abort,
    .finish = ext_finish,
    .undo = ext_undo,
    .clean = ext_clean,
};

static const TxnActionDriver ext_overlay_driver = {
    .type = "blockdev-snapshot",
    .prepare = ext_prepare,
    .add_nodes = ext_add_nodes,
    .commit = ext_commit,
    .abort = ext_abort,
    .finish = ext_finish,
    .undo = ext_undo,
    .clean = ext_clean,
};

void txn_add_snapshot_sync(Transaction *t, const char *device,
                           const char *node_name, const char *snapshot_file,
                           const char *snapshot_node_name,
                           const char *format, bool mode_existing)
{
    ExtSnap *s = g_new0(ExtSnap, 1);
    s->sync = true;
    s->device = g_strdup(device);
    s->node_name = g_strdup(node_name);
    s->file = g_strdup(snapshot_file);
    s->snap_node_name = g_strdup(snapshot_node_name);
    s->format = g_strdup(format ? format : "qcow2");
    s->existing = mode_existing;
    txn_add(t, &ext_sync_driver, s);
}

void txn_add_snapshot(Transaction *t, const char *node, const char *overlay)
{
    ExtSnap *s = g_new0(ExtSnap, 1);
    s->device = g_strdup(node);
    s->node_name = g_strdup(node);
    s->overlay_name = g_strdup(overlay);
    txn_add(t, &ext_overlay_driver, s);
}

/* ---- internal snapshots ---- */

/* The internal snapshot action; a late VM state's writer sees it as its
 * TxnSnapshotVmstate handle. */
typedef struct TxnSnapshotVmstate IntSnap;
struct TxnSnapshotVmstate {
    char *device, *name;
    /* recorded as given; date 0 means "when prepared" */
    uint64_t vm_state_size, vm_clock_nsec, icount;
    uint32_t date_sec, date_nsec;
    BlockDriverState *bs;
    BdrvSnapshotCreate *state;  /* between prepare and finish/abort */
    GList *link;                /* in int_pending while prepared */
    Transaction *txn;           /* whose prepare ran */
    /* late VM state */
    bool late;
    bool writing;               /* inside write: the writer may write */
    TxnVmstateWriteFn *write;
    void *write_opaque;
};

/* Internal actions prepared and not yet cleaned: a second snapshot of the
 * same name on the same node in one transaction is a duplicate. */
static GList *int_pending;

static bool int_name_taken(IntSnap *s)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(s->bs, &list);
    bool taken = false;
    for (int i = 0; i < n && !taken; i++) {
        taken = !strcmp(list[i].name, s->name);
    }
    if (n >= 0) {
        bdrv_snapshot_list_free(list, n);
    }
    for (GList *l = int_pending; l && !taken; l = l->next) {
        IntSnap *o = l->data;
        taken = o->bs == s->bs && !strcmp(o->name, s->name);
    }
    return taken;
}

static int coroutine_fn int_check(IntSnap *s, GError **errp)
{
    if (s->bs->read_only) {
        error_setg(errp, "Device '%s' is read only", s->device);
        return -EROFS;
    }
    if (!s->bs->drv->snapshot) {
        error_setg(errp, "Block format '%s' used by device '%s' does not "
                   "support internal snapshots", bdrv_get_format_name(s->bs),
                   s->device);
        return -ENOTSUP;
    }
    if (!*s->name) {
        error_setg(errp, "Name is empty");
        return -EINVAL;
    }
    if (int_name_taken(s)) {
        error_setg(errp, "Snapshot with name '%s' already exists on device "
                   "'%s'", s->name, s->device);
        return -EEXIST;
    }
    return 0;
}

static int coroutine_fn int_prepare(void *opaque, Transaction *txn,
                                    GError **errp)
{
    IntSnap *s = opaque;
    s->bs = txn_lookup_bs(s->device, s->device, errp);
    if (!s->bs) {
        return -ENOENT;
    }
    if (!txn_check_root(s->bs, errp)) {
        s->bs = NULL;
        return -EINVAL;
    }
    int ret = int_check(s, errp);
    if (ret < 0) {
        s->bs = NULL;
        return ret;
    }
    gint64 now = g_get_real_time();
    BdrvSnapshotInfo sn = {
        .name = s->name,
        .date_sec = (uint32_t)(now / G_USEC_PER_SEC),
        .date_nsec = (uint32_t)(now % G_USEC_PER_SEC) * 1000,
        .vm_state_size = s->vm_state_size,
        .vm_clock_nsec = s->vm_clock_nsec,
        .icount = s->icount,
        .vm_state_late = s->late,
    };
    if (s->date_sec || s->date_nsec) {
        sn.date_sec = s->date_sec;
        sn.date_nsec = s->date_nsec;
    }
    /* Claimed before the first yield: a neighbouring action preparing
     * side by side with the same name must see it taken. */
    int_pending = g_list_prepend(int_pending, s);
    s->link = int_pending;
    s->txn = txn;
    ret = bdrv_co_snapshot_create_prepare(s->bs, &sn, &s->state, errp);
    if (ret < 0) {
        int_pending = g_list_delete_link(int_pending, s->link);
        s->link = NULL;
        s->bs = NULL;
        return ret;
    }
    bdrv_ref(s->bs);
    return 0;
}

static void int_add_nodes(void *opaque, GPtrArray *nodes)
{
    IntSnap *s = opaque;
    g_ptr_array_add(nodes, s->bs);
}

static void int_commit(void *opaque)
{
    IntSnap *s = opaque;
    bdrv_snapshot_create_commit(s->bs, s->state);
}

static void coroutine_fn int_abort(void *opaque)
{
    IntSnap *s = opaque;
    bdrv_co_snapshot_create_abort(s->bs, s->state);
    s->state = NULL;
}

static void coroutine_fn int_undo(void *opaque)
{
    IntSnap *s = opaque;
    GError *err = NULL;
    if (bdrv_snapshot_delete(s->bs, NULL, s->name, &err) < 0) {
        /* Nothing better to do: the snapshot stays, complete. */
        g_error_free(err);
    }
}

/* The late VM state's write-out and its size; on failure the committed
 * creation is aborted, which abandons the snapshot. */
static int coroutine_fn int_write_out(IntSnap *s, GError **errp)
{
    GError *err = NULL;
    s->writing = true;
    int ret = s->write(s, s->write_opaque, &err);
    s->writing = false;
    if (ret >= 0) {
        g_clear_error(&err);
        ret = bdrv_snapshot_create_set_vm_state_size(s->bs, s->state,
                                                     s->vm_state_size, &err);
    } else if (!err) {
        error_setg_errno(&err, -ret, "Could not write the VM state");
    }
    if (ret < 0) {
        bdrv_co_snapshot_create_abort(s->bs, g_steal_pointer(&s->state));
        g_propagate_error(errp, err);
    }
    return ret;
}

static int coroutine_fn int_finish(void *opaque, GError **errp)
{
    IntSnap *s = opaque;
    if (s->late) {
        int ret = int_write_out(s, errp);
        if (ret < 0) {
            return ret;
        }
    }
    BdrvSnapshotCreate *st = g_steal_pointer(&s->state);
    int ret = bdrv_co_snapshot_create_finish(s->bs, st, errp);
    if (ret < 0 && bdrv_snapshot_find(s->bs, s->name, NULL)) {
        /* Written, but not known durable (a sync failed after the
         * switch): the action failed, so the snapshot goes (rule 3); if
         * even that fails it stays, whole. */
        int_undo(s);
    }
    return ret;
}


static bool int_journal(void *opaque, BlockDriverState **bs,
                        const char **name)
{
    IntSnap *s = opaque;
    *bs = s->bs;
    *name = s->name;
    return s->bs != NULL;
}

static void int_clean(void *opaque)
{
    IntSnap *s = opaque;
    if (s->link) {
        int_pending = g_list_delete_link(int_pending, s->link);
    }
    bdrv_unref(s->bs);
    g_free(s->device);
    g_free(s->name);
    g_free(s);
}

static const TxnActionDriver int_driver = {
    .type = "blockdev-snapshot-internal-sync",
    .parallel_prepare = true,
    .prepare = int_prepare,
    .add_nodes = int_add_nodes,
    .commit = int_commit,
    .abort = int_abort,
    .finish = int_finish,
    .undo = int_undo,
    .clean = int_clean,
    .journal = int_journal,
};

void txn_snapshot_set_vm_clock(Transaction *t, uint64_t ns)
{
    for (GList *l = int_pending; l; l = l->next) {
        IntSnap *s = l->data;
        if (s->txn == t && s->state && s->bs->drv->snapshot &&
            s->bs->drv->snapshot->create_set_vm_clock) {
            s->bs->drv->snapshot->create_set_vm_clock(s->bs, s->state, ns);
        }
    }
}

void txn_add_snapshot_internal(Transaction *t, const char *device,
                               const char *name)
{
    BdrvSnapshotInfo sn = { .name = (char *)name,
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    txn_add_snapshot_internal_vm(t, device, &sn);
}

static IntSnap *int_new(const char *device, const BdrvSnapshotInfo *sn)
{
    IntSnap *s = g_new0(IntSnap, 1);
    s->device = g_strdup(device);
    s->name = g_strdup(sn->name ? sn->name : "");
    s->vm_state_size = sn->vm_state_size;
    s->vm_clock_nsec = sn->vm_clock_nsec;
    s->icount = sn->icount;
    s->date_sec = sn->date_sec;
    s->date_nsec = sn->date_nsec;
    return s;
}

void txn_add_snapshot_internal_vm(Transaction *t, const char *device,
                                  const BdrvSnapshotInfo *sn)
{
    txn_add(t, &int_driver, int_new(device, sn));
}

TxnSnapshotVmstate *txn_add_snapshot_internal_late(Transaction *t,
                                                   const char *device,
                                                   const BdrvSnapshotInfo *sn,
                                                   TxnVmstateWriteFn *write,
                                                   void *opaque)
{
    g_assert(write);
    IntSnap *s = int_new(device, sn);
    s->late = true;
    s->write = write;
    s->write_opaque = opaque;
    txn_add(t, &int_driver, s);
    return s;
}

int coroutine_fn txn_snapshot_writev_vmstate(TxnSnapshotVmstate *vs,
                                             IOVector *qiov, int64_t pos,
                                             GError **errp)
{
    if (!vs->writing || !vs->state) {
        error_setg(errp, "The VM state of snapshot '%s' can be written only "
                   "during its write-out", vs->name);
        return -EINVAL;
    }
    return bdrv_co_snapshot_create_writev_vmstate(vs->bs, vs->state, qiov,
                                                  pos, errp);
}

int coroutine_fn txn_snapshot_write_vmstate(TxnSnapshotVmstate *vs,
                                            const void *buf, int64_t pos,
                                            int64_t len, GError **errp)
{
    if (len < 0) {
        error_setg(errp, "Invalid VM state request size");
        return -EINVAL;
    }
    IOVector qiov;
    iovec_init_buf(&qiov, (void *)buf, len);
    return txn_snapshot_writev_vmstate(vs, &qiov, pos, errp);
}

void txn_snapshot_set_vm_state_size(TxnSnapshotVmstate *vs, uint64_t size)
{
    vs->vm_state_size = size;
}

BlockDriverState *txn_snapshot_vmstate_node(TxnSnapshotVmstate *vs)
{
    return vs->bs;
}

/* ---- abort ---- */

static int coroutine_fn abort_prepare(void *opaque, Transaction *txn,
                                      GError **errp)
{
    error_setg(errp, "Transaction aborted using Abort action");
    return -ECANCELED;
}

static void abort_commit(void *opaque)
{
    g_assert_not_reached();
}

static void coroutine_fn abort_abort(void *opaque)
{
}

static const TxnActionDriver abort_driver = {
    .type = "abort",
    .supports_grouped = true,
    .prepare = abort_prepare,
    .commit = abort_commit,
    .abort = abort_abort,
};

void txn_add_abort(Transaction *t)
{
    txn_add(t, &abort_driver, NULL);
}

/* ---- blockdev-snapshot-delete-internal-sync ---- */

static bool int_find(BlockDriverState *bs, const char *id, const char *name,
                     BdrvSnapshotInfo *out)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        if ((!id || !strcmp(list[i].id_str, id)) &&
            (!name || !strcmp(list[i].name, name))) {
            *out = list[i];
            list[i].id_str = list[i].name = NULL;
            found = true;
        }
    }
    if (n >= 0) {
        bdrv_snapshot_list_free(list, n);
    }
    return found;
}

bool txn_snapshot_delete_internal(const char *device, const char *id,
                                  const char *name,
                                  BdrvSnapshotInfo *deleted, GError **errp)
{
    BlockDriverState *bs = txn_lookup_bs(device, device, errp);
    if (!bs || !txn_check_root(bs, errp)) {
        return false;
    }
    if (!id && !name) {
        error_setg(errp, "Name or id must be provided");
        return false;
    }
    if (!bs->drv->snapshot) {
        error_setg(errp, "Failed to get a snapshot list: %s",
                   g_strerror(ENOTSUP));
        return false;
    }
    BdrvSnapshotInfo sn = { 0 };
    if (!int_find(bs, id, name, &sn)) {
        error_setg(errp, "Snapshot with id '%s' and name '%s' does not "
                   "exist on device '%s'", id ? id : "null",
                   name ? name : "null", device);
        return false;
    }
    if (bdrv_snapshot_delete(bs, sn.id_str, NULL, errp) < 0) {
        bdrv_snapshot_info_clear(&sn);
        return false;
    }
    *deleted = sn;
    return true;
}
