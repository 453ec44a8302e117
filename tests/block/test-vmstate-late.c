/*
 * test-vmstate-late.c - a save state's VM state written after the
 * snapshot's commit (txn_add_snapshot_internal_late, block/vmstate.h:
 * bdrv_co_snapshot_create_writev_vmstate), on real qcow2 files checked
 * with the real QEMU tools:
 *
 *   - the whole flow under a concurrent guest writer: guest writes (and a
 *     guest flush) during the write-out land in the active layer only,
 *     never in the snapshot (its point in time is the commit); the flush
 *     does not wait for the write-out (a checkpoint): when it completes,
 *     the file - read by qemu-img as after a kill - holds the guest's
 *     writes, no snapshot yet, and no corruption; the VM state reads
 *     back equal, out-of-order and rewritten pieces included; qemu-img
 *     lists the final VM SIZE; the snapshot's L1 table grows past one
 *     cluster when the area needs it (4 KiB clusters);
 *   - QEMU 7.2's loadvm accepts a QEMU stream written this way;
 *   - API misuse and refusals leave no snapshot;
 *   - blkdebug failing each write / flush of the write-out and the
 *     finish, once or from then on: the snapshot is absent (or whole when
 *     nothing failed), qemu-img check finds no corruption, an abandoned
 *     snapshot leaves no leak and keeps the guest writes of the window;
 *   - SIGKILL of a child process (this program re-run with --late-child)
 *     at random instants of the write-out, its guest flush and the
 *     finish: no corruption, the snapshot either absent or whole with its
 *     full VM state, and once the guest's flush had completed, its writes
 *     are in the file;
 *   - the write-out speed of 64 MiB against a plain file.
 */
#include "image-test.h"
#include "block/qcow2.h"
#include "block/blkdebug.h"
#include "block/transaction.h"
#include "block/txn-snapshot.h"
#include "block/vmstate.h"
#include "util/cutils.h"
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static double now_s(void)
{
    return g_get_monotonic_time() / 1e6;
}

/* ---- helpers ---- */

static char *run_ok(char **argv)
{
    char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    if (status != 0) {
        g_error("%s %s: status %d\n%s%s", argv[0], argv[1], status, out, err);
    }
    g_free(err);
    return out;
}

static void assert_vm_pattern(BlockBackend *blk, const char *name,
                              uint32_t seed, int64_t len)
{
    uint8_t *got = vm_load(blk, name, 0, len);
    uint8_t *want = g_malloc(MAX(len, 1));
    pattern_fill(want, len, seed, 0);
    assert_same_bytes(got, want, len, 0, name ? name : "active VM state");
    g_free(got);
    g_free(want);
}

static uint64_t snapshot_vm_size(BlockBackend *blk, const char *name)
{
    BdrvSnapshotInfo sn;
    g_assert_true(bdrv_snapshot_find(blk_bs(blk), name, &sn));
    bdrv_snapshot_info_clear(&sn);
    return sn.vm_state_size;
}

/* qemu-img info --output=json's vm-state-size of snapshot name. */
static int64_t qemu_vm_size(const char *path, const char *name)
{
    char *argv[] = { "qemu-img", "info", "--output=json", "-U", (char *)path,
                     NULL };
    g_autofree char *out = run_ok(argv);
    json_t *j = json_loads(out, 0, NULL);
    g_assert_nonnull(j);
    json_t *arr = json_object_get(j, "snapshots");
    size_t i;
    json_t *sn;
    int64_t size = -1;
    json_array_foreach(arr, i, sn) {
        if (!strcmp(json_string_value(json_object_get(sn, "name")), name)) {
            size = json_integer_value(json_object_get(sn, "vm-state-size"));
        }
    }
    json_decref(j);
    return size;
}

/* `qemu-img snapshot -l` prints the VM SIZE qemu-img's way (-U: the
 * image is still open here, holding QEMU's image locks). */
static void qemu_lists_vm_size(const char *path, const char *name,
                               uint64_t size)
{
    char *argv[] = { "qemu-img", "snapshot", "-l", "-U", (char *)path,
                     NULL };
    g_autofree char *out = run_ok(argv);
    g_autofree char *human = size_to_str(size);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    bool found = false;
    for (int i = 0; lines[i]; i++) {
        g_auto(GStrv) w = g_strsplit_set(lines[i], " ", -1);
        bool has_name = false;
        for (int k = 0; w[k]; k++) {
            has_name |= !strcmp(w[k], name);
        }
        if (has_name) {
            g_autofree char *pad = g_strdup_printf(" %s ", human);
            g_assert_nonnull(strstr(lines[i], pad));
            found = true;
        }
    }
    if (!found) {
        g_error("qemu-img snapshot -l: no '%s' in\n%s", name, out);
    }
}

static void copy_file(const char *from, const char *to)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(from, &data, &len, NULL));
    g_assert_true(g_file_set_contents(to, data, len, NULL));
}

/* ---- the write-out with a concurrent guest writer ---- */

#define MAX_GUEST 16

typedef struct GuestWrite {
    AioReq r;
    uint32_t seed;
} GuestWrite;

