/*
 * test-menu.c - the save-state menu's model (ui/menu.c) over a fake
 * library (a UiMenuOps table on an array of entries), without SDL or a
 * machine.
 *
 * Covers: order (this title first, newest first) and the title filter;
 * search (case-insensitive, invalid UTF-8, a 100 KB string, Backspace);
 * selection and scrolling bounds; inline rename (edit, refusal, cancel);
 * bind/unbind; overwrite and delete confirmations (and without them);
 * the load's questions: rollback warning, disc mismatch, both, and the
 * disc mount offered only when the host can; clicks and the wheel; the
 * view's texts; a question on its own (ui_menu_ask: resume on start).
 */
#include "ui/library.h"
#include "ui/menu.h"
#include "hw/error.h"
#include <string.h>

typedef struct Fake {
    GPtrArray *entries;         /* UiStateEntry *, owned */
    char *title;
    GString *log;               /* "load:TAG;" ... */
    char *warning;              /* rollback warning, or NULL */
    char *mismatch_disc;        /* disc_mismatch answer, or NULL */
    bool refuse;                /* operations fail */
    int changes;
    GString *messages;
} Fake;

static void entry_free(gpointer p)
{
    UiStateEntry *e = p;
    g_free(e->tag);
    g_free(e->name);
    g_free(e->title);
    g_free(e->disc_path);
    if (e->thumbnail_png) {
        g_bytes_unref(e->thumbnail_png);
    }
    g_free(e);
}

static void add(Fake *f, const char *tag, const char *name,
                const char *title, int64_t created, int slot)
{
    UiStateEntry *e = g_new0(UiStateEntry, 1);
    e->tag = g_strdup(tag);
    e->name = g_strdup(name);
    e->title = g_strdup(title);
    e->created = created;
    e->frame = created * 60;
    e->size = 170 * 1024;
    e->slot = slot;
    e->thumbnail_png = g_bytes_new_static("png", 3);
    g_ptr_array_add(f->entries, e);
}

static UiStateEntry *find(Fake *f, const char *tag)
{
    for (guint i = 0; i < f->entries->len; i++) {
        UiStateEntry *e = g_ptr_array_index(f->entries, i);
        if (!strcmp(e->tag, tag)) {
            return e;
        }
    }
    return NULL;
}

static GPtrArray *f_list(void *o)
{
    Fake *f = o;
    GPtrArray *a = g_ptr_array_new();
    for (guint i = 0; i < f->entries->len; i++) {
        g_ptr_array_add(a, g_ptr_array_index(f->entries, i));
    }
    return a;
}

static const char *f_title(void *o)
{
    return ((Fake *)o)->title;
}

static bool f_op(Fake *f, const char *what, const char *tag, GError **errp)
{
    if (f->refuse) {
        hw_error_set(errp, "busy");
        return false;
    }
    g_string_append_printf(f->log, "%s:%s;", what, tag);
    return true;
}

static bool f_load(void *o, const char *tag, GError **errp)
{
    return f_op(o, "load", tag, errp);
}

static bool f_save_over(void *o, const char *tag, GError **errp)
{
    return f_op(o, "save", tag, errp);
}

static bool f_delete(void *o, const char *tag, GError **errp)
{
    Fake *f = o;
    if (!f_op(f, "delete", tag, errp)) {
        return false;
    }
    g_ptr_array_remove(f->entries, find(f, tag));
    return true;
}

static bool f_rename(void *o, const char *tag, const char *name,
                     GError **errp)
{
    Fake *f = o;
    long n = g_utf8_strlen(name, -1);
    if (!g_utf8_validate(name, -1, NULL) || n < 1 || n > 64) {
        hw_error_set(errp, "bad name");
        return false;
    }
    UiStateEntry *e = find(f, tag);
    g_free(e->name);
    e->name = g_strdup(name);
    return true;
}

static bool f_bind(void *o, const char *tag, int slot, GError **errp)
{
    Fake *f = o;
    for (guint i = 0; slot && i < f->entries->len; i++) {
        UiStateEntry *e = g_ptr_array_index(f->entries, i);
        if (e->slot == slot) {
            e->slot = 0;
        }
    }
    find(f, tag)->slot = slot;
    return true;
}

static char *f_warning(void *o, const char *tag)
{
    return g_strdup(((Fake *)o)->warning);
}

