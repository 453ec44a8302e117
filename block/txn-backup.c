/*
 * txn-backup.c - blockdev-backup and drive-backup as TxnActionDrivers
 * (see txn-backup.h).
 *
 * prepare does all the costly and failing work with nothing quiesced:
 * lookups, QEMU 7.2's argument checks, for drive-backup creating and
 * opening the target, and creating the job (status "created", bitmap
 * frozen behind its successor, the "copy-before-write" filter made but
 * not yet in the graph).  commit, inside the transaction's one drained
 * section (which covers the filter too), only calls backup_job_start():
 * the copy bitmap is filled, the filter takes the source's place and the
 * job is started, so no guest write slips between the point in time and
 * the filter.  abort cancels the job that never ran (its bitmap is
 * reclaimed, its filter dropped) and deletes a target file this action
 * created.
 *
 * Invariant: from a successful prepare until clean, the action holds a
 * reference to the job, the source and the target.  A drive-backup
 * target is owned by the job afterwards and closes when the job ends.
 */
#include "block/txn-backup.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct BackupAction {
    bool drive;                 /* drive-backup, else blockdev-backup */
    char *job_id, *device, *target_name, *bitmap_name, *format;
    char *filter_node_name;
    TxnBackupArgs a;            /* strings point at the copies above */
    BlockDriverState *bs, *target;
    BackupJob *job;
    char *created_file;         /* drive-backup made it: delete on abort */
} BackupAction;

void txn_backup_args_init(TxnBackupArgs *a)
{
    *a = (TxnBackupArgs){
        .sync = BACKUP_SYNC_FULL,
        .on_source_error = XBLK_ON_ERROR_REPORT,
        .on_target_error = XBLK_ON_ERROR_REPORT,
        .auto_finalize = true,
        .auto_dismiss = true,
    };
}

/* QEMU's lookup: a backend by name first, then a node by name. */
static BlockDriverState *backup_lookup_bs(const char *name, GError **errp)
{
    BlockBackend *blk = blk_by_name(name);
    if (blk && blk_bs(blk)) {
        return blk_bs(blk);
    }
    if (blk) {                  /* an empty drive */
        error_setg(errp, "Device '%s' has no medium", name);
        return NULL;
    }
    BlockDriverState *bs = bdrv_find_node(name);
    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", name,
                   name);
    }
    return bs;
}

/*
 * QEMU 7.2's checks of the bitmap arguments, in its order; "incremental"
 * becomes "bitmap" with bitmap-mode on-success.  *bm: the bitmap or NULL.
 */
static bool backup_check_bitmap_args(BackupAction *s, BdrvDirtyBitmap **bm,
                                     GError **errp)
{
    TxnBackupArgs *a = &s->a;
    *bm = NULL;
    if ((a->sync == BACKUP_SYNC_BITMAP || a->sync == BACKUP_SYNC_INCREMENTAL)
        && !a->bitmap) {
        error_setg(errp, "must provide a valid bitmap name for '%s' sync "
                   "mode", backup_sync_mode_name(a->sync));
        return false;
    }
    if (a->sync == BACKUP_SYNC_INCREMENTAL) {
        if (a->has_bitmap_mode && a->bitmap_mode != BACKUP_BITMAP_ON_SUCCESS) {
            error_setg(errp, "Bitmap sync mode must be '%s' when using sync "
                       "mode '%s'",
                       backup_bitmap_mode_name(BACKUP_BITMAP_ON_SUCCESS),
                       backup_sync_mode_name(a->sync));
            return false;
        }
        a->has_bitmap_mode = true;
        a->bitmap_mode = BACKUP_BITMAP_ON_SUCCESS;
        a->sync = BACKUP_SYNC_BITMAP;
    }
    if (a->bitmap) {
        *bm = bdrv_dirty_bitmap_find(s->bs, a->bitmap);
        if (!*bm || bdrv_dirty_bitmap_hidden(*bm)) {
            error_setg(errp, "Bitmap '%s' could not be found", a->bitmap);
            return false;
        }
        if (!a->has_bitmap_mode) {
            error_setg(errp, "Bitmap sync mode must be given when providing "
                       "a bitmap");
            return false;
        }
        if (bdrv_dirty_bitmap_check(*bm, BDRV_BITMAP_ALLOW_RO, errp)) {
            return false;
        }
        if (a->sync == BACKUP_SYNC_NONE) {
            error_setg(errp, "sync mode '%s' does not produce meaningful "
                       "bitmap outputs", backup_sync_mode_name(a->sync));
            return false;
        }
        if (a->bitmap_mode == BACKUP_BITMAP_NEVER &&
            a->sync != BACKUP_SYNC_BITMAP) {
            error_setg(errp, "Bitmap sync mode '%s' has no meaningful effect "
                       "when combined with sync mode '%s'",
                       backup_bitmap_mode_name(a->bitmap_mode),
                       backup_sync_mode_name(a->sync));
            return false;
        }
    }
    if (!a->bitmap && a->has_bitmap_mode) {
        error_setg(errp, "Cannot specify bitmap sync mode without a bitmap");
        return false;
    }
    return true;
}

