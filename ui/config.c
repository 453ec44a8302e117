/*
 * config.c - the player's settings file, $XDG_CONFIG_HOME/xblk/xblk.ini
 * (ui/config.h; docs/ui.md, "Configuration", lists every key).
 *
 * Owns: the built-in defaults, the file's layout (groups, key names and
 * the comment above each), the checking of every value, and writing the
 * file atomically.  Called on the main loop by the front end at start
 * (ui_config_load) and by the menu when the player changes a setting
 * (ui_config_save); ui_config_action_for() runs on every key press.
 *
 * Invariants:
 * - A UiConfig always holds usable values: every field starts from its
 *   default, and a value from the file replaces it only when the whole
 *   value is valid.  A bad file costs warnings, never the emulator.
 * - Loading never writes to a file that exists: only a missing file is
 *   created, and with RENAME_NOREPLACE, so a file the player saves at the
 *   same moment wins.
 * - Chords in cfg->hotkeys are stored in canonical form
 *   (ui_config_normalize_chord), so a lookup is one normalisation and
 *   case-insensitive compares; defaults are canonical, so defaults written
 *   and read back are equal.
 * - Each warning is one line: quoted values are cut short and control
 *   characters shown as '?', and after MAX_WARNINGS lines one more says
 *   how many were left out - a 10 MB file of junk gives a short report.
 *
 * The file goes through a line pass of our own before GKeyFile sees it:
 * GKeyFile refuses a whole file for one bad line and keeps no line
 * numbers, while a player wants the rest of the file honoured and told
 * where the problem is.  The pass drops bad lines with a warning and
 * remembers the line of each group and key.
 */
#include "ui/config.h"
#include "hw/error.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_FILE   (1024 * 1024) /* a full file is ~5 KiB */
#define MAX_WARNINGS      40
#define QUOTE_MAX         40            /* chars of a value in a message */

/* ---- Tables: names, meanings, defaults ---- */

typedef struct PadInfo {
    const char *name;       /* INI key in [keyboard] and [gamepad] */
    const char *what;       /* the comment above the key */
    const char *key;        /* default SDL key name (xemu's layout) */
    const char *button;     /* default SDL GameController name */
} PadInfo;

/*
 * Keyboard defaults are xemu's (config_spec.yml,
 * keyboard_controller_scancode_map): letters A/B/X/Y, arrows, Return,
 * Backspace, 1/2 white/black, 3/4 stick clicks, ESDF and IJKL for the
 * sticks, W/O for the triggers - the layout Xbox players already know.
 * Gamepad: white and black sit on the shoulder buttons, as in xemu.  The
 * console's stick Y grows upward (as the Xbox's), SDL's downward, hence
 * "up" is the negative half of lefty.
 */
static const PadInfo pad_info[UI_PAD_COUNT] = {
    [UI_PAD_UP] = { "up", "d-pad up", "Up", "dpup" },
    [UI_PAD_DOWN] = { "down", "d-pad down", "Down", "dpdown" },
    [UI_PAD_LEFT] = { "left", "d-pad left", "Left", "dpleft" },
    [UI_PAD_RIGHT] = { "right", "d-pad right", "Right", "dpright" },
    [UI_PAD_START] = { "start", "Start button", "Return", "start" },
    [UI_PAD_BACK] = { "back", "Back button", "Backspace", "back" },
    [UI_PAD_LEFT_THUMB] = { "left-thumb", "left stick pressed in", "3",
                            "leftstick" },
    [UI_PAD_RIGHT_THUMB] = { "right-thumb", "right stick pressed in", "4",
                             "rightstick" },
    [UI_PAD_A] = { "a", "A button", "A", "a" },
    [UI_PAD_B] = { "b", "B button", "B", "b" },
    [UI_PAD_X] = { "x", "X button", "X", "x" },
    [UI_PAD_Y] = { "y", "Y button", "Y", "y" },
    [UI_PAD_BLACK] = { "black", "black button", "2", "rightshoulder" },
    [UI_PAD_WHITE] = { "white", "white button", "1", "leftshoulder" },
    [UI_PAD_LEFT_TRIGGER] = { "left-trigger",
                              "left trigger (a key presses it fully)", "W",
                              "lefttrigger" },
    [UI_PAD_RIGHT_TRIGGER] = { "right-trigger",
                               "right trigger (a key presses it fully)", "O",
                               "righttrigger" },
    [UI_PAD_LX_MINUS] = { "left-stick-left", "left stick left (X -32768)",
                          "S", "-leftx" },
    [UI_PAD_LX_PLUS] = { "left-stick-right", "left stick right (X +32767)",
                         "F", "+leftx" },
    [UI_PAD_LY_MINUS] = { "left-stick-down", "left stick down (Y -32768)",
                          "D", "+lefty" },
    [UI_PAD_LY_PLUS] = { "left-stick-up", "left stick up (Y +32767)",
                         "E", "-lefty" },
    [UI_PAD_RX_MINUS] = { "right-stick-left", "right stick left (X -32768)",
                          "J", "-rightx" },
    [UI_PAD_RX_PLUS] = { "right-stick-right",
                         "right stick right (X +32767)", "L", "+rightx" },
    [UI_PAD_RY_MINUS] = { "right-stick-down", "right stick down (Y -32768)",
                          "K", "+righty" },
    [UI_PAD_RY_PLUS] = { "right-stick-up", "right stick up (Y +32767)",
                         "I", "-righty" },
};

typedef struct ActionInfo {
    const char *name;       /* INI key in [hotkeys] */
    const char *what;
    const char *chord;      /* default, canonical */
} ActionInfo;

