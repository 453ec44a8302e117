/*
 * commit.c - the commit job, the offline commit and block-commit's
 * argument handling (see commit.h).
 *
 * Invariants:
 *  - every area of base this code writes is allocated in some layer
 *    from top down to just above base, so until the layers are dropped
 *    the chain reads exactly as before (base only gains hidden data);
 *  - active commit: an area's bit in s->dirty is cleared *before* it is
 *    read from top, and a guest write marks its bits *after* its data
 *    reached top (block/io.c), so a write racing with a copy always
 *    leaves its bits set and is copied again;
 *  - a job has its filter node (QEMU 7.2's: "mirror_top" above the
 *    active layer, "commit_top" above top otherwise; job-filter.h) in
 *    the graph from commit_job_start() until prepare (before the graph
 *    changes) or clean; every parent and device of top reaches top
 *    through it meanwhile;
 *  - the pivot happens only inside the drained section (on the filter,
 *    so the device's requests wait too) in which the dirty bitmap was
 *    seen empty and base was flushed; run() leaves that section open
 *    (s->in_drain) for prepare(), and abort() closes it;
 *  - the graph changes only after base is durable, and a rewritten
 *    overlay header is synced before its backing edge moves.
 * Callers: monitor/qmp-commit.c (block-commit), snapshot/ (C API).
 */
#include "block/commit.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/blockdev.h"
#include "block/dirty-bitmap.h"
#include "block/job-filter.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/iov.h"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define COMMIT_CHUNK (512 * 1024)
/* How often a ready active commit with nothing to copy looks again. */
#define COMMIT_READY_POLL_NS (20 * 1000 * 1000LL)

struct CommitJob {
    BlockJob common;
    BlockDriverState *root, *top, *base;
    bool active;
    char *backing_file;         /* non-active: header name; NULL: base's */
    XblkOnError on_error;
    int64_t len;                /* of top */
    void *buf;
    BdrvDirtyBitmap *dirty;     /* active: areas of top still to copy */
    bool should_complete;       /* job-complete arrived */
    bool in_drain;              /* synced, filter drained until the pivot */
    BlockDriverState *filter;   /* above top while the job runs */
};

void commit_options_init(CommitOptions *o)
{
    *o = (CommitOptions){ .on_error = XBLK_ON_ERROR_REPORT };
}

Job *commit_job_job(CommitJob *s)
{
    return &s->common.job;
}

bool commit_job_is_active(const CommitJob *s)
{
    return s->active;
}

BlockDriverState *commit_job_base(const CommitJob *s)
{
    return s->base;
}

/* ---- chain helpers ---- */

/* Whether bs is top or lies in top's backing chain. */
static bool chain_contains(BlockDriverState *top, BlockDriverState *bs)
{
    for (BlockDriverState *p = top; p; p = bdrv_backing_bs(p)) {
        if (p == bs) {
            return true;
        }
    }
    return false;
}

static BlockDriverState *chain_bottom(BlockDriverState *bs)
{
    while (bdrv_backing_bs(bs)) {
        bs = bdrv_backing_bs(bs);
    }
    return bs;
}

/* The first node of top .. base that a block job uses (busy error). */
static bool chain_busy(BlockDriverState *top, BlockDriverState *base,
                       GError **errp)
{
    for (BlockDriverState *p = top; p; p = bdrv_backing_bs(p)) {
        if (block_job_node_busy(p, errp)) {
            return true;
        }
        if (p == base) {
            break;
        }
    }
    return false;
}

/* The name written into an overlay's header for base: its file name,
 * absolute so that it resolves from any folder (caller frees). */
static char *commit_base_name(BlockDriverState *base, const char *given)
{
    if (given) {
        return g_strdup(given);
    }
    return g_canonicalize_filename(bdrv_get_filename(base), NULL);
}

/*
 * Whether [off, off + bytes) is allocated in a layer from top down to,
 * not including, base: 1 yes, 0 no, or a negative errno.  *pnum: how far
 * the answer holds.  Beyond a layer's end the layer reads as zeroes, so
 * such an area counts as allocated (base's data there is hidden).
 */
