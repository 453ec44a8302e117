/*
 * window.c - the SDL2 window (SdlUi): SDL's video and GameController
 * subsystems, one resizable window with a GL context (libepoxy, GL 2.1),
 * the OSD font, and the event pump.
 *
 * Invariants:
 *  - Everything here runs on the main loop's thread: SDL wants its
 *    window and events on the thread that made them, and the main loop
 *    never blocks, so a ~4 ms timer there pumps SDL_PollEvent.
 *  - The GL context is created here but made current only on the render
 *    thread (render.c); this thread never makes GL calls.
 *  - SDL installs no signal handlers: xblk-system's own SIGINT/SIGTERM
 *    handling stays in charge.
 *  - Fullscreen is SDL's desktop fullscreen, which asks the window
 *    manager; on an X display without one (Xvfb, kiosks) nobody would
 *    act on it, so the window itself is moved and sized to the display.
 *  - A key chord bound to a hotkey goes to the glue (ui.c), never to the
 *    pad; other keys go to the pad mapping (input.c).
 *  - While the save-state menu (ui/menu.h) is open, every key, typed
 *    text, mouse and controller button goes to the menu as UiMenuInput;
 *    only the menu's own chord (and the menu combo) reaches the glue,
 *    and the pad gets nothing (what it held is released at the open).
 */
#include "ui/sdl/sdl-ui.h"
#include "hw/error.h"
#include "ui/loop.h"
#include "ui/menu.h"
#include <SDL.h>
#include <SDL_syswm.h>
#include <SDL_ttf.h>
#include <dlfcn.h>
#include <locale.h>

#define EVENT_TICK_MS   4
#define OSD_FONT_PT     18

struct SdlUi {
    SDL_Window *win;
    SDL_GLContext gl;
    TTF_Font *font;
    SdlRender *render;
    SdlInput *input;
    XblkEngine *engine;         /* whose loop runs the event tick */
    guint tick;
    const UiConfig *cfg;
    UiOsd *osd;
    SdlUiCallbacks cb;
    void *opaque;
    bool fullscreen;
    bool no_wm;                 /* X11 without a window manager */
    SDL_Rect windowed;          /* where the window was before fullscreen */
    UiMenu *menu;               /* NULL: no menu (no library) */
    bool menu_was_open;
};

/* "Ctrl+Alt+Shift+KEY" as the config writes chords. */
static char *key_chord(const SDL_Keysym *ks)
{
    return g_strdup_printf("%s%s%s%s",
                           ks->mod & KMOD_CTRL ? "Ctrl+" : "",
                           ks->mod & KMOD_ALT ? "Alt+" : "",
                           ks->mod & KMOD_SHIFT ? "Shift+" : "",
                           SDL_GetKeyName(ks->sym));
}

static bool is_modifier(SDL_Keycode k)
{
    switch (k) {
    case SDLK_LCTRL: case SDLK_RCTRL: case SDLK_LSHIFT: case SDLK_RSHIFT:
    case SDLK_LALT: case SDLK_RALT: case SDLK_LGUI: case SDLK_RGUI:
        return true;
    default:
        return false;
    }
}

/* Keys that mean the same in the menu whatever the config says. */
static bool menu_fixed_key(const SDL_Keysym *ks, UiMenuInput *in)
{
    static const struct { SDL_Keycode key; UiMenuInput in; } keys[] = {
        { SDLK_UP, UI_MENU_IN_UP }, { SDLK_DOWN, UI_MENU_IN_DOWN },
        { SDLK_LEFT, UI_MENU_IN_LEFT }, { SDLK_RIGHT, UI_MENU_IN_RIGHT },
        { SDLK_PAGEUP, UI_MENU_IN_PAGE_UP },
        { SDLK_PAGEDOWN, UI_MENU_IN_PAGE_DOWN },
        { SDLK_HOME, UI_MENU_IN_HOME }, { SDLK_END, UI_MENU_IN_END },
        { SDLK_RETURN, UI_MENU_IN_ACCEPT }, { SDLK_KP_ENTER, UI_MENU_IN_ACCEPT },
        { SDLK_ESCAPE, UI_MENU_IN_BACK },
        { SDLK_BACKSPACE, UI_MENU_IN_BACKSPACE },
        { SDLK_DELETE, UI_MENU_IN_DELETE }, { SDLK_F2, UI_MENU_IN_RENAME },
        { SDLK_TAB, UI_MENU_IN_FILTER },
    };
    if (ks->sym == SDLK_s && (ks->mod & KMOD_CTRL)) {
        *in = UI_MENU_IN_SAVE_OVER;
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (keys[i].key == ks->sym) {
            *in = keys[i].in;
            return true;
        }
    }
    return false;
}

