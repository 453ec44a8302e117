/*
 * qcow2-refcount.c - reference counts: reading and updating them through
 * the refblock cache, cluster allocation, growth of the refcount table,
 * deferred frees, and the ordered metadata flush.
 *
 * Invariants (see qcow2.h): increments may be written at any time, since
 * a refcount without a reference is only a leak; decrements wait in
 * pending_frees until the tables that dropped the reference are durable.
 * A new refblock is self-describing: it lives at the first cluster of the
 * range it covers and counts itself; it is written before the refcount
 * table entry that points at it.  All functions run under s->lock.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>

uint64_t qcow2_get_refcount_entry(Qcow2State *s, const void *block,
                                  uint64_t i)
{
    const uint8_t *b = block;
    switch (s->refcount_order) {
    case 0: return (b[i / 8] >> (i % 8)) & 1;
    case 1: return (b[i / 4] >> (2 * (i % 4))) & 3;
    case 2: return (b[i / 2] >> (4 * (i % 2))) & 15;
    case 3: return b[i];
    case 4: return be16_read(b + 2 * i);
    case 5: return be32_read(b + 4 * i);
    default: return be64_read(b + 8 * i);
    }
}

void qcow2_set_refcount_entry(Qcow2State *s, void *block, uint64_t i,
                              uint64_t v)
{
    uint8_t *b = block;
    g_assert(v <= s->refcount_max);
    switch (s->refcount_order) {
    case 0:
        b[i / 8] = (b[i / 8] & ~(1 << (i % 8))) | (v << (i % 8));
        break;
    case 1:
        b[i / 4] = (b[i / 4] & ~(3 << (2 * (i % 4)))) | (v << (2 * (i % 4)));
        break;
    case 2:
        b[i / 2] = (b[i / 2] & ~(15 << (4 * (i % 2)))) | (v << (4 * (i % 2)));
        break;
    case 3: b[i] = v; break;
    case 4: be16_write(b + 2 * i, v); break;
    case 5: be32_write(b + 4 * i, v); break;
    default: be64_write(b + 8 * i, v); break;
    }
}

int coroutine_fn qcow2_refcount_init(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t bytes = (uint64_t)s->refcount_table_clusters << s->cluster_bits;
    if ((bs->open_flags & BDRV_O_CHECK) &&
        (bytes == 0 || bytes > QCOW2_MAX_REFTABLE_SIZE ||
         !IS_ALIGNED(s->refcount_table_offset, s->cluster_size))) {
        /* Unusable: check finds every cluster undescribed and -r all
         * rebuilds the refcount structure. */
        s->refcount_table_clusters = 0;
        bytes = 0;
    } else if (bytes > QCOW2_MAX_REFTABLE_SIZE) {
        error_setg(errp, "Reference count table too large");
        return -EINVAL;
    }
    if (!(bs->open_flags & BDRV_O_CHECK) &&
        (bytes == 0 ||
         !IS_ALIGNED(s->refcount_table_offset, s->cluster_size))) {
        error_setg(errp, "Invalid reference count table offset");
        return -EINVAL;
    }
    s->refcount_table_size = bytes / 8;
    s->refcount_table = g_malloc(MAX(bytes, 8));
    int ret = bytes ? bdrv_co_pread(bs->file->bs, s->refcount_table_offset,
                                    bytes, s->refcount_table, 0) : 0;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read refcount table");
        return ret;
    }
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        s->refcount_table[i] = be64_read(&s->refcount_table[i]);
    }
    s->pending_frees = g_array_new(FALSE, FALSE, sizeof(Qcow2PendingFree));
    s->pending_free_clusters = g_hash_table_new_full(g_int64_hash,
                                                     g_int64_equal, g_free,
                                                     NULL);
    return 0;
}

static int refblock_offset_of(BlockDriverState *bs, uint64_t table_index,
                              uint64_t *offset)
{
    Qcow2State *s = bs->opaque;
    if (table_index >= s->refcount_table_size) {
        *offset = 0;
        return 0;
    }
    uint64_t e = s->refcount_table[table_index];
    *offset = e & REFT_OFFSET_MASK;
    if ((e & REFT_RESERVED_MASK) ||
        !IS_ALIGNED(*offset, s->cluster_size)) {
        qcow2_signal_corruption(bs, "Refblock offset %#" G_GINT64_MODIFIER
                                "x unaligned (reftable index: %#"
                                G_GINT64_MODIFIER "x)", *offset, table_index);
        return -EIO;
    }
    return 0;
}

