/*
 * loop.c - the engine's main loop and stderr for the front end (loop.h).
 * Invariant: every source is attached to the engine's own GMainContext,
 * never to whatever context happens to be the thread's default.
 */
#include "ui/loop.h"
#include <stdio.h>

static GMainContext *engine_context(XblkEngine *engine)
{
    GMainContext *ctx = xblk_engine_glib_context(engine);
    return ctx ? ctx : g_main_context_default();
}

guint ui_loop_timeout_add(XblkEngine *engine, guint ms, GSourceFunc fn,
                          gpointer data)
{
    GSource *src = g_timeout_source_new(ms);
    g_source_set_callback(src, fn, data, NULL);
    guint id = g_source_attach(src, engine_context(engine));
    g_source_unref(src);
    return id;
}

void ui_loop_remove(XblkEngine *engine, guint id)
{
    GSource *src = g_main_context_find_source_by_id(engine_context(engine),
                                                    id);
    if (src) {
        g_source_destroy(src);
    }
}

void ui_loop_iterate(XblkEngine *engine)
{
    g_main_context_iteration(engine_context(engine), TRUE);
}

static void report(const char *kind, const char *fmt, va_list ap)
{
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    const char *prg = g_get_prgname();
    fprintf(stderr, "%s%s%s%s\n", prg ? prg : "", prg ? ": " : "", kind,
            msg);
}

void ui_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("", fmt, ap);
    va_end(ap);
}

void ui_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("warning: ", fmt, ap);
    va_end(ap);
}

void ui_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("info: ", fmt, ap);
    va_end(ap);
}
