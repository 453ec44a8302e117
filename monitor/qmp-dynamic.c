/*
 * qmp-dynamic.c - commands defined at run time from a QAPI definition in
 * JSON (qmp-dynamic.h has the language): the parser of definitions, the
 * checks of arguments and return values, and their introspection.
 *
 * The checks reuse the generated built-in visitors
 * (qapi/qapi-builtin-visit.h) and walk members in the order the
 * generated object visitors do - each defined member (missing, then its
 * type), then unexpected ones - so that a run-time command answers a bad
 * request exactly as a compiled one would.
 *
 * Invariants: every registered run-time command is in dyn_commands (in
 * definition order) and in the monitor's table under the same name; a
 * definition is checked completely before anything is registered, so a
 * refused one changes nothing.  A command is reference-counted: its
 * handler may remove it (or all of them) while it runs.
 */
#include "monitor/monitor.h"
#include "monitor/qmp-dynamic.h"
#include "qapi/qapi-builtin-visit.h"
#include "util/error.h"
#include <string.h>

G_DEFINE_QUARK(qmp-dyn-error-quark, qmp_dyn_error)

/* ---- types ---- */

typedef bool DynCheck(json_t *v, const char *path, GError **errp);

typedef struct DynBuiltin {
    const char *name;           /* in definitions */
    const char *intro;          /* in introspection: every int is 'int' */
    const char *json_type;
    DynCheck *check;
} DynBuiltin;

#define CHECK_SCALAR(n, ctype)                                          \
    static bool check_##n(json_t *v, const char *path, GError **errp)  \
    {                                                                   \
        ctype x;                                                        \
        return visit_##n##_from_json(v, path, &x, errp);                \
    }
CHECK_SCALAR(number, double)
CHECK_SCALAR(int, int64_t)
CHECK_SCALAR(int8, int64_t)
CHECK_SCALAR(int16, int64_t)
CHECK_SCALAR(int32, int64_t)
CHECK_SCALAR(int64, int64_t)
CHECK_SCALAR(uint8, uint64_t)
CHECK_SCALAR(uint16, uint64_t)
CHECK_SCALAR(uint32, uint64_t)
CHECK_SCALAR(uint64, uint64_t)
CHECK_SCALAR(size, uint64_t)
CHECK_SCALAR(bool, bool)
CHECK_SCALAR(null, bool)

static bool check_str(json_t *v, const char *path, GError **errp)
{
    g_autofree char *s = NULL;
    return visit_str_from_json(v, path, &s, errp);
}

static bool check_any(json_t *v, const char *path, GError **errp)
{
    json_t *j = NULL;
    bool ok = visit_any_from_json(v, path, &j, errp);
    json_decref(j);
    return ok;
}

static const DynBuiltin builtins[] = {
    { "str", "str", "string", check_str },
    { "number", "number", "number", check_number },
    { "int", "int", "int", check_int },
    { "int8", "int", "int", check_int8 },
    { "int16", "int", "int", check_int16 },
    { "int32", "int", "int", check_int32 },
    { "int64", "int", "int", check_int64 },
    { "uint8", "int", "int", check_uint8 },
    { "uint16", "int", "int", check_uint16 },
    { "uint32", "int", "int", check_uint32 },
    { "uint64", "int", "int", check_uint64 },
    { "size", "int", "int", check_size },
    { "bool", "bool", "boolean", check_bool },
    { "null", "null", "null", check_null },
    { "any", "any", "value", check_any },
};

typedef enum { DYN_BUILTIN, DYN_ARRAY, DYN_OBJECT } DynKind;

typedef struct DynType DynType;

typedef struct DynMember {
    char *name;
    bool optional;
    DynType *type;
} DynMember;

struct DynType {
    DynKind kind;
    const DynBuiltin *builtin;  /* DYN_BUILTIN */
    DynType *element;           /* DYN_ARRAY */
    GPtrArray *members;         /* DYN_OBJECT: of DynMember */
};

static void dyn_type_free(DynType *t)
{
    if (!t) {
        return;
    }
    dyn_type_free(t->element);
    if (t->members) {
        g_ptr_array_free(t->members, TRUE);
    }
    g_free(t);
}

static void dyn_member_free(gpointer p)
{
    DynMember *m = p;
    g_free(m->name);
    dyn_type_free(m->type);
    g_free(m);
}

typedef struct DynCommand {
    int refcount;
    char *name;
    DynType *args;              /* an object; NULL: no arguments */
    DynType *ret;               /* NULL: the reply is {} */
    GPtrArray *features;        /* of char *, never NULL */
    bool allow_oob;
    QmpDynHandler *fn;
    void *opaque;
    GDestroyNotify destroy;
} DynCommand;

