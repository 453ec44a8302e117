/*
 * qcow2-cluster.c - guest-to-host mapping: L1 and L2 lookups, making L2
 * tables private for writing, growing the L1 table, zeroing/discarding
 * clusters, and compressed clusters (deflate and zstd).
 *
 * Invariants: an active L1 entry with OFLAG_COPIED points at an L2 table
 * with refcount 1, which may be modified in place; any other L2 table is
 * copied before a write.  Every entry read from disk is validated before
 * use: reserved bits, alignment, and no pointer into metadata.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

Qcow2ClusterType qcow2_cluster_type(Qcow2State *s, uint64_t e)
{
    if (e & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if (e & QCOW_OFLAG_ZERO) {
        return (e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC
                                     : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    return (e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_NORMAL
                                 : QCOW2_CLUSTER_UNALLOCATED;
}

void qcow2_compressed_range(Qcow2State *s, uint64_t e, uint64_t *host,
                            uint64_t *bytes)
{
    uint32_t x = 62 - (s->cluster_bits - 8);
    uint64_t off = e & ((1ULL << x) - 1);
    uint64_t nb_sectors = ((e >> x) & ((1ULL << (s->cluster_bits - 8)) - 1))
                          + 1;
    *host = off;
    *bytes = nb_sectors * 512 - (off & 511);
}

/* Validates an entry of L1 table l1 (NULL: the active one); returns the
 * L2 offset (0: none). */
static int l1_entry_l2_offset_in(BlockDriverState *bs, const uint64_t *l1,
                                 uint32_t l1_size, uint64_t l1i,
                                 uint64_t *l2_off)
{
    Qcow2State *s = bs->opaque;
    if (!l1) {
        l1 = s->l1_table;
        l1_size = s->l1_size;
    }
    uint64_t e = l1i < l1_size ? l1[l1i] : 0;
    *l2_off = e & L1E_OFFSET_MASK;
    if (!*l2_off) {
        return 0;
    }
    if ((e & L1E_RESERVED_MASK) || !IS_ALIGNED(*l2_off, s->cluster_size) ||
        *l2_off < s->cluster_size) {
        qcow2_signal_corruption(bs, "L2 table offset %#" G_GINT64_MODIFIER
                                "x unaligned or invalid (L1 index: %#"
                                G_GINT64_MODIFIER "x)", *l2_off, l1i);
        return -EIO;
    }
    return 0;
}

static int l1_entry_l2_offset(BlockDriverState *bs, uint64_t l1i,
                              uint64_t *l2_off)
{
    return l1_entry_l2_offset_in(bs, NULL, 0, l1i, l2_off);
}

static int validate_l2_entry(BlockDriverState *bs, uint64_t e,
                             uint64_t guest_off)
{
    Qcow2State *s = bs->opaque;
    Qcow2ClusterType t = qcow2_cluster_type(s, e);
    if (t == QCOW2_CLUSTER_COMPRESSED) {
        if (e & QCOW_OFLAG_COPIED) {
            goto bad;
        }
        return 0;
    }
    if (e & L2E_STD_RESERVED_MASK) {
        goto bad;
    }
    if ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
        (!IS_ALIGNED(e & L2E_OFFSET_MASK, s->cluster_size) ||
         (e & L2E_OFFSET_MASK) < s->cluster_size)) {
        goto bad;
    }
    return 0;
bad:
    qcow2_signal_corruption(bs, "Invalid L2 entry %#" G_GINT64_MODIFIER
                            "x for guest offset %#" G_GINT64_MODIFIER "x",
                            e, guest_off);
    return -EIO;
}

