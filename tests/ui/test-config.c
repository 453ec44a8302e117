/*
 * test-config.c - the player's settings file (ui/config.c) against
 * docs/ui.md, "Configuration": the file created with the defaults on
 * first run and read back equal, every key changed and read back, hotkey
 * lookup with chord normalisation, and bad files - not INI, unknown
 * groups and keys, each kind of bad value, paths that cannot be read or
 * written, 10 MB, NUL bytes, invalid UTF-8 - each giving one clear
 * warning line and the default, never a crash or a rewritten file.
 *
 * XDG_CONFIG_HOME points into a g_dir_make_tmp() folder, set before
 * anything asks GLib for it (GLib caches it).
 */
#include "ui/config.h"
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *test_dir;

/* test_dir/<sub>/xblk.ini holding len bytes of text (len < 0: a string). */
static char *write_ini(const char *sub, const char *text, gssize len)
{
    g_autofree char *dir = g_build_filename(test_dir, sub, NULL);
    char *path = g_build_filename(dir, "xblk.ini", NULL);
    GError *err = NULL;

    g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
    g_assert_true(g_file_set_contents(path, text, len, &err));
    g_assert_no_error(err);
    return path;
}

static char *read_all(const char *path, gsize *len)
{
    char *data = NULL;
    GError *err = NULL;

    g_assert_true(g_file_get_contents(path, &data, len, &err));
    g_assert_no_error(err);
    return data;
}

/* Loads text; returns the warnings; *cfg filled.  The file must come out
 * byte for byte as it went in. */
