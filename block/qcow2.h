/*
 * qcow2.h - internal interfaces of the qcow2 driver (block/qcow2*.c).
 *
 * On-disk format: QEMU's docs/interop/qcow2.txt, versions 2 and 3.
 *
 * Crash-consistency invariants (DESIGN rule 2), kept by the write-back
 * order of the metadata caches and by deferred frees:
 *   - a refcount increment reaches the file before any L1/L2 entry that
 *     references the cluster (refblocks written, fdatasync, then tables);
 *   - a refcount decrement reaches the file only after every table that
 *     dropped the reference is durable; until then the cluster stays
 *     allocated in memory too, so it cannot be reused while an on-disk
 *     table may still point at it ("pending frees");
 *   - transitions that change a refcount and an active OFLAG_COPIED flag
 *     together (internal snapshots) never rewrite live metadata in place:
 *     they write new copies and switch to them with one header write
 *     (qcow2_commit_atomic, the "shadow commit").
 * A crash therefore leaves at worst leaked clusters.
 *
 * Concurrency: all metadata is guarded by s->lock (a CoMutex).  Data I/O
 * runs unlocked; allocating writes register a Qcow2Alloc so that
 * overlapping requests wait instead of allocating twice.
 */
#ifndef XBLK_BLOCK_QCOW2_H
#define XBLK_BLOCK_QCOW2_H

#include "block/block_int.h"
#include "util/cutils.h"

#define QCOW_MAGIC 0x514649fbu
#define QCOW_MAX_CRYPT_CLUSTERS 32
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_DEFAULT_CLUSTER_BITS 16
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_L1_SIZE (32u << 20)          /* bytes, as QEMU limits */
#define QCOW2_MAX_REFTABLE_SIZE (8u << 20)     /* bytes */
#define QCOW2_MAX_SNAPSHOT_TABLE (64u << 20)
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_V3_HEADER_LEN 112

#define QCOW_OFLAG_COPIED     (1ULL << 63)
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO       (1ULL << 0)
#define L1E_OFFSET_MASK       0x00fffffffffffe00ULL
#define L1E_RESERVED_MASK     0x7f000000000001ffULL
#define L2E_OFFSET_MASK       0x00fffffffffffe00ULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL
#define REFT_OFFSET_MASK      0xfffffffffffffe00ULL
#define REFT_RESERVED_MASK    0x1ffULL

/* header feature bits */
#define QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ULL << 4)
#define QCOW2_INCOMPAT_SUPPORTED   (QCOW2_INCOMPAT_DIRTY | \
                                    QCOW2_INCOMPAT_CORRUPT | \
                                    QCOW2_INCOMPAT_COMPRESSION)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS     (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)
#define QCOW2_AUTOCLEAR_KNOWN       QCOW2_AUTOCLEAR_BITMAPS

/* header extension types */
#define QCOW2_EXT_END            0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857u
#define QCOW2_EXT_BITMAPS        0x23852875u
#define QCOW2_EXT_CRYPTO         0x0537be77u
#define QCOW2_EXT_DATA_FILE      0x44415441u

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

typedef enum {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN,
    QCOW2_CLUSTER_ZERO_ALLOC,
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} Qcow2ClusterType;

typedef struct Qcow2Cache Qcow2Cache;

/* One internal snapshot as held in memory. */
typedef struct Qcow2Snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id_str;
    char *name;
    uint64_t disk_size;
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;              /* UINT64_MAX: not recorded */
    uint32_t extra_data_size;     /* on-disk size, >= 24 when we write */
    uint8_t *unknown_extra;       /* bytes past the fields we know */
    uint32_t unknown_extra_size;
} Qcow2Snapshot;

/* An unknown header extension, preserved verbatim. */
typedef struct Qcow2UnknownExt {
    uint32_t type;
    uint32_t len;
    uint8_t *data;
} Qcow2UnknownExt;

/* A guest range being allocated by a request that dropped s->lock. */
typedef struct Qcow2Alloc {
    uint64_t guest_start;         /* first guest cluster index */
    uint64_t nb_clusters;
    CoQueue waiters;
} Qcow2Alloc;

typedef struct Qcow2PendingFree {
    uint64_t offset;
    uint64_t bytes;
} Qcow2PendingFree;

