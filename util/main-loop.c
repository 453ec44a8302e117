/*
 * main-loop.c - the loop's GMainContext, bottom halves as a GSource on it
 * and a worker pool of plain threads.  Completions travel back as bottom halves.
 *
 * Wake-ups are the cost that matters at low queue depth, so both halves
 * keep them to the minimum: a bottom half scheduled onto an empty list
 * writes the source's own eventfd once (later ones ride along, and no
 * thread ever takes the GMainContext lock), and a submission wakes one
 * idle worker, starting a thread only when none is idle.
 */
#include "util/main-loop.h"
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct BH {
    BHFunc *fn;
    void *opaque;
} BH;

typedef struct BHSource {
    GSource source;
    GMutex lock;
    GArray *pending;     /* of BH, protected by lock */
    GArray *spare;       /* an empty array to swap in, protected by lock */
    gint nonempty;       /* pending->len > 0, readable without the lock */
    int efd;             /* written when pending becomes non-empty */
    gpointer tag;
} BHSource;

static BHSource *bh_source;
static GOnce bh_once = G_ONCE_INIT;

/* ---- the context ---- */

static GMainContext *loop_context;      /* NULL: GLib's default */
static gint context_used;               /* a source was attached */

GMainContext *aio_context(void)
{
    return loop_context ? loop_context : g_main_context_default();
}

bool aio_set_context(GMainContext *ctx)
{
    GMainContext *want = ctx ? ctx : g_main_context_default();
    if (g_atomic_int_get(&context_used) && want != aio_context()) {
        return false;
    }
    if (loop_context) {
        g_main_context_unref(loop_context);
    }
    loop_context = ctx ? g_main_context_ref(ctx) : NULL;
    return true;
}

static guint context_attach(GSource *src, GSourceFunc fn, gpointer data)
{
    g_atomic_int_set(&context_used, 1);
    if (fn) {
        g_source_set_callback(src, fn, data, NULL);
    }
    guint id = g_source_attach(src, aio_context());
    g_source_unref(src);
    return id;
}

guint aio_timeout_add(guint ms, GSourceFunc fn, gpointer data)
{
    return context_attach(g_timeout_source_new(ms), fn, data);
}

guint aio_fd_add(int fd, GIOCondition cond, GUnixFDSourceFunc fn,
                 gpointer data)
{
    /* GLib's documented convention: a GUnixFDSource takes its
     * GUnixFDSourceFunc through g_source_set_callback. */
    return context_attach(g_unix_fd_source_new(fd, cond),
                          (GSourceFunc)(void (*)(void))fn, data);
}

void aio_source_remove(guint id)
{
    GSource *src = g_main_context_find_source_by_id(aio_context(), id);
    if (src) {
        g_source_destroy(src);
    }
}

static gboolean bh_prepare(GSource *source, gint *timeout)
{
    BHSource *s = (BHSource *)source;
    *timeout = -1;
    return g_atomic_int_get(&s->nonempty) != 0;
}

static gboolean bh_check(GSource *source)
{
    BHSource *s = (BHSource *)source;
    return g_atomic_int_get(&s->nonempty) != 0 ||
           (g_source_query_unix_fd(source, s->tag) & G_IO_IN);
}

