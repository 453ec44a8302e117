/*
 * test-dirty-bitmap.c - dirty bitmaps through the block layer: writes
 * mark the right bits at several granularities, enable/disable, merge
 * across nodes, the successor mechanism for backup jobs, every
 * transaction action's commit and abort, qcow2 persistence (store, close,
 * reopen; kill at every write of the store; in_use after a crash), each
 * image also checked by the real qemu-img.
 */
#include "image-test.h"
#include "block/blkdebug.h"
#include "block/dirty-bitmap.h"
#include "block/txn-bitmap.h"

#define MiB (1024 * 1024)

static BlockDriverState *open_bs(BlockBackend *blk)
{
    return blk_bs(blk);
}

static void write_at(BlockDriverState *bs, uint64_t off, uint64_t len)
{
    uint8_t *buf = g_malloc(len);
    memset(buf, 0x5a, len);
    g_assert_cmpint(bdrv_pwrite(bs, off, len, buf), ==, 0);
    g_free(buf);
}

/* Runs one transaction; expect_ok false: it must fail. */
static void run_txn(Transaction *t, bool expect_ok)
{
    GError *err = NULL;
    int ret = txn_run(t, &err);
    if (expect_ok) {
        g_assert_no_error(err);
        g_assert_cmpint(ret, ==, 0);
    } else {
        g_assert_nonnull(err);
        g_assert_cmpint(ret, <, 0);
        g_clear_error(&err);
    }
}

static void add_bitmap(const char *node, const char *name, uint32_t gran,
                       bool persistent)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_add(t, node, name, gran != 0, gran, persistent, false);
    run_txn(t, true);
}

static BdrvDirtyBitmap *bm_of(BlockDriverState *bs, const char *name)
{
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(bs, name);
    g_assert_nonnull(bm);
    return bm;
}

static BlockBackend *new_image(const char *file, uint64_t size,
                               const char *node)
{
    g_autofree char *p = test_path(file);
    g_unlink(p);
    img_create(p, size, NULL);
    g_autofree char *o = g_strdup_printf("node-name=%s", node);
    return img_open_opts(p, o, NULL);
}

/* ---- marking ---- */

static void test_marking(void)
{
    BlockBackend *blk = new_image("m.qcow2", 64 * MiB, "m");
    BlockDriverState *bs = open_bs(blk);
    add_bitmap("m", "g512", 512, false);
    add_bitmap("m", "g64k", 0, false);          /* default: cluster size */
    add_bitmap("m", "g1m", MiB, false);
    g_assert_cmpuint(bdrv_dirty_bitmap_granularity(bm_of(bs, "g64k")), ==,
                     65536);
    write_at(bs, 1000, 100);                    /* 512: chunks 1, 2 */
    g_assert_cmpint(bdrv_pwrite_zeroes(bs, 5 * MiB, 4096, 0), ==, 0);
    g_assert_cmpint(bdrv_pdiscard(bs, 10 * MiB, 65536), ==, 0);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "g512")), ==,
                     1024 + 4096 + 65536);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "g64k")), ==,
                     3 * 65536);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "g1m")), ==, 3 * MiB);
    BdrvDirtyBitmap *b = bm_of(bs, "g512");
    g_assert_true(bdrv_dirty_bitmap_get(b, 512));
    g_assert_false(bdrv_dirty_bitmap_get(b, 0));
    g_assert_false(bdrv_dirty_bitmap_get(b, 1536));
    uint64_t s, l;
    g_assert_true(bdrv_dirty_bitmap_next_dirty_area(b, 1536, 64 * MiB,
                                                    UINT64_MAX, &s, &l));
    g_assert_cmpuint(s, ==, 5 * MiB);
    g_assert_cmpuint(l, ==, 4096);

    /* disable / enable */
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_disable(t, "m", "g1m");
    run_txn(t, true);
    write_at(bs, 20 * MiB, 1);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "g1m")), ==, 3 * MiB);
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_enable(t, "m", "g1m");
    run_txn(t, true);
    write_at(bs, 30 * MiB, 1);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "g1m")), ==, 4 * MiB);

    /* resize: bitmaps follow */
    GError *err = NULL;
    g_assert_cmpint(bdrv_truncate(bs, 128 * MiB, false, PREALLOC_MODE_OFF,
                                  &err), ==, 0);
    g_assert_cmpuint(bdrv_dirty_bitmap_size(b), ==, 128 * MiB);
    write_at(bs, 100 * MiB, 1);
    g_assert_true(bdrv_dirty_bitmap_get(b, 100 * MiB));
    blk_unref(blk);
}

