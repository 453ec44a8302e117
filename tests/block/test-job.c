/*
 * test-job.c - the job model (block/job.c, block/blockjob.c): QEMU 7.2's
 * status transitions and verb table, pausing (also while sleeping),
 * cancelling in every phase (soft and forced), auto-finalize and
 * auto-dismiss off, progress, the rate limiter's arithmetic, job groups
 * (JobTxn) that fail or succeed together, the BLOCK_JOB_* events in
 * order, block_job_error_action() and the busy check of blockdev-del.
 *
 * The test driver counts to n, one step per loop iteration, with a pause
 * point and a sleep each step; it can fail at a step, reach "ready" at a
 * step (then waits for job-complete or a cancel), or fail in prepare.
 * Events are recorded through the block event sink as "id:status" for
 * JOB_STATUS_CHANGE and "EVENT" (with payloads kept) for the others.
 */
#include "block/block_int.h"
#include "block/block-events.h"
#include "block/blockdev.h"
#include "block/blockjob.h"
#include "block/transaction.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#define SEC (1000 * 1000 * 1000LL)

typedef struct TestJob {
    BlockJob common;
    int n;
    int i;
    int fail_at;                /* step whose failure ends run(), or -1 */
    int ready_at;               /* step at which the job is ready, or -1 */
    int64_t sleep_ns;
    int prepare_ret;
    bool should_complete;
    bool ran;
    int prepared, committed, aborted, cleaned, freed;
    int *log;                   /* optional: counters shared by a test */
} TestJob;

/* ---- events ---- */

static GPtrArray *events;       /* char* */
static GPtrArray *payloads;     /* json_t* of the BLOCK_JOB_* events */
static GPtrArray *checked;      /* payloads of the last assert_events() */

static void record_event(const char *name, json_t *data)
{
    if (!strcmp(name, "JOB_STATUS_CHANGE")) {
        g_ptr_array_add(events, g_strdup_printf(
            "%s:%s", json_string_value(json_object_get(data, "id")),
            json_string_value(json_object_get(data, "status"))));
        json_decref(data);
    } else {
        g_ptr_array_add(events, g_strdup(name));
        g_ptr_array_add(payloads, data);
    }
}

static void events_reset(void)
{
    g_ptr_array_set_size(events, 0);
    g_ptr_array_set_size(payloads, 0);
    g_ptr_array_set_size(checked, 0);
}

/* Keeps the payloads of the events just checked for payload(). */
static void events_checked(void)
{
    g_ptr_array_set_size(events, 0);
    g_ptr_array_set_size(checked, 0);
    for (guint i = 0; i < payloads->len; i++) {
        g_ptr_array_add(checked, json_incref(g_ptr_array_index(payloads, i)));
    }
    g_ptr_array_set_size(payloads, 0);
}

static char *events_joined(void)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < events->len; i++) {
        g_string_append_printf(s, "%s%s", i ? " " : "",
                               (char *)g_ptr_array_index(events, i));
    }
    return g_string_free(s, FALSE);
}

#define assert_events(expected) do {                        \
        g_autofree char *got_ = events_joined();            \
        g_assert_cmpstr(got_, ==, (expected));              \
        events_checked();                                   \
    } while (0)

/* The i-th payload among the events of the last assert_events(). */
static json_t *payload(guint i)
{
    g_assert_cmpuint(i, <, checked->len);
    return g_ptr_array_index(checked, i);
}

/* ---- the test driver ---- */

static int coroutine_fn test_run(Job *job, GError **errp)
{
    TestJob *t = (TestJob *)job;
    t->ran = true;
    job_progress_set_remaining(job, t->n);
    for (t->i = 0; t->i < t->n; t->i++) {
        if (job_is_cancelled(job)) {
            return -ECANCELED;
        }
        if (t->i == t->fail_at) {
            error_setg(errp, "test failure at step %d", t->i);
            return -EIO;
        }
        if (t->i == t->ready_at) {
            job_transition_to_ready(job);
            while (!t->should_complete && !job_cancel_requested(job)) {
                job_yield(job);
            }
            return job_is_cancelled(job) ? -ECANCELED : 0;
        }
        job_progress_update(job, 1);
        job_sleep_ns(job, t->sleep_ns);
    }
    return 0;
}

static void test_complete(Job *job, GError **errp)
{
    TestJob *t = (TestJob *)job;
    t->should_complete = true;
    job_enter(job);
}

static int test_prepare(Job *job)
{
    TestJob *t = (TestJob *)job;
    t->prepared++;
    return t->prepare_ret;
}

static void test_commit(Job *job)
{
    ((TestJob *)job)->committed++;
}

static void test_abort(Job *job)
{
    ((TestJob *)job)->aborted++;
}

static void test_clean(Job *job)
{
    ((TestJob *)job)->cleaned++;
}

static void test_free(Job *job)
{
    TestJob *t = (TestJob *)job;
    if (t->log) {
        (*t->log)++;
    }
}

static const JobDriver test_driver = {
    .instance_size = sizeof(TestJob),
    .job_type = XBLK_JOB_TYPE_BACKUP,
    .run = test_run,
    .complete = test_complete,
    .prepare = test_prepare,
    .commit = test_commit,
    .abort = test_abort,
    .clean = test_clean,
    .free = test_free,
};

/* ---- fixture: one node "n0" ---- */

static char *node_path;
static BlockDriverState *node;

static void node_open(void)
{
    GError *err = NULL;
    int fd = g_file_open_tmp("xblk-job-XXXXXX", &node_path, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ftruncate(fd, 1 << 20), ==, 0);
    close(fd);
    BlockOpts *o = bopts_new();
    bopts_set(o, "driver", "file");
    bopts_set(o, "filename", node_path);
    bopts_set(o, "node-name", "n0");
    node = blockdev_add(o, &err);
    g_assert_no_error(err);
}

static void node_close(void)
{
    GError *err = NULL;
    g_assert_true(blockdev_del("n0", &err));
    g_assert_no_error(err);
    g_unlink(node_path);
    g_free(node_path);
}

