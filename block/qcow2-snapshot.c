/*
 * qcow2-snapshot.c - internal snapshots: the snapshot table, create
 * (split into prepare / in-memory commit / durable finish), apply, delete,
 * and the shadow commit that makes each of them atomic on disk.
 *
 * Shadow commit: a snapshot operation changes refcounts and active
 * OFLAG_COPIED flags together, which no ordering of in-place writes can
 * keep consistent.  So the new state is written only to clusters the
 * on-disk state does not use - new L1 and L2 tables, a new snapshot table,
 * relocated copies of every changed refcount block and a new refcount
 * table - and one write of header bytes 24..71 switches to it.  Clusters
 * the new state frees stay excluded from allocation until the switch is
 * durable.  A crash before the switch leaves the old state (plus leaks),
 * after it the new one.
 *
 * Create: prepare (may do I/O) reserves clusters and loads every active L2
 * table and refcount block; commit (no I/O; runs while the guest is
 * paused) gives the snapshot and the active layer shared copies of all L2
 * tables and bumps the refcounts; finish writes the shadow state and
 * switches.  Until finish, no metadata is written in place.
 *
 * A snapshot created with vm_state_size > 0 takes the VM state area over
 * at commit (see create_commit_locked and qcow2-vmstate.c); prepare first
 * grows the L1 table so that the snapshot maps all of it.
 *
 * A late VM state (vm_state_late: written after commit, before finish):
 * commit hands the area to the snapshot as above whatever the size; the
 * writes then go straight into the snapshot's own tables in memory
 * (qcow2-vmstate.c), growing its L1 table as needed, while shadow mode
 * keeps everything off the on-disk state.  finish gives the snapshot's
 * L1 table its final size and place (late_place_l1) and runs the one
 * shadow switch: VM state clusters, the L2/L1 tables that map them and
 * the refcounts are written to unused clusters and synced before the
 * header names the new snapshot table, so a crash leaves the old state
 * (no snapshot) or the new one (the snapshot whole).  A flush in that
 * window cannot complete a snapshot whose VM state is missing: it is
 * served by a checkpoint, a switch to the state without the snapshot
 * (see "checkpoints" below), so the guest never waits for the write-out.
 * If the write-out fails, abort abandons the
 * committed creation (create_abandon_locked): the snapshot's references
 * leave the shadow state and one switch writes the active layer as it
 * is, guest writes since the commit included, without the snapshot.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QCOW2_MAX_SNAPSHOT_EXTRA 1024
#define SN_HEADER_SIZE 40

void qcow2_free_snapshots(Qcow2State *s)
{
    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        g_free(s->snapshots[i].id_str);
        g_free(s->snapshots[i].name);
        g_free(s->snapshots[i].unknown_extra);
    }
    g_clear_pointer(&s->snapshots, g_free);
}

static void snapshot_copy(Qcow2Snapshot *dst, const Qcow2Snapshot *src)
{
    *dst = *src;
    dst->id_str = g_strdup(src->id_str);
    dst->name = g_strdup(src->name);
    dst->unknown_extra = g_memdup2(src->unknown_extra,
                                   src->unknown_extra_size);
}

int coroutine_fn qcow2_read_snapshots(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    s->snapshots = g_new0(Qcow2Snapshot, MAX(s->nb_snapshots, 1));
    s->snapshots_size = 0;
    if (!s->nb_snapshots) {
        return 0;
    }
    int64_t flen = bdrv_getlength(bs->file->bs);
    uint64_t pos = s->snapshots_offset;
    uint32_t n = s->nb_snapshots;
    /* Opened for check, the entries before a bad one are kept and the
     * table is marked for rewriting instead of refusing the image. */
    bool check = bs->open_flags & BDRV_O_CHECK;
    s->nb_snapshots = 0;                 /* counts parsed entries */
    for (uint32_t i = 0; i < n; i++) {
        uint8_t h[SN_HEADER_SIZE];
        if (pos - s->snapshots_offset > QCOW2_MAX_SNAPSHOT_TABLE ||
            pos + sizeof(h) > (uint64_t)flen) {
            if (check) {
                s->snapshot_table_broken = true;
                break;
            }
            error_setg(errp, "Snapshot table exceeds the image file");
            return -EINVAL;
        }
        int ret = bdrv_co_pread(bs->file->bs, pos, sizeof(h), h, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read snapshot table");
            return ret;
        }
        Qcow2Snapshot *sn = &s->snapshots[i];
        sn->l1_table_offset = be64_read(h);
        sn->l1_size = be32_read(h + 8);
        uint16_t id_size = be16_read(h + 12);
        uint16_t name_size = be16_read(h + 14);
        sn->date_sec = be32_read(h + 16);
        sn->date_nsec = be32_read(h + 20);
        sn->vm_clock_nsec = be64_read(h + 24);
        sn->vm_state_size = be32_read(h + 32);
        sn->extra_data_size = be32_read(h + 36);
        sn->icount = UINT64_MAX;
        sn->disk_size = s->size;
        if (sn->extra_data_size > QCOW2_MAX_SNAPSHOT_EXTRA && !check) {
            error_setg(errp, "Too much extra metadata in snapshot table "
                       "entry %u", i);
            return -EFBIG;
        }
        uint64_t var = (uint64_t)sn->extra_data_size + id_size + name_size;
        if (pos + sizeof(h) + var > (uint64_t)flen) {
            if (check) {
                s->snapshot_table_broken = true;
                memset(sn, 0, sizeof(*sn));
                break;
            }
            error_setg(errp, "Snapshot table exceeds the image file");
            return -EINVAL;
        }
        /* Too much extra data (check only): keep the known fields. */
        uint32_t ex = MIN(sn->extra_data_size, QCOW2_MAX_SNAPSHOT_EXTRA);
        if (ex < sn->extra_data_size) {
            ex = MIN(sn->extra_data_size, 24);
            s->snapshot_table_broken = true;
        }
        uint8_t *v = g_malloc((uint64_t)ex + id_size + name_size + 1);
        ret = bdrv_co_pread(bs->file->bs, pos + sizeof(h), ex, v, 0);
        if (ret >= 0) {
            ret = bdrv_co_pread(bs->file->bs,
                                pos + sizeof(h) + sn->extra_data_size,
                                id_size + name_size, v + ex, 0);
        }
        if (ret < 0) {
            g_free(v);
            error_setg_errno(errp, -ret, "Could not read snapshot table");
            return ret;
        }
        if (ex >= 8) {
            sn->vm_state_size = be64_read(v);
        }
        if (ex >= 16) {
            sn->disk_size = be64_read(v + 8);
        }
        if (ex >= 24) {
            sn->icount = be64_read(v + 16);
        }
        if (ex > 24) {
            sn->unknown_extra_size = ex - 24;
            sn->unknown_extra = g_memdup2(v + 24, ex - 24);
        }
        sn->id_str = g_strndup((char *)v + ex, id_size);
        sn->name = g_strndup((char *)v + ex + id_size, name_size);
        g_free(v);
        if ((qcow2_is_v3(s) && ex < 16) || (check && !id_size)) {
            if (!check) {
                error_setg(errp, "Snapshot %s has too little extra data for "
                           "a v3 image", sn->id_str);
            }
            g_free(sn->id_str);
            g_free(sn->name);
            g_free(sn->unknown_extra);
            memset(sn, 0, sizeof(*sn));
            if (!check) {
                return -EINVAL;
            }
            /* Implausible: the table is damaged from here on. */
            s->snapshot_table_broken = true;
            break;
        }
        s->nb_snapshots++;
        pos += ROUND_UP(sizeof(h) + var, 8);
    }
    s->snapshots_size = pos - s->snapshots_offset;
    return 0;
}

int coroutine_fn qcow2_write_snapshot_table(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    uint64_t size = 0;
    int64_t off = 0;
    int ret = 0;
    uint8_t *buf = qcow2_serialize_snapshots(s, s->snapshots, s->nb_snapshots,
                                             &size);
    if (s->nb_snapshots) {
        off = qcow2_alloc_clusters(bs, DIV_ROUND_UP(size, s->cluster_size));
        ret = off < 0 ? (int)off : 0;
        /* The new table's refcount is durable before the header uses it. */
        if (ret >= 0) {
            ret = qcow2_cache_write(bs, s->refblock_cache);
        }
        if (ret >= 0) {
            ret = bdrv_co_pwrite(bs->file->bs, off, size, buf, 0);
        }
        if (ret >= 0) {
            ret = qcow2_file_sync(bs);
        }
    }
    g_free(buf);
    if (ret < 0) {
        return ret;
    }
    s->snapshots_offset = off;
    s->snapshots_size = s->nb_snapshots ? size : 0;
    ret = qcow2_update_header(bs);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    return ret;
}

