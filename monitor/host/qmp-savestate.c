/*
 * qmp-savestate.c - save states on the monitor: QEMU's job commands
 * snapshot-save, snapshot-load and snapshot-delete, the HMP commands
 * savevm, loadvm and delvm (hmp.c's table calls the functions at the
 * end), x-query-snapshot-stats and x-query-save-state.  The work is
 * hw/xbox/machine-savestate.c's; this file adapts it to the job model
 * (block/job.h).  Part of the emulator's monitor (monitor/host/host.h).
 *
 * As in QEMU, the commands only check what makes a job impossible (a
 * machine, the job-id); everything else - a duplicate or missing tag, a
 * disk that cannot take the snapshot - fails the job, whose error
 * query-jobs shows.  The jobs are created with manual dismiss, as QEMU's
 * are, so that the client can read that error: job-dismiss removes them.
 * Progress counts stream bytes.  job-cancel stops a save before its state
 * is durable (nothing stays of it) and a load before anything changed;
 * once the load's pause began it finishes.
 */
#include "block/job.h"
#include "monitor/host/machine-state.h"
#include "monitor/host/hmp.h"
#include "qapi/qapi-commands.h"
#include "util/error.h"
#include <string.h>
#include <time.h>

typedef struct SnapshotJob {
    Job common;
    char *tag;
    char *vmstate;              /* NULL for delete */
    char **devices;
} SnapshotJob;

static XboxMachine *need_machine(const char *cmd, GError **errp)
{
    XboxMachine *m = machine_current();
    if (!m) {
        error_setg(errp, "%s needs a machine (-machine xbox)", cmd);
    }
    return m;
}

static void snapshot_job_progress(void *opaque, uint64_t done,
                                  uint64_t total)
{
    Job *job = opaque;
    job_progress_update(job, done - MIN(done, (uint64_t)
                                        job->progress_current));
    job_progress_set_remaining(job, total - MIN(total, done));
}

static bool snapshot_job_cancelled(void *opaque)
{
    return job_is_cancelled(opaque);
}

static int coroutine_fn snapshot_job_run(Job *job, GError **errp)
{
    SnapshotJob *sj = (SnapshotJob *)job;
    XboxMachine *m = machine_current();
    MachineStateArgs a = {
        .vmstate = sj->vmstate,
        .devices = sj->devices,
        .progress = snapshot_job_progress,
        .cancelled = snapshot_job_cancelled,
        .opaque = job,
    };
    bool ok = false;
    job_progress_set_remaining(job, 1);
    if (!m) {
        error_setg(errp, "the machine is gone");
        return -ENODEV;
    }
    switch (job->driver->job_type) {
    case XBLK_JOB_TYPE_SNAPSHOT_SAVE:
        ok = machine_save_state(m, sj->tag, &a, errp);
        break;
    case XBLK_JOB_TYPE_SNAPSHOT_LOAD:
        ok = machine_load_state(m, sj->tag, &a, errp);
        break;
    default:
        ok = machine_delete_state(m, sj->tag, &a, errp);
        break;
    }
    /* Over, done or failed: all of it, as QEMU's jobs show it. */
    if (!job->progress_current) {
        job_progress_update(job, 1);
    }
    job_progress_set_remaining(job, 0);
    return ok ? 0 : -EIO;
}

static void snapshot_job_free(Job *job)
{
    SnapshotJob *sj = (SnapshotJob *)job;
    g_free(sj->tag);
    g_free(sj->vmstate);
    g_strfreev(sj->devices);
}

#define SNAPSHOT_JOB_DRIVER(kind)                       \
    {                                                   \
        .instance_size = sizeof(SnapshotJob),           \
        .job_type = kind,                               \
        .run = snapshot_job_run,                        \
        .free = snapshot_job_free,                      \
    }

static const JobDriver snapshot_save_driver =
    SNAPSHOT_JOB_DRIVER(XBLK_JOB_TYPE_SNAPSHOT_SAVE);
static const JobDriver snapshot_load_driver =
    SNAPSHOT_JOB_DRIVER(XBLK_JOB_TYPE_SNAPSHOT_LOAD);
static const JobDriver snapshot_delete_driver =
    SNAPSHOT_JOB_DRIVER(XBLK_JOB_TYPE_SNAPSHOT_DELETE);