static int commit_allocated_above(BlockDriverState *top,
                                  BlockDriverState *base, int64_t off,
                                  int64_t bytes, int64_t *pnum)
{
    int64_t n = bytes;
    for (BlockDriverState *p = top; p && p != base; p = bdrv_backing_bs(p)) {
        int64_t plen = bdrv_getlength(p);
        if (plen >= 0 && off >= plen) {
            *pnum = n;
            return 1;
        }
        int64_t pn = 0;
        int ret = bdrv_block_status(p, off, n, &pn, NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        pn = pn > 0 ? MIN(pn, n) : n;
        if (ret & BDRV_BLOCK_ALLOCATED) {
            *pnum = pn;
            return 1;
        }
        n = pn;                 /* unallocated here: look below, same span */
    }
    *pnum = n;
    return 0;
}

/* Copies [off, off + n) as top shows it into base (zeroes as such). */
static int coroutine_fn commit_copy(BlockDriverState *top,
                                    BlockDriverState *base, void *buf,
                                    int64_t off, int64_t n, bool *is_read)
{
    *is_read = true;
    int ret = bdrv_co_pread(top, off, n, buf, 0);
    if (ret < 0) {
        return ret;
    }
    *is_read = false;
    if (buffer_is_zero(buf, n)) {
        return bdrv_co_pwrite_zeroes(base, off, n, 0);
    }
    return bdrv_co_pwrite(base, off, n, buf, 0);
}

/* Grows base to top's length: the layers above may be larger. */
static int commit_grow_base(BlockDriverState *base, int64_t len,
                            GError **errp)
{
    int64_t blen = bdrv_getlength(base);
    if (blen < 0) {
        error_setg_errno(errp, (int)-blen, "Could not inquire base image "
                         "size");
        return (int)blen;
    }
    if (blen >= len) {
        return 0;
    }
    return bdrv_truncate(base, len, false, PREALLOC_MODE_OFF, errp);
}

/* ---- read-only nodes ---- */

/* A new read-write instance of bs's image whose backing node is bs's
 * (or none, for a short-lived instance that only rewrites a header). */
static BlockDriverState *commit_open_rw(BlockDriverState *bs,
                                        bool with_backing, GError **errp)
{
    BlockOpts *o = bopts_new();
    BlockDriverState *below = bdrv_backing_bs(bs);
    bopts_set(o, "driver", bdrv_get_format_name(bs));
    bopts_set(o, "backing", with_backing && below ? bdrv_get_node_name(below)
                                                  : "");
    int flags = (bdrv_get_flags(bs) & (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                                       BDRV_O_UNMAP)) | BDRV_O_RDWR;
    GError *err = NULL;
    BlockDriverState *rw = bdrv_open(bdrv_get_filename(bs), o, flags, &err);
    if (!rw) {
        error_setg(errp, "Could not reopen '%s' read-write: %s",
                   bdrv_get_filename(bs), err->message);
        g_error_free(err);
    }
    return rw;
}

static void commit_swap_names(BlockDriverState *a, BlockDriverState *b)
{
    char *n = a->node_name;
    a->node_name = b->node_name;
    b->node_name = n;
    bool t = a->auto_node_name;
    a->auto_node_name = b->auto_node_name;
    b->auto_node_name = t;
}

/*
 * The node to write base's data to: bs itself when writable, else a
 * read-write instance that has taken bs's place (edges, devices, name).
 * xblk has no reopen; swapping instances while bs is drained gives the
 * same graph.  The returned node is held by the graph or, if bs had no
 * parent, by one reference the caller owns (*owned).
 */
static BlockDriverState *commit_make_writable(BlockDriverState *bs,
                                              bool *owned, GError **errp)
{
    *owned = false;
    if (!bdrv_is_read_only(bs)) {
        return bs;
    }
    if (bs->reopened_ro) {
        /* A former top that an external snapshot made read-only. */
        return bdrv_reopen_read_write(bs, errp) ? bs : NULL;
    }
    if (blockdev_is_monitor_owned(bs)) {
        error_setg(errp, "Node '%s' is read-only (added with read-only=on)",
                   bdrv_get_node_name(bs));
        return NULL;
    }
    BlockDriverState *rw = commit_open_rw(bs, true, errp);
    if (!rw) {
        return NULL;
    }
    bdrv_ref(bs);
    bdrv_drained_begin(bs);
    bdrv_replace_node(bs, rw);
    commit_swap_names(bs, rw);
    bdrv_drained_end(bs);
    bdrv_unref(bs);
    if (rw->parents || rw->backends) {
        bdrv_unref(rw);         /* the graph holds it now */
    } else {
        *owned = true;
    }
    return rw;
}

/* Writes name into overlay's header (synced by the driver). */
static int commit_rewrite_backing(BlockDriverState *overlay,
                                  const char *name, const char *fmt,
                                  GError **errp)
{
    if (!bdrv_is_read_only(overlay)) {
        return bdrv_change_backing_file(overlay, name, fmt, errp);
    }
    BlockDriverState *rw = commit_open_rw(overlay, false, errp);
    if (!rw) {
        return -EACCES;
    }
    int ret = bdrv_change_backing_file(rw, name, fmt, errp);
    bdrv_unref(rw);
    if (ret == 0) {
        /* The read-only instance never writes its header: only its view
         * (query-block's backing_file) follows. */
        g_free(overlay->backing_file);
        g_free(overlay->backing_format);
        overlay->backing_file = g_strdup(name);
        overlay->backing_format = g_strdup(fmt);
    }
    return ret;
}

/* The parents whose backing node is bs (the overlays above top). */
static GPtrArray *commit_overlays(BlockDriverState *bs)
{
    GPtrArray *a = g_ptr_array_new();
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c->parent->backing == c) {
            g_ptr_array_add(a, c->parent);
        }
    }
    return a;
}