/* Issue #13: xemu's F5-F8 / Shift+F5-F8, the rest ours. */
static const ActionInfo action_info[UI_ACTION_COUNT] = {
    [UI_ACTION_NONE] = { "none", NULL, NULL },
    [UI_ACTION_LOAD_SLOT1] = { "load-slot1",
                               "load the state in slot 1 (per title)", "F5" },
    [UI_ACTION_LOAD_SLOT2] = { "load-slot2", "load slot 2", "F6" },
    [UI_ACTION_LOAD_SLOT3] = { "load-slot3", "load slot 3", "F7" },
    [UI_ACTION_LOAD_SLOT4] = { "load-slot4", "load slot 4", "F8" },
    [UI_ACTION_SAVE_SLOT1] = { "save-slot1",
                               "save to slot 1 (the replaced state is kept "
                               "for undo save)", "Shift+F5" },
    [UI_ACTION_SAVE_SLOT2] = { "save-slot2", "save to slot 2", "Shift+F6" },
    [UI_ACTION_SAVE_SLOT3] = { "save-slot3", "save to slot 3", "Shift+F7" },
    [UI_ACTION_SAVE_SLOT4] = { "save-slot4", "save to slot 4", "Shift+F8" },
    [UI_ACTION_QUICK_SAVE] = { "quick-save",
                               "save a new state named with the time", "F2" },
    [UI_ACTION_LOAD_NEWEST] = { "load-newest",
                                "load the newest state of this title", "F3" },
    [UI_ACTION_UNDO_LOAD] = { "undo-load",
                              "go back to the moment before the last load",
                              "F4" },
    [UI_ACTION_UNDO_SAVE] = { "undo-save",
                              "bring back the state the last save replaced",
                              "Shift+F4" },
    [UI_ACTION_MENU] = { "menu", "open the save-state menu (Esc closes it)",
                         "F1" },
    [UI_ACTION_FULLSCREEN] = { "fullscreen", "toggle fullscreen", "F11" },
    [UI_ACTION_QUIT] = { "quit", "quit the emulator", "Ctrl+Q" },
};

#define DEFAULT_MENU_COMBO "back+start"
#define DEFAULT_SCALE      2
#define DEFAULT_OSD        3
#define SCALE_MAX          8
#define OSD_MAX            60

/* SDL2's GameController names (SDL_GameControllerGetStringForButton /
 * ...ForAxis): a closed set, so a typo gets a warning here rather than a
 * dead control.  Axes may carry a '+' or '-' for one half, as in SDL's
 * mapping strings (SDL_GameControllerGetAxisFromString skips it). */
static const char *const sdl_buttons[] = {
    "a", "b", "x", "y", "back", "guide", "start", "leftstick", "rightstick",
    "leftshoulder", "rightshoulder", "dpup", "dpdown", "dpleft", "dpright",
    "misc1", "paddle1", "paddle2", "paddle3", "paddle4", "touchpad",
};
static const char *const sdl_axes[] = {
    "leftx", "lefty", "rightx", "righty", "lefttrigger", "righttrigger",
};

typedef struct ModInfo {
    const char *name;
    unsigned bit;
} ModInfo;

/* Canonical order first; "Control" is accepted as Ctrl. */
static const ModInfo mod_info[] = {
    { "Shift", 1 }, { "Ctrl", 2 }, { "Alt", 4 }, { "GUI", 8 },
    { "Control", 2 },
};
#define MOD_CANONICAL 4

static const char *const group_names[] = {
    "keyboard", "gamepad", "hotkeys", "window", "states",
};

/* ---- Names ---- */

const char *ui_action_name(UiAction action)
{
    if ((unsigned)action >= UI_ACTION_COUNT) {
        return NULL;
    }
    return action_info[action].name;
}

const char *ui_pad_control_name(UiPadControl c)
{
    return (unsigned)c < UI_PAD_COUNT ? pad_info[c].name : NULL;
}

UiAction ui_action_from_name(const char *name)
{
    for (int a = UI_ACTION_NONE + 1; name && a < UI_ACTION_COUNT; a++) {
        if (!g_ascii_strcasecmp(name, action_info[a].name)) {
            return a;
        }
    }
    return UI_ACTION_NONE;
}

UiPadControl ui_pad_control_from_name(const char *name)
{
    for (int c = 0; name && c < UI_PAD_COUNT; c++) {
        if (!g_ascii_strcasecmp(name, pad_info[c].name)) {
            return c;
        }
    }
    return UI_PAD_COUNT;
}

/* ---- Defaults, clear, compare ---- */

static void set_one(char *slot[UI_MAX_BINDINGS], const char *value)
{
    slot[0] = value ? g_strdup(value) : NULL;
}

void ui_config_defaults(UiConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        set_one(cfg->pad_keys[c], pad_info[c].key);
        set_one(cfg->pad_buttons[c], pad_info[c].button);
    }
    for (int a = 0; a < UI_ACTION_COUNT; a++) {
        set_one(cfg->hotkeys[a], action_info[a].chord);
    }
    cfg->menu_combo = g_strdup(DEFAULT_MENU_COMBO);
    cfg->fullscreen = false;
    cfg->integer_scale = false;
    cfg->vsync = true;
    cfg->scale = DEFAULT_SCALE;
    cfg->resume_on_start = false;   /* opt-in (issue #13) */
    cfg->save_on_exit = false;      /* opt-in (issue #13) */
    cfg->confirm_overwrite = true;
    cfg->confirm_delete = true;
    cfg->rollback_warning = true;
    cfg->osd_seconds = DEFAULT_OSD;
}

static void free_slots(char *slot[UI_MAX_BINDINGS])
{
    for (int i = 0; i < UI_MAX_BINDINGS; i++) {
        g_clear_pointer(&slot[i], g_free);
    }
}

void ui_config_clear(UiConfig *cfg)
{
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        free_slots(cfg->pad_keys[c]);
        free_slots(cfg->pad_buttons[c]);
    }
    for (int a = 0; a < UI_ACTION_COUNT; a++) {
        free_slots(cfg->hotkeys[a]);
    }
    g_free(cfg->menu_combo);
    memset(cfg, 0, sizeof(*cfg));
}

static bool slots_equal(char *const a[UI_MAX_BINDINGS],
                        char *const b[UI_MAX_BINDINGS])
{
    for (int i = 0; i < UI_MAX_BINDINGS; i++) {
        if (g_strcmp0(a[i], b[i])) {
            return false;
        }
    }
    return true;
}

