/*
 * savestate.c - save, load and delete of whole-machine save states for
 * any host (see savestate.h).  Owns the coordination only: the stream is
 * savestream.c's, the copy-on-write RAM capture ram-snapshot.c's, the
 * snapshots the transaction core's (block/transaction.c,
 * block/txn-snapshot.c), parking the guest the host's (SavestateHostOps).
 *
 * Save, as one transaction over every writable disk:
 *   before the pause  stream header; every action's prepare (the late
 *                     internal snapshot on the VM state disk, plain
 *                     internal snapshots on the others: metadata loads,
 *                     L1 growth, allocation), the guest running;
 *   pause             the last action's prepare ("x-machine-pause")
 *                     parks the host's threads (no disk request
 *                     outstanding), has the host serialize its devices
 *                     into memory and write-protects RAM; then the
 *                     drained section commits every snapshot in memory
 *                     and that action's commit, the last one, resumes;
 *   after the pause   the late action's finish streams the RAM pages as
 *                     of the pause (copy on write), the host's metadata
 *                     and the end marker into the pending snapshot, sets
 *                     its vm_state_size; the transaction makes every
 *                     snapshot durable, then lists it (rules 2 and 3).
 *
 * The write-out is a pipeline: a producer thread reads the RAM snapshot,
 * hashes and compresses (the CPU work, off the main loop so that the
 * guest's disk completions and the monitor go on), and hands stream
 * pieces of SAVE_STAGE_BYTES to the finish coroutine through a queue of
 * at most SAVE_QUEUE_BYTES; the coroutine writes them into the snapshot
 * (the I/O, on the main loop).  The coroutine owns the write position;
 * the producer never touches a disk.
 * Invariants: the guest pause holds no I/O wait that grows with disk or
 * RAM size (only the in-memory commit, the device encoding and one
 * mprotect per RAM region); the RAM snapshots are always ended, whatever
 * fails; a failed save leaves no snapshot on any disk.
 *
 * Load: every check that can refuse runs before a disk or a byte of the
 * machine changes, and the heavy work runs while the guest still plays:
 * the whole stream is read from the snapshot, then on a pool thread its
 * machine type and RAM size are checked and its RAM decoded into a
 * mapping of its own (ram-restore.h).  The pause: park, device sections
 * checked by the host, every disk reverted, the host loads RAM (moving
 * that mapping into place, no copy) and its devices.  The old RAM is
 * unmapped on a pool thread after the guest runs again.
 */
#include "migration/savestate.h"
#include "block/snapshot.h"
#include "block/txn-journal.h"
#include "block/txn-snapshot.h"
#include "block/vmstate.h"
#include "block/block-backend.h"
#include "migration/ram-snapshot.h"
#include "util/coroutine.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Stream bytes gathered before one write into the snapshot. */
#define SAVE_STAGE_BYTES    (1u << 20)
/* Stream bytes the producer may run ahead of the writes. */
#define SAVE_QUEUE_BYTES    (8u << 20)
/* How long the pause may wait for the guest's disk requests. */
#define SAVE_QUIESCE_US     (10 * G_USEC_PER_SEC)

static SavestateSaveStats save_stats;
static SavestateLoadStats load_stats;
static bool state_busy;

const SavestateSaveStats *savestate_last_save_stats(void)
{
    return &save_stats;
}

const SavestateLoadStats *savestate_last_load_stats(void)
{
    return &load_stats;
}

bool savestate_busy(void)
{
    return state_busy;
}

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

static const SavestateArgs no_args;

static bool args_cancelled(const SavestateArgs *a)
{
    return a->cancelled && a->cancelled(a->opaque);
}

static void args_progress(const SavestateArgs *a, uint64_t done,
                          uint64_t total)
{
    if (a->progress) {
        a->progress(a->opaque, done, total);
    }
}

/* ---- the disks ---- */


static bool disk_is_named(const SavestateDisk *d, const char *name)
{
    return !strcmp(d->name, name) || !strcmp(bdrv_get_node_name(d->bs), name);
}

static GArray *writable_disks(const SavestateHost *h)
{
    return h->ops->disks(h->opaque);
}

static uint64_t ram_total(const SavestateHost *h)
{
    SavestateRam r[SAVESTATE_RAM_MAX];
    guint n = h->ops->ram_regions(h->opaque, r);
    uint64_t total = 0;
    for (guint i = 0; i < n; i++) {
        total += r[i].size;
    }
    return total;
}

/* A name of args->devices that is no writable disk: QEMU's texts (a
 * read-only node is "writable but does not support snapshots" there). */
static void bad_device(const char *name, GError **errp)
{
    BlockBackend *blk = blk_by_name(name);
    BlockDriverState *bs = blk ? blk_bs(blk) : bdrv_find_node(name);
    if (bs) {
        error_setg(errp, "Device '%s' is writable but does not support "
                   "snapshots", name);
    } else {
        error_setg(errp, "No block device node '%s'", name);
    }
}

/* The writable disks, checked against args->devices (which must name
 * exactly them when given). */
static GArray *state_disks(const SavestateHost *h, const SavestateArgs *a,
                           GError **errp)
{
    GArray *disks = writable_disks(h);
    if (!a->devices) {
        return disks;
    }
    if (!a->devices[0]) {
        error_setg(errp, "At least one device is required for snapshot");
        g_array_unref(disks);
        return NULL;
    }
    g_autofree bool *named = g_new0(bool, disks->len + 1);
    for (char **n = a->devices; *n; n++) {
        bool found = false;
        for (guint i = 0; i < disks->len && !found; i++) {
            if (disk_is_named(&g_array_index(disks, SavestateDisk, i), *n)) {
                named[i] = found = true;
            }
        }
        if (!found) {
            bad_device(*n, errp);
            g_array_unref(disks);
            return NULL;
        }
    }
    for (guint i = 0; i < disks->len; i++) {
        if (!named[i]) {
            error_setg(errp, "Device '%s' is writable but not in the list "
                       "of devices: a save state covers every writable "
                       "disk", g_array_index(disks, SavestateDisk, i).name);
            g_array_unref(disks);
            return NULL;
        }
    }
    return disks;
}

static SavestateDisk *find_disk(GArray *disks, const char *name)
{
    for (guint i = 0; i < disks->len; i++) {
        SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
        if (disk_is_named(d, name)) {
            return d;
        }
    }
    return NULL;
}

/* ---- save ---- */

typedef struct SaveCtx {
    const SavestateHost *h;
    const SavestateArgs *args;
    XssWriter *w;
    GByteArray *stage;          /* stream bytes not handed on yet */
    int64_t pos;                /* stream offset written so far */
    TxnSnapshotVmstate *vs;     /* the write-out into a snapshot */
    bool streaming;             /* the write-out runs: pieces go on */
    const SavestatePlan *plan;
    int mem_fd;                 /* memory EXTERNAL: the .part file */
    char *mem_part;             /* its path while it is not renamed */
    SavestateRam regions[SAVESTATE_RAM_MAX];
    guint n_regions;
    uint64_t ram_size;          /* of all regions */
    RamSnapshot *ram[SAVESTATE_RAM_MAX];
    guint ram_cur;              /* the region streaming */
    uint64_t ram_base;          /* its offset in the stream's RAM */
    uint64_t peak_cow_bytes;
    bool quiesced;              /* we hold the vCPU parked */
    int64_t park_ns, resume_ns;
    SavestateCapture cap;
    uint64_t raw_bytes;          /* the stream with RAM uncompressed */

    /* The write-out pipeline (producer thread -> finish coroutine). */
    GMutex qlock;
    GCond qcond;
    GQueue queue;               /* GByteArray *, stream order */
    size_t queued_bytes;
    bool producer_done;         /* no more pieces will come */
    bool abort;                 /* the coroutine gave up: stop producing */
    bool co_waiting;            /* the coroutine waits for a piece */
    Coroutine *co;
    GError *producer_err;
} SaveCtx;

static const uint8_t zero_page[XSS_PAGE_SIZE];

/* Producer: a finished piece into the queue, waiting while the queue is
 * full.  False once the coroutine gave up. */
