/*
 * test-powerloss-catalog.c - the domain-snapshot catalog (snapshot/
 * catalog.c) under power loss: every create, write, fsync, rename and
 * unlink of its files goes through util/durable-io.h, where the
 * simulated volatile file system of tests/block/powerloss.h sits.  At
 * each of those events of an add, redefine, rename, remove, set_current
 * (and the intent and domain.xml writes) the power fails; of what was
 * not yet fsynced - file data, or creates, renames and unlinks whose
 * folder was not fsynced - none, all or random subsets survive.  The
 * catalog is then reopened (which finishes or withdraws a journalled
 * change) and must show exactly the state before the call or after it:
 * every snapshot's document, the tree, the current snapshot, the intent
 * records and domain.xml.  Never a state in between, never a snapshot
 * lost.
 *
 * The reopen itself may write (a journal's redo, removing leftovers), so
 * each crash state is also reopened with the power failing at each event
 * of that open, and the open after it must still show one of the two
 * states.
 */
#include "tests/block/powerloss.h"
#include "snapshot/catalog.h"

static char *cat_dir;

static void rm_rf(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, n, NULL);
        g_unlink(p);
    }
    g_rmdir(path);
}

static DomainSnapshotDef *mkdef(const char *name, const char *parent,
                                int64_t ctime, const char *description)
{
    DomainSnapshotDef *def = dsnap_def_new();
    def->name = g_strdup(name);
    def->parent = g_strdup(parent);
    def->description = g_strdup(description);
    def->state = DSNAP_STATE_RUNNING;
    def->has_creation_time = true;
    def->creation_time = ctime;
    dsnap_def_fill_defaults(def, ctime);
    return def;
}

static DsnapCatalog *open_catalog(GError **errp)
{
    g_autoptr(GString) report = g_string_new(NULL);
    return dsnap_catalog_open(cat_dir, true, report, errp);
}

/* Everything the catalog shows, as one text: each snapshot's document
 * in creation order, current, intents and domain.xml. */
static char *catalog_state(DsnapCatalog *cat)
{
    GString *s = g_string_new(NULL);
    g_autoptr(GPtrArray) names = dsnap_catalog_names(cat);
    for (guint i = 0; i < names->len; i++) {
        const DomainSnapshotDef *d = dsnap_catalog_lookup(
            cat, g_ptr_array_index(names, i));
        g_autofree char *xml = dsnap_format(d);
        g_string_append_printf(s, "[%s]\n%s", d->name, xml);
    }
    g_string_append_printf(s, "current: %s\n",
                           dsnap_catalog_current(cat) ?: "(none)");
    g_autoptr(GPtrArray) intents = dsnap_catalog_intents(cat);
    for (guint i = 0; i < intents->len; i++) {
        const char *n = g_ptr_array_index(intents, i);
        g_autofree char *text = dsnap_catalog_intent_read(cat, n, NULL);
        g_string_append_printf(s, "intent %s: %s\n", n, text ?: "(unread)");
    }
    g_autofree char *dom = dsnap_catalog_read_domain(cat, NULL);
    g_string_append_printf(s, "domain: %s\n", dom ?: "(none)");
    return g_string_free(s, FALSE);
}

/* The catalog every case starts from (written with real I/O):
 *   a -+- b --- c (current)
 *      +- d
 * an intent record for "x" and a domain.xml. */
static void setup_catalog(void)
{
    rm_rf(cat_dir);
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_catalog(&err);
    g_assert_no_error(err);
    g_assert_true(dsnap_catalog_add(cat, mkdef("a", NULL, 1, NULL), false,
                                    &err));
    g_assert_true(dsnap_catalog_add(cat, mkdef("b", "a", 2, "bee"), false,
                                    &err));
    g_assert_true(dsnap_catalog_add(cat, mkdef("c", "b", 3, NULL), true,
                                    &err));
    g_assert_true(dsnap_catalog_add(cat, mkdef("d", "a", 4, NULL), false,
                                    &err));
    g_assert_true(dsnap_catalog_intent_write(cat, "x", "<intent/>", &err));
    g_assert_true(dsnap_catalog_write_domain(cat, "<domain>1</domain>",
                                             &err));
    g_assert_no_error(err);
}

/* ---- the operations ---- */

typedef bool CatOp(DsnapCatalog *cat, GError **errp);

