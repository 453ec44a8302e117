/*
 * test-catalog.c - the snapshot catalog (snapshot/catalog.c) against real
 * folders made with g_dir_make_tmp: round trips through reopen, the tree
 * and virsh's listings (the tree text is the one libvirt's own
 * tests/virsh-snapshot expects for the same tree), rename, remove,
 * redefine, refused names, damaged folders, leftovers, intents, the
 * journal's redo of interrupted changes (the files a kill leaves, made by
 * hand) and writes that fail (RLIMIT_FSIZE, which holds even for root).
 * tests/snapshot/test-catalog-kill.py kills a real writer.
 */
#include "snapshot/catalog.h"
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fixtures ---- */

typedef struct {
    char *dir;
} Fixture;

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
        const char *n;
        while (d && (n = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(path, n, NULL);
            rm_rf(p);
        }
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

static void fx_setup(Fixture *fx, gconstpointer data)
{
    fx->dir = g_dir_make_tmp("xblk-catalog-XXXXXX", NULL);
    g_assert_nonnull(fx->dir);
}

static void fx_teardown(Fixture *fx, gconstpointer data)
{
    rm_rf(fx->dir);
    g_free(fx->dir);
}

static char *path_in(Fixture *fx, const char *name)
{
    return g_build_filename(fx->dir, name, NULL);
}

static bool exists_in(Fixture *fx, const char *name)
{
    g_autofree char *p = path_in(fx, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static void put_file(Fixture *fx, const char *name, const char *text)
{
    g_autofree char *p = path_in(fx, name);
    g_assert_true(g_file_set_contents(p, text, -1, NULL));
}

static char *get_file(Fixture *fx, const char *name)
{
    g_autofree char *p = path_in(fx, name);
    char *text = NULL;
    g_assert_true(g_file_get_contents(p, &text, NULL, NULL));
    return text;
}

static gint cmp_strp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the folder's files, sorted, joined by ','. */
static char *listing(Fixture *fx)
{
    g_autoptr(GDir) d = g_dir_open(fx->dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d))) {
        g_ptr_array_add(names, g_strdup(n));
    }
    g_ptr_array_sort(names, cmp_strp);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(",", (char **)names->pdata);
}

static char *join(GPtrArray *a)
{
    g_assert_nonnull(a);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < a->len; i++) {
        g_string_append_printf(s, "%s%s", i ? "," : "",
                               (char *)g_ptr_array_index(a, i));
    }
    g_ptr_array_unref(a);
    return g_string_free(s, FALSE);
}

static DsnapCatalog *open_cat(Fixture *fx, GString *report)
{
    GError *err = NULL;
    DsnapCatalog *cat = dsnap_catalog_open(fx->dir, false, report, &err);
    g_assert_no_error(err);
    return cat;
}

/* Opens and asserts that nothing needed a repair. */
static DsnapCatalog *open_clean(Fixture *fx)
{
    g_autoptr(GString) report = g_string_new(NULL);
    DsnapCatalog *cat = open_cat(fx, report);
    g_assert_cmpstr(report->str, ==, "");
    return cat;
}

static DomainSnapshotDef *mkdef(const char *name, const char *parent,
                                int64_t ctime, DsnapState state)
{
    DomainSnapshotDef *def = dsnap_def_new();
    def->name = g_strdup(name);
    def->parent = g_strdup(parent);
    def->state = state;
    def->has_creation_time = true;
    def->creation_time = ctime;
    dsnap_def_fill_defaults(def, ctime);
    return def;
}

static void add(DsnapCatalog *cat, const char *name, const char *parent,
                int64_t ctime, bool make_current)
{
    GError *err = NULL;
    g_assert_true(dsnap_catalog_add(cat, mkdef(name, parent, ctime,
                                               DSNAP_STATE_RUNNING),
                                    make_current, &err));
    g_assert_no_error(err);
}

/* Takes errp, not the error: the call in ok must run before it is read. */
static void refused(bool ok, GError **errp, const char *expect)
{
    GError *err = *errp;
    g_assert_false(ok);
    g_assert_nonnull(err);
    if (!strstr(err->message, expect)) {
        g_error("'%s' does not contain '%s'", err->message, expect);
    }
    g_assert_null(strchr(err->message, '\n'));
    g_clear_error(errp);
}

static void expect_names(DsnapCatalog *cat, const char *names)
{
    g_autofree char *got = join(dsnap_catalog_names(cat));
    g_assert_cmpstr(got, ==, names);
}

/* ---- open ---- */