static bool save_hand_on(SaveCtx *s, GByteArray *piece)
{
    g_mutex_lock(&s->qlock);
    while (s->queued_bytes >= SAVE_QUEUE_BYTES && !s->abort) {
        g_cond_wait(&s->qcond, &s->qlock);
    }
    bool ok = !s->abort;
    if (ok) {
        g_queue_push_tail(&s->queue, piece);
        s->queued_bytes += piece->len;
        if (s->co_waiting) {
            s->co_waiting = false;
            co_wake(s->co);
        }
    } else {
        g_byte_array_unref(piece);
    }
    g_mutex_unlock(&s->qlock);
    return ok;
}

/* XssWriteFn: into memory until the write-out, then on to the queue in
 * pieces of SAVE_STAGE_BYTES (producer thread). */
static bool save_write(void *opaque, const void *buf, size_t len,
                       GError **errp)
{
    SaveCtx *s = opaque;
    g_byte_array_append(s->stage, buf, len);
    if (s->streaming && s->stage->len >= SAVE_STAGE_BYTES) {
        GByteArray *piece = s->stage;
        s->stage = g_byte_array_sized_new(SAVE_STAGE_BYTES + 65536);
        if (!save_hand_on(s, piece)) {
            error_setg(errp, "the save was abandoned");
            return false;
        }
    }
    return true;
}

/* XssPageNextFn over the regions' RAM snapshots, one after the other
 * (the stream's RAM is their concatenation); hands every page to the
 * host on the way. */
static int save_next_page(void *opaque, uint64_t *page_index,
                          const void **data, GError **errp)
{
    SaveCtx *s = opaque;
    RamSnapshotPage pg;
    while (s->ram_cur < s->n_regions &&
           !ram_snapshot_next(s->ram[s->ram_cur], &pg)) {
        s->ram_base += s->regions[s->ram_cur].size;
        s->ram_cur++;
    }
    if (s->ram_cur == s->n_regions) {
        return 0;
    }
    g_assert(ram_snapshot_page_size(s->ram[s->ram_cur]) == XSS_PAGE_SIZE);
    uint64_t off = s->ram_base + pg.offset;
    *page_index = off / XSS_PAGE_SIZE;
    *data = pg.zero ? zero_page : pg.data;
    if (s->h->ops->save_page) {
        s->h->ops->save_page(s->h->opaque, off, *data);
    }
    return 1;
}

static void save_end_ram(SaveCtx *s)
{
    for (guint i = 0; i < s->n_regions; i++) {
        if (s->ram[i]) {
            RamSnapshotStats st;
            ram_snapshot_end(s->ram[i], &st);
            s->peak_cow_bytes += st.peak_copy_bytes;
            s->ram[i] = NULL;
        }
    }
}

/* Paused: every region write-protected, or none. */
static bool save_begin_ram(SaveCtx *s, GError **errp)
{
    for (guint i = 0; i < s->n_regions; i++) {
        s->ram[i] = ram_snapshot_begin(s->regions[i].host,
                                       s->regions[i].size, errp);
        if (!s->ram[i]) {
            save_end_ram(s);
            return false;
        }
    }
    return true;
}

/* The producer thread: RAM, then the metadata that needs it (the frame
 * hash), the end marker, the last piece. */
static gpointer save_producer(gpointer opaque)
{
    SaveCtx *s = opaque;
    GError *err = NULL;
    XssMetadata md = { .frame = s->cap.frame };
    uint64_t before_ram = xss_writer_bytes(s->w);
    bool ok = xss_writer_ram(s->w, save_next_page, s, &err);
    uint64_t ram_records = xss_writer_bytes(s->w) - before_ram;
    save_end_ram(s);            /* the guest writes at full speed again */
    if (ok && s->h->ops->save_metadata) {
        s->h->ops->save_metadata(s->h->opaque, &md);
        md.frame = s->cap.frame;
    }
    ok = ok && xss_writer_metadata(s->w, &md, &err) &&
         xss_writer_finish(s->w, &err);
    s->raw_bytes = xss_writer_bytes(s->w) - ram_records + s->ram_size;
    if (ok && s->stage->len) {
        GByteArray *piece = s->stage;
        s->stage = g_byte_array_new();
        ok = save_hand_on(s, piece);
    }
    g_mutex_lock(&s->qlock);
    s->producer_done = true;
    if (!ok) {
        s->producer_err = err ? err : g_error_new(XBLK_ERROR, 0,
                                                  "the save was abandoned");
    }
    if (s->co_waiting) {
        s->co_waiting = false;
        co_wake(s->co);
    }
    g_mutex_unlock(&s->qlock);
    return NULL;
}

/* Consumer: the next piece, yielding while there is none; NULL when the
 * producer is done. */
static GByteArray *coroutine_fn save_next_piece(SaveCtx *s)
{
    g_mutex_lock(&s->qlock);
    while (g_queue_is_empty(&s->queue) && !s->producer_done) {
        s->co = co_self();
        s->co_waiting = true;
        g_mutex_unlock(&s->qlock);
        co_yield();
        g_mutex_lock(&s->qlock);
    }
    GByteArray *piece = g_queue_pop_head(&s->queue);
    if (piece) {
        s->queued_bytes -= piece->len;
        g_cond_signal(&s->qcond);
    }
    g_mutex_unlock(&s->qlock);
    return piece;
}

static void save_stop_producer(SaveCtx *s)
{
    g_mutex_lock(&s->qlock);
    s->abort = true;
    g_cond_signal(&s->qcond);
    g_mutex_unlock(&s->qlock);
}

/* Where the pipeline's pieces go: the snapshot's VM state or a file. */
typedef int coroutine_fn SaveSinkFn(SaveCtx *s, GByteArray *piece,
                                    GError **errp);

static int coroutine_fn sink_vmstate(SaveCtx *s, GByteArray *piece,
                                     GError **errp)
{
    int ret = txn_snapshot_write_vmstate(s->vs, piece->data, s->pos,
                                         piece->len, errp);
    if (ret < 0) {
        g_prefix_error(errp, "writing the VM state: ");
    }
    return ret;
}

typedef struct FileWrite {
    int fd;
    const void *buf;
    size_t len;
    off_t pos;
} FileWrite;

static int file_write_worker(void *opaque)
{
    FileWrite *fw = opaque;
    size_t done = 0;
    while (done < fw->len) {
        ssize_t n = pwrite(fw->fd, (const char *)fw->buf + done,
                           fw->len - done, fw->pos + done);
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
        done += n > 0 ? (size_t)n : 0;
    }
    return 0;
}

static int coroutine_fn sink_file(SaveCtx *s, GByteArray *piece,
                                  GError **errp)
{
    FileWrite fw = { s->mem_fd, piece->data, piece->len, s->pos };
    int ret = worker_pool_run(file_write_worker, &fw);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "writing the memory file '%s'",
                         s->plan->memory_file);
    }
    return ret;
}

/* The write-out, guest running: the producer thread's pieces into sink
 * in stream order; returns the stream's length or a negative errno. */
static int64_t coroutine_fn save_pipeline(SaveCtx *s, SaveSinkFn *sink,
                                          GError **errp)
{
    uint64_t expect = s->pos + s->stage->len + s->ram_size / 2;
    GError *err = NULL;
    s->streaming = true;
    GThread *producer = g_thread_new("xblk-save", save_producer, s);
    for (GByteArray *piece; (piece = save_next_piece(s)); ) {
        if (!err && args_cancelled(s->args)) {
            error_setg(&err, "the save was cancelled");
        }
        if (!err) {
            sink(s, piece, &err);
        }
        if (err) {
            save_stop_producer(s);  /* drains what is queued, unwritten */
        } else {
            s->pos += piece->len;
            expect = MAX(expect, (uint64_t)s->pos);
            args_progress(s->args, s->pos, expect);
        }
        g_byte_array_unref(piece);
    }
    g_thread_join(producer);
    save_end_ram(s);
    s->streaming = false;
    if (!err && s->producer_err) {
        err = g_steal_pointer(&s->producer_err);
    }
    g_clear_error(&s->producer_err);
    if (err) {
        g_propagate_error(errp, err);
        return -EIO;
    }
    return s->pos;
}

