/*
 * domainsnapshot.c - parse, check, fill in and write libvirt's
 * <domainsnapshot> documents; validate them against libvirt's RelaxNG.
 *
 * Hardening (DESIGN rule 5): documents are bounded in size, must be
 * UTF-8 without NUL bytes, and may not carry a DOCTYPE (so no entity
 * declarations: no XXE, no "billion laughs"); libxml2 parses them with
 * XML_PARSE_NONET and without NOENT/DTDLOAD/XINCLUDE, and never prints.
 * The tree walk visits a fixed number of known levels (no recursion on
 * input), so depth costs nothing beyond libxml2's own depth limit.
 * Unknown elements are ignored, as libvirt does; known ones are checked
 * and every refusal names the element or attribute.
 */
#include "snapshot/domainsnapshot.h"
#include "util/error.h"
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xmlwriter.h>
#include <stdlib.h>
#include <string.h>

/* ---- names and enums ---- */

static const char *const dsnap_mode_names[] = {
    [DSNAP_MODE_DEFAULT] = NULL,
    [DSNAP_MODE_NO] = "no",
    [DSNAP_MODE_INTERNAL] = "internal",
    [DSNAP_MODE_EXTERNAL] = "external",
    [DSNAP_MODE_MANUAL] = "manual",
};

static const char *const dsnap_state_names[] = {
    [DSNAP_STATE_NONE] = NULL,
    [DSNAP_STATE_RUNNING] = "running",
    [DSNAP_STATE_BLOCKED] = "blocked",
    [DSNAP_STATE_PAUSED] = "paused",
    [DSNAP_STATE_SHUTDOWN] = "shutdown",
    [DSNAP_STATE_SHUTOFF] = "shutoff",
    [DSNAP_STATE_CRASHED] = "crashed",
    [DSNAP_STATE_DISK_SNAPSHOT] = "disk-snapshot",
};

const char *dsnap_mode_name(DsnapMode mode)
{
    return mode < G_N_ELEMENTS(dsnap_mode_names) ? dsnap_mode_names[mode]
                                                 : NULL;
}

const char *dsnap_state_name(DsnapState state)
{
    return state < G_N_ELEMENTS(dsnap_state_names) ?
        dsnap_state_names[state] : NULL;
}

/* Index of s in names[1..n-1], or 0 when absent. */
static int dsnap_lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 1; i < n; i++) {
        if (names[i] && !strcmp(names[i], s)) {
            return i;
        }
    }
    return 0;
}

static bool dsnap_in_list(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (!strcmp(*list, s)) {
            return true;
        }
    }
    return false;
}

/* The values libvirt's schema allows where xblk writes them back, so
 * that everything we accept we can also write validly. */
static const char *const dsnap_backing_formats[] = {
    "cow", "qcow", "qcow2", "qed", "vmdk", NULL,
};
static const char *const dsnap_domain_formats[] = {
    "raw", "cow", "qcow", "qcow2", "qed", "vmdk", "vpc", "vdi", "iso", NULL,
};
static const char *const dsnap_hypervisors[] = {
    "qemu", "kqemu", "kvm", "xen", "lxc", "openvz", "test", "vmware",
    "hyperv", "vbox", "vz", "bhyve", "hvf", NULL,
};
static const char *const dsnap_buses[] = {
    "ide", "fdc", "scsi", "virtio", "xen", "usb", "uml", "sata", "sd", NULL,
};

/* ---- model ---- */

static void dsnap_disk_free(gpointer p)
{
    DsnapDiskDef *d = p;
    g_free(d->name);
    g_free(d->driver_type);
    g_free(d->source_file);
    g_free(d);
}

static void dsnap_domain_disk_free(gpointer p)
{
    DsnapDomainDisk *d = p;
    g_free(d->device);
    g_free(d->driver_type);
    g_free(d->source_file);
    g_free(d->target_dev);
    g_free(d->target_bus);
    g_free(d);
}

static void dsnap_domain_free(DsnapDomainDef *dom)
{
    if (!dom) {
        return;
    }
    g_free(dom->type);
    g_free(dom->name);
    g_free(dom->os_type);
    g_free(dom->os_arch);
    g_ptr_array_unref(dom->disks);
    g_free(dom);
}

DsnapDomainDef *dsnap_domain_new(void)
{
    DsnapDomainDef *dom = g_new0(DsnapDomainDef, 1);
    dom->disks = g_ptr_array_new_with_free_func(dsnap_domain_disk_free);
    return dom;
}

DomainSnapshotDef *dsnap_def_new(void)
{
    DomainSnapshotDef *def = g_new0(DomainSnapshotDef, 1);
    def->disks = g_ptr_array_new_with_free_func(dsnap_disk_free);
    def->active = -1;
    return def;
}

void dsnap_def_free(DomainSnapshotDef *def)
{
    if (!def) {
        return;
    }
    g_free(def->name);
    g_free(def->description);
    g_free(def->parent);
    g_free(def->memory_file);
    g_ptr_array_unref(def->disks);
    dsnap_domain_free(def->domain);
    g_free(def);
}