/* ---- merge across nodes, errors ---- */

static void test_merge(void)
{
    BlockBackend *a = new_image("a.qcow2", 16 * MiB, "na");
    BlockBackend *b = new_image("b.qcow2", 16 * MiB, "nb");
    BlockBackend *c = new_image("c.qcow2", 8 * MiB, "nc");
    add_bitmap("na", "t", 65536, false);
    add_bitmap("na", "l", 4096, false);
    add_bitmap("nb", "x", 512, false);
    add_bitmap("nc", "small", 0, false);
    write_at(blk_bs(a), 0, 1);
    write_at(blk_bs(b), 3 * MiB, 1);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_disable(t, "na", "l");
    run_txn(t, true);
    write_at(blk_bs(a), 7 * MiB, 1);            /* only "t" sees it */
    TxnBitmapSource src[] = { { NULL, "l" }, { "nb", "x" } };
    /* Clear t first in the same transaction: merge applies after it. */
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_clear(t, "na", "t");
    txn_add_bitmap_merge(t, "na", "t", src, 2);
    run_txn(t, true);
    BdrvDirtyBitmap *tb = bm_of(blk_bs(a), "t");
    g_assert_cmpuint(bdrv_dirty_bitmap_count(tb), ==, 2 * 65536);
    g_assert_true(bdrv_dirty_bitmap_get(tb, 3 * MiB));
    g_assert_false(bdrv_dirty_bitmap_get(tb, 7 * MiB));
    /* sources unchanged */
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(blk_bs(b), "x")), ==, 512);
    /* different sizes: refused, target unchanged */
    TxnBitmapSource bad[] = { { "nc", "small" } };
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_merge(t, "na", "t", bad, 1);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_nonnull(strstr(err->message, "different sizes"));
    g_clear_error(&err);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(tb), ==, 2 * 65536);
    /* error texts */
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_add(t, "na", "t", false, 0, false, false);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "Bitmap already exists: t");
    g_clear_error(&err);
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_clear(t, "nope", "t");
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "Node 'nope' not found");
    g_clear_error(&err);
    blk_unref(a);
    blk_unref(b);
    blk_unref(c);
}

/* ---- successors ---- */

static void test_successor(void)
{
    BlockBackend *blk = new_image("s.qcow2", 16 * MiB, "s");
    BlockDriverState *bs = blk_bs(blk);
    add_bitmap("s", "inc", 65536, false);
    BdrvDirtyBitmap *bm = bm_of(bs, "inc");
    write_at(bs, 0, 1);
    GError *err = NULL;
    /* success: the bitmap ends with only the writes made during the job */
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &err), ==, 0);
    g_assert_true(bdrv_dirty_bitmap_busy(bm));
    g_assert_true(bdrv_dirty_bitmap_recording(bm));
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &err), <, 0);
    g_clear_error(&err);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_clear(t, "s", "inc");
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "Bitmap 'inc' is currently in use by "
                    "another operation and cannot be used");
    g_clear_error(&err);
    write_at(bs, MiB, 1);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, 65536);
    bdrv_dirty_bitmap_abdicate(bm);
    g_assert_false(bdrv_dirty_bitmap_busy(bm));
    g_assert_false(bdrv_dirty_bitmap_get(bm, 0));
    g_assert_true(bdrv_dirty_bitmap_get(bm, MiB));
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, 65536);
    /* failure: everything merged back */
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &err), ==, 0);
    write_at(bs, 2 * MiB, 1);
    bdrv_dirty_bitmap_reclaim(bm);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, 2 * 65536);
    g_assert_true(bdrv_dirty_bitmap_enabled(bm));
    write_at(bs, 3 * MiB, 1);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, 3 * 65536);
    /* only the named bitmap is left */
    g_assert_null(bdrv_dirty_bitmap_next(bs, bm));
    g_assert_true(bdrv_dirty_bitmap_next(bs, NULL) == bm);
    blk_unref(blk);
}