/* The late VM state write-out (the late action's finish; guest running). */
static int coroutine_fn save_write_out(TxnSnapshotVmstate *vs, void *opaque,
                                       GError **errp)
{
    SaveCtx *s = opaque;
    s->vs = vs;
    int64_t len = save_pipeline(s, sink_vmstate, errp);
    s->vs = NULL;
    if (len < 0) {
        return -EIO;
    }
    txn_snapshot_set_vm_state_size(vs, len);
    return 0;
}

/* The pause, as the transaction's last action. */
static void save_resume(SaveCtx *s)
{
    if (s->quiesced) {
        /* The pause ends when the host is told to go on: waking its
         * threads may hand this CPU to them before resume() returns. */
        s->resume_ns = now_ns();
        s->h->ops->resume(s->h->opaque);
        s->quiesced = false;
    }
}

/*
 * Parks the host's threads (SavestateHostOps: pause_request, then
 * pause_poll until they are parked), yielding to the loop meanwhile so
 * that the guest's disk requests complete; bounded to SAVE_QUIESCE_US.
 * On success *park_ns is when they parked; on failure nothing is left
 * to resume.
 */
static bool coroutine_fn host_pause(const SavestateHost *h,
                                    int64_t *park_ns, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + SAVE_QUIESCE_US;
    h->ops->pause_request(h->opaque);
    for (;;) {
        int r = h->ops->pause_poll(h->opaque, errp);
        if (r < 0) {
            return false;
        }
        if (r > 0) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            h->ops->resume(h->opaque);
            error_setg(errp, "the guest's disk requests did not complete "
                       "in %d s", (int)(SAVE_QUIESCE_US / G_USEC_PER_SEC));
            return false;
        }
        co_yield_to_loop();
    }
    *park_ns = h->ops->park_ns ? h->ops->park_ns(h->opaque) : now_ns();
    return true;
}

static int coroutine_fn pause_prepare(void *opaque, Transaction *t,
                                      GError **errp)
{
    SaveCtx *s = opaque;
    if (args_cancelled(s->args)) {
        error_setg(errp, "the save was cancelled");
        return -ECANCELED;
    }
    if (!host_pause(s->h, &s->park_ns, errp)) {
        return -EBUSY;
    }
    s->quiesced = true;
    if (!s->h->ops->capture(s->h->opaque, s->w, &s->cap, errp) ||
        !save_begin_ram(s, errp)) {
        save_resume(s);
        return -EIO;
    }
    /* Every disk's snapshot records the machine's clock of the instant
     * (qemu-img's VM CLOCK) when it is part of a save state: a machine
     * clock without a VM state on some disk marks an unfinished one
     * (savestate_cleanup), so a memory file's snapshots record none. */
    if (s->plan->memory == SAVESTATE_MEMORY_INTERNAL) {
        txn_snapshot_set_vm_clock(t, s->cap.clock_ns);
    }
    return 0;
}

static void pause_commit(void *opaque)
{
    save_resume(opaque);
}

static void coroutine_fn pause_abort(void *opaque)
{
    SaveCtx *s = opaque;
    save_end_ram(s);
    save_resume(s);
}

static const TxnActionDriver pause_driver = {
    .type = "x-machine-pause",
    .prepare = pause_prepare,
    .commit = pause_commit,
    .abort = pause_abort,
};

/* memory EXTERNAL: the pause action whose finish writes the stream into
 * the .part file, makes it durable and renames it into place. */
static int file_sync_worker(void *opaque)
{
    return fsync(*(int *)opaque) < 0 ? -errno : 0;
}

typedef struct FileRename {
    const char *from, *to;
} FileRename;

/* rename, then fsync of the folder: the name is durable too. */
static int file_rename_worker(void *opaque)
{
    FileRename *r = opaque;
    if (rename(r->from, r->to) < 0) {
        return -errno;
    }
    return fsync_parent_dir(r->to);
}

static int coroutine_fn memfile_finish(void *opaque, GError **errp)
{
    SaveCtx *s = opaque;
    if (save_pipeline(s, sink_file, errp) < 0) {
        return -EIO;
    }
    FileRename r = { s->mem_part, s->plan->memory_file };
    int ret = worker_pool_run(file_sync_worker, &s->mem_fd);
    if (ret == 0) {
        ret = worker_pool_run(file_rename_worker, &r);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "writing the memory file '%s'",
                         s->plan->memory_file);
        return ret;
    }
    g_clear_pointer(&s->mem_part, g_free);
    return 0;
}

/* Another action's write-out failed: the snapshot is not taken. */
static void coroutine_fn memfile_undo(void *opaque)
{
    SaveCtx *s = opaque;
    unlink(s->plan->memory_file);
}

static const TxnActionDriver memfile_driver = {
    .type = "x-machine-pause",
    .prepare = pause_prepare,
    .commit = pause_commit,
    .abort = pause_abort,
    .finish = memfile_finish,
    .undo = memfile_undo,
};

static bool tag_on_disk(const SavestateDisk *d, const char *tag)
{
    BdrvSnapshotInfo info = { 0 };
    bool found = bdrv_snapshot_find(d->bs, tag, &info);
    bdrv_snapshot_info_clear(&info);
    return found;
}

static bool tag_on_any(GArray *disks, const char *tag)
{
    for (guint i = 0; i < disks->len; i++) {
        if (tag_on_disk(&g_array_index(disks, SavestateDisk, i), tag)) {
            return true;
        }
    }
    return false;
}

/* One snapshot delete_tag removes. */
typedef struct TagCopy {
    const SavestateDisk *d;
    BdrvSnapshotInfo sn;
} TagCopy;

static void tag_copy_clear(gpointer p)
{
    bdrv_snapshot_info_clear(&((TagCopy *)p)->sn);
}

/* Every snapshot named tag on the disks (a disk named twice counts
 * once), those with a VM state first. */
static GArray *tag_copies(GArray *disks, const char *tag)
{
    GArray *copies = g_array_new(FALSE, TRUE, sizeof(TagCopy));
    g_array_set_clear_func(copies, tag_copy_clear);
    for (int pass = 0; pass < 2; pass++) {
        for (guint i = 0; i < disks->len; i++) {
            const SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
            bool seen = false;
            for (guint k = 0; k < i && !seen; k++) {
                seen = g_array_index(disks, SavestateDisk, k).bs == d->bs;
            }
            BdrvSnapshotInfo *list = NULL;
            int n = seen ? 0 : bdrv_snapshot_list(d->bs, &list);
            for (int j = 0; j < n; j++) {
                if (g_strcmp0(list[j].name, tag) ||
                    (list[j].vm_state_size > 0) != (pass == 0)) {
                    continue;
                }
                TagCopy c = { d, list[j] };
                c.sn.id_str = g_strdup(list[j].id_str);
                c.sn.name = g_strdup(list[j].name);
                g_array_append_val(copies, c);
            }
            if (n > 0) {
                bdrv_snapshot_list_free(list, n);
            }
        }
    }
    return copies;
}

/*
 * Deletes tag from every disk in disks, all or nothing (DESIGN rules 2,
 * 3): when the snapshots are on two or more images, the delete is
 * recorded beside each of them first (txn_journal_begin_delete), so a
 * kill between two disks' deletes is finished by the next open of any of
 * them (txn_journal_recover); the records go after the last delete.  The
 * disk with the VM state still goes first: without the records (one
 * image) a kill in between leaves the tag on the others only, with no VM
 * state anywhere - an unfinished state, which the next start removes
 * (savestate_cleanup).  A tag that is nowhere is deleted already.
 */