static TestJob *new_job(const char *id, JobTxn *txn, int n, int flags)
{
    GError *err = NULL;
    TestJob *t = block_job_create(id, &test_driver, txn, node, 0, flags,
                                  &err);
    g_assert_no_error(err);
    g_assert_nonnull(t);
    t->n = n;
    t->fail_at = -1;
    t->ready_at = -1;
    t->sleep_ns = 0;
    return t;
}

static Job *J(TestJob *t)
{
    return &t->common.job;
}

/* Polls the loop until cond holds; fails after 10 s. */
#define WAIT_FOR(cond) do {                                             \
        gint64 end_ = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;     \
        while (!(cond)) {                                               \
            g_assert_cmpint(g_get_monotonic_time(), <, end_);           \
            if (!aio_poll(false)) {                                     \
                g_usleep(100);                                          \
            }                                                           \
        }                                                               \
    } while (0)

static void poll_idle(void)
{
    for (int i = 0; i < 20; i++) {
        aio_poll(false);
    }
}

static void assert_error(GError **err, const char *msg)
{
    g_assert_nonnull(*err);
    g_assert_cmpstr((*err)->message, ==, msg);
    g_clear_error(err);
}

/* ---- tables and IDs ---- */

static void test_tables(void)
{
    static const char *const allowed[] = {
        "undefined>created", "created>running", "created>aborting",
        "created>null", "running>paused", "running>ready", "running>waiting",
        "running>aborting", "paused>running", "ready>standby",
        "ready>waiting", "ready>aborting", "standby>ready",
        "waiting>pending", "waiting>aborting", "pending>aborting",
        "pending>concluded", "aborting>aborting", "aborting>concluded",
        "concluded>null",
    };
    int count = 0;
    for (int a = 0; a < XBLK_JOB_STATUS__MAX; a++) {
        for (int b = 0; b < XBLK_JOB_STATUS__MAX; b++) {
            g_autofree char *k = g_strdup_printf("%s>%s", job_status_name(a),
                                                 job_status_name(b));
            bool want = false;
            for (size_t i = 0; i < G_N_ELEMENTS(allowed); i++) {
                want |= !strcmp(allowed[i], k);
            }
            g_assert_cmpint(job_status_transition_allowed(a, b), ==, want);
            count += want;
        }
    }
    g_assert_cmpint(count, ==, G_N_ELEMENTS(allowed));
    /* verb -> the statuses that accept it */
    static const char *const table[XBLK_JOB_VERB__MAX] = {
        "created running paused ready standby waiting pending",
        "created running paused ready standby",
        "created running paused ready standby",
        "created running paused ready standby",
        "ready", "concluded", "pending",
    };
    for (int v = 0; v < XBLK_JOB_VERB__MAX; v++) {
        g_autofree char *ok = NULL;
        GString *s = g_string_new(NULL);
        for (int st = 0; st < XBLK_JOB_STATUS__MAX; st++) {
            if (job_verb_allowed(st, v)) {
                g_string_append_printf(s, "%s%s", s->len ? " " : "",
                                       job_status_name(st));
            }
        }
        ok = g_string_free(s, FALSE);
        g_assert_cmpstr(ok, ==, table[v]);
    }
    g_assert_cmpstr(job_verb_name(XBLK_JOB_VERB_SET_SPEED), ==, "set-speed");
    g_assert_cmpstr(job_type_name(XBLK_JOB_TYPE_SNAPSHOT_DELETE), ==,
                    "snapshot-delete");
}

static void test_ids(void)
{
    GError *err = NULL;
    static const char *const bad[] = { "", "0job", "-x", "a b", "a/b", "j\xc3" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_null(block_job_create(bad[i], &test_driver, NULL, node, 0,
                                       0, &err));
        g_autofree char *m = g_strdup_printf("Invalid job ID '%s'", bad[i]);
        assert_error(&err, m);
    }
    /* No device on the node: no default ID, as for QEMU's -blockdev. */
    g_assert_null(block_job_create(NULL, &test_driver, NULL, node, 0, 0,
                                   &err));
    assert_error(&err, "Invalid job ID ''");
    g_assert_null(block_job_create("x", &test_driver, NULL, node, 0,
                                   JOB_INTERNAL, &err));
    assert_error(&err, "Cannot specify job ID for internal job");
    g_assert_null(block_job_create("x", &test_driver, NULL, node, -1, 0,
                                   &err));
    assert_error(&err, "Parameter 'speed' expects a non-negative value");

    TestJob *t = new_job("Job-1.a_b", NULL, 1, 0);
    g_assert_null(block_job_create("Job-1.a_b", &test_driver, NULL, node, 0,
                                   0, &err));
    assert_error(&err, "Job ID 'Job-1.a_b' already in use");
    g_assert_true(block_job_get("Job-1.a_b") == &t->common);
    job_cancel_sync(J(t), true);
    g_assert_null(job_get("Job-1.a_b"));
    events_reset();
}

/* ---- life cycle ---- */

static void test_auto_lifecycle(void)
{
    int freed = 0;
    TestJob *t = new_job("j0", NULL, 5, 0);
    t->log = &freed;
    g_assert_cmpint(J(t)->status, ==, XBLK_JOB_STATUS_CREATED);
    job_start(J(t));
    g_assert_cmpint(J(t)->status, ==, XBLK_JOB_STATUS_RUNNING);
    WAIT_FOR(freed);
    assert_events("j0:created j0:running j0:waiting j0:pending "
                  "BLOCK_JOB_COMPLETED j0:concluded j0:null");
    g_assert_null(job_get("j0"));
}

static void test_auto_lifecycle_payload(void)
{
    int freed = 0;
    TestJob *t = new_job("j0", NULL, 7, 0);
    t->log = &freed;
    job_start(J(t));
    WAIT_FOR(freed);
    assert_events("j0:created j0:running j0:waiting j0:pending "
                  "BLOCK_JOB_COMPLETED j0:concluded j0:null");
    g_autofree char *got = json_dumps(payload(0), JSON_SORT_KEYS);
    g_assert_cmpstr(got, ==, "{\"device\": \"j0\", \"len\": 7, "
                    "\"offset\": 7, \"speed\": 0, \"type\": \"backup\"}");
    events_reset();
}

