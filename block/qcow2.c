/*
 * qcow2.c - the qcow2 format driver: header and extensions, open/close,
 * create, the read and write paths, discard and write-zeroes, resize,
 * block status, information, and the metadata overlap check.
 *
 * Read path: look up the mapping under s->lock, then read unlocked.
 * Write path: clusters that are allocated and private (OFLAG_COPIED) are
 * overwritten in place; otherwise new clusters are allocated under the
 * lock, the guest range is registered as a Qcow2Alloc, data plus any
 * copy-on-write head/tail is written unlocked, and the L2 entries are
 * switched under the lock.  See qcow2.h for the ordering invariants.
 *
 * Both paths also serve the VM state area past the virtual disk
 * (qcow2-vmstate.c): there, unallocated clusters read as zeroes, never
 * from the backing file, and a resize that moves the area drops it first.
 */
#include "block/qcow2.h"
#include "util/main-loop.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- corruption handling ---- */

void qcow2_signal_corruption(BlockDriverState *bs, const char *fmt, ...)
{
    Qcow2State *s = bs->opaque;
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (!s->corrupt_reported) {
        fprintf(stderr, "qcow2: Marking image as corrupt: %s; further "
                "corruption events will be suppressed\n", msg);
        s->corrupt_reported = true;
    }
    if (!bs->read_only && !(s->incompatible_features &
                            QCOW2_INCOMPAT_CORRUPT)) {
        /* Set the bit on disk so nothing writes to it until repaired. */
        s->incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
        uint8_t buf[8];
        be64_write(buf, s->incompatible_features);
        bdrv_co_pwrite(bs->file->bs, 72, 8, buf, 0);
        bdrv_co_flush(bs->file->bs);
    }
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
                           uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

int qcow2_check_metadata_overlap(BlockDriverState *bs, uint64_t offset,
                                 uint64_t bytes, const char *what)
{
    Qcow2State *s = bs->opaque;
    const char *hit = NULL;
    uint64_t cs = s->cluster_size;
    if (ranges_overlap(offset, bytes, 0, cs)) {
        hit = "qcow2_header";
    } else if (s->l1_size && strcmp(what, "active L1 table") &&
               ranges_overlap(offset, bytes, s->l1_table_offset,
                              ROUND_UP((uint64_t)s->l1_size * 8, cs))) {
        hit = "active L1 table";
    } else if (ranges_overlap(offset, bytes, s->refcount_table_offset,
                              (uint64_t)s->refcount_table_clusters << s->cluster_bits)) {
        hit = "refcount table";
    } else if (s->snapshots_size &&
               ranges_overlap(offset, bytes, s->snapshots_offset,
                              ROUND_UP(s->snapshots_size, cs))) {
        hit = "snapshot table";
    }
    if (!hit && strcmp(what, "L2")) {
        for (uint64_t i = 0; i < s->l1_size && !hit; i++) {
            uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
            if (l2 && ranges_overlap(offset, bytes, l2, cs)) {
                hit = "active L2 table";
            }
        }
    }
    if (!hit && strcmp(what, "refcount block")) {
        uint64_t limit = MIN(s->refcount_table_size,
                             ((offset + bytes) >> (s->refblock_bits +
                                                   s->cluster_bits)) + 1);
        /* Refblocks usually sit inside the range they cover; checking
         * every entry would be O(table); check them all only if small. */
        uint64_t n = s->refcount_table_size <= 4096 ? s->refcount_table_size
                                                    : limit;
        for (uint64_t i = 0; i < n && !hit; i++) {
            uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;
            if (rb && ranges_overlap(offset, bytes, rb, cs)) {
                hit = "refcount block";
            }
        }
    }
    if (hit) {
        qcow2_signal_corruption(bs, "Preventing invalid write on metadata "
                                "(overlaps with %s)", hit);
        return -EIO;
    }
    return 0;
}

/* ---- header ---- */

typedef struct {
    uint8_t type;
    uint8_t bit;
    const char *name;
} FeatureName;

static const FeatureName feature_names[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

static bool put_ext(uint8_t *buf, size_t len, size_t *pos, uint32_t type,
                    const void *data, uint32_t dlen)
{
    size_t need = 8 + ROUND_UP((size_t)dlen, 8);
    if (*pos + need > len) {
        return false;
    }
    be32_write(buf + *pos, type);
    be32_write(buf + *pos + 4, dlen);
    memset(buf + *pos + 8, 0, ROUND_UP((size_t)dlen, 8));
    if (dlen) {
        memcpy(buf + *pos + 8, data, dlen);
    }
    *pos += need;
    return true;
}

/* Bytes the header needs after the feature table: the remaining
 * extensions, the end marker and the backing file name. */
static size_t header_tail_bytes(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    size_t n = 8 + (bs->backing_file ? strlen(bs->backing_file) : 0);
    if (s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) {
        n += 8 + 24;
    }
    for (guint i = 0; s->unknown_exts && i < s->unknown_exts->len; i++) {
        n += 8 + ROUND_UP((size_t)g_array_index(s->unknown_exts,
                                                Qcow2UnknownExt, i).len, 8);
    }
    return n;
}

int qcow2_build_header(BlockDriverState *bs, uint8_t *buf, size_t len)
{
    Qcow2State *s = bs->opaque;
    memset(buf, 0, len);
    uint32_t hlen = qcow2_is_v3(s) ? QCOW2_V3_HEADER_LEN : 72;
    be32_write(buf, QCOW_MAGIC);
    be32_write(buf + 4, s->version);
    be32_write(buf + 20, s->cluster_bits);
    be64_write(buf + 24, s->size);
    be32_write(buf + 32, s->crypt_method);
    be32_write(buf + 36, s->l1_size);
    be64_write(buf + 40, s->l1_table_offset);
    be64_write(buf + 48, s->refcount_table_offset);
    be32_write(buf + 56, s->refcount_table_clusters);
    be32_write(buf + 60, s->nb_snapshots);
    be64_write(buf + 64, s->snapshots_offset);
    if (qcow2_is_v3(s)) {
        be64_write(buf + 72, s->incompatible_features);
        be64_write(buf + 80, s->compatible_features);
        be64_write(buf + 88, s->autoclear_features);
        be32_write(buf + 96, s->refcount_order);
        be32_write(buf + 100, hlen);
        buf[104] = s->compression_type;
    }
    size_t pos = hlen;
    if (bs->backing_format && bs->backing_file) {
        if (!put_ext(buf, len, &pos, QCOW2_EXT_BACKING_FORMAT,
                     bs->backing_format, strlen(bs->backing_format))) {
            return -ENOSPC;
        }
    }
    /* The feature table is optional: with small clusters it gives way
     * to what must be stored (as qemu-img does). */
    if (qcow2_is_v3(s) &&
        pos + 8 + G_N_ELEMENTS(feature_names) * 48 + header_tail_bytes(bs)
        <= len) {
        uint8_t table[G_N_ELEMENTS(feature_names) * 48];
        memset(table, 0, sizeof(table));
        for (size_t i = 0; i < G_N_ELEMENTS(feature_names); i++) {
            table[i * 48] = feature_names[i].type;
            table[i * 48 + 1] = feature_names[i].bit;
            strncpy((char *)table + i * 48 + 2, feature_names[i].name, 46);
        }
        if (!put_ext(buf, len, &pos, QCOW2_EXT_FEATURE_TABLE, table,
                     sizeof(table))) {
            return -ENOSPC;
        }
    }
    if (s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) {
        uint8_t b[24];
        be32_write(b, s->nb_bitmaps);
        be32_write(b + 4, 0);
        be64_write(b + 8, s->bitmap_directory_size);
        be64_write(b + 16, s->bitmap_directory_offset);
        if (!put_ext(buf, len, &pos, QCOW2_EXT_BITMAPS, b, sizeof(b))) {
            return -ENOSPC;
        }
    }
    for (guint i = 0; s->unknown_exts && i < s->unknown_exts->len; i++) {
        Qcow2UnknownExt *e = &g_array_index(s->unknown_exts,
                                            Qcow2UnknownExt, i);
        if (!put_ext(buf, len, &pos, e->type, e->data, e->len)) {
            return -ENOSPC;
        }
    }
    if (!put_ext(buf, len, &pos, QCOW2_EXT_END, NULL, 0)) {
        return -ENOSPC;
    }
    if (bs->backing_file) {
        size_t blen = strlen(bs->backing_file);
        if (pos + blen > len) {
            return -ENOSPC;
        }
        memcpy(buf + pos, bs->backing_file, blen);
        be64_write(buf + 8, pos);
        be32_write(buf + 16, blen);
        pos += blen;
    }
    return (int)pos;
}

int coroutine_fn qcow2_update_header(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    uint8_t *buf = bdrv_blockalign(bs->file->bs, s->cluster_size);
    int ret = qcow2_build_header(bs, buf, s->cluster_size);
    if (ret >= 0) {
        /* Write whole sectors so that O_DIRECT needs no bounce. */
        size_t len = ROUND_UP((size_t)ret, 512);
        len = MIN(len, s->cluster_size);
        ret = bdrv_co_pwrite(bs->file->bs, 0, len, buf, 0);
    }
    bdrv_vfree(buf);
    return ret;
}

static void report_unsupported(GError **errp, const uint8_t *table,
                               uint32_t table_len, uint64_t mask)
{
    GString *msg = g_string_new("Unsupported qcow2 feature(s): ");
    bool first = true;
    for (uint32_t off = 0; table && off + 48 <= table_len; off += 48) {
        if (table[off] == 0 && table[off + 1] < 64 &&
            (mask & (1ULL << table[off + 1]))) {
            char name[47] = { 0 };
            memcpy(name, table + off + 2, 46);
            g_string_append_printf(msg, "%s%s", first ? "" : ", ", name);
            first = false;
            mask &= ~(1ULL << table[off + 1]);
        }
    }
    if (mask) {
        g_string_append_printf(msg, "%sUnknown incompatible feature: %"
                               G_GINT64_MODIFIER "x", first ? "" : ", ",
                               mask);
    }
    error_setg(errp, "%s", msg->str);
    g_string_free(msg, TRUE);
}

/* Parses header extensions in buf[start, end). */
static int parse_extensions(BlockDriverState *bs, const uint8_t *buf,
                            uint64_t start, uint64_t end,
                            const uint8_t **feature_table,
                            uint32_t *feature_table_len, GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t pos = start;
    while (pos + 8 <= end) {
        uint32_t type = be32_read(buf + pos);
        uint32_t len = be32_read(buf + pos + 4);
        pos += 8;
        if (type == QCOW2_EXT_END) {
            return 0;
        }
        if (len > end - pos) {
            error_setg(errp, "Header extension %#x: invalid extension length",
                       type);
            return -EINVAL;
        }
        const uint8_t *data = buf + pos;
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (len > 1023 || len == 0) {
                error_setg(errp, "ERROR: ext_backing_format: len=%u too large",
                           len);
                return -EINVAL;
            }
            g_free(bs->backing_format);
            bs->backing_format = g_strndup((const char *)data, len);
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            *feature_table = data;
            *feature_table_len = len;
            s->has_feature_table = true;
            break;
        case QCOW2_EXT_BITMAPS:
            if (len != 24) {
                error_setg(errp, "bitmaps_ext: Invalid extension length");
                return -EINVAL;
            }
            if (s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) {
                s->nb_bitmaps = be32_read(data);
                s->bitmap_directory_size = be64_read(data + 8);
                s->bitmap_directory_offset = be64_read(data + 16);
                if (s->nb_bitmaps > 65535 ||
                    !IS_ALIGNED(s->bitmap_directory_offset, s->cluster_size) ||
                    s->bitmap_directory_size > (64ULL << 20)) {
                    error_setg(errp, "bitmaps_ext: invalid bitmap directory");
                    return -EINVAL;
                }
            }
            break;
        default: {
            Qcow2UnknownExt e = { type, len, g_memdup2(data, len) };
            g_array_append_val(s->unknown_exts, e);
            break;
        }
        }
        pos += ROUND_UP((uint64_t)len, 8);
    }
    return 0;
}

static int coroutine_fn qcow2_read_header(BlockDriverState *bs, int flags,
                                          GError **errp)
{
    Qcow2State *s = bs->opaque;
    int64_t file_len = bdrv_getlength(bs->file->bs);
    uint8_t first[512];
    int ret;

    if (file_len < 72) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    ret = bdrv_co_pread(bs->file->bs, 0, sizeof(first), first, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    if (be32_read(first) != QCOW_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    s->version = be32_read(first + 4);
    if (s->version < 2 || s->version > 3) {
        error_setg(errp, "Unsupported qcow2 version %u", s->version);
        return -ENOTSUP;
    }
    s->cluster_bits = be32_read(first + 20);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        s->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%u", s->cluster_bits);
        return -EINVAL;
    }
    s->cluster_size = 1ULL << s->cluster_bits;
    s->l2_bits = s->cluster_bits - 3;
    s->l2_size = 1ULL << s->l2_bits;

    /* Read the whole first cluster: extensions and backing name live there. */
    uint8_t *buf = g_malloc0(s->cluster_size);
    ret = bdrv_co_pread(bs->file->bs, 0, s->cluster_size, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        goto out;
    }
    uint64_t backing_off = be64_read(buf + 8);
    uint32_t backing_len = be32_read(buf + 16);
    s->size = be64_read(buf + 24);
    s->crypt_method = be32_read(buf + 32);
    s->l1_size = be32_read(buf + 36);
    s->l1_table_offset = be64_read(buf + 40);
    s->refcount_table_offset = be64_read(buf + 48);
    s->refcount_table_clusters = be32_read(buf + 56);
    s->nb_snapshots = be32_read(buf + 60);
    s->snapshots_offset = be64_read(buf + 64);
    if (s->version >= 3) {
        s->incompatible_features = be64_read(buf + 72);
        s->compatible_features = be64_read(buf + 80);
        s->autoclear_features = be64_read(buf + 88);
        s->refcount_order = be32_read(buf + 96);
        s->header_length = be32_read(buf + 100);
        if (s->header_length < 104 || s->header_length > s->cluster_size ||
            s->header_length % 8) {
            error_setg(errp, "qcow2 header length %u is invalid",
                       s->header_length);
            ret = -EINVAL;
            goto out;
        }
        if (s->header_length > 104) {
            s->compression_type = buf[104];
        }
    } else {
        s->refcount_order = 4;
        s->header_length = 72;
    }

    const uint8_t *ftable = NULL;
    uint32_t ftable_len = 0;
    uint64_t ext_end = backing_off && backing_off < s->cluster_size
                       ? backing_off : s->cluster_size;
    ret = parse_extensions(bs, buf, s->header_length, ext_end, &ftable,
                           &ftable_len, errp);
    if (ret < 0) {
        goto out;
    }
    uint64_t unknown = s->incompatible_features & ~QCOW2_INCOMPAT_SUPPORTED;
    if (unknown) {
        report_unsupported(errp, ftable, ftable_len, unknown);
        ret = -ENOTSUP;
        goto out;
    }
    if (s->crypt_method) {
        error_setg(errp, "Encrypted qcow2 images are not supported");
        ret = -ENOTSUP;
        goto out;
    }
    if (s->compression_type > QCOW2_COMPRESSION_ZSTD) {
        error_setg(errp, "Unknown compression type '%u'", s->compression_type);
        ret = -ENOTSUP;
        goto out;
    }
    if (s->compression_type != QCOW2_COMPRESSION_ZLIB &&
        !(s->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "Compression type incompatible feature bit must be "
                   "set for compression type %u", s->compression_type);
        ret = -EINVAL;
        goto out;
    }
    if (s->refcount_order > 6) {
        error_setg(errp, "Reference count entry width too large; may not "
                   "exceed 64 bits");
        ret = -EINVAL;
        goto out;
    }
    s->refcount_bits = 1u << s->refcount_order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                      : (1ULL << s->refcount_bits) - 1;
    s->refblock_bits = s->cluster_bits + 3 - s->refcount_order;
    s->refblock_size = 1ULL << s->refblock_bits;

    if (backing_off) {
        if (backing_len > QCOW2_MAX_BACKING_NAME) {
            error_setg(errp, "Backing file name too long");
            ret = -EINVAL;
            goto out;
        }
        if (backing_off > s->cluster_size ||
            backing_len > s->cluster_size - backing_off) {
            error_setg(errp, "Invalid backing file offset");
            ret = -EINVAL;
            goto out;
        }
        if (backing_len) {
            bs->backing_file = g_strndup((const char *)buf + backing_off,
                                         backing_len);
        }
    }
    if (!bs->backing_file) {
        g_clear_pointer(&bs->backing_format, g_free);
    }
    if (s->size > (1ULL << 62)) {
        error_setg(errp, "Image size is too large");
        ret = -EFBIG;
        goto out;
    }
    if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_SIZE) {
        error_setg(errp, "Active L1 table too large");
        ret = -EFBIG;
        goto out;
    }
    if (s->l1_size < qcow2_l1_size_for(s->size, s->cluster_bits)) {
        error_setg(errp, "L1 table is too small");
        ret = -EINVAL;
        goto out;
    }
    if (s->l1_size && (!IS_ALIGNED(s->l1_table_offset, s->cluster_size) ||
                       s->l1_table_offset == 0)) {
        error_setg(errp, "Invalid L1 table offset");
        ret = -EINVAL;
        goto out;
    }
    /* Opened for check, a bad snapshot table is reported and repaired
     * by check instead of refusing the image. */
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        if (flags & BDRV_O_CHECK) {
            s->nb_snapshots = QCOW2_MAX_SNAPSHOTS;
            s->snapshot_table_broken = true;
        } else {
            error_setg(errp, "Too many snapshots");
            ret = -EINVAL;
            goto out;
        }
    }
    /* An offset past INT64_MAX cannot address anything, even for an empty
     * table; qemu-img refuses it and repairs it as an unaligned one. */
    if ((s->nb_snapshots || (flags & BDRV_O_CHECK)) &&
        (!IS_ALIGNED(s->snapshots_offset, s->cluster_size) ||
         s->snapshots_offset > INT64_MAX)) {
        if (flags & BDRV_O_CHECK) {
            s->nb_snapshots = 0;
            s->snapshots_offset = 0;
            s->snapshot_table_broken = true;
        } else {
            error_setg(errp, "Invalid snapshot table offset");
            ret = -EINVAL;
            goto out;
        }
    }
    ret = 0;
out:
    g_free(buf);
    return ret;
}