static bool delete_tag(GArray *disks, const char *tag, GError **errp)
{
    g_autoptr(GArray) copies = tag_copies(disks, tag);
    if (!copies->len) {
        return true;
    }
    g_autofree BlockDriverState **bs = g_new0(BlockDriverState *,
                                              copies->len);
    g_autofree BdrvSnapshotInfo *sn = g_new0(BdrvSnapshotInfo, copies->len);
    for (guint i = 0; i < copies->len; i++) {
        TagCopy *c = &g_array_index(copies, TagCopy, i);
        bs[i] = c->d->bs;
        sn[i] = c->sn;          /* borrowed */
    }
    GError *err = NULL;
    TxnJournal *j = txn_journal_begin_delete(bs, sn, copies->len, &err);
    if (err) {
        g_propagate_prefixed_error(errp, err, "Could not delete snapshot "
                                   "'%s': ", tag);
        return false;
    }
    for (guint i = 0; i < copies->len; i++) {
        TagCopy *c = &g_array_index(copies, TagCopy, i);
        if (bdrv_snapshot_delete(c->d->bs, c->sn.id_str, c->sn.name,
                                 errp) < 0) {
            error_prepend(errp, "Error while deleting snapshot on device "
                          "'%s': ", c->d->name);
            /* Begun: the next open finishes it (never undone). */
            if (i > 0) {
                txn_journal_keep(j);
            } else {
                txn_journal_end(j);
            }
            return false;
        }
    }
    txn_journal_end(j);
    return true;
}

static const SavestateDisk *save_vmstate_disk(GArray *disks,
                                         const SavestateArgs *a,
                                         GError **errp)
{
    const SavestateDisk *vmd = NULL;
    for (guint i = 0; i < disks->len; i++) {
        SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
        if (!bdrv_can_snapshot(d->bs)) {
            error_setg(errp, "Device '%s' is writable but does not support "
                       "snapshots", d->name);
            return NULL;
        }
        if (!vmd && (a->vmstate ? disk_is_named(d, a->vmstate)
                                : bdrv_can_save_vmstate(d->bs))) {
            vmd = d;
        }
    }
    if (!vmd) {
        if (a->vmstate) {
            error_setg(errp, "vmstate block device '%s' does not exist",
                       a->vmstate);
        } else {
            error_setg(errp, "No block device can accept snapshots");
        }
        return NULL;
    }
    if (!bdrv_can_save_vmstate(vmd->bs)) {
        error_setg(errp, "vmstate block device '%s' does not support "
                   "snapshots", a->vmstate ? a->vmstate : vmd->name);
        return NULL;
    }
    return vmd;
}

static bool save_checks(const SavestateHost *h, const char *tag,
                        const SavestateArgs *a, GArray **disks_out,
                        const SavestateDisk **vmd_out, GError **errp)
{
    if (!tag || !*tag) {
        error_setg(errp, "a save state needs a tag");
        return false;
    }
    if (strlen(tag) >= sizeof(save_stats.tag)) {
        error_setg(errp, "tag '%s' is too long (at most %zu bytes)", tag,
                   sizeof(save_stats.tag) - 1);
        return false;
    }
    if (h->ops->can_save && !h->ops->can_save(h->opaque, errp)) {
        return false;
    }
    GArray *disks = state_disks(h, a, errp);
    if (!disks) {
        return false;
    }
    const SavestateDisk *vmd = save_vmstate_disk(disks, a, errp);
    if (!vmd) {
        g_array_unref(disks);
        return false;
    }
    if (tag_on_any(disks, tag) &&
        (!a->overwrite || !delete_tag(disks, tag, errp))) {
        if (!a->overwrite) {
            error_setg(errp, "Snapshot '%s' already exists in one or more "
                       "devices", tag);
        }
        g_array_unref(disks);
        return false;
    }
    *disks_out = disks;
    *vmd_out = vmd;
    return true;
}

static void save_ctx_clear(SaveCtx *s)
{
    save_end_ram(s);
    save_resume(s);
    if (s->w) {
        xss_writer_free(s->w);
    }
    if (s->mem_fd >= 0) {
        close(s->mem_fd);
    }
    if (s->mem_part) {
        unlink(s->mem_part);    /* never renamed: no memory file */
        g_free(s->mem_part);
    }
    g_byte_array_unref(s->stage);
    g_queue_clear_full(&s->queue, (GDestroyNotify)g_byte_array_unref);
    g_mutex_clear(&s->qlock);
    g_cond_clear(&s->qcond);
}

/* A disk of the plan, found among the host's writable disks. */
typedef struct PlanDisk {
    SavestateDisk d;
    const SavestateDiskPlan *p;
    BlockDriverState *new_top;  /* revert EXTERNAL: the new overlay */
    bool created;               /* revert EXTERNAL: its file is ours */
} PlanDisk;

/* The plan's disks, each a writable disk of the host and named once. */
static GArray *plan_disks(const SavestateHost *h, const SavestatePlan *plan,
                          GError **errp)
{
    g_autoptr(GArray) all = writable_disks(h);
    GArray *out = g_array_new(FALSE, TRUE, sizeof(PlanDisk));
    for (guint i = 0; i < plan->n_disks; i++) {
        const SavestateDiskPlan *p = &plan->disks[i];
        SavestateDisk *d = find_disk(all, p->name);
        for (guint j = 0; d && j < out->len; j++) {
            if (g_array_index(out, PlanDisk, j).d.bs == d->bs) {
                error_setg(errp, "disk '%s' is named twice", p->name);
                g_array_unref(out);
                return NULL;
            }
        }
        if (!d) {
            bad_device(p->name, errp);
            g_array_unref(out);
            return NULL;
        }
        PlanDisk pd = { .d = *d, .p = p };
        g_array_append_val(out, pd);
    }
    return out;
}

/* The disk that holds an internal memory snapshot: plan->vmstate, else
 * the first INTERNAL disk, else the first EXTERNAL one; NULL if none. */
static PlanDisk *plan_vmstate_disk(GArray *disks, const SavestatePlan *plan)
{
    PlanDisk *ext = NULL;
    for (guint i = 0; i < disks->len; i++) {
        PlanDisk *pd = &g_array_index(disks, PlanDisk, i);
        if (pd->p->mode == SAVESTATE_DISK_SKIP) {
            continue;
        }
        if (plan->vmstate) {
            if (disk_is_named(&pd->d, plan->vmstate)) {
                return pd;
            }
        } else if (pd->p->mode == SAVESTATE_DISK_INTERNAL) {
            return pd;
        } else if (!ext) {
            ext = pd;
        }
    }
    return plan->vmstate ? NULL : ext;
}

static bool file_absent(const char *path, GError **errp)
{
    if (!path || !g_path_is_absolute(path)) {
        error_setg(errp, "'%s' is not an absolute file name",
                   path ? path : "");
        return false;
    }
    if (access(path, F_OK) == 0) {
        error_setg(errp, "Could not create '%s': File exists", path);
        return false;
    }
    return true;
}

static bool snapshot_check_disk(const PlanDisk *pd, const char *tag,
                                bool holds_vm, GError **errp)
{
    if (pd->p->mode == SAVESTATE_DISK_EXTERNAL &&
        !file_absent(pd->p->file, errp)) {
        return false;
    }
    if (pd->p->mode != SAVESTATE_DISK_INTERNAL && !holds_vm) {
        return true;
    }
    if (!bdrv_can_snapshot(pd->d.bs)) {
        error_setg(errp, "Device '%s' is writable but does not support "
                   "snapshots", pd->d.name);
        return false;
    }
    if (holds_vm && !bdrv_can_save_vmstate(pd->d.bs)) {
        error_setg(errp, "vmstate block device '%s' does not support "
                   "snapshots", pd->d.name);
        return false;
    }
    if (tag_on_disk(&pd->d, tag)) {
        error_setg(errp, "Snapshot '%s' already exists in one or more "
                   "devices", tag);
        return false;
    }
    return true;
}