static gboolean bh_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    BHSource *s = (BHSource *)source;
    uint64_t v;
    /* Clear the eventfd before taking the list: a schedule that finds
     * the list empty after this point writes it again. */
    while (read(s->efd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    g_mutex_lock(&s->lock);
    GArray *batch = s->pending;
    s->pending = s->spare ? s->spare : g_array_new(FALSE, FALSE, sizeof(BH));
    s->spare = NULL;
    g_atomic_int_set(&s->nonempty, 0);
    g_mutex_unlock(&s->lock);
    /* Callbacks may poll the loop again (sync wrappers), which dispatches
     * newer bottom halves into their own batch. */
    for (guint i = 0; i < batch->len; i++) {
        BH *bh = &g_array_index(batch, BH, i);
        bh->fn(bh->opaque);
    }
    g_array_set_size(batch, 0);
    g_mutex_lock(&s->lock);
    if (!s->spare) {
        s->spare = batch;
        batch = NULL;
    }
    g_mutex_unlock(&s->lock);
    if (batch) {
        g_array_free(batch, TRUE);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs bh_funcs = {
    .prepare = bh_prepare,
    .check = bh_check,
    .dispatch = bh_dispatch,
};

static gpointer bh_init(gpointer unused)
{
    BHSource *s = (BHSource *)g_source_new(&bh_funcs, sizeof(BHSource));
    g_mutex_init(&s->lock);
    s->pending = g_array_new(FALSE, FALSE, sizeof(BH));
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        g_error("main loop: cannot create eventfd: %s", g_strerror(errno));
    }
    s->tag = g_source_add_unix_fd(&s->source, s->efd, G_IO_IN);
    g_source_set_priority(&s->source, G_PRIORITY_HIGH);
    /* Sync wrappers poll the loop from inside BH callbacks. */
    g_source_set_can_recurse(&s->source, TRUE);
    g_atomic_int_set(&context_used, 1);
    g_source_attach(&s->source, aio_context());
    bh_source = s;
    return NULL;
}

void aio_bh_schedule(BHFunc *fn, void *opaque)
{
    g_once(&bh_once, bh_init, NULL);
    BHSource *s = bh_source;
    BH bh = { fn, opaque };
    g_mutex_lock(&s->lock);
    bool was_empty = s->pending->len == 0;
    g_array_append_val(s->pending, bh);
    g_atomic_int_set(&s->nonempty, 1);
    g_mutex_unlock(&s->lock);
    if (was_empty) {
        uint64_t one = 1;
        while (write(s->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

bool aio_poll(bool blocking)
{
    g_once(&bh_once, bh_init, NULL);
    return g_main_context_iteration(aio_context(), blocking);
}

/* ---- worker pool ---- */

#define WORKER_MAX_THREADS 64
#define WORKER_IDLE_USEC (10 * G_USEC_PER_SEC)

typedef struct WorkItem {
    WorkerFunc *fn;
    void *opaque;
    int ret;
    Coroutine *co;
    struct WorkItem *next;
} WorkItem;

static struct {
    GMutex lock;
    GCond cond;          /* idle workers wait here */
    WorkItem *head, *tail;
    unsigned queued;     /* items in the queue */
    unsigned threads;    /* live worker threads */
    unsigned idle;       /* of which waiting for work */
} pool;
static gint worker_busy;

static void worker_complete_bh(void *opaque)
{
    WorkItem *w = opaque;
    g_atomic_int_dec_and_test(&worker_busy);
    co_enter(w->co);
}

static gpointer worker_thread(gpointer unused)
{
    g_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head) {
            gint64 deadline = g_get_monotonic_time() + WORKER_IDLE_USEC;
            pool.idle++;
            bool woken = g_cond_wait_until(&pool.cond, &pool.lock, deadline);
            pool.idle--;
            if (!woken && !pool.head) {
                /* Idle for long: let the thread go. */
                pool.threads--;
                g_mutex_unlock(&pool.lock);
                return NULL;
            }
        }
        WorkItem *w = pool.head;
        pool.head = w->next;
        if (!pool.head) {
            pool.tail = NULL;
        }
        pool.queued--;
        g_mutex_unlock(&pool.lock);

        w->ret = w->fn(w->opaque);
        aio_bh_schedule(worker_complete_bh, w);

        g_mutex_lock(&pool.lock);
    }
}

int coroutine_fn worker_pool_run(WorkerFunc *fn, void *opaque)
{
    g_assert(co_in_coroutine());
    WorkItem w = { fn, opaque, 0, co_self(), NULL };
    g_atomic_int_inc(&worker_busy);
    g_mutex_lock(&pool.lock);
    if (pool.tail) {
        pool.tail->next = &w;
    } else {
        pool.head = &w;
    }
    pool.tail = &w;
    pool.queued++;
    /* Idle threads take queued items in turn; start one more thread only
     * when the queue outgrows them. */
    bool spawn = pool.queued > pool.idle && pool.threads < WORKER_MAX_THREADS;
    bool wake = pool.idle > 0;
    if (spawn) {
        pool.threads++;
    }
    g_mutex_unlock(&pool.lock);
    if (wake) {
        g_cond_signal(&pool.cond);
    }
    if (spawn) {
        GError *err = NULL;
        GThread *t = g_thread_try_new("xblk-worker", worker_thread, NULL,
                                      &err);
        if (t) {
            g_thread_unref(t);
        } else {
            g_mutex_lock(&pool.lock);
            pool.threads--;
            bool none = pool.threads == 0;
            g_mutex_unlock(&pool.lock);
            if (none) {
                g_error("worker pool: cannot start a thread: %s",
                        err->message);
            }
            g_error_free(err);
        }
    }
    co_yield();
    return w.ret;
}

unsigned worker_pool_busy(void)
{
    return (unsigned)g_atomic_int_get(&worker_busy);
}
