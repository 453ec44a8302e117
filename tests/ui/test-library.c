/*
 * test-library.c - the player's save states (ui/library.c) over a real
 * console machine: the reference guest (build/guest/xboxguest.elf) with
 * its disc on a fresh qcow2 hard disk in a temporary folder, headless,
 * the index in a config folder there too.  The test's thread is the main
 * loop; the library's asynchronous calls are driven by iterating it.
 *
 * Covers: quick save and the listing (newest first, thumbnail, frame,
 * title, size); slot save and load back to the saved frame (frame and
 * frame hash); saving to a bound slot keeps a backup that undo save
 * brings back; undo load; an unbound slot's error names its key; rename
 * and bindings survive a new library on the same config folder; bind,
 * unbind, delete; search (case-insensitive, invalid UTF-8, 100 KB); the
 * rollback measure and warning after guest disk writes, and the same
 * measure after a restart of the machine (the bitmap kept in the image,
 * which qemu-img finds clean); states saved or deleted behind the
 * library's back; a second operation refused while one runs; F3; resume
 * save, has and load.
 */
#include "tests/hw/xbox/guest-path.h"
#include "api/internal.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "hw/runstate.h"
#include "monitor/host/machine-state.h"
#include "ui/library.h"
#include "util/main-loop.h"
#include <stdlib.h>
#include <string.h>

#define HD_SIZE "512M"
/* The guest writes a save to its disk every 180 frames (README). */
#define GUEST_SAVE_FRAMES 180

static char *tmpdir;

static void run_or_die(const char *const *argv)
{
    g_autofree char *out = NULL, *err_out = NULL;
    int status = 0;
    GError *err = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                               G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                               &err_out, &status, &err));
    g_assert_no_error(err);
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("%s failed: %s%s", argv[0], out, err_out);
    }
}

typedef struct Rig {
    XboxMachine *m;
    XblkEngine *engine;
    XblkDisk *hd;               /* the machine's (borrowed) */
    bool started;
    char *dir;                  /* this test's folder */
    char *config;               /* its config folder */
    UiLibrary *lib;
} Rig;

static XblkDisk *open_drive(Rig *r, MachineDriveConfig *d, const char *path,
                            const char *driver, int flags, const char *id)
{
    GError *err = NULL;
    BlockOpts *o = bopts_new();
    bopts_set(o, "driver", driver);
    BlockBackend *blk = blk_new_open(path, o, flags, &err);
    g_assert_no_error(err);
    blk_set_name(blk, id);
    d->id = g_strdup(id);
    d->open_flags = flags;
    d->werror = IDE_ERROR_ACTION_ENOSPC;
    d->rerror = IDE_ERROR_ACTION_REPORT;
    d->disk = xblk_api_disk_wrap(r->engine, blk, id);
    blk_unref(blk);
    return d->disk;
}

/* A machine on the test's disk (a fresh one unless reopen), its config
 * folder, and the library. */
static Rig rig_open(const char *name, bool reopen)
{
    GError *err = NULL;
    XblkError *xerr = NULL;
    Rig r = { 0 };
    r.dir = g_build_filename(tmpdir, name, NULL);
    g_assert_cmpint(g_mkdir_with_parents(r.dir, 0700), ==, 0);
    r.config = g_build_filename(r.dir, "config", "xblk", NULL);
    g_autofree char *hd = g_build_filename(r.dir, "hd.qcow2", NULL);
    if (!reopen) {
        run_or_die((const char *[]){ "qemu-img", "create", "-q", "-f",
                                     "qcow2", hd, HD_SIZE, NULL });
    }

    XblkEngineOptions eo = {
        .size = sizeof(eo), .glib_context = g_main_context_default(),
    };
    r.engine = xblk_engine_new(&eo, &xerr);
    g_assert_null(xerr);
    MachineConfig cfg = { .engine = r.engine };
    cfg.ram_size = MACHINE_RAM_64M;
    cfg.seed = 1;
    cfg.kernel_path = test_build_path("guest/xboxguest.elf");
    cfg.drives[0].kind = IDE_DRIVE_HD;
    r.hd = open_drive(&r, &cfg.drives[0], hd, "qcow2", BDRV_O_RDWR,
                      "ide0-hd0");
    g_autofree char *disc = test_build_path("guest/disc.iso");
    cfg.drives[1].kind = IDE_DRIVE_CD;
    open_drive(&r, &cfg.drives[1], disc, "raw", 0, "ide0-cd1");
    r.m = machine_new(&cfg, &err);
    g_assert_no_error(err);
    r.lib = ui_library_new(r.m, r.config, &err);
    g_assert_no_error(err);
    return r;
}

