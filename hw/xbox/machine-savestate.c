/*
 * machine-savestate.c - the console machine as a host of libxblk's save
 * states (include/xblk/xblk-state.h): what a state of this machine holds
 * and how the machine stops for it.
 *
 *   RAM          one region, the guest's RAM
 *   devices      the machine's sections (machine_sections), in load order
 *   disks        every drive with a medium, as XblkDisks named by their
 *                -drive id (the engine takes the writable ones: the DVD
 *                drive does not take part)
 *   the pause    the machine's quiesce: the vCPU parks at the first step
 *                boundary with no disk request outstanding and signals
 *                the engine from there (machine_set_quiesce_notify); a
 *                timer on the loop watches for a quiesce that fails
 *   run_paused   device state is touched on the vCPU thread
 *   metadata     frame, frame hash (x-query-frame's, over the RAM pages
 *                as they stream and the registers of the instant), the
 *                disc's path and ISO 9660 title, a 320x240 PNG of the
 *                scanout gathered from the streamed pages
 *
 * The calls below (machine_save_state, ...) wait for the engine's
 * completion: from a coroutine (a QMP job) by yielding, otherwise by
 * iterating the loop.  Transitional: those waits and the drives' wrapping
 * use engine internals (util/, api/internal.h) until the monitor's job
 * code waits for itself and the host hands the machine XblkDisks.
 *
 * Invariants: one machine is attached at a time (one engine per
 * process); the per-operation fields (cap, hash, screen, ...) are written
 * by the pause and the streaming thread only while an operation runs and
 * cleared when the next one starts.
 */
#include "hw/xbox/machine-savestate.h"
#include "api/internal.h"
#include "hw/xbox/machine-media.h"
#include "hw/xbox/picture.h"
#include "util/coroutine.h"
#include "hw/error.h"
#include "util/main-loop.h"
#include <string.h>

/* How often the loop looks for a quiesce that failed (ms). */
#define MSH_FAIL_POLL_MS 2

typedef struct MachineStateHost {
    XboxMachine *m;
    XblkEngine *engine;         /* the machine's */
    GPtrArray *disks;           /* XblkDisk *, one per drive with a medium */
    guint fail_watch;           /* GSource id, while a pause is asked for */

    /* The running save. */
    MachineCapture cap;
    MachineHash *hash;
    uint8_t *screen;            /* the scanout's bytes, gathered from the
                                 * RAM pages as they stream */
    uint64_t screen_len;        /* 0: the scanout is not in RAM */
    char *disc_path, *title;
    char *frame_hash;
    GBytes *thumbnail_png;
} MachineStateHost;

static MachineStateHost *attached;
static MachineSaveStats save_stats;
static MachineLoadStats load_stats;

static MachineStateHost *host_of(XboxMachine *m)
{
    g_assert(attached && attached->m == m);
    return attached;
}

static void op_clear(MachineStateHost *h)
{
    if (h->hash) {
        g_free(machine_hash_finish(h->hash, h->cap.regs));
        h->hash = NULL;
    }
    g_clear_pointer(&h->cap.regs, g_byte_array_unref);
    g_clear_pointer(&h->screen, g_free);
    h->screen_len = 0;
    g_clear_pointer(&h->disc_path, g_free);
    g_clear_pointer(&h->title, g_free);
    g_clear_pointer(&h->frame_hash, g_free);
    g_clear_pointer(&h->thumbnail_png, g_bytes_unref);
}

/* ---- the pause contract ---- */

static void quiesced_notify(void *opaque)
{
    xblk_host_paused(((MachineStateHost *)opaque)->engine);
}

/* A quiesce that can never be met (the guest shut down, the machine was
 * stopped with requests in flight) fails the operation at once. */
static gboolean fail_watch_cb(gpointer opaque)
{
    MachineStateHost *h = opaque;
    GError *err = NULL;
    int r = machine_quiesce_poll(h->m, &err);
    if (r == 0) {
        return G_SOURCE_CONTINUE;
    }
    if (r < 0) {
        machine_quiesce_end(h->m);
        xblk_host_pause_failed(h->engine, err->message);
        g_error_free(err);
    }
    h->fail_watch = 0;
    return G_SOURCE_REMOVE;
}

static void host_pause(void *opaque)
{
    MachineStateHost *h = opaque;
    machine_quiesce_request(h->m);
    GSource *src = g_timeout_source_new(MSH_FAIL_POLL_MS);
    g_source_set_callback(src, fail_watch_cb, h, NULL);
    h->fail_watch = g_source_attach(src,
                                    xblk_engine_glib_context(h->engine));
    g_source_unref(src);
}

