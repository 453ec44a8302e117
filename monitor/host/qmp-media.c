/*
 * qmp-media.c - the removable-media commands of qapi/block.json (eject,
 * blockdev-open-tray, blockdev-close-tray, blockdev-remove-medium,
 * blockdev-insert-medium, blockdev-change-medium) with QEMU 7.2's
 * semantics, checks in QEMU's order and QEMU's error texts.  The drives
 * and their trays are the machine's (hw/xbox/machine-media.h), which also
 * sends DEVICE_TRAY_MOVED; HMP's eject and change call these commands.
 *
 * A drive is named by its backend (device=) or its device path (id=);
 * messages name it as the caller did.  Without a machine there are no
 * drives: every lookup ends in DeviceNotFound.
 *
 * Main loop only.
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "api/internal.h"
#include "hw/xbox/machine-media.h"
#include "monitor/host/host.h"
#include "qapi/qapi-commands.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>

/* A drive as a command found it. */
typedef struct MediaTarget {
    XboxMachine *m;
    int index;
    const char *name;           /* for messages: id, else device */
} MediaTarget;

static bool find_drive(const char *device, const char *id, MediaTarget *t,
                       GError **errp)
{
    XboxMachine *m = machine_current();
    t->m = m;
    t->name = id ? id : device;
    t->index = m ? machine_drive_find(m, device, id) : -1;
    if (t->index < 0) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found",
                  t->name);
        return false;
    }
    return true;
}

/* device= or id=, exactly one (QEMU's qmp_get_blk). */
static bool lookup(bool has_device, const char *device, bool has_id,
                   const char *id, MediaTarget *t, GError **errp)
{
    if (has_device == has_id) {
        error_setg(errp, "Need exactly one of 'device' and 'id'");
        return false;
    }
    return find_drive(has_device ? device : NULL, has_id ? id : NULL, t,
                      errp);
}

static bool drive_info(MediaTarget *t, MachineDriveInfo *info, GError **errp)
{
    if (!machine_drive_info(t->m, t->index, info)) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found",
                  t->name);
        return false;
    }
    return true;
}

/* QEMU's do_open_tray: 0, or -ENOTSUP / -EINPROGRESS (the guest locked
 * the tray and was asked to eject) / -EIO with errp set. */
static int open_tray(MediaTarget *t, bool force, GError **errp)
{
    MachineDriveInfo info;
    bool locked;
    if (!drive_info(t, &info, errp)) {
        return -ENODEV;
    }
    if (!info.removable) {
        error_setg(errp, "Device '%s' is not removable", t->name);
        return -ENOTSUP;
    }
    if (info.tray_open) {
        return 0;
    }
    if (!machine_media_open_tray(t->m, t->index, force, &locked, errp)) {
        return -EIO;
    }
    if (locked) {
        error_setg(errp, "Device '%s' is locked and force was not "
                   "specified, wait for tray to open and try again", t->name);
        return -EINPROGRESS;
    }
    return 0;
}

static bool remove_medium(MediaTarget *t, GError **errp)
{
    MachineDriveInfo info;
    if (!drive_info(t, &info, errp)) {
        return false;
    }
    if (!info.removable) {
        error_setg(errp, "Device '%s' is not removable", t->name);
        return false;
    }
    if (!info.tray_open) {
        error_setg(errp, "Tray of device '%s' is not open", t->name);
        return false;
    }
    BlockBackend *blk = xblk_api_disk_blk(info.disk);
    BlockDriverState *bs = blk_bs(blk);
    if (!bs) {
        return true;
    }
    int flags = bdrv_get_flags(bs) & HOST_MEDIUM_FLAGS_MASK;
    if (!machine_media_remove(t->m, t->index, errp)) {
        return false;
    }
    machine_media_set_open_flags(t->m, t->index, flags);
    blk_remove_bs(blk);
    return true;
}

/* QEMU's texts here name no device. */
static bool insert_medium(MediaTarget *t, BlockDriverState *bs,
                          GError **errp)
{
    MachineDriveInfo info;
    if (!drive_info(t, &info, errp)) {
        return false;
    }
    if (!info.removable) {
        error_setg(errp, "Device is not removable");
        return false;
    }
    if (!info.tray_open) {
        error_setg(errp, "Tray of the device is not open");
        return false;
    }
    BlockBackend *blk = xblk_api_disk_blk(info.disk);
    if (blk_bs(blk)) {
        error_setg(errp, "There already is a medium in the device");
        return false;
    }
    blk_insert_bs(blk, bs);
    if (!machine_media_insert(t->m, t->index,
                              bdrv_get_flags(bs) & HOST_MEDIUM_FLAGS_MASK,
                              errp)) {
        blk_remove_bs(blk);
        return false;
    }
    return true;
}

