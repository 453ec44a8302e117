/*
 * input.c - the player's keyboard and SDL GameControllers as the
 * console's gamepad (hw/xbox/gamepad.h, docs/machine.md "Gamepad").
 *
 * Owns: the key and controller bindings resolved once from the config
 * ([keyboard]: SDL key names, [gamepad]: GameController button or axis
 * names; the menu combo), which keys are held, the open controllers.  Each control gets a
 * level 0..1 (the strongest of its bindings); buttons are pressed at 0.5,
 * triggers and stick halves scale with it.  The state goes to the machine
 * only when it changed.  Main loop thread (SDL's events are pumped there).
 */
#include "ui/sdl/sdl-ui.h"
#include <SDL.h>
#include <string.h>

#define PAD_BUTTON_CONTROLS (UI_PAD_WHITE + 1)  /* bits 0..13 */

/* One [gamepad] binding: a button, or one side of an axis. */
typedef struct PadBinding {
    bool is_axis;
    int index;                  /* SDL_GameControllerButton / Axis */
    int sign;                   /* axis side: +1 or -1 */
} PadBinding;

struct SdlInput {
    XboxMachine *m;
    SDL_Keycode keys[UI_PAD_COUNT][UI_MAX_BINDINGS];
    PadBinding pads[UI_PAD_COUNT][UI_MAX_BINDINGS];
    int n_pads[UI_PAD_COUNT];
    bool held[UI_PAD_COUNT][UI_MAX_BINDINGS];   /* keys down */
    GPtrArray *controllers;     /* SDL_GameController * */
    GamepadState last;
    int combo[UI_MAX_BINDINGS * 2];     /* SDL_GameControllerButton */
    int n_combo;
};

/* The side of an axis a control means when its binding names none. */
static int control_sign(UiPadControl c)
{
    switch (c) {
    case UI_PAD_LX_MINUS: case UI_PAD_LY_MINUS:
    case UI_PAD_RX_MINUS: case UI_PAD_RY_MINUS:
        return -1;
    default:
        return 1;
    }
}

/* "a", "dpup", "leftx", "+lefty", "-rightx", "lefty-": a binding. */
static bool parse_pad_binding(const char *name, UiPadControl c,
                              PadBinding *out)
{
    g_autofree char *s = g_strstrip(g_strdup(name));
    size_t len = strlen(s);
    int sign = 0;
    if (len && (s[0] == '+' || s[0] == '-')) {
        sign = s[0] == '-' ? -1 : 1;
        memmove(s, s + 1, len--);
    } else if (len && (s[len - 1] == '+' || s[len - 1] == '-')) {
        sign = s[len - 1] == '-' ? -1 : 1;
        s[--len] = 0;
    }
    SDL_GameControllerButton b = SDL_GameControllerGetButtonFromString(s);
    if (b != SDL_CONTROLLER_BUTTON_INVALID && !sign) {
        *out = (PadBinding){ .is_axis = false, .index = b };
        return true;
    }
    SDL_GameControllerAxis a = SDL_GameControllerGetAxisFromString(s);
    if (a == SDL_CONTROLLER_AXIS_INVALID) {
        return false;
    }
    *out = (PadBinding){ .is_axis = true, .index = a,
                         .sign = sign ? sign : control_sign(c) };
    return true;
}

/* "back+start" as SDL buttons (the config checked the names). */
static void parse_combo(SdlInput *in, const char *combo)
{
    g_auto(GStrv) parts = g_strsplit(combo ? combo : "", "+", -1);
    for (char **p = parts; *p && in->n_combo < G_N_ELEMENTS(in->combo);
         p++) {
        SDL_GameControllerButton b = SDL_GameControllerGetButtonFromString(
            g_strstrip(*p));
        if (b != SDL_CONTROLLER_BUTTON_INVALID) {
            in->combo[in->n_combo++] = b;
        }
    }
}

SdlInput *sdl_input_new(XboxMachine *m, const UiConfig *cfg)
{
    SdlInput *in = g_new0(SdlInput, 1);
    in->m = m;
    in->controllers = g_ptr_array_new();
    parse_combo(in, cfg->menu_combo);
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        for (int i = 0; i < UI_MAX_BINDINGS; i++) {
            const char *k = cfg->pad_keys[c][i];
            in->keys[c][i] = k && *k ? SDL_GetKeyFromName(k) : SDLK_UNKNOWN;
            const char *p = cfg->pad_buttons[c][i];
            if (p && *p &&
                parse_pad_binding(p, c, &in->pads[c][in->n_pads[c]])) {
                in->n_pads[c]++;
            }
        }
    }
    return in;
}