/*
 * Drops top .. (above base) from the chain: each overlay of top gets
 * base's name in its header (synced), then, drained, base as its backing
 * node.  Without overlays, top's devices and parents move to base.  Base
 * must be durable already.
 */
static int commit_drop_layers(BlockDriverState *top, BlockDriverState *base,
                              const char *backing_file, GError **errp)
{
    g_autoptr(GPtrArray) ov = commit_overlays(top);
    g_autofree char *name = commit_base_name(base, backing_file);
    for (guint i = 0; i < ov->len; i++) {
        int ret = commit_rewrite_backing(g_ptr_array_index(ov, i), name,
                                         bdrv_get_format_name(base), errp);
        if (ret < 0) {
            return ret;
        }
    }
    bdrv_ref(top);
    bdrv_drained_begin(top);
    if (ov->len == 0) {
        bdrv_replace_node(top, base);
    }
    for (guint i = 0; i < ov->len; i++) {
        BlockDriverState *o = g_ptr_array_index(ov, i);
        bdrv_drained_begin(o);
        bdrv_set_backing(o, base);
        bdrv_drained_end(o);
    }
    bdrv_drained_end(top);
    bdrv_unref(top);
    return 0;
}

/* ---- the job ---- */

/* One failed request: true to go on (ignore, or stopped and resumed). */
static bool commit_handle_error(CommitJob *s, int ret, bool is_read)
{
    return block_job_error_action(&s->common, s->on_error, is_read, -ret) !=
           XBLK_ERROR_ACTION_REPORT;
}

static int coroutine_fn commit_flush_base(CommitJob *s, GError **errp)
{
    int ret = bdrv_co_flush(s->base);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush the base image");
    }
    return ret;
}

/* Non-active: one pass over top, as QEMU's commit job (progress counts
 * every byte scanned; the speed limit only copied ones). */
static int coroutine_fn commit_run_passive(CommitJob *s, GError **errp)
{
    Job *job = &s->common.job;
    int64_t delay = 0;
    job_progress_set_remaining(job, s->len);
    for (int64_t off = 0; off < s->len;) {
        job_sleep_ns(job, delay);
        if (job_is_cancelled(job)) {
            return -ECANCELED;
        }
        int64_t n = 0;
        bool is_read = true;
        int ret = commit_allocated_above(s->top, s->base, off,
                                         MIN(COMMIT_CHUNK, s->len - off), &n);
        bool copy = ret > 0;
        if (copy) {
            ret = commit_copy(s->top, s->base, s->buf, off, n, &is_read);
        }
        if (ret < 0) {
            if (!commit_handle_error(s, ret, is_read)) {
                return ret;
            }
            delay = 0;          /* retry this area, as QEMU does */
            continue;
        }
        job_progress_update(job, n);
        delay = copy ? job_ratelimit_delay(job, n) : 0;
        off += n;
    }
    return commit_flush_base(s, errp);
}

