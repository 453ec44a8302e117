/*
 * test-backup.c - the backup job (block/backup.c) and its transaction
 * actions (block/txn-backup.c): point-in-time copies under concurrent
 * guest writes for every sync mode, an incremental chain checked with
 * qemu-img compare, bitmap-mode after success and failure, the error
 * policies, a persistent bitmap across close and reopen, speed,
 * compression, cancel, grouped completion, the
 * drive-backup target that a failed prepare must not leave behind, and
 * the job's "copy-before-write" filter node (filter-node-name): the
 * device's root while the job runs, gone after completion, cancel,
 * failure and a rolled-back transaction, a name in use refused.
 *
 * The guest is a BlockBackend on the source; "concurrent" writes are
 * synchronous writes issued while the job runs (each polls the loop, so
 * the job and the copy-before-write hook interleave with them).  The
 * model captured right after the transaction is the point in time every
 * backup must reproduce.
 */
#include "image-test.h"
#include "block/backup.h"
#include "block/blkdebug.h"
#include "block/block-events.h"
#include "block/dirty-bitmap.h"
#include "block/job-filter.h"
#include "block/txn-backup.h"
#include "block/txn-bitmap.h"
#include "block/txn-snapshot.h"
#include "util/error.h"

#define DISK (4 * 1024 * 1024)
#define CL (64 * 1024)

static GPtrArray *events;

static void record_event(const char *name, json_t *data)
{
    if (!strcmp(name, "JOB_STATUS_CHANGE")) {
        g_ptr_array_add(events, g_strdup(json_string_value(
            json_object_get(data, "status"))));
    } else {
        g_ptr_array_add(events, g_strdup(name));
    }
    json_decref(data);
}

static char *events_take(void)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < events->len; i++) {
        g_string_append_printf(s, "%s%s", i ? " " : "",
                               (char *)g_ptr_array_index(events, i));
    }
    g_ptr_array_set_size(events, 0);
    return g_string_free(s, FALSE);
}

/* ---- set-up ---- */

typedef struct Env {
    char *src_path, *tgt_path;
    BlockBackend *blk;          /* the guest's view of the source */
    BlockDriverState *src, *tgt;
    Model *disk;                /* what the source holds now */
    Model *pit;                 /* what it held at the point in time */
    uint32_t seed;
} Env;

static BlockDriverState *open_node(const char *path, const char *name,
                                   const char *extra)
{
    BlockOpts *o = bopts_new();
    GError *err = NULL;
    g_autofree char *s = g_strdup_printf(
        "driver=qcow2,node-name=%s%s%s", name, extra ? "," : "",
        extra ? extra : "");
    g_assert_true(bopts_parse(o, s, &err));
    if (!bopts_get(o, "file.driver")) {
        bopts_set(o, "file.driver", "file");
        bopts_set(o, "file.filename", path);
    } else if (!bopts_get(o, "file.file.filename")) {
        bopts_set(o, "file.file.filename", path);   /* blkdebug */
    }
    BlockDriverState *bs = bdrv_open(NULL, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    return bs;
}

/* A 4 MiB source with data in most clusters, a blank target. */
static void env_init(Env *e, const char *tgt_opts)
{
    memset(e, 0, sizeof(*e));
    e->src_path = test_path("src.qcow2");
    e->tgt_path = test_path("tgt.qcow2");
    img_create(e->src_path, DISK, NULL);
    img_create(e->tgt_path, DISK, tgt_opts);
    e->blk = img_open(e->src_path);
    e->src = blk_bs(e->blk);
    e->disk = model_new(DISK);
    for (uint64_t off = 0; off < DISK; off += CL) {
        if ((off / CL) % 5 != 3) {
            write_pattern(e->blk, e->disk, off, CL, 1);
        }
    }
    e->seed = 100;
}

static void env_open_target(Env *e, const char *extra)
{
    e->tgt = open_node(e->tgt_path, "tgt", extra);
}

static void env_free(Env *e)
{
    if (e->tgt) {
        bdrv_unref(e->tgt);
    }
    if (e->blk) {
        blk_unref(e->blk);
    }
    model_free(e->disk);
    model_free(e->pit);
    g_free(e->src_path);
    g_free(e->tgt_path);
}

static TxnBackupArgs args_for(Env *e, BackupSyncMode sync)
{
    TxnBackupArgs a;
    txn_backup_args_init(&a);
    a.job_id = "job0";
    a.device = bdrv_get_node_name(e->src);
    a.target = "tgt";
    a.sync = sync;
    return a;
}

static int run_backup(const TxnBackupArgs *a, GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_blockdev_backup(t, a);
    return txn_run(t, errp);
}

static void start_backup(Env *e, const TxnBackupArgs *a)
{
    GError *err = NULL;
    g_assert_cmpint(run_backup(a, &err), ==, 0);
    g_assert_no_error(err);
    model_free(e->pit);
    e->pit = model_copy(e->disk);
}

static Job *job0(void)
{
    return job_get("job0");
}

/* Polls until job0 is gone (auto-dismiss) or concluded. */
static void wait_job(void)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (job0() && job0()->status != XBLK_JOB_STATUS_CONCLUDED) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(true);
    }
}