int coroutine_fn qcow2_get_l2_entry(BlockDriverState *bs, uint64_t offset,
                                    uint64_t *l2e)
{
    Qcow2State *s = bs->opaque;
    uint64_t l2_off;
    int ret = l1_entry_l2_offset(bs, qcow2_l1_index(s, offset), &l2_off);
    if (ret < 0) {
        return ret;
    }
    if (!l2_off) {
        *l2e = 0;
        return 0;
    }
    uint64_t *l2;
    ret = qcow2_cache_get(bs, s->l2_cache, l2_off, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    *l2e = be64_read(&l2[qcow2_l2_index(s, offset)]);
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    return validate_l2_entry(bs, *l2e, offset);
}

int coroutine_fn qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, uint64_t *pnum,
                                       uint64_t *host, Qcow2ClusterType *type,
                                       uint64_t *l2e_out)
{
    return qcow2_get_host_offset_in(bs, NULL, 0, offset, bytes, pnum, host,
                                    type, l2e_out);
}

int coroutine_fn qcow2_get_host_offset_in(BlockDriverState *bs,
                                          const uint64_t *l1,
                                          uint32_t l1_size, uint64_t offset,
                                          uint64_t bytes, uint64_t *pnum,
                                          uint64_t *host,
                                          Qcow2ClusterType *type,
                                          uint64_t *l2e_out)
{
    Qcow2State *s = bs->opaque;
    uint64_t in_cluster = qcow2_offset_into_cluster(s, offset);
    uint64_t l2i = qcow2_l2_index(s, offset);
    /* Stay within one L2 table. */
    uint64_t max = ((s->l2_size - l2i) << s->cluster_bits) - in_cluster;
    bytes = MIN(bytes, max);
    *host = 0;
    *l2e_out = 0;

    uint64_t l2_off;
    int ret = l1_entry_l2_offset_in(bs, l1, l1_size, qcow2_l1_index(s, offset),
                                    &l2_off);
    if (ret < 0) {
        return ret;
    }
    if (!l2_off) {
        *type = QCOW2_CLUSTER_UNALLOCATED;
        *pnum = bytes;
        return 0;
    }
    uint64_t *l2;
    ret = qcow2_cache_get(bs, s->l2_cache, l2_off, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    uint64_t first = be64_read(&l2[l2i]);
    ret = validate_l2_entry(bs, first, offset);
    if (ret < 0) {
        qcow2_cache_put(s->l2_cache, (void **)&l2);
        return ret;
    }
    Qcow2ClusterType t = qcow2_cluster_type(s, first);
    uint64_t nb = DIV_ROUND_UP(in_cluster + bytes, s->cluster_size);
    uint64_t i = 1;
    if (t == QCOW2_CLUSTER_COMPRESSED) {
        nb = 1;
    }
    for (; i < nb; i++) {
        uint64_t e = be64_read(&l2[l2i + i]);
        if (qcow2_cluster_type(s, e) != t) {
            break;
        }
        if (t == QCOW2_CLUSTER_NORMAL &&
            ((e & L2E_OFFSET_MASK) != (first & L2E_OFFSET_MASK) +
             (i << s->cluster_bits) ||
             (e & QCOW_OFLAG_COPIED) != (first & QCOW_OFLAG_COPIED))) {
            break;
        }
        if (validate_l2_entry(bs, e, offset + (i << s->cluster_bits)) < 0) {
            break;      /* reported; the caller fails on reaching it */
        }
    }
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    *pnum = MIN(bytes, (i << s->cluster_bits) - in_cluster);
    *type = t;
    *l2e_out = first;
    if (t == QCOW2_CLUSTER_NORMAL) {
        *host = (first & L2E_OFFSET_MASK) + in_cluster;
    }
    return 0;
}

int coroutine_fn qcow2_write_l1_entries(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    GHashTableIter it;
    gpointer key, val;
    GHashTable *sectors = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_iter_init(&it, s->l1_dirty);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        uint64_t idx = GPOINTER_TO_SIZE(key) - 1;
        g_hash_table_add(sectors, GSIZE_TO_POINTER(idx / 64 + 1));
    }
    int ret = 0;
    uint64_t buf[64];
    g_hash_table_iter_init(&it, sectors);
    while (ret >= 0 && g_hash_table_iter_next(&it, &key, &val)) {
        uint64_t sector = GPOINTER_TO_SIZE(key) - 1;
        uint64_t first = sector * 64;
        uint64_t n = MIN(64, s->l1_size - first);
        for (uint64_t i = 0; i < n; i++) {
            be64_write(&buf[i], s->l1_table[first + i]);
        }
        ret = qcow2_check_metadata_overlap(bs, s->l1_table_offset + first * 8,
                                           n * 8, "active L1 table");
        if (ret >= 0) {
            ret = bdrv_co_pwrite(bs->file->bs, s->l1_table_offset + first * 8,
                                 n * 8, buf, 0);
        }
    }
    g_hash_table_destroy(sectors);
    if (ret >= 0) {
        g_hash_table_remove_all(s->l1_dirty);
    }
    return ret;
}