uint8_t *qcow2_serialize_snapshots(Qcow2State *s, Qcow2Snapshot *list,
                                   uint32_t n, uint64_t *size)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ex = MAX(24, 24 + list[i].unknown_extra_size);
        total += ROUND_UP(SN_HEADER_SIZE + ex + strlen(list[i].id_str) +
                          strlen(list[i].name), 8);
    }
    uint8_t *buf = g_malloc0(MAX(total, 1));
    uint64_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        Qcow2Snapshot *sn = &list[i];
        uint32_t ex = 24 + sn->unknown_extra_size;
        size_t id_len = strlen(sn->id_str), name_len = strlen(sn->name);
        uint8_t *h = buf + pos;
        be64_write(h, sn->l1_table_offset);
        be32_write(h + 8, sn->l1_size);
        be16_write(h + 12, id_len);
        be16_write(h + 14, name_len);
        be32_write(h + 16, sn->date_sec);
        be32_write(h + 20, sn->date_nsec);
        be64_write(h + 24, sn->vm_clock_nsec);
        be32_write(h + 32, MIN(sn->vm_state_size, UINT32_MAX));
        be32_write(h + 36, ex);
        be64_write(h + 40, sn->vm_state_size);
        be64_write(h + 48, sn->disk_size);
        be64_write(h + 56, sn->icount);
        if (sn->unknown_extra_size) {
            memcpy(h + 64, sn->unknown_extra, sn->unknown_extra_size);
        }
        memcpy(h + SN_HEADER_SIZE + ex, sn->id_str, id_len);
        memcpy(h + SN_HEADER_SIZE + ex + id_len, sn->name, name_len);
        pos += ROUND_UP(SN_HEADER_SIZE + ex + id_len + name_len, 8);
    }
    *size = total;
    return buf;
}

/* ---- the shadow commit ---- */

/* Decrements refcounts of a range that the new state no longer uses and
 * keeps its clusters from being reused before the switch. */
static int coroutine_fn shadow_release(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes)
{
    Qcow2State *s = bs->opaque;
    if (!bytes) {
        return 0;
    }
    uint64_t first = offset >> s->cluster_bits;
    uint64_t last = (offset + bytes - 1) >> s->cluster_bits;
    for (uint64_t c = first; c <= last; c++) {
        g_hash_table_add(s->shadow_excluded, QCOW2_CLUSTER_KEY(c));
    }
    return qcow2_update_refcount(bs, offset, bytes, -1);
}

int coroutine_fn qcow2_shadow_release(BlockDriverState *bs, uint64_t offset,
                                      uint64_t bytes)
{
    g_assert(((Qcow2State *)bs->opaque)->shadow_pending);
    return shadow_release(bs, offset, bytes);
}

static void shadow_begin(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    if (!s->shadow_excluded) {
        s->shadow_excluded = g_hash_table_new(g_direct_hash,
                                              g_direct_equal);
    }
    s->shadow_pending = true;
    qcow2_cache_set_writeback(s->l2_cache, false);
    qcow2_cache_set_writeback(s->refblock_cache, false);
}

/* Leaves shadow mode.  keep_excluded: the switch is in the file but not
 * known durable, so the clusters it freed stay unused for this session
 * (the old state may still be the one on disk). */
static void shadow_finish(BlockDriverState *bs, bool keep_excluded)
{
    Qcow2State *s = bs->opaque;
    s->shadow_pending = false;
    if (s->shadow_excluded && !keep_excluded) {
        g_hash_table_remove_all(s->shadow_excluded);
    }
    qcow2_cache_set_writeback(s->l2_cache, true);
    qcow2_cache_set_writeback(s->refblock_cache, true);
}

static void shadow_end(BlockDriverState *bs)
{
    shadow_finish(bs, false);
}

typedef struct {
    GArray *offsets;
    GHashTable *fresh;
} DirtyCollect;

static void collect_dirty(uint64_t offset, void *opaque)
{
    DirtyCollect *d = opaque;
    if (!g_hash_table_contains(d->fresh, &offset)) {
        g_array_append_val(d->offsets, offset);
    }
}

static void fresh_add(GHashTable *fresh, uint64_t offset)
{
    uint64_t *k = g_new(uint64_t, 1);
    *k = offset;
    g_hash_table_add(fresh, k);
}

/*
 * Moves every dirty refcount block that the on-disk state uses to a new
 * cluster and allocates a new refcount table.  Allocating may dirty more
 * blocks, so it repeats until only fresh blocks are dirty.  The old
 * locations are returned in *old_blocks for release after the switch.
 */
static int coroutine_fn relocate_refcounts(BlockDriverState *bs,
                                           uint64_t *table_off,
                                           uint64_t *table_clusters,
                                           GArray *old_blocks)
{
    Qcow2State *s = bs->opaque;
    GHashTable *fresh = g_hash_table_new_full(g_int64_hash, g_int64_equal,
                                              g_free, NULL);
    int ret = 0;
    *table_off = 0;
    *table_clusters = 0;
    for (int round = 0; round < 64; round++) {
        DirtyCollect d = { g_array_new(FALSE, FALSE, sizeof(uint64_t)),
                           fresh };
        qcow2_cache_foreach_dirty(s->refblock_cache, collect_dirty, &d);
        uint64_t need = DIV_ROUND_UP(s->refcount_table_size * 8,
                                     s->cluster_size);
        bool table_ok = *table_off && *table_clusters >= need;
        if (d.offsets->len == 0 && table_ok) {
            g_array_free(d.offsets, TRUE);
            goto out;
        }
        for (guint i = 0; i < d.offsets->len && ret >= 0; i++) {
            uint64_t old = g_array_index(d.offsets, uint64_t, i);
            int64_t nb = qcow2_alloc_clusters(bs, 1);
            if (nb < 0) {
                ret = (int)nb;
                break;
            }
            qcow2_cache_discard(s->refblock_cache, nb);
            qcow2_cache_rename(s->refblock_cache, old, nb);
            for (uint64_t ti = 0; ti < s->refcount_table_size; ti++) {
                if ((s->refcount_table[ti] & REFT_OFFSET_MASK) == old) {
                    s->refcount_table[ti] = nb;
                }
            }
            fresh_add(fresh, nb);
            g_array_append_val(old_blocks, old);
            /* The old location stays counted until after the switch. */
            g_hash_table_add(s->shadow_excluded,
                             QCOW2_CLUSTER_KEY(old >> s->cluster_bits));
        }
        g_array_free(d.offsets, TRUE);
        if (ret < 0) {
            break;
        }
        need = DIV_ROUND_UP(s->refcount_table_size * 8, s->cluster_size);
        if (!*table_off || *table_clusters < need) {
            if (*table_off) {
                ret = shadow_release(bs, *table_off,
                                     *table_clusters << s->cluster_bits);
                if (ret < 0) {
                    break;
                }
            }
            int64_t t = qcow2_alloc_clusters(bs, need);
            if (t < 0) {
                ret = (int)t;
                break;
            }
            *table_off = t;
            *table_clusters = need;
        }
    }
    if (ret >= 0) {
        ret = -ELOOP;
    }
out:
    g_hash_table_destroy(fresh);
    return ret;
}

static int coroutine_fn write_l1(BlockDriverState *bs, uint64_t offset,
                                 const uint64_t *l1, uint32_t n)
{
    Qcow2State *s = bs->opaque;
    if (!n) {
        return 0;
    }
    uint64_t bytes = ROUND_UP((uint64_t)n * 8, 512);
    uint64_t *buf = bdrv_blockalign(bs->file->bs, bytes);
    memset(buf, 0, bytes);
    for (uint32_t i = 0; i < n; i++) {
        be64_write(&buf[i], l1[i]);
    }
    int ret = bdrv_co_pwrite(bs->file->bs, offset, bytes, buf, 0);
    bdrv_vfree(buf);
    (void)s;
    return ret;
}

/*
 * Writes the new state held in memory (active L1 at s->l1_table_offset,
 * dirty L2 tables in new clusters, the given snapshot list) to unused
 * clusters and switches the header to it.  On success the in-memory
 * snapshot list becomes `list` (ownership taken).
 */