static void test_callbacks_success(void)
{
    TestJob *t = new_job("j0", NULL, 3, JOB_MANUAL_DISMISS);
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(t->prepared, ==, 1);
    g_assert_cmpint(t->committed, ==, 1);
    g_assert_cmpint(t->aborted, ==, 0);
    g_assert_cmpint(t->cleaned, ==, 1);
    g_assert_cmpint(J(t)->progress_current, ==, 3);
    g_assert_cmpint(J(t)->progress_total, ==, 3);
    g_assert_null(job_error_message(J(t)));
    GError *err = NULL;
    job_dismiss(J(t), &err);
    g_assert_no_error(err);
    events_reset();
}

static void test_manual_finalize_dismiss(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 2, JOB_MANUAL_FINALIZE |
                         JOB_MANUAL_DISMISS);
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PENDING);
    poll_idle();
    g_assert_cmpint(J(t)->status, ==, XBLK_JOB_STATUS_PENDING);
    g_assert_cmpint(t->prepared, ==, 0);
    assert_events("j0:created j0:running j0:waiting j0:pending "
                  "BLOCK_JOB_PENDING");

    job_user_pause(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'pending' cannot accept command "
                 "verb 'pause'");
    job_dismiss(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'pending' cannot accept command "
                 "verb 'dismiss'");
    job_complete(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'pending' cannot accept command "
                 "verb 'complete'");
    block_job_set_speed(&t->common, 10, &err);
    assert_error(&err, "Job 'j0' in state 'pending' cannot accept command "
                 "verb 'set-speed'");

    job_finalize(J(t), &err);
    g_assert_no_error(err);
    g_assert_cmpint(J(t)->status, ==, XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(t->committed, ==, 1);
    assert_events("BLOCK_JOB_COMPLETED j0:concluded");

    job_finalize(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'concluded' cannot accept command "
                 "verb 'finalize'");
    job_user_cancel(J(t), true, &err);
    assert_error(&err, "Job 'j0' in state 'concluded' cannot accept command "
                 "verb 'cancel'");
    /* Concluded jobs stay listed, with their nodes released. */
    g_assert_false(block_job_node_busy(node, NULL));
    json_t *info = block_job_query(&t->common);
    g_assert_cmpstr(json_string_value(json_object_get(info, "status")), ==,
                    "concluded");
    json_decref(info);
    job_dismiss(J(t), &err);
    g_assert_no_error(err);
    assert_events("j0:null");
    g_assert_null(job_get("j0"));
}

/* ---- verbs on a running job ---- */

static void test_verbs_running(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 1000, 0);
    t->sleep_ns = 10 * SEC;
    job_start(J(t));
    WAIT_FOR(t->i == 0 && t->ran && !J(t)->busy);
    job_complete(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'running' cannot accept command "
                 "verb 'complete'");
    job_finalize(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'running' cannot accept command "
                 "verb 'finalize'");
    job_dismiss(J(t), &err);
    assert_error(&err, "Job 'j0' in state 'running' cannot accept command "
                 "verb 'dismiss'");
    job_user_resume(J(t), &err);
    assert_error(&err, "Can't resume a job that was not paused");
    job_user_pause(J(t), &err);
    g_assert_no_error(err);
    job_user_pause(J(t), &err);
    assert_error(&err, "Job is already paused");
    job_user_resume(J(t), &err);
    g_assert_no_error(err);
    job_user_resume(J(t), &err);
    assert_error(&err, "Can't resume a job that was not paused");
    job_cancel_sync(J(t), true);
    events_reset();
}

/* A sleeping job pauses at once, not when its sleep would have ended. */
static void test_pause_while_sleeping(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 3, JOB_MANUAL_DISMISS);
    t->sleep_ns = 60 * SEC;
    job_start(J(t));
    WAIT_FOR(t->ran && !J(t)->busy);
    g_assert_cmpint(J(t)->sleep_timer, !=, 0);
    gint64 t0 = g_get_monotonic_time();
    job_user_pause(J(t), &err);
    g_assert_no_error(err);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PAUSED);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
    g_assert_true(J(t)->paused && job_user_paused(J(t)));
    json_t *info = block_job_query(&t->common);
    g_assert_true(json_is_true(json_object_get(info, "paused")));
    g_assert_false(json_is_true(json_object_get(info, "busy")));
    g_assert_cmpstr(json_string_value(json_object_get(info, "status")), ==,
                    "paused");
    json_decref(info);
    int step = t->i;
    poll_idle();
    g_assert_cmpint(t->i, ==, step);
    g_assert_cmpint(J(t)->progress_current, ==, 1);

    t->sleep_ns = 0;
    job_user_resume(J(t), &err);
    g_assert_no_error(err);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(J(t)->progress_current, ==, 3);
    assert_events("j0:created j0:running j0:paused j0:running j0:waiting "
                  "j0:pending BLOCK_JOB_COMPLETED j0:concluded");
    job_dismiss(J(t), NULL);
    events_reset();
}

/* A pause requested before start takes effect at the first pause point. */
static void test_pause_before_start(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 2, 0);
    job_user_pause(J(t), &err);
    g_assert_no_error(err);
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PAUSED);
    g_assert_false(t->ran);
    job_user_resume(J(t), &err);
    g_assert_no_error(err);
    WAIT_FOR(!job_get("j0"));
    assert_events("j0:created j0:running j0:paused j0:running j0:waiting "
                  "j0:pending BLOCK_JOB_COMPLETED j0:concluded j0:null");
}

