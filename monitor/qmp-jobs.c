/*
 * qmp-jobs.c - the QMP commands of jobs (job-*, query-jobs) and block
 * jobs (block-job-*, query-block-jobs) over block/job.h, with QEMU 7.2's
 * lookups and error texts: job-* answer "Job not found" (GenericError),
 * block-job-* "Block job 'ID' not found" (DeviceNotActive).  Internal
 * jobs have no ID and are never listed or found.
 */
#include "block/blockjob.h"
#include "monitor/monitor.h"
#include "qapi/engine-qapi-commands.h"
#include "qapi/engine-qapi-visit.h"
#include "util/error.h"

static Job *qmp_find_job(const char *id, GError **errp)
{
    Job *job = job_get(id);
    if (!job) {
        error_setg(errp, "Job not found");
    }
    return job;
}

static BlockJob *qmp_find_block_job(const char *id, GError **errp)
{
    BlockJob *job = block_job_get(id);
    if (!job) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_ACTIVE,
                  "Block job '%s' not found", id);
    }
    return job;
}

/* ---- job-* ---- */

void qmp_job_pause(const char *id, GError **errp)
{
    Job *job = qmp_find_job(id, errp);
    if (job) {
        job_user_pause(job, errp);
    }
}

void qmp_job_resume(const char *id, GError **errp)
{
    Job *job = qmp_find_job(id, errp);
    if (job) {
        job_user_resume(job, errp);
    }
}

void qmp_job_cancel(const char *id, GError **errp)
{
    Job *job = qmp_find_job(id, errp);
    if (job) {
        /* job-cancel always forces, as QEMU's does. */
        job_user_cancel(job, true, errp);
    }
}

void qmp_job_complete(const char *id, GError **errp)
{
    Job *job = qmp_find_job(id, errp);
    if (job) {
        job_complete(job, errp);
    }
}

void qmp_job_finalize(const char *id, GError **errp)
{
    Job *job = qmp_find_job(id, errp);
    if (job) {
        job_ref(job);
        job_finalize(job, errp);
        job_unref(job);
    }
}

void qmp_job_dismiss(const char *id, GError **errp)
{
    Job *job = qmp_find_job(id, errp);
    if (job) {
        job_dismiss(job, errp);
    }
}

static json_t *job_info_json(Job *job)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "id", job->id,
                          "type", job_type_name(job->driver->job_type),
                          "status", job_status_name(job->status),
                          "current-progress",
                          (json_int_t)job->progress_current,
                          "total-progress", (json_int_t)job->progress_total);
    const char *err = job_error_message(job);
    if (err) {
        json_object_set_new(o, "error", json_string(err));
    }
    return o;
}

JobInfoList *qmp_query_jobs(GError **errp)
{
    json_t *arr = json_array();
    for (Job *job = job_next(NULL); job; job = job_next(job)) {
        if (!job_is_internal(job)) {
            json_array_append_new(arr, job_info_json(job));
        }
    }
    JobInfoList *l = NULL;
    visit_JobInfoList_from_json(arr, "return", &l, errp);
    json_decref(arr);
    return l;
}

/* ---- block-job-* ---- */

BlockJobInfoList *qmp_query_block_jobs(GError **errp)
{
    json_t *arr = json_array();
    for (BlockJob *job = block_job_next(NULL); job;
         job = block_job_next(job)) {
        if (!block_job_is_internal(job)) {
            json_array_append_new(arr, block_job_query(job));
        }
    }
    BlockJobInfoList *l = NULL;
    visit_BlockJobInfoList_from_json(arr, "return", &l, errp);
    json_decref(arr);
    return l;
}

void qmp_block_job_set_speed(const char *device, int64_t speed,
                             GError **errp)
{
    BlockJob *job = qmp_find_block_job(device, errp);
    if (job) {
        block_job_set_speed(job, speed, errp);
    }
}

void qmp_block_job_cancel(const char *device, bool has_force, bool force,
                          GError **errp)
{
    BlockJob *job = qmp_find_block_job(device, errp);
    if (!job) {
        return;
    }
    force = has_force && force;
    if (job_user_paused(&job->job) && !force) {
        error_setg(errp, "The block job for device '%s' is currently paused",
                   device);
        return;
    }
    job_user_cancel(&job->job, force, errp);
}

void qmp_block_job_pause(const char *device, GError **errp)
{
    BlockJob *job = qmp_find_block_job(device, errp);
    if (job) {
        job_user_pause(&job->job, errp);
    }
}

void qmp_block_job_resume(const char *device, GError **errp)
{
    BlockJob *job = qmp_find_block_job(device, errp);
    if (job) {
        job_user_resume(&job->job, errp);
    }
}

void qmp_block_job_complete(const char *device, GError **errp)
{
    BlockJob *job = qmp_find_block_job(device, errp);
    if (job) {
        job_complete(&job->job, errp);
    }
}

void qmp_block_job_finalize(const char *id, GError **errp)
{
    BlockJob *job = qmp_find_block_job(id, errp);
    if (job) {
        job_ref(&job->job);
        job_finalize(&job->job, errp);
        job_unref(&job->job);
    }
}

void qmp_block_job_dismiss(const char *id, GError **errp)
{
    BlockJob *job = qmp_find_block_job(id, errp);
    if (job) {
        job_dismiss(&job->job, errp);
    }
}
