/*
 * txn-backup.h - the backup actions of a transaction (see transaction.h):
 * blockdev-backup (the target is an existing node) and drive-backup (the
 * target is a file the action creates, or opens with mode existing).
 * Each queues one action; nodes are looked up and every argument is
 * checked when the transaction runs, so QEMU 7.2's errors come out of
 * txn_run().
 *
 * prepare creates the job ("created"; in the transaction's job group when
 * completion-mode is grouped) and its "copy-before-write" filter node,
 * commit is the point in time (the filter takes the source's place, job
 * started), abort cancels the job, drops the filter and deletes a target
 * file the action created.
 */
#ifndef XBLK_BLOCK_TXN_BACKUP_H
#define XBLK_BLOCK_TXN_BACKUP_H

#include "block/backup.h"
#include "block/transaction.h"

/* The arguments of BackupCommon plus the target; NULL strings and
 * has_* false mean "not given".  The action copies what it keeps. */
typedef struct TxnBackupArgs {
    const char *job_id;
    const char *device;
    const char *target;         /* node name, or file for drive-backup */
    BackupSyncMode sync;
    int64_t speed;
    const char *bitmap;
    bool has_bitmap_mode;
    BackupBitmapMode bitmap_mode;
    bool compress;
    XblkOnError on_source_error;
    XblkOnError on_target_error;
    bool auto_finalize;
    bool auto_dismiss;
    /* filter-node-name: the name of the filter above the source while
     * the job runs (NULL: implicit, "#blockNNN"; see backup.h). */
    const char *filter_node_name;
    /* drive-backup only */
    const char *format;         /* NULL: the source's (probed if existing) */
    bool mode_existing;
} TxnBackupArgs;

/* Defaults of QEMU 7.2 for everything optional. */
void txn_backup_args_init(TxnBackupArgs *a);

void txn_add_blockdev_backup(Transaction *t, const TxnBackupArgs *a);
void txn_add_drive_backup(Transaction *t, const TxnBackupArgs *a);

#endif