int coroutine_fn qcow2_get_refcount(BlockDriverState *bs,
                                    uint64_t cluster_index, uint64_t *rc)
{
    Qcow2State *s = bs->opaque;
    uint64_t block_off;
    int ret = refblock_offset_of(bs, cluster_index >> s->refblock_bits,
                                 &block_off);
    if (ret < 0) {
        return ret;
    }
    if (!block_off) {
        *rc = 0;
        return 0;
    }
    void *block;
    ret = qcow2_cache_get(bs, s->refblock_cache, block_off, &block);
    if (ret < 0) {
        return ret;
    }
    *rc = qcow2_get_refcount_entry(s, block,
                                   cluster_index & (s->refblock_size - 1));
    qcow2_cache_put(s->refblock_cache, &block);
    return 0;
}

bool qcow2_cluster_pending_free(Qcow2State *s, uint64_t cluster_index)
{
    return s->pending_free_clusters &&
           g_hash_table_contains(s->pending_free_clusters, &cluster_index);
}

/* ---- refcount table growth ---- */

/* Writes the refcount table fields of the header (bytes 48..59). */
static int coroutine_fn write_reftable_pointer(BlockDriverState *bs,
                                               uint64_t offset,
                                               uint32_t clusters)
{
    uint8_t buf[12];
    be64_write(buf, offset);
    be32_write(buf + 8, clusters);
    return bdrv_co_pwrite(bs->file->bs, 48, sizeof(buf), buf, 0);
}

/*
 * In a shadow commit the refcount table grows in memory only: the switch
 * writes a new table sized for it anyway (relocate_refcounts), while
 * writing the header or freeing the old table now would change the
 * on-disk state before the switch - and the switch frees the old table
 * itself.  The missing refcount blocks are then installed in memory too.
 */
static int shadow_extend_refcount_table(BlockDriverState *bs,
                                        uint64_t min_entries)
{
    Qcow2State *s = bs->opaque;
    uint64_t old = s->refcount_table_size;
    uint64_t n = ROUND_UP(MAX(min_entries, old + old / 2 + 1),
                          s->cluster_size / 8);
    if (n * 8 > QCOW2_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }
    s->refcount_table = g_renew(uint64_t, s->refcount_table, n);
    memset(s->refcount_table + old, 0, (n - old) * 8);
    s->refcount_table_size = n;
    return 0;
}

/*
 * Moves the refcount table to a bigger one that covers at least
 * min_entries refblocks.  The new table and the refblocks describing it
 * are placed right after everything the old table can describe, so they
 * count themselves; the header switches to the new table in one write.
 */
