/*
 * backup.c - the backup job (see backup.h): copy bitmap, copy-before-
 * write through the job's filter node above the source, background copy
 * loop, bitmap hand-over.
 *
 * Invariants:
 *  - a cluster is copied at most once and never by two coroutines at a
 *    time: its bit is cleared when a copy starts (and set again if the
 *    copy fails), and the copy is listed in s->inflight until it ends;
 *    anyone (guest write or loop) meeting a listed cluster waits for it;
 *  - a guest write reaches the source driver only after every cluster it
 *    overlaps is clear and not in flight, i.e. its old content is on the
 *    target (or the write fails with the copy's error, QEMU 7.2's default
 *    on-cbw-error=break-guest-write; the bit stays set, so the loop copies
 *    the old content later);
 *  - the "copy-before-write" filter (job-filter.h) exists from
 *    backup_job_create() (a transaction's prepare) and is in the graph,
 *    with every parent and backend of the source moved onto it, from
 *    backup_job_start() (inside the drained commit) until clean, which
 *    takes it out drained: guest writes still copying have finished by
 *    then, and none reach the filter afterwards.
 * The job's own requests go straight to the nodes below the filter and
 * are counted like any other; the loop does not start new ones while
 * either node is drained, so a drain never waits on it for long.
 */
#include "block/backup.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/job-filter.h"
#include "util/cutils.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>

#define BACKUP_MIN_CLUSTER (64 * 1024)
#define BACKUP_MAX_CHUNK (1024 * 1024)
#define BACKUP_DRAIN_WAIT_NS (1000 * 1000)

static const char *const sync_names[] = {
    "top", "full", "none", "incremental", "bitmap",
};

static const char *const bitmap_mode_names[] = {
    "on-success", "never", "always",
};

const char *backup_sync_mode_name(BackupSyncMode m)
{
    return sync_names[m];
}

const char *backup_bitmap_mode_name(BackupBitmapMode m)
{
    return bitmap_mode_names[m];
}

typedef struct BackupReq {
    int64_t start, end;
    CoQueue waiters;
} BackupReq;

struct BackupJob {
    BlockJob common;
    BlockDriverState *source, *target;
    BackupSyncMode sync;
    BdrvDirtyBitmap *sync_bitmap;
    BackupBitmapMode bitmap_mode;
    bool compress;
    XblkOnError on_source_error, on_target_error;
    int64_t len;
    int64_t cluster_size;
    HBitmap *copy_bitmap;       /* clusters still to copy */
    GList *inflight;            /* BackupReq* being copied */
    BlockDriverState *filter;   /* "copy-before-write" above source */
};

Job *backup_job_job(BackupJob *s)
{
    return &s->common.job;
}

/*
 * The node to copy from: the filter's child.  Usually the source the job
 * was made on; but when that source is itself another job's filter
 * (a second backup of the same device) and that job ends first, its
 * filter leaves the graph and ours then reaches the node below it --
 * which holds the same data, while the old filter no longer passes on.
 */
static BlockDriverState *backup_src(BackupJob *s)
{
    BlockDriverState *c = s->filter ? bdrv_backing_bs(s->filter) : NULL;
    return c ? c : s->source;
}

/* ---- copying ---- */

static BackupReq *backup_find_inflight(BackupJob *s, int64_t start,
                                       int64_t end)
{
    for (GList *l = s->inflight; l; l = l->next) {
        BackupReq *r = l->data;
        if (r->start < end && start < r->end) {
            return r;
        }
    }
    return NULL;
}

/* Whether [off, off + n) is known to read as zeroes (sparse copies). */
static bool coroutine_fn backup_reads_zero(BackupJob *s, int64_t off,
                                           int64_t n)
{
    int64_t pnum = 0;
    int depth;
    int ret = bdrv_block_status_above(backup_src(s), off, n, &pnum, NULL,
                                      NULL,
                                      &depth);
    if (ret < 0 || pnum < n) {
        return false;
    }
    return (ret & BDRV_BLOCK_ZERO) || !(ret & BDRV_BLOCK_DATA);
}