bool ui_config_equal(const UiConfig *a, const UiConfig *b)
{
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        if (!slots_equal(a->pad_keys[c], b->pad_keys[c]) ||
            !slots_equal(a->pad_buttons[c], b->pad_buttons[c])) {
            return false;
        }
    }
    for (int i = 0; i < UI_ACTION_COUNT; i++) {
        if (!slots_equal(a->hotkeys[i], b->hotkeys[i])) {
            return false;
        }
    }
    return !g_strcmp0(a->menu_combo, b->menu_combo) &&
        a->fullscreen == b->fullscreen &&
        a->integer_scale == b->integer_scale && a->vsync == b->vsync &&
        a->scale == b->scale && a->resume_on_start == b->resume_on_start &&
        a->save_on_exit == b->save_on_exit &&
        a->confirm_overwrite == b->confirm_overwrite &&
        a->confirm_delete == b->confirm_delete &&
        a->rollback_warning == b->rollback_warning &&
        a->osd_seconds == b->osd_seconds;
}

char *ui_config_default_path(void)
{
    return g_build_filename(g_get_user_config_dir(), "xblk", "xblk.ini",
                            NULL);
}

/* ---- Checking names and chords ---- */

/* For messages: at most QUOTE_MAX characters, control characters and
 * invalid UTF-8 as '?', so a warning stays one readable line. */
static char *clip(const char *s, gssize len)
{
    GString *out = g_string_new(NULL);
    const char *p = s, *end = len < 0 ? s + strlen(s) : s + len;
    int n = 0;

    while (p < end && n < QUOTE_MAX) {
        gunichar c = g_utf8_get_char_validated(p, end - p);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            g_string_append_c(out, '?');
            p++;
        } else {
            if (g_unichar_isprint(c) || c == ' ') {
                g_string_append_unichar(out, c);
            } else {
                g_string_append_c(out, '?');
            }
            p = g_utf8_next_char(p);
        }
        n++;
    }
    g_string_append(out, p < end ? "..." : "");
    return g_string_free(out, false);
}

/* clip() in single quotes. */
static char *quote(const char *s, gssize len)
{
    g_autofree char *c = clip(s, len);
    return g_strdup_printf("'%s'", c);
}

/* Non-empty, at most UI_CONFIG_MAX_VALUE bytes, valid UTF-8, printable. */
static bool check_text(const char *s, GError **errp)
{
    size_t len = strlen(s);

    if (!len) {
        hw_error_set(errp, "empty name");
        return false;
    }
    if (len > UI_CONFIG_MAX_VALUE) {
        g_autofree char *q = quote(s, -1);
        hw_error_set(errp, "%s is longer than %d bytes", q,
                     UI_CONFIG_MAX_VALUE);
        return false;
    }
    if (!g_utf8_validate(s, len, NULL)) {
        g_autofree char *q = quote(s, -1);
        hw_error_set(errp, "%s is not valid UTF-8", q);
        return false;
    }
    for (const char *p = s; *p; p = g_utf8_next_char(p)) {
        if (!g_unichar_isprint(g_utf8_get_char(p))) {
            g_autofree char *q = quote(s, -1);
            hw_error_set(errp, "%s contains a control character", q);
            return false;
        }
    }
    return true;
}

/* One-letter keys and F1..F24 in SDL's spelling; other names as written
 * (SDL_GetKeyFromName ignores case, "PageUp" reads better than "Pageup"). */
static char *normalize_key(const char *key)
{
    size_t len = strlen(key);

    if (len == 1) {
        return g_strdup_printf("%c", g_ascii_toupper(key[0]));
    }
    if ((key[0] == 'f' || key[0] == 'F') && len <= 3 &&
        g_ascii_isdigit(key[1]) && (len == 2 || g_ascii_isdigit(key[2]))) {
        return g_strdup_printf("F%s", key + 1);
    }
    return g_strdup(key);
}

/* A key name alone ([keyboard]): checked and spelt as normalize_key. */
static char *normalize_key_name(const char *key, GError **errp)
{
    return check_text(key, errp) ? normalize_key(key) : NULL;
}

static unsigned modifier_bit(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(mod_info); i++) {
        if (!g_ascii_strcasecmp(name, mod_info[i].name)) {
            return mod_info[i].bit;
        }
    }
    return 0;
}

/* Takes the modifiers before the key off *p.  A '+' separates parts
 * unless it is the last character: that one belongs to the key, so "+"
 * and "Keypad +" stay keys and "Ctrl++" is Ctrl with the '+' key. */
static bool take_modifiers(const char *chord, const char **p, unsigned *mods,
                           GError **errp)
{
    const char *plus;

    while ((plus = strchr(*p, '+')) && plus[1]) {
        g_autofree char *part = g_strstrip(g_strndup(*p, plus - *p));
        unsigned bit = modifier_bit(part);

        if (!*part) {
            g_autofree char *q = quote(chord, -1);
            hw_error_set(errp, "%s has an empty part", q);
            return false;
        }
        if (!bit) {
            g_autofree char *q = quote(part, -1);
            hw_error_set(errp, "unknown modifier %s (Shift, Ctrl, Alt or "
                         "GUI)", q);
            return false;
        }
        *mods |= bit;
        *p = plus + 1;
    }
    return true;
}

char *ui_config_normalize_chord(const char *chord, GError **errp)
{
    const char *p = chord;
    unsigned mods = 0;

    if (!check_text(chord, errp) || !take_modifiers(chord, &p, &mods, errp)) {
        return NULL;
    }
    g_autofree char *key = g_strstrip(g_strdup(p));
    size_t klen = strlen(key);
    if (!klen) {
        g_autofree char *q = quote(chord, -1);
        hw_error_set(errp, "%s has an empty part", q);
        return NULL;
    }
    /* "Shift+": the trailing '+' would otherwise read as the key "+"
     * glued to a modifier; no SDL key is called that. */
    if (klen > 1 && key[klen - 1] == '+') {
        g_autofree char *head = g_strstrip(g_strndup(key, klen - 1));
        if (modifier_bit(head)) {
            g_autofree char *q = quote(chord, -1);
            hw_error_set(errp, "%s has no key after the last '+'", q);
            return NULL;
        }
    }

    GString *out = g_string_new(NULL);
    for (int i = 0; i < MOD_CANONICAL; i++) {
        if (mods & mod_info[i].bit) {
            g_string_append_printf(out, "%s+", mod_info[i].name);
        }
    }
    g_autofree char *nkey = normalize_key(key);
    g_string_append(out, nkey);
    return g_string_free(out, false);
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, list[i])) {
            return true;
        }
    }
    return false;
}

