/*
 * qcow2-bitmap.c - persistent dirty bitmaps in the qcow2 bitmaps
 * extension (qcow2 specification, "Bitmaps extension").
 *
 * Directory entry: table offset u64, table size u32, flags u32, type u8,
 * granularity bits u8, name size u16, extra data size u32, extra data,
 * name, padding to 8 bytes.  The bitmap table has one u64 per cluster of
 * bitmap data: 0 = all zeroes, 1 = all ones, else the data cluster's
 * offset.  s->bitmap_directory is always a validated copy of what the
 * header points at.
 *
 * Life cycle (QEMU's rules):
 *   open      every entry becomes a persistent BdrvDirtyBitmap of the
 *             node: recording iff the `auto` flag is set; an entry that
 *             already has `in_use` was not stored properly (crash) and is
 *             loaded as inconsistent (kept on disk untouched, can only be
 *             removed).  Read-write: all entries get in_use on disk.
 *   close     every persistent bitmap is written to new clusters, then a
 *             new directory (in_use clear), then one header write
 *             switches to it, then the old clusters are freed.  A kill at
 *             any instant leaves the old directory (in_use: the bitmaps
 *             come back inconsistent) or the new one, at worst leaking.
 *   remove    the same directory switch without the entry, at once.
 *   reopen    read-only in place (the old top of an external snapshot):
 *             stored as at close, the bitmaps then read-only; back to
 *             read-write: in_use set again on disk first.
 */
#include "block/qcow2.h"
#include "block/dirty-bitmap.h"
#include <errno.h>
#include <string.h>

#define BME_FLAG_IN_USE (1u << 0)
#define BME_FLAG_AUTO   (1u << 1)
#define BME_FLAG_EXTRA_DATA_COMPATIBLE (1u << 2)
#define BME_RESERVED_FLAGS 0xfffffff8u
#define BME_MAX_NAME 1023
#define BME_HEADER 24
#define BME_TYPE_DIRTY_TRACKING 1
#define BME_MIN_GRANULARITY_BITS 9
#define BME_MAX_GRANULARITY_BITS 31
#define BME_MAX_TABLE_SIZE 0x8000000u
#define BME_MAX_PHYS_SIZE 0x20000000u
#define BME_TABLE_ENTRY_RESERVED 0xff000000000001feULL
#define BME_TABLE_ENTRY_OFFSET 0x00fffffffffffe00ULL
#define BME_TABLE_ENTRY_ALL_ONES 1ULL
#define QCOW2_MAX_BITMAPS 65535
#define QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024u * QCOW2_MAX_BITMAPS)

/* One parsed directory entry (pointers into the directory buffer). */
typedef struct Bme {
    uint64_t table_offset;
    uint32_t table_size;
    uint32_t flags;
    uint8_t type;
    uint8_t gran_bits;
    uint16_t name_len;
    uint32_t extra;
    const uint8_t *raw;         /* the whole entry */
    size_t raw_len;             /* with padding */
} Bme;

static size_t bme_size(uint16_t name_len, uint32_t extra)
{
    return ROUND_UP(BME_HEADER + (size_t)extra + name_len, 8);
}

static void bme_parse(const uint8_t *p, Bme *e)
{
    e->table_offset = be64_read(p);
    e->table_size = be32_read(p + 8);
    e->flags = be32_read(p + 12);
    e->type = p[16];
    e->gran_bits = p[17];
    e->name_len = be16_read(p + 18);
    e->extra = be32_read(p + 20);
    e->raw = p;
    e->raw_len = bme_size(e->name_len, e->extra);
}

static bool bme_name_is(const Bme *e, const char *name)
{
    return strlen(name) == e->name_len &&
           !memcmp(e->raw + BME_HEADER + e->extra, name, e->name_len);
}

/* Calls fn for each entry of the (validated) directory; stops on false. */
static void dir_foreach(Qcow2State *s, bool (*fn)(Bme *e, void *opaque),
                        void *opaque)
{
    uint64_t pos = 0;
    for (uint32_t i = 0; s->bitmap_directory && i < s->nb_bitmaps; i++) {
        Bme e;
        bme_parse(s->bitmap_directory + pos, &e);
        if (!fn(&e, opaque)) {
            return;
        }
        pos += e.raw_len;
    }
}