/* Copies [off, off + n) (whole clusters, or up to the end of the disk). */
static int coroutine_fn backup_copy_chunk(BackupJob *s, int64_t off,
                                          int64_t n, bool sparse,
                                          bool *error_is_read)
{
    int ret;
    if (sparse && !s->compress && backup_reads_zero(s, off, n)) {
        *error_is_read = false;
        return bdrv_co_pwrite_zeroes(s->target, off, n,
                                     BDRV_REQ_MAY_UNMAP);
    }
    BlockDriverState *src = backup_src(s);
    void *buf = bdrv_blockalign(src, n);
    ret = bdrv_co_pread(src, off, n, buf, 0);
    if (ret < 0) {
        *error_is_read = true;
    } else {
        *error_is_read = false;
        ret = bdrv_co_pwrite(s->target, off, n, buf,
                             s->compress ? BDRV_REQ_WRITE_COMPRESSED : 0);
    }
    bdrv_vfree(buf);
    return ret;
}

/* Length of the run of clusters from start (whose bit is set) that are
 * still to copy and not in flight, up to end and max bytes. */
static int64_t backup_run_length(BackupJob *s, int64_t start, int64_t end,
                                 int64_t max)
{
    int64_t cs = s->cluster_size;
    int64_t n = cs;
    while (start + n < end && n < max &&
           hbitmap_get(s->copy_bitmap, start + n) &&
           !backup_find_inflight(s, start + n, start + n + cs)) {
        n += cs;
    }
    return MIN(n, s->len - start);
}

/*
 * Copies every cluster of [offset, offset + bytes) still to copy,
 * waiting for clusters someone else is copying.  *copied: bytes this call
 * copied; *pos: where it stopped (the end of a failed run, else the end
 * of the range).  On failure the failed clusters stay to copy.
 */
static int coroutine_fn backup_do_cow(BackupJob *s, int64_t offset,
                                      int64_t bytes, int64_t max_chunk,
                                      bool sparse, bool *error_is_read,
                                      int64_t *copied, int64_t *pos)
{
    int64_t cs = s->cluster_size;
    int64_t start = offset / cs * cs;
    int64_t end = MIN(DIV_ROUND_UP(offset + bytes, cs) * cs, s->len);
    *copied = 0;
    while (start < end) {
        BackupReq *other = backup_find_inflight(s, start, start + cs);
        if (other) {
            co_queue_wait(&other->waiters, NULL);
            continue;           /* look again: the copy may have failed */
        }
        if (!hbitmap_get(s->copy_bitmap, start)) {
            start += cs;
            continue;
        }
        BackupReq req = { .start = start };
        req.end = start + backup_run_length(s, start, end, max_chunk);
        co_queue_init(&req.waiters);
        hbitmap_reset(s->copy_bitmap, req.start, req.end - req.start);
        s->inflight = g_list_prepend(s->inflight, &req);
        int ret = backup_copy_chunk(s, req.start, req.end - req.start,
                                    sparse, error_is_read);
        s->inflight = g_list_remove(s->inflight, &req);
        co_queue_restart_all(&req.waiters);
        if (ret < 0) {
            hbitmap_set(s->copy_bitmap, req.start, req.end - req.start);
            *pos = req.end;
            return ret;
        }
        job_progress_update(&s->common.job, req.end - req.start);
        *copied += req.end - req.start;
        start = req.end;
    }
    *pos = end;
    return 0;
}

/* The filter's before-write function: a write-like request about to
 * pass the filter into the source. */
static int coroutine_fn backup_cbw(void *opaque, int64_t offset,
                                   int64_t bytes)
{
    BackupJob *s = opaque;
    bool is_read;
    int64_t copied, pos;
    if (offset >= s->len) {
        return 0;
    }
    return backup_do_cow(s, offset, MIN(bytes, s->len - offset),
                         BACKUP_MAX_CHUNK, false, &is_read, &copied, &pos);
}

/* ---- the job ---- */