static void host_resume(void *opaque)
{
    MachineStateHost *h = opaque;
    if (h->fail_watch) {
        GSource *src = g_main_context_find_source_by_id(
            xblk_engine_glib_context(h->engine), h->fail_watch);
        if (src) {
            g_source_destroy(src);
        }
        h->fail_watch = 0;
    }
    machine_quiesce_end(h->m);
}

typedef struct HostCall {
    XblkHostFn *fn;
    void *arg;
} HostCall;

static void host_call_on_vcpu(XboxMachine *m, void *opaque)
{
    HostCall *c = opaque;
    c->fn(c->arg);
}

static void host_run_paused(void *opaque, XblkHostFn *fn, void *arg)
{
    MachineStateHost *h = opaque;
    HostCall c = { fn, arg };
    machine_run_on_vcpu(h->m, host_call_on_vcpu, &c);
}

/* ---- save: capture, pages, metadata ---- */

/* The thumbnail comes from the RAM as of the pause, like everything
 * else: the scanout's pages are copied aside as they stream by, so the
 * pause does not read the framebuffer. */
static void screen_begin(MachineStateHost *h)
{
    uint64_t base = h->cap.scanout_base, pitch = h->cap.scanout_pitch;
    uint64_t len = pitch * (GPU_HEIGHT - 1) + GPU_WIDTH * 4;
    uint64_t ram = machine_ram_size(h->m);
    if (pitch >= GPU_WIDTH * 4 && base <= ram && len <= ram - base) {
        h->screen = g_malloc(len);
        h->screen_len = len;
    }
}

/* vCPU thread, inside the pause. */
static void host_capture(void *opaque, XblkStateCapture *c)
{
    MachineStateHost *h = opaque;
    g_clear_pointer(&h->cap.regs, g_byte_array_unref);
    machine_capture(h->m, &h->cap);
    c->frame = h->cap.frame;
    c->clock_ns = h->cap.clock_ns;
    c->title = h->title;
    c->disc_path = h->disc_path;
    h->hash = machine_hash_new();
    screen_begin(h);
}

/* Streaming thread. */
static void host_save_page(void *opaque, uint64_t off, const void *page,
                           size_t len)
{
    MachineStateHost *h = opaque;
    machine_hash_update(h->hash, page, len);
    uint64_t base = h->cap.scanout_base, end = base + h->screen_len;
    uint64_t lo = MAX(off, base), hi = MIN(off + len, end);
    if (lo < hi) {
        memcpy(h->screen + (lo - base), (const uint8_t *)page + (lo - off),
               hi - lo);
    }
}

static GBytes *thumbnail(MachineStateHost *h)
{
    if (!h->screen_len) {
        return NULL;
    }
    g_autofree uint32_t *thumb = g_new(uint32_t, PICTURE_THUMB_WIDTH *
                                                 PICTURE_THUMB_HEIGHT);
    picture_halve(h->screen, h->cap.scanout_pitch, GPU_WIDTH, GPU_HEIGHT,
                  thumb);
    return picture_png_encode(thumb, PICTURE_THUMB_WIDTH,
                              PICTURE_THUMB_HEIGHT, NULL);
}

/* Streaming thread: the hash is complete once every page went by. */
static void host_save_finish(void *opaque, XblkStateCapture *c)
{
    MachineStateHost *h = opaque;
    h->frame_hash = machine_hash_finish(h->hash, h->cap.regs);
    h->hash = NULL;
    c->frame_hash = h->frame_hash;
    if ((h->thumbnail_png = thumbnail(h))) {
        c->thumbnail_png = g_bytes_get_data(h->thumbnail_png,
                                            &c->thumbnail_png_len);
        c->thumbnail_width = PICTURE_THUMB_WIDTH;
        c->thumbnail_height = PICTURE_THUMB_HEIGHT;
    }
}

/* ---- load ---- */

static void host_load_begin(void *opaque)
{
    machine_load_begin(((MachineStateHost *)opaque)->m);
}