/* ---- checks on values ---- */

static bool dsnap_has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

bool dsnap_name_is_safe(const char *name)
{
    return name && name[0] && name[0] != '.' && strlen(name) <= 255 &&
           !strchr(name, '/') && !dsnap_has_control(name) &&
           g_utf8_validate(name, -1, NULL);
}

/* Absolute, no control characters, no ".." component (a path we would
 * create files at must say plainly where). */
static bool dsnap_path_is_safe(const char *path)
{
    if (path[0] != '/' || path[1] == '\0' || dsnap_has_control(path)) {
        return false;
    }
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);
    for (char **p = parts; *p; p++) {
        if (!strcmp(*p, "..")) {
            return false;
        }
    }
    return true;
}

/* A target device name as libvirt's schema spells them (hda, sdb, ...). */
static bool dsnap_target_dev_ok(const char *dev)
{
    static const char *const prefixes[] = {
        "fd", "hd", "sd", "vd", "xvd", "ubd", NULL,
    };
    for (const char *const *p = prefixes; *p; p++) {
        size_t n = strlen(*p);
        if (!strncmp(dev, *p, n) && dev[n]) {
            for (const char *c = dev + n; *c; c++) {
                if (!g_ascii_isalnum(*c) && *c != '_') {
                    return false;
                }
            }
            return strlen(dev) <= 32;
        }
    }
    return false;
}

/* ---- reading: libxml2 with the doors shut ---- */

static GOnce dsnap_xml_once = G_ONCE_INIT;

static gpointer dsnap_xml_init(gpointer unused)
{
    xmlInitParser();
    return NULL;
}

/* Skips the prolog (XML declaration, comments, PIs, blanks) and refuses
 * a DOCTYPE: every entity trick needs one. */
static bool dsnap_check_prolog(const char *buf, size_t len, GError **errp)
{
    const char *p = buf, *end = buf + len;
    if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3)) {
        p += 3;             /* UTF-8 byte order mark */
    }
    while (p < end) {
        if (g_ascii_isspace(*p)) {
            p++;
        } else if (end - p >= 4 && !memcmp(p, "<!--", 4)) {
            const char *e = g_strstr_len(p + 4, end - p - 4, "-->");
            p = e ? e + 3 : end;
        } else if (end - p >= 2 && !memcmp(p, "<?", 2)) {
            const char *e = g_strstr_len(p + 2, end - p - 2, "?>");
            p = e ? e + 2 : end;
        } else if (end - p >= 2 && !memcmp(p, "<!", 2)) {
            error_setg(errp, "XML document with a DOCTYPE or entity "
                       "declarations is refused");
            return false;
        } else {
            break;
        }
    }
    return true;
}

static bool dsnap_check_bytes(const char *buf, size_t len, GError **errp)
{
    if (len > DSNAP_MAX_DOC_SIZE) {
        error_setg(errp, "XML document too large (%zu bytes, at most %d)",
                   len, DSNAP_MAX_DOC_SIZE);
        return false;
    }
    if (len == 0) {
        error_setg(errp, "malformed XML: empty document");
        return false;
    }
    if (memchr(buf, '\0', len)) {
        error_setg(errp, "malformed XML: NUL byte in document "
                   "(only UTF-8 is accepted)");
        return false;
    }
    if (!g_utf8_validate(buf, len, NULL)) {
        error_setg(errp, "malformed XML: document is not valid UTF-8");
        return false;
    }
    return dsnap_check_prolog(buf, len, errp);
}

/* Parses buf into a tree: no network, no entity substitution, no DTD,
 * no XInclude, no output on stderr. */
static xmlDocPtr dsnap_xml_read(const char *buf, size_t len, GError **errp)
{
    g_once(&dsnap_xml_once, dsnap_xml_init, NULL);
    if (!dsnap_check_bytes(buf, len, errp)) {
        return NULL;
    }
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        error_setg(errp, "out of memory creating the XML parser");
        return NULL;
    }
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
               XML_PARSE_NOCDATA;
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, buf, (int)len, "domainsnapshot",
                                      "UTF-8", opts);
    if (!doc || !ctxt->wellFormed) {
        xmlErrorPtr e = xmlCtxtGetLastError(ctxt);
        g_autofree char *msg = g_strdup(e && e->message ? e->message
                                                        : "parse error");
        g_strchomp(msg);
        error_setg(errp, "malformed XML at line %d: %s", e ? e->line : 0,
                   msg);
        xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        return NULL;
    }
    xmlFreeParserCtxt(ctxt);
    /* Belt and braces: the prolog check already refused these. */
    if (doc->intSubset || doc->extSubset) {
        error_setg(errp, "XML document with a DOCTYPE or entity "
                   "declarations is refused");
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

/* ---- walking the tree ---- */

static bool dsnap_is(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !n->ns &&
           !strcmp((const char *)n->name, name);
}

/* The one child element called name; an error when repeated. */
static bool dsnap_child(xmlNodePtr parent, const char *name,
                        xmlNodePtr *out, GError **errp)
{
    *out = NULL;
    for (xmlNodePtr c = parent->children; c; c = c->next) {
        if (dsnap_is(c, name)) {
            if (*out) {
                error_setg(errp, "element <%s> repeated in <%s>", name,
                           (const char *)parent->name);
                return false;
            }
            *out = c;
        }
    }
    return true;
}

/* Text of an element with no child elements (entity references are
 * refused: with no DTD they could only be undefined). */
static char *dsnap_text(xmlNodePtr n, GError **errp)
{
    GString *s = g_string_new(NULL);
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            g_string_append(s, (const char *)c->content);
        } else if (c->type != XML_COMMENT_NODE && c->type != XML_PI_NODE) {
            error_setg(errp, "element <%s> must contain only text",
                       (const char *)n->name);
            g_string_free(s, TRUE);
            return NULL;
        }
    }
    return g_string_free(s, FALSE);
}