/* An SDL GameController button or (half) axis name, lower case; a sign
 * after the axis ("leftx+") moves in front, where SDL reads it. */
static char *normalize_pad_part(const char *name, GError **errp)
{
    if (!check_text(name, errp)) {
        return NULL;
    }
    g_autofree char *low = g_ascii_strdown(name, -1);
    size_t len = strlen(low);
    char sign = 0;

    if (low[0] == '+' || low[0] == '-') {
        sign = low[0];
        memmove(low, low + 1, len--);
    } else if (len > 1 && (low[len - 1] == '+' || low[len - 1] == '-')) {
        sign = low[len - 1];
        low[--len] = '\0';
    }
    if (!sign && in_list(low, sdl_buttons, G_N_ELEMENTS(sdl_buttons))) {
        return g_steal_pointer(&low);
    }
    if (in_list(low, sdl_axes, G_N_ELEMENTS(sdl_axes))) {
        return sign ? g_strdup_printf("%c%s", sign, low)
                    : g_steal_pointer(&low);
    }
    g_autofree char *q = quote(name, -1);
    hw_error_set(errp, "%s is not an SDL game controller button or axis "
                 "(a, b, x, y, back, start, leftshoulder, dpup, lefttrigger, "
                 "-leftx...)", q);
    return NULL;
}

/* "back + Start" -> "back+start": held together, they open the menu. */
static char *normalize_combo(const char *combo, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(combo, "+", -1);
    GString *out = g_string_new(NULL);

    if (!check_text(combo, errp)) {
        g_string_free(out, true);
        return NULL;
    }
    for (int i = 0; parts[i]; i++) {
        g_autofree char *n = normalize_pad_part(g_strstrip(parts[i]), errp);
        if (!n) {
            g_string_free(out, true);
            return NULL;
        }
        g_string_append_printf(out, "%s%s", i ? "+" : "", n);
    }
    return g_string_free(out, false);
}

/* ---- Warnings ---- */

typedef struct Loader {
    const char *name;           /* the file's base name, for messages */
    GString *warnings;          /* may be NULL */
    unsigned nwarn;
    GHashTable *lines;          /* "group" / "group\nkey" -> line */
} Loader;

static unsigned line_of(Loader *ld, const char *group, const char *key)
{
    g_autofree char *k = key ? g_strdup_printf("%s\n%s", group, key)
                             : g_strdup(group);
    return ld->lines ? GPOINTER_TO_UINT(g_hash_table_lookup(ld->lines, k))
                     : 0;
}

/* "xblk.ini:12: [window] scale: MESSAGE" (line, group, key if known). */
static void G_GNUC_PRINTF(5, 6) warn_at(Loader *ld, unsigned line,
                                        const char *group, const char *key,
                                        const char *fmt, ...)
{
    va_list ap;

    if (++ld->nwarn > MAX_WARNINGS || !ld->warnings) {
        return;
    }
    g_string_append(ld->warnings, ld->name);
    if (line) {
        g_string_append_printf(ld->warnings, ":%u", line);
    }
    g_string_append(ld->warnings, ": ");
    if (group) {
        g_string_append_printf(ld->warnings, "[%s] ", group);
    }
    if (key) {
        g_string_append_printf(ld->warnings, "%s: ", key);
    }
    va_start(ap, fmt);
    g_string_append_vprintf(ld->warnings, fmt, ap);
    va_end(ap);
    g_string_append_c(ld->warnings, '\n');
}

#define warn_key(ld, group, key, ...) \
    warn_at(ld, line_of(ld, group, key), group, key, __VA_ARGS__)

static void finish_warnings(Loader *ld)
{
    if (ld->nwarn > MAX_WARNINGS && ld->warnings) {
        g_string_append_printf(ld->warnings,
                               "%s: %u more problems not shown\n", ld->name,
                               ld->nwarn - MAX_WARNINGS);
    }
}

/* ---- The line pass ---- */

static bool has_cntrl(const char *s, gssize len)
{
    for (const char *p = s; p < s + len; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c != '\t' && !g_unichar_isprint(c)) {
            return true;
        }
    }
    return false;
}

typedef struct LinePass {
    Loader *ld;
    GString *out;               /* what GKeyFile gets */
    char *group;                /* current valid group, or NULL */
    bool skipping;              /* after a bad [group] line */
    unsigned ngroups;
} LinePass;

static void pass_group(LinePass *lp, unsigned n, const char *t, size_t len)
{
    g_autofree char *q = quote(t, len);
    size_t end = len;

    while (end && g_ascii_isspace(t[end - 1])) {
        end--;
    }
    if (end < 2 || t[end - 1] != ']') {
        warn_at(lp->ld, n, NULL, NULL, "%s is not a [group] line; it and "
                "the keys after it are ignored", q);
        lp->skipping = true;
        return;
    }
    g_autofree char *name = g_strstrip(g_strndup(t + 1, end - 2));
    if (!*name || strpbrk(name, "[]") || has_cntrl(name, strlen(name))) {
        warn_at(lp->ld, n, NULL, NULL, "%s is not a valid group name; it and "
                "the keys after it are ignored", q);
        lp->skipping = true;
        return;
    }
    lp->skipping = false;
    lp->ngroups++;
    g_free(lp->group);
    lp->group = g_strdup(name);
    if (!g_hash_table_contains(lp->ld->lines, name)) {
        g_hash_table_insert(lp->ld->lines, g_strdup(name),
                            GUINT_TO_POINTER(n));
    }
    g_string_append_printf(lp->out, "[%s]\n", name);
}

