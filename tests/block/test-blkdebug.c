/*
 * test-blkdebug.c - the qcow2 error paths, driven by the blkdebug fault
 * injection filter under the image (or under its backing file).
 *
 * Each case sets up a durable baseline, then runs one operation (an
 * allocating write, a refcount block or table allocation, copy-on-write,
 * snapshot create/apply/delete (also split as prepare/commit/finish with
 * a write in between), check and repair, compressed write, discard, write
 * zeroes, resize, a flush of much dirty metadata, many requests in
 * flight) with cold caches while failing its 1st, 2nd, ... read, write
 * or flush, until the operation gets through without meeting a fault.
 * Two kinds of fault: a single failure after which the disk works again
 * (the image must then be usable in the same session), and a disk that
 * keeps failing from the nth request (of a kind, or of any kind: a dead
 * disk) until closed, which must cope.  After every run the image is
 * reopened without faults and must pass bdrv_check and `qemu-img check`
 * without corruption (leaks are allowed), keep every byte acknowledged
 * and flushed before the fault, and show each failed write either whole,
 * absent, or byte-wise old-or-new.
 *
 * Debugging aid: XBLK_NTH=n (and XBLK_ONWARDS=1 for the lasting fault)
 * runs only that fault point of the selected case (-p /blkdebug/...).
 */
#include "image-test.h"
#include "block/blkdebug.h"
#include "util/cutils.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define MAX_NTH 400

typedef struct Env {
    char *path;
    char *base;                 /* backing file, or NULL */
    bool fault_on_backing;
    BlockBackend *blk;
    BlockDriverState *dbg;      /* the blkdebug node */
    Model *m;                   /* acknowledged and flushed contents */
    Model *alt;                 /* contents once the operation succeeds */
    uint64_t vol_off, vol_len;  /* bytes a failed op may leave old/new */
    bool apply_case;            /* whole image is either m or alt */
    Model *before_recovery;     /* m when the recovery write began */
    Model *snap;                /* what snapshot "mid" holds */
} Env;

typedef struct FaultCase {
    const char *name;
    const char *opts;           /* qcow2 create options */
    const char *open_opts;      /* extra open options, or NULL */
    uint64_t size;
    bool with_backing;          /* read faults go to the backing file */
    void (*setup)(Env *e);      /* durable baseline */
    int (*op)(Env *e);          /* the operation; 0 or -errno */
    void (*verify)(Env *e, int ret);    /* extra checks after reopen */
} FaultCase;

/* ---- opening through blkdebug ---- */