/* Bytes still to copy, the partial last cluster counted as it is. */
static int64_t backup_remaining(BackupJob *s)
{
    int64_t n = hbitmap_count(s->copy_bitmap);
    int64_t cs = s->cluster_size;
    int64_t last = (s->len - 1) / cs * cs;
    if (s->len > 0 && hbitmap_get(s->copy_bitmap, last)) {
        n -= cs - (s->len - last);
    }
    return n;
}

/* sync=top: what the top layer does not allocate is not copied. */
static void coroutine_fn backup_skip_unallocated(BackupJob *s)
{
    int64_t cs = s->cluster_size;
    for (int64_t off = 0; off < s->len;) {
        int64_t pnum = 0;
        int ret = bdrv_block_status(backup_src(s), off, s->len - off, &pnum,
                                    NULL, NULL);
        if (ret < 0 || pnum <= 0) {
            return;             /* copy the rest: always correct */
        }
        if (!(ret & BDRV_BLOCK_ALLOCATED)) {
            int64_t a = DIV_ROUND_UP(off, cs) * cs;
            int64_t b = off + pnum == s->len ? s->len
                                             : (off + pnum) / cs * cs;
            if (b > a) {
                hbitmap_reset(s->copy_bitmap, a, b - a);
            }
        }
        off += pnum;
    }
    job_progress_set_remaining(&s->common.job, backup_remaining(s));
}

static bool backup_nodes_drained(BackupJob *s)
{
    return bdrv_is_quiesced(backup_src(s)) || bdrv_is_quiesced(s->target);
}

/* One error of the loop: true to go on (ignore, or stopped and resumed). */
static bool backup_handle_error(BackupJob *s, int ret, bool is_read)
{
    XblkErrorAction a = block_job_error_action(
        &s->common, is_read ? s->on_source_error : s->on_target_error,
        is_read, -ret);
    return a != XBLK_ERROR_ACTION_REPORT;
}

/* Bytes per request: a limited job goes cluster by cluster so that the
 * limiter sees small steps. */
static int64_t backup_chunk(BackupJob *s)
{
    return s->common.job.speed ? s->cluster_size
                               : MAX(s->cluster_size, BACKUP_MAX_CHUNK);
}

/* Copies everything still set, pass after pass (ignored errors leave
 * their clusters set, which the next pass retries, as QEMU does). */
static int coroutine_fn backup_loop(BackupJob *s)
{
    Job *job = &s->common.job;
    int64_t cursor = 0;
    while (!hbitmap_is_empty(s->copy_bitmap)) {
        if (job_is_cancelled(job)) {
            return -ECANCELED;
        }
        if (backup_nodes_drained(s)) {
            job_sleep_ns(job, BACKUP_DRAIN_WAIT_NS);
            continue;
        }
        int64_t off = hbitmap_next_dirty(s->copy_bitmap, cursor, UINT64_MAX);
        if (off < 0) {
            cursor = 0;         /* next pass */
            continue;
        }
        bool is_read = false;
        int64_t copied = 0;
        int64_t chunk = backup_chunk(s);
        int ret = backup_do_cow(s, off, chunk, chunk, true, &is_read,
                                &copied, &cursor);
        if (ret < 0 && !backup_handle_error(s, ret, is_read)) {
            return ret;
        }
        job_sleep_ns(job, job_ratelimit_delay(job, copied));
    }
    return 0;
}

static int coroutine_fn backup_run(Job *job, GError **errp)
{
    BackupJob *s = (BackupJob *)job;
    if (s->sync == BACKUP_SYNC_NONE) {
        /* Only the hook copies; the job ends when cancelled. */
        while (!job_is_cancelled(job)) {
            job_yield(job);
        }
        return 0;
    }
    if (s->sync == BACKUP_SYNC_TOP) {
        backup_skip_unallocated(s);
    }
    int ret = backup_loop(s);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_co_flush(s->target);
    if (ret < 0 && !job_is_cancelled(job)) {
        error_setg_errno(errp, -ret, "Could not flush the backup target");
    }
    return ret;
}