/* Active: everything allocated above base is to copy at first. */
static int coroutine_fn commit_mark_allocated(CommitJob *s)
{
    for (int64_t off = 0; off < s->len;) {
        int64_t n = 0;
        int ret = commit_allocated_above(s->top, s->base, off,
                                         MIN(COMMIT_CHUNK, s->len - off), &n);
        if (ret < 0) {
            return ret;
        }
        if (ret > 0) {
            bdrv_dirty_bitmap_set(s->dirty, off, n);
        }
        off += n;
        if (job_is_cancelled(&s->common.job)) {
            return -ECANCELED;
        }
    }
    return 0;
}

/* Copies one dirty area; 0 or the error that the policy reports. */
static int coroutine_fn commit_copy_dirty(CommitJob *s)
{
    Job *job = &s->common.job;
    uint64_t start, n;
    if (!bdrv_dirty_bitmap_next_dirty_area(s->dirty, 0, s->len, COMMIT_CHUNK,
                                           &start, &n)) {
        return 0;
    }
    bdrv_dirty_bitmap_reset(s->dirty, start, n);
    bool is_read;
    int ret = commit_copy(s->top, s->base, s->buf, start, n, &is_read);
    if (ret < 0) {
        bdrv_dirty_bitmap_set(s->dirty, start, n);
        if (!commit_handle_error(s, ret, is_read)) {
            return ret;
        }
        job_sleep_ns(job, 0);
        return 0;
    }
    job_progress_update(job, n);
    job_sleep_ns(job, job_ratelimit_delay(job, n));
    return 0;
}

/*
 * job-complete arrived and nothing is dirty: drain the filter above top
 * and look again.  1: in sync, base flushed, the filter (and with it top)
 * stays drained for the pivot; 0: new
 * writes came in meanwhile (or a soft cancel), go on copying.
 */
static int coroutine_fn commit_converge(CommitJob *s, GError **errp)
{
    /* The filter, not top: the device's requests enter there. */
    bdrv_drained_begin(s->filter);
    if (bdrv_dirty_bitmap_count(s->dirty) > 0 ||
        job_cancel_requested(&s->common.job)) {
        bdrv_drained_end(s->filter);
        return 0;
    }
    int ret = commit_flush_base(s, errp);
    if (ret < 0) {
        bdrv_drained_end(s->filter);
        return ret;
    }
    s->in_drain = true;
    return 1;
}

static int coroutine_fn commit_run_active(CommitJob *s, GError **errp)
{
    Job *job = &s->common.job;
    int ret = commit_mark_allocated(s);
    while (ret >= 0) {
        job_progress_set_remaining(job, bdrv_dirty_bitmap_count(s->dirty));
        if (job_is_cancelled(job)) {
            return -ECANCELED;
        }
        if (job_is_ready(job) && job_cancel_requested(job)) {
            return 0;           /* soft cancel: top stays as it is */
        }
        if (bdrv_dirty_bitmap_count(s->dirty) > 0) {
            ret = commit_copy_dirty(s);
            continue;
        }
        if (!job_is_ready(job)) {
            job_transition_to_ready(job);
        }
        if (s->should_complete) {
            ret = commit_converge(s, errp);
            if (ret > 0) {
                return 0;
            }
            continue;
        }
        job_sleep_ns(job, COMMIT_READY_POLL_NS);
    }
    return ret;
}

static int coroutine_fn commit_run(Job *job, GError **errp)
{
    CommitJob *s = (CommitJob *)job;
    int ret = commit_grow_base(s->base, s->len, errp);
    if (ret < 0) {
        return ret;
    }
    return s->active ? commit_run_active(s, errp)
                     : commit_run_passive(s, errp);
}

static void commit_complete(Job *job, GError **errp)
{
    CommitJob *s = (CommitJob *)job;
    s->should_complete = true;
    job_enter(job);
}

/*
 * Active: the pivot, inside the drain run() left open.  top's parent is
 * the filter: it moves onto base, then the filter goes and the device is
 * on base (as QEMU leaves it); its requests go on when the drain ends.
 */
static void commit_pivot(CommitJob *s)
{
    bdrv_ref(s->top);
    bdrv_replace_node(s->top, s->base);
    job_filter_remove(s->filter);
    bdrv_drained_end(s->filter);
    s->in_drain = false;
    bdrv_unref(s->top);
}

