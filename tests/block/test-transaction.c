/*
 * test-transaction.c - the transaction core (block/transaction.c) and the
 * snapshot actions (block/txn-snapshot.c).
 *
 * Core: a fake action driver records its calls, so the phase order and
 * guarantees are checked exactly (abort in reverse on a prepare failure,
 * one of commit/abort per prepared action, clean always, undo when a
 * finish fails, stats filled).
 *
 * Snapshots on real qcow2 files: a writer thread keeps handing writes to
 * the main loop (aio_bh_schedule) while a transaction snapshots three
 * disks; a marker action in the same transaction notes, inside the
 * drained section, which writes were acknowledged.  Each snapshot must
 * hold exactly those.  Failures injected at each step (overlay creation,
 * flush, ENOSPC, a later action failing) must leave the graph, the
 * contents (sha256) and the folder's files as they were; and EIO/ENOSPC
 * at every write and flush of a multi-disk internal snapshot leaves it
 * whole or absent, the data and earlier snapshots intact.
 */
#include "block/blkdebug.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/transaction.h"
#include "block/txn-journal.h"
#include "block/txn-snapshot.h"
#include "util/main-loop.h"
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NDISK 3
#define DISK_SIZE (4 << 20)
#define BLK 4096
#define NWRITES 300

/* ---- fake actions ---- */

typedef struct Fake {
    GString *log;
    int id;
    bool fail_prepare, fail_finish;
} Fake;

static void fake_log(Fake *f, const char *what)
{
    g_string_append_printf(f->log, "%s%d ", what, f->id);
}

static int coroutine_fn fake_prepare(void *o, Transaction *t, GError **errp)
{
    Fake *f = o;
    fake_log(f, "P");
    if (f->fail_prepare) {
        error_setg(errp, "prepare %d failed", f->id);
        return -EIO;
    }
    return 0;
}

static void fake_commit(void *o) { fake_log(o, "C"); }
static void coroutine_fn fake_abort(void *o) { fake_log(o, "A"); }
static void coroutine_fn fake_undo(void *o) { fake_log(o, "U"); }
static void fake_clean(void *o) { fake_log(o, "X"); g_free(o); }

static int coroutine_fn fake_finish(void *o, GError **errp)
{
    Fake *f = o;
    fake_log(f, "F");
    if (f->fail_finish) {
        error_setg(errp, "finish %d failed", f->id);
        return -EIO;
    }
    return 0;
}

static const TxnActionDriver fake_driver = {
    .type = "abort", .prepare = fake_prepare, .commit = fake_commit,
    .abort = fake_abort, .finish = fake_finish, .undo = fake_undo,
    .clean = fake_clean,
};

static void add_fake(Transaction *t, GString *log, int id, bool fp, bool ff)
{
    Fake *f = g_new0(Fake, 1);
    *f = (Fake){ log, id, fp, ff };
    txn_add(t, &fake_driver, f);
}

/* The finish phase may run actions side by side: compare as sets there. */
static void assert_log(GString *log, const char *expect)
{
    g_autofree char *got = g_strstrip(g_strdup(log->str));
    g_auto(GStrv) a = g_strsplit(got, " ", -1);
    g_auto(GStrv) b = g_strsplit(expect, " ", -1);
    g_assert_cmpuint(g_strv_length(a), ==, g_strv_length(b));
    for (guint i = 0; a[i]; i++) {
        if (a[i][0] == 'F' || a[i][0] == 'U') {
            g_assert_true(g_strv_contains((const char *const *)b, a[i]));
        } else {
            g_assert_cmpstr(a[i], ==, b[i]);
        }
    }
}

static void test_core_success(void)
{
    g_autoptr(GString) log = g_string_new(NULL);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    for (int i = 1; i <= 3; i++) {
        add_fake(t, log, i, false, false);
    }
    g_assert_cmpint(txn_run(t, NULL), ==, 0);
    assert_log(log, "P1 P2 P3 C1 C2 C3 F1 F2 F3 X1 X2 X3");
    const TxnStats *st = txn_last_stats();
    g_assert_true(st->valid && st->committed);
    g_assert_cmpuint(st->n_actions, ==, 3);
    g_assert_cmpint(st->total_ns, >=, st->drained_ns);
    g_assert_cmpint(st->total_ns, >, 0);
}

static void test_core_prepare_fails(void)
{
    g_autoptr(GString) log = g_string_new(NULL);
    GError *err = NULL;
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add_fake(t, log, 1, false, false);
    add_fake(t, log, 2, false, false);
    add_fake(t, log, 3, true, false);
    add_fake(t, log, 4, false, false);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "prepare 3 failed");
    g_error_free(err);
    /* 3 failed: 2 and 1 abort in reverse; 4 never prepared; all clean */
    assert_log(log, "P1 P2 P3 A2 A1 X1 X2 X3 X4");
    g_assert_false(txn_last_stats()->committed);
    g_assert_cmpint(txn_last_stats()->drained_ns, ==, 0);
}