/* ---- commit and abort of every action ---- */

static int coroutine_fn fail_prepare(void *opaque, Transaction *t,
                                     GError **errp)
{
    error_setg(errp, "injected");
    return -EIO;
}

static void no_commit(void *opaque)
{
    g_assert_not_reached();
}

static void coroutine_fn no_abort(void *opaque)
{
}

static const TxnActionDriver failing = {
    .type = "test-fail", .prepare = fail_prepare, .commit = no_commit,
    .abort = no_abort,
};

typedef struct Snap {
    int n;
    char *desc;
} Snap;

static gint cmp_strp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A text snapshot of the bitmaps' state and bits, sorted by name (the
 * list order is not part of what a reopen keeps). */
static char *describe_sel(BlockDriverState *bs, bool persistent_only)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL); bm;
         bm = bdrv_dirty_bitmap_next(bs, bm)) {
        if (persistent_only && !bdrv_dirty_bitmap_persistent(bm)) {
            continue;
        }
        GString *g = g_string_new(NULL);
        g_string_append_printf(g, "%s:%u:%d%d%d:", bdrv_dirty_bitmap_name(bm),
                               bdrv_dirty_bitmap_granularity(bm),
                               bdrv_dirty_bitmap_enabled(bm),
                               bdrv_dirty_bitmap_persistent(bm),
                               bdrv_dirty_bitmap_hidden(bm));
        uint64_t s, l, pos = 0;
        while (bdrv_dirty_bitmap_next_dirty_area(bm, pos, UINT64_MAX,
                                                 UINT64_MAX, &s, &l)) {
            g_string_append_printf(g, "[%" G_GUINT64_FORMAT "+%"
                                   G_GUINT64_FORMAT "]", s, l);
            pos = s + l;
        }
        g_string_append_c(g, ';');
        g_ptr_array_add(parts, g_string_free(g, FALSE));
    }
    g_ptr_array_sort(parts, cmp_strp);
    g_ptr_array_add(parts, NULL);
    char *r = g_strjoinv("", (char **)parts->pdata);
    g_ptr_array_free(parts, TRUE);
    return r;
}

static char *describe(BlockDriverState *bs)
{
    return describe_sel(bs, false);
}

typedef void (*AddAction)(Transaction *t);

static void act_add(Transaction *t)
{
    txn_add_bitmap_add(t, "x", "new", true, 4096, true, true);
}
static void act_remove(Transaction *t)
{
    txn_add_bitmap_remove(t, "x", "p");
}
static void act_clear(Transaction *t)
{
    txn_add_bitmap_clear(t, "x", "p");
}
static void act_enable(Transaction *t)
{
    txn_add_bitmap_enable(t, "x", "off");
}
static void act_disable(Transaction *t)
{
    txn_add_bitmap_disable(t, "x", "p");
}
static void act_merge(Transaction *t)
{
    TxnBitmapSource s[] = { { NULL, "off" }, { "x", "p" } };
    txn_add_bitmap_merge(t, "x", "off", s, 2);
}

