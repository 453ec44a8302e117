/*
 * ui.c - the front end's glue (ui/ui.h): config, save-state library,
 * on-screen messages and the window, and what each hotkey does.
 *
 * Owns the one Ui of the process: the loaded UiConfig, the UiLibrary, the
 * UiOsd and (with SDL) the window.  Hotkeys map to library operations,
 * which are asynchronous: the key returns at once and the operation's
 * done message lands on the OSD (errors in red), so the main loop never
 * waits for the disk and the vCPU never waits for the UI.
 *
 * Invariants:
 *  - A load that would roll back in-game saves (config rollback-warning)
 *    first shows the library's warning; the same key again within
 *    ARM_US loads.
 *  - Quitting (Ctrl+Q, the window's close) with save-on-exit saves the
 *    resume state first and asks for the shutdown when it is written;
 *    ui_stop saves it for any other way out (SIGTERM, QMP quit) unless
 *    the guest powered off, and waits for it with the loop.
 *  - Resume-on-start offers the resume state once the loop runs (after
 *    machine_start): a question over the game (ui_menu_ask) while the
 *    fresh boot runs; "Resume" loads it and says "Resumed '<title>'",
 *    "Start over" or Esc leaves the fresh boot.
 *  - The save-state menu (ui/menu.h) acts on the library through
 *    menu_ops below; while it is open the window gives it every key
 *    (ui/sdl/window.c), so only the menu's own toggle reaches ui_action.
 *    Each of its operations refreshes it when done.
 *  - Main loop thread only.
 */
#include "ui/ui.h"
#include "hw/runstate.h"
#include "ui/config.h"
#include "ui/library.h"
#include "ui/menu.h"
#include "ui/osd.h"
#include "hw/error.h"
#include "ui/loop.h"
#include <stdlib.h>
#include <string.h>
#ifdef CONFIG_SDL
#include "ui/sdl/sdl-ui.h"
#endif

bool ui_display_available(void)
{
#ifdef CONFIG_SDL
    const char *x = getenv("DISPLAY"), *wl = getenv("WAYLAND_DISPLAY");
    return (x && *x) || (wl && *wl);
#else
    return false;
#endif
}

#ifdef CONFIG_SDL

#define ARM_US          (3 * G_USEC_PER_SEC)
#define TITLE_POLL_MS   100
#define RESUME_RETRY_MS 200

typedef struct Ui {
    XboxMachine *m;
    UiConfig cfg;
    UiLibrary *lib;             /* NULL: save states unavailable */
    UiOsd *osd;
    UiMenu *menu;               /* NULL without the library */
    SdlUi *sdl;
    guint title_timer, resume_timer;
    char *shown_title;
    UiAction armed;             /* a load waiting for its second press */
    int64_t armed_until_us;
    UiChangeDiscFn *change_disc;
    void *change_disc_opaque;
    char *asked_tag, *asked_disc;   /* a hotkey load asking about its disc */
    bool asked_mount;               /* ... offering to insert that disc */
    bool quitting, stopping, resume_saved;
} Ui;

static Ui *ui_current;

/* ---- operations and their messages ---- */

static void op_done(void *opaque, bool ok, const char *message)
{
    Ui *ui = opaque;
    ui_osd_set_progress(ui->osd, 0, 0);
    if (message && *message) {
        ui_osd_post(ui->osd, ok ? UI_OSD_INFO : UI_OSD_ERROR, "%s", message);
    }
}

static void op_progress(void *opaque, uint64_t done, uint64_t total)
{
    Ui *ui = opaque;
    ui_osd_set_progress(ui->osd, done, total);
}

/* An operation that was refused says why on screen. */
static void op_started(Ui *ui, bool ok, GError *err)
{
    if (!ok) {
        ui_osd_post(ui->osd, UI_OSD_ERROR, "%s",
                    err ? err->message : "Refused");
    }
    g_clear_error(&err);
}

static bool have_library(Ui *ui)
{
    if (!ui->lib) {
        ui_osd_post(ui->osd, UI_OSD_ERROR, "Save states are not available");
    }
    return ui->lib != NULL;
}

/* ---- the save-state menu's view of the library ---- */

/* A menu operation ended: its message, and the list again. */
static void menu_op_done(void *opaque, bool ok, const char *message)
{
    Ui *ui = opaque;
    op_done(ui, ok, message);
    if (ui->menu) {
        ui_menu_refresh(ui->menu);
    }
}

static GPtrArray *menu_list(void *opaque)
{
    Ui *ui = opaque;
    return ui_library_list(ui->lib, false, NULL);
}