static int coroutine_fn read_directory(BlockDriverState *bs, uint8_t **out,
                                       GError **errp)
{
    Qcow2State *s = bs->opaque;
    int64_t flen = bdrv_getlength(bs->file->bs);
    uint64_t size = s->bitmap_directory_size;
    if (s->bitmap_directory_offset + size > (uint64_t)flen ||
        s->bitmap_directory_offset < s->cluster_size) {
        error_setg(errp, "Bitmap directory exceeds the image file");
        return -EINVAL;
    }
    uint8_t *dir = g_malloc(MAX(size, 1));
    int ret = bdrv_co_pread(bs->file->bs, s->bitmap_directory_offset, size,
                            dir, 0);
    if (ret < 0) {
        g_free(dir);
        error_setg_errno(errp, -ret, "Could not read bitmap directory");
        return ret;
    }
    /* Validate every entry before anyone walks the directory. */
    uint64_t pos = 0;
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        if (pos + BME_HEADER > size) {
            goto bad;
        }
        uint16_t name = be16_read(dir + pos + 18);
        uint32_t extra = be32_read(dir + pos + 20);
        uint8_t gran = dir[pos + 17];
        if (name == 0 || name > BME_MAX_NAME || extra > (1 << 20) ||
            gran < 9 || gran > 31 ||
            /* The entry with its padding to 8 bytes (the spec's size). */
            pos + bme_size(name, extra) > size) {
            goto bad;
        }
        pos += bme_size(name, extra);
    }
    *out = dir;
    return 0;
bad:
    g_free(dir);
    error_setg(errp, "Bitmap directory is corrupt");
    return -EINVAL;
}

/*
 * Reads and validates a bitmap table: every entry is 0, 1, or an aligned
 * offset of a cluster inside the file with no reserved bit set.
 */
static int coroutine_fn read_table(BlockDriverState *bs, const Bme *e,
                                   uint64_t **out)
{
    Qcow2State *s = bs->opaque;
    int64_t flen = bdrv_getlength(bs->file->bs);
    uint64_t bytes = (uint64_t)e->table_size * 8;
    if (!e->table_size || e->table_size > BME_MAX_TABLE_SIZE ||
        !IS_ALIGNED(e->table_offset, s->cluster_size) ||
        e->table_offset < s->cluster_size ||
        e->table_offset + bytes > (uint64_t)MAX(flen, 0)) {
        return -EINVAL;
    }
    uint64_t *t = g_new(uint64_t, e->table_size);
    int ret = bdrv_co_pread(bs->file->bs, e->table_offset, bytes, t, 0);
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    for (uint32_t i = 0; i < e->table_size; i++) {
        uint64_t v = be64_read(&t[i]);
        uint64_t off = v & BME_TABLE_ENTRY_OFFSET;
        if ((v & BME_TABLE_ENTRY_RESERVED) ||
            (off && ((v & 1) || !IS_ALIGNED(off, s->cluster_size) ||
                     off + s->cluster_size > (uint64_t)flen))) {
            g_free(t);
            return -EINVAL;
        }
        t[i] = v;
    }
    *out = t;
    return 0;
}

/* Fills bm from its on-disk table; false if the table cannot be used. */
static bool coroutine_fn load_bits(BlockDriverState *bs, const Bme *e,
                                   BdrvDirtyBitmap *bm)
{
    Qcow2State *s = bs->opaque;
    HBitmap *hb = bdrv_dirty_bitmap_hbitmap(bm);
    uint64_t dsize = hbitmap_data_size(hb);
    uint64_t *t = NULL;
    if (e->table_size != DIV_ROUND_UP(dsize, s->cluster_size) ||
        read_table(bs, e, &t) < 0) {
        return false;
    }
    uint8_t *buf = g_malloc(s->cluster_size);
    bool ok = true;
    for (uint32_t i = 0; i < e->table_size && ok; i++) {
        uint64_t off = t[i] & BME_TABLE_ENTRY_OFFSET;
        uint64_t at = (uint64_t)i * s->cluster_size;
        if (!off) {
            if (t[i] & BME_TABLE_ENTRY_ALL_ONES) {
                hbitmap_deserialize_ones(hb, at, s->cluster_size);
            }
            continue;
        }
        ok = bdrv_co_pread(bs->file->bs, off, s->cluster_size, buf, 0) >= 0;
        if (ok) {
            hbitmap_deserialize_part(hb, buf, at, s->cluster_size);
        }
    }
    g_free(buf);
    g_free(t);
    return ok;
}

