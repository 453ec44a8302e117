/*
 * qcow2-vmstate.c - the qcow2 VM state area: where a save state's RAM and
 * device state are kept, as QEMU keeps them, so that qemu-img and QEMU's
 * loadvm see the same thing.
 *
 * Layout (qcow2.txt, snapshot table entry bytes 32-35): the VM state
 * starts at the first guest cluster mapped by the first L1 entry that maps
 * no cluster of the virtual disk, i.e. at the disk size rounded up to
 * what one L2 table maps (qcow2_vm_state_offset), and is stored like guest
 * data through the same L1/L2 tables.  Byte pos of the VM state lives at
 * guest offset qcow2_vm_state_offset() + pos.  A snapshot's VM state is
 * found the same way through the snapshot's L1 table and its disk size.
 *
 * Invariants:
 *   - writes go through the normal allocating write path, so copy-on-write
 *     against snapshots and refcounts are as for guest data; the area is
 *     never visible to the guest and never reads through to a backing
 *     file: what was not written reads as zeroes;
 *   - the active layer's area is transient: a snapshot that records a VM
 *     state takes it over at its commit (qcow2-snapshot.c), a resize that
 *     moves the area drops it (qcow2.c), and bdrv_discard_vmstate drops it
 *     on request;
 *   - a snapshot's VM state is read only within its recorded size and only
 *     if the snapshot's L1 table maps all of it; anything else is damage
 *     and is refused with an error;
 *   - the L1 table never grows while a snapshot creation is pending (its
 *     prepare reserved L1 space for the current size).
 *
 * The late VM state of a snapshot being created (vm_state_late, written
 * between its commit and its finish) is the last part of this file.
 *
 * Called through block/vmstate.c.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>

/* Makes the active L1 table map [offset, end) (s->lock held). */
static int coroutine_fn grow_for(BlockDriverState *bs, uint64_t end,
                                 GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t need = qcow2_l1_size_for(end, s->cluster_bits);
    if (need <= s->l1_size) {
        return 0;
    }
    if (s->pending_create || s->shadow_pending) {
        error_setg(errp, "Cannot extend the VM state area while a snapshot "
                   "is being taken");
        return -EBUSY;
    }
    int ret = qcow2_grow_l1_table(bs, need, false);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not grow the L1 table for the "
                         "VM state");
    }
    return ret;
}

/* Checks [pos, +bytes) against what the active layer can map. */
static int check_active_range(BlockDriverState *bs, int64_t pos,
                              uint64_t bytes, uint64_t *offset,
                              GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->stale) {
        error_setg(errp, "The image must be reopened after an I/O error");
        return -EIO;
    }
    uint64_t vm_off = qcow2_vm_state_offset(s);
    uint64_t max = qcow2_max_mapped_offset(s);
    if (pos < 0 || vm_off >= max || (uint64_t)pos > max - vm_off ||
        bytes > max - vm_off - pos) {
        error_setg(errp, "VM state access out of range: %" G_GUINT64_FORMAT
                   " bytes at %" G_GINT64_FORMAT " (this image maps at most %"
                   G_GUINT64_FORMAT " bytes of VM state)", bytes, pos,
                   vm_off < max ? max - vm_off : 0);
        return -EFBIG;
    }
    *offset = vm_off + pos;
    return 0;
}

int coroutine_fn qcow2_co_writev_vmstate(BlockDriverState *bs,
                                         IOVector *qiov, int64_t pos,
                                         GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t bytes = qiov->size, offset;
    int ret = check_active_range(bs, pos, bytes, &offset, errp);
    if (ret < 0 || !bytes) {
        return ret;
    }
    if (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
        error_setg(errp, "Image is corrupt; cannot write the VM state");
        return -EIO;
    }
    /* Grow the L1 table here, where a pending snapshot can be told apart
     * (the write path would grow it regardless). */
    co_mutex_lock(&s->lock);
    ret = grow_for(bs, offset + bytes, errp);
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_write_range(bs, offset, bytes, qiov);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write the VM state");
    }
    return ret;
}

