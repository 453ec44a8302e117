/*
 * qmp-transaction.c - QMP `transaction`, the standalone commands of its
 * actions (each a transaction of one action), and
 * x-query-transaction-stats.
 *
 * The dispatcher maps each TransactionActionKind to a function that
 * queues the matching txn_add_* action (table txn_dispatch below).  Kinds
 * without an implementation queue an action that fails in prepare, so a
 * transaction naming them rolls back like any other failure.
 */
#include "block/snapshot.h"
#include "block/transaction.h"
#include "block/txn-backup.h"
#include "block/txn-snapshot.h"
#include "monitor/qmp-bitmap.h"
#include "qapi/engine-qapi-commands.h"
#include "qapi/engine-qapi-visit.h"
#include "util/error.h"

/* ---- one function per kind ---- */

static void add_abort(Transaction *t, TransactionAction *a)
{
    txn_add_abort(t);
}

static void add_snapshot_sync(Transaction *t, TransactionAction *a)
{
    BlockdevSnapshotSync *s = a->u.blockdev_snapshot_sync.data;
    txn_add_snapshot_sync(t, s->has_device ? s->device : NULL,
                          s->has_node_name ? s->node_name : NULL,
                          s->snapshot_file,
                          s->has_snapshot_node_name ? s->snapshot_node_name
                                                    : NULL,
                          s->has_format ? s->format : NULL,
                          s->has_mode && s->mode == NEW_IMAGE_MODE_EXISTING);
}

static void add_snapshot(Transaction *t, TransactionAction *a)
{
    BlockdevSnapshot *s = a->u.blockdev_snapshot.data;
    txn_add_snapshot(t, s->node, s->overlay);
}

static void add_snapshot_internal(Transaction *t, TransactionAction *a)
{
    BlockdevSnapshotInternal *s = a->u.blockdev_snapshot_internal_sync.data;
    txn_add_snapshot_internal(t, s->device, s->name);
}

static void add_bitmap_add(Transaction *t, TransactionAction *a)
{
    BlockDirtyBitmapAdd *b = a->u.block_dirty_bitmap_add.data;
    txn_add_bitmap_add(t, b->node, b->name, b->has_granularity,
                       b->granularity > UINT32_MAX ? 1 : b->granularity,
                       b->has_persistent && b->persistent,
                       b->has_disabled && b->disabled);
}

#define BITMAP_ACTION(fn, member, add)                          \
    static void fn(Transaction *t, TransactionAction *a)        \
    {                                                           \
        BlockDirtyBitmap *b = a->u.member.data;                 \
        add(t, b->node, b->name);                               \
    }
BITMAP_ACTION(add_bitmap_remove, block_dirty_bitmap_remove,
              txn_add_bitmap_remove)
BITMAP_ACTION(add_bitmap_clear, block_dirty_bitmap_clear, txn_add_bitmap_clear)
BITMAP_ACTION(add_bitmap_enable, block_dirty_bitmap_enable,
              txn_add_bitmap_enable)
BITMAP_ACTION(add_bitmap_disable, block_dirty_bitmap_disable,
              txn_add_bitmap_disable)

static void add_bitmap_merge(Transaction *t, TransactionAction *a)
{
    BlockDirtyBitmapMerge *b = a->u.block_dirty_bitmap_merge.data;
    size_t n;
    g_autofree TxnBitmapSource *src = qmp_bitmap_sources(b->bitmaps, &n);
    txn_add_bitmap_merge(t, b->node, b->target, src, n);
}

/*
 * DriveBackup and BlockdevBackup both start with BackupCommon's members,
 * so one macro turns either into TxnBackupArgs with QEMU's defaults.
 * filter-node-name names the "copy-before-write" filter node the job puts
 * above the source while it runs (block/backup.h); without it the node is
 * an implicit "#blockNNN".  x-perf is accepted and unused (xblk has no
 * copy tuning of that kind).
 */