typedef struct LoadCtx {
    BlockDriverState *bs;
    GError **errp;
    int ret;
} LoadCtx;

static bool coroutine_fn load_one(Bme *e, void *opaque)
{
    LoadCtx *c = opaque;
    BlockDriverState *bs = c->bs;
    g_autofree char *name = g_strndup((const char *)e->raw + BME_HEADER +
                                      e->extra, e->name_len);
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_create(bs, 1u << e->gran_bits,
                                                   name, c->errp);
    if (!bm) {
        error_prepend(c->errp, "Could not load bitmap '%s': ", name);
        c->ret = -EINVAL;
        return false;
    }
    bdrv_dirty_bitmap_set_persistent(bm, true);
    bdrv_dirty_bitmap_set_enabled(bm, e->flags & BME_FLAG_AUTO);
    bdrv_dirty_bitmap_set_readonly(bm, bs->read_only);
    /* Anything we cannot trust or do not understand is kept on disk as
     * it is and offered only for removal. */
    bool usable = !(e->flags & (BME_FLAG_IN_USE | BME_RESERVED_FLAGS)) &&
                  e->type == BME_TYPE_DIRTY_TRACKING &&
                  (!e->extra || (e->flags & BME_FLAG_EXTRA_DATA_COMPATIBLE));
    if (!usable || !load_bits(bs, e, bm)) {
        hbitmap_reset_all(bdrv_dirty_bitmap_hbitmap(bm));
        bdrv_dirty_bitmap_set_inconsistent(bm);
    }
    return true;
}

/* Sets in_use on every entry on disk (once, durable) before anything
 * may change the bitmaps: a crash then brings them back inconsistent
 * rather than silently stale. */
static int coroutine_fn mark_all_in_use(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint8_t *dir = s->bitmap_directory;
    g_autofree uint8_t *before = dir ? g_memdup2(dir, s->bitmap_directory_size)
                                     : NULL;
    bool changed = false;
    uint64_t pos = 0;
    for (uint32_t i = 0; dir && i < s->nb_bitmaps; i++) {
        uint32_t flags = be32_read(dir + pos + 12);
        if (!(flags & BME_FLAG_IN_USE)) {
            be32_write(dir + pos + 12, flags | BME_FLAG_IN_USE);
            changed = true;
        }
        pos += bme_size(be16_read(dir + pos + 18), be32_read(dir + pos + 20));
    }
    if (!changed) {
        return 0;
    }
    int ret = bdrv_co_pwrite(bs->file->bs, s->bitmap_directory_offset,
                             s->bitmap_directory_size, dir, 0);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret < 0) {
        memcpy(dir, before, s->bitmap_directory_size);  /* still on disk */
        error_setg_errno(errp, -ret, "Could not mark bitmaps in use");
    }
    return ret;
}

int coroutine_fn qcow2_bitmaps_open(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (!(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) || !s->nb_bitmaps) {
        return 0;
    }
    uint8_t *dir;
    int ret = read_directory(bs, &dir, errp);
    if (ret < 0) {
        return ret;
    }
    s->bitmap_directory = dir;
    if (!(bs->open_flags & BDRV_O_NO_IO)) {
        LoadCtx c = { .bs = bs, .errp = errp };
        dir_foreach(s, load_one, &c);
        if (c.ret < 0) {
            bdrv_dirty_bitmap_release_all(bs);
            return c.ret;
        }
    }
    if (bs->read_only) {
        return 0;
    }
    ret = mark_all_in_use(bs, errp);
    if (ret < 0) {
        bdrv_dirty_bitmap_release_all(bs);
    }
    return ret;
}

