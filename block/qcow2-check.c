/*
 * qcow2-check.c - consistency check and repair (qemu-img check's engine).
 *
 * The check walks every structure that references clusters (header,
 * active and snapshot L1/L2 tables, the refcount table and blocks, the
 * snapshot table, the bitmap directory and bitmap tables), counts the
 * references per cluster, and compares the counts with the on-disk
 * refcounts: more refcount than references is a leak, fewer is an error.
 * Then it checks OFLAG_COPIED in the active tables.  Repair fixes leaks
 * (-r leaks) or everything (-r all); when the refcount structure itself
 * is broken it is rebuilt from the computed counts at the end of the file.
 * Every value read from the file is bounds-checked before use.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>

typedef struct Check {
    BlockDriverState *bs;
    Qcow2State *s;
    BdrvCheckResult *res;
    BdrvCheckMode fix;
    uint64_t file_clusters;
    uint64_t file_len;        /* bytes */
    uint32_t *refs;           /* computed references per cluster */
    uint64_t nb_refs;
    bool refcount_broken;     /* refcount table/blocks unusable */
    uint64_t next_data;       /* fragmentation: where the L2 table's
                                 next cluster continues its predecessor */
} Check;

#define LOG(c, ...) g_string_append_printf((c)->res->log, __VA_ARGS__)

static bool offset_plausible(Check *c, uint64_t off);

static void ref_inc(Check *c, uint64_t offset, uint64_t bytes)
{
    Qcow2State *s = c->s;
    if (bytes == 0) {
        return;
    }
    /* As qemu-img: a region ending a cluster or more past the end of the
     * file (as it is now: a repair may have grown it) is garbage read from
     * a damaged table.  Counting it would size c->refs by it, and a repair
     * would rebuild refcounts out to it (growing a 2 KiB image to 8 GiB). */
    uint64_t end = MAX(c->file_len, c->file_clusters << s->cluster_bits);
    if (offset + bytes < offset || offset + bytes >= end + s->cluster_size) {
        LOG(c, "ERROR: counting reference for region exceeding the end of "
            "the file by one cluster or more: offset %#" G_GINT64_MODIFIER
            "x size %#" G_GINT64_MODIFIER "x\n", offset, bytes);
        c->res->corruptions++;
        return;
    }
    uint64_t first = offset >> s->cluster_bits;
    uint64_t last = (offset + bytes - 1) >> s->cluster_bits;
    if (last >= c->nb_refs) {
        uint64_t n = MAX(last + 1, c->nb_refs * 2);
        c->refs = g_renew(uint32_t, c->refs, n);
        memset(c->refs + c->nb_refs, 0, (n - c->nb_refs) * sizeof(uint32_t));
        c->nb_refs = n;
    }
    for (uint64_t i = first; i <= last; i++) {
        if (c->refs[i] < UINT32_MAX) {
            c->refs[i]++;
        }
    }
}

/* Limit for offsets read from the file: far beyond it means garbage. */
static bool offset_plausible(Check *c, uint64_t off)
{
    return off < (c->file_clusters + (1ULL << 24)) << c->s->cluster_bits;
}

