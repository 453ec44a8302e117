/*
 * vmstate.c - the generic side of the VM state area (see vmstate.h):
 * finds the node that stores it (filters pass on to `file`), counts the
 * request in that node's in_flight, dispatches to the format driver, and
 * the synchronous wrappers.
 *
 * Invariant: every error comes back with *errp set, including the
 * -ENOTSUP of nodes without an area.  The late VM state of a snapshot
 * being created goes to the node the creation was prepared on (no filter
 * lookup: the creation belongs to that node).
 */
#include "block/vmstate.h"
#include "block/block_int.h"
#include <errno.h>

typedef enum {
    VM_IMPL_WRITE, VM_IMPL_READ, VM_IMPL_DISCARD, VM_IMPL_SNAPSHOT_READ,
} VmImpl;

static bool implements(const BlockDriver *drv, VmImpl what)
{
    switch (what) {
    case VM_IMPL_WRITE:
        return drv->co_writev_vmstate != NULL;
    case VM_IMPL_READ:
        return drv->co_readv_vmstate != NULL;
    case VM_IMPL_DISCARD:
        return drv->co_discard_vmstate != NULL;
    case VM_IMPL_SNAPSHOT_READ:
        return drv->snapshot && drv->snapshot->readv_vmstate;
    }
    return false;
}

/* The node whose driver implements `what`, looking through filters. */
static BlockDriverState *vmstate_node(BlockDriverState *bs, VmImpl what)
{
    while (bs) {
        if (implements(bs->drv, what)) {
            return bs;
        }
        if (!bs->drv->is_filter || !bs->file) {
            return NULL;
        }
        bs = bs->file->bs;
    }
    return NULL;
}

static BlockDriverState *area_node(BlockDriverState *bs, VmImpl what,
                                   GError **errp)
{
    BlockDriverState *n = vmstate_node(bs, what);
    if (!n) {
        error_setg(errp, "Block format '%s' used by node '%s' does not "
                   "support VM state (only qcow2 stores one)",
                   bdrv_get_format_name(bs), bdrv_get_node_name(bs));
    }
    return n;
}

bool bdrv_can_save_vmstate(BlockDriverState *bs)
{
    return vmstate_node(bs, VM_IMPL_WRITE) != NULL;
}

static bool check_writable(BlockDriverState *bs, GError **errp)
{
    if (bs->read_only) {
        error_setg(errp, "Node '%s' is read-only", bdrv_get_node_name(bs));
        return false;
    }
    return true;
}

int coroutine_fn bdrv_co_writev_vmstate(BlockDriverState *bs, IOVector *qiov,
                                        int64_t pos, GError **errp)
{
    if (!check_writable(bs, errp)) {
        return -EACCES;
    }
    BlockDriverState *n = area_node(bs, VM_IMPL_WRITE, errp);
    if (!n) {
        return -ENOTSUP;
    }
    if (!check_writable(n, errp)) {
        return -EACCES;
    }
    bdrv_inc_in_flight(n);
    int ret = n->drv->co_writev_vmstate(n, qiov, pos, errp);
    n->wr_bytes += qiov->size;
    n->wr_ops++;
    bdrv_dec_in_flight(n);
    return ret;
}

int coroutine_fn bdrv_co_readv_vmstate(BlockDriverState *bs, IOVector *qiov,
                                       int64_t pos, GError **errp)
{
    BlockDriverState *n = area_node(bs, VM_IMPL_READ, errp);
    if (!n) {
        return -ENOTSUP;
    }
    bdrv_inc_in_flight(n);
    int ret = n->drv->co_readv_vmstate(n, qiov, pos, errp);
    n->rd_bytes += qiov->size;
    n->rd_ops++;
    bdrv_dec_in_flight(n);
    return ret;
}

int coroutine_fn bdrv_co_discard_vmstate(BlockDriverState *bs, GError **errp)
{
    if (!check_writable(bs, errp)) {
        return -EACCES;
    }
    BlockDriverState *n = area_node(bs, VM_IMPL_DISCARD, errp);
    if (!n) {
        return -ENOTSUP;
    }
    if (!check_writable(n, errp)) {
        return -EACCES;
    }
    bdrv_inc_in_flight(n);
    int ret = n->drv->co_discard_vmstate(n, errp);
    bdrv_dec_in_flight(n);
    return ret;
}

