/*
 * qmp-machine.c - the emulator's commands of the run state, the machine's
 * frames, quit and HMP (qapi/host/run-state.json, qapi/host/misc.json),
 * and qmp_host_init(), which puts the host's part of the monitor on top
 * of the engine's: the generated host commands, the whole schema's
 * introspection, the machine's drives in query-block.
 *
 * Commands that act on the machine fail while there is none
 * (xblk-system -machine none); the run state exists either way
 * (hw/runstate.h).  Main loop only.
 */
#include "hw/runstate.h"
#include "monitor/host/qmp-domsnap.h"
#include "hw/xbox/machine-media.h"
#include "monitor/host/hmp.h"
#include "monitor/host/host.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-introspect.h"
#include "qapi/qapi-visit.h"
#include "util/error.h"

/* ---- query-block: the machine's drives ---- */

static bool machine_drive_of(BlockBackend *blk, QmpDriveInfo *out)
{
    XboxMachine *m = machine_current();
    int index = host_drive_of_blk(m, blk);
    MachineDriveInfo info;
    if (index < 0 || !machine_drive_info(m, index, &info)) {
        return false;
    }
    /* The strings are the machine's and live as long as it does. */
    *out = (QmpDriveInfo) {
        .qdev = info.qdev,
        .removable = info.removable,
        .tray_open = info.tray_open,
        .locked = info.locked,
        .write_cache = info.write_cache,
        .io_status = machine_io_status_name(info.io_status),
    };
    return true;
}

void qmp_host_init(void)
{
    qmp_init_marshal(monitor_commands());
    qmp_domsnap_register();
    monitor_set_introspection(qapi_introspect_json());
    monitor_set_drive_info(machine_drive_of);
}

/* ---- control ---- */

void qmp_quit(GError **errp)
{
    /* QEMU announces the shutdown before it answers the command. */
    qapi_event_send_shutdown(false, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
    runstate_request_shutdown(SHUTDOWN_HOST_QMP_QUIT);
}

char *qmp_human_monitor_command(const char *command_line,
                                bool has_cpu_index, int64_t cpu_index,
                                GError **errp)
{
    if (has_cpu_index && cpu_index != 0) {
        error_setg(errp, "Parameter 'cpu-index' expects a CPU index");
        return NULL;
    }
    return hmp_execute(command_line, errp);
}

/* ---- run state ---- */

StatusInfo *qmp_query_status(GError **errp)
{
    json_t *j = json_pack("{s:b,s:b,s:s}", "running", runstate_is_running(),
                          "singlestep", 0, "status",
                          runstate_name(runstate_get()));
    StatusInfo *s = NULL;
    visit_StatusInfo_from_json(j, "return", &s, errp);
    json_decref(j);
    return s;
}

void qmp_stop(GError **errp)
{
    /* As QEMU: only a running machine stops; prelaunch, io-error and the
     * other stopped states stay what they are. */
    if (runstate_get() == XBLK_RUN_STATE_RUNNING) {
        runstate_set(XBLK_RUN_STATE_PAUSED);
        qapi_event_send_stop();
    }
}

void qmp_cont(GError **errp)
{
    XblkRunState st = runstate_get();
    if (st == XBLK_RUN_STATE_SHUTDOWN) {
        error_setg(errp, "Resetting the Virtual Machine is required");
        return;
    }
    if (st != XBLK_RUN_STATE_RUNNING) {
        runstate_set(XBLK_RUN_STATE_RUNNING);
        qapi_event_send_resume();
    }
}

/* ---- the machine (xblk-system -machine xbox, hw/xbox/machine.h) ---- */

static XboxMachine *need_machine(const char *cmd, GError **errp)
{
    XboxMachine *m = machine_current();
    if (!m) {
        error_setg(errp, "%s needs a machine (-machine xbox)", cmd);
    }
    return m;
}

void qmp_system_reset(GError **errp)
{
    XboxMachine *m = need_machine("system_reset", errp);
    if (m) {
        machine_system_reset(m);
    }
}

XFrameInfo *qmp_x_query_frame(GError **errp)
{
    XboxMachine *m = need_machine("x-query-frame", errp);
    if (!m) {
        return NULL;
    }
    XFrameInfo *info = g_new0(XFrameInfo, 1);
    info->frame = machine_frame(m);
    if (!runstate_is_running() && machine_is_parked(m)) {
        info->hash = machine_frame_hash(m, NULL);
        info->has_hash = info->hash != NULL;
    }
    return info;
}

XFrameTimes *qmp_x_query_frame_times(GError **errp)
{
    XboxMachine *m = need_machine("x-query-frame-times", errp);
    if (!m) {
        return NULL;
    }
    MachineFrameTimes ft;
    machine_frame_times(m, &ft);
    XFrameTimes *t = g_new0(XFrameTimes, 1);
    t->frames = ft.frames;
    t->max_us = ft.max_us;
    t->over_budget = ft.over_budget;
    return t;
}

void qmp_x_frame_stop(int64_t frame, GError **errp)
{
    XboxMachine *m = need_machine("x-frame-stop", errp);
    if (!m) {
        return;
    }
    if (frame < 0) {
        error_setg(errp, "Parameter 'frame' expects a frame number");
        return;
    }
    machine_frame_stop_at(m, frame, errp);
}