static int coroutine_fn grow_refcount_table(BlockDriverState *bs,
                                            uint64_t min_entries)
{
    Qcow2State *s = bs->opaque;
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t old_entries = s->refcount_table_size;
    uint64_t start = old_entries << s->refblock_bits;   /* first cluster */
    uint64_t new_entries = MAX(min_entries, old_entries + old_entries / 2 + 1);
    uint64_t tc, nb_blocks;
    int ret;

    /* Table clusters plus the refblocks that describe them: iterate to a
     * fixed point, since more clusters can need more blocks. */
    nb_blocks = 1;
    for (;;) {
        uint64_t need = MAX(new_entries, old_entries + nb_blocks);
        tc = DIV_ROUND_UP(need, per_cluster);
        uint64_t nb = DIV_ROUND_UP(tc + nb_blocks, s->refblock_size);
        if (nb <= nb_blocks) {
            new_entries = tc * per_cluster;
            break;
        }
        nb_blocks = nb;
    }
    if (tc * s->cluster_size > QCOW2_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }

    uint64_t blocks_start = start;                /* refblocks first */
    uint64_t table_start = start + nb_blocks;     /* then the table */
    uint8_t *block = bdrv_blockalign(bs->file->bs, s->cluster_size);
    uint64_t *table = bdrv_blockalign(bs->file->bs, tc * s->cluster_size);
    memset(table, 0, tc * s->cluster_size);
    for (uint64_t i = 0; i < old_entries; i++) {
        be64_write(&table[i], s->refcount_table[i]);
    }

    for (uint64_t b = 0; b < nb_blocks; b++) {
        memset(block, 0, s->cluster_size);
        uint64_t first = start + b * s->refblock_size;
        for (uint64_t c = first; c < first + s->refblock_size &&
                                 c < table_start + tc; c++) {
            qcow2_set_refcount_entry(s, block, c - first, 1);
        }
        uint64_t off = (blocks_start + b) << s->cluster_bits;
        ret = bdrv_co_pwrite(bs->file->bs, off, s->cluster_size, block, 0);
        if (ret < 0) {
            goto out;
        }
        be64_write(&table[old_entries + b], off);
    }
    ret = bdrv_co_pwrite(bs->file->bs, table_start << s->cluster_bits,
                         tc * s->cluster_size, table, 0);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    bool switched = false;
    if (ret >= 0) {
        ret = write_reftable_pointer(bs, table_start << s->cluster_bits, tc);
        switched = ret >= 0;
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (!switched) {
        goto out;
    }
    /* The file names the new table from here on, even if the sync failed:
     * follow it, and leak the old table unless the switch is durable. */
    int sync_ret = ret;

    uint64_t old_offset = s->refcount_table_offset;
    uint64_t old_bytes = (uint64_t)s->refcount_table_clusters <<
                         s->cluster_bits;
    g_free(s->refcount_table);
    s->refcount_table = g_new0(uint64_t, new_entries);
    for (uint64_t i = 0; i < new_entries; i++) {
        s->refcount_table[i] = be64_read(&table[i]);
    }
    s->refcount_table_size = new_entries;
    s->refcount_table_offset = table_start << s->cluster_bits;
    s->refcount_table_clusters = tc;
    uint64_t end = (table_start + tc) << s->cluster_bits;
    if (s->zero_beyond < end) {
        s->zero_beyond = end;
    }
    /* The old table is unreferenced now; freeing it is a plain decrement. */
    ret = sync_ret < 0 ? sync_ret
                       : qcow2_update_refcount(bs, old_offset, old_bytes, -1);
out:
    bdrv_vfree(block);
    bdrv_vfree(table);
    return ret;
}

/*
 * Installs new refcount blocks for the table indexes in `missing`, placed
 * at the clusters pos[0..k).  Each block's own refcount is set before the
 * table points at it: inside the new blocks' buffers when the position
 * lies in a new range, else through the cache (written out first).  In a
 * shadow commit nothing old is written: the blocks stay dirty in the cache
 * and the table changes only in memory, to be relocated at the switch.
 */
static int coroutine_fn install_refblocks(BlockDriverState *bs,
                                          const uint64_t *missing,
                                          const uint64_t *pos, uint64_t k)
{
    Qcow2State *s = bs->opaque;
    int ret = 0;
    for (uint64_t i = 0; i < k && ret >= 0; i++) {
        void *block;
        uint64_t off = pos[i] << s->cluster_bits;
        ret = qcow2_cache_get_empty(bs, s->refblock_cache, off, &block);
        if (ret < 0) {
            break;
        }
        for (uint64_t j = 0; j < k; j++) {
            if (pos[j] >> s->refblock_bits == missing[i]) {
                qcow2_set_refcount_entry(s, block,
                                         pos[j] & (s->refblock_size - 1), 1);
            }
        }
        qcow2_cache_mark_dirty(s->refblock_cache, block);
        if (!s->shadow_pending) {
            ret = bdrv_co_pwrite(bs->file->bs, off, s->cluster_size, block, 0);
        }
        qcow2_cache_put(s->refblock_cache, &block);
    }
    /* Positions inside ranges that already had a block. */
    for (uint64_t j = 0; j < k && ret >= 0; j++) {
        uint64_t ti = pos[j] >> s->refblock_bits;
        bool is_new = false;
        for (uint64_t i = 0; i < k; i++) {
            is_new |= missing[i] == ti;
        }
        if (!is_new) {
            ret = qcow2_update_refcount(bs, pos[j] << s->cluster_bits, 1, 1);
        }
    }
    if (ret >= 0 && !s->shadow_pending) {
        ret = qcow2_cache_write(bs, s->refblock_cache);
        if (ret >= 0) {
            ret = qcow2_file_sync(bs);
        }
    }
    /*
     * Table entries, in rounds separated by syncs: an entry goes out only
     * once the range holding its block is described on disk - a range
     * that had a block, the block's own range, or one whose entry an
     * earlier round made durable.  A block may lie in another new range
     * (the span's blocks come first, in its first range); written in one
     * go, a crash could keep the entry of a block whose own refcount lives
     * in a block not yet in the table.
     */
    bool *done = g_new0(bool, k);
    bool *ready = g_new0(bool, k);
    for (uint64_t left = k; left > 0 && ret >= 0 && !s->shadow_pending;) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t host = pos[i] >> s->refblock_bits;
            ready[i] = !done[i];
            for (uint64_t j = 0; j < k && ready[i]; j++) {
                if (missing[j] == host && j != i && !done[j]) {
                    ready[i] = false;
                }
            }
            n += ready[i];
        }
        for (uint64_t i = 0; i < k && ret >= 0; i++) {
            if (!done[i] && (ready[i] || n == 0)) {  /* (n == 0: never) */
                uint8_t entry[8];
                be64_write(entry, pos[i] << s->cluster_bits);
                ret = bdrv_co_pwrite(bs->file->bs,
                                     s->refcount_table_offset + missing[i] * 8,
                                     8, entry, 0);
                done[i] = true;
                left--;
            }
        }
        if (ret >= 0 && left > 0) {
            ret = qcow2_file_sync(bs);
        }
    }
    g_free(done);
    g_free(ready);
    for (uint64_t i = 0; i < k && ret >= 0; i++) {
        uint64_t off = pos[i] << s->cluster_bits;
        s->refcount_table[missing[i]] = off;
        if (s->zero_beyond < off + s->cluster_size) {
            s->zero_beyond = off + s->cluster_size;
        }
    }
    return ret;
}

