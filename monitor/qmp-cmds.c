/*
 * qmp-cmds.c - the engine's command set (monitor_commands()) and the
 * implementations of its control and block commands: capabilities,
 * version, query-commands, query-qmp-schema, the node queries,
 * blockdev-add/-del, block_resize.  Complex replies are built as JSON
 * with QEMU's member names and passed through the generated visitor,
 * which checks them against the schema on the way.
 *
 * Nothing here knows a machine: query-block asks the program's
 * QmpDriveInfoFunc what device uses a backend, and query-qmp-schema
 * starts from the introspection text the program set (the engine's own
 * by default) and adds the commands defined at run time.
 */
#include "block/block-backend.h"
#include "block/job-filter.h"
#include "block/block_int.h"
#include "block/blockdev.h"
#include "block/dirty-bitmap.h"
#include "block/snapshot.h"
#include "monitor/monitor.h"
#include "monitor/qmp-dynamic.h"
#include "qapi/engine-qapi-commands.h"
#include "qapi/engine-qapi-introspect.h"
#include "qapi/engine-qapi-visit.h"
#include "util/error.h"
#include "util/version.h"
#include <errno.h>
#include <string.h>

static QmpCommandList *commands;
static const char *introspection;
static QmpDriveInfoFunc *drive_info_fn;

static void marshal_query_qmp_schema(json_t *args, json_t **ret,
                                     GError **errp);

QmpCommandList *monitor_commands(void)
{
    if (!commands) {
        commands = qmp_command_list_new();
        engine_qmp_init_marshal(commands);
        /* 'gen': false in the schema: the reply is assembled here. */
        qmp_register_command(commands, "query-qmp-schema",
                             marshal_query_qmp_schema, QCO_ALLOW_PRECONFIG);
    }
    return commands;
}

/* The names of the engine schema's commands and events, from its
 * introspection data (parsed once). */
static GHashTable *engine_names(const char *meta)
{
    static GHashTable *cmds, *events;
    if (!cmds) {
        cmds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        events = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       NULL);
        json_t *info = json_loads(engine_qapi_introspect_json(), 0, NULL);
        size_t i;
        json_t *e;
        json_array_foreach(info, i, e) {
            const char *mt = json_string_value(json_object_get(e,
                                                               "meta-type"));
            const char *name = json_string_value(json_object_get(e, "name"));
            if (mt && name && !strcmp(mt, "command")) {
                g_hash_table_add(cmds, g_strdup(name));
            } else if (mt && name && !strcmp(mt, "event")) {
                g_hash_table_add(events, g_strdup(name));
            }
        }
        json_decref(info);
    }
    return !strcmp(meta, "command") ? cmds : events;
}

bool monitor_is_engine_command(const char *name)
{
    return g_hash_table_contains(engine_names("command"), name);
}

bool monitor_is_engine_event(const char *name)
{
    return g_hash_table_contains(engine_names("event"), name);
}

void monitor_set_introspection(const char *json)
{
    introspection = json;
}

const char *monitor_introspection(void)
{
    return introspection ? introspection : engine_qapi_introspect_json();
}

void monitor_set_drive_info(QmpDriveInfoFunc *fn)
{
    drive_info_fn = fn;
}

/* ---- control ---- */

void qmp_qmp_capabilities(bool has_enable, QMPCapabilityList *enable,
                          GError **errp)
{
    /* Negotiation state lives in the server; nothing to enable beyond
     * what every client gets. */
}

VersionInfo *qmp_query_version(GError **errp)
{
    json_t *j = json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "micro", 0,
                          "minor", 2, "major", 7, "package",
                          "xblk " XBLK_VERSION_STRING);
    VersionInfo *v = NULL;
    visit_VersionInfo_from_json(j, "return", &v, errp);
    json_decref(j);
    return v;
}

static void add_command_info(const char *name, void *opaque)
{
    json_array_append_new(opaque, json_pack("{s:s}", "name", name));
}

CommandInfoList *qmp_query_commands(GError **errp)
{
    json_t *arr = json_array();
    qmp_command_foreach(monitor_commands(), add_command_info, arr);
    CommandInfoList *l = NULL;
    visit_CommandInfoList_from_json(arr, "return", &l, errp);
    json_decref(arr);
    return l;
}

/* query-qmp-schema: the program's introspection text (generated) and
 * the entries of the commands defined at run time. */