/* Guest writes (and write-zeroes / discards) while the job runs; returns
 * how many landed before the job finished its copy. */
static int guest_writes(Env *e, int n)
{
    int during = 0;
    for (int i = 0; i < n; i++) {
        uint64_t off = (uint64_t)g_random_int_range(0, DISK / 4096) * 4096;
        uint64_t len = (uint64_t)g_random_int_range(1, 40) * 4096;
        len = MIN(len, DISK - off);     /* MIN evaluates twice */
        Job *j = job0();
        if (j && !job_is_completed(j)) {
            during++;
        }
        if (i % 7 == 3) {
            zero_both(e->blk, e->disk, off, len, 0);
        } else {
            write_pattern(e->blk, e->disk, off, len, e->seed++);
        }
        aio_poll(false);
    }
    return during;
}

/* Closes the target node (the job let go) and compares its content, as
 * qemu-img reads it, with the point in time. */
static void check_target(Env *e)
{
    bdrv_unref(e->tgt);
    e->tgt = NULL;
    qemu_check(e->tgt_path, false);
    qemu_compare(e->tgt_path, NULL, e->pit);
}

/* ---- sync modes under writes ---- */

static void test_full_under_writes(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.speed = 16 * 1024 * 1024;     /* long enough to interleave */
    start_backup(&e, &a);
    g_assert_cmpint(guest_writes(&e, 60), >, 10);
    wait_job();
    g_assert_null(job0());
    verify_model(e.blk, e.disk);
    check_target(&e);
    env_free(&e);
}

static void test_top_under_writes(void)
{
    Env e;
    env_init(&e, NULL);
    /* The source becomes an overlay on a base holding part of the data. */
    g_autofree char *top = test_path("top.qcow2");
    g_autofree char *bopt = g_strdup_printf("backing_file=%s,backing_fmt="
                                            "qcow2", e.src_path);
    img_create(top, DISK, bopt);
    blk_unref(e.blk);
    e.blk = img_open(top);
    e.src = blk_bs(e.blk);
    for (uint64_t off = 0; off < DISK; off += 3 * CL) {
        write_pattern(e.blk, e.disk, off, CL / 2, 2);
    }
    img_create(e.tgt_path, DISK, bopt);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_TOP);
    a.speed = 16 * 1024 * 1024;
    start_backup(&e, &a);
    /* Only the top's clusters count, once the job has looked. */
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (job0()->progress_total >= DISK / 2) {
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        aio_poll(false);
    }
    guest_writes(&e, 40);
    wait_job();
    check_target(&e);
    env_free(&e);
}

static void test_none_fleecing(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_NONE);
    start_backup(&e, &a);
    g_assert_cmpint(job0()->progress_total, ==, DISK);
    uint8_t *written = g_malloc0(DISK / CL);
    for (int i = 0; i < 30; i++) {
        uint64_t off = (uint64_t)g_random_int_range(0, DISK / 4096) * 4096;
        write_pattern(e.blk, e.disk, off, 4096, e.seed++);
        written[off / CL] = 1;
    }
    for (int i = 0; i < 5; i++) {
        aio_poll(false);
    }
    /* Runs until cancelled, and then says so. */
    g_assert_nonnull(job0());
    g_assert_cmpint(job0()->status, ==, XBLK_JOB_STATUS_RUNNING);
    g_ptr_array_set_size(events, 0);
    job_cancel_sync(job0(), true);
    wait_job();
    g_autofree char *ev = events_take();
    g_assert_cmpstr(ev, ==, "aborting BLOCK_JOB_CANCELLED concluded null");
    bdrv_unref(e.tgt);
    e.tgt = NULL;
    qemu_check(e.tgt_path, false);
    BlockBackend *t = img_open_opts(e.tgt_path, NULL, NULL);
    uint8_t *buf = g_malloc(CL);
    for (uint64_t c = 0; c < DISK / CL; c++) {
        int64_t pnum;
        int st = bdrv_block_status(blk_bs(t), c * CL, CL, &pnum, NULL, NULL);
        g_assert_cmpint(st, >=, 0);
        if (!written[c]) {
            g_assert_false(st & BDRV_BLOCK_DATA);
        } else {
            g_assert_cmpint(blk_pread(t, c * CL, CL, buf), ==, 0);
            assert_same_bytes(buf, e.pit->data + c * CL, CL, c * CL,
                              "fleece");
        }
    }
    g_free(buf);
    g_free(written);
    blk_unref(t);
    env_free(&e);
}