static char *load_text(const char *sub, const char *text, gssize len,
                       UiConfig *cfg)
{
    gsize n = len < 0 ? strlen(text) : (gsize)len;
    g_autofree char *path = write_ini(sub, text, n);
    GString *w = g_string_new(NULL);
    GError *err = NULL;
    gsize after_len;

    g_assert_true(ui_config_load(path, cfg, w, &err));
    g_assert_no_error(err);
    g_autofree char *after = read_all(path, &after_len);
    g_assert_cmpuint(after_len, ==, n);
    g_assert_true(memcmp(after, text, n) == 0);
    return g_string_free(w, false);
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void assert_defaults(const UiConfig *cfg)
{
    UiConfig def;
    ui_config_defaults(&def);
    g_assert_true(ui_config_equal(cfg, &def));
    ui_config_clear(&def);
}

/* ---- First run, defaults, round trip ---- */

static void test_first_run(void)
{
    g_autofree char *path = ui_config_default_path();
    g_autofree char *expect = g_build_filename(test_dir, "xdg", "xblk",
                                               "xblk.ini", NULL);
    g_autofree char *dir = g_path_get_dirname(path);
    g_autoptr(GString) w = g_string_new(NULL);
    UiConfig cfg, again;
    GError *err = NULL;
    struct stat st;
    gsize len1, len2;

    g_assert_cmpstr(path, ==, expect);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_true(ui_config_load(path, &cfg, w, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(w->str, ==, "");
    assert_defaults(&cfg);
    g_assert_cmpint(stat(dir, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0700);

    /* Commented: the file says what each group and key does. */
    g_autofree char *text = read_all(path, &len1);
    g_assert_nonnull(strstr(text, "# The console's gamepad on the keyboard"));
    g_assert_nonnull(strstr(text, "# A button\na=A\n"));
    g_assert_nonnull(strstr(text, "# toggle fullscreen\nfullscreen=F11\n"));
    g_assert_nonnull(strstr(text, "save-slot1=Shift+F5\n"));
    g_assert_nonnull(strstr(text, "quit=Ctrl+Q\n"));
    g_assert_nonnull(strstr(text, "menu-combo=back+start\n"));
    g_assert_nonnull(strstr(text, "left-stick-up=-lefty\n"));
    g_assert_nonnull(strstr(text, "[states]\n"));
    g_assert_null(strstr(text, ".XXXXXX"));

    /* Re-read: the same config, no warning, the file untouched. */
    g_assert_true(ui_config_load(path, &again, w, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(w->str, ==, "");
    g_assert_true(ui_config_equal(&cfg, &again));
    g_autofree char *text2 = read_all(path, &len2);
    g_assert_cmpstr(text, ==, text2);

    /* No temporary file left behind. */
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    unsigned files = 0;
    while ((name = g_dir_read_name(d))) {
        files++;
    }
    g_assert_cmpuint(files, ==, 1);
    ui_config_clear(&cfg);
    ui_config_clear(&again);
}

static void test_defaults(void)
{
    UiConfig cfg;

    ui_config_defaults(&cfg);
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_UP][0], ==, "Up");
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_START][0], ==, "Return");
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_BACK][0], ==, "Backspace");
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_A][0], ==, "A");
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_WHITE][0], ==, "1");
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_LY_PLUS][0], ==, "E");
    g_assert_null(cfg.pad_keys[UI_PAD_A][1]);
    g_assert_cmpstr(cfg.pad_buttons[UI_PAD_WHITE][0], ==, "leftshoulder");
    g_assert_cmpstr(cfg.pad_buttons[UI_PAD_BLACK][0], ==, "rightshoulder");
    g_assert_cmpstr(cfg.pad_buttons[UI_PAD_LEFT_TRIGGER][0], ==,
                    "lefttrigger");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_LOAD_SLOT4][0], ==, "F8");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_SAVE_SLOT4][0], ==, "Shift+F8");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_QUICK_SAVE][0], ==, "F2");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_LOAD_NEWEST][0], ==, "F3");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_UNDO_LOAD][0], ==, "F4");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_UNDO_SAVE][0], ==, "Shift+F4");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_MENU][0], ==, "F1");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_FULLSCREEN][0], ==, "F11");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_QUIT][0], ==, "Ctrl+Q");
    g_assert_null(cfg.hotkeys[UI_ACTION_NONE][0]);
    g_assert_cmpstr(cfg.menu_combo, ==, "back+start");
    g_assert_false(cfg.fullscreen);
    g_assert_false(cfg.integer_scale);
    g_assert_true(cfg.vsync);
    g_assert_cmpint(cfg.scale, ==, 2);
    g_assert_false(cfg.resume_on_start);
    g_assert_false(cfg.save_on_exit);
    g_assert_true(cfg.confirm_overwrite);
    g_assert_true(cfg.confirm_delete);
    g_assert_true(cfg.rollback_warning);
    g_assert_cmpint(cfg.osd_seconds, ==, 3);
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        g_assert_nonnull(cfg.pad_keys[c][0]);
        g_assert_nonnull(cfg.pad_buttons[c][0]);
        g_assert_cmpint(ui_pad_control_from_name(ui_pad_control_name(c)),
                        ==, c);
    }
    for (int a = 1; a < UI_ACTION_COUNT; a++) {
        g_assert_nonnull(cfg.hotkeys[a][0]);
        g_assert_cmpint(ui_action_from_name(ui_action_name(a)), ==, a);
    }
    g_assert_cmpstr(ui_action_name(UI_ACTION_LOAD_SLOT1), ==, "load-slot1");
    g_assert_cmpstr(ui_pad_control_name(UI_PAD_A), ==, "a");
    g_assert_null(ui_action_name(UI_ACTION_COUNT));
    g_assert_null(ui_pad_control_name(UI_PAD_COUNT));
    ui_config_clear(&cfg);
}

/* Saved and read back equal - defaults, and a config with odd names. */
static void test_round_trip(void)
{
    g_autofree char *path = write_ini("round", "", 0);
    g_autoptr(GString) w = g_string_new(NULL);
    UiConfig cfg, back;
    GError *err = NULL;

    ui_config_defaults(&cfg);
    g_assert_true(ui_config_save(path, &cfg, &err));
    g_assert_no_error(err);
    g_assert_true(ui_config_load(path, &back, w, &err));
    g_assert_cmpstr(w->str, ==, "");
    g_assert_true(ui_config_equal(&cfg, &back));
    ui_config_clear(&back);

    /* ';' and '\' are GKeyFile's separator and escape. */
    g_free(cfg.pad_keys[UI_PAD_A][0]);
    cfg.pad_keys[UI_PAD_A][0] = g_strdup(";");
    cfg.pad_keys[UI_PAD_A][1] = g_strdup("\\");
    cfg.pad_keys[UI_PAD_A][2] = g_strdup("Keypad +");
    cfg.pad_keys[UI_PAD_A][3] = g_strdup("Left Shift");
    g_free(cfg.hotkeys[UI_ACTION_QUIT][0]);
    cfg.hotkeys[UI_ACTION_QUIT][0] = g_strdup("Ctrl++");
    cfg.hotkeys[UI_ACTION_QUIT][1] = g_strdup("Shift+Ctrl+Alt+GUI+;");
    g_clear_pointer(&cfg.menu_combo, g_free);
    g_clear_pointer(&cfg.pad_buttons[UI_PAD_Y][0], g_free);
    g_assert_true(ui_config_save(path, &cfg, &err));
    g_assert_no_error(err);
    g_assert_true(ui_config_load(path, &back, w, &err));
    g_assert_cmpstr(w->str, ==, "");
    g_assert_true(ui_config_equal(&cfg, &back));
    g_assert_cmpint(ui_config_action_for(&back, "ctrl+gui+alt+shift+;"), ==,
                    UI_ACTION_QUIT);
    ui_config_clear(&back);
    ui_config_clear(&cfg);
}

