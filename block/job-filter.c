/*
 * job-filter.c - the filter drivers of block jobs ("copy-before-write",
 * "commit_top", "mirror_top") and putting them into the graph and taking
 * them out (see job-filter.h).
 *
 * Invariants:
 *  - a filter has exactly one child, through `backing`, from
 *    job_filter_new() until job_filter_remove()/job_filter_drop(); every
 *    request it gets goes to that child (after the before-write function
 *    for write-like ones), so it adds no data of its own;
 *  - graph switches happen with the filter drained, so no request of a
 *    backend is in flight across a switch and requests a backend queued
 *    meanwhile go to the new root when the section ends;
 *  - the drivers are not registered: blockdev-add and the tools cannot
 *    open one, and a filter exists only while a job holds it.
 * Callers: block/backup.c, block/commit.c.
 */
#include "block/job-filter.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/vmstate.h"
#include "util/error.h"
#include <errno.h>

typedef struct JobFilterState {
    bool implicit;              /* made without a node name */
    bool inserted;
    JobFilterBeforeWrite *before_write;
    void *opaque;
} JobFilterState;

static BlockDriverState *jf_child(BlockDriverState *bs)
{
    return bs->backing ? bs->backing->bs : NULL;
}

/* ---- requests ---- */

static int64_t jf_get_length(BlockDriverState *bs)
{
    BlockDriverState *c = jf_child(bs);
    return c ? bdrv_getlength(c) : -ENOMEDIUM;
}

/* A filter out of the graph has no child; nobody should still send it
 * requests (jobs reach their source through the filter's current child),
 * but if one does it gets an error, not a crash. */
#define JF_CHILD_OR_FAIL(bs, c)                 \
    BlockDriverState *c = jf_child(bs);         \
    if (!c) {                                   \
        return -ENOMEDIUM;                      \
    }

static int coroutine_fn jf_co_preadv(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, IOVector *qiov,
                                     BdrvRequestFlags flags)
{
    JF_CHILD_OR_FAIL(bs, c);
    return bdrv_co_preadv(c, offset, bytes, qiov, flags);
}

static int coroutine_fn jf_before_write(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    JobFilterState *s = bs->opaque;
    return s->before_write ? s->before_write(s->opaque, offset, bytes) : 0;
}

/* FUA is the generic layer's business: it flushes us (and so the child)
 * after the write, as it does for blkdebug. */
