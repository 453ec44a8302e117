/*
 * test-domainsnapshot.c - the <domainsnapshot> parser, writer and
 * RelaxNG validation (snapshot/domainsnapshot.c).
 *
 * Documents come from tests/snapshot/corpus/ (valid/ must parse, and
 * round-trip to a fixed point; each invalid/ file starts with a comment
 * "<!-- expect: TEXT -->" that the error must contain) and from hostile
 * inputs built here.  Every document the writer produces is validated
 * against libvirt's schema; without the schema those checks are skipped
 * with a message (Debian's libvirt0 installs it).
 */
#include "snapshot/domainsnapshot.h"
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#define NOW 1700000000

static DsnapSchema *schema;

static char *corpus_dir(const char *sub)
{
    const char *root = g_getenv("XBLK_ROOT");
    return g_build_filename(root ? root : ".", "tests", "snapshot", "corpus",
                            sub, NULL);
}

/* Sorted *.xml files of a corpus folder. */
static GPtrArray *corpus_files(const char *sub)
{
    g_autofree char *dir = corpus_dir(sub);
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    const char *n;
    while ((n = g_dir_read_name(d))) {
        if (g_str_has_suffix(n, ".xml")) {
            g_ptr_array_add(files, g_build_filename(dir, n, NULL));
        }
    }
    g_ptr_array_sort(files, (GCompareFunc)g_strcmp0);
    g_assert_cmpuint(files->len, >, 0);
    return files;
}

static void assert_schema_valid(const char *xml)
{
    GError *err = NULL;
    if (!schema) {
        return;
    }
    if (!dsnap_schema_validate(schema, xml, strlen(xml), &err)) {
        g_error("%s\n%s", err->message, xml);
    }
}

/* Parses, fills in, writes; the writing parses back to the same text. */
static char *round_trip(const char *buf, size_t len)
{
    GError *err = NULL;
    g_autoptr(DomainSnapshotDef) def = dsnap_parse_string(buf, len, &err);
    g_assert_no_error(err);
    dsnap_def_fill_defaults(def, NOW);
    char *out = dsnap_format(def);
    g_autoptr(DomainSnapshotDef) again =
        dsnap_parse_string(out, strlen(out), &err);
    g_assert_no_error(err);
    dsnap_def_fill_defaults(again, NOW + 1);
    g_autofree char *out2 = dsnap_format(again);
    g_assert_cmpstr(out, ==, out2);
    assert_schema_valid(out);
    return out;
}

static void skip_without_schema(void)
{
    if (!schema) {
        g_test_skip("libvirt's schema " DSNAP_SCHEMA_DEFAULT " is absent "
                    "(install libvirt0): schema checks skipped");
    }
}

static void test_corpus_valid(void)
{
    g_autoptr(GPtrArray) files = corpus_files("valid");
    for (guint i = 0; i < files->len; i++) {
        const char *f = g_ptr_array_index(files, i);
        g_autofree char *text = NULL;
        gsize len;
        g_assert_true(g_file_get_contents(f, &text, &len, NULL));
        /* The inputs are documents libvirt accepts. */
        assert_schema_valid(text);
        g_autofree char *out = round_trip(text, len);
        g_assert_nonnull(strstr(out, "<memory snapshot="));
        GError *err = NULL;
        g_autoptr(DomainSnapshotDef) def = dsnap_parse_file(f, &err);
        g_assert_no_error(err);
    }
    skip_without_schema();
}

static void test_corpus_invalid(void)
{
    g_autoptr(GPtrArray) files = corpus_files("invalid");
    for (guint i = 0; i < files->len; i++) {
        const char *f = g_ptr_array_index(files, i);
        g_autofree char *text = NULL;
        g_assert_true(g_file_get_contents(f, &text, NULL, NULL));
        g_assert_true(g_str_has_prefix(text, "<!-- expect: "));
        char *end = strstr(text, " -->");
        g_assert_nonnull(end);
        g_autofree char *expect = g_strndup(text + 13, end - text - 13);
        GError *err = NULL;
        DomainSnapshotDef *def = dsnap_parse_file(f, &err);
        g_assert_null(def);
        g_assert_nonnull(err);
        if (!strstr(err->message, expect)) {
            g_error("%s: got '%s', expected '%s'", f, err->message, expect);
        }
        g_assert_null(strchr(err->message, '\n'));
        g_error_free(err);
    }
}