/* Held keys repeat (moving, deleting text); the rest act once. */
static bool menu_input_repeats(UiMenuInput in)
{
    return in <= UI_MENU_IN_RIGHT || in == UI_MENU_IN_BACKSPACE;
}

/* A key while the menu is open: the menu's chord toggles it, the load
 * slots' chords bind (F5..F8 by default), fixed keys navigate. */
static void menu_key(SdlUi *ui, const SDL_KeyboardEvent *ke)
{
    if (ke->type != SDL_KEYDOWN || is_modifier(ke->keysym.sym)) {
        return;
    }
    g_autofree char *chord = key_chord(&ke->keysym);
    UiAction a = ui_config_action_for(ui->cfg, chord);
    UiMenuInput in;
    if (a == UI_ACTION_MENU) {
        if (!ke->repeat) {
            ui->cb.action(ui->opaque, a);
        }
    } else if (a >= UI_ACTION_LOAD_SLOT1 && a <= UI_ACTION_LOAD_SLOT4) {
        if (!ke->repeat) {
            ui_menu_input(ui->menu, UI_MENU_IN_BIND1 +
                          (a - UI_ACTION_LOAD_SLOT1));
        }
    } else if (menu_fixed_key(&ke->keysym, &in) &&
               (!ke->repeat || menu_input_repeats(in))) {
        ui_menu_input(ui->menu, in);
    }
}

static bool menu_open(SdlUi *ui)
{
    bool open = ui->menu && ui_menu_is_open(ui->menu);
    if (open && !ui->menu_was_open) {
        sdl_input_release_keys(ui->input);  /* the pad holds nothing */
    }
    ui->menu_was_open = open;
    return open;
}

static void on_key(SdlUi *ui, const SDL_KeyboardEvent *ke)
{
    bool down = ke->type == SDL_KEYDOWN;
    if (menu_open(ui)) {
        menu_key(ui, ke);
        return;
    }
    if (down && !is_modifier(ke->keysym.sym)) {
        g_autofree char *chord = key_chord(&ke->keysym);
        UiAction a = ui_config_action_for(ui->cfg, chord);
        if (a != UI_ACTION_NONE) {
            if (!ke->repeat) {
                ui->cb.action(ui->opaque, a);
            }
            return;
        }
    }
    if (!ke->repeat) {
        sdl_input_key(ui->input, ke->keysym.sym, down);
    }
}

static void drawable_changed(SdlUi *ui)
{
    int w, h;
    SDL_GL_GetDrawableSize(ui->win, &w, &h);
    sdl_render_resize(ui->render, w, h);
}

static void on_window_event(SdlUi *ui, const SDL_WindowEvent *we)
{
    switch (we->event) {
    case SDL_WINDOWEVENT_SIZE_CHANGED:
    case SDL_WINDOWEVENT_EXPOSED:
    case SDL_WINDOWEVENT_SHOWN:
        drawable_changed(ui);
        break;
    case SDL_WINDOWEVENT_FOCUS_LOST:
        sdl_input_release_keys(ui->input);
        break;
    case SDL_WINDOWEVENT_CLOSE:
        ui->cb.close(ui->opaque);
        break;
    default:
        break;
    }
}

/* A click on a dialog's choice or the menu's rows (window to drawable
 * coordinates). */
static void menu_mouse(SdlUi *ui, const SDL_MouseButtonEvent *mb)
{
    int ww, wh, dw, dh;
    if (mb->button != SDL_BUTTON_LEFT) {
        return;
    }
    SDL_GetWindowSize(ui->win, &ww, &wh);
    SDL_GL_GetDrawableSize(ui->win, &dw, &dh);
    int x = mb->x * dw / MAX(ww, 1), y = mb->y * dh / MAX(wh, 1);
    if (ui_menu_click_at(ui->menu, x, y)) {
        return;                 /* a dialog's choice */
    }
    int row = sdl_render_menu_row_at(ui->render, x, y);
    if (row >= 0) {
        ui_menu_click(ui->menu, row, mb->clicks >= 2);
    }
}

