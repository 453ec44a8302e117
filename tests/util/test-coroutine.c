/*
 * test-coroutine.c - unit tests of util/coroutine.c and util/main-loop.c:
 * coroutine create/enter/yield and nesting, CoMutex FIFO hand-off,
 * CoQueue, co_run_sync, worker_pool_run, and bottom halves scheduled from
 * other threads.  Each test observes ordering through an event log.
 */
#include "util/coroutine.h"
#include "util/main-loop.h"
#include <glib.h>
#include <string.h>

/* ---- an event log: each step appends one character ---- */

static GString *event_log;

static void log_event(char c)
{
    g_string_append_c(event_log, c);
}

static void log_reset(void)
{
    if (!event_log) {
        event_log = g_string_new(NULL);
    }
    g_string_truncate(event_log, 0);
}

/* Polls the loop until cond() or a 10 s safety limit. */
static void poll_until(gboolean (*cond)(gpointer), gpointer opaque)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!cond(opaque)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(false);
        g_usleep(100);
    }
}

/* ---- create, enter, yield ---- */

typedef struct {
    Coroutine *self_seen;
    bool in_co_seen;
    int steps;
} YieldState;

static void yield_entry(void *opaque)
{
    YieldState *st = opaque;
    st->self_seen = co_self();
    st->in_co_seen = co_in_coroutine();
    log_event('a');
    st->steps++;
    co_yield();
    log_event('c');
    st->steps++;
    co_yield();
    log_event('e');
    st->steps++;
}

static void test_create_enter_yield(void)
{
    YieldState st = { 0 };
    log_reset();
    g_assert_false(co_in_coroutine());
    g_assert_null(co_self());
    Coroutine *co = co_create(yield_entry, &st);
    co_enter(co);
    log_event('b');
    g_assert_cmpint(st.steps, ==, 1);
    g_assert_true(st.self_seen == co);
    g_assert_true(st.in_co_seen);
    g_assert_false(co_in_coroutine());
    co_enter(co);
    log_event('d');
    co_enter(co);       /* runs to completion */
    g_assert_cmpint(st.steps, ==, 3);
    g_assert_cmpstr(event_log->str, ==, "abcde");
    g_assert_null(co_self());
}

/* Many coroutines alive at once, each with its own stack contents. */
typedef struct {
    int id;
    int sum;
} StackState;

static void stack_entry(void *opaque)
{
    StackState *st = opaque;
    volatile int local[64];
    for (int i = 0; i < 64; i++) {
        local[i] = st->id * 1000 + i;
    }
    co_yield();
    int sum = 0;
    for (int i = 0; i < 64; i++) {
        g_assert_cmpint(local[i], ==, st->id * 1000 + i);
        sum += local[i];
    }
    st->sum = sum;
}

static void test_many_live_coroutines(void)
{
    enum { N = 300 };   /* more than the pool keeps */
    StackState st[N];
    Coroutine *co[N];
    for (int i = 0; i < N; i++) {
        st[i] = (StackState){ .id = i, .sum = -1 };
        co[i] = co_create(stack_entry, &st[i]);
        co_enter(co[i]);
    }
    for (int i = N - 1; i >= 0; i--) {
        co_enter(co[i]);
        g_assert_cmpint(st[i].sum, ==, i * 1000 * 64 + 63 * 64 / 2);
    }
}

/* ---- nesting ---- */

static Coroutine *outer_co, *inner_co;

static void inner_entry(void *opaque)
{
    g_assert_true(co_self() == inner_co);
    log_event('2');
    co_yield();                 /* back to outer, not to the leader */
    g_assert_true(co_self() == inner_co);
    log_event('5');
}

static void outer_entry(void *opaque)
{
    log_event('1');
    inner_co = co_create(inner_entry, NULL);
    co_enter(inner_co);
    g_assert_true(co_self() == outer_co);
    log_event('3');
    co_yield();
    log_event('4');
    co_enter(inner_co);         /* finishes inner */
    g_assert_true(co_self() == outer_co);
    log_event('6');
}