static GPtrArray *dyn_commands;

static void dyn_unref(DynCommand *c)
{
    if (--c->refcount > 0) {
        return;
    }
    if (c->destroy) {
        c->destroy(c->opaque);
    }
    g_free(c->name);
    dyn_type_free(c->args);
    dyn_type_free(c->ret);
    g_ptr_array_free(c->features, TRUE);
    g_free(c);
}

/* ---- parsing definitions ---- */

static void invalid(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void invalid(GError **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(errp, QMP_DYN_ERROR, QMP_DYN_ERROR_INVALID, msg);
}

/* QAPI's rule for names, with the optional '__RFQDN_' vendor prefix. */
static bool name_ok(const char *name, bool upper)
{
    const char *p = name;
    if (g_str_has_prefix(p, "__")) {
        const char *end = strchr(p + 2, '_');
        if (!end || end == p + 2) {
            return false;
        }
        for (const char *q = p + 2; q < end; q++) {
            if (!g_ascii_islower(*q) && !g_ascii_isdigit(*q) && *q != '.' &&
                *q != '-') {
                return false;
            }
        }
        p = end + 1;
    }
    if (upper ? !g_ascii_isupper(*p) : !g_ascii_islower(*p)) {
        return false;
    }
    for (p++; *p; p++) {
        bool ok = upper ? g_ascii_isupper(*p) || g_ascii_isdigit(*p) ||
                          *p == '_'
                        : g_ascii_islower(*p) || g_ascii_isdigit(*p) ||
                          *p == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static DynType *parse_members(json_t *obj, const char *owner, GError **errp);

/* what: "type of member 'count' of command 'x'" and the like. */
static DynType *parse_type(json_t *v, const char *what, bool in_array,
                           GError **errp)
{
    if (json_is_string(v)) {
        const char *n = json_string_value(v);
        for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
            if (!strcmp(n, builtins[i].name)) {
                DynType *t = g_new0(DynType, 1);
                t->kind = DYN_BUILTIN;
                t->builtin = &builtins[i];
                return t;
            }
        }
        invalid(errp, "%s: unknown type '%s' (a built-in type, [type] or "
                "an object of members)", what, n);
        return NULL;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) != 1 || in_array) {
            invalid(errp, "%s: an array type is a list of exactly one "
                    "type that is not an array, as ['str']", what);
            return NULL;
        }
        DynType *elem = parse_type(json_array_get(v, 0), what, true, errp);
        if (!elem) {
            return NULL;
        }
        DynType *t = g_new0(DynType, 1);
        t->kind = DYN_ARRAY;
        t->element = elem;
        return t;
    }
    if (json_is_object(v)) {
        return parse_members(v, what, errp);
    }
    invalid(errp, "%s must be a type name, [type] or an object of members",
            what);
    return NULL;
}

/* An object of members {"name": type, "*optional": type}. */
static DynType *parse_members(json_t *obj, const char *owner, GError **errp)
{
    DynType *t = g_new0(DynType, 1);
    t->kind = DYN_OBJECT;
    t->members = g_ptr_array_new_with_free_func(dyn_member_free);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool optional = key[0] == '*';
        const char *name = optional ? key + 1 : key;
        if (!name_ok(name, false)) {
            invalid(errp, "member name '%s' of %s should use lowercase and "
                    "'-'", name, owner);
            goto fail;
        }
        for (guint i = 0; i < t->members->len; i++) {
            DynMember *m = g_ptr_array_index(t->members, i);
            if (!strcmp(m->name, name)) {
                invalid(errp, "member '%s' of %s is defined twice", name,
                        owner);
                goto fail;
            }
        }
        g_autofree char *what = g_strdup_printf("type of member '%s' of %s",
                                                name, owner);
        DynType *mt = parse_type(v, what, false, errp);
        if (!mt) {
            goto fail;
        }
        DynMember *m = g_new0(DynMember, 1);
        m->name = g_strdup(name);
        m->optional = optional;
        m->type = mt;
        g_ptr_array_add(t->members, m);
    }
    return t;
fail:
    dyn_type_free(t);
    return NULL;
}

static bool parse_features(json_t *fl, const char *owner, GPtrArray *out,
                           GError **errp)
{
    if (!json_is_array(fl)) {
        invalid(errp, "'features' of %s must be a list", owner);
        return false;
    }
    size_t i;
    json_t *f;
    json_array_foreach(fl, i, f) {
        const char *n = json_string_value(f);
        if (!n || !name_ok(n, false)) {
            invalid(errp, "feature name '%s' of %s should use lowercase and "
                    "'-'", n ? n : "(not a string)", owner);
            return false;
        }
        for (guint k = 0; k < out->len; k++) {
            if (!strcmp(g_ptr_array_index(out, k), n)) {
                invalid(errp, "duplicate feature '%s' of %s", n, owner);
                return false;
            }
        }
        g_ptr_array_add(out, g_strdup(n));
    }
    return true;
}