/* Every key set by hand, read back. */
static void test_every_key(void)
{
    static const char *const buttons[] = {
        "a", "b", "x", "y", "back", "start", "guide", "leftstick",
    };
    GString *text = g_string_new("[keyboard]\n");
    UiConfig cfg, again;

    for (int c = 0; c < UI_PAD_COUNT; c++) {
        g_string_append_printf(text, "%s = Keypad %d ; f%d\n",
                               ui_pad_control_name(c), c, c + 1);
    }
    g_string_append(text, "[gamepad]\n");
    for (int c = 0; c < UI_PAD_COUNT; c++) {
        g_string_append_printf(text, "%s=%s;RIGHTY+\n",
                               ui_pad_control_name(c),
                               buttons[c % G_N_ELEMENTS(buttons)]);
    }
    g_string_append(text, "[hotkeys]\n");
    for (int a = 1; a < UI_ACTION_COUNT; a++) {
        g_string_append_printf(text, "%s=ctrl+alt+f%d\n", ui_action_name(a),
                               a);
    }
    g_string_append(text, "menu-combo = Guide + A\n"
                    "[window]\nfullscreen=true\ninteger-scale=yes\n"
                    "vsync=false\nscale=7\n"
                    "[states]\nresume-on-start=true\nsave-on-exit=1\n"
                    "confirm-overwrite=false\nconfirm-delete=off\n"
                    "rollback-warning=FALSE\nosd-seconds=60\n");
    g_autofree char *w = load_text("every", text->str, -1, &cfg);
    g_assert_cmpstr(w, ==, "");

    for (int c = 0; c < UI_PAD_COUNT; c++) {
        g_autofree char *k = g_strdup_printf("Keypad %d", c);
        g_autofree char *f = g_strdup_printf("F%d", c + 1);
        g_assert_cmpstr(cfg.pad_keys[c][0], ==, k);
        g_assert_cmpstr(cfg.pad_keys[c][1], ==, f);
        g_assert_null(cfg.pad_keys[c][2]);
        g_assert_cmpstr(cfg.pad_buttons[c][0], ==,
                        buttons[c % G_N_ELEMENTS(buttons)]);
        g_assert_cmpstr(cfg.pad_buttons[c][1], ==, "+righty");
    }
    for (int a = 1; a < UI_ACTION_COUNT; a++) {
        g_autofree char *k = g_strdup_printf("Ctrl+Alt+F%d", a);
        g_assert_cmpstr(cfg.hotkeys[a][0], ==, k);
        g_assert_cmpstr(ui_config_chord_of(&cfg, a), ==, k);
    }
    g_assert_cmpstr(cfg.menu_combo, ==, "guide+a");
    g_assert_true(cfg.fullscreen);
    g_assert_true(cfg.integer_scale);
    g_assert_false(cfg.vsync);
    g_assert_cmpint(cfg.scale, ==, 7);
    g_assert_true(cfg.resume_on_start);
    g_assert_true(cfg.save_on_exit);
    g_assert_false(cfg.confirm_overwrite);
    g_assert_false(cfg.confirm_delete);
    g_assert_false(cfg.rollback_warning);
    g_assert_cmpint(cfg.osd_seconds, ==, 60);

    /* The same file twice: the same config. */
    g_autofree char *w2 = load_text("every", text->str, -1, &again);
    g_assert_true(ui_config_equal(&cfg, &again));
    ui_config_clear(&again);

    /* Empty values unbind; a missing key keeps its default. */
    g_autofree char *w3 = load_text("unbind", "[keyboard]\na=\n[hotkeys]\n"
                                    "quit=\nmenu-combo=\n", -1, &again);
    g_assert_cmpstr(w3, ==, "");
    g_assert_null(again.pad_keys[UI_PAD_A][0]);
    g_assert_null(again.hotkeys[UI_ACTION_QUIT][0]);
    g_assert_null(again.menu_combo);
    g_assert_cmpstr(again.pad_keys[UI_PAD_B][0], ==, "B");
    g_assert_cmpint(ui_config_action_for(&again, "Ctrl+Q"), ==,
                    UI_ACTION_NONE);
    ui_config_clear(&again);
    ui_config_clear(&cfg);
    g_string_free(text, true);
}

