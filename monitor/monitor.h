/*
 * monitor.h - the QMP server: a reusable module of the main loop that the
 * xblk-system daemon (and later the emulator) embeds.
 *
 * Clients connect over a unix socket (created mode 0600) or TCP bound to
 * loopback; each gets QEMU's greeting and must negotiate with
 * qmp_capabilities before anything else.  Requests are dispatched one at
 * a time on the main loop, in arrival order per client; while a command
 * runs (and possibly polls the loop for I/O), other clients' requests
 * wait their turn.  Events go to every negotiated client.
 */
#ifndef XBLK_MONITOR_MONITOR_H
#define XBLK_MONITOR_MONITOR_H

#include "monitor/qmp-registry.h"
#include <stdbool.h>

typedef struct QmpServer QmpServer;

QmpCommandList *qmp_command_list_new(void);
bool qmp_command_exists(QmpCommandList *cmds, const char *name);
/* Calls fn for every registered command name (sorted). */
void qmp_command_foreach(QmpCommandList *cmds,
                         void (*fn)(const char *name, void *opaque),
                         void *opaque);

/* The monitor's command list (qmp_init_marshal registers into it). */
QmpCommandList *monitor_commands(void);

/*
 * Starts listening as QEMU's -qmp option says:
 *   unix:PATH[,server=on][,wait=off]
 *   tcp:HOST:PORT[,server=on][,wait=off]   (HOST must be loopback)
 */
bool monitor_add_qmp(const char *spec, GError **errp);
/* Stops listening, closes every client, removes unix sockets. */
void monitor_cleanup(void);
/* Number of connected clients (tests, shutdown). */
unsigned monitor_client_count(void);
/* Blocks until all queued output is written or clients are gone. */
void monitor_flush_all(void);

/* Registers the commands the generator does not marshal (query-qmp-schema). */
void qmp_cmds_register_extra(QmpCommandList *cmds);

/* Executes one request object (parsed JSON); returns the reply or NULL
 * for none.  negotiated tells whether capabilities were negotiated. */
json_t *qmp_dispatch(QmpCommandList *cmds, json_t *req, bool negotiated,
                     bool *negotiate);

#endif
