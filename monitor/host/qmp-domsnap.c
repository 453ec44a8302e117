/*
 * qmp-domsnap.c - libvirt-style domain snapshots of the console machine
 * on the monitor: the x-xblk-snapshot-* commands (snapshot/domain-json.h,
 * registered as run-time commands with their QAPI definitions, so
 * query-commands and query-qmp-schema list them) and the machine's side
 * of snapshot/domain.h - its run state (QMP stop / cont / system_reset),
 * its description in libvirt's domain vocabulary, and the engine's busy
 * flag around each save-state operation.
 *
 * One domain per process, attached once the machine exists and before
 * its vCPU starts (qmp_domsnap_attach): it repairs what a kill left and
 * writes the catalog's domain.xml.  Main loop only.
 */
#include "monitor/host/qmp-domsnap.h"
#include "api/internal.h"
#include "block/block-backend.h"
#include "hw/runstate.h"
#include "hw/xbox/machine-media.h"
#include "monitor/monitor.h"
#include "monitor/qmp-dynamic.h"
#include "qapi/qapi-commands.h"
#include "snapshot/domain-json.h"
#include "util/error.h"

static struct {
    DsnapDomain *domain;
    XboxMachine *machine;
    char *name;
    SavestateHost sh;
    SavestateHostOps sh_ops;
} ds;

static DsnapState m_run_state(void *opaque)
{
    return runstate_is_running() ? DSNAP_STATE_RUNNING : DSNAP_STATE_PAUSED;
}

static bool m_set_running(void *opaque, bool running, GError **errp)
{
    GError *err = NULL;
    if (running) {
        qmp_cont(&err);
    } else {
        qmp_stop(&err);
    }
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

static bool m_reset(void *opaque, GError **errp)
{
    machine_system_reset(ds.machine);
    return true;
}

static DsnapDomainDisk *m_disk(const MachineDriveInfo *info)
{
    DsnapDomainDisk *dd = g_new0(DsnapDomainDisk, 1);
    dd->device = g_strdup(info->removable ? "cdrom" : "disk");
    dd->target_dev = g_strdup_printf("hd%c", 'a' + info->index);
    dd->target_bus = g_strdup("ide");
    if (machine_disk_has_medium(info->disk)) {
        BlockDriverState *bs = blk_bs(xblk_api_disk_blk(info->disk));
        dd->source_file = g_canonicalize_filename(bdrv_get_filename(bs),
                                                  NULL);
        dd->driver_type = g_strdup(bdrv_get_format_name(bs));
    }
    return dd;
}

static void m_describe(void *opaque, DsnapDomainDef *dom,
                       GPtrArray *drive_names)
{
    dom->type = g_strdup("qemu");
    dom->name = g_strdup(ds.name);
    dom->memory_kib = machine_ram_size(ds.machine) / 1024;
    dom->vcpus = 1;
    dom->os_type = g_strdup("hvm");
    dom->os_arch = g_strdup("i686");
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        if (machine_drive_info(ds.machine, i, &info)) {
            g_ptr_array_add(dom->disks, m_disk(&info));
            g_ptr_array_add(drive_names, g_strdup(info.name));
        }
    }
}

static bool m_begin(void *opaque, GError **errp)
{
    return xblk_api_state_begin(machine_engine(ds.machine), errp);
}

static void m_end(void *opaque)
{
    xblk_api_state_end(machine_engine(ds.machine));
}

static const DsnapHostOps machine_dsnap_ops = {
    .run_state = m_run_state,
    .set_running = m_set_running,
    .reset = m_reset,
    .describe = m_describe,
    .begin = m_begin,
    .end = m_end,
};

static bool run_command(void *opaque, json_t *args, json_t **ret,
                        GError **errp)
{
    const DsnapJsonCommand *c = opaque;
    if (!ds.domain) {
        error_setg(errp, "%s needs a machine (-machine xbox) with a hard "
                   "disk", c->name);
        return false;
    }
    return c->handler(ds.domain, args, ret, errp);
}

void qmp_domsnap_register(void)
{
    for (const DsnapJsonCommand *c = dsnap_json_commands; c->name; c++) {
        GError *err = NULL;
        if (!qmp_dyn_add_command(monitor_commands(), c->definition,
                                 run_command, (void *)c, NULL, &err)) {
            g_error("%s: %s", c->name, err->message);
        }
    }
}

bool qmp_domsnap_attach(XboxMachine *m, const char *catalog_dir,
                        const char *name, GString *report, GError **errp)
{
    g_assert(!ds.domain);
    ds.machine = m;
    ds.name = g_strdup(name ? name : "xbox");
    xblk_api_state_host(machine_engine(m), &ds.sh, &ds.sh_ops);
    ds.domain = dsnap_domain_open(catalog_dir, &ds.sh, &machine_dsnap_ops,
                                  NULL, report, errp);
    return ds.domain != NULL;
}

void qmp_domsnap_detach(void)
{
    g_clear_pointer(&ds.domain, dsnap_domain_free);
    g_clear_pointer(&ds.name, g_free);
    ds.machine = NULL;
}