typedef struct Qcow2State {
    /* header */
    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t l2_bits;             /* log2 of entries per L2 table */
    uint64_t l2_size;             /* entries per L2 table */
    uint64_t size;                /* virtual disk size */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t header_length;
    uint8_t compression_type;
    uint32_t crypt_method;

    /* active L1 table (host byte order) */
    uint64_t l1_table_offset;
    uint32_t l1_size;
    uint64_t *l1_table;
    uint64_t l1_alloc;            /* entries allocated in l1_table */
    GHashTable *l1_dirty;         /* index -> 1: entries to write */

    /* refcounts */
    uint32_t refcount_order;
    uint32_t refcount_bits;
    uint64_t refcount_max;
    uint32_t refblock_bits;       /* log2 of entries per refblock */
    uint64_t refblock_size;       /* entries per refblock */
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint64_t *refcount_table;     /* host byte order */
    uint64_t refcount_table_size; /* entries */
    uint64_t free_cluster_index;  /* allocation hint */
    uint64_t free_byte_offset;    /* where the next compressed chunk goes */
    GArray *pending_frees;        /* of Qcow2PendingFree */
    GHashTable *pending_free_clusters; /* cluster index -> pending count */

    /* snapshots */
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t snapshots_size;      /* bytes on disk */
    Qcow2Snapshot *snapshots;

    /* header extensions */
    GArray *unknown_exts;         /* of Qcow2UnknownExt */
    bool has_feature_table;
    uint32_t nb_bitmaps;
    uint64_t bitmap_directory_size;
    uint64_t bitmap_directory_offset;
    uint8_t *bitmap_directory;    /* validated copy, NULL if none */

    Qcow2Cache *l2_cache;
    Qcow2Cache *refblock_cache;
    CoMutex lock;
    GList *allocs;                /* of Qcow2Alloc, in flight */

    /* A cluster at or beyond this file offset has never been written, so
     * it reads as zeroes without writing them.  Every allocation raises
     * it (qcow2_alloc_clusters), whatever the clusters are used for. */
    uint64_t zero_beyond;
    bool corrupt_reported;
    /* Opened for check with a snapshot table that could not be read
     * whole: s->snapshots holds the entries that could; check -r all
     * writes them as a new table (qcow2_write_snapshot_table). */
    bool snapshot_table_broken;
    /* A failed snapshot operation could not read the on-disk state back:
     * memory holds an abandoned state, so every request fails (-EIO)
     * until the image is reopened.  The file itself is consistent. */
    bool stale;
    bool metadata_dirty;          /* something to write on flush */

    /* Shadow commit in progress (see qcow2-snapshot.c): metadata is
     * written only to new clusters, and these clusters, freed in the new
     * view but live in the on-disk one, must not be reused until the
     * header switch: cluster index -> 1 */
    bool shadow_pending;
    GHashTable *shadow_excluded;  /* keys: QCOW2_CLUSTER_KEY(index) */
    struct BdrvSnapshotCreate *pending_create;
    /* Counts qcow2_snapshot_checkpoint_pending(): flushes served while a
     * late VM state was written (tests read it). */
    uint64_t checkpoint_count;

    /* Reads of a snapshot's VM state in progress (qcow2-vmstate.c): they
     * hold no lock while the data is read, so snapshot delete waits for
     * them (the clusters it frees could otherwise be reused under them). */
    unsigned vmstate_readers;
    CoQueue vmstate_readers_done;

    /* last decompressed cluster, keyed by its L2 descriptor */
    uint64_t cbuf_desc;
    uint8_t *cbuf;
    int64_t decompress_ops;
} Qcow2State;

/* A cluster index as a hash key stored in the pointer itself (no
 * allocation per key; g_direct_hash tables). */
G_STATIC_ASSERT(sizeof(gpointer) >= sizeof(uint64_t));
#define QCOW2_CLUSTER_KEY(c) ((gpointer)(uintptr_t)(c))

/*
 * A snapshot creation between prepare and finish (qcow2-snapshot.c).
 *
 * With vm_late (BdrvSnapshotInfo.vm_state_late) the VM state is written
 * after the commit, straight into the snapshot's own tables
 * (qcow2_snapshot_create_writev_vmstate in qcow2-vmstate.c): from the
 * commit on, l1s[vm_index..] are tables private to the snapshot, all in
 * clusters the on-disk state does not use (copies made at commit, or
 * allocated by the late writes), so they are changed in the cache and
 * reach the file only with the shadow switch of finish.  l1s grows in
 * memory as the writes need it (sn.l1_size follows); finish places the
 * snapshot's L1 table where it fits.
 */
