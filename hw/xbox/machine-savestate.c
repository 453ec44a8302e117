/*
 * machine-savestate.c - the console machine as a host of the save-state
 * coordination (migration/savestate.h): what a state of this machine
 * holds and how the machine stops for it.
 *
 *   RAM          one region, the guest's RAM (on huge pages after a load)
 *   disks        every drive with a writable medium, in index order (the
 *                DVD drive does not take part)
 *   the pause    the machine's quiesce: the vCPU parks at the first step
 *                boundary with no disk request outstanding
 *   devices      the machine's section list, encoded and loaded on the
 *                vCPU thread (machine_capture_devices, machine_*_stream)
 *   metadata     frame, frame hash (x-query-frame's, over the RAM pages
 *                as they stream and the registers of the instant), the
 *                disc's path and ISO 9660 title, a 320x240 PNG of the
 *                scanout gathered from the streamed pages
 *
 * Invariants: the host context (MachineHost) lives for one call; what
 * the producer thread touches (hash, screen) is written only there and
 * read only after the coordination returned.  Main loop only.
 */
#include "hw/xbox/machine-savestate.h"
#include "hw/xbox/machine-media.h"
#include "hw/xbox/machine-vmstate.h"
#include "hw/xbox/picture.h"
#include "util/error.h"
#include <string.h>

typedef struct MachineHost {
    XboxMachine *m;
    MachineCapture cap;
    MachineHash *hash;
    uint8_t *screen;            /* the scanout's bytes, gathered from the
                                 * RAM pages as they stream */
    uint64_t screen_len;        /* 0: the scanout is not in RAM */
    char *disc_path, *title;
    char *frame_hash;
    GBytes *thumbnail_png;
} MachineHost;

static guint host_ram_regions(void *opaque, SavestateRam *out)
{
    MachineHost *mh = opaque;
    out[0] = (SavestateRam){ machine_ram_host(mh->m),
                             machine_ram_size(mh->m) };
    return 1;
}

static GArray *host_disks(void *opaque)
{
    MachineHost *mh = opaque;
    GArray *a = g_array_new(FALSE, TRUE, sizeof(SavestateDisk));
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        if (!machine_drive_info(mh->m, i, &info)) {
            continue;
        }
        BlockDriverState *bs = blk_bs(info.blk);
        if (bs && !bdrv_is_read_only(bs)) {
            SavestateDisk d = { info.name, bs };
            g_array_append_val(a, d);
        }
    }
    return a;
}

static bool host_can_save(void *opaque, GError **errp)
{
    MachineHost *mh = opaque;
    if (machine_guest_shut_down(mh->m)) {
        error_setg(errp, "the guest has shut down: nothing to save");
        return false;
    }
    return true;
}

static void host_pause_request(void *opaque)
{
    machine_quiesce_request(((MachineHost *)opaque)->m);
}

static int host_pause_poll(void *opaque, GError **errp)
{
    MachineHost *mh = opaque;
    int r = machine_quiesce_poll(mh->m, errp);
    if (r < 0) {
        machine_quiesce_end(mh->m);
    }
    return r;
}

static void host_resume(void *opaque)
{
    machine_quiesce_end(((MachineHost *)opaque)->m);
}

static int64_t host_park_ns(void *opaque)
{
    return machine_quiesce_park_ns(((MachineHost *)opaque)->m);
}

/* The thumbnail comes from the RAM as of the pause, like everything
 * else: the scanout's pages are copied aside as they stream by, so the
 * pause does not read the framebuffer. */
static void screen_begin(MachineHost *mh)
{
    uint64_t base = mh->cap.scanout_base, pitch = mh->cap.scanout_pitch;
    uint64_t len = pitch * (GPU_HEIGHT - 1) + GPU_WIDTH * 4;
    uint64_t ram = machine_ram_size(mh->m);
    if (pitch >= GPU_WIDTH * 4 && base <= ram && len <= ram - base) {
        mh->screen = g_malloc(len);
        mh->screen_len = len;
    }
}

static bool host_capture(void *opaque, XssWriter *w, SavestateCapture *cap,
                         GError **errp)
{
    MachineHost *mh = opaque;
    if (!machine_capture_devices(mh->m, w, &mh->cap, errp)) {
        return false;
    }
    cap->frame = mh->cap.frame;
    cap->clock_ns = mh->cap.clock_ns;
    mh->hash = machine_hash_new();
    screen_begin(mh);
    return true;
}