static int coroutine_fn jf_co_pwritev(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    JF_CHILD_OR_FAIL(bs, c);
    int ret = jf_before_write(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwritev(c, offset, bytes, qiov, flags & ~BDRV_REQ_FUA);
}

static int coroutine_fn jf_co_pwrite_zeroes(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            BdrvRequestFlags flags)
{
    JF_CHILD_OR_FAIL(bs, c);
    int ret = jf_before_write(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwrite_zeroes(c, offset, bytes, flags & ~BDRV_REQ_FUA);
}

static int coroutine_fn jf_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes)
{
    JF_CHILD_OR_FAIL(bs, c);
    int ret = jf_before_write(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(c, offset, bytes);
}

/* The generic layer flushes only `file`; our child hangs on `backing`. */
static int coroutine_fn jf_co_flush(BlockDriverState *bs)
{
    JF_CHILD_OR_FAIL(bs, c);
    return bdrv_co_flush(c);
}

/* The child's status: allocated where the child (not its backing chain)
 * allocates, so a walk down a chain looks below us where it does not. */
static int coroutine_fn jf_co_block_status(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           int64_t *pnum, int64_t *map,
                                           BlockDriverState **file)
{
    JF_CHILD_OR_FAIL(bs, c);
    int ret = bdrv_co_block_status(c, offset, bytes, pnum, map, file);
    return ret < 0 ? ret : ret & ~BDRV_BLOCK_EOF;
}

/* ---- VM state and internal snapshots: the child's ---- */

static int coroutine_fn jf_co_writev_vmstate(BlockDriverState *bs,
                                             IOVector *qiov, int64_t pos,
                                             GError **errp)
{
    return bdrv_co_writev_vmstate(jf_child(bs), qiov, pos, errp);
}

static int coroutine_fn jf_co_readv_vmstate(BlockDriverState *bs,
                                            IOVector *qiov, int64_t pos,
                                            GError **errp)
{
    return bdrv_co_readv_vmstate(jf_child(bs), qiov, pos, errp);
}

static int coroutine_fn jf_co_discard_vmstate(BlockDriverState *bs,
                                              GError **errp)
{
    return bdrv_co_discard_vmstate(jf_child(bs), errp);
}

static const BdrvSnapshotOps *jf_child_ops(BlockDriverState *bs)
{
    return jf_child(bs)->drv->snapshot;
}

/* Also asked by the query commands, which may list a filter between its
 * removal and its job's end. */
static int jf_snapshot_list(BlockDriverState *bs, BdrvSnapshotInfo **list)
{
    *list = NULL;
    JF_CHILD_OR_FAIL(bs, c);
    return bdrv_snapshot_list(c, list);
}

static int coroutine_fn jf_snapshot_create_prepare(BlockDriverState *bs,
                                                   const BdrvSnapshotInfo *sn,
                                                   BdrvSnapshotCreate **state,
                                                   GError **errp)
{
    return bdrv_co_snapshot_create_prepare(jf_child(bs), sn, state, errp);
}

static void jf_snapshot_create_commit(BlockDriverState *bs,
                                      BdrvSnapshotCreate *state)
{
    bdrv_snapshot_create_commit(jf_child(bs), state);
}

static int coroutine_fn jf_snapshot_create_finish(BlockDriverState *bs,
                                                  BdrvSnapshotCreate *state,
                                                  GError **errp)
{
    return bdrv_co_snapshot_create_finish(jf_child(bs), state, errp);
}

static void coroutine_fn jf_snapshot_create_abort(BlockDriverState *bs,
                                                  BdrvSnapshotCreate *state)
{
    bdrv_co_snapshot_create_abort(jf_child(bs), state);
}

static int coroutine_fn jf_snapshot_create_writev_vmstate(
    BlockDriverState *bs, BdrvSnapshotCreate *state, IOVector *qiov,
    int64_t pos, GError **errp)
{
    return bdrv_co_snapshot_create_writev_vmstate(jf_child(bs), state, qiov,
                                                  pos, errp);
}

static int jf_snapshot_create_set_vm_state_size(BlockDriverState *bs,
                                                BdrvSnapshotCreate *state,
                                                uint64_t size, GError **errp)
{
    return bdrv_snapshot_create_set_vm_state_size(jf_child(bs), state, size,
                                                  errp);
}

static void jf_snapshot_create_set_vm_clock(BlockDriverState *bs,
                                            BdrvSnapshotCreate *state,
                                            uint64_t ns)
{
    const BdrvSnapshotOps *ops = jf_child_ops(bs);
    if (ops->create_set_vm_clock) {
        ops->create_set_vm_clock(jf_child(bs), state, ns);
    }
}

static int coroutine_fn jf_snapshot_apply(BlockDriverState *bs,
                                          const char *id_or_name,
                                          GError **errp)
{
    BlockDriverState *c = jf_child(bs);
    return c->drv->snapshot->apply(c, id_or_name, errp);
}

static int coroutine_fn jf_snapshot_delete(BlockDriverState *bs,
                                           const char *id, const char *name,
                                           BdrvSnapshotInfo *deleted,
                                           GError **errp)
{
    BlockDriverState *c = jf_child(bs);
    return c->drv->snapshot->delete(c, id, name, deleted, errp);
}

static int coroutine_fn jf_snapshot_readv_vmstate(BlockDriverState *bs,
                                                  const char *id_or_name,
                                                  IOVector *qiov,
                                                  int64_t pos, GError **errp)
{
    return bdrv_co_snapshot_readv_vmstate(jf_child(bs), id_or_name, qiov,
                                          pos, errp);
}

static const BdrvSnapshotOps jf_snapshot_ops = {
    .list = jf_snapshot_list,
    .create_prepare = jf_snapshot_create_prepare,
    .create_commit = jf_snapshot_create_commit,
    .create_finish = jf_snapshot_create_finish,
    .create_abort = jf_snapshot_create_abort,
    .create_writev_vmstate = jf_snapshot_create_writev_vmstate,
    .create_set_vm_state_size = jf_snapshot_create_set_vm_state_size,
    .create_set_vm_clock = jf_snapshot_create_set_vm_clock,
    .apply = jf_snapshot_apply,
    .delete = jf_snapshot_delete,
    .readv_vmstate = jf_snapshot_readv_vmstate,
};

/*
 * Two drivers per kind: one passes internal snapshots and the VM state
 * on, for a child whose format has them (qcow2), the other has neither,
 * so that "can this disk snapshot?" gets the child's answer (a table of
 * a static driver cannot look at the child).
 */
#define JF_IO                                           \
    .instance_size = sizeof(JobFilterState),            \
    .is_filter = true,                                  \
    .get_length = jf_get_length,                        \
    .co_preadv = jf_co_preadv,                          \
    .co_pwritev = jf_co_pwritev,                        \
    .co_pwrite_zeroes = jf_co_pwrite_zeroes,            \
    .co_pdiscard = jf_co_pdiscard,                      \
    .co_flush_to_os = jf_co_flush,                      \
    .co_block_status = jf_co_block_status

#define JF_SNAPSHOTS                                    \
    .co_writev_vmstate = jf_co_writev_vmstate,          \
    .co_readv_vmstate = jf_co_readv_vmstate,            \
    .co_discard_vmstate = jf_co_discard_vmstate,        \
    .snapshot = &jf_snapshot_ops

static const BlockDriver jf_drivers[JOB_FILTER__MAX][2] = {
    [JOB_FILTER_CBW] = {
        { .format_name = "copy-before-write", JF_IO },
        { .format_name = "copy-before-write", JF_IO, JF_SNAPSHOTS },
    },
    [JOB_FILTER_COMMIT_TOP] = {
        { .format_name = "commit_top", JF_IO },
        { .format_name = "commit_top", JF_IO, JF_SNAPSHOTS },
    },
    [JOB_FILTER_MIRROR_TOP] = {
        { .format_name = "mirror_top", JF_IO },
        { .format_name = "mirror_top", JF_IO, JF_SNAPSHOTS },
    },
};

static bool jf_is_filter_node(const BlockDriverState *bs)
{
    for (int k = 0; k < JOB_FILTER__MAX; k++) {
        if (bs->drv == &jf_drivers[k][0] || bs->drv == &jf_drivers[k][1]) {
            return true;
        }
    }
    return false;
}

/* ---- life ---- */

bool job_filter_check_name(const char *name, GError **errp)
{
    if (!name) {
        return true;
    }
    if (!bdrv_node_name_valid(name)) {
        error_setg(errp, "Invalid node-name: '%s'", name);
        return false;
    }
    if (blk_by_name(name)) {
        error_setg(errp, "node-name=%s is conflicting with a device id",
                   name);
        return false;
    }
    if (bdrv_find_node(name)) {
        error_setg(errp, "Duplicate nodes with node-name='%s'", name);
        return false;
    }
    return true;
}

BlockDriverState *job_filter_new(JobFilterKind kind, const char *node_name,
                                 BlockDriverState *child)
{
    bool snap = child->drv->snapshot || bdrv_can_save_vmstate(child);
    BlockDriverState *f = bdrv_new_filter_node(&jf_drivers[kind][snap],
                                               node_name, child);
    JobFilterState *s = f->opaque;
    s->implicit = !node_name;
    return f;
}

void job_filter_set_before_write(BlockDriverState *f,
                                 JobFilterBeforeWrite *fn, void *opaque)
{
    JobFilterState *s = f->opaque;
    g_assert(jf_is_filter_node(f));
    s->before_write = fn;
    s->opaque = opaque;
}

bool job_filter_is_inserted(const BlockDriverState *f)
{
    return ((const JobFilterState *)f->opaque)->inserted;
}

void job_filter_insert_drained(BlockDriverState *f)
{
    JobFilterState *s = f->opaque;
    BlockDriverState *child = jf_child(f);
    g_assert(jf_is_filter_node(f) && child && !s->inserted);
    g_assert(bdrv_is_quiesced(f));
    /* commit_top stays read-only (nothing writes through it, as QEMU's
     * node shows "ro": true); the others take the child's place with
     * the child's write access. */
    if (f->drv != &jf_drivers[JOB_FILTER_COMMIT_TOP][0] &&
        f->drv != &jf_drivers[JOB_FILTER_COMMIT_TOP][1]) {
        f->read_only = child->read_only;
        if (!f->read_only) {
            f->open_flags |= BDRV_O_RDWR;
        }
    }
    bdrv_ref(child);
    bdrv_replace_node(child, f);
    bdrv_unref(child);
    s->inserted = true;
}

void job_filter_insert(BlockDriverState *f)
{
    bdrv_drained_begin(f);
    job_filter_insert_drained(f);
    bdrv_drained_end(f);
}

/* After the filter is out of the graph (or never was in it). */
static void jf_release_child(BlockDriverState *f)
{
    JobFilterState *s = f->opaque;
    s->before_write = NULL;
    s->opaque = NULL;
    f->read_only = true;
    f->open_flags &= ~BDRV_O_RDWR;
    if (f->backing) {
        bdrv_detach_child(f, f->backing);
    }
}

void job_filter_remove(BlockDriverState *f)
{
    JobFilterState *s = f->opaque;
    g_assert(jf_is_filter_node(f));
    if (!s->inserted) {
        return;
    }
    BlockDriverState *child = jf_child(f);
    bdrv_ref(f);
    bdrv_ref(child);
    /* The child stays quiesced through f's edge until the switch is
     * over; the backends that moved to it are let go when that ends. */
    bdrv_drained_begin(f);
    bdrv_replace_node(f, child);
    s->inserted = false;
    bdrv_drained_end(f);
    jf_release_child(f);
    bdrv_unref(child);
    bdrv_unref(f);
}

void job_filter_drop(BlockDriverState *f)
{
    JobFilterState *s = f->opaque;
    g_assert(jf_is_filter_node(f) && !s->inserted);
    jf_release_child(f);
}

bool bdrv_is_implicit_job_filter(const BlockDriverState *bs)
{
    return bs && jf_is_filter_node(bs) &&
           ((const JobFilterState *)bs->opaque)->implicit;
}

BlockDriverState *bdrv_skip_implicit_filters(BlockDriverState *bs)
{
    while (bs && bdrv_is_implicit_job_filter(bs) && jf_child(bs) &&
           bs->drv != &jf_drivers[JOB_FILTER_CBW][0] &&
           bs->drv != &jf_drivers[JOB_FILTER_CBW][1]) {
        bs = jf_child(bs);
    }
    return bs;
}