struct BdrvSnapshotCreate {
    Qcow2Snapshot sn;
    uint64_t l1_bytes;
    uint64_t l1s_offset;        /* reserved: the snapshot's L1 table */
    uint64_t l1a_offset;        /* reserved: the new active L1 table */
    GArray *reserved;           /* of uint64_t: clusters for L2 copies */
    GArray *held_l2;            /* of uint64_t: offsets held in cache */
    GArray *held_rb;
    uint64_t *l1s;              /* captured at commit (host order) */
    uint64_t l1s_alloc;         /* entries allocated in l1s */
    bool committed;

    /* the late VM state */
    bool vm_late;
    uint64_t vm_off;            /* guest offset where its area begins */
    /* Guest clusters of the area that late writes allocated: their data
     * clusters are the snapshot's alone and new, so they are rewritten
     * in place.  Keys: QCOW2_CLUSTER_KEY(guest cluster index). */
    GHashTable *vm_fresh;
    GList *vm_writes;           /* of Qcow2Alloc: late writes under way */
    CoQueue vm_idle;            /* woken when vm_writes empties */
    /* Active L1 entries whose OFLAG_COPIED a checkpoint cleared in memory
     * (qcow2_snapshot_checkpoint_pending): of Qcow2CheckpointEntry. */
    GArray *cp_protected;
};

/* An active L2 table that the file uses since a checkpoint: its L1 entry
 * lost OFLAG_COPIED in memory so that the next write copies the table. */
typedef struct Qcow2CheckpointEntry {
    uint64_t l1_index;
    uint64_t l2_offset;
} Qcow2CheckpointEntry;

/* A committed creation waits for its VM state: nothing may be written in
 * place (shadow mode) and a flush cannot complete it yet. */
static inline bool qcow2_late_vmstate_pending(Qcow2State *s)
{
    return s->pending_create && s->pending_create->vm_late &&
           s->pending_create->committed;
}

static inline uint64_t qcow2_offset_into_cluster(Qcow2State *s, uint64_t off)
{
    return off & (s->cluster_size - 1);
}
static inline uint64_t qcow2_start_of_cluster(Qcow2State *s, uint64_t off)
{
    return off & ~(s->cluster_size - 1);
}
static inline uint64_t qcow2_size_to_clusters(Qcow2State *s, uint64_t size)
{
    return (size + s->cluster_size - 1) >> s->cluster_bits;
}
static inline uint64_t qcow2_l1_index(Qcow2State *s, uint64_t off)
{
    return off >> (s->l2_bits + s->cluster_bits);
}
static inline uint64_t qcow2_l2_index(Qcow2State *s, uint64_t off)
{
    return (off >> s->cluster_bits) & (s->l2_size - 1);
}
static inline uint64_t qcow2_l1_size_for(uint64_t size, uint32_t cluster_bits)
{
    uint32_t shift = cluster_bits + cluster_bits - 3;
    return (size + (1ULL << shift) - 1) >> shift;
}
static inline bool qcow2_is_v3(Qcow2State *s)
{
    return s->version >= 3;
}
/*
 * Where the VM state area begins for a disk of disk_size bytes: at the
 * guest offset mapped by the first L1 entry that maps no guest cluster
 * (qcow2.txt, snapshot table entry bytes 32-35; QEMU's
 * l1_vm_state_index).  It runs up to the end of what an L1 table of
 * QCOW2_MAX_L1_SIZE can map.  disk_size must be below 2^62.
 */
static inline uint64_t qcow2_vm_state_offset_for(Qcow2State *s,
                                                 uint64_t disk_size)
{
    return qcow2_l1_size_for(disk_size, s->cluster_bits) <<
           (s->l2_bits + s->cluster_bits);
}
static inline uint64_t qcow2_vm_state_offset(Qcow2State *s)
{
    return qcow2_vm_state_offset_for(s, s->size);
}
/* The end of the guest range any L1 table can map. */
static inline uint64_t qcow2_max_mapped_offset(Qcow2State *s)
{
    return ((uint64_t)QCOW2_MAX_L1_SIZE / 8) << (s->l2_bits + s->cluster_bits);
}