/* A bitmap of the source that tracks from now on. */
static BdrvDirtyBitmap *add_bitmap(Env *e, const char *name)
{
    GError *err = NULL;
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_create(e->src, CL, name, &err);
    g_assert_no_error(err);
    return bm;
}

/* Writes a few clusters (recorded by the bitmaps). */
static void dirty_some(Env *e, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t off = (uint64_t)g_random_int_range(0, DISK / CL) * CL;
        write_pattern(e->blk, e->disk, off, CL / 2, e->seed++);
    }
}

/*
 * Incremental chain: full backup with a new bitmap (one transaction),
 * then rounds of writes and incremental backups, each into an overlay
 * whose backing is the previous backup; qemu-img compare says the last
 * one equals the disk.
 */
static void test_incremental_chain(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_bitmap_add(t, bdrv_get_node_name(e.src), "b0", false, 0, true,
                       false);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    txn_add_blockdev_backup(t, &a);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    g_assert_no_error(err);
    e.pit = model_copy(e.disk);
    guest_writes(&e, 20);
    wait_job();
    check_target(&e);

    g_autofree char *prev = g_strdup(e.tgt_path);
    for (int round = 1; round <= 3; round++) {
        dirty_some(&e, 6);
        BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(e.src, "b0");
        g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), >, 0);
        g_autofree char *name = g_strdup_printf("inc%d.qcow2", round);
        g_autofree char *path = test_path(name);
        g_autofree char *bopt = g_strdup_printf(
            "backing_file=%s,backing_fmt=qcow2", prev);
        img_create(path, DISK, bopt);
        g_free(e.tgt_path);
        e.tgt_path = g_strdup(path);
        env_open_target(&e, NULL);
        a = args_for(&e, BACKUP_SYNC_INCREMENTAL);
        a.bitmap = "b0";
        uint64_t dirty = bdrv_dirty_bitmap_count(bm);
        start_backup(&e, &a);
        /* Only the dirty clusters are copied. */
        g_assert_cmpint(job0()->progress_total, ==, dirty);
        guest_writes(&e, 10);
        wait_job();
        check_target(&e);
        /* The bitmap now holds exactly the writes made during the job. */
        g_assert_false(bdrv_dirty_bitmap_busy(bm));
        g_free(prev);
        prev = g_strdup(path);
    }
    /* A last one with no writes after it: byte for byte the disk. */
    dirty_some(&e, 3);
    g_autofree char *path = test_path("inc-last.qcow2");
    g_autofree char *bopt = g_strdup_printf("backing_file=%s,backing_fmt="
                                            "qcow2", prev);
    img_create(path, DISK, bopt);
    g_free(e.tgt_path);
    e.tgt_path = g_strdup(path);
    env_open_target(&e, NULL);
    a = args_for(&e, BACKUP_SYNC_INCREMENTAL);
    a.bitmap = "b0";
    start_backup(&e, &a);
    wait_job();
    bdrv_unref(e.tgt);
    e.tgt = NULL;
    g_assert_cmpint(blk_flush(e.blk), ==, 0);
    char *argv[] = { "qemu-img", "compare", "-U", path, e.src_path, NULL };
    g_autofree char *out = NULL;
    g_autofree char *errout = NULL;
    int st = run_tool(argv, &out, &errout);
    if (st != 0) {
        g_error("qemu-img compare: %d %s %s", st, out, errout);
    }
    g_assert_nonnull(strstr(out, "Images are identical"));
    env_free(&e);
}

/* ---- bitmap-mode after success and failure ---- */

