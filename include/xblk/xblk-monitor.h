/*
 * xblk-monitor.h - the QMP monitor: QEMU's machine protocol on a unix or
 * loopback TCP socket, serving the engine's commands (blockdev-add,
 * query-block, query-named-block-nodes, jobs, transaction, bitmaps,
 * backups, query-version, query-commands, query-qmp-schema, ...) and the
 * commands and events the host adds.  Include <xblk/xblk.h>, not this
 * file.  docs/embedding.md is the guide.
 *
 * Clients get QEMU's greeting, negotiate with qmp_capabilities, then send
 * commands; replies and errors are QEMU's ({"return": ...} or
 * {"error": {"class": ..., "desc": ...}}), events go to every negotiated
 * client.  Requests run one at a time, in order, on the loop thread, from
 * the engine's loop (the host's iteration of the GMainContext, or
 * xblk_engine_prepare()/xblk_engine_dispatch()): a client is served only
 * while the host drives the engine.
 *
 * Host commands are defined with a schema: a QAPI command definition as
 * JSON text,
 *
 *   {"command": "x-host-ping",
 *    "data": {"count": "int", "*label": "str"},
 *    "returns": {"pong": "int", "*label": "str"}}
 *
 *   - "command": the name: lowercase letters, digits and '-' (QEMU's
 *     convention: "x-" for unstable commands);
 *   - "data": the arguments, an object of members; "*name" marks an
 *     optional member.  Absent: no arguments;
 *   - "returns": the type of the reply's "return" value.  Absent: {};
 *   - "features": a list of feature names ("deprecated", "unstable");
 *   - "allow-oob": true lets clients send it with "exec-oob".
 *   A type is a built-in name - "str", "int", "number", "bool", "any",
 *   "null", "int8" ... "int64", "uint8" ... "uint64", "size" - or [type]
 *   for an array (of a type that is not an array), or an object of
 *   members for a nested object.
 *
 * The monitor checks every request against the definition before the
 * handler runs and answers a bad one with QEMU's errors ("Parameter
 * 'count' is missing", "Parameter 'x' is unexpected", "Invalid parameter
 * type for 'count', expected: integer"); it checks the handler's return
 * value against "returns" as well (a mismatch reaches the client as a
 * GenericError, never as a reply the schema does not describe).  Host
 * commands appear in query-commands and, described as the definition
 * says, in query-qmp-schema.
 *
 * Threads: every function here is called on the loop thread (the
 * engine's, see xblk-engine.h), and handlers run there; an event from
 * another thread must be handed to the loop thread first.
 */
#ifndef XBLK_MONITOR_H
#define XBLK_MONITOR_H

#include "xblk-engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct XblkMonitor XblkMonitor;

/* The engine's monitor, with no socket yet: one per engine.  Fails with
 * XBLK_ERROR_BUSY while the engine has one. */
XBLK_API XblkMonitor *xblk_monitor_new(XblkEngine *engine, XblkError **err);
/* Closes every client and socket (a unix socket's file is removed) and
 * removes the host's commands; never from inside a handler.  NULL
 * accepted.  xblk_engine_free() frees a monitor the host left. */
XBLK_API void xblk_monitor_free(XblkMonitor *monitor);

/*
 * Listens as QEMU's -qmp option says:
 *     unix:PATH,server=on,wait=off
 *     tcp:127.0.0.1:PORT,server=on,wait=off     (loopback only)
 * "server=on" is required.  With "wait=on" (QEMU's default) the call runs
 * the engine's loop until a client connects.  A unix socket is created
 * mode 0600 (a stale socket file at PATH is replaced).  May be called
 * again for more sockets.  A malformed spec or a forbidden address fails
 * with XBLK_ERROR_INVALID.
 */
XBLK_API bool xblk_monitor_listen(XblkMonitor *monitor, const char *spec,
                                  XblkError **err);

/*
 * A host command's handler.  args_json: the request's arguments as a
 * JSON object text, already checked against the definition (valid until
 * the handler returns).  Returns the reply's "return" value as JSON
 * text, allocated with malloc() (the monitor frees it with free()); or
 * NULL with *err set (xblk_error_set(), xblk-common.h): the client gets
 * {"error": {"class": "GenericError", "desc": <the message>}}, or class
 * "DeviceNotFound" for XBLK_ERROR_NOT_FOUND.  A command defined without
 * "returns" may also return NULL without an error: its reply is {}.
 * The handler may call any function of the library (a handler that
 * removes its own command is fine) except xblk_monitor_free().
 */
typedef char *XblkMonitorCommandFn(const char *args_json, void *opaque,
                                   XblkError **err);

/* Adds a command defined by definition_json (see above); fn gets opaque.
 * Refused, with nothing changed: a malformed definition
 * (XBLK_ERROR_INVALID, the message says what is wrong), a name the
 * engine's commands or another host command already use
 * (XBLK_ERROR_EXISTS). */
XBLK_API bool xblk_monitor_add_command(XblkMonitor *monitor,
                                       const char *definition_json,
                                       XblkMonitorCommandFn *fn, void *opaque,
                                       XblkError **err);
/* Removes a host command; XBLK_ERROR_NOT_FOUND if there is none by that
 * name (the engine's commands cannot be removed). */
XBLK_API bool xblk_monitor_remove_command(XblkMonitor *monitor,
                                          const char *name, XblkError **err);

/* Sends an event to every negotiated client, stamped with the current
 * time: {"event": name, "data": ..., "timestamp": ...}.  name is
 * ALL_CAPS (letters, digits, '_') and not one of the engine's events
 * (XBLK_ERROR_EXISTS); data_json is a JSON object text, or NULL for an
 * event without "data".  Clients that are not connected miss it. */
XBLK_API bool xblk_monitor_emit_event(XblkMonitor *monitor, const char *name,
                                      const char *data_json, XblkError **err);

/* Connected clients, negotiated or not. */
XBLK_API unsigned xblk_monitor_client_count(const XblkMonitor *monitor);

#ifdef __cplusplus
}
#endif

#endif
