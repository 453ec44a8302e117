/*
 * qmp-domsnap.h - the console machine's domain snapshots on the monitor
 * (qmp-domsnap.c): the x-xblk-snapshot-* commands and the machine's side
 * of snapshot/domain.h.  Main loop only.
 */
#ifndef XBLK_MONITOR_HOST_QMP_DOMSNAP_H
#define XBLK_MONITOR_HOST_QMP_DOMSNAP_H

#include "hw/xbox/machine.h"
#include <glib.h>

/* Adds the commands to the monitor (once, with the host's commands);
 * without an attached machine they fail with a clear error. */
void qmp_domsnap_register(void);

/* Attaches the machine, before its vCPU starts: its catalog lives in
 * catalog_dir (made with the first snapshot); repairs what a kill left
 * (one line each into report).  name: the domain's name (-name). */
bool qmp_domsnap_attach(XboxMachine *m, const char *catalog_dir,
                        const char *name, GString *report, GError **errp);
void qmp_domsnap_detach(void);

#endif