/* Internal pauses count separately from the user's. */
static void test_pause_counting(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 1000, 0);
    t->sleep_ns = 10 * SEC;
    job_start(J(t));
    WAIT_FOR(t->ran && !J(t)->busy);
    job_pause(J(t));
    job_user_pause(J(t), &err);
    g_assert_no_error(err);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PAUSED);
    job_user_resume(J(t), &err);
    g_assert_no_error(err);
    poll_idle();
    g_assert_cmpint(J(t)->status, ==, XBLK_JOB_STATUS_PAUSED);
    job_user_resume(J(t), &err);
    assert_error(&err, "Can't resume a job that was not paused");
    job_resume(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_RUNNING);
    job_cancel_sync(J(t), true);
    events_reset();
}

/* ---- failure ---- */

static void test_run_fails(void)
{
    TestJob *t = new_job("j0", NULL, 10, JOB_MANUAL_DISMISS);
    t->fail_at = 4;
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    assert_events("j0:created j0:running j0:aborting BLOCK_JOB_COMPLETED "
                  "j0:concluded");
    g_assert_cmpint(t->prepared, ==, 0);
    g_assert_cmpint(t->committed, ==, 0);
    g_assert_cmpint(t->aborted, ==, 1);
    g_assert_cmpint(t->cleaned, ==, 1);
    g_assert_cmpint(J(t)->ret, ==, -EIO);
    g_assert_cmpstr(job_error_message(J(t)), ==, "test failure at step 4");
    g_assert_cmpstr(json_string_value(json_object_get(payload(0), "error")),
                    ==, "test failure at step 4");
    g_assert_cmpint(json_integer_value(json_object_get(payload(0),
                                                       "offset")), ==, 4);
    json_t *info = block_job_query(&t->common);
    g_assert_cmpstr(json_string_value(json_object_get(info, "error")), ==,
                    "test failure at step 4");
    json_decref(info);
    job_dismiss(J(t), NULL);
    events_reset();
}

static void test_prepare_fails(void)
{
    TestJob *t = new_job("j0", NULL, 2, JOB_MANUAL_DISMISS);
    t->prepare_ret = -ENOSPC;
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    assert_events("j0:created j0:running j0:waiting j0:pending j0:aborting "
                  "BLOCK_JOB_COMPLETED j0:concluded");
    g_assert_cmpint(t->prepared, ==, 1);
    g_assert_cmpint(t->committed, ==, 0);
    g_assert_cmpint(t->aborted, ==, 1);
    g_assert_cmpstr(job_error_message(J(t)), ==, g_strerror(ENOSPC));
    job_dismiss(J(t), NULL);
    events_reset();
}

/* ---- cancel ---- */

static void test_cancel_created(void)
{
    TestJob *t = new_job("j0", NULL, 2, 0);
    int freed = 0;
    t->log = &freed;
    GError *err = NULL;
    job_user_cancel(J(t), false, &err);
    g_assert_no_error(err);
    g_assert_cmpint(freed, ==, 1);
    /* Never started: no BLOCK_JOB_CANCELLED, dismissed at once. */
    assert_events("j0:created j0:aborting j0:concluded j0:null");
}

static void test_cancel_running(void)
{
    TestJob *t = new_job("j0", NULL, 1000, JOB_MANUAL_DISMISS);
    t->sleep_ns = 60 * SEC;
    job_start(J(t));
    WAIT_FOR(t->ran && !J(t)->busy);
    gint64 t0 = g_get_monotonic_time();
    GError *err = NULL;
    /* Not ready: a soft cancel is a force cancel. */
    job_user_cancel(J(t), false, &err);
    g_assert_no_error(err);
    g_assert_true(job_is_cancelled(J(t)));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
    assert_events("j0:created j0:running j0:aborting BLOCK_JOB_CANCELLED "
                  "j0:concluded");
    g_assert_null(json_object_get(payload(0), "error"));
    g_assert_cmpint(t->aborted, ==, 1);
    g_assert_cmpint(t->committed, ==, 0);
    g_assert_cmpstr(job_error_message(J(t)), ==, "Operation canceled");
    job_dismiss(J(t), NULL);
    events_reset();
}

static void test_cancel_paused(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 1000, 0);
    t->sleep_ns = 60 * SEC;
    job_start(J(t));
    WAIT_FOR(t->ran && !J(t)->busy);
    job_user_pause(J(t), &err);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PAUSED);
    job_ref(J(t));
    job_user_cancel(J(t), true, &err);
    g_assert_no_error(err);
    g_assert_false(job_user_paused(J(t)));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_NULL);
    g_assert_cmpint(t->aborted, ==, 1);
    job_unref(J(t));
    assert_events("j0:created j0:running j0:paused j0:running j0:aborting "
                  "BLOCK_JOB_CANCELLED j0:concluded j0:null");
}

static TestJob *start_ready_job(void)
{
    TestJob *t = new_job("j0", NULL, 10, JOB_MANUAL_DISMISS);
    t->ready_at = 3;
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_READY && !J(t)->busy);
    assert_events("j0:created j0:running j0:ready BLOCK_JOB_READY");
    g_autofree char *got = json_dumps(payload(0), JSON_SORT_KEYS);
    g_assert_cmpstr(got, ==, "{\"device\": \"j0\", \"len\": 10, "
                    "\"offset\": 3, \"speed\": 0, \"type\": \"backup\"}");
    return t;
}

static void test_ready_complete(void)
{
    GError *err = NULL;
    TestJob *t = start_ready_job();
    json_t *info = block_job_query(&t->common);
    g_assert_true(json_is_true(json_object_get(info, "ready")));
    json_decref(info);
    /* Pausing a ready job shows standby. */
    job_user_pause(J(t), &err);
    job_enter(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_STANDBY);
    job_user_resume(J(t), &err);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_READY);
    job_complete(J(t), &err);
    g_assert_no_error(err);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    assert_events("j0:standby j0:ready j0:waiting j0:pending "
                  "BLOCK_JOB_COMPLETED j0:concluded");
    g_assert_cmpint(t->committed, ==, 1);
    job_dismiss(J(t), NULL);
    events_reset();
}

