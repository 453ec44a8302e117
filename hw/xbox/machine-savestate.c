/*
 * machine-savestate.c - save, load and delete of whole-machine save
 * states (see machine-savestate.h).  Owns the coordination only: the
 * stream is migration/savestream.c's, the copy-on-write RAM capture
 * migration/ram-snapshot.c's, the snapshots the transaction core's
 * (block/transaction.c, block/txn-snapshot.c), quiescing the machine's.
 *
 * Save, as one transaction over every writable disk:
 *   before the pause  stream header; every action's prepare (the late
 *                     internal snapshot on the VM state disk, plain
 *                     internal snapshots on the others: metadata loads,
 *                     L1 growth, allocation), the guest running;
 *   pause             the last action's prepare ("x-machine-pause")
 *                     quiesces the vCPU (no disk request outstanding),
 *                     serializes the devices into memory on the vCPU
 *                     thread and write-protects RAM; then the drained
 *                     section commits every snapshot in memory and that
 *                     action's commit, the last one, lets the vCPU run;
 *   after the pause   the late action's finish streams the metadata, the
 *                     RAM pages as of the pause (copy on write) and the
 *                     end marker into the pending snapshot, sets its
 *                     vm_state_size; the transaction makes every snapshot
 *                     durable, then lists it (rules 2 and 3).
 * Invariants: the guest pause holds no I/O wait that grows with disk or
 * RAM size (only the in-memory commit, the device encoding and one
 * mprotect); the RAM snapshot is always ended, whatever fails; a failed
 * save leaves no snapshot on any disk.
 *
 * Load: every check that can refuse runs before a disk or a byte of the
 * machine changes (tag on every writable disk, the stream read from the
 * snapshot and verified, machine type and RAM size, then - quiesced - the
 * device sections decoded against the machine); then the disks revert
 * and the stream loads (RAM, devices, CPU last).  Eager: RAM is copied
 * in before the guest resumes.
 *
 * Callers: tests, later the monitor and the UI.  Main loop only.
 */
#include "hw/xbox/machine-savestate.h"
#include "block/snapshot.h"
#include "block/txn-snapshot.h"
#include "block/vmstate.h"
#include "hw/xbox/machine-media.h"
#include "hw/xbox/machine-vmstate.h"
#include "util/coroutine.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <string.h>

/* Stream bytes gathered before one write into the snapshot. */
#define SAVE_STAGE_BYTES    (1u << 20)
/* How long the pause may wait for the guest's disk requests. */
#define SAVE_QUIESCE_US     (10 * G_USEC_PER_SEC)

static MachineSaveStats save_stats;
static MachineLoadStats load_stats;

const MachineSaveStats *machine_last_save_stats(void)
{
    return &save_stats;
}

const MachineLoadStats *machine_last_load_stats(void)
{
    return &load_stats;
}

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

/* ---- the disks ---- */

typedef struct SaveDisk {
    const char *name;           /* the backend's name */
    BlockDriverState *bs;
} SaveDisk;

/* Every drive with a writable medium, in index order. */
static GArray *writable_disks(XboxMachine *m)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(SaveDisk));
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        if (!machine_drive_info(m, i, &info)) {
            continue;
        }
        BlockDriverState *bs = blk_bs(info.blk);
        if (bs && !bdrv_is_read_only(bs)) {
            SaveDisk d = { info.name, bs };
            g_array_append_val(a, d);
        }
    }
    return a;
}

/* ---- save ---- */

typedef struct SaveCtx {
    XboxMachine *m;
    XssWriter *w;
    GByteArray *stage;          /* stream bytes not written yet */
    int64_t pos;                /* stream offset of stage[0] */
    TxnSnapshotVmstate *vs;     /* during the write-out */
    RamSnapshot *ram;
    RamSnapshotStats ram_stats;
    bool quiesced;              /* we hold the vCPU parked */
    int64_t park_ns, resume_ns;
    uint64_t frame;
    int64_t clock_ns;
} SaveCtx;