static Rig rig_new(const char *name)
{
    return rig_open(name, false);
}

static void rig_free(Rig *r)
{
    ui_library_free(r->lib);
    machine_free(r->m);
    xblk_engine_free(r->engine);
    g_free(r->dir);
    g_free(r->config);
}

static bool stopped(void *opaque)
{
    return !runstate_is_running() && machine_is_parked(opaque);
}

static void loop_until(bool (*cond)(void *), void *opaque)
{
    gint64 deadline = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;
    while (!cond(opaque)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (!aio_poll(false)) {
            g_usleep(200);
        }
    }
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
    loop_until(stopped, r->m);
    g_assert_cmpuint(machine_frame(r->m), ==, frame);
}

static char *frame_hash(Rig *r)
{
    GError *err = NULL;
    char *h = machine_frame_hash(r->m, &err);
    g_assert_no_error(err);
    return h;
}

/* ---- driving the asynchronous calls ---- */

typedef struct Done {
    bool called, ok;
    char *message;
} Done;

static void on_done(void *opaque, bool ok, const char *message)
{
    Done *d = opaque;
    g_assert_false(d->called);
    d->called = true;
    d->ok = ok;
    d->message = g_strdup(message);
}

static bool done_called(void *opaque)
{
    return ((Done *)opaque)->called;
}

typedef bool StartFn(UiLibrary *lib, UiLibraryDoneFn *done, void *opaque,
                     GError **errp);

/* Waits for the operation start() began; returns its message. */
static char *finish(Rig *r, Done *d)
{
    g_assert_false(d->called);          /* never inside the call */
    loop_until(done_called, d);
    g_assert_false(ui_library_busy(r->lib));
    g_test_message("%s: %s", d->ok ? "done" : "failed", d->message);
    return d->message;
}

static char *run_ok(Rig *r, StartFn *start)
{
    Done d = { 0 };
    GError *err = NULL;
    g_assert_true(start(r->lib, on_done, &d, &err));
    g_assert_no_error(err);
    char *msg = finish(r, &d);
    g_assert_true(d.ok);
    return msg;
}

typedef bool SlotFn(UiLibrary *lib, int slot, UiLibraryDoneFn *done,
                    void *opaque, GError **errp);

static char *run_slot(Rig *r, SlotFn *fn, int slot)
{
    Done d = { 0 };
    GError *err = NULL;
    g_assert_true(fn(r->lib, slot, on_done, &d, &err));
    g_assert_no_error(err);
    char *msg = finish(r, &d);
    g_assert_true(d.ok);
    return msg;
}

typedef bool TagFn(UiLibrary *lib, const char *tag, UiLibraryDoneFn *done,
                   void *opaque, GError **errp);

static char *run_tag(Rig *r, TagFn *fn, const char *tag)
{
    Done d = { 0 };
    GError *err = NULL;
    g_assert_true(fn(r->lib, tag, on_done, &d, &err));
    g_assert_no_error(err);
    char *msg = finish(r, &d);
    g_assert_true(d.ok);
    return msg;
}

/* The start is refused at once with a message containing want. */
static void refused(bool started, GError *err, const char *want)
{
    g_assert_false(started);
    g_assert_nonnull(err);
    g_test_message("refused: %s", err->message);
    g_assert_nonnull(strstr(err->message, want));
    g_error_free(err);
}

