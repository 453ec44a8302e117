/*
 * txn-snapshot.h - the snapshot actions of a transaction (see
 * transaction.h): external snapshots (blockdev-snapshot-sync,
 * blockdev-snapshot), internal qcow2 snapshots
 * (blockdev-snapshot-internal-sync), and "abort", which always fails in
 * prepare.  Each txn_add_* copies its arguments and queues one action;
 * nodes are looked up when the transaction runs, so errors (QEMU 7.2's
 * texts) come out of txn_run().
 *
 * device: a BlockBackend name; node_name/node/overlay: node names.
 * NULL means "not given".
 */
#ifndef XBLK_BLOCK_TXN_SNAPSHOT_H
#define XBLK_BLOCK_TXN_SNAPSHOT_H

#include "block/snapshot.h"
#include "block/transaction.h"

/* Creates (mode_existing: opens) snapshot_file as a new overlay of the
 * node and puts it on top.  format NULL means qcow2. */
void txn_add_snapshot_sync(Transaction *t, const char *device,
                           const char *node_name, const char *snapshot_file,
                           const char *snapshot_node_name,
                           const char *format, bool mode_existing);
/* Puts overlay, an open node without backing (blockdev-add with
 * backing: null), on top of node. */
void txn_add_snapshot(Transaction *t, const char *node, const char *overlay);
/* Takes internal snapshot `name` of device (a backend or node name). */
void txn_add_snapshot_internal(Transaction *t, const char *device,
                               const char *name);
/* The same with the VM state fields of sn recorded as given (name from
 * sn->name; vm_state_size, vm_clock_nsec, icount - BDRV_SNAPSHOT_NO_ICOUNT
 * for none - and the date, where 0/0 means the time of prepare).  With
 * vm_state_size > 0 the snapshot takes over the VM state written to the
 * node's VM state area before prepare (block/vmstate.h). */
void txn_add_snapshot_internal_vm(Transaction *t, const char *device,
                                  const BdrvSnapshotInfo *sn);

/*
 * Internal snapshot with a late VM state (DESIGN "Data flow of a save
 * state", rules 1-2): the snapshot's point in time is the commit; its VM
 * state is written after the drained section has ended (the guest runs
 * again) and before the snapshot becomes durable and listed.
 *
 * The write-out is `write`, called once in the action's finish (side by
 * side with the other actions' finishes) with the action's handle: it
 * writes the VM state with txn_snapshot_writev_vmstate() /
 * txn_snapshot_write_vmstate() - pieces in any order, several at once -
 * and gives its final length with txn_snapshot_set_vm_state_size()
 * (which may also be called before txn_run; sn->vm_state_size is the
 * initial value).  When it returns 0 the snapshot is made durable: VM
 * state, the tables that map it, then the snapshot table that lists it.
 * When it fails (or the size is refused), the snapshot is abandoned -
 * nothing of it stays, the node keeps every guest write since the commit
 * - and the transaction fails with its error (other actions undone).
 * Guest writes go on during the write-out and never reach the snapshot;
 * a guest flush of the node meanwhile makes them durable without the
 * snapshot (a kill before the finish leaves no snapshot, only leaked
 * clusters) and does not wait for the write-out.  A VM state written to
 * the node's area before prepare is handed to the snapshot at commit
 * too: bytes the write-out does not cover read as written then (device
 * state before, RAM after).
 *
 * The rest of sn is used as by txn_add_snapshot_internal_vm (its
 * vm_state_late is implied).  The returned handle belongs to the
 * transaction and is valid until txn_run() returns; the writer functions
 * work only during `write`.
 */
typedef struct TxnSnapshotVmstate TxnSnapshotVmstate;
typedef int coroutine_fn TxnVmstateWriteFn(TxnSnapshotVmstate *vs,
                                           void *opaque, GError **errp);
TxnSnapshotVmstate *txn_add_snapshot_internal_late(Transaction *t,
                                                   const char *device,
                                                   const BdrvSnapshotInfo *sn,
                                                   TxnVmstateWriteFn *write,
                                                   void *opaque);
/* Write qiov->size bytes / len bytes at pos of the snapshot's VM state. */
int coroutine_fn txn_snapshot_writev_vmstate(TxnSnapshotVmstate *vs,
                                             IOVector *qiov, int64_t pos,
                                             GError **errp);
int coroutine_fn txn_snapshot_write_vmstate(TxnSnapshotVmstate *vs,
                                            const void *buf, int64_t pos,
                                            int64_t len, GError **errp);
/* The vm_state_size the snapshot records. */
void txn_snapshot_set_vm_state_size(TxnSnapshotVmstate *vs, uint64_t size);
/* The node the snapshot is taken of (after prepare; NULL before). */
BlockDriverState *txn_snapshot_vmstate_node(TxnSnapshotVmstate *vs);
/* From a later action's prepare (the save's pause): the VM clock every
 * internal snapshot of t records, in place of sn->vm_clock_nsec. */
void txn_snapshot_set_vm_clock(Transaction *t, uint64_t ns);
/* Fails the transaction in prepare. */
void txn_add_abort(Transaction *t);

/* blockdev-snapshot-delete-internal-sync: deletes the internal snapshot
 * matching id and/or name (at least one given) and returns what it was in
 * *deleted (cleared by the caller with bdrv_snapshot_info_clear). */
bool txn_snapshot_delete_internal(const char *device, const char *id,
                                  const char *name,
                                  BdrvSnapshotInfo *deleted, GError **errp);

#endif