typedef struct Late {
    BlockBackend *blk;
    Model *active;              /* guest disk incl. writes of the window */
    uint64_t vm_len, piece;
    uint32_t vm_seed;
    bool shuffle;               /* odd pieces first, and rewrites */
    int n_guest;                /* guest writes issued in the window */
    bool guest_wait;            /* wait for them before the VM state */
    bool guest_flush;           /* and a guest flush mid-way */
    GuestWrite gw[MAX_GUEST];
    int completed, expected;
    bool flush_done;
    int flush_ret;
    bool writer_returned;
    bool write_failed;          /* a VM state write failed */
    const char *name;
    /* fault injection: added when the write-out begins */
    BlockDriverState *dbg;
    const BlkdebugRule *rule;
    /* child process: report the start of the write-out on this fd */
    int report_fd;
    const char *path;           /* the image, read by qemu-img at flush */
    double t_write;             /* write-out time (s) */
} Late;

static uint64_t guest_slot(Late *l, int i, uint64_t *len)
{
    uint64_t slot = l->active->size / MAX_GUEST;
    *len = MIN(slot / 2, 96 * KiB + 3 * i);
    return i * slot + 4096 * (i % 5) + 7 * i;
}

/*
 * The guest's flush does not wait for the write-out: it completes with
 * the snapshot still pending (the finish alone lists it), and the file
 * then is what a kill would leave: checked clean but for leaks, the
 * guest's writes in it, no snapshot.  (This callback blocks the main
 * loop, so nothing switches while qemu-img reads.)
 */
static void late_flush_cb(void *opaque, int ret)
{
    Late *l = opaque;
    if (ret == 0 && l->report_fd >= 0) {
        g_assert_cmpint(write(l->report_fd, "F", 1), ==, 1);
    }
    if (ret == 0 && !l->writer_returned) {
        g_assert_false(bdrv_snapshot_find(blk_bs(l->blk), l->name, NULL));
        if (l->path) {
            qemu_check(l->path, true);
            qemu_compare(l->path, NULL, l->active);
        }
    }
    l->flush_ret = ret;
    l->flush_done = true;
    l->completed++;
}

static void issue_guest_write(Late *l, int i)
{
    GuestWrite *g = &l->gw[i];
    uint64_t len, off = guest_slot(l, i, &len);
    g->seed = 500 + i;
    g->r = (AioReq){ .off = off, .len = len, .id = i,
                     .completed = &l->completed };
    g->r.buf = g_malloc(len);
    pattern_fill(g->r.buf, len, g->seed, off);
    memcpy(l->active->data + off, g->r.buf, len);
    iovec_init_buf(&g->r.qiov, g->r.buf, len);
    l->expected++;
    blk_aio_pwritev(l->blk, off, &g->r.qiov, 0, aio_req_cb, &g->r);
}

static void guest_free(Late *l)
{
    for (int i = 0; i < l->n_guest; i++) {
        g_free(l->gw[i].r.buf);
    }
}

/* The order the pieces go out in: odd ones first, then the even ones,
 * then piece 1 once more (rewrite in place). */
static uint64_t piece_at(Late *l, uint64_t k, uint64_t n)
{
    if (!l->shuffle) {
        return k;
    }
    uint64_t odd = n / 2;
    if (k < odd) {
        return 2 * k + 1;
    }
    if (k < n) {
        return 2 * (k - odd);
    }
    return MIN(1, n - 1);
}

static int coroutine_fn late_writer(TxnSnapshotVmstate *vs, void *opaque,
                                    GError **errp)
{
    Late *l = opaque;
    double t0 = now_s();
    if (l->report_fd >= 0) {
        g_assert_cmpint(write(l->report_fd, "S", 1), ==, 1);
    }
    for (int i = 0; i < l->n_guest && !l->guest_wait; i += 2) {
        issue_guest_write(l, i);
    }
    if (l->guest_wait) {
        for (int i = 0; i < l->n_guest; i++) {
            issue_guest_write(l, i);
        }
        while (l->completed < l->expected) {
            co_yield_to_loop();
        }
        for (int i = 0; i < l->n_guest; i++) {
            g_assert_cmpint(l->gw[i].r.ret, ==, 0);
        }
    }
    if (l->rule) {
        g_assert_true(blkdebug_add_rule(l->dbg, l->rule));
    }
    uint64_t n = DIV_ROUND_UP(l->vm_len, l->piece);
    uint64_t total = l->shuffle ? n + 1 : n;
    uint8_t *buf = g_malloc(l->piece);
    int ret = 0;
    for (uint64_t k = 0; k < total && ret >= 0; k++) {
        uint64_t p = piece_at(l, k, n);
        uint64_t pos = p * l->piece, len = MIN(l->piece, l->vm_len - pos);
        if (k == n / 2) {
            for (int i = 1; i < l->n_guest && !l->guest_wait; i += 2) {
                issue_guest_write(l, i);
            }
            if (l->guest_flush) {
                /* A flush covers the writes completed before it. */
                while (l->completed < l->expected) {
                    co_yield_to_loop();
                }
                l->expected++;
                blk_aio_flush(l->blk, late_flush_cb, l);
            }
        }
        pattern_fill(buf, len, l->vm_seed, pos);
        ret = txn_snapshot_write_vmstate(vs, buf, pos, len, errp);
    }
    g_free(buf);
    txn_snapshot_set_vm_state_size(vs, l->vm_len);
    l->write_failed = ret < 0;
    l->writer_returned = true;
    l->t_write = now_s() - t0;
    return ret;
}