/* call uses &err, the macro's own. */
#define REFUSED(want, call) do { \
        GError *err = NULL; \
        bool started_ = (call); \
        refused(started_, err, want); \
    } while (0)

static guint list_len(Rig *r, bool this_title, const char *search)
{
    g_autoptr(GPtrArray) l = ui_library_list(r->lib, this_title, search);
    return l->len;
}

/* Snapshots on the hard disk: visible and hidden states alike. */
static int hd_snapshots(Rig *r)
{
    XblkError *err = NULL;
    int n = xblk_snapshot_list(r->hd, NULL, 0, &err);
    g_assert_null(err);
    return n;
}

static char *slot_tag(Rig *r, int slot)
{
    const UiStateEntry *e = ui_library_slot(r->lib, slot);
    return e ? g_strdup(e->tag) : NULL;
}

/* ---- tests ---- */

static void progress_count(void *opaque, uint64_t done, uint64_t total)
{
    g_assert_cmpuint(done, <=, total);
    (*(int *)opaque)++;
}

static void test_quick_save_list(void)
{
    Rig r = rig_new("quick");
    int progress = 0;
    ui_library_set_progress(r.lib, progress_count, &progress);
    g_assert_cmpstr(ui_library_title(r.lib), ==, "XBLK_GUEST_DISC");
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 0);

    run_to_frame(&r, 30);
    g_autofree char *m1 = run_ok(&r, ui_library_quick_save);
    g_assert_true(g_str_has_prefix(m1, "Saved 'Quick save 20"));
    g_assert_true(g_str_has_suffix(m1, " ms"));
    g_assert_nonnull(strstr(m1, "' \u00b7 pause "));
    g_assert_cmpint(progress, >, 0);
    run_to_frame(&r, 40);
    g_autofree char *m2 = run_ok(&r, ui_library_quick_save);

    g_autoptr(GPtrArray) l = ui_library_list(r.lib, false, NULL);
    g_assert_cmpuint(l->len, ==, 2);
    const UiStateEntry *newest = g_ptr_array_index(l, 0);
    const UiStateEntry *older = g_ptr_array_index(l, 1);
    g_assert_cmpuint(newest->frame, ==, 40);
    g_assert_cmpuint(older->frame, ==, 30);
    g_assert_true(g_str_has_prefix(newest->tag, "ui-"));
    g_assert_true(g_str_has_prefix(newest->name, "Quick save 20"));
    g_assert_cmpstr(newest->title, ==, "XBLK_GUEST_DISC");
    g_assert_true(g_str_has_suffix(newest->disc_path, "disc.iso"));
    g_assert_cmpuint(newest->size, >, 0);
    g_assert_cmpint(newest->slot, ==, 0);
    g_assert_cmpint(llabs(newest->created - g_get_real_time() /
                          G_USEC_PER_SEC), <, 600);
    g_assert_nonnull(newest->thumbnail_png);
    gsize len;
    const uint8_t *png = g_bytes_get_data(newest->thumbnail_png, &len);
    g_assert_cmpuint(len, >, 8);
    g_assert_cmpmem(png, 8, "\x89PNG\r\n\x1a\n", 8);
    g_assert_cmpuint(list_len(&r, true, NULL), ==, 2);

    /* Search: name or title, any case; anything as input. */
    g_assert_true(ui_library_rename(r.lib, older->tag, "Boss Fight", NULL));
    g_assert_cmpuint(list_len(&r, false, ""), ==, 2);
    g_assert_cmpuint(list_len(&r, false, "quick SAVE"), ==, 1);
    g_assert_cmpuint(list_len(&r, false, "bOSS"), ==, 1);
    g_assert_cmpuint(list_len(&r, false, "guest_disc"), ==, 2);
    g_assert_cmpuint(list_len(&r, true, "nothing like it"), ==, 0);
    g_assert_cmpuint(list_len(&r, false, "\xff\xfe\xc3"), ==, 0);
    g_assert_cmpuint(list_len(&r, false, "Boss\xc3"), ==, 0);
    g_autofree char *huge = g_malloc(100 * 1024 + 1);
    memset(huge, 'a', 100 * 1024);
    huge[100 * 1024] = 0;
    g_assert_cmpuint(list_len(&r, false, huge), ==, 0);
    huge[100 * 1024 - 1] = 0x80;      /* and invalid at the end */
    g_assert_cmpuint(list_len(&r, false, huge), ==, 0);
    rig_free(&r);
}