static int coroutine_fn check_l2(Check *c, uint64_t l2_off, bool active,
                                 uint64_t l1i)
{
    Qcow2State *s = c->s;
    uint64_t *l2 = bdrv_blockalign(c->bs->file->bs, s->cluster_size);
    int ret = bdrv_co_pread(c->bs->file->bs, l2_off, s->cluster_size, l2, 0);
    if (ret < 0) {
        LOG(c, "ERROR: I/O error in check_refcounts_l2\n");
        c->res->check_errors++;
        bdrv_vfree(l2);
        return ret;
    }
    bool dirty = false;
    /* As qemu-img counts it: contiguity within one L2 table only. */
    c->next_data = 0;
    for (uint64_t i = 0; i < s->l2_size; i++) {
        uint64_t e = be64_read(&l2[i]);
        Qcow2ClusterType t = qcow2_cluster_type(s, e);
        uint64_t guest = ((l1i << s->l2_bits) + i) << s->cluster_bits;
        if (t != QCOW2_CLUSTER_COMPRESSED && (e & L2E_STD_RESERVED_MASK)) {
            /* qemu-img reports these (in any table, even past the disk
             * end) and cannot repair them; -r all clears the bits, which
             * keeps whatever mapping the entry holds. */
            bool repair = c->fix & BDRV_FIX_ERRORS;
            LOG(c, "%s l2 entry with reserved bits set: %" G_GINT64_MODIFIER
                "x\n", repair ? "Repairing" : "ERROR found", e);
            if (repair) {
                e &= ~L2E_STD_RESERVED_MASK;
                be64_write(&l2[i], e);
                dirty = true;
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
            t = qcow2_cluster_type(s, e);
        }
        switch (t) {
        case QCOW2_CLUSTER_COMPRESSED: {
            uint64_t host, bytes;
            qcow2_compressed_range(s, e, &host, &bytes);
            /* (data ending a cluster or more past the end of the file
             * was lost to a truncation) */
            if ((e & QCOW_OFLAG_COPIED) || !offset_plausible(c, host) ||
                host + bytes >= c->file_len + s->cluster_size) {
                bool repair = c->fix & BDRV_FIX_ERRORS;
                LOG(c, "%s: compressed cluster %" G_GUINT64_FORMAT
                    " has an invalid descriptor %#" G_GINT64_MODIFIER "x\n",
                    repair ? "Repairing" : "ERROR",
                    guest >> s->cluster_bits, e);
                if (repair) {
                    be64_write(&l2[i], qcow2_is_v3(s) ? QCOW_OFLAG_ZERO : 0);
                    dirty = true;
                    c->res->corruptions_fixed++;
                } else {
                    c->res->corruptions++;
                }
                break;
            }
            ref_inc(c, host & ~511ULL, (host & 511) + bytes);
            if (active) {
                /* Reading one means reading sectors shared with its
                 * neighbours: qemu-img counts every one as fragmented. */
                c->res->allocated_clusters++;
                c->res->compressed_clusters++;
                c->res->fragmented_clusters++;
            }
            break;
        }
        case QCOW2_CLUSTER_NORMAL:
        case QCOW2_CLUSTER_ZERO_ALLOC: {
            uint64_t off = e & L2E_OFFSET_MASK;
            bool beyond = off >= c->file_clusters << s->cluster_bits;
            if (!IS_ALIGNED(off, s->cluster_size) ||
                !offset_plausible(c, off) || beyond) {
                bool repair = c->fix & BDRV_FIX_ERRORS;
                LOG(c, "%s offset=%" G_GINT64_MODIFIER "x: %s; L2 entry "
                    "corrupted.\n", repair ? "Repairing" : "ERROR", off,
                    beyond ? "Cluster is beyond the end of the image file"
                           : "Cluster is not properly aligned or has "
                             "reserved bits set");
                if (repair) {
                    be64_write(&l2[i], qcow2_is_v3(s) ? QCOW_OFLAG_ZERO : 0);
                    dirty = true;
                    c->res->corruptions_fixed++;
                } else {
                    c->res->corruptions++;
                }
                break;
            }
            ref_inc(c, off, s->cluster_size);
            if (active) {
                c->res->allocated_clusters++;
                if (c->next_data && off != c->next_data) {
                    c->res->fragmented_clusters++;
                }
                c->next_data = off + s->cluster_size;
            }
            break;
        }
        default:
            break;
        }
    }
    if (dirty) {
        ret = bdrv_co_pwrite(c->bs->file->bs, l2_off, s->cluster_size, l2, 0);
        if (ret < 0) {
            c->res->check_errors++;
        }
        qcow2_cache_discard(s->l2_cache, l2_off);
    }
    bdrv_vfree(l2);
    return 0;
}

/* -r all: an L1 entry that cannot point at an L2 table is cleared (the
 * guest range then reads from the backing file, or as zeroes). */
static void clear_l1_entry(Check *c, uint64_t l1_off, uint64_t *l1,
                           uint32_t i, bool active)
{
    Qcow2State *s = c->s;
    l1[i] = 0;
    if (active) {
        g_hash_table_add(s->l1_dirty, GSIZE_TO_POINTER((gsize)i + 1));
        if (qcow2_write_l1_entries(c->bs) < 0) {
            c->res->check_errors++;
            return;
        }
    } else {
        uint64_t zero = 0;
        if (bdrv_co_pwrite(c->bs->file->bs, l1_off + (uint64_t)i * 8, 8,
                           &zero, 0) < 0) {
            c->res->check_errors++;
            return;
        }
    }
    c->res->corruptions_fixed++;
}

/* Counts an L1 table (given in host order) and everything below it. */
static int coroutine_fn check_l1(Check *c, uint64_t l1_off, uint64_t *l1,
                                 uint32_t l1_size, bool active)
{
    Qcow2State *s = c->s;
    bool repair = c->fix & BDRV_FIX_ERRORS;
    ref_inc(c, l1_off, (uint64_t)l1_size * 8);
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & L1E_OFFSET_MASK;
        if (!l2_off) {
            continue;
        }
        if ((l1[i] & L1E_RESERVED_MASK) ||
            !IS_ALIGNED(l2_off, s->cluster_size) ||
            !offset_plausible(c, l2_off) || l2_off < s->cluster_size) {
            LOG(c, "%s l2_offset=%" G_GINT64_MODIFIER "x: Table is not "
                "cluster aligned; L1 entry corrupted\n",
                repair ? "Repairing" : "ERROR", l2_off);
            if (repair) {
                clear_l1_entry(c, l1_off, l1, i, active);
            } else {
                c->res->corruptions++;
            }
            continue;
        }
        if (l2_off >= c->file_clusters << s->cluster_bits) {
            LOG(c, "%s l2_offset=%" G_GINT64_MODIFIER "x: Table is "
                "beyond the end of the image file\n",
                repair ? "Repairing" : "ERROR", l2_off);
            if (repair) {
                clear_l1_entry(c, l1_off, l1, i, active);
            } else {
                ref_inc(c, l2_off, s->cluster_size);
                c->res->corruptions++;
            }
            continue;
        }
        ref_inc(c, l2_off, s->cluster_size);
        int ret = check_l2(c, l2_off, active, i);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static int coroutine_fn check_snapshots(Check *c)
{
    Qcow2State *s = c->s;
    bool repair = c->fix & BDRV_FIX_ERRORS;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        if (kept < i) {
            s->snapshots[kept] = *sn;     /* compact over dropped ones */
            sn = &s->snapshots[kept];
        }
        kept++;
        /* An L1 table ending a cluster or more past the end of the file
         * was lost to a truncation. */
        if (!IS_ALIGNED(sn->l1_table_offset, s->cluster_size) ||
            (uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_SIZE ||
            !offset_plausible(c, sn->l1_table_offset) ||
            (sn->l1_size && sn->l1_table_offset + (uint64_t)sn->l1_size * 8 >=
             c->file_len + s->cluster_size)) {
            LOG(c, "%s snapshot %s (%s) l1_offset=%#" G_GINT64_MODIFIER
                "x: L1 table is not cluster aligned or beyond the end of the "
                "file; snapshot table entry corrupted%s\n",
                repair ? "Repairing" : "ERROR", sn->id_str, sn->name,
                sn->l1_table_offset, repair ? " (snapshot dropped)" : "");
            if (repair) {
                /* The table repair at the end writes the others. */
                g_free(sn->id_str);
                g_free(sn->name);
                g_free(sn->unknown_extra);
                kept--;
                s->snapshot_table_broken = true;
            } else {
                c->res->corruptions++;
            }
            continue;
        }
        uint64_t *l1 = g_new0(uint64_t, MAX(sn->l1_size, 1));
        int ret = sn->l1_size ? bdrv_co_pread(c->bs->file->bs,
                                              sn->l1_table_offset,
                                              (uint64_t)sn->l1_size * 8, l1, 0)
                              : 0;
        if (ret < 0) {
            LOG(c, "ERROR: Could not read snapshot L1 table\n");
            c->res->check_errors++;
            g_free(l1);
            continue;
        }
        for (uint32_t j = 0; j < sn->l1_size; j++) {
            l1[j] = be64_read(&l1[j]);
        }
        ret = check_l1(c, sn->l1_table_offset, l1, sn->l1_size, false);
        g_free(l1);
        if (ret < 0) {
            s->nb_snapshots = kept + (s->nb_snapshots - i - 1);
            memmove(&s->snapshots[kept], &s->snapshots[i + 1],
                    (s->nb_snapshots - kept) * sizeof(*sn));
            return ret;
        }
    }
    s->nb_snapshots = kept;
    /* A damaged table's extent is not to be trusted (entries parsed
     * from garbage may span other clusters): one that -r all replaces
     * counts as unused, its clusters as leaks. */
    if (!(s->snapshot_table_broken && repair)) {
        ref_inc(c, s->snapshots_offset, s->snapshots_size);
    }
    return 0;
}

/* Persistent bitmaps: directory, bitmap tables and their data clusters. */
static int coroutine_fn check_bitmaps(Check *c)
{
    Qcow2State *s = c->s;
    if (!(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) || !s->nb_bitmaps) {
        return 0;
    }
    uint64_t dsize = s->bitmap_directory_size;
    ref_inc(c, s->bitmap_directory_offset, dsize);
    uint8_t *dir = g_malloc(MAX(dsize, 1));
    int ret = bdrv_co_pread(c->bs->file->bs, s->bitmap_directory_offset,
                            dsize, dir, 0);
    if (ret < 0) {
        c->res->check_errors++;
        g_free(dir);
        return 0;
    }
    uint64_t pos = 0;
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        if (pos + 24 > dsize) {
            LOG(c, "ERROR bitmap directory is truncated\n");
            c->res->corruptions++;
            break;
        }
        uint64_t table_off = be64_read(dir + pos);
        uint32_t table_size = be32_read(dir + pos + 8);
        uint16_t name_size = be16_read(dir + pos + 18);
        uint32_t extra = be32_read(dir + pos + 20);
        pos += ROUND_UP(24 + (uint64_t)extra + name_size, 8);
        if (!IS_ALIGNED(table_off, s->cluster_size) ||
            (uint64_t)table_size * 8 > (64ULL << 20) ||
            !offset_plausible(c, table_off)) {
            LOG(c, "ERROR bitmap table of bitmap %u is invalid\n", i);
            c->res->corruptions++;
            continue;
        }
        ref_inc(c, table_off, (uint64_t)table_size * 8);
        uint64_t *table = g_new(uint64_t, MAX(table_size, 1));
        if (table_size && bdrv_co_pread(c->bs->file->bs, table_off,
                                        (uint64_t)table_size * 8, table,
                                        0) < 0) {
            c->res->check_errors++;
            g_free(table);
            continue;
        }
        for (uint32_t j = 0; j < table_size; j++) {
            uint64_t off = be64_read(&table[j]) & 0x00fffffffffffe00ULL;
            if (off) {
                ref_inc(c, off, s->cluster_size);
            }
        }
        g_free(table);
    }
    g_free(dir);
    return 0;
}

/* A refcount table entry check_refcount_structure counted a reference
 * for: a refcount block that is aligned, inside the file and without
 * reserved bits.  The rebuild takes back exactly these. */
static bool reftable_entry_counted(Check *c, uint64_t e)
{
    uint64_t off = e & REFT_OFFSET_MASK;
    return off && !(e & REFT_RESERVED_MASK) &&
           IS_ALIGNED(off, c->s->cluster_size) &&
           off < c->file_clusters << c->s->cluster_bits;
}

static void check_refcount_structure(Check *c)
{
    Qcow2State *s = c->s;
    ref_inc(c, s->refcount_table_offset,
            (uint64_t)s->refcount_table_clusters << s->cluster_bits);
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t e = s->refcount_table[i];
        uint64_t off = e & REFT_OFFSET_MASK;
        if (!off && !(e & REFT_RESERVED_MASK)) {
            continue;
        }
        if ((e & REFT_RESERVED_MASK) || !IS_ALIGNED(off, s->cluster_size)) {
            LOG(c, "ERROR refcount block %" G_GUINT64_FORMAT " is not "
                "cluster aligned; refcount table entry corrupted\n", i);
            c->res->corruptions++;
            c->refcount_broken = true;
            continue;
        }
        if (off >= c->file_clusters << s->cluster_bits) {
            LOG(c, "ERROR refcount block %" G_GUINT64_FORMAT " is outside "
                "image\n", i);
            c->res->corruptions++;
            c->refcount_broken = true;
            continue;
        }
        ref_inc(c, off, s->cluster_size);
    }
}

