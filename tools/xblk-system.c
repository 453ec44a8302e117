/*
 * xblk-system - the emulator host.
 *
 *   xblk-system -machine none -blockdev ... -qmp unix:PATH,server=on,wait=off
 *       block devices and the QMP monitor only (no hardware);
 *   xblk-system -machine xbox[,seed=N,hdd-password=S,realtime=on]
 *       [-m 64|128] [-kernel FILE] [-drive ...]
 *       [-blockdev ... -device ide-hd,...]
 *       [-frames N] [-input-script FILE] [-debugcon file:PATH|stdio]
 *       [-loadvm TAG] [-S] [-display sdl|none] [-full-screen]
 *       the console machine (hw/xbox/machine.h, docs/machine.md), in a
 *       window (ui/ui.h, docs/ui.md) when built with SDL and a display
 *       is reachable, else headless.
 *
 * It runs in the foreground until `quit` over QMP, SIGTERM or SIGINT, the
 * guest's power-off or the end of -frames, then emits SHUTDOWN (unless
 * already announced), stops the machine, flushes and closes every image,
 * and exits 0.  Options follow QEMU's spelling and semantics: -drive's
 * default IDs are "ide<bus>-hd<unit>" / "ide<bus>-cd<unit>" and name the
 * drive's BlockBackend; a -device's backend is named by its id= (default:
 * the same names).  Every drive gets a backend, an empty DVD drive one
 * without a root node, so that query-block lists it and media can be
 * inserted (hw/xbox/machine-media.h, which also names the device paths).
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/block-events.h"
#include "block/blockdev.h"
#include "api/internal.h"
#include "hw/runstate.h"
#include "hw/xbox/cpu.h"
#include "hw/xbox/machine.h"
#include "monitor/host/machine-state.h"
#include "monitor/host/host.h"
#include "monitor/host/qmp-domsnap.h"
#include "snapshot/domain.h"
#include "ui/ui.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "util/error.h"
#include "util/main-loop.h"
#include "util/version.h"
#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* -display: the default is the window when one can be opened. */
typedef enum SysDisplay {
    SYS_DISPLAY_DEFAULT,
    SYS_DISPLAY_NONE,
    SYS_DISPLAY_SDL,
} SysDisplay;

typedef struct SysOpts {
    bool have_machine, xbox;
    SysDisplay display;
    bool full_screen;           /* -full-screen */
    MachineConfig mc;
    bool drive_used[MACHINE_IDE_DRIVES];
    /* The drives' backends until the machine is made: then each becomes
     * the XblkDisk of its MachineDriveConfig. */
    BlockBackend *drive_blk[MACHINE_IDE_DRIVES];
    XblkEngine *engine;         /* the machine's, on the default context */
    GPtrArray *devices;         /* -device arguments, after the nodes */
    int anon_devices;           /* -device without id= so far */
    GPtrArray *qmp;             /* -qmp arguments, opened last */
    char *debugcon;
    const char *loadvm;         /* -loadvm TAG */
    char *snapshot_dir;         /* the domain snapshots' catalog, or NULL
                                 * (no hard disk) */
    char *name;                 /* -name: the domain's name */
    FILE *debugcon_file;
} SysOpts;

static void usage(void)
{
    printf("usage: xblk-system [options]\n"
           "  -machine none            no hardware (block devices and QMP)\n"
           "  -machine xbox[,seed=N,hdd-password=S,realtime=on|off]\n"
           "                           the console (docs/machine.md);\n"
           "                           realtime=on paces it to host time\n"
           "                           (60 frames/s; default off: as fast\n"
           "                           as the host allows)\n"
           "  -m 64|128                RAM in MiB (xbox; default 64)\n"
           "  -kernel FILE             flat binary or ELF32 program (default:\n"
           "                           guest/xboxguest.elf by this program)\n"
           "  -drive file=F,format=raw|qcow2,if=ide,index=0..3,\n"
           "         media=disk|cdrom,id=ID,readonly=on,werror=,rerror=,\n"
           "         cache=,locked=on\n"
           "  -device ide-hd|ide-cd,drive=NODE,bus=ide.0|ide.1,unit=0|1,\n"
           "         id=ID,model=,serial=,werror=,rerror=,locked=on\n"
           "  -blockdev OPTIONS        add a block node (JSON or key=value)\n"
           "  -frames N                quit after frame N\n"
           "  -input-script FILE       gamepad input per frame\n"
           "  -loadvm TAG              start from save state TAG\n"
           "  -debugcon file:PATH|stdio|none   port 0xE9\n"
           "  -qmp unix:PATH,server=on,wait=off\n"
           "  -qmp tcp:127.0.0.1:PORT,server=on,wait=off\n"
           "  -snapshot-dir DIR        catalog of domain snapshots (default:\n"
           "                           the first hard disk's file name\n"
           "                           + .snapshots; docs/snapshots.md)\n"
           "  -name [guest=]NAME       the domain's name in its snapshots\n"
           "  -S                       start paused (prelaunch)\n"
           "  -display sdl|none        the window (default when built with\n"
           "                           SDL and $DISPLAY or $WAYLAND_DISPLAY\n"
           "                           is set; docs/ui.md) or headless\n"
           "  -full-screen             start the window in fullscreen\n"
           "  -nodefaults              accepted\n"
           "  -version, -h\n");
}

