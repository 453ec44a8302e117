/*
 * monitor.h - the QMP server: the engine's monitor, part of libxblk.  The
 * emulator (tools/xblk-system.c with monitor/host/) and any embedder
 * (api/monitor.c, include/xblk/xblk-monitor.h) run the same server.
 *
 * Clients connect over a unix socket (created mode 0600) or TCP (bound to
 * 127.0.0.1 unless the spec names a host); each gets QEMU's greeting and
 * must negotiate with qmp_capabilities before anything else.  Requests
 * are dispatched one at a time on the main loop, in arrival order per
 * client; while a command runs (and possibly polls the loop for I/O),
 * other clients' requests wait their turn.  Out-of-band requests
 * ("exec-oob", for a client that enabled 'oob') run as soon as they are
 * read, even in the middle of another command's loop polling: a command
 * registered QCO_ALLOW_OOB must be quick and must never poll the loop
 * itself.  Events go to every negotiated client.  Limits (docs/qmp.md):
 * 64 clients, QEMU's JSON limits, 8 queued requests per client (1
 * without 'oob'), output paused at 8 MiB and the client dropped beyond
 * 64 MiB (or beyond 1 MiB once all clients together hold 256 MiB).
 *
 * The command list holds the engine's commands (qapi/engine-schema.json)
 * from its first use; a program adds its own on top: generated ones
 * (monitor/host/) or ones defined at run time (monitor/qmp-dynamic.h).
 * No engine file knows the machine: what query-block shows of a drive
 * and the schema that query-qmp-schema returns are set by the program.
 *
 * Everything here runs on the main loop thread.  The monitor is one per
 * process (its state is static), as the engine is.
 */
#ifndef XBLK_MONITOR_MONITOR_H
#define XBLK_MONITOR_MONITOR_H

#include "block/block-backend.h"
#include "monitor/qmp-registry.h"
#include <stdbool.h>

QmpCommandList *qmp_command_list_new(void);
bool qmp_command_exists(QmpCommandList *cmds, const char *name);
/* Calls fn for every registered command name (sorted). */
void qmp_command_foreach(QmpCommandList *cmds,
                         void (*fn)(const char *name, void *opaque),
                         void *opaque);

/* A command with a context pointer (commands defined at run time). */
typedef void QmpCommandFuncOpaque(void *opaque, json_t *args, json_t **ret,
                                  GError **errp);
void qmp_register_command_opaque(QmpCommandList *cmds, const char *name,
                                 QmpCommandFuncOpaque *fn, void *opaque,
                                 QmpCommandOptions opts);
/* False if no command has that name. */
bool qmp_unregister_command(QmpCommandList *cmds, const char *name);

/* The monitor's command list.  The first call registers the engine's
 * commands: the generated marshallers of qapi/engine-schema.json and
 * query-qmp-schema. */
QmpCommandList *monitor_commands(void);
/* True for a command of the engine's schema (whatever is registered). */
bool monitor_is_engine_command(const char *name);
/* True for an event of the engine's schema. */
bool monitor_is_engine_event(const char *name);

/* The introspection text query-qmp-schema starts from (commands defined
 * at run time are added to it): the engine's schema unless a program
 * sets the text of its whole schema, static storage (the emulator:
 * qapi_introspect_json() of qapi/qapi-schema.json).  NULL: the engine's
 * again. */
void monitor_set_introspection(const char *json);
const char *monitor_introspection(void);

/*
 * What query-block shows of the device a backend is attached to.  The
 * engine knows backends only; the program that owns the devices says,
 * for a backend, whether a drive uses it and how it looks.  Strings stay
 * the program's and must live until the next main loop iteration.
 */
typedef struct QmpDriveInfo {
    const char *qdev;           /* the device path ("qdev") */
    bool removable;
    bool tray_open;             /* removable drives only */
    bool locked;
    bool write_cache;           /* as the guest set it */
    const char *io_status;      /* QEMU's: "ok", "failed", "nospace" */
} QmpDriveInfo;
/* False: no device uses blk (query-block shows the backend alone). */
typedef bool QmpDriveInfoFunc(BlockBackend *blk, QmpDriveInfo *info);
/* NULL: no devices (the default). */
void monitor_set_drive_info(QmpDriveInfoFunc *fn);

/*
 * Starts listening as QEMU's -qmp option says:
 *   unix:PATH[,server=on][,wait=off]
 *   tcp:HOST:PORT[,server=on][,wait=off]
 * HOST may be any address of this machine (a warning on stderr if it is
 * not loopback); empty (tcp::PORT) binds 127.0.0.1, not every address as
 * in QEMU.
 * With wait=on (the default) it runs the loop until a client connects.
 */
bool monitor_add_qmp(const char *spec, GError **errp);
/* The same; *bad_spec tells a malformed spec (or a host that is not an
 * address of this machine) from a socket that could not be made. */
bool monitor_listen(const char *spec, bool *bad_spec, GError **errp);
/* Stops listening, closes every client, removes unix sockets. */
void monitor_cleanup(void);
/* Number of connected clients (tests, shutdown). */
unsigned monitor_client_count(void);
/* Blocks until all queued output is written or clients are gone. */
void monitor_flush_all(void);

/* Executes one request object (parsed JSON); returns the reply or NULL
 * for none.  negotiated tells whether capabilities were negotiated;
 * oob_enabled whether the client switched 'oob' on (without it,
 * "exec-oob" is an unexpected member, as in QEMU).  *negotiate is set
 * when the request was a successful qmp_capabilities. */
json_t *qmp_dispatch_oob(QmpCommandList *cmds, json_t *req, bool negotiated,
                         bool oob_enabled, bool *negotiate);
/* The same for a client with 'oob' (the fuzz target's view). */
json_t *qmp_dispatch(QmpCommandList *cmds, json_t *req, bool negotiated,
                     bool *negotiate);

/*
 * Parses one request text as the server does: duplicate keys refused;
 * an integer in [2^63, 2^64) becomes the negative json integer with the
 * same bits, marked with qapi_json_mark_big_uint() and added to *big
 * (unmark them with qmp_request_free_big() before freeing the request);
 * other integers beyond int64 become reals, as QEMU's parser makes them.
 * NULL and *error (a QMP error desc) on bad JSON.
 */
json_t *qmp_parse_request(const char *text, size_t len, GPtrArray **big,
                          char **error);
void qmp_request_free_big(GPtrArray *big);

#endif
