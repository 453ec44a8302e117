/*
 * menu.c - the save-state menu's model (ui/menu.h).
 *
 * Owns the menu's copy of the states (Row), the matches of the filter
 * and search (pointers into the rows, in display order), the selection,
 * the search and rename buffers and the open question.  Called by ui.c
 * (open, refresh, input translated by ui/sdl/window.c) and by the render
 * thread (snapshots).
 *
 * Invariants (besides menu.h's):
 *  - Every field is read and written under lock.  It is recursive
 *    because an operation's done callback may come back into the model
 *    (ui_menu_refresh) from inside an ops call.
 *  - Search matches against a case-folded copy of each row's name and
 *    title made once per refresh, so typing costs one pass of strstr
 *    over the rows: a few hundred states stay instant.
 *  - A load goes through the questions in a fixed order - rollback
 *    warning (config rollback-warning), then disc mismatch - and only a
 *    "yes" to each reaches ops->load.
 */
#include "ui/menu.h"
#include "ui/library.h"
#include <string.h>

#define DEFAULT_PAGE_ROWS 8

typedef struct Row {
    char *tag, *name, *title, *disc;
    int64_t created;
    uint64_t frame, size;
    GBytes *png;
    int slot;
    bool this_title;
    char *fold;                 /* case-folded "name\ntitle" */
} Row;

/* What a question is about; each choice says what it does. */
typedef enum Question {
    Q_NONE, Q_OVERWRITE, Q_DELETE, Q_ROLLBACK, Q_MISMATCH,
    Q_ASK,                      /* ui_menu_ask's: bare, answer by index */
} Question;

typedef enum Choice { CHOICE_GO, CHOICE_CANCEL, CHOICE_MOUNT } Choice;

struct UiMenu {
    GRecMutex lock;
    const UiMenuOps *ops;
    void *opaque;
    const UiConfig *cfg;
    UiMenuMode mode;
    bool this_title_only;
    char *current_title;
    GPtrArray *rows;            /* Row *, owned, display order */
    GPtrArray *matches;         /* Row *, borrowed from rows */
    GString *search, *edit;
    int selected, top, page_rows;
    Question q;
    char *q_text, *q_tag, *q_disc;
    char *q_labels[UI_MENU_MAX_CHOICES];
    Choice q_choices[UI_MENU_MAX_CHOICES];
    int q_n, q_choice;
    bool bare;                  /* the question of ui_menu_ask is open */
    UiMenuAnswerFn ask_done;
    void *ask_opaque;
    int boxes[UI_MENU_MAX_CHOICES][4];
    int n_boxes;
    uint64_t generation;
};

/* ---- rows ---- */

static void row_free(gpointer p)
{
    Row *r = p;
    g_free(r->tag);
    g_free(r->name);
    g_free(r->title);
    g_free(r->disc);
    g_free(r->fold);
    if (r->png) {
        g_bytes_unref(r->png);
    }
    g_free(r);
}

/* Lower-case-insensitive form of any bytes (invalid UTF-8 included). */
static char *fold(const char *s)
{
    g_autofree char *valid = g_utf8_make_valid(s ? s : "", -1);
    return g_utf8_casefold(valid, -1);
}

static Row *row_new(const UiStateEntry *e, const char *current_title)
{
    Row *r = g_new0(Row, 1);
    r->tag = g_strdup(e->tag);
    r->name = g_utf8_make_valid(e->name ? e->name : "", -1);
    r->title = g_utf8_make_valid(e->title ? e->title : "", -1);
    r->disc = g_strdup(e->disc_path);
    r->created = e->created;
    r->frame = e->frame;
    r->size = e->size;
    r->png = e->thumbnail_png ? g_bytes_ref(e->thumbnail_png) : NULL;
    r->slot = e->slot;
    r->this_title = !g_strcmp0(r->title, current_title);
    g_autofree char *both = g_strconcat(r->name, "\n", r->title, NULL);
    r->fold = fold(both);
    return r;
}

/* This title's first, then newest first.  Dates have whole seconds:
 * within one second the later frame is the newer (one run), and the
 * tag breaks what ties remain, so the order is stable. */