/* ---- writing ---- */

/* Queues the frees of an entry's table and data clusters.  A table that
 * cannot be read or is damaged is left alone: its clusters leak (check
 * repairs leaks) rather than risk freeing what something else uses. */
static void coroutine_fn free_entry_clusters(BlockDriverState *bs,
                                             const Bme *e)
{
    Qcow2State *s = bs->opaque;
    uint64_t *t = NULL;
    if (read_table(bs, e, &t) < 0) {
        return;
    }
    for (uint32_t i = 0; i < e->table_size; i++) {
        uint64_t off = t[i] & BME_TABLE_ENTRY_OFFSET;
        if (off) {
            qcow2_free_deferred(bs, off, s->cluster_size);
        }
    }
    qcow2_free_deferred(bs, e->table_offset,
                        ROUND_UP((uint64_t)e->table_size * 8,
                                 s->cluster_size));
    g_free(t);
}

/* Writes bm's bits and table to new clusters; fills the entry fields. */
static int coroutine_fn write_bitmap(BlockDriverState *bs, HBitmap *hb,
                                     uint64_t *table_offset,
                                     uint32_t *table_size)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t n = MAX(DIV_ROUND_UP(hbitmap_data_size(hb), cs), 1);
    uint64_t tbytes = ROUND_UP(n * 8, cs);
    uint8_t *table = g_malloc0(tbytes);
    uint8_t *buf = bdrv_blockalign(bs->file->bs, cs);
    int ret = 0;
    for (uint64_t i = 0; i < n && ret >= 0; i++) {
        if (hbitmap_is_zero_part(hb, i * cs, cs)) {
            continue;
        }
        int64_t off = qcow2_alloc_clusters(bs, 1);
        if (off < 0) {
            ret = (int)off;
            break;
        }
        hbitmap_serialize_part(hb, buf, i * cs, cs);
        ret = bdrv_co_pwrite(bs->file->bs, off, cs, buf, 0);
        be64_write(table + i * 8, off);
    }
    int64_t toff = ret < 0 ? ret : qcow2_alloc_clusters(bs, tbytes / cs);
    if (toff < 0) {
        ret = (int)toff;
    } else {
        ret = bdrv_co_pwrite(bs->file->bs, toff, tbytes, table, 0);
    }
    bdrv_vfree(buf);
    g_free(table);
    *table_offset = (uint64_t)MAX(toff, 0);
    *table_size = (uint32_t)n;
    return ret;
}

static void dir_append(GByteArray *dir, uint64_t table_offset,
                       uint32_t table_size, uint32_t flags, int gran_bits,
                       const char *name)
{
    size_t len = strlen(name);
    size_t sz = bme_size(len, 0);
    uint8_t *e = g_malloc0(sz);
    be64_write(e, table_offset);
    be32_write(e + 8, table_size);
    be32_write(e + 12, flags);
    e[16] = BME_TYPE_DIRTY_TRACKING;
    e[17] = gran_bits;
    be16_write(e + 18, len);
    memcpy(e + BME_HEADER, name, len);
    g_byte_array_append(dir, e, sz);
    g_free(e);
}

/*
 * Makes dir (n entries) the bitmap directory: writes it to new clusters,
 * makes everything durable, switches the header, then frees the old
 * directory.  The caller frees replaced tables afterwards (never before:
 * the flush here would apply the frees ahead of the switch).
 */
