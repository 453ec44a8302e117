/*
 * job.h - long-running background jobs with QEMU 7.2's job model: the
 * statuses, their transitions, the verbs a client may apply in each
 * status, pausing, cancelling, progress, speed limits and job groups
 * (JobTxn, completion-mode "grouped").  BlockJob (blockjob.h) builds on
 * it.  Everything here runs on the main loop thread.
 *
 * Life of a job
 * -------------
 *   job_create()        status "created"; the job is listed (query-jobs)
 *   job_start()         "running": driver->run() is entered as a coroutine
 *                       on the next main-loop iteration
 *   run() returns 0     "waiting" until every job of its JobTxn is done,
 *                       then "pending"; driver->prepare() of every job of
 *                       the group, then commit() (or abort() if a prepare
 *                       failed) and clean(), the BLOCK_JOB_COMPLETED or
 *                       BLOCK_JOB_CANCELLED event, "concluded", and with
 *                       auto-dismiss "null" (the job is gone).
 *   run() fails or the job is cancelled
 *                       "aborting"; every other job of the group is
 *                       force-cancelled; once all have stopped, each gets
 *                       abort() and clean() (never commit), its event,
 *                       "concluded" (and "null").
 *   auto-finalize off   the group stops in "pending" (BLOCK_JOB_PENDING)
 *                       until job-finalize on any of its jobs.
 *   auto-dismiss off    the job stays "concluded" until job-dismiss.
 * Every status change emits JOB_STATUS_CHANGE {id, status} (not for
 * JOB_INTERNAL jobs).
 *
 * Writing a driver's run()
 * ------------------------
 *   static int coroutine_fn my_run(Job *job, GError **errp)
 *   {
 *       job_progress_set_remaining(job, len);
 *       for (off = 0; off < len; off += n) {
 *           if (job_is_cancelled(job)) {
 *               return -ECANCELED;           (or 0: cancelled either way)
 *           }
 *           ... copy n bytes (yields on I/O) ...
 *           if (ret < 0) {
 *               XblkErrorAction a = block_job_error_action(bjob,
 *                                        on_err, is_read, -ret);
 *               if (a == XBLK_ERROR_ACTION_REPORT) {
 *                   error_setg_errno(errp, -ret, "...");  (optional)
 *                   return ret;
 *               }
 *               (STOP paused the job: job_pause_point() below waits for
 *                job-resume; then retry.  IGNORE: go on.)
 *               continue;
 *           }
 *           job_progress_update(job, n);
 *           job_sleep_ns(job, job_ratelimit_delay(job, n));
 *       }
 *       return 0;
 *   }
 *
 *  - job_sleep_ns(job, ns) yields for ns (0: one loop iteration) and
 *    returns early on cancel or pause; it also is a pause point.  Call it
 *    (or job_pause_point()) between requests so that pause and cancel
 *    take effect.  A job that waits for an event of its own uses
 *    job_yield() and is woken by job_enter().
 *  - job_pause_point(): if a pause was requested, the job shows "paused"
 *    (or "standby" when ready) until resumed; returns at once otherwise
 *    or when the job was force-cancelled.
 *  - job_is_cancelled(): true after a force cancel (every cancel of a job
 *    that is not ready, job-cancel always): stop and return.  A soft
 *    cancel of a ready job (block-job-cancel force=false) makes
 *    job_cancel_requested() true but job_is_cancelled() false: the job
 *    should leave its loop and return 0 *without* completing (mirror's
 *    "cancel after ready" that keeps the source); it ends with
 *    BLOCK_JOB_COMPLETED.
 *  - Progress: job_progress_set_remaining()/increase_remaining() move the
 *    total, job_progress_update() the current value; query-jobs shows
 *    current-progress/total-progress, query-block-jobs offset/len.
 *  - Speed: job_ratelimit_delay(job, n) accounts n bytes just processed
 *    and returns the nanoseconds to sleep before the next chunk (0 when
 *    the speed is 0, unlimited).  block-job-set-speed changes it at any
 *    time and wakes a sleeping job when the limit was raised or removed.
 *  - Errors: return a negative errno; set *errp for a better message than
 *    strerror (it becomes query-jobs' "error" and BLOCK_JOB_COMPLETED's).
 *  - Jobs that reach "ready" (mirror-like) call job_transition_to_ready()
 *    and provide driver->complete(), which job-complete calls.
 *
 * Finalization callbacks (prepare, commit, abort, clean) run from a
 * bottom half on the main loop, not in the job's coroutine; they may
 * use the synchronous block wrappers (which poll the loop).
 */
#ifndef XBLK_BLOCK_JOB_H
#define XBLK_BLOCK_JOB_H

#include "util/coroutine.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* QEMU's JobStatus, JobVerb and JobType, in the schema's order (the
 * generated QAPI enums of the same names live in the monitor). */
