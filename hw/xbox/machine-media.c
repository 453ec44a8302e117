/*
 * machine-media.c - the drives of the console machine as the monitor
 * sees them, and removable-media control; see machine-media.h.
 *
 * Owns: each drive's device path, the open flags of its last medium
 * ("root state"), its QEMU-style I/O status, and the queue of tray
 * movements on their way from the vCPU thread to DEVICE_TRAY_MOVED.
 *
 * Invariants:
 *   - The IDE controller holds a drive's backend exactly when the backend
 *     has a root: removal tells the controller first and then takes the
 *     root away; insertion gives the root first and then tells the
 *     controller.  So the controller never sees the root change.
 *   - Requests of an old medium: opening the tray aborts the ATAPI READ
 *     that could have one in flight (hw/ide/atapi.c), and the backend
 *     they name lives as long as the machine, so a request still in
 *     flight on it completes harmlessly (its result is dropped) whatever
 *     the backend's root is by then (ide_in_flight() needs no wait).
 *   - Tray movements are queued under `lock` in the order the IDE made
 *     them and emitted on the main loop in that order, once each: by the
 *     media function that caused them before it returns (so the event
 *     precedes the command's reply, as in QEMU), else by a bottom half.
 *
 * Callers: monitor/host/qmp-media.c, monitor/host/qmp-machine.c, monitor/host/hmp.c (main
 * loop); machine.c (creation, DevHost callbacks, cont).
 */
#include "hw/xbox/machine-media.h"
#include "hw/error.h"
#include <errno.h>
#include <string.h>

typedef struct MediaDrive {
    MachineDriveConfig *cfg;    /* the machine's: kind, blk, id */
    char *qdev;
    int open_flags;             /* main loop */
    MachineIoStatus io_status;  /* lock */
} MediaDrive;

typedef struct TrayMove {
    int index;
    bool open;
} TrayMove;

struct MachineMedia {
    XboxMachine *m;
    MediaDrive drives[MACHINE_IDE_DRIVES];
    GMutex lock;
    /* lock */
    GQueue moves;               /* TrayMove *, oldest first */
    bool bh_scheduled;
    unsigned bh_pending;        /* bottom halves not run yet */
};


MachineMedia *machine_media_new(XboxMachine *m, MachineDriveConfig *drives)
{
    MachineMedia *mm = g_new0(MachineMedia, 1);
    int next_unattached = MACHINE_FIRST_DRIVE_DEVICE;
    mm->m = m;
    g_mutex_init(&mm->lock);
    g_queue_init(&mm->moves);
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MediaDrive *md = &mm->drives[i];
        MachineDriveConfig *d = &drives[i];
        md->cfg = d;
        if (d->kind == IDE_DRIVE_NONE) {
            continue;
        }
        md->qdev = d->qdev ? g_strdup(d->qdev)
                           : g_strdup_printf("/machine/unattached/device[%d]",
                                             next_unattached++);
        md->open_flags = d->open_flags;
    }
    return mm;
}

static void flush_moves(MachineMedia *mm);

void machine_media_free(MachineMedia *mm)
{
    if (!mm) {
        return;
    }
    for (;;) {
        g_mutex_lock(&mm->lock);
        bool busy = mm->bh_pending > 0;
        g_mutex_unlock(&mm->lock);
        if (!busy) {
            break;
        }
        g_main_context_iteration(
            xblk_engine_glib_context(machine_engine(mm->m)), TRUE);
    }
    flush_moves(mm);
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        g_free(mm->drives[i].qdev);
    }
    g_queue_clear(&mm->moves);
    g_mutex_clear(&mm->lock);
    g_free(mm);
}

static MediaDrive *media_drive(XboxMachine *m, int index)
{
    MachineMedia *mm = machine_media(m);
    if (!mm || index < 0 || index >= MACHINE_IDE_DRIVES ||
        mm->drives[index].cfg->kind == IDE_DRIVE_NONE) {
        return NULL;
    }
    return &mm->drives[index];
}

static int index_of_name(MachineMedia *mm, const char *dev_name)
{
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveConfig *d = mm->drives[i].cfg;
        if (d->kind != IDE_DRIVE_NONE && d->id && dev_name &&
            !strcmp(d->id, dev_name)) {
            return i;
        }
    }
    return -1;
}

/* ---- events ---- */