static const char *menu_title(void *opaque)
{
    Ui *ui = opaque;
    return ui_library_title(ui->lib);
}

static bool menu_load(void *opaque, const char *tag, GError **errp)
{
    Ui *ui = opaque;
    return ui_library_load(ui->lib, tag, menu_op_done, ui, errp);
}

static bool menu_save_over(void *opaque, const char *tag, GError **errp)
{
    Ui *ui = opaque;
    return ui_library_save_over(ui->lib, tag, menu_op_done, ui, errp);
}

static bool menu_delete(void *opaque, const char *tag, GError **errp)
{
    Ui *ui = opaque;
    return ui_library_delete(ui->lib, tag, menu_op_done, ui, errp);
}

static bool menu_rename(void *opaque, const char *tag, const char *name,
                        GError **errp)
{
    Ui *ui = opaque;
    return ui_library_rename(ui->lib, tag, name, errp);
}

static bool menu_bind(void *opaque, const char *tag, int slot,
                      GError **errp)
{
    Ui *ui = opaque;
    return ui_library_bind(ui->lib, tag, slot, errp);
}

static char *menu_rollback_warning(void *opaque, const char *tag)
{
    Ui *ui = opaque;
    return ui_library_rollback_warning(ui->lib, tag);
}

static bool menu_disc_mismatch(void *opaque, const char *tag, char **disc)
{
    Ui *ui = opaque;
    return ui_library_disc_mismatch(ui->lib, tag, disc);
}

static void menu_message(void *opaque, bool error, const char *text)
{
    Ui *ui = opaque;
    ui_osd_post(ui->osd, error ? UI_OSD_ERROR : UI_OSD_INFO, "%s", text);
}

static void menu_changed(void *opaque)
{
    Ui *ui = opaque;
    if (ui->sdl) {
        sdl_ui_redraw(ui->sdl);
    }
}

/* Opening a disc image is an open() and a read of its header on the main
 * loop, as QMP's blockdev-change-medium does; the vCPU and the render
 * thread do not wait for it. */
static bool menu_mount_disc(void *opaque, const char *disc, GError **errp)
{
    Ui *ui = opaque;
    if (!ui->change_disc) {
        hw_error_set(errp, "This front end cannot change discs");
        return false;
    }
    if (!ui->change_disc(ui->change_disc_opaque, disc, errp)) {
        return false;
    }
    g_autofree char *base = g_path_get_basename(disc);
    ui_osd_post(ui->osd, UI_OSD_INFO, "Inserted '%s'", base);
    return true;
}

static const UiMenuOps menu_ops = {
    .list = menu_list,
    .title = menu_title,
    .load = menu_load,
    .save_over = menu_save_over,
    .delete = menu_delete,
    .rename = menu_rename,
    .bind = menu_bind,
    .rollback_warning = menu_rollback_warning,
    .disc_mismatch = menu_disc_mismatch,
    .mount_disc = menu_mount_disc,
    .message = menu_message,
    .changed = menu_changed,
};

/* The newest state of this title, or NULL. */
static char *newest_tag(Ui *ui)
{
    GPtrArray *list = ui_library_list(ui->lib, true, NULL);
    char *tag = NULL;
    if (list && list->len) {
        const UiStateEntry *e = g_ptr_array_index(list, 0);
        tag = g_strdup(e->tag);
    }
    if (list) {
        g_ptr_array_unref(list);
    }
    return tag;
}

/* True when the load of tag by action may go ahead now; otherwise the
 * rollback warning is on screen and the action is armed. */
static bool load_confirmed(Ui *ui, UiAction action, const char *tag)
{
    int64_t now = g_get_monotonic_time();
    if (ui->armed == action && now < ui->armed_until_us) {
        ui->armed = UI_ACTION_NONE;
        return true;
    }
    ui->armed = UI_ACTION_NONE;
    if (!ui->cfg.rollback_warning || !tag) {
        return true;
    }
    g_autofree char *warning = ui_library_rollback_warning(ui->lib, tag);
    if (!warning) {
        return true;
    }
    ui->armed = action;
    ui->armed_until_us = now + ARM_US;
    ui_osd_post(ui->osd, UI_OSD_WARNING,
                "%s \u2014 press the key again to load", warning);
    return false;
}

static void asked_clear(Ui *ui)
{
    g_clear_pointer(&ui->asked_tag, g_free);
    g_clear_pointer(&ui->asked_disc, g_free);
}