int coroutine_fn qcow2_update_refcount(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, int64_t delta)
{
    Qcow2State *s = bs->opaque;
    if (bytes == 0) {
        return 0;
    }
    uint64_t first = offset >> s->cluster_bits;
    uint64_t last = (offset + bytes - 1) >> s->cluster_bits;
    for (uint64_t c = first; c <= last;) {
        uint64_t ti = c >> s->refblock_bits;
        uint64_t block_off;
        int ret = refblock_offset_of(bs, ti, &block_off);
        if (ret < 0) {
            return ret;
        }
        if (!block_off) {
            if (delta < 0) {
                qcow2_signal_corruption(bs, "Freeing cluster %#"
                                        G_GINT64_MODIFIER "x without a "
                                        "refcount block", c);
                return -EIO;
            }
            /* Allocation installs blocks first; reaching here means a
             * refcount for a cluster nobody allocated. */
            return -EIO;
        }
        void *block;
        ret = qcow2_cache_get(bs, s->refblock_cache, block_off, &block);
        if (ret < 0) {
            return ret;
        }
        uint64_t end = MIN(last + 1, (ti + 1) << s->refblock_bits);
        for (; c < end; c++) {
            uint64_t i = c & (s->refblock_size - 1);
            uint64_t rc = qcow2_get_refcount_entry(s, block, i);
            if ((delta < 0 && rc < (uint64_t)-delta) ||
                (delta > 0 && rc + delta > s->refcount_max)) {
                qcow2_cache_put(s->refblock_cache, &block);
                if (delta > 0) {
                    return -ERANGE;
                }
                qcow2_signal_corruption(bs, "Refcount of cluster %#"
                                        G_GINT64_MODIFIER "x would drop "
                                        "below zero", c);
                return -EIO;
            }
            rc += delta;
            qcow2_set_refcount_entry(s, block, i, rc);
            if (rc == 0) {
                if (c < s->free_cluster_index) {
                    s->free_cluster_index = c;
                }
                /* A freed cluster may be reused for anything: compressed
                 * chunks must not be packed into it any more. */
                if (s->free_byte_offset &&
                    s->free_byte_offset >> s->cluster_bits == c) {
                    s->free_byte_offset = 0;
                }
                /* A freed metadata table must not be written back. */
                qcow2_cache_discard(s->l2_cache, c << s->cluster_bits);
            }
        }
        qcow2_cache_mark_dirty(s->refblock_cache, block);
        qcow2_cache_put(s->refblock_cache, &block);
        s->metadata_dirty = true;
    }
    return 0;
}

/* ---- allocation ---- */

static int coroutine_fn grow_refcount_table(BlockDriverState *bs,
                                            uint64_t min_entries);