static void bitmap_mode_case(BackupBitmapMode mode, bool fail)
{
    Env e;
    env_init(&e, NULL);
    BdrvDirtyBitmap *bm = add_bitmap(&e, "b0");
    /* Away from the last cluster, which the guest writes during the job:
     * a copy-before-write there would fail the guest write with the
     * target's error. */
    for (int i = 0; i < 8; i++) {
        write_pattern(e.blk, e.disk, i * 3 * CL, CL / 2, 3);
    }
    uint64_t before = bdrv_dirty_bitmap_count(bm);
    bool last_dirty = bdrv_dirty_bitmap_get(bm, DISK - CL);
    env_open_target(&e, "file.driver=blkdebug,file.file.driver=file");
    if (fail) {
        BlkdebugRule r = { .ops = BLKDBG_OP_WRITE, .nth = 0, .offset = -1,
                           .err = EIO };
        g_assert_true(blkdebug_add_rule(e.tgt->file->bs, &r));
    }
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_BITMAP);
    a.bitmap = "b0";
    a.has_bitmap_mode = true;
    a.bitmap_mode = mode;
    g_ptr_array_set_size(events, 0);
    start_backup(&e, &a);
    g_assert_true(bdrv_dirty_bitmap_busy(bm));
    /* A write during the job lands in the successor. */
    write_pattern(e.blk, e.disk, DISK - CL, 512, 9);
    wait_job();
    g_autofree char *ev = events_take();
    g_assert_nonnull(strstr(ev, fail ? "BLOCK_JOB_COMPLETED concluded"
                                     : "pending BLOCK_JOB_COMPLETED"));
    g_assert_false(bdrv_dirty_bitmap_busy(bm));
    g_assert_null(bdrv_dirty_bitmap_successor(bm));
    g_assert_true(bdrv_dirty_bitmap_recording(bm));
    uint64_t after = bdrv_dirty_bitmap_count(bm);
    if (!fail && mode != BACKUP_BITMAP_NEVER) {
        /* Only the write made during the job. */
        g_assert_cmpuint(after, ==, CL);
    } else {
        /* Everything as before, plus that write (with always after a
         * failure: the uncopied bits, which here are all of them). */
        g_assert_cmpuint(after, ==, before + (last_dirty ? 0 : CL));
    }
    g_assert_true(bdrv_dirty_bitmap_get(bm, DISK - CL));
    env_free(&e);
}

static void test_bitmap_modes(void)
{
    for (int m = 0; m < 3; m++) {
        for (int f = 0; f < 2; f++) {
            bitmap_mode_case((BackupBitmapMode)m, f);
        }
    }
}

/* A persistent bitmap after an incremental backup: stored on close with
 * the writes made during the job, as qemu-img info and a reopen show. */
static void test_persistent_bitmap(void)
{
    Env e;
    env_init(&e, NULL);
    BdrvDirtyBitmap *bm = add_bitmap(&e, "pb");
    bdrv_dirty_bitmap_set_persistent(bm, true);
    write_pattern(e.blk, e.disk, 0, CL, 7);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_INCREMENTAL);
    a.bitmap = "pb";
    start_backup(&e, &a);
    write_pattern(e.blk, e.disk, 5 * CL, 512, 8);   /* during the job */
    wait_job();
    bdrv_unref(e.tgt);
    e.tgt = NULL;
    qemu_check(e.tgt_path, false);
    blk_unref(e.blk);
    char *argv[] = { "qemu-img", "info", "--output=json", e.src_path, NULL };
    g_autofree char *out = NULL;
    g_assert_cmpint(run_tool(argv, &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "\"pb\""));
    qemu_check(e.src_path, false);
    e.blk = img_open(e.src_path);
    e.src = blk_bs(e.blk);
    bm = bdrv_dirty_bitmap_find(e.src, "pb");
    g_assert_nonnull(bm);
    g_assert_true(bdrv_dirty_bitmap_persistent(bm));
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, CL);
    g_assert_true(bdrv_dirty_bitmap_get(bm, 5 * CL));
    env_free(&e);
}

/* ---- error policies, speed, compression, cancel ---- */