/* ---- Chords ---- */

static void check_norm(const char *in, const char *out)
{
    GError *err = NULL;
    g_autofree char *n = ui_config_normalize_chord(in, &err);

    if (out) {
        g_assert_no_error(err);
        g_assert_cmpstr(n, ==, out);
    } else {
        g_assert_null(n);
        g_assert_nonnull(err);
        g_error_free(err);
    }
}

static void test_chords(void)
{
    UiConfig cfg;

    check_norm("F5", "F5");
    check_norm("shift+f5", "Shift+F5");
    check_norm(" SHIFT + F5 ", "Shift+F5");
    check_norm("ctrl+shift+f12", "Shift+Ctrl+F12");
    check_norm("gui+alt+ctrl+shift+x", "Shift+Ctrl+Alt+GUI+X");
    check_norm("Control+q", "Ctrl+Q");
    check_norm("Shift+Shift+F5", "Shift+F5");
    check_norm("alt+return", "Alt+return");
    check_norm("Alt+Return", "Alt+Return");
    check_norm("PageUp", "PageUp");
    check_norm("+", "+");
    check_norm("Ctrl++", "Ctrl++");
    check_norm("Keypad +", "Keypad +");
    check_norm("Shift+Keypad +", "Shift+Keypad +");
    check_norm("f100", "f100");
    check_norm("", NULL);
    check_norm("Shift+", NULL);
    check_norm("Shift++F5", NULL);
    check_norm("+F5", NULL);
    check_norm("Hyper+F5", NULL);
    check_norm("Shift+\x01", NULL);
    check_norm("Shift+F5\n", NULL);
    g_autofree char *longkey = g_strnfill(UI_CONFIG_MAX_VALUE + 1, 'K');
    check_norm(longkey, NULL);

    ui_config_defaults(&cfg);
    g_assert_cmpint(ui_config_action_for(&cfg, "F5"), ==,
                    UI_ACTION_LOAD_SLOT1);
    g_assert_cmpint(ui_config_action_for(&cfg, "f8"), ==,
                    UI_ACTION_LOAD_SLOT4);
    g_assert_cmpint(ui_config_action_for(&cfg, "shift+f5"), ==,
                    UI_ACTION_SAVE_SLOT1);
    g_assert_cmpint(ui_config_action_for(&cfg, "SHIFT+F7"), ==,
                    UI_ACTION_SAVE_SLOT3);
    g_assert_cmpint(ui_config_action_for(&cfg, "Shift+F4"), ==,
                    UI_ACTION_UNDO_SAVE);
    g_assert_cmpint(ui_config_action_for(&cfg, "F4"), ==,
                    UI_ACTION_UNDO_LOAD);
    g_assert_cmpint(ui_config_action_for(&cfg, "f2"), ==,
                    UI_ACTION_QUICK_SAVE);
    g_assert_cmpint(ui_config_action_for(&cfg, "F3"), ==,
                    UI_ACTION_LOAD_NEWEST);
    g_assert_cmpint(ui_config_action_for(&cfg, "F1"), ==, UI_ACTION_MENU);
    g_assert_cmpint(ui_config_action_for(&cfg, "F11"), ==,
                    UI_ACTION_FULLSCREEN);
    g_assert_cmpint(ui_config_action_for(&cfg, "control+q"), ==,
                    UI_ACTION_QUIT);
    g_assert_cmpint(ui_config_action_for(&cfg, "Q"), ==, UI_ACTION_NONE);
    g_assert_cmpint(ui_config_action_for(&cfg, "Ctrl+Shift+F5"), ==,
                    UI_ACTION_NONE);
    g_assert_cmpint(ui_config_action_for(&cfg, "Hyper+F5"), ==,
                    UI_ACTION_NONE);
    g_assert_cmpint(ui_config_action_for(&cfg, ""), ==, UI_ACTION_NONE);
    g_assert_cmpint(ui_config_action_for(&cfg, NULL), ==, UI_ACTION_NONE);
    g_assert_cmpstr(ui_config_chord_of(&cfg, UI_ACTION_SAVE_SLOT2), ==,
                    "Shift+F6");
    g_assert_null(ui_config_chord_of(&cfg, UI_ACTION_NONE));
    g_assert_null(ui_config_chord_of(&cfg, UI_ACTION_COUNT));
    ui_config_clear(&cfg);

    /* From a file: stored canonical, found in any spelling. */
    g_autofree char *w = load_text("chords", "[hotkeys]\n"
                                   "quick-save = alt+ctrl+s; F2\n", -1, &cfg);
    g_assert_cmpstr(w, ==, "");
    g_assert_cmpstr(cfg.hotkeys[UI_ACTION_QUICK_SAVE][0], ==, "Ctrl+Alt+S");
    g_assert_cmpint(ui_config_action_for(&cfg, "alt+ctrl+s"), ==,
                    UI_ACTION_QUICK_SAVE);
    g_assert_cmpint(ui_config_action_for(&cfg, "f2"), ==,
                    UI_ACTION_QUICK_SAVE);
    ui_config_clear(&cfg);
}