static int coroutine_fn qcow2_read_l1(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    s->l1_alloc = MAX(s->l1_size, 1);
    s->l1_table = g_new0(uint64_t, s->l1_alloc);
    if (!s->l1_size) {
        return 0;
    }
    int ret = bdrv_co_pread(bs->file->bs, s->l1_table_offset,
                            (uint64_t)s->l1_size * 8, s->l1_table, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read L1 table");
        return ret;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = be64_read(&s->l1_table[i]);
    }
    return 0;
}

static uint64_t cache_opt(BlockOpts *opts, const char *key, uint64_t def,
                          GError **errp)
{
    g_autofree char *v = bopts_take(opts, key);
    uint64_t n;
    if (!v) {
        return def;
    }
    if (!parse_size(v, 1, &n)) {
        error_setg(errp, "Parameter '%s' expects a size", key);
        return def;
    }
    return n;
}

static void qcow2_free_state(Qcow2State *s)
{
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->refblock_cache);
    s->l2_cache = s->refblock_cache = NULL;
    g_clear_pointer(&s->l1_table, g_free);
    g_clear_pointer(&s->refcount_table, g_free);
    if (s->l1_dirty) {
        g_hash_table_destroy(s->l1_dirty);
        s->l1_dirty = NULL;
    }
    if (s->pending_frees) {
        g_array_free(s->pending_frees, TRUE);
        s->pending_frees = NULL;
    }
    if (s->pending_free_clusters) {
        g_hash_table_destroy(s->pending_free_clusters);
        s->pending_free_clusters = NULL;
    }
    if (s->unknown_exts) {
        for (guint i = 0; i < s->unknown_exts->len; i++) {
            g_free(g_array_index(s->unknown_exts, Qcow2UnknownExt, i).data);
        }
        g_array_free(s->unknown_exts, TRUE);
        s->unknown_exts = NULL;
    }
    qcow2_free_snapshots(s);
    g_clear_pointer(&s->cbuf, bdrv_vfree);
    g_clear_pointer(&s->bitmap_directory, g_free);
}