static bool f_mismatch(void *o, const char *tag, char **disc)
{
    Fake *f = o;
    *disc = g_strdup(f->mismatch_disc);
    return f->mismatch_disc != NULL;
}

static bool f_mount(void *o, const char *disc, GError **errp)
{
    return f_op(o, "mount", disc, errp);
}

static void f_message(void *o, bool error, const char *text)
{
    Fake *f = o;
    g_string_append_printf(f->messages, "%s%s\n", error ? "E:" : "", text);
}

static void f_changed(void *o)
{
    ((Fake *)o)->changes++;
}

static const UiMenuOps ops = {
    .list = f_list, .title = f_title, .load = f_load,
    .save_over = f_save_over, .delete = f_delete, .rename = f_rename,
    .bind = f_bind, .rollback_warning = f_warning,
    .disc_mismatch = f_mismatch, .message = f_message,
    .changed = f_changed,
};

typedef struct Fix {
    Fake f;
    UiConfig cfg;
    UiMenuOps ops;
    UiMenu *menu;
} Fix;

static void fix_setup(Fix *x, gconstpointer data)
{
    x->f.entries = g_ptr_array_new_with_free_func(entry_free);
    x->f.title = g_strdup("GAME");
    x->f.log = g_string_new(NULL);
    x->f.messages = g_string_new(NULL);
    /* Newest first as the library lists them. */
    add(&x->f, "t5", "Boss fight", "GAME", 500, 1);
    add(&x->f, "t4", "Other game", "OTHER", 400, 0);
    add(&x->f, "t3", "Slot 2", "GAME", 300, 2);
    add(&x->f, "t2", "Caf\u00e9 level", "GAME", 200, 0);
    add(&x->f, "t1", "Old", "OTHER", 100, 0);
    ui_config_defaults(&x->cfg);
    x->ops = ops;
    x->menu = ui_menu_new(&x->ops, &x->f, &x->cfg);
    ui_menu_open(x->menu);
}

static void fix_teardown(Fix *x, gconstpointer data)
{
    ui_menu_free(x->menu);
    ui_config_clear(&x->cfg);
    g_ptr_array_unref(x->f.entries);
    g_free(x->f.title);
    g_free(x->f.warning);
    g_free(x->f.mismatch_disc);
    g_string_free(x->f.log, TRUE);
    g_string_free(x->f.messages, TRUE);
}

/* The names on the page, joined by '|'. */
static char *names(UiMenu *m)
{
    UiMenuView v;
    GString *s = g_string_new(NULL);
    if (ui_menu_snapshot(m, &v)) {
        for (int i = 0; i < v.n_rows; i++) {
            g_string_append_printf(s, "%s%s", i ? "|" : "", v.rows[i].name);
        }
    }
    ui_menu_view_clear(&v);
    return g_string_free(s, FALSE);
}

static void assert_names(UiMenu *m, const char *want)
{
    g_autofree char *got = names(m);
    g_assert_cmpstr(got, ==, want);
}

static void assert_selected(UiMenu *m, const char *tag)
{
    g_autofree char *got = ui_menu_selected_tag(m);
    g_assert_cmpstr(got, ==, tag);
}

static void test_order_and_filter(Fix *x, gconstpointer d)
{
    assert_names(x->menu, "Boss fight|Slot 2|Caf\u00e9 level|Other game|Old");
    ui_menu_input(x->menu, UI_MENU_IN_FILTER);
    assert_names(x->menu, "Boss fight|Slot 2|Caf\u00e9 level");
    ui_menu_input(x->menu, UI_MENU_IN_FILTER);
    assert_names(x->menu, "Boss fight|Slot 2|Caf\u00e9 level|Other game|Old");
}