/* Host offsets must fit the 56-bit L2 offset field. */
#define QCOW2_MAX_HOST_OFFSET (1ULL << 56)

static bool cluster_reserved(Qcow2State *s, uint64_t c)
{
    return qcow2_cluster_pending_free(s, c) ||
           (s->shadow_excluded &&
            g_hash_table_contains(s->shadow_excluded,
                                  QCOW2_CLUSTER_KEY(c)));
}

/*
 * Finds the first run of n free clusters at or after *start, scanning a
 * refcount block at a time.  *first_free is the first free cluster seen,
 * which becomes the next allocation hint.
 */
static int coroutine_fn find_free_run(BlockDriverState *bs, uint64_t n,
                                      uint64_t *start, uint64_t *first_free)
{
    Qcow2State *s = bs->opaque;
    uint64_t st = *start, run = 0;
    bool check_reserved = g_hash_table_size(s->pending_free_clusters) ||
                          (s->shadow_excluded &&
                           g_hash_table_size(s->shadow_excluded));
    *first_free = UINT64_MAX;
    while (run < n) {
        uint64_t c = st + run;
        uint64_t ti = c >> s->refblock_bits;
        uint64_t block_end = (ti + 1) << s->refblock_bits;
        uint64_t block_off;
        int ret = refblock_offset_of(bs, ti, &block_off);
        if (ret < 0) {
            return ret;
        }
        void *block = NULL;
        if (block_off) {
            ret = qcow2_cache_get(bs, s->refblock_cache, block_off, &block);
            if (ret < 0) {
                return ret;
            }
        }
        for (; c < block_end && run < n; c = st + run) {
            bool is_free = !block ||
                qcow2_get_refcount_entry(s, block,
                                         c & (s->refblock_size - 1)) == 0;
            if (is_free && check_reserved && cluster_reserved(s, c)) {
                is_free = false;
            }
            if (is_free) {
                if (*first_free == UINT64_MAX) {
                    *first_free = c;
                }
                run++;
            } else {
                st = c + 1;
                run = 0;
            }
        }
        if (block) {
            qcow2_cache_put(s->refblock_cache, &block);
        }
        if ((st + run) << s->cluster_bits >= QCOW2_MAX_HOST_OFFSET) {
            return -EFBIG;
        }
    }
    *start = st;
    return 0;
}

static bool range_has_block(Qcow2State *s, uint64_t ti)
{
    return ti < s->refcount_table_size &&
           (s->refcount_table[ti] & REFT_OFFSET_MASK);
}

/*
 * The refcount ranges (table indexes) that [first, first + len) touches
 * and that have no block yet, ascending.  Returns how many.
 */
static uint64_t missing_ranges(Qcow2State *s, uint64_t first, uint64_t len,
                               uint64_t **missing)
{
    uint64_t lo = first >> s->refblock_bits;
    uint64_t hi = (first + len - 1) >> s->refblock_bits;
    uint64_t m = 0;
    g_free(*missing);
    *missing = g_new(uint64_t, hi - lo + 1);
    for (uint64_t ti = lo; ti <= hi; ti++) {
        if (!range_has_block(s, ti)) {
            (*missing)[m++] = ti;
        }
    }
    return m;
}

/*
 * Finds where n clusters go: the first span at or after *start of n + k
 * free clusters, k being the number of ranges the span touches that lack
 * a refcount block (the k blocks take the span's first clusters, the
 * data the n after them).  Each candidate run gets its own k, so a run
 * just too short for its blocks is passed over without raising the need
 * of the runs after it.  Sets *start, *k and *missing (k ranges; when
 * the fixed point shrinks, one may lie just past the span, and gets its
 * block early).  *first_free: the first free cluster seen.
 */
static int coroutine_fn find_span(BlockDriverState *bs, uint64_t n,
                                  uint64_t *start, uint64_t *k,
                                  uint64_t **missing, uint64_t *first_free)
{
    Qcow2State *s = bs->opaque;
    uint64_t c = *start, ff;
    int ret = find_free_run(bs, n, &c, first_free);
    for (; ret >= 0; ret = find_free_run(bs, n, &c, &ff)) {
        uint64_t need = 0;
        for (;;) {
            uint64_t m = missing_ranges(s, c, n + need, missing);
            if (m <= need) {
                need = m;
                break;
            }
            need = m;
        }
        uint64_t at = c;
        ret = need ? find_free_run(bs, n + need, &at, &ff) : 0;
        if (ret < 0) {
            break;
        }
        if (at == c) {
            *start = c;
            *k = need;
            return 0;
        }
        c = at;     /* the next run long enough for this span */
    }
    return ret;
}