/* xblk's own machine, built in C, as the catalog will write it. */
static DomainSnapshotDef *machine_def(void)
{
    DomainSnapshotDef *def = dsnap_def_new();
    def->name = g_strdup("save-1");
    def->description = g_strdup("hotkey <F5> & \"menu\"");
    def->state = DSNAP_STATE_RUNNING;
    def->parent = g_strdup("save-0");
    def->memory = DSNAP_MODE_EXTERNAL;
    def->memory_file = g_strdup("/var/lib/xblk/save-1.vmstate");
    const char *names[] = { "hda", "hdb" };
    for (int i = 0; i < 2; i++) {
        DsnapDiskDef *d = g_new0(DsnapDiskDef, 1);
        d->name = g_strdup(names[i]);
        d->mode = i ? DSNAP_MODE_INTERNAL : DSNAP_MODE_EXTERNAL;
        d->driver_type = i ? NULL : g_strdup("qcow2");
        d->source_file = i ? NULL : g_strdup("/var/lib/xblk/hda.save-1");
        g_ptr_array_add(def->disks, d);
    }
    DsnapDomainDef *dom = def->domain = dsnap_domain_new();
    DsnapDomainDisk *dd = g_new0(DsnapDomainDisk, 1);
    dd->device = g_strdup("disk");
    dd->driver_type = g_strdup("qcow2");
    dd->source_file = g_strdup("/var/lib/xblk/hda.qcow2");
    dd->target_dev = g_strdup("hda");
    dd->target_bus = g_strdup("ide");
    g_ptr_array_add(dom->disks, dd);
    dom->type = g_strdup("qemu");
    dom->name = g_strdup("xbox");
    dom->memory_kib = 64 * 1024;
    dom->vcpus = 1;
    dom->os_type = g_strdup("hvm");
    dom->os_arch = g_strdup("i686");
    return def;
}

static void test_model_round_trip(void)
{
    g_autoptr(DomainSnapshotDef) def = machine_def();
    dsnap_def_fill_defaults(def, NOW);
    g_assert_cmpint(def->creation_time, ==, NOW);
    g_autofree char *xml = dsnap_format(def);
    g_autofree char *again = round_trip(xml, strlen(xml));
    g_assert_cmpstr(xml, ==, again);
    GError *err = NULL;
    g_autoptr(DomainSnapshotDef) p = dsnap_parse_string(xml, strlen(xml),
                                                        &err);
    g_assert_no_error(err);
    g_assert_cmpstr(p->name, ==, "save-1");
    g_assert_cmpstr(p->description, ==, def->description);
    g_assert_cmpstr(p->parent, ==, "save-0");
    g_assert_cmpint(p->state, ==, DSNAP_STATE_RUNNING);
    g_assert_cmpint(p->memory, ==, DSNAP_MODE_EXTERNAL);
    g_assert_cmpstr(p->memory_file, ==, def->memory_file);
    g_assert_cmpuint(p->disks->len, ==, 2);
    DsnapDiskDef *d0 = g_ptr_array_index(p->disks, 0);
    g_assert_cmpstr(d0->driver_type, ==, "qcow2");
    g_assert_cmpstr(d0->source_file, ==, "/var/lib/xblk/hda.save-1");
    g_assert_cmpuint(p->domain->memory_kib, ==, 65536);
    g_assert_cmpstr(p->domain->os_arch, ==, "i686");
    g_assert_cmpuint(p->domain->disks->len, ==, 1);
    DsnapDomainDisk *pd = g_ptr_array_index(p->domain->disks, 0);
    g_assert_cmpstr(pd->target_dev, ==, "hda");
    g_assert_cmpstr(pd->target_bus, ==, "ide");
    g_assert_cmpstr(pd->source_file, ==, "/var/lib/xblk/hda.qcow2");
    g_assert_cmpint(p->active, ==, -1);
    skip_without_schema();
}

static void test_defaults(void)
{
    static const struct {
        const char *doc;
        DsnapMode memory, disk;
    } cases[] = {
        { "<domainsnapshot><disks><disk name='hda'/></disks>"
          "</domainsnapshot>", DSNAP_MODE_INTERNAL, DSNAP_MODE_INTERNAL },
        { "<domainsnapshot><state>disk-snapshot</state><disks>"
          "<disk name='hda'/></disks></domainsnapshot>",
          DSNAP_MODE_NO, DSNAP_MODE_EXTERNAL },
        { "<domainsnapshot><state>shutoff</state><disks>"
          "<disk name='hda'/></disks></domainsnapshot>",
          DSNAP_MODE_NO, DSNAP_MODE_INTERNAL },
        { "<domainsnapshot><memory file='/m'/><disks><disk name='hda'>"
          "<source file='/o'/></disk></disks></domainsnapshot>",
          DSNAP_MODE_EXTERNAL, DSNAP_MODE_EXTERNAL },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        g_autoptr(DomainSnapshotDef) def =
            dsnap_parse_string(cases[i].doc, strlen(cases[i].doc), &err);
        g_assert_no_error(err);
        g_assert_null(def->name);
        dsnap_def_fill_defaults(def, NOW);
        g_assert_cmpstr(def->name, ==, "1700000000");
        g_assert_cmpint(def->memory, ==, cases[i].memory);
        DsnapDiskDef *d = g_ptr_array_index(def->disks, 0);
        g_assert_cmpint(d->mode, ==, cases[i].disk);
        g_autofree char *out = round_trip(cases[i].doc, strlen(cases[i].doc));
    }
    /* <memory> is written even for a definition nobody filled in. */
    g_autoptr(DomainSnapshotDef) bare = dsnap_def_new();
    g_autofree char *out = dsnap_format(bare);
    g_assert_cmpstr(out, ==, "<domainsnapshot>\n  <memory snapshot='no'/>\n"
                    "</domainsnapshot>\n");
    assert_schema_valid(out);
    skip_without_schema();
}