static void test_txn_commit_abort(void)
{
    static const AddAction acts[] = { act_add, act_remove, act_clear,
                                      act_enable, act_disable, act_merge };
    for (size_t i = 0; i < G_N_ELEMENTS(acts); i++) {
        BlockBackend *blk = new_image("x.qcow2", 8 * MiB, "x");
        BlockDriverState *bs = blk_bs(blk);
        add_bitmap("x", "p", 65536, true);
        add_bitmap("x", "off", 512, false);
        write_at(bs, 0, 1);
        Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
        txn_add_bitmap_disable(t, "x", "off");
        run_txn(t, true);
        write_at(bs, MiB, 1);
        g_autofree char *before = describe(bs);
        /* abort: exactly the previous state */
        t = txn_new(TXN_COMPLETION_INDIVIDUAL);
        acts[i](t);
        txn_add(t, &failing, NULL);
        run_txn(t, false);
        g_autofree char *after_abort = describe(bs);
        g_assert_cmpstr(after_abort, ==, before);
        /* commit: a change */
        t = txn_new(TXN_COMPLETION_INDIVIDUAL);
        acts[i](t);
        run_txn(t, true);
        g_autofree char *after_commit = describe(bs);
        g_assert_cmpstr(after_commit, !=, before);
        blk_unref(blk);
        g_autofree char *p = test_path("x.qcow2");
        qemu_check(p, false);
    }
}

/* An added bitmap is usable by later actions of the same transaction and
 * starts recording only at the commit. */
static void test_txn_add_then_merge(void)
{
    BlockBackend *blk = new_image("y.qcow2", 8 * MiB, "y");
    BlockDriverState *bs = blk_bs(blk);
    add_bitmap("y", "a", 65536, false);
    write_at(bs, 0, 1);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_add(t, "y", "b", false, 0, false, true);
    TxnBitmapSource s[] = { { NULL, "a" } };
    txn_add_bitmap_merge(t, "y", "b", s, 1);
    txn_add_bitmap_clear(t, "y", "a");
    run_txn(t, true);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "b")), ==, 65536);
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm_of(bs, "a")), ==, 0);
    g_assert_false(bdrv_dirty_bitmap_enabled(bm_of(bs, "b")));
    blk_unref(blk);
}

/* ---- persistence ---- */

static void test_persist_reopen(void)
{
    g_autofree char *p = test_path("p.qcow2");
    BlockBackend *blk = new_image("p.qcow2", 100 * MiB + 512, "p");
    BlockDriverState *bs = blk_bs(blk);
    add_bitmap("p", "g512", 512, true);
    add_bitmap("p", "g64k", 65536, true);
    add_bitmap("p", "temp", 65536, false);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_add(t, "p", "off", true, 1 << 20, true, true);
    run_txn(t, true);
    GRand *r = g_rand_new_with_seed(7);
    for (int i = 0; i < 200; i++) {
        write_at(bs, g_rand_int_range(r, 0, 100 * MiB), 1 + g_rand_int_range(r,
                 0, 70000));
    }
    write_at(bs, 100 * MiB, 512);               /* the last partial chunk */
    g_rand_free(r);
    g_autofree char *before = describe_sel(bs, true);
    blk_unref(blk);
    qemu_check(p, false);
    blk = img_open_opts(p, "node-name=p", NULL);
    bs = blk_bs(blk);
    g_assert_null(bdrv_dirty_bitmap_find(bs, "temp"));
    g_autofree char *after = describe(bs);
    g_assert_cmpstr(after, ==, before);
    g_assert_false(bdrv_dirty_bitmap_inconsistent(bm_of(bs, "g512")));
    /* remove: gone from the image at once */
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_remove(t, "p", "g64k");
    run_txn(t, true);
    check_blk(blk, false);
    /* in_use after a crash: copy the file while it is open read-write */
    g_autofree char *crash = test_path("crash.qcow2");
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(p, &data, &len, NULL));
    g_assert_true(g_file_set_contents(crash, data, len, NULL));
    blk_unref(blk);
    qemu_check(p, false);
    blk = img_open_opts(crash, "node-name=c", NULL);
    bs = blk_bs(blk);
    BdrvDirtyBitmap *bm = bm_of(bs, "g512");
    g_assert_true(bdrv_dirty_bitmap_inconsistent(bm));
    g_assert_null(bdrv_dirty_bitmap_find(bs, "g64k"));
    GError *err = NULL;
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_enable(t, "c", "g512");
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "Bitmap 'g512' is inconsistent and "
                    "cannot be used");
    g_clear_error(&err);
    blk_unref(blk);                             /* kept as it was */
    qemu_check(crash, false);
    blk = img_open_opts(crash, "node-name=c", NULL);
    g_assert_true(bdrv_dirty_bitmap_inconsistent(bm_of(blk_bs(blk), "g512")));
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_remove(t, "c", "g512");
    run_txn(t, true);
    blk_unref(blk);
    qemu_check(crash, false);
}

