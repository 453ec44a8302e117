/*
 * helper-catalog-writer.c - the child process of
 * tests/snapshot/test-catalog-kill.py.
 *
 *   helper-catalog-writer write DIR SEED RUN
 *     Opens (creating) the catalog in DIR and loops forever on a seeded
 *     random mix of changes: add (sometimes making it current), rename,
 *     remove, set current, set description, redefine with another parent
 *     (moving a subtree), intent write and clear.  Around each change it
 *     prints, one write(2) each:
 *       B add NAME PARENT|- 0|1 DESC   B rename OLD NEW   B remove NAME
 *       B current NAME|-               B desc NAME DESC
 *       B move NAME PARENT|-           B intent NAME      B unintent NAME
 *     before the call, and "D" once it returned true: from "D" on the
 *     change is durable.  New names are rRUN-N, descriptions tRUN-N, so
 *     runs on the same folder never collide.  Any failure is printed on
 *     stderr and exits with status 1 (the test tells it from its kill).
 *
 *   helper-catalog-writer check DIR
 *     Opens the catalog and prints what it found: "R LINE" for each line
 *     of open's report, "S NAME PARENT|- DESC|-" per snapshot in creation
 *     order, "C NAME|-" and "I NAME" per intent record.
 */
#include "snapshot/catalog.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* One write(2) per line: a kill never leaves half a line behind a line
 * the test would take as complete. */
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *nl = g_strconcat(line, "\n", NULL);
    size_t len = strlen(nl);
    if (write(STDOUT_FILENO, nl, len) != (ssize_t)len) {
        exit(1);
    }
}

