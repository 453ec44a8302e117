/*
 * vmstate.h - the save-state table of the IDE controller (the two
 * channels, their bus masters and all four drive positions: task file,
 * transfer state, settings, the SECURITY state and the ATAPI state).
 * The implementation is hw/ide/vmstate.c; docs/savestate.md lists the
 * fields.
 *
 * Opaque: the IDEController.  Saving requires a quiesced controller:
 * no request in flight (asserted: the machine drains before it saves)
 * and none held by a werror/rerror=stop policy (refused: resume or reset
 * first).  Loading checks that every position holds the same kind of
 * drive, invalidates whatever requests the target still has (their
 * completions are dropped, held ones freed) and never touches the
 * interrupt lines (the PIC's section carries them).
 */
#ifndef XBLK_HW_IDE_VMSTATE_H
#define XBLK_HW_IDE_VMSTATE_H

#include "hw/ide/ide.h"
#include <xblk/xblk.h>

const XblkDeviceDesc *ide_vmstate(void);

#endif