/* QEMU 7.2's bitmap hand-over at the end of a job with a bitmap. */
static void backup_cleanup_sync_bitmap(BackupJob *s, int ret)
{
    BdrvDirtyBitmap *bm = s->sync_bitmap;
    if (!bm) {
        return;
    }
    bool sync = (ret == 0 || s->bitmap_mode == BACKUP_BITMAP_ALWAYS) &&
                s->bitmap_mode != BACKUP_BITMAP_NEVER;
    if (sync) {
        bdrv_dirty_bitmap_abdicate(bm);
    } else {
        bdrv_dirty_bitmap_reclaim(bm);
    }
    if (ret < 0 && s->bitmap_mode == BACKUP_BITMAP_ALWAYS) {
        /* What the job did not copy stays dirty. */
        bdrv_dirty_bitmap_merge_hbitmap(bm, s->copy_bitmap);
    }
    s->sync_bitmap = NULL;
}

static void backup_commit(Job *job)
{
    backup_cleanup_sync_bitmap((BackupJob *)job, 0);
}

static void backup_abort(Job *job)
{
    backup_cleanup_sync_bitmap((BackupJob *)job, -1);
}

/* The filter goes (QEMU drops it in clean too); its last reference is
 * the job's, released at finalization.  Taking it out drains it, which
 * waits for guest writes that are still copying and hold pointers to s. */
static void backup_clean(Job *job)
{
    BackupJob *s = (BackupJob *)job;
    if (s->filter && job_filter_is_inserted(s->filter)) {
        job_filter_remove(s->filter);
    } else if (s->filter) {
        job_filter_drop(s->filter);
    }
    s->filter = NULL;
}

static void backup_free(Job *job)
{
    BackupJob *s = (BackupJob *)job;
    g_clear_pointer(&s->copy_bitmap, hbitmap_free);
}

static const JobDriver backup_driver = {
    .instance_size = sizeof(BackupJob),
    .job_type = XBLK_JOB_TYPE_BACKUP,
    .run = backup_run,
    .commit = backup_commit,
    .abort = backup_abort,
    .clean = backup_clean,
    .free = backup_free,
};

/* ---- creation ---- */

static bool backup_supports_compressed_writes(BlockDriverState *bs)
{
    while (bs->drv->is_filter && bs->file) {
        bs = bs->file->bs;
    }
    return bs->drv->supports_compressed_writes;
}

static const char *backup_device_name(BlockDriverState *bs)
{
    for (GList *l = bs->backends; l; l = l->next) {
        const char *name = blk_name(l->data);
        if (name && *name) {
            return name;
        }
    }
    return "";
}

/* The checks QEMU makes before the job exists, in its order. */
static bool backup_check(BlockDriverState *bs, BlockDriverState *target,
                         const BackupOptions *o, GError **errp)
{
    if (bs == target) {
        error_setg(errp, "Source and target cannot be the same");
        return false;
    }
    if (o->compress && !backup_supports_compressed_writes(target)) {
        error_setg(errp, "Compression is not supported for this drive %s",
                   backup_device_name(target));
        return false;
    }
    /* A source may feed several backups (QEMU does not block it); a
     * target receives one. */
    if (block_job_node_busy(target, errp)) {
        return false;
    }
    return true;
}

static bool backup_check_sizes(BlockDriverState *bs,
                               BlockDriverState *target, GError **errp)
{
    int64_t len = bdrv_getlength(bs);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "Unable to get length for '%s'",
                         bdrv_get_node_name(bs));
        return false;
    }
    int64_t tlen = bdrv_getlength(target);
    if (tlen < 0) {
        error_setg_errno(errp, (int)-tlen, "Unable to get length for '%s'",
                         bdrv_get_node_name(target));
        return false;
    }
    if (tlen != len) {
        error_setg(errp, "Source and target image have different sizes");
        return false;
    }
    if (bdrv_is_read_only(target)) {
        error_setg(errp, "Could not create node: Block node is read-only");
        return false;
    }
    return true;
}

/* QEMU makes the filter before the job: its name errors come first. */
static bool backup_check_filter_name(const char *name, GError **errp)
{
    GError *err = NULL;
    if (!job_filter_check_name(name, &err)) {
        error_setg(errp, "Could not create node: %s", err->message);
        g_error_free(err);
        return false;
    }
    return true;
}