/* The part of prepare both actions share (QEMU's do_backup_common). */
static int backup_create_job(BackupAction *s, Transaction *t, GError **errp)
{
    BdrvDirtyBitmap *bm;
    if (!backup_check_bitmap_args(s, &bm, errp)) {
        return -EINVAL;
    }
    BackupOptions o = {
        .sync = s->a.sync,
        .bitmap = bm,
        .bitmap_mode = s->a.bitmap_mode,
        .compress = s->a.compress,
        .speed = s->a.speed,
        .on_source_error = s->a.on_source_error,
        .on_target_error = s->a.on_target_error,
        .job_flags = (s->a.auto_finalize ? 0 : JOB_MANUAL_FINALIZE) |
                     (s->a.auto_dismiss ? 0 : JOB_MANUAL_DISMISS),
        .filter_node_name = s->a.filter_node_name,
    };
    s->job = backup_job_create(s->a.job_id, s->bs, s->target, &o,
                               txn_job_txn(t), errp);
    if (!s->job) {
        return -EINVAL;
    }
    /* Ours until clean: a grouped abort may finalize it under us. */
    job_ref(backup_job_job(s->job));
    return 0;
}

/* ---- drive-backup: the target file ---- */

/* QEMU's choice of backing file for the new target, per sync mode. */
static BlockDriverState *drive_backup_backing(BackupAction *s)
{
    if (s->a.sync == BACKUP_SYNC_TOP) {
        return bdrv_backing_bs(s->bs);
    }
    if (s->a.sync == BACKUP_SYNC_NONE) {
        return s->bs;
    }
    return NULL;
}

static int coroutine_fn drive_backup_create(BackupAction *s,
                                            BlockDriverState *backing,
                                            GError **errp)
{
    g_autoptr(BlockOpts) o = bopts_new();
    g_autofree char *size = g_strdup_printf("%" G_GINT64_FORMAT,
                                            bdrv_getlength(s->bs));
    bopts_set(o, "size", size);
    if (backing) {
        bopts_set(o, "backing_file", bdrv_get_filename(backing));
        bopts_set(o, "backing_fmt", bdrv_get_format_name(backing));
    }
    /* An existing file is overwritten, as QEMU does, but is not ours to
     * delete on rollback. */
    bool existed = access(s->a.target, F_OK) == 0;
    if (!existed) {
        s->created_file = g_strdup(s->a.target);
    }
    int ret = bdrv_create(s->format, s->a.target, o, errp);
    if (ret < 0 && !existed) {
        unlink(s->a.target);
        g_clear_pointer(&s->created_file, g_free);
    }
    return MIN(ret, 0);
}

/* Opened without its backing chain; the backing node (if any) is the
 * one already open, as the new image names it. */
static int coroutine_fn drive_backup_open(BackupAction *s,
                                          BlockDriverState *backing,
                                          GError **errp)
{
    BlockOpts *o = bopts_new();
    bopts_set(o, "discard", "unmap");
    if (s->format) {
        bopts_set(o, "driver", s->format);
    }
    s->target = bdrv_open(s->a.target, o, BDRV_O_RDWR | BDRV_O_UNMAP |
                          BDRV_O_NO_BACKING, errp);
    if (!s->target) {
        return -EIO;
    }
    if (backing && s->target->drv->supports_backing) {
        bdrv_set_backing(s->target, backing);
    }
    return 0;
}

static void drive_backup_remove_file(BackupAction *s)
{
    if (s->created_file) {
        unlink(s->created_file);
        g_clear_pointer(&s->created_file, g_free);
    }
}

