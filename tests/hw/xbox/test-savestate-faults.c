/*
 * test-savestate-faults.c - EIO and ENOSPC at every write, flush and read
 * of a save state's save, load and delete (issue #14), on the whole
 * machine: the reference guest on a qcow2 hard disk opened through the
 * blkdebug fault-injection filter (block/blkdebug.h), its disc beside.
 *
 * A state "base" is saved without faults at frame 120.  Then, for each
 * operation and kind of fault, the 1st, 2nd, ... request of that kind the
 * operation issues fails (EIO once, as a disk that recovers; ENOSPC from
 * then on, as a disk that stays full, until the operation returned),
 * until the operation gets through without meeting its fault.  After
 * every attempt, with the faults cleared:
 *   - the operation either succeeded or said why (no silent failure);
 *   - the machine goes on: it runs another 30 frames;
 *   - a failed save left no state under its tag (whole or absent);
 *   - a failed load left the machine as it was (frame and frame hash);
 *   - "base" still loads and reproduces its frame hash;
 *   - the image passes qemu-img check without corruption (leaks are
 *     allowed: a failed write-out may leave clusters nobody uses).
 * Prints how many faults were injected and how many attempts failed.
 * make check runs every point up to 24 and a spread of later ones per
 * kind; XBLK_LONG=1 (make check-long) runs every point.
 */
#include "tests/hw/xbox/guest-path.h"
#include "api/internal.h"
#include "block/blkdebug.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "hw/runstate.h"
#include "monitor/host/machine-state.h"
#include "util/main-loop.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#define HD_SIZE "256M"
#define BASE_FRAME 120
#define DENSE_POINTS 24         /* every point up to here in make check */
#define MAX_POINTS 4000

static char *tmpdir;
static bool long_run;

typedef struct Rig {
    XboxMachine *m;
    XblkEngine *engine;
    BlockBackend *hd;
    BlockDriverState *dbg;      /* the blkdebug node under the qcow2 */
    char *hd_path;
    bool started;
    char *base_hash;
    uint64_t injected, failed, attempts;
} Rig;

static char *run_tool(const char *const *argv, int *status)
{
    char *out = NULL;
    g_autofree char *err_out = NULL;
    GError *err = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err_out, status, &err));
    g_assert_no_error(err);
    return out;
}

static XblkDisk *drive_disk(Rig *r, BlockBackend *blk, const char *id)
{
    blk_set_name(blk, id);
    XblkDisk *disk = xblk_api_disk_wrap(r->engine, blk, id);
    blk_unref(blk);
    return disk;
}

static void rig_open(Rig *r)
{
    GError *err = NULL;
    XblkError *xerr = NULL;
    XblkEngineOptions eo = {
        .size = sizeof(eo), .glib_context = g_main_context_default(),
    };
    r->engine = xblk_engine_new(&eo, &xerr);
    g_assert_null(xerr);
    MachineConfig cfg = { .engine = r->engine, .ram_size = MACHINE_RAM_64M,
                          .seed = 1 };
    cfg.kernel_path = test_build_path("guest/xboxguest.elf");

    g_autofree char *o = g_strdup_printf(
        "driver=qcow2,file.driver=blkdebug,file.file.filename=%s",
        r->hd_path);
    BlockOpts *opts = bopts_new();
    g_assert_true(bopts_parse(opts, o, &err));
    MachineDriveConfig *d = &cfg.drives[0];
    d->kind = IDE_DRIVE_HD;
    r->hd = blk_new_open(NULL, opts, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    r->dbg = bdrv_file_bs(blk_bs(r->hd));
    g_assert_cmpstr(bdrv_get_format_name(r->dbg), ==, "blkdebug");
    d->id = g_strdup("ide0-hd0");
    d->open_flags = BDRV_O_RDWR;
    /* A guest write that meets an injected fault is reported to the
     * guest, not a stop: the test's faults aim at the state's I/O. */
    d->werror = IDE_ERROR_ACTION_REPORT;
    d->rerror = IDE_ERROR_ACTION_REPORT;
    d->disk = drive_disk(r, r->hd, d->id);

    g_autofree char *disc = test_build_path("guest/disc.iso");
    opts = bopts_new();
    bopts_set(opts, "driver", "raw");
    d = &cfg.drives[1];
    d->kind = IDE_DRIVE_CD;
    BlockBackend *cd = blk_new_open(disc, opts, 0, &err);
    g_assert_no_error(err);
    d->id = g_strdup("ide0-cd1");
    d->werror = IDE_ERROR_ACTION_REPORT;
    d->rerror = IDE_ERROR_ACTION_REPORT;
    d->disk = drive_disk(r, cd, d->id);

    r->m = machine_new(&cfg, &err);
    g_assert_no_error(err);
}

static bool stopped(void *opaque)
{
    return !runstate_is_running() && machine_is_parked(opaque);
}

static void run_to_frame(Rig *r, uint64_t frame)
{
    GError *err = NULL;
    g_assert_true(machine_frame_stop_at(r->m, frame, &err));
    g_assert_no_error(err);
    runstate_set(XBLK_RUN_STATE_RUNNING);
    if (!r->started) {
        r->started = true;
        machine_start(r->m);
    }
    gint64 deadline = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;
    while (!stopped(r->m)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (!aio_poll(false)) {
            g_usleep(200);
        }
    }
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_PAUSED);
    g_assert_cmpuint(machine_frame(r->m), ==, frame);
}