/* Each refcount block and refcount table cluster must be used by nothing
 * else: one shared with data or another table gets rewritten through that
 * other use.  Called once every reference is counted. */
static void check_refcount_sharing(Check *c)
{
    Qcow2State *s = c->s;
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t e = s->refcount_table[i];
        uint64_t idx = (e & REFT_OFFSET_MASK) >> s->cluster_bits;
        if (!(e & REFT_OFFSET_MASK) || (e & REFT_RESERVED_MASK) ||
            !IS_ALIGNED(e & REFT_OFFSET_MASK, s->cluster_size) ||
            idx >= c->nb_refs || c->refs[idx] <= 1) {
            continue;
        }
        LOG(c, "ERROR refcount block %" G_GUINT64_FORMAT " is also used "
            "by other metadata or data (references=%u)\n", i, c->refs[idx]);
        c->res->corruptions++;
        c->refcount_broken = true;
    }
    uint64_t t = s->refcount_table_offset >> s->cluster_bits;
    for (uint64_t i = t; i < t + s->refcount_table_clusters; i++) {
        if (i < c->nb_refs && c->refs[i] > 1) {
            LOG(c, "ERROR refcount table cluster %" G_GUINT64_FORMAT " is "
                "also used by other metadata or data (references=%u)\n",
                i, c->refs[i]);
            c->res->corruptions++;
            c->refcount_broken = true;
        }
    }
}