static void pass_key(LinePass *lp, unsigned n, const char *t, size_t len,
                     const char *eq)
{
    g_autofree char *key = g_strstrip(g_strndup(t, eq - t));
    g_autofree char *q = quote(t, len);

    if (lp->skipping) {
        return;
    }
    if (!lp->group) {
        warn_at(lp->ld, n, NULL, NULL, "%s comes before any [group]; "
                "ignored", q);
    } else if (!*key) {
        warn_at(lp->ld, n, lp->group, NULL, "%s has an empty key name; "
                "ignored", q);
    } else if (strpbrk(key, "[]") || has_cntrl(key, strlen(key))) {
        g_autofree char *qk = quote(key, -1);
        warn_at(lp->ld, n, lp->group, NULL, "unknown key %s; ignored", qk);
    } else {
        /* Last one wins, as in GKeyFile. */
        g_hash_table_insert(lp->ld->lines,
                            g_strdup_printf("%s\n%s", lp->group, key),
                            GUINT_TO_POINTER(n));
        g_string_append_printf(lp->out, "%s=", key);
        g_string_append_len(lp->out, eq + 1, t + len - (eq + 1));
        g_string_append_c(lp->out, '\n');
    }
}

static void pass_line(LinePass *lp, unsigned n, const char *line, size_t len)
{
    const char *t = line;

    if (len && line[len - 1] == '\r') {
        len--;
    }
    if (memchr(line, '\0', len)) {
        warn_at(lp->ld, n, NULL, NULL, "line contains a NUL byte; ignored");
        return;
    }
    if (!g_utf8_validate(line, len, NULL)) {
        g_autofree char *q = quote(line, len);
        warn_at(lp->ld, n, NULL, NULL, "%s is not valid UTF-8; ignored", q);
        return;
    }
    while (t < line + len && g_ascii_isspace(*t)) {
        t++;
    }
    len -= t - line;
    /* ';' comments are common in INI files; GKeyFile knows only '#'. */
    if (!len || *t == '#' || *t == ';') {
        return;
    }
    const char *eq = memchr(t, '=', len);
    if (*t == '[') {
        pass_group(lp, n, t, len);
    } else if (eq) {
        pass_key(lp, n, t, len, eq);
    } else if (!lp->skipping) {
        g_autofree char *q = quote(t, len);
        warn_at(lp->ld, n, NULL, NULL, "%s is neither a [group] nor a "
                "key=value line; ignored", q);
    }
}

/* The file's text minus the lines GKeyFile would choke on; NULL (with a
 * warning) when nothing in it looks like INI. */
static GString *line_pass(Loader *ld, const char *data, size_t len)
{
    LinePass lp = { .ld = ld, .out = g_string_new(NULL) };
    const char *p = data, *end = data + len;
    unsigned n = 0;
    unsigned before = ld->nwarn;
    gsize wlen = ld->warnings ? ld->warnings->len : 0;

    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) {
        p += 3;                 /* a UTF-8 byte-order mark */
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        size_t l = (nl ? nl : end) - p;
        pass_line(&lp, ++n, p, l);
        p += l + 1;
    }
    g_free(lp.group);
    if (!lp.ngroups && ld->nwarn > before) {
        /* Junk, not settings: one line says so instead of one per line. */
        ld->nwarn = before;
        if (ld->warnings) {
            g_string_truncate(ld->warnings, wlen);
        }
        warn_at(ld, 0, NULL, NULL, "not an INI file (no [group] line); "
                "using the defaults");
        g_string_free(lp.out, true);
        return NULL;
    }
    return lp.out;
}

/* ---- Applying values ---- */

static void describe_default(GString *s, char *const def[UI_MAX_BINDINGS])
{
    if (!def[0]) {
        g_string_append(s, "leaving it unbound");
        return;
    }
    g_string_append(s, "using '");
    for (int i = 0; i < UI_MAX_BINDINGS && def[i]; i++) {
        g_string_append_printf(s, "%s%s", i ? ";" : "", def[i]);
    }
    g_string_append_c(s, '\'');
}

typedef char *NormalizeFn(const char *in, GError **errp);

/* Every part valid, or the list stays as it was (the default). */
static bool parse_list(Loader *ld, const char *group, const char *key,
                       char **list, gsize n, NormalizeFn *norm,
                       char *out[UI_MAX_BINDINGS], GError **errp)
{
    int used = 0;

    if (n > UI_MAX_BINDINGS) {
        warn_key(ld, group, key, "%zu bindings, only the first %d are used",
                 (size_t)n, UI_MAX_BINDINGS);
        n = UI_MAX_BINDINGS;
    }
    for (gsize i = 0; i < n; i++) {
        g_autofree char *v = norm(g_strstrip(list[i]), errp);
        if (!v) {
            free_slots(out);
            return false;
        }
        bool dup = false;
        for (int j = 0; j < used; j++) {
            dup |= !g_ascii_strcasecmp(out[j], v);
        }
        if (!dup) {
            out[used++] = g_steal_pointer(&v);
        }
    }
    return true;
}

static void load_bindings(Loader *ld, GKeyFile *kf, const char *group,
                          const char *key, char *slot[UI_MAX_BINDINGS],
                          NormalizeFn *norm)
{
    g_autoptr(GError) err = NULL;
    gsize n = 0;
    g_auto(GStrv) list = g_key_file_get_string_list(kf, group, key, &n, &err);
    char *parsed[UI_MAX_BINDINGS] = { NULL };

    if (!list && !err) {
        list = g_new0(char *, 1);   /* "key=" : unbound */
    }
    if (list && parse_list(ld, group, key, list, n, norm, parsed, &err)) {
        free_slots(slot);
        memcpy(slot, parsed, sizeof(parsed));
        return;
    }
    g_autoptr(GString) msg = g_string_new(err ? err->message : "bad value");
    g_string_append(msg, "; ");
    describe_default(msg, slot);
    warn_key(ld, group, key, "%s", msg->str);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (!g_ascii_strcasecmp(s, yes[i]) || !g_ascii_strcasecmp(s, no[i])) {
            *out = !g_ascii_strcasecmp(s, yes[i]);
            return true;
        }
    }
    return false;
}

static void load_bool(Loader *ld, GKeyFile *kf, const char *group,
                      const char *key, bool *field)
{
    g_autofree char *raw = g_key_file_get_value(kf, group, key, NULL);
    g_autofree char *v = g_strstrip(g_strdup(raw ? raw : ""));

    if (!parse_bool(v, field)) {
        g_autofree char *q = quote(v, -1);
        warn_key(ld, group, key, "%s is not true or false; using %s", q,
                 *field ? "true" : "false");
    }
}