static char *frame_hash(Rig *r)
{
    GError *err = NULL;
    char *h = machine_frame_hash(r->m, &err);
    g_assert_no_error(err);
    return h;
}

static bool has_tag(Rig *r, const char *tag)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(blk_bs(r->hd), &list);
    bool found = false;
    for (int i = 0; i < n; i++) {
        found |= !g_strcmp0(list[i].name, tag);
    }
    if (n > 0) {
        bdrv_snapshot_list_free(list, n);
    }
    return found;
}

static void check_image(Rig *r, const char *ctx)
{
    int status = 0;
    g_autofree char *out = run_tool((const char *[]){
        "qemu-img", "check", "-U", r->hd_path, NULL }, &status);
    /* 0 clean, 3 leaks only */
    if (!g_spawn_check_wait_status(status, NULL) &&
        !(WIFEXITED(status) && WEXITSTATUS(status) == 3)) {
        g_error("%s: qemu-img check: %s", ctx, out);
    }
}

/* The state the test keeps coming back to. */
static void check_base_loads(Rig *r, const char *ctx)
{
    GError *err = NULL;
    if (!machine_load_state(r->m, "base", NULL, &err)) {
        g_error("%s: 'base' does not load any more: %s", ctx, err->message);
    }
    g_autofree char *h = frame_hash(r);
    g_assert_cmpuint(machine_frame(r->m), ==, BASE_FRAME);
    if (strcmp(h, r->base_hash)) {
        g_error("%s: 'base' loads with another frame hash", ctx);
    }
}

typedef enum { OP_SAVE, OP_LOAD, OP_DELETE } Op;

typedef struct Fault {
    const char *name;
    Op op;
    unsigned ops;               /* BLKDBG_OP_* */
    int err;
    bool once;
} Fault;

/* One attempt of f at its nth request; false once the operation ran
 * without meeting the fault (the points are exhausted). */