static void test_open(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autofree char *sub = path_in(fx, "a/b/cat");
    g_assert_null(dsnap_catalog_open(sub, false, NULL, &err));
    refused(false, &err, "could not open snapshot catalog");

    g_autoptr(DsnapCatalog) cat = dsnap_catalog_open(sub, true, NULL, &err);
    g_assert_no_error(err);
    struct stat st;
    g_assert_cmpint(stat(sub, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0700);
    g_assert_cmpstr(dsnap_catalog_dir(cat), ==, sub);
    g_assert_cmpuint(dsnap_catalog_count(cat), ==, 0);
    g_assert_null(dsnap_catalog_current(cat));
    g_autofree char *tree = dsnap_catalog_format_tree(cat, NULL);
    g_assert_cmpstr(tree, ==, "");

    put_file(fx, "plain", "x");
    g_autofree char *plain = path_in(fx, "plain");
    g_assert_null(dsnap_catalog_open(plain, true, NULL, &err));
    refused(false, &err, "is not a folder");
}

/* ---- add, lookup, reopen ---- */

static void test_add_reopen(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    DomainSnapshotDef *a = mkdef("a", NULL, 100, DSNAP_STATE_SHUTOFF);
    a->description = g_strdup("first <one> & 'quoted'");
    g_autofree char *a_xml = dsnap_format(a);
    g_assert_true(dsnap_catalog_add(cat, a, true, &err));
    add(cat, "b", "a", 200, false);
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");
    g_assert_cmpuint(dsnap_catalog_count(cat), ==, 2);

    /* The file is the document dsnap_format() writes, current a line. */
    g_autofree char *on_disk = get_file(fx, "a.xml");
    g_assert_cmpstr(on_disk, ==, a_xml);
    g_autofree char *cur = get_file(fx, "current");
    g_assert_cmpstr(cur, ==, "a\n");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, "a.xml,b.xml,current");

    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    const DomainSnapshotDef *ra = dsnap_catalog_lookup(cat, "a");
    const DomainSnapshotDef *rb = dsnap_catalog_lookup(cat, "b");
    g_assert_nonnull(ra);
    g_assert_cmpstr(ra->description, ==, "first <one> & 'quoted'");
    g_assert_cmpint(ra->state, ==, DSNAP_STATE_SHUTOFF);
    g_assert_cmpint(ra->creation_time, ==, 100);
    g_assert_null(ra->parent);
    g_assert_cmpstr(rb->parent, ==, "a");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");
    g_assert_null(dsnap_catalog_lookup(cat, "zz"));
    expect_names(cat, "a,b");

    /* Refusals change nothing on disk. */
    refused(dsnap_catalog_add(cat, mkdef("a", NULL, 1, 0), false, &err), &err,
            "domain snapshot a already exists");
    refused(dsnap_catalog_add(cat, mkdef("c", "zz", 1, 0), false, &err), &err,
            "parent zz for snapshot c not found");
    DomainSnapshotDef *anon = mkdef("x", NULL, 1, 0);
    g_clear_pointer(&anon->name, g_free);
    refused(dsnap_catalog_add(cat, anon, false, &err), &err, "has no <name>");
    refused(dsnap_catalog_set_current(cat, "zz", &err), &err,
            "no domain snapshot with matching name 'zz'");
    g_autofree char *after = listing(fx);
    g_assert_cmpstr(after, ==, "a.xml,b.xml,current");

    /* set_current, and clearing it removes the file. */
    g_assert_true(dsnap_catalog_set_current(cat, "b", &err));
    g_autofree char *cur_b = get_file(fx, "current");
    g_assert_cmpstr(cur_b, ==, "b\n");
    g_assert_true(dsnap_catalog_set_current(cat, NULL, &err));
    g_assert_false(exists_in(fx, "current"));
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    g_assert_null(dsnap_catalog_current(cat));
}

static void test_unsafe_names(Fixture *fx, gconstpointer data)
{
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add(cat, "ok", NULL, 1, false);
    g_autofree char *long_name = g_strnfill(DSNAP_CATALOG_NAME_MAX + 1, 'n');
    g_autofree char *max_name = g_strnfill(DSNAP_CATALOG_NAME_MAX, 'm');
    const struct {
        const char *name;
        const char *expect;
    } bad[] = {
        { "../x", "not a safe file name" },
        { "a/b", "not a safe file name" },
        { "x\ny", "not a safe file name" },
        { "tab\there", "not a safe file name" },
        { ".hidden", "not a safe file name" },
        { "", "not a safe file name" },
        { "domain", "is reserved" },
        { long_name, "too long" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GError *err = NULL;
        DomainSnapshotDef *def = mkdef("x", NULL, 1, 0);
        g_free(def->name);
        def->name = g_strdup(bad[i].name);
        refused(dsnap_catalog_add(cat, def, false, &err), &err,
                bad[i].expect);
        refused(dsnap_catalog_rename(cat, "ok", bad[i].name, &err), &err,
                bad[i].expect);
        refused(dsnap_catalog_intent_write(cat, bad[i].name, "x", &err), &err,
                bad[i].expect);
    }
    /* An unsafe parent is "not found", never a path. */
    GError *err = NULL;
    refused(dsnap_catalog_add(cat, mkdef("y", "../ok", 1, 0), false, &err),
            &err, "not found");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, "ok.xml");
    /* The longest name fits, with its intent record. */
    add(cat, max_name, NULL, 2, false);
    g_assert_true(dsnap_catalog_intent_write(cat, max_name, "i", NULL));
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    g_assert_nonnull(dsnap_catalog_lookup(cat, max_name));
    g_autofree char *intents = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(intents, ==, max_name);
}

/* ---- the tree, as libvirt's tests/virsh-snapshot builds it ---- */

/* s1 -> s3 -> {s2, s6 -> {s5, s4}}, s1 -> s7 -> s8, created in the
 * order s1 s3 s2 s6 s5 s4 s7 s8 (names sort differently). */