static void load_int(Loader *ld, GKeyFile *kf, const char *group,
                     const char *key, int *field, int min, int max)
{
    g_autofree char *raw = g_key_file_get_value(kf, group, key, NULL);
    g_autofree char *v = g_strstrip(g_strdup(raw ? raw : ""));
    gint64 n;

    if (g_ascii_string_to_signed(v, 10, min, max, &n, NULL)) {
        *field = n;
        return;
    }
    g_autofree char *q = quote(v, -1);
    warn_key(ld, group, key, "%s is not a number from %d to %d; using %d", q,
             min, max, *field);
}

static void load_combo(Loader *ld, GKeyFile *kf, const char *key,
                       UiConfig *cfg)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *raw = g_key_file_get_string(kf, "hotkeys", key, &err);
    g_autofree char *v = raw ? g_strstrip(g_strdup(raw)) : NULL;
    g_autofree char *combo = NULL;

    if (v && !*v) {
        g_clear_pointer(&cfg->menu_combo, g_free);  /* turned off */
        return;
    }
    combo = v ? normalize_combo(v, &err) : NULL;
    if (combo) {
        g_free(cfg->menu_combo);
        cfg->menu_combo = g_steal_pointer(&combo);
        return;
    }
    warn_key(ld, "hotkeys", key, "%s; using '%s'", err->message,
             cfg->menu_combo ? cfg->menu_combo : "");
}

static void warn_unknown_key(Loader *ld, const char *group, const char *key)
{
    g_autofree char *q = quote(key, -1);
    warn_at(ld, line_of(ld, group, key), group, NULL,
            "unknown key %s; ignored", q);
}

static void load_pad_key(Loader *ld, GKeyFile *kf, const char *group,
                         const char *key, UiConfig *cfg, bool keyboard)
{
    UiPadControl c = ui_pad_control_from_name(key);

    if (c == UI_PAD_COUNT) {
        warn_unknown_key(ld, group, key);
    } else if (keyboard) {
        load_bindings(ld, kf, group, key, cfg->pad_keys[c],
                      normalize_key_name);
    } else {
        load_bindings(ld, kf, group, key, cfg->pad_buttons[c],
                      normalize_pad_part);
    }
}

static void load_hotkey(Loader *ld, GKeyFile *kf, const char *group,
                        const char *key, UiConfig *cfg)
{
    UiAction a = ui_action_from_name(key);

    if (!g_ascii_strcasecmp(key, "menu-combo")) {
        load_combo(ld, kf, key, cfg);
    } else if (a == UI_ACTION_NONE) {
        warn_unknown_key(ld, group, key);
    } else {
        load_bindings(ld, kf, group, key, cfg->hotkeys[a],
                      ui_config_normalize_chord);
    }
}

static void load_window_key(Loader *ld, GKeyFile *kf, const char *group,
                            const char *key, UiConfig *cfg)
{
    if (!g_ascii_strcasecmp(key, "fullscreen")) {
        load_bool(ld, kf, group, key, &cfg->fullscreen);
    } else if (!g_ascii_strcasecmp(key, "integer-scale")) {
        load_bool(ld, kf, group, key, &cfg->integer_scale);
    } else if (!g_ascii_strcasecmp(key, "vsync")) {
        load_bool(ld, kf, group, key, &cfg->vsync);
    } else if (!g_ascii_strcasecmp(key, "scale")) {
        load_int(ld, kf, group, key, &cfg->scale, 1, SCALE_MAX);
    } else {
        warn_unknown_key(ld, group, key);
    }
}

static void load_states_key(Loader *ld, GKeyFile *kf, const char *group,
                            const char *key, UiConfig *cfg)
{
    static const struct {
        const char *name;
        size_t offset;
    } bools[] = {
        { "resume-on-start", offsetof(UiConfig, resume_on_start) },
        { "save-on-exit", offsetof(UiConfig, save_on_exit) },
        { "confirm-overwrite", offsetof(UiConfig, confirm_overwrite) },
        { "confirm-delete", offsetof(UiConfig, confirm_delete) },
        { "rollback-warning", offsetof(UiConfig, rollback_warning) },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bools); i++) {
        if (!g_ascii_strcasecmp(key, bools[i].name)) {
            load_bool(ld, kf, group, key,
                      (bool *)((char *)cfg + bools[i].offset));
            return;
        }
    }
    if (!g_ascii_strcasecmp(key, "osd-seconds")) {
        load_int(ld, kf, group, key, &cfg->osd_seconds, 1, OSD_MAX);
    } else {
        warn_unknown_key(ld, group, key);
    }
}

static int group_index(const char *group)
{
    for (size_t i = 0; i < G_N_ELEMENTS(group_names); i++) {
        if (!g_ascii_strcasecmp(group, group_names[i])) {
            return i;
        }
    }
    return -1;
}

static void load_group(Loader *ld, GKeyFile *kf, const char *group,
                       UiConfig *cfg)
{
    int g = group_index(group);
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);

    if (g < 0) {
        g_autofree char *c = clip(group, -1);
        warn_at(ld, line_of(ld, group, NULL), NULL, NULL,
                "unknown group [%s]; ignored", c);
        return;
    }
    for (int i = 0; keys && keys[i]; i++) {
        switch (g) {
        case 0:
        case 1:
            load_pad_key(ld, kf, group, keys[i], cfg, g == 0);
            break;
        case 2:
            load_hotkey(ld, kf, group, keys[i], cfg);
            break;
        case 3:
            load_window_key(ld, kf, group, keys[i], cfg);
            break;
        default:
            load_states_key(ld, kf, group, keys[i], cfg);
        }
    }
}

/* One chord bound to two actions: the first (enum order) takes it. */
static void warn_hotkey_clashes(Loader *ld, const UiConfig *cfg)
{
    for (int a = 1; a < UI_ACTION_COUNT; a++) {
        for (int i = 0; i < UI_MAX_BINDINGS && cfg->hotkeys[a][i]; i++) {
            UiAction first = ui_config_action_for(cfg, cfg->hotkeys[a][i]);
            if (first != a) {
                warn_key(ld, "hotkeys", action_info[a].name,
                         "'%s' is also bound to %s, which takes it",
                         cfg->hotkeys[a][i], action_info[first].name);
            }
        }
    }
}

