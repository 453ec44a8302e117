/*
 * host.h - the emulator's part of the monitor: the commands of
 * qapi/qapi-schema.json that are not the engine's (run state, frames,
 * removable media, save states, screendump, HMP, quit).  They need the
 * console machine (hw/), so they live in libsys.a, beside the machine,
 * and only xblk-system and the hardware tests link them; the engine's
 * monitor (the files directly in monitor/, in libxblk) never calls into them.
 *
 * The generated marshallers of this part (build/qapi/qapi-commands.c,
 * from qapi/qapi-schema.json with --extern qapi/engine-schema.json) call
 * the qmp_*() functions of the files in monitor/host/.
 */
#ifndef XBLK_MONITOR_HOST_HOST_H
#define XBLK_MONITOR_HOST_HOST_H

#include <glib.h>
#include <stdbool.h>

/* Registers the host's commands in monitor_commands() (the engine's are
 * there already), makes query-qmp-schema describe the whole schema and
 * query-block show the machine's drives.  Main loop, once, before the
 * first client connects. */
void qmp_host_init(void);

/* The BDRV_O_* flags that describe a medium's "root state" (QEMU's
 * term): what a changed medium inherits from the last one. */
#define HOST_MEDIUM_FLAGS_MASK (BDRV_O_RDWR | BDRV_O_NOCACHE | \
                                BDRV_O_NO_FLUSH | BDRV_O_UNMAP)

/* The machine's drive whose disk wraps blk, or -1. */
struct XboxMachine;
struct BlockBackend;
int host_drive_of_blk(struct XboxMachine *m, struct BlockBackend *blk);

/* Puts the disc image `filename` into the machine's first DVD drive, as
 * blockdev-change-medium with force=true does (the format of the disc it
 * replaces, probed when the drive is empty): the front end's "insert the
 * recorded disc".  A file that cannot be opened leaves the drive as it
 * was.  Main loop. */
bool host_change_disc(struct XboxMachine *m, const char *filename,
                      GError **errp);

#endif