static void build_virsh_tree(DsnapCatalog *cat)
{
    static const char *const tree[][2] = {
        { "s1", NULL }, { "s3", "s1" }, { "s2", "s3" }, { "s6", "s3" },
        { "s5", "s6" }, { "s4", "s6" }, { "s7", "s1" }, { "s8", "s7" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(tree); i++) {
        add(cat, tree[i][0], tree[i][1], 1000 + i, true);
    }
}

/* libvirt's expected output for that tree (tests/virsh-snapshot strips
 * trailing spaces before comparing). */
static const char virsh_tree_stripped[] =
    "s1\n"
    "  |\n"
    "  +- s3\n"
    "  |   |\n"
    "  |   +- s2\n"
    "  |   +- s6\n"
    "  |       |\n"
    "  |       +- s4\n"
    "  |       +- s5\n"
    "  |\n"
    "  +- s7\n"
    "      |\n"
    "      +- s8\n"
    "\n";

/* And what virsh really prints: the blank lines carry the indent. */
static const char virsh_tree_raw[] =
    "s1\n"
    "  |\n"
    "  +- s3\n"
    "  |   |\n"
    "  |   +- s2\n"
    "  |   +- s6\n"
    "  |       |\n"
    "  |       +- s4\n"
    "  |       +- s5\n"
    "  |         \n"
    "  +- s7\n"
    "      |\n"
    "      +- s8\n"
    "        \n";

static char *strip_trailing_spaces(const char *text)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_strchomp(*l);
    }
    return g_strjoinv("\n", lines);
}

static void test_tree(Fixture *fx, gconstpointer data)
{
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    build_virsh_tree(cat);
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "s8");
    expect_names(cat, "s1,s3,s2,s6,s5,s4,s7,s8");

    g_autofree char *tree = dsnap_catalog_format_tree(cat, NULL);
    g_assert_cmpstr(tree, ==, virsh_tree_raw);
    g_autofree char *stripped = strip_trailing_spaces(tree);
    g_assert_cmpstr(stripped, ==, virsh_tree_stripped);
    g_autofree char *sub = dsnap_catalog_format_tree(cat, "s6");
    g_assert_cmpstr(sub, ==, "s6\n  |\n  +- s4\n  +- s5\n    \n");
    g_autofree char *leaf = dsnap_catalog_format_tree(cat, "s8");
    g_assert_cmpstr(leaf, ==, "s8\n\n");
    g_assert_null(dsnap_catalog_format_tree(cat, "zz"));

    g_assert_cmpstr(dsnap_catalog_parent(cat, "s5"), ==, "s6");
    g_assert_null(dsnap_catalog_parent(cat, "s1"));
    g_assert_null(dsnap_catalog_parent(cat, "zz"));
    g_autofree char *kids = join(dsnap_catalog_children(cat, "s3"));
    g_assert_cmpstr(kids, ==, "s2,s6");
    g_autofree char *none = join(dsnap_catalog_children(cat, "s8"));
    g_assert_cmpstr(none, ==, "");
    g_assert_null(dsnap_catalog_children(cat, "zz"));
    g_assert_null(dsnap_catalog_descendants(cat, "zz"));
    /* Each after all of its own descendants. */
    g_autofree char *desc = join(dsnap_catalog_descendants(cat, "s1"));
    g_assert_cmpstr(desc, ==, "s8,s7,s4,s5,s6,s2,s3");
    g_assert_true(dsnap_catalog_is_descendant(cat, "s4", "s1"));
    g_assert_true(dsnap_catalog_is_descendant(cat, "s4", "s6"));
    g_assert_false(dsnap_catalog_is_descendant(cat, "s6", "s4"));
    g_assert_false(dsnap_catalog_is_descendant(cat, "s1", "s1"));
    g_assert_false(dsnap_catalog_is_descendant(cat, "s8", "s3"));

    /* libvirt's script: deleting the current root leaves two roots and
     * no current snapshot. */
    GError *err = NULL;
    g_assert_true(dsnap_catalog_set_current(cat, "s1", &err));
    g_assert_true(dsnap_catalog_remove(cat, "s1", &err));
    g_assert_no_error(err);
    g_assert_null(dsnap_catalog_current(cat));
    DsnapListFilter f = { .roots = true };
    g_autofree char *roots = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(roots, ==, "s3,s7");
    f = (DsnapListFilter){ .leaves = true };
    g_autofree char *leaves = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(leaves, ==, "s2,s5,s4,s8");
    f = (DsnapListFilter){ .no_leaves = true };
    g_autofree char *inner = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(inner, ==, "s3,s6,s7");
    f = (DsnapListFilter){ .leaves = true, .no_leaves = true };
    g_autofree char *both = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(both, ==, "s3,s2,s6,s5,s4,s7,s8");
    f = (DsnapListFilter){ .from = "s3" };
    g_autofree char *from = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(from, ==, "s2,s6");
    f = (DsnapListFilter){ .from = "s3", .descendants = true };
    g_autofree char *all = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(all, ==, "s2,s6,s5,s4");
    f = (DsnapListFilter){ .from = "s3", .descendants = true,
                           .leaves = true };
    g_autofree char *dl = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(dl, ==, "s2,s5,s4");

    /* Current s4; children-only delete of s6 moves current up to s6. */
    g_assert_true(dsnap_catalog_set_current(cat, "s4", &err));
    f = (DsnapListFilter){ .from_current = true };
    g_autofree char *fc = join(dsnap_catalog_list(cat, &f, NULL));
    g_assert_cmpstr(fc, ==, "");
    g_autoptr(GPtrArray) below = dsnap_catalog_descendants(cat, "s6");
    for (guint i = 0; i < below->len; i++) {
        g_assert_true(dsnap_catalog_remove(cat, below->pdata[i], &err));
    }
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "s6");
    /* --children delete of s7: current stays. */
    g_autoptr(GPtrArray) below7 = dsnap_catalog_descendants(cat, "s7");
    for (guint i = 0; i < below7->len; i++) {
        g_assert_true(dsnap_catalog_remove(cat, below7->pdata[i], &err));
    }
    g_assert_true(dsnap_catalog_remove(cat, "s7", &err));
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "s6");
    g_assert_true(dsnap_catalog_remove(cat, "s6", &err));
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "s3");
    g_assert_no_error(err);
    expect_names(cat, "s3,s2");

    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    expect_names(cat, "s3,s2");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "s3");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "s2"), ==, "s3");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, "current,s2.xml,s3.xml");
    g_autofree char *t2 = dsnap_catalog_format_tree(cat, NULL);
    g_assert_cmpstr(t2, ==, "s3\n  |\n  +- s2\n    \n");
}