static void l1_mark_dirty(Qcow2State *s, uint64_t idx)
{
    g_hash_table_add(s->l1_dirty, GSIZE_TO_POINTER(idx + 1));
    s->metadata_dirty = true;
}

int coroutine_fn qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size,
                                     bool exact)
{
    Qcow2State *s = bs->opaque;
    if (min_size <= s->l1_size) {
        return 0;
    }
    uint64_t new_size = min_size;
    if (!exact) {
        new_size = MAX(min_size, s->l1_size + s->l1_size / 2);
    }
    if (new_size > QCOW2_MAX_L1_SIZE / 8) {
        if (min_size > QCOW2_MAX_L1_SIZE / 8) {
            return -EFBIG;
        }
        new_size = min_size;
    }
    uint64_t bytes = ROUND_UP(new_size * 8, s->cluster_size);
    int64_t new_off = qcow2_alloc_clusters(bs, bytes >> s->cluster_bits);
    if (new_off < 0) {
        return (int)new_off;
    }
    /* Everything the new table points at must be on disk first. */
    int ret = qcow2_cache_write(bs, s->refblock_cache);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret >= 0) {
        ret = qcow2_cache_write(bs, s->l2_cache);
    }
    uint64_t *buf = bdrv_blockalign(bs->file->bs, bytes);
    memset(buf, 0, bytes);
    for (uint64_t i = 0; i < s->l1_size; i++) {
        be64_write(&buf[i], s->l1_table[i]);
    }
    if (ret >= 0) {
        ret = bdrv_co_pwrite(bs->file->bs, new_off, bytes, buf, 0);
    }
    bdrv_vfree(buf);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    bool switched = false;
    if (ret >= 0) {
        uint8_t hdr[12];
        be32_write(hdr, new_size);
        be64_write(hdr + 4, new_off);
        ret = bdrv_co_pwrite(bs->file->bs, 36, sizeof(hdr), hdr, 0);
        switched = ret >= 0;
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (!switched) {
        qcow2_free_deferred(bs, new_off, bytes);
        return ret;
    }
    /* The file names the new table from here on, even if the sync failed:
     * follow it, and leak the old table unless the switch is durable. */
    uint64_t old_off = ret >= 0 ? s->l1_table_offset : 0;
    uint64_t old_bytes = ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);
    if (new_size > s->l1_alloc) {
        s->l1_table = g_renew(uint64_t, s->l1_table, new_size);
        s->l1_alloc = new_size;
    }
    memset(&s->l1_table[s->l1_size], 0, (new_size - s->l1_size) * 8);
    s->l1_size = new_size;
    s->l1_table_offset = new_off;
    g_hash_table_remove_all(s->l1_dirty);
    if (old_off) {
        qcow2_free_deferred(bs, old_off, old_bytes);
    }
    return ret;
}