static void test_on_target_error(void)
{
    for (int policy = 0; policy < 3; policy++) {
        XblkOnError on = policy == 0 ? XBLK_ON_ERROR_REPORT
                       : policy == 1 ? XBLK_ON_ERROR_IGNORE
                                     : XBLK_ON_ERROR_STOP;
        Env e;
        env_init(&e, NULL);
        env_open_target(&e, "file.driver=blkdebug,file.file.driver=file");
        BlkdebugRule r = { .ops = BLKDBG_OP_WRITE, .nth = 3, .offset = -1,
                           .err = EIO, .once = true };
        g_assert_true(blkdebug_add_rule(e.tgt->file->bs, &r));
        TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
        a.on_target_error = on;
        g_ptr_array_set_size(events, 0);
        start_backup(&e, &a);
        if (on == XBLK_ON_ERROR_STOP) {
            while (!job0()->paused) {
                aio_poll(true);
            }
            g_assert_cmpint(job0()->status, ==, XBLK_JOB_STATUS_PAUSED);
            BlockJob *bj = block_job_from_job(job0());
            g_assert_cmpint(bj->iostatus, ==, XBLK_IO_STATUS_FAILED);
            GError *err = NULL;
            job_user_resume(job0(), &err);
            g_assert_no_error(err);
        }
        wait_job();
        g_autofree char *ev = events_take();
        if (on == XBLK_ON_ERROR_REPORT) {
            g_assert_nonnull(strstr(ev, "BLOCK_JOB_ERROR aborting "
                                    "BLOCK_JOB_COMPLETED"));
            bdrv_unref(e.tgt);
            e.tgt = NULL;
        } else {
            g_assert_nonnull(strstr(ev, "BLOCK_JOB_ERROR"));
            g_assert_nonnull(strstr(ev, "pending BLOCK_JOB_COMPLETED"));
            check_target(&e);
        }
        env_free(&e);
    }
}

static void test_speed(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.speed = 4 * CL;                   /* 256 KiB/s */
    start_backup(&e, &a);
    gint64 end = g_get_monotonic_time() + 300 * 1000;
    while (g_get_monotonic_time() < end) {
        aio_poll(false);
        g_usleep(1000);
    }
    /* 0.3 s at 256 KiB/s: a few clusters, far from the 4 MiB. */
    int64_t cur = job0()->progress_current;
    g_assert_cmpint(cur, >, 0);
    g_assert_cmpint(cur, <=, 4 * CL);
    g_assert_cmpint(job0()->progress_total, ==, DISK);
    GError *err = NULL;
    g_assert_true(job_set_speed(job0(), 0, &err));
    wait_job();
    check_target(&e);
    env_free(&e);
}

static void test_compress(void)
{
    Env e;
    env_init(&e, NULL);
    uint8_t *buf = g_malloc(DISK);
    compressible_fill(buf, DISK, 5, 0);
    write_both(e.blk, e.disk, 0, DISK, buf, 0);
    g_free(buf);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.compress = true;
    start_backup(&e, &a);
    guest_writes(&e, 10);
    wait_job();
    check_target(&e);
    char *argv[] = { "qemu-img", "check", "--output=json", e.tgt_path, NULL };
    g_autofree char *out = NULL;
    run_tool(argv, &out, NULL);
    json_t *j = json_loads(out, 0, NULL);
    g_assert_nonnull(j);
    g_assert_cmpint(json_integer_value(json_object_get(
        j, "compressed-clusters")), >, DISK / CL / 2);
    json_decref(j);
    env_free(&e);
}

static void test_cancel_mid_copy(void)
{
    Env e;
    env_init(&e, NULL);
    BdrvDirtyBitmap *bm = add_bitmap(&e, "b0");
    dirty_some(&e, 10);
    uint64_t before = bdrv_dirty_bitmap_count(bm);
    env_open_target(&e, NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_BITMAP);
    a.bitmap = "b0";
    a.has_bitmap_mode = true;
    a.bitmap_mode = BACKUP_BITMAP_ON_SUCCESS;
    a.speed = CL;
    start_backup(&e, &a);
    for (int i = 0; i < 20; i++) {
        aio_poll(false);
    }
    g_ptr_array_set_size(events, 0);
    GError *err = NULL;
    job_user_cancel(job0(), true, &err);
    g_assert_no_error(err);
    wait_job();
    g_autofree char *ev = events_take();
    g_assert_cmpstr(ev, ==, "aborting BLOCK_JOB_CANCELLED concluded null");
    g_assert_false(bdrv_dirty_bitmap_busy(bm));
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, before);
    env_free(&e);
}

/* A failed guest write when the copy before it fails (QEMU 7.2's
 * break-guest-write); the job goes on and the write works again once
 * the target does. */
static void test_cbw_failure(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, "file.driver=blkdebug,file.file.driver=file");
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_NONE);
    start_backup(&e, &a);
    BlkdebugRule r = { .ops = BLKDBG_OP_WRITE, .offset = -1, .err = EIO };
    g_assert_true(blkdebug_add_rule(e.tgt->file->bs, &r));
    uint8_t buf[4096];
    memset(buf, 0x5a, sizeof(buf));
    g_assert_cmpint(blk_pwrite(e.blk, 0, sizeof(buf), buf, 0), ==, -EIO);
    verify_range(e.blk, e.disk, 0, CL);     /* nothing reached the disk */
    g_assert_cmpint(job0()->status, ==, XBLK_JOB_STATUS_RUNNING);
    blkdebug_clear_rules(e.tgt->file->bs);
    write_both(e.blk, e.disk, 0, sizeof(buf), buf, 0);
    job_cancel_sync(job0(), true);
    wait_job();
    env_free(&e);
}