typedef enum XblkJobStatus {
    XBLK_JOB_STATUS_UNDEFINED,
    XBLK_JOB_STATUS_CREATED,
    XBLK_JOB_STATUS_RUNNING,
    XBLK_JOB_STATUS_PAUSED,
    XBLK_JOB_STATUS_READY,
    XBLK_JOB_STATUS_STANDBY,
    XBLK_JOB_STATUS_WAITING,
    XBLK_JOB_STATUS_PENDING,
    XBLK_JOB_STATUS_ABORTING,
    XBLK_JOB_STATUS_CONCLUDED,
    XBLK_JOB_STATUS_NULL,
    XBLK_JOB_STATUS__MAX,
} XblkJobStatus;

typedef enum XblkJobVerb {
    XBLK_JOB_VERB_CANCEL,
    XBLK_JOB_VERB_PAUSE,
    XBLK_JOB_VERB_RESUME,
    XBLK_JOB_VERB_SET_SPEED,
    XBLK_JOB_VERB_COMPLETE,
    XBLK_JOB_VERB_DISMISS,
    XBLK_JOB_VERB_FINALIZE,
    XBLK_JOB_VERB__MAX,
} XblkJobVerb;

typedef enum XblkJobType {
    XBLK_JOB_TYPE_COMMIT,
    XBLK_JOB_TYPE_STREAM,
    XBLK_JOB_TYPE_MIRROR,
    XBLK_JOB_TYPE_BACKUP,
    XBLK_JOB_TYPE_CREATE,
    XBLK_JOB_TYPE_AMEND,
    XBLK_JOB_TYPE_SNAPSHOT_LOAD,
    XBLK_JOB_TYPE_SNAPSHOT_SAVE,
    XBLK_JOB_TYPE_SNAPSHOT_DELETE,
    XBLK_JOB_TYPE__MAX,
} XblkJobType;

const char *job_status_name(XblkJobStatus s);
const char *job_verb_name(XblkJobVerb v);
const char *job_type_name(XblkJobType t);
/* QEMU's transition table: may a job in `from` go to `to`? */
bool job_status_transition_allowed(XblkJobStatus from, XblkJobStatus to);
/* QEMU's verb table: does a job in status s accept verb v? */
bool job_verb_allowed(XblkJobStatus s, XblkJobVerb v);

/* Flags of job_create() */
enum {
    JOB_DEFAULT         = 0,
    JOB_INTERNAL        = 1 << 0,   /* no ID, no events, not listed */
    JOB_MANUAL_FINALIZE = 1 << 1,   /* auto-finalize: false */
    JOB_MANUAL_DISMISS  = 1 << 2,   /* auto-dismiss: false */
};

typedef struct Job Job;
typedef struct JobTxn JobTxn;

/* Bytes-per-second limiter in time slices (pure arithmetic, testable). */
typedef struct JobRateLimit {
    uint64_t slice_quota;       /* bytes per slice; 0 = unlimited */
    int64_t slice_ns;
    int64_t slice_start;
    uint64_t dispatched;        /* bytes accounted in the current slice */
} JobRateLimit;

#define JOB_RATELIMIT_SLICE_NS (100 * 1000 * 1000LL)

void job_ratelimit_set_speed(JobRateLimit *rl, uint64_t bytes_per_sec,
                             int64_t slice_ns);
/* Accounts n bytes at time now_ns; returns how long to wait (ns) before
 * more may be processed, 0 if none. */
int64_t job_ratelimit_calculate_delay(JobRateLimit *rl, uint64_t n,
                                      int64_t now_ns);

typedef struct JobDriver {
    size_t instance_size;       /* >= sizeof(Job); Job is the first member */
    XblkJobType job_type;

    /* The work.  Returns 0 or a negative errno (*errp optional). */
    int coroutine_fn (*run)(Job *job, GError **errp);
    /* Optional: at a pause point, before the job pauses / after it
     * resumes (e.g. to quiesce and restart private I/O). */
    void coroutine_fn (*pause)(Job *job);
    void coroutine_fn (*resume)(Job *job);
    /* Optional: job-complete of a ready job; usually sets a flag and
     * job_enter()s the job. */
    void (*complete)(Job *job, GError **errp);
    /* Optional: a cancel request; returns the effective force.  Without
     * it, cancel is soft only for a ready job asked with force=false. */
    bool (*cancel)(Job *job, bool force);
    /* Optional finalization (see the top of this file).  prepare may
     * fail (negative errno), which aborts the whole group. */
    int (*prepare)(Job *job);
    void (*commit)(Job *job);
    void (*abort)(Job *job);
    void (*clean)(Job *job);
    /* Optional: frees the driver's private members at the last unref. */
    void (*free)(Job *job);
} JobDriver;