/* The answer to "'NAME' was saved with another disc": insert that disc
 * and load, load anyway, or cancel (-1: dismissed). */
static void disc_answered(void *opaque, int choice)
{
    Ui *ui = opaque;
    GError *err = NULL;
    if (ui->stopping || !ui->asked_tag) {
        return;
    }
    if (!ui->asked_mount && choice >= 0) {
        choice++;               /* no "Insert" offered */
    }
    if (choice == 0 && !menu_mount_disc(ui, ui->asked_disc, &err)) {
        op_started(ui, false, err);
    } else if (choice == 0 || choice == 1) {
        op_started(ui, ui_library_load(ui->lib, ui->asked_tag, op_done, ui,
                                       &err), err);
    }
    asked_clear(ui);
}

/* True when the state's disc is the one inserted; otherwise the question
 * is on screen and disc_answered goes on. */
static bool disc_confirmed(Ui *ui, const char *tag)
{
    static const char *const choices[] = {
        "Insert that disc and load", "Load anyway", "Cancel",
    };
    char *disc = NULL;
    if (!tag || !ui_library_disc_mismatch(ui->lib, tag, &disc)) {
        return true;
    }
    const UiStateEntry *e = ui_library_lookup(ui->lib, tag);
    g_autofree char *base = disc ? g_path_get_basename(disc) : NULL;
    g_autofree char *question = g_strdup_printf(
        "'%s' was saved with another disc (%s)", e ? e->name : tag,
        base ? base : "none");
    bool mount = ui->change_disc && disc;
    const char *const *offer = mount ? choices : choices + 1;
    int n = mount ? 3 : 2;
    if (!ui_menu_ask(ui->menu, question, offer, n, n - 1, disc_answered,
                     ui)) {
        ui_osd_post(ui->osd, UI_OSD_ERROR, "%s", question);
        g_free(disc);
        return false;
    }
    asked_clear(ui);
    ui->asked_tag = g_strdup(tag);
    ui->asked_disc = disc;
    ui->asked_mount = mount;
    return false;
}

static void do_load_slot(Ui *ui, UiAction action, int slot)
{
    const UiStateEntry *e = ui_library_slot(ui->lib, slot);
    GError *err = NULL;
    if (load_confirmed(ui, action, e ? e->tag : NULL) &&
        disc_confirmed(ui, e ? e->tag : NULL)) {
        op_started(ui, ui_library_load_slot(ui->lib, slot, op_done, ui,
                                            &err), err);
    }
}

static void do_load_newest(Ui *ui)
{
    g_autofree char *tag = newest_tag(ui);
    GError *err = NULL;
    if (load_confirmed(ui, UI_ACTION_LOAD_NEWEST, tag) &&
        disc_confirmed(ui, tag)) {
        op_started(ui, ui_library_load_newest(ui->lib, op_done, ui, &err),
                   err);
    }
}

/* Save states of the current title by hotkey. */
static void do_state_action(Ui *ui, UiAction a)
{
    GError *err = NULL;
    bool ok;
    if (a >= UI_ACTION_LOAD_SLOT1 && a <= UI_ACTION_LOAD_SLOT4) {
        do_load_slot(ui, a, a - UI_ACTION_LOAD_SLOT1 + 1);
        return;
    }
    if (a == UI_ACTION_LOAD_NEWEST) {
        do_load_newest(ui);
        return;
    }
    if (a >= UI_ACTION_SAVE_SLOT1 && a <= UI_ACTION_SAVE_SLOT4) {
        ok = ui_library_save_slot(ui->lib, a - UI_ACTION_SAVE_SLOT1 + 1,
                                  op_done, ui, &err);
    } else if (a == UI_ACTION_QUICK_SAVE) {
        ok = ui_library_quick_save(ui->lib, op_done, ui, &err);
    } else if (a == UI_ACTION_UNDO_LOAD) {
        ok = ui_library_undo_load(ui->lib, op_done, ui, &err);
    } else {
        ok = ui_library_undo_save(ui->lib, op_done, ui, &err);
    }
    op_started(ui, ok, err);
}

/* ---- quitting and resuming ---- */

static bool want_resume_save(Ui *ui)
{
    return ui->lib && ui->cfg.save_on_exit && !ui->resume_saved &&
           !machine_guest_shut_down(ui->m);
}

static void resume_saved(void *opaque, bool ok, const char *message)
{
    Ui *ui = opaque;
    op_done(ui, ok, message);
    if (ui->quitting) {
        runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
    }
}