static int coroutine_fn qcow2_open(BlockDriverState *bs, BlockOpts *opts,
                                   int flags, GError **errp)
{
    Qcow2State *s = bs->opaque;
    GError *err = NULL;
    int ret;

    co_mutex_init(&s->lock);
    co_queue_init(&s->vmstate_readers_done);
    s->unknown_exts = g_array_new(FALSE, TRUE, sizeof(Qcow2UnknownExt));
    s->l1_dirty = g_hash_table_new(g_direct_hash, g_direct_equal);
    uint64_t cache_size = cache_opt(opts, "cache-size", 0, &err);
    uint64_t l2_cache_bytes = cache_opt(opts, "l2-cache-size", 0, &err);
    uint64_t rc_cache_bytes = cache_opt(opts, "refcount-cache-size", 0, &err);
    g_free(bopts_take(opts, "l2-cache-entry-size"));
    g_free(bopts_take(opts, "lazy-refcounts"));
    g_free(bopts_take(opts, "pass-discard-request"));
    g_free(bopts_take(opts, "pass-discard-snapshot"));
    g_free(bopts_take(opts, "pass-discard-other"));
    g_free(bopts_take(opts, "overlap-check"));
    g_free(bopts_take(opts, "cache-clean-interval"));
    if (err) {
        g_propagate_error(errp, err);
        ret = -EINVAL;
        goto fail;
    }

    ret = qcow2_read_header(bs, flags, errp);
    if (ret < 0) {
        goto fail;
    }
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) &&
        !bs->read_only && !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened "
                   "read/write");
        ret = -EACCES;
        goto fail;
    }
    ret = qcow2_read_l1(bs, errp);
    if (ret < 0) {
        goto fail;
    }
    ret = qcow2_refcount_init(bs, errp);
    if (ret < 0) {
        goto fail;
    }

    /* Cache sizes: by default enough L2 tables to map the whole disk
     * (bounded), refcount blocks a quarter of that. */
    uint64_t cs = s->cluster_size;
    uint64_t l2_default = MAX(s->l1_size, 16) * cs;
    if (cache_size && !l2_cache_bytes) {
        l2_cache_bytes = cache_size * 3 / 4;
        rc_cache_bytes = rc_cache_bytes ? rc_cache_bytes : cache_size / 4;
    }
    if (!l2_cache_bytes) {
        l2_cache_bytes = MIN(l2_default, 32ULL << 20);
    }
    if (!rc_cache_bytes) {
        rc_cache_bytes = MAX(l2_cache_bytes / 4, 4 * cs);
    }
    int l2_entries = (int)MIN(MAX(l2_cache_bytes / cs, 4), 8192);
    int rc_entries = (int)MIN(MAX(rc_cache_bytes / cs, 4), 2048);
    s->l2_cache = qcow2_cache_new(bs, l2_entries, true);
    s->refblock_cache = qcow2_cache_new(bs, rc_entries, false);
    s->cbuf_desc = UINT64_MAX;

    ret = qcow2_read_snapshots(bs, errp);
    if (ret < 0) {
        goto fail;
    }
    int64_t file_len = bdrv_getlength(bs->file->bs);
    s->zero_beyond = ROUND_UP((uint64_t)MAX(file_len, 0), cs);
    s->free_cluster_index = 1;

    if (!bs->read_only) {
        uint64_t unknown_autoclear = s->autoclear_features &
                                     ~QCOW2_AUTOCLEAR_KNOWN;
        if (unknown_autoclear) {
            s->autoclear_features &= ~unknown_autoclear;
            ret = qcow2_update_header(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update qcow2 header");
                goto fail;
            }
        }
        if ((s->incompatible_features & QCOW2_INCOMPAT_DIRTY) &&
            !(flags & BDRV_O_CHECK)) {
            BdrvCheckResult res = { .log = g_string_new(NULL) };
            ret = qcow2_co_check(bs, &res, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
            g_string_free(res.log, TRUE);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not repair dirty image");
                goto fail;
            }
            s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
            ret = qcow2_update_header(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update qcow2 header");
                goto fail;
            }
        }
    }
    if (!(flags & BDRV_O_CHECK)) {
        ret = qcow2_bitmaps_open(bs, errp);
        if (ret < 0) {
            goto fail;
        }
    }
    bs->request_alignment = 1;
    ret = bdrv_open_backing(bs, opts, errp);
    if (ret < 0) {
        goto fail;
    }
    return 0;