static void test_slots_and_undo(void)
{
    Rig r = rig_new("slots");
    GError *err = NULL;
    Done d = { 0 };
    run_to_frame(&r, 30);
    g_autofree char *h30 = frame_hash(&r);

    /* An unbound key says which it is. */
    REFUSED("F5 has no state for 'XBLK_GUEST_DISC'",
            ui_library_load_slot(r.lib, 1, on_done, &d, &err));
    REFUSED("F8 ",
            ui_library_load_slot(r.lib, 4, on_done, &d, &err));
    REFUSED("undo",
            ui_library_undo_load(r.lib, on_done, &d, &err));
    REFUSED("undo",
            ui_library_undo_save(r.lib, on_done, &d, &err));

    g_autofree char *m1 = run_slot(&r, ui_library_save_slot, 2);
    g_assert_true(g_str_has_prefix(m1, "Saved 'Slot 2' \u00b7 pause "));
    const UiStateEntry *s2 = ui_library_slot(r.lib, 2);
    g_assert_nonnull(s2);
    g_assert_cmpuint(s2->frame, ==, 30);
    g_assert_cmpint(s2->slot, ==, 2);
    g_assert_null(ui_library_slot(r.lib, 1));

    /* F5..F8 load: back to the saved frame, the very state. */
    run_to_frame(&r, 90);
    g_autofree char *h90 = frame_hash(&r);
    g_autofree char *m2 = run_slot(&r, ui_library_load_slot, 2);
    g_assert_cmpstr(m2, ==, "Loaded 'Slot 2' (frame 30)");
    g_assert_cmpuint(machine_frame(r.m), ==, 30);
    g_autofree char *h30b = frame_hash(&r);
    g_assert_cmpstr(h30, ==, h30b);

    /* F4: back to the moment before the load, once. */
    g_autofree char *m3 = run_ok(&r, ui_library_undo_load);
    g_assert_nonnull(strstr(m3, "frame 90"));
    g_assert_cmpuint(machine_frame(r.m), ==, 90);
    g_autofree char *h90b = frame_hash(&r);
    g_assert_cmpstr(h90, ==, h90b);
    REFUSED("No load to undo",
            ui_library_undo_load(r.lib, on_done, &d, &err));
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 1);

    /* Saving to the bound slot again: a new state with the slot's name,
     * the replaced one kept hidden; undo save brings it back. */
    g_autofree char *tag30 = slot_tag(&r, 2);
    g_assert_true(ui_library_rename(r.lib, tag30, "Boss", NULL));
    run_to_frame(&r, 120);
    g_autofree char *m4 = run_slot(&r, ui_library_save_slot, 2);
    g_assert_true(g_str_has_prefix(m4, "Saved 'Boss' \u00b7 pause "));
    g_autofree char *tag120 = slot_tag(&r, 2);
    g_assert_cmpstr(tag120, !=, tag30);
    g_assert_cmpuint(ui_library_slot(r.lib, 2)->frame, ==, 120);
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 1);
    g_assert_nonnull(ui_library_lookup(r.lib, tag30));   /* the backup */

    /* Again: the previous backup goes, the 120 one is the backup now. */
    run_to_frame(&r, 150);
    g_autofree char *m5 = run_slot(&r, ui_library_save_slot, 2);
    g_autofree char *tag150 = slot_tag(&r, 2);
    g_assert_null(ui_library_lookup(r.lib, tag30));
    g_assert_nonnull(ui_library_lookup(r.lib, tag120));

    g_autofree char *m6 = run_ok(&r, ui_library_undo_save);
    g_assert_nonnull(strstr(m6, "'Boss'"));
    g_autofree char *back = slot_tag(&r, 2);
    g_assert_cmpstr(back, ==, tag120);
    g_assert_null(ui_library_lookup(r.lib, tag150));
    g_assert_cmpstr(ui_library_slot(r.lib, 2)->name, ==, "Boss");
    g_assert_cmpuint(ui_library_slot(r.lib, 2)->frame, ==, 120);
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 1);
    REFUSED("No save to undo",
            ui_library_undo_save(r.lib, on_done, &d, &err));

    /* Loading it: F5..F8 by the name kept. */
    g_autofree char *m7 = run_slot(&r, ui_library_load_slot, 2);
    g_assert_cmpstr(m7, ==, "Loaded 'Boss' (frame 120)");
    g_assert_cmpuint(machine_frame(r.m), ==, 120);

    /* Bind and unbind. */
    g_autofree char *mq = run_ok(&r, ui_library_quick_save);
    g_autoptr(GPtrArray) l = ui_library_list(r.lib, true, "quick");
    g_assert_cmpuint(l->len, ==, 1);
    g_autofree char *qtag = g_strdup(((UiStateEntry *)l->pdata[0])->tag);
    g_assert_true(ui_library_bind(r.lib, qtag, 3, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(ui_library_slot(r.lib, 3)->tag, ==, qtag);
    g_assert_cmpint(ui_library_lookup(r.lib, qtag)->slot, ==, 3);
    g_assert_true(ui_library_bind(r.lib, qtag, 2, &err));  /* takes 2 */
    g_assert_null(ui_library_slot(r.lib, 3));
    g_assert_cmpstr(ui_library_slot(r.lib, 2)->tag, ==, qtag);
    g_assert_cmpint(ui_library_lookup(r.lib, tag120)->slot, ==, 0);
    g_assert_true(ui_library_bind(r.lib, qtag, 0, &err));
    g_assert_null(ui_library_slot(r.lib, 2));
    g_assert_false(ui_library_bind(r.lib, qtag, 5, &err));
    g_clear_error(&err);
    g_assert_false(ui_library_bind(r.lib, "no-such-tag", 1, &err));
    g_clear_error(&err);
    rig_free(&r);
}

static void test_rename_persists(void)
{
    Rig r = rig_new("rename");
    GError *err = NULL;
    run_to_frame(&r, 20);
    g_autofree char *m = run_ok(&r, ui_library_quick_save);
    g_autoptr(GPtrArray) l = ui_library_list(r.lib, false, NULL);
    g_autofree char *tag = g_strdup(((UiStateEntry *)l->pdata[0])->tag);

    /* 1..64 characters of UTF-8. */
    g_assert_false(ui_library_rename(r.lib, tag, "", &err));
    g_clear_error(&err);
    g_assert_false(ui_library_rename(r.lib, tag, "bad \xff", &err));
    g_clear_error(&err);
    g_autofree char *long65 = g_strnfill(65, 'x');
    g_assert_false(ui_library_rename(r.lib, tag, long65, &err));
    g_clear_error(&err);
    GString *wide = g_string_new(NULL);
    for (int i = 0; i < 64; i++) {
        g_string_append(wide, "\u00e9");
    }
    g_assert_true(ui_library_rename(r.lib, tag, wide->str, &err));
    g_assert_no_error(err);
    g_string_free(wide, TRUE);
    const char *name = "Level 3 [before] = boss\nfight";
    g_assert_true(ui_library_rename(r.lib, tag, name, &err));
    g_assert_true(ui_library_bind(r.lib, tag, 1, &err));
    g_assert_no_error(err);

    /* A new library on the same folder reads it all back. */
    ui_library_free(r.lib);
    g_autofree char *ini = g_build_filename(r.config, "states.ini", NULL);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(ini, &text, NULL, NULL));
    g_test_message("states.ini:\n%s", text);
    r.lib = ui_library_new(r.m, r.config, &err);
    g_assert_no_error(err);
    const UiStateEntry *e = ui_library_lookup(r.lib, tag);
    g_assert_nonnull(e);
    g_assert_cmpstr(e->name, ==, name);
    g_assert_cmpint(e->slot, ==, 1);
    g_assert_cmpstr(ui_library_slot(r.lib, 1)->tag, ==, tag);
    g_assert_cmpuint(list_len(&r, false, "BEFORE"), ==, 1);
    rig_free(&r);
}