static BlockBackend *open_with_blkdebug(Env *e, const char *extra)
{
    g_autofree char *o = e->fault_on_backing
        ? g_strdup_printf("file.filename=%s,backing.driver=qcow2,"
                          "backing.file.driver=blkdebug,"
                          "backing.file.file.filename=%s", e->path, e->base)
        : g_strdup_printf("file.driver=blkdebug,file.file.filename=%s",
                          e->path);
    /* The order of requests is what matters here, not durability against
     * power loss: skip fdatasync (the flush still reaches blkdebug). */
    BlockOpts *opts = bopts_new();
    GError *err = NULL;
    g_assert_true(bopts_parse(opts, o, &err));
    bopts_set(opts, "driver", "qcow2");
    bopts_set(opts, "discard", "unmap");
    bopts_set(opts, "cache.no-flush", "on");
    if (extra) {
        g_assert_true(bopts_parse(opts, extra, &err));
    }
    BlockBackend *blk = blk_new_open(NULL, opts, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    BlockDriverState *bs = blk_bs(blk);
    e->dbg = e->fault_on_backing ? bdrv_file_bs(bdrv_backing_bs(bs))
                                 : bdrv_file_bs(bs);
    g_assert_cmpstr(bdrv_get_format_name(e->dbg), ==, "blkdebug");
    return blk;
}

static void env_init(Env *e, const FaultCase *c)
{
    *e = (Env){ 0 };
    e->path = test_path("img.qcow2");
    g_unlink(e->path);
    e->m = model_new(c->size);
    if (c->with_backing) {
        e->base = test_path("base.qcow2");
        g_unlink(e->base);
        img_create(e->base, c->size, NULL);
        BlockBackend *b = img_open(e->base);
        write_pattern(b, e->m, 0, c->size, 1234);
        blk_unref(b);
        g_autofree char *o = g_strdup_printf("%s%sbacking_file=%s,"
                                             "backing_fmt=qcow2",
                                             c->opts ? c->opts : "",
                                             c->opts ? "," : "", e->base);
        img_create(e->path, c->size, o);
    } else {
        img_create(e->path, c->size, c->opts);
    }
}

static void env_free(Env *e)
{
    model_free(e->m);
    model_free(e->alt);
    model_free(e->before_recovery);
    model_free(e->snap);
    g_free(e->path);
    g_free(e->base);
}

/* ---- verification after reopening without faults ---- */

static void verify_old_or_new(BlockBackend *blk, const Env *e)
{
    uint64_t size = e->alt->size;
    uint8_t *buf = g_malloc(size);
    g_assert_cmpint(blk_pread(blk, 0, size, buf), ==, 0);
    for (uint64_t i = 0; i < size; i++) {
        bool vol = i >= e->vol_off && i < e->vol_off + e->vol_len;
        bool old_ok = i < e->m->size && buf[i] == e->m->data[i];
        if (vol ? !(old_ok || buf[i] == e->alt->data[i]) : !old_ok) {
            g_error("byte %" G_GUINT64_FORMAT " is %#x: neither the durable "
                    "%#x nor the new %#x (volatile: %d)", i, buf[i],
                    i < e->m->size ? e->m->data[i] : 0, e->alt->data[i], vol);
        }
    }
    g_free(buf);
}

static bool blk_matches(BlockBackend *blk, const Model *m)
{
    if (blk_getlength(blk) != (int64_t)m->size) {
        return false;
    }
    uint8_t *buf = g_malloc(m->size);
    g_assert_cmpint(blk_pread(blk, 0, m->size, buf), ==, 0);
    bool same = memcmp(buf, m->data, m->size) == 0;
    g_free(buf);
    return same;
}

static void verify_after(const FaultCase *c, Env *e, BlockBackend *blk,
                         int ret)
{
    if (e->apply_case) {
        g_assert_true(blk_matches(blk, e->alt) ||
                      (ret < 0 && blk_matches(blk, e->m)));
    } else if (ret == 0) {
        verify_model(blk, e->alt);
    } else {
        verify_old_or_new(blk, e);
    }
    e->blk = blk;
    if (c->verify) {
        c->verify(e, ret);
    }
}

/* ---- one run ---- */

/* A write and flush of an unrelated area: the image must work again
 * after a one-off fault.  Recorded in both models. */
static void recovery_write(Env *e)
{
    uint64_t off = e->m->size - 8 * KiB;
    uint8_t buf[4096];
    e->before_recovery = model_copy(e->m);
    pattern_fill(buf, sizeof(buf), 4321, off);
    g_assert_cmpint(blk_pwrite(e->blk, off, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(blk_flush(e->blk), ==, 0);
    memcpy(e->m->data + off, buf, sizeof(buf));
    if (e->alt->size >= off + sizeof(buf)) {
        memcpy(e->alt->data + off, buf, sizeof(buf));
    }
}

/* Runs the case with the nth op of kind failing; returns whether a fault
 * was injected at all. */
static bool run_once(const FaultCase *c, unsigned kind, uint64_t nth,
                     bool once)
{
    Env e;
    if (g_test_verbose()) {
        g_test_message("%s: op %u, fault %" G_GUINT64_FORMAT "%s", c->name,
                       kind, nth, once ? " once" : " onwards");
    }
    env_init(&e, c);
    e.fault_on_backing = c->with_backing && kind == BLKDBG_OP_READ;
    if (kind == BLKDBG_OP_ANY) {
        g_assert_false(once);
    }
    e.blk = open_with_blkdebug(&e, c->open_opts);
    c->setup(&e);
    /* Start the operation with cold caches, so that it reads metadata. */
    blk_unref(e.blk);
    e.blk = open_with_blkdebug(&e, c->open_opts);
    if (!e.alt) {
        e.alt = model_copy(e.m);
    }
    BlkdebugRule rule = { .ops = kind, .nth = nth, .offset = -1,
                          .err = EIO, .once = once };
    g_assert_true(blkdebug_add_rule(e.dbg, &rule));
    int ret = c->op(&e);
    bool fired = blkdebug_injected(e.dbg) > 0;
    if (!fired) {
        g_assert_cmpint(ret, ==, 0);
    }
    if (once || !fired) {
        blkdebug_clear_rules(e.dbg);    /* a dead disk stays dead */
    }
    if (fired && once) {
        recovery_write(&e);
    }
    blk_unref(e.blk);           /* with a dead disk, close must cope */
    qemu_check(e.path, true);
    BlockBackend *blk = img_open(e.path);
    check_blk(blk, fired);
    verify_after(c, &e, blk, ret);
    blk_unref(blk);
    env_free(&e);
    return fired;
}

/* A one-off fault on the nth request of any kind is the one-off fault on
 * some kth read, write or flush: for "any" only the dead disk is new. */
static void sweep(const FaultCase *c, unsigned kind)
{
    if (g_getenv("XBLK_NTH")) {   /* debugging aid: one run */
        run_once(c, kind, atoi(g_getenv("XBLK_NTH")),
                 !g_getenv("XBLK_ONWARDS"));
        return;
    }
    for (int variant = kind == BLKDBG_OP_ANY; variant < 2; variant++) {
        uint64_t nth = 1;
        while (run_once(c, kind, nth, variant == 0)) {
            nth++;
            g_assert_cmpuint(nth, <, MAX_NTH);
        }
        if (g_test_verbose()) {
            g_test_message("%s: %" G_GUINT64_FORMAT " fault points",
                           c->name, nth - 1);
        }
    }
}

/* ---- the cases ---- */

static int flush_after(Env *e, int ret)
{
    return ret < 0 ? ret : blk_flush(e->blk);
}

/* Applies a pattern write to alt and issues it; ret of write + flush. */
static int op_write(Env *e, uint64_t off, uint64_t len, uint32_t seed)
{
    uint8_t *buf = g_malloc(len);
    pattern_fill(buf, len, seed, off);
    memcpy(e->alt->data + off, buf, len);
    e->vol_off = off;
    e->vol_len = len;
    int ret = blk_pwrite(e->blk, off, len, buf, 0);
    g_free(buf);
    return flush_after(e, ret);
}

static void setup_small(Env *e)
{
    write_pattern(e->blk, e->m, 0, 64 * KiB, 1);
    write_pattern(e->blk, e->m, 200 * KiB, 10 * KiB, 2);
}

/* A write in a new L1 range: allocates an L2 table and a data cluster. */
static int op_l2_alloc(Env *e)
{
    return op_write(e, 3 * MiB + 1000, 70 * KiB, 3);
}

/* Entry i of the table whose offset is the header field at hdr_off (40:
 * active L1, 48: refcount table), read from the file. */
static uint64_t table_entry(const char *path, int hdr_off, uint64_t i)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    uint64_t table = be64_read(data + hdr_off);
    g_assert_cmpuint(table + 8 * i + 8, <=, len);
    return be64_read(data + table + 8 * i);
}

/* The write did get its L2 table (3 MiB / 32 KiB per table). */
static void verify_l2_alloc(Env *e, int ret)
{
    if (ret == 0) {
        g_assert_cmpuint(table_entry(e->path, 40, 96), !=, 0);
    }
}

/* 512-byte clusters with 16-bit refcounts: a refcount block covers
 * 128 KiB, so the op needs a new one. */
static void setup_refblock(Env *e)
{
    write_pattern(e->blk, e->m, 0, 100 * KiB, 4);
}

static int op_refblock(Env *e)
{
    return op_write(e, 1 * MiB, 64 * KiB, 5);
}

static void verify_refblock(Env *e, int ret)
{
    if (ret == 0) {
        g_assert_cmpuint(table_entry(e->path, 48, 1), !=, 0);
    }
}

/* 512-byte clusters with 64-bit refcounts: the first refcount table
 * covers 2 MiB of file. */
static void setup_reftable(Env *e)
{
    for (uint64_t off = 0; off < 1940 * KiB; off += 97 * KiB) {
        write_pattern(e->blk, e->m, off, 97 * KiB, 6);
    }
}

static int op_reftable(Env *e)
{
    return op_write(e, 2 * MiB, 48 * KiB, 7);
}

/* The operation did need the bigger refcount table. */
static void verify_reftable(Env *e, int ret)
{
    if (ret == 0) {
        g_assert_cmpuint(img_header_field(e->path, 56, 4), >, 1);
    }
}

static void setup_none(Env *e)
{
}

/* Partial write into unallocated clusters over the backing file. */
static int op_cow_backing(Env *e)
{
    return op_write(e, 64 * KiB + 1000, 1000, 8);
}

static void setup_snapshot(Env *e)
{
    write_pattern(e->blk, e->m, 0, 256 * KiB, 9);
    snapshot_create_ok(e->blk, "old");
}

/* Partial write into clusters shared with a snapshot. */
static int op_cow_snapshot(Env *e)
{
    return op_write(e, 100 * KiB + 7, 70 * KiB, 10);
}

/* "old" (taken in the setup) holds pattern 9 in its first 256 KiB. */
static void verify_old_snapshot(Env *e, int ret)
{
    snapshot_apply_ok(e->blk, "old");
    uint8_t *buf = g_malloc(256 * KiB);
    g_assert_cmpint(blk_pread(e->blk, 0, 256 * KiB, buf), ==, 0);
    uint8_t *want = g_malloc(256 * KiB);
    pattern_fill(want, 256 * KiB, 9, 0);
    assert_same_bytes(buf, want, 256 * KiB, 0, "snapshot 'old'");
    g_free(buf);
    g_free(want);
}

static void setup_compressed(Env *e)
{
    uint8_t *buf = g_malloc(256 * KiB);
    compressible_fill(buf, 256 * KiB, 11, 0);
    write_both(e->blk, e->m, 0, 256 * KiB, buf, BDRV_REQ_WRITE_COMPRESSED);
    g_free(buf);
}

/* Partial write into a compressed cluster. */
static int op_cow_compressed(Env *e)
{
    return op_write(e, 64 * KiB + 3000, 2000, 12);
}

static int op_compressed_write(Env *e)
{
    uint64_t off = 512 * KiB, len = 256 * KiB;
    uint8_t *buf = g_malloc(len);
    compressible_fill(buf, len, 13, off);
    memcpy(e->alt->data + off, buf, len);
    e->vol_off = off;
    e->vol_len = len;
    int ret = blk_pwrite(e->blk, off, len, buf, BDRV_REQ_WRITE_COMPRESSED);
    g_free(buf);
    return flush_after(e, ret);
}

static void setup_data(Env *e)
{
    write_pattern(e->blk, e->m, 0, 1 * MiB, 14);
}

/* Discard, then reuse the freed clusters for new data. */
static int op_discard_reuse(Env *e)
{
    memset(e->alt->data + 256 * KiB, 0, 512 * KiB);
    e->vol_off = 256 * KiB;
    e->vol_len = 512 * KiB;
    int ret = flush_after(e, blk_pdiscard(e->blk, 256 * KiB, 512 * KiB));
    if (ret < 0) {
        return ret;
    }
    /* Durable now: the baseline moves on. */
    memcpy(e->m->data, e->alt->data, e->m->size);
    return op_write(e, 1 * MiB, 512 * KiB, 15);
}

static int op_write_zeroes(Env *e)
{
    memset(e->alt->data + 128 * KiB, 0, 256 * KiB);
    e->vol_off = 128 * KiB;
    e->vol_len = 256 * KiB;
    return flush_after(e, blk_pwrite_zeroes(e->blk, 128 * KiB, 256 * KiB,
                                            BDRV_REQ_MAY_UNMAP));
}

/* Growing far enough to need a bigger L1 table, then using the end. */
/* Growing from 2 to 32 L1 entries (4 KiB clusters: 2 MiB each) needs
 * a new L1 table. */
static int op_truncate(Env *e)
{
    GError *err = NULL;
    e->apply_case = true;
    model_resize(e->alt, 64 * MiB);
    int ret = blk_truncate(e->blk, 64 * MiB, false, PREALLOC_MODE_OFF, &err);
    if (ret < 0) {
        g_assert_nonnull(err);
        g_error_free(err);
        return ret;
    }
    return flush_after(e, 0);
}

/* Whatever the size, the whole disk is usable. */
static void verify_truncate(Env *e, int ret)
{
    int64_t len = blk_getlength(e->blk);
    uint8_t buf[4096];
    pattern_fill(buf, sizeof(buf), 16, len - 4096);
    g_assert_cmpint(blk_pwrite(e->blk, len - 4096, 4096, buf, 0), ==, 0);
    uint8_t got[4096];
    g_assert_cmpint(blk_pread(e->blk, len - 4096, 4096, got), ==, 0);
    g_assert_cmpmem(buf, 4096, got, 4096);
    check_blk(e->blk, true);
}

/* Writes spread over 16 L2 tables (512-byte clusters: 32 KiB each),
 * then one flush writes them all. */
static int op_flush_dirty(Env *e)
{
    e->vol_off = 0;
    e->vol_len = e->m->size;
    for (uint64_t i = 0; i < 16; i++) {
        uint64_t off = i * 32 * KiB + 512;
        uint8_t buf[3000];
        pattern_fill(buf, sizeof(buf), 17 + i, off);
        memcpy(e->alt->data + off, buf, sizeof(buf));
        int ret = blk_pwrite(e->blk, off, sizeof(buf), buf, 0);
        if (ret < 0) {
            return ret;
        }
    }
    return blk_flush(e->blk);
}

/* ---- snapshot operations ---- */

static int op_snapshot_create(Env *e)
{
    GError *err = NULL;
    int ret = snapshot_create(e->blk, "new", &err);
    if (ret < 0) {
        g_assert_nonnull(err);
        g_error_free(err);
    }
    return ret;
}

/* The pause model: prepare, commit while drained, a guest write after
 * resuming, then a flush (which completes the snapshot) and finish. */
typedef struct {
    Env *e;
    int ret;
} SplitCo;

static int coroutine_fn split_write(Env *e)
{
    uint64_t off = 100 * KiB + 7, len = 70 * KiB;
    uint8_t *buf = g_malloc(len);
    IOVector q;
    pattern_fill(buf, len, 21, off);
    memcpy(e->alt->data + off, buf, len);
    e->vol_off = off;
    e->vol_len = len;
    iovec_init_buf(&q, buf, len);
    int ret = blk_co_pwritev(e->blk, off, len, &q, 0);
    g_free(buf);
    return ret < 0 ? ret : blk_co_flush(e->blk);
}

static void coroutine_fn split_entry(void *opaque)
{
    SplitCo *c = opaque;
    BlockDriverState *bs = blk_bs(c->e->blk);
    BdrvSnapshotInfo sn = { .name = "new", .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotCreate *st;
    GError *err = NULL;
    c->ret = bdrv_co_snapshot_create_prepare(bs, &sn, &st, &err);
    if (c->ret < 0) {
        g_assert_nonnull(err);
        g_error_free(err);
        return;
    }
    bdrv_drained_begin(bs);
    bdrv_snapshot_create_commit(bs, st);
    bdrv_drained_end(bs);
    int wret = split_write(c->e);
    c->ret = bdrv_co_snapshot_create_finish(bs, st, &err);
    if (c->ret < 0) {
        g_assert_nonnull(err);
        g_error_free(err);
    }
    c->ret = wret < 0 ? wret : c->ret;
}

static int op_snapshot_split(Env *e)
{
    SplitCo c = { e, 0 };
    co_run_sync(split_entry, &c);
    return c.ret;
}

/* The new snapshot is listed only if whole; the old one survives. */
static void verify_snapshot_create(Env *e, int ret)
{
    bool listed = bdrv_snapshot_find(blk_bs(e->blk), "new", NULL);
    g_assert_true(listed || ret < 0);
    if (listed) {
        snapshot_apply_ok(e->blk, "new");
        verify_model(e->blk, e->before_recovery ? e->before_recovery : e->m);
    }
    verify_old_snapshot(e, ret);
}

static void setup_two_states(Env *e)
{
    write_pattern(e->blk, e->m, 0, 256 * KiB, 9);
    snapshot_create_ok(e->blk, "old");
    e->alt = model_copy(e->m);          /* what "old" holds */
    write_pattern(e->blk, e->m, 128 * KiB, 256 * KiB, 18);
    zero_both(e->blk, e->m, 0, 64 * KiB, 0);
}

static int op_snapshot_apply(Env *e)
{
    GError *err = NULL;
    e->apply_case = true;
    int ret = bdrv_snapshot_apply(blk_bs(e->blk), "old", &err);
    if (ret < 0) {
        g_assert_nonnull(err);
        g_error_free(err);
    }
    return ret;
}

static void verify_apply(Env *e, int ret)
{
    g_assert_true(bdrv_snapshot_find(blk_bs(e->blk), "old", NULL));
    verify_old_snapshot(e, ret);
}

static void setup_three_states(Env *e)
{
    setup_two_states(e);
    snapshot_create_ok(e->blk, "mid");
    e->snap = model_copy(e->m);
    model_free(e->alt);
    e->alt = NULL;
    write_pattern(e->blk, e->m, 300 * KiB, 100 * KiB, 19);
}

static int op_snapshot_delete(Env *e)
{
    GError *err = NULL;
    int ret = bdrv_snapshot_delete(blk_bs(e->blk), NULL, "old", &err);
    if (ret < 0) {
        g_assert_nonnull(err);
        g_error_free(err);
    }
    return ret;
}

/* "old" is gone or intact; "mid" is intact either way. */
static void verify_delete(Env *e, int ret)
{
    bool listed = bdrv_snapshot_find(blk_bs(e->blk), "old", NULL);
    g_assert_true(!listed || ret < 0);
    if (listed) {
        verify_old_snapshot(e, ret);
    }
    snapshot_apply_ok(e->blk, "mid");
    verify_model(e->blk, e->snap);
}

/* ---- check ---- */

static int op_check(Env *e)
{
    BdrvCheckResult res = { .log = g_string_new(NULL) };
    int ret = bdrv_check(blk_bs(e->blk), &res, 0);
    bool fired = blkdebug_injected(e->dbg) > 0;
    /* A failed read is reported, never taken for a clean image. */
    if (fired) {
        g_assert_true(ret < 0 || res.check_errors > 0);
        ret = ret < 0 ? ret : -EIO;
    } else {
        g_assert_cmpint(ret, ==, 0);
        g_assert_cmpint(res.corruptions + res.leaks, ==, 0);
    }
    bdrv_check_result_clear(&res);
    return ret;
}

/* ---- repair ---- */

/* Appends unused clusters to the file and marks one of them allocated in
 * the first refcount block (64 KiB clusters, 16-bit refcounts): a leak
 * for the repair to fix. */
static void make_leak(const char *path)
{
    uint64_t rt = img_header_field(path, 48, 8);
    uint64_t leak = file_size(path) / (64 * KiB) + 2;
    g_autoptr(BlockOpts) o = bopts_new();
    bopts_set(o, "driver", "file");
    GError *err = NULL;
    BlockDriverState *file = bdrv_open(path, g_steal_pointer(&o),
                                       BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    uint8_t e8[8], one[2] = { 0, 1 };
    g_assert_cmpint(bdrv_pread(file, rt, 8, e8), ==, 0);
    uint64_t rb = be64_read(e8);
    g_assert_cmpuint(rb, !=, 0);
    g_assert_cmpint(bdrv_pwrite(file, rb + 2 * leak, 2, one), ==, 0);
    g_assert_cmpint(bdrv_truncate(file, (leak + 3) * 64 * KiB, false,
                                  PREALLOC_MODE_OFF, NULL), ==, 0);
    bdrv_unref(file);
}

static void setup_leaky(Env *e)
{
    setup_snapshot(e);
    blk_unref(e->blk);
    make_leak(e->path);
    e->blk = open_with_blkdebug(e, NULL);
}

static int op_repair(Env *e)
{
    BdrvCheckResult res = { .log = g_string_new(NULL) };
    int ret = bdrv_check(blk_bs(e->blk), &res, BDRV_FIX_LEAKS |
                         BDRV_FIX_ERRORS);
    bool fired = blkdebug_injected(e->dbg) > 0;
    if (!fired) {
        g_assert_cmpint(ret, ==, 0);
        g_assert_cmpint(res.leaks_fixed, ==, 1);
        g_assert_cmpint(res.corruptions + res.leaks + res.check_errors, ==,
                        0);
    } else if (ret == 0 && !res.check_errors) {
        g_assert_cmpint(res.leaks_fixed, ==, 1);   /* it really worked */
    } else {
        ret = ret < 0 ? ret : -EIO;
    }
    bdrv_check_result_clear(&res);
    return ret;
}

/* ---- many requests in flight ---- */

static int op_qd32(Env *e)
{
    enum { N = 32 };
    e->vol_off = 0;
    e->vol_len = e->m->size;
    AioReq *r = g_new0(AioReq, N);
    int completed = 0, failures = 0;
    for (int i = 0; i < N; i++) {
        r[i].off = i * 48 * KiB + (i % 3) * 1000;
        r[i].len = 40 * KiB;
        r[i].buf = g_malloc(r[i].len);
        r[i].completed = &completed;
        pattern_fill(r[i].buf, r[i].len, 20 + i, r[i].off);
        memcpy(e->alt->data + r[i].off, r[i].buf, r[i].len);
        iovec_init_buf(&r[i].qiov, r[i].buf, r[i].len);
        blk_aio_pwritev(e->blk, r[i].off, &r[i].qiov, 0, aio_req_cb, &r[i]);
    }
    poll_until_count(&completed, N);
    for (int i = 0; i < N; i++) {
        failures += r[i].ret < 0;
        g_free(r[i].buf);
    }
    g_free(r);
    int ret = blk_flush(e->blk);
    return failures ? -EIO : ret;
}

static const FaultCase cases[] = {
    { "l2-alloc", "cluster_size=512", NULL, 4 * MiB, false, setup_small,
      op_l2_alloc, verify_l2_alloc },
    { "refblock", "cluster_size=512", NULL, 4 * MiB, false, setup_refblock,
      op_refblock, verify_refblock },
    { "reftable", "cluster_size=512,refcount_bits=64",
      "refcount-cache-size=1M", 4 * MiB, false,
      setup_reftable, op_reftable, verify_reftable },
    { "cow-backing", "cluster_size=4096", NULL, 1 * MiB, true, setup_none,
      op_cow_backing },
    { "cow-snapshot", NULL, NULL, 1 * MiB, false, setup_snapshot,
      op_cow_snapshot, verify_old_snapshot },
    { "cow-compressed", NULL, NULL, 1 * MiB, false, setup_compressed,
      op_cow_compressed },
    { "compressed-write", "compression_type=zstd", NULL, 1 * MiB, false,
      setup_compressed, op_compressed_write },
    { "discard", "cluster_size=4096", NULL, 2 * MiB, false, setup_data,
      op_discard_reuse },
    { "write-zeroes", NULL, NULL, 2 * MiB, false, setup_data,
      op_write_zeroes },
    { "truncate", "cluster_size=4096", NULL, 4 * MiB, false, setup_small,
      op_truncate, verify_truncate },
    { "flush-dirty", "cluster_size=512", NULL, 4 * MiB, false, setup_none,
      op_flush_dirty },
    { "qd32", "cluster_size=4096", NULL, 2 * MiB, false, setup_data, op_qd32 },
    { "snapshot-create", NULL, NULL, 1 * MiB, false, setup_snapshot,
      op_snapshot_create, verify_snapshot_create },
    { "snapshot-apply", NULL, NULL, 1 * MiB, false, setup_two_states,
      op_snapshot_apply, verify_apply },
    { "snapshot-delete", NULL, NULL, 1 * MiB, false, setup_three_states,
      op_snapshot_delete, verify_delete },
    { "check", NULL, NULL, 1 * MiB, false, setup_snapshot, op_check },
    { "repair", NULL, NULL, 1 * MiB, false, setup_leaky, op_repair },
    { "snapshot-split", NULL, NULL, 1 * MiB, false, setup_snapshot,
      op_snapshot_split, verify_snapshot_create },
};

typedef struct {
    const FaultCase *c;
    unsigned kind;
} SweepArg;

static void run_sweep(gconstpointer data)
{
    const SweepArg *a = data;
    test_dir_setup_in_memory();
    sweep(a->c, a->kind);
    test_dir_cleanup();
}

static void add_sweeps(const FaultCase *c)
{
    static const struct { unsigned kind; const char *name; } kinds[] = {
        { BLKDBG_OP_READ, "read" }, { BLKDBG_OP_WRITE, "write" },
        { BLKDBG_OP_FLUSH, "flush" }, { BLKDBG_OP_ANY, "dead-disk" },
    };
    for (guint k = 0; k < G_N_ELEMENTS(kinds); k++) {
        SweepArg *a = g_new(SweepArg, 1);
        *a = (SweepArg){ c, kinds[k].kind };
        g_autofree char *name = g_strdup_printf("/blkdebug/%s/%s", c->name,
                                                kinds[k].name);
        g_test_add_data_func_full(name, a, run_sweep, g_free);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        add_sweeps(&cases[i]);
    }
    return g_test_run();
}
