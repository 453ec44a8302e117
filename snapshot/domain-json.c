/*
 * domain-json.c - the domain-snapshot commands (domain-json.h): their
 * QAPI definitions and JSON handlers over domain.c and catalog.c.  The
 * monitor checks arguments against the definitions before a handler
 * runs; dsnap_json_call() does the same checks itself for the CLI's
 * offline path, with the generated marshallers' texts.
 */
#include "snapshot/domain-json.h"
#include "util/error.h"
#include <string.h>

/* ---- arguments ---- */

static bool arg_str(json_t *args, const char *key, bool required,
                    const char **out, GError **errp)
{
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (!v) {
        if (required) {
            error_setg(errp, "Parameter '%s' is missing", key);
        }
        return !required;
    }
    if (!json_is_string(v)) {
        error_setg(errp, "Invalid parameter type for '%s', expected: "
                   "string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool arg_flag(json_t *args, const char *key, unsigned bit,
                     unsigned *flags, GError **errp)
{
    json_t *v = json_object_get(args, key);
    if (v && !json_is_boolean(v)) {
        error_setg(errp, "Invalid parameter type for '%s', expected: "
                   "boolean", key);
        return false;
    }
    if (json_is_true(v)) {
        *flags |= bit;
    }
    return true;
}

static bool arg_bool(json_t *args, const char *key, bool *out,
                     GError **errp)
{
    unsigned f = 0;
    bool ok = arg_flag(args, key, 1, &f, errp);
    *out = f;
    return ok;
}

static const DomainSnapshotDef *need_snapshot(DsnapDomain *d,
                                              const char *name,
                                              GError **errp)
{
    DsnapCatalog *cat = dsnap_domain_catalog(d);
    const DomainSnapshotDef *def = cat ? dsnap_catalog_lookup(cat, name)
                                       : NULL;
    if (!def) {
        error_setg(errp, "Domain snapshot not found: no domain snapshot "
                   "with matching name '%s'", name);
    }
    return def;
}

/* ---- SnapshotInfo ---- */

static const char *location_of(const DomainSnapshotDef *def)
{
    if (dsnap_catalog_def_is_external(def)) {
        return "external";
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode == DSNAP_MODE_INTERNAL) {
            return "internal";
        }
    }
    return def->memory == DSNAP_MODE_INTERNAL ? "internal" : "none";
}

static json_t *snapshot_info(DsnapCatalog *cat, const DomainSnapshotDef *def)
{
    g_autoptr(GPtrArray) kids = dsnap_catalog_children(cat, def->name);
    g_autoptr(GPtrArray) below = dsnap_catalog_descendants(cat, def->name);
    json_t *o = json_pack("{s:s, s:I, s:s, s:b, s:s, s:s, s:i, s:i}",
                          "name", def->name,
                          "creation-time", (json_int_t)def->creation_time,
                          "state", dsnap_state_name(def->state),
                          "current", !g_strcmp0(dsnap_catalog_current(cat),
                                                def->name),
                          "memory", dsnap_mode_name(def->memory),
                          "location", location_of(def),
                          "children", kids ? (int)kids->len : 0,
                          "descendants", below ? (int)below->len : 0);
    if (def->parent) {
        json_object_set_new(o, "parent", json_string(def->parent));
    }
    if (def->description) {
        json_object_set_new(o, "description",
                            json_string(def->description));
    }
    return o;
}

/* ---- handlers ---- */

static bool h_create(DsnapDomain *d, json_t *args, json_t **ret,
                     GError **errp)
{
    const char *xml;
    unsigned flags = 0;
    if (!arg_str(args, "xml", true, &xml, errp) ||
        !arg_flag(args, "disk-only", DSNAP_CREATE_DISK_ONLY, &flags, errp) ||
        !arg_flag(args, "no-metadata", DSNAP_CREATE_NO_METADATA, &flags,
                  errp) ||
        !arg_flag(args, "redefine", DSNAP_CREATE_REDEFINE, &flags, errp) ||
        !arg_flag(args, "current", DSNAP_CREATE_CURRENT, &flags, errp) ||
        !arg_flag(args, "validate", DSNAP_CREATE_VALIDATE, &flags, errp)) {
        return false;
    }
    if ((flags & DSNAP_CREATE_CURRENT) && !(flags & DSNAP_CREATE_REDEFINE)) {
        error_setg(errp, "'current' needs 'redefine'");
        return false;
    }
    g_autofree char *name = NULL;
    int64_t pause_ns = 0;
    if (!dsnap_domain_create(d, xml, flags, &name, &pause_ns, errp)) {
        return false;
    }
    *ret = json_pack("{s:s}", "name", name);
    if (!(flags & DSNAP_CREATE_REDEFINE)) {
        json_object_set_new(*ret, "guest-pause-ns", json_integer(pause_ns));
    }
    return true;
}

static bool h_redefine(DsnapDomain *d, json_t *args, json_t **ret,
                       GError **errp)
{
    const char *xml;
    unsigned flags = DSNAP_CREATE_REDEFINE;
    if (!arg_str(args, "xml", true, &xml, errp) ||
        !arg_flag(args, "current", DSNAP_CREATE_CURRENT, &flags, errp)) {
        return false;
    }
    g_autofree char *name = NULL;
    if (!dsnap_domain_create(d, xml, flags, &name, NULL, errp)) {
        return false;
    }
    *ret = json_pack("{s:s}", "name", name);
    return true;
}

static bool list_filter(json_t *args, DsnapListFilter *f, bool *tree,
                        GError **errp)
{
    const char *from;
    *f = (DsnapListFilter){ 0 };
    if (!arg_str(args, "from", false, &from, errp)) {
        return false;
    }
    f->from = from;
    return arg_bool(args, "roots", &f->roots, errp) &&
           arg_bool(args, "leaves", &f->leaves, errp) &&
           arg_bool(args, "no-leaves", &f->no_leaves, errp) &&
           arg_bool(args, "current", &f->from_current, errp) &&
           arg_bool(args, "internal", &f->internal, errp) &&
           arg_bool(args, "external", &f->external, errp) &&
           arg_bool(args, "disk-only", &f->disk_only, errp) &&
           arg_bool(args, "active", &f->active, errp) &&
           arg_bool(args, "inactive", &f->inactive, errp) &&
           arg_bool(args, "descendants", &f->descendants, errp) &&
           arg_bool(args, "tree", tree, errp);
}

static bool h_list(DsnapDomain *d, json_t *args, json_t **ret,
                   GError **errp)
{
    DsnapListFilter f;
    bool tree;
    if (!list_filter(args, &f, &tree, errp)) {
        return false;
    }
    DsnapCatalog *cat = dsnap_domain_catalog(d);
    json_t *list = json_array();
    *ret = json_pack("{s:o}", "snapshots", list);
    if (!cat) {
        if (f.from) {
            json_decref(*ret);
            *ret = NULL;
            need_snapshot(d, f.from, errp);
            return false;
        }
        if (tree) {
            json_object_set_new(*ret, "tree", json_string(""));
        }
        return true;
    }
    g_autoptr(GPtrArray) names = dsnap_catalog_list(cat, &f, errp);
    if (!names) {
        g_clear_pointer(ret, json_decref);
        return false;
    }
    for (guint i = 0; i < names->len; i++) {
        json_array_append_new(list, snapshot_info(cat, dsnap_catalog_lookup(
            cat, g_ptr_array_index(names, i))));
    }
    if (tree) {
        const char *from = f.from ? f.from :
                           f.from_current ? dsnap_catalog_current(cat) : NULL;
        g_autofree char *text = dsnap_catalog_format_tree(cat, from);
        json_object_set_new(*ret, "tree", json_string(text ? text : ""));
    }
    return true;
}

static bool h_info(DsnapDomain *d, json_t *args, json_t **ret,
                   GError **errp)
{
    const char *name;
    const DomainSnapshotDef *def;
    if (!arg_str(args, "name", true, &name, errp) ||
        !(def = need_snapshot(d, name, errp))) {
        return false;
    }
    *ret = snapshot_info(dsnap_domain_catalog(d), def);
    return true;
}

static bool h_dumpxml(DsnapDomain *d, json_t *args, json_t **ret,
                      GError **errp)
{
    const char *name;
    const DomainSnapshotDef *def;
    if (!arg_str(args, "name", true, &name, errp) ||
        !(def = need_snapshot(d, name, errp))) {
        return false;
    }
    g_autofree char *xml = dsnap_format(def);
    *ret = json_pack("{s:s}", "xml", xml);
    return true;
}

static bool h_current(DsnapDomain *d, json_t *args, json_t **ret,
                      GError **errp)
{
    const char *name;
    if (!arg_str(args, "name", false, &name, errp)) {
        return false;
    }
    DsnapCatalog *cat = dsnap_domain_catalog(d);
    if (name && (!need_snapshot(d, name, errp) ||
                 !dsnap_catalog_set_current(cat, name, errp))) {
        return false;
    }
    const char *cur = cat ? dsnap_catalog_current(cat) : NULL;
    *ret = cur ? json_pack("{s:s}", "name", cur) : json_object();
    return true;
}

static bool h_parent(DsnapDomain *d, json_t *args, json_t **ret,
                     GError **errp)
{
    const char *name;
    const DomainSnapshotDef *def;
    if (!arg_str(args, "name", true, &name, errp) ||
        !(def = need_snapshot(d, name, errp))) {
        return false;
    }
    *ret = def->parent ? json_pack("{s:s}", "parent", def->parent)
                       : json_object();
    return true;
}

static bool h_edit(DsnapDomain *d, json_t *args, json_t **ret,
                   GError **errp)
{
    const char *name, *xml;
    if (!arg_str(args, "name", true, &name, errp) ||
        !arg_str(args, "xml", true, &xml, errp)) {
        return false;
    }
    g_autofree char *out = NULL;
    if (!dsnap_domain_edit(d, name, xml, &out, errp)) {
        return false;
    }
    *ret = json_pack("{s:s}", "name", out);
    return true;
}

static bool h_revert(DsnapDomain *d, json_t *args, json_t **ret,
                     GError **errp)
{
    const char *name;
    unsigned flags = 0;
    if (!arg_str(args, "name", true, &name, errp) ||
        !arg_flag(args, "running", DSNAP_REVERT_RUNNING, &flags, errp) ||
        !arg_flag(args, "paused", DSNAP_REVERT_PAUSED, &flags, errp) ||
        !arg_flag(args, "force", DSNAP_REVERT_FORCE, &flags, errp)) {
        return false;
    }
    DsnapState st;
    int64_t pause_ns = 0;
    if (!dsnap_domain_revert(d, name, flags, &st, &pause_ns, errp)) {
        return false;
    }
    *ret = json_pack("{s:s, s:I}", "state", dsnap_state_name(st),
                     "guest-pause-ns", (json_int_t)pause_ns);
    return true;
}

static bool h_delete(DsnapDomain *d, json_t *args, json_t **ret,
                     GError **errp)
{
    const char *name;
    unsigned flags = 0;
    if (!arg_str(args, "name", true, &name, errp) ||
        !arg_flag(args, "children", DSNAP_DELETE_CHILDREN, &flags, errp) ||
        !arg_flag(args, "children-only", DSNAP_DELETE_CHILDREN_ONLY, &flags,
                  errp) ||
        !arg_flag(args, "metadata", DSNAP_DELETE_METADATA, &flags, errp)) {
        return false;
    }
    g_autoptr(GPtrArray) deleted = g_ptr_array_new_with_free_func(g_free);
    if (!dsnap_domain_delete(d, name, flags, deleted, errp)) {
        return false;
    }
    json_t *list = json_array();
    for (guint i = 0; i < deleted->len; i++) {
        json_array_append_new(list,
                              json_string(g_ptr_array_index(deleted, i)));
    }
    *ret = json_pack("{s:o}", "deleted", list);
    return true;
}

/* ---- the table ---- */

#define INFO_TYPE                                                       \
    "{\"name\": \"str\", \"*parent\": \"str\", \"creation-time\": "     \
    "\"int\", \"state\": \"str\", \"*description\": \"str\", "          \
    "\"current\": \"bool\", \"memory\": \"str\", \"location\": \"str\", " \
    "\"children\": \"int\", \"descendants\": \"int\"}"

const DsnapJsonCommand dsnap_json_commands[] = {
    { "x-xblk-snapshot-create",
      "{\"command\": \"x-xblk-snapshot-create\", \"data\": {\"xml\": "
      "\"str\", \"*disk-only\": \"bool\", \"*no-metadata\": \"bool\", "
      "\"*redefine\": \"bool\", \"*current\": \"bool\", \"*validate\": "
      "\"bool\"}, \"returns\": {\"name\": \"str\", \"*guest-pause-ns\": "
      "\"int\"}}", h_create },
    { "x-xblk-snapshot-redefine",
      "{\"command\": \"x-xblk-snapshot-redefine\", \"data\": {\"xml\": "
      "\"str\", \"*current\": \"bool\"}, \"returns\": {\"name\": "
      "\"str\"}}", h_redefine },
    { "x-xblk-snapshot-list",
      "{\"command\": \"x-xblk-snapshot-list\", \"data\": {\"*roots\": "
      "\"bool\", \"*leaves\": \"bool\", \"*no-leaves\": \"bool\", "
      "\"*current\": \"bool\", \"*internal\": \"bool\", \"*external\": "
      "\"bool\", \"*disk-only\": \"bool\", \"*active\": \"bool\", "
      "\"*inactive\": \"bool\", \"*from\": \"str\", \"*descendants\": "
      "\"bool\", \"*tree\": \"bool\"}, \"returns\": {\"snapshots\": ["
      INFO_TYPE "], \"*tree\": \"str\"}}", h_list },
    { "x-xblk-snapshot-info",
      "{\"command\": \"x-xblk-snapshot-info\", \"data\": {\"name\": "
      "\"str\"}, \"returns\": " INFO_TYPE "}", h_info },
    { "x-xblk-snapshot-dumpxml",
      "{\"command\": \"x-xblk-snapshot-dumpxml\", \"data\": {\"name\": "
      "\"str\"}, \"returns\": {\"xml\": \"str\"}}", h_dumpxml },
    { "x-xblk-snapshot-current",
      "{\"command\": \"x-xblk-snapshot-current\", \"data\": {\"*name\": "
      "\"str\"}, \"returns\": {\"*name\": \"str\"}}", h_current },
    { "x-xblk-snapshot-parent",
      "{\"command\": \"x-xblk-snapshot-parent\", \"data\": {\"name\": "
      "\"str\"}, \"returns\": {\"*parent\": \"str\"}}", h_parent },
    { "x-xblk-snapshot-edit",
      "{\"command\": \"x-xblk-snapshot-edit\", \"data\": {\"name\": "
      "\"str\", \"xml\": \"str\"}, \"returns\": {\"name\": \"str\"}}",
      h_edit },
    { "x-xblk-snapshot-revert",
      "{\"command\": \"x-xblk-snapshot-revert\", \"data\": {\"name\": "
      "\"str\", \"*running\": \"bool\", \"*paused\": \"bool\", \"*force\": "
      "\"bool\"}, \"returns\": {\"state\": \"str\", \"guest-pause-ns\": "
      "\"int\"}}", h_revert },
    { "x-xblk-snapshot-delete",
      "{\"command\": \"x-xblk-snapshot-delete\", \"data\": {\"name\": "
      "\"str\", \"*children\": \"bool\", \"*children-only\": \"bool\", "
      "\"*metadata\": \"bool\"}, \"returns\": {\"deleted\": [\"str\"]}}",
      h_delete },
    { NULL, NULL, NULL },
};

/* Members the definition does not have are refused, as the monitor
 * refuses them. */
static bool check_members(const DsnapJsonCommand *c, json_t *args,
                          GError **errp)
{
    json_t *def = json_loads(c->definition, 0, NULL);
    json_t *data = json_object_get(def, "data");
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach(args, key, v) {
        g_autofree char *opt = g_strconcat("*", key, NULL);
        if (!json_object_get(data, key) && !json_object_get(data, opt)) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            ok = false;
            break;
        }
    }
    json_decref(def);
    return ok;
}

bool dsnap_json_call(DsnapDomain *d, const char *name, json_t *args,
                     json_t **ret, GError **errp)
{
    *ret = NULL;
    for (const DsnapJsonCommand *c = dsnap_json_commands; c->name; c++) {
        if (strcmp(c->name, name)) {
            continue;
        }
        json_t *empty = args ? NULL : json_object();
        json_t *a = args ? args : empty;
        bool ok = json_is_object(a) && check_members(c, a, errp) &&
                  c->handler(d, a, ret, errp);
        if (!json_is_object(a)) {
            error_setg(errp, "arguments must be an object");
        }
        json_decref(empty);
        if (ok && !*ret) {
            *ret = json_object();
        }
        return ok;
    }
    g_set_error(errp, XBLK_ERROR, ERROR_CLASS_COMMAND_NOT_FOUND,
                "The command %s has not been found", name);
    return false;
}