static const uint8_t zero_page[XSS_PAGE_SIZE];

static bool coroutine_fn save_flush(SaveCtx *s, GError **errp)
{
    if (!s->stage->len) {
        return true;
    }
    if (txn_snapshot_write_vmstate(s->vs, s->stage->data, s->pos,
                                   s->stage->len, errp) < 0) {
        return false;
    }
    s->pos += s->stage->len;
    g_byte_array_set_size(s->stage, 0);
    return true;
}

/* XssWriteFn: into memory until the write-out, then through to the
 * snapshot in pieces of SAVE_STAGE_BYTES. */
static bool save_write(void *opaque, const void *buf, size_t len,
                       GError **errp)
{
    SaveCtx *s = opaque;
    g_byte_array_append(s->stage, buf, len);
    if (s->vs && s->stage->len >= SAVE_STAGE_BYTES) {
        return save_flush(s, errp);
    }
    return true;
}

/* XssPageNextFn over the RAM snapshot. */
static int save_next_page(void *opaque, uint64_t *page_index,
                          const void **data, GError **errp)
{
    SaveCtx *s = opaque;
    RamSnapshotPage pg;
    if (!ram_snapshot_next(s->ram, &pg)) {
        return 0;
    }
    *page_index = pg.offset / XSS_PAGE_SIZE;
    *data = pg.zero ? zero_page : pg.data;
    return 1;
}

static void save_end_ram(SaveCtx *s)
{
    if (s->ram) {
        ram_snapshot_end(s->ram, &s->ram_stats);
        s->ram = NULL;
    }
}

/* The late VM state write-out (the late action's finish; guest running). */
static int coroutine_fn save_write_out(TxnSnapshotVmstate *vs, void *opaque,
                                       GError **errp)
{
    SaveCtx *s = opaque;
    XssMetadata md = {
        .frame = s->frame, .thumb_width = 320, .thumb_height = 240,
    };
    s->vs = vs;
    bool ok = xss_writer_metadata(s->w, &md, errp) &&
              xss_writer_ram(s->w, save_next_page, s, errp) &&
              xss_writer_finish(s->w, errp) &&
              save_flush(s, errp);
    save_end_ram(s);
    s->vs = NULL;
    if (!ok) {
        return -EIO;
    }
    txn_snapshot_set_vm_state_size(vs, s->pos);
    return 0;
}

/* The pause, as the transaction's last action. */
static void save_resume(SaveCtx *s)
{
    if (s->quiesced) {
        machine_quiesce_end(s->m);
        s->resume_ns = now_ns();
        s->quiesced = false;
    }
}

