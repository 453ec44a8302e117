/*
 * qmp-dynamic.h - QMP commands a program defines at run time, with a
 * schema: a QAPI command definition in JSON, e.g.
 *
 *   {"command": "x-host-ping",
 *    "data": {"count": "int", "*label": "str"},
 *    "returns": {"pong": "int"}}
 *
 * The monitor checks each request's arguments against the definition
 * before the handler runs (the generated marshallers' checks and texts:
 * "Parameter 'count' is missing", "Parameter 'x' is unexpected",
 * "Invalid parameter type for 'count', expected: integer") and the
 * handler's return value after it, and query-qmp-schema describes the
 * command as if the generator had compiled it.  include/xblk/
 * xblk-monitor.h is the public face (api/monitor.c).
 *
 * Types: the built-ins (str, number, int, int8 ... uint64, size, bool,
 * null, any), [T] for an array of T (T not itself an array), and an
 * object of members {"name": T, "*optional": T} - QAPI's inline
 * members, allowed anywhere a type is since a run-time definition has no
 * named types.  'data' is an object of members; 'returns' any type
 * (without it the reply is {}); 'features' a list of names; 'allow-oob'
 * true.  Names follow QAPI's rules (lowercase and '-').
 *
 * Main loop only.  The registry is the monitor's, one per process.
 */
#ifndef XBLK_MONITOR_QMP_DYNAMIC_H
#define XBLK_MONITOR_QMP_DYNAMIC_H

#include "monitor/qmp-registry.h"
#include <stdbool.h>

/* Errors of qmp_dyn_add_command(): domain QMP_DYN_ERROR. */
#define QMP_DYN_ERROR qmp_dyn_error_quark()
GQuark qmp_dyn_error_quark(void);
typedef enum {
    QMP_DYN_ERROR_INVALID,      /* a malformed definition */
    QMP_DYN_ERROR_EXISTS,       /* the name is taken */
} QmpDynErrorCode;

/*
 * The handler: args is the request's arguments, checked against the
 * definition (an object, borrowed).  It stores a new reference to the
 * return value in *ret - or leaves NULL there, which is {} for a command
 * defined without 'returns' - and returns true; or sets *errp (domain
 * XBLK_ERROR, the code an ErrorClass) and returns false.
 */
typedef bool QmpDynHandler(void *opaque, json_t *args, json_t **ret,
                           GError **errp);

/* Parses definition, checks it, and registers the command in cmds; on
 * any error nothing changes (destroy is not called).  A name registered
 * already (the engine's commands, the program's generated ones, another
 * run-time command) is refused with QMP_DYN_ERROR_EXISTS.  destroy (may
 * be NULL) gets opaque once the command is gone and no call of its
 * handler runs. */
bool qmp_dyn_add_command(QmpCommandList *cmds, const char *definition,
                         QmpDynHandler *fn, void *opaque,
                         GDestroyNotify destroy, GError **errp);
/* False if no run-time command has that name. */
bool qmp_dyn_remove_command(QmpCommandList *cmds, const char *name);
void qmp_dyn_remove_all(QmpCommandList *cmds);

/* Adds the run-time commands to a query-qmp-schema reply (a SchemaInfo
 * array): their command entries after the last command or event, and
 * the types they use at the end, under names no entry has. */
void qmp_dyn_introspect(json_t *schema);

/* Checks an event a program emits: an ALL_CAPS name that is not one of
 * the engine's events, data an object (or NULL). */
bool qmp_dyn_check_event(const char *name, json_t *data, GError **errp);

#endif