static void test_delete(void)
{
    Rig r = rig_new("delete");
    Done d = { 0 };
    run_to_frame(&r, 20);
    g_autofree char *m1 = run_slot(&r, ui_library_save_slot, 1);
    run_to_frame(&r, 30);
    g_autofree char *m2 = run_slot(&r, ui_library_save_slot, 1);
    g_autofree char *m3 = run_ok(&r, ui_library_quick_save);
    g_assert_cmpint(hd_snapshots(&r), ==, 3);     /* with the backup */
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 2);

    /* The slot's state goes with its backup. */
    g_autofree char *tag = slot_tag(&r, 1);
    g_autofree char *m4 = run_tag(&r, ui_library_delete, tag);
    g_assert_cmpstr(m4, ==, "Deleted 'Slot 1'");
    g_assert_null(ui_library_lookup(r.lib, tag));
    g_assert_null(ui_library_slot(r.lib, 1));
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 1);
    g_assert_cmpint(hd_snapshots(&r), ==, 1);
    REFUSED("No save state",
            ui_library_delete(r.lib, tag, on_done, &d, &err));

    /* States saved or deleted behind the library's back: listed by
     * their tag, dropped from the index. */
    GError *err = NULL;
    g_assert_true(machine_save_state(r.m, "from-qmp", NULL, &err));
    g_assert_no_error(err);
    const UiStateEntry *e = ui_library_lookup(r.lib, "from-qmp");
    g_assert_nonnull(e);
    g_assert_cmpstr(e->name, ==, "from-qmp");
    g_assert_cmpuint(e->frame, ==, 30);
    g_assert_cmpuint(list_len(&r, false, "FROM-"), ==, 1);
    g_autoptr(GPtrArray) l = ui_library_list(r.lib, false, "quick");
    g_assert_cmpuint(l->len, ==, 1);
    g_autofree char *qtag = g_strdup(((UiStateEntry *)l->pdata[0])->tag);
    g_assert_true(ui_library_bind(r.lib, qtag, 2, &err));
    g_assert_true(machine_delete_state(r.m, qtag, NULL, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 1);
    g_assert_null(ui_library_slot(r.lib, 2));
    ui_library_free(r.lib);         /* the index as written */
    g_autofree char *ini = g_build_filename(r.config, "states.ini", NULL);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(ini, &text, NULL, NULL));
    g_assert_null(strstr(text, qtag));
    r.lib = ui_library_new(r.m, r.config, &err);
    g_assert_no_error(err);
    rig_free(&r);
}

