/*
 * test-savestate.c - whole-machine save states (hw/xbox/machine-savestate.c)
 * with the reference guest (build/guest/xboxguest.elf and its disc) on a
 * qcow2 hard disk.  The test's thread is the main loop.
 *
 * Covers: a state saved at frame 300 and loaded reproduces the first
 * run's frame 300 and frame 600 (frame hash, and the hard disk's guest-
 * visible content); a save taken while the guest runs (disk requests in
 * flight are delivered first) reproduces the run from its instant; a load
 * of a missing tag or of a stream from another RAM size is refused with
 * nothing changed (the following frames and disk are those of a run
 * without the attempt); qemu-img lists the state with a VM size and
 * finds the image clean; delete frees it (no leaks).  Prints the guest
 * pauses of save and load.
 */
#include "tests/hw/xbox/guest-path.h"
#include "api/internal.h"
#include "block/block-backend.h"
#include "hw/runstate.h"
#include "hw/xbox/machine-media.h"
#include "monitor/host/machine-state.h"
#include "hw/xbox/picture.h"
#include "util/main-loop.h"
#include <png.h>
#include <string.h>
#include <xxhash.h>

#define HD_SIZE "512M"

static char *tmpdir;

/* Runs argv, returns stdout; fails the test unless it exits 0 (or,
 * with may_fail, returns NULL). */
static char *run_tool(const char *const *argv, bool may_fail)
{
    g_autofree char *err_out = NULL;
    char *out = NULL;
    int status = 0;
    GError *err = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err_out, &status, &err));
    g_assert_no_error(err);
    if (!g_spawn_check_wait_status(status, NULL)) {
        if (may_fail) {
            g_free(out);
            return NULL;
        }
        g_error("%s failed: %s%s", argv[0], out, err_out);
    }
    return out;
}

static char *new_disk(const char *name)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_free(run_tool((const char *[]){ "qemu-img", "create", "-q", "-f",
                                      "qcow2", path, HD_SIZE, NULL },
                    false));
    return path;
}

static void copy_file(const char *from, const char *to)
{
    g_free(run_tool((const char *[]){ "cp", "--sparse=always", from, to,
                                      NULL }, false));
}

typedef struct Rig {
    XboxMachine *m;
    XblkEngine *engine;
    BlockBackend *hd;           /* behind the HD's disk (borrowed) */
    bool started;
} Rig;

/* A drive's backend as the XblkDisk the machine takes. */
static XblkDisk *drive_disk(Rig *r, BlockBackend *blk, const char *id)
{
    blk_set_name(blk, id);
    XblkDisk *disk = xblk_api_disk_wrap(r->engine, blk, id);
    blk_unref(blk);
    return disk;
}