fail:
    qcow2_free_state(s);
    return ret;
}

static int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    if (bs->read_only) {
        return 0;
    }
    co_mutex_lock(&s->lock);
    int ret = qcow2_flush_metadata(bs);
    co_mutex_unlock(&s->lock);
    return ret;
}

static void coroutine_fn qcow2_close(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    if (!bs->read_only && s->l2_cache) {
        co_mutex_lock(&s->lock);
        qcow2_bitmaps_close(bs);
        int ret = qcow2_flush_metadata(bs);
        co_mutex_unlock(&s->lock);
        if (ret >= 0) {
            qcow2_file_sync(bs);
        }
    }
    qcow2_free_state(s);
}

/* ---- read path ---- */

static int coroutine_fn read_backing(BlockDriverState *bs, uint64_t offset,
                                     uint64_t bytes, IOVector *qiov)
{
    if (!bs->backing) {
        iovec_memset(qiov, 0, 0, bytes);
        return 0;
    }
    int64_t blen = bdrv_getlength(bs->backing->bs);
    if (blen < 0) {
        return (int)blen;
    }
    uint64_t n = offset < (uint64_t)blen ? MIN(bytes, blen - offset) : 0;
    if (n < bytes) {
        iovec_memset(qiov, n, 0, bytes - n);
    }
    if (n == 0) {
        return 0;
    }
    if (n == bytes) {
        return bdrv_co_preadv(bs->backing->bs, offset, n, qiov, 0);
    }
    IOVector sub;
    iovec_init(&sub, qiov->niov);
    iovec_concat(&sub, qiov, 0, n);
    int ret = bdrv_co_preadv(bs->backing->bs, offset, n, &sub, 0);
    iovec_destroy(&sub);
    return ret;
}

static int coroutine_fn read_compressed(BlockDriverState *bs, uint64_t offset,
                                        uint64_t bytes, uint64_t l2e,
                                        IOVector *qiov, size_t qoff)
{
    Qcow2State *s = bs->opaque;
    co_mutex_lock(&s->lock);
    int ret = 0;
    if (!s->cbuf) {
        s->cbuf = bdrv_blockalign(bs->file->bs, s->cluster_size);
    }
    if (s->cbuf_desc != l2e) {
        s->cbuf_desc = UINT64_MAX;
        ret = qcow2_decompress_cluster(bs, l2e, s->cbuf);
        if (ret >= 0) {
            s->cbuf_desc = l2e;
            s->decompress_ops++;
        }
    }
    if (ret >= 0) {
        iovec_from_buf(qiov, qoff,
                       s->cbuf + qcow2_offset_into_cluster(s, offset), bytes);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_read_mapped(BlockDriverState *bs, const uint64_t *l1,
                                   uint32_t l1_size, uint64_t zero_from,
                                   uint64_t offset, uint64_t bytes,
                                   IOVector *qiov, size_t qoff)
{
    Qcow2State *s = bs->opaque;
    while (bytes > 0) {
        uint64_t n, host, l2e;
        Qcow2ClusterType type;
        co_mutex_lock(&s->lock);
        int ret = qcow2_get_host_offset_in(bs, l1, l1_size, offset, bytes, &n,
                                           &host, &type, &l2e);
        co_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        IOVector sub, *q = qiov;
        bool whole = qoff == 0 && n == qiov->size;
        if (!whole && type != QCOW2_CLUSTER_ZERO_PLAIN &&
            type != QCOW2_CLUSTER_ZERO_ALLOC &&
            type != QCOW2_CLUSTER_COMPRESSED) {
            iovec_init(&sub, qiov->niov);
            iovec_concat(&sub, qiov, qoff, n);
            q = &sub;
        }
        switch (type) {
        case QCOW2_CLUSTER_UNALLOCATED:
            /* zero_from is 0 or L1-aligned and n stays within one L2
             * table: the run lies wholly on one side of it. */
            if (offset >= zero_from) {
                iovec_memset(qiov, qoff, 0, n);
            } else {
                ret = read_backing(bs, offset, n, q);
            }
            break;
        case QCOW2_CLUSTER_ZERO_PLAIN:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            iovec_memset(qiov, qoff, 0, n);
            break;
        case QCOW2_CLUSTER_COMPRESSED:
            ret = read_compressed(bs, offset, n, l2e, qiov, qoff);
            break;
        case QCOW2_CLUSTER_NORMAL:
            ret = bdrv_co_preadv(bs->file->bs, host, n, q, 0);
            break;
        }
        if (q != qiov) {
            iovec_destroy(&sub);
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        qoff += n;
    }
    return 0;
}

/* Reads guest [offset, +bytes) of the active layer into qiov at qoff,
 * whatever the mapping.  The VM state area never reads through to the
 * backing file: what was not written there reads as zeroes. */
static int coroutine_fn qcow2_read_range(BlockDriverState *bs,
                                         uint64_t offset, uint64_t bytes,
                                         IOVector *qiov, size_t qoff)
{
    Qcow2State *s = bs->opaque;
    return qcow2_read_mapped(bs, NULL, 0, qcow2_vm_state_offset(s), offset,
                             bytes, qiov, qoff);
}

static int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags)
{
    Qcow2State *s = bs->opaque;
    if (s->stale) {
        return -EIO;
    }
    if ((uint64_t)offset + bytes > s->size) {
        /* Beyond the virtual size reads as zeroes (generic callers check). */
        uint64_t valid = (uint64_t)offset < s->size ? s->size - offset : 0;
        iovec_memset(qiov, valid, 0, bytes - valid);
        bytes = valid;
        if (!bytes) {
            return 0;
        }
    }
    return qcow2_read_range(bs, offset, bytes, qiov, 0);
}

/* ---- write path ---- */

static Qcow2Alloc *find_overlapping_alloc(Qcow2State *s, uint64_t first,
                                          uint64_t n)
{
    for (GList *l = s->allocs; l; l = l->next) {
        Qcow2Alloc *a = l->data;
        if (first < a->guest_start + a->nb_clusters &&
            a->guest_start < first + n) {
            return a;
        }
    }
    return NULL;
}

/* Waits (dropping s->lock) until no allocation overlaps the range. */
static void coroutine_fn wait_for_allocs(Qcow2State *s, uint64_t offset,
                                         uint64_t bytes)
{
    uint64_t first = offset >> s->cluster_bits;
    uint64_t n = ((offset + bytes - 1) >> s->cluster_bits) - first + 1;
    Qcow2Alloc *a;
    while ((a = find_overlapping_alloc(s, first, n))) {
        co_queue_wait(&a->waiters, &s->lock);
    }
}

/* Fills buf with the current contents of guest [offset, +len) inside one
 * cluster run of the given old mapping (for copy-on-write). */
static int coroutine_fn read_old_contents(BlockDriverState *bs,
                                          uint64_t offset, uint64_t len,
                                          uint8_t *buf)
{
    IOVector q;
    iovec_init_buf(&q, buf, len);
    return qcow2_read_range(bs, offset, len, &q, 0);
}

static bool old_reads_zero(BlockDriverState *bs, Qcow2ClusterType type,
                           uint64_t offset)
{
    Qcow2State *s = bs->opaque;
    return type == QCOW2_CLUSTER_ZERO_PLAIN ||
           type == QCOW2_CLUSTER_ZERO_ALLOC ||
           (type == QCOW2_CLUSTER_UNALLOCATED &&
            (!bs->backing || offset >= qcow2_vm_state_offset(s)));
}

/*
 * Allocating write of guest [offset, +n) (one run of clusters sharing
 * their old mapping).  Called with s->lock held; returns with it held.
 */
static int coroutine_fn write_allocating(BlockDriverState *bs,
                                         uint64_t offset, uint64_t n,
                                         IOVector *qiov, size_t qoff,
                                         Qcow2ClusterType old_type)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t cstart = qcow2_start_of_cluster(s, offset);
    uint64_t nb = DIV_ROUND_UP(offset + n - cstart, cs);
    uint64_t head = offset - cstart;
    uint64_t tail = nb * cs - head - n;
    uint64_t *l2;
    int ret;

    /* Make the L2 table private first so that the switch cannot fail
     * for lack of a table. */
    ret = qcow2_get_l2_for_write(bs, offset, &l2);
    if (ret < 0) {
        return ret;
    }
    qcow2_cache_put(s->l2_cache, (void **)&l2);

    /* Clusters at or beyond zero_beyond were never written (allocating
     * raises it), so they need no zero copy-on-write. */
    uint64_t zero_beyond = s->zero_beyond;
    int64_t host = qcow2_alloc_clusters(bs, nb);
    if (host < 0) {
        return (int)host;
    }
    bool fresh = (uint64_t)host >= zero_beyond;
    ret = qcow2_check_metadata_overlap(bs, host, nb * cs, "data");
    if (ret < 0) {
        return ret;
    }

    Qcow2Alloc alloc = { .guest_start = cstart >> s->cluster_bits,
                         .nb_clusters = nb };
    co_queue_init(&alloc.waiters);
    s->allocs = g_list_prepend(s->allocs, &alloc);
    co_mutex_unlock(&s->lock);

    /* Data plus copy-on-write head and tail, in one vectored write. */
    bool zero_cow = old_reads_zero(bs, old_type, cstart);
    uint8_t *head_buf = NULL, *tail_buf = NULL;
    IOVector wq;
    iovec_init(&wq, qiov->niov + 2);
    uint64_t write_off = host;
    ret = 0;
    if (head && !(zero_cow && fresh)) {
        head_buf = bdrv_blockalign(bs->file->bs, head);
        ret = zero_cow ? (memset(head_buf, 0, head), 0)
                       : read_old_contents(bs, cstart, head, head_buf);
        iovec_add(&wq, head_buf, head);
    } else {
        write_off += head;
    }
    iovec_concat(&wq, qiov, qoff, n);
    if (tail && !(zero_cow && fresh) && ret >= 0) {
        tail_buf = bdrv_blockalign(bs->file->bs, tail);
        ret = zero_cow ? (memset(tail_buf, 0, tail), 0)
                       : read_old_contents(bs, offset + n, tail, tail_buf);
        iovec_add(&wq, tail_buf, tail);
    }
    if (ret >= 0) {
        ret = bdrv_co_pwritev(bs->file->bs, write_off, wq.size, &wq, 0);
    }
    iovec_destroy(&wq);
    bdrv_vfree(head_buf);
    bdrv_vfree(tail_buf);

    co_mutex_lock(&s->lock);
    if (ret >= 0) {
        ret = qcow2_get_l2_for_write(bs, offset, &l2);
    }
    if (ret >= 0) {
        uint64_t l2i = qcow2_l2_index(s, offset);
        for (uint64_t i = 0; i < nb; i++) {
            uint64_t old = be64_read(&l2[l2i + i]);
            be64_write(&l2[l2i + i], (host + (i << s->cluster_bits)) |
                       QCOW_OFLAG_COPIED);
            Qcow2ClusterType t = qcow2_cluster_type(s, old);
            if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
                qcow2_free_deferred(bs, old & L2E_OFFSET_MASK, cs);
            } else if (t == QCOW2_CLUSTER_COMPRESSED) {
                uint64_t ch, cb;
                qcow2_compressed_range(s, old, &ch, &cb);
                qcow2_free_deferred(bs, ch & ~511ULL, (ch & 511) + cb);
            }
        }
        qcow2_cache_mark_dirty(s->l2_cache, l2);
        qcow2_cache_put(s->l2_cache, (void **)&l2);
        s->metadata_dirty = true;
    } else {
        /* The clusters were never referenced: give them back. */
        qcow2_free_deferred(bs, host, nb * cs);
    }
    s->allocs = g_list_remove(s->allocs, &alloc);
    co_queue_restart_all(&alloc.waiters);
    return ret;
}