static int coroutine_fn drive_backup_target(BackupAction *s, GError **errp)
{
    if (!s->format && !s->a.mode_existing) {
        s->format = g_strdup(bdrv_get_format_name(s->bs));
    }
    /* sync=top of a node without backing is a full copy. */
    if (s->a.sync == BACKUP_SYNC_TOP && !bdrv_backing_bs(s->bs)) {
        s->a.sync = BACKUP_SYNC_FULL;
    }
    BlockDriverState *backing = drive_backup_backing(s);
    int ret = 0;
    if (!s->a.mode_existing) {
        ret = drive_backup_create(s, backing, errp);
    }
    if (ret == 0) {
        ret = drive_backup_open(s, backing, errp);
    }
    return ret;
}

/* ---- the action ---- */

static int coroutine_fn backup_prepare(void *opaque, Transaction *t,
                                       GError **errp)
{
    BackupAction *s = opaque;
    s->bs = backup_lookup_bs(s->a.device, errp);
    if (!s->bs) {
        return -ENOENT;
    }
    bdrv_ref(s->bs);
    int ret;
    if (s->drive) {
        ret = drive_backup_target(s, errp);
    } else {
        s->target = backup_lookup_bs(s->a.target, errp);
        ret = s->target ? 0 : -ENOENT;
        if (s->target) {
            bdrv_ref(s->target);
        }
    }
    if (ret == 0) {
        ret = backup_create_job(s, t, errp);
    }
    if (ret < 0) {
        /* No abort follows a failed prepare: undo everything here. */
        g_clear_pointer(&s->target, bdrv_unref);
        drive_backup_remove_file(s);
        g_clear_pointer(&s->bs, bdrv_unref);
    }
    return ret;
}

static void backup_add_nodes(void *opaque, GPtrArray *nodes)
{
    BackupAction *s = opaque;
    g_ptr_array_add(nodes, s->bs);
    g_ptr_array_add(nodes, s->target);
    /* Drained through the switch: the source's backends move onto it
     * and must find it quiesced until the section ends. */
    g_ptr_array_add(nodes, backup_job_filter(s->job));
}

static void backup_commit(void *opaque)
{
    BackupAction *s = opaque;
    backup_job_start(s->job);
}

static void coroutine_fn backup_abort(void *opaque)
{
    BackupAction *s = opaque;
    Job *job = backup_job_job(s->job);
    /* Another action's abort may have ended the group already. */
    if (job->status != XBLK_JOB_STATUS_NULL) {
        job_cancel_sync(job, true);
    }
    /* The job let go of the target: close it before deleting the file. */
    g_clear_pointer(&s->target, bdrv_unref);
    drive_backup_remove_file(s);
}

static void backup_clean(void *opaque)
{
    BackupAction *s = opaque;
    if (s->job) {
        job_unref(backup_job_job(s->job));
    }
    if (s->target) {
        bdrv_unref(s->target);
    }
    if (s->bs) {
        bdrv_unref(s->bs);
    }
    g_free(s->job_id);
    g_free(s->device);
    g_free(s->target_name);
    g_free(s->bitmap_name);
    g_free(s->format);
    g_free(s->filter_node_name);
    g_free(s->created_file);
    g_free(s);
}

static const TxnActionDriver blockdev_backup_driver = {
    .type = "blockdev-backup",
    .supports_grouped = true,
    .prepare = backup_prepare,
    .add_nodes = backup_add_nodes,
    .commit = backup_commit,
    .abort = backup_abort,
    .clean = backup_clean,
};

static const TxnActionDriver drive_backup_driver = {
    .type = "drive-backup",
    .supports_grouped = true,
    .prepare = backup_prepare,
    .add_nodes = backup_add_nodes,
    .commit = backup_commit,
    .abort = backup_abort,
    .clean = backup_clean,
};

static BackupAction *backup_action_new(const TxnBackupArgs *a, bool drive)
{
    BackupAction *s = g_new0(BackupAction, 1);
    s->drive = drive;
    s->a = *a;
    s->a.job_id = s->job_id = g_strdup(a->job_id);
    s->a.device = s->device = g_strdup(a->device);
    s->a.target = s->target_name = g_strdup(a->target);
    s->a.bitmap = s->bitmap_name = g_strdup(a->bitmap);
    s->a.filter_node_name = s->filter_node_name =
        g_strdup(a->filter_node_name);
    s->format = g_strdup(a->format);
    s->a.format = NULL;         /* s->format is the one in use */
    return s;
}

void txn_add_blockdev_backup(Transaction *t, const TxnBackupArgs *a)
{
    txn_add(t, &blockdev_backup_driver, backup_action_new(a, false));
}

void txn_add_drive_backup(Transaction *t, const TxnBackupArgs *a)
{
    txn_add(t, &drive_backup_driver, backup_action_new(a, true));
}