static DynCommand *parse_command(json_t *def, GError **errp);

static DynCommand *parse_definition(const char *text, GError **errp)
{
    if (!text) {
        invalid(errp, "the command definition is missing");
        return NULL;
    }
    json_error_t je;
    json_t *def = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!def) {
        invalid(errp, "the command definition is not valid JSON: %s "
                "(line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    DynCommand *c = parse_command(def, errp);
    json_decref(def);
    return c;
}

static DynCommand *parse_command(json_t *def, GError **errp)
{
    if (!json_is_object(def)) {
        invalid(errp, "a command definition must be a JSON object");
        return NULL;
    }
    json_t *name = json_object_get(def, "command");
    if (!name) {
        invalid(errp, "the definition lacks 'command' (the command's "
                "name)");
        return NULL;
    }
    if (!json_is_string(name)) {
        invalid(errp, "name of command must be a string");
        return NULL;
    }
    const char *n = json_string_value(name);
    const char *key;
    json_t *v;
    json_object_foreach(def, key, v) {
        if (strcmp(key, "command") && strcmp(key, "data") &&
            strcmp(key, "returns") && strcmp(key, "features") &&
            strcmp(key, "allow-oob")) {
            invalid(errp, "command '%s' has unknown key '%s'", n, key);
            return NULL;
        }
    }
    if (!name_ok(n, false)) {
        invalid(errp, "command name '%s' should use lowercase and '-'", n);
        return NULL;
    }
    g_autofree char *owner = g_strdup_printf("command '%s'", n);
    DynCommand *c = g_new0(DynCommand, 1);
    c->refcount = 1;
    c->name = g_strdup(n);
    c->features = g_ptr_array_new_with_free_func(g_free);
    json_t *data = json_object_get(def, "data");
    json_t *ret = json_object_get(def, "returns");
    json_t *oob = json_object_get(def, "allow-oob");
    json_t *fl = json_object_get(def, "features");
    if (data && !json_is_object(data)) {
        invalid(errp, "'data' of command '%s' must be an object of members",
                n);
        goto fail;
    }
    if (data && json_object_size(data) &&
        !(c->args = parse_members(data, owner, errp))) {
        goto fail;
    }
    if (ret) {
        g_autofree char *what = g_strdup_printf("'returns' of command '%s'",
                                                n);
        if (!(c->ret = parse_type(ret, what, false, errp))) {
            goto fail;
        }
    }
    if (oob && !json_is_true(oob)) {
        invalid(errp, "flag 'allow-oob' may only use true value");
        goto fail;
    }
    c->allow_oob = oob != NULL;
    if (fl && !parse_features(fl, owner, c->features, errp)) {
        goto fail;
    }
    return c;
fail:
    dyn_unref(c);
    return NULL;
}

/* ---- checking values ---- */

static bool check_value(const DynType *t, json_t *v, const char *path,
                        GError **errp);

static bool member_known(const void *obj, const char *key)
{
    const DynType *t = obj;
    for (guint i = 0; i < t->members->len; i++) {
        const DynMember *m = g_ptr_array_index(t->members, i);
        if (!strcmp(m->name, key)) {
            return true;
        }
    }
    return false;
}

static bool check_object(const DynType *t, json_t *v, const char *path,
                         GError **errp)
{
    if (!json_is_object(v)) {
        qapi_error_type(errp, path, "object");
        return false;
    }
    for (guint i = 0; i < t->members->len; i++) {
        const DynMember *m = g_ptr_array_index(t->members, i);
        json_t *mv = json_object_get(v, m->name);
        if (!mv) {
            if (!m->optional) {
                qapi_error_missing(errp, path, m->name);
                return false;
            }
            continue;
        }
        g_autofree char *p = qapi_member_path(path, m->name);
        if (!check_value(m->type, mv, p, errp)) {
            return false;
        }
    }
    return qapi_check_unexpected(v, path, member_known, t, errp);
}

static bool check_value(const DynType *t, json_t *v, const char *path,
                        GError **errp)
{
    switch (t->kind) {
    case DYN_BUILTIN:
        return t->builtin->check(v, path, errp);
    case DYN_ARRAY: {
        if (!json_is_array(v)) {
            qapi_error_type(errp, path, "array");
            return false;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            g_autofree char *p = qapi_index_path(path, i);
            if (!check_value(t->element, e, p, errp)) {
                return false;
            }
        }
        return true;
    }
    default:
        return check_object(t, v, path, errp);
    }
}

/* ---- dispatch ---- */

static void dyn_dispatch(void *opaque, json_t *args, json_t **ret,
                         GError **errp)
{
    DynCommand *c = opaque;
    bool ok = c->args ? check_object(c->args, args, NULL, errp)
                      : qapi_check_no_args(args, errp);
    if (!ok) {
        return;
    }
    c->refcount++;              /* the handler may remove the command */
    json_t *r = NULL;
    GError *err = NULL;
    ok = c->fn(c->opaque, args, &r, &err);
    if (!ok || err) {
        json_decref(r);
        if (!err) {
            error_setg(&err, "command '%s' failed", c->name);
        }
        error_propagate(errp, err);
        goto out;
    }
    if (!r && !c->ret) {
        r = json_object();
    }
    GError *bad = NULL;
    if (!r) {
        error_setg(&bad, "no value");
    } else if (c->ret) {
        check_value(c->ret, r, "return", &bad);
    } else if (!json_is_object(r) || json_object_size(r)) {
        error_setg(&bad, "a command without 'returns' replies {}");
    }
    if (bad) {
        /* The program broke its own schema: the client gets an error,
         * never a reply the schema does not describe. */
        error_setg(errp, "command '%s' returned a value its definition "
                   "does not allow: %s", c->name, bad->message);
        g_error_free(bad);
        json_decref(r);
        goto out;
    }
    *ret = r;
out:
    dyn_unref(c);
}

bool qmp_dyn_add_command(QmpCommandList *cmds, const char *definition,
                         QmpDynHandler *fn, void *opaque,
                         GDestroyNotify destroy, GError **errp)
{
    if (!fn) {
        invalid(errp, "a command needs a handler");
        return false;
    }
    DynCommand *c = parse_definition(definition, errp);
    if (!c) {
        return false;
    }
    if (monitor_is_engine_command(c->name)) {
        g_set_error(errp, QMP_DYN_ERROR, QMP_DYN_ERROR_EXISTS, "command "
                    "'%s' is one of the engine's commands", c->name);
        dyn_unref(c);
        return false;
    }
    if (qmp_command_exists(cmds, c->name)) {
        g_set_error(errp, QMP_DYN_ERROR, QMP_DYN_ERROR_EXISTS, "command "
                    "'%s' is already defined", c->name);
        dyn_unref(c);
        return false;
    }
    c->fn = fn;
    c->opaque = opaque;
    c->destroy = destroy;
    if (!dyn_commands) {
        dyn_commands = g_ptr_array_new();
    }
    g_ptr_array_add(dyn_commands, c);
    qmp_register_command_opaque(cmds, c->name, dyn_dispatch, c,
                                c->allow_oob ? QCO_ALLOW_OOB
                                             : QCO_NO_OPTIONS);
    return true;
}

bool qmp_dyn_remove_command(QmpCommandList *cmds, const char *name)
{
    for (guint i = 0; dyn_commands && i < dyn_commands->len; i++) {
        DynCommand *c = g_ptr_array_index(dyn_commands, i);
        if (!strcmp(c->name, name)) {
            g_ptr_array_remove_index(dyn_commands, i);
            qmp_unregister_command(cmds, name);
            dyn_unref(c);
            return true;
        }
    }
    return false;
}

void qmp_dyn_remove_all(QmpCommandList *cmds)
{
    while (dyn_commands && dyn_commands->len) {
        DynCommand *c = g_ptr_array_index(dyn_commands, 0);
        qmp_dyn_remove_command(cmds, c->name);
    }
    if (dyn_commands) {
        g_ptr_array_free(dyn_commands, TRUE);
        dyn_commands = NULL;
    }
}

/* ---- introspection ---- */

typedef struct Intro {
    json_t *types;              /* new type entries */
    GHashTable *names;          /* every entry name, old and new */
    guint64 next;               /* the next masked name to try */
    char *empty;                /* the empty object, once added */
} Intro;

static char *intro_new_name(Intro *in)
{
    for (;;) {
        char *n = g_strdup_printf("%" G_GUINT64_FORMAT, in->next++);
        if (!g_hash_table_contains(in->names, n)) {
            g_hash_table_add(in->names, g_strdup(n));
            return n;
        }
        g_free(n);
    }
}

static void intro_add(Intro *in, const char *name, json_t *entry)
{
    g_hash_table_add(in->names, g_strdup(name));
    json_array_append_new(in->types, entry);
}

/* The name of t in the reply, adding its entry (and its parts') if no
 * entry describes it yet.  Objects are never shared: one entry each. */
static char *intro_type(Intro *in, const DynType *t)
{
    if (!t || (t->kind == DYN_OBJECT && t->members->len == 0)) {
        if (!in->empty) {
            in->empty = intro_new_name(in);
            json_array_append_new(in->types, json_pack(
                "{s:s,s:s,s:[]}", "name", in->empty, "meta-type", "object",
                "members"));
        }
        return g_strdup(in->empty);
    }
    if (t->kind == DYN_BUILTIN) {
        const char *n = t->builtin->intro;
        if (!g_hash_table_contains(in->names, n)) {
            intro_add(in, n, json_pack("{s:s,s:s,s:s}", "name", n,
                                       "meta-type", "builtin", "json-type",
                                       t->builtin->json_type));
        }
        return g_strdup(n);
    }
    if (t->kind == DYN_ARRAY) {
        g_autofree char *elem = intro_type(in, t->element);
        char *n = g_strdup_printf("[%s]", elem);
        if (!g_hash_table_contains(in->names, n)) {
            intro_add(in, n, json_pack("{s:s,s:s,s:s}", "name", n,
                                       "meta-type", "array", "element-type",
                                       elem));
        }
        return n;
    }
    char *n = intro_new_name(in);
    json_t *members = json_array();
    for (guint i = 0; i < t->members->len; i++) {
        const DynMember *m = g_ptr_array_index(t->members, i);
        g_autofree char *mt = intro_type(in, m->type);
        json_t *e = json_pack("{s:s,s:s}", "name", m->name, "type", mt);
        if (m->optional) {
            json_object_set_new(e, "default", json_null());
        }
        json_array_append_new(members, e);
    }
    json_array_append_new(in->types, json_pack("{s:s,s:s,s:o}", "name", n,
                                                "meta-type", "object",
                                                "members", members));
    return n;
}

void qmp_dyn_introspect(json_t *schema)
{
    if (!dyn_commands || !dyn_commands->len || !json_is_array(schema)) {
        return;
    }
    Intro in = {
        .types = json_array(),
        .names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       NULL),
    };
    /* Commands and events come first in the generated data, types after;
     * masked type names are numbers, new ones follow the largest. */
    size_t pos = 0, i;
    json_t *e;
    json_array_foreach(schema, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));
        const char *mt = json_string_value(json_object_get(e, "meta-type"));
        if (!n || !mt) {
            continue;
        }
        g_hash_table_add(in.names, g_strdup(n));
        if (!strcmp(mt, "command") || !strcmp(mt, "event")) {
            pos = i + 1;
        } else if (n[0] && strspn(n, "0123456789") == strlen(n) &&
                   strlen(n) < 19) {
            in.next = MAX(in.next, g_ascii_strtoull(n, NULL, 10) + 1);
        }
    }
    for (guint k = 0; k < dyn_commands->len; k++) {
        DynCommand *c = g_ptr_array_index(dyn_commands, k);
        g_autofree char *at = intro_type(&in, c->args);
        g_autofree char *rt = intro_type(&in, c->ret);
        json_t *ce = json_pack("{s:s,s:s,s:s,s:s}", "name", c->name,
                               "meta-type", "command", "arg-type", at,
                               "ret-type", rt);
        if (c->allow_oob) {
            json_object_set_new(ce, "allow-oob", json_true());
        }
        if (c->features->len) {
            json_t *fl = json_array();
            for (guint f = 0; f < c->features->len; f++) {
                json_array_append_new(fl, json_string(
                    g_ptr_array_index(c->features, f)));
            }
            json_object_set_new(ce, "features", fl);
        }
        json_array_insert_new(schema, pos++, ce);
    }
    json_array_extend(schema, in.types);
    json_decref(in.types);
    g_hash_table_destroy(in.names);
    g_free(in.empty);
}

/* ---- events ---- */

bool qmp_dyn_check_event(const char *name, json_t *data, GError **errp)
{
    if (!name || !name_ok(name, true)) {
        invalid(errp, "event name '%s' should be ALL_CAPS",
                name ? name : "");
        return false;
    }
    if (monitor_is_engine_event(name)) {
        g_set_error(errp, QMP_DYN_ERROR, QMP_DYN_ERROR_EXISTS, "event '%s' "
                    "is one of the engine's events", name);
        return false;
    }
    if (data && !json_is_object(data)) {
        invalid(errp, "the data of event '%s' must be a JSON object", name);
        return false;
    }
    return true;
}