int coroutine_fn qcow2_co_readv_vmstate(BlockDriverState *bs,
                                        IOVector *qiov, int64_t pos,
                                        GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t bytes = qiov->size, offset;
    int ret = check_active_range(bs, pos, bytes, &offset, errp);
    if (ret < 0 || !bytes) {
        return ret;
    }
    ret = qcow2_read_mapped(bs, NULL, 0, qcow2_vm_state_offset(s), offset,
                            bytes, qiov, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the VM state");
    }
    return ret;
}

int coroutine_fn qcow2_drop_active_vmstate(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    int ret = 0;
    for (uint64_t i = qcow2_l1_size_for(s->size, s->cluster_bits);
         i < s->l1_size && ret >= 0; i++) {
        ret = qcow2_drop_l1_entry(bs, i);
    }
    return ret;
}

int coroutine_fn qcow2_co_discard_vmstate(BlockDriverState *bs,
                                          GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->stale || (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
        error_setg(errp, "Image is corrupt or must be reopened; cannot "
                   "discard the VM state");
        return -EIO;
    }
    co_mutex_lock(&s->lock);
    int ret;
    if (s->pending_create || s->shadow_pending) {
        error_setg(errp, "Cannot discard the VM state while a snapshot is "
                   "being taken");
        ret = -EBUSY;
    } else {
        uint64_t vm_off = qcow2_vm_state_offset(s);
        uint64_t end = (uint64_t)s->l1_size << (s->l2_bits + s->cluster_bits);
        if (end > vm_off) {
            /* Writes still allocating in the area finish first. */
            uint64_t first = vm_off >> s->cluster_bits;
            uint64_t n = (end - vm_off) >> s->cluster_bits;
            for (GList *l = s->allocs; l;) {
                Qcow2Alloc *a = l->data;
                if (first < a->guest_start + a->nb_clusters &&
                    a->guest_start < first + n) {
                    co_queue_wait(&a->waiters, &s->lock);
                    l = s->allocs;
                } else {
                    l = l->next;
                }
            }
        }
        ret = qcow2_drop_active_vmstate(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not discard the VM state");
        }
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

/* ---- a snapshot's VM state ---- */

int coroutine_fn qcow2_snapshot_readv_vmstate(BlockDriverState *bs,
                                              const char *id_or_name,
                                              IOVector *qiov, int64_t pos,
                                              GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t bytes = qiov->size;
    if (s->stale) {
        error_setg(errp, "The image must be reopened after an I/O error");
        return -EIO;
    }
    co_mutex_lock(&s->lock);
    int idx = qcow2_find_snapshot_by_id_or_name(s, id_or_name);
    if (idx < 0) {
        co_mutex_unlock(&s->lock);
        error_setg(errp, "Can't find snapshot '%s'", id_or_name);
        return -ENOENT;
    }
    /* A private copy: the table may be replaced while we read. */
    Qcow2Snapshot sn = s->snapshots[idx];
    sn.id_str = g_strdup(sn.id_str);
    sn.name = g_strdup(sn.name);
    sn.unknown_extra = NULL;
    s->vmstate_readers++;
    co_mutex_unlock(&s->lock);

    int ret = 0;
    uint64_t *l1 = NULL;
    uint64_t span_bits = s->l2_bits + s->cluster_bits;
    uint64_t max = qcow2_max_mapped_offset(s);
    /* The area this snapshot's L1 table maps past its disk. */
    uint64_t vm_off = sn.disk_size < max ? qcow2_vm_state_offset_for(s,
                                                                 sn.disk_size)
                                         : max;
    uint64_t mapped = MIN((uint64_t)sn.l1_size << span_bits, max);
    uint64_t area = mapped > vm_off ? mapped - vm_off : 0;
    if (pos < 0 || (uint64_t)pos > sn.vm_state_size ||
        bytes > sn.vm_state_size - pos) {
        error_setg(errp, "Cannot read %" G_GUINT64_FORMAT " bytes at %"
                   G_GINT64_FORMAT " of the VM state of snapshot '%s': it "
                   "holds %" G_GUINT64_FORMAT " bytes", bytes, pos,
                   sn.name, sn.vm_state_size);
        ret = -EINVAL;
    } else if (sn.vm_state_size > area) {
        error_setg(errp, "Snapshot '%s' is damaged: its VM state size (%"
                   G_GUINT64_FORMAT " bytes) exceeds its VM state area (%"
                   G_GUINT64_FORMAT " bytes)", sn.name, sn.vm_state_size,
                   area);
        ret = -EINVAL;
    } else if (bytes) {
        ret = qcow2_read_snapshot_l1(bs, &sn, &l1, errp);
        if (ret >= 0) {
            ret = qcow2_read_mapped(bs, l1, sn.l1_size, 0, vm_off + pos,
                                    bytes, qiov, 0);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not read the VM state of "
                                 "snapshot '%s'", sn.name);
            }
        }
    }
    g_free(l1);
    g_free(sn.id_str);
    g_free(sn.name);
    co_mutex_lock(&s->lock);
    if (--s->vmstate_readers == 0) {
        co_queue_restart_all(&s->vmstate_readers_done);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

/* ---- the late VM state of a snapshot being created ----
 *
 * Between the commit and the finish of a creation prepared with
 * vm_state_late, the VM state is written straight into the snapshot:
 * through its L1 table in memory (st->l1s, grown here as needed) into L2
 * tables private to it - copies made at commit or allocated here - that
 * live dirty in the L2 cache (shadow mode: never written in place).
 * Data goes to newly allocated clusters; a cluster a late write
 * allocated (st->vm_fresh) is rewritten in place, any other (handed over
 * at commit, possibly still live in the on-disk state) is replaced with
 * a copy and released from the shadow state only.  Nothing reaches the
 * on-disk state before the finish's shadow switch, which writes the
 * tables and syncs the data before the header names the snapshot.
 *
 * Late writes of overlapping clusters are serialised (st->vm_writes);
 * finish and abort wait until none is under way.
 */

static Qcow2Alloc *late_overlap(BdrvSnapshotCreate *st, uint64_t first,
                                uint64_t n)
{
    for (GList *l = st->vm_writes; l; l = l->next) {
        Qcow2Alloc *a = l->data;
        if (first < a->guest_start + a->nb_clusters &&
            a->guest_start < first + n) {
            return a;
        }
    }
    return NULL;
}

void coroutine_fn qcow2_late_vmstate_wait_idle(BlockDriverState *bs,
                                               BdrvSnapshotCreate *st)
{
    Qcow2State *s = bs->opaque;
    while (st->vm_writes) {
        co_queue_wait(&st->vm_idle, &s->lock);
    }
}

/* May st's VM state be written now, [pos, +bytes)?  (s->lock held; st is
 * only dereferenced once known to be the pending creation.) */
static int late_check(BlockDriverState *bs, BdrvSnapshotCreate *st,
                      int64_t pos, uint64_t bytes, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->stale || (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
        error_setg(errp, "Image is corrupt or must be reopened; cannot "
                   "write the VM state");
        return -EIO;
    }
    if (s->pending_create != st || !st->vm_late) {
        error_setg(errp, "No snapshot being created waits for its VM state");
        return -EINVAL;
    }
    if (!st->committed) {
        if (s->shadow_pending) {
            error_setg(errp, "The snapshot's commit failed");
            return -EIO;
        }
        error_setg(errp, "The snapshot is not committed yet");
        return -EBUSY;
    }
    uint64_t max = qcow2_max_mapped_offset(s);
    if (pos < 0 || st->vm_off >= max || (uint64_t)pos > max - st->vm_off ||
        bytes > max - st->vm_off - pos) {
        error_setg(errp, "VM state access out of range: %" G_GUINT64_FORMAT
                   " bytes at %" G_GINT64_FORMAT " (this image maps at most %"
                   G_GUINT64_FORMAT " bytes of VM state)", bytes, pos,
                   st->vm_off < max ? max - st->vm_off : 0);
        return -EFBIG;
    }
    return 0;
}

/* The snapshot's L2 table for L1 index l1i, made if missing. */
static int coroutine_fn late_l2_table(BlockDriverState *bs,
                                      BdrvSnapshotCreate *st, uint64_t l1i,
                                      uint64_t *out)
{
    Qcow2State *s = bs->opaque;
    if (l1i >= st->l1s_alloc) {
        uint64_t n = MIN(MAX(l1i + 1, st->l1s_alloc * 2),
                         (uint64_t)QCOW2_MAX_L1_SIZE / 8);
        g_assert(l1i < n);
        st->l1s = g_renew(uint64_t, st->l1s, n);
        memset(st->l1s + st->l1s_alloc, 0, (n - st->l1s_alloc) * 8);
        st->l1s_alloc = n;
    }
    if (l1i >= st->sn.l1_size) {
        st->sn.l1_size = l1i + 1;
    }
    uint64_t t = st->l1s[l1i] & L1E_OFFSET_MASK;
    if (!t) {
        int64_t c = qcow2_alloc_clusters(bs, 1);
        if (c < 0) {
            return (int)c;
        }
        uint64_t *table;
        int ret = qcow2_check_metadata_overlap(bs, c, s->cluster_size, "L2");
        if (ret >= 0) {
            ret = qcow2_cache_get_empty(bs, s->l2_cache, c, (void **)&table);
        }
        if (ret < 0) {
            qcow2_shadow_release(bs, c, s->cluster_size);
            return ret;
        }
        qcow2_cache_mark_dirty(s->l2_cache, table);
        qcow2_cache_put(s->l2_cache, (void **)&table);
        st->l1s[l1i] = c;
        t = c;
    }
    *out = t;
    return 0;
}

static bool late_is_fresh(Qcow2State *s, BdrvSnapshotCreate *st,
                          uint64_t guest_cluster, uint64_t e)
{
    return qcow2_cluster_type(s, e) == QCOW2_CLUSTER_NORMAL &&
           g_hash_table_contains(st->vm_fresh,
                                 QCOW2_CLUSTER_KEY(guest_cluster));
}

/* Bytes [off, +len) of the cluster an old entry maps (copy-on-write of a
 * partly written cluster).  No lock: only this write replaces it. */
static int coroutine_fn late_read_old(BlockDriverState *bs, uint64_t e,
                                      uint64_t off, uint64_t len,
                                      uint8_t *buf)
{
    Qcow2State *s = bs->opaque;
    switch (qcow2_cluster_type(s, e)) {
    case QCOW2_CLUSTER_NORMAL: {
        uint64_t host = e & L2E_OFFSET_MASK;
        if (host < s->cluster_size || !IS_ALIGNED(host, s->cluster_size)) {
            qcow2_signal_corruption(bs, "Invalid VM state L2 entry %#"
                                    G_GINT64_MODIFIER "x", e);
            return -EIO;
        }
        return bdrv_co_pread(bs->file->bs, host + off, len, buf, 0);
    }
    case QCOW2_CLUSTER_COMPRESSED: {
        uint8_t *c = g_malloc(s->cluster_size);
        int ret = qcow2_decompress_cluster(bs, e, c);
        if (ret >= 0) {
            memcpy(buf, c + off, len);
        }
        g_free(c);
        return ret;
    }
    default:
        memset(buf, 0, len);
        return 0;
    }
}

/* Releases, from the shadow state, what an entry replaced by a late
 * write held. */
static int coroutine_fn late_release_old(BlockDriverState *bs, uint64_t e)
{
    Qcow2State *s = bs->opaque;
    switch (qcow2_cluster_type(s, e)) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return qcow2_shadow_release(bs, e & L2E_OFFSET_MASK, s->cluster_size);
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t host, bytes;
        qcow2_compressed_range(s, e, &host, &bytes);
        return qcow2_shadow_release(bs, host & ~511ULL, (host & 511) + bytes);
    }
    default:
        return 0;
    }
}