static int commit_prepare(Job *job)
{
    CommitJob *s = (CommitJob *)job;
    if (s->active) {
        if (s->in_drain) {
            commit_pivot(s);
        }
        return 0;
    }
    /* The overlays' backing edges must be on top again before they move
     * to base (QEMU drops its commit_top node here too). */
    job_filter_remove(s->filter);
    GError *err = NULL;
    int ret = commit_drop_layers(s->top, s->base, s->backing_file, &err);
    if (ret < 0) {
        g_clear_error(&job->err);
        job->err = err;
    }
    return ret;
}

static void commit_abort(Job *job)
{
    CommitJob *s = (CommitJob *)job;
    if (s->in_drain) {
        bdrv_drained_end(s->filter);
        s->in_drain = false;
    }
}

/* Failed, cancelled or soft-cancelled: the filter goes, top is where it
 * was.  The job's reference keeps the filter node until finalization. */
static void commit_clean(Job *job)
{
    CommitJob *s = (CommitJob *)job;
    commit_abort(job);          /* a soft-cancelled job never pivots */
    if (s->filter) {
        job_filter_remove(s->filter);
    }
    if (s->dirty) {
        bdrv_dirty_bitmap_release(s->dirty);
        s->dirty = NULL;
    }
}

static void commit_free(Job *job)
{
    CommitJob *s = (CommitJob *)job;
    g_free(s->backing_file);
    bdrv_vfree(s->buf);
}

static const JobDriver commit_driver = {
    .instance_size = sizeof(CommitJob),
    .job_type = XBLK_JOB_TYPE_COMMIT,
    .run = commit_run,
    .prepare = commit_prepare,
    .abort = commit_abort,
    .clean = commit_clean,
    .free = commit_free,
};

static const JobDriver commit_active_driver = {
    .instance_size = sizeof(CommitJob),
    .job_type = XBLK_JOB_TYPE_COMMIT,
    .run = commit_run,
    .complete = commit_complete,
    .prepare = commit_prepare,
    .abort = commit_abort,
    .clean = commit_clean,
    .free = commit_free,
};

/* ---- starting a job ---- */

static bool commit_check(BlockDriverState *root, BlockDriverState *top,
                         BlockDriverState *base, const CommitOptions *o,
                         GError **errp)
{
    if (top == base) {
        error_setg(errp, "Invalid files for merge: top and base are the "
                   "same");
        return false;
    }
    if (!chain_contains(root, top)) {
        error_setg(errp, "'%s' is not in this backing file chain",
                   bdrv_get_node_name(top));
        return false;
    }
    if (!chain_contains(top, base)) {
        error_setg(errp, "'%s' is not in this backing file chain",
                   bdrv_get_node_name(base));
        return false;
    }
    if (top == root && o->backing_file) {
        error_setg(errp, "'backing-file' specified, but 'top' is the active "
                   "layer");
        return false;
    }
    if (block_job_node_busy(root, errp) || chain_busy(top, base, errp)) {
        return false;
    }
    if (bdrv_getlength(top) < 0) {
        error_setg(errp, "Could not inquire top image size");
        return false;
    }
    /* Before anything changes (QEMU's texts, without backup's prefix). */
    return job_filter_check_name(o->filter_node_name, errp);
}

/* The nodes the job uses stay busy (and referenced) until it ends. */
static void commit_add_nodes(CommitJob *s)
{
    for (BlockDriverState *p = s->top; p && p != s->base;
         p = bdrv_backing_bs(p)) {
        if (p != s->root) {
            block_job_add_bdrv(&s->common, p);
        }
    }
    block_job_add_bdrv(&s->common, s->base);
}