/* Everything that can refuse a plan before anything changes. */
static GArray *snapshot_checks(const SavestateHost *h, const char *tag,
                               const SavestatePlan *plan, PlanDisk **vmd_out,
                               GError **errp)
{
    if (!tag || !*tag || strlen(tag) >= sizeof(save_stats.tag)) {
        error_setg(errp, "a snapshot needs a name of 1 to %zu bytes",
                   sizeof(save_stats.tag) - 1);
        return NULL;
    }
    if (plan->memory != SAVESTATE_MEMORY_NONE && h->ops->can_save &&
        !h->ops->can_save(h->opaque, errp)) {
        return NULL;
    }
    g_autoptr(GArray) disks = plan_disks(h, plan, errp);
    if (!disks) {
        return NULL;
    }
    PlanDisk *vmd = plan->memory == SAVESTATE_MEMORY_INTERNAL ?
                    plan_vmstate_disk(disks, plan) : NULL;
    if (plan->memory == SAVESTATE_MEMORY_INTERNAL && !vmd) {
        error_setg(errp, plan->vmstate ?
                   "vmstate block device '%s' takes no snapshot" :
                   "an internal memory snapshot needs a disk that takes an "
                   "internal or external snapshot to hold it%s",
                   plan->vmstate ? plan->vmstate : "");
        return NULL;
    }
    bool takes_disk = false;
    for (guint i = 0; i < disks->len; i++) {
        PlanDisk *pd = &g_array_index(disks, PlanDisk, i);
        takes_disk |= pd->p->mode != SAVESTATE_DISK_SKIP;
        if (!snapshot_check_disk(pd, tag, pd == vmd, errp)) {
            return NULL;
        }
    }
    if (plan->memory == SAVESTATE_MEMORY_NONE && !takes_disk) {
        error_setg(errp, "nothing to snapshot: no memory and no disk");
        return NULL;
    }
    if (plan->memory == SAVESTATE_MEMORY_EXTERNAL &&
        !file_absent(plan->memory_file, errp)) {
        return NULL;
    }
    *vmd_out = vmd;
    return g_steal_pointer(&disks);
}

/* One action per disk of the plan, the VM state's holder first, then the
 * pause (with memory) last, so that it parks the guest only after every
 * other prepare. */
static Transaction *snapshot_txn(SaveCtx *s, const char *tag, GArray *disks,
                                 PlanDisk *vmd)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    BdrvSnapshotInfo sn = {
        .name = (char *)tag, .icount = BDRV_SNAPSHOT_NO_ICOUNT,
    };
    if (vmd) {
        txn_add_snapshot_internal_late(t, vmd->d.name, &sn, save_write_out,
                                       s);
    }
    for (guint i = 0; i < disks->len; i++) {
        PlanDisk *pd = &g_array_index(disks, PlanDisk, i);
        if (pd->p->mode == SAVESTATE_DISK_INTERNAL && pd != vmd) {
            txn_add_snapshot_internal_vm(t, pd->d.name, &sn);
        }
        if (pd->p->mode == SAVESTATE_DISK_EXTERNAL) {
            txn_add_snapshot_sync(t, pd->d.name, NULL, pd->p->file, NULL,
                                  "qcow2", false);
        }
    }
    if (s->plan->memory == SAVESTATE_MEMORY_INTERNAL) {
        txn_add(t, &pause_driver, s);
    } else if (s->plan->memory == SAVESTATE_MEMORY_EXTERNAL) {
        txn_add(t, &memfile_driver, s);
    }
    return t;
}

static SaveCtx *save_ctx_new(const SavestateHost *h, const SavestateArgs *a,
                             const SavestatePlan *plan)
{
    SaveCtx *s = g_new0(SaveCtx, 1);
    s->h = h;
    s->args = a;
    s->plan = plan;
    s->mem_fd = -1;
    s->n_regions = h->ops->ram_regions(h->opaque, s->regions);
    g_assert(s->n_regions <= SAVESTATE_RAM_MAX);
    s->ram_size = ram_total(h);
    s->stage = g_byte_array_sized_new(SAVE_STAGE_BYTES + 65536);
    g_mutex_init(&s->qlock);
    g_cond_init(&s->qcond);
    g_queue_init(&s->queue);
    return s;
}

/* Before the transaction: the stream's header, the memory file. */
static bool save_begin(SaveCtx *s, GError **errp)
{
    if (s->plan->memory == SAVESTATE_MEMORY_NONE) {
        return true;
    }
    if (s->plan->memory == SAVESTATE_MEMORY_EXTERNAL) {
        s->mem_part = g_strconcat(s->plan->memory_file, ".part", NULL);
        s->mem_fd = open(s->mem_part, O_WRONLY | O_CREAT | O_TRUNC |
                         O_CLOEXEC, 0644);
        if (s->mem_fd < 0) {
            error_setg_errno(errp, errno, "Could not create '%s'",
                             s->plan->memory_file);
            g_clear_pointer(&s->mem_part, g_free);
            return false;
        }
    }
    s->w = xss_writer_new(save_write, s, NULL);
    return xss_writer_begin(s->w, s->h->ops->machine_type, s->ram_size,
                            errp);
}

static void save_record_stats(SaveCtx *s, const char *tag, int64_t t0)
{
    bool memory = s->plan->memory != SAVESTATE_MEMORY_NONE;
    const TxnStats *ts = txn_last_stats();
    save_stats = (SavestateSaveStats){
        .valid = true,
        .guest_pause_ns = memory ? s->resume_ns - s->park_ns
                                 : ts->drained_ns,
        .durable_ns = now_ns() - t0,
        .vm_state_size = s->pos,
        .raw_size = s->raw_bytes,
        .peak_cow_bytes = s->peak_cow_bytes,
        .frame = s->cap.frame,
    };
    g_strlcpy(save_stats.tag, tag, sizeof(save_stats.tag));
}

/* The checked plan, run: state_busy is held by the caller. */
static bool save_run(const SavestateHost *h, const char *tag,
                     const SavestatePlan *plan, GArray *disks, PlanDisk *vmd,
                     const SavestateArgs *a, GError **errp)
{
    int64_t t0 = now_ns();
    SaveCtx *s = save_ctx_new(h, a, plan);
    int ret = -EIO;
    if (save_begin(s, errp)) {
        ret = txn_run(snapshot_txn(s, tag, disks, vmd), errp);
    }
    if (ret == 0) {
        save_record_stats(s, tag, t0);
    }
    save_ctx_clear(s);
    g_free(s);
    return ret == 0;
}