/* Main loop: emits the queued movements. */
static void flush_moves(MachineMedia *mm)
{
    for (;;) {
        g_mutex_lock(&mm->lock);
        TrayMove *mv = g_queue_pop_head(&mm->moves);
        g_mutex_unlock(&mm->lock);
        if (!mv) {
            return;
        }
        MediaDrive *md = &mm->drives[mv->index];
        machine_event_tray_moved(md->cfg->id ? md->cfg->id : "", md->qdev,
                                 mv->open);
        g_free(mv);
    }
}

static void moves_bh(void *opaque)
{
    MachineMedia *mm = opaque;
    g_mutex_lock(&mm->lock);
    mm->bh_scheduled = false;
    g_mutex_unlock(&mm->lock);
    flush_moves(mm);
    g_mutex_lock(&mm->lock);
    mm->bh_pending--;
    g_mutex_unlock(&mm->lock);
}

void machine_media_tray_moved(MachineMedia *mm, const char *dev_name,
                              bool open)
{
    int i = index_of_name(mm, dev_name);
    if (i < 0) {
        return;
    }
    TrayMove *mv = g_new0(TrayMove, 1);
    mv->index = i;
    mv->open = open;
    g_mutex_lock(&mm->lock);
    g_queue_push_tail(&mm->moves, mv);
    bool schedule = !mm->bh_scheduled;
    if (schedule) {
        mm->bh_scheduled = true;
        mm->bh_pending++;
    }
    g_mutex_unlock(&mm->lock);
    if (schedule) {
        xblk_engine_call(machine_engine(mm->m), moves_bh, mm);
    }
}

/* ---- I/O status ---- */

void machine_media_io_error(MachineMedia *mm, const char *dev_name, int ret)
{
    int i = mm ? index_of_name(mm, dev_name) : -1;
    if (i < 0) {
        return;
    }
    g_mutex_lock(&mm->lock);
    mm->drives[i].io_status = ret == -ENOSPC ? MACHINE_IO_STATUS_NOSPACE
                                             : MACHINE_IO_STATUS_FAILED;
    g_mutex_unlock(&mm->lock);
}

const char *machine_io_status_name(MachineIoStatus st)
{
    switch (st) {
    case MACHINE_IO_STATUS_FAILED:
        return "failed";
    case MACHINE_IO_STATUS_NOSPACE:
        return "nospace";
    default:
        return "ok";
    }
}

void machine_media_iostatus_reset(MachineMedia *mm)
{
    if (!mm) {
        return;
    }
    g_mutex_lock(&mm->lock);
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        mm->drives[i].io_status = MACHINE_IO_STATUS_OK;
    }
    g_mutex_unlock(&mm->lock);
}

/* ---- lookups and state ---- */

int machine_drive_find(XboxMachine *m, const char *name, const char *qdev)
{
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MediaDrive *md = media_drive(m, i);
        if (!md) {
            continue;
        }
        if (name && md->cfg->id && !strcmp(md->cfg->id, name)) {
            return i;
        }
        if (qdev && (!strcmp(md->qdev, qdev) ||
                     (md->qdev[0] != '/' &&
                      g_str_has_prefix(qdev, "/machine/peripheral/") &&
                      !strcmp(qdev + strlen("/machine/peripheral/"),
                              md->qdev)))) {
            return i;
        }
    }
    return -1;
}

int machine_drive_of_disk(XboxMachine *m, XblkDisk *disk)
{
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MediaDrive *md = media_drive(m, i);
        if (md && disk && md->cfg->disk == disk) {
            return i;
        }
    }
    return -1;
}

typedef struct InfoCall {
    int index;
    bool ok;
    IDEDriveInfo info;
} InfoCall;

static void info_on_vcpu(XboxMachine *m, void *opaque)
{
    InfoCall *c = opaque;
    c->ok = ide_drive_info(machine_ide(m), c->index, &c->info);
}

