/*
 * blkdebug.c - the fault-injection filter driver `blkdebug`: passes every
 * request to its `file` child unless a rule (see blkdebug.h) says to fail
 * it, in which case the child never sees it.  Tests put it under qcow2
 * (driver=qcow2,file.driver=blkdebug,file.file.filename=...) to prove the
 * error paths.
 */
#include "block/blkdebug.h"
#include "block/block_int.h"
#include "util/cutils.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct RuleState {
    BlkdebugRule rule;
    uint64_t matches;
    bool fired;
} RuleState;

typedef struct BlkdebugState {
    GArray *rules;          /* of RuleState */
    uint64_t injected;
} BlkdebugState;

static bool blkdebug_parse_op(const char *s, unsigned *ops)
{
    static const struct { const char *name; unsigned op; } names[] = {
        { "read", BLKDBG_OP_READ }, { "write", BLKDBG_OP_WRITE },
        { "flush", BLKDBG_OP_FLUSH }, { "discard", BLKDBG_OP_DISCARD },
        { "zero", BLKDBG_OP_ZERO }, { "any", BLKDBG_OP_ANY },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (!strcmp(s, names[i].name)) {
            *ops = names[i].op;
            return true;
        }
    }
    return false;
}

static bool blkdebug_parse_errno(const char *s, int *err)
{
    static const struct { const char *name; int err; } names[] = {
        { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EINVAL", EINVAL },
        { "EPERM", EPERM }, { "ENOMEM", ENOMEM }, { "EDQUOT", EDQUOT },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (!strcmp(s, names[i].name)) {
            *err = names[i].err;
            return true;
        }
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v <= 0 || v > 4095) {
        return false;
    }
    *err = (int)v;
    return true;
}

static bool blkdebug_take_rule(BlockOpts *opts, int i, BlkdebugRule *r,
                               GError **errp)
{
    g_autofree char *pfx = g_strdup_printf("inject.%d", i);
    if (!bopts_has_prefix(opts, pfx)) {
        return false;
    }
    g_autoptr(BlockOpts) sub = bopts_extract(opts, pfx);
    *r = (BlkdebugRule){ .ops = BLKDBG_OP_ANY, .offset = -1, .err = EIO,
                         .once = true };
    g_autofree char *op = bopts_take(sub, "op");
    g_autofree char *nth = bopts_take(sub, "nth");
    g_autofree char *off = bopts_take(sub, "offset");
    g_autofree char *len = bopts_take(sub, "length");
    g_autofree char *err = bopts_take(sub, "errno");
    uint64_t v;
    if (op && !blkdebug_parse_op(op, &r->ops)) {
        error_setg(errp, "blkdebug: invalid op '%s'", op);
        return false;
    }
    if (nth && !parse_size(nth, 1, &r->nth)) {
        error_setg(errp, "blkdebug: invalid nth '%s'", nth);
        return false;
    }
    if (off) {
        if (!parse_size(off, 1, &v)) {
            error_setg(errp, "blkdebug: invalid offset '%s'", off);
            return false;
        }
        r->offset = v;
        r->length = 1;
    }
    if (len) {
        if (!parse_size(len, 1, &v)) {
            error_setg(errp, "blkdebug: invalid length '%s'", len);
            return false;
        }
        r->length = v;
    }
    if (err && !blkdebug_parse_errno(err, &r->err)) {
        error_setg(errp, "blkdebug: invalid errno '%s'", err);
        return false;
    }
    GError *e = NULL;
    r->once = bopts_take_bool(sub, "once", r->nth != 0, &e);
    if (e) {
        g_propagate_error(errp, e);
        return false;
    }
    if (g_hash_table_size(sub)) {
        error_setg(errp, "blkdebug: unknown rule option");
        return false;
    }
    return true;
}

static int coroutine_fn blkdebug_open(BlockDriverState *bs, BlockOpts *opts,
                                      int flags, GError **errp)
{
    BlkdebugState *s = bs->opaque;
    s->rules = g_array_new(FALSE, TRUE, sizeof(RuleState));
    for (int i = 0;; i++) {
        BlkdebugRule r;
        GError *err = NULL;
        if (!blkdebug_take_rule(opts, i, &r, &err)) {
            if (err) {
                g_propagate_error(errp, err);
                return -EINVAL;
            }
            break;
        }
        blkdebug_add_rule(bs, &r);
    }
    bs->request_alignment = bs->file->bs->request_alignment;
    bs->buf_alignment = bs->file->bs->buf_alignment;
    return 0;
}

static void coroutine_fn blkdebug_close(BlockDriverState *bs)
{
    BlkdebugState *s = bs->opaque;
    g_array_free(s->rules, TRUE);
}

bool blkdebug_add_rule(BlockDriverState *bs, const BlkdebugRule *rule)
{
    if (bs->drv != &bdrv_blkdebug) {
        return false;
    }
    BlkdebugState *s = bs->opaque;
    RuleState rs = { .rule = *rule };
    g_array_append_val(s->rules, rs);
    return true;
}

void blkdebug_clear_rules(BlockDriverState *bs)
{
    BlkdebugState *s = bs->opaque;
    g_array_set_size(s->rules, 0);
}

uint64_t blkdebug_injected(BlockDriverState *bs)
{
    BlkdebugState *s = bs->opaque;
    return s->injected;
}

/* Returns the negative errno to fail with, or 0 to pass the request on. */
static int blkdebug_check(BlockDriverState *bs, unsigned op, int64_t offset,
                          int64_t bytes)
{
    BlkdebugState *s = bs->opaque;
    for (guint i = 0; i < s->rules->len; i++) {
        RuleState *rs = &g_array_index(s->rules, RuleState, i);
        BlkdebugRule *r = &rs->rule;
        if (!(r->ops & op)) {
            continue;
        }
        if (r->offset >= 0 && (op == BLKDBG_OP_FLUSH ||
                               offset >= r->offset + r->length ||
                               offset + bytes <= r->offset)) {
            continue;
        }
        rs->matches++;
        bool fire;
        if (r->nth == 0) {
            fire = !(r->once && rs->fired);
        } else if (r->once) {
            fire = rs->matches == r->nth;
        } else {
            fire = rs->matches >= r->nth;
        }
        if (fire) {
            rs->fired = true;
            s->injected++;
            return -r->err;
        }
    }
    return 0;
}

static int coroutine_fn blkdebug_co_preadv(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           IOVector *qiov,
                                           BdrvRequestFlags flags)
{
    int ret = blkdebug_check(bs, BLKDBG_OP_READ, offset, bytes);
    return ret ? ret : bdrv_co_preadv(bs->file->bs, offset, bytes, qiov,
                                      flags);
}

static int coroutine_fn blkdebug_co_pwritev(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            IOVector *qiov,
                                            BdrvRequestFlags flags)
{
    int ret = blkdebug_check(bs, BLKDBG_OP_WRITE, offset, bytes);
    return ret ? ret : bdrv_co_pwritev(bs->file->bs, offset, bytes, qiov,
                                       flags & ~BDRV_REQ_FUA);
}

static int coroutine_fn blkdebug_co_pwrite_zeroes(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  BdrvRequestFlags flags)
{
    int ret = blkdebug_check(bs, BLKDBG_OP_ZERO, offset, bytes);
    return ret ? ret : bdrv_co_pwrite_zeroes(bs->file->bs, offset, bytes,
                                             flags);
}

static int coroutine_fn blkdebug_co_pdiscard(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes)
{
    int ret = blkdebug_check(bs, BLKDBG_OP_DISCARD, offset, bytes);
    return ret ? ret : bdrv_co_pdiscard(bs->file->bs, offset, bytes);
}

static int coroutine_fn blkdebug_co_flush(BlockDriverState *bs)
{
    /* The generic layer flushes `file` after us, unless we fail here. */
    return blkdebug_check(bs, BLKDBG_OP_FLUSH, 0, 0);
}

static int coroutine_fn blkdebug_co_block_status(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes, int64_t *pnum,
                                                 int64_t *map,
                                                 BlockDriverState **file)
{
    return bdrv_co_block_status(bs->file->bs, offset, bytes, pnum, map, file);
}

static int coroutine_fn blkdebug_co_truncate(BlockDriverState *bs,
                                             int64_t offset, bool exact,
                                             PreallocMode prealloc,
                                             GError **errp)
{
    return bdrv_co_truncate(bs->file->bs, offset, exact, prealloc, errp);
}

const BlockDriver bdrv_blkdebug = {
    .format_name = "blkdebug",
    .instance_size = sizeof(BlkdebugState),
    .is_filter = true,
    .open = blkdebug_open,
    .close = blkdebug_close,
    .co_preadv = blkdebug_co_preadv,
    .co_pwritev = blkdebug_co_pwritev,
    .co_pwrite_zeroes = blkdebug_co_pwrite_zeroes,
    .co_pdiscard = blkdebug_co_pdiscard,
    .co_flush_to_os = blkdebug_co_flush,
    .co_block_status = blkdebug_co_block_status,
    .co_truncate = blkdebug_co_truncate,
};