/* Starts saving the resume state; false if it could not start. */
static bool start_resume_save(Ui *ui)
{
    GError *err = NULL;
    ui->resume_saved = true;    /* one attempt, whatever comes of it */
    if (!ui_library_save_resume(ui->lib, resume_saved, ui, &err)) {
        ui_warn("the resume state was not saved: %s", err->message);
        g_error_free(err);
        return false;
    }
    return true;
}

/* Ctrl+Q or the window's close: as SIGTERM, after the resume state. */
static void ui_quit(Ui *ui)
{
    if (ui->quitting) {
        /* A second request does not wait for the save (ui_stop does). */
        runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
        return;
    }
    ui->quitting = true;
    if (want_resume_save(ui) && start_resume_save(ui)) {
        ui_osd_post(ui->osd, UI_OSD_INFO, "Saving where you left off\u2026");
        return;
    }
    runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
}

static void resumed(void *opaque, bool ok, const char *message)
{
    Ui *ui = opaque;
    const char *title = ui_library_title(ui->lib);
    ui_osd_set_progress(ui->osd, 0, 0);
    if (!ok) {
        ui_osd_post(ui->osd, UI_OSD_ERROR, "%s", message);
    } else if (title && *title) {
        ui_osd_post(ui->osd, UI_OSD_INFO, "Resumed '%s'", title);
    } else {
        ui_osd_post(ui->osd, UI_OSD_INFO, "Resumed");
    }
}

static void resume_now(Ui *ui)
{
    GError *err = NULL;
    if (!ui_library_load_resume(ui->lib, resumed, ui, &err)) {
        ui_osd_post(ui->osd, UI_OSD_ERROR, "Cannot resume: %s",
                    err->message);
        g_error_free(err);
    }
}

/* The answer to "Resume ... where you left off?": 0 resumes; 1 (Start
 * over) and -1 (dismissed) leave the fresh boot running. */
static void resume_answered(void *opaque, int choice)
{
    Ui *ui = opaque;
    if (ui->stopping) {
        return;
    }
    if (choice == 0) {
        resume_now(ui);
    } else {
        ui_osd_post(ui->osd, UI_OSD_INFO, "Started over");
    }
}

/* Runs once the loop turns (the machine runs by then): offers the
 * resume state.  The fresh boot keeps running while the question is
 * open; a "Resume" replaces it with the resume state. */
static gboolean resume_on_start(gpointer opaque)
{
    static const char *const choices[] = { "Resume", "Start over" };
    Ui *ui = opaque;
    ui->resume_timer = 0;
    const char *title = ui_library_title(ui->lib);
    g_autofree char *question = title && *title
        ? g_strdup_printf("Resume '%s' where you left off?", title)
        : g_strdup("Resume where you left off?");
    if (!ui_menu_ask(ui->menu, question, choices, G_N_ELEMENTS(choices), 0,
                     resume_answered, ui)) {
        /* The menu is open (F1 at once): asked when it closes. */
        ui->resume_timer = ui_loop_timeout_add(machine_engine(ui->m),
                                               RESUME_RETRY_MS,
                                               resume_on_start, ui);
    }
    return G_SOURCE_REMOVE;
}

/* ---- the window's callbacks ---- */

static void ui_action(void *opaque, UiAction a)
{
    Ui *ui = opaque;
    if (ui->stopping) {
        return;
    }
    switch (a) {
    case UI_ACTION_FULLSCREEN:
        sdl_ui_toggle_fullscreen(ui->sdl);
        break;
    case UI_ACTION_QUIT:
        ui_quit(ui);
        break;
    case UI_ACTION_MENU:
        if (ui->menu) {
            ui_menu_toggle(ui->menu);
        } else {
            have_library(ui);
        }
        break;
    case UI_ACTION_NONE:
    case UI_ACTION_COUNT:
        break;
    default:
        if (have_library(ui)) {
            do_state_action(ui, a);
        }
        break;
    }
}

static void ui_close(void *opaque)
{
    Ui *ui = opaque;
    if (!ui->stopping) {
        ui_quit(ui);
    }
}