BackupJob *backup_job_create(const char *job_id, BlockDriverState *bs,
                             BlockDriverState *target,
                             const BackupOptions *o, JobTxn *txn,
                             GError **errp)
{
    g_assert(o->sync != BACKUP_SYNC_INCREMENTAL);
    g_assert(o->bitmap || o->sync != BACKUP_SYNC_BITMAP);
    if (!backup_check(bs, target, o, errp)) {
        return NULL;
    }
    if (o->bitmap) {
        if (o->bitmap_mode != BACKUP_BITMAP_NEVER &&
            bdrv_dirty_bitmap_check(o->bitmap, BDRV_BITMAP_DEFAULT, errp)) {
            return NULL;
        }
        /* From here the bitmap's new writes go to its successor. */
        if (bdrv_dirty_bitmap_create_successor(o->bitmap, errp) < 0) {
            return NULL;
        }
    }
    BackupJob *s = NULL;
    BlockDriverState *filter = NULL;
    if (backup_check_sizes(bs, target, errp) &&
        backup_check_filter_name(o->filter_node_name, errp)) {
        filter = job_filter_new(JOB_FILTER_CBW, o->filter_node_name, bs);
        s = block_job_create(job_id, &backup_driver, txn, bs, o->speed,
                             o->job_flags, errp);
    }
    if (!s) {
        if (filter) {
            job_filter_drop(filter);
            bdrv_unref(filter);
        }
        if (o->bitmap) {
            bdrv_dirty_bitmap_reclaim(o->bitmap);
        }
        return NULL;
    }
    block_job_add_bdrv(&s->common, target);
    /* Busy like the source (blockdev-del, another job on it); the job's
     * reference is the filter's last once clean took it out. */
    block_job_add_bdrv(&s->common, filter);
    bdrv_unref(filter);
    s->filter = filter;
    job_filter_set_before_write(filter, backup_cbw, s);
    s->source = bs;
    s->target = target;
    s->sync = o->sync;
    s->sync_bitmap = o->bitmap;
    s->bitmap_mode = o->bitmap_mode;
    s->compress = o->compress;
    s->on_source_error = o->on_source_error;
    s->on_target_error = o->on_target_error;
    s->len = bdrv_getlength(bs);
    s->cluster_size = MAX(BACKUP_MIN_CLUSTER, bdrv_get_cluster_size(target));
    s->copy_bitmap = hbitmap_alloc(s->len, __builtin_ctzll(s->cluster_size));
    return s;
}

/*
 * The point in time.  Writes the bitmap's successor recorded since
 * create happened before it: with sync=bitmap they are to be copied, and
 * in every mode they must not count as "after the backup".
 */
static void backup_init_copy_bitmap(BackupJob *s)
{
    if (s->sync != BACKUP_SYNC_BITMAP) {
        hbitmap_set(s->copy_bitmap, 0, s->len);
    }
    if (s->sync_bitmap) {
        BdrvDirtyBitmap *succ = bdrv_dirty_bitmap_successor(s->sync_bitmap);
        HBitmap *early = bdrv_dirty_bitmap_hbitmap(succ);
        /* Should the job fail, the bitmap must still cover them. */
        bdrv_dirty_bitmap_merge_hbitmap(s->sync_bitmap, early);
        hbitmap_reset_all(early);
        if (s->sync == BACKUP_SYNC_BITMAP) {
            hbitmap_merge(s->copy_bitmap,
                          bdrv_dirty_bitmap_hbitmap(s->sync_bitmap));
        }
    }
}

BlockDriverState *backup_job_filter(BackupJob *s)
{
    return s->filter;
}

void backup_job_start(BackupJob *s)
{
    backup_init_copy_bitmap(s);
    job_progress_set_remaining(&s->common.job, backup_remaining(s));
    /* From here every write through the filter copies first. */
    job_filter_insert_drained(s->filter);
    job_start(&s->common.job);
}