#define QCOW2_MAX_PENDING_FREES 4096

static int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes, IOVector *qiov,
                                         BdrvRequestFlags flags);

static int coroutine_fn write_compressed(BlockDriverState *bs,
                                         uint64_t offset, uint64_t bytes,
                                         IOVector *qiov);

static int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes, IOVector *qiov,
                                         BdrvRequestFlags flags)
{
    Qcow2State *s = bs->opaque;
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) || s->stale) {
        return -EIO;
    }
    if ((uint64_t)offset + bytes > s->size) {
        return -EIO;
    }
    if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        return write_compressed(bs, offset, bytes, qiov);
    }
    return qcow2_write_range(bs, offset, bytes, qiov);
}

int coroutine_fn qcow2_write_range(BlockDriverState *bs, uint64_t offset,
                                   uint64_t bytes, IOVector *qiov)
{
    Qcow2State *s = bs->opaque;
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) || s->stale) {
        return -EIO;
    }
    size_t qoff = 0;
    int ret = 0;
    co_mutex_lock(&s->lock);
    while (bytes > 0) {
        uint64_t n, host, l2e;
        Qcow2ClusterType type;
        wait_for_allocs(s, offset, bytes);
        ret = qcow2_get_host_offset(bs, offset, bytes, &n, &host, &type, &l2e);
        if (ret < 0) {
            break;
        }
        if (type == QCOW2_CLUSTER_NORMAL && (l2e & QCOW_OFLAG_COPIED)) {
            ret = qcow2_check_metadata_overlap(bs, host, n, "data");
            if (ret < 0) {
                break;
            }
            co_mutex_unlock(&s->lock);
            IOVector sub, *q = qiov;
            if (qoff != 0 || n != qiov->size) {
                iovec_init(&sub, qiov->niov);
                iovec_concat(&sub, qiov, qoff, n);
                q = &sub;
            }
            ret = bdrv_co_pwritev(bs->file->bs, host, n, q, 0);
            if (q != qiov) {
                iovec_destroy(&sub);
            }
            co_mutex_lock(&s->lock);
        } else {
            ret = write_allocating(bs, offset, n, qiov, qoff, type);
        }
        if (ret < 0) {
            break;
        }
        offset += n;
        bytes -= n;
        qoff += n;
    }
    /* (Not while a snapshot waits for its late VM state: there a flush
     * is a checkpoint, a whole switch, and the frees wait in memory.) */
    if (ret >= 0 && s->pending_frees->len > QCOW2_MAX_PENDING_FREES &&
        !qcow2_late_vmstate_pending(s)) {
        ret = qcow2_flush_metadata(bs);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn write_compressed(BlockDriverState *bs,
                                         uint64_t offset, uint64_t bytes,
                                         IOVector *qiov)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    if (!qcow2_is_v3(s) && s->compression_type) {
        return -ENOTSUP;
    }
    /* Whole clusters only, except a final partial one at the disk end. */
    if (!IS_ALIGNED(offset, cs) ||
        (!IS_ALIGNED(bytes, cs) && offset + bytes != s->size)) {
        return -EINVAL;
    }
    uint8_t *src = g_malloc(cs);
    uint8_t *dst = g_malloc(cs);
    int ret = 0;
    for (uint64_t done = 0; done < bytes && ret >= 0; done += cs) {
        uint64_t len = MIN(cs, bytes - done);
        memset(src, 0, cs);
        iovec_to_buf(qiov, done, src, len);
        ssize_t clen = qcow2_compress(s, dst, cs - 1, src, cs);
        if (clen < 0 || (uint64_t)clen >= cs - 512) {
            /* Incompressible: store it normally. */
            IOVector q;
            iovec_init_buf(&q, src, len);
            ret = qcow2_co_pwritev(bs, offset + done, len, &q, 0);
            continue;
        }
        co_mutex_lock(&s->lock);
        wait_for_allocs(s, offset + done, cs);
        uint64_t *l2;
        ret = qcow2_get_l2_for_write(bs, offset + done, &l2);
        if (ret < 0) {
            co_mutex_unlock(&s->lock);
            break;
        }
        qcow2_cache_put(s->l2_cache, (void **)&l2);
        int64_t host = qcow2_alloc_bytes(bs, clen);
        if (host < 0) {
            ret = (int)host;
            co_mutex_unlock(&s->lock);
            break;
        }
        if (s->zero_beyond < ROUND_UP(host + clen, cs)) {
            s->zero_beyond = ROUND_UP(host + clen, cs);
        }
        ret = qcow2_check_metadata_overlap(bs, host, clen, "data");
        if (ret >= 0) {
            ret = bdrv_co_pwrite(bs->file->bs, host, clen, dst, 0);
        }
        if (ret >= 0) {
            ret = qcow2_get_l2_for_write(bs, offset + done, &l2);
        }
        if (ret >= 0) {
            uint32_t x = 62 - (s->cluster_bits - 8);
            uint64_t nb_sectors = ((host + clen - 1) >> 9) - (host >> 9);
            uint64_t desc = QCOW_OFLAG_COMPRESSED | (uint64_t)host |
                            (nb_sectors << x);
            uint64_t l2i = qcow2_l2_index(s, offset + done);
            uint64_t old = be64_read(&l2[l2i]);
            be64_write(&l2[l2i], desc);
            Qcow2ClusterType t = qcow2_cluster_type(s, old);
            if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
                qcow2_free_deferred(bs, old & L2E_OFFSET_MASK, cs);
            } else if (t == QCOW2_CLUSTER_COMPRESSED) {
                uint64_t ch, cb;
                qcow2_compressed_range(s, old, &ch, &cb);
                qcow2_free_deferred(bs, ch & ~511ULL, (ch & 511) + cb);
            }
            qcow2_cache_mark_dirty(s->l2_cache, l2);
            qcow2_cache_put(s->l2_cache, (void **)&l2);
            s->cbuf_desc = UINT64_MAX;
        } else {
            qcow2_free_deferred(bs, host, clen);
        }
        co_mutex_unlock(&s->lock);
    }
    g_free(src);
    g_free(dst);
    return ret;
}