static gboolean on_signal(gpointer opaque)
{
    runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

/* "a=b,c=d" with an optional leading value for implied_key. */
static BlockOpts *parse_kv(const char *s, const char *implied_key,
                           GError **errp)
{
    BlockOpts *o = bopts_new();
    g_autofree char *text = NULL;
    const char *comma = strchr(s, ',');
    const char *eq = strchr(s, '=');
    if (implied_key && *s && (!eq || (comma && comma < eq))) {
        text = g_strdup_printf("%s=%s", implied_key, s);
        s = text;
    }
    if (*s && !bopts_parse(o, s, errp)) {
        bopts_free(o);
        return NULL;
    }
    return o;
}

/* Fails on the first key nobody took. */
static bool no_leftovers(BlockOpts *o, const char *what, GError **errp)
{
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, o);
    if (g_hash_table_iter_next(&it, &key, NULL)) {
        error_setg(errp, "%s: invalid parameter '%s'", what,
                   (const char *)key);
        return false;
    }
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-') {
        return false;
    }
    guint64 v = g_ascii_strtoull(s, &end, 0);
    if (*end) {
        return false;
    }
    *out = v;
    return true;
}

/* ---- -machine ---- */

static bool parse_on_off(BlockOpts *o, const char *key, bool *out,
                         GError **errp)
{
    GError *err = NULL;
    bool v = bopts_take_bool(o, key, *out, &err);
    if (err) {
        error_propagate(errp, err);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_machine(SysOpts *so, const char *arg, GError **errp)
{
    g_autoptr(BlockOpts) o = parse_kv(arg, "type", errp);
    if (!o) {
        return false;
    }
    g_autofree char *type = bopts_take(o, "type");
    if (!type || !strcmp(type, "none")) {
        so->have_machine = true;
        so->xbox = false;
        g_hash_table_remove_all(o);     /* -machine none,... as before */
        return true;
    }
    if (strcmp(type, "xbox")) {
        error_setg(errp, "unsupported machine type '%s' (use 'xbox' or "
                   "'none')", type);
        return false;
    }
    so->have_machine = so->xbox = true;
    g_autofree char *seed = bopts_take(o, "seed");
    if (seed && !parse_u64(seed, &so->mc.seed)) {
        error_setg(errp, "seed=%s: not a number", seed);
        return false;
    }
    g_autofree char *pw = bopts_take(o, "hdd-password");
    if (pw) {
        if (strlen(pw) > 32) {
            error_setg(errp, "hdd-password is longer than 32 bytes");
            return false;
        }
        g_free(so->mc.hdd_password);
        so->mc.hdd_password = g_steal_pointer(&pw);
    }
    if (!parse_on_off(o, "realtime", &so->mc.realtime, errp)) {
        return false;
    }
    return no_leftovers(o, "-machine xbox", errp);
}

/* ---- drives ---- */

static bool parse_error_action(const char *s, bool is_read,
                               IDEErrorAction *out, GError **errp)
{
    if (!s) {
        return true;
    }
    if (!strcmp(s, "report")) {
        *out = IDE_ERROR_ACTION_REPORT;
    } else if (!strcmp(s, "ignore")) {
        *out = IDE_ERROR_ACTION_IGNORE;
    } else if (!strcmp(s, "stop")) {
        *out = IDE_ERROR_ACTION_STOP;
    } else if (!strcmp(s, "enospc") && !is_read) {
        *out = IDE_ERROR_ACTION_ENOSPC;
    } else {
        error_setg(errp, "'%s' invalid %s error action", s,
                   is_read ? "read" : "write");
        return false;
    }
    return true;
}

static int first_free_index(SysOpts *so)
{
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        if (!so->drive_used[i]) {
            return i;
        }
    }
    return -1;
}

/* index=, or bus= and unit=; -1 with errp set on a bad value. */
static int drive_index(SysOpts *so, BlockOpts *o, bool device,
                       GError **errp)
{
    g_autofree char *index = bopts_take(o, "index");
    g_autofree char *bus = bopts_take(o, "bus");
    g_autofree char *unit = bopts_take(o, "unit");
    uint64_t b = 0, u = 0, i;
    if (index) {
        if (!parse_u64(index, &i) || i >= MACHINE_IDE_DRIVES) {
            error_setg(errp, "index=%s: an IDE drive index is 0 to 3", index);
            return -1;
        }
    } else if (bus || unit) {
        const char *bs = bus && device && g_str_has_prefix(bus, "ide.")
                         ? bus + 4 : bus;
        if ((bus && (!parse_u64(bs, &b) || b > 1)) ||
            (unit && (!parse_u64(unit, &u) || u > 1))) {
            error_setg(errp, "bus=%s,unit=%s: the machine has IDE buses %s "
                       "with units 0 and 1", bus ? bus : "", unit ? unit : "",
                       device ? "ide.0 and ide.1" : "0 and 1");
            return -1;
        }
        i = b * 2 + u;
        if (bus && !unit && so->drive_used[i]) {
            i++;                /* the bus's first free unit */
        }
    } else {
        int f = first_free_index(so);
        if (f < 0) {
            error_setg(errp, "all four IDE drive slots are in use");
        }
        return f;
    }
    if (so->drive_used[i]) {
        error_setg(errp, "drive index %" G_GUINT64_FORMAT " is already in "
                   "use", i);
        return -1;
    }
    return (int)i;
}

static char *default_drive_id(int index, bool cd)
{
    return g_strdup_printf("ide%d-%s%d", index / 2, cd ? "cd" : "hd",
                           index % 2);
}

static bool check_new_name(const char *id, GError **errp)
{
    if (blk_by_name(id)) {
        error_setg(errp, "Duplicate ID '%s' for drive", id);
        return false;
    }
    return true;
}

static bool parse_media(BlockOpts *o, bool *cd, GError **errp)
{
    g_autofree char *media = bopts_take(o, "media");
    if (media && strcmp(media, "disk") && strcmp(media, "cdrom")) {
        error_setg(errp, "'%s' invalid media", media);
        return false;
    }
    *cd = media && !strcmp(media, "cdrom");
    return true;
}

/* cache= as QEMU: open flags and the guest-visible write cache. */
static bool parse_cache(const char *cache, int *flags, bool *wce,
                        GError **errp)
{
    *wce = true;
    if (!cache || !strcmp(cache, "writeback")) {
    } else if (!strcmp(cache, "none")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(cache, "writethrough")) {
        *wce = false;
    } else if (!strcmp(cache, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
        *wce = false;
    } else if (!strcmp(cache, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else {
        error_setg(errp, "invalid cache option '%s'", cache);
        return false;
    }
    return true;
}

/* The drive's backend: file opened with format=, cache= and discard=,
 * or without a file (an empty DVD drive) one without a root.  *flags:
 * the open flags, which the machine keeps for media changes. */
static BlockBackend *open_drive_file(BlockOpts *o, const char *file,
                                     bool read_only, int *flags,
                                     GError **errp)
{
    g_autofree char *format = bopts_take(o, "format");
    g_autofree char *cache = bopts_take(o, "cache");
    g_autofree char *discard = bopts_take(o, "discard");
    bool wce;
    *flags = read_only ? 0 : BDRV_O_RDWR;
    if (!parse_cache(cache, flags, &wce, errp)) {
        return NULL;
    }
    if (discard && !strcmp(discard, "unmap")) {
        *flags |= BDRV_O_UNMAP;
    }
    BlockBackend *blk;
    if (file) {
        BlockOpts *bo = bopts_new();
        if (format) {
            bopts_set(bo, "driver", format);
        }
        /* file.locking=off|on|auto and the other options of the drive's
         * protocol node, as QEMU's -drive passes them on. */
        g_autoptr(BlockOpts) proto = bopts_extract(o, "file");
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, proto);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            g_autofree char *key = g_strdup_printf("file.%s", (char *)k);
            bopts_set(bo, key, v);
        }
        blk = blk_new_open(file, bo, *flags, errp);
    } else {
        blk = blk_new();
    }
    if (blk) {
        blk_set_enable_write_cache(blk, wce);
    }
    return blk;
}

static bool fill_drive(MachineDriveConfig *d, BlockOpts *o, bool cd,
                       GError **errp)
{
    g_autofree char *werror = bopts_take(o, "werror");
    g_autofree char *rerror = bopts_take(o, "rerror");
    d->kind = cd ? IDE_DRIVE_CD : IDE_DRIVE_HD;
    d->werror = IDE_ERROR_ACTION_ENOSPC;
    d->rerror = IDE_ERROR_ACTION_REPORT;
    if (!parse_error_action(werror, false, &d->werror, errp) ||
        !parse_error_action(rerror, true, &d->rerror, errp) ||
        !parse_on_off(o, "locked", &d->locked, errp)) {
        return false;
    }
    if (cd && d->locked) {
        error_setg(errp, "locked=on applies to hard disks only");
        return false;
    }
    return true;
}

/*
 * What an IDE device lets other users of its image have, as QEMU's IDE
 * devices do: reading, rewriting unchanged data and (a hard disk's)
 * resizing, but writing only with share-rw=on.  So a second xblk-system
 * or a qemu-io on the same raw image is refused like a qcow2 one (for
 * qcow2 the format layer already keeps others from writing).
 */
static bool share_like_ide_device(BlockBackend *blk, bool cd, bool share_rw,
                                  GError **errp)
{
    uint64_t shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
    if (!cd) {
        shared |= BLK_PERM_RESIZE;
    }
    if (share_rw) {
        shared |= BLK_PERM_WRITE;
    }
    return blk_set_shared_perm(blk, shared, errp);
}

/*
 * A hard disk's image after domain snapshots: the catalog (the first
 * hard disk's, unless -snapshot-dir) may have moved the disk onto an
 * overlay (an external snapshot, a revert), and the drive opens that.
 */
static bool follow_snapshots(SysOpts *so, int index, char **file)
{
    if (!so->snapshot_dir) {
        g_autofree char *abs = g_canonicalize_filename(*file, NULL);
        so->snapshot_dir = g_strconcat(abs, ".snapshots", NULL);
    }
    g_autofree char *target = g_strdup_printf("hd%c", 'a' + index);
    char *src = dsnap_drive_source(so->snapshot_dir, target, *file);
    if (strcmp(src, *file)) {
        info_report("drive %s follows its snapshots to %s", target, src);
    }
    g_free(*file);
    *file = src;
    return true;
}

static bool add_drive(SysOpts *so, const char *arg, GError **errp)
{
    g_autoptr(BlockOpts) o = parse_kv(arg, "file", errp);
    if (!o) {
        return false;
    }
    g_autofree char *iface = bopts_take(o, "if");
    g_autofree char *file = bopts_take(o, "file");
    g_autofree char *id = bopts_take(o, "id");
    bool cd, read_only = false;
    if (iface && strcmp(iface, "ide")) {
        error_setg(errp, "if=%s: the machine has IDE drives only", iface);
        return false;
    }
    int index = drive_index(so, o, false, errp);
    if (index < 0 || !parse_media(o, &cd, errp) ||
        !parse_on_off(o, "readonly", &read_only, errp)) {
        return false;
    }
    MachineDriveConfig d = { 0 };
    BlockBackend *blk = NULL;
    d.id = id ? g_steal_pointer(&id) : default_drive_id(index, cd);
    if (!fill_drive(&d, o, cd, errp) || !check_new_name(d.id, errp)) {
        goto fail;
    }
    if (!file && !cd) {
        error_setg(errp, "drive %s: a disk needs file=", d.id);
        goto fail;
    }
    if (!cd && !follow_snapshots(so, index, &file)) {
        goto fail;
    }
    blk = open_drive_file(o, file && *file ? file : NULL, read_only || cd,
                          &d.open_flags, errp);
    if (!blk) {
        goto fail;
    }
    blk_set_name(blk, d.id);
    if (!share_like_ide_device(blk, cd, false, errp)) {
        goto fail;
    }
    if (blk_bs(blk)) {
        d.node_name = g_strdup(bdrv_get_node_name(blk_bs(blk)));
        d.open_flags = bdrv_get_flags(blk_bs(blk));
    }
    d.open_flags &= HOST_MEDIUM_FLAGS_MASK;
    if (!no_leftovers(o, "-drive", errp)) {
        goto fail;
    }
    so->mc.drives[index] = d;
    so->drive_blk[index] = blk;
    so->drive_used[index] = true;
    return true;
fail:
    if (blk) {
        blk_unref(blk);
    }
    machine_config_clear(&(MachineConfig){ .drives[0] = d });
    return false;
}

static bool add_device(SysOpts *so, const char *arg, GError **errp)
{
    g_autoptr(BlockOpts) o = parse_kv(arg, "driver", errp);
    if (!o) {
        return false;
    }
    g_autofree char *driver = bopts_take(o, "driver");
    g_autofree char *node = bopts_take(o, "drive");
    g_autofree char *id = bopts_take(o, "id");
    bool cd = driver && !strcmp(driver, "ide-cd");
    if (!driver || (!cd && strcmp(driver, "ide-hd"))) {
        error_setg(errp, "'%s' is not a valid device model name (the "
                   "machine has ide-hd and ide-cd)", driver ? driver : "");
        return false;
    }
    int index = drive_index(so, o, true, errp);
    if (index < 0) {
        return false;
    }
    MachineDriveConfig d = { 0 };
    BlockBackend *blk = NULL;
    /* QEMU's device paths: the id, or a number under peripheral-anon. */
    d.qdev = id ? g_strdup(id)
                : g_strdup_printf("/machine/peripheral-anon/device[%d]",
                                  so->anon_devices);
    d.id = id ? g_steal_pointer(&id) : default_drive_id(index, cd);
    d.model = bopts_take(o, "model");
    d.serial = bopts_take(o, "serial");
    bool share_rw = false;
    if (!fill_drive(&d, o, cd, errp) ||
        !parse_on_off(o, "share-rw", &share_rw, errp) ||
        !no_leftovers(o, driver, errp) || !check_new_name(d.id, errp)) {
        goto fail;
    }
    if (!node && !cd) {
        error_setg(errp, "%s: drive property not set", driver);
        goto fail;
    }
    if (node) {
        BlockDriverState *bs = bdrv_find_node(node);
        if (!bs) {
            error_setg(errp, "Property '%s.drive' can't find value '%s'",
                       driver, node);
            goto fail;
        }
        blk = blk_new();
        blk_insert_bs(blk, bs);
        blk_set_name(blk, d.id);
        if (!share_like_ide_device(blk, cd, share_rw, errp)) {
            goto fail;
        }
        d.node_name = g_strdup(node);
        d.open_flags = bdrv_get_flags(bs) & HOST_MEDIUM_FLAGS_MASK;
    } else {
        blk = blk_new();        /* an empty DVD drive */
        blk_set_name(blk, d.id);
    }
    if (g_str_has_prefix(d.qdev, "/")) {
        so->anon_devices++;
    }
    so->mc.drives[index] = d;
    so->drive_blk[index] = blk;
    so->drive_used[index] = true;
    return true;
fail:
    if (blk) {
        blk_unref(blk);
    }
    machine_config_clear(&(MachineConfig){ .drives[0] = d });
    return false;
}

/* ---- other machine options ---- */

static bool open_debugcon(SysOpts *so, GError **errp)
{
    const char *v = so->debugcon;
    if (!v || !strcmp(v, "none")) {
        return true;
    }
    if (!strcmp(v, "stdio")) {
        so->mc.debugcon = stdout;
        return true;
    }
    if (!g_str_has_prefix(v, "file:") || !v[5]) {
        error_setg(errp, "-debugcon %s: use file:PATH, stdio or none", v);
        return false;
    }
    so->debugcon_file = fopen(v + 5, "w");
    if (!so->debugcon_file) {
        error_setg_errno(errp, errno, "-debugcon: cannot create '%s'",
                         v + 5);
        return false;
    }
    so->mc.debugcon = so->debugcon_file;
    return true;
}

/* guest/xboxguest.elf in the folder of this program. */
static char *default_kernel(GError **errp)
{
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = exe ? g_path_get_dirname(exe) : g_strdup(".");
    char *path = g_build_filename(dir, "guest", "xboxguest.elf", NULL);
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        error_setg(errp, "no -kernel given and the reference guest %s does "
                   "not exist (build it with make)", path);
        g_free(path);
        return NULL;
    }
    return path;
}

/* ---- the machine's events as QMP events ---- */

static void event_stop(void *opaque)
{
    qapi_event_send_stop();
}

static void event_block_io_error(void *opaque, const char *dev,
                                 const char *node, bool is_write,
                                 const char *action, int ret)
{
    int a = BlockErrorAction_parse(action);
    qapi_event_send_block_io_error(dev, node != NULL, node,
                                   is_write ? IO_OPERATION_TYPE_WRITE
                                            : IO_OPERATION_TYPE_READ,
                                   a < 0 ? BLOCK_ERROR_ACTION_REPORT : a,
                                   ret == -ENOSPC, ret == -ENOSPC,
                                   g_strerror(-ret));
}

static void event_guest_panicked(void *opaque)
{
    qapi_event_send_guest_panicked(GUEST_PANIC_ACTION_PAUSE);
}

static void event_shutdown(void *opaque, bool guest)
{
    qapi_event_send_shutdown(guest, guest ? SHUTDOWN_CAUSE_GUEST_SHUTDOWN
                                          : SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

static void event_reset(void *opaque, bool guest)
{
    qapi_event_send_reset(guest, guest ? SHUTDOWN_CAUSE_GUEST_RESET
                                       : SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
}

static void event_tray_moved(void *opaque, const char *dev,
                             const char *qdev, bool open)
{
    qapi_event_send_device_tray_moved(dev, qdev, open);
}

static const MachineEventOps machine_events = {
    .tray_moved = event_tray_moved,
    .stop = event_stop,
    .block_io_error = event_block_io_error,
    .guest_panicked = event_guest_panicked,
    .shutdown = event_shutdown,
    .reset = event_reset,
};

static XboxMachine *create_machine(SysOpts *so, GError **errp)
{
    machine_set_event_ops(&machine_events, NULL);
    for (guint i = 0; i < so->devices->len; i++) {
        const char *v = g_ptr_array_index(so->devices, i);
        if (!add_device(so, v, errp)) {
            error_prepend(errp, "-device %s: ", v);
            return NULL;
        }
    }
    if (!so->mc.ram_size) {
        so->mc.ram_size = MACHINE_RAM_64M;
    }
    if (!so->mc.kernel_path && !(so->mc.kernel_path = default_kernel(errp))) {
        return NULL;
    }
    if (!open_debugcon(so, errp)) {
        return NULL;
    }
    /* The engine the machine's drives and save states live in. */
    XblkError *xerr = NULL;
    XblkEngineOptions eo = {
        .size = sizeof(eo), .glib_context = g_main_context_default(),
    };
    if (!(so->engine = xblk_engine_new(&eo, &xerr))) {
        error_setg(errp, "%s", xblk_error_message(xerr));
        xblk_error_free(xerr);
        return NULL;
    }
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        if (so->drive_blk[i]) {
            so->mc.drives[i].disk = xblk_api_disk_wrap(
                so->engine, so->drive_blk[i], so->mc.drives[i].id);
            blk_unref(g_steal_pointer(&so->drive_blk[i]));
        }
    }
    so->mc.engine = so->engine;
    return machine_new(&so->mc, errp);
}

/* ---- the command line ---- */

/* -display TYPE, QEMU's names: sdl, none (default: as if not given). */
static bool parse_display(SysOpts *so, const char *v, GError **errp)
{
    if (!strcmp(v, "sdl")) {
        so->display = SYS_DISPLAY_SDL;
    } else if (!strcmp(v, "none")) {
        so->display = SYS_DISPLAY_NONE;
    } else if (!strcmp(v, "default")) {
        so->display = SYS_DISPLAY_DEFAULT;
    } else {
        error_setg(errp, "Parameter 'type' does not accept value '%s'", v);
        return false;
    }
    return true;
}

/* Options that need an argument; false with errp set. */
static bool parse_option(SysOpts *so, const char *a, const char *v,
                         GError **errp)
{
    if (!strcmp(a, "-machine") || !strcmp(a, "-M")) {
        return parse_machine(so, v, errp);
    } else if (!strcmp(a, "-display")) {
        return parse_display(so, v, errp);
    } else if (!strcmp(a, "-name")) {
        g_autoptr(BlockOpts) o = parse_kv(v, "guest", errp);
        g_autofree char *name = o ? bopts_take(o, "guest") : NULL;
        if (!name || !dsnap_name_is_safe(name)) {
            error_setg(errp, "the name must be a safe file name");
            return false;
        }
        g_free(so->name);
        so->name = g_steal_pointer(&name);
        return true;
    } else if (!strcmp(a, "-snapshot-dir")) {
        return true;            /* taken before the drives (prescan) */
    } else if (!strcmp(a, "-blockdev")) {
        BlockOpts *o = blockdev_parse_arg(v, errp);
        return o && blockdev_add(o, errp);
    } else if (!strcmp(a, "-qmp")) {
        g_ptr_array_add(so->qmp, (gpointer)v);
        return true;
    } else if (!strcmp(a, "-m")) {
        const char *s = g_str_has_prefix(v, "size=") ? v + 5 : v;
        return machine_parse_ram_size(s, &so->mc.ram_size, errp);
    } else if (!strcmp(a, "-kernel")) {
        g_free(so->mc.kernel_path);
        so->mc.kernel_path = g_strdup(v);
        return true;
    } else if (!strcmp(a, "-drive")) {
        return add_drive(so, v, errp);
    } else if (!strcmp(a, "-device")) {
        g_ptr_array_add(so->devices, (gpointer)v);
        return true;
    } else if (!strcmp(a, "-frames")) {
        if (!parse_u64(v, &so->mc.frames_limit) || !so->mc.frames_limit) {
            error_setg(errp, "not a frame count (1 or more)");
            return false;
        }
        return true;
    } else if (!strcmp(a, "-input-script")) {
        g_free(so->mc.input_script);
        so->mc.input_script = g_strdup(v);
        return true;
    } else if (!strcmp(a, "-debugcon")) {
        so->debugcon = (char *)v;
        return true;
    } else if (!strcmp(a, "-loadvm")) {
        so->loadvm = v;
        return true;
    }
    error_setg(errp, "invalid option");
    return false;
}

/* -snapshot-dir before any -drive opens its image. */
static void prescan_args(SysOpts *so, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "-snapshot-dir") ||
            !strcmp(argv[i], "--snapshot-dir")) {
            g_free(so->snapshot_dir);
            so->snapshot_dir = g_canonicalize_filename(argv[i + 1], NULL);
        }
    }
}