static void apply_text(Loader *ld, const char *data, size_t len,
                       UiConfig *cfg)
{
    g_autoptr(GString) clean = line_pass(ld, data, len);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) err = NULL;

    if (!clean) {
        return;
    }
    if (!g_key_file_load_from_data(kf, clean->str, clean->len,
                                   G_KEY_FILE_NONE, &err)) {
        warn_at(ld, 0, NULL, NULL, "not readable as INI (%s); using the "
                "defaults", err->message);
        return;
    }
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    for (int i = 0; groups[i]; i++) {
        load_group(ld, kf, groups[i], cfg);
    }
    warn_hotkey_clashes(ld, cfg);
}

/* ---- Writing ---- */

/* GKeyFile list syntax: ';' separates, so ';' and '\' in a name are
 * escaped; no trailing ';', which reads better for one binding. */
static char *join_list(char *const slot[UI_MAX_BINDINGS])
{
    GString *s = g_string_new(NULL);

    for (int i = 0; i < UI_MAX_BINDINGS && slot[i]; i++) {
        if (i) {
            g_string_append_c(s, ';');
        }
        for (const char *p = slot[i]; *p; p++) {
            if (*p == ';' || *p == '\\') {
                g_string_append_c(s, '\\');
            }
            g_string_append_c(s, *p);
        }
    }
    return g_string_free(s, false);
}

static void put(GKeyFile *kf, const char *group, const char *key,
                const char *value, const char *comment)
{
    g_key_file_set_value(kf, group, key, value);
    g_key_file_set_comment(kf, group, key, comment, NULL);
}

static void put_list(GKeyFile *kf, const char *group, const char *key,
                     char *const slot[UI_MAX_BINDINGS], const char *what)
{
    g_autofree char *v = join_list(slot);
    g_autofree char *comment = g_strdup_printf(" %s", what);
    put(kf, group, key, v, comment);
}

static void put_bool(GKeyFile *kf, const char *group, const char *key,
                     bool v, const char *comment)
{
    put(kf, group, key, v ? "true" : "false", comment);
}

static void put_int(GKeyFile *kf, const char *group, const char *key, int v,
                    const char *comment)
{
    g_autofree char *s = g_strdup_printf("%d", v);
    put(kf, group, key, s, comment);
}

static void write_pads(GKeyFile *kf, const UiConfig *cfg)
{
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        put_list(kf, "keyboard", pad_info[c].name, cfg->pad_keys[c],
                 pad_info[c].what);
    }
    g_key_file_set_comment(kf, "keyboard", NULL,
        " The console's gamepad on the keyboard: SDL key names (Up, Return,\n"
        " Backspace, A, F5, Left Shift, Keypad 8...), any case; several keys\n"
        " for one control are separated by ';', an empty value unbinds it.",
        NULL);
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        put_list(kf, "gamepad", pad_info[c].name, cfg->pad_buttons[c],
                 pad_info[c].what);
    }
    g_key_file_set_comment(kf, "gamepad", NULL,
        " The console's gamepad on an SDL game controller: button names (a,\n"
        " b, x, y, back, start, guide, leftstick, rightstick, leftshoulder,\n"
        " rightshoulder, dpup, dpdown, dpleft, dpright) and axes (leftx,\n"
        " lefty, rightx, righty, lefttrigger, righttrigger; -leftx and +leftx\n"
        " are its halves, and SDL's Y axes grow downward).  ';' separates.",
        NULL);
}

static void write_hotkeys(GKeyFile *kf, const UiConfig *cfg)
{
    for (int a = UI_ACTION_NONE + 1; a < UI_ACTION_COUNT; a++) {
        put_list(kf, "hotkeys", action_info[a].name, cfg->hotkeys[a],
                 action_info[a].what);
    }
    put(kf, "hotkeys", "menu-combo", cfg->menu_combo ? cfg->menu_combo : "",
        " game controller buttons held together to open the menu, joined "
        "by '+'\n (empty: none)");
    g_key_file_set_comment(kf, "hotkeys", NULL,
        " Hotkeys: key chords such as F5, Shift+F5, Ctrl+Q - modifiers\n"
        " Shift, Ctrl, Alt, GUI, then the key; ';' separates several chords.",
        NULL);
}

static void write_window(GKeyFile *kf, const UiConfig *cfg)
{
    put_bool(kf, "window", "fullscreen", cfg->fullscreen,
             " start in fullscreen");
    put_bool(kf, "window", "integer-scale", cfg->integer_scale,
             " scale the picture by whole multiples only (sharp pixels)");
    put_bool(kf, "window", "vsync", cfg->vsync,
             " wait for the display's refresh (no tearing)");
    put_int(kf, "window", "scale", cfg->scale,
            " initial window size: 640x480 times this, 1 to 8");
    g_key_file_set_comment(kf, "window", NULL, " The window.", NULL);
}

static void write_states(GKeyFile *kf, const UiConfig *cfg)
{
    put_bool(kf, "states", "resume-on-start", cfg->resume_on_start,
             " offer to resume where the last session of the title ended");
    put_bool(kf, "states", "save-on-exit", cfg->save_on_exit,
             " quitting saves a hidden resume state of the title");
    put_bool(kf, "states", "confirm-overwrite", cfg->confirm_overwrite,
             " ask before the menu saves over a state");
    put_bool(kf, "states", "confirm-delete", cfg->confirm_delete,
             " ask before the menu deletes a state");
    put_bool(kf, "states", "rollback-warning", cfg->rollback_warning,
             " warn before a load undoes in-game saves made since the state");
    put_int(kf, "states", "osd-seconds", cfg->osd_seconds,
            " how long an on-screen message stays, 1 to 60 seconds");
    g_key_file_set_comment(kf, "states", NULL, " Save states.", NULL);
}

static char *config_to_data(const UiConfig *cfg, gsize *len)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();

    write_pads(kf, cfg);
    write_hotkeys(kf, cfg);
    write_window(kf, cfg);
    write_states(kf, cfg);
    g_key_file_set_comment(kf, NULL, NULL,
        " xblk settings (docs/ui.md, \"Configuration\").  Created with the\n"
        " defaults; edit freely - a bad value gets a warning and its default.\n"
        " Delete this file to get every default back.", NULL);
    return g_key_file_to_data(kf, len, NULL);
}