Qcow2ClusterType qcow2_cluster_type(Qcow2State *s, uint64_t l2e);
/* For compressed descriptors: host offset and number of bytes to read. */
void qcow2_compressed_range(Qcow2State *s, uint64_t l2e, uint64_t *host,
                            uint64_t *bytes);

/* qcow2-cache.c: a write-back cache of cluster-sized metadata tables. */
Qcow2Cache *qcow2_cache_new(BlockDriverState *bs, int entries,
                            bool is_l2);
void qcow2_cache_free(Qcow2Cache *c);
int coroutine_fn qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c,
                                 uint64_t offset, void **table);
int coroutine_fn qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c,
                                       uint64_t offset, void **table);
void qcow2_cache_put(Qcow2Cache *c, void **table);
void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table);
int coroutine_fn qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c);
bool qcow2_cache_is_dirty(Qcow2Cache *c);
/* Drops the entry for offset (the table was freed or moved). */
void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset);
/* Drops all clean entries and forgets dirty ones (after a failed open). */
void qcow2_cache_empty(Qcow2Cache *c);
/* Moves a cached table to a new offset (shadow commits); dirty after. */
void qcow2_cache_rename(Qcow2Cache *c, uint64_t from, uint64_t to);
/* Writeback disabled: eviction picks clean entries or grows the cache. */
void qcow2_cache_set_writeback(Qcow2Cache *c, bool enabled);
/* Writes every dirty table without ordering (shadow commits only). */
int coroutine_fn qcow2_cache_write_raw(BlockDriverState *bs, Qcow2Cache *c);
int qcow2_cache_pinned(Qcow2Cache *c);
/* Keeps the table for offset resident (loading it) until released. */
int coroutine_fn qcow2_cache_hold(BlockDriverState *bs, Qcow2Cache *c,
                                  uint64_t offset);
void qcow2_cache_release(Qcow2Cache *c, uint64_t offset);
/* Grows the cache so that free_slots more tables fit without eviction. */
void qcow2_cache_reserve(Qcow2Cache *c, int free_slots);
/* Is offset cached and dirty? */
bool qcow2_cache_entry_dirty(Qcow2Cache *c, uint64_t offset);
void qcow2_cache_foreach_dirty(Qcow2Cache *c,
                               void (*fn)(uint64_t offset, void *opaque),
                               void *opaque);

/* qcow2-refcount.c */
int coroutine_fn qcow2_refcount_init(BlockDriverState *bs, GError **errp);
uint64_t qcow2_get_refcount_entry(Qcow2State *s, const void *block,
                                  uint64_t index);
void qcow2_set_refcount_entry(Qcow2State *s, void *block, uint64_t index,
                              uint64_t value);
int coroutine_fn qcow2_get_refcount(BlockDriverState *bs,
                                    uint64_t cluster_index, uint64_t *rc);
/* Adds delta to the refcount of every cluster overlapping the range. */
int coroutine_fn qcow2_update_refcount(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, int64_t delta);
/* Allocates n contiguous clusters with refcount 1; returns the offset. */
int64_t coroutine_fn qcow2_alloc_clusters(BlockDriverState *bs, uint64_t n);
/* Allocates bytes (< cluster) for compressed data, possibly sharing a
 * cluster with the previous compressed allocation. */
int64_t coroutine_fn qcow2_alloc_bytes(BlockDriverState *bs, uint64_t bytes);
/* Queues a decrement to apply once the dropping tables are durable. */
void qcow2_free_deferred(BlockDriverState *bs, uint64_t offset,
                         uint64_t bytes);
/* Applies queued decrements immediately (tables already durable). */
int coroutine_fn qcow2_apply_pending_frees(BlockDriverState *bs);
bool qcow2_cluster_pending_free(Qcow2State *s, uint64_t cluster_index);
/* Ordered write-out of all dirty metadata (see the invariants above). */
int coroutine_fn qcow2_flush_metadata(BlockDriverState *bs);
/* fdatasync of the file unless cache.no-flush. */
int coroutine_fn qcow2_file_sync(BlockDriverState *bs);

/* qcow2-cluster.c */
int coroutine_fn qcow2_get_l2_entry(BlockDriverState *bs, uint64_t offset,
                                    uint64_t *l2e);
/* Mapping of [offset, offset+bytes): type, host offset of offset, and
 * the length (<= bytes, within one L2 table) that shares it. */