int coroutine_fn qcow2_get_l2_for_write(BlockDriverState *bs,
                                        uint64_t offset, uint64_t **l2)
{
    Qcow2State *s = bs->opaque;
    uint64_t l1i = qcow2_l1_index(s, offset);
    int ret;
    if (l1i >= s->l1_size) {
        ret = qcow2_grow_l1_table(bs, l1i + 1, false);
        if (ret < 0) {
            return ret;
        }
    }
    uint64_t old_off;
    ret = l1_entry_l2_offset(bs, l1i, &old_off);
    if (ret < 0) {
        return ret;
    }
    if (old_off && (s->l1_table[l1i] & QCOW_OFLAG_COPIED)) {
        return qcow2_cache_get(bs, s->l2_cache, old_off, (void **)l2);
    }
    int64_t new_off = qcow2_alloc_clusters(bs, 1);
    if (new_off < 0) {
        return (int)new_off;
    }
    ret = qcow2_check_metadata_overlap(bs, new_off, s->cluster_size, "L2");
    if (ret < 0) {
        return ret;
    }
    uint64_t *table;
    ret = qcow2_cache_get_empty(bs, s->l2_cache, new_off, (void **)&table);
    if (ret < 0) {
        return ret;
    }
    if (old_off) {
        /* Shared with a snapshot: copy, then drop our reference to it. */
        uint64_t *old;
        ret = qcow2_cache_get(bs, s->l2_cache, old_off, (void **)&old);
        if (ret < 0) {
            qcow2_cache_put(s->l2_cache, (void **)&table);
            qcow2_cache_discard(s->l2_cache, new_off);
            return ret;
        }
        memcpy(table, old, s->cluster_size);
        qcow2_cache_put(s->l2_cache, (void **)&old);
        qcow2_free_deferred(bs, old_off, s->cluster_size);
    }
    qcow2_cache_mark_dirty(s->l2_cache, table);
    s->l1_table[l1i] = (uint64_t)new_off | QCOW_OFLAG_COPIED;
    l1_mark_dirty(s, l1i);
    *l2 = table;
    return 0;
}

/* Frees whatever cluster(s) an L2 entry owns, once tables are durable. */
void qcow2_free_l2_entry_clusters(BlockDriverState *bs, uint64_t e)
{
    Qcow2State *s = bs->opaque;
    switch (qcow2_cluster_type(s, e)) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        qcow2_free_deferred(bs, e & L2E_OFFSET_MASK, s->cluster_size);
        break;
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t host, bytes;
        qcow2_compressed_range(s, e, &host, &bytes);
        /* The references cover the whole sectors the data occupies. */
        qcow2_free_deferred(bs, host & ~511ULL, (host & 511) + bytes);
        break;
    }
    default:
        break;
    }
}

int coroutine_fn qcow2_zero_or_discard(BlockDriverState *bs, uint64_t offset,
                                       uint64_t n, bool discard, bool full)
{
    Qcow2State *s = bs->opaque;
    bool has_backing = bs->backing != NULL;
    while (n > 0) {
        uint64_t l2i = qcow2_l2_index(s, offset);
        uint64_t count = MIN(n, s->l2_size - l2i);
        uint64_t l1i = qcow2_l1_index(s, offset);
        uint64_t l2_off;
        int ret = l1_entry_l2_offset(bs, l1i, &l2_off);
        if (ret < 0) {
            return ret;
        }
        /* Nothing allocated and nothing underneath: already reads zero. */
        bool need_table = l2_off || (!discard && has_backing) ||
                          (discard && !full && has_backing &&
                           qcow2_is_v3(s));
        if (need_table) {
            uint64_t *l2;
            ret = qcow2_get_l2_for_write(bs, offset, &l2);
            if (ret < 0) {
                return ret;
            }
            for (uint64_t i = 0; i < count; i++) {
                uint64_t old = be64_read(&l2[l2i + i]);
                uint64_t new;
                if (full) {
                    new = 0;    /* reads fall through to the backing */
                } else if (qcow2_is_v3(s) && (has_backing || !discard)) {
                    new = QCOW_OFLAG_ZERO;
                } else {
                    new = 0;
                }
                if (old == new) {
                    continue;
                }
                be64_write(&l2[l2i + i], new);
                qcow2_free_l2_entry_clusters(bs, old);
            }
            qcow2_cache_mark_dirty(s->l2_cache, l2);
            qcow2_cache_put(s->l2_cache, (void **)&l2);
            s->metadata_dirty = true;
        }
        offset += count << s->cluster_bits;
        n -= count;
    }
    return 0;
}