static bool parse_args(SysOpts *so, int argc, char **argv)
{
    prescan_args(so, argc, argv);
    GError *err = NULL;
    bool machine_opts = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] == '-' && a[1] == '-') {
            a++;      /* --opt is -opt, as QEMU accepts */
        }
        if (!strcmp(a, "-h") || !strcmp(a, "-help")) {
            usage();
            exit(0);
        } else if (!strcmp(a, "-version")) {
            printf("xblk-system version " XBLK_VERSION_STRING
                   " (Unicorn %s)\n", cpu_unicorn_version());
            exit(0);
        } else if (!strcmp(a, "-S")) {
            runstate_set(XBLK_RUN_STATE_PRELAUNCH);
            continue;
        } else if (!strcmp(a, "-nodefaults")) {
            continue;
        } else if (!strcmp(a, "-full-screen")) {
            so->full_screen = true;
            continue;
        } else if (!v) {
            error_report("%s: option requires an argument", a);
            return false;
        }
        if (!parse_option(so, a, v, &err)) {
            if (!strcmp(a, "-machine") || !strcmp(a, "-M")) {
                error_report("-machine %s: %s", v, err->message);
            } else if (!strcmp(err->message, "invalid option")) {
                error_report("%s: invalid option", a);
            } else {
                error_report("%s %s: %s", a, v, err->message);
            }
            g_error_free(err);
            return false;
        }
        machine_opts |= strcmp(a, "-machine") && strcmp(a, "-M") &&
                        strcmp(a, "-blockdev") && strcmp(a, "-qmp") &&
                        strcmp(a, "-display") && strcmp(a, "-name");
        i++;
    }
    if (!so->have_machine) {
        error_report("no machine given: use -machine xbox or -machine none");
        return false;
    }
    if (!so->xbox && machine_opts) {
        error_report("-machine none has no hardware: -m, -kernel, -drive, "
                     "-device, -frames, -input-script, -debugcon and "
                     "-loadvm need -machine xbox");
        return false;
    }
    return true;
}