static int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               BdrvRequestFlags flags)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) || s->stale) {
        return -EIO;
    }
    /* Zero flags need v3 and whole clusters (a partial last cluster at
     * the disk end counts as whole). */
    uint64_t end = offset + bytes;
    if (!qcow2_is_v3(s) || !IS_ALIGNED((uint64_t)offset, cs) ||
        (!IS_ALIGNED(end, cs) && end != s->size)) {
        return -ENOTSUP;
    }
    co_mutex_lock(&s->lock);
    wait_for_allocs(s, offset, bytes);
    int ret = qcow2_zero_or_discard(bs, offset, DIV_ROUND_UP(bytes, cs),
                                    false, false);
    co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) || s->stale) {
        return -EIO;
    }
    /* Only whole clusters can be discarded; shrink to them. */
    uint64_t start = ROUND_UP((uint64_t)offset, cs);
    uint64_t end = (uint64_t)(offset + bytes) == s->size
                   ? ROUND_UP(s->size, cs)
                   : ROUND_DOWN((uint64_t)(offset + bytes), cs);
    if (end <= start) {
        return 0;
    }
    co_mutex_lock(&s->lock);
    wait_for_allocs(s, start, end - start);
    int ret = qcow2_zero_or_discard(bs, start, (end - start) >> s->cluster_bits,
                                    true, false);
    co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_make_empty(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    if (s->stale) {
        return -EIO;
    }
    co_mutex_lock(&s->lock);
    wait_for_allocs(s, 0, MAX(s->size, 1));
    int ret = qcow2_zero_or_discard(bs, 0, qcow2_size_to_clusters(s, s->size),
                                    true, true);
    co_mutex_unlock(&s->lock);
    return ret;
}

/* ---- status, size, info ---- */

static int coroutine_fn qcow2_co_block_status(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              int64_t *pnum, int64_t *map,
                                              BlockDriverState **file)
{
    Qcow2State *s = bs->opaque;
    uint64_t n, host, l2e;
    Qcow2ClusterType type;
    if (s->stale) {
        return -EIO;
    }
    co_mutex_lock(&s->lock);
    int ret = qcow2_get_host_offset(bs, offset, bytes, &n, &host, &type,
                                    &l2e);
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = n;
    *map = 0;
    *file = NULL;
    switch (type) {
    case QCOW2_CLUSTER_UNALLOCATED:
        return bs->backing ? 0 : BDRV_BLOCK_ZERO;
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
    case QCOW2_CLUSTER_ZERO_ALLOC:
        *map = (l2e & L2E_OFFSET_MASK) + qcow2_offset_into_cluster(s, offset);
        *file = bs->file->bs;
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED |
               BDRV_BLOCK_OFFSET_VALID;
    case QCOW2_CLUSTER_COMPRESSED:
        return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_COMPRESSED;
    case QCOW2_CLUSTER_NORMAL:
        *map = host;
        *file = bs->file->bs;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED |
               BDRV_BLOCK_OFFSET_VALID;
    }
    return -EIO;
}

static int64_t qcow2_get_length(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    return s->size;
}

static int qcow2_get_cluster_size(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    return (int)s->cluster_size;
}