static void test_search(Fix *x, gconstpointer d)
{
    ui_menu_text(x->menu, "CAF\u00c9");
    assert_names(x->menu, "Caf\u00e9 level");
    ui_menu_input(x->menu, UI_MENU_IN_BACKSPACE);   /* one character */
    ui_menu_text(x->menu, "\u00e9 L");
    assert_names(x->menu, "Caf\u00e9 level");
    ui_menu_input(x->menu, UI_MENU_IN_BACK);        /* clears */
    ui_menu_text(x->menu, "other");     /* the title matches too */
    assert_names(x->menu, "Other game|Old");
    ui_menu_input(x->menu, UI_MENU_IN_BACK);
    ui_menu_text(x->menu, "\xff\xfe\xc3");
    assert_names(x->menu, "");
    assert_selected(x->menu, NULL);
    ui_menu_input(x->menu, UI_MENU_IN_DOWN);
    ui_menu_input(x->menu, UI_MENU_IN_END);
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);      /* nothing selected */
    ui_menu_input(x->menu, UI_MENU_IN_DELETE);
    ui_menu_input(x->menu, UI_MENU_IN_RENAME);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_BROWSE);
    for (int i = 0; i < 10; i++) {
        ui_menu_input(x->menu, UI_MENU_IN_BACKSPACE);   /* past empty */
    }
    assert_names(x->menu, "Boss fight|Slot 2|Caf\u00e9 level|Other game|Old");
    g_assert_cmpstr(x->f.log->str, ==, "");

    /* 100 KB: cut at the limit, whole characters, still works. */
    char *big = g_strnfill(100 * 1024, 'x');
    ui_menu_text(x->menu, big);
    g_free(big);
    UiMenuView v;
    g_assert_true(ui_menu_snapshot(x->menu, &v));
    g_assert_cmpuint(strlen(v.search), ==, UI_MENU_SEARCH_MAX);
    g_assert_cmpint(v.n_rows, ==, 0);
    ui_menu_view_clear(&v);
    ui_menu_input(x->menu, UI_MENU_IN_BACK);
    g_autofree char *odd = g_strdup("\x01\x7f" "b\xc3\xa9\xe2\x82");
    ui_menu_text(x->menu, odd);      /* control bytes dropped */
    g_assert_true(ui_menu_snapshot(x->menu, &v));
    g_assert_true(g_utf8_validate(v.search, -1, NULL));
    ui_menu_view_clear(&v);
}

static void test_selection_bounds(Fix *x, gconstpointer d)
{
    ui_menu_set_page_rows(x->menu, 2);
    assert_selected(x->menu, "t5");
    ui_menu_input(x->menu, UI_MENU_IN_UP);
    assert_selected(x->menu, "t5");
    ui_menu_input(x->menu, UI_MENU_IN_END);
    assert_selected(x->menu, "t1");
    assert_names(x->menu, "Other game|Old");
    ui_menu_input(x->menu, UI_MENU_IN_DOWN);
    assert_selected(x->menu, "t1");
    ui_menu_input(x->menu, UI_MENU_IN_PAGE_UP);
    assert_selected(x->menu, "t2");
    ui_menu_input(x->menu, UI_MENU_IN_HOME);
    assert_names(x->menu, "Boss fight|Slot 2");
    ui_menu_input(x->menu, UI_MENU_IN_PAGE_DOWN);
    ui_menu_input(x->menu, UI_MENU_IN_PAGE_DOWN);
    ui_menu_input(x->menu, UI_MENU_IN_PAGE_DOWN);
    assert_selected(x->menu, "t1");
    ui_menu_wheel(x->menu, 3);
    assert_selected(x->menu, "t3");
    ui_menu_wheel(x->menu, 1000);
    assert_selected(x->menu, "t5");
    ui_menu_click(x->menu, 1, false);
    assert_selected(x->menu, "t3");
    ui_menu_click(x->menu, 5, false);   /* past the page: ignored */
    ui_menu_click(x->menu, -1, true);
    assert_selected(x->menu, "t3");
    ui_menu_set_page_rows(x->menu, 0);  /* at least one */
    assert_names(x->menu, "Slot 2");
    g_assert_cmpstr(x->f.log->str, ==, "");
    ui_menu_click(x->menu, 0, true);    /* double click loads */
    g_assert_cmpstr(x->f.log->str, ==, "load:t3;");
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_CLOSED);
}