static bool open_monitors(SysOpts *so)
{
    GError *err = NULL;
    for (guint i = 0; i < so->qmp->len; i++) {
        const char *v = g_ptr_array_index(so->qmp, i);
        if (!monitor_add_qmp(v, &err)) {
            error_report("-qmp %s: %s", v, err->message);
            g_error_free(err);
            return false;
        }
    }
    return true;
}

static void sysopts_clear(SysOpts *so)
{
    machine_config_clear(&so->mc);
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        if (so->drive_blk[i]) {
            blk_unref(so->drive_blk[i]);
        }
    }
    xblk_engine_free(so->engine);
    g_ptr_array_unref(so->devices);
    g_ptr_array_unref(so->qmp);
    if (so->debugcon_file) {
        fclose(so->debugcon_file);
    }
    g_free(so->snapshot_dir);
    g_free(so->name);
}

/* The domain snapshots of a machine with a hard disk: what a kill left
 * is repaired before anything loads. */
static bool attach_snapshots(XboxMachine *m, SysOpts *so, GError **errp)
{
    if (!so->snapshot_dir) {
        return true;
    }
    g_autoptr(GString) report = g_string_new(NULL);
    bool ok = qmp_domsnap_attach(m, so->snapshot_dir, so->name, report,
                                 errp);
    g_auto(GStrv) lines = g_strsplit(report->str, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (**l) {
            warn_report("snapshots: %s", *l);
        }
    }
    return ok;
}