static void test_nesting(void)
{
    log_reset();
    outer_co = co_create(outer_entry, NULL);
    co_enter(outer_co);
    g_assert_cmpstr(event_log->str, ==, "123");
    g_assert_null(co_self());
    co_enter(outer_co);
    g_assert_cmpstr(event_log->str, ==, "123456");
}

/* ---- co_yield_to_loop / co_wake ---- */

typedef struct {
    int rounds;
    bool done;
} LoopState;

static void loop_entry(void *opaque)
{
    LoopState *st = opaque;
    for (int i = 0; i < 5; i++) {
        co_yield_to_loop();
        st->rounds++;
    }
    st->done = true;
}

static gboolean loop_done(gpointer opaque)
{
    return ((LoopState *)opaque)->done;
}

static void test_yield_to_loop(void)
{
    LoopState st = { 0 };
    co_enter(co_create(loop_entry, &st));
    g_assert_cmpint(st.rounds, ==, 0);      /* resumes only from the loop */
    poll_until(loop_done, &st);
    g_assert_cmpint(st.rounds, ==, 5);
}

/* ---- CoMutex ---- */

typedef struct {
    CoMutex *m;
    char name;
    int *active;        /* holders at once: must never exceed 1 */
    int *finished;
} MutexUser;

static void mutex_user_entry(void *opaque)
{
    MutexUser *u = opaque;
    co_mutex_lock(u->m);
    (*u->active)++;
    g_assert_cmpint(*u->active, ==, 1);
    log_event(u->name);
    co_yield_to_loop();         /* hold across a loop iteration */
    (*u->active)--;
    co_mutex_unlock(u->m);
    (*u->finished)++;
}

static gboolean int_reaches(gpointer opaque)
{
    int *p = opaque;
    return p[0] >= p[1];
}

static void test_mutex_fifo(void)
{
    CoMutex m;
    int active = 0;
    int fin[2] = { 0, 8 };
    MutexUser u[8];
    co_mutex_init(&m);
    log_reset();
    for (int i = 0; i < 8; i++) {
        u[i] = (MutexUser){ &m, (char)('A' + i), &active, &fin[0] };
        co_enter(co_create(mutex_user_entry, &u[i]));
    }
    poll_until(int_reaches, fin);
    /* Waiters are served in the order they queued. */
    g_assert_cmpstr(event_log->str, ==, "ABCDEFGH");
    g_assert_null(m.holder);
}

/* Unlock hands the mutex to the first waiter: the unlocker cannot take it
 * back before the waiter ran, even without yielding in between. */
static CoMutex handoff_mutex;
static bool handoff_done[2];

static void handoff_waiter(void *opaque)
{
    co_mutex_lock(&handoff_mutex);
    log_event('W');
    co_mutex_unlock(&handoff_mutex);
    handoff_done[1] = true;
}

static void handoff_holder(void *opaque)
{
    co_mutex_lock(&handoff_mutex);
    log_event('H');
    co_enter(co_create(handoff_waiter, NULL));   /* queues behind us */
    co_mutex_unlock(&handoff_mutex);
    g_assert_true(handoff_mutex.holder != co_self());
    co_mutex_lock(&handoff_mutex);                /* must wait for W */
    log_event('h');
    co_mutex_unlock(&handoff_mutex);
    handoff_done[0] = true;
}

static gboolean handoff_finished(gpointer opaque)
{
    return handoff_done[0] && handoff_done[1];
}

static void test_mutex_handoff(void)
{
    co_mutex_init(&handoff_mutex);
    handoff_done[0] = handoff_done[1] = false;
    log_reset();
    co_enter(co_create(handoff_holder, NULL));
    poll_until(handoff_finished, NULL);
    g_assert_cmpstr(event_log->str, ==, "HWh");
}

/* ---- CoQueue ---- */

typedef struct {
    CoQueue *q;
    CoMutex *m;
    char name;
    bool woke;
} QueueWaiter;

static void queue_waiter_entry(void *opaque)
{
    QueueWaiter *w = opaque;
    if (w->m) {
        co_mutex_lock(w->m);
    }
    co_queue_wait(w->q, w->m);
    if (w->m) {
        g_assert_true(w->m->holder == co_self());   /* retaken */
        co_mutex_unlock(w->m);
    }
    log_event(w->name);
    w->woke = true;
}

