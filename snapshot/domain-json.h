/*
 * domain-json.h - the domain-snapshot commands as JSON in, JSON out: one
 * table of commands, each a QAPI definition (monitor/qmp-dynamic.h's
 * run-time form) and a handler.  The emulator registers them on its QMP
 * monitor (monitor/host/qmp-domsnap.c); tools/xblk-snapshot calls the
 * same handlers directly on a stopped machine's catalog (--offline), so
 * both paths give the same replies and errors.
 *
 * The commands (arguments / reply; docs/snapshots.md has the details):
 *   x-xblk-snapshot-create   {xml, ?disk-only, ?no-metadata, ?redefine,
 *                             ?current, ?validate}
 *                            / {name, ?guest-pause-ns}
 *   x-xblk-snapshot-list     {?roots, ?leaves, ?no-leaves, ?current,
 *                             ?internal, ?external, ?disk-only, ?active,
 *                             ?inactive, ?from, ?descendants, ?tree}
 *                            / {snapshots: [SnapshotInfo], ?tree}
 *   x-xblk-snapshot-info     {name} / SnapshotInfo
 *   x-xblk-snapshot-dumpxml  {name} / {xml}
 *   x-xblk-snapshot-current  {?name} / {?name}   (name given: set it)
 *   x-xblk-snapshot-parent   {name} / {?parent}
 *   x-xblk-snapshot-edit     {name, xml} / {name}  (rename, description)
 *   x-xblk-snapshot-revert   {name, ?running, ?paused, ?force}
 *                            / {state, ?guest-pause-ns}
 *   x-xblk-snapshot-delete   {name, ?children, ?children-only,
 *                             ?metadata} / {deleted: [str]}
 *   x-xblk-snapshot-redefine {xml, ?current} / {name}
 * SnapshotInfo: {name, ?parent, creation-time (seconds since the epoch),
 *   state, ?description, current, memory ("no", "internal", "external"),
 *   location ("internal", "external", "none"), children, descendants}.
 *
 * Errors are GErrors of domain XBLK_ERROR with an ErrorClass code
 * (GenericError unless stated), their texts libvirt's where it has one.
 * Main loop only.
 */
#ifndef XBLK_SNAPSHOT_DOMAIN_JSON_H
#define XBLK_SNAPSHOT_DOMAIN_JSON_H

#include "snapshot/domain.h"
#include <jansson.h>

typedef bool DsnapJsonHandler(DsnapDomain *d, json_t *args, json_t **ret,
                              GError **errp);

typedef struct DsnapJsonCommand {
    const char *name;
    const char *definition;     /* QAPI command definition in JSON */
    DsnapJsonHandler *handler;
} DsnapJsonCommand;

/* The commands, ending with a zeroed entry. */
extern const DsnapJsonCommand dsnap_json_commands[];

/* Runs command `name` with args (an object, borrowed; NULL = {}); *ret
 * gets a new reference to the reply.  Arguments are checked here too
 * (unknown command, missing or mistyped member) for callers that do not
 * go through the monitor's checks. */
bool dsnap_json_call(DsnapDomain *d, const char *name, json_t *args,
                     json_t **ret, GError **errp);

#endif