static void marshal_query_qmp_schema(json_t *args, json_t **ret,
                                     GError **errp)
{
    if (json_object_size(args)) {
        error_setg(errp, "Parameter '%s' is unexpected",
                   json_object_iter_key(json_object_iter(args)));
        return;
    }
    json_error_t je;
    *ret = json_loads(monitor_introspection(), 0, &je);
    if (!*ret) {
        error_setg(errp, "introspection data is damaged: %s", je.text);
        return;
    }
    qmp_dyn_introspect(*ret);
}

/* ---- block ---- */

static json_t *snapshots_json(BlockDriverState *bs)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    if (n <= 0) {
        return NULL;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}",
                              "id", list[i].id_str, "name", list[i].name,
                              "vm-state-size",
                              (json_int_t)list[i].vm_state_size,
                              "date-sec", (json_int_t)list[i].date_sec,
                              "date-nsec", (json_int_t)list[i].date_nsec,
                              "vm-clock-sec",
                              (json_int_t)(list[i].vm_clock_nsec /
                                           1000000000ULL),
                              "vm-clock-nsec",
                              (json_int_t)(list[i].vm_clock_nsec %
                                           1000000000ULL));
        if (list[i].icount != BDRV_SNAPSHOT_NO_ICOUNT) {
            json_object_set_new(o, "icount",
                                json_integer((json_int_t)list[i].icount));
        }
        json_array_append_new(arr, o);
    }
    bdrv_snapshot_list_free(list, n);
    return arr;
}

/* ImageInfo of bs, and with `chain` its backing images too. */
static json_t *image_info_json(BlockDriverState *bs, bool chain)
{
    json_t *o = json_object();
    json_object_set_new(o, "filename", json_string(bs->filename));
    json_object_set_new(o, "format", json_string(bdrv_get_format_name(bs)));
    json_object_set_new(o, "dirty-flag", json_false());
    int64_t actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        json_object_set_new(o, "actual-size", json_integer(actual));
    }
    json_object_set_new(o, "virtual-size", json_integer(bdrv_getlength(bs)));
    int cs = bdrv_get_cluster_size(bs);
    if (cs > 0) {
        json_object_set_new(o, "cluster-size", json_integer(cs));
    }
    if (bs->backing_file) {
        g_autofree char *full = bdrv_resolve_backing_path(bs, bs->backing_file);
        json_object_set_new(o, "backing-filename",
                            json_string(bs->backing_file));
        json_object_set_new(o, "full-backing-filename", json_string(full));
        if (bs->backing_format) {
            json_object_set_new(o, "backing-filename-format",
                                json_string(bs->backing_format));
        }
    }
    json_t *sn = snapshots_json(bs);
    if (sn) {
        json_object_set_new(o, "snapshots", sn);
    }
    json_t *spec = bdrv_get_specific_info(bs);
    if (spec) {
        json_object_set_new(o, "format-specific", spec);
    }
    if (chain && bdrv_backing_bs(bs)) {
        json_object_set_new(o, "backing-image",
                            image_info_json(bdrv_backing_bs(bs), true));
    }
    return o;
}

/* writeback: the cache mode the guest sees (true for bare nodes). */
static json_t *device_info_json(BlockDriverState *bs, bool chain,
                                bool writeback)
{
    int depth = 0;
    for (BlockDriverState *b = bdrv_backing_bs(bs); b; b = bdrv_backing_bs(b)) {
        depth++;
    }
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(bs->filename));
    json_object_set_new(o, "node-name", json_string(bs->node_name));
    json_object_set_new(o, "ro", json_boolean(bs->read_only));
    json_object_set_new(o, "drv", json_string(bdrv_get_format_name(bs)));
    /* Like QEMU: the node's backing_file is the filename of the backing
     * node actually attached (absent without one), not the name in the
     * image header; after blockdev-snapshot the overlay's header names no
     * backing file, yet the node has one.  The header's name stays in
     * image/backing-filename. */
    if (bdrv_backing_bs(bs)) {
        json_object_set_new(o, "backing_file",
                            json_string(bdrv_backing_bs(bs)->filename));
    }
    json_object_set_new(o, "backing_file_depth", json_integer(depth));
    json_object_set_new(o, "encrypted", json_false());
    json_object_set_new(o, "detect_zeroes", json_string("off"));
    static const char *zero_keys[] = { "bps", "bps_rd", "bps_wr", "iops",
                                       "iops_rd", "iops_wr" };
    for (size_t i = 0; i < G_N_ELEMENTS(zero_keys); i++) {
        json_object_set_new(o, zero_keys[i], json_integer(0));
    }
    json_object_set_new(o, "image", image_info_json(bs, chain));
    json_object_set_new(o, "cache", json_pack("{s:b,s:b,s:b}", "writeback",
                                              writeback,
                                              "direct", !!(bs->open_flags &
                                                           BDRV_O_NOCACHE),
                                              "no-flush", !!(bs->open_flags &
                                                             BDRV_O_NO_FLUSH)));
    json_object_set_new(o, "write_threshold", json_integer(0));
    json_t *bitmaps = bdrv_dirty_bitmap_query(bs);
    if (bitmaps) {
        json_object_set_new(o, "dirty-bitmaps", bitmaps);
    }
    return o;
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat,
                                                 GError **errp)
{
    json_t *arr = json_array();
    /* Every node has a name, generated ones ("#block123") included. */
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        json_array_append_new(arr, device_info_json(bs, !(has_flat && flat),
                                                    true));
    }
    BlockDeviceInfoList *l = NULL;
    visit_BlockDeviceInfoList_from_json(arr, "return", &l, errp);
    json_decref(arr);
    return l;
}