/* Trimmed text of the single child element name, or NULL if absent. */
static bool dsnap_child_text(xmlNodePtr parent, const char *name,
                             char **out, GError **errp)
{
    xmlNodePtr n;
    *out = NULL;
    if (!dsnap_child(parent, name, &n, errp)) {
        return false;
    }
    if (n) {
        *out = dsnap_text(n, errp);
        if (!*out) {
            return false;
        }
        g_strstrip(*out);
    }
    return true;
}

static char *dsnap_attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    char *s = v ? g_strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

/* An attribute that must be an absolute, safe path (or absent). */
static bool dsnap_path_attr(xmlNodePtr n, const char *name, char **out,
                            GError **errp)
{
    *out = dsnap_attr(n, name);
    if (*out && !dsnap_path_is_safe(*out)) {
        g_autofree char *q = g_strescape(*out, NULL);
        error_setg(errp, "attribute '%s' of <%s> must be an absolute path "
                   "without '..' or control characters: '%s'", name,
                   (const char *)n->name, q);
        return false;
    }
    return true;
}

static bool dsnap_mode_attr(xmlNodePtr n, bool disk, DsnapMode *out,
                            GError **errp)
{
    g_autofree char *v = dsnap_attr(n, "snapshot");
    *out = DSNAP_MODE_DEFAULT;
    if (!v) {
        return true;
    }
    *out = dsnap_lookup(dsnap_mode_names, G_N_ELEMENTS(dsnap_mode_names), v);
    if (*out == DSNAP_MODE_DEFAULT || (!disk && *out == DSNAP_MODE_MANUAL)) {
        error_setg(errp, "unknown snapshot mode '%s' in <%s> (expected %s)",
                   v, (const char *)n->name,
                   disk ? "no, internal, external or manual"
                        : "no, internal or external");
        return false;
    }
    return true;
}

/* A <driver type=...> child; allowed names the writer can write back. */
static bool dsnap_driver_type(xmlNodePtr parent, const char *const *allowed,
                              char **out, GError **errp)
{
    xmlNodePtr drv;
    *out = NULL;
    if (!dsnap_child(parent, "driver", &drv, errp)) {
        return false;
    }
    if (drv) {
        *out = dsnap_attr(drv, "type");
        if (*out && !dsnap_in_list(allowed, *out)) {
            error_setg(errp, "unsupported format '%s' in attribute 'type' "
                       "of <driver>", *out);
            return false;
        }
    }
    return true;
}

static bool dsnap_source_file(xmlNodePtr parent, char **out, GError **errp)
{
    xmlNodePtr src;
    *out = NULL;
    if (!dsnap_child(parent, "source", &src, errp)) {
        return false;
    }
    return !src || dsnap_path_attr(src, "file", out, errp);
}

/* ---- <disks> ---- */

static bool dsnap_parse_disk(xmlNodePtr n, DomainSnapshotDef *def,
                             GError **errp)
{
    DsnapDiskDef *d = g_new0(DsnapDiskDef, 1);
    g_ptr_array_add(def->disks, d);
    d->name = dsnap_attr(n, "name");
    if (!d->name || !d->name[0]) {
        error_setg(errp, "missing attribute 'name' of <disk> in <disks>");
        return false;
    }
    if (!dsnap_target_dev_ok(d->name) && !dsnap_path_is_safe(d->name)) {
        g_autofree char *q = g_strescape(d->name, NULL);
        error_setg(errp, "invalid disk name '%s' in <disks>: expected a "
                   "target device (hda) or an absolute path", q);
        return false;
    }
    for (guint i = 0; i + 1 < def->disks->len; i++) {
        DsnapDiskDef *o = g_ptr_array_index(def->disks, i);
        if (!strcmp(o->name, d->name)) {
            error_setg(errp, "disk '%s' listed twice in <disks>", d->name);
            return false;
        }
    }
    g_autofree char *type = dsnap_attr(n, "type");
    if (type && strcmp(type, "file")) {
        error_setg(errp, "unsupported attribute type='%s' of <disk> '%s' "
                   "(only 'file')", type, d->name);
        return false;
    }
    if (!dsnap_mode_attr(n, true, &d->mode, errp) ||
        !dsnap_driver_type(n, dsnap_backing_formats, &d->driver_type, errp) ||
        !dsnap_source_file(n, &d->source_file, errp)) {
        error_prepend(errp, "disk '%s': ", d->name);
        return false;
    }
    bool has_target = d->driver_type || d->source_file || type;
    if (has_target && d->mode != DSNAP_MODE_DEFAULT &&
        d->mode != DSNAP_MODE_EXTERNAL) {
        error_setg(errp, "disk '%s': <source> and <driver> need "
                   "snapshot='external', not '%s'", d->name,
                   dsnap_mode_name(d->mode));
        return false;
    }
    return true;
}