static int coroutine_fn shadow_switch(BlockDriverState *bs,
                                      Qcow2Snapshot *list, uint32_t n)
{
    Qcow2State *s = bs->opaque;
    int ret;
    uint64_t sn_size = 0, sn_off = 0;
    uint8_t *sn_buf = NULL;
    GArray *old_blocks = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t old_sn_off = s->snapshots_offset, old_sn_size = s->snapshots_size;
    uint64_t old_rt_off = s->refcount_table_offset;
    uint64_t old_rt_bytes = (uint64_t)s->refcount_table_clusters <<
                            s->cluster_bits;

    if (n) {
        sn_buf = qcow2_serialize_snapshots(s, list, n, &sn_size);
        int64_t off = qcow2_alloc_clusters(bs, DIV_ROUND_UP(sn_size,
                                                            s->cluster_size));
        if (off < 0) {
            ret = (int)off;
            goto out;
        }
        sn_off = off;
    }
    /* The old snapshot table stays counted until the switch (released in
     * place below, as the old refcount structures): a switch that fails
     * must leave nothing that a later one - a checkpoint's retry by the
     * finish - would release twice. */
    uint64_t rt_off, rt_clusters;
    ret = relocate_refcounts(bs, &rt_off, &rt_clusters, old_blocks);
    if (ret < 0) {
        goto out;
    }
    /* Everything below is new clusters: order among them is free. */
    ret = write_l1(bs, s->l1_table_offset, s->l1_table, s->l1_size);
    if (ret >= 0) {
        ret = qcow2_cache_write_raw(bs, s->l2_cache);
    }
    if (ret >= 0) {
        ret = qcow2_cache_write_raw(bs, s->refblock_cache);
    }
    if (ret >= 0 && n) {
        ret = bdrv_co_pwrite(bs->file->bs, sn_off, sn_size, sn_buf, 0);
    }
    if (ret >= 0) {
        uint64_t bytes = rt_clusters << s->cluster_bits;
        uint64_t *t = bdrv_blockalign(bs->file->bs, bytes);
        memset(t, 0, bytes);
        for (uint64_t i = 0; i < s->refcount_table_size; i++) {
            be64_write(&t[i], s->refcount_table[i]);
        }
        ret = bdrv_co_pwrite(bs->file->bs, rt_off, bytes, t, 0);
        bdrv_vfree(t);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    bool switched = false;
    if (ret >= 0) {
        /* The switch: size, L1, refcount table, snapshot table at once. */
        uint8_t h[48];
        be64_write(h, s->size);
        be32_write(h + 8, s->crypt_method);
        be32_write(h + 12, s->l1_size);
        be64_write(h + 16, s->l1_table_offset);
        be64_write(h + 24, rt_off);
        be32_write(h + 32, rt_clusters);
        be32_write(h + 36, n);
        be64_write(h + 40, sn_off);
        ret = bdrv_co_pwrite(bs->file->bs, 24, sizeof(h), h, 0);
        switched = ret >= 0;
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (!switched) {
        goto out;
    }
    /* The file holds the new state from the header write on: adopt it even
     * if the sync failed (then it is not known durable: the old locations
     * leak and what the switch freed is not reused). */
    s->refcount_table_offset = rt_off;
    s->refcount_table_clusters = rt_clusters;
    uint64_t entries = (rt_clusters << s->cluster_bits) / 8;
    if (entries > s->refcount_table_size) {
        s->refcount_table = g_renew(uint64_t, s->refcount_table, entries);
        memset(s->refcount_table + s->refcount_table_size, 0,
               (entries - s->refcount_table_size) * 8);
        s->refcount_table_size = entries;
    }
    qcow2_free_snapshots(s);
    s->snapshots = list;
    s->nb_snapshots = n;
    s->snapshots_offset = sn_off;
    s->snapshots_size = sn_size;
    list = NULL;
    g_hash_table_remove_all(s->l1_dirty);
    shadow_finish(bs, ret < 0);
    /* Old locations are now plain leaks: release them in place. */
    for (guint i = 0; i < old_blocks->len && ret >= 0; i++) {
        qcow2_update_refcount(bs, g_array_index(old_blocks, uint64_t, i),
                              s->cluster_size, -1);
    }
    if (ret >= 0) {
        qcow2_update_refcount(bs, old_rt_off, old_rt_bytes, -1);
    }
    if (ret >= 0 && old_sn_size) {
        qcow2_update_refcount(bs, old_sn_off, old_sn_size, -1);
    }
out:
    g_free(sn_buf);
    g_array_free(old_blocks, TRUE);
    if (list) {
        for (uint32_t i = 0; i < n; i++) {
            g_free(list[i].id_str);
            g_free(list[i].name);
            g_free(list[i].unknown_extra);
        }
        g_free(list);
    }
    return ret;
}

/* Reads the header fields, the active L1 table and the refcount table
 * from the file again. */
static int coroutine_fn reload_tables(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    uint8_t h[72];
    int ret = bdrv_co_pread(bs->file->bs, 0, sizeof(h), h, 0);
    if (ret < 0) {
        return ret;
    }
    s->size = be64_read(h + 24);
    s->l1_size = be32_read(h + 36);
    s->l1_table_offset = be64_read(h + 40);
    s->refcount_table_offset = be64_read(h + 48);
    s->refcount_table_clusters = be32_read(h + 56);
    g_free(s->l1_table);
    s->l1_alloc = MAX(s->l1_size, 1);
    s->l1_table = g_new0(uint64_t, s->l1_alloc);
    if (s->l1_size) {
        ret = bdrv_co_pread(bs->file->bs, s->l1_table_offset,
                            (uint64_t)s->l1_size * 8, s->l1_table, 0);
        if (ret < 0) {
            return ret;
        }
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = be64_read(&s->l1_table[i]);
    }
    g_clear_pointer(&s->refcount_table, g_free);
    g_array_free(s->pending_frees, TRUE);
    g_hash_table_destroy(s->pending_free_clusters);
    s->pending_frees = NULL;
    s->pending_free_clusters = NULL;
    return qcow2_refcount_init(bs, NULL);
}

/* After a failed shadow operation the in-memory state is ahead of the
 * disk: throw it away and read the on-disk (old) state again.  If that
 * cannot be read, the node goes stale (fails every request) rather than
 * act on the abandoned state. */
static void coroutine_fn reload_after_failure(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    if (!s->shadow_pending) {
        return;     /* nothing changed, or shadow_switch adopted the file */
    }
    shadow_end(bs);
    qcow2_cache_empty(s->l2_cache);
    qcow2_cache_empty(s->refblock_cache);
    if (reload_tables(bs) < 0) {
        s->stale = true;
    }
    g_hash_table_remove_all(s->l1_dirty);
    s->free_cluster_index = 1;
    s->free_byte_offset = 0;
}

/* ---- listing ---- */

static int qcow2_snapshot_list(BlockDriverState *bs, BdrvSnapshotInfo **out)
{
    Qcow2State *s = bs->opaque;
    /* NULL when there are none: callers free the list only if n > 0. */
    BdrvSnapshotInfo *list = g_new0(BdrvSnapshotInfo, s->nb_snapshots);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        list[i].id_str = g_strdup(sn->id_str);
        list[i].name = g_strdup(sn->name);
        list[i].vm_state_size = sn->vm_state_size;
        list[i].date_sec = sn->date_sec;
        list[i].date_nsec = sn->date_nsec;
        list[i].vm_clock_nsec = sn->vm_clock_nsec;
        list[i].icount = sn->icount;
        list[i].disk_size = sn->disk_size;
    }
    *out = list;
    return s->nb_snapshots;
}

static int find_snapshot(Qcow2State *s, const char *id, const char *name)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if ((!id || !strcmp(s->snapshots[i].id_str, id)) &&
            (!name || !strcmp(s->snapshots[i].name, name))) {
            return (int)i;
        }
    }
    return -1;
}

int qcow2_find_snapshot_by_id_or_name(Qcow2State *s, const char *key)
{
    int i = find_snapshot(s, key, NULL);
    return i >= 0 ? i : find_snapshot(s, NULL, key);
}

static char *new_snapshot_id(Qcow2State *s)
{
    uint64_t max = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        char *end;
        uint64_t v = strtoull(s->snapshots[i].id_str, &end, 10);
        if (!*end && v > max) {
            max = v;
        }
    }
    return g_strdup_printf("%" G_GUINT64_FORMAT, max + 1);
}

/* ---- create ---- */

