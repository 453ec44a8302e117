/*
 * sdl-ui.h - the SDL2 window of the front end, inside ui/sdl/ only:
 *
 *  - window.c (SdlUi): SDL itself, the window, its GL context and font,
 *    the event pump (a ~4 ms timer on the main loop), hotkey chords,
 *    fullscreen and the title.  Main loop thread only.
 *  - render.c (SdlRender): the render thread, which owns the GL context
 *    and presents: the frame hook (vCPU thread) copies the scanout into a
 *    triple buffer and never waits; the render thread draws the newest
 *    frame with the right aspect, then the OSD, then swaps.
 *  - input.c (SdlInput): keyboard and SDL GameControllers mapped to the
 *    console's gamepad (config [keyboard], [gamepad]), hot-plug.  Main
 *    loop thread; machine_set_input may be called from any thread.
 *
 * ui/ui.c sees only the SdlUi functions.
 */
#ifndef XBLK_UI_SDL_SDL_UI_H
#define XBLK_UI_SDL_SDL_UI_H

#include "hw/xbox/machine.h"
#include "ui/config.h"
#include "ui/menu.h"
#include "ui/osd.h"
#include <glib.h>
#include <stdbool.h>

#define SDL_UI_FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

typedef struct SdlUi SdlUi;

typedef struct SdlUiCallbacks {
    /* A hotkey chord bound to action was pressed (not auto-repeat). */
    void (*action)(void *opaque, UiAction action);
    /* The window was closed. */
    void (*close)(void *opaque);
} SdlUiCallbacks;

/* Opens the window (cfg and osd are borrowed until sdl_ui_close) and
 * installs the frame hook on m; call before machine_start. */
SdlUi *sdl_ui_open(XboxMachine *m, const UiConfig *cfg, UiOsd *osd,
                   bool fullscreen, const SdlUiCallbacks *cb, void *opaque,
                   GError **errp);
void sdl_ui_set_title(SdlUi *ui, const char *title);
void sdl_ui_toggle_fullscreen(SdlUi *ui);
/* The save-state menu the window drives and draws (borrowed until
 * sdl_ui_close; NULL: none).  Set once, before the loop runs. */
void sdl_ui_set_menu(SdlUi *ui, UiMenu *menu);
/* The menu changed: draw again.  Any thread. */
void sdl_ui_redraw(SdlUi *ui);
/* Removes the frame hook, stops the render thread, closes SDL. */
void sdl_ui_close(SdlUi *ui);

/* ---- render.c ---- */
typedef struct SdlRender SdlRender;
typedef struct SDL_Window SDL_Window;
typedef struct _TTF_Font TTF_Font;

/* ctx: a GL context current on no thread; font may be NULL (no text).
 * Waits until the render thread set GL up (or failed). */
SdlRender *sdl_render_start(SDL_Window *win, void *gl_ctx, XboxMachine *m,
                            UiOsd *osd, TTF_Font *font, bool vsync,
                            bool integer_scale, GError **errp);
/* The drawable's size changed, or it needs drawing again (expose). */
void sdl_render_resize(SdlRender *r, int width, int height);
/* The menu drawn over the dimmed game while it is open (any thread). */
void sdl_render_set_menu(SdlRender *r, UiMenu *menu);
/* Draw again soon (the menu changed).  Any thread. */
void sdl_render_redraw(SdlRender *r);
/* The menu's page row at drawable pixel (x, y), or -1 (main loop). */
int sdl_render_menu_row_at(SdlRender *r, int x, int y);
/* Unhooks the frame hook (on the vCPU thread) and joins the thread;
 * the GL context is current on no thread afterwards. */
void sdl_render_stop(SdlRender *r);

/* ---- input.c ---- */
typedef struct SdlInput SdlInput;
typedef union SDL_Event SDL_Event;

SdlInput *sdl_input_new(XboxMachine *m, const UiConfig *cfg);
void sdl_input_free(SdlInput *in);
/* A key went down or up; false if no pad control is mapped to it. */
bool sdl_input_key(SdlInput *in, int keycode, bool down);
/* Focus lost: nothing stays held. */
void sdl_input_release_keys(SdlInput *in);
/* GameController events (added, removed, buttons, axes). */
void sdl_input_controller_event(SdlInput *in, const SDL_Event *ev);
/* True when ev is a controller's button going down that completes the
 * config's menu combo (menu-combo, "back+start") on that controller. */
bool sdl_input_menu_combo(SdlInput *in, const SDL_Event *ev);

#endif