/* Reads the on-disk refcount of cluster i: 0 when read, 1 when the
 * refcount structure cannot describe it (broken), or a negative errno
 * when reading failed, which counts as a check error (never as a clean
 * answer). */
static int coroutine_fn disk_refcount(Check *c, uint64_t i, uint64_t *rc)
{
    Qcow2State *s = c->s;
    uint64_t ti = i >> s->refblock_bits;
    if (ti >= s->refcount_table_size) {
        *rc = 0;
        return 0;
    }
    uint64_t e = s->refcount_table[ti];
    uint64_t off = e & REFT_OFFSET_MASK;
    if (!off) {
        *rc = 0;
        return 0;
    }
    if ((e & REFT_RESERVED_MASK) || !IS_ALIGNED(off, s->cluster_size) ||
        off >= c->file_clusters << s->cluster_bits) {
        return 1;
    }
    int ret = qcow2_get_refcount(c->bs, i, rc);
    if (ret < 0) {
        LOG(c, "ERROR: could not read the refcount of cluster %"
            G_GUINT64_FORMAT "\n", i);
        c->res->check_errors++;
    }
    return ret;
}

/* Places a fresh refcount table and blocks after all referenced clusters
 * and switches the header to them in one write. */
static int coroutine_fn rebuild_refcounts(Check *c)
{
    BlockDriverState *bs = c->bs;
    Qcow2State *s = c->s;
    uint64_t cs = s->cluster_size;
    LOG(c, "Rebuilding refcount structure\n");

    /* The old structure does not count any more: the references its
     * usable blocks were counted for go (an entry with reserved bits set
     * was counted for nothing, though its offset may name a cluster that
     * data or a table really uses). */
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t e = s->refcount_table[i];
        uint64_t idx = (e & REFT_OFFSET_MASK) >> s->cluster_bits;
        if (reftable_entry_counted(c, e) && idx < c->nb_refs &&
            c->refs[idx]) {
            c->refs[idx]--;
        }
    }
    uint64_t toff = s->refcount_table_offset >> s->cluster_bits;
    for (uint64_t i = 0; i < s->refcount_table_clusters; i++) {
        if (toff + i < c->nb_refs && c->refs[toff + i]) {
            c->refs[toff + i]--;
        }
    }
    uint64_t end = 0;
    for (uint64_t i = 0; i < c->nb_refs; i++) {
        if (c->refs[i]) {
            end = i + 1;
        }
    }
    uint64_t per_table_cluster = cs / 8;
    uint64_t nb_blocks = 1, tc = 1;
    for (;;) {
        uint64_t total = end + nb_blocks + tc;
        uint64_t nbb = DIV_ROUND_UP(total, s->refblock_size);
        uint64_t ntc = DIV_ROUND_UP(nbb, per_table_cluster);
        if (nbb <= nb_blocks && ntc <= tc) {
            break;
        }
        nb_blocks = MAX(nb_blocks, nbb);
        tc = MAX(tc, ntc);
    }
    /* The new blocks and table go at the end: the file grows to hold
     * them, so they count as inside it (ref_inc refuses regions past the
     * end as garbage). */
    c->file_clusters = MAX(c->file_clusters, end + nb_blocks + tc);
    ref_inc(c, end << s->cluster_bits, (nb_blocks + tc) << s->cluster_bits);
    uint64_t table_entries = tc * per_table_cluster;
    uint64_t *table = bdrv_blockalign(bs->file->bs, tc * cs);
    memset(table, 0, tc * cs);
    uint8_t *block = bdrv_blockalign(bs->file->bs, cs);
    int ret = 0;
    for (uint64_t b = 0; b < nb_blocks && ret >= 0; b++) {
        memset(block, 0, cs);
        for (uint64_t j = 0; j < s->refblock_size; j++) {
            uint64_t idx = b * s->refblock_size + j;
            if (idx < c->nb_refs && c->refs[idx]) {
                uint64_t v = MIN((uint64_t)c->refs[idx], s->refcount_max);
                qcow2_set_refcount_entry(s, block, j, v);
            }
        }
        uint64_t off = (end + b) << s->cluster_bits;
        be64_write(&table[b], off);
        ret = bdrv_co_pwrite(bs->file->bs, off, cs, block, 0);
    }
    uint64_t table_off = (end + nb_blocks) << s->cluster_bits;
    if (ret >= 0) {
        ret = bdrv_co_pwrite(bs->file->bs, table_off, tc * cs, table, 0);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret >= 0) {
        uint8_t hdr[12];
        be64_write(hdr, table_off);
        be32_write(hdr + 8, tc);
        ret = bdrv_co_pwrite(bs->file->bs, 48, 12, hdr, 0);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret >= 0) {
        g_free(s->refcount_table);
        s->refcount_table = g_new0(uint64_t, table_entries);
        for (uint64_t i = 0; i < nb_blocks; i++) {
            s->refcount_table[i] = be64_read(&table[i]);
        }
        s->refcount_table_size = table_entries;
        s->refcount_table_offset = table_off;
        s->refcount_table_clusters = tc;
        qcow2_cache_empty(s->refblock_cache);
        s->free_cluster_index = 1;
    } else {
        c->res->check_errors++;
    }
    bdrv_vfree(table);
    bdrv_vfree(block);
    return ret;
}

