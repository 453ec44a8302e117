/*
 * qcow2-bitmap.c - the persistent dirty bitmaps extension, as far as this
 * driver keeps it today: the bitmap directory is read and validated at
 * open, listed in `info`, counted by check, and - because writes through
 * this driver do not yet update bitmap contents - every bitmap is marked
 * in_use when the image is opened read-write, so no other program trusts
 * a bitmap that may be stale (the qcow2 specification's meaning of the
 * in_use flag).
 *
 * Directory entry: table offset u64, table size u32, flags u32, type u8,
 * granularity bits u8, name size u16, extra data size u32, extra data,
 * name, padding to 8 bytes.
 */
#include "block/qcow2.h"
#include <errno.h>
#include <string.h>

#define BME_FLAG_IN_USE (1u << 0)
#define BME_FLAG_AUTO   (1u << 1)
#define BME_MAX_NAME 1023
#define BME_HEADER 24

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
            pos + BME_HEADER + (uint64_t)extra + name > size) {
            goto bad;
        }
        pos += ROUND_UP(BME_HEADER + (uint64_t)extra + name, 8);
    }
    *out = dir;
    return 0;
bad:
    g_free(dir);
    error_setg(errp, "Bitmap directory is corrupt");
    return -EINVAL;
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
    if (bs->read_only) {
        return 0;
    }
    bool changed = false;
    uint64_t pos = 0;
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        uint32_t flags = be32_read(dir + pos + 12);
        if (!(flags & BME_FLAG_IN_USE)) {
            be32_write(dir + pos + 12, flags | BME_FLAG_IN_USE);
            changed = true;
        }
        pos += ROUND_UP(BME_HEADER + (uint64_t)be32_read(dir + pos + 20) +
                        be16_read(dir + pos + 18), 8);
    }
    if (changed) {
        ret = bdrv_co_pwrite(bs->file->bs, s->bitmap_directory_offset,
                             s->bitmap_directory_size, dir, 0);
        if (ret >= 0) {
            ret = qcow2_file_sync(bs);
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not mark bitmaps in use");
            return ret;
        }
    }
    return 0;
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
        uint32_t flags = be32_read(dir + pos + 12);
        uint16_t name_len = be16_read(dir + pos + 18);
        uint32_t extra = be32_read(dir + pos + 20);
        json_t *b = json_object();
        json_t *fl = json_array();
        if (flags & BME_FLAG_IN_USE) {
            json_array_append_new(fl, json_string("in-use"));
        }
        if (flags & BME_FLAG_AUTO) {
            json_array_append_new(fl, json_string("auto"));
        }
        json_object_set_new(b, "flags", fl);
        g_autofree char *name = g_strndup((const char *)dir + pos + BME_HEADER +
                                          extra, name_len);
        json_object_set_new(b, "name", json_string(name));
        json_object_set_new(b, "granularity",
                            json_integer(1ULL << dir[pos + 17]));
        json_array_append_new(arr, b);
        pos += ROUND_UP(BME_HEADER + (uint64_t)extra + name_len, 8);
    }
    return arr;
}