CommitJob *commit_job_start(const char *job_id, BlockDriverState *root,
                            BlockDriverState *top, BlockDriverState *base,
                            const CommitOptions *o, GError **errp)
{
    if (!commit_check(root, top, base, o, errp)) {
        return NULL;
    }
    bool active = top == root, owned;
    base = commit_make_writable(base, &owned, errp);
    if (!base) {
        return NULL;
    }
    CommitJob *s = block_job_create(job_id, active ? &commit_active_driver
                                                   : &commit_driver,
                                    NULL, root, o->speed, o->job_flags,
                                    errp);
    if (s) {
        s->root = root;
        s->top = top;
        s->base = base;
        s->active = active;
        s->backing_file = g_strdup(o->backing_file);
        s->on_error = o->on_error;
        s->len = bdrv_getlength(top);
        s->buf = bdrv_blockalign(top, COMMIT_CHUNK);
        s->common.job.cb = o->cb;
        s->common.job.cb_opaque = o->cb_opaque;
        commit_add_nodes(s);
        /* QEMU's active commit is a mirror job: its filter is "mirror_top". */
        s->filter = job_filter_new(active ? JOB_FILTER_MIRROR_TOP
                                          : JOB_FILTER_COMMIT_TOP,
                                   o->filter_node_name, top);
        block_job_add_bdrv(&s->common, s->filter);   /* busy too */
        bdrv_unref(s->filter);
    }
    if (owned) {
        bdrv_unref(base);       /* the job holds it, if it exists */
    }
    if (!s) {
        return NULL;
    }
    if (active) {
        /* From here on every guest write to top is to copy too. */
        s->dirty = bdrv_dirty_bitmap_create(
            top, bdrv_dirty_bitmap_default_granularity(top), NULL, NULL);
        g_assert(s->dirty);
    }
    job_filter_insert(s->filter);
    job_start(&s->common.job);
    return s;
}

/* ---- offline ---- */

typedef struct OfflineCopy {
    BlockDriverState *top, *base;
    CommitProgressFn *progress;
    void *opaque;
    GError **errp;
    int ret;
} OfflineCopy;

/* The copy loop of an offline commit, in a coroutine of its own. */
static void coroutine_fn commit_offline_copy(void *opaque)
{
    OfflineCopy *c = opaque;
    int64_t len = bdrv_getlength(c->top);
    int ret = commit_grow_base(c->base, len, c->errp);
    void *buf = bdrv_blockalign(c->top, COMMIT_CHUNK);
    for (int64_t off = 0; off < len && ret >= 0;) {
        int64_t n = 0;
        bool is_read = true;
        ret = commit_allocated_above(c->top, c->base, off,
                                     MIN(COMMIT_CHUNK, len - off), &n);
        if (ret > 0) {
            ret = commit_copy(c->top, c->base, buf, off, n, &is_read);
        }
        if (ret < 0) {
            error_setg_errno(c->errp, -ret, "Could not %s at offset %" PRId64,
                             is_read ? "read the top image"
                                     : "write the base image", off);
            break;
        }
        off += n;
        if (c->progress) {
            c->progress(c->opaque, off, len);
        }
    }
    bdrv_vfree(buf);
    if (ret >= 0) {
        ret = bdrv_co_flush(c->base);
        if (ret < 0) {
            error_setg_errno(c->errp, -ret, "Could not flush the base image");
        }
    }
    c->ret = ret;
}

int bdrv_commit_offline(BlockDriverState *top, BlockDriverState *base,
                        const char *backing_file,
                        CommitProgressFn *progress, void *opaque,
                        GError **errp)
{
    CommitOptions o;
    commit_options_init(&o);
    if (!commit_check(top, top, base, &o, errp)) {
        return -EINVAL;
    }
    bool owned;
    bdrv_ref(top);
    base = commit_make_writable(base, &owned, errp);
    int ret = -EACCES;
    if (base) {
        OfflineCopy c = { top, base, progress, opaque, errp, 0 };
        bdrv_drained_begin(top);
        co_run_sync(commit_offline_copy, &c);
        bdrv_drained_end(top);
        ret = c.ret;
    }
    if (ret >= 0) {
        ret = commit_drop_layers(top, base, backing_file, errp);
    }
    if (base && owned) {
        bdrv_unref(base);
    }
    bdrv_unref(top);
    return ret < 0 ? ret : 0;
}

/* ---- block-commit ---- */

void block_commit_args_init(BlockCommitArgs *a)
{
    *a = (BlockCommitArgs){
        .on_error = XBLK_ON_ERROR_REPORT,
        .auto_finalize = true,
        .auto_dismiss = true,
    };
}