/* Parallel prepares: each yields to the loop once, so a run overlaps;
 * the outcome must be the in-order one. */
static int par_running, par_max;

static int coroutine_fn par_prepare(void *o, Transaction *t, GError **errp)
{
    Fake *f = o;
    par_running++;
    par_max = MAX(par_max, par_running);
    co_yield_to_loop();
    par_running--;
    fake_log(f, "P");
    if (f->fail_prepare) {
        error_setg(errp, "prepare %d failed", f->id);
        return -EIO;
    }
    return 0;
}

static const TxnActionDriver par_driver = {
    .type = "abort", .parallel_prepare = true, .prepare = par_prepare,
    .commit = fake_commit, .abort = fake_abort, .clean = fake_clean,
};

static void add_par(Transaction *t, GString *log, int id, bool fp)
{
    Fake *f = g_new0(Fake, 1);
    *f = (Fake){ log, id, fp, false };
    txn_add(t, &par_driver, f);
}

static void test_core_parallel_prepare(void)
{
    g_autoptr(GString) log = g_string_new(NULL);
    GError *err = NULL;
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    par_max = 0;
    add_par(t, log, 1, false);
    add_par(t, log, 2, false);
    add_par(t, log, 3, false);
    g_assert_cmpint(txn_run(t, NULL), ==, 0);
    g_assert_cmpint(par_max, ==, 3);
    assert_log(log, "P1 P2 P3 C1 C2 C3 X1 X2 X3");

    /* 2 and 3 fail side by side: 2's error; 1 and 4 (which prepared in
     * the same run) abort in reverse; the sequential action 5 after the
     * run never prepares. */
    g_string_truncate(log, 0);
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add_par(t, log, 1, false);
    add_par(t, log, 2, true);
    add_par(t, log, 3, true);
    add_par(t, log, 4, false);
    add_fake(t, log, 5, false, false);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "prepare 2 failed");
    g_error_free(err);
    assert_log(log, "P1 P2 P3 P4 A4 A1 X1 X2 X3 X4 X5");
}

static void test_core_finish_fails(void)
{
    g_autoptr(GString) log = g_string_new(NULL);
    GError *err = NULL;
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add_fake(t, log, 1, false, false);
    add_fake(t, log, 2, false, true);
    add_fake(t, log, 3, false, false);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "finish 2 failed");
    g_error_free(err);
    assert_log(log, "P1 P2 P3 C1 C2 C3 F1 F2 F3 U3 U1 X1 X2 X3");
}

static void test_core_grouped(void)
{
    GError *err = NULL;
    Transaction *t = txn_new(TXN_COMPLETION_GROUPED);
    txn_add_snapshot_internal(t, "nosuch", "s");
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_cmpstr(err->message, ==, "Action "
                    "'blockdev-snapshot-internal-sync' does not support "
                    "Transaction property completion-mode = grouped");
    g_error_free(err);
}

/* ---- disks ---- */

typedef struct Disks {
    char *dir;
    char *path[NDISK];
    BlockDriverState *bs[NDISK];   /* the format nodes opened */
    BlockDriverState *dbg[NDISK];  /* blkdebug under each */
    BlockBackend *blk[NDISK];
} Disks;

/* Opens the existing images through blkdebug (a read-write open also
 * resolves a transaction journal left beside them). */
static void disks_attach(Disks *d)
{
    for (int i = 0; i < NDISK; i++) {
        BlockOpts *o = bopts_new();
        g_autofree char *nn = g_strdup_printf("n%d", i);
        g_autofree char *dn = g_strdup_printf("dbg%d", i);
        bopts_set(o, "driver", "qcow2");
        bopts_set(o, "node-name", nn);
        bopts_set(o, "file.driver", "blkdebug");
        bopts_set(o, "file.node-name", dn);
        bopts_set(o, "file.file.driver", "file");
        bopts_set(o, "file.file.filename", d->path[i]);
        GError *err = NULL;
        d->bs[i] = bdrv_open(NULL, o, BDRV_O_RDWR, &err);
        g_assert_no_error(err);
        d->dbg[i] = bdrv_find_node(dn);
        d->blk[i] = blk_new();
        blk_insert_bs(d->blk[i], d->bs[i]);
        g_autofree char *name = g_strdup_printf("disk%d", i);
        blk_set_name(d->blk[i], name);
    }
}

