/*
 * machine-state.c - synchronous save states of the console machine for
 * the host program (see machine-state.h).
 *
 * Owns: the waits (a QMP job's coroutine yields until the machine's
 * callback wakes it; elsewhere the loop is iterated), the cancel watch
 * (the caller's cancelled() looked at every few milliseconds) and the
 * disc's ISO 9660 title read before a save.
 *
 * Invariant: a wait never iterates the loop from inside a coroutine - a
 * nested iteration could not run the rest of the batch that entered it,
 * where a guest disk completion may wait.
 */
#include "monitor/host/machine-state.h"
#include "api/internal.h"
#include "hw/xbox/machine-media.h"
#include "util/coroutine.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <string.h>

/* The inserted disc: its path and the ISO 9660 volume identifier (the
 * title), both NULL without one. */
static void disc_info(XboxMachine *m, char **path, char **title)
{
    *path = *title = NULL;
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        BlockDriverState *bs;
        BlockBackend *blk;
        if (!machine_drive_info(m, i, &info) || !info.removable ||
            !(bs = blk_bs(blk = xblk_api_disk_blk(info.disk)))) {
            continue;
        }
        *path = g_strdup(bdrv_get_filename(bs));
        uint8_t pvd[2048];
        if (blk_pread(blk, 16 * 2048, sizeof(pvd), pvd) >= 0 &&
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

typedef struct Wait {
    XboxMachine *m;
    const MachineStateArgs *args;
    bool done;
    GError *err;
    Coroutine *co;              /* waiting in it, or NULL */
} Wait;

static void wait_done(void *opaque, const XblkError *err,
                      const XblkStateStats *stats)
{
    Wait *w = opaque;
    w->done = true;
    if (err) {
        w->err = g_error_new(XBLK_ERROR, ERROR_CLASS_GENERIC_ERROR, "%s",
                             xblk_error_message(err));
    }
    if (w->co) {
        co_wake(g_steal_pointer(&w->co));
    }
}

static gboolean cancel_watch_cb(gpointer opaque)
{
    Wait *w = opaque;
    if (w->args && w->args->cancelled &&
        w->args->cancelled(w->args->opaque)) {
        xblk_state_cancel(machine_engine(w->m));
    }
    return G_SOURCE_CONTINUE;
}

static bool run_op(XboxMachine *m, XblkStateOp op, const char *tag,
                   const MachineStateArgs *args, GError **errp)
{
    Wait w = { .m = m, .args = args };
    if (!machine_state_start(m, op, tag, args, wait_done, &w, errp)) {
        return false;
    }
    guint watch = aio_timeout_add(5, cancel_watch_cb, &w);
    while (!w.done) {
        if (co_in_coroutine()) {
            w.co = co_self();
            co_yield();
        } else {
            aio_poll(true);
        }
    }
    aio_source_remove(watch);
    if (w.err) {
        g_propagate_error(errp, w.err);
        return false;
    }
    return true;
}

bool machine_save_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp)
{
    MachineStateArgs a = args ? *args : (MachineStateArgs){ 0 };
    g_autofree char *disc_path = NULL, *title = NULL;
    if (!machine_state_busy()) {
        disc_info(m, &disc_path, &title);
    }
    a.disc_path = disc_path;
    a.title = title;
    return run_op(m, XBLK_STATE_SAVE, tag, &a, errp);
}

bool machine_load_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp)
{
    return run_op(m, XBLK_STATE_LOAD, tag, args, errp);
}

bool machine_delete_state(XboxMachine *m, const char *tag,
                          const MachineStateArgs *args, GError **errp)
{
    return run_op(m, XBLK_STATE_DELETE, tag, args, errp);
}

static void report_line(void *opaque, const char *line)
{
    g_string_append_printf(opaque, "%s\n", line);
}

int machine_state_cleanup(XboxMachine *m, GString *report, GError **errp)
{
    XblkError *err = NULL;
    int n = xblk_state_cleanup(machine_engine(m), report_line, report,
                               &err);
    if (n < 0) {
        error_setg(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
    }
    return n;
}

bool machine_state_metadata(XboxMachine *m, const char *tag,
                            XssMetadata *out, GError **errp)
{
    XblkError *err = NULL;
    XblkStateInfo *info = xblk_state_info(machine_engine(m), tag, &err);
    if (!info) {
        error_setg(errp, "%s", xblk_error_message(err));
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
