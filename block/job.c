/*
 * job.c - the generic job (see job.h): status machine, verbs, pausing,
 * cancelling, sleeping, progress, rate limiting and job groups.
 *
 * Invariants:
 *  - every status change goes through job_state_transition(), which
 *    asserts QEMU's transition table and emits JOB_STATUS_CHANGE;
 *  - a job is woken only when !busy, and whoever wakes it sets busy, so
 *    its coroutine is never scheduled twice;
 *  - a job is on its txn's list from creation until finalization or
 *    dismissal; a txn is freed with its last reference;
 *  - exactly one of commit and abort runs for each job that reaches
 *    finalization, then clean, then its BLOCK_JOB_* event (if started).
 * Group abort is asynchronous: the failing job force-cancels the others
 * and the group is finalized once the last of them has stopped.
 */
#include "block/job.h"
#include "block/block-events.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <string.h>

struct JobTxn {
    GList *jobs;                /* Job*, in the order they joined */
    int refcnt;
    bool aborting;
    bool finishing;             /* finalizing the aborted group now */
};

static GList *jobs;             /* every job, in creation order */

static const char *const status_names[XBLK_JOB_STATUS__MAX] = {
    "undefined", "created", "running", "paused", "ready", "standby",
    "waiting", "pending", "aborting", "concluded", "null",
};

static const char *const verb_names[XBLK_JOB_VERB__MAX] = {
    "cancel", "pause", "resume", "set-speed", "complete", "dismiss",
    "finalize",
};

static const char *const type_names[XBLK_JOB_TYPE__MAX] = {
    "commit", "stream", "mirror", "backup", "create", "amend",
    "snapshot-load", "snapshot-save", "snapshot-delete",
};

/* QEMU 7.2's transitions, row = from, column = to:
 *                U  C  R  P  Y  S  W  D  X  E  N */