static void die(GError *err, const char *what)
{
    fprintf(stderr, "helper-catalog-writer: %s: %s\n", what,
            err ? err->message : "failed");
    exit(1);
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

typedef struct {
    DsnapCatalog *cat;
    GRand *rand;
    int run;
    int seq;
} Writer;

/* A random existing snapshot, or NULL when there is none. */
static char *pick(Writer *w)
{
    g_autoptr(GPtrArray) names = dsnap_catalog_names(w->cat);
    if (!names->len) {
        return NULL;
    }
    return g_strdup(g_ptr_array_index(names,
                                      g_rand_int_range(w->rand, 0,
                                                       names->len)));
}

static char *fresh(Writer *w, char kind)
{
    return g_strdup_printf("%c%d-%d", kind, w->run, ++w->seq);
}

static void op_add(Writer *w)
{
    GError *err = NULL;
    DomainSnapshotDef *def = dsnap_def_new();
    def->name = fresh(w, 'r');
    def->parent = g_rand_int_range(w->rand, 0, 4) ? pick(w) : NULL;
    def->description = fresh(w, 't');
    def->state = DSNAP_STATE_RUNNING;
    dsnap_def_fill_defaults(def, 1700000000 + w->run * 100000 + w->seq);
    bool make_current = g_rand_boolean(w->rand);
    say("B add %s %s %d %s", def->name, or_dash(def->parent), make_current,
        def->description);
    if (!dsnap_catalog_add(w->cat, def, make_current, &err)) {
        die(err, "add");
    }
}

static void op_rename(Writer *w, const char *name)
{
    GError *err = NULL;
    g_autofree char *to = fresh(w, 'r');
    say("B rename %s %s", name, to);
    if (!dsnap_catalog_rename(w->cat, name, to, &err)) {
        die(err, "rename");
    }
}

static void op_remove(Writer *w, const char *name)
{
    GError *err = NULL;
    say("B remove %s", name);
    if (!dsnap_catalog_remove(w->cat, name, &err)) {
        die(err, "remove");
    }
}

static void op_current(Writer *w, const char *name)
{
    GError *err = NULL;
    say("B current %s", or_dash(name));
    if (!dsnap_catalog_set_current(w->cat, name, &err)) {
        die(err, "set_current");
    }
}

static void op_desc(Writer *w, const char *name)
{
    GError *err = NULL;
    g_autofree char *text = fresh(w, 't');
    say("B desc %s %s", name, text);
    if (!dsnap_catalog_set_description(w->cat, name, text, &err)) {
        die(err, "set_description");
    }
}

/* Redefines name with a parent outside its own subtree. */
static void op_move(Writer *w, const char *name)
{
    GError *err = NULL;
    g_autofree char *to = pick(w);
    if (to && (!strcmp(to, name) ||
               dsnap_catalog_is_descendant(w->cat, to, name))) {
        g_clear_pointer(&to, g_free);
    }
    g_autofree char *xml = dsnap_format(dsnap_catalog_lookup(w->cat, name));
    DomainSnapshotDef *def = dsnap_parse_string(xml, strlen(xml), &err);
    if (!def) {
        die(err, "parse");
    }
    g_free(def->parent);
    def->parent = g_strdup(to);
    say("B move %s %s", name, or_dash(to));
    if (!dsnap_catalog_redefine(w->cat, def, false, &err)) {
        die(err, "redefine");
    }
}

static void op_intent(Writer *w, const char *name)
{
    GError *err = NULL;
    g_autoptr(GPtrArray) intents = dsnap_catalog_intents(w->cat);
    if (intents->len && g_rand_boolean(w->rand)) {
        const char *n = g_ptr_array_index(intents, 0);
        say("B unintent %s", n);
        if (!dsnap_catalog_intent_clear(w->cat, n, &err)) {
            die(err, "intent_clear");
        }
        return;
    }
    say("B intent %s", name);
    if (!dsnap_catalog_intent_write(w->cat, name, "<intent/>", &err)) {
        die(err, "intent_write");
    }
}

/* One change; removals get likelier as the catalog grows. */
static void step(Writer *w)
{
    g_autofree char *name = pick(w);
    guint count = dsnap_catalog_count(w->cat);
    int r = g_rand_int_range(w->rand, 0, 100);
    if (!name || r < 35 - (int)MIN(count, 30u)) {
        op_add(w);
    } else if (r < 50) {
        op_remove(w, name);
    } else if (r < 62) {
        op_rename(w, name);
    } else if (r < 72) {
        op_current(w, g_rand_int_range(w->rand, 0, 5) ? name : NULL);
    } else if (r < 82) {
        op_desc(w, name);
    } else if (r < 92) {
        op_move(w, name);
    } else {
        op_intent(w, name);
    }
    say("D");
}

static int do_write(const char *dir, guint32 seed, int run)
{
    GError *err = NULL;
    Writer w = { .rand = g_rand_new_with_seed(seed), .run = run };
    w.cat = dsnap_catalog_open(dir, true, NULL, &err);
    if (!w.cat) {
        die(err, "open");
    }
    say("O");
    for (;;) {
        step(&w);
    }
    return 0;
}

static int do_check(const char *dir)
{
    GError *err = NULL;
    g_autoptr(GString) report = g_string_new(NULL);
    g_autoptr(DsnapCatalog) cat = dsnap_catalog_open(dir, false, report,
                                                     &err);
    if (!cat) {
        die(err, "open");
    }
    g_auto(GStrv) lines = g_strsplit(report->str, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (**l) {
            say("R %s", *l);
        }
    }
    g_autoptr(GPtrArray) names = dsnap_catalog_names(cat);
    for (guint i = 0; i < names->len; i++) {
        const DomainSnapshotDef *d =
            dsnap_catalog_lookup(cat, g_ptr_array_index(names, i));
        say("S %s %s %s", d->name, or_dash(d->parent),
            or_dash(d->description));
    }
    say("C %s", or_dash(dsnap_catalog_current(cat)));
    g_autoptr(GPtrArray) intents = dsnap_catalog_intents(cat);
    for (guint i = 0; i < intents->len; i++) {
        say("I %s", (char *)g_ptr_array_index(intents, i));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "write")) {
        return do_write(argv[2], strtoul(argv[3], NULL, 10),
                        atoi(argv[4]));
    }
    if (argc == 3 && !strcmp(argv[1], "check")) {
        return do_check(argv[2]);
    }
    fprintf(stderr, "usage: helper-catalog-writer write DIR SEED RUN\n"
                    "       helper-catalog-writer check DIR\n");
    return 2;
}