static void create_state_free(BlockDriverState *bs, BdrvSnapshotCreate *st)
{
    Qcow2State *s = bs->opaque;
    for (guint i = 0; st->held_l2 && i < st->held_l2->len; i++) {
        qcow2_cache_release(s->l2_cache, g_array_index(st->held_l2,
                                                       uint64_t, i));
    }
    for (guint i = 0; st->held_rb && i < st->held_rb->len; i++) {
        qcow2_cache_release(s->refblock_cache, g_array_index(st->held_rb,
                                                             uint64_t, i));
    }
    if (st->held_l2) {
        g_array_free(st->held_l2, TRUE);
    }
    if (st->held_rb) {
        g_array_free(st->held_rb, TRUE);
    }
    if (st->reserved) {
        g_array_free(st->reserved, TRUE);
    }
    g_assert(!st->vm_writes);
    if (st->vm_fresh) {
        g_hash_table_destroy(st->vm_fresh);
    }
    if (st->cp_protected) {
        g_array_free(st->cp_protected, TRUE);
    }
    g_free(st->sn.id_str);
    g_free(st->sn.name);
    g_free(st->l1s);
    g_free(st);
}

static void create_clear_pending(Qcow2State *s)
{
    s->pending_create = NULL;
}

static int coroutine_fn create_prepare_locked(BlockDriverState *bs,
                                              const BdrvSnapshotInfo *info,
                                              BdrvSnapshotCreate *st,
                                              GError **errp)
{
    Qcow2State *s = bs->opaque;
    int ret;
    if (s->pending_create || s->shadow_pending) {
        error_setg(errp, "Another snapshot operation is in progress");
        return -EBUSY;
    }
    if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "Too many snapshots (at most %d)",
                   QCOW2_MAX_SNAPSHOTS);
        return -EFBIG;
    }
    if (info->id_str && *info->id_str && find_snapshot(s, info->id_str,
                                                       NULL) >= 0) {
        error_setg(errp, "Snapshot with ID '%s' already exists",
                   info->id_str);
        return -EEXIST;
    }
    if (info->name && find_snapshot(s, NULL, info->name) >= 0) {
        error_setg(errp, "Snapshot with name '%s' already exists",
                   info->name);
        return -EEXIST;
    }
    ret = qcow2_flush_metadata(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush metadata");
        return ret;
    }
    if (info->vm_state_size || info->vm_state_late) {
        /* The snapshot's L1 table maps its whole VM state, written or not
         * (reads of a VM state beyond its table are refused as damage). */
        uint64_t vm_off = qcow2_vm_state_offset(s);
        uint64_t max = qcow2_max_mapped_offset(s);
        if (vm_off >= max || info->vm_state_size > max - vm_off) {
            error_setg(errp, "VM state too large: %" G_GUINT64_FORMAT
                       " bytes (this image maps at most %" G_GUINT64_FORMAT
                       ")", info->vm_state_size,
                       vm_off < max ? max - vm_off : 0);
            return -EFBIG;
        }
    }
    if (info->vm_state_size && !info->vm_state_late) {
        /* (A late VM state grows the snapshot's own L1 table instead.) */
        uint64_t vm_off = qcow2_vm_state_offset(s);
        ret = qcow2_grow_l1_table(bs, qcow2_l1_size_for(vm_off +
                                                        info->vm_state_size,
                                                        s->cluster_bits),
                                  false);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not grow the L1 table for "
                             "the VM state");
            return ret;
        }
    }
    uint32_t nb_tables = 0;
    for (uint32_t i = 0; i < s->l1_size; i++) {
        nb_tables += (s->l1_table[i] & L1E_OFFSET_MASK) != 0;
    }
    uint32_t nb_blocks = 0;
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        nb_blocks += (s->refcount_table[i] & REFT_OFFSET_MASK) != 0;
    }
    /* Room for every table to stay resident plus the copies. */
    qcow2_cache_reserve(s->l2_cache, 2 * nb_tables + 64);
    qcow2_cache_reserve(s->refblock_cache, nb_blocks + 64);

    st->l1_bytes = ROUND_UP(MAX((uint64_t)s->l1_size * 8, 8), s->cluster_size);
    int64_t off = qcow2_alloc_clusters(bs, 2 * (st->l1_bytes >>
                                                s->cluster_bits));
    if (off < 0) {
        error_setg_errno(errp, (int)-off, "Could not allocate L1 tables");
        return (int)off;
    }
    st->l1s_offset = off;
    st->l1a_offset = off + st->l1_bytes;
    st->reserved = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    st->held_l2 = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    st->held_rb = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    /* Guest writes before the pause may add tables: keep some slack. */
    uint32_t want = nb_tables + 8;
    if (want) {
        int64_t r = qcow2_alloc_clusters(bs, want);
        if (r < 0) {
            error_setg_errno(errp, (int)-r, "Could not reserve clusters");
            return (int)r;
        }
        for (uint32_t i = 0; i < want; i++) {
            uint64_t c = r + ((uint64_t)i << s->cluster_bits);
            g_array_append_val(st->reserved, c);
        }
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t t = s->l1_table[i] & L1E_OFFSET_MASK;
        if (t) {
            ret = qcow2_cache_hold(bs, s->l2_cache, t);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not read L2 table");
                return ret;
            }
            g_array_append_val(st->held_l2, t);
        }
    }
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t b = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (b) {
            ret = qcow2_cache_hold(bs, s->refblock_cache, b);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not read refcount block");
                return ret;
            }
            g_array_append_val(st->held_rb, b);
        }
    }
    st->sn.id_str = info->id_str && *info->id_str ? g_strdup(info->id_str)
                                                   : new_snapshot_id(s);
    st->sn.name = g_strdup(info->name ? info->name : "");
    st->sn.date_sec = info->date_sec;
    st->sn.date_nsec = info->date_nsec;
    st->sn.vm_clock_nsec = info->vm_clock_nsec;
    st->sn.vm_state_size = info->vm_state_size;
    st->sn.icount = info->icount;
    if (info->vm_state_late) {
        st->vm_late = true;
        st->vm_off = qcow2_vm_state_offset(s);
        st->vm_fresh = g_hash_table_new(g_direct_hash, g_direct_equal);
        co_queue_init(&st->vm_idle);
    }
    s->pending_create = st;
    return 0;
}

static void coroutine_fn create_release_reservations(BlockDriverState *bs,
                                                     BdrvSnapshotCreate *st,
                                                     guint from)
{
    Qcow2State *s = bs->opaque;
    for (guint i = from; st->reserved && i < st->reserved->len; i++) {
        qcow2_update_refcount(bs, g_array_index(st->reserved, uint64_t, i),
                              s->cluster_size, -1);
    }
}

static int coroutine_fn qcow2_snapshot_create_prepare(
    BlockDriverState *bs, const BdrvSnapshotInfo *info,
    BdrvSnapshotCreate **state, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    BdrvSnapshotCreate *st = g_new0(BdrvSnapshotCreate, 1);
    co_mutex_lock(&s->lock);
    int ret = create_prepare_locked(bs, info, st, errp);
    if (ret < 0) {
        if (st->l1s_offset) {
            qcow2_update_refcount(bs, st->l1s_offset, 2 * st->l1_bytes, -1);
        }
        create_release_reservations(bs, st, 0);
        create_state_free(bs, st);
        co_mutex_unlock(&s->lock);
        return ret;
    }
    co_mutex_unlock(&s->lock);
    *state = st;
    return 0;
}

/*
 * Copies every active L2 table into a new cluster shared by the snapshot
 * and the active layer, and counts the new references.
 *
 * A snapshot that records a VM state takes the VM state area for itself:
 * the tables from the area's first L1 entry on are copied for the
 * snapshot alone (the data references move with them, unchanged) and the
 * active layer's entries there become empty.  QEMU instead shares them
 * and then discards the area in the active layer; the result on disk is
 * the same, without copy-on-write of the area's tables or a second pass.
 */
