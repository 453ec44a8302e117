/*
 * fuzz-config.c - libFuzzer target: the player's settings file
 * (ui/config.c), an INI file checked line by line and value by value.
 *
 * Per input, in the process's scratch folder (fuzz-common.h):
 *   1. the bytes become xblk.ini and ui_config_load() reads them with
 *      warnings collected; it must succeed (the file exists);
 *   2. the loaded settings are written with ui_config_save() to
 *      saved.ini and read back: the result must equal what was loaded,
 *      without a warning (but the one a chord bound to two actions gets
 *      at every load) - whatever a file held, what xblk keeps of it is
 *      valid and survives a save;
 *   3. every chord the settings hold maps back to its action, and the
 *      first line of the input goes through ui_config_normalize_chord()
 *      and, when accepted, is stable under normalising again.
 * A violated invariant aborts (a finding).  Both files are removed
 * before returning.
 */
#include "fuzz-common.h"
#include "ui/config.h"
#include <stdio.h>

static char *ini_path, *saved_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ini_path = fuzz_path("xblk.ini");
    saved_path = fuzz_path("saved.ini");
    return 0;
}

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "config: %s\n%s\n", what, detail ? detail : "");
    abort();
}

static void check_chord(const uint8_t *data, size_t size)
{
    size_t n = 0;
    while (n < size && n < 256 && data[n] != '\n') {
        n++;
    }
    g_autofree char *line = g_strndup((const char *)data, n);
    GError *err = NULL;
    g_autofree char *c = ui_config_normalize_chord(line, &err);
    if (!c) {
        g_clear_error(&err);
        return;
    }
    g_autofree char *c2 = ui_config_normalize_chord(c, &err);
    if (!c2 || strcmp(c, c2)) {
        fail("a normalised chord changes when normalised again", c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ini_path) {
        LLVMFuzzerInitialize(NULL, NULL);
    }
    fuzz_write_file(ini_path, data, size);
    UiConfig cfg, back;
    GString *warnings = g_string_new(NULL);
    GError *err = NULL;
    if (!ui_config_load(ini_path, &cfg, warnings, &err)) {
        fail("an existing file was not loaded", err->message);
    }

    if (!ui_config_save(saved_path, &cfg, &err)) {
        fail("the settings could not be saved", err->message);
    }
    GString *again = g_string_new(NULL);
    if (!ui_config_load(saved_path, &back, again, &err)) {
        fail("the saved file was not loaded", err->message);
    }
    /* Only a chord bound to two actions is kept and warned about again
     * (the first action in enum order takes it, at every load). */
    g_auto(GStrv) lines = g_strsplit(again->str, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (lines[i][0] && !strstr(lines[i], "is also bound to")) {
            fail("the saved file gives warnings", again->str);
        }
    }
    if (!ui_config_equal(&cfg, &back)) {
        fail("the saved file reads back different settings", warnings->str);
    }
    for (int a = UI_ACTION_NONE + 1; a < UI_ACTION_COUNT; a++) {
        for (int i = 0; i < UI_MAX_BINDINGS; i++) {
            const char *chord = cfg.hotkeys[a][i];
            if (chord && ui_config_action_for(&cfg, chord) == UI_ACTION_NONE) {
                fail("a bound chord triggers nothing", chord);
            }
        }
    }
    check_chord(data, size);

    ui_config_clear(&cfg);
    ui_config_clear(&back);
    g_string_free(warnings, TRUE);
    g_string_free(again, TRUE);
    g_unlink(ini_path);
    g_unlink(saved_path);
    return 0;
}
