/*
 * menu.h - the save-state menu's model (docs/ui.md, "The save-state
 * menu"): the player's states as rows (current title first, newest
 * first, a "this title only" filter), search as you type, selection and
 * scrolling, inline rename, and the questions asked before a load,
 * an overwrite or a delete.  No SDL and no GL here, as ui/osd.h: the
 * window translates its events into UiMenuInput calls, a renderer draws
 * snapshots (UiMenuView) of it.
 *
 * The model reaches the save states only through a UiMenuOps table
 * (ui.c fills it with ui/library.h calls; tests with a fake), so every
 * flow is testable without a machine.
 *
 * Invariants:
 *  - The rows are the model's own copies (thumbnails referenced, not
 *    copied), taken at open and at each ui_menu_refresh: the library's
 *    entries are borrowed only until its next change.
 *  - 0 <= selected < n_visible (or 0 with no rows); top <= selected <
 *    top + page_rows; any input, any byte string typed, keeps that.
 *  - The search string is valid UTF-8 of at most UI_MENU_SEARCH_MAX
 *    bytes (invalid bytes become U+FFFD); the rename buffer likewise of
 *    at most UI_MENU_NAME_MAX characters.
 *  - Thread-safe: input comes on the main loop, the render thread only
 *    takes snapshots; a mutex covers both.
 */
#ifndef XBLK_UI_MENU_H
#define XBLK_UI_MENU_H

#include "ui/config.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define UI_MENU_SEARCH_MAX  256     /* bytes */
#define UI_MENU_NAME_MAX    64      /* characters, as ui_library_rename */
#define UI_MENU_MAX_CHOICES 3

typedef struct UiMenu UiMenu;
typedef struct UiStateEntry UiStateEntry;

/* What the model asks of the save states (ui/library.h semantics). */
typedef struct UiMenuOps {
    /* Every visible state, newest first (a GPtrArray of borrowed
     * UiStateEntry, unref'd by the menu right after copying). */
    GPtrArray *(*list)(void *opaque);
    /* The inserted disc's title ("" without a disc). */
    const char *(*title)(void *opaque);
    /* Asynchronous operations: true when started (the result goes to
     * the OSD by the caller's done callback), false with *errp. */
    bool (*load)(void *opaque, const char *tag, GError **errp);
    bool (*save_over)(void *opaque, const char *tag, GError **errp);
    bool (*delete)(void *opaque, const char *tag, GError **errp);
    /* Synchronous, index only. */
    bool (*rename)(void *opaque, const char *tag, const char *name,
                   GError **errp);
    bool (*bind)(void *opaque, const char *tag, int slot, GError **errp);
    /* The warning text, or NULL (ui_library_rollback_warning). */
    char *(*rollback_warning)(void *opaque, const char *tag);
    /* ui_library_disc_mismatch. */
    bool (*disc_mismatch)(void *opaque, const char *tag, char **disc);
    /* Inserts disc into the drive; NULL when the host cannot. */
    bool (*mount_disc)(void *opaque, const char *disc, GError **errp);
    /* A message for the player (errors of refused operations). */
    void (*message)(void *opaque, bool error, const char *text);
    /* The model changed: draw again (any thread safe to call from). */
    void (*changed)(void *opaque);
} UiMenuOps;

/* Input, as the window translates it (keys, mouse, gamepad). */
typedef enum UiMenuInput {
    UI_MENU_IN_UP, UI_MENU_IN_DOWN,
    UI_MENU_IN_PAGE_UP, UI_MENU_IN_PAGE_DOWN,
    UI_MENU_IN_HOME, UI_MENU_IN_END,
    UI_MENU_IN_LEFT, UI_MENU_IN_RIGHT,  /* a dialog's choices */
    UI_MENU_IN_ACCEPT,          /* Return, gamepad A: load / confirm */
    UI_MENU_IN_BACK,            /* Esc, gamepad B: cancel / close */
    UI_MENU_IN_BACKSPACE,
    UI_MENU_IN_RENAME,          /* F2 */
    UI_MENU_IN_DELETE,          /* Delete, gamepad Y */
    UI_MENU_IN_SAVE_OVER,       /* Ctrl+S, gamepad X */
    UI_MENU_IN_FILTER,          /* Tab, gamepad back: this title only */
    UI_MENU_IN_BIND1, UI_MENU_IN_BIND2,     /* F5..F8: bind or unbind */
    UI_MENU_IN_BIND3, UI_MENU_IN_BIND4,
} UiMenuInput;

