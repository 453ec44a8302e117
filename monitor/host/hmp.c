/*
 * hmp.c - HMP commands: help, eject, change, info version/status/block/
 * snapshots.  Each command writes into a GString with "\n" line ends;
 * hmp_execute() turns them into "\r\n" as QEMU's monitor prints them.
 * Texts follow QEMU 7.2's (eject and change run the QMP commands of
 * monitor/host/qmp-media.c and print their errors as "Error: ..."); later
 * issues add commands to the table below.
 */
#include "monitor/host/hmp.h"
#include "monitor/host/host.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "hw/runstate.h"
#include "hw/xbox/machine-media.h"
#include "qapi/qapi-commands.h"
#include "util/cutils.h"
#include "util/version.h"
#include <string.h>
#include <time.h>

typedef void HmpFunc(GString *out, char **argv);

typedef struct HmpCmd {
    const char *name;
    const char *args;
    const char *help;
    HmpFunc *fn;
} HmpCmd;

static void hmp_help(GString *out, char **argv);
static void hmp_info(GString *out, char **argv);
static void hmp_eject(GString *out, char **argv);
static void hmp_change(GString *out, char **argv);
static void hmp_savevm(GString *out, char **argv);
static void hmp_loadvm(GString *out, char **argv);
static void hmp_delvm(GString *out, char **argv);

static const HmpCmd hmp_cmds[] = {
    { "help", "[cmd]", "show the help", hmp_help },
    { "eject", "[-f] device", "eject a removable medium (use -f to force "
      "it)", hmp_eject },
    { "change", "device [-f] filename [format [read-only-mode]]",
      "change a removable medium, optional format, use -f to force the "
      "operation", hmp_change },
    { "info", "[subcommand]", "show various information about the system "
      "state", hmp_info },
    { "savevm", "[tag]", "save a VM snapshot. If no tag is provided, a new "
      "snapshot is created", hmp_savevm },
    { "loadvm", "tag", "restore a VM snapshot from its tag", hmp_loadvm },
    { "delvm", "tag", "delete a VM snapshot from its tag", hmp_delvm },
};

/* QEMU's argument errors end with a pointer to the help. */
static void arg_error(GString *out, const char *cmd, const char *what)
{
    g_string_append_printf(out, "%s: %s\nTry \"help %s\" for more "
                           "information\n", cmd, what, cmd);
}

static void print_error(GString *out, GError *err)
{
    if (err) {
        g_string_append_printf(out, "Error: %s\n", err->message);
        g_error_free(err);
    }
}

/* eject [-f] device */
static void hmp_eject(GString *out, char **argv)
{
    bool force = argv[0] && !strcmp(argv[0], "-f");
    char **a = argv + force;
    GError *err = NULL;
    if (!a[0]) {
        arg_error(out, "eject", "block device name expected");
        return;
    }
    if (a[1]) {
        arg_error(out, "eject", "extraneous characters at the end of line");
        return;
    }
    qmp_eject(true, a[0], false, NULL, true, force, &err);
    print_error(out, err);
}

/* savevm [tag] */
static void hmp_savevm(GString *out, char **argv)
{
    if (argv[0] && argv[1]) {
        arg_error(out, "savevm", "extraneous characters at the end of line");
        return;
    }
    hmp_savevm_run(out, argv[0]);
}

/* loadvm tag, delvm tag */
static bool one_tag(GString *out, const char *cmd, char **argv)
{
    if (!argv[0]) {
        arg_error(out, cmd, "string expected");
        return false;
    }
    if (argv[1]) {
        arg_error(out, cmd, "extraneous characters at the end of line");
        return false;
    }
    return true;
}

static void hmp_loadvm(GString *out, char **argv)
{
    if (one_tag(out, "loadvm", argv)) {
        hmp_loadvm_run(out, argv[0]);
    }
}

