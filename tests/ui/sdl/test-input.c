/*
 * test-input.c - the player's controls as the console's gamepad
 * (ui/sdl/input.c) through SDL's real GameController layer: a virtual
 * controller (SDL_JoystickAttachVirtualEx, the GameController type, so
 * SDL maps it as it maps an XInput pad) is plugged in, its buttons and
 * axes are moved, SDL's events go to the input module as the window
 * hands them over, and the machine's live input (machine_get_input,
 * what the next vblank latches) is checked.  Keyboard chords go the same
 * way with SDL key codes.  The machine is a real one (the reference
 * guest), not started: nothing here needs a display.
 *
 * Covers: the default [gamepad] bindings (face buttons, d-pad, shoulders
 * as white/black, triggers scaled 0..255, sticks with the console's Y
 * up), a remapped button from an INI file, two bindings of one control
 * (keyboard and pad: the stronger wins, releasing one keeps the other),
 * unplugging the controller releases what it held, an unbound key is
 * not taken, and the menu combo (default and from the INI file) is seen
 * once, when its last button goes down.
 */
#include "tests/hw/xbox/guest-path.h"
#include "ui/config.h"
#include "ui/sdl/sdl-ui.h"
#include <SDL.h>
#include <glib/gstdio.h>
#include <string.h>

static char *tmpdir;

typedef struct Rig {
    XblkEngine *engine;
    XboxMachine *m;
    UiConfig cfg;
    SdlInput *in;
    int device;                 /* the virtual controller's index */
    SDL_Joystick *js;           /* ... opened, to move its controls */
} Rig;

/* SDL's events so far, to the input module as the window hands them. */
static void pump(Rig *r)
{
    SDL_Event ev;
    SDL_JoystickUpdate();
    SDL_PumpEvents();
    while (SDL_PollEvent(&ev)) {
        switch (ev.type) {
        case SDL_CONTROLLERDEVICEADDED:
        case SDL_CONTROLLERDEVICEREMOVED:
        case SDL_CONTROLLERBUTTONDOWN:
        case SDL_CONTROLLERBUTTONUP:
        case SDL_CONTROLLERAXISMOTION:
            sdl_input_controller_event(r->in, &ev);
            break;
        default:
            break;
        }
    }
}

static GamepadState pad(Rig *r)
{
    GamepadState st;
    pump(r);
    machine_get_input(r->m, &st);
    return st;
}

static void plug(Rig *r)
{
    SDL_VirtualJoystickDesc desc = {
        .version = SDL_VIRTUAL_JOYSTICK_DESC_VERSION,
        .type = SDL_JOYSTICK_TYPE_GAMECONTROLLER,
        .naxes = SDL_CONTROLLER_AXIS_MAX,
        .nbuttons = SDL_CONTROLLER_BUTTON_MAX,
        .name = "xblk test controller",
    };
    r->device = SDL_JoystickAttachVirtualEx(&desc);
    g_assert_cmpint(r->device, >=, 0);
    g_assert_true(SDL_IsGameController(r->device));
    r->js = SDL_JoystickOpen(r->device);
    g_assert_nonnull(r->js);
    /* A trigger's raw axis spans -32768 (released) .. 32767 (pressed):
     * SDL maps it to the controller's 0 .. 32767. */
    SDL_JoystickSetVirtualAxis(r->js, SDL_CONTROLLER_AXIS_TRIGGERLEFT,
                               -32768);
    SDL_JoystickSetVirtualAxis(r->js, SDL_CONTROLLER_AXIS_TRIGGERRIGHT,
                               -32768);
    pump(r);                    /* DEVICEADDED: the module opens it */
}

static Rig rig_new(const char *ini)
{
    GError *err = NULL;
    XblkError *xerr = NULL;
    Rig r = { 0 };
    g_autoptr(GString) warnings = g_string_new(NULL);
    ui_config_defaults(&r.cfg);
    if (ini) {
        g_autofree char *path = g_build_filename(tmpdir, "xblk.ini", NULL);
        g_assert_true(g_file_set_contents(path, ini, -1, NULL));
        ui_config_clear(&r.cfg);
        g_assert_true(ui_config_load(path, &r.cfg, warnings, &err));
        g_assert_no_error(err);
        g_assert_cmpstr(warnings->str, ==, "");
    }
    XblkEngineOptions eo = {
        .size = sizeof(eo), .glib_context = g_main_context_default(),
    };
    r.engine = xblk_engine_new(&eo, &xerr);
    g_assert_null(xerr);
    MachineConfig mc = { .engine = r.engine, .ram_size = MACHINE_RAM_64M };
    mc.kernel_path = test_build_path("guest/xboxguest.elf");
    r.m = machine_new(&mc, &err);
    g_assert_no_error(err);
    r.in = sdl_input_new(r.m, &r.cfg);
    plug(&r);
    return r;
}

static void rig_free(Rig *r)
{
    if (r->js) {
        SDL_JoystickClose(r->js);
    }
    SDL_JoystickDetachVirtual(r->device);
    pump(r);
    sdl_input_free(r->in);
    machine_free(r->m);
    xblk_engine_free(r->engine);
    ui_config_clear(&r->cfg);
}

#define BIT(c) (1u << (c))