/* ---- grouped completion ---- */

static void test_grouped_failure(void)
{
    Env e;
    env_init(&e, NULL);
    BdrvDirtyBitmap *bm = add_bitmap(&e, "b0");
    dirty_some(&e, 5);
    uint64_t before = bdrv_dirty_bitmap_count(bm);
    env_open_target(&e, NULL);
    g_autofree char *t2 = test_path("tgt2.qcow2");
    img_create(t2, DISK, NULL);
    g_autofree char *o2 = g_strdup_printf("file.driver=blkdebug,"
                                          "file.file.driver=file,"
                                          "file.file.filename=%s", t2);
    BlockDriverState *tgt2 = open_node(t2, "tgt2", o2);
    BlkdebugRule r = { .ops = BLKDBG_OP_WRITE, .nth = 2, .offset = -1,
                       .err = EIO };
    g_assert_true(blkdebug_add_rule(tgt2->file->bs, &r));

    Transaction *t = txn_new(TXN_COMPLETION_GROUPED);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_BITMAP);
    a.bitmap = "b0";
    a.has_bitmap_mode = true;
    a.bitmap_mode = BACKUP_BITMAP_ON_SUCCESS;
    a.speed = 2 * CL;                   /* still running when job1 fails */
    txn_add_blockdev_backup(t, &a);
    TxnBackupArgs b = args_for(&e, BACKUP_SYNC_FULL);
    b.job_id = "job1";
    b.target = "tgt2";
    txn_add_blockdev_backup(t, &b);
    g_ptr_array_set_size(events, 0);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    g_assert_no_error(err);
    /* (No guest writes here: while job1's hook is on the source they
     * would fail with its target's error, as in QEMU.) */
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    while (job_get("job0") || job_get("job1")) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(true);
    }
    g_autofree char *ev = events_take();
    g_assert_nonnull(strstr(ev, "BLOCK_JOB_CANCELLED"));
    g_assert_nonnull(strstr(ev, "BLOCK_JOB_COMPLETED"));
    g_assert_null(strstr(ev, "pending"));
    /* The bitmap is back as it was. */
    g_assert_false(bdrv_dirty_bitmap_busy(bm));
    g_assert_cmpuint(bdrv_dirty_bitmap_count(bm), ==, before);
    bdrv_unref(tgt2);
    env_free(&e);
}

/* ---- the filter node ---- */

static void expect_error(const TxnBackupArgs *a, bool drive,
                         const char *msg);

static int cbw_nodes(void)
{
    int n = 0;
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        n += !strcmp(bdrv_get_format_name(bs), "copy-before-write");
    }
    return n;
}

/* The graph as before the job: the device on the source, which has no
 * parent, and no filter anywhere. */
static void assert_no_filter(Env *e)
{
    g_assert_true(blk_bs(e->blk) == e->src);
    g_assert_null(e->src->parents);
    g_assert_cmpint(cbw_nodes(), ==, 0);
}

/* While the job runs: the device's root is the filter, the source its
 * only parent's backing node; guest writes go through it and copy. */
static BlockDriverState *assert_filter(Env *e, const char *name)
{
    BlockDriverState *f = blk_bs(e->blk);
    g_assert_cmpstr(bdrv_get_format_name(f), ==, "copy-before-write");
    g_assert_true(bdrv_backing_bs(f) == e->src);
    g_assert_cmpuint(g_list_length(e->src->parents), ==, 1);
    g_assert_null(e->src->backends);
    g_assert_false(bdrv_is_read_only(f));
    g_assert_cmpint(bdrv_getlength(f), ==, DISK);
    if (name) {
        g_assert_true(bdrv_find_node(name) == f);
        g_assert_false(bdrv_is_implicit_job_filter(f));
    } else {
        g_assert_true(bdrv_get_node_name(f)[0] == '#');
        g_assert_true(bdrv_is_implicit_job_filter(f));
    }
    /* QEMU never hides copy-before-write in query-block. */
    g_assert_true(bdrv_skip_implicit_filters(f) == f);
    return f;
}

