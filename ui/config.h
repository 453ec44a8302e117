/*
 * config.h - the player's settings: keyboard and gamepad mappings of the
 * console's gamepad, the hotkeys, and the window's and save states'
 * options, in an INI file read with GLib's GKeyFile at
 * $XDG_CONFIG_HOME/xblk/xblk.ini (docs/ui.md lists every key and its
 * default).  The file is created with the defaults on first run; a
 * malformed file or value gets one clear line each and the default for
 * what it spoils - a bad config never stops the emulator.
 *
 * No SDL here: keys are SDL key names as strings ("F5", "Left Shift",
 * "Return"; SDL_GetKeyFromName understands them) and gamepad parts SDL
 * GameController names ("a", "dpup", "leftshoulder", "lefttrigger",
 * "leftx"...), so the file reads the same whatever draws the window.
 * Main loop only.
 */
#ifndef XBLK_UI_CONFIG_H
#define XBLK_UI_CONFIG_H

#include <glib.h>
#include <stdbool.h>

/* The console gamepad's controls (hw/xbox/gamepad.h, docs/machine.md). */
typedef enum UiPadControl {
    UI_PAD_UP, UI_PAD_DOWN, UI_PAD_LEFT, UI_PAD_RIGHT,
    UI_PAD_START, UI_PAD_BACK, UI_PAD_LEFT_THUMB, UI_PAD_RIGHT_THUMB,
    UI_PAD_A, UI_PAD_B, UI_PAD_X, UI_PAD_Y, UI_PAD_BLACK, UI_PAD_WHITE,
    UI_PAD_LEFT_TRIGGER, UI_PAD_RIGHT_TRIGGER,
    UI_PAD_LX_MINUS, UI_PAD_LX_PLUS, UI_PAD_LY_MINUS, UI_PAD_LY_PLUS,
    UI_PAD_RX_MINUS, UI_PAD_RX_PLUS, UI_PAD_RY_MINUS, UI_PAD_RY_PLUS,
    UI_PAD_COUNT
} UiPadControl;

/* What a hotkey does. */
typedef enum UiAction {
    UI_ACTION_NONE,
    UI_ACTION_LOAD_SLOT1, UI_ACTION_LOAD_SLOT2,     /* F5..F8 */
    UI_ACTION_LOAD_SLOT3, UI_ACTION_LOAD_SLOT4,
    UI_ACTION_SAVE_SLOT1, UI_ACTION_SAVE_SLOT2,     /* Shift+F5..F8 */
    UI_ACTION_SAVE_SLOT3, UI_ACTION_SAVE_SLOT4,
    UI_ACTION_QUICK_SAVE,       /* F2: a new state named with the time */
    UI_ACTION_LOAD_NEWEST,      /* F3: the newest state of this title */
    UI_ACTION_UNDO_LOAD,        /* F4 */
    UI_ACTION_UNDO_SAVE,        /* Shift+F4 */
    UI_ACTION_MENU,             /* F1 (Esc closes) */
    UI_ACTION_FULLSCREEN,       /* F11 */
    UI_ACTION_QUIT,
    UI_ACTION_COUNT
} UiAction;

#define UI_MAX_BINDINGS 4       /* keys per control or action */

typedef struct UiConfig {
    /* [keyboard]: SDL key names per pad control (arrows, Z, X...). */
    char *pad_keys[UI_PAD_COUNT][UI_MAX_BINDINGS];
    /* [gamepad]: SDL GameController button/axis names per control. */
    char *pad_buttons[UI_PAD_COUNT][UI_MAX_BINDINGS];
    /* [hotkeys]: key chords ("F5", "Shift+F5", "Ctrl+Q"). */
    char *hotkeys[UI_ACTION_COUNT][UI_MAX_BINDINGS];
    /* [hotkeys] menu-combo: gamepad buttons held together open the menu
     * ("back+start"). */
    char *menu_combo;
    /* [window] */
    bool fullscreen;
    bool integer_scale;
    bool vsync;
    int scale;                  /* initial window size: 640x480 * scale */
    /* [states] */
    bool resume_on_start;       /* offer the resume state of the title */
    bool save_on_exit;          /* quitting saves a hidden resume state */
    bool confirm_overwrite;
    bool confirm_delete;
    bool rollback_warning;      /* warn before a load undoes disk writes */
    int osd_seconds;            /* how long a message stays */
} UiConfig;

/* Longest key name, chord, button name or menu combination accepted, in
 * bytes; longer values in the file get a warning and the default. */
#define UI_CONFIG_MAX_VALUE 64

/* The built-in defaults (docs/ui.md).  cfg may be uninitialised: it is
 * overwritten, not freed (ui_config_clear() first to reuse one). */
void ui_config_defaults(UiConfig *cfg);
/* Frees the strings and zeroes cfg. */
void ui_config_clear(UiConfig *cfg);
/* Every field equal (bindings compared as stored). */
bool ui_config_equal(const UiConfig *a, const UiConfig *b);

/* $XDG_CONFIG_HOME/xblk/xblk.ini (g_get_user_config_dir()). */
char *ui_config_default_path(void);

/*
 * Reads path into *cfg (defaults first, then what the file sets).  A
 * missing file is created with the defaults (and their comments); a file
 * that does not parse, an unknown key, a bad value: one line each in
 * warnings ("xblk.ini:12: ...") and the default kept.  False only when
 * a missing file cannot be created (*errp set; *cfg has the defaults).
 * cfg is overwritten as by ui_config_defaults(); warnings may be NULL.
 */
bool ui_config_load(const char *path, UiConfig *cfg, GString *warnings,
                    GError **errp);

/*
 * Writes cfg to path with a comment above each group and key, atomically
 * (temporary file, fsync, rename; the folder is created 0700 if missing),
 * replacing what was there: for a menu that changes a binding.  Loading
 * never calls this on an existing file.
 */
bool ui_config_save(const char *path, const UiConfig *cfg, GError **errp);

/*
 * The canonical form of a key chord: modifiers first, in the order Shift,
 * Ctrl, Alt, GUI, spelt so, then the key ("ctrl + shift+f5" ->
 * "Shift+Ctrl+F5"; one-letter keys and F1..F24 upper case, other key
 * names as written - SDL compares them without case).  NULL with *errp
 * for an empty part, an unknown modifier, a control character or more
 * than UI_CONFIG_MAX_VALUE bytes.  The window builds chords with it.
 */
char *ui_config_normalize_chord(const char *chord, GError **errp);

/* The action a key chord triggers ("Shift+F5"; any case and modifier
 * order), or UI_ACTION_NONE.  Bound to several, the first in enum order. */
UiAction ui_config_action_for(const UiConfig *cfg, const char *chord);
/* The first chord bound to action (for the menu's help), or NULL. */
const char *ui_config_chord_of(const UiConfig *cfg, UiAction action);
const char *ui_action_name(UiAction action);     /* INI key: "load-slot1" */
const char *ui_pad_control_name(UiPadControl c); /* INI key: "up", "a" */
/* The reverse (INI key names, any case); UI_ACTION_NONE / UI_PAD_COUNT
 * when unknown. */
UiAction ui_action_from_name(const char *name);
UiPadControl ui_pad_control_from_name(const char *name);

#endif