typedef enum UiMenuMode {
    UI_MENU_CLOSED,
    UI_MENU_BROWSE,
    UI_MENU_RENAME,             /* the selected row's name is edited */
    UI_MENU_DIALOG,             /* a question with choices */
} UiMenuMode;

/* One row as drawn: every text ready to show. */
typedef struct UiMenuRow {
    char *tag;                  /* key of the thumbnail cache */
    GBytes *thumbnail_png;      /* referenced; NULL: none */
    char *name, *title, *date, *frame, *size;
    char *key;                  /* "F5" when bound, else "" */
} UiMenuRow;

typedef struct UiMenuView {
    UiMenuMode mode;
    char *title;                /* "Save states — TITLE" */
    char *filter;               /* "This title only" / "All titles" */
    char *search;               /* what was typed ("" none) */
    char *footer;               /* the keys, from the config's chords */
    UiMenuRow *rows;            /* the visible page */
    int n_rows;
    int first;                  /* index of rows[0] among the matches */
    int selected;               /* index into rows, -1 none on the page */
    int n_matches, n_total;
    char *edit;                 /* rename buffer (mode RENAME) */
    char *question;             /* mode DIALOG */
    char *choices[UI_MENU_MAX_CHOICES];
    int n_choices, choice;
    bool bare;                  /* a question on its own (ui_menu_ask):
                                   no list behind it, the game shows */
    uint64_t generation;        /* grows with each change */
} UiMenuView;

/* The answer to a question of ui_menu_ask: the choice's index, or -1
 * when it was dismissed (Esc, gamepad B, the menu's toggle, close). */
typedef void (*UiMenuAnswerFn)(void *opaque, int choice);

/* cfg is borrowed (chords, confirm options) for the menu's life. */
UiMenu *ui_menu_new(const UiMenuOps *ops, void *opaque,
                    const UiConfig *cfg);
void ui_menu_free(UiMenu *menu);

void ui_menu_open(UiMenu *menu);
void ui_menu_close(UiMenu *menu);
void ui_menu_toggle(UiMenu *menu);
bool ui_menu_is_open(UiMenu *menu);
/* A question on its own, over the game (no list): the model opens in
 * mode DIALOG with a bare view, takes the same input as the menu's own
 * questions (arrows, Return / A, Esc / B, a click on a choice), closes
 * and then calls done once with the answer.  Closing it any other way
 * (ui_menu_close, the toggle) answers -1; ui_menu_free answers nothing.
 * Refused (false) while the menu is open.  At most UI_MENU_MAX_CHOICES
 * choices; choice is the one selected first. */
bool ui_menu_ask(UiMenu *menu, const char *question,
                 const char *const *choices, int n_choices, int choice,
                 UiMenuAnswerFn done, void *opaque);
/* Reads the list again (after an operation ended), keeping the
 * selection on the same state where it still exists. */
void ui_menu_refresh(UiMenu *menu);

/* ---- input (main loop) ---- */
void ui_menu_input(UiMenu *menu, UiMenuInput in);
/* Typed text (UTF-8 as SDL_TEXTINPUT delivers it; any bytes accepted):
 * into the search, or the rename buffer while renaming. */
void ui_menu_text(UiMenu *menu, const char *text);
/* Mouse on the page's row (0: the first drawn); double loads. */
void ui_menu_click(UiMenu *menu, int page_row, bool double_click);
/* Where the renderer drew the open question's choices, in drawable
 * pixels (x, y, w, h each; render thread): clicks are matched against
 * them.  n 0: none drawn. */
void ui_menu_set_choice_boxes(UiMenu *menu, const int (*boxes)[4], int n);
/* A click at drawable pixel (x, y): true when it hit a choice of the
 * open question, which is then the answer. */
bool ui_menu_click_at(UiMenu *menu, int x, int y);
/* Wheel: positive scrolls up. */
void ui_menu_wheel(UiMenu *menu, int steps);
/* How many rows the renderer fits on a page (at least 1). */
void ui_menu_set_page_rows(UiMenu *menu, int rows);

/* ---- state, for the glue and tests ---- */
UiMenuMode ui_menu_mode(UiMenu *menu);
/* The selected state's tag (owned by the caller), or NULL. */
char *ui_menu_selected_tag(UiMenu *menu);

/* What to draw; false when closed.  Free with ui_menu_view_clear. */
bool ui_menu_snapshot(UiMenu *menu, UiMenuView *view);
void ui_menu_view_clear(UiMenuView *view);

/* "12.3 MB", "640 KB", "512 B" (tests). */
char *ui_menu_format_size(uint64_t bytes);

#endif
