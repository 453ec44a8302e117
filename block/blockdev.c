/*
 * blockdev.c - see blockdev.h.
 *
 * Invariant: every node in monitor_nodes was opened by blockdev_add and
 * holds exactly one reference owned by the monitor.
 */
#include "block/blockdev.h"
#include "block/block_int.h"
#include "block/blockjob.h"
#include <errno.h>
#include <string.h>

static GList *monitor_nodes;

bool bopts_from_json(BlockOpts *o, const char *prefix, json_t *j,
                     GError **errp)
{
    g_autofree char *p = prefix ? g_strdup(prefix) : NULL;
    if (json_is_object(j)) {
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v) {
            g_autofree char *k = p ? g_strdup_printf("%s.%s", p, key)
                                   : g_strdup(key);
            if (!bopts_from_json(o, k, v, errp)) {
                return false;
            }
        }
        return true;
    }
    if (!p) {
        error_setg(errp, "Block device options must be an object");
        return false;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            g_autofree char *k = g_strdup_printf("%s.%zu", p, i);
            if (!bopts_from_json(o, k, v, errp)) {
                return false;
            }
        }
        return true;
    }
    g_autofree char *val = NULL;
    if (json_is_string(j)) {
        val = g_strdup(json_string_value(j));
    } else if (json_is_boolean(j)) {
        val = g_strdup(json_is_true(j) ? "on" : "off");
    } else if (json_is_integer(j)) {
        val = g_strdup_printf("%" JSON_INTEGER_FORMAT, json_integer_value(j));
    } else if (json_is_real(j)) {
        val = g_strdup_printf("%.17g", json_real_value(j));
    } else {
        val = g_strdup("");       /* null */
    }
    bopts_set(o, p, val);
    return true;
}

BlockOpts *blockdev_parse_arg(const char *arg, GError **errp)
{
    BlockOpts *o = bopts_new();
    if (arg[0] == '{') {
        json_error_t je;
        json_t *j = json_loads(arg, 0, &je);
        if (!j) {
            error_setg(errp, "JSON parse error in -blockdev: %s", je.text);
            bopts_free(o);
            return NULL;
        }
        bool ok = bopts_from_json(o, NULL, j, errp);
        json_decref(j);
        if (!ok) {
            bopts_free(o);
            return NULL;
        }
        return o;
    }
    if (!bopts_parse(o, arg, errp)) {
        bopts_free(o);
        return NULL;
    }
    return o;
}

BlockDriverState *blockdev_add(BlockOpts *opts, GError **errp)
{
    if (!bopts_get(opts, "node-name")) {
        error_setg(errp, "'node-name' must be specified for the root node");
        bopts_free(opts);
        return NULL;
    }
    if (!bopts_get(opts, "driver")) {
        error_setg(errp, "Parameter 'driver' is missing");
        bopts_free(opts);
        return NULL;
    }
    /* Read-write unless asked otherwise, as QEMU's blockdev-add. */
    BlockDriverState *bs = bdrv_open(NULL, opts, BDRV_O_RDWR, errp);
    if (!bs) {
        return NULL;
    }
    monitor_nodes = g_list_append(monitor_nodes, bs);
    return bs;
}

bool blockdev_is_monitor_owned(BlockDriverState *bs)
{
    return g_list_find(monitor_nodes, bs) != NULL;
}

bool blockdev_del(const char *node_name, GError **errp)
{
    BlockDriverState *bs = bdrv_find_node(node_name);
    if (!bs) {
        error_setg(errp, "Failed to find node with node-name='%s'",
                   node_name);
        return false;
    }
    if (!blockdev_is_monitor_owned(bs)) {
        error_setg(errp, "Node %s is not owned by the monitor", node_name);
        return false;
    }
    if (block_job_node_busy(bs, errp)) {
        return false;
    }
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        if (!strcmp(c->role, "backing")) {
            error_setg(errp, "Node '%s' is busy: node is used as backing hd "
                       "of '%s'", node_name, c->parent->node_name);
            return false;
        }
    }
    if (bs->parents || bs->backends || bs->refcnt > 1) {
        error_setg(errp, "Node %s is in use", node_name);
        return false;
    }
    monitor_nodes = g_list_remove(monitor_nodes, bs);
    bdrv_flush(bs);
    bdrv_unref(bs);
    return true;
}

void blockdev_close_all(void)
{
    /* Newest first: later nodes may sit on top of earlier ones. */
    GList *rev = g_list_reverse(g_list_copy(monitor_nodes));
    for (GList *l = rev; l; l = l->next) {
        bdrv_flush(l->data);
    }
    for (GList *l = rev; l; l = l->next) {
        monitor_nodes = g_list_remove(monitor_nodes, l->data);
        bdrv_unref(l->data);
    }
    g_list_free(rev);
}