static char **str_list_to_strv(strList *l)
{
    GPtrArray *a = g_ptr_array_new();
    for (; l; l = l->next) {
        g_ptr_array_add(a, g_strdup(l->value));
    }
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

static void snapshot_job_start(const char *cmd, const JobDriver *drv,
                               const char *job_id, const char *tag,
                               const char *vmstate, strList *devices,
                               GError **errp)
{
    if (!need_machine(cmd, errp)) {
        return;
    }
    SnapshotJob *sj = job_create(job_id, drv, NULL, JOB_MANUAL_DISMISS,
                                 errp);
    if (!sj) {
        return;
    }
    sj->tag = g_strdup(tag);
    sj->vmstate = g_strdup(vmstate);
    sj->devices = str_list_to_strv(devices);
    job_start(&sj->common);
}

void qmp_snapshot_save(const char *job_id, const char *tag,
                       const char *vmstate, strList *devices, GError **errp)
{
    snapshot_job_start("snapshot-save", &snapshot_save_driver, job_id, tag,
                       vmstate, devices, errp);
}

void qmp_snapshot_load(const char *job_id, const char *tag,
                       const char *vmstate, strList *devices, GError **errp)
{
    snapshot_job_start("snapshot-load", &snapshot_load_driver, job_id, tag,
                       vmstate, devices, errp);
}

void qmp_snapshot_delete(const char *job_id, const char *tag,
                         strList *devices, GError **errp)
{
    snapshot_job_start("snapshot-delete", &snapshot_delete_driver, job_id,
                       tag, NULL, devices, errp);
}

/* ---- x-query-snapshot-stats ---- */

XSnapshotStats *qmp_x_query_snapshot_stats(GError **errp)
{
    const MachineSaveStats *ss = machine_last_save_stats();
    const MachineLoadStats *ls = machine_last_load_stats();
    XSnapshotStats *st = g_new0(XSnapshotStats, 1);
    if (ss->valid) {
        XSnapshotSaveStats *s = g_new0(XSnapshotSaveStats, 1);
        s->tag = g_strdup(ss->tag);
        s->frame = ss->frame;
        s->guest_pause_us = ss->guest_pause_ns / 1000;
        s->durable_ms = ss->durable_ns / 1e6;
        s->vmstate_bytes = ss->raw_size;
        s->vmstate_compressed_bytes = ss->vm_state_size;
        s->peak_cow_bytes = ss->peak_cow_bytes;
        st->save = s;
        st->has_save = true;
    }
    if (ls->valid) {
        XSnapshotLoadStats *l = g_new0(XSnapshotLoadStats, 1);
        l->tag = g_strdup(ls->tag);
        l->frame = ls->frame;
        l->guest_pause_us = ls->guest_pause_ns / 1000;
        l->total_ms = ls->total_ns / 1e6;
        st->load = l;
        st->has_load = true;
    }
    return st;
}

/* ---- x-query-save-state ---- */

XSaveStateInfo *qmp_x_query_save_state(const char *tag, GError **errp)
{
    XboxMachine *m = need_machine("x-query-save-state", errp);
    XssMetadata md = { 0 };
    if (!m || !machine_state_metadata(m, tag, &md, errp)) {
        return NULL;
    }
    XSaveStateInfo *info = g_new0(XSaveStateInfo, 1);
    info->tag = g_strdup(tag);
    info->frame = md.frame;
    info->frame_hash = g_strdup(md.frame_hash);
    info->has_frame_hash = md.frame_hash != NULL;
    info->disc_path = g_strdup(md.disc_path);
    info->has_disc_path = md.disc_path != NULL;
    info->title = g_strdup(md.title);
    info->has_title = md.title != NULL;
    if (md.thumbnail_png) {
        gsize len;
        const guchar *png = g_bytes_get_data(md.thumbnail_png, &len);
        info->thumbnail_png = g_base64_encode(png, len);
        info->has_thumbnail_png = true;
    }
    xss_metadata_clear(&md);
    return info;
}

/* ---- HMP ---- */

/* QEMU's name for an untagged savevm: the local time. */
static char *savevm_default_tag(void)
{
    time_t t = time(NULL);
    struct tm tm;
    char buf[32];
    localtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "vm-%Y%m%d%H%M%S", &tm);
    return g_strdup(buf);
}

void hmp_savevm_run(GString *out, const char *tag)
{
    GError *err = NULL;
    XboxMachine *m = need_machine("savevm", &err);
    g_autofree char *name = tag ? g_strdup(tag) : savevm_default_tag();
    MachineStateArgs a = { .overwrite = true };
    if (m) {
        machine_save_state(m, name, &a, &err);
    }
    if (err) {
        g_string_append_printf(out, "Error: %s\n", err->message);
        g_error_free(err);
    }
}

void hmp_loadvm_run(GString *out, const char *tag)
{
    GError *err = NULL;
    XboxMachine *m = need_machine("loadvm", &err);
    if (m) {
        machine_load_state(m, tag, NULL, &err);
    }
    if (err) {
        g_string_append_printf(out, "Error: %s\n", err->message);
        g_error_free(err);
    }
}

void hmp_delvm_run(GString *out, const char *tag)
{
    GError *err = NULL;
    XboxMachine *m = need_machine("delvm", &err);
    if (m) {
        machine_delete_state(m, tag, NULL, &err);
    }
    if (err) {
        g_string_append_printf(out, "Error: %s\n", err->message);
        g_error_free(err);
    }
}