/* Runs the late snapshot transaction on backend "vmdisk". */
static int run_late(Late *l, GError **errp)
{
    BdrvSnapshotInfo sn = { .name = (char *)l->name, .date_sec = 1700000000,
                            .vm_clock_nsec = 42 * 1000000000ULL,
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_late(t, "vmdisk", &sn, late_writer, l);
    int ret = txn_run(t, errp);
    poll_until_count(&l->completed, l->expected);
    return ret;
}

static void check_snapshot_whole(BlockBackend *blk, const Late *l,
                                 const char *path, const Model *at_commit)
{
    g_assert_cmpuint(snapshot_vm_size(blk, l->name), ==, l->vm_len);
    assert_vm_pattern(blk, l->name, l->vm_seed, l->vm_len);
    /* Nothing past the recorded size. */
    GError *err = NULL;
    uint8_t b;
    g_assert_cmpint(bdrv_snapshot_load_vmstate(blk_bs(blk), l->name, &b,
                                               l->vm_len, 1, &err), <, 0);
    g_clear_error(&err);
    if (path) {
        qemu_compare(path, l->name, at_commit);
    }
}

static void flow_case(const char *opts, uint64_t disk, uint64_t vm_len,
                      uint64_t piece)
{
    test_dir_setup_in_memory();
    g_autofree char *path = test_path("late.qcow2");
    img_create(path, disk, opts);
    BlockBackend *blk = img_open(path);
    blk_set_name(blk, "vmdisk");
    Model *m = model_new(disk);
    write_pattern(blk, m, 0, 512 * KiB, 1);
    write_pattern(blk, m, disk / 2 - 100 * KiB, 1 * MiB, 2);
    write_pattern(blk, m, disk - 300 * KiB, 300 * KiB, 3);
    /* A stale active area: commit hands it over, the late write-out
     * replaces what it covers (the rest reads as written before). */
    uint8_t *stale = g_malloc(256 * KiB);
    pattern_fill(stale, 256 * KiB, 4, 0);
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(blk), stale, 0, 256 * KiB,
                                      NULL), ==, 0);
    g_free(stale);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    Model *at_commit = model_copy(m);

    Late l = { .blk = blk, .active = m, .vm_len = vm_len, .piece = piece,
               .vm_seed = 77, .shuffle = true, .n_guest = MAX_GUEST,
               .guest_flush = true, .name = "late", .report_fd = -1,
               .path = path };
    GError *err = NULL;
    uint64_t checkpoints =
        ((Qcow2State *)blk_bs(blk)->opaque)->checkpoint_count;
    g_assert_cmpint(run_late(&l, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(l.flush_done);
    g_assert_cmpint(l.flush_ret, ==, 0);
    g_assert_cmpuint(((Qcow2State *)blk_bs(blk)->opaque)->checkpoint_count,
                     ==, checkpoints + 1);
    for (int i = 0; i < l.n_guest; i++) {
        g_assert_cmpint(l.gw[i].r.ret, ==, 0);
    }
    guest_free(&l);
    const TxnStats *st = txn_last_stats();
    g_test_message("late %" G_GUINT64_FORMAT " KiB: drained %.3f ms, "
                   "write-out %.3f ms, finish %.3f ms", (guint64)(vm_len / KiB),
                   st->drained_ns / 1e6, l.t_write * 1e3,
                   st->finish_ns / 1e6);

    /* The guest's writes of the window are in the active layer only. */
    verify_model(blk, m);
    check_snapshot_whole(blk, &l, NULL, NULL);
    /* The active layer gave its area up at the commit. */
    uint8_t *z = vm_load(blk, NULL, 0, 256 * KiB);
    g_assert_true(buffer_is_zero(z, 256 * KiB));
    g_free(z);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    qemu_compare(path, NULL, m);
    qemu_compare(path, "late", at_commit);
    g_assert_cmpint(qemu_vm_size(path, "late"), ==, vm_len);
    qemu_lists_vm_size(path, "late", vm_len);

    /* Reopened: the same; a revert brings the VM state and the disk at
     * the commit back; delete frees it all. */
    blk = img_open(path);
    check_snapshot_whole(blk, &l, NULL, NULL);
    snapshot_apply_ok(blk, "late");
    verify_model(blk, at_commit);
    assert_vm_pattern(blk, NULL, 77, vm_len);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(blk), NULL), ==, 0);
    snapshot_delete_ok(blk, "late");
    verify_model(blk, at_commit);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    model_free(m);
    model_free(at_commit);
    test_dir_cleanup();
}

static void test_flow(void)
{
    /* Unaligned pieces: partial clusters rewritten in place and copied. */
    flow_case(NULL, 64 * MiB, 6 * MiB + 12345, 1 * MiB + 4097);
}

static void test_flow_small_clusters(void)
{
    /* 4 KiB clusters: one L1 cluster maps 1 GiB, so the area of a 1 GiB
     * disk needs a second: the snapshot's L1 table is placed anew. */
    flow_case("cluster_size=4096", 1 * GiB, 5 * MiB + 3, 300 * KiB + 1);
}

/* ---- refusals ---- */

static int coroutine_fn bad_size_writer(TxnSnapshotVmstate *vs,
                                        void *opaque, GError **errp)
{
    uint8_t b[4096] = { 1 };
    int ret = txn_snapshot_write_vmstate(vs, b, 0, sizeof(b), errp);
    g_assert_cmpint(ret, ==, 0);
    GError *err = NULL;
    g_assert_cmpint(txn_snapshot_write_vmstate(vs, b, -1, 1, &err), ==,
                    -EFBIG);
    g_clear_error(&err);
    g_assert_cmpint(txn_snapshot_write_vmstate(vs, b, INT64_MAX - 5, 16,
                                               &err), ==, -EFBIG);
    g_clear_error(&err);
    txn_snapshot_set_vm_state_size(vs, UINT64_MAX / 2);
    return 0;
}