/* QEMU's root lookup: a device's node, else a node without parents. */
static BlockDriverState *commit_lookup_root(const char *device,
                                            GError **errp)
{
    BlockBackend *blk = blk_by_name(device);
    BlockDriverState *bs = blk ? blk_bs(blk) : bdrv_find_node(device);
    if (!bs) {
        /* libvirt probes for block-commit with this error class. */
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "Device '%s' not found", device);
        return NULL;
    }
    if (bs->parents) {
        error_setg(errp, "Need a root block node");
        return NULL;
    }
    return bs;
}

static BlockDriverState *commit_lookup_node(const char *name, GError **errp)
{
    BlockDriverState *bs = bdrv_find_node(name);
    if (!bs) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", name);
    }
    return bs;
}

static bool same_file(const char *a, const char *b)
{
    g_autofree char *ra = realpath(a, NULL);
    g_autofree char *rb = realpath(b, NULL);
    return ra && rb && !strcmp(ra, rb);
}

/*
 * A node below bs named name: as an overlay's header spells its backing
 * file, or any name of the same file (relative names are relative to
 * the overlay's folder), as QEMU's backing image lookup.
 */
static BlockDriverState *commit_find_backing_image(BlockDriverState *bs,
                                                   const char *name)
{
    for (BlockDriverState *p = bs; bdrv_backing_bs(p);
         p = bdrv_backing_bs(p)) {
        BlockDriverState *b = bdrv_backing_bs(p);
        const char *hdr = bdrv_get_backing_filename(p);
        if (hdr && !strcmp(hdr, name)) {
            return b;
        }
        g_autofree char *path = bdrv_resolve_backing_path(p, name);
        if (same_file(path, bdrv_get_filename(b))) {
            return b;
        }
    }
    return NULL;
}

static BlockDriverState *commit_resolve_top(const BlockCommitArgs *a,
                                            BlockDriverState *root,
                                            GError **errp)
{
    BlockDriverState *top = root;
    if (a->top_node && a->top) {
        error_setg(errp, "'top-node' and 'top' are mutually exclusive");
        return NULL;
    }
    if (a->top_node) {
        top = commit_lookup_node(a->top_node, errp);
        if (top && !chain_contains(root, top)) {
            error_setg(errp, "'%s' is not in this backing file chain",
                       a->top_node);
            return NULL;
        }
        return top;
    }
    if (a->top && strcmp(bdrv_get_filename(root), a->top)) {
        top = commit_find_backing_image(root, a->top);
    }
    if (!top) {
        error_setg(errp, "Top image file %s not found", a->top);
    }
    return top;
}

static BlockDriverState *commit_resolve_base(const BlockCommitArgs *a,
                                             BlockDriverState *top,
                                             GError **errp)
{
    if (a->base_node && a->base) {
        error_setg(errp, "'base-node' and 'base' are mutually exclusive");
        return NULL;
    }
    if (a->base_node) {
        BlockDriverState *base = commit_lookup_node(a->base_node, errp);
        if (base && !chain_contains(top, base)) {
            error_setg(errp, "'%s' is not in this backing file chain",
                       a->base_node);
            return NULL;
        }
        return base;
    }
    if (a->base) {
        BlockDriverState *base = commit_find_backing_image(top, a->base);
        if (!base) {
            error_setg(errp, "Can't find '%s' in the backing chain", a->base);
        }
        return base;
    }
    return chain_bottom(top);
}

CommitJob *block_commit(const BlockCommitArgs *a, GError **errp)
{
    BlockDriverState *root = commit_lookup_root(a->device, errp);
    if (!root || block_job_node_busy(root, errp)) {
        return NULL;
    }
    BlockDriverState *top = commit_resolve_top(a, root, errp);
    if (!top) {
        return NULL;
    }
    BlockDriverState *base = commit_resolve_base(a, top, errp);
    if (!base || chain_busy(top, base, errp)) {
        return NULL;
    }
    if (top == base) {
        error_setg(errp, "cannot commit an image into itself");
        return NULL;
    }
    CommitOptions o;
    commit_options_init(&o);
    o.backing_file = a->backing_file;
    o.speed = a->speed;
    o.on_error = a->on_error;
    o.job_flags = (a->auto_finalize ? 0 : JOB_MANUAL_FINALIZE) |
                  (a->auto_dismiss ? 0 : JOB_MANUAL_DISMISS);
    o.filter_node_name = a->filter_node_name;
    return commit_job_start(a->job_id, root, top, base, &o, errp);
}