static void test_filter_node(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    int nodes = 0;
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        nodes++;
    }

    /* Named, to completion under guest writes. */
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.speed = 16 * 1024 * 1024;
    a.filter_node_name = "cbw";
    start_backup(&e, &a);
    BlockDriverState *f = assert_filter(&e, "cbw");
    GError *err = NULL;
    g_assert_true(block_job_node_busy(f, &err));
    g_assert_cmpstr(err->message, ==, "Node 'cbw' is busy: block device is "
                    "in use by block job: backup");
    g_clear_error(&err);
    g_assert_cmpint(guest_writes(&e, 40), >, 5);
    wait_job();
    assert_no_filter(&e);
    g_assert_null(bdrv_find_node("cbw"));
    verify_model(e.blk, e.disk);

    /* A name in use: QEMU's text, nothing changes (no job, no node). */
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.filter_node_name = "tgt";
    expect_error(&a, false, "Could not create node: Duplicate nodes with "
                 "node-name='tgt'");
    a.filter_node_name = "x y";
    expect_error(&a, false, "Could not create node: Invalid node-name: "
                 "'x y'");
    g_assert_null(job0());
    assert_no_filter(&e);

    /* Implicit, cancelled mid-copy. */
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.speed = CL;
    start_backup(&e, &a);
    assert_filter(&e, NULL);
    guest_writes(&e, 5);
    job_cancel_sync(job0(), true);
    wait_job();
    assert_no_filter(&e);

    /* A transaction that rolls back never puts the filter in. */
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.filter_node_name = "cbw";
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_blockdev_backup(t, &a);
    txn_add_abort(t);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_clear_error(&err);
    wait_job();
    g_assert_null(bdrv_find_node("cbw"));
    assert_no_filter(&e);

    int after = 0;
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        after++;
    }
    g_assert_cmpint(after, ==, nodes);
    verify_model(e.blk, e.disk);
    env_free(&e);
}

/* A job that fails (its target breaks) takes its filter out too. */
static void test_filter_on_failure(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, "file.driver=blkdebug,file.file.driver=file");
    BlkdebugRule r = { .ops = BLKDBG_OP_WRITE, .nth = 3, .offset = -1,
                       .err = EIO };
    g_assert_true(blkdebug_add_rule(e.tgt->file->bs, &r));
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.speed = 4 * CL;
    a.filter_node_name = "cbw";
    g_ptr_array_set_size(events, 0);
    start_backup(&e, &a);
    assert_filter(&e, "cbw");
    wait_job();
    g_autofree char *ev = events_take();
    g_assert_nonnull(strstr(ev, "aborting BLOCK_JOB_COMPLETED"));
    assert_no_filter(&e);
    g_assert_null(bdrv_find_node("cbw"));
    verify_model(e.blk, e.disk);
    env_free(&e);
}

/* A second backup of the device while the first runs stacks its filter
 * on the first one's; the first ends first, and the second goes on
 * copying from the node below (QEMU: the filter's child edge moves). */
static void test_filter_stacked(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    g_autofree char *t2 = test_path("tgt2.qcow2");
    img_create(t2, DISK, NULL);
    BlockDriverState *tgt2 = open_node(t2, "tgt2", NULL);
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.speed = CL;
    a.filter_node_name = "cbw1";
    start_backup(&e, &a);
    Model *pit1 = model_copy(e.pit);
    guest_writes(&e, 10);
    TxnBackupArgs b = args_for(&e, BACKUP_SYNC_FULL);
    b.job_id = "job1";
    b.device = "cbw1";
    b.target = "tgt2";
    b.speed = CL;
    b.filter_node_name = "cbw2";
    start_backup(&e, &b);
    BlockDriverState *f2 = bdrv_find_node("cbw2");
    g_assert_true(blk_bs(e.blk) == f2);
    g_assert_true(bdrv_backing_bs(f2) == bdrv_find_node("cbw1"));
    guest_writes(&e, 10);
    GError *err = NULL;
    job_set_speed(job0(), 0, &err);
    g_assert_no_error(err);
    wait_job();
    /* cbw1 is out of the graph (job1 still holds the node it was made
     * on, until it ends). */
    g_assert_true(blk_bs(e.blk) == f2 && bdrv_backing_bs(f2) == e.src);
    g_assert_cmpuint(g_list_length(e.src->parents), ==, 1);
    guest_writes(&e, 10);
    job_set_speed(job_get("job1"), 0, &err);
    g_assert_no_error(err);
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (job_get("job1")) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(true);
    }
    assert_no_filter(&e);
    g_assert_null(bdrv_find_node("cbw1"));
    verify_model(e.blk, e.disk);
    bdrv_unref(tgt2);
    qemu_check(t2, false);
    qemu_compare(t2, NULL, e.pit);
    model_free(e.pit);
    e.pit = pit1;
    check_target(&e);
    env_free(&e);
}