static bool close_tray(MediaTarget *t, GError **errp)
{
    MachineDriveInfo info;
    if (!drive_info(t, &info, errp)) {
        return false;
    }
    if (!info.removable) {
        error_setg(errp, "Device '%s' is not removable", t->name);
        return false;
    }
    if (!info.tray_open) {
        return true;
    }
    return machine_media_close_tray(t->m, t->index, errp);
}

void qmp_eject(bool has_device, const char *device, bool has_id,
               const char *id, bool has_force, bool force, GError **errp)
{
    MediaTarget t;
    if (!lookup(has_device, device, has_id, id, &t, errp) ||
        open_tray(&t, has_force && force, errp) < 0) {
        return;
    }
    remove_medium(&t, errp);
}

void qmp_blockdev_open_tray(bool has_device, const char *device, bool has_id,
                            const char *id, bool has_force, bool force,
                            GError **errp)
{
    MediaTarget t;
    GError *err = NULL;
    if (!lookup(has_device, device, has_id, id, &t, errp)) {
        return;
    }
    /* A locked tray: the guest was asked; that is success. */
    if (open_tray(&t, has_force && force, &err) == -EINPROGRESS) {
        g_clear_error(&err);
    }
    if (err) {
        g_propagate_error(errp, err);
    }
}

void qmp_blockdev_close_tray(bool has_device, const char *device,
                             bool has_id, const char *id, GError **errp)
{
    MediaTarget t;
    if (lookup(has_device, device, has_id, id, &t, errp)) {
        close_tray(&t, errp);
    }
}

void qmp_blockdev_remove_medium(const char *id, GError **errp)
{
    MediaTarget t;
    if (find_drive(NULL, id, &t, errp)) {
        remove_medium(&t, errp);
    }
}

void qmp_blockdev_insert_medium(const char *id, const char *node_name,
                                GError **errp)
{
    MediaTarget t;
    if (!find_drive(NULL, id, &t, errp)) {
        return;
    }
    BlockDriverState *bs = bdrv_find_node(node_name);
    if (!bs) {
        error_setg(errp, "Node '%s' not found", node_name);
        return;
    }
    if (bs->backends) {
        error_setg(errp, "Node '%s' is already in use", node_name);
        return;
    }
    insert_medium(&t, bs, errp);
}

void qmp_blockdev_change_medium(bool has_device, const char *device,
                                bool has_id, const char *id,
                                const char *filename, bool has_format,
                                const char *format, bool has_force,
                                bool force, bool has_read_only_mode,
                                BlockdevChangeReadOnlyMode read_only_mode,
                                GError **errp)
{
    MediaTarget t;
    if (!lookup(has_device, device, has_id, id, &t, errp)) {
        return;
    }
    /* The new medium opens as the last one did, unless told otherwise. */
    int flags = machine_media_open_flags(t.m, t.index);
    if (has_read_only_mode &&
        read_only_mode == BLOCKDEV_CHANGE_READ_ONLY_MODE_READ_ONLY) {
        flags &= ~BDRV_O_RDWR;
    } else if (has_read_only_mode &&
               read_only_mode == BLOCKDEV_CHANGE_READ_ONLY_MODE_READ_WRITE) {
        flags |= BDRV_O_RDWR;
    }
    BlockOpts *opts = bopts_new();
    if (has_format && format) {
        bopts_set(opts, "driver", format);
    }
    /* The file first: a bad one leaves the drive as it was. */
    BlockDriverState *bs = bdrv_open(filename, opts, flags, errp);
    if (!bs) {
        return;
    }
    if (open_tray(&t, has_force && force, errp) >= 0 &&
        remove_medium(&t, errp) && insert_medium(&t, bs, errp)) {
        close_tray(&t, errp);
    }
    bdrv_unref(bs);             /* the drive's backend holds it now */
}

int host_drive_of_blk(XboxMachine *m, BlockBackend *blk)
{
    XblkDisk *disk = blk ? xblk_api_disk_of_blk(blk) : NULL;
    return m && disk ? machine_drive_of_disk(m, disk) : -1;
}

/* The first DVD drive, or -1. */
static int first_dvd_drive(XboxMachine *m, MachineDriveInfo *info)
{
    for (int i = 0; m && i < 4; i++) {      /* bus * 2 + unit */
        if (machine_drive_info(m, i, info) && info->removable) {
            return i;
        }
    }
    return -1;
}

bool host_change_disc(XboxMachine *m, const char *filename, GError **errp)
{
    MachineDriveInfo info;
    if (first_dvd_drive(m, &info) < 0) {
        error_setg(errp, "The console has no DVD drive");
        return false;
    }
    BlockDriverState *bs = blk_bs(xblk_api_disk_blk(info.disk));
    const char *format = bs && bs->drv ? bs->drv->format_name : NULL;
    GError *err = NULL;
    qmp_blockdev_change_medium(true, info.name, false, NULL, filename,
                               format != NULL, format, true, true, false, 0,
                               &err);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}