static void test_rollback(void)
{
    Rig r = rig_new("rollback");
    run_to_frame(&r, 30);
    g_autofree char *m1 = run_slot(&r, ui_library_save_slot, 1);
    g_autofree char *tag = slot_tag(&r, 1);
    UiRollback rb;
    ui_library_rollback(r.lib, tag, &rb);
    g_assert_true(rb.known);
    g_assert_cmpuint(rb.frames, ==, 0);
    g_assert_cmpuint(rb.disk_bytes, ==, 0);
    g_assert_null(ui_library_rollback_warning(r.lib, tag));
    char *disc = (char *)"x";
    g_assert_false(ui_library_disc_mismatch(r.lib, tag, &disc));
    g_assert_null(disc);

    /* The guest writes its own saves meanwhile. */
    uint64_t later = 30 + 2 * GUEST_SAVE_FRAMES + 40;
    run_to_frame(&r, later);
    ui_library_rollback(r.lib, tag, &rb);
    g_test_message("since slot 1: %" G_GUINT64_FORMAT " frames, %"
                   G_GUINT64_FORMAT " B written", rb.frames, rb.disk_bytes);
    g_assert_true(rb.known);
    g_assert_cmpuint(rb.frames, ==, later - 30);
    g_assert_cmpuint(rb.disk_bytes, >, 0);
    g_autofree char *w = ui_library_rollback_warning(r.lib, tag);
    g_assert_cmpstr(w, ==, "Loading 'Slot 1' undoes less than a minute of "
                    "play and in-game saves made since");

    /* A state after it; then loading slot 1: its measure starts over,
     * the later one's is unknown. */
    g_autofree char *m2 = run_slot(&r, ui_library_save_slot, 2);
    g_autofree char *tag2 = slot_tag(&r, 2);
    g_autofree char *m3 = run_slot(&r, ui_library_load_slot, 1);
    ui_library_rollback(r.lib, tag, &rb);
    g_assert_true(rb.known);
    g_assert_cmpuint(rb.frames, ==, 0);
    g_assert_cmpuint(rb.disk_bytes, ==, 0);
    ui_library_rollback(r.lib, tag2, &rb);
    g_assert_false(rb.known);
    g_assert_cmpuint(rb.frames, ==, 0);       /* it is ahead of us */

    /* Play only: the warning without the saves. */
    run_to_frame(&r, 60);
    ui_library_rollback(r.lib, tag, &rb);
    g_assert_cmpuint(rb.frames, ==, 30);
    g_assert_cmpuint(rb.disk_bytes, ==, 0);
    g_autofree char *w2 = ui_library_rollback_warning(r.lib, tag);
    g_assert_cmpstr(w2, ==, "Loading 'Slot 1' undoes less than a minute of "
                    "play");
    /* A minute at 60 Hz. */
    run_to_frame(&r, 30 + 60 * 60 + 100);
    g_autofree char *w3 = ui_library_rollback_warning(r.lib, tag);
    g_assert_cmpstr(w3, ==, "Loading 'Slot 1' undoes 1 minute of play and "
                    "in-game saves made since");

    /* Deleting a state removes its bitmap. */
    g_autofree char *m4 = run_tag(&r, ui_library_delete, tag);
    BlockDriverState *bs = blk_bs(xblk_api_disk_blk(r.hd));
    g_autofree char *bm = g_strconcat("ui-since-", tag, NULL);
    g_assert_null(bdrv_dirty_bitmap_find(bs, bm));
    rig_free(&r);
}