static void disks_open(Disks *d)
{
    d->dir = g_dir_make_tmp("xblk-txn-XXXXXX", NULL);
    for (int i = 0; i < NDISK; i++) {
        d->path[i] = g_strdup_printf("%s/d%d.qcow2", d->dir, i);
        g_autoptr(BlockOpts) co = bopts_new();
        bopts_set(co, "size", "4194304");
        g_assert_cmpint(bdrv_create("qcow2", d->path[i], co, NULL), ==, 0);
    }
    disks_attach(d);
}

static void disks_close(Disks *d)
{
    for (int i = 0; i < NDISK; i++) {
        blk_unref(d->blk[i]);
        bdrv_unref(d->bs[i]);
    }
}

static void disks_free(Disks *d)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", d->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    for (int i = 0; i < NDISK; i++) {
        g_free(d->path[i]);
    }
    g_free(d->dir);
}

static char *blk_sha256(BlockBackend *blk)
{
    g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_SHA256);
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    for (int64_t off = 0; off < DISK_SIZE; off += 1 << 20) {
        g_assert_cmpint(blk_pread(blk, off, 1 << 20, buf), ==, 0);
        g_checksum_update(c, buf, 1 << 20);
    }
    return g_strdup(g_checksum_get_string(c));
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *dir_listing(const char *dir)
{
    g_autoptr(GDir) g = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(g))) {
        g_ptr_array_add(names, g_strdup(n));
    }
    g_ptr_array_sort(names, cmp_names);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(",", (char **)names->pdata);
}

/* Runs t, which must fail, and checks that nothing changed. */
static void expect_rollback(Disks *d, Transaction *t, const char *msg_part)
{
    char *hash[NDISK];
    BlockDriverState *root[NDISK];
    for (int i = 0; i < NDISK; i++) {
        hash[i] = blk_sha256(d->blk[i]);
        root[i] = blk_bs(d->blk[i]);
    }
    g_autofree char *files = dir_listing(d->dir);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_nonnull(err);
    if (!strstr(err->message, msg_part)) {
        g_error("error '%s' lacks '%s'", err->message, msg_part);
    }
    g_error_free(err);
    for (int i = 0; i < NDISK; i++) {
        blkdebug_clear_rules(d->dbg[i]);
        g_assert_true(blk_bs(d->blk[i]) == root[i]);
        g_assert_null(bdrv_backing_bs(root[i]));
        g_autofree char *h = blk_sha256(d->blk[i]);
        g_assert_cmpstr(h, ==, hash[i]);
        g_free(hash[i]);
        BdrvSnapshotInfo *list;
        int n = bdrv_snapshot_list(root[i], &list);
        g_assert_cmpint(n, ==, 0);
        bdrv_snapshot_list_free(list, n);
    }
    g_autofree char *after = dir_listing(d->dir);
    g_assert_cmpstr(after, ==, files);
    g_assert_null(bdrv_find_node("ov0"));
}

static void fill(Disks *d)
{
    uint8_t buf[BLK];
    for (int i = 0; i < NDISK; i++) {
        memset(buf, 0x40 + i, sizeof(buf));
        g_assert_cmpint(blk_pwrite(d->blk[i], 0, BLK, buf, 0), ==, 0);
    }
}