static const bool transitions[XBLK_JOB_STATUS__MAX][XBLK_JOB_STATUS__MAX] = {
    /* U */      {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    /* C */      {0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1},
    /* R */      {0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0},
    /* P */      {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
    /* Y */      {0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0},
    /* S */      {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
    /* W */      {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
    /* D */      {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
    /* X */      {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
    /* E */      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    /* N */      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};

/* Which statuses accept each verb:  U  C  R  P  Y  S  W  D  X  E  N */
static const bool verbs[XBLK_JOB_VERB__MAX][XBLK_JOB_STATUS__MAX] = {
    [XBLK_JOB_VERB_CANCEL]    = {0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    [XBLK_JOB_VERB_PAUSE]     = {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    [XBLK_JOB_VERB_RESUME]    = {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    [XBLK_JOB_VERB_SET_SPEED] = {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    [XBLK_JOB_VERB_COMPLETE]  = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
    [XBLK_JOB_VERB_DISMISS]   = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
    [XBLK_JOB_VERB_FINALIZE]  = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
};

const char *job_status_name(XblkJobStatus s)
{
    return s < XBLK_JOB_STATUS__MAX ? status_names[s] : "?";
}

const char *job_verb_name(XblkJobVerb v)
{
    return v < XBLK_JOB_VERB__MAX ? verb_names[v] : "?";
}

const char *job_type_name(XblkJobType t)
{
    return t < XBLK_JOB_TYPE__MAX ? type_names[t] : "?";
}

bool job_status_transition_allowed(XblkJobStatus from, XblkJobStatus to)
{
    return transitions[from][to];
}

bool job_verb_allowed(XblkJobStatus s, XblkJobVerb v)
{
    return verbs[v][s];
}

/* ---- rate limiting ---- */

void job_ratelimit_set_speed(JobRateLimit *rl, uint64_t bytes_per_sec,
                             int64_t slice_ns)
{
    rl->slice_ns = slice_ns;
    if (!bytes_per_sec) {
        rl->slice_quota = 0;
        return;
    }
    /* Never 0 for a limited job: a tiny speed still makes progress. */
    uint64_t q = (uint64_t)((double)bytes_per_sec * slice_ns / 1e9);
    rl->slice_quota = MAX(q, 1);
}

/*
 * The bytes of a slice may go at once; bytes beyond the quota push the
 * next chunk to the start of the slice that would have carried them.
 * The window then moves there, keeping the excess, so the long-run rate
 * is exact however the chunks fall.
 */
int64_t job_ratelimit_calculate_delay(JobRateLimit *rl, uint64_t n,
                                      int64_t now_ns)
{
    if (!rl->slice_quota) {
        return 0;
    }
    if (now_ns >= rl->slice_start + rl->slice_ns || now_ns < rl->slice_start
        - rl->slice_ns * 1000) {
        rl->slice_start = now_ns;
        rl->dispatched = 0;
    }
    rl->dispatched += n;
    uint64_t slices = (rl->dispatched + rl->slice_quota - 1) /
                      rl->slice_quota;
    if (slices <= 1) {
        return 0;
    }
    rl->slice_start += (int64_t)(slices - 1) * rl->slice_ns;
    rl->dispatched -= (slices - 1) * rl->slice_quota;
    return MAX(rl->slice_start - now_ns, 0);
}

int64_t job_ratelimit_delay(Job *job, uint64_t bytes)
{
    return job_ratelimit_calculate_delay(&job->limit, bytes, get_clock_ns());
}

/* ---- lookup and state ---- */

Job *job_get(const char *id)
{
    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;
        if (job->id && !strcmp(job->id, id)) {
            return job;
        }
    }
    return NULL;
}

Job *job_next(Job *job)
{
    if (!job) {
        return jobs ? jobs->data : NULL;
    }
    GList *l = g_list_find(jobs, job);
    return l && l->next ? l->next->data : NULL;
}

bool job_is_internal(const Job *job)
{
    return job->id == NULL;
}

bool job_started(const Job *job)
{
    return job->co != NULL;
}

bool job_is_completed(const Job *job)
{
    switch (job->status) {
    case XBLK_JOB_STATUS_WAITING:
    case XBLK_JOB_STATUS_PENDING:
    case XBLK_JOB_STATUS_ABORTING:
    case XBLK_JOB_STATUS_CONCLUDED:
    case XBLK_JOB_STATUS_NULL:
        return true;
    default:
        return false;
    }
}

bool job_is_ready(const Job *job)
{
    return job->status == XBLK_JOB_STATUS_READY ||
           job->status == XBLK_JOB_STATUS_STANDBY;
}

bool job_is_cancelled(const Job *job)
{
    return job->force_cancel;
}

bool job_cancel_requested(const Job *job)
{
    return job->cancelled;
}

bool job_user_paused(const Job *job)
{
    return job->user_paused;
}

const char *job_error_message(const Job *job)
{
    if (!job->ret) {
        return NULL;
    }
    return job->err ? job->err->message : g_strerror(-job->ret);
}

static void job_state_transition(Job *job, XblkJobStatus to)
{
    XblkJobStatus from = job->status;
    g_assert(job_status_transition_allowed(from, to));
    job->status = to;
    if (!job_is_internal(job) && from != to) {
        block_event_emit("JOB_STATUS_CHANGE",
                         json_pack("{s:s,s:s}", "id", job->id, "status",
                                   job_status_name(to)));
    }
    co_queue_restart_all(&job->status_waiters);
}

bool job_apply_verb(Job *job, XblkJobVerb verb, GError **errp)
{
    if (job_verb_allowed(job->status, verb)) {
        return true;
    }
    error_setg(errp, "Job '%s' in state '%s' cannot accept command verb "
               "'%s'", job->id ? job->id : "", job_status_name(job->status),
               job_verb_name(verb));
    return false;
}

/* ---- groups ---- */

JobTxn *job_txn_new(void)
{
    JobTxn *txn = g_new0(JobTxn, 1);
    txn->refcnt = 1;
    return txn;
}

void job_txn_ref(JobTxn *txn)
{
    txn->refcnt++;
}

void job_txn_unref(JobTxn *txn)
{
    if (txn && --txn->refcnt == 0) {
        g_assert(!txn->jobs);
        g_free(txn);
    }
}

static void job_txn_del_job(Job *job)
{
    if (job->txn) {
        job->txn->jobs = g_list_remove(job->txn->jobs, job);
        job_txn_unref(job->txn);
        job->txn = NULL;
    }
}

void job_txn_add_job(JobTxn *txn, Job *job)
{
    g_assert(!job_started(job));
    if (job->txn == txn) {
        return;
    }
    job_txn_del_job(job);
    job->txn = txn;
    job_txn_ref(txn);
    txn->jobs = g_list_append(txn->jobs, job);
}

/* ---- creation and references ---- */

static bool job_id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

static bool job_check_id(const char *job_id, int flags, GError **errp)
{
    if (job_id) {
        if (flags & JOB_INTERNAL) {
            error_setg(errp, "Cannot specify job ID for internal job");
            return false;
        }
        if (!job_id_wellformed(job_id)) {
            error_setg(errp, "Invalid job ID '%s'", job_id);
            return false;
        }
        if (job_get(job_id)) {
            error_setg(errp, "Job ID '%s' already in use", job_id);
            return false;
        }
    } else if (!(flags & JOB_INTERNAL)) {
        error_setg(errp, "An explicit job ID is required");
        return false;
    }
    return true;
}

void *job_create(const char *job_id, const JobDriver *driver, JobTxn *txn,
                 int flags, GError **errp)
{
    g_assert(driver->instance_size >= sizeof(Job) && driver->run);
    if (!job_check_id(job_id, flags, errp)) {
        return NULL;
    }
    Job *job = g_malloc0(driver->instance_size);
    job->id = g_strdup(job_id);
    job->driver = driver;
    job->refcnt = 1;
    job->status = XBLK_JOB_STATUS_UNDEFINED;
    /* Parked until job_start(), which drops this pause. */
    job->pause_count = 1;
    job->paused = true;
    job->auto_finalize = !(flags & JOB_MANUAL_FINALIZE);
    job->auto_dismiss = !(flags & JOB_MANUAL_DISMISS);
    job->limit.slice_ns = JOB_RATELIMIT_SLICE_NS;
    co_queue_init(&job->status_waiters);
    jobs = g_list_append(jobs, job);
    if (txn) {
        job_txn_add_job(txn, job);
    } else {
        JobTxn *own = job_txn_new();
        job_txn_add_job(own, job);
        job_txn_unref(own);
    }
    job_state_transition(job, XBLK_JOB_STATUS_CREATED);
    return job;
}

void job_ref(Job *job)
{
    job->refcnt++;
}

void job_unref(Job *job)
{
    g_assert(job->refcnt > 0);
    if (--job->refcnt) {
        return;
    }
    g_assert(job->status == XBLK_JOB_STATUS_NULL && !job->txn);
    g_assert(!job->sleep_timer);
    if (job->driver->free) {
        job->driver->free(job);
    }
    if (job->hooks && job->hooks->free) {
        job->hooks->free(job);
    }
    jobs = g_list_remove(jobs, job);
    g_clear_error(&job->err);
    g_free(job->id);
    g_free(job);
}

/* ---- waking and yielding ---- */

static void job_timer_del(Job *job)
{
    if (job->sleep_timer) {
        aio_source_remove(job->sleep_timer);
        job->sleep_timer = 0;
    }
}

/* Wakes the job unless it runs already, has finished, or cond says no. */
static void job_enter_cond(Job *job, bool (*cond)(Job *job))
{
    if (!job_started(job) || job->deferred_to_main_loop || job->busy) {
        return;
    }
    if (cond && !cond(job)) {
        return;
    }
    job_timer_del(job);
    job->busy = true;
    co_wake(job->co);
}

void job_enter(Job *job)
{
    job_enter_cond(job, NULL);
}

static bool job_timer_pending(Job *job)
{
    return job->sleep_timer != 0;
}

static bool job_timer_not_pending(Job *job)
{
    return job->sleep_timer == 0;
}

static gboolean job_timer_cb(gpointer opaque)
{
    Job *job = opaque;
    job->sleep_timer = 0;
    job_enter(job);
    return G_SOURCE_REMOVE;
}

/* Yields until woken, or until ns passed (ns < 0: no timeout). */
static void coroutine_fn job_do_yield(Job *job, int64_t ns)
{
    g_assert(job->busy && co_self() == job->co);
    if (ns >= 0) {
        guint ms = (guint)MIN((ns + 999999) / 1000000, (int64_t)G_MAXUINT);
        job->sleep_timer = aio_timeout_add(ms, job_timer_cb, job);
    }
    job->busy = false;
    co_yield();
    g_assert(job->busy);
}

static bool job_should_pause(const Job *job)
{
    return job->pause_count > 0;
}

void coroutine_fn job_pause_point(Job *job)
{
    if (!job_should_pause(job) || job_is_cancelled(job)) {
        return;
    }
    if (job->driver->pause) {
        job->driver->pause(job);
    }
    if (job_should_pause(job) && !job_is_cancelled(job)) {
        XblkJobStatus was = job->status;
        job_state_transition(job, was == XBLK_JOB_STATUS_READY
                                  ? XBLK_JOB_STATUS_STANDBY
                                  : XBLK_JOB_STATUS_PAUSED);
        job->paused = true;
        job_do_yield(job, -1);
        job->paused = false;
        job_state_transition(job, was);
    }
    if (job->driver->resume) {
        job->driver->resume(job);
    }
}

void coroutine_fn job_sleep_ns(Job *job, int64_t ns)
{
    /* A cancelled job must not start a sleep nobody will cut short. */
    if (job_is_cancelled(job)) {
        return;
    }
    if (!job_should_pause(job)) {
        job_do_yield(job, MAX(ns, 0));
    }
    job_pause_point(job);
}

void coroutine_fn job_yield(Job *job)
{
    if (job_is_cancelled(job)) {
        return;
    }
    if (!job_should_pause(job)) {
        job_do_yield(job, -1);
    }
    job_pause_point(job);
}

/* ---- progress and speed ---- */

void job_progress_update(Job *job, uint64_t done)
{
    job->progress_current += done;
}

void job_progress_set_remaining(Job *job, uint64_t remaining)
{
    job->progress_total = job->progress_current + remaining;
}

void job_progress_increase_remaining(Job *job, uint64_t delta)
{
    job->progress_total += delta;
}

bool job_set_speed(Job *job, int64_t speed, GError **errp)
{
    if (!job_apply_verb(job, XBLK_JOB_VERB_SET_SPEED, errp)) {
        return false;
    }
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return false;
    }
    int64_t old = job->speed;
    job->speed = speed;
    job_ratelimit_set_speed(&job->limit, speed, JOB_RATELIMIT_SLICE_NS);
    job->limit.dispatched = 0;
    if (speed && speed <= old) {
        return true;
    }
    /* A faster (or unlimited) job need not finish its current sleep. */
    job_enter_cond(job, job_timer_pending);
    return true;
}

/* ---- pausing ---- */

void job_pause(Job *job)
{
    job->pause_count++;
    if (!job->paused) {
        /* Cut a sleep short so the job reaches its pause point. */
        job_enter(job);
    }
}

void job_resume(Job *job)
{
    g_assert(job->pause_count > 0);
    if (--job->pause_count) {
        return;
    }
    /* A job whose sleep timer still runs wakes up by itself. */
    job_enter_cond(job, job_timer_not_pending);
}

void job_user_pause(Job *job, GError **errp)
{
    if (!job_apply_verb(job, XBLK_JOB_VERB_PAUSE, errp)) {
        return;
    }
    if (job->user_paused) {
        error_setg(errp, "Job is already paused");
        return;
    }
    job->user_paused = true;
    job_pause(job);
}

void job_user_resume(Job *job, GError **errp)
{
    if (!job->user_paused || job->pause_count <= 0) {
        error_setg(errp, "Can't resume a job that was not paused");
        return;
    }
    if (!job_apply_verb(job, XBLK_JOB_VERB_RESUME, errp)) {
        return;
    }
    if (job->hooks && job->hooks->user_resume) {
        job->hooks->user_resume(job);
    }
    job->user_paused = false;
    job_resume(job);
}

/* ---- completion and finalization ---- */

static void job_do_dismiss(Job *job)
{
    job->busy = false;
    job->paused = false;
    job->deferred_to_main_loop = true;
    job_txn_del_job(job);
    job_state_transition(job, XBLK_JOB_STATUS_NULL);
    job_unref(job);
}

static void job_conclude(Job *job)
{
    job_state_transition(job, XBLK_JOB_STATUS_CONCLUDED);
    if (job->auto_dismiss || !job_started(job)) {
        job_do_dismiss(job);
    }
}

/* A cancel turns success into -ECANCELED; any failure means aborting. */
static void job_update_rc(Job *job)
{
    if (!job->ret && job_is_cancelled(job)) {
        job->ret = -ECANCELED;
    }
    if (job->ret) {
        if (!job->err) {
            g_set_error_literal(&job->err, XBLK_ERROR,
                                ERROR_CLASS_GENERIC_ERROR,
                                g_strerror(-job->ret));
        }
        job_state_transition(job, XBLK_JOB_STATUS_ABORTING);
    }
}

static void job_finalize_single(Job *job)
{
    g_assert(job_is_completed(job));
    job_ref(job);
    job_update_rc(job);
    if (!job->ret) {
        if (job->driver->commit) {
            job->driver->commit(job);
        }
    } else if (job->driver->abort) {
        job->driver->abort(job);
    }
    if (job->driver->clean) {
        job->driver->clean(job);
    }
    if (job->cb) {
        job->cb(job->cb_opaque, job->ret);
    }
    if (job_started(job) && job->hooks) {
        if (job_is_cancelled(job)) {
            if (job->hooks->cancelled) {
                job->hooks->cancelled(job);
            }
        } else if (job->hooks->completed) {
            job->hooks->completed(job, job_error_message(job));
        }
    }
    if (job->hooks && job->hooks->finalized) {
        job->hooks->finalized(job);
    }
    job_txn_del_job(job);
    job_conclude(job);
    job_unref(job);
}

static void job_cancel_async(Job *job, bool force)
{
    if (job->driver->cancel) {
        force = job->driver->cancel(job, force);
    } else if (!job_is_ready(job)) {
        /* Only a ready job can stop early and still succeed. */
        force = true;
    }
    if (job->user_paused) {
        /* The caller wakes the job. */
        if (job->hooks && job->hooks->user_resume) {
            job->hooks->user_resume(job);
        }
        job->user_paused = false;
        g_assert(job->pause_count > 0);
        job->pause_count--;
    }
    /* A job that has finished its work ignores soft cancels. */
    if (force || !job->deferred_to_main_loop) {
        job->cancelled = true;
        job->force_cancel |= force;
    }
}

/* Finalizes an aborted group once none of its jobs is still running. */
static void job_txn_abort_try_finish(JobTxn *txn)
{
    if (txn->finishing) {
        return;
    }
    for (GList *l = txn->jobs; l; l = l->next) {
        if (!job_is_completed(l->data)) {
            return;
        }
    }
    txn->finishing = true;
    job_txn_ref(txn);
    while (txn->jobs) {
        job_finalize_single(txn->jobs->data);
    }
    txn->finishing = false;
    job_txn_unref(txn);
}

static void job_txn_abort(Job *job)
{
    JobTxn *txn = job->txn;
    g_assert(txn);
    if (!txn->aborting) {
        txn->aborting = true;
        job_txn_ref(txn);
        GList *others = g_list_copy(txn->jobs);
        for (GList *l = others; l; l = l->next) {
            Job *other = l->data;
            if (other == job) {
                continue;
            }
            job_cancel_async(other, true);
            if (!job_started(other)) {
                /* It never ran: it has stopped already. */
                job_update_rc(other);
            } else {
                job_enter(other);
            }
        }
        g_list_free(others);
        job_txn_abort_try_finish(txn);
        job_txn_unref(txn);
        return;
    }
    job_txn_abort_try_finish(txn);
}

static void job_transition_to_pending(Job *job)
{
    job_state_transition(job, XBLK_JOB_STATUS_PENDING);
    if (!job->auto_finalize && job->hooks && job->hooks->pending) {
        job->hooks->pending(job);
    }
}

static void job_do_finalize(Job *job)
{
    JobTxn *txn = job->txn;
    g_autoptr(GList) all = g_list_copy(txn->jobs);
    for (GList *l = all; l; l = l->next) {
        Job *j = l->data;
        if (j->ret == 0 && j->driver->prepare) {
            j->ret = j->driver->prepare(j);
            job_update_rc(j);
        }
        if (j->ret) {
            /* From the failed job, so that every other one is cancelled. */
            job_txn_abort(j);
            return;
        }
    }
    job_txn_ref(txn);
    while (txn->jobs) {
        job_finalize_single(txn->jobs->data);
    }
    job_txn_unref(txn);
}

static void job_completed_txn_success(Job *job)
{
    JobTxn *txn = job->txn;
    job_state_transition(job, XBLK_JOB_STATUS_WAITING);
    for (GList *l = txn->jobs; l; l = l->next) {
        if (!job_is_completed(l->data)) {
            return;
        }
    }
    bool manual = false;
    for (GList *l = txn->jobs; l; l = l->next) {
        Job *j = l->data;
        job_transition_to_pending(j);
        manual |= !j->auto_finalize;
    }
    if (!manual) {
        job_do_finalize(job);
    }
}

static void job_completed(Job *job)
{
    job_update_rc(job);
    if (job->ret || job->txn->aborting) {
        job_txn_abort(job);
    } else {
        job_completed_txn_success(job);
    }
}

/* Bottom half after run() returned. */
static void job_exit(void *opaque)
{
    Job *job = opaque;
    job->busy = false;
    job_completed(job);
    job_unref(job);             /* job_start's reference */
}

static void coroutine_fn job_co_entry(void *opaque)
{
    Job *job = opaque;
    job_pause_point(job);
    job->ret = job->driver->run(job, &job->err);
    if (job->ret >= 0) {
        job->ret = 0;
        g_clear_error(&job->err);
    }
    job->deferred_to_main_loop = true;
    job->busy = true;
    aio_bh_schedule(job_exit, job);
}

void job_start(Job *job)
{
    g_assert(!job_started(job) && job->paused &&
             job->status == XBLK_JOB_STATUS_CREATED);
    job_ref(job);
    job->co = co_create(job_co_entry, job);
    job->pause_count--;
    job->busy = true;
    job->paused = false;
    job_state_transition(job, XBLK_JOB_STATUS_RUNNING);
    /* Entered from the loop: job_start() may run inside a drained commit
     * or another coroutine, where the job must not run yet. */
    co_wake(job->co);
}

void job_transition_to_ready(Job *job)
{
    job_state_transition(job, XBLK_JOB_STATUS_READY);
    if (job->hooks && job->hooks->ready) {
        job->hooks->ready(job);
    }
}

/* ---- control ---- */

void job_cancel(Job *job, bool force)
{
    if (job->status == XBLK_JOB_STATUS_CONCLUDED) {
        job_do_dismiss(job);
        return;
    }
    job_cancel_async(job, force);
    if (!job_started(job)) {
        job_completed(job);
    } else if (job->deferred_to_main_loop) {
        /* Done with its work: a force cancel still aborts the group. */
        if (job_is_cancelled(job)) {
            job_txn_abort(job);
        }
    } else {
        job_enter(job);
    }
}

void job_user_cancel(Job *job, bool force, GError **errp)
{
    if (job_apply_verb(job, XBLK_JOB_VERB_CANCEL, errp)) {
        job_cancel(job, force);
    }
}

static bool job_stopped(const Job *job)
{
    return job_is_completed(job) && job->status != XBLK_JOB_STATUS_ABORTING;
}

int job_cancel_sync(Job *job, bool force)
{
    g_assert(!job->co || co_self() != job->co);
    job_ref(job);
    job_cancel(job, force);
    while (!job_stopped(job)) {
        if (co_in_coroutine()) {
            co_queue_wait(&job->status_waiters, NULL);
        } else {
            aio_poll(true);
        }
    }
    int ret = job->ret;
    if (!ret && job_is_cancelled(job)) {
        ret = -ECANCELED;
    }
    job_unref(job);
    return ret;
}

void job_complete(Job *job, GError **errp)
{
    if (!job_apply_verb(job, XBLK_JOB_VERB_COMPLETE, errp)) {
        return;
    }
    if (job_cancel_requested(job) || !job->driver->complete) {
        error_setg(errp, "The active block job '%s' cannot be completed",
                   job->id ? job->id : "");
        return;
    }
    job->driver->complete(job, errp);
}

void job_finalize(Job *job, GError **errp)
{
    if (job_apply_verb(job, XBLK_JOB_VERB_FINALIZE, errp)) {
        job_do_finalize(job);
    }
}

void job_dismiss(Job *job, GError **errp)
{
    if (job_apply_verb(job, XBLK_JOB_VERB_DISMISS, errp)) {
        job_do_dismiss(job);
    }
}
