/*
 * runstate.h - the machine's run state (QEMU's RunState values) and the
 * transitions stop/cont/shutdown request.  The machine issue hooks the
 * vCPU in here; with -machine none there is nothing to pause, but the
 * state and its events behave as QEMU's do.
 */
#ifndef XBLK_HW_RUNSTATE_H
#define XBLK_HW_RUNSTATE_H

#include <glib.h>
#include <stdbool.h>

typedef enum {
    XBLK_RUN_STATE_DEBUG,
    XBLK_RUN_STATE_INMIGRATE,
    XBLK_RUN_STATE_INTERNAL_ERROR,
    XBLK_RUN_STATE_IO_ERROR,
    XBLK_RUN_STATE_PAUSED,
    XBLK_RUN_STATE_POSTMIGRATE,
    XBLK_RUN_STATE_PRELAUNCH,
    XBLK_RUN_STATE_FINISH_MIGRATE,
    XBLK_RUN_STATE_RESTORE_VM,
    XBLK_RUN_STATE_RUNNING,
    XBLK_RUN_STATE_SAVE_VM,
    XBLK_RUN_STATE_SHUTDOWN,
    XBLK_RUN_STATE_SUSPENDED,
    XBLK_RUN_STATE_WATCHDOG,
    XBLK_RUN_STATE_GUEST_PANICKED,
    XBLK_RUN_STATE_COLO,
} XblkRunState;

typedef void RunStateHook(bool running, void *opaque);

XblkRunState runstate_get(void);
const char *runstate_name(XblkRunState s);
bool runstate_is_running(void);
void runstate_set(XblkRunState s);
/* Hooks run on every running <-> stopped change (the vCPU, the UI). */
void runstate_add_hook(RunStateHook *hook, void *opaque);

/* Shutdown requests: the main program's loop watches this. */
typedef enum {
    SHUTDOWN_NONE,
    SHUTDOWN_HOST_QMP_QUIT,
    SHUTDOWN_HOST_SIGNAL,
} ShutdownRequest;

void runstate_request_shutdown(ShutdownRequest why);
/* The GMainContext runstate_request_shutdown wakes (the machine's
 * engine's; NULL: the default one). */
void runstate_set_loop_context(GMainContext *ctx);
ShutdownRequest runstate_shutdown_requested(void);

#endif