static void test_safe_names(void)
{
    const char *good[] = { "a", "save-1", "été", "a..b", "x y", "1700000000" };
    const char *bad[] = { "", ".", "..", ".hidden", "a/b", "/", "a\nb",
                          "a\tb", "\x7f", "\xff" };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_assert_true(dsnap_name_is_safe(good[i]));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(dsnap_name_is_safe(bad[i]));
    }
    g_autofree char *longname = g_strnfill(256, 'a');
    g_assert_false(dsnap_name_is_safe(longname));
    g_assert_false(dsnap_name_is_safe(NULL));
}

/* Parses buf and requires a refusal containing expect (if not NULL). */
static char *refused(const char *buf, size_t len, const char *expect)
{
    GError *err = NULL;
    DomainSnapshotDef *def = dsnap_parse_string(buf, len, &err);
    g_assert_null(def);
    g_assert_nonnull(err);
    if (expect && !strstr(err->message, expect)) {
        g_error("got '%s', expected '%s'", err->message, expect);
    }
    char *msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

/* External entities, external DTDs and XInclude never read the file. */
static void test_hostile_external(void)
{
    g_autofree char *dir = g_dir_make_tmp("dsnap-XXXXXX", NULL);
    g_autofree char *secret = g_build_filename(dir, "secret", NULL);
    g_assert_true(g_file_set_contents(secret, "TOPSECRET42", -1, NULL));
    const char *fmts[] = {
        "<!DOCTYPE domainsnapshot [<!ENTITY s SYSTEM \"file://%s\">]>"
        "<domainsnapshot><description>&s;</description></domainsnapshot>",
        "\xef\xbb\xbf<!-- c --><?pi?>\n<!DOCTYPE d SYSTEM \"file://%s\">"
        "<domainsnapshot/>",
        "<domainsnapshot><description><xi:include "
        "xmlns:xi='http://www.w3.org/2001/XInclude' href='file://%s' "
        "parse='text'/></description></domainsnapshot>",
        "<domainsnapshot><name>&s;</name><!-- %s --></domainsnapshot>",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(fmts); i++) {
        g_autofree char *doc = g_strdup_printf(fmts[i], secret);
        g_autofree char *msg = refused(doc, strlen(doc), NULL);
        g_assert_null(strstr(msg, "TOPSECRET"));
    }
    g_unlink(secret);
    g_rmdir(dir);
}

static void test_hostile_size(void)
{
    /* One byte over the limit is refused before parsing. */
    gsize n = DSNAP_MAX_DOC_SIZE + 1;
    g_autofree char *big = g_malloc(n);
    memset(big, ' ', n);
    memcpy(big, "<domainsnapshot>", 16);
    memcpy(big + n - 17, "</domainsnapshot>", 17);
    g_autofree char *m = refused(big, n, "XML document too large");
    /* Just under it, a large description is fine and written back. */
    GString *s = g_string_new("<domainsnapshot><description>");
    while (s->len < DSNAP_MAX_DOC_SIZE - 1024) {
        g_string_append(s, "0123456789abcdef");
    }
    g_string_append(s, "</description></domainsnapshot>");
    g_autofree char *out = round_trip(s->str, s->len);
    g_string_free(s, TRUE);
    /* The file reader refuses the same way. */
    g_autofree char *dir = g_dir_make_tmp("dsnap-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "big.xml", NULL);
    g_assert_true(g_file_set_contents(path, big, n, NULL));
    GError *err = NULL;
    g_assert_null(dsnap_parse_file(path, &err));
    g_assert_nonnull(strstr(err->message, "too large"));
    g_clear_error(&err);
    g_unlink(path);
    g_assert_null(dsnap_parse_file(path, &err));
    g_assert_nonnull(strstr(err->message, "could not read"));
    g_clear_error(&err);
    g_rmdir(dir);
}

static void test_hostile_nesting(void)
{
    GString *s = g_string_new("<domainsnapshot><description>");
    for (int i = 0; i < 100000; i++) {
        g_string_append(s, "<a>");
    }
    for (int i = 0; i < 100000; i++) {
        g_string_append(s, "</a>");
    }
    g_string_append(s, "</description></domainsnapshot>");
    g_autofree char *m = refused(s->str, s->len, "malformed XML");
    g_string_free(s, TRUE);
    /* Deep but not too deep: parsed, and refused as not text. */
    s = g_string_new("<domainsnapshot><name>");
    for (int i = 0; i < 200; i++) {
        g_string_append(s, "<a>");
    }
    for (int i = 0; i < 200; i++) {
        g_string_append(s, "</a>");
    }
    g_string_append(s, "</name></domainsnapshot>");
    g_autofree char *m2 = refused(s->str, s->len, "must contain only text");
    g_string_free(s, TRUE);
}

static void test_hostile_garbage(void)
{
    GRand *r = g_rand_new_with_seed(12);
    for (int i = 0; i < 2000; i++) {
        gsize n = g_rand_int_range(r, 1, 512);
        g_autofree char *buf = g_malloc(n);
        for (gsize j = 0; j < n; j++) {
            buf[j] = g_rand_int(r);
        }
        if (i & 1) {
            memcpy(buf, "<domainsnapshot>", MIN(n, 16));
        }
        g_autofree char *m = refused(buf, n, NULL);
        g_assert_null(strchr(m, '\n'));
    }
    g_rand_free(r);
}

/* Every prefix of a full document, and random byte flips of it: each
 * either parses (and then writes a valid document) or is refused. */
static void test_hostile_truncated_and_mutated(void)
{
    g_autofree char *path = corpus_dir("valid/full.xml");
    g_autofree char *text = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &text, &len, NULL));
    for (gsize n = 0; n < len - 1; n++) {
        g_autofree char *m = refused(text, n, NULL);
    }
    GRand *r = g_rand_new_with_seed(7);
    g_autofree char *copy = g_malloc(len);
    int parsed = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, text, len);
        for (int k = 0; k < 1 + i % 3; k++) {
            copy[g_rand_int_range(r, 0, len)] = g_rand_int_range(r, 1, 256);
        }
        GError *err = NULL;
        g_autoptr(DomainSnapshotDef) def = dsnap_parse_string(copy, len,
                                                              &err);
        if (def) {
            parsed++;
            dsnap_def_fill_defaults(def, NOW);
            g_autofree char *out = dsnap_format(def);
            if (i % 50 == 0) {
                assert_schema_valid(out);
            }
        } else {
            g_assert_nonnull(err);
            g_error_free(err);
        }
    }
    g_assert_cmpint(parsed, >, 0);
    g_rand_free(r);
}