static int coroutine_fn compare_refcounts(Check *c, uint64_t *highest)
{
    Qcow2State *s = c->s;
    uint64_t covered = s->refcount_table_size << s->refblock_bits;
    uint64_t n = MAX(c->nb_refs, MIN(covered, c->file_clusters));
    for (uint64_t i = 0; i < n; i++) {
        uint64_t rc;
        uint64_t ref = i < c->nb_refs ? c->refs[i] : 0;
        int r = disk_refcount(c, i, &rc);
        if (r != 0) {
            if (r > 0 && ref) {
                c->refcount_broken = true;
            }
            continue;
        }
        if (rc || ref) {
            *highest = i;
        }
        if (rc == ref) {
            continue;
        }
        bool leak = rc > ref;
        bool repair = leak ? (c->fix & BDRV_FIX_LEAKS)
                           : (c->fix & BDRV_FIX_ERRORS);
        if (!leak && (i >> s->refblock_bits >= s->refcount_table_size ||
                      !s->refcount_table[i >> s->refblock_bits])) {
            /* Referenced but not described at all: structure is broken. */
            c->refcount_broken = true;
        }
        LOG(c, "%s cluster %" G_GUINT64_FORMAT " refcount=%" G_GUINT64_FORMAT
            " reference=%" G_GUINT64_FORMAT "\n",
            repair ? "Repairing" : leak ? "Leaked" : "ERROR", i, rc, ref);
        if (repair && !c->refcount_broken && ref <= s->refcount_max) {
            int ret = qcow2_update_refcount(c->bs, i << s->cluster_bits, 1,
                                            (int64_t)ref - (int64_t)rc);
            if (ret >= 0) {
                leak ? c->res->leaks_fixed++ : c->res->corruptions_fixed++;
                continue;
            }
            c->res->check_errors++;
        }
        leak ? c->res->leaks++ : c->res->corruptions++;
    }
    return 0;
}