static void test_rename(Fix *x, gconstpointer d)
{
    ui_menu_input(x->menu, UI_MENU_IN_DOWN);
    ui_menu_input(x->menu, UI_MENU_IN_RENAME);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_RENAME);
    for (int i = 0; i < 6; i++) {
        ui_menu_input(x->menu, UI_MENU_IN_BACKSPACE);
    }
    /* Empty: refused by the library, the entry stays. */
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_RENAME);
    g_assert_nonnull(strstr(x->f.messages->str, "E:bad name"));
    ui_menu_text(x->menu, "Boss \xffII");   /* odd byte: U+FFFD */
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_BROWSE);
    g_assert_cmpstr(find(&x->f, "t3")->name, ==, "Boss \uFFFDII");
    assert_selected(x->menu, "t3");     /* kept across the refresh */

    /* Longer than 64 characters: cut; Esc keeps the old name. */
    ui_menu_input(x->menu, UI_MENU_IN_RENAME);
    char *big = g_strnfill(1000, 'n');
    ui_menu_text(x->menu, big);
    g_free(big);
    UiMenuView v;
    ui_menu_snapshot(x->menu, &v);
    g_assert_cmpint(g_utf8_strlen(v.edit, -1), ==, UI_MENU_NAME_MAX);
    ui_menu_view_clear(&v);
    ui_menu_input(x->menu, UI_MENU_IN_BACK);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_BROWSE);
    g_assert_cmpstr(find(&x->f, "t3")->name, ==, "Boss \uFFFDII");
}

static void test_bind(Fix *x, gconstpointer d)
{
    ui_menu_input(x->menu, UI_MENU_IN_DOWN);    /* t3, slot 2 */
    ui_menu_input(x->menu, UI_MENU_IN_BIND1);   /* takes F5 from t5 */
    g_assert_cmpint(find(&x->f, "t3")->slot, ==, 1);
    g_assert_cmpint(find(&x->f, "t5")->slot, ==, 0);
    UiMenuView v;
    ui_menu_snapshot(x->menu, &v);
    g_assert_cmpstr(v.rows[1].key, ==, "F5");
    g_assert_cmpstr(v.rows[0].key, ==, "");
    ui_menu_view_clear(&v);
    ui_menu_input(x->menu, UI_MENU_IN_BIND1);   /* again: unbinds */
    g_assert_cmpint(find(&x->f, "t3")->slot, ==, 0);
    g_assert_nonnull(strstr(x->f.messages->str, "is on F5"));
}

/* Answers the open question with the choice labelled label. */
static void choose(UiMenu *m, const char *label)
{
    UiMenuView v;
    g_assert_true(ui_menu_snapshot(m, &v));
    g_assert_cmpint(v.mode, ==, UI_MENU_DIALOG);
    int want = -1;
    for (int i = 0; i < v.n_choices; i++) {
        if (!strcmp(v.choices[i], label)) {
            want = i;
        }
    }
    g_assert_cmpint(want, >=, 0);
    for (int i = v.choice; i > want; i--) {
        ui_menu_input(m, UI_MENU_IN_LEFT);
    }
    for (int i = v.choice; i < want; i++) {
        ui_menu_input(m, UI_MENU_IN_RIGHT);
    }
    ui_menu_view_clear(&v);
    ui_menu_input(m, UI_MENU_IN_ACCEPT);
}

static void test_confirm(Fix *x, gconstpointer d)
{
    ui_menu_input(x->menu, UI_MENU_IN_SAVE_OVER);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_DIALOG);
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);  /* default: Cancel */
    g_assert_cmpstr(x->f.log->str, ==, "");
    ui_menu_input(x->menu, UI_MENU_IN_SAVE_OVER);
    ui_menu_input(x->menu, UI_MENU_IN_DELETE);  /* ignored in a question */
    choose(x->menu, "Save over");
    g_assert_cmpstr(x->f.log->str, ==, "save:t5;");
    ui_menu_input(x->menu, UI_MENU_IN_DELETE);
    ui_menu_input(x->menu, UI_MENU_IN_BACK);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_BROWSE);
    ui_menu_input(x->menu, UI_MENU_IN_DELETE);
    choose(x->menu, "Delete");
    g_assert_cmpstr(x->f.log->str, ==, "save:t5;delete:t5;");
    ui_menu_refresh(x->menu);
    assert_names(x->menu, "Slot 2|Caf\u00e9 level|Other game|Old");

    /* Without confirmation, and a refusal goes to the messages. */
    x->cfg.confirm_delete = x->cfg.confirm_overwrite = false;
    ui_menu_input(x->menu, UI_MENU_IN_SAVE_OVER);
    g_assert_cmpstr(x->f.log->str, ==, "save:t5;delete:t5;save:t3;");
    x->f.refuse = true;
    ui_menu_input(x->menu, UI_MENU_IN_DELETE);
    g_assert_nonnull(strstr(x->f.messages->str, "E:busy"));
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_BROWSE);
}