/* Kill (every later write fails) at each write of the store at close. */
static void test_persist_kill(void)
{
    g_autofree char *p = test_path("k.qcow2");
    uint64_t nth;
    for (nth = 1;; nth++) {
        g_unlink(p);
        img_create(p, 32 * MiB, NULL);
        g_autofree char *o = g_strdup_printf(
            "node-name=k,file.driver=blkdebug,file.file.filename=%s", p);
        BlockBackend *blk = img_open_opts(p, o, NULL);
        BlockDriverState *bs = blk_bs(blk);
        BlockDriverState *dbg = bdrv_file_bs(bs);
        add_bitmap("k", "a", 4096, true);
        add_bitmap("k", "b", 65536, true);
        write_at(bs, 0, 3 * MiB);
        write_at(bs, 20 * MiB, 1);
        g_assert_cmpint(bdrv_flush(bs), ==, 0);
        g_autofree char *before = describe_sel(bs, true);
        BlkdebugRule rule = { .ops = BLKDBG_OP_WRITE | BLKDBG_OP_FLUSH,
                              .nth = nth, .offset = -1, .err = EIO };
        g_assert_true(blkdebug_add_rule(dbg, &rule));
        blk_unref(blk);     /* the store runs here */
        bool fired;
        {
            /* The rule fired iff the close issued at least nth writes;
             * find out by reopening: the store either completed or not. */
            BlockBackend *b2 = img_open_opts(p, "node-name=k2", NULL);
            BlockDriverState *b2s = blk_bs(b2);
            BdrvDirtyBitmap *a = bdrv_dirty_bitmap_find(b2s, "a");
            fired = !a || bdrv_dirty_bitmap_inconsistent(a);
            if (!fired) {
                /* complete store: same bits (names reversed in order
                 * only if the directory order differs: compare per name) */
                g_autofree char *after = describe_sel(b2s, true);
                g_assert_cmpstr(after, ==, before);
            }
            check_blk(b2, true);
            blk_unref(b2);
        }
        qemu_check(p, true);
        if (!fired) {
            break;
        }
        g_assert_cmpuint(nth, <, 100);
    }
    g_assert_cmpuint(nth, >, 3);    /* the store was cut several times */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup();
    g_test_add_func("/dirty-bitmap/marking", test_marking);
    g_test_add_func("/dirty-bitmap/merge", test_merge);
    g_test_add_func("/dirty-bitmap/successor", test_successor);
    g_test_add_func("/dirty-bitmap/txn-commit-abort", test_txn_commit_abort);
    g_test_add_func("/dirty-bitmap/txn-add-then-merge",
                    test_txn_add_then_merge);
    g_test_add_func("/dirty-bitmap/persist-reopen", test_persist_reopen);
    g_test_add_func("/dirty-bitmap/persist-kill", test_persist_kill);
    int ret = g_test_run();
    test_dir_cleanup();
    return ret;
}