bool savestate_snapshot(const SavestateHost *h, const char *tag,
                        const SavestatePlan *plan, const SavestateArgs *args,
                        GError **errp)
{
    const SavestateArgs *a = args ? args : &no_args;
    if (state_busy) {
        error_setg(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    state_busy = true;
    PlanDisk *vmd = NULL;
    g_autoptr(GArray) disks = snapshot_checks(h, tag, plan, &vmd, errp);
    bool ok = disks && save_run(h, tag, plan, disks, vmd, a, errp);
    state_busy = false;
    return ok;
}

bool savestate_save(const SavestateHost *h, const char *tag,
                    const SavestateArgs *args, GError **errp)
{
    const SavestateArgs *a = args ? args : &no_args;
    GArray *disks;
    const SavestateDisk *vmd;
    if (state_busy) {
        error_setg(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    /* Busy before anything can yield: a second job must see it. */
    state_busy = true;
    if (!save_checks(h, tag, a, &disks, &vmd, errp)) {
        state_busy = false;
        return false;
    }
    /* The save state is the plan "memory and every disk internal". */
    g_autofree SavestateDiskPlan *dp = g_new0(SavestateDiskPlan, disks->len);
    GArray *pds = g_array_new(FALSE, TRUE, sizeof(PlanDisk));
    PlanDisk *pvmd = NULL;
    for (guint i = 0; i < disks->len; i++) {
        SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
        dp[i] = (SavestateDiskPlan){ d->name, SAVESTATE_DISK_INTERNAL };
        PlanDisk pd = { .d = *d, .p = &dp[i] };
        g_array_append_val(pds, pd);
    }
    for (guint i = 0; i < pds->len; i++) {
        PlanDisk *pd = &g_array_index(pds, PlanDisk, i);
        if (pd->d.bs == vmd->bs) {
            pvmd = pd;
        }
    }
    SavestatePlan plan = {
        .memory = SAVESTATE_MEMORY_INTERNAL, .disks = dp,
        .n_disks = disks->len,
    };
    bool ok = save_run(h, tag, &plan, pds, pvmd, a, errp);
    g_array_unref(pds);
    g_array_unref(disks);
    state_busy = false;
    return ok;
}

/* ---- load ---- */

typedef struct LoadCtx {
    const SavestateHost *h;
    uint64_t ram_size;
    const char *tag;
    const SavestateArgs *args;
    GError **errp;
    bool ok;
    int64_t t0;
    uint8_t *buf;               /* the whole VM state */
    uint64_t size;
    XssReader *r;
    RamRestore *rr;             /* guest RAM as saved, ready to move in */
    GError *worker_err;
} LoadCtx;

/* Pool thread: everything that can refuse the stream by itself, and the
 * RAM decoded into a mapping of its own while the guest runs. */
static int load_prepare_worker(void *opaque)
{
    LoadCtx *l = opaque;
    /* Keep the RAM on huge pages after the move, if the host wants. */
    RamRestoreOptions opts = { .huge_pages = l->h->ops->ram_huge_pages };
    l->r = xss_reader_open_buffer(l->buf, l->size, &l->worker_err);
    if (!l->r ||
        !xss_reader_check_machine(l->r, l->h->ops->machine_type,
                                  l->ram_size, &l->worker_err) ||
        !(l->rr = ram_restore_prepare(l->r, l->ram_size, &opts,
                                      &l->worker_err))) {
        return -EINVAL;
    }
    return 0;
}

/* Pool thread: the guest's RAM before the load, unmapped off the loop. */
static int load_free_worker(void *opaque)
{
    LoadCtx *l = opaque;
    g_clear_pointer(&l->rr, ram_restore_free);
    return 0;
}

/* The disk with the VM state, after checking that every disk has tag. */
static const SavestateDisk *load_vmstate_disk(LoadCtx *l, GArray *disks,
                                         GError **errp)
{
    const SavestateArgs *a = l->args;
    const SavestateDisk *vmd = a->vmstate ? find_disk(disks, a->vmstate) : NULL;
    if (a->vmstate && !vmd) {
        error_setg(errp, "vmstate block device '%s' does not exist",
                   a->vmstate);
        return NULL;
    }
    for (guint i = 0; i < disks->len; i++) {
        SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
        BdrvSnapshotInfo info = { 0 };
        if (!bdrv_snapshot_find(d->bs, l->tag, &info)) {
            error_setg(errp, "Snapshot '%s' does not exist in one or more "
                       "devices", l->tag);
            return NULL;
        }
        if (a->vmstate ? d == vmd : !vmd && info.vm_state_size) {
            vmd = d;
            l->size = info.vm_state_size;
        }
        bdrv_snapshot_info_clear(&info);
    }
    if (!disks->len) {
        error_setg(errp, "The machine has no writable disk: no save state "
                   "'%s'", l->tag);
        return NULL;
    }
    if (!vmd || !l->size) {
        error_setg(errp, "Snapshot '%s' is a disk-only snapshot: revert to "
                   "it offline using qemu-img", l->tag);
        return NULL;
    }
    if (l->size > G_MAXSIZE / 2) {
        error_setg(errp, "Snapshot '%s': VM state of %" G_GUINT64_FORMAT
                   " bytes is too large", l->tag, l->size);
        return NULL;
    }
    return vmd;
}

/* The pause: devices checked by the host, disks reverted, the state
 * loaded. */
static bool coroutine_fn load_pause(LoadCtx *l, GArray *disks,
                                    int64_t *park_ns, int64_t *resume_ns,
                                    GError **errp)
{
    const SavestateHost *h = l->h;
    if (!host_pause(h, park_ns, errp)) {
        return false;
    }
    bool ok = h->ops->load_check(h->opaque, l->r, errp);
    if (!ok) {
        error_prepend(errp, "Snapshot '%s': ", l->tag);
    }
    for (guint i = 0; i < disks->len && ok; i++) {
        SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
        if (bdrv_snapshot_apply(d->bs, l->tag, errp) < 0) {
            error_prepend(errp, "Snapshot '%s' on '%s' (the disks before "
                          "it are reverted, the machine is not): ", l->tag,
                          d->name);
            ok = false;
        }
    }
    ok = ok && h->ops->load(h->opaque, l->r, l->rr, errp);
    *resume_ns = now_ns();      /* see save_resume */
    h->ops->resume(h->opaque);
    return ok;
}

static void coroutine_fn load_co(void *opaque)
{
    LoadCtx *l = opaque;
    GError **errp = l->errp;
    g_autoptr(GArray) disks = state_disks(l->h, l->args, errp);
    const SavestateDisk *vmd = disks ? load_vmstate_disk(l, disks, errp) : NULL;
    if (!vmd) {
        return;
    }
    /* Read and check everything while the guest runs. */
    l->buf = g_try_malloc(l->size);
    if (!l->buf) {
        error_setg(errp, "no memory for a VM state of %" G_GUINT64_FORMAT
                   " bytes", l->size);
        return;
    }
    args_progress(l->args, 0, l->size * 2);
    if (bdrv_snapshot_load_vmstate(vmd->bs, l->tag, l->buf, 0, l->size,
                                   errp) < 0) {
        error_prepend(errp, "Snapshot '%s' on '%s': ", l->tag, vmd->name);
        return;
    }
    args_progress(l->args, l->size, l->size * 2);
    if (worker_pool_run(load_prepare_worker, l) < 0) {
        g_propagate_prefixed_error(errp, g_steal_pointer(&l->worker_err),
                                   "Snapshot '%s': ", l->tag);
        return;
    }
    if (args_cancelled(l->args)) {
        error_setg(errp, "the load was cancelled");
        return;
    }
    XssMetadata md = { 0 };
    uint64_t frame = xss_reader_metadata(l->r, &md, NULL) ? md.frame : 0;
    xss_metadata_clear(&md);
    int64_t park_ns = 0, resume_ns = 0;
    bool ok = load_pause(l, disks, &park_ns, &resume_ns, errp);
    worker_pool_run(load_free_worker, l);
    /* The reverted active layer maps the VM state again: drop it. */
    GError *local = NULL;
    if (resume_ns && bdrv_discard_vmstate(vmd->bs, &local) < 0) {
        g_clear_error(&local);
    }
    if (!ok) {
        return;
    }
    args_progress(l->args, l->size * 2, l->size * 2);
    load_stats = (SavestateLoadStats){
        .valid = true,
        .guest_pause_ns = resume_ns - park_ns,
        .total_ns = now_ns() - l->t0,
        .frame = frame,
    };
    g_strlcpy(load_stats.tag, l->tag, sizeof(load_stats.tag));
    l->ok = true;
}

bool savestate_load(const SavestateHost *h, const char *tag,
                    const SavestateArgs *args, GError **errp)
{
    if (state_busy) {
        error_setg(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    LoadCtx l = {
        .h = h, .ram_size = ram_total(h), .tag = tag, .args = args ? args : &no_args, .errp = errp,
        .t0 = now_ns(),
    };
    state_busy = true;
    co_run_sync(load_co, &l);
    state_busy = false;
    if (l.rr) {
        ram_restore_free(l.rr);
    }
    if (l.r) {
        xss_reader_free(l.r);
    }
    g_clear_error(&l.worker_err);
    g_free(l.buf);
    return l.ok;
}

/* ---- revert to a snapshot of any shape ---- */

typedef struct RevertCtx {
    LoadCtx l;                  /* the stream, when there is memory */
    const SavestatePlan *plan;
    GArray *disks;              /* of PlanDisk */
    PlanDisk *vmd;              /* memory INTERNAL: its holder */
    BlockDriverState *vm_bs;    /* the node whose snapshot has it */
} RevertCtx;

static bool revert_check_disk(PlanDisk *pd, const char *tag, GError **errp)
{
    const SavestateDiskPlan *p = pd->p;
    if (p->mode == SAVESTATE_DISK_INTERNAL && !tag_on_disk(&pd->d, tag)) {
        error_setg(errp, "Snapshot '%s' does not exist on the active layer "
                   "of '%s'", tag, pd->d.name);
        return false;
    }
    if (p->mode != SAVESTATE_DISK_EXTERNAL) {
        return true;
    }
    if (!pd->d.blk) {
        error_setg(errp, "'%s' cannot change its image", pd->d.name);
        return false;
    }
    if (!p->file || access(p->file, R_OK) < 0) {
        error_setg(errp, "the image '%s' of snapshot '%s' on '%s' is "
                   "missing", p->file ? p->file : "", tag, pd->d.name);
        return false;
    }
    return file_absent(p->overlay, errp);
}

static bool revert_checks(RevertCtx *rc, GError **errp)
{
    const SavestatePlan *plan = rc->plan;
    rc->disks = plan_disks(rc->l.h, plan, errp);
    if (!rc->disks) {
        return false;
    }
    for (guint i = 0; i < rc->disks->len; i++) {
        if (!revert_check_disk(&g_array_index(rc->disks, PlanDisk, i),
                               rc->l.tag, errp)) {
            return false;
        }
    }
    if (plan->memory == SAVESTATE_MEMORY_INTERNAL) {
        rc->vmd = plan_vmstate_disk(rc->disks, plan);
        if (!rc->vmd) {
            error_setg(errp, "Snapshot '%s': no disk holds its memory",
                       rc->l.tag);
            return false;
        }
    }
    if (plan->memory == SAVESTATE_MEMORY_EXTERNAL &&
        access(plan->memory_file ? plan->memory_file : "", R_OK) < 0) {
        error_setg_errno(errp, errno, "Snapshot '%s': memory file '%s'",
                         rc->l.tag, plan->memory_file ? plan->memory_file
                                                      : "");
        return false;
    }
    return true;
}

static void revert_drop_overlay(PlanDisk *pd)
{
    g_clear_pointer(&pd->new_top, bdrv_unref);
    if (pd->created) {
        unlink(pd->p->overlay);
        pd->created = false;
    }
}

/* A new qcow2 overlay over the snapshot's image, durable and open with
 * the flags of the disk's present top. */
static bool coroutine_fn revert_open_overlay(PlanDisk *pd, GError **errp)
{
    const char *fmt = bdrv_probe_format(pd->p->file, errp);
    if (!fmt) {
        return false;
    }
    g_autoptr(BlockOpts) o = bopts_new();
    g_autofree char *size = g_strdup_printf("%" G_GINT64_FORMAT,
                                            bdrv_getlength(pd->d.bs));
    bopts_set(o, "size", size);
    bopts_set(o, "backing_file", pd->p->file);
    bopts_set(o, "backing_fmt", fmt);
    if (bdrv_create("qcow2", pd->p->overlay, o, errp) < 0) {
        return false;
    }
    pd->created = true;
    int flags = BDRV_O_RDWR | (bdrv_get_flags(pd->d.bs) &
                               (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                                BDRV_O_UNMAP));
    BlockOpts *oo = bopts_new();
    bopts_set(oo, "driver", "qcow2");
    bopts_set(oo, "file.driver", "file");
    bopts_set(oo, "file.filename", pd->p->overlay);
    pd->new_top = bdrv_open(NULL, oo, flags, errp);
    FileRename fr = { pd->p->overlay, pd->p->overlay };
    if (!pd->new_top || bdrv_co_flush(pd->new_top) < 0 ||
        worker_pool_run(file_rename_worker, &fr) < 0) {
        if (pd->new_top) {
            error_setg(errp, "Could not sync '%s'", pd->p->overlay);
        }
        revert_drop_overlay(pd);
        return false;
    }
    return true;
}

typedef struct FileRead {
    const char *path;
    gchar *buf;
    gsize len;
    GError *err;
} FileRead;

static int file_read_worker(void *opaque)
{
    FileRead *fr = opaque;
    return g_file_get_contents(fr->path, &fr->buf, &fr->len, &fr->err) ?
           0 : -EIO;
}

/* The stream as saved, into l->buf, while the guest runs. */
static bool coroutine_fn revert_read_stream(RevertCtx *rc, GError **errp)
{
    LoadCtx *l = &rc->l;
    if (rc->plan->memory == SAVESTATE_MEMORY_EXTERNAL) {
        FileRead fr = { .path = rc->plan->memory_file };
        if (worker_pool_run(file_read_worker, &fr) < 0) {
            g_propagate_prefixed_error(errp, fr.err, "Snapshot '%s': ",
                                       l->tag);
            return false;
        }
        l->buf = (uint8_t *)fr.buf;
        l->size = fr.len;
        return true;
    }
    rc->vm_bs = rc->vmd->p->mode == SAVESTATE_DISK_EXTERNAL ?
                bdrv_backing_bs(rc->vmd->new_top) : rc->vmd->d.bs;
    BdrvSnapshotInfo info = { 0 };
    bool found = rc->vm_bs && bdrv_snapshot_find(rc->vm_bs, l->tag, &info);
    l->size = info.vm_state_size;
    bdrv_snapshot_info_clear(&info);
    if (!found || !l->size || l->size > G_MAXSIZE / 2 ||
        !(l->buf = g_try_malloc(l->size))) {
        error_setg(errp, "Snapshot '%s' has no VM state on '%s'", l->tag,
                   rc->vmd->d.name);
        return false;
    }
    if (bdrv_snapshot_load_vmstate(rc->vm_bs, l->tag, l->buf, 0, l->size,
                                   errp) < 0) {
        error_prepend(errp, "Snapshot '%s' on '%s': ", l->tag,
                      rc->vmd->d.name);
        return false;
    }
    return true;
}

/* Paused: every disk to the snapshot, then RAM and devices. */
static bool revert_disks_paused(RevertCtx *rc, GError **errp)
{
    for (guint i = 0; i < rc->disks->len; i++) {
        PlanDisk *pd = &g_array_index(rc->disks, PlanDisk, i);
        if (pd->p->mode == SAVESTATE_DISK_INTERNAL &&
            bdrv_snapshot_apply(pd->d.bs, rc->l.tag, errp) < 0) {
            error_prepend(errp, "Snapshot '%s' on '%s' (the disks before "
                          "it are reverted, the machine is not): ",
                          rc->l.tag, pd->d.name);
            return false;
        }
        if (pd->p->mode == SAVESTATE_DISK_EXTERNAL) {
            blk_replace_root(pd->d.blk, pd->new_top);
            g_clear_pointer(&pd->new_top, bdrv_unref);
            pd->created = false;        /* the disk's image now */
        }
    }
    return true;
}

static bool coroutine_fn revert_pause(RevertCtx *rc, int64_t *park_ns,
                                      int64_t *resume_ns, GError **errp)
{
    const SavestateHost *h = rc->l.h;
    bool memory = rc->plan->memory != SAVESTATE_MEMORY_NONE;
    if (!host_pause(h, park_ns, errp)) {
        return false;
    }
    bool ok = !memory || h->ops->load_check(h->opaque, rc->l.r, errp);
    if (!ok) {
        error_prepend(errp, "Snapshot '%s': ", rc->l.tag);
    }
    ok = ok && revert_disks_paused(rc, errp);
    ok = ok && (!memory || h->ops->load(h->opaque, rc->l.r, rc->l.rr, errp));
    *resume_ns = now_ns();
    h->ops->resume(h->opaque);
    return ok;
}

static bool coroutine_fn revert_prepare(RevertCtx *rc, GError **errp)
{
    LoadCtx *l = &rc->l;
    if (!revert_checks(rc, errp)) {
        return false;
    }
    for (guint i = 0; i < rc->disks->len; i++) {
        PlanDisk *pd = &g_array_index(rc->disks, PlanDisk, i);
        if (pd->p->mode == SAVESTATE_DISK_EXTERNAL &&
            !revert_open_overlay(pd, errp)) {
            return false;
        }
    }
    if (rc->plan->memory == SAVESTATE_MEMORY_NONE) {
        return true;
    }
    args_progress(l->args, 0, 2);
    if (!revert_read_stream(rc, errp)) {
        return false;
    }
    args_progress(l->args, 1, 2);
    if (worker_pool_run(load_prepare_worker, l) < 0) {
        g_propagate_prefixed_error(errp, g_steal_pointer(&l->worker_err),
                                   "Snapshot '%s': ", l->tag);
        return false;
    }
    return true;
}

static void coroutine_fn revert_co(void *opaque)
{
    RevertCtx *rc = opaque;
    LoadCtx *l = &rc->l;
    int64_t park_ns = 0, resume_ns = 0;
    bool ok = revert_prepare(rc, l->errp);
    if (ok && args_cancelled(l->args)) {
        error_setg(l->errp, "the revert was cancelled");
        ok = false;
    }
    uint64_t frame = 0;
    if (ok && l->r) {
        XssMetadata md = { 0 };
        frame = xss_reader_metadata(l->r, &md, NULL) ? md.frame : 0;
        xss_metadata_clear(&md);
    }
    ok = ok && revert_pause(rc, &park_ns, &resume_ns, l->errp);
    if (l->rr) {
        worker_pool_run(load_free_worker, l);
    }
    GError *local = NULL;
    if (resume_ns && rc->vmd && rc->vm_bs == rc->vmd->d.bs &&
        bdrv_discard_vmstate(rc->vm_bs, &local) < 0) {
        g_clear_error(&local);
    }
    for (guint i = 0; rc->disks && i < rc->disks->len; i++) {
        revert_drop_overlay(&g_array_index(rc->disks, PlanDisk, i));
    }
    if (ok) {
        load_stats = (SavestateLoadStats){
            .valid = true, .guest_pause_ns = resume_ns - park_ns,
            .total_ns = now_ns() - l->t0, .frame = frame,
        };
        g_strlcpy(load_stats.tag, l->tag, sizeof(load_stats.tag));
    }
    l->ok = ok;
}

bool savestate_revert(const SavestateHost *h, const char *tag,
                      const SavestatePlan *plan, const SavestateArgs *args,
                      GError **errp)
{
    if (state_busy) {
        error_setg(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    RevertCtx rc = {
        .l = { .h = h, .ram_size = ram_total(h), .tag = tag,
               .args = args ? args : &no_args, .errp = errp,
               .t0 = now_ns() },
        .plan = plan,
    };
    state_busy = true;
    co_run_sync(revert_co, &rc);
    state_busy = false;
    if (rc.l.rr) {
        ram_restore_free(rc.l.rr);
    }
    if (rc.l.r) {
        xss_reader_free(rc.l.r);
    }
    g_clear_error(&rc.l.worker_err);
    g_free(rc.l.buf);
    if (rc.disks) {
        g_array_unref(rc.disks);
    }
    return rc.l.ok;
}

/* ---- delete ---- */

bool savestate_delete(const SavestateHost *h, const char *tag,
                      const SavestateArgs *args, GError **errp)
{
    const SavestateArgs *a = args ? args : &no_args;
    if (state_busy) {
        error_setg(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    g_autoptr(GArray) all = writable_disks(h);
    g_autoptr(GArray) disks = g_array_new(FALSE, TRUE, sizeof(SavestateDisk));
    for (guint i = 0; !a->devices && i < all->len; i++) {
        g_array_append_val(disks, g_array_index(all, SavestateDisk, i));
    }
    for (char **n = a->devices; n && *n; n++) {
        SavestateDisk *d = find_disk(all, *n);
        if (!d) {
            bad_device(*n, errp);
            return false;
        }
        g_array_append_val(disks, *d);
    }
    if (a->devices && !a->devices[0]) {
        error_setg(errp, "At least one device is required for snapshot");
        return false;
    }
    state_busy = true;          /* before the first yield */
    bool ok = delete_tag(disks, tag, errp);
    state_busy = false;
    return ok;
}

/* ---- unfinished states ---- */

typedef struct TagSeen {
    unsigned disks;             /* writable disks that have it */
    bool vm_state;              /* one copy has a VM state */
    bool machine_clock;         /* one copy records a machine clock */
    uint64_t clock;             /* that machine clock (the first seen) */
} TagSeen;

/* Every tag of every writable disk, with where and how it appears. */
static GHashTable *tags_seen(GArray *disks)
{
    GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          g_free);
    for (guint i = 0; i < disks->len; i++) {
        BdrvSnapshotInfo *list = NULL;
        int n = bdrv_snapshot_list(g_array_index(disks, SavestateDisk, i).bs,
                                   &list);
        for (int j = 0; j < n; j++) {
            TagSeen *t = g_hash_table_lookup(h, list[j].name);
            if (!t) {
                t = g_new0(TagSeen, 1);
                g_hash_table_insert(h, g_strdup(list[j].name), t);
            }
            t->disks++;
            t->vm_state |= list[j].vm_state_size > 0;
            if (!t->machine_clock && list[j].vm_clock_nsec > 0) {
                t->machine_clock = true;
                t->clock = list[j].vm_clock_nsec;
            }
        }
        if (n > 0) {
            bdrv_snapshot_list_free(list, n);
        }
    }
    return h;
}

/*
 * Does a backing file of a writable disk (any node below its active
 * layer) hold tag with a VM state taken at machine clock clock?  A save
 * state stays whole when one disk moved on to an external overlay (a
 * domain snapshot with mixed disks, blockdev-snapshot-sync, a commit of
 * one disk): its VM state is then below that disk's active layer, and
 * the other disks' copies (same tag, same machine clock, no VM state)
 * belong to it - they are no unfinished save.
 */
static bool vmstate_below(GArray *disks, const char *tag, uint64_t clock)
{
    bool found = false;
    for (guint i = 0; i < disks->len && !found; i++) {
        BlockDriverState *top = g_array_index(disks, SavestateDisk, i).bs;
        for (BlockDriverState *b = bdrv_backing_bs(top); b && !found;
             b = bdrv_backing_bs(b)) {
            BdrvSnapshotInfo *list = NULL;
            int n = bdrv_snapshot_list(b, &list);
            for (int j = 0; j < n && !found; j++) {
                found = !g_strcmp0(list[j].name, tag) &&
                        list[j].vm_state_size > 0 &&
                        list[j].vm_clock_nsec == clock;
            }
            if (n > 0) {
                bdrv_snapshot_list_free(list, n);
            }
        }
    }
    return found;
}

int savestate_cleanup(const SavestateHost *h, GString *report,
                      GError **errp)
{
    g_autoptr(GArray) disks = writable_disks(h);
    g_autoptr(GHashTable) seen = tags_seen(disks);
    GHashTableIter it;
    gpointer key, value;
    int removed = 0;
    g_hash_table_iter_init(&it, seen);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        const TagSeen *t = value;
        /* A save lists its tag on the VM state's disk last: missing there
         * (on no disk with a VM state) while the other disks have it with
         * the machine's clock, it is a save that never finished - unless
         * its VM state is in a disk's backing file (vmstate_below: that
         * disk moved on to an overlay after the save).  Disk-only
         * snapshots record no machine clock and stay. */
        if (t->disks == disks->len || t->vm_state || !t->machine_clock ||
            vmstate_below(disks, key, t->clock)) {
            continue;
        }
        for (guint i = 0; i < disks->len; i++) {
            SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
            if (!tag_on_disk(d, key)) {
                continue;
            }
            if (bdrv_snapshot_delete(d->bs, NULL, key, errp) < 0) {
                error_prepend(errp, "removing the unfinished save state "
                              "'%s' from '%s': ", (char *)key, d->name);
                return -1;
            }
            g_string_append_printf(report, "removed the unfinished save "
                                   "state '%s' from '%s'\n", (char *)key,
                                   d->name);
        }
        removed++;
    }
    return removed;
}

/* ---- metadata ---- */

typedef struct MetaRead {
    BlockDriverState *bs;
    const char *tag;
} MetaRead;

/* XssReadFn over a snapshot's VM state: the reader fetches the record
 * headers and the one payload it needs, not the RAM. */
static bool meta_read(void *opaque, uint64_t offset, void *buf, size_t len,
                      GError **errp)
{
    MetaRead *mr = opaque;
    return bdrv_snapshot_load_vmstate(mr->bs, mr->tag, buf, offset, len,
                                      errp) >= 0;
}

bool savestate_metadata(const SavestateHost *h, const char *tag,
                        XssMetadata *out, GError **errp)
{
    g_autoptr(GArray) disks = writable_disks(h);
    for (guint i = 0; i < disks->len; i++) {
        SavestateDisk *d = &g_array_index(disks, SavestateDisk, i);
        BdrvSnapshotInfo info = { 0 };
        if (!bdrv_snapshot_find(d->bs, tag, &info)) {
            continue;
        }
        uint64_t size = info.vm_state_size;
        bdrv_snapshot_info_clear(&info);
        if (!size) {
            continue;
        }
        MetaRead mr = { d->bs, tag };
        XssReader *r = xss_reader_open(meta_read, &mr, size, errp);
        bool ok = r && xss_reader_metadata(r, out, errp);
        if (r) {
            xss_reader_free(r);
        }
        return ok;
    }
    error_setg(errp, "Snapshot '%s' has no VM state on any disk", tag);
    return false;
}
