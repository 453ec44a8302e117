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
