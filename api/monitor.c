/*
 * monitor.c - the QMP monitor handle (include/xblk/xblk-monitor.h) over
 * the engine's monitor (monitor/monitor.h) and its commands defined at
 * run time (monitor/qmp-dynamic.h).
 *
 * This file only translates: JSON texts to and from jansson values,
 * XblkErrors to and from GErrors (an XblkErrorCode becomes a QMP error
 * class here).  Parsing definitions, checking requests and replies and
 * introspection are the monitor's, so that a host command behaves as the
 * emulator's compiled ones do.
 *
 * Invariants: at most one monitor exists, and only with the engine; it
 * owns the block layer's event sink while it lives (job events reach its
 * clients); freeing it leaves the monitor's static state as a new one
 * expects it (no clients, sockets or host commands).
 */
#include "api/internal.h"
#include "include/xblk/xblk-monitor.h"
#include "block/block-events.h"
#include "monitor/monitor.h"
#include "monitor/qmp-dynamic.h"
#include "util/error.h"
#include <stdlib.h>
#include <string.h>

struct XblkMonitor {
    XblkEngine *engine;
};

typedef struct HostCommand {
    XblkMonitorCommandFn *fn;
    void *opaque;
} HostCommand;

static XblkMonitor *the_monitor;

static bool need_monitor(const XblkMonitor *mon, XblkError **err)
{
    if (!mon || mon != the_monitor) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no such monitor");
        return false;
    }
    return true;
}

XblkMonitor *xblk_monitor_new(XblkEngine *engine, XblkError **err)
{
    if (!engine || engine != xblk_api_engine()) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no such engine");
        return NULL;
    }
    if (the_monitor) {
        xblk_api_error(err, XBLK_ERROR_BUSY,
                       "the engine has a monitor already");
        return NULL;
    }
    XblkMonitor *mon = g_new0(XblkMonitor, 1);
    mon->engine = engine;
    monitor_commands();         /* the engine's commands */
    block_event_set_sink(qapi_event_emit);
    the_monitor = mon;
    return mon;
}

void xblk_api_monitor_free_all(void)
{
    xblk_monitor_free(the_monitor);
}

void xblk_monitor_free(XblkMonitor *mon)
{
    if (!mon || mon != the_monitor) {
        return;
    }
    monitor_cleanup();
    qmp_dyn_remove_all(monitor_commands());
    block_event_set_sink(NULL);
    g_free(mon);
    the_monitor = NULL;
}

bool xblk_monitor_listen(XblkMonitor *mon, const char *spec,
                         XblkError **err)
{
    if (!need_monitor(mon, err)) {
        return false;
    }
    GError *gerr = NULL;
    bool bad_spec = false;
    if (!monitor_listen(spec, &bad_spec, &gerr)) {
        if (bad_spec) {
            xblk_api_error(err, XBLK_ERROR_INVALID, "%s", gerr->message);
            g_error_free(gerr);
        } else {
            xblk_api_error_from(err, gerr);
        }
        return false;
    }
    return true;
}

unsigned xblk_monitor_client_count(const XblkMonitor *mon)
{
    return mon && mon == the_monitor ? monitor_client_count() : 0;
}

/* ---- host commands ---- */

/* The host's codes as QMP classes: QEMU answers a missing device or node
 * with DeviceNotFound, everything else with GenericError. */
static ErrorClass class_of(XblkErrorCode code)
{
    return code == XBLK_ERROR_NOT_FOUND ? ERROR_CLASS_DEVICE_NOT_FOUND
                                        : ERROR_CLASS_GENERIC_ERROR;
}

static bool host_command_run(void *opaque, json_t *args, json_t **ret,
                             GError **errp)
{
    HostCommand *hc = opaque;
    char *text = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    XblkError *xerr = NULL;
    char *reply = hc->fn(text, hc->opaque, &xerr);
    free(text);
    if (xerr) {
        free(reply);
        error_set(errp, class_of(xblk_error_code(xerr)), "%s",
                  xblk_error_message(xerr));
        xblk_error_free(xerr);
        return false;
    }
    if (!reply) {
        return true;            /* the monitor decides whether {} fits */
    }
    json_error_t je;
    *ret = json_loads(reply, JSON_DECODE_ANY, &je);
    free(reply);
    if (!*ret) {
        error_setg(errp, "the command's reply is not valid JSON: %s",
                   je.text);
        return false;
    }
    return true;
}

bool xblk_monitor_add_command(XblkMonitor *mon, const char *definition_json,
                              XblkMonitorCommandFn *fn, void *opaque,
                              XblkError **err)
{
    if (!need_monitor(mon, err)) {
        return false;
    }
    if (!fn) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "a command needs a handler");
        return false;
    }
    HostCommand *hc = g_new0(HostCommand, 1);
    hc->fn = fn;
    hc->opaque = opaque;
    GError *gerr = NULL;
    if (!qmp_dyn_add_command(monitor_commands(), definition_json,
                             host_command_run, hc, g_free, &gerr)) {
        g_free(hc);
        xblk_api_error(err, gerr->code == QMP_DYN_ERROR_EXISTS
                            ? XBLK_ERROR_EXISTS : XBLK_ERROR_INVALID,
                       "%s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    return true;
}

bool xblk_monitor_remove_command(XblkMonitor *mon, const char *name,
                                 XblkError **err)
{
    if (!need_monitor(mon, err)) {
        return false;
    }
    /* A handler may remove its own command: the monitor frees the
     * HostCommand once the call is over. */
    if (!name || !qmp_dyn_remove_command(monitor_commands(), name)) {
        xblk_api_error(err, XBLK_ERROR_NOT_FOUND,
                       "no host command '%s'", name ? name : "");
        return false;
    }
    return true;
}

/* ---- events ---- */

bool xblk_monitor_emit_event(XblkMonitor *mon, const char *name,
                             const char *data_json, XblkError **err)
{
    if (!need_monitor(mon, err)) {
        return false;
    }
    json_t *data = NULL;
    if (data_json) {
        json_error_t je;
        data = json_loads(data_json, JSON_DECODE_ANY, &je);
        if (!data) {
            xblk_api_error(err, XBLK_ERROR_INVALID,
                           "the event's data is not valid JSON: %s", je.text);
            return false;
        }
    }
    GError *gerr = NULL;
    if (!qmp_dyn_check_event(name, data, &gerr)) {
        json_decref(data);
        xblk_api_error(err, gerr->code == QMP_DYN_ERROR_EXISTS
                            ? XBLK_ERROR_EXISTS : XBLK_ERROR_INVALID,
                       "%s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    qapi_event_emit(name, data);        /* takes data */
    return true;
}