#define BACKUP_ARGS(args, b) do {                                       \
        txn_backup_args_init(&(args));                                  \
        (args).job_id = (b)->has_job_id ? (b)->job_id : NULL;           \
        (args).device = (b)->device;                                    \
        (args).target = (b)->target;                                    \
        (args).sync = (BackupSyncMode)(b)->sync;                        \
        (args).speed = (b)->has_speed ? (b)->speed : 0;                 \
        (args).bitmap = (b)->has_bitmap ? (b)->bitmap : NULL;           \
        (args).has_bitmap_mode = (b)->has_bitmap_mode;                  \
        (args).bitmap_mode = (BackupBitmapMode)(b)->bitmap_mode;        \
        (args).compress = (b)->has_compress && (b)->compress;           \
        (args).filter_node_name = (b)->has_filter_node_name             \
                                      ? (b)->filter_node_name : NULL;   \
        if ((b)->has_on_source_error) {                                 \
            (args).on_source_error = (XblkOnError)(b)->on_source_error; \
        }                                                               \
        if ((b)->has_on_target_error) {                                 \
            (args).on_target_error = (XblkOnError)(b)->on_target_error; \
        }                                                               \
        if ((b)->has_auto_finalize) {                                   \
            (args).auto_finalize = (b)->auto_finalize;                  \
        }                                                               \
        if ((b)->has_auto_dismiss) {                                    \
            (args).auto_dismiss = (b)->auto_dismiss;                    \
        }                                                               \
    } while (0)

static void add_blockdev_backup(Transaction *t, TransactionAction *a)
{
    BlockdevBackup *b = a->u.blockdev_backup.data;
    TxnBackupArgs args;
    BACKUP_ARGS(args, b);
    txn_add_blockdev_backup(t, &args);
}

static void add_drive_backup(Transaction *t, TransactionAction *a)
{
    DriveBackup *b = a->u.drive_backup.data;
    TxnBackupArgs args;
    BACKUP_ARGS(args, b);
    args.format = b->has_format ? b->format : NULL;
    args.mode_existing = b->has_mode && b->mode == NEW_IMAGE_MODE_EXISTING;
    txn_add_drive_backup(t, &args);
}

typedef void TxnDispatchFunc(Transaction *t, TransactionAction *a);

/* Every TransactionActionKind has its entry. */
static TxnDispatchFunc *const txn_dispatch[TRANSACTION_ACTION_KIND__MAX] = {
    [TRANSACTION_ACTION_KIND_ABORT] = add_abort,
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT] = add_snapshot,
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_INTERNAL_SYNC] =
        add_snapshot_internal,
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_SYNC] = add_snapshot_sync,
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ADD] = add_bitmap_add,
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_REMOVE] = add_bitmap_remove,
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_CLEAR] = add_bitmap_clear,
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ENABLE] = add_bitmap_enable,
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_DISABLE] = add_bitmap_disable,
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_MERGE] = add_bitmap_merge,
    [TRANSACTION_ACTION_KIND_BLOCKDEV_BACKUP] = add_blockdev_backup,
    [TRANSACTION_ACTION_KIND_DRIVE_BACKUP] = add_drive_backup,
};

void qmp_transaction(TransactionActionList *actions, bool has_properties,
                     TransactionProperties *properties, GError **errp)
{
    TxnCompletionMode mode = TXN_COMPLETION_INDIVIDUAL;
    if (has_properties && properties->has_completion_mode &&
        properties->completion_mode == ACTION_COMPLETION_MODE_GROUPED) {
        mode = TXN_COMPLETION_GROUPED;
    }
    Transaction *t = txn_new(mode);
    for (TransactionActionList *l = actions; l; l = l->next) {
        TxnDispatchFunc *fn = txn_dispatch[l->value->type];
        g_assert(fn);
        fn(t, l->value);
    }
    txn_run(t, errp);
}

/* ---- standalone commands ---- */

static void run_one(void (*add)(Transaction *t, TransactionAction *a),
                    TransactionAction *a, GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add(t, a);
    txn_run(t, errp);
}

void qmp_blockdev_snapshot_sync(bool has_device, const char *device,
                                bool has_node_name, const char *node_name,
                                const char *snapshot_file,
                                bool has_snapshot_node_name,
                                const char *snapshot_node_name,
                                bool has_format, const char *format,
                                bool has_mode, NewImageMode mode,
                                GError **errp)
{
    BlockdevSnapshotSync s = {
        .has_device = has_device, .device = (char *)device,
        .has_node_name = has_node_name, .node_name = (char *)node_name,
        .snapshot_file = (char *)snapshot_file,
        .has_snapshot_node_name = has_snapshot_node_name,
        .snapshot_node_name = (char *)snapshot_node_name,
        .has_format = has_format, .format = (char *)format,
        .has_mode = has_mode, .mode = mode,
    };
    TransactionAction a = { .type = TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_SYNC };
    a.u.blockdev_snapshot_sync.data = &s;
    run_one(add_snapshot_sync, &a, errp);
}