static bool dsnap_parse_disks(xmlNodePtr disks, DomainSnapshotDef *def,
                              GError **errp)
{
    for (xmlNodePtr c = disks->children; c; c = c->next) {
        if (dsnap_is(c, "disk") && !dsnap_parse_disk(c, def, errp)) {
            return false;
        }
    }
    return true;
}

/* ---- <memory> ---- */

static bool dsnap_parse_memory(xmlNodePtr n, DomainSnapshotDef *def,
                               GError **errp)
{
    if (!dsnap_mode_attr(n, false, &def->memory, errp) ||
        !dsnap_path_attr(n, "file", &def->memory_file, errp)) {
        return false;
    }
    if (def->memory == DSNAP_MODE_EXTERNAL && !def->memory_file) {
        error_setg(errp, "<memory snapshot='external'> needs attribute "
                   "'file'");
        return false;
    }
    if (def->memory_file && def->memory != DSNAP_MODE_DEFAULT &&
        def->memory != DSNAP_MODE_EXTERNAL) {
        error_setg(errp, "attribute 'file' of <memory> needs "
                   "snapshot='external', not '%s'",
                   dsnap_mode_name(def->memory));
        return false;
    }
    return true;
}

/* ---- <domain> ---- */

/* "<memory unit=...>N</memory>" in KiB; libvirt's default unit is KiB. */
static bool dsnap_parse_domain_memory(xmlNodePtr n, uint64_t *kib,
                                      GError **errp)
{
    static const struct { const char *unit; uint64_t bytes; } units[] = {
        { "b", 1 }, { "bytes", 1 }, { "KB", 1000 }, { "k", 1024 },
        { "KiB", 1024 }, { "MB", 1000000 }, { "M", 1 << 20 },
        { "MiB", 1 << 20 }, { "GB", 1000000000 }, { "G", 1 << 30 },
        { "GiB", 1 << 30 }, { "TB", 1000000000000ULL },
        { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
    };
    g_autofree char *unit = dsnap_attr(n, "unit");
    g_autofree char *text = dsnap_text(n, errp);
    if (!text) {
        return false;
    }
    g_strstrip(text);
    uint64_t mult = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
        if (!strcmp(unit ? unit : "KiB", units[i].unit)) {
            mult = units[i].bytes;
        }
    }
    if (!mult) {
        error_setg(errp, "unknown unit '%s' of <memory> in <domain>", unit);
        return false;
    }
    guint64 v;
    if (!g_ascii_string_to_unsigned(text, 10, 1, G_MAXUINT64 / mult, &v,
                                    NULL) || v * mult < 1024) {
        error_setg(errp, "invalid <memory> size '%s' in <domain>", text);
        return false;
    }
    *kib = v * mult / 1024;
    return true;
}

static bool dsnap_parse_domain_disk(xmlNodePtr n, DsnapDomainDef *dom,
                                    GError **errp)
{
    DsnapDomainDisk *d = g_new0(DsnapDomainDisk, 1);
    g_ptr_array_add(dom->disks, d);
    d->device = dsnap_attr(n, "device");
    if (!d->device) {
        d->device = g_strdup("disk");
    }
    g_autofree char *type = dsnap_attr(n, "type");
    if ((type && strcmp(type, "file")) ||
        (strcmp(d->device, "disk") && strcmp(d->device, "cdrom"))) {
        error_setg(errp, "unsupported <disk type='%s' device='%s'> in "
                   "<devices> (only file disks and cdroms)",
                   type ? type : "file", d->device);
        return false;
    }
    xmlNodePtr target;
    if (!dsnap_child(n, "target", &target, errp)) {
        return false;
    }
    d->target_dev = target ? dsnap_attr(target, "dev") : NULL;
    d->target_bus = target ? dsnap_attr(target, "bus") : NULL;
    if (!d->target_dev || !dsnap_target_dev_ok(d->target_dev)) {
        error_setg(errp, "<disk> in <devices> needs <target dev=...> "
                   "naming a device such as 'hda'");
        return false;
    }
    if (d->target_bus && !dsnap_in_list(dsnap_buses, d->target_bus)) {
        error_setg(errp, "unknown bus '%s' in <target> of disk '%s'",
                   d->target_bus, d->target_dev);
        return false;
    }
    for (guint i = 0; i + 1 < dom->disks->len; i++) {
        DsnapDomainDisk *o = g_ptr_array_index(dom->disks, i);
        if (!strcmp(o->target_dev, d->target_dev)) {
            error_setg(errp, "target '%s' used twice in <devices>",
                       d->target_dev);
            return false;
        }
    }
    if (!dsnap_driver_type(n, dsnap_domain_formats, &d->driver_type, errp) ||
        !dsnap_source_file(n, &d->source_file, errp)) {
        error_prepend(errp, "domain disk '%s': ", d->target_dev);
        return false;
    }
    return true;
}