static gboolean waiter_woke(gpointer opaque)
{
    return ((QueueWaiter *)opaque)->woke;
}

static void test_coqueue_next_and_all(void)
{
    CoQueue q;
    QueueWaiter w[4];
    co_queue_init(&q);
    log_reset();
    g_assert_true(co_queue_empty(&q));
    g_assert_false(co_queue_next(&q));
    for (int i = 0; i < 4; i++) {
        w[i] = (QueueWaiter){ &q, NULL, (char)('a' + i), false };
        co_enter(co_create(queue_waiter_entry, &w[i]));
    }
    g_assert_false(co_queue_empty(&q));
    g_assert_true(co_queue_next(&q));
    poll_until(waiter_woke, &w[0]);
    for (int i = 0; i < 20; i++) {
        aio_poll(false);
    }
    g_assert_cmpstr(event_log->str, ==, "a");   /* exactly one woke */
    co_queue_restart_all(&q);
    g_assert_true(co_queue_empty(&q));
    poll_until(waiter_woke, &w[3]);
    g_assert_cmpstr(event_log->str, ==, "abcd");
}

static void mutex_probe_entry(void *opaque)
{
    CoMutex *m = opaque;
    co_mutex_lock(m);           /* would block if the waiter kept it */
    log_event('p');
    co_mutex_unlock(m);
}

static void test_coqueue_releases_mutex(void)
{
    CoQueue q;
    CoMutex m;
    co_queue_init(&q);
    co_mutex_init(&m);
    log_reset();
    QueueWaiter w = { &q, &m, 'w', false };
    co_enter(co_create(queue_waiter_entry, &w));
    g_assert_null(m.holder);            /* released while parked */
    co_enter(co_create(mutex_probe_entry, &m));
    g_assert_cmpstr(event_log->str, ==, "p");
    co_queue_next(&q);
    poll_until(waiter_woke, &w);
    g_assert_cmpstr(event_log->str, ==, "pw");
    g_assert_null(m.holder);
}

/* ---- co_run_sync ---- */

typedef struct {
    int value;
    Coroutine *co;
} SyncState;

static void sync_inner(void *opaque)
{
    SyncState *st = opaque;
    st->co = co_self();
    co_yield_to_loop();         /* needs the loop to come back */
    st->value = 42;
}

static void test_run_sync_outside(void)
{
    SyncState st = { 0 };
    co_run_sync(sync_inner, &st);
    g_assert_cmpint(st.value, ==, 42);
    g_assert_nonnull(st.co);
    g_assert_false(co_in_coroutine());
}

static void sync_outer(void *opaque)
{
    SyncState *st = opaque;
    Coroutine *me = co_self();
    co_run_sync(sync_inner, st);
    /* Inside a coroutine the entry runs in the caller's coroutine. */
    g_assert_true(st->co == me);
    g_assert_cmpint(st->value, ==, 42);
    st->value = 43;
}

static void test_run_sync_nested(void)
{
    SyncState st = { 0 };
    co_run_sync(sync_outer, &st);
    g_assert_cmpint(st.value, ==, 43);
}

/* ---- worker pool ---- */

typedef struct {
    GThread *thread;
    gint *arrived;
    int n;
    int ret;
} WorkArg;

static GThread *main_thread;

/* Every worker waits until all n have arrived: passes only if they truly
 * run in parallel (with a timeout instead of a hang). */
static int rendezvous_worker(void *opaque)
{
    WorkArg *w = opaque;
    w->thread = g_thread_self();
    g_atomic_int_inc(w->arrived);
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (g_atomic_int_get(w->arrived) < w->n) {
        if (g_get_monotonic_time() > deadline) {
            return -1;
        }
        g_usleep(200);
    }
    return w->ret;
}

typedef struct {
    WorkArg arg;
    int result;
    bool resumed_on_main;
    bool done;
} WorkCo;

static void work_entry(void *opaque)
{
    WorkCo *wc = opaque;
    wc->result = worker_pool_run(rendezvous_worker, &wc->arg);
    wc->resumed_on_main = g_thread_self() == main_thread;
    wc->done = true;
}

