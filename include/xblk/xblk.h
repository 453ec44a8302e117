/*
 * xblk.h - libxblk, the xblk engine as a library: qcow2 disks with
 * asynchronous I/O, atomic snapshot transactions, inside the host's own
 * event loop.  The one header a host includes; docs/embedding.md is the
 * guide, examples/ holds hosts that use it.
 *
 *   xblk-common.h    version, errors, the ABI policy
 *   xblk-engine.h    the engine and its event loop; the thread rules
 *   xblk-disk.h      disks: open, read, write, flush, drain
 *   xblk-snapshot.h  snapshot transactions, internal snapshots
 *   xblk-state.h     save states: guest RAM, device tables, the pause
 *   xblk-monitor.h   the QMP monitor: sockets, host commands and events
 *
 * Build against it with `pkg-config --cflags --libs xblk`.
 */
#ifndef XBLK_H
#define XBLK_H

#include "xblk-common.h"
#include "xblk-engine.h"
#include "xblk-disk.h"
#include "xblk-snapshot.h"
#include "xblk-state.h"
#include "xblk-monitor.h"

#endif
