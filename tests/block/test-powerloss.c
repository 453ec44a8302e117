/*
 * test-powerloss.c - crash consistency of qcow2 under power loss (DESIGN
 * rule 2): at every write or flush an operation issues, the power fails.
 *
 * A test-only filter driver, "powerloss" (powerloss.h), sits under the
 * image.  Writes it receives stay in a volatile list (reads see them)
 * until a flush applies them to the file below, as a disk's write cache
 * would.  When the nth write or flush arrives the power fails: that
 * request and all later ones fail (the software runs on, as if already
 * dead), and of the writes still volatile only a subset reaches the file
 * - none of them, all, or random selections (a disk may persist its
 * cache in any order).
 * The image is then reopened and must pass bdrv_check and `qemu-img
 * check` without corruption (leaks are allowed), keep every byte flushed
 * before the operation, and show snapshots whole or not at all (a save
 * state's VM state written after the commit included).
 */
#include "powerloss.h"
#include "block/vmstate.h"
#include "util/cutils.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)

/* ---- one run ---- */

typedef struct Env {
    char *path;
    BlockBackend *blk;
    BlockDriverState *pl;
    Model *m;           /* flushed before the operation */
    Model *alt;         /* the state once the operation succeeded */
    uint64_t vol_off, vol_len;
    bool whole;         /* the image is m or alt, nothing in between */
    bool completed;     /* the operation returned before the power failed */
    Model *snap;        /* what snapshot "mid" holds, if any */
} Env;

typedef struct CrashCase {
    const char *name;
    const char *opts;
    const char *open_opts;      /* extra qcow2 options, or NULL */
    uint64_t size;
    void (*setup)(Env *e);
    void (*op)(Env *e);
    void (*verify)(Env *e);
} CrashCase;