static bool read_state_ram(void *opaque, uint64_t gpa, void *buf,
                           size_t len, GError **errp)
{
    MachineStateHost *h = opaque;
    XblkError *err = NULL;
    if (!xblk_state_read_ram(h->engine, gpa, buf, len, &err)) {
        hw_error_set(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
        return false;
    }
    return true;
}

static bool host_load_end(void *opaque, bool changed, XblkError **err)
{
    MachineStateHost *h = opaque;
    GError *gerr = NULL;
    if (!machine_load_end(h->m, changed, read_state_ram, h, &gerr)) {
        xblk_error_set(err, XBLK_ERROR_FAILED, "%s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    return true;
}

/* ---- attaching ---- */

static bool register_machine(MachineStateHost *h, XblkError **err)
{
    XboxMachine *m = h->m;
    MachineSection sec[MACHINE_SECTIONS_MAX];
    guint n = machine_sections(m, sec);
    if (!xblk_ram_add(h->engine, "ram", machine_ram_host(m),
                      machine_ram_size(m), err)) {
        return false;
    }
    for (guint i = 0; i < n; i++) {
        if (!xblk_device_add(h->engine, sec[i].desc, sec[i].instance,
                             sec[i].opaque, err)) {
            return false;
        }
    }
    XblkHostOps ops = {
        .size = sizeof(ops), .machine_type = MACHINE_VMSTATE_TYPE,
        .pause = host_pause, .resume = host_resume,
        .run_paused = host_run_paused, .capture = host_capture,
        .save_page = host_save_page, .save_finish = host_save_finish,
        .load_begin = host_load_begin, .load_end = host_load_end,
        .opaque = h,
    };
    return xblk_engine_set_host(h->engine, &ops, err);
}

/* Every drive with a backend, as a disk of the engine named by its id. */
static void wrap_drives(MachineStateHost *h)
{
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        if (machine_drive_info(h->m, i, &info) && info.blk) {
            g_ptr_array_add(h->disks, xblk_api_disk_wrap(h->engine,
                                                         info.blk,
                                                         info.name));
        }
    }
}

bool machine_savestate_attach(XboxMachine *m, GError **errp)
{
    XblkError *err = NULL;
    g_assert(!attached);
    MachineStateHost *h = g_new0(MachineStateHost, 1);
    h->m = m;
    h->engine = machine_engine(m);
    h->disks = g_ptr_array_new();
    if (!register_machine(h, &err)) {
        hw_error_set(errp, "save states: %s", xblk_error_message(err));
        xblk_error_free(err);
        g_ptr_array_free(h->disks, TRUE);
        g_free(h);
        return false;
    }
    machine_set_quiesce_notify(m, quiesced_notify, h);
    wrap_drives(h);
    attached = h;
    return true;
}

void machine_savestate_detach(XboxMachine *m)
{
    if (!attached || attached->m != m) {
        return;
    }
    MachineStateHost *h = attached;
    machine_set_quiesce_notify(m, NULL, NULL);
    for (guint i = 0; i < h->disks->len; i++) {
        xblk_disk_close(g_ptr_array_index(h->disks, i));
    }
    g_ptr_array_free(h->disks, TRUE);
    op_clear(h);
    g_free(h);
    attached = NULL;
}

/* ---- waiting for an operation ---- */

typedef struct Wait {
    MachineStateHost *h;
    const MachineStateArgs *args;
    bool done;
    GError *err;
    XblkStateStats stats;
    Coroutine *co;              /* waiting in it, or NULL */
} Wait;

static void wait_done(void *opaque, const XblkError *err,
                      const XblkStateStats *stats)
{
    Wait *w = opaque;
    w->done = true;
    w->stats = *stats;
    if (err) {
        w->err = g_error_new(HW_ERROR, HW_ERROR_FAILED, "%s", xblk_error_message(err));
    }
    if (w->co) {
        co_wake(g_steal_pointer(&w->co));
    }
}

static void wait_progress(void *opaque, uint64_t done, uint64_t total)
{
    Wait *w = opaque;
    if (w->args && w->args->progress) {
        w->args->progress(w->args->opaque, done, total);
    }
}

/* The caller's cancel flag, looked at while the operation runs. */
static gboolean cancel_watch_cb(gpointer opaque)
{
    Wait *w = opaque;
    if (w->args && w->args->cancelled &&
        w->args->cancelled(w->args->opaque)) {
        xblk_state_cancel(w->h->engine);
    }
    return G_SOURCE_CONTINUE;
}

static bool wait_for(Wait *w, GError **errp)
{
    guint watch = aio_timeout_add(5, cancel_watch_cb, w);
    while (!w->done) {
        if (co_in_coroutine()) {
            w->co = co_self();
            co_yield();
        } else {
            aio_poll(true);
        }
    }
    aio_source_remove(watch);
    if (w->err) {
        g_propagate_error(errp, w->err);
        return false;
    }
    return true;
}

static XblkStateOptions options_of(const MachineStateArgs *a)
{
    XblkStateOptions o = { .size = sizeof(o), .progress = wait_progress };
    if (a) {
        o.overwrite = a->overwrite;
        o.vmstate_disk = a->vmstate;
        o.disks = (const char *const *)a->devices;
    }
    return o;
}

static bool started(bool ok, XblkError *err, GError **errp)
{
    if (!ok) {
        hw_error_set(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
    }
    return ok;
}

/* The inserted disc: its path and the ISO 9660 volume identifier (the
 * title), both NULL without one. */
static void disc_info(XboxMachine *m, char **path, char **title)
{
    *path = *title = NULL;
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        BlockDriverState *bs;
        if (!machine_drive_info(m, i, &info) || !info.removable ||
            !(bs = blk_bs(info.blk))) {
            continue;
        }
        *path = g_strdup(bdrv_get_filename(bs));
        uint8_t pvd[2048];
        if (blk_pread(info.blk, 16 * 2048, sizeof(pvd), pvd) >= 0 &&
            pvd[0] == 1 && !memcmp(pvd + 1, "CD001", 5)) {
            g_autofree char *id = g_strndup((char *)pvd + 40, 32);
            g_strchomp(id);
            if (*id && g_utf8_validate(id, -1, NULL)) {
                *title = g_steal_pointer(&id);
            }
        }
        return;
    }
}

/* ---- save, load, delete ---- */

bool machine_save_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp)
{
    MachineStateHost *h = host_of(m);
    XblkError *err = NULL;
    if (machine_guest_shut_down(m)) {
        hw_error_set(errp, "the guest has shut down: nothing to save");
        return false;
    }
    if (xblk_state_busy(h->engine)) {
        hw_error_set(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    op_clear(h);
    /* Read before the save: no disk read inside the pause. */
    disc_info(m, &h->disc_path, &h->title);
    Wait w = { .h = h, .args = args };
    XblkStateOptions o = options_of(args);
    o.progress_opaque = &w;
    if (!started(xblk_state_save(h->engine, tag, &o, wait_done, &w, &err),
                 err, errp) || !wait_for(&w, errp)) {
        return false;
    }
    save_stats = (MachineSaveStats){
        .valid = true,
        .guest_pause_ns = w.stats.pause_ns,
        .durable_ns = w.stats.total_ns,
        .vm_state_size = w.stats.vm_state_size,
        .raw_size = w.stats.raw_size,
        .peak_cow_bytes = w.stats.peak_cow_bytes,
        .frame = w.stats.frame,
    };
    g_strlcpy(save_stats.tag, tag, sizeof(save_stats.tag));
    return true;
}

bool machine_load_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp)
{
    MachineStateHost *h = host_of(m);
    XblkError *err = NULL;
    Wait w = { .h = h, .args = args };
    XblkStateOptions o = options_of(args);
    o.progress_opaque = &w;
    if (!started(xblk_state_load(h->engine, tag, &o, wait_done, &w, &err),
                 err, errp) || !wait_for(&w, errp)) {
        return false;
    }
    load_stats = (MachineLoadStats){
        .valid = true,
        .guest_pause_ns = w.stats.pause_ns,
        .total_ns = w.stats.total_ns,
        .frame = w.stats.frame,
    };
    g_strlcpy(load_stats.tag, tag, sizeof(load_stats.tag));
    return true;
}

bool machine_delete_state(XboxMachine *m, const char *tag,
                          const MachineStateArgs *args, GError **errp)
{
    MachineStateHost *h = host_of(m);
    XblkError *err = NULL;
    Wait w = { .h = h, .args = args };
    XblkStateOptions o = options_of(args);
    o.progress_opaque = &w;
    return started(xblk_state_delete(h->engine, tag, &o, wait_done, &w,
                                     &err), err, errp) &&
           wait_for(&w, errp);
}

static void report_line(void *opaque, const char *line)
{
    g_string_append_printf(opaque, "%s\n", line);
}

int machine_state_cleanup(XboxMachine *m, GString *report, GError **errp)
{
    XblkError *err = NULL;
    int n = xblk_state_cleanup(host_of(m)->engine, report_line, report,
                               &err);
    if (n < 0) {
        hw_error_set(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
    }
    return n;
}

bool machine_state_metadata(XboxMachine *m, const char *tag,
                            XssMetadata *out, GError **errp)
{
    XblkError *err = NULL;
    XblkStateInfo *info = xblk_state_info(host_of(m)->engine, tag, &err);
    if (!info) {
        hw_error_set(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
        return false;
    }
    *out = (XssMetadata){
        .frame = info->frame,
        .frame_hash = g_steal_pointer(&info->frame_hash),
        .disc_path = g_steal_pointer(&info->disc_path),
        .title = g_steal_pointer(&info->title),
        .thumb_width = info->thumbnail_width,
        .thumb_height = info->thumbnail_height,
    };
    if (info->thumbnail_png) {
        out->thumbnail_png = g_bytes_new_take(
            g_steal_pointer(&info->thumbnail_png), info->thumbnail_png_len);
    }
    xblk_state_info_free(info);
    return true;
}

bool machine_state_busy(void)
{
    return attached && xblk_state_busy(attached->engine);
}

const MachineSaveStats *machine_last_save_stats(void)
{
    return &save_stats;
}

const MachineLoadStats *machine_last_load_stats(void)
{
    return &load_stats;
}