static gint row_order(gconstpointer a, gconstpointer b)
{
    const Row *x = *(Row *const *)a, *y = *(Row *const *)b;
    if (x->this_title != y->this_title) {
        return x->this_title ? -1 : 1;
    }
    if (x->created != y->created) {
        return x->created > y->created ? -1 : 1;
    }
    if (x->frame != y->frame) {
        return x->frame > y->frame ? -1 : 1;
    }
    return strcmp(x->tag, y->tag);
}

/* Keeps selected and top inside the matches and the page. */
static void clamp_selection(UiMenu *m)
{
    int n = m->matches->len;
    m->selected = n ? CLAMP(m->selected, 0, n - 1) : 0;
    if (m->selected < m->top) {
        m->top = m->selected;
    }
    if (m->selected >= m->top + m->page_rows) {
        m->top = m->selected - m->page_rows + 1;
    }
    m->top = CLAMP(m->top, 0, MAX(n - m->page_rows, 0));
}

static void rebuild_matches(UiMenu *m)
{
    g_autofree char *needle = fold(m->search->str);
    g_ptr_array_set_size(m->matches, 0);
    for (guint i = 0; i < m->rows->len; i++) {
        Row *r = g_ptr_array_index(m->rows, i);
        if (m->this_title_only && !r->this_title) {
            continue;
        }
        if (*needle && !strstr(r->fold, needle)) {
            continue;
        }
        g_ptr_array_add(m->matches, r);
    }
    clamp_selection(m);
}

static Row *selected_row(UiMenu *m)
{
    return m->matches->len ? g_ptr_array_index(m->matches, m->selected)
                           : NULL;
}

/* Puts the selection on tag if it is among the matches. */
static void select_tag(UiMenu *m, const char *tag)
{
    for (guint i = 0; tag && i < m->matches->len; i++) {
        Row *r = g_ptr_array_index(m->matches, i);
        if (!strcmp(r->tag, tag)) {
            m->selected = i;
            break;
        }
    }
    clamp_selection(m);
}

static void read_rows(UiMenu *m)
{
    g_free(m->current_title);
    m->current_title = g_strdup(m->ops->title(m->opaque));
    g_ptr_array_set_size(m->matches, 0);
    g_ptr_array_set_size(m->rows, 0);
    GPtrArray *list = m->ops->list(m->opaque);
    for (guint i = 0; list && i < list->len; i++) {
        g_ptr_array_add(m->rows, row_new(g_ptr_array_index(list, i),
                                         m->current_title));
    }
    if (list) {
        g_ptr_array_unref(list);
    }
    g_ptr_array_sort(m->rows, row_order);
}

/* ---- change notification ---- */

static void changed(UiMenu *m)
{
    m->generation++;
    if (m->ops->changed) {
        m->ops->changed(m->opaque);
    }
}