static void test_defaults(void)
{
    Rig r = rig_new(NULL);
    GamepadState st = pad(&r), rest = { 0 };
    g_assert_cmpmem(&st, sizeof(st), &rest, sizeof(rest));

    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_A, 1);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_DPAD_UP, 1);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_LEFTSHOULDER,
                                 1);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_START, 1);
    st = pad(&r);
    g_assert_cmpuint(st.buttons, ==, BIT(UI_PAD_A) | BIT(UI_PAD_UP) |
                     BIT(UI_PAD_WHITE) | BIT(UI_PAD_START));

    /* Triggers scale; sticks: SDL's Y grows downward, the console's up. */
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_TRIGGERRIGHT,
                               32767);
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_TRIGGERLEFT, 0);
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_LEFTX, -32768);
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_LEFTY, -32768);
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_RIGHTY, 16384);
    st = pad(&r);
    g_assert_cmpuint(st.right_trigger, ==, 255);
    g_assert_cmpuint(st.left_trigger, >=, 126);
    g_assert_cmpuint(st.left_trigger, <=, 129);
    g_assert_cmpint(st.lx, ==, -32767);
    g_assert_cmpint(st.ly, ==, 32767);          /* pushed up */
    g_assert_cmpint(st.ry, <=, -16380);         /* half down */
    g_assert_cmpint(st.ry, >=, -16390);
    g_assert_cmpint(st.rx, ==, 0);

    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_A, 0);
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_LEFTX, 0);
    st = pad(&r);
    g_assert_cmpuint(st.buttons & BIT(UI_PAD_A), ==, 0);
    g_assert_cmpint(st.lx, ==, 0);
    rig_free(&r);
}

static void test_remapped_from_ini(void)
{
    /* The console's A on the controller's B (and on K), its B on A. */
    Rig r = rig_new("[gamepad]\na = b\nb = a\n[keyboard]\na = K\n");
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_B, 1);
    g_assert_cmpuint(pad(&r).buttons, ==, BIT(UI_PAD_A));
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_B, 0);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_A, 1);
    g_assert_cmpuint(pad(&r).buttons, ==, BIT(UI_PAD_B));
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_A, 0);
    g_assert_cmpuint(pad(&r).buttons, ==, 0);

    /* The keyboard's binding and the pad's: either holds the button. */
    g_assert_true(sdl_input_key(r.in, SDLK_k, true));
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_B, 1);
    g_assert_cmpuint(pad(&r).buttons, ==, BIT(UI_PAD_A));
    g_assert_true(sdl_input_key(r.in, SDLK_k, false));
    g_assert_cmpuint(pad(&r).buttons, ==, BIT(UI_PAD_A));
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_B, 0);
    g_assert_cmpuint(pad(&r).buttons, ==, 0);

    /* A key bound to nothing is not taken (the window passes it on). */
    g_assert_false(sdl_input_key(r.in, SDLK_F12, true));
    rig_free(&r);
}

/* The button-down events of SDL's queue that complete the menu combo. */
static int combos(Rig *r)
{
    SDL_Event ev;
    int n = 0;
    SDL_JoystickUpdate();
    SDL_PumpEvents();
    while (SDL_PollEvent(&ev)) {
        n += sdl_input_menu_combo(r->in, &ev);
        sdl_input_controller_event(r->in, &ev);
    }
    return n;
}

static void test_menu_combo(void)
{
    Rig r = rig_new(NULL);                      /* back+start */
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_BACK, 1);
    g_assert_cmpint(combos(&r), ==, 0);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_START, 1);
    g_assert_cmpint(combos(&r), ==, 1);
    /* Held, another button is not the combo again. */
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_A, 1);
    g_assert_cmpint(combos(&r), ==, 0);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_START, 0);
    g_assert_cmpint(combos(&r), ==, 0);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_START, 1);
    g_assert_cmpint(combos(&r), ==, 1);
    rig_free(&r);

    r = rig_new("[hotkeys]\nmenu-combo = guide\n");
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_BACK, 1);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_START, 1);
    g_assert_cmpint(combos(&r), ==, 0);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_GUIDE, 1);
    g_assert_cmpint(combos(&r), ==, 1);
    rig_free(&r);
}

static void test_unplug_releases(void)
{
    Rig r = rig_new(NULL);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_X, 1);
    SDL_JoystickSetVirtualAxis(r.js, SDL_CONTROLLER_AXIS_TRIGGERLEFT,
                               32767);
    GamepadState st = pad(&r);
    g_assert_cmpuint(st.buttons, ==, BIT(UI_PAD_X));
    g_assert_cmpuint(st.left_trigger, ==, 255);

    SDL_JoystickClose(r.js);
    r.js = NULL;
    g_assert_cmpint(SDL_JoystickDetachVirtual(r.device), ==, 0);
    st = pad(&r);                               /* DEVICEREMOVED */
    g_assert_cmpuint(st.buttons, ==, 0);
    g_assert_cmpuint(st.left_trigger, ==, 0);

    /* Plugged in again: it works as before. */
    plug(&r);
    SDL_JoystickSetVirtualButton(r.js, SDL_CONTROLLER_BUTTON_Y, 1);
    g_assert_cmpuint(pad(&r).buttons, ==, BIT(UI_PAD_Y));
    rig_free(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* No window, no sound: only the joystick and controller layers. */
    g_setenv("SDL_VIDEODRIVER", "dummy", TRUE);
    if (SDL_Init(SDL_INIT_GAMECONTROLLER) < 0) {
        g_test_skip_printf("SDL's controller layer: %s", SDL_GetError());
        return g_test_run();
    }
    tmpdir = g_dir_make_tmp("xblk-test-input-XXXXXX", NULL);
    g_test_add_func("/ui/input/defaults", test_defaults);
    g_test_add_func("/ui/input/remapped-from-ini", test_remapped_from_ini);
    g_test_add_func("/ui/input/menu-combo", test_menu_combo);
    g_test_add_func("/ui/input/unplug-releases", test_unplug_releases);
    int ret = g_test_run();
    SDL_Quit();
    g_autofree char *ini = g_build_filename(tmpdir, "xblk.ini", NULL);
    g_unlink(ini);
    g_rmdir(tmpdir);
    return ret;
}