static void hmp_delvm(GString *out, char **argv)
{
    if (one_tag(out, "delvm", argv)) {
        hmp_delvm_run(out, argv[0]);
    }
}

/* change device [-f] filename [format [read-only-mode]] */
static void hmp_change(GString *out, char **argv)
{
    GError *err = NULL;
    if (!argv[0]) {
        arg_error(out, "change", "block device name expected");
        return;
    }
    const char *device = argv[0];
    bool force = argv[1] && !strcmp(argv[1], "-f");
    char **a = argv + 1 + force;
    if (!a[0]) {
        arg_error(out, "change", "filename expected");
        return;
    }
    if (a[1] && a[2] && a[3]) {
        arg_error(out, "change", "extraneous characters at the end of line");
        return;
    }
    int mode = BLOCKDEV_CHANGE_READ_ONLY_MODE_RETAIN;
    if (a[1] && a[2]) {
        mode = BlockdevChangeReadOnlyMode_parse(a[2]);
        if (mode < 0) {
            g_string_append_printf(out, "Error: invalid parameter value: "
                                   "%s\n", a[2]);
            return;
        }
    }
    qmp_blockdev_change_medium(true, device, false, NULL, a[0], a[1] != NULL,
                               a[1], true, force, a[1] && a[2], mode, &err);
    print_error(out, err);
}

static void info_version(GString *out, char **argv)
{
    g_string_append_printf(out, "7.2.0 (xblk %s)\n", XBLK_VERSION_STRING);
}

/* QEMU: "running", "paused", or "paused (STATE)" for the other
 * stopped states (prelaunch, io-error, guest-panicked, ...). */
static void info_status(GString *out, char **argv)
{
    XblkRunState st = runstate_get();
    bool running = runstate_is_running();
    g_string_append_printf(out, "VM status: %s", running ? "running"
                                                         : "paused");
    if (!running && st != XBLK_RUN_STATE_PAUSED) {
        g_string_append_printf(out, " (%s)", runstate_name(st));
    }
    g_string_append(out, "\n");
}

static void print_node_header(GString *out, const char *name,
                              BlockDriverState *bs)
{
    g_string_append_printf(out, "%s: %s (%s%s)\n", name, bs->filename,
                           bdrv_get_format_name(bs),
                           bs->read_only ? ", read-only" : "");
}

/* The lines after the header and the drive's lines. */
static void print_node_details(GString *out, BlockDriverState *bs,
                               bool writeback)
{
    g_string_append_printf(out, "    Cache mode:       %s%s%s\n",
                           writeback ? "writeback" : "writethrough",
                           (bs->open_flags & BDRV_O_NOCACHE)
                           ? ", direct" : "",
                           (bs->open_flags & BDRV_O_NO_FLUSH)
                           ? ", ignore flushes" : "");
    int depth = 0;
    for (BlockDriverState *b = bdrv_backing_bs(bs); b;
         b = bdrv_backing_bs(b)) {
        depth++;
    }
    if (bs->backing_file) {
        g_string_append_printf(out, "    Backing file:     %s (chain depth: "
                               "%d)\n", bs->backing_file, depth);
    }
}

/* A device as QEMU prints it: the medium (or "[not inserted]"), the
 * device it is attached to, the tray, a failed I/O status, the cache. */
static void print_device(GString *out, XboxMachine *m, BlockBackend *blk)
{
    MachineDriveInfo info;
    int index = host_drive_of_blk(m, blk);
    bool drive = index >= 0 && machine_drive_info(m, index, &info);
    BlockDriverState *bs = blk_bs(blk);
    if (bs) {
        g_autofree char *n = g_strdup_printf("%s (%s)", blk_name(blk),
                                             bs->node_name);
        print_node_header(out, n, bs);
    } else {
        g_string_append_printf(out, "%s: [not inserted]\n", blk_name(blk));
    }
    if (drive) {
        g_string_append_printf(out, "    Attached to:      %s\n", info.qdev);
        if (info.removable) {
            g_string_append_printf(out, "    Removable device: %slocked, "
                                   "tray %s\n", info.locked ? "" : "not ",
                                   info.tray_open ? "open" : "closed");
        }
        if (info.io_status != MACHINE_IO_STATUS_OK) {
            g_string_append_printf(out, "    I/O status:       %s\n",
                                   machine_io_status_name(info.io_status));
        }
    }
    if (bs) {
        print_node_details(out, bs, blk_enable_write_cache(blk) &&
                                    (!drive || info.write_cache));
    }
}