static bool dsnap_parse_os(xmlNodePtr dnode, DsnapDomainDef *dom,
                           GError **errp)
{
    xmlNodePtr os, type = NULL;
    if (!dsnap_child(dnode, "os", &os, errp) ||
        (os && !dsnap_child(os, "type", &type, errp))) {
        return false;
    }
    if (!type) {
        error_setg(errp, "missing element <os><type> in <domain>");
        return false;
    }
    dom->os_type = dsnap_text(type, errp);
    if (!dom->os_type) {
        return false;
    }
    g_strstrip(dom->os_type);
    if (strcmp(dom->os_type, "hvm")) {
        error_setg(errp, "unsupported <os><type> '%s' in <domain> (only "
                   "'hvm')", dom->os_type);
        return false;
    }
    dom->os_arch = dsnap_attr(type, "arch");
    if (dom->os_arch && (!dom->os_arch[0] || !g_str_is_ascii(dom->os_arch) ||
                         strpbrk(dom->os_arch, " <>&'\"/") ||
                         dsnap_has_control(dom->os_arch))) {
        error_setg(errp, "invalid attribute 'arch' of <type> in <os>");
        return false;
    }
    return true;
}

static bool dsnap_parse_vcpu(xmlNodePtr dnode, DsnapDomainDef *dom,
                             GError **errp)
{
    g_autofree char *v = NULL;
    guint64 n;
    if (!dsnap_child_text(dnode, "vcpu", &v, errp)) {
        return false;
    }
    if (v && !g_ascii_string_to_unsigned(v, 10, 1, 4096, &n, NULL)) {
        error_setg(errp, "invalid <vcpu> count '%s' in <domain>", v);
        return false;
    }
    dom->vcpus = v ? n : 0;
    return true;
}

static bool dsnap_parse_domain(xmlNodePtr n, DomainSnapshotDef *def,
                               GError **errp)
{
    DsnapDomainDef *dom = def->domain = dsnap_domain_new();
    dom->type = dsnap_attr(n, "type");
    if (!dom->type) {
        error_setg(errp, "missing attribute 'type' of <domain>");
        return false;
    }
    if (!dsnap_in_list(dsnap_hypervisors, dom->type)) {
        error_setg(errp, "unknown hypervisor type '%s' of <domain>",
                   dom->type);
        return false;
    }
    if (!dsnap_child_text(n, "name", &dom->name, errp)) {
        return false;
    }
    if (!dom->name || !dsnap_name_is_safe(dom->name)) {
        error_setg(errp, "<domain> needs a <name> that is a safe file name");
        return false;
    }
    xmlNodePtr mem, devices;
    if (!dsnap_child(n, "memory", &mem, errp) ||
        !dsnap_child(n, "devices", &devices, errp)) {
        return false;
    }
    if (!mem) {
        error_setg(errp, "missing element <memory> in <domain>");
        return false;
    }
    if (!dsnap_parse_domain_memory(mem, &dom->memory_kib, errp) ||
        !dsnap_parse_vcpu(n, dom, errp) || !dsnap_parse_os(n, dom, errp)) {
        return false;
    }
    for (xmlNodePtr c = devices ? devices->children : NULL; c; c = c->next) {
        if (dsnap_is(c, "disk") && !dsnap_parse_domain_disk(c, dom, errp)) {
            return false;
        }
    }
    return true;
}

/* ---- <domainsnapshot> ---- */

static bool dsnap_parse_name(xmlNodePtr root, const char *elem, char **out,
                             GError **errp)
{
    if (!dsnap_child_text(root, elem, out, errp)) {
        return false;
    }
    if (*out && !dsnap_name_is_safe(*out)) {
        /* Escaped: the message stays on one line whatever the name. */
        g_autofree char *q = g_strescape(*out, NULL);
        error_setg(errp, "invalid snapshot name '%s' in <%s>: not a safe "
                   "file name (empty, '/', leading '.', control "
                   "characters)", q, elem);
        return false;
    }
    return true;
}

static bool dsnap_parse_parent(xmlNodePtr root, DomainSnapshotDef *def,
                               GError **errp)
{
    xmlNodePtr p;
    if (!dsnap_child(root, "parent", &p, errp)) {
        return false;
    }
    if (p) {
        if (!dsnap_parse_name(p, "name", &def->parent, errp)) {
            error_prepend(errp, "<parent>: ");
            return false;
        }
        if (!def->parent) {
            error_setg(errp, "missing element <name> in <parent>");
            return false;
        }
    }
    return true;
}

