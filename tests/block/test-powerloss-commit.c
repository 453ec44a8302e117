/*
 * test-powerloss-commit.c - block-commit (block/commit.c, tested from
 * outside: the offline merge and the job, active and non-active) under
 * power loss (DESIGN rule 2).
 *
 * A chain base <- mid <- top, every layer a qcow2 node opened read-write
 * over its own "powerloss" node (powerloss.h), all on one power supply;
 * the guest's device is top.  At each write or flush the merge issues
 * the power fails for the whole chain, and of the volatile writes none,
 * all or random subsets survive.  Afterwards the chain is opened as its
 * files say (top, following the backing file names in the headers) and:
 *  - qemu-img check finds no corruption in any layer;
 *  - the guest sees exactly the data it had flushed: before the merge,
 *    the merge reads as before whichever header survived (base only
 *    gains data the layers above hide); a guest write during the active
 *    commit reads old or new until its flush returned, new after;
 *  - when the merge had reported success: the chain after it is on disk
 *    (top's header names base for a non-active commit; base alone reads
 *    the guest's data after an active one).
 */
#include "powerloss.h"
#include "block/commit.h"
#include "block/job.h"

#define KiB (1ULL << 10)
#define DISK (1 << 20)
#define NLAYER 3

typedef enum {
    COMMIT_OFFLINE_MID,     /* bdrv_commit_offline(mid -> base) */
    COMMIT_OFFLINE_TOP,     /* bdrv_commit_offline(top -> base) */
    COMMIT_JOB_MID,         /* the job, non-active (mid -> base) */
    COMMIT_JOB_ACTIVE,      /* the job, active (top -> base), pivot */
} CommitKind;

typedef struct CommitCase {
    const char *name;
    CommitKind kind;
    bool guest_write;       /* a guest write + flush during the job */
} CommitCase;

static const char *const layer_file[NLAYER] = {
    "base.qcow2", "mid.qcow2", "top.qcow2",
};

typedef struct Chain {
    char *path[NLAYER];
    Model *m;               /* what the guest flushed */
    Model *alt;             /* m plus the write during the job */
    uint64_t vol_off, vol_len;
    bool guest_flushed;     /* that write's flush returned */
    BlockDriverState *node[NLAYER];
    BlockBackend *blk;
} Chain;

/* Layer i writes half clusters at its own stride and zeroes an area the
 * layers below filled: every layer hides some data below it. */
static void chain_create(Chain *c)
{
    c->m = model_new(DISK);
    for (int i = 0; i < NLAYER; i++) {
        c->path[i] = test_path(layer_file[i]);
        g_unlink(c->path[i]);
        g_autofree char *opts = i ? g_strdup_printf(
            "backing_file=%s,backing_fmt=qcow2", c->path[i - 1]) : NULL;
        img_create(c->path[i], DISK, opts);
        BlockBackend *blk = img_open(c->path[i]);
        for (uint64_t k = 0; k < DISK / (64 * KiB); k++) {
            if (k % (i + 2) == 0) {
                write_pattern(blk, c->m, k * 64 * KiB + i * 4096, 32 * KiB,
                              10 + i);
            }
        }
        if (i > 0) {
            zero_both(blk, c->m, (3 + i) * 64 * KiB, 64 * KiB + 4096, 0);
        }
        g_assert_cmpint(blk_flush(blk), ==, 0);
        blk_unref(blk);
    }
    c->alt = model_copy(c->m);
}

/* Every layer read-write over powerloss, named base / mid / top; the
 * device "disk0" on top. */
static void chain_open(Chain *c)
{
    static const char *const names[NLAYER] = { "base", "mid", "top" };
    for (int i = 0; i < NLAYER; i++) {
        g_autofree char *more = i ? g_strdup_printf("node-name=%s,"
                                                    "backing=%s", names[i],
                                                    names[i - 1])
                                  : g_strdup("node-name=base");
        GError *err = NULL;
        c->node[i] = bdrv_open(NULL, pl_opts(c->path[i], more), BDRV_O_RDWR,
                               &err);
        g_assert_no_error(err);
    }
    c->blk = blk_new();
    blk_insert_bs(c->blk, c->node[NLAYER - 1]);
    blk_set_name(c->blk, "disk0");
}