static int coroutine_fn create_commit_locked(BlockDriverState *bs,
                                             BdrvSnapshotCreate *st)
{
    Qcow2State *s = bs->opaque;
    guint used = 0;
    int ret = 0;
    uint64_t vm_index = st->sn.vm_state_size || st->vm_late
                        ? qcow2_l1_size_for(s->size, s->cluster_bits)
                        : UINT64_MAX;
    shadow_begin(bs);
    /* Holds are no longer needed once we own pointers; drop them so the
     * old tables can be freed below. */
    for (guint i = 0; i < st->held_l2->len; i++) {
        qcow2_cache_release(s->l2_cache, g_array_index(st->held_l2,
                                                       uint64_t, i));
    }
    g_array_set_size(st->held_l2, 0);
    st->l1s_alloc = MAX(s->l1_size, 1);
    st->l1s = g_new0(uint64_t, st->l1s_alloc);
    for (uint32_t i = 0; i < s->l1_size && ret >= 0; i++) {
        uint64_t t = s->l1_table[i] & L1E_OFFSET_MASK;
        if (!t) {
            continue;
        }
        uint64_t copy;
        if (used < st->reserved->len) {
            copy = g_array_index(st->reserved, uint64_t, used++);
        } else {
            int64_t c = qcow2_alloc_clusters(bs, 1);
            if (c < 0) {
                ret = (int)c;
                break;
            }
            copy = c;
        }
        uint64_t *src, *dst;
        ret = qcow2_cache_get(bs, s->l2_cache, t, (void **)&src);
        if (ret < 0) {
            break;
        }
        ret = qcow2_cache_get_empty(bs, s->l2_cache, copy, (void **)&dst);
        if (ret < 0) {
            qcow2_cache_put(s->l2_cache, (void **)&src);
            break;
        }
        if (i >= vm_index) {
            /* VM state: the snapshot's alone (refcount 1 from the
             * allocation), the active layer's reference to t goes. */
            for (uint64_t j = 0; j < s->l2_size; j++) {
                uint64_t e = be64_read(&src[j]);
                Qcow2ClusterType ty = qcow2_cluster_type(s, e);
                if (ty == QCOW2_CLUSTER_NORMAL ||
                    ty == QCOW2_CLUSTER_ZERO_ALLOC) {
                    e &= ~QCOW_OFLAG_COPIED;
                }
                be64_write(&dst[j], e);
            }
            qcow2_cache_mark_dirty(s->l2_cache, dst);
            qcow2_cache_put(s->l2_cache, (void **)&dst);
            qcow2_cache_put(s->l2_cache, (void **)&src);
            ret = shadow_release(bs, t, s->cluster_size);
            s->l1_table[i] = 0;
            st->l1s[i] = copy;
            continue;
        }
        /* The drained section waits on this loop: take one reference per
         * run of consecutive host clusters rather than per cluster. */
        uint64_t run_start = 0, run_bytes = 0;
        for (uint64_t j = 0; j < s->l2_size && ret >= 0; j++) {
            uint64_t e = be64_read(&src[j]);
            Qcow2ClusterType ty = qcow2_cluster_type(s, e);
            if (ty == QCOW2_CLUSTER_NORMAL || ty == QCOW2_CLUSTER_ZERO_ALLOC) {
                uint64_t host = e & L2E_OFFSET_MASK;
                e &= ~QCOW_OFLAG_COPIED;
                if (run_bytes && host == run_start + run_bytes) {
                    run_bytes += s->cluster_size;
                } else {
                    ret = qcow2_update_refcount(bs, run_start, run_bytes, 1);
                    run_start = host;
                    run_bytes = s->cluster_size;
                }
            } else if (ty == QCOW2_CLUSTER_COMPRESSED) {
                uint64_t h, b;
                qcow2_compressed_range(s, e, &h, &b);
                ret = qcow2_update_refcount(bs, h & ~511ULL, (h & 511) + b, 1);
            }
            be64_write(&dst[j], e);
        }
        if (ret >= 0) {
            ret = qcow2_update_refcount(bs, run_start, run_bytes, 1);
        }
        qcow2_cache_mark_dirty(s->l2_cache, dst);
        qcow2_cache_put(s->l2_cache, (void **)&dst);
        qcow2_cache_put(s->l2_cache, (void **)&src);
        if (ret < 0) {
            break;
        }
        /* Shared by two L1 tables: refcount 2, so no OFLAG_COPIED. */
        ret = qcow2_update_refcount(bs, copy, 1, 1);
        if (ret >= 0) {
            ret = shadow_release(bs, t, s->cluster_size);
        }
        s->l1_table[i] = copy;
        st->l1s[i] = copy;
    }
    create_release_reservations(bs, st, used);
    g_array_set_size(st->reserved, 0);
    if (ret >= 0) {
        uint64_t old_bytes = ROUND_UP((uint64_t)s->l1_size * 8,
                                      s->cluster_size);
        if (s->l1_size) {
            ret = shadow_release(bs, s->l1_table_offset, old_bytes);
        }
        s->l1_table_offset = st->l1a_offset;
        st->sn.l1_table_offset = st->l1s_offset;
        st->sn.l1_size = s->l1_size;
        st->sn.disk_size = s->size;
    }
    for (guint i = 0; i < st->held_rb->len; i++) {
        qcow2_cache_release(s->refblock_cache, g_array_index(st->held_rb,
                                                             uint64_t, i));
    }
    g_array_set_size(st->held_rb, 0);
    st->committed = true;
    return ret;
}

typedef struct {
    BlockDriverState *bs;
    BdrvSnapshotCreate *st;
    int ret;
} CommitCo;

static void coroutine_fn create_commit_entry(void *opaque)
{
    CommitCo *c = opaque;
    Qcow2State *s = c->bs->opaque;
    co_mutex_lock(&s->lock);
    c->ret = create_commit_locked(c->bs, c->st);
    co_mutex_unlock(&s->lock);
}

static void qcow2_snapshot_create_commit(BlockDriverState *bs,
                                         BdrvSnapshotCreate *st)
{
    CommitCo c = { bs, st, 0 };
    /* Everything is resident: this completes without waiting for I/O. */
    co_run_sync(create_commit_entry, &c);
    if (c.ret < 0) {
        /* Only possible with a corrupt image; finish reports it. */
        st->committed = false;
    }
}

/*
 * A late VM state's final size is known: the snapshot's L1 table maps all
 * of it (entries past what was written read as zeroes) and goes where it
 * fits - the cluster reserved at prepare, or new ones if it grew.
 */
static int coroutine_fn late_place_l1(BlockDriverState *bs,
                                      BdrvSnapshotCreate *st)
{
    Qcow2State *s = bs->opaque;
    uint64_t need = qcow2_l1_size_for(st->vm_off + st->sn.vm_state_size,
                                      s->cluster_bits);
    if (need > st->sn.l1_size) {
        if (need > st->l1s_alloc) {
            st->l1s = g_renew(uint64_t, st->l1s, need);
            memset(st->l1s + st->l1s_alloc, 0,
                   (need - st->l1s_alloc) * 8);
            st->l1s_alloc = need;
        }
        memset(st->l1s + st->sn.l1_size, 0, (need - st->sn.l1_size) * 8);
        st->sn.l1_size = need;
    }
    uint64_t bytes = ROUND_UP(MAX((uint64_t)st->sn.l1_size * 8, 8),
                              s->cluster_size);
    if (bytes > st->l1_bytes) {
        int64_t off = qcow2_alloc_clusters(bs, bytes >> s->cluster_bits);
        if (off < 0) {
            return (int)off;
        }
        int ret = shadow_release(bs, st->l1s_offset, st->l1_bytes);
        if (ret < 0) {
            return ret;
        }
        st->l1s_offset = off;
        st->l1_bytes = bytes;
    }
    st->sn.l1_table_offset = st->l1s_offset;
    return 0;
}

/*
 * ---- checkpoints: a flush while a late VM state is written ----
 *
 * The guest's writes since the commit must become durable at its flush,
 * but the snapshot cannot enter the file before its VM state is whole,
 * and waiting for that would stall the guest for the whole write-out.  So
 * a checkpoint writes, with one shadow switch, the state without the
 * pending snapshot: the active layer as it is and the old snapshot list.
 * The refcounts written include the pending snapshot's references, so in
 * the file its tables and VM state are leaks until the finish (a kill in
 * between leaves leaks, never corruption).  Shadow mode then starts over
 * against the new on-disk state: the active L1 table moves to a new
 * cluster, and every active L2 table the file now uses with refcount 1
 * loses OFLAG_COPIED in memory, so the next write copies it rather than
 * change a table in place (qcow2_get_l2_for_write).  Dirty refcount
 * blocks are relocated by every switch anyway.  In the file OFLAG_COPIED
 * must mean refcount 1, so before any switch the flag comes back on the
 * tables that were not copied meanwhile (checkpoint_restore_copied).
 */
static void checkpoint_restore_copied(Qcow2State *s, BdrvSnapshotCreate *st)
{
    for (guint i = 0; st->cp_protected && i < st->cp_protected->len; i++) {
        Qcow2CheckpointEntry *e = &g_array_index(st->cp_protected,
                                                 Qcow2CheckpointEntry, i);
        if (e->l1_index < s->l1_size &&
            (s->l1_table[e->l1_index] & L1E_OFFSET_MASK) == e->l2_offset) {
            s->l1_table[e->l1_index] |= QCOW_OFLAG_COPIED;
        }
    }
    if (st->cp_protected) {
        g_array_set_size(st->cp_protected, 0);
    }
}

