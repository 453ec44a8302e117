/*
 * fuzz-domainsnapshot.c - libFuzzer target: libvirt <domainsnapshot>
 * documents (snapshot/domainsnapshot.c) and <domain> documents (the
 * catalog's domain.xml) from arbitrary bytes.
 *
 * Per input:
 *   1. dsnap_parse_string(); a document it accepts gets the defaults
 *      libvirt fills in (at a fixed "now", so runs are deterministic),
 *      is written back with dsnap_format(), and that text must parse
 *      again and write back identically - the writer never produces a
 *      document the parser refuses, and the round trip is stable;
 *   2. dsnap_domain_parse() of the same bytes, with the same round trip
 *      through dsnap_domain_format().
 * A violated round trip aborts (a finding).  No file is read or written:
 * the parser is given the bytes and must not reach the file system or
 * the network (no DTD, entities or XInclude).
 */
#include "fuzz-common.h"
#include "snapshot/domainsnapshot.h"
#include <stdio.h>

#define NOW 1700000000

static void fail(const char *what, const char *doc, const char *other)
{
    fprintf(stderr, "domainsnapshot: %s\n--- first ---\n%s\n--- then ---\n"
            "%s\n", what, doc, other ? other : "");
    abort();
}

static void snapshot_round_trip(const uint8_t *data, size_t size)
{
    GError *err = NULL;
    DomainSnapshotDef *def = dsnap_parse_string((const char *)data, size,
                                                &err);
    if (!def) {
        g_clear_error(&err);
        return;
    }
    dsnap_def_fill_defaults(def, NOW);
    char *out = dsnap_format(def);
    DomainSnapshotDef *again = dsnap_parse_string(out, strlen(out), &err);
    if (!again) {
        fail("the written document does not parse", out, err->message);
    }
    dsnap_def_fill_defaults(again, NOW);
    char *out2 = dsnap_format(again);
    if (strcmp(out, out2)) {
        fail("the round trip changes the document", out, out2);
    }
    g_free(out2);
    dsnap_def_free(again);
    g_free(out);
    dsnap_def_free(def);
}

static void domain_round_trip(const uint8_t *data, size_t size)
{
    GError *err = NULL;
    DsnapDomainDef *dom = dsnap_domain_parse((const char *)data, size, &err);
    if (!dom) {
        g_clear_error(&err);
        return;
    }
    char *out = dsnap_domain_format(dom);
    DsnapDomainDef *again = dsnap_domain_parse(out, strlen(out), &err);
    if (!again) {
        fail("the written <domain> does not parse", out, err->message);
    }
    char *out2 = dsnap_domain_format(again);
    if (strcmp(out, out2)) {
        fail("the <domain> round trip changes the document", out, out2);
    }
    g_free(out2);
    dsnap_domain_def_free(again);
    g_free(out);
    dsnap_domain_def_free(dom);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    snapshot_round_trip(data, size);
    domain_round_trip(data, size);
    return 0;
}
