/*
 * hmp.h - the human monitor's text commands, reached over QMP through
 * human-monitor-command.  Output is the text an HMP user would see.
 * The emulator's (monitor/host/): its commands act on the machine.
 */
#ifndef XBLK_MONITOR_HOST_HMP_H
#define XBLK_MONITOR_HOST_HMP_H

#include <glib.h>

/* Runs one command line; returns its output (possibly "").  Unknown
 * commands produce QEMU's "unknown command" text, not an error. */
char *hmp_execute(const char *line, GError **errp);

/* savevm, loadvm, delvm (monitor/host/qmp-savestate.c): tag may be NULL for
 * savevm only.  Errors are appended as "Error: ...". */
void hmp_savevm_run(GString *out, const char *tag);
void hmp_loadvm_run(GString *out, const char *tag);
void hmp_delvm_run(GString *out, const char *tag);

#endif