void sdl_input_free(SdlInput *in)
{
    if (!in) {
        return;
    }
    for (guint i = 0; i < in->controllers->len; i++) {
        SDL_GameControllerClose(g_ptr_array_index(in->controllers, i));
    }
    g_ptr_array_unref(in->controllers);
    g_free(in);
}

/* 0..1: how far a controller pushes binding b. */
static float pad_level(SDL_GameController *gc, const PadBinding *b)
{
    if (!b->is_axis) {
        return SDL_GameControllerGetButton(gc, b->index) ? 1.0f : 0.0f;
    }
    float v = SDL_GameControllerGetAxis(gc, b->index) * b->sign / 32767.0f;
    return CLAMP(v, 0.0f, 1.0f);
}

static float control_level(SdlInput *in, int c)
{
    float level = 0;
    for (int i = 0; i < UI_MAX_BINDINGS; i++) {
        if (in->held[c][i]) {
            level = 1;
        }
    }
    for (guint g = 0; g < in->controllers->len; g++) {
        for (int i = 0; i < in->n_pads[c]; i++) {
            level = MAX(level, pad_level(g_ptr_array_index(in->controllers, g),
                                         &in->pads[c][i]));
        }
    }
    return level;
}

static int16_t stick(float minus, float plus)
{
    return (int16_t)((plus - minus) * 32767.0f);
}

/* Recomputes the gamepad and hands it to the machine if it changed. */
static void input_update(SdlInput *in)
{
    float lv[UI_PAD_COUNT];
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        lv[c] = control_level(in, c);
    }
    GamepadState st = { 0 };
    for (int c = 0; c < PAD_BUTTON_CONTROLS; c++) {
        if (lv[c] >= 0.5f) {
            st.buttons |= 1u << c;
        }
    }
    st.left_trigger = (uint8_t)(lv[UI_PAD_LEFT_TRIGGER] * 255.0f);
    st.right_trigger = (uint8_t)(lv[UI_PAD_RIGHT_TRIGGER] * 255.0f);
    st.lx = stick(lv[UI_PAD_LX_MINUS], lv[UI_PAD_LX_PLUS]);
    st.ly = stick(lv[UI_PAD_LY_MINUS], lv[UI_PAD_LY_PLUS]);
    st.rx = stick(lv[UI_PAD_RX_MINUS], lv[UI_PAD_RX_PLUS]);
    st.ry = stick(lv[UI_PAD_RY_MINUS], lv[UI_PAD_RY_PLUS]);
    if (memcmp(&st, &in->last, sizeof(st))) {
        in->last = st;
        machine_set_input(in->m, &st);
    }
}

bool sdl_input_key(SdlInput *in, int keycode, bool down)
{
    bool mapped = false;
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        for (int i = 0; i < UI_MAX_BINDINGS; i++) {
            if (in->keys[c][i] != SDLK_UNKNOWN && in->keys[c][i] == keycode) {
                in->held[c][i] = down;
                mapped = true;
            }
        }
    }
    if (mapped) {
        input_update(in);
    }
    return mapped;
}

void sdl_input_release_keys(SdlInput *in)
{
    memset(in->held, 0, sizeof(in->held));
    input_update(in);
}

static void controller_added(SdlInput *in, int device_index)
{
    SDL_JoystickID id = SDL_JoystickGetDeviceInstanceID(device_index);
    if (SDL_GameControllerFromInstanceID(id)) {
        return;                 /* already open (startup sends these too) */
    }
    SDL_GameController *gc = SDL_GameControllerOpen(device_index);
    if (gc) {
        g_ptr_array_add(in->controllers, gc);
    }
}

static void controller_removed(SdlInput *in, SDL_JoystickID id)
{
    SDL_GameController *gc = SDL_GameControllerFromInstanceID(id);
    if (gc && g_ptr_array_remove(in->controllers, gc)) {
        SDL_GameControllerClose(gc);
    }
}

void sdl_input_controller_event(SdlInput *in, const SDL_Event *ev)
{
    switch (ev->type) {
    case SDL_CONTROLLERDEVICEADDED:
        controller_added(in, ev->cdevice.which);
        break;
    case SDL_CONTROLLERDEVICEREMOVED:
        controller_removed(in, ev->cdevice.which);
        break;
    default:
        break;
    }
    input_update(in);
}

bool sdl_input_menu_combo(SdlInput *in, const SDL_Event *ev)
{
    if (ev->type != SDL_CONTROLLERBUTTONDOWN || !in->n_combo) {
        return false;
    }
    SDL_GameController *gc =
        SDL_GameControllerFromInstanceID(ev->cbutton.which);
    bool part = false;
    for (int i = 0; gc && i < in->n_combo; i++) {
        if (!SDL_GameControllerGetButton(gc, in->combo[i])) {
            return false;
        }
        part |= in->combo[i] == ev->cbutton.button;
    }
    return gc && part;
}