/* ---- validation and drive-backup ---- */

static void expect_error(const TxnBackupArgs *a, bool drive, const char *msg)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    if (drive) {
        txn_add_drive_backup(t, a);
    } else {
        txn_add_blockdev_backup(t, a);
    }
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, msg);
    g_error_free(err);
}

static void test_errors(void)
{
    Env e;
    env_init(&e, NULL);
    env_open_target(&e, NULL);
    BdrvDirtyBitmap *bm = add_bitmap(&e, "b0");
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_INCREMENTAL);
    expect_error(&a, false,
                 "must provide a valid bitmap name for 'incremental' sync "
                 "mode");
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.has_bitmap_mode = true;
    expect_error(&a, false, "Cannot specify bitmap sync mode without a "
                 "bitmap");
    a.bitmap = "b0";
    a.bitmap_mode = BACKUP_BITMAP_NEVER;
    expect_error(&a, false, "Bitmap sync mode 'never' has no meaningful "
                 "effect when combined with sync mode 'full'");
    a.sync = BACKUP_SYNC_NONE;
    expect_error(&a, false, "sync mode 'none' does not produce meaningful "
                 "bitmap outputs");
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.target = bdrv_get_node_name(e.src);
    expect_error(&a, false, "Source and target cannot be the same");
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.job_id = "1x";
    expect_error(&a, false, "Invalid job ID '1x'");
    a.job_id = "job0";
    a.target = "nope";
    expect_error(&a, false, "Cannot find device='nope' nor node-name='nope'");
    bdrv_dirty_bitmap_set_inconsistent(bm);
    a = args_for(&e, BACKUP_SYNC_BITMAP);
    a.bitmap = "b0";
    a.has_bitmap_mode = true;
    expect_error(&a, false, "Bitmap 'b0' is inconsistent and cannot be "
                 "used");
    g_assert_null(job0());

    /* drive-backup: a target made in a failed prepare is removed. */
    g_autofree char *f = test_path("drive.qcow2");
    a = args_for(&e, BACKUP_SYNC_INCREMENTAL);
    a.target = f;
    expect_error(&a, true, "must provide a valid bitmap name for "
                 "'incremental' sync mode");
    g_assert_false(g_file_test(f, G_FILE_TEST_EXISTS));
    a = args_for(&e, BACKUP_SYNC_FULL);
    a.target = f;
    a.job_id = "9";
    expect_error(&a, true, "Invalid job ID '9'");
    g_assert_false(g_file_test(f, G_FILE_TEST_EXISTS));
    env_free(&e);
}

/* drive-backup creates the target with the source's format and size and
 * a backing file per sync mode; the job owns and closes it. */
static void test_drive_backup(void)
{
    Env e;
    env_init(&e, NULL);
    g_autofree char *f = test_path("drive.qcow2");
    TxnBackupArgs a = args_for(&e, BACKUP_SYNC_FULL);
    a.target = f;
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_drive_backup(t, &a);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    g_assert_no_error(err);
    e.pit = model_copy(e.disk);
    guest_writes(&e, 20);
    wait_job();
    qemu_check(f, false);
    qemu_compare(f, NULL, e.pit);
    env_free(&e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    events = g_ptr_array_new_with_free_func(g_free);
    block_event_set_sink(record_event);
    g_test_add_func("/backup/full-under-writes", test_full_under_writes);
    g_test_add_func("/backup/top-under-writes", test_top_under_writes);
    g_test_add_func("/backup/none-fleecing", test_none_fleecing);
    g_test_add_func("/backup/incremental-chain", test_incremental_chain);
    g_test_add_func("/backup/bitmap-modes", test_bitmap_modes);
    g_test_add_func("/backup/persistent-bitmap", test_persistent_bitmap);
    g_test_add_func("/backup/on-target-error", test_on_target_error);
    g_test_add_func("/backup/speed", test_speed);
    g_test_add_func("/backup/compress", test_compress);
    g_test_add_func("/backup/cancel-mid-copy", test_cancel_mid_copy);
    g_test_add_func("/backup/cbw-failure", test_cbw_failure);
    g_test_add_func("/backup/grouped-failure", test_grouped_failure);
    g_test_add_func("/backup/errors", test_errors);
    g_test_add_func("/backup/drive-backup", test_drive_backup);
    g_test_add_func("/backup/filter-node", test_filter_node);
    g_test_add_func("/backup/filter-on-failure", test_filter_on_failure);
    g_test_add_func("/backup/filter-stacked", test_filter_stacked);
    int ret = g_test_run();
    test_dir_cleanup();
    return ret;
}
