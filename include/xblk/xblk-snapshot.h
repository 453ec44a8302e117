/*
 * xblk-snapshot.h - disk snapshots: atomic transactions of internal and
 * external snapshots over several disks, and the internal snapshots of
 * a disk (list, revert, delete).  Include <xblk/xblk.h>, not this file.
 *
 * A transaction applies every action or none (QEMU's `transaction`
 * command): the costly steps (creating overlay files, loading metadata)
 * run before a short drained section in which the disks' requests are
 * held and every action commits in memory; the disks' requests go on
 * right after it, and the call returns once every snapshot is durable.
 * Internal snapshots are qcow2 internal snapshots that `qemu-img
 * snapshot -l` lists; an external snapshot puts a new qcow2 overlay file
 * on top of the disk, the old image becoming its read-only backing file.
 *
 * Threads: the loop thread only (xblk-engine.h).  The calls iterate the
 * loop while they wait, so the disks' other requests and their
 * completions go on meanwhile.
 */
#ifndef XBLK_SNAPSHOT_H
#define XBLK_SNAPSHOT_H

#include "xblk-disk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum XblkSnapshotKind {
    XBLK_SNAPSHOT_INTERNAL = 1,
    XBLK_SNAPSHOT_EXTERNAL = 2,
} XblkSnapshotKind;

typedef struct XblkSnapshotAction {
    size_t size;                /* sizeof(XblkSnapshotAction) */
    XblkSnapshotKind kind;
    XblkDisk *disk;
    /* INTERNAL: the snapshot's name (unique on the disk). */
    const char *name;
    /* EXTERNAL: the overlay file to create (it must not exist), and the
     * node-name the overlay gets (NULL: one is generated).  The disk
     * handle then stands for the overlay, the new top. */
    const char *overlay_file;
    const char *overlay_node_name;
} XblkSnapshotAction;

/* Runs the actions as one transaction: true when every snapshot was
 * taken and is durable; false with *err set (the first failure, QEMU's
 * text) and no snapshot taken on any disk. */
XBLK_API bool xblk_snapshot_transaction(XblkEngine *engine,
                                        const XblkSnapshotAction *actions,
                                        size_t count, XblkError **err);

/* One internal snapshot as `qemu-img snapshot -l` shows it. */
typedef struct XblkSnapshotInfo {
    size_t size;                /* sizeof(XblkSnapshotInfo) */
    char id[128];
    char name[256];
    uint64_t vm_state_size;     /* bytes of VM state (0: disk only) */
    int64_t date_sec;           /* seconds since the Epoch */
    uint64_t vm_clock_ns;
} XblkSnapshotInfo;

/* The disk's internal snapshots: up to max entries into out (each with
 * its size set by the caller, or out NULL with max 0 to count); returns
 * how many there are, or -1 with *err set. */
XBLK_API int xblk_snapshot_list(XblkDisk *disk, XblkSnapshotInfo *out,
                                int max, XblkError **err);
/* Reverts the disk to an internal snapshot (by ID or name).  The disk's
 * requests are held meanwhile; its content afterwards is the
 * snapshot's. */
XBLK_API bool xblk_snapshot_revert(XblkDisk *disk, const char *id_or_name,
                                   XblkError **err);
/* Deletes an internal snapshot (by ID or name); its clusters are free
 * for reuse once the call returns. */
XBLK_API bool xblk_snapshot_delete(XblkDisk *disk, const char *id_or_name,
                                   XblkError **err);

#ifdef __cplusplus
}
#endif

#endif