static gboolean all_work_done(gpointer opaque)
{
    WorkCo *wc = opaque;
    for (int i = 0; i < 16; i++) {
        if (!wc[i].done) {
            return FALSE;
        }
    }
    return TRUE;
}

static void test_worker_pool_parallel(void)
{
    enum { N = 16 };
    WorkCo wc[N];
    gint arrived = 0;
    main_thread = g_thread_self();
    for (int i = 0; i < N; i++) {
        wc[i] = (WorkCo){ .arg = { NULL, &arrived, N, 100 + i } };
        co_enter(co_create(work_entry, &wc[i]));
    }
    g_assert_cmpuint(worker_pool_busy(), >, 0);
    poll_until(all_work_done, wc);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(wc[i].result, ==, 100 + i);
        g_assert_true(wc[i].resumed_on_main);
        g_assert_true(wc[i].arg.thread != main_thread);
    }
    g_assert_cmpuint(worker_pool_busy(), ==, 0);
}

/* ---- bottom halves from other threads ---- */

typedef struct {
    gint ran;
    gint wrong_thread;
} BHCount;

static void count_bh(void *opaque)
{
    BHCount *c = opaque;
    if (g_thread_self() != main_thread) {
        g_atomic_int_inc(&c->wrong_thread);
    }
    g_atomic_int_inc(&c->ran);
}

static gpointer bh_thread(gpointer opaque)
{
    for (int i = 0; i < 250; i++) {
        aio_bh_schedule(count_bh, opaque);
        if (i % 50 == 0) {
            g_usleep(500);
        }
    }
    return NULL;
}

static gboolean bh_all_ran(gpointer opaque)
{
    return g_atomic_int_get(&((BHCount *)opaque)->ran) >= 1000;
}

static void test_bh_from_threads(void)
{
    BHCount c = { 0, 0 };
    GThread *t[4];
    main_thread = g_thread_self();
    for (int i = 0; i < 4; i++) {
        t[i] = g_thread_new("bh", bh_thread, &c);
    }
    poll_until(bh_all_ran, &c);
    for (int i = 0; i < 4; i++) {
        g_thread_join(t[i]);
    }
    for (int i = 0; i < 20; i++) {
        aio_poll(false);
    }
    g_assert_cmpint(g_atomic_int_get(&c.ran), ==, 1000);     /* once each */
    g_assert_cmpint(c.wrong_thread, ==, 0);
}

/* A blocking aio_poll must wake up when another thread schedules. */
static gpointer late_bh_thread(gpointer opaque)
{
    g_usleep(50 * 1000);
    aio_bh_schedule(count_bh, opaque);
    return NULL;
}

static void test_bh_wakes_blocking_poll(void)
{
    BHCount c = { 0, 0 };
    main_thread = g_thread_self();
    GThread *t = g_thread_new("late", late_bh_thread, &c);
    gint64 start = g_get_monotonic_time();
    while (!g_atomic_int_get(&c.ran)) {
        aio_poll(true);
    }
    g_thread_join(t);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
    g_assert_cmpint(c.ran, ==, 1);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/coroutine/create-enter-yield", test_create_enter_yield);
    g_test_add_func("/coroutine/many-live", test_many_live_coroutines);
    g_test_add_func("/coroutine/nesting", test_nesting);
    g_test_add_func("/coroutine/yield-to-loop", test_yield_to_loop);
    g_test_add_func("/coroutine/mutex-fifo", test_mutex_fifo);
    g_test_add_func("/coroutine/mutex-handoff", test_mutex_handoff);
    g_test_add_func("/coroutine/coqueue-next-all", test_coqueue_next_and_all);
    g_test_add_func("/coroutine/coqueue-mutex", test_coqueue_releases_mutex);
    g_test_add_func("/coroutine/run-sync-outside", test_run_sync_outside);
    g_test_add_func("/coroutine/run-sync-nested", test_run_sync_nested);
    g_test_add_func("/coroutine/worker-pool", test_worker_pool_parallel);
    g_test_add_func("/main-loop/bh-threads", test_bh_from_threads);
    g_test_add_func("/main-loop/bh-wakes-poll", test_bh_wakes_blocking_poll);
    return g_test_run();
}