static Rig rig_new_kernel(const char *hd_path, uint64_t ram_size,
                          const char *kernel)
{
    GError *err = NULL;
    XblkError *xerr = NULL;
    Rig r = { 0 };
    XblkEngineOptions eo = {
        .size = sizeof(eo), .glib_context = g_main_context_default(),
    };
    r.engine = xblk_engine_new(&eo, &xerr);
    g_assert_null(xerr);
    MachineConfig cfg = { .engine = r.engine };
    cfg.ram_size = ram_size;
    cfg.seed = 1;
    cfg.kernel_path = test_build_path(kernel);

    BlockOpts *o = bopts_new();
    bopts_set(o, "driver", "qcow2");
    MachineDriveConfig *d = &cfg.drives[0];
    d->kind = IDE_DRIVE_HD;
    BlockBackend *blk = blk_new_open(hd_path, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    d->id = g_strdup("ide0-hd0");
    d->open_flags = BDRV_O_RDWR;
    d->werror = IDE_ERROR_ACTION_ENOSPC;
    d->rerror = IDE_ERROR_ACTION_REPORT;
    r.hd = blk;
    d->disk = drive_disk(&r, blk, d->id);

    g_autofree char *disc = test_build_path("guest/disc.iso");
    o = bopts_new();
    bopts_set(o, "driver", "raw");
    d = &cfg.drives[1];
    d->kind = IDE_DRIVE_CD;
    blk = blk_new_open(disc, o, 0, &err);
    g_assert_no_error(err);
    d->id = g_strdup("ide0-cd1");
    d->werror = IDE_ERROR_ACTION_ENOSPC;
    d->rerror = IDE_ERROR_ACTION_REPORT;
    d->disk = drive_disk(&r, blk, d->id);

    r.m = machine_new(&cfg, &err);
    g_assert_no_error(err);
    return r;
}

static Rig rig_new(const char *hd_path, uint64_t ram_size)
{
    return rig_new_kernel(hd_path, ram_size, "guest/xboxguest.elf");
}

static void rig_free(Rig *r)
{
    machine_free(r->m);
    r->m = NULL;
    xblk_engine_free(r->engine);
    r->engine = NULL;
}

static bool stopped(void *opaque)
{
    return !runstate_is_running() && machine_is_parked(opaque);
}

static void loop_until(bool (*cond)(void *), void *opaque)
{
    gint64 deadline = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;
    while (!cond(opaque)) {
        if (g_get_monotonic_time() > deadline) {
            g_error("timed out waiting (run state %s)",
                    runstate_name(runstate_get()));
        }
        if (!aio_poll(false)) {
            g_usleep(200);
        }
    }
}

static void go(Rig *r)
{
    runstate_set(XBLK_RUN_STATE_RUNNING);
    if (!r->started) {
        r->started = true;
        machine_start(r->m);
    }
}

static void run_to_frame(Rig *r, uint64_t frame)
{
    GError *err = NULL;
    g_assert_true(machine_frame_stop_at(r->m, frame, &err));
    g_assert_no_error(err);
    go(r);
    loop_until(stopped, r->m);
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

/* The guest-visible content of the hard disk, at a quiescent point after
 * the current stop (deterministic: the first step boundary with no disk
 * request outstanding); the machine stays stopped. */
static char *disk_digest(Rig *r)
{
    GError *err = NULL;
    g_assert_true(machine_quiesce(r->m, &err));
    g_assert_no_error(err);
    int64_t len = blk_getlength(r->hd);
    g_assert_cmpint(len, >, 0);
    const size_t step = 4 << 20;
    uint8_t *buf = g_malloc(step);
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    for (int64_t off = 0; off < len; off += step) {
        int64_t n = MIN((int64_t)step, len - off);
        g_assert_cmpint(blk_pread(r->hd, off, n, buf), >=, 0);
        XXH3_128bits_update(st, buf, n);
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    g_free(buf);
    machine_quiesce_end(r->m);
    g_assert_true(stopped(r->m));
    return g_strdup_printf("%016" G_GINT64_MODIFIER "x%016"
                           G_GINT64_MODIFIER "x", (guint64)h.high64,
                           (guint64)h.low64);
}

static void save(Rig *r, const char *tag)
{
    GError *err = NULL;
    g_assert_true(machine_save_state(r->m, tag, NULL, &err));
    g_assert_no_error(err);
    const MachineSaveStats *s = machine_last_save_stats();
    g_assert_true(s->valid);
    g_assert_cmpint(s->guest_pause_ns, >, 0);
    printf("# save %s at frame %" G_GUINT64_FORMAT ": guest pause %"
           G_GINT64_FORMAT " us, durable %" G_GINT64_FORMAT " us, vmstate %"
           G_GUINT64_FORMAT " B\n", tag, s->frame, s->guest_pause_ns / 1000,
           s->durable_ns / 1000, s->vm_state_size);
}

static void load(Rig *r, const char *tag)
{
    GError *err = NULL;
    g_assert_true(machine_load_state(r->m, tag, NULL, &err));
    g_assert_no_error(err);
    const MachineLoadStats *s = machine_last_load_stats();
    g_assert_true(s->valid);
    printf("# load %s: guest pause %" G_GINT64_FORMAT " us, total %"
           G_GINT64_FORMAT " us\n", tag, s->guest_pause_ns / 1000,
           s->total_ns / 1000);
}

static void qemu_img_check_clean(const char *path)
{
    g_autofree char *out = run_tool((const char *[]){ "qemu-img", "check",
                                                      path, NULL }, true);
    g_assert_nonnull(out);
    g_assert_nonnull(strstr(out, "No errors were found"));
    g_assert_null(strstr(out, "leaked"));
}

/* The VM SIZE column of `qemu-img snapshot -l` for tag, or NULL. */
static char *snapshot_vm_size(const char *path, const char *tag)
{
    g_autofree char *out = run_tool((const char *[]){ "qemu-img", "snapshot",
                                                      "-l", path, NULL },
                                    false);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_auto(GStrv) f = g_strsplit_set(*l, " \t", -1);
        GPtrArray *w = g_ptr_array_new();
        for (char **x = f; *x; x++) {
            if (**x) {
                g_ptr_array_add(w, *x);
            }
        }
        /* ID TAG VM-SIZE DATE TIME VM-CLOCK [ICOUNT] */
        char *size = NULL;
        if (w->len >= 3 && !strcmp(g_ptr_array_index(w, 1), tag)) {
            size = g_strdup(g_ptr_array_index(w, 2));
        }
        g_ptr_array_free(w, TRUE);
        if (size) {
            return size;
        }
    }
    return NULL;
}

static char *ram_digest(Rig *r)
{
    uint64_t size = machine_ram_size(r->m);
    const uint8_t *p = machine_ram_map_read(r->m, 0, size);
    GString *s = g_string_new(NULL);
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        g_string_append_printf(s, "%" G_GINT64_MODIFIER "x,",
                               (guint64)XXH3_64bits(p + off, 1 << 20));
    }
    return g_string_free(s, FALSE);
}

typedef struct ScreenCall {
    uint32_t *pixels;
    bool ok;
} ScreenCall;

static void screen_on_vcpu(XboxMachine *m, void *opaque)
{
    ScreenCall *c = opaque;
    c->ok = gpu_read_scanout(machine_gpu(m), c->pixels, NULL);
}

/* The state's metadata tells the frame, the frame hash of a stopped
 * machine at that frame (h), the disc and its title, and a thumbnail
 * that is the screen of that instant, halved. */
static void check_metadata(Rig *r, const char *tag, uint64_t frame,
                           const char *h)
{
    GError *err = NULL;
    XssMetadata md = { 0 };
    g_assert_true(machine_state_metadata(r->m, tag, &md, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(md.frame, ==, frame);
    g_assert_cmpstr(md.frame_hash, ==, h);
    g_assert_nonnull(md.disc_path);
    g_assert_true(g_str_has_suffix(md.disc_path, "disc.iso"));
    g_assert_nonnull(md.title);
    g_test_message("title '%s', thumbnail %u x %u, %zu B PNG", md.title,
                   md.thumb_width, md.thumb_height,
                   md.thumbnail_png ? g_bytes_get_size(md.thumbnail_png) : 0);
    g_assert_cmpuint(md.thumb_width, ==, PICTURE_THUMB_WIDTH);
    g_assert_cmpuint(md.thumb_height, ==, PICTURE_THUMB_HEIGHT);
    g_assert_nonnull(md.thumbnail_png);

    png_image img = { .version = PNG_IMAGE_VERSION };
    gsize len;
    const void *data = g_bytes_get_data(md.thumbnail_png, &len);
    g_assert_true(png_image_begin_read_from_memory(&img, data, len));
    g_assert_cmpuint(img.width, ==, PICTURE_THUMB_WIDTH);
    g_assert_cmpuint(img.height, ==, PICTURE_THUMB_HEIGHT);
    img.format = PNG_FORMAT_BGRA;   /* XRGB8888 in memory, little-endian */
    g_autofree uint32_t *got = g_new0(uint32_t, img.width * img.height);
    g_assert_true(png_image_finish_read(&img, NULL, got, 0, NULL));

    ScreenCall c = { g_new(uint32_t, GPU_WIDTH * GPU_HEIGHT), false };
    machine_run_on_vcpu(r->m, screen_on_vcpu, &c);
    g_assert_true(c.ok);
    g_autofree uint32_t *want = g_new(uint32_t, img.width * img.height);
    picture_halve((const uint8_t *)c.pixels, GPU_WIDTH * 4, GPU_WIDTH,
                  GPU_HEIGHT, want);
    for (size_t i = 0; i < img.width * img.height; i++) {
        g_assert_cmphex(got[i] & 0xffffff, ==, want[i] & 0xffffff);
    }
    g_free(c.pixels);
    xss_metadata_clear(&md);
}

static void test_determinism(void)
{
    GError *err = NULL;
    g_autofree char *hd = new_disk("hd.qcow2");
    Rig r = rig_new(hd, MACHINE_RAM_64M);

    run_to_frame(&r, 300);
    g_autofree char *h300 = frame_hash(&r);
    g_autofree char *ram300 = ram_digest(&r);
    save(&r, "s1");
    g_assert_cmpuint(machine_last_save_stats()->frame, ==, 300);
    /* Saving changes nothing the guest sees. */
    g_autofree char *h300b = frame_hash(&r);
    g_assert_cmpstr(h300, ==, h300b);
    check_metadata(&r, "s1", 300, h300);
    /* A second save under the same tag is refused. */
    g_assert_false(machine_save_state(r.m, "s1", NULL, &err));
    g_assert_nonnull(strstr(err->message, "already exists"));
    g_clear_error(&err);

    /* On to 450, a refused load of a missing tag there, on to 600. */
    run_to_frame(&r, 450);
    g_autofree char *h450 = frame_hash(&r);
    g_assert_false(machine_load_state(r.m, "missing", NULL, &err));
    g_assert_nonnull(strstr(err->message, "does not exist"));
    g_clear_error(&err);
    g_assert_cmpuint(machine_frame(r.m), ==, 450);
    g_autofree char *h450b = frame_hash(&r);
    g_assert_cmpstr(h450, ==, h450b);
    run_to_frame(&r, 600);
    g_autofree char *h600 = frame_hash(&r);
    g_autofree char *d600 = disk_digest(&r);

    /* Back to 300: the very state, and the same 600. */
    load(&r, "s1");
    g_assert_cmpuint(machine_frame(r.m), ==, 300);
    g_autofree char *ram300c = ram_digest(&r);
    g_assert_cmpstr(ram300, ==, ram300c);
    g_autofree char *h300c = frame_hash(&r);
    g_assert_cmpstr(h300, ==, h300c);
    run_to_frame(&r, 600);
    g_autofree char *h600b = frame_hash(&r);
    g_assert_cmpstr(h600, ==, h600b);
    g_autofree char *d600b = disk_digest(&r);
    g_assert_cmpstr(d600, ==, d600b);

    /* A save while the guest runs (requests in flight are delivered
     * first), and the run from its instant reproduced. */
    g_assert_true(machine_frame_stop_at(r.m, 900, &err));
    go(&r);
    while (machine_frame(r.m) < 700) {
        if (!aio_poll(false)) {
            g_usleep(20);
        }
    }
    save(&r, "s2");
    uint64_t f2 = machine_last_save_stats()->frame;
    g_assert_cmpuint(f2, <, 900);
    loop_until(stopped, r.m);
    g_assert_cmpuint(machine_frame(r.m), ==, 900);
    g_autofree char *h900 = frame_hash(&r);
    g_autofree char *d900 = disk_digest(&r);
    load(&r, "s2");
    g_assert_cmpuint(machine_frame(r.m), ==, f2);
    if (f2 < 900) {
        run_to_frame(&r, 900);
    }
    g_autofree char *h900b = frame_hash(&r);
    g_assert_cmpstr(h900, ==, h900b);
    g_autofree char *d900b = disk_digest(&r);
    g_assert_cmpstr(d900, ==, d900b);

    /* Delete. */
    g_assert_true(machine_delete_state(r.m, "s2", NULL, &err));
    g_assert_no_error(err);
    /* Gone: deleting again is no error (QEMU's), and changes nothing. */
    g_assert_true(machine_delete_state(r.m, "s2", NULL, &err));
    g_assert_no_error(err);
    g_assert_false(machine_load_state(r.m, "s2", NULL, &err));
    g_clear_error(&err);
    rig_free(&r);

    g_autofree char *vm = snapshot_vm_size(hd, "s1");
    g_assert_nonnull(vm);
    g_assert_cmpstr(vm, !=, "0");
    g_assert_cmpstr(vm, !=, "0 B");
    g_autofree char *gone = snapshot_vm_size(hd, "s2");
    g_assert_null(gone);
    qemu_img_check_clean(hd);

    /* Another RAM size: refused, and the machine runs on as without the
     * attempt (frames and disk against a twin that made none). */
    g_autofree char *hd_a = g_build_filename(tmpdir, "a.qcow2", NULL);
    g_autofree char *hd_b = g_build_filename(tmpdir, "b.qcow2", NULL);
    copy_file(hd, hd_a);
    copy_file(hd, hd_b);
    Rig a = rig_new(hd_a, MACHINE_RAM_128M);
    run_to_frame(&a, 60);
    g_autofree char *ha60 = frame_hash(&a);
    g_assert_false(machine_load_state(a.m, "s1", NULL, &err));
    g_assert_nonnull(err);
    g_test_message("refused: %s", err->message);
    g_assert_nonnull(strstr(err->message, "RAM"));
    g_clear_error(&err);
    g_assert_cmpuint(machine_frame(a.m), ==, 60);
    g_autofree char *ha60b = frame_hash(&a);
    g_assert_cmpstr(ha60, ==, ha60b);
    run_to_frame(&a, 200);
    g_autofree char *ha200 = frame_hash(&a);
    g_autofree char *da200 = disk_digest(&a);
    rig_free(&a);

    Rig b = rig_new(hd_b, MACHINE_RAM_128M);
    run_to_frame(&b, 200);
    g_autofree char *hb200 = frame_hash(&b);
    g_autofree char *db200 = disk_digest(&b);
    g_assert_cmpstr(ha200, ==, hb200);
    g_assert_cmpstr(da200, ==, db200);
    rig_free(&b);

    /* Delete frees everything s1 held. */
    Rig c = rig_new(hd, MACHINE_RAM_64M);
    g_assert_true(machine_delete_state(c.m, "s1", NULL, &err));
    g_assert_no_error(err);
    rig_free(&c);
    g_autofree char *gone1 = snapshot_vm_size(hd, "s1");
    g_assert_null(gone1);
    qemu_img_check_clean(hd);
    qemu_img_check_clean(hd_a);
}

/*
 * The capture under fire: a guest that stores to every page as fast as
 * it can runs all through the save's completion, so pages fault while
 * they stream (the handler's copies).  The state must still be the
 * instant of the pause: loaded into the stopped machine, its frame hash
 * is the one the save recorded over the streamed pages.
 */
static void test_guest_writing_during_save(void)
{
    GError *err = NULL;
    g_autofree char *hd = new_disk("storm.qcow2");
    Rig r = rig_new_kernel(hd, MACHINE_RAM_64M,
                           "tests/hw/xbox/guests/storm.elf");
    run_to_frame(&r, 20);
    go(&r);
    save(&r, "storm");
    const MachineSaveStats *st = machine_last_save_stats();
    printf("# storm: peak copy-on-write %" G_GUINT64_FORMAT " KiB\n",
           st->peak_cow_bytes >> 10);
    g_assert_cmpuint(st->peak_cow_bytes, >, 0);
    run_to_frame(&r, machine_frame(r.m) + 10);

    XssMetadata md = { 0 };
    g_assert_true(machine_state_metadata(r.m, "storm", &md, &err));
    g_assert_no_error(err);
    g_autofree char *before = frame_hash(&r);
    g_assert_cmpstr(before, !=, md.frame_hash);
    load(&r, "storm");
    g_assert_true(stopped(r.m));
    g_assert_cmpuint(machine_frame(r.m), ==, md.frame);
    g_autofree char *after = frame_hash(&r);
    g_assert_cmpstr(after, ==, md.frame_hash);
    xss_metadata_clear(&md);
    rig_free(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("xblk-savestate-XXXXXX", NULL);
    g_test_add_func("/savestate/determinism", test_determinism);
    g_test_add_func("/savestate/guest-writing-during-save",
                    test_guest_writing_during_save);
    int ret = g_test_run();
    g_free(run_tool((const char *[]){ "rm", "-rf", tmpdir, NULL }, true));
    return ret;
}