/* ---- Bad files ---- */

static void test_not_ini(void)
{
    UiConfig cfg;
    g_autofree char *w = load_text("notini", "{\"window\": {\"scale\": 3}}\n"
                                   "this is not INI\n", -1, &cfg);

    g_assert_cmpstr(w, ==, "xblk.ini: not an INI file (no [group] line); "
                    "using the defaults\n");
    assert_defaults(&cfg);
    ui_config_clear(&cfg);

    /* Bad lines among good ones: each named, the rest honoured. */
    g_autofree char *w2 = load_text("badlines",
        "# comment\n"
        "; comment too\n"
        "orphan=1\n"
        "[window]\n"
        "scale=4\n"
        "garbage line\n"
        "=F5\n"
        "[states\n"
        "osd-seconds=9\n"
        "[]\n"
        "[states]\n"
        "osd-seconds=7\r\n", -1, &cfg);
    g_assert_nonnull(strstr(w2, "xblk.ini:3: 'orphan=1' comes before any "
                            "[group]; ignored\n"));
    g_assert_nonnull(strstr(w2, "xblk.ini:6: 'garbage line' is neither a "
                            "[group] nor a key=value line; ignored\n"));
    g_assert_nonnull(strstr(w2, "xblk.ini:7: [window] '=F5' has an empty key "
                            "name; ignored\n"));
    g_assert_nonnull(strstr(w2, "xblk.ini:8: '[states' is not a [group] "
                            "line"));
    g_assert_nonnull(strstr(w2, "xblk.ini:10: '[]' is not a valid group "
                            "name"));
    g_assert_cmpuint(count_lines(w2), ==, 5);
    g_assert_cmpint(cfg.scale, ==, 4);
    g_assert_cmpint(cfg.osd_seconds, ==, 7);
    ui_config_clear(&cfg);

    /* Only comments: nothing to say, the defaults. */
    g_autofree char *w3 = load_text("comments", "# nothing\n\n", -1, &cfg);
    g_assert_cmpstr(w3, ==, "");
    assert_defaults(&cfg);
    ui_config_clear(&cfg);

    /* Warnings may be NULL. */
    g_autofree char *path = write_ini("nullw", "junk\n", -1);
    g_assert_true(ui_config_load(path, &cfg, NULL, NULL));
    assert_defaults(&cfg);
    ui_config_clear(&cfg);
}

