/*
 * internal.h - what the files of api/ share: the structs behind the
 * public handles of include/xblk/ and the translation of the engine's
 * GErrors into XblkErrors.  Never installed.
 *
 * api/ is the top of the engine: it may include every engine layer
 * (util/, block/, ...), and nothing includes it but its own files.
 */
#ifndef XBLK_API_INTERNAL_H
#define XBLK_API_INTERNAL_H

#define XBLK_BUILDING_LIBRARY 1
#include "include/xblk/xblk.h"
#include "block/block-backend.h"
#include <glib.h>

struct XblkError {
    XblkErrorCode code;
    char *message;
};

/* api/state.c: the save-state part of an engine (NULL until used). */
typedef struct XblkStateHost XblkStateHost;

struct XblkEngine {
    GMainContext *ctx;          /* the loop's (aio_context()) */
    bool own_context;
    /* Own context: the epoll set of the context's descriptors as of the
     * last xblk_engine_dispatch(), and its timeout. */
    int epfd;
    GPollFD *fds;
    int nfds, fds_alloc;
    int timeout_ms;
    GList *disks;               /* of XblkDisk, open ones */
    XblkStateHost *state;       /* RAM, devices, the host (api/state.c) */
};

struct XblkDisk {
    XblkEngine *engine;
    BlockBackend *blk;
    unsigned in_flight;         /* requests submitted, not completed */
    char *name;                 /* a host's name for it, or NULL: its
                                 * node name */
};

/* For hosts built into the tree (xblk-system): an XblkDisk over a
 * backend the host made (a -drive), named name (its id); closing it
 * drops the reference it took. */
XblkDisk *xblk_api_disk_wrap(XblkEngine *engine, BlockBackend *blk,
                             const char *name);
/* The backend behind a disk; the disk that wraps blk, or NULL. */
BlockBackend *xblk_api_disk_blk(XblkDisk *disk);
XblkDisk *xblk_api_disk_of_blk(BlockBackend *blk);

/* The engine of the process, or NULL. */
XblkEngine *xblk_api_engine(void);

void xblk_api_error(XblkError **err, XblkErrorCode code, const char *fmt,
                    ...) G_GNUC_PRINTF(3, 4);
/* Moves an engine error into *err (code guessed from its class and
 * text); frees gerr. */
void xblk_api_error_from(XblkError **err, GError *gerr);
/* The other way, for the host's hooks: moves err (or, NULL, a generic
 * text) into *errp; frees err. */
void xblk_api_error_to_gerror(GError **errp, XblkError *err);

/* api/state.c: the engine's form of a public device table (checked and
 * converted once per process; NULL with *err if it breaks a rule), for
 * in-tree users of the engine's stream (tests). */
#include "migration/vmstate.h"
const VMStateDescription *xblk_api_device_vmsd(const XblkDeviceDesc *desc,
                                               XblkError **err);

/* api/monitor.c: frees the engine's monitor, if the host left it. */
void xblk_api_monitor_free_all(void);

/* api/state.c: frees the save-state part of an engine. */
void xblk_api_state_free(XblkEngine *e);

/* Engine-internal users of the coordinator (domain snapshots,
 * snapshot/domain.h) run their savestate_* calls between begin and end,
 * as xblk_state_* do: begin refuses while an operation runs (or without
 * a bound host and RAM) and marks the engine busy; end clears what a
 * capture or load left.  host fills *ops (owned by the caller) and
 * returns the engine's save-state host. */
struct SavestateHost;
struct SavestateHostOps;
bool xblk_api_state_begin(XblkEngine *e, GError **errp);
void xblk_api_state_end(XblkEngine *e);
void xblk_api_state_host(XblkEngine *e, struct SavestateHost *out,
                         struct SavestateHostOps *ops);

#endif