/* Shadow mode again, against the state the file now holds. */
static int coroutine_fn checkpoint_protect(BlockDriverState *bs,
                                           BdrvSnapshotCreate *st,
                                           bool switched)
{
    Qcow2State *s = bs->opaque;
    int ret = 0;
    if (!s->shadow_pending) {
        shadow_begin(bs);
    }
    if (switched && s->l1_size) {
        uint64_t bytes = ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);
        int64_t off = qcow2_alloc_clusters(bs, bytes >> s->cluster_bits);
        if (off < 0) {
            ret = (int)off;
        } else {
            ret = shadow_release(bs, s->l1_table_offset, bytes);
            s->l1_table_offset = off;
        }
    }
    if (!st->cp_protected) {
        st->cp_protected = g_array_new(FALSE, FALSE,
                                       sizeof(Qcow2CheckpointEntry));
    }
    g_array_set_size(st->cp_protected, 0);
    /* Even if the move failed: no table the file uses may change. */
    for (uint64_t i = 0; i < s->l1_size; i++) {
        if (s->l1_table[i] & QCOW_OFLAG_COPIED) {
            Qcow2CheckpointEntry e = {
                i, s->l1_table[i] & L1E_OFFSET_MASK };
            g_array_append_val(st->cp_protected, e);
            s->l1_table[i] &= ~QCOW_OFLAG_COPIED;
        }
    }
    return ret;
}

int coroutine_fn qcow2_snapshot_checkpoint_pending(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    BdrvSnapshotCreate *st = s->pending_create;
    g_assert(qcow2_late_vmstate_pending(s) && s->shadow_pending);
    checkpoint_restore_copied(s, st);
    Qcow2Snapshot *list = g_new0(Qcow2Snapshot, MAX(s->nb_snapshots, 1));
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        snapshot_copy(&list[i], &s->snapshots[i]);
    }
    int ret = shadow_switch(bs, list, s->nb_snapshots);
    /* shadow_switch leaves shadow mode exactly when the header switched. */
    bool switched = !s->shadow_pending;
    int pret = checkpoint_protect(bs, st, switched);
    s->checkpoint_count++;
    return ret < 0 ? ret : pret;
}

int coroutine_fn qcow2_snapshot_finish_pending(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    BdrvSnapshotCreate *st = s->pending_create;
    int ret;
    if (!st || !st->committed) {
        /* Prepared only: the guest still runs and its flushes proceed.
         * A failed commit left a shadow state that must not be written
         * in place: only finish (which reloads) or abort may clean up. */
        return st && s->shadow_pending ? -EIO : 0;
    }
    create_clear_pending(s);
    checkpoint_restore_copied(s, st);
    ret = st->vm_late ? late_place_l1(bs, st) : 0;
    if (ret >= 0) {
        ret = write_l1(bs, st->l1s_offset, st->l1s, st->sn.l1_size);
    }
    if (ret >= 0) {
        Qcow2Snapshot *list = g_new0(Qcow2Snapshot, s->nb_snapshots + 1);
        for (uint32_t i = 0; i < s->nb_snapshots; i++) {
            snapshot_copy(&list[i], &s->snapshots[i]);
        }
        snapshot_copy(&list[s->nb_snapshots], &st->sn);
        ret = shadow_switch(bs, list, s->nb_snapshots + 1);
    }
    if (ret < 0) {
        reload_after_failure(bs);
    }
    create_state_free(bs, st);
    return ret;
}

static int coroutine_fn qcow2_snapshot_create_finish(BlockDriverState *bs,
                                                     BdrvSnapshotCreate *st,
                                                     GError **errp)
{
    Qcow2State *s = bs->opaque;
    co_mutex_lock(&s->lock);
    int ret;
    if (s->pending_create != st) {
        ret = 0;     /* a flush already finished it */
    } else if (!st->committed) {
        if (st->vm_late) {
            qcow2_late_vmstate_wait_idle(bs, st);
        }
        create_clear_pending(s);
        reload_after_failure(bs);
        create_state_free(bs, st);
        ret = -EIO;
    } else {
        if (st->vm_late) {
            qcow2_late_vmstate_wait_idle(bs, st);
        }
        ret = qcow2_snapshot_finish_pending(bs);
    }
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write the snapshot");
    }
    return ret;
}

static int coroutine_fn create_abandon_locked(BlockDriverState *bs,
                                              BdrvSnapshotCreate *st);

/* The entry is serialized when the creation finishes (or a flush
 * finishes it), so a clock set before that is the one written. */
static void qcow2_snapshot_create_set_vm_clock(BlockDriverState *bs,
                                               BdrvSnapshotCreate *st,
                                               uint64_t ns)
{
    Qcow2State *s = bs->opaque;
    if (s->pending_create == st) {
        st->sn.vm_clock_nsec = ns;
    }
}

/*
 * Undoes a prepare that was not committed.  A committed creation may be
 * aborted only if its VM state comes late (its write-out failed): the
 * snapshot is abandoned (create_abandon_locked) and the active layer
 * keeps its state since the commit.  A commit that failed leaves a
 * shadow state only a reload can clean up.
 */
static void coroutine_fn qcow2_snapshot_create_abort(BlockDriverState *bs,
                                                     BdrvSnapshotCreate *st)
{
    Qcow2State *s = bs->opaque;
    co_mutex_lock(&s->lock);
    if (st->vm_late) {
        qcow2_late_vmstate_wait_idle(bs, st);
    }
    if (st->committed) {
        g_assert(st->vm_late && s->pending_create == st);
        create_clear_pending(s);
        if (create_abandon_locked(bs, st) < 0) {
            reload_after_failure(bs);
        }
    } else if (s->shadow_pending) {
        create_clear_pending(s);
        reload_after_failure(bs);
    } else {
        create_clear_pending(s);
        qcow2_update_refcount(bs, st->l1s_offset, 2 * st->l1_bytes, -1);
        create_release_reservations(bs, st, 0);
    }
    create_state_free(bs, st);
    co_mutex_unlock(&s->lock);
}

/* ---- apply and delete ---- */

int coroutine_fn qcow2_read_snapshot_l1(BlockDriverState *bs,
                                        Qcow2Snapshot *sn, uint64_t **out,
                                        GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (!IS_ALIGNED(sn->l1_table_offset, s->cluster_size) ||
        (uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_SIZE ||
        (sn->l1_size && !sn->l1_table_offset)) {
        error_setg(errp, "Snapshot L1 table offset invalid");
        return -EINVAL;
    }
    uint64_t *l1 = g_new0(uint64_t, MAX(sn->l1_size, 1));
    if (sn->l1_size) {
        int ret = bdrv_co_pread(bs->file->bs, sn->l1_table_offset,
                                (uint64_t)sn->l1_size * 8, l1, 0);
        if (ret < 0) {
            g_free(l1);
            error_setg_errno(errp, -ret, "Could not read snapshot L1 table");
            return ret;
        }
    }
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        l1[i] = be64_read(&l1[i]);
        uint64_t t = l1[i] & L1E_OFFSET_MASK;
        if ((l1[i] & L1E_RESERVED_MASK) || !IS_ALIGNED(t, s->cluster_size) ||
            (t && t < s->cluster_size)) {
            g_free(l1);
            error_setg(errp, "Snapshot L1 table entry %u is corrupt", i);
            return -EINVAL;
        }
    }
    *out = l1;
    return 0;
}