static void test_fail_each_step(void)
{
    Disks d = { 0 };
    disks_open(&d);
    fill(&d);
    g_autofree char *ov0 = g_strdup_printf("%s/ov0.qcow2", d.dir);
    g_autofree char *ov1 = g_strdup_printf("%s/ov1.qcow2", d.dir);

    /* overlay creation fails (no such folder), after two prepared */
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal(t, "disk0", "s");
    txn_add_snapshot_sync(t, "disk1", NULL, ov0, "ov0", NULL, false);
    txn_add_snapshot_sync(t, "disk2", NULL, "/nonexistent/x.qcow2", "ov2",
                          NULL, false);
    expect_rollback(&d, t, "Could not create '/nonexistent/x.qcow2'");

    /* I/O error on the flush of the old top */
    BlkdebugRule flush_eio = { .ops = BLKDBG_OP_FLUSH, .offset = -1,
                               .err = EIO };
    blkdebug_add_rule(d.dbg[2], &flush_eio);
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_sync(t, "disk0", NULL, ov0, "ov0", NULL, false);
    txn_add_snapshot_sync(t, "disk2", NULL, ov1, "ov1", NULL, false);
    expect_rollback(&d, t, "An IO error has occurred");
    g_assert_cmpuint(blkdebug_injected(d.dbg[2]), >, 0);

    /* ENOSPC while the internal snapshot allocates */
    BlkdebugRule nospc = { .ops = BLKDBG_OP_WRITE | BLKDBG_OP_ZERO,
                           .offset = -1, .err = ENOSPC };
    blkdebug_add_rule(d.dbg[1], &nospc);
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_sync(t, "disk0", NULL, ov0, "ov0", NULL, false);
    txn_add_snapshot_internal(t, "disk1", "s");
    expect_rollback(&d, t, "");
    g_assert_cmpuint(blkdebug_injected(d.dbg[1]), >, 0);

    /* duplicate names, missing and read-only nodes, a later abort */
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal(t, "disk0", "s");
    txn_add_snapshot_internal(t, "disk0", "s");
    expect_rollback(&d, t, "Snapshot with name 's' already exists on "
                    "device 'disk0'");
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_sync(t, "disk0", NULL, ov0, "ov0", NULL, false);
    txn_add_snapshot_sync(t, NULL, "n1", ov1, "n2", NULL, false);
    expect_rollback(&d, t, "New overlay node-name already in use");
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_sync(t, "disk0", NULL, ov0, "ov0", NULL, false);
    txn_add_snapshot_internal(t, "nosuch", "s");
    expect_rollback(&d, t, "Cannot find device='nosuch' nor "
                    "node-name='nosuch'");
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_sync(t, "disk0", NULL, ov0, "ov0", NULL, false);
    txn_add_snapshot_internal(t, "disk1", "s");
    txn_add_abort(t);
    expect_rollback(&d, t, "Transaction aborted using Abort action");

    /* read-only node */
    d.bs[2]->read_only = true;
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal(t, "disk0", "s");
    txn_add_snapshot_internal(t, "disk2", "s");
    expect_rollback(&d, t, "Device 'disk2' is read only");
    d.bs[2]->read_only = false;

    disks_close(&d);
    disks_free(&d);
}

/* ---- snapshots under a writer thread ---- */

typedef struct Write {
    int disk;
    int64_t off;
    uint8_t pat;
    IOVector qiov;
    uint8_t *buf;
    bool acked;
    bool acked_before_commit;
} Write;

static Disks *wdisks;
static Write writes[NWRITES];
static int n_acked;

static void write_done(void *opaque, int ret)
{
    Write *w = opaque;
    g_assert_cmpint(ret, ==, 0);
    w->acked = true;
    iovec_destroy(&w->qiov);
    g_free(w->buf);
    n_acked++;
}

static void write_submit(void *opaque)
{
    Write *w = opaque;
    iovec_init_buf(&w->qiov, w->buf, BLK);
    blk_aio_pwritev(wdisks->blk[w->disk], w->off, &w->qiov, 0, write_done,
                    w);
}

/* Set when the marker's prepare ran (right before the drained commit):
 * the writer holds back its second half until then, so that on a loaded
 * machine some writes still land after the commit. */
static gint txn_reached_prepare;

static gpointer writer_thread(gpointer opaque)
{
    for (int i = 0; i < NWRITES; i++) {
        while (i >= NWRITES / 2 && !g_atomic_int_get(&txn_reached_prepare)) {
            g_usleep(100);
        }
        aio_bh_schedule(write_submit, &writes[i]);
        g_usleep(100);
    }
    return NULL;
}

/* The marker: its commit runs inside the transaction's drained section. */
static void marker_commit(void *o)
{
    for (int i = 0; i < NWRITES; i++) {
        writes[i].acked_before_commit = writes[i].acked;
    }
}
static int coroutine_fn marker_prepare(void *o, Transaction *t, GError **e)
{
    g_atomic_int_set(&txn_reached_prepare, 1);
    return 0;
}
static void coroutine_fn marker_abort(void *o) { }
static void marker_nodes(void *o, GPtrArray *nodes)
{
    for (int i = 0; i < NDISK; i++) {
        g_ptr_array_add(nodes, blk_bs(wdisks->blk[i]));
    }
}
static const TxnActionDriver marker_driver = {
    .type = "abort", .prepare = marker_prepare, .add_nodes = marker_nodes,
    .commit = marker_commit, .abort = marker_abort,
};

static void writes_init(void)
{
    n_acked = 0;
    for (int i = 0; i < NWRITES; i++) {
        Write *w = &writes[i];
        *w = (Write){ .disk = i % NDISK,
                      .off = (int64_t)(i / NDISK) * BLK,
                      .pat = (uint8_t)(1 + i % 250) };
        w->buf = g_malloc(BLK);
        memset(w->buf, w->pat, BLK);
    }
}