/* Siblings and roots sort by name ignoring case, as virsh does. */
static void test_tree_order(Fixture *fx, gconstpointer data)
{
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add(cat, "b", NULL, 1, false);
    add(cat, "A", NULL, 2, false);
    add(cat, "z", "b", 3, false);
    add(cat, "Y", "b", 4, false);
    g_autofree char *tree = dsnap_catalog_format_tree(cat, NULL);
    g_assert_cmpstr(tree, ==, "A\n\nb\n  |\n  +- Y\n  +- z\n    \n");
}

/* ---- listing filters on states and locations ---- */

static void add_state(DsnapCatalog *cat, const char *name, int64_t t,
                      DsnapState state, bool ext_memory, bool ext_disk)
{
    DomainSnapshotDef *def = dsnap_def_new();
    def->name = g_strdup(name);
    def->state = state;
    def->has_creation_time = true;
    def->creation_time = t;
    if (ext_memory) {
        def->memory_file = g_strdup("/var/lib/xblk/mem");
    }
    DsnapDiskDef *d = g_new0(DsnapDiskDef, 1);
    d->name = g_strdup("hda");
    if (ext_disk) {
        d->source_file = g_strdup("/var/lib/xblk/hda.ovl");
    }
    g_ptr_array_add(def->disks, d);
    dsnap_def_fill_defaults(def, t);
    g_assert_true(dsnap_catalog_add(cat, def, false, NULL));
}

static char *list(DsnapCatalog *cat, DsnapListFilter f)
{
    GError *err = NULL;
    GPtrArray *names = dsnap_catalog_list(cat, &f, &err);
    g_assert_no_error(err);
    return join(names);
}

static void test_filters(Fixture *fx, gconstpointer data)
{
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add_state(cat, "run", 1, DSNAP_STATE_RUNNING, false, false);
    add_state(cat, "pause", 2, DSNAP_STATE_PAUSED, true, false);
    add_state(cat, "off", 3, DSNAP_STATE_SHUTOFF, false, false);
    add_state(cat, "disk", 4, DSNAP_STATE_DISK_SNAPSHOT, false, true);
    add_state(cat, "crash", 5, DSNAP_STATE_CRASHED, false, true);

    g_assert_true(dsnap_catalog_def_is_external(
        dsnap_catalog_lookup(cat, "pause")));
    g_assert_true(dsnap_catalog_def_is_external(
        dsnap_catalog_lookup(cat, "disk")));
    g_assert_false(dsnap_catalog_def_is_external(
        dsnap_catalog_lookup(cat, "run")));

    const struct {
        DsnapListFilter f;
        const char *expect;
    } cases[] = {
        { { 0 }, "run,pause,off,disk,crash" },
        { { .active = true }, "run,pause,crash" },
        { { .inactive = true }, "off" },
        { { .disk_only = true }, "disk" },
        { { .active = true, .inactive = true }, "run,pause,off,crash" },
        { { .active = true, .inactive = true, .disk_only = true },
          "run,pause,off,disk,crash" },
        { { .internal = true }, "run,off" },
        { { .external = true }, "pause,disk,crash" },
        { { .internal = true, .external = true },
          "run,pause,off,disk,crash" },
        { { .active = true, .external = true }, "pause,crash" },
        { { .roots = true, .inactive = true }, "off" },
        { { .leaves = true, .disk_only = true }, "disk" },
        { { .no_leaves = true }, "" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = list(cat, cases[i].f);
        g_assert_cmpstr(got, ==, cases[i].expect);
    }
    g_autofree char *all = join(dsnap_catalog_list(cat, NULL, NULL));
    g_assert_cmpstr(all, ==, "run,pause,off,disk,crash");

    GError *err = NULL;
    DsnapListFilter f = { .roots = true, .from = "run" };
    g_assert_null(dsnap_catalog_list(cat, &f, &err));
    refused(false, &err, "mutually exclusive");
    f = (DsnapListFilter){ .descendants = true };
    g_assert_null(dsnap_catalog_list(cat, &f, &err));
    refused(false, &err, "requires");
    f = (DsnapListFilter){ .from_current = true };
    g_assert_null(dsnap_catalog_list(cat, &f, &err));
    refused(false, &err, "no current snapshot");
    f = (DsnapListFilter){ .from = "zz" };
    g_assert_null(dsnap_catalog_list(cat, &f, &err));
    refused(false, &err, "no domain snapshot with matching name 'zz'");
}

/* ---- rename and description ---- */

static void test_rename(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add(cat, "a", NULL, 1, false);
    add(cat, "b", "a", 2, false);
    add(cat, "c", "b", 3, false);
    add(cat, "d", "b", 4, true);
    add(cat, "e", "a", 5, false);
    g_assert_true(dsnap_catalog_set_current(cat, "b", &err));
    g_assert_true(dsnap_catalog_intent_write(cat, "b", "<i/>", &err));

    g_assert_true(dsnap_catalog_rename(cat, "b", "B", &err));
    g_assert_no_error(err);
    g_assert_null(dsnap_catalog_lookup(cat, "b"));
    g_assert_cmpstr(dsnap_catalog_lookup(cat, "B")->name, ==, "B");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "B"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "B");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "B");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "B");
    /* Renaming to the same name is nothing; a name in use is refused. */
    g_assert_true(dsnap_catalog_rename(cat, "B", "B", &err));
    refused(dsnap_catalog_rename(cat, "B", "e", &err), &err,
            "domain snapshot e already exists");
    refused(dsnap_catalog_rename(cat, "zz", "y", &err), &err,
            "no domain snapshot with matching name 'zz'");
    /* A file the catalog skipped is never overwritten. */
    put_file(fx, "skipped.xml", "not xml");
    refused(dsnap_catalog_rename(cat, "e", "skipped", &err), &err,
            "move it away first");

    g_assert_true(dsnap_catalog_set_description(cat, "c", "see <here>",
                                                &err));
    g_assert_true(dsnap_catalog_set_description(cat, "a", "root", &err));
    g_assert_true(dsnap_catalog_set_description(cat, "a", NULL, &err));
    refused(dsnap_catalog_set_description(cat, "zz", "x", &err), &err,
            "no domain snapshot");

    g_clear_pointer(&cat, dsnap_catalog_free);
    g_autoptr(GString) report = g_string_new(NULL);
    cat = open_cat(fx, report);
    g_assert_nonnull(strstr(report->str, "ignoring 'skipped.xml'"));
    expect_names(cat, "a,B,c,d,e");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "B");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "B");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "B");
    g_assert_cmpstr(dsnap_catalog_lookup(cat, "c")->description, ==,
                    "see <here>");
    g_assert_null(dsnap_catalog_lookup(cat, "a")->description);
    g_autofree char *intents = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(intents, ==, "b");
    g_assert_false(exists_in(fx, "b.xml"));
    g_assert_false(exists_in(fx, ".journal"));
}