static void chain_close(Chain *c)
{
    blk_unref(c->blk);
    c->blk = NULL;
    for (int i = NLAYER; i-- > 0;) {
        bdrv_unref(c->node[i]);
        c->node[i] = NULL;
    }
}

static void chain_free(Chain *c)
{
    for (int i = 0; i < NLAYER; i++) {
        g_free(c->path[i]);
    }
    model_free(c->m);
    model_free(c->alt);
}

/* ---- the merges ---- */

static void wait_job(const char *id, XblkJobStatus until)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    Job *job;
    while ((job = job_get(id)) && job->status != until &&
           job->status != XBLK_JOB_STATUS_CONCLUDED &&
           job->status != XBLK_JOB_STATUS_NULL) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(true);
    }
}

typedef struct JobEnd {
    bool ended;
    int ret;
} JobEnd;

static void job_ended(void *opaque, int ret)
{
    JobEnd *e = opaque;
    e->ended = true;
    e->ret = ret;
}

/* The guest writes during the job and flushes: until the flush returns
 * the area may read old or new. */
static void guest_write(Chain *c)
{
    c->vol_off = 200 * KiB + 512;
    c->vol_len = 100 * KiB;
    uint8_t *buf = g_malloc(c->vol_len);
    pattern_fill(buf, c->vol_len, 99, c->vol_off);
    memcpy(c->alt->data + c->vol_off, buf, c->vol_len);
    int ret = blk_pwrite(c->blk, c->vol_off, c->vol_len, buf, 0);
    power_check_ok(ret);
    if (ret == 0) {
        ret = blk_flush(c->blk);
        power_check_ok(ret);
        c->guest_flushed = ret == 0 && !power.dead;
    }
    g_free(buf);
}

/* Runs the merge; true when it reported success. */
static bool run_commit(const CommitCase *cc, Chain *c)
{
    GError *err = NULL;
    int ret;
    if (cc->kind == COMMIT_OFFLINE_MID || cc->kind == COMMIT_OFFLINE_TOP) {
        BlockDriverState *top = c->node[cc->kind == COMMIT_OFFLINE_MID ? 1
                                                                       : 2];
        ret = bdrv_commit_offline(top, c->node[0], NULL, NULL, NULL, &err);
        power_check_err(ret, err);
        if (!power.dead) {
            g_assert_true(cc->kind == COMMIT_OFFLINE_MID
                          ? bdrv_backing_bs(c->node[2]) == c->node[0]
                          : blk_bs(c->blk) == c->node[0]);
        }
        return ret == 0;
    }
    bool active = cc->kind == COMMIT_JOB_ACTIVE;
    CommitOptions o;
    commit_options_init(&o);
    JobEnd end = { false, 0 };
    o.cb = job_ended;
    o.cb_opaque = &end;
    CommitJob *s = commit_job_start("c", c->node[2],
                                    c->node[active ? 2 : 1], c->node[0], &o,
                                    &err);
    g_assert_no_error(err);
    g_assert_nonnull(s);
    if (cc->guest_write) {
        for (int i = 0; i < 3; i++) {
            aio_poll(false);
        }
        guest_write(c);
    }
    if (active) {
        wait_job("c", XBLK_JOB_STATUS_READY);
        Job *job = job_get("c");
        if (job && job->status == XBLK_JOB_STATUS_READY) {
            job_complete(job, &err);
            power_check_err(0, err);
        }
    }
    wait_job("c", XBLK_JOB_STATUS_CONCLUDED);
    Job *job = job_get("c");
    if (job && job->status == XBLK_JOB_STATUS_CONCLUDED) {
        job_dismiss(job, &err);
        g_clear_error(&err);
    }
    g_assert_true(end.ended);
    if (!power.dead) {
        /* Without a failure the chain changed as the merge promises. */
        g_assert_cmpint(end.ret, ==, 0);
        g_assert_true(active ? blk_bs(c->blk) == c->node[0]
                             : bdrv_backing_bs(c->node[2]) == c->node[0]);
    }
    return end.ret == 0;
}