static bool dsnap_parse_scalars(xmlNodePtr root, DomainSnapshotDef *def,
                                GError **errp)
{
    g_autofree char *state = NULL, *ctime = NULL, *active = NULL;
    if (!dsnap_parse_name(root, "name", &def->name, errp) ||
        !dsnap_child_text(root, "description", &def->description, errp) ||
        !dsnap_child_text(root, "state", &state, errp) ||
        !dsnap_child_text(root, "creationTime", &ctime, errp) ||
        !dsnap_child_text(root, "active", &active, errp)) {
        return false;
    }
    if (state) {
        def->state = dsnap_lookup(dsnap_state_names,
                                  G_N_ELEMENTS(dsnap_state_names), state);
        if (!def->state) {
            error_setg(errp, "unknown domain state '%s' in <state>", state);
            return false;
        }
    }
    if (ctime) {
        guint64 t;
        if (!g_ascii_string_to_unsigned(ctime, 10, 0, G_MAXINT64, &t, NULL)) {
            error_setg(errp, "invalid <creationTime> '%s' (seconds since "
                       "the epoch expected)", ctime);
            return false;
        }
        def->has_creation_time = true;
        def->creation_time = t;
    }
    if (active) {
        if (strcmp(active, "0") && strcmp(active, "1")) {
            error_setg(errp, "invalid <active> '%s' (0 or 1 expected)",
                       active);
            return false;
        }
        def->active = active[0] - '0';
    }
    return true;
}

static bool dsnap_parse_root(xmlNodePtr root, DomainSnapshotDef *def,
                             GError **errp)
{
    xmlNodePtr mem, disks, dom;
    if (!dsnap_parse_scalars(root, def, errp) ||
        !dsnap_parse_parent(root, def, errp) ||
        !dsnap_child(root, "memory", &mem, errp) ||
        !dsnap_child(root, "disks", &disks, errp) ||
        !dsnap_child(root, "domain", &dom, errp)) {
        return false;
    }
    return (!mem || dsnap_parse_memory(mem, def, errp)) &&
           (!disks || dsnap_parse_disks(disks, def, errp)) &&
           (!dom || dsnap_parse_domain(dom, def, errp));
}

/* The document's root element, which must be <name>; NULL with *errp
 * set (and nothing to free) otherwise. */
static xmlNodePtr dsnap_read_root(const char *buf, size_t len,
                                  const char *name, xmlDocPtr *doc,
                                  GError **errp)
{
    *doc = dsnap_xml_read(buf, len, errp);
    if (!*doc) {
        return NULL;
    }
    xmlNodePtr root = xmlDocGetRootElement(*doc);
    if (!root || !dsnap_is(root, name)) {
        error_setg(errp, "unexpected root element <%s>, expecting <%s>",
                   root ? (const char *)root->name : "", name);
        xmlFreeDoc(*doc);
        *doc = NULL;
        return NULL;
    }
    return root;
}

DomainSnapshotDef *dsnap_parse_string(const char *buf, size_t len,
                                      GError **errp)
{
    xmlDocPtr doc;
    xmlNodePtr root = dsnap_read_root(buf, len, "domainsnapshot", &doc,
                                      errp);
    if (!root) {
        return NULL;
    }
    DomainSnapshotDef *def = dsnap_def_new();
    bool ok = dsnap_parse_root(root, def, errp);
    xmlFreeDoc(doc);
    if (!ok) {
        dsnap_def_free(def);
        return NULL;
    }
    return def;
}

DomainSnapshotDef *dsnap_parse_file(const char *path, GError **errp)
{
    g_autoptr(GMappedFile) f = NULL;
    GError *local = NULL;
    f = g_mapped_file_new(path, FALSE, &local);
    if (!f) {
        error_setg(errp, "could not read '%s': %s", path, local->message);
        g_error_free(local);
        return NULL;
    }
    size_t len = g_mapped_file_get_length(f);
    if (len > DSNAP_MAX_DOC_SIZE) {
        error_setg(errp, "'%s': XML document too large (%zu bytes, at most "
                   "%d)", path, len, DSNAP_MAX_DOC_SIZE);
        return NULL;
    }
    /* An empty file maps to NULL contents. */
    const char *buf = len ? g_mapped_file_get_contents(f) : "";
    return dsnap_parse_string(buf, len, errp);
}

/* ---- defaults ---- */

void dsnap_def_fill_defaults(DomainSnapshotDef *def, int64_t now)
{
    if (!def->has_creation_time) {
        def->has_creation_time = true;
        def->creation_time = now;
    }
    if (!def->name) {
        def->name = g_strdup_printf("%" G_GINT64_FORMAT, def->creation_time);
    }
    bool disk_only = def->state == DSNAP_STATE_DISK_SNAPSHOT;
    bool offline = def->state == DSNAP_STATE_SHUTOFF ||
                   def->state == DSNAP_STATE_SHUTDOWN ||
                   def->state == DSNAP_STATE_CRASHED;
    if (def->memory == DSNAP_MODE_DEFAULT) {
        def->memory = def->memory_file ? DSNAP_MODE_EXTERNAL :
                      disk_only || offline ? DSNAP_MODE_NO :
                      DSNAP_MODE_INTERNAL;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *d = g_ptr_array_index(def->disks, i);
        if (d->mode == DSNAP_MODE_DEFAULT) {
            d->mode = d->source_file || d->driver_type || disk_only ?
                      DSNAP_MODE_EXTERNAL : DSNAP_MODE_INTERNAL;
        }
    }
}