/*
 * Guest [offset, +n) of the area, whose clusters are not fresh, into n
 * newly allocated contiguous clusters (with the old contents around a
 * partly written first or last cluster), then mapped by table t.
 */
static int coroutine_fn late_write_new(BlockDriverState *bs,
                                       BdrvSnapshotCreate *st, uint64_t t,
                                       uint64_t offset, uint64_t n,
                                       IOVector *qiov, size_t qoff,
                                       uint64_t e_first, uint64_t e_last)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t head = qcow2_offset_into_cluster(s, offset);
    uint64_t nb = DIV_ROUND_UP(head + n, cs);
    uint64_t tail = nb * cs - head - n;
    int64_t host = qcow2_alloc_clusters(bs, nb);
    if (host < 0) {
        return (int)host;
    }
    int ret = qcow2_check_metadata_overlap(bs, host, nb * cs, "VM state");
    if (ret < 0) {
        return ret;
    }
    co_mutex_unlock(&s->lock);
    uint8_t *head_buf = NULL, *tail_buf = NULL;
    IOVector wq;
    iovec_init(&wq, qiov->niov + 2);
    if (head) {
        head_buf = bdrv_blockalign(bs->file->bs, head);
        ret = late_read_old(bs, e_first, 0, head, head_buf);
        iovec_add(&wq, head_buf, head);
    }
    iovec_concat(&wq, qiov, qoff, n);
    if (tail && ret >= 0) {
        tail_buf = bdrv_blockalign(bs->file->bs, tail);
        ret = late_read_old(bs, e_last, cs - tail, tail, tail_buf);
        iovec_add(&wq, tail_buf, tail);
    }
    if (ret >= 0) {
        ret = bdrv_co_pwritev(bs->file->bs, host, wq.size, &wq, 0);
    }
    iovec_destroy(&wq);
    bdrv_vfree(head_buf);
    bdrv_vfree(tail_buf);
    co_mutex_lock(&s->lock);

    uint64_t *l2, *old = NULL;
    if (ret >= 0) {
        ret = qcow2_cache_get(bs, s->l2_cache, t, (void **)&l2);
    }
    if (ret < 0) {
        /* Never referenced: back to free after the switch. */
        qcow2_shadow_release(bs, host, nb * cs);
        return ret;
    }
    uint64_t l2i = qcow2_l2_index(s, offset);
    uint64_t guest_c = offset >> s->cluster_bits;
    old = g_new(uint64_t, nb);
    for (uint64_t i = 0; i < nb; i++) {
        old[i] = be64_read(&l2[l2i + i]);
        /* The snapshot's alone, but no OFLAG_COPIED: only active tables
         * carry it (as for the area commit hands over). */
        be64_write(&l2[l2i + i], host + (i << s->cluster_bits));
        g_hash_table_add(st->vm_fresh, QCOW2_CLUSTER_KEY(guest_c + i));
    }
    qcow2_cache_mark_dirty(s->l2_cache, l2);
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    for (uint64_t i = 0; i < nb && ret >= 0; i++) {
        ret = late_release_old(bs, old[i]);
    }
    g_free(old);
    return ret;
}