static void test_ready_soft_cancel(void)
{
    GError *err = NULL;
    TestJob *t = start_ready_job();
    job_user_cancel(J(t), false, &err);
    g_assert_no_error(err);
    g_assert_false(job_is_cancelled(J(t)));
    g_assert_true(job_cancel_requested(J(t)));
    job_complete(J(t), &err);
    assert_error(&err, "The active block job 'j0' cannot be completed");
    job_enter(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    /* The job stopped early but succeeded. */
    assert_events("j0:waiting j0:pending BLOCK_JOB_COMPLETED j0:concluded");
    g_assert_null(json_object_get(payload(0), "error"));
    g_assert_cmpint(t->committed, ==, 1);
    job_dismiss(J(t), NULL);
    events_reset();
}

static void test_ready_force_cancel(void)
{
    GError *err = NULL;
    TestJob *t = start_ready_job();
    job_user_cancel(J(t), true, &err);
    g_assert_no_error(err);
    g_assert_true(job_is_cancelled(J(t)));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_CONCLUDED);
    assert_events("j0:aborting BLOCK_JOB_CANCELLED j0:concluded");
    g_assert_cmpint(t->aborted, ==, 1);
    job_dismiss(J(t), NULL);
    events_reset();
}

/* job-cancel of a job waiting in "pending" aborts it. */
static void test_cancel_pending(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 2, JOB_MANUAL_FINALIZE |
                         JOB_MANUAL_DISMISS);
    job_start(J(t));
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PENDING);
    events_reset();
    job_user_cancel(J(t), true, &err);
    g_assert_no_error(err);
    g_assert_cmpint(J(t)->status, ==, XBLK_JOB_STATUS_CONCLUDED);
    assert_events("j0:aborting BLOCK_JOB_CANCELLED j0:concluded");
    g_assert_cmpint(t->aborted, ==, 1);
    g_assert_cmpint(t->committed, ==, 0);
    job_dismiss(J(t), NULL);
    events_reset();
}

/* ---- groups ---- */

static void test_txn_one_fails(void)
{
    JobTxn *txn = job_txn_new();
    TestJob *a = new_job("a", txn, 1000, JOB_MANUAL_DISMISS);
    TestJob *b = new_job("b", txn, 1, JOB_MANUAL_DISMISS);
    TestJob *c = new_job("c", txn, 50, JOB_MANUAL_DISMISS);
    job_txn_unref(txn);
    a->sleep_ns = 60 * SEC;         /* still running when c fails */
    c->fail_at = 20;
    job_start(J(a));
    job_start(J(b));
    WAIT_FOR(J(b)->status == XBLK_JOB_STATUS_WAITING);
    job_start(J(c));
    WAIT_FOR(J(a)->status == XBLK_JOB_STATUS_CONCLUDED &&
             J(b)->status == XBLK_JOB_STATUS_CONCLUDED &&
             J(c)->status == XBLK_JOB_STATUS_CONCLUDED);
    TestJob *all[] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(all[i]->aborted, ==, 1);
        g_assert_cmpint(all[i]->committed, ==, 0);
        g_assert_cmpint(all[i]->prepared, ==, 0);
        g_assert_cmpint(all[i]->cleaned, ==, 1);
    }
    g_assert_true(job_is_cancelled(J(a)) && job_is_cancelled(J(b)));
    g_assert_false(job_is_cancelled(J(c)));
    assert_events("a:created b:created c:created a:running b:running "
                  "b:waiting c:running c:aborting a:aborting "
                  "BLOCK_JOB_CANCELLED a:concluded "
                  "b:aborting BLOCK_JOB_CANCELLED b:concluded "
                  "BLOCK_JOB_COMPLETED c:concluded");
    g_assert_cmpstr(json_string_value(json_object_get(payload(0), "device")),
                    ==, "a");
    g_assert_cmpstr(json_string_value(json_object_get(payload(2), "error")),
                    ==, "test failure at step 20");
    for (int i = 0; i < 3; i++) {
        job_dismiss(J(all[i]), NULL);
    }
    events_reset();
}

static void test_txn_all_succeed(void)
{
    JobTxn *txn = job_txn_new();
    TestJob *a = new_job("a", NULL, 2, 0);
    TestJob *b = new_job("b", NULL, 1000, 0);
    job_txn_add_job(txn, J(a));
    job_txn_add_job(txn, J(b));
    job_txn_unref(txn);
    b->sleep_ns = 60 * SEC;
    int freed = 0;
    a->log = b->log = &freed;
    job_start(J(a));
    job_start(J(b));
    WAIT_FOR(J(a)->status == XBLK_JOB_STATUS_WAITING && b->ran &&
             !J(b)->busy);
    poll_idle();
    /* a waits for b. */
    g_assert_cmpint(J(a)->status, ==, XBLK_JOB_STATUS_WAITING);
    g_assert_cmpint(a->prepared, ==, 0);
    b->n = b->i + 1;
    b->sleep_ns = 0;
    job_enter(J(b));
    WAIT_FOR(freed == 2);
    assert_events("a:created b:created a:running b:running a:waiting "
                  "b:waiting a:pending b:pending "
                  "BLOCK_JOB_COMPLETED a:concluded a:null "
                  "BLOCK_JOB_COMPLETED b:concluded b:null");
}

static void test_txn_commit_counts(void)
{
    JobTxn *txn = job_txn_new();
    TestJob *j[3];
    for (int i = 0; i < 3; i++) {
        j[i] = new_job(i == 0 ? "x0" : i == 1 ? "x1" : "x2", txn, 3 + i,
                       JOB_MANUAL_DISMISS);
    }
    job_txn_unref(txn);
    for (int i = 0; i < 3; i++) {
        job_start(J(j[i]));
    }
    WAIT_FOR(J(j[2])->status == XBLK_JOB_STATUS_CONCLUDED);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(J(j[i])->status, ==, XBLK_JOB_STATUS_CONCLUDED);
        g_assert_cmpint(j[i]->prepared, ==, 1);
        g_assert_cmpint(j[i]->committed, ==, 1);
        g_assert_cmpint(j[i]->aborted, ==, 0);
        job_dismiss(J(j[i]), NULL);
    }
    events_reset();
}

