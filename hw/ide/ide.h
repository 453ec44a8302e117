/*
 * ide.h - the PIIX-style IDE controller as the machine sees it: two
 * channels of two drives each (index = channel * 2 + unit), their task-file
 * ports, the bus-master DMA ports, and media control for ATAPI drives.
 *
 * Register-level behaviour follows ATA/ATAPI-7; docs/machine.md lists the
 * ports and commands.  The controller reaches guest RAM, its interrupt
 * lines (14, 15), the virtual clock and the images only through its DevHost
 * (hw/devio.h) and the BlockBackends it is given.
 *
 * Threads: every function here runs on the device thread (the vCPU
 * thread), as do the DevIORequest completions it receives.  The main loop
 * reaches media control through the machine, which runs it on that thread.
 */
#ifndef XBLK_HW_IDE_IDE_H
#define XBLK_HW_IDE_IDE_H

#include "hw/devio.h"
#include <glib.h>

typedef struct IDEController IDEController;

typedef enum {
    IDE_DRIVE_NONE,
    IDE_DRIVE_HD,
    IDE_DRIVE_CD,
} IDEDriveKind;

/* QEMU's -drive werror=/rerror= values. */
typedef enum {
    IDE_ERROR_ACTION_REPORT,
    IDE_ERROR_ACTION_IGNORE,
    IDE_ERROR_ACTION_STOP,
    IDE_ERROR_ACTION_ENOSPC,    /* stop on ENOSPC, report otherwise */
} IDEErrorAction;

typedef struct IDEDriveConfig {
    IDEDriveKind kind;
    XblkDisk *disk;             /* NULL: a CD drive without medium */
    const char *id;             /* device name, e.g. "ide0-hd0" (copied) */
    const char *node_name;      /* root node name for events, or NULL */
    const char *model;          /* NULL: defaults (copied) */
    const char *serial;
    const char *firmware;
    bool locked;                /* HD: security enabled + locked at power on */
    uint8_t password[32];       /* HD: user password when locked */
    IDEErrorAction werror;      /* default ENOSPC, as QEMU */
    IDEErrorAction rerror;      /* default REPORT */
} IDEDriveConfig;

IDEController *ide_controller_new(DevHost *host);
void ide_controller_free(IDEController *c);
bool ide_attach(IDEController *c, int index, const IDEDriveConfig *cfg,
                GError **errp);
/* Power-on / hardware reset of both channels (drops queued requests'
 * effects: their completions are ignored). */
void ide_reset(IDEController *c);

/* Ports 0x1F0-0x1F7, 0x3F6, 0x170-0x177, 0x376 and 0xFF60-0xFF6F. */
bool ide_claims_port(uint32_t port);
uint32_t ide_ioport_read(IDEController *c, uint32_t port, unsigned size);
void ide_ioport_write(IDEController *c, uint32_t port, uint32_t val,
                      unsigned size);

/* Requests in flight (submitted, completion not yet run). */
unsigned ide_in_flight(IDEController *c);
/* After a werror/rerror=stop pause: retry the failed requests (cont). */
void ide_resume(IDEController *c);

/* ATAPI media, QEMU's semantics (eject refuses a locked tray unless
 * force; open_tray of a locked tray without force leaves it closed and
 * asks the guest to eject; force unlocks it; a change raises UNIT
 * ATTENTION).  Each real tray movement is reported through the DevHost's
 * tray_moved (hw/devio.h). */
bool ide_cd_open_tray(IDEController *c, int index, bool force,
                      GError **errp);
bool ide_cd_close_tray(IDEController *c, int index, GError **errp);
bool ide_cd_eject(IDEController *c, int index, bool force, GError **errp);
/* Inserts disk (tray must be open or empty); NULL removes the medium. */
bool ide_cd_set_medium(IDEController *c, int index, XblkDisk *disk,
                       GError **errp);

typedef struct IDEDriveInfo {
    IDEDriveKind kind;
    XblkDisk *disk;
    bool tray_open;             /* CD */
    bool medium_locked;         /* CD: PREVENT ALLOW MEDIUM REMOVAL */
    bool security_locked;       /* HD: locked by the SECURITY feature set */
    bool write_cache;           /* HD: SET FEATURES write cache state */
    bool io_status_failed;      /* the last request failed */
} IDEDriveInfo;

/* False if no drive sits at index. */
bool ide_drive_info(IDEController *c, int index, IDEDriveInfo *out);

#endif