static int coroutine_fn switch_directory(BlockDriverState *bs,
                                         GByteArray *dir, uint32_t n)
{
    Qcow2State *s = bs->opaque;
    uint64_t old_off = s->bitmap_directory_offset;
    uint64_t old_size = s->bitmap_directory_size;
    int64_t off = 0;
    int ret;
    uint64_t dir_size = dir->len;
    if (n) {
        uint64_t bytes = ROUND_UP(dir_size, s->cluster_size);
        off = qcow2_alloc_clusters(bs, bytes / s->cluster_size);
        if (off < 0) {
            return (int)off;
        }
        uint8_t *buf = g_malloc0(bytes);
        memcpy(buf, dir->data, dir_size);
        ret = bdrv_co_pwrite(bs->file->bs, off, bytes, buf, 0);
        g_free(buf);
        if (ret < 0) {
            return ret;
        }
    }
    /* New clusters and their refcounts durable before the header. */
    ret = qcow2_flush_metadata(bs);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret < 0) {
        return ret;
    }
    uint32_t old_n = s->nb_bitmaps;
    uint64_t old_autoclear = s->autoclear_features;
    s->nb_bitmaps = n;
    s->bitmap_directory_offset = n ? off : 0;
    s->bitmap_directory_size = n ? dir_size : 0;
    if (n) {
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    ret = qcow2_update_header(bs);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret < 0) {
        /* The header may or may not be on disk: both are consistent, but
         * memory must not claim either; keep the old one, it still owns
         * its clusters (the new ones leak at worst). */
        s->nb_bitmaps = old_n;
        s->bitmap_directory_offset = old_off;
        s->bitmap_directory_size = old_size;
        s->autoclear_features = old_autoclear;
        return ret;
    }
    g_free(s->bitmap_directory);
    s->bitmap_directory = n ? g_memdup2(dir->data, dir_size) : NULL;
    if (old_off && old_size) {
        qcow2_free_deferred(bs, old_off, ROUND_UP(old_size, s->cluster_size));
    }
    return 0;
}

/* Copies of the entries of the current directory (for after a switch). */
static bool collect_entry(Bme *e, void *opaque)
{
    Bme copy = *e;
    copy.raw = g_memdup2(e->raw, e->raw_len);
    g_array_append_val((GArray *)opaque, copy);
    return true;
}

static GArray *current_entries(Qcow2State *s)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(Bme));
    dir_foreach(s, collect_entry, a);
    return a;
}

static void free_entries(GArray *a)
{
    for (guint i = 0; i < a->len; i++) {
        g_free((void *)g_array_index(a, Bme, i).raw);
    }
    g_array_free(a, TRUE);
}

static const Bme *find_entry(GArray *a, const char *name)
{
    for (guint i = 0; i < a->len; i++) {
        if (bme_name_is(&g_array_index(a, Bme, i), name)) {
            return &g_array_index(a, Bme, i);
        }
    }
    return NULL;
}

static bool stored_here(BdrvDirtyBitmap *bm)
{
    return bdrv_dirty_bitmap_persistent(bm) && !bdrv_dirty_bitmap_hidden(bm) &&
           bdrv_dirty_bitmap_name(bm);
}

/* Appends the entry for bm: the old one verbatim when inconsistent,
 * else freshly written bits.  Returns 1 if an entry was appended. */
static int coroutine_fn store_one(BlockDriverState *bs, BdrvDirtyBitmap *bm,
                                  const Bme *old, GByteArray *dir)
{
    if (bdrv_dirty_bitmap_inconsistent(bm)) {
        if (old) {
            g_byte_array_append(dir, old->raw, old->raw_len);
            return 1;
        }
        return 0;       /* nothing to keep */
    }
    uint64_t toff;
    uint32_t tsize;
    int ret;
    BdrvDirtyBitmap *succ = bdrv_dirty_bitmap_successor(bm);
    if (succ) {
        /* A job holds it: the stored bits must include the writes its
         * successor recorded meanwhile. */
        HBitmap *both = bdrv_dirty_bitmap_copy_bits(bm);
        hbitmap_merge(both, bdrv_dirty_bitmap_hbitmap(succ));
        ret = write_bitmap(bs, both, &toff, &tsize);
        hbitmap_free(both);
    } else {
        ret = write_bitmap(bs, bdrv_dirty_bitmap_hbitmap(bm), &toff, &tsize);
    }
    if (ret < 0) {
        return ret;
    }
    uint32_t flags = bdrv_dirty_bitmap_recording(bm) ? BME_FLAG_AUTO : 0;
    dir_append(dir, toff, tsize, flags,
               __builtin_ctz(bdrv_dirty_bitmap_granularity(bm)),
               bdrv_dirty_bitmap_name(bm));
    return 1;
}