static void host_save_page(void *opaque, uint64_t off, const void *page)
{
    MachineHost *mh = opaque;
    machine_hash_update(mh->hash, page, XSS_PAGE_SIZE);
    uint64_t base = mh->cap.scanout_base, end = base + mh->screen_len;
    uint64_t lo = MAX(off, base), hi = MIN(off + XSS_PAGE_SIZE, end);
    if (lo < hi) {
        memcpy(mh->screen + (lo - base), (const uint8_t *)page + (lo - off),
               hi - lo);
    }
}

static GBytes *thumbnail(MachineHost *mh)
{
    if (!mh->screen_len) {
        return NULL;
    }
    g_autofree uint32_t *thumb = g_new(uint32_t, PICTURE_THUMB_WIDTH *
                                                 PICTURE_THUMB_HEIGHT);
    picture_halve(mh->screen, mh->cap.scanout_pitch, GPU_WIDTH, GPU_HEIGHT,
                  thumb);
    return picture_png_encode(thumb, PICTURE_THUMB_WIDTH,
                              PICTURE_THUMB_HEIGHT, NULL);
}

/* Producer thread: the hash is complete once every page went by.  What
 * md points to stays ours (host_clear frees it after the save). */
static void host_save_metadata(void *opaque, XssMetadata *md)
{
    MachineHost *mh = opaque;
    mh->frame_hash = machine_hash_finish(mh->hash, mh->cap.regs);
    mh->hash = NULL;
    mh->thumbnail_png = thumbnail(mh);
    md->frame_hash = mh->frame_hash;
    md->disc_path = mh->disc_path;
    md->title = mh->title;
    if ((md->thumbnail_png = mh->thumbnail_png)) {
        md->thumb_width = PICTURE_THUMB_WIDTH;
        md->thumb_height = PICTURE_THUMB_HEIGHT;
    }
}

static bool host_load_check(void *opaque, XssReader *r, GError **errp)
{
    return machine_check_stream(((MachineHost *)opaque)->m, r, errp);
}

static bool host_load(void *opaque, XssReader *r, RamRestore *rr,
                      GError **errp)
{
    return machine_load_stream(((MachineHost *)opaque)->m, r, rr, errp);
}

static const SavestateHostOps machine_host_ops = {
    .machine_type = MACHINE_VMSTATE_TYPE,
    .ram_huge_pages = true,
    .ram_regions = host_ram_regions,
    .disks = host_disks,
    .can_save = host_can_save,
    .pause_request = host_pause_request,
    .pause_poll = host_pause_poll,
    .resume = host_resume,
    .park_ns = host_park_ns,
    .capture = host_capture,
    .save_page = host_save_page,
    .save_metadata = host_save_metadata,
    .load_check = host_load_check,
    .load = host_load,
};

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

static void host_clear(MachineHost *mh)
{
    if (mh->hash) {
        g_free(machine_hash_finish(mh->hash, mh->cap.regs));
    }
    if (mh->cap.regs) {
        g_byte_array_unref(mh->cap.regs);
    }
    g_free(mh->screen);
    g_free(mh->disc_path);
    g_free(mh->title);
    g_free(mh->frame_hash);
    g_clear_pointer(&mh->thumbnail_png, g_bytes_unref);
}

bool machine_save_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp)
{
    MachineHost mh = { .m = m };
    SavestateHost h = { &machine_host_ops, &mh };
    if (!savestate_busy()) {
        /* Read before the save: no disk read inside the pause. */
        disc_info(m, &mh.disc_path, &mh.title);
    }
    bool ok = savestate_save(&h, tag, args, errp);
    host_clear(&mh);
    return ok;
}

bool machine_load_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp)
{
    MachineHost mh = { .m = m };
    SavestateHost h = { &machine_host_ops, &mh };
    return savestate_load(&h, tag, args, errp);
}

bool machine_delete_state(XboxMachine *m, const char *tag,
                          const MachineStateArgs *args, GError **errp)
{
    MachineHost mh = { .m = m };
    SavestateHost h = { &machine_host_ops, &mh };
    return savestate_delete(&h, tag, args, errp);
}

int machine_state_cleanup(XboxMachine *m, GString *report, GError **errp)
{
    MachineHost mh = { .m = m };
    SavestateHost h = { &machine_host_ops, &mh };
    return savestate_cleanup(&h, report, errp);
}

bool machine_state_metadata(XboxMachine *m, const char *tag,
                            XssMetadata *out, GError **errp)
{
    MachineHost mh = { .m = m };
    SavestateHost h = { &machine_host_ops, &mh };
    return savestate_metadata(&h, tag, out, errp);
}

bool machine_state_busy(void)
{
    return savestate_busy();
}

const MachineSaveStats *machine_last_save_stats(void)
{
    return savestate_last_save_stats();
}

const MachineLoadStats *machine_last_load_stats(void)
{
    return savestate_last_load_stats();
}
