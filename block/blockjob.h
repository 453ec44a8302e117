/*
 * blockjob.h - a job bound to block nodes (backup, and later mirror,
 * stream, commit): QEMU 7.2's BlockJob on top of job.h.
 *
 * A BlockJob holds a reference to its main node and to every node added
 * with block_job_add_bdrv(); those nodes count as busy, so blockdev-del
 * refuses them ("Node 'X' is busy: block device is in use by block job:
 * TYPE") until the job has been finalized.  It emits QEMU's events, all
 * with "device" = the job ID (as QEMU does for -blockdev nodes):
 *   BLOCK_JOB_COMPLETED {type, device, len, offset, speed, error?}
 *   BLOCK_JOB_CANCELLED {type, device, len, offset, speed}
 *   BLOCK_JOB_READY     {type, device, len, offset, speed}
 *   BLOCK_JOB_PENDING   {type, id}         (auto-finalize off)
 *   BLOCK_JOB_ERROR     {device, operation, action}
 * Internal jobs (JOB_INTERNAL) emit none and are not listed.
 *
 * A driver embeds BlockJob first in its state:
 *   typedef struct BackupJob { BlockJob common; ... } BackupJob;
 *   static const JobDriver backup_driver = {
 *       .instance_size = sizeof(BackupJob), .job_type = XBLK_JOB_TYPE_BACKUP,
 *       .run = backup_run, .abort = ..., .clean = ...,
 *   };
 *   BackupJob *s = block_job_create(id, &backup_driver, txn, src, speed,
 *                                   flags, errp);
 *   block_job_add_bdrv(&s->common, target);
 *   job_start(&s->common.job);      (a transaction: in its commit)
 * and uses the job.h helpers inside run() (see the example there), with
 * block_job_error_action() for its on-source-error/on-target-error.
 */
#ifndef XBLK_BLOCK_BLOCKJOB_H
#define XBLK_BLOCK_BLOCKJOB_H

#include "block/block.h"
#include "block/job.h"
#include <jansson.h>

/* BlockdevOnError, BlockErrorAction, BlockDeviceIoStatus: the schema's
 * values in the schema's order. */
typedef enum XblkOnError {
    XBLK_ON_ERROR_REPORT,
    XBLK_ON_ERROR_IGNORE,
    XBLK_ON_ERROR_ENOSPC,
    XBLK_ON_ERROR_STOP,
    XBLK_ON_ERROR_AUTO,
} XblkOnError;

typedef enum XblkErrorAction {
    XBLK_ERROR_ACTION_IGNORE,
    XBLK_ERROR_ACTION_REPORT,
    XBLK_ERROR_ACTION_STOP,
} XblkErrorAction;

typedef enum XblkIoStatus {
    XBLK_IO_STATUS_OK,
    XBLK_IO_STATUS_FAILED,
    XBLK_IO_STATUS_NOSPACE,
} XblkIoStatus;

typedef struct BlockJob {
    Job job;                    /* first: a BlockJob is a Job */
    BlockDriverState *bs;       /* the main node */
    GPtrArray *nodes;           /* referenced busy nodes, bs first */
    XblkIoStatus iostatus;
} BlockJob;

/*
 * Creates a block job on bs (referenced, busy).  job_id NULL takes the
 * name of a device (BlockBackend) on bs, as QEMU does; nodes made with
 * -blockdev have none, so such jobs need an ID.  speed: bytes per second
 * (0: unlimited).  Returns the driver's instance or NULL with *errp.
 */
void *block_job_create(const char *job_id, const JobDriver *driver,
                       JobTxn *txn, BlockDriverState *bs, int64_t speed,
                       int flags, GError **errp);
/* Marks another node (e.g. the target) busy until finalization. */
void block_job_add_bdrv(BlockJob *job, BlockDriverState *bs);
/* NULL if the job is not a block job. */
BlockJob *block_job_from_job(Job *job);
/* The block job with that ID, internal ones excluded. */
BlockJob *block_job_get(const char *id);
BlockJob *block_job_next(BlockJob *job);
bool block_job_is_internal(const BlockJob *job);
bool block_job_set_speed(BlockJob *job, int64_t speed, GError **errp);
/* BlockJobInfo as JSON with QEMU's member names. */
json_t *block_job_query(BlockJob *job);

/*
 * Whether a running block job uses bs; sets QEMU's "Node 'X' is busy:
 * block device is in use by block job: TYPE" (blockdev-del).
 */
bool block_job_node_busy(BlockDriverState *bs, GError **errp);

/*
 * Decides what a failed request of a job does, per on_err (error: a
 * positive errno), emits BLOCK_JOB_ERROR, and for "stop" pauses the job
 * as if the user had (job-resume restarts it; query-block-jobs shows
 * io-status "failed" or "nospace" meanwhile).  enospc and auto: stop on
 * ENOSPC, report anything else.
 */
XblkErrorAction block_job_error_action(BlockJob *job, XblkOnError on_err,
                                       bool is_read, int error);

#endif