/* One manual-finalize job holds the whole group in "pending". */
static void test_txn_manual_finalize(void)
{
    GError *err = NULL;
    JobTxn *txn = job_txn_new();
    TestJob *a = new_job("a", txn, 2, JOB_MANUAL_DISMISS);
    TestJob *b = new_job("b", txn, 3, JOB_MANUAL_FINALIZE |
                         JOB_MANUAL_DISMISS);
    job_txn_unref(txn);
    job_start(J(a));
    job_start(J(b));
    WAIT_FOR(J(a)->status == XBLK_JOB_STATUS_PENDING &&
             J(b)->status == XBLK_JOB_STATUS_PENDING);
    poll_idle();
    g_assert_cmpint(a->committed + b->committed, ==, 0);
    assert_events("a:created b:created a:running b:running a:waiting "
                  "b:waiting a:pending b:pending BLOCK_JOB_PENDING");
    g_assert_cmpstr(json_string_value(json_object_get(payload(0), "id")), ==,
                    "b");
    /* Finalizing any job of the group finalizes all of it. */
    job_finalize(J(a), &err);
    g_assert_no_error(err);
    g_assert_cmpint(J(a)->status, ==, XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(J(b)->status, ==, XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(a->committed + b->committed, ==, 2);
    job_dismiss(J(a), NULL);
    job_dismiss(J(b), NULL);
    events_reset();
}

static void test_txn_prepare_fails(void)
{
    JobTxn *txn = job_txn_new();
    TestJob *a = new_job("a", txn, 2, JOB_MANUAL_DISMISS);
    TestJob *b = new_job("b", txn, 2, JOB_MANUAL_DISMISS);
    job_txn_unref(txn);
    b->prepare_ret = -EIO;
    job_start(J(a));
    job_start(J(b));
    WAIT_FOR(J(a)->status == XBLK_JOB_STATUS_CONCLUDED &&
             J(b)->status == XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(a->prepared, ==, 1);
    g_assert_cmpint(b->prepared, ==, 1);
    g_assert_cmpint(a->committed + b->committed, ==, 0);
    g_assert_cmpint(a->aborted, ==, 1);
    g_assert_cmpint(b->aborted, ==, 1);
    job_dismiss(J(a), NULL);
    job_dismiss(J(b), NULL);
    events_reset();
}

/* Cancelling one job cancels the group, started or not. */
static void test_txn_cancel_one(void)
{
    JobTxn *txn = job_txn_new();
    TestJob *a = new_job("a", txn, 1000, JOB_MANUAL_DISMISS);
    TestJob *b = new_job("b", txn, 1000, JOB_MANUAL_DISMISS);
    TestJob *c = new_job("c", txn, 1000, JOB_MANUAL_DISMISS);
    job_txn_unref(txn);
    a->sleep_ns = b->sleep_ns = 60 * SEC;
    job_ref(J(c));              /* never started: dismissed at once */
    job_start(J(a));
    job_start(J(b));
    WAIT_FOR(a->ran && b->ran && !J(a)->busy && !J(b)->busy);
    g_assert_cmpint(job_cancel_sync(J(b), true), ==, -ECANCELED);
    WAIT_FOR(J(a)->status == XBLK_JOB_STATUS_CONCLUDED);
    TestJob *all[] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(J(all[i])->status, ==, i == 2
                        ? XBLK_JOB_STATUS_NULL : XBLK_JOB_STATUS_CONCLUDED);
        g_assert_cmpint(all[i]->aborted, ==, 1);
        g_assert_cmpint(all[i]->committed, ==, 0);
    }
    g_assert_false(c->ran);
    job_unref(J(c));
    assert_events("a:created b:created c:created a:running b:running "
                  "b:aborting c:aborting a:aborting "
                  "BLOCK_JOB_CANCELLED a:concluded "
                  "BLOCK_JOB_CANCELLED b:concluded c:concluded c:null");
    job_dismiss(J(a), NULL);
    job_dismiss(J(b), NULL);
    events_reset();
}

/* ---- grouped transactions hand out one JobTxn ---- */

typedef struct JobAction {
    const char *id;
    bool fail;
    TestJob *job;
} JobAction;

static int coroutine_fn ja_prepare(void *opaque, Transaction *t,
                                   GError **errp)
{
    JobAction *a = opaque;
    if (a->fail) {
        error_setg(errp, "prepare of %s fails", a->id);
        return -EIO;
    }
    a->job = new_job(a->id, txn_job_txn(t), 3, JOB_MANUAL_DISMISS);
    return 0;
}

static void ja_commit(void *opaque)
{
    JobAction *a = opaque;
    job_start(J(a->job));
}

static void coroutine_fn ja_abort(void *opaque)
{
    JobAction *a = opaque;
    job_cancel_sync(J(a->job), true);
}

static const TxnActionDriver ja_driver = {
    .type = "test-job-action",
    .supports_grouped = true,
    .prepare = ja_prepare,
    .commit = ja_commit,
    .abort = ja_abort,
};

static void test_transaction_grouped(void)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    g_assert_null(txn_job_txn(t));
    g_assert_cmpint(txn_run(t, NULL), ==, 0);

    JobAction a = { "ta" }, b = { "tb" };
    t = txn_new(TXN_COMPLETION_GROUPED);
    txn_add(t, &ja_driver, &a);
    txn_add(t, &ja_driver, &b);
    g_assert_cmpint(txn_run(t, NULL), ==, 0);
    g_assert_true(J(a.job)->txn == J(b.job)->txn);
    b.job->fail_at = 1;
    WAIT_FOR(J(a.job)->status == XBLK_JOB_STATUS_CONCLUDED &&
             J(b.job)->status == XBLK_JOB_STATUS_CONCLUDED);
    g_assert_cmpint(a.job->aborted, ==, 1);
    g_assert_cmpint(a.job->committed, ==, 0);
    job_dismiss(J(a.job), NULL);
    job_dismiss(J(b.job), NULL);

    /* A later action fails: the prepared job is cancelled unstarted. */
    JobAction c = { "tc" }, d = { "td", true };
    t = txn_new(TXN_COMPLETION_GROUPED);
    txn_add(t, &ja_driver, &c);
    txn_add(t, &ja_driver, &d);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), ==, -EIO);
    assert_error(&err, "prepare of td fails");
    g_assert_null(job_get("tc"));
    events_reset();
}