int64_t coroutine_fn qcow2_alloc_clusters(BlockDriverState *bs, uint64_t n)
{
    Qcow2State *s = bs->opaque;
    g_assert(n > 0);
    /* Each round either allocates or adds what the span lacks (refcount
     * blocks, a larger table); the next round then finds a span that
     * needs nothing, in practice the second or third. */
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t start = s->free_cluster_index, k, first_free;
        g_autofree uint64_t *missing = NULL;
        int ret = find_span(bs, n, &start, &k, &missing, &first_free);
        if (ret < 0) {
            return ret;
        }
        if (k == 0) {
            ret = qcow2_update_refcount(bs, start << s->cluster_bits,
                                        n << s->cluster_bits, 1);
            if (ret < 0) {
                return ret;
            }
            /* Everything before first_free is in use; if the run starts
             * there, skip it too. */
            s->free_cluster_index = first_free == start ? start + n
                                                        : first_free;
            /* Whatever the caller puts here (a table, a refblock) may be
             * written: the clusters no longer read as never-written. */
            s->zero_beyond = MAX(s->zero_beyond,
                                 (start + n) << s->cluster_bits);
            return (int64_t)(start << s->cluster_bits);
        }
        if (missing[k - 1] >= s->refcount_table_size) {
            ret = s->shadow_pending
                  ? shadow_extend_refcount_table(bs, missing[k - 1] + 1)
                  : grow_refcount_table(bs, missing[k - 1] + 1);
            if (ret < 0) {
                return ret;
            }
            continue;     /* the growth placed new blocks: search again */
        }
        g_autofree uint64_t *pos = g_new(uint64_t, k);
        for (uint64_t i = 0; i < k; i++) {
            pos[i] = start + i;
        }
        ret = install_refblocks(bs, missing, pos, k);
        if (ret < 0) {
            return ret;
        }
    }
    return -EIO;
}

/* Compressed chunks share clusters: s->free_byte_offset is where the
 * next chunk may go (0: start a new cluster).  Each chunk adds one
 * reference to every cluster it touches. */
int64_t coroutine_fn qcow2_alloc_bytes(BlockDriverState *bs, uint64_t bytes)
{
    Qcow2State *s = bs->opaque;
    g_assert(bytes > 0 && bytes <= s->cluster_size);
    uint64_t off = s->free_byte_offset;
    if (off && qcow2_offset_into_cluster(s, off) + bytes <= s->cluster_size) {
        uint64_t rc;
        int ret = qcow2_get_refcount(bs, off >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc > 0 && rc < s->refcount_max) {
            ret = qcow2_update_refcount(bs, off, 1, 1);
            if (ret < 0) {
                return ret;
            }
            goto done;
        }
    }
    int64_t c = qcow2_alloc_clusters(bs, 1);
    if (c < 0) {
        return c;
    }
    off = c;
done:
    s->free_byte_offset = qcow2_offset_into_cluster(s, off + bytes)
                          ? off + bytes : 0;
    return (int64_t)off;
}

void qcow2_free_deferred(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    Qcow2State *s = bs->opaque;
    if (bytes == 0) {
        return;
    }
    Qcow2PendingFree pf = { offset, bytes };
    g_array_append_val(s->pending_frees, pf);
    uint64_t first = offset >> s->cluster_bits;
    uint64_t last = (offset + bytes - 1) >> s->cluster_bits;
    for (uint64_t c = first; c <= last; c++) {
        uint64_t *key = g_new(uint64_t, 1);
        *key = c;
        gpointer old = g_hash_table_lookup(s->pending_free_clusters, key);
        g_hash_table_replace(s->pending_free_clusters, key,
                             GUINT_TO_POINTER(GPOINTER_TO_UINT(old) + 1));
    }
    s->metadata_dirty = true;
}

