/*
 * xblk-system - the emulator host.  Until the machine issue adds hardware
 * it runs block devices and the QMP monitor only:
 *
 *   xblk-system -machine none -blockdev ... -qmp unix:PATH,server=on,wait=off
 *
 * It runs in the foreground until `quit` over QMP, SIGTERM or SIGINT, then
 * emits SHUTDOWN, flushes and closes every image, and exits 0.
 */
#include "block/block-events.h"
#include "block/blockdev.h"
#include "hw/runstate.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "util/error.h"
#include "util/main-loop.h"
#include "util/version.h"
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(void)
{
    printf("usage: xblk-system [options]\n"
           "  -machine none            no hardware (block devices and QMP)\n"
           "  -blockdev OPTIONS        add a block node (JSON or key=value)\n"
           "  -qmp unix:PATH,server=on,wait=off\n"
           "  -qmp tcp:127.0.0.1:PORT,server=on,wait=off\n"
           "  -S                       start paused (prelaunch)\n"
           "  -nodefaults, -display none, -name NAME   accepted\n"
           "  -version, -h\n");
}

static gboolean on_signal(gpointer opaque)
{
    runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

static bool parse_args(int argc, char **argv)
{
    GError *err = NULL;
    bool have_machine = false;
    /* The monitors open last: opening a -blockdev runs the main loop
     * (its I/O completes there), which would otherwise accept a client
     * and run its commands before the later -blockdev nodes exist. */
    g_autoptr(GPtrArray) qmp = g_ptr_array_new();
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
            printf("xblk-system version " XBLK_VERSION_STRING "\n");
            exit(0);
        } else if (!strcmp(a, "-S")) {
            runstate_set(XBLK_RUN_STATE_PRELAUNCH);
        } else if (!strcmp(a, "-nodefaults")) {
        } else if (!v) {
            error_report("%s: option requires an argument", a);
            return false;
        } else if (!strcmp(a, "-machine") || !strcmp(a, "-M")) {
            if (strcmp(v, "none") && !g_str_has_prefix(v, "none,") &&
                strcmp(v, "type=none")) {
                error_report("-machine %s: unsupported machine type (this "
                             "build has 'none' only)", v);
                return false;
            }
            have_machine = true;
            i++;
        } else if (!strcmp(a, "-display") || !strcmp(a, "-name")) {
            i++;
        } else if (!strcmp(a, "-blockdev")) {
            BlockOpts *o = blockdev_parse_arg(v, &err);
            if (!o || !blockdev_add(o, &err)) {
                error_report("-blockdev %s: %s", v, err->message);
                return false;
            }
            i++;
        } else if (!strcmp(a, "-qmp")) {
            g_ptr_array_add(qmp, (gpointer)v);
            i++;
        } else {
            error_report("%s: invalid option", a);
            return false;
        }
    }
    if (!have_machine) {
        error_report("no machine given: use -machine none");
        return false;
    }
    for (guint i = 0; i < qmp->len; i++) {
        const char *v = g_ptr_array_index(qmp, i);
        if (!monitor_add_qmp(v, &err)) {
            error_report("-qmp %s: %s", v, err->message);
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    g_set_prgname("xblk-system");
    signal(SIGPIPE, SIG_IGN);
    qmp_init_marshal(monitor_commands());
    qmp_cmds_register_extra(monitor_commands());
    /* Jobs report their events through the monitor. */
    block_event_set_sink(qapi_event_emit);
    if (!parse_args(argc, argv)) {
        blockdev_close_all();
        monitor_cleanup();
        return 1;
    }
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    while (runstate_shutdown_requested() == SHUTDOWN_NONE) {
        aio_poll(true);
    }
    ShutdownRequest why = runstate_shutdown_requested();
    runstate_set(XBLK_RUN_STATE_SHUTDOWN);
    if (why != SHUTDOWN_HOST_QMP_QUIT) {
        /* quit has announced itself already */
        qapi_event_send_shutdown(false, SHUTDOWN_CAUSE_HOST_SIGNAL);
    }
    monitor_flush_all();
    blockdev_close_all();
    monitor_cleanup();
    return 0;
}
