/*
 * img-common.c - see img-common.h.  Linked into every tool.
 */
#include "tools/img-common.h"
#include "util/cutils.h"
#include "util/error.h"
#include <string.h>

bool img_parse_cache_mode(const char *mode, int *flags, bool *writethrough)
{
    *flags &= ~(BDRV_O_NOCACHE | BDRV_O_NO_FLUSH);
    *writethrough = false;
    if (!strcmp(mode, "none") || !strcmp(mode, "off")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(mode, "writeback")) {
    } else if (!strcmp(mode, "writethrough")) {
        *writethrough = true;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else if (!strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = true;
    } else {
        return false;
    }
    return true;
}

BlockBackend *img_open(const char *filename, const char *fmt,
                       const char *opts, int flags, bool writethrough,
                       bool quiet)
{
    GError *err = NULL;
    BlockOpts *o = bopts_new();
    if (opts && !bopts_parse(o, opts, &err)) {
        error_report("Could not open '%s': %s", filename, err->message);
        g_error_free(err);
        bopts_free(o);
        return NULL;
    }
    if (fmt) {
        bopts_set(o, "driver", fmt);
    }
    BlockBackend *blk = blk_new_open(filename, o, flags, &err);
    if (!blk) {
        error_report("Could not open '%s': %s", filename, err->message);
        g_error_free(err);
        return NULL;
    }
    blk_set_enable_write_cache(blk, !writethrough);
    return blk;
}

bool img_parse_size(const char *s, uint64_t *out)
{
    if (!parse_size(s, 1, out) || *out > INT64_MAX) {
        return false;
    }
    return true;
}