/*
 * Stores every persistent bitmap of bs (clean close).  Order of the new
 * directory: the bitmaps already on disk in their order, then new ones.
 */
static int coroutine_fn store_all(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    GArray *old = current_entries(s);
    GByteArray *dir = g_byte_array_new();
    GPtrArray *order = g_ptr_array_new();
    uint32_t n = 0;
    int ret = 0;
    for (guint i = 0; i < old->len; i++) {
        Bme *e = &g_array_index(old, Bme, i);
        for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL); bm;
             bm = bdrv_dirty_bitmap_next(bs, bm)) {
            if (stored_here(bm) && bme_name_is(e, bdrv_dirty_bitmap_name(bm))) {
                g_ptr_array_add(order, bm);
            }
        }
    }
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL); bm;
         bm = bdrv_dirty_bitmap_next(bs, bm)) {
        if (stored_here(bm) && !find_entry(old, bdrv_dirty_bitmap_name(bm))) {
            g_ptr_array_add(order, bm);
        }
    }
    if (order->len == 0 && old->len == 0) {
        goto out;
    }
    for (guint i = 0; i < order->len && ret >= 0; i++) {
        BdrvDirtyBitmap *bm = g_ptr_array_index(order, i);
        ret = store_one(bs, bm, find_entry(old, bdrv_dirty_bitmap_name(bm)),
                        dir);
        n += ret > 0;
    }
    if (ret >= 0) {
        ret = switch_directory(bs, dir, n);
    }
    if (ret >= 0) {
        /* Every old entry not kept verbatim (inconsistent) is garbage. */
        for (guint i = 0; i < old->len; i++) {
            Bme *e = &g_array_index(old, Bme, i);
            g_autofree char *name = g_strndup((const char *)e->raw +
                                              BME_HEADER + e->extra,
                                              e->name_len);
            BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(bs, name);
            if (!bm || !stored_here(bm) || !bdrv_dirty_bitmap_inconsistent(bm)) {
                free_entry_clusters(bs, e);
            }
        }
        ret = qcow2_flush_metadata(bs);
    }
out:
    g_ptr_array_free(order, TRUE);
    g_byte_array_free(dir, TRUE);
    free_entries(old);
    return ret;
}

void coroutine_fn qcow2_bitmaps_close(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    if (bs->read_only || s->stale || !qcow2_is_v3(s)) {
        return;
    }
    /* A failure leaves the old directory, in_use: the bitmaps come back
     * inconsistent, which is the truth. */
    store_all(bs);
}

static void set_stored_readonly(BlockDriverState *bs, bool readonly)
{
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL); bm;
         bm = bdrv_dirty_bitmap_next(bs, bm)) {
        if (stored_here(bm)) {
            bdrv_dirty_bitmap_set_readonly(bm, readonly);
        }
    }
}

/*
 * Reopening read-only in place (the old top of an external snapshot):
 * what close would store is stored now (in_use clear on disk), and the
 * bitmaps become read-only, so the read-only node never needs to write.
 */
int coroutine_fn qcow2_bitmaps_reopen_ro(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->stale || !qcow2_is_v3(s) || !bdrv_dirty_bitmap_next(bs, NULL)) {
        return 0;
    }
    int ret = store_all(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not store the dirty bitmaps of "
                         "'%s' before making it read-only", bs->node_name);
        return ret;
    }
    set_stored_readonly(bs, true);
    return 0;
}

/* And back (block-commit into a former top): in_use again on disk before
 * the bitmaps may change. */
int coroutine_fn qcow2_bitmaps_reopen_rw(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->stale || !qcow2_is_v3(s)) {
        return 0;
    }
    int ret = mark_all_in_use(bs, errp);
    if (ret >= 0) {
        set_stored_readonly(bs, false);
    }
    return ret;
}