/* Hooks of the layer above (BlockJob): its events and bookkeeping. */
typedef struct JobHooks {
    void (*ready)(Job *job);
    void (*pending)(Job *job);
    void (*completed)(Job *job, const char *error_msg);   /* NULL: ok */
    void (*cancelled)(Job *job);
    void (*user_resume)(Job *job);
    void (*finalized)(Job *job);    /* after clean, before "concluded" */
    void (*free)(Job *job);
} JobHooks;

struct Job {
    char *id;                   /* NULL for internal jobs */
    const JobDriver *driver;
    const JobHooks *hooks;      /* NULL for plain jobs */
    int refcnt;
    XblkJobStatus status;
    Coroutine *co;              /* non-NULL once started */
    guint sleep_timer;          /* GSource id while sleeping with timeout */
    int pause_count;            /* user pause counts once, internal ones too */
    bool paused;                /* parked in a pause point */
    bool busy;                  /* running, not yielded in sleep/pause */
    bool user_paused;
    bool cancelled;             /* any cancel was requested */
    bool force_cancel;
    bool deferred_to_main_loop; /* run() returned */
    bool auto_finalize;
    bool auto_dismiss;
    int ret;
    GError *err;
    int64_t progress_current;
    int64_t progress_total;
    int64_t speed;
    JobRateLimit limit;
    JobTxn *txn;
    CoQueue status_waiters;     /* coroutines in job_cancel_sync() */
    /* Optional: called at finalization with the final ret. */
    void (*cb)(void *opaque, int ret);
    void *cb_opaque;
};

/*
 * Creates a job in status "created" (JOB_STATUS_CHANGE).  job_id must be
 * well formed (a letter, then letters, digits, '-', '.', '_') and unused;
 * internal jobs have none.  txn: the group to join (NULL: a group of its
 * own).  Returns the job (one reference, dropped at dismiss) or NULL.
 */
void *job_create(const char *job_id, const JobDriver *driver, JobTxn *txn,
                 int flags, GError **errp);
void job_start(Job *job);
void job_ref(Job *job);
void job_unref(Job *job);

Job *job_get(const char *id);
/* Iterates over all jobs, internal ones included: start with NULL. */
Job *job_next(Job *job);
bool job_is_internal(const Job *job);
bool job_started(const Job *job);
/* waiting, pending, aborting, concluded, null */
bool job_is_completed(const Job *job);
/* ready or standby */
bool job_is_ready(const Job *job);
bool job_is_cancelled(const Job *job);
bool job_cancel_requested(const Job *job);
/* The text query-jobs shows as "error" (NULL while ret == 0). */
const char *job_error_message(const Job *job);

/* ---- inside run() ---- */
void coroutine_fn job_pause_point(Job *job);
void coroutine_fn job_sleep_ns(Job *job, int64_t ns);
void coroutine_fn job_yield(Job *job);
/* Wakes a job parked in job_yield() or sleeping (not one paused). */
void job_enter(Job *job);
void job_transition_to_ready(Job *job);
void job_progress_update(Job *job, uint64_t done);
void job_progress_set_remaining(Job *job, uint64_t remaining);
void job_progress_increase_remaining(Job *job, uint64_t delta);
int64_t job_ratelimit_delay(Job *job, uint64_t bytes);

/* ---- control (QMP and internal) ---- */
/* Fails with QEMU's "Job 'ID' in state 'S' cannot accept command verb
 * 'V'" when the status refuses the verb. */
bool job_apply_verb(Job *job, XblkJobVerb verb, GError **errp);
void job_pause(Job *job);               /* internal, counted */
void job_resume(Job *job);
void job_user_pause(Job *job, GError **errp);
void job_user_resume(Job *job, GError **errp);
bool job_user_paused(const Job *job);
/* job-cancel (force=true) and block-job-cancel */
void job_user_cancel(Job *job, bool force, GError **errp);
/* Internal cancel: no verb check; a concluded job is dismissed. */
void job_cancel(Job *job, bool force);
/* Cancels and waits (polling the loop, or parked when called from a
 * coroutine other than the job's) until the job stopped; returns its
 * final ret (-ECANCELED if cancelled with ret 0). */
int job_cancel_sync(Job *job, bool force);
void job_complete(Job *job, GError **errp);
void job_finalize(Job *job, GError **errp);
void job_dismiss(Job *job, GError **errp);
bool job_set_speed(Job *job, int64_t speed, GError **errp);

/* ---- groups (completion-mode grouped) ---- */
JobTxn *job_txn_new(void);
void job_txn_ref(JobTxn *txn);
void job_txn_unref(JobTxn *txn);
/* Moves a job that has not started into txn (which takes a reference). */
void job_txn_add_job(JobTxn *txn, Job *job);

#endif
