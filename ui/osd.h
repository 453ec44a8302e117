/*
 * osd.h - on-screen messages: the short lines drawn over the game
 * ("Saved 'Slot 2' · pause 0.4 ms", errors in red) and the progress bar
 * of long work.  This is the model only, with no SDL: the main loop posts
 * messages and progress, a renderer (ui/sdl/render.c) takes snapshots of
 * what is visible and draws them.
 *
 * Invariants: a message is fully visible for the configured seconds, then
 * fades out over UI_OSD_FADE_US and is dropped; at most UI_OSD_MAX_LINES
 * are kept (the oldest goes first).  Without a renderer (no font, no
 * window) messages go to stderr instead, so nothing a player should read
 * is lost.  Thread-safe: every function may be called from any thread
 * (the render thread only reads).
 */
#ifndef XBLK_UI_OSD_H
#define XBLK_UI_OSD_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define UI_OSD_MAX_LINES    5
#define UI_OSD_FADE_US      (800 * 1000)

typedef enum UiOsdKind {
    UI_OSD_INFO,
    UI_OSD_WARNING,
    UI_OSD_ERROR,
} UiOsdKind;

typedef struct UiOsd UiOsd;

/* One visible line, as a snapshot: id is unique per message, so a
 * renderer can cache what it rasterized for it. */
typedef struct UiOsdLine {
    uint64_t id;
    char *text;
    UiOsdKind kind;
    float alpha;                /* 1 while shown, down to 0 while fading */
} UiOsdLine;

typedef struct UiOsdView {
    UiOsdLine lines[UI_OSD_MAX_LINES];  /* oldest first */
    int n_lines;
    bool progress_shown;
    float progress;             /* 0..1 */
} UiOsdView;

/* seconds: how long a message stays before fading (at least 1). */
UiOsd *ui_osd_new(int seconds);
void ui_osd_free(UiOsd *osd);
/* Whether a renderer draws the messages (false: they go to stderr). */
void ui_osd_set_drawn(UiOsd *osd, bool drawn);

void ui_osd_post(UiOsd *osd, UiOsdKind kind, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Progress of long work: done of total (total 0 hides the bar). */
void ui_osd_set_progress(UiOsd *osd, uint64_t done, uint64_t total);

/* What is visible at now_us (g_get_monotonic_time); expired lines are
 * dropped.  Returns true when something is visible, i.e. the renderer
 * should keep drawing (fades move).  Free with ui_osd_view_clear. */
bool ui_osd_snapshot(UiOsd *osd, int64_t now_us, UiOsdView *view);
void ui_osd_view_clear(UiOsdView *view);

#endif
