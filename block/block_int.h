/*
 * block_int.h - what block drivers implement and what the generic layer
 * keeps per node.  Only block/ includes this file.
 *
 * A driver is one of: a protocol (talks to the host: `file`), a format
 * (interprets the bytes of its `file` child: `raw`, `qcow2`), or a filter
 * (passes requests to `file`, possibly changing them: `blkdebug`).
 *
 * Driver callbacks that do I/O are coroutine_fn and are always entered
 * from the generic layer in block/io.c, which has already counted the
 * request in bs->in_flight and checked it against the node's size.
 */
#ifndef XBLK_BLOCK_BLOCK_INT_H
#define XBLK_BLOCK_BLOCK_INT_H

#include "block/block.h"
#include "block/snapshot.h"
#include <jansson.h>

/*
 * Permissions (QEMU's model, the subset its lock bytes cover): what a
 * user of a node does with it, and what it lets others do at the same
 * time.  Each node's users are its parents (through the edge rules in
 * block.c) and, for a node nobody else uses or one with backends, the
 * implicit user that opened it.  Protocol drivers that talk to a shared
 * resource (the file driver's OFD locks) implement set_perm; the others
 * only pass permissions down.  Bit i is also the lock byte's index.
 */
enum {
    BLK_PERM_CONSISTENT_READ = 1 << 0,
    BLK_PERM_WRITE           = 1 << 1,
    BLK_PERM_WRITE_UNCHANGED = 1 << 2,
    BLK_PERM_RESIZE          = 1 << 3,
    BLK_PERM_ALL             = 0xf,
};
#define BLK_PERM_COUNT 4

/* "consistent read", "write", ... as in QEMU's lock errors. */
const char *bdrv_perm_name(int bit);

struct BdrvChild {
    BlockDriverState *bs;       /* the child node */
    BlockDriverState *parent;
    const char *role;           /* "file" or "backing" */
};

/* check/repair results (qemu-img check's vocabulary) */
typedef enum {
    BDRV_FIX_LEAKS  = 1 << 0,
    BDRV_FIX_ERRORS = 1 << 1,
} BdrvCheckMode;

typedef struct BdrvCheckResult {
    int corruptions;
    int leaks;
    int check_errors;
    int corruptions_fixed;
    int leaks_fixed;
    int64_t image_end_offset;
    int64_t allocated_clusters;
    int64_t total_clusters;
    int64_t fragmented_clusters;
    int64_t compressed_clusters;
    GString *log;               /* human-readable findings, one per line */
} BdrvCheckResult;

struct BlockDriver {
    const char *format_name;
    size_t instance_size;
    bool is_protocol;
    bool is_filter;
    bool supports_backing;

    /* Score 0..100 that buf (the first bytes of a file) is this format. */
    int (*probe)(const uint8_t *buf, int buf_size, const char *filename);

    /*
     * Opens bs.  Protocols get the file name; formats and filters find
     * their `file` child already attached.  Consumes the options it
     * knows from opts; leftovers are an error reported by the caller.
     */
    int coroutine_fn (*open)(BlockDriverState *bs, BlockOpts *opts, int flags,
                             GError **errp);
    void coroutine_fn (*close)(BlockDriverState *bs);
    int coroutine_fn (*create)(const char *filename, BlockOpts *opts,
                               GError **errp);
    /* Names of the -o options create() understands, NULL-terminated. */
    const char *const *create_opts;

    int coroutine_fn (*co_preadv)(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, IOVector *qiov,
                                  BdrvRequestFlags flags);
    int coroutine_fn (*co_pwritev)(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes, IOVector *qiov,
                                   BdrvRequestFlags flags);
    int coroutine_fn (*co_pwrite_zeroes)(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes,
                                         BdrvRequestFlags flags);
    int coroutine_fn (*co_pdiscard)(BlockDriverState *bs, int64_t offset,
                                    int64_t bytes);
    /* Writes the driver's own caches to its children (not to disk). */
    int coroutine_fn (*co_flush_to_os)(BlockDriverState *bs);
    /* Makes everything written durable (protocols only). */
    int coroutine_fn (*co_flush_to_disk)(BlockDriverState *bs);
    int coroutine_fn (*co_block_status)(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, int64_t *pnum,
                                        int64_t *map,
                                        BlockDriverState **file);
    int coroutine_fn (*co_truncate)(BlockDriverState *bs, int64_t offset,
                                    bool exact, PreallocMode prealloc,
                                    GError **errp);
    int64_t (*get_length)(BlockDriverState *bs);
    int64_t (*get_allocated_file_size)(BlockDriverState *bs);

    /* Format-specific information: {"type": ..., "data": {...}} */
    json_t *(*get_specific_info)(BlockDriverState *bs);
    int (*get_cluster_size)(BlockDriverState *bs);
    int coroutine_fn (*co_check)(BlockDriverState *bs, BdrvCheckResult *res,
                                 BdrvCheckMode fix);
    int coroutine_fn (*co_amend)(BlockDriverState *bs, BlockOpts *opts,
                                 bool force, GError **errp);
    /* Rewrites the backing file name in the header (rebase, commit). */
    int coroutine_fn (*co_change_backing_file)(BlockDriverState *bs,
                                               const char *backing_file,
                                               const char *backing_fmt,
                                               GError **errp);
    /* Drops every cluster so that all reads go to the backing file. */
    int coroutine_fn (*co_make_empty)(BlockDriverState *bs);
    /* Compressed writes of whole clusters (convert -c, write -c). */
    bool supports_compressed_writes;