int coroutine_fn qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, uint64_t *pnum,
                                       uint64_t *host, Qcow2ClusterType *type,
                                       uint64_t *l2e);
/* The same through L1 table l1 of l1_size entries (host order, entries
 * validated, e.g. a snapshot's); NULL means the active table. */
int coroutine_fn qcow2_get_host_offset_in(BlockDriverState *bs,
                                          const uint64_t *l1,
                                          uint32_t l1_size, uint64_t offset,
                                          uint64_t bytes, uint64_t *pnum,
                                          uint64_t *host,
                                          Qcow2ClusterType *type,
                                          uint64_t *l2e);
/* Returns the L2 table for offset, allocating or copying it so that it
 * is private to the active L1 (writable).  Pinned: put it afterwards. */
int coroutine_fn qcow2_get_l2_for_write(BlockDriverState *bs,
                                        uint64_t offset, uint64_t **l2);
int coroutine_fn qcow2_write_l1_entries(BlockDriverState *bs);
int coroutine_fn qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size,
                                     bool exact);
/* Replaces the L2 entries of guest clusters [offset, +n) with zero or
 * unallocated entries, freeing their clusters (discard/write-zeroes). */
int coroutine_fn qcow2_zero_or_discard(BlockDriverState *bs, uint64_t offset,
                                       uint64_t n, bool discard, bool full);
/* Queues the frees of whatever cluster(s) an L2 entry owns. */
void qcow2_free_l2_entry_clusters(BlockDriverState *bs, uint64_t l2e);
/* Clears active L1 entry l1i, dropping the active layer's reference to
 * its L2 table and to everything the table maps (deferred frees; a table
 * shared with a snapshot stays the snapshot's).  s->lock held. */
int coroutine_fn qcow2_drop_l1_entry(BlockDriverState *bs, uint64_t l1i);
int coroutine_fn qcow2_decompress_cluster(BlockDriverState *bs, uint64_t l2e,
                                          uint8_t *out);
ssize_t qcow2_compress(Qcow2State *s, uint8_t *dst, size_t dst_size,
                       const uint8_t *src, size_t src_size);
ssize_t qcow2_decompress(int type, uint8_t *dst, size_t dst_size,
                         const uint8_t *src, size_t src_size);

/* qcow2.c */
/* Reads guest [offset, +bytes) as mapped by L1 table l1 (NULL: the active
 * one; else as for qcow2_get_host_offset_in) into qiov at qoff.
 * Unallocated clusters at or beyond zero_from read as zeroes, below it
 * from the backing file. */
int coroutine_fn qcow2_read_mapped(BlockDriverState *bs, const uint64_t *l1,
                                   uint32_t l1_size, uint64_t zero_from,
                                   uint64_t offset, uint64_t bytes,
                                   IOVector *qiov, size_t qoff);
/* Writes [offset, +bytes) of the active layer with no check against the
 * virtual size (the VM state area lies beyond it). */
int coroutine_fn qcow2_write_range(BlockDriverState *bs, uint64_t offset,
                                   uint64_t bytes, IOVector *qiov);
/* Validates that a host range is not metadata; marks the image corrupt
 * and returns -EIO if it is. */
int qcow2_check_metadata_overlap(BlockDriverState *bs, uint64_t offset,
                                 uint64_t bytes, const char *what);
