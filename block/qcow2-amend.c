/*
 * qcow2-amend.c - changing the options of an existing image (qemu-img
 * amend): compat level up and down, refcount width, lazy refcounts,
 * backing file, size.  Each change that rewrites metadata does so through
 * an atomic switch (a shadow commit or one header write), so a crash
 * leaves either the old or the new image, never a mixture.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>

static bool parse_on_off(const char *v, bool *out)
{
    if (!strcmp(v, "on") || !strcmp(v, "true")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "false")) {
        *out = false;
    } else {
        return false;
    }
    return true;
}

/* Replaces zero-flagged active clusters with v2-compatible ones. */
static int coroutine_fn expand_zero_clusters(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint8_t *zeros = g_malloc0(cs);
    int ret = 0;
    for (uint64_t off = 0; off < s->size && ret >= 0;) {
        uint64_t n, host, l2e;
        Qcow2ClusterType t;
        co_mutex_lock(&s->lock);
        ret = qcow2_get_host_offset(bs, off, s->size - off, &n, &host, &t,
                                    &l2e);
        if (ret >= 0 && (t == QCOW2_CLUSTER_ZERO_PLAIN ||
                         t == QCOW2_CLUSTER_ZERO_ALLOC) && !bs->backing_file) {
            /* Without a backing file, unallocated reads as zero too. */
            ret = qcow2_zero_or_discard(bs, off, DIV_ROUND_UP(n, cs), true,
                                        true);
            t = QCOW2_CLUSTER_UNALLOCATED;
        }
        co_mutex_unlock(&s->lock);
        if (ret >= 0 && (t == QCOW2_CLUSTER_ZERO_PLAIN ||
                         t == QCOW2_CLUSTER_ZERO_ALLOC)) {
            for (uint64_t o = off; o < off + n && ret >= 0; o += cs) {
                IOVector q;
                uint64_t len = MIN(cs, s->size - o);
                iovec_init_buf(&q, zeros, len);
                ret = bdrv_co_pwritev(bs, o, len, &q, 0);
            }
        }
        off += n;
    }
    g_free(zeros);
    return ret;
}

static int coroutine_fn downgrade(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    if (s->refcount_order != 4) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return -ENOTSUP;
    }
    if (s->compression_type != QCOW2_COMPRESSION_ZLIB) {
        error_setg(errp, "Cannot downgrade an image with a compression type "
                   "other than zlib");
        return -ENOTSUP;
    }
    if (s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) {
        error_setg(errp, "Cannot downgrade an image with bitmaps");
        return -ENOTSUP;
    }
    bool found;
    int ret = qcow2_snapshots_have_zero_clusters(bs, &found);
    if (ret >= 0 && found) {
        error_setg(errp, "Cannot downgrade: a snapshot contains zero "
                   "clusters");
        return -ENOTSUP;
    }
    if (ret >= 0) {
        ret = expand_zero_clusters(bs);
    }
    co_mutex_lock(&s->lock);
    if (ret >= 0) {
        ret = qcow2_flush_metadata(bs);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    if (ret >= 0) {
        s->version = 2;
        s->incompatible_features = 0;
        s->compatible_features = 0;
        s->autoclear_features = 0;
        ret = qcow2_update_header(bs);
    }
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not downgrade the image");
    }
    return ret;
}

static int coroutine_fn upgrade(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = bs->opaque;
    co_mutex_lock(&s->lock);
    int ret = 0;
    if (s->nb_snapshots) {
        /* v3 needs disk size and VM state size in every entry. */
        ret = qcow2_rewrite_snapshot_table(bs);
    }
    if (ret >= 0) {
        s->version = 3;
        s->header_length = QCOW2_V3_HEADER_LEN;
        ret = qcow2_update_header(bs);
    }
    if (ret >= 0) {
        ret = qcow2_file_sync(bs);
    }
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not upgrade the image");
    }
    return ret;
}

static int coroutine_fn amend_compat(BlockDriverState *bs, const char *v,
                                     GError **errp)
{
    Qcow2State *s = bs->opaque;
    int ret = 0;
    uint32_t want;
    if (!strcmp(v, "0.10") || !strcmp(v, "v2")) {
        want = 2;
    } else if (!strcmp(v, "1.1") || !strcmp(v, "v3")) {
        want = 3;
    } else {
        error_setg(errp, "Invalid compatibility level: '%s'", v);
        return -EINVAL;
    }
    if (want < s->version) {
        ret = downgrade(bs, errp);
    } else if (want > s->version) {
        ret = upgrade(bs, errp);
    }
    if (ret < 0) {
        return ret;
    }
    return 0;
}