/* ---- remove ---- */

static void test_remove(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add(cat, "a", NULL, 1, false);
    add(cat, "b", "a", 2, false);
    add(cat, "c", "b", 3, false);
    add(cat, "d", "b", 4, false);
    add(cat, "e", "d", 5, false);
    g_assert_true(dsnap_catalog_set_current(cat, "b", &err));

    /* A middle node: children to its parent, current to its parent. */
    g_assert_true(dsnap_catalog_remove(cat, "b", &err));
    g_assert_no_error(err);
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    expect_names(cat, "a,c,d,e");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");

    /* The root: its children become roots, no current remains. */
    g_assert_true(dsnap_catalog_remove(cat, "a", &err));
    g_assert_null(dsnap_catalog_parent(cat, "c"));
    g_assert_null(dsnap_catalog_parent(cat, "d"));
    g_assert_null(dsnap_catalog_current(cat));
    /* A leaf. */
    g_assert_true(dsnap_catalog_remove(cat, "e", &err));
    refused(dsnap_catalog_remove(cat, "e", &err), &err,
            "no domain snapshot with matching name 'e'");
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    expect_names(cat, "c,d");
    g_assert_null(dsnap_catalog_current(cat));
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, "c.xml,d.xml");
}

/* ---- redefine ---- */

static const char with_domain[] =
    "<domainsnapshot><name>a</name><description>v1</description>"
    "<creationTime>10</creationTime>"
    "<domain type='qemu'><name>xbox</name><memory unit='KiB'>65536</memory>"
    "<os><type arch='i686'>hvm</type></os></domain></domainsnapshot>";

static void test_redefine(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    DomainSnapshotDef *a = dsnap_parse_string(with_domain,
                                              strlen(with_domain), &err);
    g_assert_no_error(err);
    dsnap_def_fill_defaults(a, 10);
    /* New. */
    g_assert_true(dsnap_catalog_redefine(cat, a, false, &err));
    add(cat, "b", "a", 20, false);
    add(cat, "c", "b", 30, false);
    add(cat, "x", NULL, 40, false);
    g_assert_nonnull(dsnap_catalog_lookup(cat, "a")->domain);

    /* Replace: children stay, the <domain> is kept when absent. */
    DomainSnapshotDef *a2 = mkdef("a", NULL, 10, DSNAP_STATE_PAUSED);
    a2->description = g_strdup("v2");
    g_assert_true(dsnap_catalog_redefine(cat, a2, true, &err));
    g_assert_no_error(err);
    const DomainSnapshotDef *ra = dsnap_catalog_lookup(cat, "a");
    g_assert_cmpstr(ra->description, ==, "v2");
    g_assert_cmpint(ra->state, ==, DSNAP_STATE_PAUSED);
    g_assert_nonnull(ra->domain);
    g_assert_cmpstr(ra->domain->name, ==, "xbox");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "b"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");

    /* Move a subtree: b under x. */
    g_assert_true(dsnap_catalog_redefine(cat, mkdef("b", "x", 20, 0), false,
                                         &err));
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "b");
    g_assert_true(dsnap_catalog_is_descendant(cat, "c", "x"));

    /* Refusals: unknown parent, cycles (libvirt's wording). */
    refused(dsnap_catalog_redefine(cat, mkdef("b", "zz", 20, 0), false,
                                   &err), &err,
            "parent zz for snapshot b not found");
    refused(dsnap_catalog_redefine(cat, mkdef("x", "c", 40, 0), false,
                                   &err), &err,
            "parent b would create cycle to x");
    refused(dsnap_catalog_redefine(cat, mkdef("b", "b", 20, 0), false,
                                   &err), &err,
            "parent b would create cycle to b");
    /* Refused changes leave the old definition whole. */
    DomainSnapshotDef *bad = mkdef("a", "zz", 10, 0);
    refused(dsnap_catalog_redefine(cat, bad, false, &err), &err, "not found");
    g_assert_nonnull(dsnap_catalog_lookup(cat, "a")->domain);

    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    expect_names(cat, "a,b,c,x");
    g_assert_cmpstr(dsnap_catalog_lookup(cat, "a")->description, ==, "v2");
    g_assert_nonnull(dsnap_catalog_lookup(cat, "a")->domain);
    g_assert_cmpstr(dsnap_catalog_parent(cat, "b"), ==, "x");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");
}

