/*
 * qcow2-cache.c - write-back caches of cluster-sized metadata tables:
 * one for L2 tables, one for refcount blocks.
 *
 * Invariants: called only with s->lock held, so no two coroutines load the
 * same table; a table with ref > 0 is pinned and never evicted; writing a
 * dirty L2 table first makes every dirty refcount block durable, so an L2
 * entry never reaches the file before the refcount of its cluster.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>

typedef struct CacheEntry {
    uint64_t offset;          /* 0: free slot */
    void *table;
    bool dirty;
    int ref;                  /* pointers handed out (short-lived) */
    int hold;                 /* kept resident, no pointer (may move) */
    uint64_t lru;
} CacheEntry;

struct Qcow2Cache {
    BlockDriverState *bs;
    CacheEntry *entries;
    int size;
    bool is_l2;
    uint8_t *tables;          /* one allocation: entry i at i * cluster */
    uint64_t table_size;
    uint64_t lru_counter;
    GHashTable *index;        /* offset -> CacheEntry* */
    bool no_writeback;        /* shadow commit: never write in place */
};

Qcow2Cache *qcow2_cache_new(BlockDriverState *bs, int entries, bool is_l2)
{
    Qcow2State *s = bs->opaque;
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    c->bs = bs;
    c->size = MAX(entries, 2);
    c->is_l2 = is_l2;
    c->entries = g_new0(CacheEntry, c->size);
    c->table_size = s->cluster_size;
    c->tables = bdrv_blockalign(bs->file->bs, c->size * s->cluster_size);
    for (int i = 0; i < c->size; i++) {
        c->entries[i].table = c->tables + i * s->cluster_size;
    }
    c->index = g_hash_table_new(g_int64_hash, g_int64_equal);
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    bdrv_vfree(c->tables);
    g_hash_table_destroy(c->index);
    g_free(c->entries);
    g_free(c);
}

static CacheEntry *cache_lookup(Qcow2Cache *c, uint64_t offset)
{
    return g_hash_table_lookup(c->index, &offset);
}

static CacheEntry *cache_entry_of(Qcow2Cache *c, void *table)
{
    uint64_t i = ((uint8_t *)table - c->tables) / c->table_size;
    g_assert(i < (uint64_t)c->size && c->entries[i].table == table);
    return &c->entries[i];
}

static int coroutine_fn cache_write_entry(Qcow2Cache *c, CacheEntry *e)
{
    BlockDriverState *bs = c->bs;
    Qcow2State *s = bs->opaque;
    int ret;
    if (!e->dirty) {
        return 0;
    }
    if (c->is_l2 && qcow2_cache_is_dirty(s->refblock_cache)) {
        ret = qcow2_cache_write(bs, s->refblock_cache);
        if (ret >= 0) {
            ret = qcow2_file_sync(bs);
        }
        if (ret < 0) {
            return ret;
        }
    }
    ret = bdrv_co_pwrite(bs->file->bs, e->offset, s->cluster_size, e->table,
                         0);
    if (ret < 0) {
        return ret;
    }
    e->dirty = false;
    return 0;
}

int coroutine_fn qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c)
{
    int result = 0;
    for (int i = 0; i < c->size; i++) {
        CacheEntry *e = &c->entries[i];
        if (e->offset && e->dirty) {
            int ret = cache_write_entry(c, e);
            if (ret < 0 && result == 0) {
                result = ret;
            }
        }
    }
    return result;
}

bool qcow2_cache_is_dirty(Qcow2Cache *c)
{
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].offset && c->entries[i].dirty) {
            return true;
        }
    }
    return false;
}

bool qcow2_cache_entry_dirty(Qcow2Cache *c, uint64_t offset)
{
    CacheEntry *e = cache_lookup(c, offset);
    return e && e->dirty;
}

void qcow2_cache_foreach_dirty(Qcow2Cache *c,
                               void (*fn)(uint64_t offset, void *opaque),
                               void *opaque)
{
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].offset && c->entries[i].dirty) {
            fn(c->entries[i].offset, opaque);
        }
    }
}

/* Grows the cache to n slots.  Tables move, so no table may be pinned
 * by pointer across this call: only called when none is handed out
 * except through the entries themselves (they keep their contents).
 * Only occupied slots are copied: the new free slots stay untouched
 * (their pages are faulted in on first use), so growing by a lot at
 * once costs what the cached tables weigh, not the new capacity. */
static void cache_grow_to(Qcow2Cache *c, int n)
{
    int old = c->size;
    g_assert(n > old);
    uint8_t *tables = bdrv_blockalign(c->bs->file->bs, n * c->table_size);
    CacheEntry *entries = g_new0(CacheEntry, n);
    g_hash_table_remove_all(c->index);
    for (int i = 0; i < n; i++) {
        entries[i].table = tables + i * c->table_size;
        if (i < old && c->entries[i].offset) {
            g_assert(c->entries[i].ref == 0);
            memcpy(entries[i].table, c->entries[i].table, c->table_size);
            entries[i].offset = c->entries[i].offset;
            entries[i].dirty = c->entries[i].dirty;
            entries[i].lru = c->entries[i].lru;
            entries[i].hold = c->entries[i].hold;
            g_hash_table_insert(c->index, &entries[i].offset, &entries[i]);
        }
    }
    bdrv_vfree(c->tables);
    g_free(c->entries);
    c->tables = tables;
    c->entries = entries;
    c->size = n;
}