static bool write_all(int fd, const char *data, gsize len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        len -= n;
    }
    return true;
}

/* Best effort: the rename is durable once its folder is flushed. */
static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* rename(2), or with keep_existing one that never replaces a file (false
 * with errno EEXIST if one appeared). */
static int move_into_place(const char *tmp, const char *path,
                           bool keep_existing)
{
    if (keep_existing) {
        int r = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
        if (r == 0 || (errno != EINVAL && errno != ENOSYS)) {
            return r;
        }
        /* A file system without RENAME_NOREPLACE: link() never replaces
         * either. */
        if (link(tmp, path) == 0) {
            unlink(tmp);
            return 0;
        }
        if (errno == EEXIST) {
            return -1;
        }
    }
    return rename(tmp, path);
}

/* *raced: keep_existing, and a file appeared at path meanwhile. */
static bool write_atomic(const char *path, const char *data, gsize len,
                         bool keep_existing, bool *raced, GError **errp)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *tmp = g_strconcat(path, ".XXXXXX", NULL);
    int fd, err;

    if (g_mkdir_with_parents(dir, 0700) < 0) {
        hw_error_set_errno(errp, errno, "cannot create folder '%s'", dir);
        return false;
    }
    fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        hw_error_set_errno(errp, errno, "cannot create a file in '%s'", dir);
        return false;
    }
    if (!write_all(fd, data, len) || fsync(fd) < 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        hw_error_set_errno(errp, err, "cannot write '%s'", tmp);
        return false;
    }
    close(fd);
    if (move_into_place(tmp, path, keep_existing) < 0) {
        err = errno;
        unlink(tmp);
        if (raced) {
            *raced = keep_existing && err == EEXIST;
        }
        hw_error_set_errno(errp, err, "cannot create '%s'", path);
        return false;
    }
    fsync_dir(dir);
    return true;
}

bool ui_config_save(const char *path, const UiConfig *cfg, GError **errp)
{
    gsize len;
    g_autofree char *data = config_to_data(cfg, &len);

    return write_atomic(path, data, len, false, NULL, errp);
}

/* ---- Loading ---- */

typedef enum ReadResult { READ_OK, READ_MISSING, READ_FAILED } ReadResult;

static ReadResult read_limited(Loader *ld, int fd, char **data, gsize *len)
{
    GString *buf = g_string_sized_new(8192);
    char chunk[65536];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            warn_at(ld, 0, NULL, NULL, "cannot be read (%s); using the "
                    "defaults", g_strerror(errno));
            g_string_free(buf, true);
            return READ_FAILED;
        }
        if (n == 0) {
            break;
        }
        if (buf->len + n > CONFIG_MAX_FILE) {
            warn_at(ld, 0, NULL, NULL, "larger than %d KiB, too big for a "
                    "settings file; using the defaults",
                    CONFIG_MAX_FILE / 1024);
            g_string_free(buf, true);
            return READ_FAILED;
        }
        g_string_append_len(buf, chunk, n);
    }
    *len = buf->len;
    *data = g_string_free(buf, false);
    return READ_OK;
}

/* A missing file (or folder) is READ_MISSING; any other trouble is a
 * warning, and the defaults stand. */
static ReadResult read_config(Loader *ld, const char *path, char **data,
                              gsize *len)
{
    /* O_NONBLOCK: a FIFO put there must not hang the start. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    ReadResult r;

    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return READ_MISSING;
        }
        warn_at(ld, 0, NULL, NULL, "cannot be opened (%s); using the "
                "defaults", g_strerror(errno));
        return READ_FAILED;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        warn_at(ld, 0, NULL, NULL, "is not a regular file; using the "
                "defaults");
        close(fd);
        return READ_FAILED;
    }
    r = read_limited(ld, fd, data, len);
    close(fd);
    return r;
}

static bool create_default_file(const char *path, const UiConfig *cfg,
                                bool *raced, GError **errp)
{
    gsize len;
    g_autofree char *data = config_to_data(cfg, &len);

    return write_atomic(path, data, len, true, raced, errp);
}

bool ui_config_load(const char *path, UiConfig *cfg, GString *warnings,
                    GError **errp)
{
    g_autofree char *name = g_path_get_basename(path);
    Loader ld = {
        .name = name, .warnings = warnings,
        .lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };
    g_autofree char *data = NULL;
    gsize len = 0;
    ReadResult r;
    bool ok = true;

    ui_config_defaults(cfg);
    r = read_config(&ld, path, &data, &len);
    if (r == READ_MISSING) {
        g_autoptr(GError) err = NULL;
        bool raced = false;
        ok = create_default_file(path, cfg, &raced, &err);
        if (raced) {
            /* The player's file appeared meanwhile: read it, keep it. */
            ok = true;
            r = read_config(&ld, path, &data, &len);
        } else if (!ok) {
            g_propagate_error(errp, g_steal_pointer(&err));
        }
    }
    if (r == READ_OK) {
        apply_text(&ld, data, len, cfg);
    }
    finish_warnings(&ld);
    g_hash_table_destroy(ld.lines);
    return ok;
}

/* ---- Lookup ---- */

UiAction ui_config_action_for(const UiConfig *cfg, const char *chord)
{
    g_autofree char *norm = chord ? ui_config_normalize_chord(chord, NULL)
                                  : NULL;

    for (int a = UI_ACTION_NONE + 1; norm && a < UI_ACTION_COUNT; a++) {
        for (int i = 0; i < UI_MAX_BINDINGS && cfg->hotkeys[a][i]; i++) {
            if (!g_ascii_strcasecmp(norm, cfg->hotkeys[a][i])) {
                return a;
            }
        }
    }
    return UI_ACTION_NONE;
}

const char *ui_config_chord_of(const UiConfig *cfg, UiAction action)
{
    if (action <= UI_ACTION_NONE || action >= UI_ACTION_COUNT) {
        return NULL;
    }
    return cfg->hotkeys[action][0];
}