int coroutine_fn qcow2_apply_pending_frees(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    int result = 0;
    GArray *list = s->pending_frees;
    s->pending_frees = g_array_new(FALSE, FALSE, sizeof(Qcow2PendingFree));
    g_hash_table_remove_all(s->pending_free_clusters);
    /* A cluster freed now may be reused: stop packing into it. */
    s->free_byte_offset = 0;
    for (guint i = 0; i < list->len; i++) {
        Qcow2PendingFree *pf = &g_array_index(list, Qcow2PendingFree, i);
        int ret = qcow2_update_refcount(bs, pf->offset, pf->bytes, -1);
        if (ret < 0 && result == 0) {
            result = ret;   /* the cluster leaks; keep going */
        }
    }
    g_array_free(list, TRUE);
    return result;
}

int coroutine_fn qcow2_file_sync(BlockDriverState *bs)
{
    return bdrv_co_flush(bs->file->bs);
}

int coroutine_fn qcow2_flush_metadata(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    int ret;
    if (s->stale) {
        return -EIO;    /* nothing in memory may reach the file */
    }
    if (qcow2_late_vmstate_pending(s)) {
        /* The snapshot cannot be completed before its VM state is
         * written, and nothing may be written in place before its shadow
         * switch: a checkpoint makes the active layer durable without
         * it (qcow2-snapshot.c), so the guest does not wait for the
         * write-out. */
        return qcow2_snapshot_checkpoint_pending(bs);
    }
    if (s->pending_create) {
        /* Nothing may be written in place before the shadow switch. */
        ret = qcow2_snapshot_finish_pending(bs);
        if (ret < 0) {
            return ret;
        }
    }
    bool tables_dirty = qcow2_cache_is_dirty(s->l2_cache) ||
                        g_hash_table_size(s->l1_dirty) > 0;

    /* 1. increments, durable before any table that relies on them */
    if (qcow2_cache_is_dirty(s->refblock_cache)) {
        ret = qcow2_cache_write(bs, s->refblock_cache);
        if (ret < 0) {
            return ret;
        }
        if (tables_dirty) {
            ret = qcow2_file_sync(bs);
            if (ret < 0) {
                return ret;
            }
        }
    }
    /* 2. L2 tables, then the L1 entries that point at new ones */
    if (tables_dirty) {
        ret = qcow2_cache_write(bs, s->l2_cache);
        if (ret < 0) {
            return ret;
        }
        if (g_hash_table_size(s->l1_dirty) > 0) {
            ret = qcow2_file_sync(bs);
            if (ret >= 0) {
                ret = qcow2_write_l1_entries(bs);
            }
            if (ret < 0) {
                return ret;
            }
        }
    }
    /* 3. decrements, once no durable table references the clusters.
     * Sync even when no table was dirty here: the tables that dropped
     * the references may have been written by cache eviction since the
     * last sync, and a decrement must never overtake them. */
    if (s->pending_frees->len > 0) {
        ret = qcow2_file_sync(bs);
        if (ret < 0) {
            return ret;
        }
        ret = qcow2_apply_pending_frees(bs);
        if (ret < 0) {
            return ret;
        }
        ret = qcow2_cache_write(bs, s->refblock_cache);
        if (ret < 0) {
            return ret;
        }
    }
    s->metadata_dirty = false;
    return 0;
}

/* ---- changing the refcount width ---- */

