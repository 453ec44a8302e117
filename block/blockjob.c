/*
 * blockjob.c - BlockJob (see blockjob.h): node references, the busy
 * check for blockdev-del, BlockJobInfo and the BLOCK_JOB_* events.
 *
 * Invariant: job->nodes holds one reference per entry from creation until
 * the job is finalized (JobHooks.finalized) or freed, whichever is first.
 */
#include "block/blockjob.h"
#include "block/block-backend.h"
#include "block/block-events.h"
#include "block/block_int.h"
#include "util/error.h"
#include <errno.h>

static const char *const error_action_names[] = {
    "ignore", "report", "stop",
};

static const char *const iostatus_names[] = {
    "ok", "failed", "nospace",
};

static const JobHooks block_job_hooks;

BlockJob *block_job_from_job(Job *job)
{
    return job && job->hooks == &block_job_hooks ? (BlockJob *)job : NULL;
}

bool block_job_is_internal(const BlockJob *job)
{
    return job_is_internal(&job->job);
}

BlockJob *block_job_next(BlockJob *job)
{
    for (Job *j = job_next(job ? &job->job : NULL); j; j = job_next(j)) {
        BlockJob *bj = block_job_from_job(j);
        if (bj) {
            return bj;
        }
    }
    return NULL;
}

BlockJob *block_job_get(const char *id)
{
    Job *j = job_get(id);
    return block_job_from_job(j);
}

/* type, device, len, offset, speed: common to three events */
static json_t *block_job_event_data(BlockJob *bj)
{
    Job *j = &bj->job;
    return json_pack("{s:s,s:s,s:I,s:I,s:I}",
                     "type", job_type_name(j->driver->job_type),
                     "device", j->id,
                     "len", (json_int_t)j->progress_total,
                     "offset", (json_int_t)j->progress_current,
                     "speed", (json_int_t)j->speed);
}

static void block_job_on_ready(Job *job)
{
    if (!job_is_internal(job)) {
        block_event_emit("BLOCK_JOB_READY",
                         block_job_event_data((BlockJob *)job));
    }
}

static void block_job_on_pending(Job *job)
{
    if (!job_is_internal(job)) {
        block_event_emit("BLOCK_JOB_PENDING",
                         json_pack("{s:s,s:s}", "type",
                                   job_type_name(job->driver->job_type),
                                   "id", job->id));
    }
}

static void block_job_on_completed(Job *job, const char *msg)
{
    if (job_is_internal(job)) {
        return;
    }
    json_t *d = block_job_event_data((BlockJob *)job);
    if (msg) {
        json_object_set_new(d, "error", json_string(msg));
    }
    block_event_emit("BLOCK_JOB_COMPLETED", d);
}

static void block_job_on_cancelled(Job *job)
{
    if (!job_is_internal(job)) {
        block_event_emit("BLOCK_JOB_CANCELLED",
                         block_job_event_data((BlockJob *)job));
    }
}

static void block_job_on_user_resume(Job *job)
{
    ((BlockJob *)job)->iostatus = XBLK_IO_STATUS_OK;
}

static void block_job_release_nodes(Job *job)
{
    BlockJob *bj = (BlockJob *)job;
    if (!bj->nodes) {
        return;
    }
    for (guint i = 0; i < bj->nodes->len; i++) {
        bdrv_unref(g_ptr_array_index(bj->nodes, i));
    }
    g_ptr_array_free(bj->nodes, TRUE);
    bj->nodes = NULL;
    bj->bs = NULL;
}

static const JobHooks block_job_hooks = {
    .ready = block_job_on_ready,
    .pending = block_job_on_pending,
    .completed = block_job_on_completed,
    .cancelled = block_job_on_cancelled,
    .user_resume = block_job_on_user_resume,
    .finalized = block_job_release_nodes,
    .free = block_job_release_nodes,
};

/* QEMU names a job after the device when no ID is given. */
static const char *block_job_default_id(BlockDriverState *bs)
{
    for (GList *l = bs->backends; l; l = l->next) {
        const char *name = blk_name(l->data);
        if (name && *name) {
            return name;
        }
    }
    return "";
}