static bool menu_pad_button(int button, UiMenuInput *in)
{
    static const struct { int b; UiMenuInput in; } map[] = {
        { SDL_CONTROLLER_BUTTON_DPAD_UP, UI_MENU_IN_UP },
        { SDL_CONTROLLER_BUTTON_DPAD_DOWN, UI_MENU_IN_DOWN },
        { SDL_CONTROLLER_BUTTON_DPAD_LEFT, UI_MENU_IN_LEFT },
        { SDL_CONTROLLER_BUTTON_DPAD_RIGHT, UI_MENU_IN_RIGHT },
        { SDL_CONTROLLER_BUTTON_LEFTSHOULDER, UI_MENU_IN_PAGE_UP },
        { SDL_CONTROLLER_BUTTON_RIGHTSHOULDER, UI_MENU_IN_PAGE_DOWN },
        { SDL_CONTROLLER_BUTTON_A, UI_MENU_IN_ACCEPT },
        { SDL_CONTROLLER_BUTTON_B, UI_MENU_IN_BACK },
        { SDL_CONTROLLER_BUTTON_X, UI_MENU_IN_SAVE_OVER },
        { SDL_CONTROLLER_BUTTON_Y, UI_MENU_IN_DELETE },
        { SDL_CONTROLLER_BUTTON_LEFTSTICK, UI_MENU_IN_FILTER },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(map); i++) {
        if (map[i].b == button) {
            *in = map[i].in;
            return true;
        }
    }
    return false;
}

/* Controller events: the combo toggles the menu; while it is open the
 * buttons drive it and the console's pad gets none of them. */
static void on_controller(SdlUi *ui, const SDL_Event *ev)
{
    bool open = menu_open(ui);
    if (ev->type == SDL_CONTROLLERBUTTONDOWN && ui->menu) {
        UiMenuInput in;
        if (sdl_input_menu_combo(ui->input, ev)) {
            ui->cb.action(ui->opaque, UI_ACTION_MENU);
            if (!open) {
                sdl_input_release_keys(ui->input);
            }
            return;
        }
        if (open && menu_pad_button(ev->cbutton.button, &in)) {
            ui_menu_input(ui->menu, in);
        }
    }
    bool device = ev->type == SDL_CONTROLLERDEVICEADDED ||
                  ev->type == SDL_CONTROLLERDEVICEREMOVED;
    if (!open || device) {
        sdl_input_controller_event(ui->input, ev);
    }
}

static void on_event(SdlUi *ui, const SDL_Event *ev)
{
    switch (ev->type) {
    case SDL_KEYDOWN:
    case SDL_KEYUP:
        on_key(ui, &ev->key);
        break;
    case SDL_WINDOWEVENT:
        on_window_event(ui, &ev->window);
        break;
    case SDL_QUIT:
        ui->cb.close(ui->opaque);
        break;
    case SDL_CONTROLLERDEVICEADDED:
    case SDL_CONTROLLERDEVICEREMOVED:
    case SDL_CONTROLLERBUTTONDOWN:
    case SDL_CONTROLLERBUTTONUP:
    case SDL_CONTROLLERAXISMOTION:
        on_controller(ui, ev);
        break;
    case SDL_TEXTINPUT:
        if (menu_open(ui)) {
            ui_menu_text(ui->menu, ev->text.text);
        }
        break;
    case SDL_MOUSEBUTTONDOWN:
        if (menu_open(ui)) {
            menu_mouse(ui, &ev->button);
        }
        break;
    case SDL_MOUSEWHEEL:
        if (menu_open(ui)) {
            int y = ev->wheel.direction == SDL_MOUSEWHEEL_FLIPPED
                    ? -ev->wheel.y : ev->wheel.y;
            ui_menu_wheel(ui->menu, y);
        }
        break;
    default:
        break;
    }
}

