/*
 * runstate.c - see runstate.h.  State changes happen on the main loop.
 */
#include "hw/runstate.h"
#include <glib.h>

static XblkRunState current = XBLK_RUN_STATE_RUNNING;
static ShutdownRequest shutdown_req = SHUTDOWN_NONE;
/* The loop a shutdown request wakes (NULL: the default context). */
static GMainContext *loop_context;

void runstate_set_loop_context(GMainContext *ctx)
{
    loop_context = ctx;
}

typedef struct Hook {
    RunStateHook *fn;
    void *opaque;
} Hook;

static GArray *hooks;

static const char *const names[] = {
    "debug", "inmigrate", "internal-error", "io-error", "paused",
    "postmigrate", "prelaunch", "finish-migrate", "restore-vm", "running",
    "save-vm", "shutdown", "suspended", "watchdog", "guest-panicked",
    "colo",
};

XblkRunState runstate_get(void)
{
    return current;
}

const char *runstate_name(XblkRunState s)
{
    return names[s];
}

bool runstate_is_running(void)
{
    return current == XBLK_RUN_STATE_RUNNING;
}

void runstate_add_hook(RunStateHook *fn, void *opaque)
{
    if (!hooks) {
        hooks = g_array_new(FALSE, FALSE, sizeof(Hook));
    }
    Hook h = { fn, opaque };
    g_array_append_val(hooks, h);
}

void runstate_set(XblkRunState s)
{
    bool was = runstate_is_running();
    current = s;
    bool now = runstate_is_running();
    if (was != now && hooks) {
        for (guint i = 0; i < hooks->len; i++) {
            Hook *h = &g_array_index(hooks, Hook, i);
            h->fn(now, h->opaque);
        }
    }
}

void runstate_request_shutdown(ShutdownRequest why)
{
    if (shutdown_req == SHUTDOWN_NONE) {
        shutdown_req = why;
    }
    g_main_context_wakeup(loop_context);
}

ShutdownRequest runstate_shutdown_requested(void)
{
    return shutdown_req;
}