/* A restart: the index, and the rollback bitmaps kept in the image. */
static void test_restart(void)
{
    Rig r = rig_new("restart");
    run_to_frame(&r, 30);
    g_autofree char *m1 = run_slot(&r, ui_library_save_slot, 1);
    g_autofree char *tag = slot_tag(&r, 1);
    run_to_frame(&r, 30 + 2 * GUEST_SAVE_FRAMES + 40);
    UiRollback before;
    ui_library_rollback(r.lib, tag, &before);
    g_assert_cmpuint(before.disk_bytes, >, 0);
    rig_free(&r);

    g_autofree char *hd = g_build_filename(tmpdir, "restart", "hd.qcow2",
                                           NULL);
    run_or_die((const char *[]){ "qemu-img", "check", "-q", hd, NULL });
    r = rig_open("restart", true);
    const UiStateEntry *e = ui_library_slot(r.lib, 1);
    g_assert_nonnull(e);
    g_assert_cmpstr(e->tag, ==, tag);
    g_assert_cmpstr(e->name, ==, "Slot 1");
    UiRollback after;
    ui_library_rollback(r.lib, tag, &after);
    g_assert_true(after.known);
    g_assert_cmpuint(after.disk_bytes, ==, before.disk_bytes);
    g_autofree char *w = ui_library_rollback_warning(r.lib, tag);
    g_assert_cmpstr(w, ==, "Loading 'Slot 1' undoes in-game saves made "
                    "since");
    rig_free(&r);
}