/* ---- damaged folders ---- */

static const char doc_fmt[] =
    "<domainsnapshot><name>%s</name>%s<creationTime>%d</creationTime>"
    "</domainsnapshot>";

static void put_snap(Fixture *fx, const char *file, const char *name,
                     const char *parent, int t)
{
    g_autofree char *par = parent ?
        g_strdup_printf("<parent><name>%s</name></parent>", parent) :
        g_strdup("");
    g_autofree char *doc = g_strdup_printf(doc_fmt, name, par, t);
    put_file(fx, file, doc);
}

static void test_damaged(Fixture *fx, gconstpointer data)
{
    put_snap(fx, "good.xml", "good", NULL, 1);
    put_snap(fx, "kid.xml", "kid", "good", 2);
    put_file(fx, "junk.xml", "this is not XML");
    put_file(fx, "empty.xml", "");
    put_snap(fx, "mism.xml", "other", NULL, 3);
    put_file(fx, "noname.xml", "<domainsnapshot/>");
    put_snap(fx, "orph.xml", "orph", "ghost", 4);
    put_snap(fx, "c1.xml", "c1", "c2", 5);
    put_snap(fx, "c2.xml", "c2", "c1", 6);
    put_snap(fx, "c3.xml", "c3", "c1", 7);
    put_snap(fx, "self.xml", "self", "self", 8);
    put_file(fx, "domain.xml", "<domain/>");
    put_file(fx, "current", "ghost\n");
    put_file(fx, "notes.txt", "left alone");
    put_file(fx, "a\001b.xml", "<domainsnapshot><name>x</name>"
             "</domainsnapshot>");
    put_file(fx, ".dot.xml", "x");
    put_file(fx, ".bad\001name.intent.xml", "x");
    g_autofree char *dir_xml = path_in(fx, "dir.xml");
    g_assert_cmpint(g_mkdir(dir_xml, 0700), ==, 0);
    g_autofree char *fifo = path_in(fx, "fifo.xml");
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    g_autofree char *target = path_in(fx, "good.xml");
    g_autofree char *link = path_in(fx, "link.xml");
    g_assert_cmpint(symlink(target, link), ==, 0);
    g_autofree char *big = g_strnfill(DSNAP_MAX_DOC_SIZE + 10, ' ');
    put_file(fx, "huge.xml", big);
    g_autofree char *before = listing(fx);

    g_autoptr(GString) report = g_string_new(NULL);
    g_autoptr(DsnapCatalog) cat = open_cat(fx, report);
    static const char *const lines[] = {
        "ignoring 'junk.xml': malformed XML",
        "ignoring 'empty.xml': malformed XML: empty document",
        "ignoring 'mism.xml': its <name> is 'other', not 'mism'",
        "ignoring 'noname.xml': its <name> is '(none)', not 'noname'",
        "ignoring 'dir.xml': ",
        "ignoring 'fifo.xml': ",
        "ignoring 'link.xml': ",
        "ignoring 'huge.xml': ",
        "ignoring 'a\\001b.xml': invalid snapshot name",
        "ignoring intent record '.bad\\001name.intent.xml'",
        "snapshot 'orph': parent 'ghost' does not exist; shown as a root",
        "its parent chain loops back to it; shown as a root",
        "snapshot 'self': its parent chain loops back to it",
        "current snapshot 'ghost' does not exist; cleared",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
        if (!strstr(report->str, lines[i])) {
            g_error("report lacks '%s':\n%s", lines[i], report->str);
        }
    }
    /* One line per problem, all of them on one line each. */
    g_auto(GStrv) got = g_strsplit(report->str, "\n", -1);
    g_assert_cmpuint(g_strv_length(got), ==, G_N_ELEMENTS(lines) + 1);
    g_assert_cmpstr(got[G_N_ELEMENTS(lines)], ==, "");

    expect_names(cat, "good,kid,orph,c1,c2,c3,self");
    g_assert_null(dsnap_catalog_parent(cat, "orph"));
    g_assert_null(dsnap_catalog_parent(cat, "self"));
    g_assert_null(dsnap_catalog_current(cat));
    /* The loop c1 <-> c2 is cut once: one root, the rest hangs below. */
    int roots = !dsnap_catalog_parent(cat, "c1") +
                !dsnap_catalog_parent(cat, "c2");
    g_assert_cmpint(roots, ==, 1);
    g_assert_true(dsnap_catalog_is_descendant(cat, "c3", "c1") ||
                  dsnap_catalog_is_descendant(cat, "c3", "c2"));
    g_autofree char *tree = dsnap_catalog_format_tree(cat, NULL);
    g_assert_nonnull(strstr(tree, "orph\n"));

    /* Nothing was deleted or rewritten (repairs are in memory). */
    g_autofree char *after = listing(fx);
    g_assert_cmpstr(after, ==, before);
    g_autofree char *orph = get_file(fx, "orph.xml");
    g_assert_nonnull(strstr(orph, "ghost"));

    /* Changing a repaired snapshot writes the repair. */
    g_assert_true(dsnap_catalog_set_description(cat, "orph", "fixed", NULL));
    g_autofree char *orph2 = get_file(fx, "orph.xml");
    g_assert_null(strstr(orph2, "ghost"));
    /* The catalog still works around the damage. */
    add(cat, "new", "kid", 9, true);
    g_clear_pointer(&cat, dsnap_catalog_free);
    g_string_truncate(report, 0);
    cat = open_cat(fx, report);
    g_assert_null(strstr(report->str, "orph"));
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "new");
}