void qcow2_signal_corruption(BlockDriverState *bs, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
int coroutine_fn qcow2_update_header(BlockDriverState *bs);
/* Serializes the header and its extensions into one cluster-sized buffer
 * reflecting the in-memory state. */
int qcow2_build_header(BlockDriverState *bs, uint8_t *buf, size_t len);

/* qcow2-snapshot.c */
int coroutine_fn qcow2_read_snapshots(BlockDriverState *bs, GError **errp);
void qcow2_free_snapshots(Qcow2State *s);
/* Serialized snapshot table size and contents (for shadow commits). */
uint8_t *qcow2_serialize_snapshots(Qcow2State *s, Qcow2Snapshot *list,
                                   uint32_t n, uint64_t *size);
extern const BdrvSnapshotOps qcow2_snapshot_ops;

/* Writes s->snapshots as a new snapshot table and switches the header to
 * it; the old table's clusters are the caller's to release. */
int coroutine_fn qcow2_write_snapshot_table(BlockDriverState *bs);

/* Reads and validates a snapshot's L1 table (host order; caller frees). */
int coroutine_fn qcow2_read_snapshot_l1(BlockDriverState *bs,
                                        Qcow2Snapshot *sn, uint64_t **l1,
                                        GError **errp);
/* Index of the snapshot with this ID, else this name; -1 if none. */
int qcow2_find_snapshot_by_id_or_name(Qcow2State *s, const char *key);

/* qcow2-vmstate.c: the VM state area (see block/vmstate.h) */
int coroutine_fn qcow2_co_writev_vmstate(BlockDriverState *bs,
                                         IOVector *qiov, int64_t pos,
                                         GError **errp);
int coroutine_fn qcow2_co_readv_vmstate(BlockDriverState *bs,
                                        IOVector *qiov, int64_t pos,
                                        GError **errp);
int coroutine_fn qcow2_co_discard_vmstate(BlockDriverState *bs,
                                          GError **errp);
int coroutine_fn qcow2_snapshot_readv_vmstate(BlockDriverState *bs,
                                              const char *id_or_name,
                                              IOVector *qiov, int64_t pos,
                                              GError **errp);
/* Drops every active L1 entry from the VM state area on (s->lock held;
 * no snapshot creation pending). */
int coroutine_fn qcow2_drop_active_vmstate(BlockDriverState *bs);

/* Completes a snapshot creation that was committed (flush calls it). */
int coroutine_fn qcow2_snapshot_finish_pending(BlockDriverState *bs);
/* A flush while a snapshot waits for its late VM state: makes the
 * active layer durable without that snapshot (qcow2-snapshot.c). */
int coroutine_fn qcow2_snapshot_checkpoint_pending(BlockDriverState *bs);

/* Drops range [offset, +bytes) from the new state during a shadow
 * commit: refcount decremented, clusters kept from reuse until the
 * switch (s->lock held). */
int coroutine_fn qcow2_shadow_release(BlockDriverState *bs, uint64_t offset,
                                      uint64_t bytes);
/* qcow2-vmstate.c: the late VM state of the pending creation st
 * (see block/vmstate.h); s->lock not held. */
int coroutine_fn qcow2_snapshot_create_writev_vmstate(BlockDriverState *bs,
                                                      BdrvSnapshotCreate *st,
                                                      IOVector *qiov,
                                                      int64_t pos,
                                                      GError **errp);
int qcow2_snapshot_create_set_vm_state_size(BlockDriverState *bs,
                                            BdrvSnapshotCreate *st,
                                            uint64_t size, GError **errp);
/* Waits until no late write of st is under way (s->lock held). */
void coroutine_fn qcow2_late_vmstate_wait_idle(BlockDriverState *bs,
                                               BdrvSnapshotCreate *st);

int coroutine_fn qcow2_rewrite_snapshot_table(BlockDriverState *bs);
int coroutine_fn qcow2_snapshots_have_zero_clusters(BlockDriverState *bs,
                                                   bool *found);
/* qcow2-refcount.c: rewrites the refcount structure with a new width and
 * switches to it with one header write. */
int coroutine_fn qcow2_change_refcount_order(BlockDriverState *bs,
                                             uint32_t order, GError **errp);
/* qcow2-amend.c */
int coroutine_fn qcow2_co_amend(BlockDriverState *bs, BlockOpts *opts,
                                bool force, GError **errp);

/* qcow2-bitmap.c */
int coroutine_fn qcow2_bitmaps_open(BlockDriverState *bs, GError **errp);
json_t *qcow2_bitmaps_info(Qcow2State *s);
/* Stores every persistent dirty bitmap (clean close); s->lock held. */
void coroutine_fn qcow2_bitmaps_close(BlockDriverState *bs);
int coroutine_fn qcow2_bitmaps_reopen_ro(BlockDriverState *bs, GError **errp);
int coroutine_fn qcow2_bitmaps_reopen_rw(BlockDriverState *bs, GError **errp);
int coroutine_fn qcow2_co_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                                         const char *name,
                                                         GError **errp);
bool qcow2_can_store_new_dirty_bitmap(BlockDriverState *bs, const char *name,
                                      uint32_t granularity, GError **errp);

/* qcow2-check.c */
int coroutine_fn qcow2_co_check(BlockDriverState *bs, BdrvCheckResult *res,
                                BdrvCheckMode fix);

#endif