/* ---- checks ---- */

/* The guest's view through blk: m, except the area of the write during
 * the job, which is old or new until its flush returned. */
static void check_guest_view(Chain *c, BlockBackend *blk, const char *what)
{
    if (c->guest_flushed || !c->vol_len) {
        power_check_model(blk, c->guest_flushed ? c->alt : c->m, what);
        return;
    }
    g_autofree uint8_t *buf = g_malloc(DISK);
    if (blk_pread(blk, 0, DISK, buf) < 0) {
        power_failf("%s: read failed", what);
        return;
    }
    for (uint64_t i = 0; i < DISK; i++) {
        bool vol = i >= c->vol_off && i < c->vol_off + c->vol_len;
        if (buf[i] != c->m->data[i] && !(vol && buf[i] == c->alt->data[i])) {
            power_failf("%s: byte at guest offset %" G_GUINT64_FORMAT " is "
                        "%#x, flushed %#x", what, i, buf[i], c->m->data[i]);
            return;
        }
    }
}

static uint64_t run_once(const void *data, uint64_t fail_at,
                         uint64_t subset)
{
    const CommitCase *cc = data;
    Chain c = { { 0 } };
    chain_create(&c);
    chain_open(&c);

    power_start(fail_at, false);
    bool ok = run_commit(cc, &c);
    bool done = ok && !power.dead;
    uint64_t events = power.events;
    if (fail_at) {
        power_cut(subset);
    }
    chain_close(&c);
    power_reset();

    for (int i = 0; i < NLAYER; i++) {
        power_qemu_check(c.path[i]);
    }
    /* The chain as the headers say, from the top image. */
    GError *err = NULL;
    BlockBackend *blk = img_open_opts(c.path[2], NULL, &err);
    if (!blk) {
        power_failf("top does not open: %s", err->message);
        g_error_free(err);
    } else {
        BlockDriverState *bs = blk_bs(blk);
        for (BlockDriverState *l = bs; l; l = bdrv_backing_bs(l)) {
            power_check_node(l, bdrv_get_filename(l));
        }
        check_guest_view(&c, blk, "top's chain");
        const char *bf = bdrv_get_backing_filename(bs);
        if (done && cc->kind != COMMIT_OFFLINE_TOP &&
            cc->kind != COMMIT_JOB_ACTIVE && g_strcmp0(bf, c.path[0])) {
            power_failf("the commit reported success, but top's backing "
                        "file is '%s'", bf);
        }
        blk_unref(blk);
    }
    if (done && (cc->kind == COMMIT_OFFLINE_TOP ||
                 cc->kind == COMMIT_JOB_ACTIVE)) {
        /* The device moved to base: base alone is the guest's disk. */
        blk = img_open(c.path[0]);
        check_guest_view(&c, blk, "base after the pivot");
        blk_unref(blk);
    }
    chain_free(&c);
    return events;
}

static const CommitCase cases[] = {
    { "offline-mid", COMMIT_OFFLINE_MID, false },
    { "offline-top", COMMIT_OFFLINE_TOP, false },
    { "job-mid", COMMIT_JOB_MID, false },
    { "job-mid-guest-write", COMMIT_JOB_MID, true },
    { "job-active", COMMIT_JOB_ACTIVE, false },
    { "job-active-guest-write", COMMIT_JOB_ACTIVE, true },
};

static void test_case(gconstpointer data)
{
    const CommitCase *c = data;
    g_autofree char *name = g_strdup_printf("powerloss-commit/%s", c->name);
    power_sweep(name, c, run_once, power_random_subsets(1, 8));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_register(&bdrv_powerloss);
    test_dir_setup_in_memory();
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/powerloss-commit/%s",
                                                cases[i].name);
        g_test_add_data_func(name, &cases[i], test_case);
    }
    int ret = g_test_run();
    power_report("test-powerloss-commit");
    test_dir_cleanup();
    return ret;
}