static int coroutine_fn check_oflag_copied(Check *c)
{
    Qcow2State *s = c->s;
    bool repair = c->fix & BDRV_FIX_ERRORS;
    uint64_t *l2 = bdrv_blockalign(c->bs->file->bs, s->cluster_size);
    bool l1_dirty = false;
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t e = s->l1_table[i];
        uint64_t l2_off = e & L1E_OFFSET_MASK;
        uint64_t rc;
        if (!l2_off || (e & L1E_RESERVED_MASK) ||
            !IS_ALIGNED(l2_off, s->cluster_size) ||
            l2_off >= c->file_clusters << s->cluster_bits ||
            disk_refcount(c, l2_off >> s->cluster_bits, &rc) != 0) {
            continue;
        }
        if ((rc == 1) != !!(e & QCOW_OFLAG_COPIED)) {
            LOG(c, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%"
                G_GINT64_MODIFIER "x refcount=%" G_GUINT64_FORMAT "\n",
                repair ? "Repairing" : "ERROR", i, e, rc);
            if (repair) {
                s->l1_table[i] = rc == 1 ? e | QCOW_OFLAG_COPIED
                                         : e & ~QCOW_OFLAG_COPIED;
                g_hash_table_add(s->l1_dirty, GSIZE_TO_POINTER(i + 1));
                l1_dirty = true;
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
        }
        if (bdrv_co_pread(c->bs->file->bs, l2_off, s->cluster_size, l2,
                          0) < 0) {
            c->res->check_errors++;
            continue;
        }
        bool dirty = false;
        for (uint64_t j = 0; j < s->l2_size; j++) {
            uint64_t le = be64_read(&l2[j]);
            Qcow2ClusterType t = qcow2_cluster_type(s, le);
            uint64_t off = le & L2E_OFFSET_MASK;
            if ((t != QCOW2_CLUSTER_NORMAL && t != QCOW2_CLUSTER_ZERO_ALLOC) ||
                !IS_ALIGNED(off, s->cluster_size) ||
                disk_refcount(c, off >> s->cluster_bits, &rc) != 0) {
                continue;
            }
            if ((rc == 1) != !!(le & QCOW_OFLAG_COPIED)) {
                LOG(c, "%s OFLAG_COPIED data cluster: l2_entry=%"
                    G_GINT64_MODIFIER "x refcount=%" G_GUINT64_FORMAT "\n",
                    repair ? "Repairing" : "ERROR", le, rc);
                if (repair) {
                    be64_write(&l2[j], rc == 1 ? le | QCOW_OFLAG_COPIED
                                               : le & ~QCOW_OFLAG_COPIED);
                    dirty = true;
                    c->res->corruptions_fixed++;
                } else {
                    c->res->corruptions++;
                }
            }
        }
        if (dirty) {
            qcow2_cache_discard(s->l2_cache, l2_off);
            if (bdrv_co_pwrite(c->bs->file->bs, l2_off, s->cluster_size, l2,
                               0) < 0) {
                c->res->check_errors++;
            }
        }
    }
    bdrv_vfree(l2);
    if (l1_dirty && qcow2_write_l1_entries(c->bs) < 0) {
        c->res->check_errors++;
    }
    return 0;
}