/* Leftover temporary files go; files that only look alike stay. */
static void test_leftovers(Fixture *fx, gconstpointer data)
{
    put_file(fx, ".tmp-abc123", "half written");
    put_file(fx, ".tmp-ZZZZZZ", "");
    put_file(fx, ".tmp-ab", "not ours");
    put_file(fx, ".tmp-abcdef.intent.xml", "intent of snapshot tmp-abcdef");
    g_autoptr(GString) report = g_string_new(NULL);
    g_autoptr(DsnapCatalog) cat = open_cat(fx, report);
    g_assert_cmpstr(report->str, ==,
                    "removed leftover temporary file '.tmp-ZZZZZZ'\n"
                    "removed leftover temporary file '.tmp-abc123'\n");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, ".tmp-ab,.tmp-abcdef.intent.xml");
    g_autofree char *intents = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(intents, ==, "tmp-abcdef");
}

/* ---- intents and the domain definition ---- */

static void test_intents(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    g_autofree char *none = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(none, ==, "");
    g_assert_null(dsnap_catalog_intent_read(cat, "s", &err));
    refused(false, &err, "no intent record for snapshot 's'");
    g_assert_true(dsnap_catalog_intent_write(cat, "s", "<one/>", &err));
    g_assert_true(dsnap_catalog_intent_write(cat, "r", "<two/>", &err));
    g_assert_true(dsnap_catalog_intent_write(cat, "s", "<three/>", &err));
    g_assert_no_error(err);
    g_autofree char *both = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(both, ==, "r,s");
    g_autofree char *s = dsnap_catalog_intent_read(cat, "s", &err);
    g_assert_cmpstr(s, ==, "<three/>");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, ".r.intent.xml,.s.intent.xml");
    /* Intents are not snapshots. */
    g_assert_cmpuint(dsnap_catalog_count(cat), ==, 0);

    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    g_autofree char *again = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(again, ==, "r,s");
    g_assert_true(dsnap_catalog_intent_clear(cat, "s", &err));
    g_assert_true(dsnap_catalog_intent_clear(cat, "s", &err));
    g_assert_no_error(err);
    g_autofree char *one = join(dsnap_catalog_intents(cat));
    g_assert_cmpstr(one, ==, "r");
    g_assert_false(exists_in(fx, ".s.intent.xml"));
}

static void test_domain(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    g_assert_null(dsnap_catalog_read_domain(cat, &err));
    refused(false, &err, "has no domain definition");
    const char *dom = "<domain type='qemu'><name>xbox</name></domain>\n";
    g_assert_true(dsnap_catalog_write_domain(cat, dom, &err));
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    g_autofree char *back = dsnap_catalog_read_domain(cat, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(back, ==, dom);
    g_assert_cmpuint(dsnap_catalog_count(cat), ==, 0);
}

/* ---- the journal: what a kill leaves, redone on open ---- */

static void build_abc(Fixture *fx, const char *current)
{
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add(cat, "a", NULL, 1, false);
    add(cat, "b", "a", 2, false);
    add(cat, "c", "b", 3, false);
    add(cat, "d", "b", 4, false);
    g_assert_true(dsnap_catalog_set_current(cat, current, NULL));
}

static DsnapCatalog *open_expect(Fixture *fx, const char *line)
{
    g_autoptr(GString) report = g_string_new(NULL);
    DsnapCatalog *cat = open_cat(fx, report);
    g_assert_cmpstr(report->str, ==, line);
    g_assert_false(exists_in(fx, ".journal"));
    return cat;
}

static void test_redo_rename(Fixture *fx, gconstpointer data)
{
    build_abc(fx, "b");
    /* Killed after NEW.xml and one child: open finishes. */
    g_autofree char *b = get_file(fx, "b.xml");
    g_auto(GStrv) parts = g_strsplit(b, "<name>b</name>", 2);
    g_autofree char *B = g_strjoinv("<name>B</name>", parts);
    put_file(fx, "B.xml", B);
    g_autofree char *c = get_file(fx, "c.xml");
    g_auto(GStrv) cparts = g_strsplit(c, "<name>b</name>", 2);
    g_autofree char *c2 = g_strjoinv("<name>B</name>", cparts);
    put_file(fx, "c.xml", c2);
    put_file(fx, ".journal", "rename\nb\nB\n");
    g_autoptr(DsnapCatalog) cat =
        open_expect(fx, "finished renaming snapshot 'b' to 'B'\n");
    expect_names(cat, "a,B,c,d");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "B");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "B");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "B");
    g_assert_false(exists_in(fx, "b.xml"));
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_clean(fx);
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "B");

    /* Killed before NEW.xml: the rename never happened. */
    put_file(fx, ".journal", "rename\nB\nX\n");
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_expect(fx, "rolled back renaming snapshot 'B'\n");
    expect_names(cat, "a,B,c,d");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "B");
}

