/*
 * ui.h - the front end of xblk-system (-display sdl, docs/ui.md): the
 * window, presentation, input, on-screen messages and the hotkeys' glue
 * to the player's save states (ui/library.h).
 *
 * One front end per process.  Main loop thread only.  ui_start comes
 * before machine_start (it installs the frame hook), ui_stop after the
 * main loop ended and before machine_free (it may still save the resume
 * state, running the loop until that is written).
 */
#ifndef XBLK_UI_UI_H
#define XBLK_UI_UI_H

#include "hw/xbox/machine.h"
#include <glib.h>
#include <stdbool.h>

/* The host's way to put a disc image into the console's DVD drive (as
 * blockdev-change-medium does); main loop. */
typedef bool UiChangeDiscFn(void *opaque, const char *path, GError **errp);

typedef struct UiOptions {
    bool full_screen;           /* -full-screen (or the config's) */
    /* Offered when a state was saved with another disc ("Insert that
     * disc and load"); NULL: only "Load anyway" and "Cancel". */
    UiChangeDiscFn *change_disc;
    void *change_disc_opaque;
} UiOptions;

/* Built with SDL and a display reachable ($DISPLAY or $WAYLAND_DISPLAY):
 * the default front end is the window. */
bool ui_display_available(void);

/* Loads the config (its warnings on stderr), opens the save states'
 * library and the window, installs the frame hook and input.  Fails
 * (*errp set) when the window cannot be opened or SDL is not built in. */
bool ui_start(XboxMachine *m, const UiOptions *o, GError **errp);
/* Saves the resume state if the config asks and it was not saved yet,
 * waits for save states in flight, closes the window.  No-op without
 * ui_start. */
void ui_stop(void);

#endif
