/*
 * backup.h - the backup block job (QEMU 7.2's drive-backup /
 * blockdev-backup job, job type "backup"): a point-in-time copy of a
 * source node into a target node of the same size while the guest keeps
 * writing to the source.
 *
 * Two halves cooperate on one copy bitmap (one bit per copy unit, the
 * "clusters" still to copy; unit = max(64 KiB, target cluster size)):
 *  - copy-before-write (CBW): a before-write hook on the source
 *    (block_int.h) copies the not-yet-copied clusters a guest write
 *    overlaps to the target before the write goes on;
 *  - the background loop in run() copies the remaining set bits (none
 *    for sync=none, which only copies through CBW until cancelled).
 * The point in time is the moment backup_job_start() runs, which must be
 * inside a drained section over source and target (a transaction's
 * commit): it fills the copy bitmap, installs the hook and starts the
 * job, all in memory.
 *
 * Life: backup_job_create() (a transaction's prepare: checks, job in
 * "created", bitmap successor) -> backup_job_start() (commit) or
 * job_cancel_sync() (abort).
 */
#ifndef XBLK_BLOCK_BACKUP_H
#define XBLK_BLOCK_BACKUP_H

#include "block/blockjob.h"
#include "block/dirty-bitmap.h"

/* MirrorSyncMode and BitmapSyncMode, in the schema's order. */
typedef enum BackupSyncMode {
    BACKUP_SYNC_TOP,
    BACKUP_SYNC_FULL,
    BACKUP_SYNC_NONE,
    BACKUP_SYNC_INCREMENTAL,
    BACKUP_SYNC_BITMAP,
} BackupSyncMode;

typedef enum BackupBitmapMode {
    BACKUP_BITMAP_ON_SUCCESS,
    BACKUP_BITMAP_NEVER,
    BACKUP_BITMAP_ALWAYS,
} BackupBitmapMode;

const char *backup_sync_mode_name(BackupSyncMode m);
const char *backup_bitmap_mode_name(BackupBitmapMode m);

typedef struct BackupOptions {
    BackupSyncMode sync;        /* never INCREMENTAL here: it is BITMAP +
                                   on-success (see txn-backup.c) */
    BdrvDirtyBitmap *bitmap;    /* NULL: none */
    BackupBitmapMode bitmap_mode;
    bool compress;
    int64_t speed;
    XblkOnError on_source_error;
    XblkOnError on_target_error;
    int job_flags;              /* JOB_MANUAL_FINALIZE / _DISMISS */
} BackupOptions;

typedef struct BackupJob BackupJob;

/*
 * Creates the job in status "created" (QEMU 7.2's checks and errors, in
 * its order) and, with a bitmap, freezes it behind a successor.  Nothing
 * is copied and the source is not hooked yet.  txn: the job group
 * (NULL: its own).
 */
BackupJob *backup_job_create(const char *job_id, BlockDriverState *bs,
                             BlockDriverState *target,
                             const BackupOptions *o, JobTxn *txn,
                             GError **errp);
/* The point in time: call with source and target drained.  Cannot fail. */
void backup_job_start(BackupJob *s);
Job *backup_job_job(BackupJob *s);

#endif
