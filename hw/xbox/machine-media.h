/*
 * machine-media.h - the console's drives as the monitor sees them: their
 * names, device paths, state (tray, lock, I/O status) and removable-media
 * control (open/close the tray, remove/insert a medium), with QEMU's
 * DEVICE_TRAY_MOVED events.  Implemented by hw/xbox/machine-media.c; the
 * QMP and HMP commands (monitor/host/qmp-media.c, monitor/host/hmp.c) build QEMU's
 * semantics and texts on top of it.
 *
 * Every drive has one BlockBackend for the machine's lifetime, named by
 * its device name ("ide0-cd1", or the -device id); a medium is that
 * backend's root node, and an empty drive's backend has no root (as in
 * QEMU).  The IDE controller holds the backend only while a medium is
 * inserted, so it never sees the root change under it.
 *
 * Device paths ("qdev"): a -device with id= is named by its id (and
 * "/machine/peripheral/ID" finds it too), a -device without id= is
 * "/machine/peripheral-anon/device[K]" in -device order, and a -drive's
 * device is "/machine/unattached/device[N]", N counting the devices the
 * machine creates: 0 CPU, 1 PIC pair, 2 PIT, 3 IDE controller, 4 GPU,
 * 5 gamepad, 6 system controller, then the -drive drives in index order.
 *
 * Threads: the functions of the first part are for the main loop; they
 * run what touches the IDE controller on the vCPU thread
 * (machine_run_on_vcpu) and emit DEVICE_TRAY_MOVED for every movement
 * they cause before they return.  Movements the guest makes are emitted
 * from a bottom half.  The second part is machine.c's.
 */
#ifndef XBLK_HW_XBOX_MACHINE_MEDIA_H
#define XBLK_HW_XBOX_MACHINE_MEDIA_H

#include "hw/xbox/machine.h"

/* Index of the first drive device in /machine/unattached/device[N]. */
#define MACHINE_FIRST_DRIVE_DEVICE  7

typedef enum {
    MACHINE_IO_STATUS_OK,
    MACHINE_IO_STATUS_FAILED,
    MACHINE_IO_STATUS_NOSPACE,
} MachineIoStatus;

/* "ok", "failed", "nospace": QEMU's BlockDeviceIoStatus names. */
const char *machine_io_status_name(MachineIoStatus st);

typedef struct MachineDriveInfo {
    int index;                  /* bus * 2 + unit */
    IDEDriveKind kind;
    const char *name;           /* the backend's name (QMP "device") */
    const char *qdev;           /* the device path (QMP "qdev") */
    XblkDisk *disk;             /* never NULL; its medium may be absent
                                 * (machine_disk_has_medium) */
    bool removable;             /* a DVD drive */
    bool tray_open;             /* removable drives */
    bool locked;                /* PREVENT ALLOW MEDIUM REMOVAL */
    bool write_cache;           /* as the guest set it (SET FEATURES) */
    MachineIoStatus io_status;  /* QEMU's: set by a stop-policy error,
                                 * back to ok at cont */
} MachineDriveInfo;

/* ---- main loop ---- */

/* The drive whose backend is named `name`, or whose device path is
 * `qdev` (exactly one of them non-NULL); -1 if none. */
int machine_drive_find(XboxMachine *m, const char *name, const char *qdev);
/* The drive that uses blk as its backend, or -1. */
int machine_drive_of_disk(XboxMachine *m, XblkDisk *disk);
/* False if no drive sits at index.  Strings and blk stay valid as long
 * as the machine. */
bool machine_drive_info(XboxMachine *m, int index, MachineDriveInfo *out);

/* Opens the tray of a removable drive.  A tray the guest locked stays
 * closed unless force (which unlocks it): the guest is asked to eject and
 * *locked says so.  Already open: nothing happens. */
bool machine_media_open_tray(XboxMachine *m, int index, bool force,
                             bool *locked, GError **errp);
bool machine_media_close_tray(XboxMachine *m, int index, GError **errp);
/* The drive's medium leaves the IDE model (the tray must be open); the
 * host then takes the node out of the drive's backend.  A drive without
 * a medium is left as it is. */
bool machine_media_remove(XboxMachine *m, int index, GError **errp);
/* The host put a node into the drive's (empty, tray open) backend: the
 * IDE model takes it as its medium, opened with open_flags (the host's
 * flags, returned by machine_media_open_flags).  On failure the host
 * takes the node out again. */
bool machine_media_insert(XboxMachine *m, int index, int open_flags,
                          GError **errp);
void machine_media_set_open_flags(XboxMachine *m, int index, int open_flags);
/* The BDRV_O_* flags the drive's last medium was opened with (initially
 * those of -drive), for blockdev-change-medium's read-only-mode retain. */
int machine_media_open_flags(XboxMachine *m, int index);

/* ---- for machine.c ---- */

typedef struct MachineMedia MachineMedia;

/* drives: the machine's configuration, which outlives the result. */
MachineMedia *machine_media_new(XboxMachine *m, MachineDriveConfig *drives);
/* Main loop, after the vCPU thread is gone: runs pending events. */
void machine_media_free(MachineMedia *mm);
MachineMedia *machine_media(XboxMachine *m);
/* vCPU thread (DevHostOps): a tray moved; a stop-policy error. */
void machine_media_tray_moved(MachineMedia *mm, const char *dev_name,
                              bool open);
void machine_media_io_error(MachineMedia *mm, const char *dev_name, int ret);
/* Main loop, at cont: every I/O status back to ok. */
void machine_media_iostatus_reset(MachineMedia *mm);

#endif