static void test_schema_refuses(void)
{
    if (!schema) {
        skip_without_schema();
        return;
    }
    GError *err = NULL;
    const char *bad = "<domainsnapshot><memory snapshot='maybe'/>"
                      "</domainsnapshot>";
    g_assert_false(dsnap_schema_validate(schema, bad, strlen(bad), &err));
    g_assert_nonnull(strstr(err->message, "does not validate"));
    g_clear_error(&err);
    const char *dtd = "<!DOCTYPE x [<!ENTITY a 'b'>]><domainsnapshot/>";
    g_assert_false(dsnap_schema_validate(schema, dtd, strlen(dtd), &err));
    g_assert_nonnull(strstr(err->message, "DOCTYPE"));
    g_clear_error(&err);
    g_assert_null(dsnap_schema_load("/nonexistent/x.rng", &err));
    g_assert_nonnull(strstr(err->message, "not found"));
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    if (g_file_test(DSNAP_SCHEMA_DEFAULT, G_FILE_TEST_EXISTS)) {
        GError *err = NULL;
        schema = dsnap_schema_load(NULL, &err);
        g_assert_no_error(err);
    }
    g_test_add_func("/snapshot/dsnap/corpus-valid", test_corpus_valid);
    g_test_add_func("/snapshot/dsnap/corpus-invalid", test_corpus_invalid);
    g_test_add_func("/snapshot/dsnap/model-round-trip", test_model_round_trip);
    g_test_add_func("/snapshot/dsnap/defaults", test_defaults);
    g_test_add_func("/snapshot/dsnap/safe-names", test_safe_names);
    g_test_add_func("/snapshot/dsnap/hostile/external", test_hostile_external);
    g_test_add_func("/snapshot/dsnap/hostile/size", test_hostile_size);
    g_test_add_func("/snapshot/dsnap/hostile/nesting", test_hostile_nesting);
    g_test_add_func("/snapshot/dsnap/hostile/garbage", test_hostile_garbage);
    g_test_add_func("/snapshot/dsnap/hostile/truncated-mutated",
                    test_hostile_truncated_and_mutated);
    g_test_add_func("/snapshot/dsnap/schema-refuses", test_schema_refuses);
    int rc = g_test_run();
    dsnap_schema_free(schema);
    return rc;
}