static json_t *qcow2_get_specific_info(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    json_t *data = json_object();
    if (qcow2_is_v3(s)) {
        json_object_set_new(data, "compat", json_string("1.1"));
        json_object_set_new(data, "compression-type", json_string(
            s->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib"));
        json_object_set_new(data, "lazy-refcounts", json_boolean(
            s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS));
        json_t *bitmaps = qcow2_bitmaps_info(s);
        if (bitmaps) {
            json_object_set_new(data, "bitmaps", bitmaps);
        }
        json_object_set_new(data, "refcount-bits",
                            json_integer(s->refcount_bits));
        json_object_set_new(data, "corrupt", json_boolean(
            s->incompatible_features & QCOW2_INCOMPAT_CORRUPT));
        json_object_set_new(data, "extended-l2", json_false());
    } else {
        json_object_set_new(data, "compat", json_string("0.10"));
        json_object_set_new(data, "compression-type", json_string("zlib"));
        json_object_set_new(data, "refcount-bits",
                            json_integer(s->refcount_bits));
    }
    json_t *info = json_object();
    json_object_set_new(info, "type", json_string("qcow2"));
    json_object_set_new(info, "data", data);
    return info;
}

/* Allocates every cluster in guest [start, end) that has none. */
static int coroutine_fn qcow2_preallocate(BlockDriverState *bs,
                                          uint64_t start, uint64_t end)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    int ret = 0;
    start = ROUND_DOWN(start, cs);
    co_mutex_lock(&s->lock);
    while (start < end && ret >= 0) {
        uint64_t n, host, l2e;
        Qcow2ClusterType type;
        ret = qcow2_get_host_offset(bs, start, end - start, &n, &host, &type,
                                    &l2e);
        if (ret < 0) {
            break;
        }
        uint64_t nb = DIV_ROUND_UP(n, cs);
        if (type == QCOW2_CLUSTER_UNALLOCATED ||
            type == QCOW2_CLUSTER_ZERO_PLAIN) {
            uint64_t *l2;
            ret = qcow2_get_l2_for_write(bs, start, &l2);
            if (ret < 0) {
                break;
            }
            int64_t host_off = qcow2_alloc_clusters(bs, nb);
            if (host_off < 0) {
                qcow2_cache_put(s->l2_cache, (void **)&l2);
                ret = (int)host_off;
                break;
            }
            if (s->zero_beyond < host_off + nb * cs) {
                s->zero_beyond = host_off + nb * cs;
            }
            uint64_t l2i = qcow2_l2_index(s, start);
            for (uint64_t i = 0; i < nb; i++) {
                /* With a backing file the cluster must still read as
                 * zero, so v3 marks it preallocated-zero. */
                uint64_t e = (host_off + (i << s->cluster_bits)) |
                             QCOW_OFLAG_COPIED;
                if (type == QCOW2_CLUSTER_ZERO_PLAIN ||
                    (bs->backing_file && qcow2_is_v3(s))) {
                    e |= QCOW_OFLAG_ZERO;
                }
                be64_write(&l2[l2i + i], e);
            }
            qcow2_cache_mark_dirty(s->l2_cache, l2);
            qcow2_cache_put(s->l2_cache, (void **)&l2);
        }
        start += nb * cs;
    }
    if (ret >= 0) {
        ret = qcow2_flush_metadata(bs);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

/* Is any cluster of guest [start, end) allocated or zero-flagged? */
static int coroutine_fn range_has_entries(BlockDriverState *bs,
                                          uint64_t start, uint64_t end,
                                          bool *found)
{
    *found = false;
    while (start < end) {
        uint64_t n, host, l2e;
        Qcow2ClusterType type;
        int ret = qcow2_get_host_offset(bs, start, end - start, &n, &host,
                                        &type, &l2e);
        if (ret < 0) {
            return ret;
        }
        if (type != QCOW2_CLUSTER_UNALLOCATED) {
            *found = true;
            return 0;
        }
        start += n;
    }
    return 0;
}

static int coroutine_fn qcow2_co_truncate(BlockDriverState *bs,
                                          int64_t offset, bool exact,
                                          PreallocMode prealloc,
                                          GError **errp)
{
    Qcow2State *s = bs->opaque;
    uint64_t old = s->size;
    int ret;
    if (s->stale) {
        error_setg(errp, "The image must be reopened after an I/O error");
        return -EIO;
    }
    if (!IS_ALIGNED((uint64_t)offset, 512)) {
        error_setg(errp, "The new size must be a multiple of 512");
        return -EINVAL;
    }
    if (!qcow2_is_v3(s) && s->nb_snapshots) {
        error_setg(errp, "Can't resize a v2 image which has snapshots");
        return -ENOTSUP;
    }
    if ((uint64_t)offset < old) {
        if (prealloc != PREALLOC_MODE_OFF) {
            error_setg(errp, "Preallocation can't be used for shrinking an "
                       "image");
            return -EINVAL;
        }
        bool used;
        co_mutex_lock(&s->lock);
        ret = range_has_entries(bs, ROUND_UP((uint64_t)offset,
                                             s->cluster_size), old, &used);
        co_mutex_unlock(&s->lock);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to inspect the image");
            return ret;
        }
        if (used) {
            error_setg(errp, "Cannot shrink the image: the area to be cut "
                       "off is in use (only unused space can be removed)");
            return -ENOTSUP;
        }
    } else {
        co_mutex_lock(&s->lock);
        /* A snapshot being taken reserved its L1 space for the current
         * size, and its commit must not see the L1 table move. */
        ret = s->pending_create || s->shadow_pending ? -EBUSY :
              qcow2_grow_l1_table(bs, qcow2_l1_size_for(offset,
                                                        s->cluster_bits),
                                  true);
        co_mutex_unlock(&s->lock);
        if (ret == -EBUSY) {
            error_setg(errp, "Cannot grow while a snapshot is being taken");
            return ret;
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to grow the L1 table");
            return ret;
        }
    }
    if (qcow2_l1_size_for(offset, s->cluster_bits) !=
        qcow2_l1_size_for(old, s->cluster_bits)) {
        /* The VM state area moves with the size: what the active layer
         * holds there (a VM state not yet given to a snapshot) is
         * dropped first, so that neither the guest (growing) nor a later
         * VM state (either way) ever sees it.  Made durable before the
         * size changes. */
        co_mutex_lock(&s->lock);
        ret = s->pending_create || s->shadow_pending ? -EBUSY :
              qcow2_drop_active_vmstate(bs);
        if (ret >= 0) {
            ret = qcow2_flush_metadata(bs);
        }
        co_mutex_unlock(&s->lock);
        if (ret == -EBUSY) {
            error_setg(errp, "Cannot resize while a snapshot is being taken");
            return ret;
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to drop the VM state area");
            return ret;
        }
    }
    uint8_t buf[8];
    be64_write(buf, offset);
    ret = bdrv_co_pwrite(bs->file->bs, 24, 8, buf, 0);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update the image size");
        return ret;
    }
    s->size = offset;
    if ((uint64_t)offset > old && prealloc != PREALLOC_MODE_OFF) {
        uint64_t file_before = bdrv_getlength(bs->file->bs);
        ret = qcow2_preallocate(bs, old, offset);
        if (ret >= 0) {
            /* The file must reach every allocated cluster; falloc/full
             * also back them with real space. */
            uint64_t end = s->zero_beyond;
            PreallocMode fm = prealloc == PREALLOC_MODE_METADATA
                              ? PREALLOC_MODE_OFF : prealloc;
            ret = bdrv_co_truncate(bs->file->bs, MAX(end, file_before),
                                   false, fm, errp);
            if (ret < 0) {
                return ret;
            }
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Preallocation failed");
            return ret;
        }
    }
    return 0;
}

static int coroutine_fn qcow2_co_change_backing_file(BlockDriverState *bs,
                                                     const char *file,
                                                     const char *fmt,
                                                     GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (file && strlen(file) > QCOW2_MAX_BACKING_NAME) {
        error_setg(errp, "Backing file name too long");
        return -EINVAL;
    }
    if (fmt && !file) {
        error_setg(errp, "Cannot set a backing format without a backing "
                   "file");
        return -EINVAL;
    }
    char *old_file = bs->backing_file, *old_fmt = bs->backing_format;
    bs->backing_file = g_strdup(file);
    bs->backing_format = g_strdup(fmt);
    co_mutex_lock(&s->lock);
    int ret = qcow2_update_header(bs);
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    co_mutex_unlock(&s->lock);
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    bs->backing_file = old_file;
    bs->backing_format = old_fmt;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not update the backing file "
                         "name");
    }
    return ret;
}

/* ---- create ---- */

static const char *const qcow2_create_opts[] = {
    "size", "compat", "backing_file", "backing_fmt", "encryption",
    "cluster_size", "preallocation", "lazy_refcounts", "refcount_bits",
    "compression_type", "extended_l2", "data_file", "data_file_raw",
    "encrypt.format", NULL
};

typedef struct Qcow2CreateParams {
    uint64_t size;
    bool size_set;
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t refcount_order;
    uint8_t compression_type;
    bool lazy_refcounts;
    PreallocMode prealloc;
    const char *backing_file;
    const char *backing_fmt;
} Qcow2CreateParams;

static int parse_create_params(BlockOpts *opts, Qcow2CreateParams *p,
                               GError **errp)
{
    const char *v;
    uint64_t n;
    memset(p, 0, sizeof(*p));
    p->version = 3;
    p->cluster_bits = QCOW2_DEFAULT_CLUSTER_BITS;
    p->refcount_order = 4;
    if ((v = bopts_get(opts, "size"))) {
        if (!parse_size(v, 1, &p->size)) {
            error_setg(errp, "Parameter 'size' expects a size");
            return -EINVAL;
        }
        p->size_set = true;
    }
    if ((v = bopts_get(opts, "compat"))) {
        if (!strcmp(v, "0.10") || !strcmp(v, "v2")) {
            p->version = 2;
        } else if (!strcmp(v, "1.1") || !strcmp(v, "v3")) {
            p->version = 3;
        } else {
            error_setg(errp, "Invalid compatibility level: '%s'", v);
            return -EINVAL;
        }
    }
    if ((v = bopts_get(opts, "cluster_size"))) {
        if (!parse_size(v, 1, &n) || n < 512 || n > (2u << 20) ||
            (n & (n - 1))) {
            error_setg(errp, "Cluster size must be a power of two between "
                       "512 and 2048k");
            return -EINVAL;
        }
        p->cluster_bits = __builtin_ctzll(n);
    }
    if ((v = bopts_get(opts, "refcount_bits"))) {
        if (!parse_size(v, 1, &n) || n == 0 || n > 64 || (n & (n - 1))) {
            error_setg(errp, "Refcount width must be a power of two and may "
                       "not exceed 64 bits");
            return -EINVAL;
        }
        p->refcount_order = __builtin_ctzll(n);
        if (p->version < 3 && n != 16) {
            error_setg(errp, "Different refcount widths than 16 bits require "
                       "compatibility level 1.1 or above (use compat=1.1 or "
                       "greater)");
            return -EINVAL;
        }
    }
    if ((v = bopts_get(opts, "compression_type"))) {
        if (!strcmp(v, "zlib")) {
            p->compression_type = QCOW2_COMPRESSION_ZLIB;
        } else if (!strcmp(v, "zstd")) {
            p->compression_type = QCOW2_COMPRESSION_ZSTD;
        } else {
            error_setg(errp, "Parameter 'compression-type' does not accept "
                       "value '%s'", v);
            return -EINVAL;
        }
        if (p->version < 3 && p->compression_type) {
            error_setg(errp, "Non-zlib compression type is only supported "
                       "with compatibility level 1.1 and above (use "
                       "compat=1.1 or greater)");
            return -EINVAL;
        }
    }
    if ((v = bopts_get(opts, "lazy_refcounts"))) {
        p->lazy_refcounts = !strcmp(v, "on") || !strcmp(v, "true");
        if (p->lazy_refcounts && p->version < 3) {
            error_setg(errp, "Lazy refcounts only supported with "
                       "compatibility level 1.1 and above (use compat=1.1 "
                       "or greater)");
            return -EINVAL;
        }
    }
    if ((v = bopts_get(opts, "extended_l2")) && strcmp(v, "off")) {
        error_setg(errp, "Extended L2 entries are not supported");
        return -ENOTSUP;
    }
    if ((v = bopts_get(opts, "encryption")) && strcmp(v, "off")) {
        error_setg(errp, "Encryption is not supported");
        return -ENOTSUP;
    }
    if (bopts_get(opts, "encrypt.format")) {
        error_setg(errp, "Encryption is not supported");
        return -ENOTSUP;
    }
    if (bopts_get(opts, "data_file")) {
        error_setg(errp, "External data files are not supported");
        return -ENOTSUP;
    }
    if ((v = bopts_get(opts, "preallocation")) &&
        !prealloc_mode_parse(v, &p->prealloc)) {
        error_setg(errp, "Parameter 'preallocation' does not accept value "
                   "'%s'", v);
        return -EINVAL;
    }
    p->backing_file = bopts_get(opts, "backing_file");
    p->backing_fmt = bopts_get(opts, "backing_fmt");
    if (p->backing_fmt && !p->backing_file) {
        error_setg(errp, "Backing format cannot be used without backing "
                   "file");
        return -EINVAL;
    }
    if (p->backing_file && p->prealloc != PREALLOC_MODE_OFF &&
        p->version < 3) {
        error_setg(errp, "Backing file and preallocation can only be used "
                   "at the same time with compat=1.1");
        return -EINVAL;
    }
    return 0;
}