/* ---- speed ---- */

static void test_ratelimit_arithmetic(void)
{
    JobRateLimit rl = { 0 };
    const int64_t S = JOB_RATELIMIT_SLICE_NS;
    job_ratelimit_set_speed(&rl, 0, S);
    g_assert_cmpint(job_ratelimit_calculate_delay(&rl, 1 << 30, 0), ==, 0);

    /* 1 MiB/s: 104857 bytes per 100 ms slice. */
    job_ratelimit_set_speed(&rl, 1 << 20, S);
    g_assert_cmpuint(rl.slice_quota, ==, 104857);
    int64_t now = 5 * SEC;
    g_assert_cmpint(job_ratelimit_calculate_delay(&rl, 50000, now), ==, 0);
    g_assert_cmpint(job_ratelimit_calculate_delay(&rl, 50000, now + 10), ==,
                    0);
    /* 150000 bytes: the second slice carries the rest. */
    g_assert_cmpint(job_ratelimit_calculate_delay(&rl, 50000, now + 20), ==,
                    S - 20);
    /* The excess stays accounted in that slice. */
    now += S;
    g_assert_cmpint(rl.dispatched, ==, 150000 - 104857);
    g_assert_cmpint(job_ratelimit_calculate_delay(&rl, 4 * 104857, now), ==,
                    4 * S);
    /* After a long idle time the window restarts. */
    now += 100 * S;
    g_assert_cmpint(job_ratelimit_calculate_delay(&rl, 1000, now), ==, 0);
    g_assert_cmpint(rl.dispatched, ==, 1000);

    /* Long-run: 64 KiB chunks at 640 KiB/s take 1 s per 10 chunks. */
    JobRateLimit r2 = { 0 };
    job_ratelimit_set_speed(&r2, 640 * 1024, S);
    int64_t t = 0;
    for (int i = 0; i < 100; i++) {
        t += job_ratelimit_calculate_delay(&r2, 64 * 1024, t);
    }
    g_assert_cmpint(t, >=, 9 * SEC);
    g_assert_cmpint(t, <=, 10 * SEC);

    /* A tiny speed still has a quota. */
    job_ratelimit_set_speed(&r2, 1, S);
    g_assert_cmpuint(r2.slice_quota, ==, 1);
}

static void test_set_speed(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 3, 0);
    g_assert_true(block_job_set_speed(&t->common, 4096, &err));
    g_assert_cmpint(J(t)->speed, ==, 4096);
    g_assert_false(block_job_set_speed(&t->common, -1, &err));
    assert_error(&err, "Parameter 'speed' expects a non-negative value");
    t->sleep_ns = 60 * SEC;
    job_start(J(t));
    WAIT_FOR(t->ran && !J(t)->busy);
    /* Slower: the sleep goes on.  Unlimited: the job wakes up. */
    g_assert_true(block_job_set_speed(&t->common, 1024, &err));
    poll_idle();
    g_assert_false(J(t)->busy);
    t->sleep_ns = 0;
    g_assert_true(block_job_set_speed(&t->common, 0, &err));
    g_assert_true(J(t)->busy);
    WAIT_FOR(!job_get("j0"));
    assert_events("j0:created j0:running j0:waiting j0:pending "
                  "BLOCK_JOB_COMPLETED j0:concluded j0:null");
    g_assert_cmpint(json_integer_value(json_object_get(payload(0), "speed")),
                    ==, 0);
    events_reset();
}

/* ---- errors of a block job's requests ---- */

static void test_error_action(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 1000, 0);
    BlockJob *bj = &t->common;
    t->sleep_ns = 60 * SEC;
    job_start(J(t));
    WAIT_FOR(t->ran && !J(t)->busy);
    events_reset();
    g_assert_cmpint(block_job_error_action(bj, XBLK_ON_ERROR_REPORT, true,
                                           EIO), ==,
                    XBLK_ERROR_ACTION_REPORT);
    g_assert_cmpint(block_job_error_action(bj, XBLK_ON_ERROR_IGNORE, false,
                                           EIO), ==,
                    XBLK_ERROR_ACTION_IGNORE);
    g_assert_cmpint(block_job_error_action(bj, XBLK_ON_ERROR_ENOSPC, false,
                                           EIO), ==,
                    XBLK_ERROR_ACTION_REPORT);
    g_assert_cmpint(block_job_error_action(bj, XBLK_ON_ERROR_AUTO, false,
                                           EIO), ==,
                    XBLK_ERROR_ACTION_REPORT);
    g_assert_false(job_user_paused(J(t)));
    g_assert_cmpint(block_job_error_action(bj, XBLK_ON_ERROR_ENOSPC, false,
                                           ENOSPC), ==,
                    XBLK_ERROR_ACTION_STOP);
    g_assert_true(job_user_paused(J(t)));
    g_assert_cmpint(bj->iostatus, ==, XBLK_IO_STATUS_NOSPACE);
    WAIT_FOR(J(t)->status == XBLK_JOB_STATUS_PAUSED);
    json_t *info = block_job_query(bj);
    g_assert_cmpstr(json_string_value(json_object_get(info, "io-status")), ==,
                    "nospace");
    json_decref(info);
    g_assert_cmpint(block_job_error_action(bj, XBLK_ON_ERROR_STOP, true,
                                           EIO), ==,
                    XBLK_ERROR_ACTION_STOP);
    g_assert_cmpint(bj->iostatus, ==, XBLK_IO_STATUS_NOSPACE);
    g_assert_cmpint(J(t)->pause_count, ==, 1);
    assert_events("BLOCK_JOB_ERROR BLOCK_JOB_ERROR BLOCK_JOB_ERROR "
                  "BLOCK_JOB_ERROR BLOCK_JOB_ERROR j0:paused "
                  "BLOCK_JOB_ERROR");
    static const char *const want[] = {
        "{\"action\": \"report\", \"device\": \"j0\", \"operation\": \"read\"}",
        "{\"action\": \"ignore\", \"device\": \"j0\", \"operation\": \"write\"}",
        "{\"action\": \"report\", \"device\": \"j0\", \"operation\": \"write\"}",
        "{\"action\": \"report\", \"device\": \"j0\", \"operation\": \"write\"}",
        "{\"action\": \"stop\", \"device\": \"j0\", \"operation\": \"write\"}",
        "{\"action\": \"stop\", \"device\": \"j0\", \"operation\": \"read\"}",
    };
    for (int i = 0; i < 6; i++) {
        g_autofree char *got = json_dumps(payload(i), JSON_SORT_KEYS);
        g_assert_cmpstr(got, ==, want[i]);
    }
    job_user_resume(J(t), &err);
    g_assert_no_error(err);
    g_assert_cmpint(bj->iostatus, ==, XBLK_IO_STATUS_OK);
    job_cancel_sync(J(t), true);
    events_reset();
}