static int coroutine_fn failing_writer(TxnSnapshotVmstate *vs, void *opaque,
                                       GError **errp)
{
    uint8_t *b = g_malloc(3 * MiB);
    pattern_fill(b, 3 * MiB, 9, 0);
    int ret = txn_snapshot_write_vmstate(vs, b, 0, 3 * MiB, errp);
    g_free(b);
    g_assert_cmpint(ret, ==, 0);
    error_setg(errp, "compression failed");
    return -EIO;
}

static TxnSnapshotVmstate *saved_vs;

static int coroutine_fn noop_writer(TxnSnapshotVmstate *vs, void *opaque,
                                    GError **errp)
{
    saved_vs = vs;
    return 0;
}

static void test_refusals(void)
{
    test_dir_setup_in_memory();
    g_autofree char *path = test_path("refuse.qcow2");
    img_create(path, 32 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    blk_set_name(blk, "vmdisk");
    Model *m = model_new(32 * MiB);
    write_pattern(blk, m, 0, 1 * MiB, 5);
    BdrvSnapshotInfo sn = { .name = (char *)"x",
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    GError *err = NULL;

    /* A size no L1 table maps: refused at finish, nothing stays. */
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_late(t, "vmdisk", &sn, bad_size_writer, NULL);
    g_assert_cmpint(txn_run(t, &err), ==, -EFBIG);
    g_assert_nonnull(strstr(err->message, "too large"));
    g_clear_error(&err);
    g_assert_false(bdrv_snapshot_find(blk_bs(blk), "x", NULL));

    /* The writer fails: its error, no snapshot, the disk as it was. */
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_late(t, "vmdisk", &sn, failing_writer, NULL);
    g_assert_cmpint(txn_run(t, &err), ==, -EIO);
    g_assert_cmpstr(err->message, ==, "compression failed");
    g_clear_error(&err);
    g_assert_false(bdrv_snapshot_find(blk_bs(blk), "x", NULL));
    verify_model(blk, m);

    /* An abort action: prepare undone, nothing written. */
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_late(t, "vmdisk", &sn, failing_writer, NULL);
    txn_add_abort(t);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_clear_error(&err);

    /* Outside the write-out the handle refuses; a writer that writes
     * nothing makes a snapshot with an empty VM state. */
    saved_vs = NULL;
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    TxnSnapshotVmstate *vs = txn_add_snapshot_internal_late(t, "vmdisk", &sn,
                                                            noop_writer,
                                                            NULL);
    uint8_t b = 1;
    g_assert_cmpint(txn_snapshot_write_vmstate(vs, &b, 0, 1, &err), ==,
                    -EINVAL);
    g_assert_nonnull(strstr(err->message, "'x'"));
    g_clear_error(&err);
    g_assert_null(txn_snapshot_vmstate_node(vs));
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(saved_vs == vs);
    g_assert_cmpuint(snapshot_vm_size(blk, "x"), ==, 0);
    snapshot_delete_ok(blk, "x");
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    blk = img_open(path);
    verify_model(blk, m);
    check_blk(blk, false);
    blk_unref(blk);
    model_free(m);
    test_dir_cleanup();
}

typedef struct {
    BlockDriverState *bs;
    bool late;
    int before_commit, not_late, wrong_state, after_finish;
} BlockLevel;

static void coroutine_fn block_level_entry(void *opaque)
{
    BlockLevel *b = opaque;
    BdrvSnapshotInfo sn = { .name = (char *)"b", .vm_state_late = b->late,
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotCreate *st = NULL;
    GError *err = NULL;
    uint8_t buf[512] = { 3 };
    IOVector q;
    iovec_init_buf(&q, buf, sizeof(buf));
    g_assert_cmpint(bdrv_co_snapshot_create_prepare(b->bs, &sn, &st, &err),
                    ==, 0);
    int r = bdrv_co_snapshot_create_writev_vmstate(b->bs, st, &q, 0, &err);
    g_clear_error(&err);
    b->before_commit = r;
    bdrv_drained_begin(b->bs);
    bdrv_snapshot_create_commit(b->bs, st);
    bdrv_drained_end(b->bs);
    r = bdrv_co_snapshot_create_writev_vmstate(b->bs, st, &q, 0, &err);
    g_clear_error(&err);
    if (b->late) {
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpint(bdrv_snapshot_create_set_vm_state_size(b->bs, st, 512,
                                                               &err), ==, 0);
    } else {
        b->not_late = r;
    }
    g_assert_cmpint(bdrv_co_snapshot_create_finish(b->bs, st, &err), ==, 0);
    g_assert_no_error(err);
}

static void test_block_level(void)
{
    test_dir_setup_in_memory();
    g_autofree char *path = test_path("bl.qcow2");
    img_create(path, 8 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    BlockLevel b = { .bs = blk_bs(blk), .late = true };
    co_run_sync(block_level_entry, &b);
    g_assert_cmpint(b.before_commit, ==, -EBUSY);
    uint8_t want[512] = { 3 };
    uint8_t *got = vm_load(blk, "b", 0, 512);
    g_assert_cmpmem(got, 512, want, 512);
    g_free(got);
    snapshot_delete_ok(blk, "b");
    b = (BlockLevel){ .bs = blk_bs(blk), .late = false };
    co_run_sync(block_level_entry, &b);
    g_assert_cmpint(b.before_commit, ==, -EINVAL);
    g_assert_cmpint(b.not_late, ==, -EINVAL);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    test_dir_cleanup();
}

/* ---- QEMU interop ---- */

typedef struct {
    const uint8_t *stream;
    uint64_t len;
} StreamCopy;

/* QEMU's stream, in pieces, the first one last. */
static int coroutine_fn stream_writer(TxnSnapshotVmstate *vs, void *opaque,
                                      GError **errp)
{
    StreamCopy *c = opaque;
    const uint64_t piece = 100 * KiB + 1;
    int ret = 0;
    for (uint64_t pos = piece; pos < c->len && ret >= 0; pos += piece) {
        ret = txn_snapshot_write_vmstate(vs, c->stream + pos, pos,
                                         MIN(piece, c->len - pos), errp);
    }
    if (ret >= 0) {
        ret = txn_snapshot_write_vmstate(vs, c->stream, 0,
                                         MIN(piece, c->len), errp);
    }
    txn_snapshot_set_vm_state_size(vs, c->len);
    return ret;
}

static void test_interop_qemu(void)
{
    g_autofree char *qsys = g_find_program_in_path("qemu-system-x86_64");
    if (!qsys) {
        g_test_skip("qemu-system-x86_64 not installed");
        return;
    }
    test_dir_setup();
    g_autofree char *path = test_path("qemu.qcow2");
    img_create(path, 100 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(100 * MiB);
    write_pattern(blk, m, 0, 256 * KiB, 5);
    blk_unref(blk);

    const char *save[] = { "savevm qemu1", NULL };
    g_auto(GStrv) r1 = qemu_hmp(path, save);
    g_assert_cmpstr(r1[0], ==, "");
    blk = img_open(path);
    blk_set_name(blk, "vmdisk");
    uint64_t len = snapshot_vm_size(blk, "qemu1");
    g_assert_cmpuint(len, >, 4096);
    uint8_t *stream = vm_load(blk, "qemu1", 0, len);

    /* The stream written late into a snapshot of xblk's own, with a
     * guest write in between that the snapshot must not see. */
    StreamCopy c = { stream, len };
    BdrvSnapshotInfo sn = { .name = (char *)"xlate", .date_sec = 1700000000,
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_late(t, "vmdisk", &sn, stream_writer, &c);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    g_assert_no_error(err);
    uint8_t *back = vm_load(blk, "xlate", 0, len);
    assert_same_bytes(back, stream, len, 0, "QEMU stream written late");
    g_free(back);
    g_assert_cmpint(bdrv_snapshot_delete(blk_bs(blk), NULL, "qemu1", &err),
                    ==, 0);
    write_pattern(blk, m, 64 * KiB, 64 * KiB, 6);   /* after the snapshot */
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    g_assert_cmpint(qemu_vm_size(path, "xlate"), ==, len);

    /* QEMU loads it: the disk goes back to the snapshot's. */
    const char *load[] = { "loadvm xlate", NULL };
    g_auto(GStrv) r2 = qemu_hmp(path, load);
    g_assert_cmpstr(r2[0], ==, "");
    qemu_check(path, false);
    Model *snap = model_new(100 * MiB);
    pattern_fill(snap->data, 256 * KiB, 5, 0);
    qemu_compare(path, NULL, snap);
    model_free(snap);
    model_free(m);
    g_free(stream);
    test_dir_cleanup();
}

/* ---- fault injection ---- */

/* Opens path as qcow2 over blkdebug (no real fdatasync: the order of
 * requests is what matters here). */
static BlockBackend *open_blkdebug(const char *path, BlockDriverState **dbg)
{
    g_autofree char *o = g_strdup_printf("file.driver=blkdebug,"
                                         "file.file.filename=%s", path);
    BlockOpts *opts = bopts_new();
    GError *err = NULL;
    g_assert_true(bopts_parse(opts, o, &err));
    bopts_set(opts, "driver", "qcow2");
    bopts_set(opts, "cache.no-flush", "on");
    BlockBackend *blk = blk_new_open(NULL, opts, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    *dbg = bdrv_file_bs(blk_bs(blk));
    g_assert_cmpstr(bdrv_get_format_name(*dbg), ==, "blkdebug");
    return blk;
}

/* Each byte of the window's guest writes is old or new; the rest of the
 * disk is exactly old.  Returns whether every write is wholly new. */
static bool check_window(BlockBackend *blk, const Model *old,
                         const Model *new)
{
    uint8_t *d = g_malloc(old->size);
    g_assert_cmpint(blk_pread(blk, 0, old->size, d), ==, 0);
    bool all_new = true;
    for (uint64_t i = 0; i < old->size; i++) {
        if (i % 4096 == 0 && i + 4096 <= old->size &&
            !memcmp(d + i, new->data + i, 4096)) {
            i += 4095;
            continue;
        }
        if (d[i] == new->data[i]) {
            continue;
        }
        all_new = false;
        if (d[i] != old->data[i]) {
            g_error("byte %" G_GUINT64_FORMAT " is %#x: neither old %#x nor "
                    "new %#x", i, d[i], old->data[i], new->data[i]);
        }
    }
    g_free(d);
    return all_new;
}

/* qemu-img check: no corruption; returns the leaks (-U: the image may
 * still be open here, holding QEMU's image locks). */
static int qemu_check_leaks(const char *path)
{
    char *argv[] = { "qemu-img", "check", "-U", "--output=json",
                     (char *)path, NULL };
    g_autofree char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    json_t *j = json_loads(out, 0, NULL);
    if (!j || (status != 0 && status != 3) ||
        json_integer_value(json_object_get(j, "corruptions")) ||
        json_integer_value(json_object_get(j, "check-errors"))) {
        g_error("qemu-img check %s: status %d\n%s%s", path, status, out, err);
    }
    int leaks = json_integer_value(json_object_get(j, "leaks"));
    json_decref(j);
    return leaks;
}

typedef struct FaultStats {
    int runs, failed, abandoned, reloaded, stayed, succeeded;
} FaultStats;

/* One run with rule; returns whether the rule fired. */
/* flush: a guest flush (a checkpoint) half-way through the write-out,
 * which the fault may hit too.  The guest's writes all complete before
 * the rule is armed: a failed guest write is not what this tests. */
static bool fault_run(const char *tmpl, const char *path, const Model *base,
                      const BlkdebugRule *rule, bool flush, FaultStats *fs)
{
    copy_file(tmpl, path);
    BlockDriverState *dbg;
    BlockBackend *blk = open_blkdebug(path, &dbg);
    blk_set_name(blk, "vmdisk");
    Model *active = model_copy(base);
    Late l = { .blk = blk, .active = active, .vm_len = 1 * MiB + 333 * KiB,
               .piece = 200 * KiB + 11, .vm_seed = 88, .shuffle = true,
               .n_guest = 6, .guest_wait = true, .guest_flush = flush,
               .name = "late", .dbg = dbg, .rule = rule, .report_fd = -1 };
    GError *err = NULL;
    int ret = run_late(&l, &err);
    bool fired = blkdebug_injected(dbg) > 0;
    g_assert_true(ret == 0 || fired);
    g_assert_true(ret == 0 || err);
    g_clear_error(&err);
    blkdebug_clear_rules(dbg);
    guest_free(&l);
    fs->runs++;
    bool kept = false;
    bool listed = bdrv_snapshot_find(blk_bs(blk), "late", NULL);
    if (ret < 0 && listed) {
        /* Switched, a sync failed, and deleting it failed too (a disk
         * that keeps failing): it stays, whole. */
        g_assert_true(rule->once == false);
        fs->failed++;
        fs->stayed++;
    } else if (ret < 0) {
        fs->failed++;
        /* In this session: absent, and the node either kept the window
         * (abandoned) or went back to its on-disk state (reloaded). */
        uint8_t b;
        if (blk_pread(blk, 0, 1, &b) == 0) {
            kept = check_window(blk, base, active);
        }
        kept ? fs->abandoned++ : fs->reloaded++;
    } else {
        fs->succeeded++;
        verify_model(blk, active);
    }
    blk_unref(blk);
    /* Reopened without faults: consistent, absent or whole. */
    int leaks = qemu_check_leaks(path);
    if (kept && l.write_failed && (rule->once || !flush)) {
        /* A snapshot abandoned for its write-out frees all it had.  (Not
         * when a checkpoint made the window durable and the disk then kept
         * failing: the abandon could not be written, and the file holds
         * the checkpoint - the snapshot's clusters as leaks, rule 2.) */
        g_assert_cmpint(leaks, ==, 0);
    }
    blk = img_open(path);
    check_blk(blk, true);
    bool now_listed = bdrv_snapshot_find(blk_bs(blk), "late", NULL);
    g_assert_true(now_listed == (ret == 0) || (listed && !rule->once));
    if (now_listed) {
        check_snapshot_whole(blk, &l, NULL, NULL);
    }
    if (ret == 0) {
        verify_model(blk, active);
    } else {
        check_window(blk, base, active);
    }
    listed = now_listed;
    g_assert_true(bdrv_snapshot_find(blk_bs(blk), "old", NULL));
    blk_unref(blk);
    if (listed) {
        qemu_compare(path, "late", base);
    }
    model_free(active);
    return fired;
}

static void test_faults(void)
{
    test_dir_setup_in_memory();
    g_autofree char *tmpl = test_path("template.qcow2");
    g_autofree char *path = test_path("fault.qcow2");
    const uint64_t size = 8 * MiB;
    img_create(tmpl, size, "cluster_size=65536");
    BlockBackend *blk = img_open(tmpl);
    Model *base = model_new(size);
    write_pattern(blk, base, 0, 3 * MiB, 1);
    uint8_t *v = g_malloc(300 * KiB);
    pattern_fill(v, 300 * KiB, 2, 0);
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(blk), v, 0, 300 * KiB, NULL),
                    ==, 0);
    g_free(v);
    BdrvSnapshotInfo old = { .name = (char *)"old",
                             .vm_state_size = 300 * KiB };
    g_assert_cmpint(bdrv_snapshot_create(blk_bs(blk), &old, NULL), ==, 0);
    write_pattern(blk, base, 6 * MiB, 1 * MiB, 3);
    blk_unref(blk);

    static const struct {
        unsigned op;
        bool onwards;
        int err;
    } kinds[] = {
        { BLKDBG_OP_WRITE, false, EIO },
        { BLKDBG_OP_FLUSH, false, EIO },
        { BLKDBG_OP_WRITE, true, ENOSPC },
        { BLKDBG_OP_FLUSH, true, EIO },
        { BLKDBG_OP_ANY, true, EIO },
    };
    FaultStats total = { 0 };
    for (guint k = 0; k < 2 * G_N_ELEMENTS(kinds); k++) {
        FaultStats fs = { 0 };
        guint kind = k % G_N_ELEMENTS(kinds);
        bool flush = k >= G_N_ELEMENTS(kinds);
        for (uint64_t nth = 1; nth < 400; nth++) {
            BlkdebugRule rule = { .ops = kinds[kind].op, .nth = nth,
                                  .offset = -1, .err = kinds[kind].err,
                                  .once = !kinds[kind].onwards };
            if (!fault_run(tmpl, path, base, &rule, flush, &fs)) {
                break;
            }
        }
        g_test_message("faults op %#x%s errno %d%s: %d runs, %d failed "
                       "(%d abandoned keeping the guest writes, %d back to "
                       "the on-disk state, %d left whole), %d succeeded",
                       kinds[kind].op,
                       kinds[kind].onwards ? " onwards" : " once",
                       kinds[kind].err, flush ? ", guest flush" : "",
                       fs.runs, fs.failed, fs.abandoned, fs.reloaded,
                       fs.stayed, fs.succeeded);
        g_assert_cmpint(fs.failed, >, 0);
        total.runs += fs.runs;
        total.abandoned += fs.abandoned;
    }
    /* The write-out's own failures do abandon (not just reload). */
    g_assert_cmpint(total.abandoned, >, 0);
    model_free(base);
    test_dir_cleanup();
}

/* ---- SIGKILL during the write-out and the finish ---- */

#define KILL_DISK (32 * MiB)
#define KILL_VM (24 * MiB + 777)

static void kill_baseline(Model *m)
{
    pattern_fill(m->data, 4 * MiB, 31, 0);
    pattern_fill(m->data + 20 * MiB, 2 * MiB, 32, 20 * MiB);
}

/* The child (this program run with --late-child PATH FD): the late
 * snapshot with guest writes, "S" on FD when the write-out starts, "D"
 * once the transaction returned. */
static int run_child(const char *path, int fd)
{
    BlockBackend *blk = img_open(path);
    blk_set_name(blk, "vmdisk");
    Model *m = model_new(KILL_DISK);
    kill_baseline(m);
    Late l = { .blk = blk, .active = m, .vm_len = KILL_VM,
               .piece = 1 * MiB, .vm_seed = 99, .n_guest = MAX_GUEST,
               .guest_flush = true, .name = "late", .report_fd = fd };
    GError *err = NULL;
    int ret = run_late(&l, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
    g_assert_cmpint(write(fd, "D", 1), ==, 1);
    guest_free(&l);
    blk_unref(blk);
    model_free(m);
    return 0;
}

/* Spawns the child; kills it delay_us after "S" (never if negative).
 * Returns the time from "S" to "D" when it completed, else -1;
 * *flushed: the child's guest flush had completed ("F"). */
static double child_round(const char *path, gint64 delay_us, bool *flushed)
{
    int pfd[2];
    g_assert_cmpint(pipe(pfd), ==, 0);
    g_autofree char *fdarg = g_strdup_printf("%d", pfd[1]);
    char *argv[] = { "/proc/self/exe", "--late-child", (char *)path, fdarg,
                     NULL };
    GPid pid;
    GError *err = NULL;
    g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                  G_SPAWN_LEAVE_DESCRIPTORS_OPEN, NULL, NULL, &pid, &err);
    g_assert_no_error(err);
    close(pfd[1]);
    char c;
    g_assert_cmpint(read(pfd[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'S');
    double t0 = now_s(), took = -1;
    if (delay_us >= 0) {
        g_usleep(delay_us);
        kill(pid, SIGKILL);
    }
    *flushed = false;
    /* Until EOF: the child's end closes when it exits or dies. */
    while (read(pfd[0], &c, 1) == 1) {
        if (c == 'F') {
            *flushed = true;
        } else if (c == 'D') {
            g_assert_true(*flushed);
            took = now_s() - t0;
        }
    }
    g_assert_true(delay_us >= 0 || took >= 0);
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(delay_us >= 0 ? (WIFSIGNALED(status) ||
                                   (WIFEXITED(status) &&
                                    WEXITSTATUS(status) == 0))
                                : WIFEXITED(status) &&
                                  WEXITSTATUS(status) == 0);
    close(pfd[0]);
    return took;
}

/* The guest writes of the child (issue_guest_write) applied to m. */
static void apply_child_writes(Model *m)
{
    Late l = { .active = m };
    for (int i = 0; i < MAX_GUEST; i++) {
        uint64_t len, off = guest_slot(&l, i, &len);
        pattern_fill(m->data + off, len, 500 + i, off);
    }
}

/* After the child: consistent, the snapshot absent or whole; once its
 * guest flush completed, the guest's writes are all in the file. */
static bool check_after_kill(const char *path, const Model *base,
                             bool flushed)
{
    qemu_check(path, true);
    BlockBackend *blk = img_open(path);
    check_blk(blk, true);
    bool listed = bdrv_snapshot_find(blk_bs(blk), "late", NULL);
    if (listed) {
        Late l = { .vm_len = KILL_VM, .vm_seed = 99, .name = "late" };
        check_snapshot_whole(blk, &l, NULL, NULL);
    }
    /* Flushed before the transaction: intact (the window's guest writes
     * were never flushed, their slots are old or new). */
    uint8_t *d = g_malloc(1536 * KiB);
    g_assert_cmpint(blk_pread(blk, 20 * MiB + 512 * KiB, 1536 * KiB, d), ==,
                    0);
    assert_same_bytes(d, base->data + 20 * MiB + 512 * KiB, 1536 * KiB,
                      20 * MiB + 512 * KiB, "flushed before");
    g_free(d);
    if (flushed) {
        Model *after = model_copy(base);
        apply_child_writes(after);
        verify_model(blk, after);
        model_free(after);
    }
    blk_unref(blk);
    if (listed) {
        qemu_compare(path, "late", base);
    }
    return listed;
}

static void test_kill(void)
{
    test_dir_setup();
    g_autofree char *tmpl = test_path("template.qcow2");
    g_autofree char *path = test_path("kill.qcow2");
    img_create(tmpl, KILL_DISK, NULL);
    BlockBackend *blk = img_open(tmpl);
    Model *base = model_new(KILL_DISK);
    kill_baseline(base);
    g_assert_cmpint(blk_pwrite(blk, 0, 4 * MiB, base->data, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 20 * MiB, 2 * MiB,
                               base->data + 20 * MiB, 0), ==, 0);
    blk_unref(blk);

    /* Calibration: how long the write-out and finish take here. */
    copy_file(tmpl, path);
    bool flushed;
    double span = child_round(path, -1, &flushed);
    g_assert_true(check_after_kill(path, base, flushed));
    g_test_message("write-out + finish of %u KiB in the child: %.1f ms",
                   (unsigned)(KILL_VM / KiB), span * 1e3);

    GRand *rand = g_rand_new_with_seed(20240601);
    int absent = 0, whole = 0, after_flush = 0;
    const int rounds = 24;
    double deadline = now_s() + 20;
    for (int i = 0; i < rounds && now_s() < deadline; i++) {
        copy_file(tmpl, path);
        /* Spread over the write-out and the finish, a little past. */
        gint64 delay = g_rand_int_range(rand, 0, (gint32)(span * 1.3e6) + 1);
        child_round(path, delay, &flushed);
        after_flush += flushed;
        check_after_kill(path, base, flushed) ? whole++ : absent++;
    }
    g_rand_free(rand);
    g_test_message("SIGKILL rounds: %d absent, %d whole, %d after the "
                   "guest's flush", absent, whole, after_flush);
    g_assert_cmpint(absent, >, 0);
    model_free(base);
    test_dir_cleanup();
}

/* ---- speed ---- */

static int coroutine_fn speed_writer(TxnSnapshotVmstate *vs, void *opaque,
                                     GError **errp)
{
    const uint8_t *buf = opaque;
    int ret = 0;
    for (uint64_t pos = 0; pos < 64 * MiB && ret >= 0; pos += 1 * MiB) {
        ret = txn_snapshot_write_vmstate(vs, buf + pos, pos, 1 * MiB, errp);
    }
    txn_snapshot_set_vm_state_size(vs, 64 * MiB);
    return ret;
}

static void test_speed(void)
{
    test_dir_setup();
    g_autofree char *path = test_path("speed.qcow2");
    g_autofree char *plain = test_path("plain.bin");
    uint8_t *buf = g_malloc(64 * MiB);
    pattern_fill(buf, 64 * MiB, 123, 0);

    int fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    double t0 = now_s();
    for (uint64_t done = 0; done < 64 * MiB;) {
        ssize_t n = write(fd, buf + done, MIN(1 * MiB, 64 * MiB - done));
        g_assert_cmpint(n, >, 0);
        done += n;
    }
    g_assert_cmpint(fdatasync(fd), ==, 0);
    double t_plain = now_s() - t0;
    close(fd);
    g_unlink(plain);

    img_create(path, 64 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    blk_set_name(blk, "vmdisk");
    Model *m = model_new(64 * MiB);
    write_pattern(blk, m, 0, 4 * MiB, 1);
    BdrvSnapshotInfo sn = { .name = (char *)"fast",
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_late(t, "vmdisk", &sn, speed_writer, buf);
    GError *err = NULL;
    t0 = now_s();
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    double t_all = now_s() - t0;
    g_assert_no_error(err);
    const TxnStats *st = txn_last_stats();
    double t_finish = st->finish_ns / 1e9;
    g_test_message("64 MiB: plain file + fdatasync %.3f s (%.0f MB/s); late "
                   "VM state: drained %.3f ms, write-out + durable finish "
                   "%.3f s (%.0f MB/s), whole transaction %.3f s",
                   t_plain, 64 / t_plain, st->drained_ns / 1e6, t_finish,
                   64 / t_finish, t_all);
    g_assert_cmpfloat(t_finish, <=, 3 * t_plain + 0.5);
    uint8_t *got = vm_load(blk, "fast", 0, 64 * MiB);
    assert_same_bytes(got, buf, 64 * MiB, 0, "64 MiB late VM state");
    g_free(got);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    model_free(m);
    g_free(buf);
    test_dir_cleanup();
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--late-child")) {
        return run_child(argv[2], atoi(argv[3]));
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vmstate-late/flow", test_flow);
    g_test_add_func("/vmstate-late/flow-small-clusters",
                    test_flow_small_clusters);
    g_test_add_func("/vmstate-late/refusals", test_refusals);
    g_test_add_func("/vmstate-late/block-level", test_block_level);
    g_test_add_func("/vmstate-late/interop-qemu", test_interop_qemu);
    g_test_add_func("/vmstate-late/faults", test_faults);
    g_test_add_func("/vmstate-late/kill", test_kill);
    g_test_add_func("/vmstate-late/speed", test_speed);
    return g_test_run();
}