int coroutine_fn qcow2_change_refcount_order(BlockDriverState *bs,
                                             uint32_t order, GError **errp)
{
    Qcow2State *s = bs->opaque;
    int ret = qcow2_flush_metadata(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush metadata");
        return ret;
    }
    uint64_t new_max = order == 6 ? UINT64_MAX : (1ULL << (1u << order)) - 1;
    uint64_t nb = s->refcount_table_size << s->refblock_bits;
    uint64_t end = 0;
    /* Current refcounts, without the old refcount structure itself. */
    GHashTable *old_struct = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t b = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (b) {
            g_hash_table_add(old_struct, GSIZE_TO_POINTER(b >> s->cluster_bits));
        }
    }
    for (uint64_t i = 0; i < s->refcount_table_clusters; i++) {
        g_hash_table_add(old_struct, GSIZE_TO_POINTER(
            (s->refcount_table_offset >> s->cluster_bits) + i));
    }
    GArray *refs = g_array_sized_new(FALSE, TRUE, sizeof(uint64_t), 1024);
    for (uint64_t c = 0; c < nb; c++) {
        uint64_t rc = 0;
        ret = qcow2_get_refcount(bs, c, &rc);
        if (ret < 0) {
            break;
        }
        if (rc) {
            end = c + 1;    /* new structure goes after the old one too */
        }
        if (g_hash_table_contains(old_struct, GSIZE_TO_POINTER(c))) {
            rc = 0;
        }
        if (rc > new_max) {
            error_setg(errp, "Cannot decrease refcount entry width to %u "
                       "bits: Cluster at offset %#" G_GINT64_MODIFIER "x has "
                       "a refcount of %" G_GUINT64_FORMAT, 1u << order,
                       c << s->cluster_bits, rc);
            ret = -EINVAL;
            break;
        }
        g_array_append_val(refs, rc);
    }
    g_hash_table_destroy(old_struct);
    if (ret < 0) {
        g_array_free(refs, TRUE);
        if (!errp || !*errp) {
            error_setg_errno(errp, -ret, "Could not read refcounts");
        }
        return ret;
    }
    /* New blocks and table after everything in use; they count
     * themselves.  The old structure is simply absent from the counts. */
    uint64_t entries_per_block = (s->cluster_size * 8) >> order;
    uint64_t per_table = s->cluster_size / 8, nbb = 1, tc = 1;
    for (;;) {
        uint64_t total = end + nbb + tc;
        uint64_t b = DIV_ROUND_UP(total, entries_per_block);
        uint64_t t = DIV_ROUND_UP(b, per_table);
        if (b <= nbb && t <= tc) {
            break;
        }
        nbb = MAX(nbb, b);
        tc = MAX(tc, t);
    }
    Qcow2State tmp = { .refcount_order = order, .refcount_max = new_max };
    uint8_t *block = bdrv_blockalign(bs->file->bs, s->cluster_size);
    uint64_t *table = bdrv_blockalign(bs->file->bs, tc * s->cluster_size);
    memset(table, 0, tc * s->cluster_size);
    for (uint64_t b = 0; b < nbb && ret >= 0; b++) {
        memset(block, 0, s->cluster_size);
        for (uint64_t j = 0; j < entries_per_block; j++) {
            uint64_t c = b * entries_per_block + j;
            uint64_t rc = c < refs->len ? g_array_index(refs, uint64_t, c) : 0;
            if (c >= end && c < end + nbb + tc) {
                rc = 1;
            }
            if (rc) {
                qcow2_set_refcount_entry(&tmp, block, j, rc);
            }
        }
        uint64_t off = (end + b) << s->cluster_bits;
        be64_write(&table[b], off);
        ret = bdrv_co_pwrite(bs->file->bs, off, s->cluster_size, block, 0);
    }
    uint64_t table_off = (end + nbb) << s->cluster_bits;
    if (ret >= 0) {
        ret = bdrv_co_pwrite(bs->file->bs, table_off, tc * s->cluster_size,
                             table, 0);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret >= 0) {
        /* Header bytes 48..99: table pointer and width switch together. */
        uint8_t h[52];
        be64_write(h, table_off);
        be32_write(h + 8, tc);
        be32_write(h + 12, s->nb_snapshots);
        be64_write(h + 16, s->snapshots_offset);
        be64_write(h + 24, s->incompatible_features);
        be64_write(h + 32, s->compatible_features);
        be64_write(h + 40, s->autoclear_features);
        be32_write(h + 48, order);
        ret = bdrv_co_pwrite(bs->file->bs, 48, sizeof(h), h, 0);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret >= 0) {
        qcow2_cache_empty(s->refblock_cache);
        g_free(s->refcount_table);
        s->refcount_table = g_new0(uint64_t, tc * per_table);
        for (uint64_t i = 0; i < nbb; i++) {
            s->refcount_table[i] = be64_read(&table[i]);
        }
        s->refcount_table_size = tc * per_table;
        s->refcount_table_offset = table_off;
        s->refcount_table_clusters = tc;
        s->refcount_order = order;
        s->refcount_bits = 1u << order;
        s->refcount_max = new_max;
        s->refblock_bits = s->cluster_bits + 3 - order;
        s->refblock_size = 1ULL << s->refblock_bits;
        s->free_cluster_index = 1;
        uint64_t zb = (end + nbb + tc) << s->cluster_bits;
        s->zero_beyond = MAX(s->zero_beyond, zb);
    } else {
        error_setg_errno(errp, -ret, "Could not write the new refcount "
                         "structure");
    }
    bdrv_vfree(block);
    bdrv_vfree(table);
    g_array_free(refs, TRUE);
    return ret;
}