/* Runs t (plus the marker) while the writer thread writes. */
static void run_under_writes(Disks *d, Transaction *t)
{
    wdisks = d;
    writes_init();
    g_atomic_int_set(&txn_reached_prepare, 0);
    GThread *th = g_thread_new("writer", writer_thread, NULL);
    AIO_POLL_WHILE(n_acked < NWRITES / 4);
    txn_add(t, &marker_driver, NULL);
    GError *err = NULL;
    int ret = txn_run(t, &err);
    g_atomic_int_set(&txn_reached_prepare, 1);    /* let the writer end */
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
    g_thread_join(th);
    AIO_POLL_WHILE(n_acked < NWRITES);
    int before = 0;
    for (int i = 0; i < NWRITES; i++) {
        before += writes[i].acked_before_commit;
    }
    g_assert_cmpint(before, >, 0);
    g_assert_cmpint(before, <, NWRITES);
}

static uint8_t *read_raw(const char *src, const char *snap)
{
    g_autofree char *out = g_strdup_printf("%s.raw", src);
    g_autofree char *l = snap ? g_strdup_printf("-l snapshot.name=%s", snap)
                              : g_strdup("");
    g_autofree char *cmd = g_strdup_printf("qemu-img convert -U %s -O raw "
                                           "'%s' '%s'", l, src, out);
    g_assert_cmpint(system(cmd), ==, 0);
    gchar *data;
    gsize len;
    g_assert_true(g_file_get_contents(out, &data, &len, NULL));
    g_assert_cmpuint(len, ==, DISK_SIZE);
    unlink(out);
    return (uint8_t *)data;
}

/* snapshot content of disk i: exactly the writes acknowledged before the
 * commit (newest = highest index for a block is not needed: each block
 * is written once). */
static void check_image(const uint8_t *img, int disk, bool before)
{
    for (int i = disk; i < NWRITES; i += NDISK) {
        Write *w = &writes[i];
        uint8_t expect = (!before || w->acked_before_commit) ? w->pat : 0;
        for (int k = 0; k < BLK; k += 512) {
            if (img[w->off + k] != expect) {
                g_error("disk %d write %d: %02x, expected %02x", disk, i,
                        img[w->off + k], expect);
            }
        }
    }
}

static void check_qemu_img(const char *path)
{
    g_autofree char *cmd = g_strdup_printf("qemu-img check -U '%s' "
                                           ">/dev/null", path);
    g_assert_cmpint(system(cmd), ==, 0);
}

static void test_internal_under_writes(void)
{
    Disks d = { 0 };
    disks_open(&d);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    for (int i = 0; i < NDISK; i++) {
        g_autofree char *dev = g_strdup_printf("disk%d", i);
        txn_add_snapshot_internal(t, dev, "snap");
    }
    run_under_writes(&d, t);
    g_assert_true(txn_last_stats()->committed);
    g_assert_cmpint(txn_last_stats()->drained_ns, >, 0);
    disks_close(&d);
    for (int i = 0; i < NDISK; i++) {
        check_qemu_img(d.path[i]);
        g_autofree uint8_t *snap = read_raw(d.path[i], "snap");
        check_image(snap, i, true);
        g_autofree uint8_t *now = read_raw(d.path[i], NULL);
        check_image(now, i, false);
    }
    disks_free(&d);
}

static void test_external_under_writes(void)
{
    Disks d = { 0 };
    disks_open(&d);
    char *ov[NDISK];
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    for (int i = 0; i < NDISK; i++) {
        g_autofree char *dev = g_strdup_printf("disk%d", i);
        g_autofree char *nn = g_strdup_printf("ov%d", i);
        ov[i] = g_strdup_printf("%s/ov%d.qcow2", d.dir, i);
        txn_add_snapshot_sync(t, dev, NULL, ov[i], nn, NULL, false);
    }
    run_under_writes(&d, t);
    for (int i = 0; i < NDISK; i++) {
        /* the overlay is on top, the old node beneath it */
        g_autofree char *nn = g_strdup_printf("ov%d", i);
        g_assert_true(blk_bs(d.blk[i]) == bdrv_find_node(nn));
        g_assert_true(bdrv_backing_bs(blk_bs(d.blk[i])) == d.bs[i]);
    }
    disks_close(&d);
    for (int i = 0; i < NDISK; i++) {
        check_qemu_img(d.path[i]);
        check_qemu_img(ov[i]);
        g_autofree uint8_t *base = read_raw(d.path[i], NULL);
        check_image(base, i, true);
        g_autofree uint8_t *top = read_raw(ov[i], NULL);
        check_image(top, i, false);
        g_free(ov[i]);
    }
    disks_free(&d);
}

