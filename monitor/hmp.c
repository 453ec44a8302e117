/*
 * hmp.c - HMP commands: help, info version/status/block/snapshots.
 * Each command writes into a GString; later issues add commands to the
 * table below.
 */
#include "monitor/hmp.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "hw/runstate.h"
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

static const HmpCmd hmp_cmds[] = {
    { "help", "[cmd]", "show the help", hmp_help },
    { "info", "[subcommand]", "show various information about the system "
      "state", hmp_info },
};

static void info_version(GString *out, char **argv)
{
    g_string_append_printf(out, "7.2.0 (xblk %s)\n", XBLK_VERSION_STRING);
}

static void info_status(GString *out, char **argv)
{
    const char *st = runstate_is_running() ? "running"
                   : runstate_get() == XBLK_RUN_STATE_PAUSED ? "paused"
                   : runstate_name(runstate_get());
    g_string_append_printf(out, "VM status: %s\n", st);
}

static void print_node(GString *out, const char *name, BlockDriverState *bs)
{
    g_string_append_printf(out, "%s: %s (%s%s)\n", name, bs->filename,
                           bdrv_get_format_name(bs),
                           bs->read_only ? ", read-only" : "");
    g_string_append_printf(out, "    Cache mode:       %s%s\n",
                           "writeback", (bs->open_flags & BDRV_O_NOCACHE)
                           ? ", direct" : "");
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

/* info block [-n]: devices, or with -n every named node. */
static void info_block(GString *out, char **argv)
{
    bool nodes = argv[0] && !strcmp(argv[0], "-n");
    bool first = true;
    if (nodes) {
        for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
             bs = bdrv_next_node(bs)) {
            if (bs->auto_node_name) {
                continue;
            }
            if (!first) {
                g_string_append(out, "\n");
            }
            print_node(out, bs->node_name, bs);
            first = false;
        }
        return;
    }
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (!*blk_name(blk)) {
            continue;
        }
        if (!first) {
            g_string_append(out, "\n");
        }
        BlockDriverState *bs = blk_bs(blk);
        if (bs) {
            g_autofree char *n = g_strdup_printf("%s (%s)", blk_name(blk),
                                                 bs->node_name);
            print_node(out, n, bs);
        } else {
            g_string_append_printf(out, "%s: [not inserted]\n",
                                   blk_name(blk));
        }
        first = false;
    }
}

static bool is_snapshot_root(BlockDriverState *bs)
{
    return !bs->parents && bs->drv->snapshot && !bs->auto_node_name;
}

static void info_snapshots(GString *out, char **argv)
{
    GPtrArray *roots = g_ptr_array_new();
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        if (is_snapshot_root(bs)) {
            g_ptr_array_add(roots, bs);
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
        g_string_append_printf(rows, "%-9s %-16s %8s%20s%13s%11s\n", "--",
                               list[i].name, vm, date, clock,
                               list[i].icount == BDRV_SNAPSHOT_NO_ICOUNT
                               ? "" : g_strdup_printf("%" G_GUINT64_FORMAT,
                                                      list[i].icount));
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
    { "block", "[-n] -- show info of one block device or all block devices "
      "(-n: show named nodes)", info_block },
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
    return g_string_free(out, FALSE);
}