int coroutine_fn qcow2_co_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                                         const char *name,
                                                         GError **errp)
{
    Qcow2State *s = bs->opaque;
    co_mutex_lock(&s->lock);
    GArray *old = current_entries(s);
    const Bme *victim = find_entry(old, name);
    int ret = 0;
    if (victim) {
        GByteArray *dir = g_byte_array_new();
        for (guint i = 0; i < old->len; i++) {
            Bme *e = &g_array_index(old, Bme, i);
            if (e != victim) {
                g_byte_array_append(dir, e->raw, e->raw_len);
            }
        }
        ret = switch_directory(bs, dir, old->len - 1);
        g_byte_array_free(dir, TRUE);
        if (ret >= 0) {
            free_entry_clusters(bs, victim);
            ret = qcow2_flush_metadata(bs);
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to remove bitmap '%s' from "
                             "the image", name);
        }
    }
    free_entries(old);
    co_mutex_unlock(&s->lock);
    return ret;
}

static int check_constraints(BlockDriverState *bs, const char *name,
                             uint32_t granularity, GError **errp)
{
    Qcow2State *s = bs->opaque;
    int bits = __builtin_ctz(granularity);
    uint64_t len = s->size;
    if (bits > BME_MAX_GRANULARITY_BITS) {
        error_setg(errp, "Granularity exceeds maximum (%llu bytes)",
                   1ULL << BME_MAX_GRANULARITY_BITS);
        return -EINVAL;
    }
    if (bits < BME_MIN_GRANULARITY_BITS) {
        error_setg(errp, "Granularity is under minimum (%llu bytes)",
                   1ULL << BME_MIN_GRANULARITY_BITS);
        return -EINVAL;
    }
    if (len > ((uint64_t)BME_MAX_PHYS_SIZE << bits) ||
        len > (((uint64_t)BME_MAX_TABLE_SIZE * s->cluster_size) << bits)) {
        error_setg(errp, "Too much space will be occupied by the bitmap. "
                   "Use larger granularity");
        return -EINVAL;
    }
    if (strlen(name) > BME_MAX_NAME) {
        error_setg(errp, "Name length exceeds maximum (%u characters)",
                   BME_MAX_NAME);
        return -EINVAL;
    }
    return 0;
}

bool qcow2_can_store_new_dirty_bitmap(BlockDriverState *bs, const char *name,
                                      uint32_t granularity, GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint32_t count = 0;
    uint64_t dir_size = 0;
    if (!qcow2_is_v3(s)) {
        error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        goto fail;
    }
    if (check_constraints(bs, name, granularity, errp) < 0) {
        goto fail;
    }
    /* What the directory will hold at close: every persistent bitmap. */
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL); bm;
         bm = bdrv_dirty_bitmap_next(bs, bm)) {
        if (stored_here(bm)) {
            count++;
            dir_size += bme_size(strlen(bdrv_dirty_bitmap_name(bm)), 0);
        }
    }
    if (count >= QCOW2_MAX_BITMAPS) {
        error_setg(errp, "Maximum number of persistent bitmaps is already "
                   "reached");
        goto fail;
    }
    if (dir_size + bme_size(strlen(name), 0) >
        QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        error_setg(errp, "Not enough space in the bitmap directory");
        goto fail;
    }
    return true;
fail:
    error_prepend(errp, "Can't make bitmap '%s' persistent in '%s': ", name,
                  bdrv_get_node_name(bs));
    return false;
}

json_t *qcow2_bitmaps_info(Qcow2State *s)
{
    if (!s->bitmap_directory) {
        return NULL;
    }
    json_t *arr = json_array();
    uint64_t pos = 0;
    const uint8_t *dir = s->bitmap_directory;
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        Bme e;
        bme_parse(dir + pos, &e);
        json_t *b = json_object();
        json_t *fl = json_array();
        if (e.flags & BME_FLAG_IN_USE) {
            json_array_append_new(fl, json_string("in-use"));
        }
        if (e.flags & BME_FLAG_AUTO) {
            json_array_append_new(fl, json_string("auto"));
        }
        json_object_set_new(b, "flags", fl);
        g_autofree char *name = g_strndup((const char *)dir + pos +
                                          BME_HEADER + e.extra, e.name_len);
        json_object_set_new(b, "name", json_string(name));
        json_object_set_new(b, "granularity",
                            json_integer(1ULL << e.gran_bits));
        json_array_append_new(arr, b);
        pos += e.raw_len;
    }
    return arr;
}
