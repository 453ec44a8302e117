/*
 * loop.h - the front end's use of the engine's main loop and of stderr,
 * through libxblk's public API only (the front end, like the machine,
 * is an embedder: tests/hw/test-layering.py).
 *
 * Timers are GSources on the engine's GMainContext
 * (xblk_engine_glib_context), so they run on the thread that runs the
 * monitor, jobs and save states.  Main loop thread only.
 */
#ifndef XBLK_UI_LOOP_H
#define XBLK_UI_LOOP_H

#include <xblk/xblk.h>
#include <glib.h>

/* A timer every ms milliseconds on the engine's loop (fn returns
 * G_SOURCE_CONTINUE or G_SOURCE_REMOVE); its id for ui_loop_remove. */
guint ui_loop_timeout_add(XblkEngine *engine, guint ms, GSourceFunc fn,
                          gpointer data);
void ui_loop_remove(XblkEngine *engine, guint id);
/* One iteration of the engine's loop, waiting for an event. */
void ui_loop_iterate(XblkEngine *engine);

/* "PROGRAM: ...", "PROGRAM: warning: ...", "PROGRAM: info: ..." on
 * stderr, as the program's other messages (QEMU's error_report style). */
void ui_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void ui_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void ui_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