/* "xblk — TITLE — running|paused", set when it changes. */
static gboolean title_poll(gpointer opaque)
{
    Ui *ui = opaque;
    const char *title = ui->lib ? ui_library_title(ui->lib) : "";
    const char *state = runstate_is_running() ? "running" : "paused";
    /* The em dash needs a UTF-8 locale: X11 converts titles through the
     * locale's character set (and tools reading WM_NAME in the C locale,
     * xdotool's --name, fail on anything else than ASCII). */
    const char *dash = g_get_charset(NULL) ? " \u2014 " : " - ";
    g_autofree char *text = title && *title
        ? g_strdup_printf("xblk%s%s%s%s", dash, title, dash, state)
        : g_strdup_printf("xblk%s%s", dash, state);
    if (g_strcmp0(text, ui->shown_title)) {
        sdl_ui_set_title(ui->sdl, text);
        g_free(ui->shown_title);
        ui->shown_title = g_steal_pointer(&text);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- start and stop ---- */

static void report_lines(const char *text)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (**l) {
            ui_warn("%s", *l);
        }
    }
}

static void load_config(Ui *ui)
{
    g_autofree char *path = ui_config_default_path();
    g_autoptr(GString) warnings = g_string_new(NULL);
    GError *err = NULL;
    if (!ui_config_load(path, &ui->cfg, warnings, &err)) {
        ui_warn("%s (using the defaults)", err->message);
        g_error_free(err);
    }
    report_lines(warnings->str);
}

static void open_library(Ui *ui)
{
    g_autofree char *dir = g_build_filename(g_get_user_config_dir(), "xblk",
                                            NULL);
    GError *err = NULL;
    ui->lib = ui_library_new(ui->m, dir, &err);
    if (!ui->lib) {
        ui_warn("save states by hotkey are not available: %s",
                    err->message);
        g_error_free(err);
        return;
    }
    ui_library_set_progress(ui->lib, op_progress, ui);
}

static void ui_free(Ui *ui)
{
    if (ui->title_timer) {
        ui_loop_remove(machine_engine(ui->m), ui->title_timer);
    }
    if (ui->resume_timer) {
        ui_loop_remove(machine_engine(ui->m), ui->resume_timer);
    }
    /* The window first: its render thread snapshots the menu. */
    sdl_ui_close(ui->sdl);
    ui->sdl = NULL;
    ui_menu_free(ui->menu);
    if (ui->lib) {
        ui_library_free(ui->lib);
    }
    ui_osd_free(ui->osd);
    ui_config_clear(&ui->cfg);
    g_free(ui->shown_title);
    asked_clear(ui);
    g_free(ui);
}

bool ui_start(XboxMachine *m, const UiOptions *o, GError **errp)
{
    static const SdlUiCallbacks callbacks = {
        .action = ui_action, .close = ui_close,
    };
    if (!ui_display_available()) {
        /* SDL would fall back to a driver with no screen a player sees;
         * the words are SDL's own for this case. */
        hw_error_set(errp, "Could not initialize SDL(No available video "
                     "device) - exiting");
        return false;
    }
    Ui *ui = g_new0(Ui, 1);
    ui->m = m;
    ui->change_disc = o ? o->change_disc : NULL;
    ui->change_disc_opaque = o ? o->change_disc_opaque : NULL;
    load_config(ui);
    ui->osd = ui_osd_new(ui->cfg.osd_seconds);
    ui->sdl = sdl_ui_open(m, &ui->cfg, ui->osd, o && o->full_screen,
                          &callbacks, ui, errp);
    if (!ui->sdl) {
        ui_free(ui);
        return false;
    }
    open_library(ui);
    if (ui->lib) {
        ui->menu = ui_menu_new(&menu_ops, ui, &ui->cfg);
        sdl_ui_set_menu(ui->sdl, ui->menu);
    }
    title_poll(ui);
    ui->title_timer = ui_loop_timeout_add(machine_engine(m), TITLE_POLL_MS,
                                          title_poll, ui);
    if (ui->lib && ui->cfg.resume_on_start &&
        ui_library_has_resume(ui->lib)) {
        ui->resume_timer = ui_loop_timeout_add(machine_engine(m), 0,
                                               resume_on_start, ui);
    }
    ui_current = ui;
    return true;
}

void ui_stop(void)
{
    Ui *ui = ui_current;
    if (!ui) {
        return;
    }
    ui->stopping = true;
    if (want_resume_save(ui)) {
        start_resume_save(ui);
    }
    /* Whatever save or load is in flight ends before the machine goes. */
    while (ui->lib && ui_library_busy(ui->lib)) {
        ui_loop_iterate(machine_engine(ui->m));
    }
    ui_current = NULL;
    ui_free(ui);
}

#else   /* !CONFIG_SDL: headless only */

bool ui_start(XboxMachine *m, const UiOptions *o, GError **errp)
{
    hw_error_set(errp, "Display 'sdl' is not available.");
    return false;
}

void ui_stop(void)
{
}

#endif