/* info block [-n] [device]: devices (or one), or with -n every named
 * node.  As in QEMU, a blank line precedes every device but the first of
 * the whole list, shown or not. */
static void info_block(GString *out, char **argv)
{
    bool nodes = argv[0] && !strcmp(argv[0], "-n");
    const char *only = argv[0] && argv[0][0] != '-' ? argv[0]
                     : argv[0] && argv[1] ? argv[1] : NULL;
    bool first = true;
    if (nodes) {
        for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
             bs = bdrv_next_node(bs)) {
            if (bs->auto_node_name) {
                continue;
            }
            if (only && strcmp(only, bs->node_name)) {
                continue;
            }
            if (!first) {
                g_string_append(out, "\n");
            }
            print_node_header(out, bs->node_name, bs);
            print_node_details(out, bs, true);
            first = false;
        }
        return;
    }
    XboxMachine *m = machine_current();
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (!*blk_name(blk)) {
            continue;
        }
        bool was_first = first;
        first = false;
        if (only && strcmp(only, blk_name(blk))) {
            continue;
        }
        if (!was_first) {
            g_string_append(out, "\n");
        }
        print_device(out, m, blk);
    }
}

static bool has_backend(BlockDriverState *bs)
{
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (blk_bs(blk) == bs) {
            return true;
        }
    }
    return false;
}

/* QEMU's set of disks a VM snapshot covers: writable nodes in use by a
 * device (a BlockBackend) or owned by the monitor (no parent). */
static bool is_snapshot_root(BlockDriverState *bs)
{
    return !bdrv_is_read_only(bs) && (has_backend(bs) || !bs->parents);
}

static void info_snapshots(GString *out, char **argv)
{
    GPtrArray *roots = g_ptr_array_new();
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        if (is_snapshot_root(bs)) {
            /* The list comes from the first that can snapshot. */
            if (bdrv_can_snapshot(bs) && roots->len &&
                !bdrv_can_snapshot(roots->pdata[0])) {
                g_ptr_array_insert(roots, 0, bs);
            } else {
                g_ptr_array_add(roots, bs);
            }
        }
    }
    BdrvSnapshotInfo *list = NULL;
    int n = roots->len ? bdrv_snapshot_list(roots->pdata[0], &list) : 0;
    GString *rows = g_string_new(NULL);
    int shown = 0;
    for (int i = 0; i < n; i++) {
        bool everywhere = true;
        for (guint r = 1; r < roots->len; r++) {
            BdrvSnapshotInfo tmp = { 0 };
            everywhere &= bdrv_snapshot_find(roots->pdata[r], list[i].name,
                                             &tmp);
            bdrv_snapshot_info_clear(&tmp);
        }
        if (!everywhere) {
            continue;
        }
        char date[32], clock[32];
        time_t t = list[i].date_sec;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
        uint64_t ns = list[i].vm_clock_nsec, secs = ns / 1000000000ULL;
        g_snprintf(clock, sizeof(clock), "%02" G_GUINT64_FORMAT
                   ":%02u:%02u.%03u", secs / 3600, (unsigned)(secs / 60 % 60),
                   (unsigned)(secs % 60), (unsigned)(ns / 1000000 % 1000));
        g_autofree char *vm = size_to_str(list[i].vm_state_size);
        g_autofree char *icount =
            list[i].icount == BDRV_SNAPSHOT_NO_ICOUNT
            ? g_strdup("") : g_strdup_printf("%" G_GUINT64_FORMAT,
                                             list[i].icount);
        g_string_append_printf(rows, "%-9s %-16s %8s%20s%13s%11s\n", "--",
                               list[i].name, vm, date, clock, icount);
        shown++;
    }
    if (shown) {
        g_string_append(out, "List of snapshots present on all disks:\n");
        g_string_append_printf(out, "%-10s%-17s%8s%20s%13s%11s\n", "ID",
                               "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
        g_string_append(out, rows->str);
    } else {
        g_string_append(out, "There is no snapshot available.\n");
    }
    g_string_free(rows, TRUE);
    if (n > 0) {
        bdrv_snapshot_list_free(list, n);
    }
    g_ptr_array_free(roots, TRUE);
}