/* One run of [offset, +bytes): clusters of one L2 table that are all
 * fresh and host-contiguous (written in place) or all not (written
 * anew).  *done: the bytes it covered.  s->lock held. */
static int coroutine_fn late_write_run(BlockDriverState *bs,
                                       BdrvSnapshotCreate *st,
                                       uint64_t offset, uint64_t bytes,
                                       IOVector *qiov, size_t qoff,
                                       uint64_t *done)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t t = 0;
    int ret = late_l2_table(bs, st, qcow2_l1_index(s, offset), &t);
    if (ret < 0) {
        return ret;
    }
    uint64_t l2i = qcow2_l2_index(s, offset);
    uint64_t in_cluster = qcow2_offset_into_cluster(s, offset);
    uint64_t avail = MIN(bytes, ((s->l2_size - l2i) << s->cluster_bits) -
                                in_cluster);
    uint64_t nb_max = DIV_ROUND_UP(in_cluster + avail, cs);
    uint64_t guest_c = offset >> s->cluster_bits;
    uint64_t *l2;
    ret = qcow2_cache_get(bs, s->l2_cache, t, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    uint64_t e0 = be64_read(&l2[l2i]);
    bool fresh = late_is_fresh(s, st, guest_c, e0);
    uint64_t k = 1;
    for (; k < nb_max; k++) {
        uint64_t e = be64_read(&l2[l2i + k]);
        if (late_is_fresh(s, st, guest_c + k, e) != fresh ||
            (fresh && (e & L2E_OFFSET_MASK) !=
                      (e0 & L2E_OFFSET_MASK) + (k << s->cluster_bits))) {
            break;
        }
    }
    uint64_t n = MIN(avail, (k << s->cluster_bits) - in_cluster);
    uint64_t nb = DIV_ROUND_UP(in_cluster + n, cs);
    uint64_t e_last = be64_read(&l2[l2i + nb - 1]);
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    *done = n;
    if (!fresh) {
        return late_write_new(bs, st, t, offset, n, qiov, qoff, e0, e_last);
    }
    uint64_t host = (e0 & L2E_OFFSET_MASK) + in_cluster;
    ret = qcow2_check_metadata_overlap(bs, host, n, "VM state");
    if (ret < 0) {
        return ret;
    }
    co_mutex_unlock(&s->lock);
    IOVector sub;
    iovec_init(&sub, qiov->niov);
    iovec_concat(&sub, qiov, qoff, n);
    ret = bdrv_co_pwritev(bs->file->bs, host, n, &sub, 0);
    iovec_destroy(&sub);
    co_mutex_lock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_snapshot_create_writev_vmstate(BlockDriverState *bs,
                                                      BdrvSnapshotCreate *st,
                                                      IOVector *qiov,
                                                      int64_t pos,
                                                      GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t bytes = qiov->size;
    int ret;
    co_mutex_lock(&s->lock);
    uint64_t first = 0, n = 0;
    for (;;) {
        ret = late_check(bs, st, pos, bytes, errp);
        if (ret < 0 || !bytes) {
            co_mutex_unlock(&s->lock);
            return ret;
        }
        uint64_t offset = st->vm_off + pos;
        first = offset >> s->cluster_bits;
        n = ((offset + bytes - 1) >> s->cluster_bits) - first + 1;
        Qcow2Alloc *a = late_overlap(st, first, n);
        if (!a) {
            break;
        }
        co_queue_wait(&a->waiters, &s->lock);
    }
    Qcow2Alloc me = { .guest_start = first, .nb_clusters = n };
    co_queue_init(&me.waiters);
    st->vm_writes = g_list_prepend(st->vm_writes, &me);
    uint64_t offset = st->vm_off + pos;
    size_t qoff = 0;
    while (bytes > 0) {
        uint64_t done = 0;
        ret = late_write_run(bs, st, offset, bytes, qiov, qoff, &done);
        if (ret < 0) {
            break;
        }
        offset += done;
        bytes -= done;
        qoff += done;
    }
    st->vm_writes = g_list_remove(st->vm_writes, &me);
    co_queue_restart_all(&me.waiters);
    if (!st->vm_writes) {
        co_queue_restart_all(&st->vm_idle);
    }
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write the VM state of the "
                         "snapshot being created");
    }
    return ret;
}

int qcow2_snapshot_create_set_vm_state_size(BlockDriverState *bs,
                                            BdrvSnapshotCreate *st,
                                            uint64_t size, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->pending_create != st || !st->vm_late) {
        error_setg(errp, "No snapshot being created waits for its VM state");
        return -EINVAL;
    }
    uint64_t max = qcow2_max_mapped_offset(s);
    if (st->vm_off >= max || size > max - st->vm_off) {
        error_setg(errp, "VM state too large: %" G_GUINT64_FORMAT " bytes "
                   "(this image maps at most %" G_GUINT64_FORMAT ")", size,
                   st->vm_off < max ? max - st->vm_off : 0);
        return -EFBIG;
    }
    st->sn.vm_state_size = size;
    return 0;
}
