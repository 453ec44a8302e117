/*
 * vmstate.h - the VM state area of a node: where a save state's guest RAM
 * and device state are stored, next to the disk they belong to and
 * captured together with it by an internal snapshot.
 *
 * qcow2 keeps it as QEMU does (savevm/loadvm interoperate): past the end
 * of the virtual disk, from the first L1 entry that maps no guest
 * cluster, in L1/L2-mapped clusters (see block/qcow2-vmstate.c).  pos
 * counts bytes from the start of the area.  Formats without an area
 * (raw, file) fail with -ENOTSUP; filters (blkdebug) pass the request to
 * their `file` child.
 *
 * Saving a VM state with a snapshot, as QEMU's savevm does:
 *   1. bdrv_co_writev_vmstate() the stream, from pos 0 on;
 *   2. create the snapshot with BdrvSnapshotInfo.vm_state_size set to the
 *      stream's length (bdrv_snapshot_create or the prepare / commit /
 *      finish split, or txn_add_snapshot_internal_vm); its L1 table then
 *      maps the VM state, and the snapshot takes the area over: the
 *      active layer keeps no VM state clusters afterwards;
 *   3. read it back with bdrv_co_snapshot_readv_vmstate() (no revert
 *      needed), or after bdrv_snapshot_apply() with bdrv_co_readv_vmstate()
 *      (the active layer then maps the snapshot's VM state again; drop it
 *      with bdrv_discard_vmstate() once loaded).
 *
 * Or late, after the snapshot's commit (the guest runs meanwhile; DESIGN
 * "Data flow of a save state"):
 *   1. prepare the creation with BdrvSnapshotInfo.vm_state_late set, and
 *      commit it (or txn_add_snapshot_internal_late in a transaction);
 *   2. bdrv_co_snapshot_create_writev_vmstate() the stream into the
 *      pending snapshot - pieces in any order, several at once - and
 *      bdrv_snapshot_create_set_vm_state_size() its final length;
 *   3. finish the creation: the VM state, the tables mapping it and the
 *      snapshot's entry become durable and the snapshot listed in one
 *      step (nothing of it before); or abort it to abandon the snapshot.
 *   Guest writes to the node never reach the snapshot (its point in time
 *   is the commit) and the active layer's own area is not involved.
 * Deleting the snapshot frees its VM state.  A VM state written and never
 * given to a snapshot is dropped by bdrv_discard_vmstate() or by a resize
 * that moves the area.  Never-written bytes read as zeroes.
 *
 * All functions return 0 or a negative errno with *errp set.  Requests
 * count in the node's in_flight like any other (a drain waits for them).
 * The synchronous wrappers may be called in or out of coroutines.
 */
#ifndef XBLK_BLOCK_VMSTATE_H
#define XBLK_BLOCK_VMSTATE_H

#include "block/block.h"
#include "block/snapshot.h"

/* Writes / reads qiov->size bytes of the active layer's VM state at pos. */
int coroutine_fn bdrv_co_writev_vmstate(BlockDriverState *bs, IOVector *qiov,
                                        int64_t pos, GError **errp);
int coroutine_fn bdrv_co_readv_vmstate(BlockDriverState *bs, IOVector *qiov,
                                       int64_t pos, GError **errp);
/* Drops the active layer's VM state area (clusters freed, refcounts
 * dropped; a snapshot's VM state is not touched).  Fails with -EBUSY
 * while a snapshot creation is pending. */
int coroutine_fn bdrv_co_discard_vmstate(BlockDriverState *bs, GError **errp);
/* Reads qiov->size bytes at pos of the VM state recorded with snapshot
 * id_or_name (ID first, then name), through the snapshot's own L1 table:
 * the disk is not reverted.  Reads past the snapshot's vm_state_size are
 * refused, and so is a snapshot whose tables cannot map its recorded
 * size (damage). */
int coroutine_fn bdrv_co_snapshot_readv_vmstate(BlockDriverState *bs,
                                                const char *id_or_name,
                                                IOVector *qiov, int64_t pos,
                                                GError **errp);

/* Writes qiov->size bytes at pos of the VM state of st, a creation on bs
 * prepared with vm_state_late and committed, not yet finished.  bs is the
 * node st was prepared on (the one carrying the VM state); pos may go up
 * to what an L1 table can map past the disk.  Bytes never written read
 * as zeroes (or as the active area held them at commit).  Until finish,
 * a flush of bs makes the active layer durable without the snapshot (a
 * checkpoint, which does not wait for these writes). */
int coroutine_fn bdrv_co_snapshot_create_writev_vmstate(BlockDriverState *bs,
                                                        BdrvSnapshotCreate *st,
                                                        IOVector *qiov,
                                                        int64_t pos,
                                                        GError **errp);
/* Sets the vm_state_size that finish records for st (vm_state_late);
 * may be called any time between prepare and finish. */
int bdrv_snapshot_create_set_vm_state_size(BlockDriverState *bs,
                                           BdrvSnapshotCreate *st,
                                           uint64_t size, GError **errp);

/* Synchronous wrappers on flat buffers. */
int bdrv_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos,
                      int64_t size, GError **errp);
int bdrv_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos,
                      int64_t size, GError **errp);
int bdrv_discard_vmstate(BlockDriverState *bs, GError **errp);
int bdrv_snapshot_load_vmstate(BlockDriverState *bs, const char *id_or_name,
                               void *buf, int64_t pos, int64_t size,
                               GError **errp);

/* Whether bs (or the node a filter passes to) has a VM state area. */
bool bdrv_can_save_vmstate(BlockDriverState *bs);

#endif