static bool attempt(Rig *r, const Fault *f, uint64_t nth)
{
    GError *err = NULL;
    g_autofree char *ctx = g_strdup_printf("%s at request %" G_GUINT64_FORMAT,
                                           f->name, nth);
    /* Each attempt starts from base, paused at its frame. */
    check_base_loads(r, ctx);
    if (f->op == OP_DELETE) {
        g_assert_true(machine_save_state(r->m, "victim", NULL, &err));
        g_assert_no_error(err);
    }
    g_autofree char *before = frame_hash(r);
    uint64_t injected = blkdebug_injected(r->dbg);
    BlkdebugRule rule = { .ops = f->ops, .nth = nth, .offset = -1,
                          .err = f->err, .once = f->once };
    g_assert_true(blkdebug_add_rule(r->dbg, &rule));
    bool ok;
    switch (f->op) {
    case OP_SAVE:
        ok = machine_save_state(r->m, "attempt", NULL, &err);
        break;
    case OP_LOAD:
        ok = machine_load_state(r->m, "base", NULL, &err);
        break;
    default:
        ok = machine_delete_state(r->m, "victim", NULL, &err);
        break;
    }
    blkdebug_clear_rules(r->dbg);
    bool fired = blkdebug_injected(r->dbg) > injected;
    r->attempts++;
    r->injected += blkdebug_injected(r->dbg) - injected;
    if (!ok) {
        /* Said why, in words. */
        g_assert_nonnull(err);
        g_assert_cmpuint(strlen(err->message), >, 0);
        g_assert_true(fired);
        r->failed++;
        g_clear_error(&err);
    }
    g_assert_no_error(err);
    if (f->op == OP_SAVE && !ok) {
        g_assert_false(has_tag(r, "attempt"));     /* absent, not half */
    }
    if (f->op == OP_LOAD && !ok) {
        g_autofree char *after = frame_hash(r);
        g_assert_cmpstr(after, ==, before);        /* nothing changed */
    }
    /* The machine goes on. */
    run_to_frame(r, machine_frame(r->m) + 30);
    check_image(r, ctx);
    if (f->op == OP_SAVE && ok) {
        g_assert_true(machine_delete_state(r->m, "attempt", NULL, &err));
        g_assert_no_error(err);
    }
    if (f->op == OP_DELETE && has_tag(r, "victim")) {
        g_assert_true(machine_delete_state(r->m, "victim", NULL, &err));
        g_assert_no_error(err);
    }
    return fired;
}

static void run_fault(gconstpointer data)
{
    const Fault *f = data;
    Rig r = { 0 };
    r.hd_path = g_build_filename(tmpdir, "hd.qcow2", NULL);
    int status = 0;
    g_free(run_tool((const char *[]){ "qemu-img", "create", "-q", "-f",
                                      "qcow2", r.hd_path, HD_SIZE, NULL },
                    &status));
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    rig_open(&r);
    GError *err = NULL;
    run_to_frame(&r, BASE_FRAME);
    r.base_hash = frame_hash(&r);
    g_assert_true(machine_save_state(r.m, "base", NULL, &err));
    g_assert_no_error(err);

    uint64_t points = 0;
    for (uint64_t nth = 1; nth <= MAX_POINTS; nth++) {
        /* make check: every early point, then a spread of later ones */
        if (!long_run && nth > DENSE_POINTS && nth % 7 != 0) {
            continue;
        }
        points++;
        if (!attempt(&r, f, nth)) {
            break;
        }
    }
    printf("# %s: %" G_GUINT64_FORMAT " fault points, %" G_GUINT64_FORMAT
           " faults injected, %" G_GUINT64_FORMAT " attempts failed with an "
           "error, 0 corruptions, 'base' loaded after each\n", f->name,
           points, r.injected, r.failed);
    g_assert_cmpuint(r.failed, >, 0);      /* the faults did reach it */

    machine_free(r.m);
    xblk_engine_free(r.engine);
    g_unlink(r.hd_path);
    g_free(r.hd_path);
    g_free(r.base_hash);
}

static const Fault faults[] = {
    { "save-write-eio", OP_SAVE, BLKDBG_OP_WRITE, EIO, true },
    { "save-write-enospc", OP_SAVE, BLKDBG_OP_WRITE | BLKDBG_OP_ZERO,
      ENOSPC, false },
    { "save-flush-eio", OP_SAVE, BLKDBG_OP_FLUSH, EIO, true },
    { "load-read-eio", OP_LOAD, BLKDBG_OP_READ, EIO, true },
    { "load-write-enospc", OP_LOAD, BLKDBG_OP_WRITE | BLKDBG_OP_ZERO,
      ENOSPC, false },
    { "delete-write-eio", OP_DELETE, BLKDBG_OP_WRITE, EIO, true },
    { "delete-flush-enospc", OP_DELETE, BLKDBG_OP_FLUSH, ENOSPC, false },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    long_run = !g_strcmp0(g_getenv("XBLK_LONG"), "1");
    tmpdir = g_dir_make_tmp("xblk-test-savestate-faults-XXXXXX", NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(faults); i++) {
        g_autofree char *name = g_strdup_printf("/savestate-faults/%s",
                                                faults[i].name);
        g_test_add_data_func(name, &faults[i], run_fault);
    }
    int ret = g_test_run();
    g_rmdir(tmpdir);
    return ret;
}