static void test_busy(void)
{
    Rig r = rig_new("busy");
    GError *err = NULL;
    Done d1 = { 0 }, d2 = { 0 };
    run_to_frame(&r, 1234);
    g_assert_false(ui_library_busy(r.lib));
    g_assert_true(ui_library_quick_save(r.lib, on_done, &d1, &err));
    g_assert_no_error(err);
    g_assert_true(ui_library_busy(r.lib));
    REFUSED("in progress",
            ui_library_quick_save(r.lib, on_done, &d2, &err));
    REFUSED("in progress",
            ui_library_save_slot(r.lib, 1, on_done, &d2, &err));
    REFUSED("in progress",
            ui_library_load_newest(r.lib, on_done, &d2, &err));
    g_autofree char *m = finish(&r, &d1);
    g_assert_true(d1.ok);
    g_assert_false(d2.called);

    /* F3: the newest of this title. */
    run_to_frame(&r, 1300);
    g_autofree char *m2 = run_ok(&r, ui_library_load_newest);
    g_assert_true(g_str_has_suffix(m2, "' (frame 1,234)"));
    g_assert_cmpuint(machine_frame(r.m), ==, 1234);
    rig_free(&r);
}

static void test_resume(void)
{
    Rig r = rig_new("resume");
    GError *err = NULL;
    Done d = { 0 };
    run_to_frame(&r, 25);
    g_assert_false(ui_library_has_resume(r.lib));
    REFUSED("No resume state",
            ui_library_load_resume(r.lib, on_done, &d, &err));
    g_autofree char *h25 = frame_hash(&r);
    g_autofree char *m1 = run_ok(&r, ui_library_save_resume);
    g_assert_true(ui_library_has_resume(r.lib));
    g_assert_cmpuint(list_len(&r, false, NULL), ==, 0);   /* hidden */
    g_assert_cmpint(hd_snapshots(&r), ==, 1);

    /* As after a restart: a new library finds it. */
    ui_library_free(r.lib);
    r.lib = ui_library_new(r.m, r.config, &err);
    g_assert_no_error(err);
    g_assert_true(ui_library_has_resume(r.lib));
    run_to_frame(&r, 70);
    g_autofree char *m2 = run_ok(&r, ui_library_load_resume);
    g_assert_cmpuint(machine_frame(r.m), ==, 25);
    g_autofree char *h25b = frame_hash(&r);
    g_assert_cmpstr(h25, ==, h25b);
    g_assert_cmpint(hd_snapshots(&r), ==, 2);     /* + the undo state */

    /* Saving it again replaces it. */
    run_to_frame(&r, 40);
    g_autofree char *m3 = run_ok(&r, ui_library_save_resume);
    g_assert_cmpint(hd_snapshots(&r), ==, 2);
    g_autofree char *m4 = run_ok(&r, ui_library_load_resume);
    g_assert_cmpuint(machine_frame(r.m), ==, 40);
    rig_free(&r);
}

int main(int argc, char **argv)
{
    tmpdir = g_dir_make_tmp("xblk-library-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_autofree char *xdg = g_build_filename(tmpdir, "xdg", NULL);
    g_setenv("XDG_CONFIG_HOME", xdg, TRUE);
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ui/library/quick-save-list", test_quick_save_list);
    g_test_add_func("/ui/library/slots-and-undo", test_slots_and_undo);
    g_test_add_func("/ui/library/rename-persists", test_rename_persists);
    g_test_add_func("/ui/library/delete", test_delete);
    g_test_add_func("/ui/library/rollback", test_rollback);
    g_test_add_func("/ui/library/restart", test_restart);
    g_test_add_func("/ui/library/busy", test_busy);
    g_test_add_func("/ui/library/resume", test_resume);
    int ret = g_test_run();
    run_or_die((const char *[]){ "rm", "-rf", tmpdir, NULL });
    g_free(tmpdir);
    return ret;
}