static void say(UiMenu *m, bool error, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static void say(UiMenu *m, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (m->ops->message) {
        m->ops->message(m->opaque, error, text);
    }
}

static void say_error(UiMenu *m, GError *err)
{
    say(m, true, "%s", err ? err->message : "Refused");
    g_clear_error(&err);
}

/* ---- life ---- */

UiMenu *ui_menu_new(const UiMenuOps *ops, void *opaque,
                    const UiConfig *cfg)
{
    UiMenu *m = g_new0(UiMenu, 1);
    g_rec_mutex_init(&m->lock);
    m->ops = ops;
    m->opaque = opaque;
    m->cfg = cfg;
    m->rows = g_ptr_array_new_with_free_func(row_free);
    m->matches = g_ptr_array_new();
    m->search = g_string_new(NULL);
    m->edit = g_string_new(NULL);
    m->page_rows = DEFAULT_PAGE_ROWS;
    return m;
}

static void question_clear(UiMenu *m)
{
    g_clear_pointer(&m->q_text, g_free);
    g_clear_pointer(&m->q_tag, g_free);
    g_clear_pointer(&m->q_disc, g_free);
    for (int i = 0; i < UI_MENU_MAX_CHOICES; i++) {
        g_clear_pointer(&m->q_labels[i], g_free);
    }
    m->q = Q_NONE;
    m->q_n = m->q_choice = 0;
    m->n_boxes = 0;
    m->bare = false;
    m->ask_done = NULL;
    m->ask_opaque = NULL;
}

/* The bare question's answer: closes, then tells (once). */
static void ask_answer(UiMenu *m, int choice)
{
    UiMenuAnswerFn done = m->ask_done;
    void *opaque = m->ask_opaque;
    question_clear(m);
    m->mode = UI_MENU_CLOSED;
    changed(m);
    if (done) {
        done(opaque, choice);
    }
}

void ui_menu_free(UiMenu *m)
{
    if (!m) {
        return;
    }
    question_clear(m);
    g_ptr_array_unref(m->matches);
    g_ptr_array_unref(m->rows);
    g_string_free(m->search, TRUE);
    g_string_free(m->edit, TRUE);
    g_free(m->current_title);
    g_rec_mutex_clear(&m->lock);
    g_free(m);
}

void ui_menu_open(UiMenu *m)
{
    g_rec_mutex_lock(&m->lock);
    if (m->mode == UI_MENU_CLOSED) {
        m->mode = UI_MENU_BROWSE;
        g_string_truncate(m->search, 0);
        m->selected = m->top = 0;
        read_rows(m);
        rebuild_matches(m);
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

void ui_menu_close(UiMenu *m)
{
    g_rec_mutex_lock(&m->lock);
    if (m->q == Q_ASK) {
        ask_answer(m, -1);
    } else if (m->mode != UI_MENU_CLOSED) {
        question_clear(m);
        m->mode = UI_MENU_CLOSED;
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

void ui_menu_toggle(UiMenu *m)
{
    if (ui_menu_is_open(m)) {
        ui_menu_close(m);
    } else {
        ui_menu_open(m);
    }
}

bool ui_menu_is_open(UiMenu *m)
{
    g_rec_mutex_lock(&m->lock);
    bool open = m->mode != UI_MENU_CLOSED;
    g_rec_mutex_unlock(&m->lock);
    return open;
}

void ui_menu_refresh(UiMenu *m)
{
    g_rec_mutex_lock(&m->lock);
    if (m->mode != UI_MENU_CLOSED && !m->bare) {
        Row *r = selected_row(m);
        g_autofree char *tag = r ? g_strdup(r->tag) : NULL;
        read_rows(m);
        rebuild_matches(m);
        select_tag(m, tag);
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

bool ui_menu_ask(UiMenu *m, const char *question,
                 const char *const *choices, int n_choices, int choice,
                 UiMenuAnswerFn done, void *opaque)
{
    g_rec_mutex_lock(&m->lock);
    bool ok = m->mode == UI_MENU_CLOSED && n_choices >= 1 &&
              n_choices <= UI_MENU_MAX_CHOICES;
    if (ok) {
        question_clear(m);
        g_ptr_array_set_size(m->matches, 0);
        g_ptr_array_set_size(m->rows, 0);
        g_string_truncate(m->search, 0);
        m->selected = m->top = 0;
        m->q = Q_ASK;
        m->q_text = g_utf8_make_valid(question ? question : "", -1);
        for (int i = 0; i < n_choices; i++) {
            m->q_choices[i] = CHOICE_GO;
            m->q_labels[i] = g_utf8_make_valid(choices[i] ? choices[i]
                                                          : "", -1);
        }
        m->q_n = n_choices;
        m->q_choice = CLAMP(choice, 0, n_choices - 1);
        m->bare = true;
        m->ask_done = done;
        m->ask_opaque = opaque;
        m->mode = UI_MENU_DIALOG;
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
    return ok;
}

/* ---- questions ---- */

static void ask(UiMenu *m, Question q, const char *tag, char *text)
{
    question_clear(m);
    m->q = q;
    m->q_tag = g_strdup(tag);
    m->q_text = text;
    m->mode = UI_MENU_DIALOG;
}

static void add_choice(UiMenu *m, Choice c, const char *label)
{
    m->q_choices[m->q_n] = c;
    m->q_labels[m->q_n++] = g_strdup(label);
}

static void start_load(UiMenu *m, const char *tag);

/* The load's next step after a question or at its start: stage 0 the
 * rollback warning, 1 the disc, 2 the load itself. */
static void load_stage(UiMenu *m, const char *tag, const char *name,
                       int stage)
{
    if (stage <= 0 && m->cfg->rollback_warning) {
        char *warning = m->ops->rollback_warning(m->opaque, tag);
        if (warning) {
            ask(m, Q_ROLLBACK, tag,
                g_strdup_printf("%s \u2014 load anyway?", warning));
            g_free(warning);
            add_choice(m, CHOICE_GO, "Load anyway");
            add_choice(m, CHOICE_CANCEL, "Cancel");
            m->q_choice = 1;    /* the safe answer is the default */
            return;
        }
    }
    char *disc = NULL;
    if (stage <= 1 && m->ops->disc_mismatch(m->opaque, tag, &disc)) {
        ask(m, Q_MISMATCH, tag, g_strdup_printf(
            "'%s' was saved with another disc (%s)", name,
            disc ? disc : "none"));
        m->q_disc = disc;
        if (m->ops->mount_disc && disc) {
            add_choice(m, CHOICE_MOUNT, "Insert that disc and load");
        }
        add_choice(m, CHOICE_GO, "Load anyway");
        add_choice(m, CHOICE_CANCEL, "Cancel");
        m->q_choice = m->q_n - 1;
        return;
    }
    g_free(disc);
    start_load(m, tag);
}

static void start_load(UiMenu *m, const char *tag)
{
    GError *err = NULL;
    g_autofree char *t = g_strdup(tag);
    question_clear(m);
    if (m->ops->load(m->opaque, t, &err)) {
        /* The player wants the game back: the result shows on the OSD. */
        m->mode = UI_MENU_CLOSED;
    } else {
        m->mode = UI_MENU_BROWSE;
        say_error(m, err);
    }
}

static void do_save_over(UiMenu *m, const char *tag)
{
    GError *err = NULL;
    g_autofree char *t = g_strdup(tag);
    question_clear(m);
    m->mode = UI_MENU_BROWSE;
    if (!m->ops->save_over(m->opaque, t, &err)) {
        say_error(m, err);
    }
}

static void do_delete(UiMenu *m, const char *tag)
{
    GError *err = NULL;
    g_autofree char *t = g_strdup(tag);
    question_clear(m);
    m->mode = UI_MENU_BROWSE;
    if (!m->ops->delete(m->opaque, t, &err)) {
        say_error(m, err);
    }
}

static void mount_and_load(UiMenu *m)
{
    GError *err = NULL;
    g_autofree char *tag = g_strdup(m->q_tag);
    g_autofree char *disc = g_strdup(m->q_disc);
    if (!m->ops->mount_disc(m->opaque, disc, &err)) {
        question_clear(m);
        m->mode = UI_MENU_BROWSE;
        say_error(m, err);
        return;
    }
    start_load(m, tag);
}

static const char *name_of(UiMenu *m, const char *tag)
{
    for (guint i = 0; i < m->rows->len; i++) {
        Row *r = g_ptr_array_index(m->rows, i);
        if (!strcmp(r->tag, tag)) {
            return r->name;
        }
    }
    return tag;
}

/* The player answered the question with choice c. */
static void answer(UiMenu *m, Choice c)
{
    g_autofree char *tag = g_strdup(m->q_tag);
    Question q = m->q;
    if (c == CHOICE_CANCEL) {
        question_clear(m);
        m->mode = UI_MENU_BROWSE;
        return;
    }
    if (c == CHOICE_MOUNT) {
        mount_and_load(m);
        return;
    }
    switch (q) {
    case Q_OVERWRITE:
        do_save_over(m, tag);
        break;
    case Q_DELETE:
        do_delete(m, tag);
        break;
    case Q_ROLLBACK:
        load_stage(m, tag, name_of(m, tag), 1);
        break;
    case Q_MISMATCH:
        start_load(m, tag);
        break;
    case Q_ASK:                 /* answered by ask_answer */
    case Q_NONE:
        break;
    }
}

static void dialog_input(UiMenu *m, UiMenuInput in)
{
    switch (in) {
    case UI_MENU_IN_LEFT:
    case UI_MENU_IN_UP:
        m->q_choice = MAX(m->q_choice - 1, 0);
        break;
    case UI_MENU_IN_RIGHT:
    case UI_MENU_IN_DOWN:
        m->q_choice = MIN(m->q_choice + 1, m->q_n - 1);
        break;
    case UI_MENU_IN_ACCEPT:
        if (m->q == Q_ASK) {
            ask_answer(m, m->q_choice);
        } else {
            answer(m, m->q_choices[m->q_choice]);
        }
        break;
    case UI_MENU_IN_BACK:
        if (m->q == Q_ASK) {
            ask_answer(m, -1);
        } else {
            answer(m, CHOICE_CANCEL);
        }
        break;
    default:
        break;              /* a question takes only its answers */
    }
}

/* ---- the row actions ---- */

static void act_load(UiMenu *m, Row *r)
{
    g_autofree char *tag = g_strdup(r->tag);
    g_autofree char *name = g_strdup(r->name);
    load_stage(m, tag, name, 0);
}

static void act_save_over(UiMenu *m, Row *r)
{
    if (!m->cfg->confirm_overwrite) {
        do_save_over(m, r->tag);
        return;
    }
    ask(m, Q_OVERWRITE, r->tag,
        g_strdup_printf("Save over '%s'? (it is kept as a backup: undo "
                        "save brings it back)", r->name));
    add_choice(m, CHOICE_GO, "Save over");
    add_choice(m, CHOICE_CANCEL, "Cancel");
    m->q_choice = 1;
}

static void act_delete(UiMenu *m, Row *r)
{
    if (!m->cfg->confirm_delete) {
        do_delete(m, r->tag);
        return;
    }
    ask(m, Q_DELETE, r->tag,
        g_strdup_printf("Delete '%s'? This cannot be undone", r->name));
    add_choice(m, CHOICE_GO, "Delete");
    add_choice(m, CHOICE_CANCEL, "Cancel");
    m->q_choice = 1;
}

static const char *slot_chord(UiMenu *m, int slot)
{
    const char *c = ui_config_chord_of(m->cfg,
                                       UI_ACTION_LOAD_SLOT1 + slot - 1);
    return c ? c : "?";
}

/* The slot's key again on the state bound to it unbinds it. */
static void act_bind(UiMenu *m, Row *r, int slot)
{
    GError *err = NULL;
    int to = r->slot == slot ? 0 : slot;
    g_autofree char *tag = g_strdup(r->tag);
    g_autofree char *name = g_strdup(r->name);
    if (!m->ops->bind(m->opaque, tag, to, &err)) {
        say_error(m, err);
        return;
    }
    if (to) {
        say(m, false, "'%s' is on %s", name, slot_chord(m, slot));
    } else {
        say(m, false, "'%s' is on no key now", name);
    }
    ui_menu_refresh(m);
}

static void act_rename(UiMenu *m, Row *r)
{
    g_string_assign(m->edit, r->name);
    m->mode = UI_MENU_RENAME;
}

static void rename_commit(UiMenu *m)
{
    Row *r = selected_row(m);
    GError *err = NULL;
    if (!r) {
        m->mode = UI_MENU_BROWSE;
        return;
    }
    g_autofree char *tag = g_strdup(r->tag);
    if (!m->ops->rename(m->opaque, tag, m->edit->str, &err)) {
        say_error(m, err);      /* stays in the entry to fix it */
        return;
    }
    say(m, false, "Renamed to '%s'", m->edit->str);
    m->mode = UI_MENU_BROWSE;
    ui_menu_refresh(m);
}

/* Drops the last UTF-8 character (the buffers hold valid UTF-8). */
static void string_pop_char(GString *s)
{
    if (s->len) {
        const char *prev = g_utf8_find_prev_char(s->str, s->str + s->len);
        g_string_truncate(s, prev ? (gsize)(prev - s->str) : 0);
    }
}

static void rename_input(UiMenu *m, UiMenuInput in)
{
    switch (in) {
    case UI_MENU_IN_ACCEPT:
        rename_commit(m);
        break;
    case UI_MENU_IN_BACK:
        m->mode = UI_MENU_BROWSE;
        break;
    case UI_MENU_IN_BACKSPACE:
        string_pop_char(m->edit);
        break;
    default:
        break;
    }
}

/* ---- browsing ---- */

static void move(UiMenu *m, int delta)
{
    int n = m->matches->len;
    if (n) {
        /* Long jumps saturate; no wrap, so holding a key stops at ends. */
        int64_t s = (int64_t)m->selected + delta;
        m->selected = (int)CLAMP(s, 0, n - 1);
        clamp_selection(m);
    }
}

static void set_search_changed(UiMenu *m)
{
    m->selected = m->top = 0;
    rebuild_matches(m);
}

static void row_action(UiMenu *m, UiMenuInput in, Row *r)
{
    switch (in) {
    case UI_MENU_IN_ACCEPT:
        act_load(m, r);
        break;
    case UI_MENU_IN_RENAME:
        act_rename(m, r);
        break;
    case UI_MENU_IN_DELETE:
        act_delete(m, r);
        break;
    case UI_MENU_IN_SAVE_OVER:
        act_save_over(m, r);
        break;
    case UI_MENU_IN_BIND1: case UI_MENU_IN_BIND2:
    case UI_MENU_IN_BIND3: case UI_MENU_IN_BIND4:
        act_bind(m, r, in - UI_MENU_IN_BIND1 + 1);
        break;
    default:
        break;
    }
}

static void browse_input(UiMenu *m, UiMenuInput in)
{
    Row *r = selected_row(m);
    switch (in) {
    case UI_MENU_IN_UP:        move(m, -1); break;
    case UI_MENU_IN_DOWN:      move(m, 1); break;
    case UI_MENU_IN_PAGE_UP:   move(m, -m->page_rows); break;
    case UI_MENU_IN_PAGE_DOWN: move(m, m->page_rows); break;
    case UI_MENU_IN_HOME:      move(m, INT_MIN / 2); break;
    case UI_MENU_IN_END:       move(m, INT_MAX / 2); break;
    case UI_MENU_IN_LEFT:
    case UI_MENU_IN_RIGHT:
        break;
    case UI_MENU_IN_BACK:
        /* Esc clears a search first, then closes. */
        if (m->search->len) {
            g_string_truncate(m->search, 0);
            set_search_changed(m);
        } else {
            question_clear(m);
            m->mode = UI_MENU_CLOSED;
        }
        break;
    case UI_MENU_IN_BACKSPACE:
        string_pop_char(m->search);
        set_search_changed(m);
        break;
    case UI_MENU_IN_FILTER:
        m->this_title_only = !m->this_title_only;
        rebuild_matches(m);
        break;
    default:
        if (r) {
            row_action(m, in, r);
        }
        break;
    }
}

void ui_menu_input(UiMenu *m, UiMenuInput in)
{
    g_rec_mutex_lock(&m->lock);
    switch (m->mode) {
    case UI_MENU_BROWSE:
        browse_input(m, in);
        break;
    case UI_MENU_RENAME:
        rename_input(m, in);
        break;
    case UI_MENU_DIALOG:
        dialog_input(m, in);
        break;
    case UI_MENU_CLOSED:
        break;
    }
    changed(m);
    g_rec_mutex_unlock(&m->lock);
}

/* Appends text (made valid UTF-8, without control characters) to s,
 * whole characters only, until max_bytes or max_chars is reached. */
static void append_text(GString *s, const char *text, gsize max_bytes,
                        glong max_chars)
{
    g_autofree char *valid = g_utf8_make_valid(text, -1);
    glong chars = g_utf8_strlen(s->str, -1);
    for (const char *p = valid; *p && chars < max_chars;
         p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        const char *next = g_utf8_next_char(p);
        if (g_unichar_iscntrl(c)) {
            continue;
        }
        if (s->len + (next - p) > max_bytes) {
            break;
        }
        g_string_append_len(s, p, next - p);
        chars++;
    }
}

void ui_menu_text(UiMenu *m, const char *text)
{
    if (!text) {
        return;
    }
    g_rec_mutex_lock(&m->lock);
    if (m->mode == UI_MENU_BROWSE) {
        append_text(m->search, text, UI_MENU_SEARCH_MAX, G_MAXLONG);
        set_search_changed(m);
        changed(m);
    } else if (m->mode == UI_MENU_RENAME) {
        append_text(m->edit, text, G_MAXSIZE, UI_MENU_NAME_MAX);
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

void ui_menu_click(UiMenu *m, int page_row, bool double_click)
{
    g_rec_mutex_lock(&m->lock);
    int i = m->top + page_row;
    if (m->mode == UI_MENU_BROWSE && page_row >= 0 &&
        page_row < m->page_rows && i < (int)m->matches->len) {
        m->selected = i;
        clamp_selection(m);
        if (double_click) {
            act_load(m, selected_row(m));
        }
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

void ui_menu_set_choice_boxes(UiMenu *m, const int (*boxes)[4], int n)
{
    g_rec_mutex_lock(&m->lock);
    m->n_boxes = m->mode == UI_MENU_DIALOG ? CLAMP(n, 0, m->q_n) : 0;
    if (m->n_boxes) {
        memcpy(m->boxes, boxes, m->n_boxes * sizeof(m->boxes[0]));
    }
    g_rec_mutex_unlock(&m->lock);
}

bool ui_menu_click_at(UiMenu *m, int x, int y)
{
    g_rec_mutex_lock(&m->lock);
    int hit = -1;
    for (int i = 0; m->mode == UI_MENU_DIALOG && i < m->n_boxes; i++) {
        const int *b = m->boxes[i];
        if (x >= b[0] && x < b[0] + b[2] && y >= b[1] && y < b[1] + b[3]) {
            hit = i;
            break;
        }
    }
    if (hit >= 0) {
        m->q_choice = hit;
        dialog_input(m, UI_MENU_IN_ACCEPT);
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
    return hit >= 0;
}

void ui_menu_wheel(UiMenu *m, int steps)
{
    g_rec_mutex_lock(&m->lock);
    if (m->mode == UI_MENU_BROWSE) {
        move(m, -steps);
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

void ui_menu_set_page_rows(UiMenu *m, int rows)
{
    g_rec_mutex_lock(&m->lock);
    rows = MAX(rows, 1);
    if (rows != m->page_rows) {
        m->page_rows = rows;
        clamp_selection(m);
        changed(m);
    }
    g_rec_mutex_unlock(&m->lock);
}

UiMenuMode ui_menu_mode(UiMenu *m)
{
    g_rec_mutex_lock(&m->lock);
    UiMenuMode mode = m->mode;
    g_rec_mutex_unlock(&m->lock);
    return mode;
}

char *ui_menu_selected_tag(UiMenu *m)
{
    g_rec_mutex_lock(&m->lock);
    Row *r = m->mode != UI_MENU_CLOSED ? selected_row(m) : NULL;
    char *tag = r ? g_strdup(r->tag) : NULL;
    g_rec_mutex_unlock(&m->lock);
    return tag;
}

/* ---- the view ---- */

char *ui_menu_format_size(uint64_t bytes)
{
    if (bytes < 1024) {
        return g_strdup_printf("%u B", (unsigned)bytes);
    }
    if (bytes < 1024 * 1024) {
        return g_strdup_printf("%.0f KB", bytes / 1024.0);
    }
    if (bytes < 1024ull * 1024 * 1024) {
        return g_strdup_printf("%.1f MB", bytes / (1024.0 * 1024));
    }
    return g_strdup_printf("%.1f GB", bytes / (1024.0 * 1024 * 1024));
}

/* "frame 18,230": the OSD's way of writing frames. */
static char *format_frame(uint64_t frame)
{
    g_autofree char *digits = g_strdup_printf("%" G_GUINT64_FORMAT, frame);
    GString *s = g_string_new("frame ");
    size_t n = strlen(digits);
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) {
            g_string_append_c(s, ',');
        }
        g_string_append_c(s, digits[i]);
    }
    return g_string_free(s, FALSE);
}

static char *format_date(int64_t t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);
    return dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M") : g_strdup("?");
}

static void row_view(UiMenu *m, const Row *r, UiMenuRow *out)
{
    out->tag = g_strdup(r->tag);
    out->thumbnail_png = r->png ? g_bytes_ref(r->png) : NULL;
    out->name = g_strdup(r->name);
    out->title = g_strdup(*r->title ? r->title : "(no disc)");
    out->date = format_date(r->created);
    out->frame = format_frame(r->frame);
    out->size = ui_menu_format_size(r->size);
    out->key = g_strdup(r->slot >= 1 && r->slot <= UI_LIBRARY_SLOTS
                        ? slot_chord(m, r->slot) : "");
}

static const char *chord(UiMenu *m, UiAction a, const char *fallback)
{
    const char *c = ui_config_chord_of(m->cfg, a);
    return c ? c : fallback;
}

/* The keys of the current mode, with the config's own chords. */
static char *footer(UiMenu *m)
{
    switch (m->mode) {
    case UI_MENU_RENAME:
        return g_strdup("Type the new name \u00b7 Return keep \u00b7 "
                        "Esc cancel");
    case UI_MENU_DIALOG:
        return g_strdup("\u2190\u2192 choose \u00b7 Return answer \u00b7 "
                        "Esc cancel");
    default:
        return g_strdup_printf(
            "Return load \u00b7 Ctrl+S save over \u00b7 F2 rename \u00b7 "
            "Delete delete \u00b7 %s\u2013%s bind \u00b7 Tab filter \u00b7 "
            "type to search \u00b7 Esc/%s close",
            chord(m, UI_ACTION_LOAD_SLOT1, "?"),
            chord(m, UI_ACTION_LOAD_SLOT4, "?"),
            chord(m, UI_ACTION_MENU, "F1"));
    }
}

static void view_header(UiMenu *m, UiMenuView *v)
{
    v->title = m->current_title && *m->current_title
        ? g_strdup_printf("Save states \u2014 %s", m->current_title)
        : g_strdup("Save states");
    v->filter = g_strdup(m->this_title_only ? "This title only"
                                            : "All titles");
    v->search = g_strdup(m->search->str);
    v->footer = footer(m);
}

bool ui_menu_snapshot(UiMenu *m, UiMenuView *v)
{
    memset(v, 0, sizeof(*v));
    g_rec_mutex_lock(&m->lock);
    v->mode = m->mode;
    v->generation = m->generation;
    if (m->mode == UI_MENU_CLOSED) {
        g_rec_mutex_unlock(&m->lock);
        return false;
    }
    view_header(m, v);
    int n = MIN((int)m->matches->len - m->top, m->page_rows);
    v->rows = g_new0(UiMenuRow, MAX(n, 1));
    for (int i = 0; i < n; i++) {
        row_view(m, g_ptr_array_index(m->matches, m->top + i), &v->rows[i]);
    }
    v->n_rows = MAX(n, 0);
    v->first = m->top;
    v->selected = m->matches->len ? m->selected - m->top : -1;
    v->n_matches = m->matches->len;
    v->n_total = m->rows->len;
    v->edit = m->mode == UI_MENU_RENAME ? g_strdup(m->edit->str) : NULL;
    v->question = g_strdup(m->q_text);
    for (int i = 0; i < m->q_n; i++) {
        v->choices[i] = g_strdup(m->q_labels[i]);
    }
    v->n_choices = m->q_n;
    v->choice = m->q_choice;
    v->bare = m->bare;
    g_rec_mutex_unlock(&m->lock);
    return true;
}

static void row_clear(UiMenuRow *r)
{
    g_free(r->tag);
    if (r->thumbnail_png) {
        g_bytes_unref(r->thumbnail_png);
    }
    g_free(r->name);
    g_free(r->title);
    g_free(r->date);
    g_free(r->frame);
    g_free(r->size);
    g_free(r->key);
}

void ui_menu_view_clear(UiMenuView *v)
{
    for (int i = 0; i < v->n_rows; i++) {
        row_clear(&v->rows[i]);
    }
    g_free(v->rows);
    g_free(v->title);
    g_free(v->filter);
    g_free(v->search);
    g_free(v->footer);
    g_free(v->edit);
    g_free(v->question);
    for (int i = 0; i < UI_MENU_MAX_CHOICES; i++) {
        g_free(v->choices[i]);
    }
    memset(v, 0, sizeof(*v));
}