/* Adds delta to the refcount of every data cluster in table t. */
static int coroutine_fn table_data_refs(BlockDriverState *bs, uint64_t t,
                                        int delta)
{
    Qcow2State *s = bs->opaque;
    uint64_t *l2;
    int ret = qcow2_cache_get(bs, s->l2_cache, t, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    /* Copy out: refcount updates may evict cache entries. */
    uint64_t *copy = g_memdup2(l2, s->cluster_size);
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    /* Host-contiguous clusters are updated as one range: the same
     * updates in the same order, with one refcount block lookup per run
     * instead of one per cluster. */
    uint64_t run_off = 0, run_len = 0;
    for (uint64_t j = 0; j <= s->l2_size && ret >= 0; j++) {
        uint64_t off = 0, len = 0;
        bool whole = false;
        if (j < s->l2_size) {
            uint64_t e = be64_read(&copy[j]);
            Qcow2ClusterType ty = qcow2_cluster_type(s, e);
            if (ty == QCOW2_CLUSTER_NORMAL ||
                ty == QCOW2_CLUSTER_ZERO_ALLOC) {
                off = e & L2E_OFFSET_MASK;
                len = s->cluster_size;
                whole = true;
                if (!IS_ALIGNED(off, s->cluster_size)) {
                    ret = -EIO;
                    break;
                }
            } else if (ty == QCOW2_CLUSTER_COMPRESSED) {
                uint64_t h, b;
                qcow2_compressed_range(s, e, &h, &b);
                off = h & ~511ULL;
                len = (h & 511) + b;
            } else {
                continue;
            }
            if (whole && run_len && off == run_off + run_len) {
                run_len += len;
                continue;
            }
        }
        if (run_len) {
            ret = delta < 0 ? shadow_release(bs, run_off, run_len)
                            : qcow2_update_refcount(bs, run_off, run_len,
                                                    delta);
            run_len = 0;
        }
        if (ret < 0 || !len) {
            continue;
        }
        if (whole) {
            run_off = off;
            run_len = len;
        } else {
            ret = delta < 0 ? shadow_release(bs, off, len)
                            : qcow2_update_refcount(bs, off, len, delta);
        }
    }
    g_free(copy);
    return ret;
}

/* Writes table t's content to a new cluster with OFLAG_COPIED set exactly
 * where the refcount is 1; returns the new offset. */
static int coroutine_fn copy_table_fix_flags(BlockDriverState *bs,
                                             uint64_t t, bool clear_all,
                                             uint64_t *out)
{
    Qcow2State *s = bs->opaque;
    int64_t c = qcow2_alloc_clusters(bs, 1);
    if (c < 0) {
        return (int)c;
    }
    uint64_t *src;
    int ret = qcow2_cache_get(bs, s->l2_cache, t, (void **)&src);
    if (ret < 0) {
        return ret;
    }
    uint64_t *copy = g_memdup2(src, s->cluster_size);
    qcow2_cache_put(s->l2_cache, (void **)&src);
    for (uint64_t j = 0; j < s->l2_size && ret >= 0; j++) {
        uint64_t e = be64_read(&copy[j]);
        Qcow2ClusterType ty = qcow2_cluster_type(s, e);
        if (ty == QCOW2_CLUSTER_NORMAL || ty == QCOW2_CLUSTER_ZERO_ALLOC) {
            uint64_t rc = 0;
            if (!clear_all) {
                ret = qcow2_get_refcount(bs, (e & L2E_OFFSET_MASK) >>
                                         s->cluster_bits, &rc);
            }
            e = rc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
            be64_write(&copy[j], e);
        }
    }
    uint64_t *dst;
    if (ret >= 0) {
        ret = qcow2_cache_get_empty(bs, s->l2_cache, c, (void **)&dst);
    }
    if (ret >= 0) {
        memcpy(dst, copy, s->cluster_size);
        qcow2_cache_mark_dirty(s->l2_cache, dst);
        qcow2_cache_put(s->l2_cache, (void **)&dst);
        *out = c;
    }
    g_free(copy);
    return ret;
}

/* Releases the active L1 table and everything only it references. */
static int coroutine_fn release_l1(BlockDriverState *bs, uint64_t *l1,
                                   uint32_t n, uint64_t l1_off)
{
    Qcow2State *s = bs->opaque;
    int ret = 0;
    for (uint32_t i = 0; i < n && ret >= 0; i++) {
        uint64_t t = l1[i] & L1E_OFFSET_MASK;
        if (t) {
            ret = table_data_refs(bs, t, -1);
            if (ret >= 0) {
                ret = shadow_release(bs, t, s->cluster_size);
            }
        }
    }
    if (ret >= 0 && n) {
        ret = shadow_release(bs, l1_off, ROUND_UP((uint64_t)n * 8,
                                                  s->cluster_size));
    }
    return ret;
}

/*
 * The snapshot of a committed creation goes away before it was ever
 * written (its late VM state failed): its references are dropped from
 * the shadow state - the tables it shared with the active layer, the
 * area it owned with its VM state, its L1 reservation - and every active
 * table whose refcount fell back to 1 gets a copy with OFLAG_COPIED set
 * again.  One shadow switch then writes the active layer as it is now
 * (guest writes since the commit included) with the old snapshot list.
 * The active L1 table already lies in a new cluster (commit moved it).
 */
static int coroutine_fn create_abandon_locked(BlockDriverState *bs,
                                              BdrvSnapshotCreate *st)
{
    Qcow2State *s = bs->opaque;
    uint64_t vm_index = qcow2_l1_size_for(s->size, s->cluster_bits);
    int ret = 0;
    for (uint32_t i = 0; i < st->sn.l1_size && ret >= 0; i++) {
        uint64_t t = st->l1s[i] & L1E_OFFSET_MASK;
        if (!t) {
            continue;
        }
        ret = table_data_refs(bs, t, -1);
        if (ret >= 0) {
            ret = shadow_release(bs, t, s->cluster_size);
        }
        if (i >= vm_index) {
            /* The snapshot's own table, dirty and never written. */
            qcow2_cache_discard(s->l2_cache, t);
        }
        st->l1s[i] = 0;
    }
    if (ret >= 0) {
        ret = shadow_release(bs, st->l1s_offset, st->l1_bytes);
    }
    for (uint32_t i = 0; i < s->l1_size && ret >= 0; i++) {
        uint64_t t = s->l1_table[i] & L1E_OFFSET_MASK;
        uint64_t rc, copy;
        if (!t) {
            continue;
        }
        ret = qcow2_get_refcount(bs, t >> s->cluster_bits, &rc);
        if (ret < 0 || rc != 1) {
            continue;
        }
        ret = copy_table_fix_flags(bs, t, false, &copy);
        if (ret >= 0) {
            ret = shadow_release(bs, t, s->cluster_size);
        }
        if (ret >= 0) {
            s->l1_table[i] = copy | QCOW_OFLAG_COPIED;
        }
    }
    if (ret < 0) {
        return ret;
    }
    Qcow2Snapshot *list = g_new0(Qcow2Snapshot, MAX(s->nb_snapshots, 1));
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        snapshot_copy(&list[i], &s->snapshots[i]);
    }
    return shadow_switch(bs, list, s->nb_snapshots);
}

static int coroutine_fn apply_locked(BlockDriverState *bs, int idx,
                                     GError **errp)
{
    Qcow2State *s = bs->opaque;
    Qcow2Snapshot *sn = &s->snapshots[idx];
    uint64_t *sl1 = NULL;
    int ret = qcow2_read_snapshot_l1(bs, sn, &sl1, errp);
    if (ret < 0) {
        return ret;
    }
    uint32_t new_size = MAX(sn->l1_size,
                            qcow2_l1_size_for(sn->disk_size, s->cluster_bits));
    uint64_t *nl1 = g_new0(uint64_t, MAX(new_size, 1));
    shadow_begin(bs);
    /* Release the old active layer first: a cluster that both layers use
     * keeps its refcount instead of passing through max + 1, which narrow
     * refcounts cannot hold.  Nothing released is reused before the
     * switch (shadow_release). */
    ret = release_l1(bs, s->l1_table, s->l1_size, s->l1_table_offset);
    /* New private copies of the snapshot's tables for the active layer. */
    for (uint32_t i = 0; i < sn->l1_size && ret >= 0; i++) {
        uint64_t t = sl1[i] & L1E_OFFSET_MASK;
        if (!t) {
            continue;
        }
        uint64_t copy;
        ret = table_data_refs(bs, t, 1);
        if (ret >= 0) {
            ret = copy_table_fix_flags(bs, t, true, &copy);
        }
        if (ret >= 0) {
            nl1[i] = copy | QCOW_OFLAG_COPIED;
        }
    }
    int64_t l1_off = 0;
    if (ret >= 0 && new_size) {
        l1_off = qcow2_alloc_clusters(bs, DIV_ROUND_UP((uint64_t)new_size * 8,
                                                       s->cluster_size));
        ret = l1_off < 0 ? (int)l1_off : 0;
    }
    g_free(sl1);
    if (ret < 0) {
        g_free(nl1);
        error_setg_errno(errp, -ret, "Could not revert to the snapshot");
        return ret;
    }
    g_free(s->l1_table);
    s->l1_table = nl1;
    s->l1_alloc = MAX(new_size, 1);
    s->l1_size = new_size;
    s->l1_table_offset = l1_off;
    s->size = sn->disk_size;
    Qcow2Snapshot *list = g_new0(Qcow2Snapshot, MAX(s->nb_snapshots, 1));
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        snapshot_copy(&list[i], &s->snapshots[i]);
    }
    ret = shadow_switch(bs, list, s->nb_snapshots);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write the reverted state");
    }
    return ret;
}