static bool op_add(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_add(cat, mkdef("e", "d", 5, NULL), false, errp);
}

static bool op_add_current(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_add(cat, mkdef("e", "d", 5, "new"), true, errp);
}

static bool op_set_current(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_set_current(cat, "d", errp);
}

static bool op_clear_current(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_set_current(cat, NULL, errp);
}

static bool op_rename_parent(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_rename(cat, "b", "bb", errp);
}

static bool op_rename_current(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_rename(cat, "c", "cc", errp);
}

static bool op_rename_root(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_rename(cat, "a", "root", errp);
}

static bool op_remove_leaf(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_remove(cat, "d", errp);
}

static bool op_remove_inner(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_remove(cat, "b", errp);
}

static bool op_remove_current(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_remove(cat, "c", errp);
}

static bool op_remove_root(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_remove(cat, "a", errp);
}

static bool op_redefine(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_redefine(cat, mkdef("b", "a", 2, "changed"), false,
                                  errp);
}

static bool op_redefine_move_current(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_redefine(cat, mkdef("d", "c", 4, "moved"), true,
                                  errp);
}

static bool op_set_description(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_set_description(cat, "a", "described", errp);
}

static bool op_intent_write(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_intent_write(cat, "y", "<intent>y</intent>", errp);
}

static bool op_intent_clear(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_intent_clear(cat, "x", errp);
}

static bool op_write_domain(DsnapCatalog *cat, GError **errp)
{
    return dsnap_catalog_write_domain(cat, "<domain>2</domain>", errp);
}

typedef struct CatCase {
    const char *name;
    CatOp *op;
} CatCase;

static const CatCase cases[] = {
    { "add", op_add },
    { "add-current", op_add_current },
    { "set-current", op_set_current },
    { "clear-current", op_clear_current },
    { "rename-parent", op_rename_parent },
    { "rename-current", op_rename_current },
    { "rename-root", op_rename_root },
    { "remove-leaf", op_remove_leaf },
    { "remove-inner", op_remove_inner },
    { "remove-current", op_remove_current },
    { "remove-root", op_remove_root },
    { "redefine", op_redefine },
    { "redefine-move-current", op_redefine_move_current },
    { "set-description", op_set_description },
    { "intent-write", op_intent_write },
    { "intent-clear", op_intent_clear },
    { "write-domain", op_write_domain },
};

/* ---- one run ---- */

/* The states before and after each case, from its run without a
 * failure. */
static char *state_old, *state_new;
static uint64_t recovery_points;

/* Opens the catalog with real I/O and checks it shows the old or the new
 * state; returns that state (NULL after a failure). */
static char *check_reopen(const char *when)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_catalog(&err);
    if (!cat) {
        power_failf("%s: the catalog does not open: %s", when, err->message);
        g_error_free(err);
        return NULL;
    }
    char *st = catalog_state(cat);
    if (g_strcmp0(st, state_old) && g_strcmp0(st, state_new)) {
        power_failf("%s: neither the state before nor after:\n%s\n"
                    "-- before --\n%s\n-- after --\n%s", when, st,
                    state_old, state_new);
        g_free(st);
        return NULL;
    }
    return st;
}

/* The folder's files (name -> GBytes), to crash the same state again. */
static GHashTable *folder_save(void)
{
    GHashTable *files = g_hash_table_new_full(g_str_hash, g_str_equal,
                                              g_free,
                                              (GDestroyNotify)g_bytes_unref);
    g_autoptr(GDir) d = g_dir_open(cat_dir, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(cat_dir, n, NULL);
        char *data = NULL;
        gsize len = 0;
        g_assert_true(g_file_get_contents(p, &data, &len, NULL));
        g_hash_table_insert(files, g_strdup(n), g_bytes_new_take(data, len));
    }
    return files;
}

static void folder_restore(GHashTable *files)
{
    rm_rf(cat_dir);
    g_assert_cmpint(g_mkdir(cat_dir, 0700), ==, 0);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, files);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        g_autofree char *p = g_build_filename(cat_dir, k, NULL);
        gsize len;
        const char *data = g_bytes_get_data(v, &len);
        g_assert_true(g_file_set_contents(p, data ? data : "", len, NULL));
    }
}

/* Opens the crash state with the power failing at event fail_at of the
 * open (0: never); returns the events the open issued. */