static void test_load_questions(Fix *x, gconstpointer d)
{
    x->f.warning = g_strdup("Loading 'Boss fight' undoes 3 minutes of "
                            "play and in-game saves made since");
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    UiMenuView v;
    ui_menu_snapshot(x->menu, &v);
    g_assert_cmpstr(v.question, ==, "Loading 'Boss fight' undoes 3 minutes "
                    "of play and in-game saves made since \u2014 load "
                    "anyway?");
    ui_menu_view_clear(&v);
    choose(x->menu, "Cancel");
    g_assert_cmpstr(x->f.log->str, ==, "");
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    choose(x->menu, "Load anyway");
    g_assert_cmpstr(x->f.log->str, ==, "load:t5;");
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_CLOSED);

    /* Both questions, in order; no mount offered without the op. */
    ui_menu_open(x->menu);
    x->f.mismatch_disc = g_strdup("/discs/other.iso");
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    choose(x->menu, "Load anyway");
    ui_menu_snapshot(x->menu, &v);
    g_assert_nonnull(strstr(v.question, "another disc (/discs/other.iso)"));
    g_assert_cmpint(v.n_choices, ==, 2);
    ui_menu_view_clear(&v);
    ui_menu_input(x->menu, UI_MENU_IN_BACK);
    g_assert_cmpstr(x->f.log->str, ==, "load:t5;");

    /* No rollback warning by config: straight to the disc question,
     * here with the mount offered. */
    x->cfg.rollback_warning = false;
    x->ops.mount_disc = f_mount;
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    choose(x->menu, "Insert that disc and load");
    g_assert_cmpstr(x->f.log->str, ==,
                    "load:t5;mount:/discs/other.iso;load:t5;");

    /* A refused load keeps the menu open and says why. */
    ui_menu_open(x->menu);
    g_clear_pointer(&x->f.mismatch_disc, g_free);
    x->f.refuse = true;
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_BROWSE);
    g_assert_nonnull(strstr(x->f.messages->str, "E:busy"));
}

static void test_view(Fix *x, gconstpointer d)
{
    UiMenuView v;
    int changes = x->f.changes;
    ui_menu_input(x->menu, UI_MENU_IN_DOWN);
    g_assert_cmpint(x->f.changes, >, changes);
    g_assert_true(ui_menu_snapshot(x->menu, &v));
    g_assert_cmpstr(v.title, ==, "Save states \u2014 GAME");
    g_assert_cmpstr(v.filter, ==, "All titles");
    g_assert_cmpint(v.selected, ==, 1);
    g_assert_cmpint(v.n_total, ==, 5);
    g_assert_cmpstr(v.rows[0].key, ==, "F5");
    g_assert_cmpstr(v.rows[0].frame, ==, "frame 30,000");
    g_assert_cmpstr(v.rows[0].size, ==, "170 KB");
    g_assert_nonnull(v.rows[0].thumbnail_png);
    g_assert_nonnull(strstr(v.footer, "F5\u2013F8 bind"));
    ui_menu_view_clear(&v);
    g_autofree char *mb = ui_menu_format_size(12900000);
    g_assert_cmpstr(mb, ==, "12.3 MB");
    ui_menu_input(x->menu, UI_MENU_IN_BACK);    /* Esc closes */
    g_assert_false(ui_menu_snapshot(x->menu, &v));
    ui_menu_view_clear(&v);
    ui_menu_toggle(x->menu);
    g_assert_true(ui_menu_is_open(x->menu));
    assert_selected(x->menu, "t5");     /* a fresh start */
}

static void record_answer(void *opaque, int choice)
{
    int *answers = opaque;
    answers[answers[0]++ + 1] = choice;
}

/* A question on its own (resume on start): bare view, answers by index,
 * dismissals answer -1 once, refused while the menu is open. */