static void test_unknown(void)
{
    UiConfig cfg;
    g_autofree char *w = load_text("unknown",
        "[window]\n"
        "scal=3\n"
        "scale=3\n"
        "scale[de]=4\n"
        "[sound]\n"
        "volume=11\n"
        "[keyboard]\n"
        "jump=Space\n"
        "[hotkeys]\n"
        "rewind=F9\n", -1, &cfg);

    g_assert_nonnull(strstr(w, "xblk.ini:2: [window] unknown key 'scal'; "
                            "ignored\n"));
    g_assert_nonnull(strstr(w, "xblk.ini:4: [window] unknown key "
                            "'scale[de]'; ignored\n"));
    g_assert_nonnull(strstr(w, "xblk.ini:5: unknown group [sound]; "
                            "ignored\n"));
    g_assert_nonnull(strstr(w, "xblk.ini:8: [keyboard] unknown key 'jump'"));
    g_assert_nonnull(strstr(w, "xblk.ini:10: [hotkeys] unknown key "
                            "'rewind'"));
    g_assert_cmpuint(count_lines(w), ==, 5);
    g_assert_cmpint(cfg.scale, ==, 3);
    ui_config_clear(&cfg);
}

typedef struct BadValue {
    const char *group, *key, *value;
    const char *warning;            /* the whole line after "xblk.ini:2: " */
} BadValue;

static const BadValue bad_values[] = {
    { "window", "scale", "abc",
      "[window] scale: 'abc' is not a number from 1 to 8; using 2" },
    { "window", "scale", "0",
      "[window] scale: '0' is not a number from 1 to 8; using 2" },
    { "window", "scale", "9",
      "[window] scale: '9' is not a number from 1 to 8; using 2" },
    { "window", "scale", "2.5",
      "[window] scale: '2.5' is not a number from 1 to 8; using 2" },
    { "window", "scale", "",
      "[window] scale: '' is not a number from 1 to 8; using 2" },
    { "window", "scale", "99999999999999999999999",
      "[window] scale: '99999999999999999999999' is not a number from 1 to "
      "8; using 2" },
    { "states", "osd-seconds", "-1",
      "[states] osd-seconds: '-1' is not a number from 1 to 60; using 3" },
    { "window", "vsync", "maybe",
      "[window] vsync: 'maybe' is not true or false; using true" },
    { "states", "save-on-exit", "",
      "[states] save-on-exit: '' is not true or false; using false" },
    { "keyboard", "a", "A;;B",
      "[keyboard] a: empty name; using 'A'" },
    { "keyboard", "a", "\x01",
      "[keyboard] a: '?' contains a control character; using 'A'" },
    { "keyboard", "b", "Left\\tShift",
      "[keyboard] b: 'Left?Shift' contains a control character; using 'B'" },
    { "keyboard", "b", " \\t ",
      "[keyboard] b: empty name; using 'B'" },
    { "keyboard", "x", "\\q",
      NULL },                       /* GKeyFile's own escape message */
    { "keyboard", "y",
      "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK",
      "[keyboard] y: 'KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK...' is longer "
      "than 64 bytes; using 'Y'" },
    { "hotkeys", "quit", "Hyper+Q",
      "[hotkeys] quit: unknown modifier 'Hyper' (Shift, Ctrl, Alt or GUI); "
      "using 'Ctrl+Q'" },
    { "hotkeys", "save-slot1", "Shift+",
      "[hotkeys] save-slot1: 'Shift+' has no key after the last '+'; using "
      "'Shift+F5'" },
    { "hotkeys", "menu", "Ctrl++F1",
      "[hotkeys] menu: 'Ctrl++F1' has an empty part; using 'F1'" },
    { "hotkeys", "menu-combo", "back+",
      "[hotkeys] menu-combo: empty name; using 'back+start'" },
    { "hotkeys", "menu-combo", "back+select",
      "[hotkeys] menu-combo: 'select' is not an SDL game controller button "
      "or axis (a, b, x, y, back, start, leftshoulder, dpup, lefttrigger, "
      "-leftx...); using 'back+start'" },
    { "gamepad", "left-trigger", "lefttriger",
      "[gamepad] left-trigger: 'lefttriger' is not an SDL game controller "
      "button or axis (a, b, x, y, back, start, leftshoulder, dpup, "
      "lefttrigger, -leftx...); using 'lefttrigger'" },
    { "gamepad", "a", "+a",
      NULL },                       /* a button has no halves */
    { "gamepad", "b", "+-leftx",
      NULL },
    { "gamepad", "b", "leftx+-",
      NULL },
};

