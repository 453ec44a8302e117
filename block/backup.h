/*
 * backup.h - the backup block job (QEMU 7.2's drive-backup /
 * blockdev-backup job, job type "backup"): a point-in-time copy of a
 * source node into a target node of the same size while the guest keeps
 * writing to the source.
 *
 * Two halves cooperate on one copy bitmap (one bit per copy unit, the
 * "clusters" still to copy; unit = max(64 KiB, target cluster size)):
 *  - copy-before-write (CBW): as in QEMU 7.2, a filter node of driver
 *    "copy-before-write" (block/job-filter.h) sits above the source for
 *    the job's lifetime, and every parent and BlockBackend of the source
 *    reaches it through the filter; a write through the filter first
 *    copies the not-yet-copied clusters it overlaps to the target;
 *  - the background loop in run() copies the remaining set bits (none
 *    for sync=none, which only copies through CBW until cancelled).
 * The filter is named filter_node_name (QEMU's filter-node-name, listed
 * by query-named-block-nodes and, as the device's root, by query-block)
 * or "#blockNNN" without one.  Other jobs find it busy like the
 * source, blockdev-del refuses it, and it leaves the graph when the job
 * ends (completed, cancelled or failed): the source's parents and
 * backends are back on the source.
 * The point in time is the moment backup_job_start() runs, which must be
 * inside a drained section over source, target and the filter (a
 * transaction's commit): it fills the copy bitmap, puts the filter into
 * the graph and starts the job, all in memory.
 *
 * Life: backup_job_create() (a transaction's prepare: checks, the filter
 * made but not yet in the graph, job in "created", bitmap successor) ->
 * backup_job_start() (commit) or job_cancel_sync() (abort: the filter is
 * dropped, the graph never changed).
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
    const char *filter_node_name;   /* NULL: an implicit "#blockNNN" */
} BackupOptions;

typedef struct BackupJob BackupJob;

/*
 * Creates the job in status "created" (QEMU 7.2's checks and errors, in
 * its order; a bad filter_node_name fails with QEMU's "Could not create
 * node: Invalid node-name: 'X'" / "...: node-name=X is conflicting with a
 * device id" / "...: Duplicate nodes with node-name='X'", before the job
 * exists) and, with a bitmap, freezes it behind a successor.  Nothing is
 * copied and the graph is unchanged: the filter exists, out of the graph.
 * txn: the job group (NULL: its own).
 */
BackupJob *backup_job_create(const char *job_id, BlockDriverState *bs,
                             BlockDriverState *target,
                             const BackupOptions *o, JobTxn *txn,
                             GError **errp);
/* The filter node (to drain with source and target before starting). */
BlockDriverState *backup_job_filter(BackupJob *s);
/* The point in time: call with source, target and backup_job_filter()
 * drained.  Cannot fail. */
void backup_job_start(BackupJob *s);
Job *backup_job_job(BackupJob *s);

#endif