/* Doubles the number of slots (see cache_grow_to). */
static void cache_grow(Qcow2Cache *c)
{
    cache_grow_to(c, c->size * 2);
}

int qcow2_cache_pinned(Qcow2Cache *c)
{
    int n = 0;
    for (int i = 0; i < c->size; i++) {
        n += c->entries[i].ref > 0;
    }
    return n;
}

void qcow2_cache_reserve(Qcow2Cache *c, int free_slots)
{
    /* Growing moves tables, so it must happen while nothing is pinned. */
    g_assert(qcow2_cache_pinned(c) == 0);
    int free = 0;
    for (int i = 0; i < c->size; i++) {
        free += c->entries[i].offset == 0;
    }
    if (free < free_slots) {
        /* One step to the needed size, with a little slack. */
        cache_grow_to(c, c->size + (free_slots - free) + 8);
    }
}

void qcow2_cache_set_writeback(Qcow2Cache *c, bool enabled)
{
    c->no_writeback = !enabled;
}

int coroutine_fn qcow2_cache_write_raw(BlockDriverState *bs, Qcow2Cache *c)
{
    Qcow2State *s = bs->opaque;
    for (int i = 0; i < c->size; i++) {
        CacheEntry *e = &c->entries[i];
        if (e->offset && e->dirty) {
            int ret = bdrv_co_pwrite(bs->file->bs, e->offset, s->cluster_size,
                                     e->table, 0);
            if (ret < 0) {
                return ret;
            }
            e->dirty = false;
        }
    }
    return 0;
}

/* Finds a slot for a new table, writing back the LRU victim if needed. */
static int coroutine_fn cache_find_slot(Qcow2Cache *c, CacheEntry **out)
{
    CacheEntry *victim = NULL;
    for (int i = 0; i < c->size; i++) {
        CacheEntry *e = &c->entries[i];
        if (e->ref || e->hold || (c->no_writeback && e->dirty)) {
            continue;
        }
        if (!e->offset) {
            victim = e;
            break;
        }
        if (!victim || e->lru < victim->lru) {
            victim = e;
        }
    }
    if (!victim) {
        /* Everything pinned or unwritable: no choice but to grow, which
         * is only safe with nothing pinned. */
        if (qcow2_cache_pinned(c) > 0) {
            return -ENOSPC;
        }
        int first_new = c->size;
        cache_grow(c);
        victim = &c->entries[first_new];
    }
    if (victim->offset) {
        int ret = cache_write_entry(c, victim);
        if (ret < 0) {
            return ret;
        }
        g_hash_table_remove(c->index, &victim->offset);
        victim->offset = 0;
    }
    *out = victim;
    return 0;
}

static int coroutine_fn cache_do_get(BlockDriverState *bs, Qcow2Cache *c,
                                     uint64_t offset, void **table,
                                     bool read_from_disk)
{
    Qcow2State *s = bs->opaque;
    g_assert(offset != 0 && (offset & (s->cluster_size - 1)) == 0);
    CacheEntry *e = cache_lookup(c, offset);
    if (!e) {
        int ret = cache_find_slot(c, &e);
        if (ret < 0) {
            return ret;
        }
        if (read_from_disk) {
            ret = bdrv_co_pread(bs->file->bs, offset, s->cluster_size,
                                e->table, 0);
            if (ret < 0) {
                return ret;
            }
        }
        e->offset = offset;
        e->dirty = false;
        g_hash_table_insert(c->index, &e->offset, e);
    }
    if (!read_from_disk) {
        memset(e->table, 0, s->cluster_size);
    }
    e->ref++;
    e->lru = ++c->lru_counter;
    *table = e->table;
    return 0;
}

int coroutine_fn qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c,
                                 uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, true);
}

int coroutine_fn qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c,
                                       uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, false);
}

int coroutine_fn qcow2_cache_hold(BlockDriverState *bs, Qcow2Cache *c,
                                  uint64_t offset)
{
    void *table;
    int ret = qcow2_cache_get(bs, c, offset, &table);
    if (ret < 0) {
        return ret;
    }
    cache_entry_of(c, table)->hold++;
    qcow2_cache_put(c, &table);
    return 0;
}

void qcow2_cache_release(Qcow2Cache *c, uint64_t offset)
{
    CacheEntry *e = cache_lookup(c, offset);
    if (e && e->hold > 0) {
        e->hold--;
    }
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    CacheEntry *e = cache_entry_of(c, *table);
    g_assert(e->ref > 0);
    e->ref--;
    *table = NULL;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table)
{
    CacheEntry *e = cache_entry_of(c, table);
    e->dirty = true;
}

void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset)
{
    CacheEntry *e = cache_lookup(c, offset);
    if (e) {
        g_assert(e->ref == 0);
        g_hash_table_remove(c->index, &e->offset);
        e->offset = 0;
        e->dirty = false;
        e->hold = 0;
    }
}

void qcow2_cache_rename(Qcow2Cache *c, uint64_t from, uint64_t to)
{
    CacheEntry *e = cache_lookup(c, from);
    g_assert(e && !cache_lookup(c, to));
    g_hash_table_remove(c->index, &e->offset);
    e->offset = to;
    e->dirty = true;
    g_hash_table_insert(c->index, &e->offset, e);
}

void qcow2_cache_empty(Qcow2Cache *c)
{
    for (int i = 0; i < c->size; i++) {
        CacheEntry *e = &c->entries[i];
        if (e->offset && !e->ref) {
            g_hash_table_remove(c->index, &e->offset);
            e->offset = 0;
            e->dirty = false;
        }
    }
}