int coroutine_fn bdrv_co_snapshot_readv_vmstate(BlockDriverState *bs,
                                                const char *id_or_name,
                                                IOVector *qiov, int64_t pos,
                                                GError **errp)
{
    BlockDriverState *n = vmstate_node(bs, VM_IMPL_SNAPSHOT_READ);
    if (!n) {
        error_setg(errp, "Block format '%s' used by node '%s' does not "
                   "support internal snapshots with VM state",
                   bdrv_get_format_name(bs), bdrv_get_node_name(bs));
        return -ENOTSUP;
    }
    bdrv_inc_in_flight(n);
    int ret = n->drv->snapshot->readv_vmstate(n, id_or_name, qiov, pos, errp);
    n->rd_bytes += qiov->size;
    n->rd_ops++;
    bdrv_dec_in_flight(n);
    return ret;
}

/* ---- the late VM state of a snapshot being created ---- */

static bool late_supported(BlockDriverState *bs, GError **errp)
{
    if (!bs->drv->snapshot || !bs->drv->snapshot->create_writev_vmstate) {
        error_setg(errp, "Block format '%s' used by node '%s' does not "
                   "support a VM state written after the snapshot",
                   bdrv_get_format_name(bs), bdrv_get_node_name(bs));
        return false;
    }
    return true;
}

int coroutine_fn bdrv_co_snapshot_create_writev_vmstate(BlockDriverState *bs,
                                                        BdrvSnapshotCreate *st,
                                                        IOVector *qiov,
                                                        int64_t pos,
                                                        GError **errp)
{
    if (!late_supported(bs, errp)) {
        return -ENOTSUP;
    }
    bdrv_inc_in_flight(bs);
    int ret = bs->drv->snapshot->create_writev_vmstate(bs, st, qiov, pos,
                                                        errp);
    bs->wr_bytes += qiov->size;
    bs->wr_ops++;
    bdrv_dec_in_flight(bs);
    return ret;
}

int bdrv_snapshot_create_set_vm_state_size(BlockDriverState *bs,
                                           BdrvSnapshotCreate *st,
                                           uint64_t size, GError **errp)
{
    if (!late_supported(bs, errp)) {
        return -ENOTSUP;
    }
    return bs->drv->snapshot->create_set_vm_state_size(bs, st, size, errp);
}

/* ---- synchronous wrappers ---- */

typedef enum { VM_SAVE, VM_LOAD, VM_DISCARD, VM_SNAPSHOT_LOAD } VmOp;

typedef struct {
    VmOp op;
    BlockDriverState *bs;
    const char *id_or_name;
    void *buf;
    int64_t pos, size;
    GError **errp;
    int ret;
} VmReq;

static void coroutine_fn vm_entry(void *opaque)
{
    VmReq *r = opaque;
    IOVector qiov;
    iovec_init_buf(&qiov, r->buf, r->size);
    switch (r->op) {
    case VM_SAVE:
        r->ret = bdrv_co_writev_vmstate(r->bs, &qiov, r->pos, r->errp);
        break;
    case VM_LOAD:
        r->ret = bdrv_co_readv_vmstate(r->bs, &qiov, r->pos, r->errp);
        break;
    case VM_DISCARD:
        r->ret = bdrv_co_discard_vmstate(r->bs, r->errp);
        break;
    case VM_SNAPSHOT_LOAD:
        r->ret = bdrv_co_snapshot_readv_vmstate(r->bs, r->id_or_name, &qiov,
                                                r->pos, r->errp);
        break;
    }
}

static int vm_run(VmReq *r)
{
    if (r->size < 0) {
        error_setg(r->errp, "Invalid VM state request size");
        return -EINVAL;
    }
    co_run_sync(vm_entry, r);
    return r->ret;
}

int bdrv_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos,
                      int64_t size, GError **errp)
{
    VmReq r = { .op = VM_SAVE, .bs = bs, .buf = (void *)buf, .pos = pos,
                .size = size, .errp = errp };
    return vm_run(&r);
}

int bdrv_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos,
                      int64_t size, GError **errp)
{
    VmReq r = { .op = VM_LOAD, .bs = bs, .buf = buf, .pos = pos,
                .size = size, .errp = errp };
    return vm_run(&r);
}

int bdrv_discard_vmstate(BlockDriverState *bs, GError **errp)
{
    VmReq r = { .op = VM_DISCARD, .bs = bs, .errp = errp };
    return vm_run(&r);
}

int bdrv_snapshot_load_vmstate(BlockDriverState *bs, const char *id_or_name,
                               void *buf, int64_t pos, int64_t size,
                               GError **errp)
{
    VmReq r = { .op = VM_SNAPSHOT_LOAD, .bs = bs, .id_or_name = id_or_name,
                .buf = buf, .pos = pos, .size = size, .errp = errp };
    return vm_run(&r);
}