static void test_bad_values(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_values); i++) {
        const BadValue *b = &bad_values[i];
        g_autofree char *text = g_strdup_printf("[%s]\n%s=%s\n", b->group,
                                                b->key, b->value);
        UiConfig cfg;
        g_autofree char *w = load_text("bad", text, -1, &cfg);

        g_test_message("%s", text);
        g_assert_cmpuint(count_lines(w), ==, 1);
        g_assert_true(g_str_has_prefix(w, "xblk.ini:2: "));
        if (b->warning) {
            g_autofree char *line = g_strdup_printf("xblk.ini:2: %s\n",
                                                    b->warning);
            g_assert_cmpstr(w, ==, line);
        }
        assert_defaults(&cfg);
        ui_config_clear(&cfg);
    }
}

static void test_bindings_limits(void)
{
    UiConfig cfg;
    g_autofree char *w = load_text("limits",
        "[keyboard]\n"
        "a=A;B;C;D;E\n"
        "b=B;b;Q\n"
        "[hotkeys]\n"
        "quick-save=F5\n", -1, &cfg);

    g_assert_nonnull(strstr(w, "xblk.ini:2: [keyboard] a: 5 bindings, only "
                            "the first 4 are used\n"));
    g_assert_nonnull(strstr(w, "xblk.ini:5: [hotkeys] quick-save: 'F5' is "
                            "also bound to load-slot1, which takes it\n"));
    g_assert_cmpuint(count_lines(w), ==, 2);
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_A][3], ==, "D");
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_B][0], ==, "B");   /* deduplicated */
    g_assert_cmpstr(cfg.pad_keys[UI_PAD_B][1], ==, "Q");
    g_assert_null(cfg.pad_keys[UI_PAD_B][2]);
    g_assert_cmpint(ui_config_action_for(&cfg, "F5"), ==,
                    UI_ACTION_LOAD_SLOT1);
    ui_config_clear(&cfg);
}

/* ---- Paths ---- */

