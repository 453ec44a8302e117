/*
 * qmp-cmds.c - implementations of the QMP commands of the control,
 * run-state and block areas of the schema.  Complex replies are built as
 * JSON with QEMU's member names and passed through the generated visitor,
 * which checks them against the schema on the way.
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/blockdev.h"
#include "block/dirty-bitmap.h"
#include "block/snapshot.h"
#include "hw/runstate.h"
#include "hw/xbox/machine-media.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-introspect.h"
#include "qapi/qapi-visit.h"
#include "util/error.h"
#include "util/version.h"
#include <errno.h>
#include <string.h>

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

/* query-qmp-schema returns the generated introspection text as is. */
static void marshal_query_qmp_schema(json_t *args, json_t **ret,
                                     GError **errp)
{
    if (json_object_size(args)) {
        error_setg(errp, "Parameter '%s' is unexpected",
                   json_object_iter_key(json_object_iter(args)));
        return;
    }
    json_error_t je;
    *ret = json_loads(qapi_introspect_json(), 0, &je);
    if (!*ret) {
        error_setg(errp, "introspection data is damaged: %s", je.text);
    }
}

void qmp_cmds_register_extra(QmpCommandList *cmds)
{
    qmp_register_command(cmds, "query-qmp-schema", marshal_query_qmp_schema,
                         QCO_ALLOW_PRECONFIG);
}

void qmp_quit(GError **errp)
{
    /* QEMU announces the shutdown before it answers the command. */
    qapi_event_send_shutdown(false, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
    runstate_request_shutdown(SHUTDOWN_HOST_QMP_QUIT);
}

/* ---- run state ---- */

StatusInfo *qmp_query_status(GError **errp)
{
    json_t *j = json_pack("{s:b,s:b,s:s}", "running", runstate_is_running(),
                          "singlestep", 0, "status",
                          runstate_name(runstate_get()));
    StatusInfo *s = NULL;
    visit_StatusInfo_from_json(j, "return", &s, errp);
    json_decref(j);
    return s;
}

void qmp_stop(GError **errp)
{
    /* As QEMU: only a running machine stops; prelaunch, io-error and the
     * other stopped states stay what they are. */
    if (runstate_get() == XBLK_RUN_STATE_RUNNING) {
        runstate_set(XBLK_RUN_STATE_PAUSED);
        qapi_event_send_stop();
    }
}

void qmp_cont(GError **errp)
{
    XblkRunState st = runstate_get();
    if (st == XBLK_RUN_STATE_SHUTDOWN) {
        error_setg(errp, "Resetting the Virtual Machine is required");
        return;
    }
    if (st != XBLK_RUN_STATE_RUNNING) {
        runstate_set(XBLK_RUN_STATE_RUNNING);
        qapi_event_send_resume();
    }
}

/* The machine commands (xblk-system -machine xbox, hw/xbox/machine.h). */
static XboxMachine *need_machine(const char *cmd, GError **errp)
{
    XboxMachine *m = machine_current();
    if (!m) {
        error_setg(errp, "%s needs a machine (-machine xbox)", cmd);
    }
    return m;
}

void qmp_system_reset(GError **errp)
{
    XboxMachine *m = need_machine("system_reset", errp);
    if (m) {
        machine_system_reset(m);
    }
}

XFrameInfo *qmp_x_query_frame(GError **errp)
{
    XboxMachine *m = need_machine("x-query-frame", errp);
    if (!m) {
        return NULL;
    }
    XFrameInfo *info = g_new0(XFrameInfo, 1);
    info->frame = machine_frame(m);
    if (!runstate_is_running() && machine_is_parked(m)) {
        info->hash = machine_frame_hash(m, NULL);
        info->has_hash = info->hash != NULL;
    }
    return info;
}

XFrameTimes *qmp_x_query_frame_times(GError **errp)
{
    XboxMachine *m = need_machine("x-query-frame-times", errp);
    if (!m) {
        return NULL;
    }
    MachineFrameTimes ft;
    machine_frame_times(m, &ft);
    XFrameTimes *t = g_new0(XFrameTimes, 1);
    t->frames = ft.frames;
    t->max_us = ft.max_us;
    t->over_budget = ft.over_budget;
    return t;
}

void qmp_x_frame_stop(int64_t frame, GError **errp)
{
    XboxMachine *m = need_machine("x-frame-stop", errp);
    if (!m) {
        return;
    }
    if (frame < 0) {
        error_setg(errp, "Parameter 'frame' expects a frame number");
        return;
    }
    machine_frame_stop_at(m, frame, errp);
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

/* One BlockInfo: a backend, and with a machine the drive using it
 * (device path, tray, lock, I/O status), as QEMU shows an IDE drive. */
static json_t *block_info_json(XboxMachine *m, BlockBackend *blk)
{
    MachineDriveInfo info;
    int index = m ? machine_drive_of_blk(m, blk) : -1;
    bool drive = index >= 0 && machine_drive_info(m, index, &info);
    json_t *o = json_pack("{s:s,s:s,s:b,s:b}", "device", blk_name(blk),
                          "type", "unknown",
                          "removable", drive && info.removable,
                          "locked", drive && info.locked);
    if (drive) {
        json_object_set_new(o, "qdev", json_string(info.qdev));
        if (info.removable) {
            json_object_set_new(o, "tray_open", json_boolean(info.tray_open));
        }
        const char *st = machine_io_status_name(info.io_status);
        json_object_set_new(o, "io-status", json_string(st));
    }
    if (blk_bs(blk)) {
        bool writeback = blk_enable_write_cache(blk) &&
                         (!drive || info.write_cache);
        json_object_set_new(o, "inserted",
                            device_info_json(blk_bs(blk), true, writeback));
    }
    return o;
}

BlockInfoList *qmp_query_block(GError **errp)
{
    json_t *arr = json_array();
    XboxMachine *m = machine_current();
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        json_array_append_new(arr, block_info_json(m, blk));
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

char *qmp_human_monitor_command(const char *command_line,
                                bool has_cpu_index, int64_t cpu_index,
                                GError **errp)
{
    if (has_cpu_index && cpu_index != 0) {
        error_setg(errp, "Parameter 'cpu-index' expects a CPU index");
        return NULL;
    }
    return hmp_execute(command_line, errp);
}
