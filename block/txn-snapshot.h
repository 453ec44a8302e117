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
/* Fails the transaction in prepare. */
void txn_add_abort(Transaction *t);

/* blockdev-snapshot-delete-internal-sync: deletes the internal snapshot
 * matching id and/or name (at least one given) and returns what it was in
 * *deleted (cleared by the caller with bdrv_snapshot_info_clear). */
bool txn_snapshot_delete_internal(const char *device, const char *id,
                                  const char *name,
                                  BdrvSnapshotInfo *deleted, GError **errp);

#endif