static uint64_t reopen_under_power(uint64_t fail_at, uint64_t subset)
{
    GError *err = NULL;
    power_start(fail_at, true);
    DsnapCatalog *cat = open_catalog(&err);
    if (!cat && !power.dead) {
        power_failf("the catalog does not open: %s", err->message);
    }
    g_clear_error(&err);
    uint64_t events = power.events;
    power_cut(subset);
    dsnap_catalog_free(cat);
    power_reset();
    return events;
}

/* After a crash during the case: the reopen shows the old or new state,
 * also when the power fails again during that reopen. */
static void check_crash_state(const char *name, uint64_t fail_at,
                              uint64_t subset)
{
    g_autoptr(GHashTable) files = folder_save();
    char where[sizeof(power_where)];
    memcpy(where, power_where, sizeof(where));
    /* The first reopen also counts the open's events; the power fails
     * just after it with nothing volatile surviving, so what the open
     * wrote (a redo) must have been durable when it returned. */
    uint64_t n = reopen_under_power(0, 0);
    g_autofree char *st = check_reopen("reopened");
    for (uint64_t j = 1; st && j <= n; j++) {
        for (unsigned k = 0; k < 2; k++) {
            uint64_t sub = k ? power_subset_seed(name, fail_at * 1000 + j,
                                                 (unsigned)subset) : 0;
            g_autofree char *msg = g_strdup_printf(
                "%s; the reopen fails at its event %" G_GUINT64_FORMAT "/%"
                G_GUINT64_FORMAT ", subset %" G_GUINT64_FORMAT, where, j, n,
                sub);
            g_strlcpy(power_where, msg, sizeof(power_where));
            folder_restore(files);
            reopen_under_power(j, sub);
            g_autofree char *again = check_reopen("reopened twice");
            recovery_points++;
        }
    }
    memcpy(power_where, where, sizeof(where));
}

static uint64_t run_once(const void *data, uint64_t fail_at,
                         uint64_t subset)
{
    const CatCase *c = data;
    GError *err = NULL;
    setup_catalog();
    DsnapCatalog *cat = open_catalog(&err);
    g_assert_no_error(err);
    if (!fail_at) {
        g_free(state_old);
        state_old = catalog_state(cat);
    }
    power_start(fail_at, true);
    bool ok = c->op(cat, &err);
    uint64_t events = power.events;
    if (!power.dead) {
        g_assert_no_error(err);
        g_assert_true(ok);
    }
    g_clear_error(&err);
    bool done = ok && !power.dead;
    if (fail_at) {
        power_cut(subset);
    }
    dsnap_catalog_free(cat);
    power_reset();
    if (!fail_at) {
        cat = open_catalog(&err);
        g_assert_no_error(err);
        g_free(state_new);
        state_new = catalog_state(cat);
        dsnap_catalog_free(cat);
        g_assert_cmpstr(state_new, !=, state_old);
        return events;
    }
    if (done) {
        /* Reported done: durable. */
        g_autofree char *st = check_reopen("reopened after success");
        if (st && strcmp(st, state_new)) {
            power_failf("the change was reported done but is lost");
        }
    }
    check_crash_state(c->name, fail_at, subset);
    return events;
}

static void test_case(gconstpointer data)
{
    const CatCase *c = data;
    g_autofree char *name = g_strdup_printf("catalog/%s", c->name);
    uint64_t before = recovery_points;
    power_sweep(name, c, run_once, power_random_subsets(4, 32));
    printf("# %s: %" G_GUINT64_FORMAT " crash points in the reopen\n", name,
           recovery_points - before);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    char tmpl[] = "/dev/shm/xblk-plcat-XXXXXX";
    g_autofree char *base = g_mkdtemp(tmpl) ? g_strdup(tmpl)
                                            : g_dir_make_tmp("xblk-plcat-"
                                                             "XXXXXX", NULL);
    g_assert_nonnull(base);
    cat_dir = g_build_filename(base, "catalog", NULL);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/powerloss-catalog/%s",
                                                cases[i].name);
        g_test_add_data_func(name, &cases[i], test_case);
    }
    int ret = g_test_run();
    power_report("test-powerloss-catalog");
    printf("# test-powerloss-catalog: %" G_GUINT64_FORMAT " crash points "
           "in reopens\n", recovery_points);
    rm_rf(cat_dir);
    g_rmdir(base);
    g_free(cat_dir);
    g_free(state_old);
    g_free(state_new);
    return ret;
}