/*
 * The snapshot table could be read only in part (qcow2_read_snapshots in
 * check mode), or check_snapshots dropped entries: -r all writes the
 * entries kept as a new table.  Their clusters were counted; those of the
 * lost entries and of the old table were leaks, repaired before this.
 */
static int coroutine_fn repair_snapshot_table(Check *c)
{
    Qcow2State *s = c->s;
    if (!(c->fix & BDRV_FIX_ERRORS) || c->refcount_broken) {
        LOG(c, "ERROR snapshot table is corrupt; %u snapshot(s) could be "
            "read\n", s->nb_snapshots);
        c->res->corruptions++;
        return 0;
    }
    LOG(c, "Repairing snapshot table: keeping the %u snapshot(s) that could "
        "be read\n", s->nb_snapshots);
    /* (the old table was not counted: its clusters are free already) */
    int ret = qcow2_write_snapshot_table(c->bs);
    if (ret < 0) {
        c->res->check_errors++;
        return ret;
    }
    s->snapshot_table_broken = false;
    c->res->corruptions_fixed++;
    return 0;
}

int coroutine_fn qcow2_co_check(BlockDriverState *bs, BdrvCheckResult *res,
                                BdrvCheckMode fix)
{
    Qcow2State *s = bs->opaque;
    if (bs->read_only) {
        fix = 0;
    }
    if (s->stale) {
        res->check_errors++;
        return -EIO;        /* memory does not describe the file */
    }
    co_mutex_lock(&s->lock);
    int ret = 0;
    if (!bs->read_only) {
        ret = qcow2_flush_metadata(bs);
        if (ret < 0) {
            res->check_errors++;
        }
    }
    Check c = { .bs = bs, .s = s, .res = res, .fix = fix };
    int64_t flen = bdrv_getlength(bs->file->bs);
    c.file_clusters = DIV_ROUND_UP((uint64_t)MAX(flen, 0), s->cluster_size);
    c.file_len = (uint64_t)MAX(flen, 0);
    c.nb_refs = MAX(c.file_clusters, 1);
    c.refs = g_new0(uint32_t, c.nb_refs);

    res->total_clusters = qcow2_size_to_clusters(s, s->size);
    ref_inc(&c, 0, s->cluster_size);                    /* header */
    ret = check_l1(&c, s->l1_table_offset, s->l1_table, s->l1_size, true);
    if (ret >= 0) {
        ret = check_snapshots(&c);
    }
    if (ret >= 0) {
        ret = check_bitmaps(&c);
    }
    check_refcount_structure(&c);
    check_refcount_sharing(&c);
    if (res->check_errors) {
        /* A table could not be read (or the metadata not be flushed):
         * the counts are incomplete, and "repairing" refcounts down to
         * them would corrupt the image.  Report only. */
        fix = c.fix = 0;
    }
    uint64_t highest = 0;
    if (ret >= 0) {
        ret = compare_refcounts(&c, &highest);
    }
    if (ret >= 0 && c.refcount_broken && (fix & BDRV_FIX_ERRORS)) {
        /* Recount without the broken structure's own clusters. */
        int before = res->corruptions;
        ret = rebuild_refcounts(&c);
        if (ret >= 0) {
            res->corruptions_fixed += before;
            res->corruptions = 0;
            res->leaks_fixed += res->leaks;
            res->leaks = 0;
            /* The fresh refcounts can now judge OFLAG_COPIED. */
            c.refcount_broken = false;
        }
    } else if (ret >= 0 && !(c.refcount_broken)) {
        ret = qcow2_cache_write(bs, s->refblock_cache);
        if (ret >= 0 && fix) {
            ret = qcow2_file_sync(bs);
        }
    }
    if (ret >= 0 && !c.refcount_broken) {
        ret = check_oflag_copied(&c);
    }
    if (ret >= 0 && s->snapshot_table_broken) {
        ret = repair_snapshot_table(&c);
    }
    for (uint64_t i = highest; i < c.nb_refs; i++) {
        if (c.refs[i]) {
            highest = i;
        }
    }
    res->image_end_offset = (int64_t)(highest + 1) << s->cluster_bits;
    if (fix && ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    g_free(c.refs);
    co_mutex_unlock(&s->lock);
    return ret < 0 ? ret : 0;
}