/*
 * The window, before the machine runs (it hooks the frames).  -display
 * sdl that cannot open one fails as QEMU does; the default falls back to
 * headless with a warning.
 */
static bool change_disc(void *opaque, const char *path, GError **errp)
{
    return host_change_disc(opaque, path, errp);
}

static bool start_display(XboxMachine *m, SysOpts *so, bool *ui_on)
{
    GError *err = NULL;
    SysDisplay d = so->display;
    UiOptions o = {
        .full_screen = so->full_screen,
        .change_disc = change_disc,
        .change_disc_opaque = m,
    };
    *ui_on = false;
    if (d == SYS_DISPLAY_DEFAULT) {
        d = ui_display_available() ? SYS_DISPLAY_SDL : SYS_DISPLAY_NONE;
    }
    if (!m || d == SYS_DISPLAY_NONE) {
        return true;
    }
    if (!ui_start(m, &o, &err)) {
        if (so->display == SYS_DISPLAY_SDL) {
            error_report("%s", err->message);
            g_error_free(err);
            return false;
        }
        warn_report("no window (%s): running headless", err->message);
        g_error_free(err);
        return true;
    }
    *ui_on = true;
    return true;
}

/* Save states a kill left unfinished go before anything loads. */
static bool cleanup_states(XboxMachine *m, GError **errp)
{
    g_autoptr(GString) report = g_string_new(NULL);
    int n = machine_state_cleanup(m, report, errp);
    if (report->len) {
        g_auto(GStrv) lines = g_strsplit(report->str, "\n", -1);
        for (char **l = lines; *l; l++) {
            if (**l) {
                warn_report("%s", *l);
            }
        }
    }
    return n >= 0;
}