/* Writes a minimal empty image: header, one refcount table cluster and one
 * refcount block describing clusters 0-2, no L1 table. */
static int coroutine_fn write_empty_image(BlockDriverState *file,
                                          const Qcow2CreateParams *p)
{
    uint64_t cs = 1ULL << p->cluster_bits;
    uint8_t *buf = bdrv_blockalign(file, 3 * cs);
    memset(buf, 0, 3 * cs);
    be32_write(buf, QCOW_MAGIC);
    be32_write(buf + 4, p->version);
    be32_write(buf + 20, p->cluster_bits);
    be64_write(buf + 48, cs);          /* refcount table at cluster 1 */
    be32_write(buf + 56, 1);
    if (p->version >= 3) {
        be64_write(buf + 72, p->compression_type ? QCOW2_INCOMPAT_COMPRESSION
                                                 : 0);
        be64_write(buf + 80, p->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS
                                               : 0);
        be32_write(buf + 96, p->refcount_order);
        be32_write(buf + 100, QCOW2_V3_HEADER_LEN);
        buf[104] = p->compression_type;
    }
    be64_write(buf + cs, 2 * cs);     /* refblock 0 at cluster 2 */
    Qcow2State tmp = { .refcount_order = p->refcount_order,
                       .refcount_max = p->refcount_order == 6 ? UINT64_MAX :
                       (1ULL << (1u << p->refcount_order)) - 1 };
    for (int i = 0; i < 3; i++) {
        qcow2_set_refcount_entry(&tmp, buf + 2 * cs, i, 1);
    }
    int ret = bdrv_co_pwrite(file, 0, 3 * cs, buf, 0);
    bdrv_vfree(buf);
    return ret;
}

static int coroutine_fn qcow2_create(const char *filename, BlockOpts *opts,
                                     GError **errp)
{
    Qcow2CreateParams p;
    int ret = parse_create_params(opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    if (!p.size_set && p.backing_file) {
        /* Like qemu-img: the size defaults to the backing file's. */
        BlockOpts *bo = bopts_new();
        if (p.backing_fmt) {
            bopts_set(bo, "driver", p.backing_fmt);
        }
        g_autofree char *path = NULL;
        if (!g_path_is_absolute(p.backing_file)) {
            g_autofree char *dir = g_path_get_dirname(filename);
            path = g_build_filename(dir, p.backing_file, NULL);
        } else {
            path = g_strdup(p.backing_file);
        }
        GError *err = NULL;
        BlockDriverState *bbs = bdrv_open(path, bo, 0, &err);
        if (!bbs) {
            error_setg(errp, "Could not open backing image: %s", err->message);
            g_error_free(err);
            return -EINVAL;
        }
        p.size = bdrv_getlength(bbs);
        p.size_set = true;
        bdrv_unref(bbs);
    }
    if (!p.size_set) {
        error_setg(errp, "Image creation needs a size parameter");
        return -EINVAL;
    }
    if (p.size % 512) {
        p.size = ROUND_UP(p.size, 512);
    }

    BlockOpts *fo = bopts_new();
    ret = bdrv_file.create(filename, fo, errp);
    bopts_free(fo);
    if (ret < 0) {
        return ret;
    }
    /* Nobody uses the image before create returns, and a half-made image
     * is garbage whatever order its pieces reached the disk in: the steps
     * below skip their ordering flushes (cache.no-flush) and one flush of
     * the file at the end makes the whole image durable. */
    fo = bopts_new();
    bopts_set(fo, "driver", "file");
    BlockDriverState *file = bdrv_open(filename, fo, BDRV_O_RDWR, errp);
    if (!file) {
        return -EIO;
    }
    ret = write_empty_image(file, &p);
    if (ret < 0) {
        bdrv_unref(file);
        error_setg_errno(errp, -ret, "Could not write qcow2 header");
        return ret;
    }

    BlockOpts *qo = bopts_new();
    bopts_set(qo, "driver", "qcow2");
    BlockDriverState *bs = bdrv_open(filename, qo, BDRV_O_RDWR |
                                     BDRV_O_NO_BACKING | BDRV_O_NO_FLUSH,
                                     errp);
    if (!bs) {
        bdrv_unref(file);
        return -EIO;
    }
    if (p.backing_file) {
        ret = qcow2_co_change_backing_file(bs, p.backing_file, p.backing_fmt,
                                           errp);
        if (ret < 0) {
            goto out;
        }
        bs->backing_file = g_strdup(p.backing_file);
        bs->backing_format = g_strdup(p.backing_fmt);
    }
    /* Growing from 0 allocates the L1 table (and preallocates). */
    ret = qcow2_co_truncate(bs, p.size, true, p.prealloc, errp);
out:
    bdrv_unref(bs);
    if (ret >= 0) {
        ret = bdrv_co_flush(file);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush the new image");
        }
    }
    bdrv_unref(file);
    return ret;
}

static int qcow2_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size >= 8 && be32_read(buf) == QCOW_MAGIC &&
        be32_read(buf + 4) >= 2) {
        return 100;
    }
    return 0;
}

const BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .instance_size = sizeof(Qcow2State),
    .supports_backing = true,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .create = qcow2_create,
    .create_opts = qcow2_create_opts,
    .co_preadv = qcow2_co_preadv,
    .co_pwritev = qcow2_co_pwritev,
    .co_pwrite_zeroes = qcow2_co_pwrite_zeroes,
    .co_pdiscard = qcow2_co_pdiscard,
    .co_flush_to_os = qcow2_co_flush_to_os,
    .co_block_status = qcow2_co_block_status,
    .co_truncate = qcow2_co_truncate,
    .get_length = qcow2_get_length,
    .get_specific_info = qcow2_get_specific_info,
    .get_cluster_size = qcow2_get_cluster_size,
    .can_store_new_dirty_bitmap = qcow2_can_store_new_dirty_bitmap,
    .co_remove_persistent_dirty_bitmap =
        qcow2_co_remove_persistent_dirty_bitmap,
    .co_reopen_ro = qcow2_bitmaps_reopen_ro,
    .co_reopen_rw = qcow2_bitmaps_reopen_rw,
    .co_check = qcow2_co_check,
    .co_change_backing_file = qcow2_co_change_backing_file,
    .co_make_empty = qcow2_co_make_empty,
    .co_amend = qcow2_co_amend,
    .co_writev_vmstate = qcow2_co_writev_vmstate,
    .co_readv_vmstate = qcow2_co_readv_vmstate,
    .co_discard_vmstate = qcow2_co_discard_vmstate,
    .supports_compressed_writes = true,
    .snapshot = &qcow2_snapshot_ops,
};