/* ---- nodes ---- */

static void test_node_busy(void)
{
    GError *err = NULL;
    TestJob *t = new_job("j0", NULL, 1000, JOB_MANUAL_DISMISS);
    t->sleep_ns = 60 * SEC;
    job_start(J(t));
    g_assert_true(block_job_node_busy(node, &err));
    assert_error(&err, "Node 'n0' is busy: block device is in use by block "
                 "job: backup");
    g_assert_false(blockdev_del("n0", &err));
    assert_error(&err, "Node 'n0' is busy: block device is in use by block "
                 "job: backup");
    g_assert_cmpint(node->refcnt, ==, 2);
    job_cancel_sync(J(t), true);
    g_assert_false(block_job_node_busy(node, NULL));
    g_assert_cmpint(node->refcnt, ==, 1);
    job_dismiss(J(t), NULL);
    events_reset();
}

static void test_internal_job(void)
{
    int freed = 0;
    TestJob *t = new_job(NULL, NULL, 3, JOB_INTERNAL);
    t->log = &freed;
    g_assert_true(block_job_is_internal(&t->common));
    job_start(J(t));
    WAIT_FOR(freed);
    g_assert_cmpuint(events->len, ==, 0);
}

static void test_query_fields(void)
{
    TestJob *t = new_job("j0", NULL, 3, JOB_MANUAL_FINALIZE);
    json_t *info = block_job_query(&t->common);
    g_autofree char *got = json_dumps(info, JSON_SORT_KEYS);
    g_assert_cmpstr(got, ==, "{\"auto-dismiss\": true, \"auto-finalize\": "
                    "false, \"busy\": false, \"device\": \"j0\", "
                    "\"io-status\": \"ok\", \"len\": 0, \"offset\": 0, "
                    "\"paused\": true, \"ready\": false, \"speed\": 0, "
                    "\"status\": \"created\", \"type\": \"backup\"}");
    json_decref(info);
    g_assert_true(block_job_next(NULL) == &t->common);
    g_assert_null(block_job_next(&t->common));
    job_cancel_sync(J(t), true);
    events_reset();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    events = g_ptr_array_new_with_free_func(g_free);
    payloads = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    checked = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    block_event_set_sink(record_event);
    node_open();
    g_test_add_func("/job/tables", test_tables);
    g_test_add_func("/job/ids", test_ids);
    g_test_add_func("/job/query-fields", test_query_fields);
    g_test_add_func("/job/lifecycle/auto", test_auto_lifecycle);
    g_test_add_func("/job/lifecycle/auto-payload",
                    test_auto_lifecycle_payload);
    g_test_add_func("/job/lifecycle/callbacks", test_callbacks_success);
    g_test_add_func("/job/lifecycle/manual", test_manual_finalize_dismiss);
    g_test_add_func("/job/lifecycle/run-fails", test_run_fails);
    g_test_add_func("/job/lifecycle/prepare-fails", test_prepare_fails);
    g_test_add_func("/job/lifecycle/internal", test_internal_job);
    g_test_add_func("/job/verbs/running", test_verbs_running);
    g_test_add_func("/job/pause/while-sleeping", test_pause_while_sleeping);
    g_test_add_func("/job/pause/before-start", test_pause_before_start);
    g_test_add_func("/job/pause/counting", test_pause_counting);
    g_test_add_func("/job/cancel/created", test_cancel_created);
    g_test_add_func("/job/cancel/running", test_cancel_running);
    g_test_add_func("/job/cancel/paused", test_cancel_paused);
    g_test_add_func("/job/cancel/pending", test_cancel_pending);
    g_test_add_func("/job/ready/complete", test_ready_complete);
    g_test_add_func("/job/ready/soft-cancel", test_ready_soft_cancel);
    g_test_add_func("/job/ready/force-cancel", test_ready_force_cancel);
    g_test_add_func("/job/txn/one-fails", test_txn_one_fails);
    g_test_add_func("/job/txn/all-succeed", test_txn_all_succeed);
    g_test_add_func("/job/txn/commit-counts", test_txn_commit_counts);
    g_test_add_func("/job/txn/manual-finalize", test_txn_manual_finalize);
    g_test_add_func("/job/txn/prepare-fails", test_txn_prepare_fails);
    g_test_add_func("/job/txn/cancel-one", test_txn_cancel_one);
    g_test_add_func("/job/txn/transaction-grouped", test_transaction_grouped);
    g_test_add_func("/job/speed/ratelimit", test_ratelimit_arithmetic);
    g_test_add_func("/job/speed/set-speed", test_set_speed);
    g_test_add_func("/job/error-action", test_error_action);
    g_test_add_func("/job/node-busy", test_node_busy);
    int ret = g_test_run();
    node_close();
    return ret;
}