static void test_ask(Fix *x, gconstpointer d)
{
    static const char *const choices[] = { "Resume", "Start over" };
    int answers[8] = { 0 };
    UiMenuView v;
    g_assert_false(ui_menu_ask(x->menu, "Q?", choices, 2, 0,
                               record_answer, answers));   /* menu open */
    ui_menu_close(x->menu);
    g_assert_true(ui_menu_ask(x->menu, "Resume 'GAME' where you left off?",
                              choices, 2, 0, record_answer, answers));
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_DIALOG);
    g_assert_true(ui_menu_snapshot(x->menu, &v));
    g_assert_true(v.bare);
    g_assert_cmpint(v.n_rows, ==, 0);
    g_assert_cmpstr(v.question, ==, "Resume 'GAME' where you left off?");
    g_assert_cmpstr(v.choices[1], ==, "Start over");
    g_assert_cmpint(v.choice, ==, 0);
    ui_menu_view_clear(&v);
    assert_selected(x->menu, NULL);
    ui_menu_refresh(x->menu);           /* no list behind it */
    assert_names(x->menu, "");
    ui_menu_input(x->menu, UI_MENU_IN_DELETE);     /* ignored */
    ui_menu_text(x->menu, "abc");
    ui_menu_input(x->menu, UI_MENU_IN_RIGHT);
    ui_menu_input(x->menu, UI_MENU_IN_RIGHT);      /* stays on the last */
    ui_menu_input(x->menu, UI_MENU_IN_ACCEPT);
    g_assert_cmpint(answers[0], ==, 1);
    g_assert_cmpint(answers[1], ==, 1);
    g_assert_cmpint(ui_menu_mode(x->menu), ==, UI_MENU_CLOSED);
    g_assert_cmpstr(x->f.log->str, ==, "");

    /* Esc, the toggle: -1 once; a click on a drawn choice answers it. */
    ui_menu_ask(x->menu, "Q?", choices, 2, 0, record_answer, answers);
    ui_menu_input(x->menu, UI_MENU_IN_BACK);
    ui_menu_ask(x->menu, "Q?", choices, 2, 0, record_answer, answers);
    ui_menu_toggle(x->menu);
    ui_menu_close(x->menu);
    g_assert_cmpint(answers[0], ==, 3);
    g_assert_cmpint(answers[2], ==, -1);
    g_assert_cmpint(answers[3], ==, -1);
    ui_menu_ask(x->menu, "Q?", choices, 2, 1, record_answer, answers);
    const int boxes[2][4] = { { 10, 10, 50, 20 }, { 70, 10, 50, 20 } };
    ui_menu_set_choice_boxes(x->menu, boxes, 2);
    g_assert_false(ui_menu_click_at(x->menu, 65, 15));     /* between */
    g_assert_true(ui_menu_click_at(x->menu, 12, 29));
    g_assert_cmpint(answers[0], ==, 4);
    g_assert_cmpint(answers[4], ==, 0);
    g_assert_false(ui_menu_click_at(x->menu, 12, 29));     /* closed */

    /* The menu opens normally afterwards; freeing with a question open
     * answers nothing. */
    ui_menu_open(x->menu);
    assert_names(x->menu, "Boss fight|Slot 2|Café level|Other game|"
                 "Old");
    ui_menu_close(x->menu);
    ui_menu_ask(x->menu, "Q?", choices, 2, 0, record_answer, answers);
    g_assert_cmpint(answers[0], ==, 4);
}

/* Hundreds of states: open and a search stay far under a frame. */
static void test_many(Fix *x, gconstpointer d)
{
    for (int i = 0; i < 500; i++) {
        g_autofree char *tag = g_strdup_printf("m%d", i);
        g_autofree char *name = g_strdup_printf("State %d", i);
        add(&x->f, tag, name, i % 2 ? "GAME" : "OTHER", 1000 + i, 0);
    }
    int64_t t0 = g_get_monotonic_time();
    ui_menu_close(x->menu);
    ui_menu_open(x->menu);
    ui_menu_text(x->menu, "state 49");
    int64_t us = g_get_monotonic_time() - t0;
    assert_names(x->menu, "State 499|State 497|State 495|State 493|"
                 "State 491|State 49|State 498|State 496");
    g_assert_cmpint(us, <, 50000);
}

#define ADD(name, fn) \
    g_test_add(name, Fix, NULL, fix_setup, fn, fix_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/ui/menu/order-filter", test_order_and_filter);
    ADD("/ui/menu/search", test_search);
    ADD("/ui/menu/selection", test_selection_bounds);
    ADD("/ui/menu/rename", test_rename);
    ADD("/ui/menu/bind", test_bind);
    ADD("/ui/menu/confirm", test_confirm);
    ADD("/ui/menu/load-questions", test_load_questions);
    ADD("/ui/menu/view", test_view);
    ADD("/ui/menu/many", test_many);
    ADD("/ui/menu/ask", test_ask);
    return g_test_run();
}