/* blockdev-snapshot, and undo of a graph switch when a finish fails. */
static void test_external_undo(void)
{
    Disks d = { 0 };
    disks_open(&d);
    fill(&d);
    g_autofree char *ov0 = g_strdup_printf("%s/ov0.qcow2", d.dir);
    g_autoptr(GString) log = g_string_new(NULL);
    char *hash = blk_sha256(d.blk[0]);
    g_autofree char *files = dir_listing(d.dir);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_sync(t, "disk0", NULL, ov0, "ov0", NULL, false);
    add_fake(t, log, 1, false, true);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_clear_error(&err);
    g_assert_true(blk_bs(d.blk[0]) == d.bs[0]);
    g_assert_null(bdrv_find_node("ov0"));
    g_autofree char *h = blk_sha256(d.blk[0]);
    g_assert_cmpstr(h, ==, hash);
    g_autofree char *after = dir_listing(d.dir);
    g_assert_cmpstr(after, ==, files);
    g_free(hash);
    disks_close(&d);
    disks_free(&d);
}

/* ---- a fault at every request of a transaction (issue #14) ---- */

typedef struct TxnFault {
    const char *name;
    unsigned ops;
    int err;
    bool once;      /* EIO: a disk that recovers; ENOSPC: stays full */
} TxnFault;

static const TxnFault txn_faults[] = {
    { "EIO on write", BLKDBG_OP_WRITE | BLKDBG_OP_ZERO, EIO, true },
    { "EIO on flush", BLKDBG_OP_FLUSH, EIO, true },
    { "ENOSPC on write", BLKDBG_OP_WRITE | BLKDBG_OP_ZERO, ENOSPC, false },
};

static int disks_with_snapshot(Disks *d, const char *name)
{
    int n = 0;
    for (int i = 0; i < NDISK; i++) {
        BdrvSnapshotInfo sn;
        if (bdrv_snapshot_find(d->bs[i], name, &sn)) {
            bdrv_snapshot_info_clear(&sn);
            n++;
        }
    }
    return n;
}

/* qemu-img check: no corruption (exit 0, or 3 for leaks only).  Returns
 * whether it found leaks. */
static bool qemu_img_check_clean(const char *qemu_img, const char *path)
{
    /* -U: this process holds the image; it was just opened, so all its
     * metadata is on disk. */
    const char *argv[] = { qemu_img, "check", "-q", "-U", path, NULL };
    g_autofree char *out = NULL, *err_out = NULL;
    int status;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                               G_SPAWN_DEFAULT, NULL, NULL, &out, &err_out,
                               &status, NULL));
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0 && code != 3) {
        g_error("qemu-img check %s: exit %d\n%s%s", path, code, out,
                err_out);
    }
    return code == 3;
}

static void add_internal_all(Transaction *t, const char *name)
{
    for (int i = 0; i < NDISK; i++) {
        g_autofree char *dev = g_strdup_printf("disk%d", i);
        txn_add_snapshot_internal(t, dev, name);
    }
}

/*
 * A transaction of internal snapshots on every disk, with the 1st, 2nd,
 * ... write, write-zeroes or flush one disk sees failing (EIO once, or
 * ENOSPC from then on), until the transaction gets through without
 * meeting its fault.  After every attempt the disks are closed and opened
 * again (which resolves a leftover journal) and then: a failure said why;
 * the snapshot is on every disk or on none (on every one after success);
 * the data and the earlier snapshot "base" are untouched; qemu-img check
 * finds no corruption.  At the end "base" still holds its data.
 */