static BlockBackend *open_powerloss(Env *e, const char *extra)
{
    GError *err = NULL;
    BlockBackend *blk = blk_new_open(NULL, pl_opts(e->path, extra),
                                     BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    e->pl = bdrv_file_bs(blk_bs(blk));
    g_assert_cmpstr(bdrv_get_format_name(e->pl), ==, "powerloss");
    return blk;
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

static void verify_data(Env *e, BlockBackend *blk)
{
    if (e->whole) {
        g_assert_true(blk_matches(blk, e->m) || blk_matches(blk, e->alt));
        return;
    }
    uint64_t size = e->m->size;
    uint8_t *buf = g_malloc(size);
    g_assert_cmpint(blk_pread(blk, 0, size, buf), ==, 0);
    for (uint64_t i = 0; i < size; i++) {
        bool vol = i >= e->vol_off && i < e->vol_off + e->vol_len;
        if (!vol && buf[i] != e->m->data[i]) {
            g_error("byte %" G_GUINT64_FORMAT " is %#x, flushed %#x", i,
                    buf[i], e->m->data[i]);
        }
    }
    g_free(buf);
}

/* Runs the case with the power failing at event n (0: never) and subset
 * (power_cut) surviving; returns the events the operation issued. */
static uint64_t run_once(const void *data, uint64_t n, uint64_t subset)
{
    const CrashCase *c = data;
    Env e = { .path = test_path("pl.qcow2") };
    g_unlink(e.path);
    img_create(e.path, c->size, c->opts);
    e.m = model_new(c->size);
    e.blk = open_powerloss(&e, c->open_opts);
    c->setup(&e);
    g_assert_cmpint(blk_flush(e.blk), ==, 0);
    blk_unref(e.blk);
    e.blk = open_powerloss(&e, c->open_opts);
    e.alt = e.alt ? e.alt : model_copy(e.m);
    power_start(n, false);
    c->op(&e);
    e.completed = !power.dead;
    uint64_t events = power.events;
    power_cut(subset);
    blk_unref(e.blk);           /* whatever close writes is lost */
    e.blk = NULL;
    power_reset();
    qemu_check(e.path, true);
    BlockBackend *blk = img_open(e.path);
    check_blk(blk, true);
    verify_data(&e, blk);
    if (e.completed && !blk_matches(blk, e.alt)) {
        /* Every operation ends with a flush (or is a snapshot operation,
         * durable when it returns): its result survives. */
        g_error("the operation completed, but its result was lost");
    }
    e.blk = blk;
    if (c->verify) {
        c->verify(&e);
    }
    blk_unref(e.blk);
    model_free(e.m);
    model_free(e.alt);
    model_free(e.snap);
    g_free(e.path);
    return events;
}

static void sweep(gconstpointer data)
{
    const CrashCase *c = data;
    test_dir_setup_in_memory();
    g_autofree char *name = g_strdup_printf("powerloss/%s", c->name);
    power_sweep(name, c, run_once, power_random_subsets(1, 6));
    test_dir_cleanup();
}

/* ---- the cases ---- */

static void op_write(Env *e, uint64_t off, uint64_t len, uint32_t seed)
{
    uint8_t *buf = g_malloc(len);
    pattern_fill(buf, len, seed, off);
    memcpy(e->alt->data + off, buf, len);
    e->vol_off = off;
    e->vol_len = len;
    power_check_ok(blk_pwrite(e->blk, off, len, buf, 0));
    power_check_ok(blk_flush(e->blk));
    g_free(buf);
}

static void setup_small(Env *e)
{
    write_pattern(e->blk, e->m, 0, 64 * KiB, 1);
    write_pattern(e->blk, e->m, 200 * KiB, 10 * KiB, 2);
}

/* 512-byte clusters: a new L2 table (32 KiB each) and data clusters. */
static void op_alloc(Env *e)
{
    op_write(e, 3 * MiB + 1000, 70 * KiB, 3);
}

/* 64 KiB clusters: new data clusters under an L2 table that exists. */
static void op_alloc_in_l2(Env *e)
{
    op_write(e, 300 * KiB + 100, 200 * KiB, 15);
}

/* 512-byte clusters, an L2 cache of 4 tables: data in 16 tables. */
static void setup_spread(Env *e)
{
    for (uint64_t i = 0; i < 16; i++) {
        write_pattern(e->blk, e->m, i * 32 * KiB, 16 * KiB, 16 + i);
    }
}

/* The table a discard changed is evicted (written) before the flush that
 * frees its clusters: the frees must still wait for it to be durable. */
static void op_discard_evicted(Env *e)
{
    uint8_t buf[512];
    memset(e->alt->data + 4 * KiB, 0, 8 * KiB);
    e->vol_off = 4 * KiB;
    e->vol_len = 8 * KiB;
    power_check_ok(blk_pdiscard(e->blk, 4 * KiB, 8 * KiB));
    for (uint64_t i = 1; i < 16; i++) {
        power_check_ok(blk_pread(e->blk, i * 32 * KiB, sizeof(buf), buf));
    }
    power_check_ok(blk_flush(e->blk));
}

/* 16-bit refcounts in 512-byte clusters: a new refcount block. */
static void setup_refblock(Env *e)
{
    write_pattern(e->blk, e->m, 0, 100 * KiB, 4);
}

static void op_refblock(Env *e)
{
    op_write(e, 1 * MiB, 64 * KiB, 5);
}

/* 64-bit refcounts in 512-byte clusters: the refcount table grows. */
static void setup_reftable(Env *e)
{
    for (uint64_t off = 0; off < 1940 * KiB; off += 97 * KiB) {
        write_pattern(e->blk, e->m, off, 97 * KiB, 6);
    }
}

static void op_reftable(Env *e)
{
    op_write(e, 2 * MiB, 48 * KiB, 7);
}

static void setup_data(Env *e)
{
    write_pattern(e->blk, e->m, 0, 1 * MiB, 8);
}

/* Freed clusters are reused only once the discard is durable. */
static void op_discard_reuse(Env *e)
{
    memset(e->alt->data + 256 * KiB, 0, 512 * KiB);
    e->vol_off = 256 * KiB;
    e->vol_len = 1280 * KiB;
    power_check_ok(blk_pdiscard(e->blk, 256 * KiB, 512 * KiB));
    uint8_t *buf = g_malloc(512 * KiB);
    pattern_fill(buf, 512 * KiB, 9, 1 * MiB);
    memcpy(e->alt->data + 1 * MiB, buf, 512 * KiB);
    power_check_ok(blk_pwrite(e->blk, 1 * MiB, 512 * KiB, buf, 0));
    power_check_ok(blk_flush(e->blk));
    g_free(buf);
}

static void op_zero(Env *e)
{
    memset(e->alt->data + 128 * KiB, 0, 256 * KiB);
    e->vol_off = 128 * KiB;
    e->vol_len = 256 * KiB;
    power_check_ok(blk_pwrite_zeroes(e->blk, 128 * KiB, 256 * KiB,
                                  BDRV_REQ_MAY_UNMAP));
    power_check_ok(blk_flush(e->blk));
}

static void op_compressed(Env *e)
{
    uint8_t *buf = g_malloc(256 * KiB);
    compressible_fill(buf, 256 * KiB, 10, 512 * KiB);
    memcpy(e->alt->data + 512 * KiB, buf, 256 * KiB);
    e->vol_off = 512 * KiB;
    e->vol_len = 256 * KiB;
    power_check_ok(blk_pwrite(e->blk, 512 * KiB, 256 * KiB, buf,
                           BDRV_REQ_WRITE_COMPRESSED));
    power_check_ok(blk_flush(e->blk));
    g_free(buf);
}

/* 4 KiB clusters: growing from 2 to 32 L1 entries moves the L1 table. */
static void op_grow(Env *e)
{
    GError *err = NULL;
    e->whole = true;
    model_resize(e->alt, 64 * MiB);
    int ret = blk_truncate(e->blk, 64 * MiB, false, PREALLOC_MODE_OFF, &err);
    power_check_err(ret, err);
    power_check_ok(blk_flush(e->blk));
}

static void setup_snapshot(Env *e)
{
    write_pattern(e->blk, e->m, 0, 256 * KiB, 11);
    snapshot_create_ok(e->blk, "old");
}

/* "old" holds pattern 11 in its first 256 KiB. */
static void verify_old(Env *e)
{
    uint8_t *want = g_malloc(256 * KiB), *got = g_malloc(256 * KiB);
    snapshot_apply_ok(e->blk, "old");
    pattern_fill(want, 256 * KiB, 11, 0);
    g_assert_cmpint(blk_pread(e->blk, 0, 256 * KiB, got), ==, 0);
    assert_same_bytes(got, want, 256 * KiB, 0, "snapshot 'old'");
    g_free(want);
    g_free(got);
}

static void op_cow_snapshot(Env *e)
{
    op_write(e, 100 * KiB + 7, 70 * KiB, 12);
}

static void op_create(Env *e)
{
    GError *err = NULL;
    int ret = snapshot_create(e->blk, "new", &err);
    power_check_err(ret, err);
}

static void verify_create(Env *e)
{
    g_assert_true(!e->completed ||
                  bdrv_snapshot_find(blk_bs(e->blk), "new", NULL));
    if (bdrv_snapshot_find(blk_bs(e->blk), "new", NULL)) {
        snapshot_apply_ok(e->blk, "new");
        verify_model(e->blk, e->m);
    }
    verify_old(e);
}

/* A save state whose VM state is written after the commit (block/vmstate.h,
 * vm_state_late), with a guest write in between: the snapshot is listed
 * only with its whole VM state, and holds the disk at the commit. */
#define LATE_VM (300 * KiB + 17)

typedef struct {
    Env *e;
    int ret;
    GError *err;
} LateCo;

static void coroutine_fn late_entry(void *opaque)
{
    LateCo *c = opaque;
    BlockDriverState *bs = blk_bs(c->e->blk);
    BdrvSnapshotInfo sn = { .name = "new", .vm_state_late = true,
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotCreate *st;
    c->ret = bdrv_co_snapshot_create_prepare(bs, &sn, &st, &c->err);
    if (c->ret < 0) {
        return;
    }
    bdrv_drained_begin(bs);
    bdrv_snapshot_create_commit(bs, st);
    bdrv_drained_end(bs);
    uint64_t off = 100 * KiB + 7, len = 70 * KiB;
    uint8_t *buf = g_malloc(len);
    pattern_fill(buf, len, 12, off);
    memcpy(c->e->alt->data + off, buf, len);
    c->e->vol_off = off;
    c->e->vol_len = len;
    IOVector q;
    iovec_init_buf(&q, buf, len);
    int ret = blk_co_pwritev(c->e->blk, off, len, &q, 0);
    g_free(buf);
    const uint64_t piece = 100 * KiB + 3;
    uint8_t *vm = g_malloc(LATE_VM);
    pattern_fill(vm, LATE_VM, 15, 0);
    /* The last piece first. */
    for (uint64_t k = 0; k < 4 && ret >= 0; k++) {
        uint64_t pos = ((k + 3) % 4) * piece;
        iovec_init_buf(&q, vm + pos, MIN(piece, LATE_VM - pos));
        ret = bdrv_co_snapshot_create_writev_vmstate(bs, st, &q, pos, NULL);
    }
    g_free(vm);
    if (ret >= 0) {
        ret = bdrv_snapshot_create_set_vm_state_size(bs, st, LATE_VM, NULL);
    }
    if (ret < 0) {
        bdrv_co_snapshot_create_abort(bs, st);
        c->ret = ret;
        return;
    }
    c->ret = bdrv_co_snapshot_create_finish(bs, st, &c->err);
}

static void op_create_late(Env *e)
{
    LateCo c = { e, 0, NULL };
    co_run_sync(late_entry, &c);
    power_check_err(c.ret, c.err);
}

static void verify_create_late(Env *e)
{
    BdrvSnapshotInfo sn;
    g_assert_true(!e->completed ||
                  bdrv_snapshot_find(blk_bs(e->blk), "new", NULL));
    if (bdrv_snapshot_find(blk_bs(e->blk), "new", &sn)) {
        bdrv_snapshot_info_clear(&sn);
        g_assert_cmpuint(sn.vm_state_size, ==, LATE_VM);
        uint8_t *want = g_malloc(LATE_VM), *got = g_malloc(LATE_VM);
        pattern_fill(want, LATE_VM, 15, 0);
        GError *err = NULL;
        g_assert_cmpint(bdrv_snapshot_load_vmstate(blk_bs(e->blk), "new", got,
                                                   0, LATE_VM, &err), ==, 0);
        g_assert_no_error(err);
        assert_same_bytes(got, want, LATE_VM, 0, "late VM state");
        g_free(want);
        g_free(got);
        snapshot_apply_ok(e->blk, "new");
        verify_model(e->blk, e->m);
    }
    verify_old(e);
}

static void setup_two_states(Env *e)
{
    setup_snapshot(e);
    e->alt = model_copy(e->m);
    write_pattern(e->blk, e->m, 128 * KiB, 256 * KiB, 13);
    zero_both(e->blk, e->m, 0, 64 * KiB, 0);
}

static void op_apply(Env *e)
{
    GError *err = NULL;
    e->whole = true;
    int ret = bdrv_snapshot_apply(blk_bs(e->blk), "old", &err);
    power_check_err(ret, err);
}

static void setup_three_states(Env *e)
{
    setup_two_states(e);
    snapshot_create_ok(e->blk, "mid");
    e->snap = model_copy(e->m);
    model_free(e->alt);
    e->alt = NULL;
    write_pattern(e->blk, e->m, 300 * KiB, 100 * KiB, 14);
}

static void op_delete(Env *e)
{
    GError *err = NULL;
    int ret = bdrv_snapshot_delete(blk_bs(e->blk), NULL, "old", &err);
    power_check_err(ret, err);
}

static void verify_delete(Env *e)
{
    g_assert_true(!e->completed ||
                  !bdrv_snapshot_find(blk_bs(e->blk), "old", NULL));
    if (bdrv_snapshot_find(blk_bs(e->blk), "old", NULL)) {
        verify_old(e);
    }
    snapshot_apply_ok(e->blk, "mid");
    verify_model(e->blk, e->snap);
}

static const CrashCase cases[] = {
    { "alloc", "cluster_size=512", NULL, 4 * MiB, setup_small, op_alloc },
    { "discard-evicted", "cluster_size=512", "l2-cache-size=2048", 1 * MiB,
      setup_spread, op_discard_evicted },
    { "alloc-in-l2", NULL, NULL, 1 * MiB, setup_small, op_alloc_in_l2 },
    { "refblock", "cluster_size=512", NULL, 4 * MiB, setup_refblock,
      op_refblock },
    { "reftable", "cluster_size=512,refcount_bits=64", NULL, 4 * MiB,
      setup_reftable, op_reftable },
    { "discard-reuse", "cluster_size=4096", NULL, 2 * MiB, setup_data,
      op_discard_reuse },
    { "write-zeroes", NULL, NULL, 2 * MiB, setup_data, op_zero },
    { "compressed", "compression_type=zstd", NULL, 1 * MiB, setup_data,
      op_compressed },
    { "grow", "cluster_size=4096", NULL, 4 * MiB, setup_small, op_grow },
    { "cow-snapshot", NULL, NULL, 1 * MiB, setup_snapshot, op_cow_snapshot,
      verify_old },
    { "snapshot-create", NULL, NULL, 1 * MiB, setup_snapshot, op_create,
      verify_create },
    { "snapshot-create-late-vmstate", NULL, NULL, 1 * MiB, setup_snapshot,
      op_create_late, verify_create_late },
    { "snapshot-create-late-vmstate-4k", "cluster_size=4096", NULL, 1 * MiB,
      setup_snapshot, op_create_late, verify_create_late },
    { "snapshot-apply", NULL, NULL, 1 * MiB, setup_two_states, op_apply,
      verify_old },
    { "snapshot-delete", NULL, NULL, 1 * MiB, setup_three_states, op_delete,
      verify_delete },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_register(&bdrv_powerloss);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/powerloss/%s",
                                                cases[i].name);
        g_test_add_data_func(name, &cases[i], sweep);
    }
    int ret = g_test_run();
    power_report("test-powerloss");
    return ret;
}