static void test_bad_paths(void)
{
    g_autofree char *dir = g_build_filename(test_dir, "isdir", "xblk.ini",
                                            NULL);
    g_autofree char *file = write_ini("plain", "[window]\n", -1);
    g_autofree char *under = g_build_filename(file, "xblk", "xblk.ini", NULL);
    g_autoptr(GString) w = g_string_new(NULL);
    GError *err = NULL;
    UiConfig cfg;

    /* A folder where the file should be: read fails, defaults, true. */
    g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
    g_assert_true(ui_config_load(dir, &cfg, w, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(w->str, ==, "xblk.ini: is not a regular file; using the "
                    "defaults\n");
    assert_defaults(&cfg);
    ui_config_clear(&cfg);

    /* Missing and cannot be created (a file where the folder should be). */
    g_string_truncate(w, 0);
    g_assert_false(ui_config_load(under, &cfg, w, &err));
    g_assert_nonnull(err);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, "cannot create folder"));
    g_clear_error(&err);
    assert_defaults(&cfg);
    ui_config_clear(&cfg);
    ui_config_defaults(&cfg);
    g_assert_false(ui_config_save(under, &cfg, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    ui_config_clear(&cfg);

    if (geteuid() == 0) {
        g_test_message("root: permissions are not enforced, skipping "
                       "chmod cases");
        return;
    }
    /* Unreadable file: a warning; unwritable folder: an error. */
    g_autofree char *locked = write_ini("locked", "[window]\nscale=3\n", -1);
    g_assert_cmpint(g_chmod(locked, 0), ==, 0);
    g_string_truncate(w, 0);
    g_assert_true(ui_config_load(locked, &cfg, w, &err));
    g_assert_no_error(err);
    g_assert_true(g_str_has_prefix(w->str, "xblk.ini: cannot be opened ("));
    assert_defaults(&cfg);
    ui_config_clear(&cfg);

    g_autofree char *ro = g_build_filename(test_dir, "ro", NULL);
    g_autofree char *ro_ini = g_build_filename(ro, "xblk.ini", NULL);
    g_assert_cmpint(g_mkdir(ro, 0500), ==, 0);
    g_assert_false(ui_config_load(ro_ini, &cfg, w, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    assert_defaults(&cfg);
    ui_config_clear(&cfg);
    g_chmod(ro, 0700);
    g_chmod(locked, 0600);
}

/* ---- Size and bytes ---- */

static void test_big_file(void)
{
    gsize len = 10 * 1024 * 1024;
    GString *big = g_string_sized_new(len + 64);
    UiConfig cfg;

    g_string_append(big, "[window]\nscale=3\n");
    while (big->len < len) {
        g_string_append(big, "# padding padding padding padding padding\n");
    }
    g_autofree char *w = load_text("big", big->str, big->len, &cfg);
    g_assert_cmpstr(w, ==, "xblk.ini: larger than 1024 KiB, too big for a "
                    "settings file; using the defaults\n");
    assert_defaults(&cfg);
    ui_config_clear(&cfg);
    g_string_free(big, true);

    /* Under the limit but full of mistakes: a bounded report. */
    GString *many = g_string_new("[window]\n");
    for (int i = 0; i < 20000; i++) {
        g_string_append(many, "scale=abc\nnonsense\n");
    }
    g_autofree char *w2 = load_text("many", many->str, many->len, &cfg);
    g_assert_cmpuint(count_lines(w2), <=, 41);
    g_assert_nonnull(strstr(w2, "more problems not shown\n"));
    assert_defaults(&cfg);
    ui_config_clear(&cfg);
    g_string_free(many, true);
}

static void test_bytes(void)
{
    static const char nul[] =
        "[window]\nscale=3\0junk\nvsync=false\n"
        "[states]\nosd-seconds=\xff\xfe\nconfirm-delete=false\n"
        "[\xc3\x28]\n";
    UiConfig cfg;
    g_autofree char *w = load_text("bytes", nul, sizeof(nul) - 1, &cfg);

    g_assert_nonnull(strstr(w, "xblk.ini:2: line contains a NUL byte; "
                            "ignored\n"));
    g_assert_nonnull(strstr(w, "xblk.ini:5: 'osd-seconds=?\?' is not valid "
                            "UTF-8; ignored\n"));
    g_assert_nonnull(strstr(w, "xblk.ini:7: '[?(]' is not valid UTF-8"));
    g_assert_cmpuint(count_lines(w), ==, 3);
    g_assert_cmpint(cfg.scale, ==, 2);
    g_assert_false(cfg.vsync);
    g_assert_cmpint(cfg.osd_seconds, ==, 3);
    g_assert_false(cfg.confirm_delete);
    ui_config_clear(&cfg);

    /* Noise: never a crash, always something said, a full config. */
    GRand *rand = g_rand_new_with_seed(13);
    for (int round = 0; round < 20; round++) {
        gsize n = 4096;
        char *noise = g_malloc(n);
        for (gsize i = 0; i < n; i++) {
            noise[i] = g_rand_int_range(rand, 0, 256);
        }
        if (round & 1) {
            memcpy(noise, "[keyboard]\n", 11);
        }
        g_autofree char *wn = load_text("noise", noise, n, &cfg);
        g_assert_cmpstr(wn, !=, "");
        g_assert_cmpint(cfg.scale, >=, 1);
        g_assert_cmpint(cfg.scale, <=, 8);
        ui_config_clear(&cfg);
        g_free(noise);
    }
    g_rand_free(rand);
}

static void rm_rf(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
            !g_file_test(p, G_FILE_TEST_IS_SYMLINK)) {
            g_chmod(p, 0700);
            rm_rf(p);
        } else {
            g_unlink(p);
        }
    }
    g_rmdir(path);
}

int main(int argc, char **argv)
{
    GError *err = NULL;
    int ret;

    test_dir = g_dir_make_tmp("test-config-XXXXXX", &err);
    g_assert_no_error(err);
    g_autofree char *xdg = g_build_filename(test_dir, "xdg", NULL);
    g_setenv("XDG_CONFIG_HOME", xdg, true);

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ui/config/first-run", test_first_run);
    g_test_add_func("/ui/config/defaults", test_defaults);
    g_test_add_func("/ui/config/round-trip", test_round_trip);
    g_test_add_func("/ui/config/every-key", test_every_key);
    g_test_add_func("/ui/config/chords", test_chords);
    g_test_add_func("/ui/config/not-ini", test_not_ini);
    g_test_add_func("/ui/config/unknown", test_unknown);
    g_test_add_func("/ui/config/bad-values", test_bad_values);
    g_test_add_func("/ui/config/binding-limits", test_bindings_limits);
    g_test_add_func("/ui/config/bad-paths", test_bad_paths);
    g_test_add_func("/ui/config/big-file", test_big_file);
    g_test_add_func("/ui/config/bytes", test_bytes);
    ret = g_test_run();
    rm_rf(test_dir);
    g_free(test_dir);
    return ret;
}