static void test_fault_every_request(void)
{
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    if (!qemu_img) {
        g_test_skip("qemu-img not installed");
        return;
    }
    Disks d = { 0 };
    disks_open(&d);
    fill(&d);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add_internal_all(t, "base");
    g_assert_cmpint(txn_run(t, NULL), ==, 0);
    char *base_hash[NDISK], *cur_hash[NDISK];
    uint8_t buf[BLK];
    for (int i = 0; i < NDISK; i++) {
        base_hash[i] = blk_sha256(d.blk[i]);
        memset(buf, 0x60 + i, sizeof(buf));
        g_assert_cmpint(blk_pwrite(d.blk[i], 2 * BLK, BLK, buf, 0), ==, 0);
        cur_hash[i] = blk_sha256(d.blk[i]);
    }
    uint64_t attempts = 0, injected = 0, failed = 0, kept = 0, leaky = 0;
    for (size_t f = 0; f < G_N_ELEMENTS(txn_faults); f++) {
        for (int k = 0; k < NDISK; k++) {
            for (uint64_t nth = 1;; nth++) {
                g_assert_cmpuint(nth, <, 1000);
                const TxnFault *tf = &txn_faults[f];
                BlkdebugRule rule = { .ops = tf->ops, .nth = nth,
                                      .offset = -1, .err = tf->err,
                                      .once = tf->once };
                uint64_t before = blkdebug_injected(d.dbg[k]);
                blkdebug_add_rule(d.dbg[k], &rule);
                t = txn_new(TXN_COMPLETION_INDIVIDUAL);
                add_internal_all(t, "s");
                GError *err = NULL;
                int ret = txn_run(t, &err);
                uint64_t hit = blkdebug_injected(d.dbg[k]) - before;
                blkdebug_clear_rules(d.dbg[k]);
                attempts++;
                injected += hit;
                if (ret < 0) {
                    g_assert_nonnull(err);
                    g_assert_cmpuint(strlen(err->message), >, 0);
                    g_error_free(err);
                    failed++;
                } else {
                    g_assert_null(err);
                }
                disks_close(&d);
                disks_attach(&d);
                int with = disks_with_snapshot(&d, "s");
                if (with != 0 && with != NDISK) {
                    g_error("%s at request %" PRIu64 " of disk%d: snapshot "
                            "on %d of %d disks", tf->name, nth, k, with,
                            NDISK);
                }
                g_assert_true(ret < 0 || with == NDISK);
                kept += ret < 0 && with == NDISK;
                g_assert_cmpint(disks_with_snapshot(&d, "base"), ==, NDISK);
                for (int i = 0; i < NDISK; i++) {
                    g_autofree char *h = blk_sha256(d.blk[i]);
                    g_assert_cmpstr(h, ==, cur_hash[i]);
                    leaky += qemu_img_check_clean(qemu_img, d.path[i]);
                    if (with) {
                        g_assert_cmpint(bdrv_snapshot_delete(d.bs[i], NULL,
                                                             "s", NULL), ==,
                                        0);
                    }
                }
                if (!hit) {
                    break;      /* it ran past its fault: all points done */
                }
            }
        }
    }
    for (int i = 0; i < NDISK; i++) {
        g_assert_cmpint(bdrv_snapshot_apply(d.bs[i], "base", NULL), ==, 0);
        g_autofree char *h = blk_sha256(d.blk[i]);
        g_assert_cmpstr(h, ==, base_hash[i]);
        g_free(base_hash[i]);
        g_free(cur_hash[i]);
    }
    printf("# transaction faults: %" PRIu64 " attempts, %" PRIu64
           " faults injected, %" PRIu64 " failed with an error (%" PRIu64
           " of them kept the snapshot whole), 0 split, %" PRIu64
           " qemu-img checks with leaks, 0 corrupt\n",
           attempts, injected, failed, kept, leaky);
    disks_close(&d);
    disks_free(&d);
}

/*
 * The journal's delete record (txn_journal_begin_delete) and its
 * recovery: a delete of "s" over every disk interrupted after the first
 * disk (records left, as a kill leaves them) is FINISHED by the next open
 * - "s" on no disk, no record left; a record whose delete had completed
 * never removes a newer "s" that reuses the name (and, qcow2 reusing the
 * highest id, the id) - it names the old snapshot by date and clock too;
 * a delete refuses to overwrite a record still beside an image.
 */
static void journal_snapshot_all(Disks *d, const char *name)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add_internal_all(t, name);
    g_assert_cmpint(txn_run(t, NULL), ==, 0);
}

static TxnJournal *journal_delete_begin(Disks *d, const char *name,
                                        BdrvSnapshotInfo *sn)
{
    for (int i = 0; i < NDISK; i++) {
        g_assert_true(bdrv_snapshot_find(d->bs[i], name, &sn[i]));
    }
    GError *err = NULL;
    TxnJournal *j = txn_journal_begin_delete(d->bs, sn, NDISK, &err);
    g_assert_no_error(err);
    g_assert_nonnull(j);
    return j;
}

static int journal_records(Disks *d)
{
    g_autofree char *ls = dir_listing(d->dir);
    int n = 0;
    for (const char *p = ls; (p = strstr(p, ".xblk-txn")); p++) {
        n++;
    }
    return n;
}

