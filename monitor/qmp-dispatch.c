/*
 * qmp-dispatch.c - the command table and the request checks QEMU's QMP
 * makes before running a command, with QEMU's error texts.
 *
 * Out of band: a request with "exec-oob" (from a client that enabled the
 * 'oob' capability) names a command registered with QCO_ALLOW_OOB; the
 * server runs it as soon as it is read, even while an in-band command
 * is still running (qmp-server.c).
 *
 * A command may be unregistered while it runs (a run-time command whose
 * handler removes it): dispatch copies what it needs of the entry before
 * the call and never touches the entry afterwards.
 */
#include "monitor/monitor.h"
#include "util/error.h"
#include <string.h>

typedef struct QmpCommand {
    QmpCommandFunc *fn;             /* or: */
    QmpCommandFuncOpaque *fn_opaque;
    void *opaque;
    QmpCommandOptions opts;
} QmpCommand;

struct QmpCommandList {
    GHashTable *table;     /* name -> QmpCommand* */
};

QmpCommandList *qmp_command_list_new(void)
{
    QmpCommandList *l = g_new0(QmpCommandList, 1);
    l->table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return l;
}

void qmp_register_command(QmpCommandList *cmds, const char *name,
                          QmpCommandFunc *fn, QmpCommandOptions opts)
{
    QmpCommand *c = g_new0(QmpCommand, 1);
    c->fn = fn;
    c->opts = opts;
    g_hash_table_replace(cmds->table, g_strdup(name), c);
}

void qmp_register_command_opaque(QmpCommandList *cmds, const char *name,
                                 QmpCommandFuncOpaque *fn, void *opaque,
                                 QmpCommandOptions opts)
{
    QmpCommand *c = g_new0(QmpCommand, 1);
    c->fn_opaque = fn;
    c->opaque = opaque;
    c->opts = opts;
    g_hash_table_replace(cmds->table, g_strdup(name), c);
}

bool qmp_unregister_command(QmpCommandList *cmds, const char *name)
{
    return g_hash_table_remove(cmds->table, name);
}

bool qmp_command_exists(QmpCommandList *cmds, const char *name)
{
    return g_hash_table_contains(cmds->table, name);
}

void qmp_command_foreach(QmpCommandList *cmds,
                         void (*fn)(const char *name, void *opaque),
                         void *opaque)
{
    GList *keys = g_list_sort(g_hash_table_get_keys(cmds->table),
                              (GCompareFunc)strcmp);
    for (GList *l = keys; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_list_free(keys);
}

static json_t *error_reply(ErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
static json_t *error_reply(ErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    json_t *e = json_object();
    json_object_set_new(e, "class", json_string(error_class_name(cls)));
    json_object_set_new(e, "desc", json_string(msg));
    json_t *r = json_object();
    json_object_set_new(r, "error", e);
    return r;
}

/* Checks the request's shape as QEMU does, member by member, with its
 * texts; returns an error reply or NULL.  "exec-oob" is a member only
 * for a client that negotiated the 'oob' capability. */
static json_t *check_request(json_t *req, bool allow_oob, const char **name,
                             json_t **args, bool *oob)
{
    if (!json_is_object(req)) {
        return error_reply(ERROR_CLASS_GENERIC_ERROR,
                           "QMP input must be a JSON object");
    }
    const char *key, *exec_key = NULL;
    json_t *v;
    json_object_foreach(req, key, v) {
        if (!strcmp(key, "execute") ||
            (allow_oob && !strcmp(key, "exec-oob"))) {
            if (!json_is_string(v)) {
                return error_reply(ERROR_CLASS_GENERIC_ERROR, "QMP input "
                                   "member '%s' must be a string", key);
            }
            if (exec_key) {
                return error_reply(ERROR_CLASS_GENERIC_ERROR, "QMP input "
                                   "member '%s' clashes with '%s'", key,
                                   exec_key);
            }
            exec_key = key;
        } else if (!strcmp(key, "arguments")) {
            if (!json_is_object(v)) {
                return error_reply(ERROR_CLASS_GENERIC_ERROR, "QMP input "
                                   "member 'arguments' must be an object");
            }
        } else if (strcmp(key, "id")) {
            return error_reply(ERROR_CLASS_GENERIC_ERROR,
                               "QMP input member '%s' is unexpected", key);
        }
    }
    if (!exec_key) {
        return error_reply(ERROR_CLASS_GENERIC_ERROR,
                           "QMP input lacks member 'execute'");
    }
    *oob = strcmp(exec_key, "execute") != 0;
    *name = json_string_value(json_object_get(req, exec_key));
    *args = json_object_get(req, "arguments");
    return NULL;
}

json_t *qmp_dispatch(QmpCommandList *cmds, json_t *req, bool negotiated,
                     bool *negotiate)
{
    return qmp_dispatch_oob(cmds, req, negotiated, true, negotiate);
}

json_t *qmp_dispatch_oob(QmpCommandList *cmds, json_t *req, bool negotiated,
                         bool oob_enabled, bool *negotiate)
{
    const char *name = NULL;
    json_t *args = NULL;
    bool oob = false;
    *negotiate = false;
    /* Before negotiation no client has 'oob' (QEMU's order). */
    json_t *err = check_request(req, negotiated && oob_enabled, &name, &args,
                                &oob);
    if (err) {
        return err;
    }
    bool is_caps = !strcmp(name, "qmp_capabilities");
    if (!negotiated && !is_caps) {
        return error_reply(ERROR_CLASS_COMMAND_NOT_FOUND, "Expecting "
                           "capabilities negotiation with "
                           "'qmp_capabilities'");
    }
    if (negotiated && is_caps) {
        return error_reply(ERROR_CLASS_COMMAND_NOT_FOUND, "Capabilities "
                           "negotiation is already complete, command "
                           "ignored");
    }
    QmpCommand *c = g_hash_table_lookup(cmds->table, name);
    if (!c) {
        return error_reply(ERROR_CLASS_COMMAND_NOT_FOUND,
                           "The command %s has not been found", name);
    }
    if (oob && !(c->opts & QCO_ALLOW_OOB)) {
        return error_reply(ERROR_CLASS_GENERIC_ERROR, "The command %s does "
                           "not support OOB", name);
    }
    json_t *ret = NULL;
    GError *e = NULL;
    json_t *a = args ? json_incref(args) : json_object();
    QmpCommandOptions opts = c->opts;
    if (c->fn_opaque) {
        c->fn_opaque(c->opaque, a, &ret, &e);
    } else {
        c->fn(a, &ret, &e);
    }
    c = NULL;                   /* the command may be gone now */
    json_decref(a);
    if (e) {
        json_decref(ret);
        ErrorClass cls = e->domain == XBLK_ERROR ? (ErrorClass)e->code
                                                 : ERROR_CLASS_GENERIC_ERROR;
        json_t *r = error_reply(cls, "%s", e->message);
        g_error_free(e);
        return r;
    }
    if (is_caps) {
        *negotiate = true;
    }
    if (opts & QCO_NO_SUCCESS_RESP) {
        json_decref(ret);
        return NULL;
    }
    json_t *r = json_object();
    json_object_set_new(r, "return", ret ? ret : json_object());
    return r;
}