static int coroutine_fn pause_prepare(void *opaque, Transaction *t,
                                      GError **errp)
{
    SaveCtx *s = opaque;
    gint64 deadline = g_get_monotonic_time() + SAVE_QUIESCE_US;
    machine_quiesce_request(s->m);
    for (;;) {
        int r = machine_quiesce_poll(s->m, errp);
        if (r < 0) {
            machine_quiesce_end(s->m);
            return -EBUSY;
        }
        if (r > 0) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            machine_quiesce_cancel(s->m);
            error_setg(errp, "the guest's disk requests did not complete "
                       "in %d s", (int)(SAVE_QUIESCE_US / G_USEC_PER_SEC));
            return -ETIMEDOUT;
        }
        co_yield_to_loop();
    }
    s->quiesced = true;
    s->park_ns = machine_quiesce_park_ns(s->m);
    if (!machine_capture_devices(s->m, s->w, &s->frame, &s->clock_ns,
                                 errp) ||
        !(s->ram = machine_ram_snapshot_begin(s->m, errp))) {
        save_resume(s);
        return -EIO;
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

static bool tag_exists(GArray *disks, const char *tag, GError **errp)
{
    for (guint i = 0; i < disks->len; i++) {
        SaveDisk *d = &g_array_index(disks, SaveDisk, i);
        BdrvSnapshotInfo info = { 0 };
        if (bdrv_snapshot_find(d->bs, tag, &info)) {
            bdrv_snapshot_info_clear(&info);
            error_setg(errp, "Snapshot '%s' already exists on device '%s'",
                       tag, d->name);
            return true;
        }
    }
    return false;
}

bool machine_save_state(XboxMachine *m, const char *tag,
                        const char *vmstate_dev, GError **errp)
{
    int64_t t0 = now_ns();
    g_autoptr(GArray) disks = writable_disks(m);
    const SaveDisk *vmd = NULL;
    if (!tag || !*tag) {
        error_setg(errp, "a save state needs a tag");
        return false;
    }
    for (guint i = 0; i < disks->len; i++) {
        SaveDisk *d = &g_array_index(disks, SaveDisk, i);
        if (!bdrv_can_snapshot(d->bs)) {
            error_setg(errp, "Device '%s' is writable but does not support "
                       "snapshots", d->name);
            return false;
        }
        if (!vmd && (vmstate_dev ? !strcmp(vmstate_dev, d->name)
                                 : bdrv_can_save_vmstate(d->bs))) {
            vmd = d;
        }
    }
    if (!vmd) {
        error_setg(errp, vmstate_dev ? "Device '%s' is not a writable disk "
                   "of the machine" : "No writable disk can hold the VM "
                   "state", vmstate_dev);
        return false;
    }
    if (!bdrv_can_save_vmstate(vmd->bs)) {
        error_setg(errp, "Device '%s' cannot hold a VM state", vmd->name);
        return false;
    }
    if (tag_exists(disks, tag, errp)) {
        return false;
    }

    SaveCtx s = { .m = m, .stage = g_byte_array_new() };
    s.w = xss_writer_new(save_write, &s, NULL);
    if (!xss_writer_begin(s.w, MACHINE_VMSTATE_TYPE, machine_ram_size(m),
                          errp)) {
        xss_writer_free(s.w);
        g_byte_array_unref(s.stage);
        return false;
    }
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    BdrvSnapshotInfo sn = {
        .name = (char *)tag, .icount = BDRV_SNAPSHOT_NO_ICOUNT,
    };
    txn_add_snapshot_internal_late(t, vmd->name, &sn, save_write_out, &s);
    for (guint i = 0; i < disks->len; i++) {
        SaveDisk *d = &g_array_index(disks, SaveDisk, i);
        if (d != vmd) {
            txn_add_snapshot_internal_vm(t, d->name, &sn);
        }
    }
    txn_add(t, &pause_driver, &s);
    int ret = txn_run(t, errp);
    /* Whatever failed: the RAM is released, the guest runs. */
    save_end_ram(&s);
    save_resume(&s);
    xss_writer_free(s.w);
    g_byte_array_unref(s.stage);
    if (ret < 0) {
        return false;
    }
    save_stats = (MachineSaveStats){
        .valid = true,
        .guest_pause_ns = s.resume_ns - s.park_ns,
        .durable_ns = now_ns() - t0,
        .vm_state_size = s.pos,
        .frame = s.frame,
    };
    return true;
}

/* ---- load ---- */

bool machine_load_state(XboxMachine *m, const char *tag, GError **errp)
{
    int64_t t0 = now_ns();
    g_autoptr(GArray) disks = writable_disks(m);
    const SaveDisk *vmd = NULL;
    uint64_t size = 0;
    for (guint i = 0; i < disks->len; i++) {
        SaveDisk *d = &g_array_index(disks, SaveDisk, i);
        BdrvSnapshotInfo info = { 0 };
        if (!bdrv_snapshot_find(d->bs, tag, &info)) {
            error_setg(errp, "Snapshot '%s' does not exist on device '%s'",
                       tag, d->name);
            return false;
        }
        if (!vmd && info.vm_state_size) {
            vmd = d;
            size = info.vm_state_size;
        }
        bdrv_snapshot_info_clear(&info);
    }
    if (!vmd) {
        error_setg(errp, disks->len ? "Snapshot '%s' has no VM state"
                   : "The machine has no writable disk: no save state "
                   "'%s'", tag);
        return false;
    }
    if (size > G_MAXSIZE / 2) {
        error_setg(errp, "Snapshot '%s': VM state of %" G_GUINT64_FORMAT
                   " bytes is too large", tag, size);
        return false;
    }
    /* Read and check everything while the guest runs. */
    g_autofree uint8_t *buf = g_try_malloc(size);
    if (!buf) {
        error_setg(errp, "no memory for a VM state of %" G_GUINT64_FORMAT
                   " bytes", size);
        return false;
    }
    if (bdrv_snapshot_load_vmstate(vmd->bs, tag, buf, 0, size, errp) < 0) {
        error_prepend(errp, "Snapshot '%s' on '%s': ", tag, vmd->name);
        return false;
    }
    XssReader *r = xss_reader_open_buffer(buf, size, errp);
    if (!r) {
        error_prepend(errp, "Snapshot '%s': ", tag);
        return false;
    }
    XssMetadata md = { 0 };
    bool ok = xss_reader_check_machine(r, MACHINE_VMSTATE_TYPE,
                                       machine_ram_size(m), errp) &&
              xss_reader_verify(r, errp);
    if (ok && xss_reader_metadata(r, &md, NULL)) {
        load_stats.frame = md.frame;
    }
    xss_metadata_clear(&md);
    if (!ok) {
        error_prepend(errp, "Snapshot '%s': ", tag);
        xss_reader_free(r);
        return false;
    }

    /* The pause: the devices checked against the machine, then the
     * disks revert and the state loads. */
    if (!machine_quiesce(m, errp)) {
        xss_reader_free(r);
        return false;
    }
    int64_t park_ns = machine_quiesce_park_ns(m);
    if (!machine_check_stream(m, r, errp)) {
        error_prepend(errp, "Snapshot '%s': ", tag);
        machine_quiesce_end(m);
        xss_reader_free(r);
        return false;
    }
    for (guint i = 0; i < disks->len && ok; i++) {
        SaveDisk *d = &g_array_index(disks, SaveDisk, i);
        if (bdrv_snapshot_apply(d->bs, tag, errp) < 0) {
            error_prepend(errp, "Snapshot '%s' on '%s' (the disks before "
                          "it are reverted, the machine is not): ", tag,
                          d->name);
            ok = false;
        }
    }
    ok = ok && machine_load_stream(m, r, errp);
    xss_reader_free(r);
    machine_quiesce_end(m);
    int64_t resume_ns = now_ns();
    /* The reverted active layer maps the VM state again: drop it. */
    GError *local = NULL;
    if (bdrv_discard_vmstate(vmd->bs, &local) < 0) {
        g_clear_error(&local);
    }
    if (!ok) {
        return false;
    }
    load_stats.valid = true;
    load_stats.guest_pause_ns = resume_ns - park_ns;
    load_stats.total_ns = now_ns() - t0;
    return true;
}

/* ---- delete ---- */

bool machine_delete_state(XboxMachine *m, const char *tag, GError **errp)
{
    g_autoptr(GArray) disks = writable_disks(m);
    bool found = false;
    for (guint i = 0; i < disks->len; i++) {
        SaveDisk *d = &g_array_index(disks, SaveDisk, i);
        BdrvSnapshotInfo info = { 0 };
        if (!bdrv_snapshot_find(d->bs, tag, &info)) {
            continue;
        }
        bdrv_snapshot_info_clear(&info);
        found = true;
        if (bdrv_snapshot_delete(d->bs, NULL, tag, errp) < 0) {
            error_prepend(errp, "Snapshot '%s' on '%s': ", tag, d->name);
            return false;
        }
    }
    if (!found) {
        error_setg(errp, "Snapshot '%s' does not exist on any disk", tag);
        return false;
    }
    return true;
}