typedef struct InfoCmd {
    const char *name;
    const char *help;
    HmpFunc *fn;
} InfoCmd;

static const InfoCmd info_cmds[] = {
    { "block", "[-n] [device] -- show info of one block device or all block "
      "devices (-n: show named nodes)", info_block },
    { "snapshots", "-- show the currently saved VM snapshots", info_snapshots },
    { "status", "-- show the current VM status (running|paused)",
      info_status },
    { "version", "-- show the version of QEMU", info_version },
};

static void hmp_info(GString *out, char **argv)
{
    if (!argv[0]) {
        for (size_t i = 0; i < G_N_ELEMENTS(info_cmds); i++) {
            g_string_append_printf(out, "info %s %s\n", info_cmds[i].name,
                                   info_cmds[i].help);
        }
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(info_cmds); i++) {
        if (!strcmp(argv[0], info_cmds[i].name)) {
            info_cmds[i].fn(out, argv + 1);
            return;
        }
    }
    g_string_append_printf(out, "unknown command: 'info %s'\n", argv[0]);
}

static void hmp_help(GString *out, char **argv)
{
    if (argv[0] && !strcmp(argv[0], "info")) {
        hmp_info(out, argv + 1);
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(hmp_cmds) && argv[0]; i++) {
        if (!strcmp(argv[0], hmp_cmds[i].name)) {
            g_string_append_printf(out, "%s %s -- %s\n", hmp_cmds[i].name,
                                   hmp_cmds[i].args, hmp_cmds[i].help);
            return;
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(hmp_cmds); i++) {
        g_string_append_printf(out, "%s %s -- %s\n", hmp_cmds[i].name,
                               hmp_cmds[i].args, hmp_cmds[i].help);
    }
}

char *hmp_execute(const char *line, GError **errp)
{
    g_auto(GStrv) argv = g_strsplit_set(line, " \t", -1);
    /* Drop empty words from repeated spaces. */
    GPtrArray *words = g_ptr_array_new();
    for (int i = 0; argv[i]; i++) {
        if (*argv[i]) {
            g_ptr_array_add(words, argv[i]);
        }
    }
    g_ptr_array_add(words, NULL);
    char **w = (char **)words->pdata;
    GString *out = g_string_new(NULL);
    if (w[0]) {
        bool found = false;
        for (size_t i = 0; i < G_N_ELEMENTS(hmp_cmds) && !found; i++) {
            if (!strcmp(w[0], hmp_cmds[i].name) ||
                (!strcmp(w[0], "?") && !strcmp(hmp_cmds[i].name, "help"))) {
                hmp_cmds[i].fn(out, w + 1);
                found = true;
            }
        }
        if (!found) {
            g_string_append_printf(out, "unknown command: '%s'\n", w[0]);
        }
    }
    g_ptr_array_free(words, TRUE);
    /* QEMU's monitor ends lines with "\r\n". */
    g_autofree char *text = g_string_free(out, FALSE);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    return g_strjoinv("\r\n", lines);
}