    /* The VM state area (block/vmstate.h): pos counts from its start.
     * Absent: -ENOTSUP, except that filters pass on to `file`. */
    int coroutine_fn (*co_writev_vmstate)(BlockDriverState *bs,
                                          IOVector *qiov, int64_t pos,
                                          GError **errp);
    int coroutine_fn (*co_readv_vmstate)(BlockDriverState *bs,
                                         IOVector *qiov, int64_t pos,
                                         GError **errp);
    int coroutine_fn (*co_discard_vmstate)(BlockDriverState *bs,
                                           GError **errp);

    const BdrvSnapshotOps *snapshot;

    /*
     * Takes perm (BLK_PERM_*) and lets others have shared, checked
     * against other processes (QEMU's lock errors on conflict).  Atomic:
     * on failure the node keeps what it had.  Dropping permissions never
     * fails.  Absent: the node holds nothing of its own.
     */
    int (*set_perm)(BlockDriverState *bs, uint64_t perm, uint64_t shared,
                    GError **errp);

    /* Persistent dirty bitmaps (block/dirty-bitmap.h): whether a new one
     * named name can be stored (QEMU's errors); removing one from the
     * image at once.  Storing happens in close. */
    bool (*can_store_new_dirty_bitmap)(BlockDriverState *bs,
                                       const char *name,
                                       uint32_t granularity, GError **errp);
    int coroutine_fn (*co_remove_persistent_dirty_bitmap)(
        BlockDriverState *bs, const char *name, GError **errp);

    /* Reopening read-only in place and back (bdrv_reopen_read_only/
     * _read_write): store now what close would write, so the read-only
     * node never writes; mark it in use again before it may change.  On
     * failure the node stays as it was.  NULL: nothing to do. */
    int coroutine_fn (*co_reopen_ro)(BlockDriverState *bs, GError **errp);
    int coroutine_fn (*co_reopen_rw)(BlockDriverState *bs, GError **errp);
};

struct BlockDriverState {
    char *node_name;
    bool auto_node_name;        /* generated "#blockNNN" */
    char *filename;             /* host path of the bottom of this node */
    char *backing_file;         /* as written in the image header */
    char *backing_format;
    const BlockDriver *drv;
    void *opaque;               /* drv->instance_size bytes */
    int open_flags;
    bool read_only;
    bool reopened_ro;           /* opened read-write, now read-only */
    bool opened;
    int refcnt;

    BdrvChild *file;
    BdrvChild *backing;
    GList *parents;             /* BdrvChild* edges pointing at us */
    GList *backends;            /* BlockBackend* attached to us */

    unsigned in_flight;
    int quiesce_counter;
    CoQueue drain_waiters;      /* coroutines waiting for in_flight == 0 */

    /* O_DIRECT needs aligned offsets, lengths and buffers. */
    uint32_t request_alignment;
    uint32_t buf_alignment;

    /* BdrvDirtyBitmap*, newest first (block/dirty-bitmap.c); the write
     * path marks them when the list is not empty. */
    GList *dirty_bitmaps;


    /* Permissions last applied by set_perm (see BLK_PERM_*). */
    uint64_t perm, shared_perm;

    /* statistics, for query-blockstats later */
    uint64_t rd_bytes, wr_bytes, rd_ops, wr_ops, flush_ops;
};

void bdrv_register(const BlockDriver *drv);
/* Attaches child as role "file" or "backing"; takes over one reference. */
BdrvChild *bdrv_attach_child(BlockDriverState *parent,
                             BlockDriverState *child, const char *role);
void bdrv_detach_child(BlockDriverState *parent, BdrvChild *c);
/* Opens the backing chain named in the header of bs (format drivers). */
int coroutine_fn bdrv_open_backing(BlockDriverState *bs, BlockOpts *opts,
                                   GError **errp);

/* Install / remove a before-write hook (in memory; call drained). */

/* Recomputes the permissions every node under bs (bs included) needs
 * from its users and applies them (QEMU's lock errors on conflict). */
int bdrv_refresh_perms(BlockDriverState *bs, GError **errp);
/* Makes an open read-write node read-only in place and drops its write
 * locks (the old top of an external snapshot).  False, with the node
 * unchanged, when it cannot (see block.c). */
bool bdrv_reopen_read_only(BlockDriverState *bs, GError **errp);
/* Makes a node bdrv_reopen_read_only made read-only writable again. */
bool bdrv_reopen_read_write(BlockDriverState *bs, GError **errp);

void bdrv_inc_in_flight(BlockDriverState *bs);
void bdrv_dec_in_flight(BlockDriverState *bs);

void *bdrv_blockalign(BlockDriverState *bs, size_t size);
void *bdrv_try_blockalign(BlockDriverState *bs, size_t size);
void bdrv_vfree(void *p);

int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, BdrvCheckMode fix);
void bdrv_check_result_clear(BdrvCheckResult *res);
int bdrv_amend(BlockDriverState *bs, BlockOpts *opts, bool force,
               GError **errp);
int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt, GError **errp);
json_t *bdrv_get_specific_info(BlockDriverState *bs);
int bdrv_get_cluster_size(BlockDriverState *bs);

extern const BlockDriver bdrv_file;
extern const BlockDriver bdrv_raw;
extern const BlockDriver bdrv_qcow2;
extern const BlockDriver bdrv_blkdebug;

/*
 * A node of a filter driver that is not in the registry (the job filters
 * of block/job-filter.c), over child (attached as `backing`), read-only,
 * named node_name (checked by the caller) or "#blockNNN".
 */
BlockDriverState *bdrv_new_filter_node(const BlockDriver *drv,
                                       const char *node_name,
                                       BlockDriverState *child);

#endif
