/*
 * test-powerloss-txn.c - a transaction of internal snapshots over two
 * images (block/transaction.c, block/txn-snapshot.c, block/txn-journal.c)
 * under power loss (DESIGN rules 2 and 3).
 *
 * Both images sit on "powerloss" nodes (powerloss.h) fed by one power
 * supply, and the transaction records (.IMAGE.xblk-txn) are written
 * through util/durable-io.h onto the simulated volatile file system of
 * the same supply: at each event - a write or flush of either image, a
 * create, write, fsync, rename or unlink of a record - the power fails
 * for everything at once, and of what was volatile none, all or random
 * subsets survive.  Then both images are reopened (the first open
 * resolves a leftover record, txn_journal_recover) and:
 *  - qemu-img check and bdrv_check find no corruption on either;
 *  - the snapshot is on both images or on neither (on both when the
 *    transaction had reported success), whole: it holds the guest data
 *    of the commit (and its VM state, for the save-state variant);
 *  - the snapshot taken before is intact, the guest data flushed before
 *    is kept, and no record is left beside the images.
 * The images are reopened in either order (the record beside either one
 * must do).
 */
#include "powerloss.h"
#include "block/transaction.h"
#include "block/txn-snapshot.h"

#define KiB (1ULL << 10)
#define DISK (1 << 20)
#define NDISK 2
#define VMSTATE_LEN (150 * KiB + 13)

typedef struct TxnCase {
    const char *name;
    bool late_vmstate;      /* disk0's snapshot takes a late VM state */
    const char *create_opts;
} TxnCase;

typedef struct Run {
    char *path[NDISK];
    Model *m[NDISK];
    BlockBackend *blk[NDISK];
} Run;

static void run_paths(Run *r)
{
    for (int i = 0; i < NDISK; i++) {
        g_autofree char *name = g_strdup_printf("d%d.qcow2", i);
        r->path[i] = test_path(name);
    }
}