static gboolean event_tick(gpointer opaque)
{
    SdlUi *ui = opaque;
    SDL_Event ev;
    while (SDL_PollEvent(&ev)) {
        on_event(ui, &ev);
    }
    return G_SOURCE_CONTINUE;
}

/* SDL itself; its message as QEMU words it when no display is there. */
static bool sdl_init(GError **errp)
{
    /* X11 converts the (UTF-8) window title through the locale's
     * character set: the player's, not "C". */
    setlocale(LC_CTYPE, "");
    SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
    /* The window stays usable while another one has focus. */
    SDL_SetHint(SDL_HINT_VIDEO_MINIMIZE_ON_FOCUS_LOSS, "0");
    if (SDL_Init(SDL_INIT_VIDEO) < 0) {
        hw_error_set(errp, "Could not initialize SDL(%s) - exiting",
                     SDL_GetError());
        return false;
    }
    if (SDL_InitSubSystem(SDL_INIT_GAMECONTROLLER) < 0) {
        ui_warn("no game controllers: %s", SDL_GetError());
    }
    return true;
}

static bool window_create(SdlUi *ui, GError **errp)
{
    int scale = CLAMP(ui->cfg->scale, 1, 8);
    SDL_GL_SetAttribute(SDL_GL_CONTEXT_MAJOR_VERSION, 2);
    SDL_GL_SetAttribute(SDL_GL_CONTEXT_MINOR_VERSION, 1);
    SDL_GL_SetAttribute(SDL_GL_DOUBLEBUFFER, 1);
    /* Windowed first: fullscreen comes once we know who does it. */
    Uint32 flags = SDL_WINDOW_OPENGL | SDL_WINDOW_RESIZABLE |
                   SDL_WINDOW_ALLOW_HIGHDPI;
    ui->win = SDL_CreateWindow("xblk", SDL_WINDOWPOS_CENTERED,
                               SDL_WINDOWPOS_CENTERED, GPU_WIDTH * scale,
                               GPU_HEIGHT * scale, flags);
    if (!ui->win) {
        hw_error_set(errp, "cannot open the window: %s", SDL_GetError());
        return false;
    }
    SDL_SetWindowMinimumSize(ui->win, GPU_WIDTH / 2, GPU_HEIGHT / 2);
    ui->gl = SDL_GL_CreateContext(ui->win);
    if (!ui->gl) {
        hw_error_set(errp, "no OpenGL context: %s", SDL_GetError());
        return false;
    }
    /* The render thread takes it. */
    SDL_GL_MakeCurrent(ui->win, NULL);
    return true;
}

/* The OSD's font; without it the messages go to stderr. */
static void font_open(SdlUi *ui)
{
    if (TTF_Init() < 0) {
        ui_warn("no text on screen (%s): messages go to stderr",
                    TTF_GetError());
        return;
    }
    ui->font = TTF_OpenFont(SDL_UI_FONT_PATH, OSD_FONT_PT);
    if (!ui->font) {
        ui_warn("no font for on-screen messages (%s): they go to stderr",
                    TTF_GetError());
    }
}

/*
 * Whether a window manager runs on the window's X display (EWMH: a
 * _NET_SUPPORTING_WM_CHECK window on the root); true off X11.  libX11 is
 * SDL's own dependency, so its functions are looked up at run time and
 * the build needs no X11 library of its own.
 */
static bool window_manager_present(SDL_Window *win)
{
    SDL_SysWMinfo info;
    SDL_VERSION(&info.version);
    if (!SDL_GetWindowWMInfo(win, &info) ||
        info.subsystem != SDL_SYSWM_X11) {
        return true;
    }
    typeof(XInternAtom) *intern = dlsym(RTLD_DEFAULT, "XInternAtom");
    typeof(XGetWindowProperty) *get = dlsym(RTLD_DEFAULT,
                                            "XGetWindowProperty");
    typeof(XDefaultRootWindow) *root = dlsym(RTLD_DEFAULT,
                                             "XDefaultRootWindow");
    typeof(XFree) *xfree = dlsym(RTLD_DEFAULT, "XFree");
    if (!intern || !get || !root || !xfree) {
        return true;            /* cannot tell: trust SDL's way */
    }
    Display *d = info.info.x11.display;
    Atom check = intern(d, "_NET_SUPPORTING_WM_CHECK", True);
    Atom type = None;
    int format;
    unsigned long n = 0, after;
    unsigned char *data = NULL;
    if (check == None ||
        get(d, root(d), check, 0, 1, False, AnyPropertyType, &type,
            &format, &n, &after, &data) != Success) {
        return false;
    }
    if (data) {
        xfree(data);
    }
    return n == 1;
}