int coroutine_fn qcow2_drop_l1_entry(BlockDriverState *bs, uint64_t l1i)
{
    Qcow2State *s = bs->opaque;
    uint64_t t;
    int ret = l1_entry_l2_offset(bs, l1i, &t);
    if (ret < 0 || !t) {
        return ret;
    }
    uint64_t *l2;
    ret = qcow2_cache_get(bs, s->l2_cache, t, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    /* The in-memory table is the truth for the active layer. */
    uint64_t *copy = g_memdup2(l2, s->cluster_size);
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    for (uint64_t i = 0; i < s->l2_size; i++) {
        qcow2_free_l2_entry_clusters(bs, be64_read(&copy[i]));
    }
    g_free(copy);
    if (s->l1_table[l1i] & QCOW_OFLAG_COPIED) {
        /* Private to the active layer: its cached copy, dirty or not,
         * must never be written back once the cluster is reused.  A crash
         * before the L1 entry is durable leaves the older on-disk table,
         * whose newer clusters then only leak. */
        qcow2_cache_discard(s->l2_cache, t);
    }
    qcow2_free_deferred(bs, t, s->cluster_size);
    s->l1_table[l1i] = 0;
    l1_mark_dirty(s, l1i);
    return 0;
}

/* ---- compression ---- */

ssize_t qcow2_compress(Qcow2State *s, uint8_t *dst, size_t dst_size,
                       const uint8_t *src, size_t src_size)
{
    if (s->compression_type == QCOW2_COMPRESSION_ZSTD) {
        size_t n = ZSTD_compress(dst, dst_size, src, src_size, 3);
        return ZSTD_isError(n) ? -ENOSPC : (ssize_t)n;
    }
    z_stream z = { 0 };
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -EIO;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = src_size;
    z.next_out = dst;
    z.avail_out = dst_size;
    int ret = deflate(&z, Z_FINISH);
    ssize_t out = ret == Z_STREAM_END ? (ssize_t)(dst_size - z.avail_out)
                                      : -ENOSPC;
    deflateEnd(&z);
    return out;
}

ssize_t qcow2_decompress(int type, uint8_t *dst, size_t dst_size,
                         const uint8_t *src, size_t src_size)
{
    if (type == QCOW2_COMPRESSION_ZSTD) {
        ZSTD_DStream *ds = ZSTD_createDStream();
        ZSTD_inBuffer in = { src, src_size, 0 };
        ZSTD_outBuffer out = { dst, dst_size, 0 };
        ssize_t result = -EIO;
        /* The input is padded to whole sectors: stop once full. */
        while (out.pos < out.size) {
            size_t r = ZSTD_decompressStream(ds, &out, &in);
            if (ZSTD_isError(r)) {
                break;
            }
            if (r == 0 && in.pos == in.size) {
                break;
            }
            if (in.pos == in.size && out.pos < out.size && r != 0) {
                break;   /* truncated */
            }
        }
        if (out.pos == out.size) {
            result = out.pos;
        }
        ZSTD_freeDStream(ds);
        return result;
    }
    z_stream z = { 0 };
    if (inflateInit2(&z, -12) != Z_OK) {
        return -EIO;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = src_size;
    z.next_out = dst;
    z.avail_out = dst_size;
    int ret = inflate(&z, Z_FINISH);
    ssize_t out = -EIO;
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0) {
        out = dst_size;
    }
    inflateEnd(&z);
    return out;
}

int coroutine_fn qcow2_decompress_cluster(BlockDriverState *bs, uint64_t l2e,
                                          uint8_t *out)
{
    Qcow2State *s = bs->opaque;
    uint64_t host, bytes;
    qcow2_compressed_range(s, l2e, &host, &bytes);
    if (host < s->cluster_size) {
        qcow2_signal_corruption(bs, "Compressed cluster at offset %#"
                                G_GINT64_MODIFIER "x overlaps the header",
                                host);
        return -EIO;
    }
    uint8_t *in = g_malloc(bytes);
    int ret = bdrv_co_pread(bs->file->bs, host, bytes, in, 0);
    if (ret >= 0) {
        ssize_t n = qcow2_decompress(s->compression_type, out,
                                     s->cluster_size, in, bytes);
        ret = n < 0 ? -EIO : 0;
    }
    g_free(in);
    return ret;
}