/* ---- writing ---- */

#define W(x) ((const xmlChar *)(x))

static void dsnap_w_text(xmlTextWriterPtr w, const char *elem,
                         const char *text)
{
    xmlTextWriterWriteElement(w, W(elem), W(text));
}

static void dsnap_w_attr(xmlTextWriterPtr w, const char *name,
                         const char *value)
{
    if (value) {
        xmlTextWriterWriteAttribute(w, W(name), W(value));
    }
}

/* <driver type=.../> and <source file=.../> when set. */
static void dsnap_w_driver_source(xmlTextWriterPtr w, const char *drv_name,
                                  const char *type, const char *file)
{
    if (type || drv_name) {
        xmlTextWriterStartElement(w, W("driver"));
        dsnap_w_attr(w, "name", drv_name);
        dsnap_w_attr(w, "type", type);
        xmlTextWriterEndElement(w);
    }
    if (file) {
        xmlTextWriterStartElement(w, W("source"));
        dsnap_w_attr(w, "file", file);
        xmlTextWriterEndElement(w);
    }
}

static void dsnap_w_disks(xmlTextWriterPtr w, const DomainSnapshotDef *def)
{
    xmlTextWriterStartElement(w, W("disks"));
    for (guint i = 0; i < def->disks->len; i++) {
        const DsnapDiskDef *d = g_ptr_array_index(def->disks, i);
        xmlTextWriterStartElement(w, W("disk"));
        dsnap_w_attr(w, "name", d->name);
        dsnap_w_attr(w, "snapshot", dsnap_mode_name(d->mode));
        if (d->mode == DSNAP_MODE_EXTERNAL) {
            dsnap_w_attr(w, "type", "file");
            dsnap_w_driver_source(w, NULL, d->driver_type, d->source_file);
        }
        xmlTextWriterEndElement(w);
    }
    xmlTextWriterEndElement(w);
}

static void dsnap_w_domain_disk(xmlTextWriterPtr w, const DsnapDomainDisk *d)
{
    xmlTextWriterStartElement(w, W("disk"));
    dsnap_w_attr(w, "type", "file");
    dsnap_w_attr(w, "device", d->device);
    dsnap_w_driver_source(w, "qemu", d->driver_type, d->source_file);
    xmlTextWriterStartElement(w, W("target"));
    dsnap_w_attr(w, "dev", d->target_dev);
    dsnap_w_attr(w, "bus", d->target_bus);
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
}

static void dsnap_w_domain(xmlTextWriterPtr w, const DsnapDomainDef *dom)
{
    xmlTextWriterStartElement(w, W("domain"));
    dsnap_w_attr(w, "type", dom->type);
    dsnap_w_text(w, "name", dom->name);
    xmlTextWriterStartElement(w, W("memory"));
    dsnap_w_attr(w, "unit", "KiB");
    xmlTextWriterWriteFormatString(w, "%" G_GUINT64_FORMAT, dom->memory_kib);
    xmlTextWriterEndElement(w);
    xmlTextWriterWriteFormatElement(w, W("vcpu"), "%u",
                                    dom->vcpus ? dom->vcpus : 1);
    xmlTextWriterStartElement(w, W("os"));
    xmlTextWriterStartElement(w, W("type"));
    dsnap_w_attr(w, "arch", dom->os_arch);
    xmlTextWriterWriteString(w, W(dom->os_type));
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, W("devices"));
    for (guint i = 0; i < dom->disks->len; i++) {
        dsnap_w_domain_disk(w, g_ptr_array_index(dom->disks, i));
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
}

static void dsnap_w_root(xmlTextWriterPtr w, const DomainSnapshotDef *def)
{
    xmlTextWriterStartElement(w, W("domainsnapshot"));
    if (def->name) {
        dsnap_w_text(w, "name", def->name);
    }
    if (def->description) {
        dsnap_w_text(w, "description", def->description);
    }
    if (def->state) {
        dsnap_w_text(w, "state", dsnap_state_name(def->state));
    }
    if (def->parent) {
        xmlTextWriterStartElement(w, W("parent"));
        dsnap_w_text(w, "name", def->parent);
        xmlTextWriterEndElement(w);
    }
    if (def->has_creation_time) {
        xmlTextWriterWriteFormatElement(w, W("creationTime"),
                                        "%" G_GINT64_FORMAT,
                                        def->creation_time);
    }
    /* Always written: an absent mode means none (libvirt does the same). */
    xmlTextWriterStartElement(w, W("memory"));
    dsnap_w_attr(w, "snapshot", def->memory ? dsnap_mode_name(def->memory)
                                            : "no");
    dsnap_w_attr(w, "file", def->memory_file);
    xmlTextWriterEndElement(w);
    if (def->disks->len) {
        dsnap_w_disks(w, def);
    }
    if (def->domain) {
        dsnap_w_domain(w, def->domain);
    }
    if (def->active >= 0) {
        xmlTextWriterWriteFormatElement(w, W("active"), "%d", def->active);
    }
    xmlTextWriterEndElement(w);
}