/* Fullscreen without a window manager: the window covers its display. */
static void cover_display(SdlUi *ui, bool on)
{
    SDL_Window *w = ui->win;
    if (on) {
        SDL_Rect b;
        SDL_GetWindowPosition(w, &ui->windowed.x, &ui->windowed.y);
        SDL_GetWindowSize(w, &ui->windowed.w, &ui->windowed.h);
        SDL_GetDisplayBounds(MAX(SDL_GetWindowDisplayIndex(w), 0), &b);
        SDL_SetWindowPosition(w, b.x, b.y);
        SDL_SetWindowSize(w, b.w, b.h);
    } else {
        SDL_SetWindowSize(w, ui->windowed.w, ui->windowed.h);
        SDL_SetWindowPosition(w, ui->windowed.x, ui->windowed.y);
    }
}

void sdl_ui_toggle_fullscreen(SdlUi *ui)
{
    bool on = !ui->fullscreen;
    if (ui->no_wm) {
        cover_display(ui, on);
    } else if (SDL_SetWindowFullscreen(ui->win, on
                                       ? SDL_WINDOW_FULLSCREEN_DESKTOP
                                       : 0) < 0) {
        ui_osd_post(ui->osd, UI_OSD_ERROR, "Fullscreen failed: %s",
                    SDL_GetError());
        return;
    }
    ui->fullscreen = on;
    drawable_changed(ui);
}

SdlUi *sdl_ui_open(XboxMachine *m, const UiConfig *cfg, UiOsd *osd,
                   bool fullscreen, const SdlUiCallbacks *cb, void *opaque,
                   GError **errp)
{
    if (!sdl_init(errp)) {
        return NULL;
    }
    SdlUi *ui = g_new0(SdlUi, 1);
    ui->cfg = cfg;
    ui->osd = osd;
    ui->cb = *cb;
    ui->opaque = opaque;
    if (!window_create(ui, errp)) {
        sdl_ui_close(ui);
        return NULL;
    }
    ui->no_wm = !window_manager_present(ui->win);
    font_open(ui);
    ui->render = sdl_render_start(ui->win, ui->gl, m, osd, ui->font,
                                  cfg->vsync, cfg->integer_scale, errp);
    if (!ui->render) {
        sdl_ui_close(ui);
        return NULL;
    }
    ui_osd_set_drawn(osd, ui->font != NULL);
    ui->input = sdl_input_new(m, cfg);
    ui->engine = machine_engine(m);
    ui->tick = ui_loop_timeout_add(ui->engine, EVENT_TICK_MS, event_tick,
                                   ui);
    if (fullscreen || cfg->fullscreen) {
        sdl_ui_toggle_fullscreen(ui);
    }
    return ui;
}

void sdl_ui_set_menu(SdlUi *ui, UiMenu *menu)
{
    ui->menu = menu;
    sdl_render_set_menu(ui->render, menu);
}

void sdl_ui_redraw(SdlUi *ui)
{
    sdl_render_redraw(ui->render);
}

void sdl_ui_set_title(SdlUi *ui, const char *title)
{
    SDL_SetWindowTitle(ui->win, title);
}

void sdl_ui_close(SdlUi *ui)
{
    if (!ui) {
        return;
    }
    if (ui->tick) {
        ui_loop_remove(ui->engine, ui->tick);
    }
    ui_osd_set_drawn(ui->osd, false);
    sdl_render_stop(ui->render);
    sdl_input_free(ui->input);
    if (ui->font) {
        TTF_CloseFont(ui->font);
    }
    if (TTF_WasInit()) {
        TTF_Quit();
    }
    if (ui->gl) {
        SDL_GL_DeleteContext(ui->gl);
    }
    if (ui->win) {
        SDL_DestroyWindow(ui->win);
    }
    SDL_Quit();
    g_free(ui);
}