static int coroutine_fn amend_refcount_bits(BlockDriverState *bs,
                                            const char *v, GError **errp)
{
    Qcow2State *s = bs->opaque;
    int ret = 0;
    uint64_t n = strtoull(v, NULL, 10);
    if (n == 0 || n > 64 || (n & (n - 1))) {
        error_setg(errp, "Refcount width must be a power of two and may "
                   "not exceed 64 bits");
        return -EINVAL;
    }
    if (!qcow2_is_v3(s) && n != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require "
                   "compatibility level 1.1 or above (use compat=1.1 or "
                   "greater)");
        return -EINVAL;
    }
    if (n != s->refcount_bits) {
        co_mutex_lock(&s->lock);
        ret = qcow2_change_refcount_order(bs, __builtin_ctzll(n), errp);
        co_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int coroutine_fn qcow2_co_amend(BlockDriverState *bs, BlockOpts *opts,
                                bool force, GError **errp)
{
    Qcow2State *s = bs->opaque;
    const char *v;
    int ret = 0;
    GHashTableIter it;
    gpointer k, val;
    static const char *known[] = { "compat", "refcount_bits",
        "lazy_refcounts", "backing_file", "backing_fmt", "size",
        "cluster_size", "compression_type", "preallocation", "encryption",
        "extended_l2", "data_file", "data_file_raw", NULL };
    g_hash_table_iter_init(&it, opts);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        if (!g_strv_contains(known, k)) {
            error_setg(errp, "Invalid parameter '%s'", (char *)k);
            return -EINVAL;
        }
    }
    if ((v = bopts_get(opts, "cluster_size")) &&
        strtoull(v, NULL, 0) != s->cluster_size) {
        error_setg(errp, "Changing the cluster size is not supported");
        return -ENOTSUP;
    }
    if ((v = bopts_get(opts, "compression_type")) &&
        strcmp(v, s->compression_type ? "zstd" : "zlib")) {
        error_setg(errp, "Changing the compression type is not supported");
        return -ENOTSUP;
    }
    if (bopts_get(opts, "preallocation") || bopts_get(opts, "data_file") ||
        bopts_get(opts, "extended_l2") || bopts_get(opts, "encryption")) {
        error_setg(errp, "Changing this option is not supported");
        return -ENOTSUP;
    }
    /* A downgrade needs 16-bit refcounts first; an upgrade comes first
     * so that wider refcounts are allowed. */
    const char *compat = bopts_get(opts, "compat");
    const char *rbits = bopts_get(opts, "refcount_bits");
    bool down = compat && (!strcmp(compat, "0.10") || !strcmp(compat, "v2"));
    if (compat && !down && (ret = amend_compat(bs, compat, errp)) < 0) {
        return ret;
    }
    if (rbits && (ret = amend_refcount_bits(bs, rbits, errp)) < 0) {
        return ret;
    }
    if (compat && down && (ret = amend_compat(bs, compat, errp)) < 0) {
        return ret;
    }
    if ((v = bopts_get(opts, "lazy_refcounts"))) {
        bool on;
        if (!parse_on_off(v, &on)) {
            error_setg(errp, "Parameter 'lazy_refcounts' expects 'on' or "
                       "'off'");
            return -EINVAL;
        }
        if (on && !qcow2_is_v3(s)) {
            error_setg(errp, "Lazy refcounts only supported with "
                       "compatibility level 1.1 and above (use compat=1.1 "
                       "or greater)");
            return -EINVAL;
        }
        uint64_t want = on ? s->compatible_features | QCOW2_COMPAT_LAZY_REFCOUNTS
                           : s->compatible_features &
                             ~QCOW2_COMPAT_LAZY_REFCOUNTS;
        if (want != s->compatible_features) {
            co_mutex_lock(&s->lock);
            s->compatible_features = want;
            ret = qcow2_update_header(bs);
            co_mutex_unlock(&s->lock);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update the header");
                return ret;
            }
        }
    }
    const char *bf = bopts_get(opts, "backing_file");
    const char *bfmt = bopts_get(opts, "backing_fmt");
    if (bf || bfmt) {
        const char *file = bf ? (*bf ? bf : NULL) : bs->backing_file;
        if (!file && bfmt) {
            error_setg(errp, "Cannot amend the backing format without a "
                       "backing file");
            return -EINVAL;
        }
        ret = bs->drv->co_change_backing_file(bs, file,
                                              bfmt ? bfmt : (bf ? NULL :
                                              bs->backing_format), errp);
        if (ret < 0) {
            return ret;
        }
        g_free(bs->backing_file);
        g_free(bs->backing_format);
        bs->backing_file = g_strdup(file);
        bs->backing_format = g_strdup(file ? (bfmt ? bfmt : NULL) : NULL);
    }
    if ((v = bopts_get(opts, "size"))) {
        uint64_t size;
        if (!parse_size(v, 1, &size)) {
            error_setg(errp, "Parameter 'size' expects a size");
            return -EINVAL;
        }
        if (size < s->size && !force) {
            /* qemu-img amend shrinks only with --force semantics of
             * resize; keep it explicit. */
            error_setg(errp, "Shrinking through amend is not supported; use "
                       "resize --shrink");
            return -ENOTSUP;
        }
        if (size != s->size) {
            ret = bs->drv->co_truncate(bs, size, true, PREALLOC_MODE_OFF,
                                       errp);
        }
    }
    return ret;
}