static int coroutine_fn delete_locked(BlockDriverState *bs, int idx,
                                      GError **errp)
{
    Qcow2State *s = bs->opaque;
    Qcow2Snapshot *sn = &s->snapshots[idx];
    uint64_t *sl1 = NULL;
    int ret = qcow2_read_snapshot_l1(bs, sn, &sl1, errp);
    if (ret < 0) {
        return ret;
    }
    shadow_begin(bs);
    ret = release_l1(bs, sl1, sn->l1_size, sn->l1_table_offset);
    g_free(sl1);
    /* Active tables whose flags change get new copies; the L1 too. */
    uint64_t *nl1 = g_new0(uint64_t, MAX(s->l1_size, 1));
    for (uint32_t i = 0; i < s->l1_size && ret >= 0; i++) {
        uint64_t t = s->l1_table[i] & L1E_OFFSET_MASK;
        if (!t) {
            continue;
        }
        uint64_t rc;
        ret = qcow2_get_refcount(bs, t >> s->cluster_bits, &rc);
        if (ret < 0) {
            break;
        }
        if (rc == 1) {
            uint64_t copy;
            ret = copy_table_fix_flags(bs, t, false, &copy);
            if (ret >= 0) {
                ret = shadow_release(bs, t, s->cluster_size);
            }
            nl1[i] = copy | QCOW_OFLAG_COPIED;
        } else {
            nl1[i] = t;
        }
    }
    int64_t l1_off = 0;
    if (ret >= 0 && s->l1_size) {
        uint64_t bytes = ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);
        ret = shadow_release(bs, s->l1_table_offset, bytes);
        if (ret >= 0) {
            l1_off = qcow2_alloc_clusters(bs, bytes >> s->cluster_bits);
            ret = l1_off < 0 ? (int)l1_off : 0;
        }
    }
    if (ret < 0) {
        g_free(nl1);
        error_setg_errno(errp, -ret, "Could not delete the snapshot");
        return ret;
    }
    memcpy(s->l1_table, nl1, (uint64_t)s->l1_size * 8);
    g_free(nl1);
    s->l1_table_offset = l1_off;
    Qcow2Snapshot *list = g_new0(Qcow2Snapshot, MAX(s->nb_snapshots, 1));
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if ((int)i != idx) {
            snapshot_copy(&list[n++], &s->snapshots[i]);
        }
    }
    ret = shadow_switch(bs, list, n);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write the snapshot table");
    }
    return ret;
}

/* Reads of a snapshot's VM state run without s->lock: clusters freed
 * under them could be reused (qcow2-vmstate.c). */
static void coroutine_fn wait_vmstate_readers(Qcow2State *s)
{
    while (s->vmstate_readers) {
        co_queue_wait(&s->vmstate_readers_done, &s->lock);
    }
}

static int coroutine_fn qcow2_snapshot_apply(BlockDriverState *bs,
                                             const char *id_or_name,
                                             GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    co_mutex_lock(&s->lock);
    wait_vmstate_readers(s);
    int ret = -ENOENT;
    int idx = qcow2_find_snapshot_by_id_or_name(s, id_or_name);
    if (idx < 0) {
        error_setg(errp, "Can't find snapshot");
    } else if (s->pending_create || s->shadow_pending) {
        error_setg(errp, "Another snapshot operation is in progress");
        ret = -EBUSY;
    } else if ((ret = qcow2_flush_metadata(bs)) < 0) {
        error_setg_errno(errp, -ret, "Could not flush metadata");
    } else {
        ret = apply_locked(bs, idx, errp);
        if (ret < 0) {
            reload_after_failure(bs);
        } else if ((ret = qcow2_flush_metadata(bs)) < 0) {
            error_setg_errno(errp, -ret, "Could not flush metadata");
        }
    }
    s->cbuf_desc = UINT64_MAX;
    co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_snapshot_delete(BlockDriverState *bs,
                                              const char *id,
                                              const char *name,
                                              BdrvSnapshotInfo *deleted,
                                              GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    co_mutex_lock(&s->lock);
    wait_vmstate_readers(s);
    int ret = -ENOENT;
    int idx = find_snapshot(s, id, name);
    if (idx < 0) {
        if (id && name) {
            error_setg(errp, "Can't find snapshot with id '%s' and name '%s'",
                       id, name);
        } else {
            error_setg(errp, "Can't find the snapshot");
        }
    } else if (s->pending_create || s->shadow_pending) {
        error_setg(errp, "Another snapshot operation is in progress");
        ret = -EBUSY;
    } else if ((ret = qcow2_flush_metadata(bs)) < 0) {
        error_setg_errno(errp, -ret, "Could not flush metadata");
    } else {
        if (deleted) {
            deleted->id_str = g_strdup(s->snapshots[idx].id_str);
            deleted->name = g_strdup(s->snapshots[idx].name);
        }
        ret = delete_locked(bs, idx, errp);
        if (ret < 0) {
            reload_after_failure(bs);
        } else if ((ret = qcow2_flush_metadata(bs)) < 0) {
            error_setg_errno(errp, -ret, "Could not flush metadata");
        }
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

const BdrvSnapshotOps qcow2_snapshot_ops = {
    .list = qcow2_snapshot_list,
    .create_prepare = qcow2_snapshot_create_prepare,
    .create_commit = qcow2_snapshot_create_commit,
    .create_finish = qcow2_snapshot_create_finish,
    .create_abort = qcow2_snapshot_create_abort,
    .create_writev_vmstate = qcow2_snapshot_create_writev_vmstate,
    .create_set_vm_state_size = qcow2_snapshot_create_set_vm_state_size,
    .create_set_vm_clock = qcow2_snapshot_create_set_vm_clock,
    .apply = qcow2_snapshot_apply,
    .delete = qcow2_snapshot_delete,
    .readv_vmstate = qcow2_snapshot_readv_vmstate,
};

/* Rewrites the snapshot table (and moves the active L1) through a shadow
 * commit, e.g. after a compat upgrade changed the entries' format. */
int coroutine_fn qcow2_rewrite_snapshot_table(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    int ret = qcow2_flush_metadata(bs);
    if (ret < 0) {
        return ret;
    }
    shadow_begin(bs);
    uint64_t bytes = ROUND_UP(MAX((uint64_t)s->l1_size * 8, 8),
                              s->cluster_size);
    int64_t l1 = qcow2_alloc_clusters(bs, bytes >> s->cluster_bits);
    if (l1 < 0) {
        reload_after_failure(bs);
        return (int)l1;
    }
    if (s->l1_size) {
        ret = shadow_release(bs, s->l1_table_offset, bytes);
    }
    s->l1_table_offset = l1;
    Qcow2Snapshot *list = g_new0(Qcow2Snapshot, MAX(s->nb_snapshots, 1));
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        snapshot_copy(&list[i], &s->snapshots[i]);
    }
    if (ret >= 0) {
        ret = shadow_switch(bs, list, s->nb_snapshots);
    } else {
        g_free(list);
    }
    if (ret < 0) {
        reload_after_failure(bs);
    }
    return ret;
}

/* Does any snapshot's L2 table hold a zero-flagged entry? */
int coroutine_fn qcow2_snapshots_have_zero_clusters(BlockDriverState *bs,
                                                   bool *found)
{
    Qcow2State *s = bs->opaque;
    *found = false;
    uint64_t *l2 = g_malloc(s->cluster_size);
    int ret = 0;
    for (uint32_t i = 0; i < s->nb_snapshots && !*found && ret >= 0; i++) {
        uint64_t *l1 = NULL;
        ret = qcow2_read_snapshot_l1(bs, &s->snapshots[i], &l1, NULL);
        for (uint32_t j = 0; ret >= 0 && j < s->snapshots[i].l1_size &&
                             !*found; j++) {
            uint64_t t = l1[j] & L1E_OFFSET_MASK;
            if (!t) {
                continue;
            }
            ret = bdrv_co_pread(bs->file->bs, t, s->cluster_size, l2, 0);
            for (uint64_t k = 0; ret >= 0 && k < s->l2_size; k++) {
                uint64_t e = be64_read(&l2[k]);
                if (!(e & QCOW_OFLAG_COMPRESSED) && (e & QCOW_OFLAG_ZERO)) {
                    *found = true;
                    break;
                }
            }
        }
        g_free(l1);
    }
    g_free(l2);
    return ret;
}