/* One BlockInfo: a backend, and the drive using it (device path, tray,
 * lock, I/O status) as the program describes it, as QEMU shows an IDE
 * drive. */
static json_t *block_info_json(BlockBackend *blk)
{
    QmpDriveInfo info = { 0 };
    bool drive = drive_info_fn && drive_info_fn(blk, &info);
    json_t *o = json_pack("{s:s,s:s,s:b,s:b}", "device", blk_name(blk),
                          "type", "unknown",
                          "removable", drive && info.removable,
                          "locked", drive && info.locked);
    if (drive) {
        json_object_set_new(o, "qdev",
                            json_string(info.qdev ? info.qdev : ""));
        if (info.removable) {
            json_object_set_new(o, "tray_open", json_boolean(info.tray_open));
        }
        json_object_set_new(o, "io-status",
                            json_string(info.io_status ? info.io_status
                                                       : "ok"));
    }
    if (blk_bs(blk)) {
        bool writeback = blk_enable_write_cache(blk) &&
                         (!drive || info.write_cache);
        /* QEMU shows what is below an implicit commit/mirror filter. */
        json_object_set_new(o, "inserted",
                            device_info_json(bdrv_skip_implicit_filters(
                                                 blk_bs(blk)),
                                             true, writeback));
    }
    return o;
}

BlockInfoList *qmp_query_block(GError **errp)
{
    json_t *arr = json_array();
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        json_array_append_new(arr, block_info_json(blk));
    }
    BlockInfoList *l = NULL;
    visit_BlockInfoList_from_json(arr, "return", &l, errp);
    json_decref(arr);
    return l;
}

void qmp_blockdev_add(BlockdevOptions *options, GError **errp)
{
    json_t *j = visit_BlockdevOptions_to_json(options);
    BlockOpts *o = bopts_new();
    if (!bopts_from_json(o, NULL, j, errp)) {
        bopts_free(o);
    } else {
        blockdev_add(o, errp);
    }
    json_decref(j);
}

void qmp_blockdev_del(const char *node_name, GError **errp)
{
    blockdev_del(node_name, errp);
}

void qmp_block_resize(bool has_device, const char *device,
                      bool has_node_name, const char *node_name,
                      int64_t size, GError **errp)
{
    BlockDriverState *bs = NULL;
    if (has_device && device) {
        BlockBackend *blk = blk_by_name(device);
        bs = blk ? blk_bs(blk) : NULL;
        if (blk && !bs) {       /* an empty drive, as QEMU says */
            error_setg(errp, "Device '%s' has no medium", device);
            return;
        }
    }
    if (!bs && has_node_name && node_name) {
        bs = bdrv_find_node(node_name);
    }
    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   has_device && device ? device : "",
                   has_node_name && node_name ? node_name : "");
        return;
    }
    if (size < 0) {
        error_setg(errp, "Parameter 'size' expects a >0 size");
        return;
    }
    if (bs->read_only) {
        error_setg(errp, "Node '%s' is read only", bs->node_name);
        return;
    }
    bdrv_drained_begin(bs);
    bdrv_truncate(bs, size, false, PREALLOC_MODE_OFF, errp);
    bdrv_drained_end(bs);
}