bool machine_drive_info(XboxMachine *m, int index, MachineDriveInfo *out)
{
    MediaDrive *md = media_drive(m, index);
    if (!md || !md->cfg->disk) {
        return false;
    }
    InfoCall c = { .index = index };
    machine_run_on_vcpu(m, info_on_vcpu, &c);
    if (!c.ok) {
        return false;
    }
    MachineMedia *mm = machine_media(m);
    *out = (MachineDriveInfo) {
        .index = index,
        .kind = c.info.kind,
        .name = md->cfg->id ? md->cfg->id : "",
        .qdev = md->qdev,
        .disk = md->cfg->disk,
        .removable = c.info.kind == IDE_DRIVE_CD,
        .tray_open = c.info.tray_open,
        .locked = c.info.medium_locked,
        .write_cache = c.info.kind == IDE_DRIVE_HD ? c.info.write_cache
                                                   : true,
    };
    g_mutex_lock(&mm->lock);
    out->io_status = md->io_status;
    g_mutex_unlock(&mm->lock);
    return true;
}

int machine_media_open_flags(XboxMachine *m, int index)
{
    MediaDrive *md = media_drive(m, index);
    return md ? md->open_flags : 0;
}

/* ---- media control ---- */

typedef struct MediaCall {
    int index;
    bool force;
    bool locked;                /* open: left closed, eject requested */
    XblkDisk *disk;             /* set_medium */
    bool ok;
    GError *err;
} MediaCall;

static void open_on_vcpu(XboxMachine *m, void *opaque)
{
    MediaCall *c = opaque;
    IDEDriveInfo info;
    IDEController *ide = machine_ide(m);
    c->locked = ide_drive_info(ide, c->index, &info) && !info.tray_open &&
                info.medium_locked && !c->force;
    c->ok = ide_cd_open_tray(ide, c->index, c->force, &c->err);
}

static void close_on_vcpu(XboxMachine *m, void *opaque)
{
    MediaCall *c = opaque;
    c->ok = ide_cd_close_tray(machine_ide(m), c->index, &c->err);
}

static void set_medium_on_vcpu(XboxMachine *m, void *opaque)
{
    MediaCall *c = opaque;
    c->ok = ide_cd_set_medium(machine_ide(m), c->index, c->disk, &c->err);
}

/* Runs fn on the vCPU, then emits the movements it made. */
static bool media_call(XboxMachine *m, MachineCallFn *fn, MediaCall *c,
                       GError **errp)
{
    machine_run_on_vcpu(m, fn, c);
    flush_moves(machine_media(m));
    if (!c->ok) {
        g_propagate_error(errp, c->err);
        return false;
    }
    return true;
}

static MediaDrive *media_drive_err(XboxMachine *m, int index, GError **errp)
{
    MediaDrive *md = media_drive(m, index);
    if (!md || !md->cfg->disk) {
        hw_error_set(errp, "no drive at IDE index %d", index);
    }
    return md && md->cfg->disk ? md : NULL;
}

bool machine_media_open_tray(XboxMachine *m, int index, bool force,
                             bool *locked, GError **errp)
{
    MediaCall c = { .index = index, .force = force };
    if (!media_drive_err(m, index, errp)) {
        return false;
    }
    bool ok = media_call(m, open_on_vcpu, &c, errp);
    if (locked) {
        *locked = ok && c.locked;
    }
    return ok;
}

bool machine_media_close_tray(XboxMachine *m, int index, GError **errp)
{
    MediaCall c = { .index = index };
    return media_drive_err(m, index, errp) &&
           media_call(m, close_on_vcpu, &c, errp);
}

bool machine_media_remove(XboxMachine *m, int index, GError **errp)
{
    MediaDrive *md = media_drive_err(m, index, errp);
    if (!md) {
        return false;
    }
    if (!machine_disk_has_medium(md->cfg->disk)) {
        return true;
    }
    MediaCall c = { .index = index, .disk = NULL };
    return media_call(m, set_medium_on_vcpu, &c, errp);
}

bool machine_media_insert(XboxMachine *m, int index, int open_flags,
                          GError **errp)
{
    MediaDrive *md = media_drive_err(m, index, errp);
    if (!md) {
        return false;
    }
    if (!machine_disk_has_medium(md->cfg->disk)) {
        hw_error_set(errp, "The drive's disk holds no medium");
        return false;
    }
    MediaCall c = { .index = index, .disk = md->cfg->disk };
    if (!media_call(m, set_medium_on_vcpu, &c, errp)) {
        return false;
    }
    md->open_flags = open_flags;
    return true;
}

void machine_media_set_open_flags(XboxMachine *m, int index, int open_flags)
{
    MediaDrive *md = media_drive(m, index);
    if (md) {
        md->open_flags = open_flags;
    }
}
