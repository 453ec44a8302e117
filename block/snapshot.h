/*
 * snapshot.h - internal (in-image) snapshots through the block layer.
 *
 * Creation is split for the pause budget (DESIGN rule 1):
 *   prepare  - may do I/O and fail: loads metadata, reserves space;
 *   commit   - in memory only, cannot fail: from here on the snapshot
 *              exists for readers of this process;
 *   finish   - durable write-out in the order rule 2 requires; only after
 *              it succeeds is the snapshot listed on disk;
 *   abort    - undoes a prepare that was not committed.
 * bdrv_snapshot_create() runs all three for callers without a pause.
 *
 * A save state's VM state may also come late (vm_state_late): written
 * between commit and finish, while the guest runs again, straight into
 * the snapshot being created (block/vmstate.h:
 * bdrv_co_snapshot_create_writev_vmstate), its final size given before
 * finish.  Until finish the snapshot exists only in memory; a flush of
 * the node meanwhile waits for the finish (it cannot complete a
 * snapshot whose VM state is not there yet).  If the write-out fails,
 * abort - allowed after commit in this case only - abandons the
 * snapshot: nothing of it is ever listed or kept, and the active layer
 * keeps everything written since the commit.
 */
#ifndef XBLK_BLOCK_SNAPSHOT_H
#define XBLK_BLOCK_SNAPSHOT_H

#include "block/block.h"

/*
 * A snapshot as listed, and the parameters of a new one: creation records
 * vm_state_size, date_sec/date_nsec, vm_clock_nsec and icount exactly as
 * given (zero-initialised callers get zeroes; QEMU's savevm uses
 * BDRV_SNAPSHOT_NO_ICOUNT outside record/replay).  vm_state_size > 0 means
 * the VM state written to the node's VM state area (block/vmstate.h)
 * belongs to the new snapshot: its L1 table maps it and the active layer
 * gives it up.  disk_size is set by the driver.  id_str NULL or "" picks
 * the next free numeric ID.
 *
 * vm_state_late (creation only, never set in listings): the snapshot
 * takes the VM state area over at commit whatever vm_state_size says,
 * and its VM state is written after the commit
 * (bdrv_co_snapshot_create_writev_vmstate); vm_state_size is then only
 * provisional until bdrv_snapshot_create_set_vm_state_size().
 */
typedef struct BdrvSnapshotInfo {
    char *id_str;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;            /* UINT64_MAX when not recorded */
    uint64_t disk_size;
    bool vm_state_late;
} BdrvSnapshotInfo;

#define BDRV_SNAPSHOT_NO_ICOUNT UINT64_MAX

typedef struct BdrvSnapshotCreate BdrvSnapshotCreate;

typedef struct BdrvSnapshotOps {
    /* Returns the number of snapshots and a new array in *list. */
    int (*list)(BlockDriverState *bs, BdrvSnapshotInfo **list);
    int coroutine_fn (*create_prepare)(BlockDriverState *bs,
                                       const BdrvSnapshotInfo *sn,
                                       BdrvSnapshotCreate **state,
                                       GError **errp);
    void (*create_commit)(BlockDriverState *bs, BdrvSnapshotCreate *state);
    int coroutine_fn (*create_finish)(BlockDriverState *bs,
                                      BdrvSnapshotCreate *state,
                                      GError **errp);
    /* Before commit; after commit only for a late VM state (abandons). */
    void coroutine_fn (*create_abort)(BlockDriverState *bs,
                                      BdrvSnapshotCreate *state);
    /* The late VM state (see block/vmstate.h).  Optional. */
    int coroutine_fn (*create_writev_vmstate)(BlockDriverState *bs,
                                              BdrvSnapshotCreate *state,
                                              IOVector *qiov, int64_t pos,
                                              GError **errp);
    int (*create_set_vm_state_size)(BlockDriverState *bs,
                                    BdrvSnapshotCreate *state,
                                    uint64_t size, GError **errp);
    /* Before the snapshot is written: its VM clock (the machine's virtual
     * time at the instant, known only inside the pause).  Optional. */
    void (*create_set_vm_clock)(BlockDriverState *bs,
                                BdrvSnapshotCreate *state, uint64_t ns);
    int coroutine_fn (*apply)(BlockDriverState *bs, const char *id_or_name,
                              GError **errp);
    /* id or name may be NULL, not both; both given must match one entry */
    int coroutine_fn (*delete)(BlockDriverState *bs, const char *id,
                               const char *name, BdrvSnapshotInfo *deleted,
                               GError **errp);
    /* Reads [pos, +qiov->size) of a snapshot's VM state (block/vmstate.h:
     * bdrv_co_snapshot_readv_vmstate).  Optional. */
    int coroutine_fn (*readv_vmstate)(BlockDriverState *bs,
                                      const char *id_or_name, IOVector *qiov,
                                      int64_t pos, GError **errp);
} BdrvSnapshotOps;

void bdrv_snapshot_info_clear(BdrvSnapshotInfo *sn);
void bdrv_snapshot_list_free(BdrvSnapshotInfo *list, int n);

bool bdrv_can_snapshot(BlockDriverState *bs);
int bdrv_snapshot_list(BlockDriverState *bs, BdrvSnapshotInfo **list);
/* Finds by ID first, then by name, as qemu-img does. */
bool bdrv_snapshot_find(BlockDriverState *bs, const char *id_or_name,
                        BdrvSnapshotInfo *out);
int bdrv_snapshot_create(BlockDriverState *bs, const BdrvSnapshotInfo *sn,
                         GError **errp);
int coroutine_fn bdrv_co_snapshot_create_prepare(BlockDriverState *bs,
                                                 const BdrvSnapshotInfo *sn,
                                                 BdrvSnapshotCreate **state,
                                                 GError **errp);
void bdrv_snapshot_create_commit(BlockDriverState *bs,
                                 BdrvSnapshotCreate *state);
int coroutine_fn bdrv_co_snapshot_create_finish(BlockDriverState *bs,
                                                BdrvSnapshotCreate *state,
                                                GError **errp);
void coroutine_fn bdrv_co_snapshot_create_abort(BlockDriverState *bs,
                                                BdrvSnapshotCreate *state);
int bdrv_snapshot_apply(BlockDriverState *bs, const char *id_or_name,
                        GError **errp);
int bdrv_snapshot_delete(BlockDriverState *bs, const char *id,
                         const char *name, GError **errp);

#endif
