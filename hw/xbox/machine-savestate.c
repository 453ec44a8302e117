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
 * Operations start here and complete through a callback; the host
 * program waits for them its own way (monitor/host/machine-state.c: a
 * QMP job yields, HMP and -loadvm iterate the loop).  The drives reach
 * the engine as the XblkDisks of the machine's configuration.
 *
 * Invariants: one machine is attached at a time (one engine per
 * process); the per-operation fields (cap, hash, screen, ...) are written
 * by the pause and the streaming thread only while an operation runs and
 * cleared when the next one starts.
 */
#include "hw/xbox/machine-savestate.h"
#include "hw/error.h"
#include "hw/xbox/picture.h"
#include <string.h>

/* How often the loop looks for a quiesce that failed (ms). */
#define MSH_FAIL_POLL_MS 2

typedef struct MachineStateHost {
    XboxMachine *m;
    XblkEngine *engine;         /* the machine's */
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

/* What one capture makes: gone before the next one (a capture the engine
 * starts for a domain snapshot has no machine_state_start around it). */
static void capture_reset(MachineStateHost *h)
{
    if (h->hash) {
        g_free(machine_hash_finish(h->hash, h->cap.regs));
        h->hash = NULL;
    }
    g_clear_pointer(&h->cap.regs, g_byte_array_unref);
    g_clear_pointer(&h->screen, g_free);
    h->screen_len = 0;
    g_clear_pointer(&h->frame_hash, g_free);
    g_clear_pointer(&h->thumbnail_png, g_bytes_unref);
}

static void op_clear(MachineStateHost *h)
{
    capture_reset(h);
    g_clear_pointer(&h->disc_path, g_free);
    g_clear_pointer(&h->title, g_free);
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
    capture_reset(h);
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

bool machine_savestate_attach(XboxMachine *m, GError **errp)
{
    XblkError *err = NULL;
    g_assert(!attached);
    MachineStateHost *h = g_new0(MachineStateHost, 1);
    h->m = m;
    h->engine = machine_engine(m);
    if (!register_machine(h, &err)) {
        hw_error_set(errp, "save states: %s", xblk_error_message(err));
        xblk_error_free(err);
        g_free(h);
        return false;
    }
    machine_set_quiesce_notify(m, quiesced_notify, h);
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
    op_clear(h);
    g_free(h);
    attached = NULL;
}

/* ---- operations ---- */

typedef struct MachineOp {
    MachineStateHost *h;
    XblkStateOp op;
    char *tag;
    MachineStateDoneFn *done;
    void *opaque;               /* done's */
    MachineStateProgressFn *progress;
    void *progress_opaque;      /* the caller's args->opaque */
} MachineOp;

static void op_progress(void *opaque, uint64_t done, uint64_t total)
{
    MachineOp *o = opaque;
    if (o->progress) {
        o->progress(o->progress_opaque, done, total);
    }
}

/* The figures of x-query-snapshot-stats, then the caller's callback. */
static void op_done(void *opaque, const XblkError *err,
                    const XblkStateStats *stats)
{
    MachineOp *o = opaque;
    if (!err && o->op == XBLK_STATE_SAVE) {
        save_stats = (MachineSaveStats){
            .valid = true,
            .guest_pause_ns = stats->pause_ns,
            .durable_ns = stats->total_ns,
            .vm_state_size = stats->vm_state_size,
            .raw_size = stats->raw_size,
            .peak_cow_bytes = stats->peak_cow_bytes,
            .frame = stats->frame,
        };
        g_strlcpy(save_stats.tag, o->tag, sizeof(save_stats.tag));
    } else if (!err && o->op == XBLK_STATE_LOAD) {
        load_stats = (MachineLoadStats){
            .valid = true,
            .guest_pause_ns = stats->pause_ns,
            .total_ns = stats->total_ns,
            .frame = stats->frame,
        };
        g_strlcpy(load_stats.tag, o->tag, sizeof(load_stats.tag));
    }
    o->done(o->opaque, err, stats);
    g_free(o->tag);
    g_free(o);
}

bool machine_state_start(XboxMachine *m, XblkStateOp op, const char *tag,
                         const MachineStateArgs *args,
                         MachineStateDoneFn *done, void *opaque,
                         GError **errp)
{
    MachineStateHost *h = host_of(m);
    XblkError *err = NULL;
    if (op == XBLK_STATE_SAVE && machine_guest_shut_down(m)) {
        hw_error_set(errp, "the guest has shut down: nothing to save");
        return false;
    }
    if (xblk_state_busy(h->engine)) {
        hw_error_set(errp, "a save, load or delete of a state is in "
                     "progress");
        return false;
    }
    if (op == XBLK_STATE_SAVE) {
        op_clear(h);
        /* Read by the host before the save: no disk read in the pause. */
        h->disc_path = g_strdup(args ? args->disc_path : NULL);
        h->title = g_strdup(args ? args->title : NULL);
    }
    MachineOp *o = g_new0(MachineOp, 1);
    *o = (MachineOp){
        .h = h, .op = op, .tag = g_strdup(tag), .done = done,
        .opaque = opaque, .progress = args ? args->progress : NULL,
        .progress_opaque = args ? args->opaque : NULL,
    };
    XblkStateOptions opts = {
        .size = sizeof(opts), .progress = op_progress,
        .progress_opaque = o,
    };
    if (args) {
        opts.overwrite = args->overwrite;
        opts.vmstate_disk = args->vmstate;
        opts.disks = (const char *const *)args->devices;
    }
    bool ok = op == XBLK_STATE_SAVE ?
              xblk_state_save(h->engine, tag, &opts, op_done, o, &err) :
              op == XBLK_STATE_LOAD ?
              xblk_state_load(h->engine, tag, &opts, op_done, o, &err) :
              xblk_state_delete(h->engine, tag, &opts, op_done, o, &err);
    if (!ok) {
        hw_error_set(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
        g_free(o->tag);
        g_free(o);
    }
    return ok;
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
