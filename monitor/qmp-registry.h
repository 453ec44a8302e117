/*
 * qmp-registry.h - the seam between the code scripts/qapi-gen generates and
 * the QMP server in monitor/.
 *
 * Generated code (build/qapi/engine-qapi-commands.c and -events.c for the
 * engine's schema, build/qapi/qapi-commands.c and -events.c for the
 * emulator's part) calls the two functions declared here; the monitor
 * implements them:
 *
 *   - engine_qmp_init_marshal(cmds) and qmp_init_marshal(cmds) call
 *     qmp_register_command() once per command of their part of the schema
 *     that has no 'gen': false.  The monitor owns the list and
 *     dispatches "execute" to the registered QmpCommandFunc.
 *   - qapi_event_send_<event>() builds the event's data and calls
 *     qapi_event_emit(), which stamps and broadcasts it.
 *
 * A QmpCommandFunc gets the "arguments" object (borrowed; NULL when the
 * request has none), stores a new reference to the "return" value in *ret
 * ({} for commands without one) and returns, or sets *errp and leaves *ret
 * alone.  Errors use the XBLK_ERROR domain with an ErrorClass code.
 */
#ifndef XBLK_MONITOR_QMP_REGISTRY_H
#define XBLK_MONITOR_QMP_REGISTRY_H

#include <glib.h>
#include <jansson.h>

typedef void QmpCommandFunc(json_t *args, json_t **ret, GError **errp);

/* Flags from the schema: 'success-response': false, 'allow-oob': true,
 * 'allow-preconfig': true, 'coroutine': true. */
typedef enum {
    QCO_NO_OPTIONS = 0,
    QCO_NO_SUCCESS_RESP = 1,
    QCO_ALLOW_OOB = 2,
    QCO_ALLOW_PRECONFIG = 4,
    QCO_COROUTINE = 8,
} QmpCommandOptions;

typedef struct QmpCommandList QmpCommandList;

void qmp_register_command(QmpCommandList *cmds, const char *name,
                          QmpCommandFunc *fn, QmpCommandOptions opts);

/* Emits event_name to every client.  data is consumed (a new reference the
 * callee releases); NULL means the event has no "data" member, as QEMU
 * sends STOP and RESUME. */
void qapi_event_emit(const char *event_name, json_t *data);

#endif