static void test_journal_delete(void)
{
    Disks d = { 0 };
    disks_open(&d);
    BdrvSnapshotInfo sn[NDISK];

    /* Interrupted after the first disk's delete: finished at open. */
    journal_snapshot_all(&d, "s");
    TxnJournal *j = journal_delete_begin(&d, "s", sn);
    g_assert_cmpint(journal_records(&d), ==, NDISK);
    g_assert_cmpint(bdrv_snapshot_delete(d.bs[0], sn[0].id_str, "s", NULL),
                    ==, 0);
    txn_journal_keep(j);            /* the kill */
    disks_close(&d);
    disks_attach(&d);
    g_assert_cmpint(disks_with_snapshot(&d, "s"), ==, 0);
    g_assert_cmpint(journal_records(&d), ==, 0);
    for (int i = 0; i < NDISK; i++) {
        bdrv_snapshot_info_clear(&sn[i]);
    }

    /* Interrupted before any disk's delete: finished too (begun). */
    journal_snapshot_all(&d, "s");
    txn_journal_keep(journal_delete_begin(&d, "s", sn));
    disks_close(&d);
    disks_attach(&d);
    g_assert_cmpint(disks_with_snapshot(&d, "s"), ==, 0);
    g_assert_cmpint(journal_records(&d), ==, 0);
    for (int i = 0; i < NDISK; i++) {
        bdrv_snapshot_info_clear(&sn[i]);
    }

    /* Completed, records left; a newer "s" must survive them. */
    journal_snapshot_all(&d, "s");
    j = journal_delete_begin(&d, "s", sn);
    for (int i = 0; i < NDISK; i++) {
        g_assert_cmpint(bdrv_snapshot_delete(d.bs[i], sn[i].id_str, "s",
                                             NULL), ==, 0);
    }
    /* The newer "s", made where no journal sees it (as by a process
     * that held an image the records' recovery could not open). */
    g_usleep(2000);                 /* another date, surely */
    for (int i = 0; i < NDISK; i++) {
        BdrvSnapshotInfo nsn = { .name = (char *)"s" };
        gint64 now = g_get_real_time();
        nsn.date_sec = now / G_USEC_PER_SEC;
        nsn.date_nsec = (now % G_USEC_PER_SEC) * 1000;
        g_assert_cmpint(bdrv_snapshot_create(d.bs[i], &nsn, NULL), ==, 0);
    }
    for (int i = 0; i < NDISK; i++) {
        BdrvSnapshotInfo now;
        g_assert_true(bdrv_snapshot_find(d.bs[i], "s", &now));
        g_assert_true(now.date_sec != sn[i].date_sec ||
                      now.date_nsec != sn[i].date_nsec);
        bdrv_snapshot_info_clear(&now);
    }
    GError *err = NULL;
    /* A record still there: another delete or a transaction is
     * refused, and the record stays. */
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    add_internal_all(t, "other");
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_nonnull(strstr(err->message, "interrupted transaction"));
    g_clear_error(&err);
    g_assert_cmpint(disks_with_snapshot(&d, "other"), ==, 0);
    g_assert_cmpint(journal_records(&d), ==, NDISK);
    BdrvSnapshotInfo sn2[NDISK];
    for (int i = 0; i < NDISK; i++) {
        g_assert_true(bdrv_snapshot_find(d.bs[i], "s", &sn2[i]));
    }
    g_assert_null(txn_journal_begin_delete(d.bs, sn2, NDISK, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "interrupted transaction"));
    g_clear_error(&err);
    for (int i = 0; i < NDISK; i++) {
        bdrv_snapshot_info_clear(&sn2[i]);
    }
    txn_journal_keep(j);
    disks_close(&d);
    disks_attach(&d);
    g_assert_cmpint(disks_with_snapshot(&d, "s"), ==, NDISK);
    g_assert_cmpint(journal_records(&d), ==, 0);
    for (int i = 0; i < NDISK; i++) {
        bdrv_snapshot_info_clear(&sn[i]);
    }

    /* A plain delete through the journal leaves no record. */
    j = journal_delete_begin(&d, "s", sn);
    for (int i = 0; i < NDISK; i++) {
        g_assert_cmpint(bdrv_snapshot_delete(d.bs[i], sn[i].id_str, "s",
                                             NULL), ==, 0);
        bdrv_snapshot_info_clear(&sn[i]);
    }
    txn_journal_end(j);
    g_assert_cmpint(journal_records(&d), ==, 0);
    disks_close(&d);
    disks_free(&d);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/transaction/core/success", test_core_success);
    g_test_add_func("/transaction/core/prepare-fails",
                    test_core_prepare_fails);
    g_test_add_func("/transaction/core/finish-fails", test_core_finish_fails);
    g_test_add_func("/transaction/core/parallel-prepare",
                    test_core_parallel_prepare);
    g_test_add_func("/transaction/core/grouped", test_core_grouped);
    g_test_add_func("/transaction/snapshot/fail-each-step",
                    test_fail_each_step);
    g_test_add_func("/transaction/snapshot/internal-under-writes",
                    test_internal_under_writes);
    g_test_add_func("/transaction/snapshot/external-under-writes",
                    test_external_under_writes);
    g_test_add_func("/transaction/snapshot/external-undo",
                    test_external_undo);
    g_test_add_func("/transaction/journal/delete", test_journal_delete);
    g_test_add_func("/transaction/snapshot/fault-every-request",
                    test_fault_every_request);
    return g_test_run();
}