void qmp_blockdev_snapshot(const char *node, const char *overlay,
                           GError **errp)
{
    BlockdevSnapshot s = { .node = (char *)node, .overlay = (char *)overlay };
    TransactionAction a = { .type = TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT };
    a.u.blockdev_snapshot.data = &s;
    run_one(add_snapshot, &a, errp);
}

void qmp_blockdev_snapshot_internal_sync(const char *device,
                                         const char *name, GError **errp)
{
    BlockdevSnapshotInternal s = { .device = (char *)device,
                                   .name = (char *)name };
    TransactionAction a = {
        .type = TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_INTERNAL_SYNC };
    a.u.blockdev_snapshot_internal_sync.data = &s;
    run_one(add_snapshot_internal, &a, errp);
}

void qmp_drive_backup(DriveBackup *arg, GError **errp)
{
    TransactionAction a = { .type = TRANSACTION_ACTION_KIND_DRIVE_BACKUP };
    a.u.drive_backup.data = arg;
    run_one(add_drive_backup, &a, errp);
}

void qmp_blockdev_backup(BlockdevBackup *arg, GError **errp)
{
    TransactionAction a = { .type = TRANSACTION_ACTION_KIND_BLOCKDEV_BACKUP };
    a.u.blockdev_backup.data = arg;
    run_one(add_blockdev_backup, &a, errp);
}

SnapshotInfo *qmp_blockdev_snapshot_delete_internal_sync(const char *device,
                                                         bool has_id,
                                                         const char *id,
                                                         bool has_name,
                                                         const char *name,
                                                         GError **errp)
{
    BdrvSnapshotInfo sn = { 0 };
    if (!txn_snapshot_delete_internal(device, has_id ? id : NULL,
                                      has_name ? name : NULL, &sn, errp)) {
        return NULL;
    }
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}",
                          "id", sn.id_str, "name", sn.name,
                          "vm-state-size", (json_int_t)sn.vm_state_size,
                          "date-sec", (json_int_t)sn.date_sec,
                          "date-nsec", (json_int_t)sn.date_nsec,
                          "vm-clock-sec",
                          (json_int_t)(sn.vm_clock_nsec / 1000000000ULL),
                          "vm-clock-nsec",
                          (json_int_t)(sn.vm_clock_nsec % 1000000000ULL));
    if (sn.icount != BDRV_SNAPSHOT_NO_ICOUNT) {
        json_object_set_new(j, "icount", json_integer((json_int_t)sn.icount));
    }
    bdrv_snapshot_info_clear(&sn);
    SnapshotInfo *info = NULL;
    visit_SnapshotInfo_from_json(j, "return", &info, errp);
    json_decref(j);
    return info;
}

/* ---- x-query-transaction-stats ---- */

TransactionStats *qmp_x_query_transaction_stats(GError **errp)
{
    const TxnStats *st = txn_last_stats();
    if (!st->valid) {
        error_setg(errp, "No transaction has run yet");
        return NULL;
    }
    json_t *acts = json_array();
    for (unsigned i = 0; i < st->n_actions; i++) {
        json_array_append_new(acts, json_pack("{s:s,s:I}", "type",
                                              st->actions[i].type,
                                              "commit-ns",
                                              (json_int_t)st->actions[i]
                                                  .commit_ns));
    }
    json_t *j = json_pack("{s:b,s:I,s:I,s:I,s:I,s:o}",
                          "committed", st->committed,
                          "prepare-ns", (json_int_t)st->prepare_ns,
                          "drained-ns", (json_int_t)st->drained_ns,
                          "finish-ns", (json_int_t)st->finish_ns,
                          "total-ns", (json_int_t)st->total_ns,
                          "actions", acts);
    TransactionStats *ts = NULL;
    visit_TransactionStats_from_json(j, "return", &ts, errp);
    json_decref(j);
    return ts;
}