static void test_redo_remove(Fixture *fx, gconstpointer data)
{
    build_abc(fx, "b");
    /* Killed after the journal and one child's rewrite. */
    g_autofree char *c = get_file(fx, "c.xml");
    g_auto(GStrv) parts = g_strsplit(c, "<name>b</name>", 2);
    g_autofree char *c2 = g_strjoinv("<name>a</name>", parts);
    put_file(fx, "c.xml", c2);
    put_file(fx, ".journal", "remove\nb\n");
    g_autoptr(DsnapCatalog) cat =
        open_expect(fx, "finished removing snapshot 'b'\n");
    expect_names(cat, "a,c,d");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "d"), ==, "a");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, "a.xml,c.xml,current,d.xml");
    /* Killed after the last step: only the journal remains. */
    put_file(fx, ".journal", "remove\nb\n");
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_expect(fx, "");
    expect_names(cat, "a,c,d");
}

static void test_redo_define(Fixture *fx, gconstpointer data)
{
    build_abc(fx, "a");
    g_autoptr(DomainSnapshotDef) n = mkdef("n", "d", 9, DSNAP_STATE_PAUSED);
    g_autofree char *doc = dsnap_format(n);
    g_autofree char *journal = g_strconcat("define\nn\n", doc, NULL);
    put_file(fx, ".journal", journal);
    g_autoptr(DsnapCatalog) cat =
        open_expect(fx, "finished defining snapshot 'n'\n");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "n");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "n"), ==, "d");
    g_autofree char *file = get_file(fx, "n.xml");
    g_assert_cmpstr(file, ==, doc);

    /* Damaged journals (hand-made) are dropped and reported. */
    static const char *const junk[] = {
        "", "define\n", "define\nn\n<x/>", "rename\nb\n../x\n",
        "remove\nb\nextra", "frobnicate\nb\n", "remove\n../b\n",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
        put_file(fx, ".journal", junk[i]);
        g_clear_pointer(&cat, dsnap_catalog_free);
        cat = open_expect(fx, "removed a damaged journal\n");
        expect_names(cat, "a,b,c,d,n");
    }
}

/* ---- writes that fail ---- */

/* Files may grow to at most limit bytes (EFBIG past it, as a full disk
 * would refuse); G_MAXUINT64 lifts the limit. */
static void limit_file_size(guint64 limit)
{
    struct rlimit rl;
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &rl), ==, 0);
    rl.rlim_cur = limit == G_MAXUINT64 ? rl.rlim_max : limit;
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &rl), ==, 0);
}

static void test_write_failure(Fixture *fx, gconstpointer data)
{
    GError *err = NULL;
    signal(SIGXFSZ, SIG_IGN);
    g_autoptr(DsnapCatalog) cat = open_clean(fx);
    add(cat, "a", NULL, 1, true);
    DomainSnapshotDef *big = mkdef("b", "a", 2, 0);
    big->description = g_strnfill(4000, 'x');
    g_assert_true(dsnap_catalog_add(cat, big, false, &err));
    g_autofree char *before = listing(fx);

    /* Fails before anything is visible: nothing changes, no leftovers,
     * and the catalog stays usable. */
    limit_file_size(16);
    refused(dsnap_catalog_add(cat, mkdef("c", "a", 3, 0), true, &err), &err,
            "could not write");
    refused(dsnap_catalog_remove(cat, "a", &err), &err, "could not write");
    limit_file_size(G_MAXUINT64);
    g_autofree char *unchanged = listing(fx);
    g_assert_cmpstr(unchanged, ==, before);
    expect_names(cat, "a,b");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "a");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "b"), ==, "a");
    add(cat, "c", "a", 3, false);

    /* Fails half-way (A.xml written, the big child's rewrite refused):
     * the object refuses changes, reopening finishes the rename. */
    limit_file_size(1000);
    refused(dsnap_catalog_rename(cat, "a", "A", &err), &err,
            "reopen the catalog to finish it");
    limit_file_size(G_MAXUINT64);
    refused(dsnap_catalog_set_current(cat, "c", &err), &err,
            "reopen the catalog");
    g_clear_pointer(&cat, dsnap_catalog_free);
    cat = open_expect(fx, "finished renaming snapshot 'a' to 'A'\n");
    expect_names(cat, "A,b,c");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "b"), ==, "A");
    g_assert_cmpstr(dsnap_catalog_parent(cat, "c"), ==, "A");
    g_assert_cmpstr(dsnap_catalog_current(cat), ==, "A");
    g_autofree char *files = listing(fx);
    g_assert_cmpstr(files, ==, "A.xml,b.xml,c.xml,current");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define T(path, fn) g_test_add("/snapshot/catalog/" path, Fixture, NULL, \
                               fx_setup, fn, fx_teardown)
    T("open", test_open);
    T("add-reopen", test_add_reopen);
    T("unsafe-names", test_unsafe_names);
    T("tree", test_tree);
    T("tree-order", test_tree_order);
    T("filters", test_filters);
    T("rename", test_rename);
    T("remove", test_remove);
    T("redefine", test_redefine);
    T("damaged", test_damaged);
    T("leftovers", test_leftovers);
    T("intents", test_intents);
    T("domain", test_domain);
    T("redo-rename", test_redo_rename);
    T("redo-remove", test_redo_remove);
    T("redo-define", test_redo_define);
    T("write-failure", test_write_failure);
#undef T
    return g_test_run();
}