static BlockBackend *open_pl(Run *r, int i)
{
    g_autofree char *more = g_strdup_printf("node-name=n%d", i);
    GError *err = NULL;
    BlockDriverState *bs = bdrv_open(NULL, pl_opts(r->path[i], more),
                                     BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    BlockBackend *blk = blk_new();
    blk_insert_bs(blk, bs);
    bdrv_unref(bs);
    g_autofree char *name = g_strdup_printf("disk%d", i);
    blk_set_name(blk, name);
    return blk;
}

/* Both images with data and a snapshot "old", all durable. */
static void setup(Run *r, const TxnCase *c)
{
    for (int i = 0; i < NDISK; i++) {
        g_unlink(r->path[i]);
        img_create(r->path[i], DISK, c->create_opts);
        r->m[i] = model_new(DISK);
        BlockBackend *blk = open_pl(r, i);
        write_pattern(blk, r->m[i], 0, 256 * KiB, 1 + i);
        snapshot_create_ok(blk, "old");
        write_pattern(blk, r->m[i], 128 * KiB, 300 * KiB, 3 + i);
        g_assert_cmpint(blk_flush(blk), ==, 0);
        blk_unref(blk);
    }
}

static int coroutine_fn write_vmstate(TxnSnapshotVmstate *vs, void *opaque,
                                      GError **errp)
{
    g_autofree uint8_t *vm = g_malloc(VMSTATE_LEN);
    pattern_fill(vm, VMSTATE_LEN, 77, 0);
    /* Two pieces, the second first. */
    const int64_t half = VMSTATE_LEN / 2;
    int ret = txn_snapshot_write_vmstate(vs, vm + half, half,
                                         VMSTATE_LEN - half, errp);
    if (ret >= 0) {
        ret = txn_snapshot_write_vmstate(vs, vm, 0, half, errp);
    }
    if (ret >= 0) {
        txn_snapshot_set_vm_state_size(vs, VMSTATE_LEN);
    }
    return ret;
}

static int run_txn(const TxnCase *c, GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    if (c->late_vmstate) {
        BdrvSnapshotInfo sn = { .name = "s1",
                                .icount = BDRV_SNAPSHOT_NO_ICOUNT };
        txn_add_snapshot_internal_late(t, "disk0", &sn, write_vmstate, NULL);
    } else {
        txn_add_snapshot_internal(t, "disk0", "s1");
    }
    txn_add_snapshot_internal(t, "disk1", "s1");
    return txn_run(t, errp);
}

static bool has_snapshot(BlockBackend *blk, const char *name,
                         BdrvSnapshotInfo *sn)
{
    return bdrv_snapshot_find(blk_bs(blk), name, sn);
}

/* The snapshot holds m (and, on disk0 of the save-state variant, its VM
 * state); applying it changes the image, so this comes last. */
static void check_snapshot(Run *r, int i, const char *name, const Model *m,
                           bool vmstate)
{
    BdrvSnapshotInfo sn;
    g_autofree char *what = g_strdup_printf("snapshot '%s' of disk%d", name,
                                            i);
    if (!has_snapshot(r->blk[i], name, &sn)) {
        power_failf("%s is missing", what);
        return;
    }
    uint64_t vm_size = sn.vm_state_size;
    bdrv_snapshot_info_clear(&sn);
    if (vmstate) {
        if (vm_size != VMSTATE_LEN) {
            power_failf("%s: VM state of %" G_GUINT64_FORMAT " bytes",
                        what, vm_size);
        } else {
            g_autofree uint8_t *want = g_malloc(VMSTATE_LEN);
            g_autofree uint8_t *got = g_malloc(VMSTATE_LEN);
            pattern_fill(want, VMSTATE_LEN, 77, 0);
            GError *err = NULL;
            if (bdrv_snapshot_load_vmstate(blk_bs(r->blk[i]), name, got, 0,
                                           VMSTATE_LEN, &err) < 0) {
                power_failf("%s: VM state unreadable: %s", what,
                            err->message);
                g_error_free(err);
            } else if (memcmp(got, want, VMSTATE_LEN)) {
                power_failf("%s: VM state differs", what);
            }
        }
    }
    GError *err = NULL;
    if (bdrv_snapshot_apply(blk_bs(r->blk[i]), name, &err) < 0) {
        power_failf("%s: cannot be applied: %s", what, err->message);
        g_error_free(err);
        return;
    }
    power_check_model(r->blk[i], m, what);
}

static uint64_t run_once(const void *data, uint64_t fail_at,
                         uint64_t subset)
{
    const TxnCase *c = data;
    Run r = { { 0 } };
    run_paths(&r);
    setup(&r, c);
    for (int i = 0; i < NDISK; i++) {
        r.blk[i] = open_pl(&r, i);
    }

    power_start(fail_at, true);
    GError *err = NULL;
    int ret = run_txn(c, &err);
    bool done = ret == 0 && !power.dead;
    if (!power.dead) {
        g_assert_no_error(err);
        g_assert_cmpint(ret, ==, 0);
    }
    g_clear_error(&err);
    uint64_t events = power.events;
    if (fail_at) {
        power_cut(subset);
    }
    for (int i = 0; i < NDISK; i++) {
        blk_unref(r.blk[i]);
        r.blk[i] = NULL;
    }
    power_reset();

    /* Reopen (recovery runs in the first open), in either order. */
    int first = subset & 1;
    for (int k = 0; k < NDISK; k++) {
        int i = (first + k) % NDISK;
        r.blk[i] = img_open(r.path[i]);
    }
    bool on[NDISK];
    for (int i = 0; i < NDISK; i++) {
        g_autofree char *what = g_strdup_printf("disk%d", i);
        g_autofree char *rec = g_strdup_printf("%s/.d%d.qcow2.xblk-txn",
                                               test_dir, i);
        g_autofree char *tmp = g_strconcat(rec, ".tmp", NULL);
        if (g_file_test(rec, G_FILE_TEST_EXISTS)) {
            power_failf("%s: its transaction record is still there", what);
        }
        if (g_file_test(tmp, G_FILE_TEST_EXISTS)) {
            power_failf("%s: a partial record is still there", what);
        }
        power_check_node(blk_bs(r.blk[i]), what);
        power_check_model(r.blk[i], r.m[i], what);
        on[i] = has_snapshot(r.blk[i], "s1", NULL);
    }
    if (on[0] != on[1]) {
        power_failf("snapshot s1 is on disk%d only", on[0] ? 0 : 1);
    } else if (done && !on[0]) {
        power_failf("the transaction reported success but s1 is lost");
    }
    for (int i = 0; i < NDISK; i++) {
        if (on[i]) {
            check_snapshot(&r, i, "s1", r.m[i], c->late_vmstate && i == 0);
        }
    }
    /* "old" holds pattern 1 + i in its first 256 KiB. */
    for (int i = 0; i < NDISK; i++) {
        Model *old = model_new(DISK);
        pattern_fill(old->data, 256 * KiB, 1 + i, 0);
        check_snapshot(&r, i, "old", old, false);
        model_free(old);
    }
    for (int i = 0; i < NDISK; i++) {
        blk_unref(r.blk[i]);
        power_qemu_check(r.path[i]);
        model_free(r.m[i]);
        g_free(r.path[i]);
    }
    return events;
}

static const TxnCase cases[] = {
    { "internal", false, NULL },
    { "internal-4k", false, "cluster_size=4096" },
    { "internal-late-vmstate", true, NULL },
};

static void test_case(gconstpointer data)
{
    const TxnCase *c = data;
    g_autofree char *name = g_strdup_printf("powerloss-txn/%s", c->name);
    power_sweep(name, c, run_once, power_random_subsets(1, 12));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_register(&bdrv_powerloss);
    test_dir_setup_in_memory();
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/powerloss-txn/%s",
                                                cases[i].name);
        g_test_add_data_func(name, &cases[i], test_case);
    }
    int ret = g_test_run();
    power_report("test-powerloss-txn");
    test_dir_cleanup();
    return ret;
}