void *block_job_create(const char *job_id, const JobDriver *driver,
                       JobTxn *txn, BlockDriverState *bs, int64_t speed,
                       int flags, GError **errp)
{
    g_assert(driver->instance_size >= sizeof(BlockJob));
    if (!job_id && !(flags & JOB_INTERNAL)) {
        job_id = block_job_default_id(bs);
    }
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return NULL;
    }
    BlockJob *bj = job_create(job_id, driver, txn, flags, errp);
    if (!bj) {
        return NULL;
    }
    bj->job.hooks = &block_job_hooks;
    bj->nodes = g_ptr_array_new();
    bj->bs = bs;
    block_job_add_bdrv(bj, bs);
    bj->job.speed = speed;
    job_ratelimit_set_speed(&bj->job.limit, speed, JOB_RATELIMIT_SLICE_NS);
    return bj;
}

void block_job_add_bdrv(BlockJob *job, BlockDriverState *bs)
{
    g_assert(job->nodes);
    bdrv_ref(bs);
    g_ptr_array_add(job->nodes, bs);
}

bool block_job_node_busy(BlockDriverState *bs, GError **errp)
{
    for (BlockJob *bj = block_job_next(NULL); bj; bj = block_job_next(bj)) {
        if (bj->nodes && g_ptr_array_find(bj->nodes, bs, NULL)) {
            error_setg(errp, "Node '%s' is busy: block device is in use by "
                       "block job: %s", bdrv_get_node_name(bs),
                       job_type_name(bj->job.driver->job_type));
            return true;
        }
    }
    return false;
}

bool block_job_set_speed(BlockJob *job, int64_t speed, GError **errp)
{
    return job_set_speed(&job->job, speed, errp);
}

json_t *block_job_query(BlockJob *bj)
{
    Job *j = &bj->job;
    json_t *o = json_object();
    json_object_set_new(o, "type",
                        json_string(job_type_name(j->driver->job_type)));
    json_object_set_new(o, "device", json_string(j->id ? j->id : ""));
    json_object_set_new(o, "len", json_integer(j->progress_total));
    json_object_set_new(o, "offset", json_integer(j->progress_current));
    json_object_set_new(o, "busy", json_boolean(j->busy));
    json_object_set_new(o, "paused", json_boolean(j->pause_count > 0));
    json_object_set_new(o, "speed", json_integer(j->speed));
    json_object_set_new(o, "io-status",
                        json_string(iostatus_names[bj->iostatus]));
    json_object_set_new(o, "ready", json_boolean(job_is_ready(j)));
    json_object_set_new(o, "status", json_string(job_status_name(j->status)));
    json_object_set_new(o, "auto-finalize", json_boolean(j->auto_finalize));
    json_object_set_new(o, "auto-dismiss", json_boolean(j->auto_dismiss));
    const char *err = job_error_message(j);
    if (err) {
        json_object_set_new(o, "error", json_string(err));
    }
    return o;
}

XblkErrorAction block_job_error_action(BlockJob *job, XblkOnError on_err,
                                       bool is_read, int error)
{
    XblkErrorAction action;
    switch (on_err) {
    case XBLK_ON_ERROR_ENOSPC:
    case XBLK_ON_ERROR_AUTO:
        action = error == ENOSPC ? XBLK_ERROR_ACTION_STOP
                                 : XBLK_ERROR_ACTION_REPORT;
        break;
    case XBLK_ON_ERROR_STOP:
        action = XBLK_ERROR_ACTION_STOP;
        break;
    case XBLK_ON_ERROR_IGNORE:
        action = XBLK_ERROR_ACTION_IGNORE;
        break;
    case XBLK_ON_ERROR_REPORT:
    default:
        action = XBLK_ERROR_ACTION_REPORT;
        break;
    }
    if (!block_job_is_internal(job)) {
        block_event_emit("BLOCK_JOB_ERROR",
                         json_pack("{s:s,s:s,s:s}", "device", job->job.id,
                                   "operation", is_read ? "read" : "write",
                                   "action", error_action_names[action]));
    }
    if (action == XBLK_ERROR_ACTION_STOP) {
        if (!job->job.user_paused) {
            /* Visible as a user pause: job-resume restarts the job. */
            job_pause(&job->job);
            job->job.user_paused = true;
        }
        if (job->iostatus == XBLK_IO_STATUS_OK) {
            job->iostatus = error == ENOSPC ? XBLK_IO_STATUS_NOSPACE
                                            : XBLK_IO_STATUS_FAILED;
        }
    }
    return action;
}