/* A document written by write(w, obj) as libvirt writes its own:
 * two-space indent, single quotes. */
static char *dsnap_write_doc(void (*write)(xmlTextWriterPtr, const void *),
                             const void *obj)
{
    g_once(&dsnap_xml_once, dsnap_xml_init, NULL);
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
    xmlTextWriterSetIndent(w, 1);
    xmlTextWriterSetIndentString(w, W("  "));
    xmlTextWriterSetQuoteChar(w, '\'');
    write(w, obj);
    xmlTextWriterFlush(w);
    xmlFreeTextWriter(w);
    char *out = g_strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    return out;
}

static void dsnap_w_root_doc(xmlTextWriterPtr w, const void *def)
{
    dsnap_w_root(w, def);
}

static void dsnap_w_domain_doc(xmlTextWriterPtr w, const void *dom)
{
    dsnap_w_domain(w, dom);
}

char *dsnap_format(const DomainSnapshotDef *def)
{
    return dsnap_write_doc(dsnap_w_root_doc, def);
}

/* A <domain> document alone (the catalog's domain.xml), written and
 * read with the same rules as the one inside <domainsnapshot>. */
char *dsnap_domain_format(const DsnapDomainDef *dom)
{
    return dsnap_write_doc(dsnap_w_domain_doc, dom);
}

DsnapDomainDef *dsnap_domain_parse(const char *buf, size_t len,
                                   GError **errp)
{
    xmlDocPtr doc;
    xmlNodePtr root = dsnap_read_root(buf, len, "domain", &doc, errp);
    if (!root) {
        return NULL;
    }
    DomainSnapshotDef *def = dsnap_def_new();
    DsnapDomainDef *dom = NULL;
    if (dsnap_parse_domain(root, def, errp)) {
        dom = g_steal_pointer(&def->domain);
    }
    dsnap_def_free(def);
    xmlFreeDoc(doc);
    return dom;
}

void dsnap_domain_def_free(DsnapDomainDef *dom)
{
    if (dom) {
        dsnap_domain_free(dom);
    }
}

/* ---- RelaxNG ---- */

struct DsnapSchema {
    xmlRelaxNGPtr rng;
};

/* Keeps the first structured error libxml2 reports. */
static void dsnap_keep_error(void *data, xmlErrorPtr e)
{
    char **first = data;
    if (!*first && e && e->message) {
        *first = g_strdup_printf("line %d: %s", e->line, e->message);
        g_strchomp(*first);
    }
}

DsnapSchema *dsnap_schema_load(const char *path, GError **errp)
{
    g_once(&dsnap_xml_once, dsnap_xml_init, NULL);
    path = path ? path : DSNAP_SCHEMA_DEFAULT;
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        error_setg(errp, "RelaxNG schema '%s' not found (Debian package "
                   "libvirt0 installs it)", path);
        return NULL;
    }
    g_autofree char *first = NULL;
    xmlRelaxNGParserCtxtPtr pc = xmlRelaxNGNewParserCtxt(path);
    xmlRelaxNGSetParserStructuredErrors(pc, dsnap_keep_error, &first);
    xmlRelaxNGPtr rng = xmlRelaxNGParse(pc);
    xmlRelaxNGFreeParserCtxt(pc);
    if (!rng) {
        error_setg(errp, "could not load RelaxNG schema '%s': %s", path,
                   first ? first : "unknown error");
        return NULL;
    }
    DsnapSchema *s = g_new0(DsnapSchema, 1);
    s->rng = rng;
    return s;
}

void dsnap_schema_free(DsnapSchema *schema)
{
    if (schema) {
        xmlRelaxNGFree(schema->rng);
        g_free(schema);
    }
}

bool dsnap_schema_validate(DsnapSchema *schema, const char *buf, size_t len,
                           GError **errp)
{
    xmlDocPtr doc = dsnap_xml_read(buf, len, errp);
    if (!doc) {
        return false;
    }
    g_autofree char *first = NULL;
    xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(schema->rng);
    xmlRelaxNGSetValidStructuredErrors(vc, dsnap_keep_error, &first);
    int rc = xmlRelaxNGValidateDoc(vc, doc);
    xmlRelaxNGFreeValidCtxt(vc);
    xmlFreeDoc(doc);
    if (rc != 0) {
        error_setg(errp, "document does not validate against libvirt's "
                   "schema: %s", first ? first : "unknown error");
        return false;
    }
    return true;
}