static void cleanup(XboxMachine *m, SysOpts *so)
{
    qmp_domsnap_detach();
    machine_free(m);
    monitor_flush_all();
    blockdev_close_all();
    monitor_cleanup();
    sysopts_clear(so);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    SysOpts so = { 0 };
    XboxMachine *m = NULL;
    GError *err = NULL;
    bool ui_on = false;
    g_set_prgname("xblk-system");
    signal(SIGPIPE, SIG_IGN);
    so.devices = g_ptr_array_new();
    so.qmp = g_ptr_array_new();
    /* The engine's commands and the machine's (monitor/host/). */
    qmp_host_init();
    /* Jobs report their events through the monitor. */
    block_event_set_sink(qapi_event_emit);
    /* The monitors open last: opening a -blockdev runs the main loop
     * (its I/O completes there), which would otherwise accept a client
     * and run its commands before the later -blockdev nodes exist. */
    /* -loadvm once every device and the input exist, before the guest
     * runs an instruction or a client can ask anything; failing, QEMU's
     * way: the error and exit 1. */
    if (!parse_args(&so, argc, argv) ||
        (so.xbox && !(m = create_machine(&so, &err))) ||
        (m && !attach_snapshots(m, &so, &err)) ||
        (m && !cleanup_states(m, &err)) ||
        (m && so.loadvm && !machine_load_state(m, so.loadvm, NULL, &err)) ||
        !open_monitors(&so) || !start_display(m, &so, &ui_on)) {
        if (err) {
            error_report_err(err);
        }
        cleanup(m, &so);
        return 1;
    }
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    if (m) {
        machine_start(m);       /* runs now unless -S */
    }
    while (runstate_shutdown_requested() == SHUTDOWN_NONE) {
        aio_poll(true);
    }
    ShutdownRequest why = runstate_shutdown_requested();
    if (ui_on) {
        ui_stop();              /* may save the resume state first */
    }
    bool announced = why == SHUTDOWN_HOST_QMP_QUIT ||
                     (m && machine_guest_shut_down(m));
    /* The vCPU ends its current slice and exits (no preemption: quitting
     * has no pause budget), before the run state says shutdown. */
    qmp_domsnap_detach();
    machine_free(m);
    m = NULL;
    runstate_set(XBLK_RUN_STATE_SHUTDOWN);
    if (!announced) {
        qapi_event_send_shutdown(false, SHUTDOWN_CAUSE_HOST_SIGNAL);
    }
    cleanup(m, &so);
    return 0;
}
